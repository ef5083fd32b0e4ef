//! The 48-byte message header `{type, private_group[32], num_groups, hint, data_len}`.
//!
//! It starts every client message in both directions and every message inside the ring.
//! `type`, `num_groups` and `data_len` are in the writer's order, named by the marker in
//! `type`. `hint` is special: it carries the *originating client's* marker and travels
//! untouched through every daemon, so receivers decode it by its own marker.

use crate::codec::{Endian, ENDIAN_MARKER};
use crate::consts::service;
use crate::cursor::Reader;
use crate::names::GroupName;
use crate::ring::WireError;

pub const HEADER_LEN: usize = 48;

/// The hint word as its originating client wrote it: `mess_type << 8` plus that client's
/// endian marker. Kept as raw bytes because no daemon ever converts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hint(pub [u8; 4]);

impl Hint {
    /// A hint holding `mess_type`, written in `endian`.
    pub fn new(mess_type: i16, endian: Endian) -> Hint {
        let word = ((mess_type as u16 as u32) << 8) | endian.marker();
        Hint(endian.u32_bytes(word))
    }

    /// The hint a daemon puts on messages it makes itself: the marker only.
    pub fn daemon(endian: Endian) -> Hint {
        Hint::new(0, endian)
    }

    /// Whose order the hint was written in.
    pub fn endian(&self) -> Endian {
        Endian::of_type_word(self.0)
    }

    /// The logical hint word.
    pub fn word(&self) -> u32 {
        self.endian().read_u32(self.0)
    }

    /// The application's 16-bit message type.
    pub fn mess_type(&self) -> i16 {
        ((self.word() >> 8) & 0xffff) as u16 as i16
    }

    /// Whether any bit outside the marker and the mess_type field is set, read as the
    /// daemon reads it (in its own order): the daemon refuses such a header.
    pub fn has_stray_bits(&self, reader: Endian) -> bool {
        reader.read_u32(self.0) & !(ENDIAN_MARKER | 0x00ff_ff00) != 0
    }
}

/// A decoded message header. `msg_type` is the logical type word without marker bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageHeader {
    pub msg_type: u32,
    pub private_group: GroupName,
    pub num_groups: i32,
    pub hint: Hint,
    pub data_len: i32,
}

impl MessageHeader {
    /// Decodes 48 bytes; returns the header and the order its writer used.
    ///
    /// Like the C code, only `type`, `num_groups` and `data_len` follow the writer's order;
    /// the hint stays raw.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> (MessageHeader, Endian) {
        let type_word = bytes.first_chunk().expect("48 bytes");
        let writer = Endian::of_type_word(*type_word);
        let header = MessageHeader::read(Reader::new(bytes, writer, "message header"))
            .expect("48 bytes hold exactly one header");
        (header, writer)
    }

    fn read(mut r: Reader<'_>) -> Result<MessageHeader, WireError> {
        let header = MessageHeader {
            msg_type: r.u32()? & !ENDIAN_MARKER,
            private_group: GroupName(r.array()?),
            num_groups: r.i32()?,
            hint: Hint(r.array()?),
            data_len: r.i32()?,
        };
        r.finish()?;
        Ok(header)
    }

    /// Encodes in `endian`, stamping that order's marker on the type word.
    pub fn encode(&self, endian: Endian) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        self.write_into(&mut out, endian);
        out
    }

    pub fn write_into(&self, out: &mut [u8; HEADER_LEN], endian: Endian) {
        out[0..4].copy_from_slice(&endian.u32_bytes(endian.stamp(self.msg_type)));
        out[4..36].copy_from_slice(&self.private_group.0);
        out[36..40].copy_from_slice(&endian.i32_bytes(self.num_groups));
        out[40..44].copy_from_slice(&self.hint.0);
        out[44..48].copy_from_slice(&endian.i32_bytes(self.data_len));
    }

    /// Bytes that follow the header on a stream: group names, data, and for a reject the
    /// extra old-type word. `None` when the counts are negative.
    pub fn body_len(&self) -> Option<usize> {
        let groups = usize::try_from(self.num_groups).ok()?;
        let data = usize::try_from(self.data_len).ok()?;
        let old_type = if self.is_reject() { 4 } else { 0 };
        Some(groups * crate::consts::limits::MAX_GROUP_NAME + data + old_type)
    }

    pub fn is_reject(&self) -> bool {
        self.msg_type & service::REJECT != 0
    }

    pub fn is_membership(&self) -> bool {
        self.msg_type & service::MEMBERSHIP != 0 && !self.is_reject()
    }

    pub fn is_regular(&self) -> bool {
        self.msg_type & service::REGULAR != 0 && !self.is_reject()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn decodes_a_captured_join() {
        // alice's JOIN of g1, from the e_memb capture.
        let raw = hex("800001802361236e310000000000000000000000000000000000000000000000000000000100000080000080000000006731");
        let (h, writer) = MessageHeader::decode(raw[..48].try_into().unwrap());
        assert_eq!(writer, Endian::Little);
        assert_eq!(h.msg_type, service::JOIN);
        assert_eq!(h.private_group, GroupName::new("#a#n1"));
        assert_eq!((h.num_groups, h.data_len), (1, 0));
        assert_eq!(h.hint.mess_type(), 0);
        assert_eq!(h.encode(Endian::Little)[..], raw[..48]);
    }

    #[test]
    fn big_endian_headers_keep_their_hint() {
        // A big-endian client's AGREED with mess_type 0x1234 (g_endian_be).
        let mut raw = [0u8; 48];
        raw[0..4].copy_from_slice(&[0, 0, 0, 0x10]);
        raw[36..40].copy_from_slice(&[0, 0, 0, 1]);
        raw[40..44].copy_from_slice(&[0x00, 0x12, 0x34, 0x00]);
        let (h, writer) = MessageHeader::decode(&raw);
        assert_eq!(writer, Endian::Big);
        assert_eq!(h.msg_type, service::AGREED);
        assert_eq!(h.num_groups, 1);
        assert_eq!(h.hint.mess_type(), 0x1234);
        assert_eq!(h.hint.endian(), Endian::Big);
        // Re-encoded little-endian, the hint is still the big-endian client's bytes.
        let le = h.encode(Endian::Little);
        assert_eq!(&le[0..4], &[0x90, 0, 0, 0x80]);
        assert_eq!(&le[40..44], &[0x00, 0x12, 0x34, 0x00]);
    }

    #[test]
    fn negative_mess_types_survive() {
        for endian in [Endian::Little, Endian::Big] {
            for mt in [-1i16, -32768, 32767, 0, 7] {
                assert_eq!(Hint::new(mt, endian).mess_type(), mt);
            }
        }
        assert_eq!(Hint::new(-1, Endian::Little).0, [0x80, 0xff, 0xff, 0x80]);
    }

    proptest! {
        #[test]
        fn headers_round_trip(t in any::<u32>(), ng in any::<i32>(), dl in any::<i32>(),
                              mt in any::<i16>(), big in any::<bool>(), name in "[a-z#]{0,31}") {
            let endian = if big { Endian::Big } else { Endian::Little };
            let h = MessageHeader {
                msg_type: t & !ENDIAN_MARKER,
                private_group: GroupName::new(&name),
                num_groups: ng,
                hint: Hint::new(mt, endian),
                data_len: dl,
            };
            let (back, writer) = MessageHeader::decode(&h.encode(endian));
            prop_assert_eq!(writer, endian);
            prop_assert_eq!(back, h);
        }
    }
}
