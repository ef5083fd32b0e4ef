//! The 32-byte `packet_header` and datagrams that pack several packets.
//!
//! ```text
//! off size field
//!   0    4 type            packet bits below + endian marker (first header of a datagram)
//!   4    4 transmitter_id  daemon that physically sent the datagram (rewritten by forwarders)
//!   8    4 proc_id         daemon that originated the packet
//!  12    8 memb_id         ring id {proc_id, time}
//!  20    4 seq             ring-wide sequence number
//!  24    4 fifo_seq        per-originator counter (written, never read by 3.17.3)
//!  28    2 packet_index    fragment position: 1, 2, ... and -N for the last of N
//!  30    2 data_len        body bytes after this header
//! ```
//!
//! A datagram on the data port holds one packet or several packed ones. Each packed packet
//! starts on a 4-byte boundary of the datagram, the gap filled with the leading bytes of
//! `"padd"`. Only the first header is stamped with the sender's endian marker (and its
//! transmitter id); every header of the datagram is read in the first header's order, and
//! the datagram is refused unless the headers' lengths account for every byte.

use super::{Limits, WireError, MAX_DATAGRAM};
use crate::codec::{Endian, ENDIAN_MARKER};
use crate::cursor::{Reader, Writer};
use crate::membership::MembershipId;

/// Bytes of a `packet_header`.
pub const PACKET_HEADER_LEN: usize = 32;

/// The most body bytes one packet can carry (`sizeof(packet_body)`): 1472 - 32.
pub const MAX_PACKET_BODY: usize = MAX_DATAGRAM - PACKET_HEADER_LEN;

/// What packed packets are aligned with: the gap before a packet is filled with the first
/// 1 to 3 of these bytes.
pub const ALIGN_PADDING: [u8; 4] = *b"padd";

/// Bits of the `type` word of packet and token headers (`net_types.h`).
///
/// These are **not** the client service bits of [`crate::consts::service`]: a data packet
/// `AGREED` (0x08) carries a message whose own header says `AGREED_MESS` (0x10).
pub mod packet_type {
    /// Defined but never produced: UNRELIABLE messages travel as RELIABLE.
    pub const UNRELIABLE: u32 = 0x0000_0001;
    pub const RELIABLE: u32 = 0x0000_0002;
    pub const FIFO: u32 = 0x0000_0004;
    pub const AGREED: u32 = 0x0000_0008;
    pub const SAFE: u32 = 0x0000_0010;
    /// Any of the data services: the packet is a message fragment.
    pub const REGULAR: u32 = 0x0000_001f;

    /// Set on datagrams unicast to another segment's leader, which re-broadcasts them.
    pub const ROUTED: u32 = 0x0000_0020;
    /// A non-leader asks the leader to release a held token (no body).
    pub const HURRY: u32 = 0x0000_0040;

    pub const ALIVE: u32 = 0x0000_0100;
    pub const JOIN: u32 = 0x0000_0200;
    pub const REFER: u32 = 0x0000_0400;
    /// ALIVE, JOIN or REFER.
    pub const MEMBERSHIP: u32 = 0x0000_0700;

    /// Token types: the two rounds of forming a new ring.
    pub const FORM1: u32 = 0x0000_1000;
    pub const FORM2: u32 = 0x0000_2000;
    pub const FORM: u32 = 0x0000_3000;

    /// Token only: a 4-bit counter the leader bumps on every token it passes on.
    pub const ARQ: u32 = 0x000f_0000;
    pub const ARQ_SHIFT: u32 = 16;
    /// Token only: a 4-bit counter of re-sends of the same token (hurry).
    pub const RETRANS: u32 = 0x00f0_0000;
    pub const RETRANS_SHIFT: u32 = 20;

    /// Monitor traffic (`spmonitor` and the status reply).
    pub const STATUS: u32 = 0x0100_0000;
    pub const PARTITION: u32 = 0x0200_0000;
    pub const FC: u32 = 0x0400_0000;
    pub const CONTROL: u32 = 0x0f00_0000;
}

/// One decoded `packet_header`.
///
/// `type_word` is the type as it travelled, read in the datagram's order, marker bits
/// included: packed headers after the first usually carry no marker, and keeping the word
/// whole is what lets them re-encode byte for byte. Use [`PacketHeader::type_bits`] for the
/// meaning. Fields that a C daemon leaves uninitialised on some packets (REFER's `seq`,
/// ALIVE's `memb_id`, ...) are kept too: they are don't-care, not absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketHeader {
    pub type_word: u32,
    /// C spells it `transmiter_id`.
    #[doc(alias = "transmiter_id")]
    pub transmitter_id: u32,
    pub proc_id: u32,
    pub memb_id: MembershipId,
    pub seq: i32,
    pub fifo_seq: i32,
    pub packet_index: i16,
    /// Body length. Encoders write the real body length here, whatever this field holds.
    pub data_len: i16,
}

impl PacketHeader {
    /// A header of the given packet type bits with every other field zero.
    pub fn of_type(type_bits: u32) -> PacketHeader {
        PacketHeader {
            type_word: type_bits & !ENDIAN_MARKER,
            ..PacketHeader::default()
        }
    }

    /// Decodes the first 32 bytes of `bytes` (the rest is ignored) in the order its type
    /// word's marker names, and returns that order.
    pub fn decode(bytes: &[u8]) -> Result<(PacketHeader, Endian), WireError> {
        let marker: [u8; 4] = Reader::new(bytes, Endian::Little, "packet header").array()?;
        let endian = Endian::of_type_word(marker);
        Ok((PacketHeader::decode_in(bytes, endian)?, endian))
    }

    /// Decodes the first 32 bytes of `bytes` in a given order, as for packed headers,
    /// which are read in the order of the datagram's first header.
    pub fn decode_in(bytes: &[u8], endian: Endian) -> Result<PacketHeader, WireError> {
        let head = Reader::new(bytes, endian, "packet header").take(PACKET_HEADER_LEN)?;
        let mut r = Reader::new(head, endian, "packet header");
        Ok(PacketHeader {
            type_word: r.u32()?,
            transmitter_id: r.u32()?,
            proc_id: r.u32()?,
            memb_id: MembershipId {
                proc_id: r.u32()?,
                time: r.i32()?,
            },
            seq: r.i32()?,
            fifo_seq: r.i32()?,
            packet_index: r.i16()?,
            data_len: r.i16()?,
        })
    }

    /// Encodes as the first (or only) header of a datagram: the type word gets `endian`'s
    /// marker, as every C send path stamps it.
    pub fn encode(&self, endian: Endian) -> [u8; PACKET_HEADER_LEN] {
        self.stamped(endian).encode_verbatim(endian)
    }

    /// Encodes with the type word exactly as held (packed headers after the first).
    pub fn encode_verbatim(&self, endian: Endian) -> [u8; PACKET_HEADER_LEN] {
        let mut out = Vec::with_capacity(PACKET_HEADER_LEN);
        let mut w = Writer::new(&mut out, endian);
        w.u32(self.type_word);
        w.u32(self.transmitter_id);
        w.u32(self.proc_id);
        w.u32(self.memb_id.proc_id);
        w.i32(self.memb_id.time);
        w.i32(self.seq);
        w.i32(self.fifo_seq);
        w.i16(self.packet_index);
        w.i16(self.data_len);
        let mut fixed = [0u8; PACKET_HEADER_LEN];
        fixed.copy_from_slice(&out);
        fixed
    }

    /// The same header with `endian`'s marker in its type word.
    pub fn stamped(mut self, endian: Endian) -> PacketHeader {
        self.type_word = endian.stamp(self.type_word);
        self
    }

    /// The type word without the endian marker: the packet bits of [`packet_type`].
    pub fn type_bits(&self) -> u32 {
        self.type_word & !ENDIAN_MARKER
    }

    /// Whether any of `bits` is set (C's `Is_xxx(type)` tests).
    pub fn has(&self, bits: u32) -> bool {
        self.type_word & bits != 0
    }

    /// The body length, if the field is not negative.
    pub fn body_len(&self) -> Option<usize> {
        usize::try_from(self.data_len).ok()
    }
}

/// The packets of one datagram: each header with its body, in datagram order.
pub type Packets<'a> = Vec<(PacketHeader, &'a [u8])>;

/// Cuts a data-port datagram into its packets.
///
/// Returns the order of the first header (which every header was read in) and each header
/// with its body. Refuses datagrams shorter than a header or longer than
/// [`MAX_DATAGRAM`], negative `data_len`s, and any datagram whose packets and alignment
/// gaps do not add up to its length exactly. Padding bytes are not checked (the C receiver
/// skips them); padding after the last packet is refused, since no sender produces it.
pub fn split_datagram(bytes: &[u8]) -> Result<(Endian, Packets<'_>), WireError> {
    split_datagram_in(bytes, Limits::SPREAD_3_17)
}

/// The same, with the given limits (extended rings send longer ALIVE/JOIN datagrams).
pub fn split_datagram_in(bytes: &[u8], limits: Limits) -> Result<(Endian, Packets<'_>), WireError> {
    if bytes.len() > limits.datagram {
        return Err(WireError::TooMany {
            what: "datagram length",
            value: bytes.len(),
            max: limits.datagram,
        });
    }
    let (first, endian) = PacketHeader::decode(bytes)?;
    let mut packets = Vec::new();
    let mut at = 0;
    loop {
        let header = if at == 0 {
            first
        } else {
            PacketHeader::decode_in(&bytes[at..], endian)?
        };
        let body_len = header.body_len().ok_or(WireError::Negative {
            what: "packet data_len",
            value: header.data_len.into(),
        })?;
        let body_start = at + PACKET_HEADER_LEN;
        let end = body_start + body_len;
        if end > bytes.len() {
            return Err(WireError::LengthMismatch {
                what: "packet data_len",
                declared: header.data_len.into(),
                actual: bytes.len() - body_start,
            });
        }
        packets.push((header, &bytes[body_start..end]));
        if end == bytes.len() {
            return Ok((endian, packets));
        }
        at = end.next_multiple_of(4);
        if at >= bytes.len() {
            return Err(WireError::TrailingBytes {
                what: "datagram after its last packet",
                extra: bytes.len() - end,
            });
        }
    }
}

/// Packs packets into one datagram, as `Net_queue_bcast` + `Net_flush_bcast` do.
///
/// The first header is stamped with `endian`'s marker; later headers are written with
/// their type word as held. Every `data_len` is set to its body's length. Refuses an empty
/// list and datagrams over [`MAX_DATAGRAM`].
pub fn encode_datagram(
    endian: Endian,
    packets: &[(PacketHeader, &[u8])],
) -> Result<Vec<u8>, WireError> {
    encode_datagram_in(endian, packets, Limits::SPREAD_3_17)
}

/// The same, with the given limits (extended rings send longer ALIVE/JOIN datagrams).
pub fn encode_datagram_in(
    endian: Endian,
    packets: &[(PacketHeader, &[u8])],
    limits: Limits,
) -> Result<Vec<u8>, WireError> {
    if packets.is_empty() {
        return Err(WireError::Empty { what: "datagram" });
    }
    let max_body = limits.datagram - PACKET_HEADER_LEN;
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    for (i, (header, body)) in packets.iter().enumerate() {
        if body.len() > max_body {
            return Err(WireError::TooMany {
                what: "packet body length",
                value: body.len(),
                max: max_body,
            });
        }
        let gap = out.len().next_multiple_of(4) - out.len();
        out.extend_from_slice(&ALIGN_PADDING[..gap]);
        let header = PacketHeader {
            data_len: body.len() as i16,
            ..*header
        };
        let encoded = if i == 0 {
            header.encode(endian)
        } else {
            header.encode_verbatim(endian)
        };
        out.extend_from_slice(&encoded);
        out.extend_from_slice(body);
        if out.len() > limits.datagram {
            return Err(WireError::TooMany {
                what: "datagram length",
                value: out.len(),
                max: limits.datagram,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn agreed(seq: i32, proc_id: u32) -> PacketHeader {
        PacketHeader {
            type_word: packet_type::AGREED,
            transmitter_id: 0x7f00_0001,
            proc_id,
            memb_id: MembershipId {
                proc_id: 0x7f00_0001,
                time: 1_795_653_426,
            },
            seq,
            fifo_seq: seq,
            packet_index: -1,
            data_len: 0,
        }
    }

    #[test]
    fn decodes_a_captured_refer() {
        // f_ring: n2 (127.0.0.12) refers a joiner to its ring leader 127.0.0.11 (RING_REP).
        let raw = hex("80040080 0c00007f 0c00007f 0b00007f 02000000 00000000 00000000 0000 0000");
        let (h, endian) = PacketHeader::decode(&raw).unwrap();
        assert_eq!(endian, Endian::Little);
        assert_eq!(h.type_bits(), packet_type::REFER);
        assert_eq!((h.transmitter_id, h.proc_id), (0x7f00_000c, 0x7f00_000c));
        assert_eq!(
            h.memb_id,
            MembershipId {
                proc_id: 0x7f00_000b,
                time: 2
            }
        );
        assert_eq!(h.encode(Endian::Little)[..], raw[..]);
    }

    #[test]
    fn big_endian_headers_read_as_the_guide_shows() {
        // An ALIVE from a big-endian daemon at 10.0.0.1.
        let mut raw = hex("00000100 0a000001 0a000001");
        raw.resize(PACKET_HEADER_LEN, 0);
        raw[31] = 8;
        let (h, endian) = PacketHeader::decode(&raw).unwrap();
        assert_eq!(endian, Endian::Big);
        assert_eq!(h.type_bits(), packet_type::ALIVE);
        assert_eq!(h.proc_id, 0x0a00_0001);
        assert_eq!(h.data_len, 8);
        assert_eq!(h.encode(Endian::Big)[..], raw[..]);
        // The same header from a little-endian host.
        let le = h.encode(Endian::Little);
        assert_eq!(&le[..8], &hex("80010080 0100000a")[..]);
    }

    #[test]
    fn headers_round_trip_in_both_orders() {
        for endian in [Endian::Little, Endian::Big] {
            let h = agreed(7, 0x7f00_0002).stamped(endian);
            let (back, read) = PacketHeader::decode(&h.encode(endian)).unwrap();
            assert_eq!((back, read), (h, endian));
        }
    }

    #[test]
    fn packs_with_padd_and_splits_back() {
        for endian in [Endian::Little, Endian::Big] {
            let bodies: [&[u8]; 3] = [b"abcde", b"xy", b"0123"];
            let packets: Vec<_> = bodies
                .iter()
                .enumerate()
                .map(|(i, b)| (agreed(i as i32 + 1, 0x7f00_0003), *b))
                .collect();
            let raw = encode_datagram(endian, &packets).unwrap();
            // 32+5 = 37, padded to 40 with "pad"; 40+32+2 = 74, padded to 76 with "pa".
            assert_eq!(&raw[37..40], b"pad");
            assert_eq!(&raw[74..76], b"pa");
            assert_eq!(raw.len(), 76 + 32 + 4);
            // Only the first header is stamped.
            assert_eq!(Endian::of_type_word(raw[0..4].try_into().unwrap()), endian);
            let (read, split) = split_datagram(&raw).unwrap();
            assert_eq!(read, endian);
            assert_eq!(split.len(), 3);
            for (i, (h, body)) in split.iter().enumerate() {
                assert_eq!(*body, bodies[i]);
                assert_eq!(h.seq, i as i32 + 1);
                assert_eq!(h.type_bits(), packet_type::AGREED);
            }
            assert_eq!(
                split[1].0.type_word,
                packet_type::AGREED,
                "no marker on packed headers"
            );
            let again: Vec<_> = split.iter().map(|(h, b)| (*h, *b)).collect();
            assert_eq!(encode_datagram(endian, &again).unwrap(), raw);
        }
    }

    #[test]
    fn lying_lengths_reject_the_datagram() {
        let packets = [(agreed(1, 1), &b"abcde"[..]), (agreed(2, 1), &b"xy"[..])];
        let raw = encode_datagram(Endian::Little, &packets).unwrap();
        // One byte short, one byte long, a trailing pad, a negative data_len.
        assert!(split_datagram(&raw[..raw.len() - 1]).is_err());
        let mut long = raw.clone();
        long.push(0);
        assert!(matches!(
            split_datagram(&long),
            Err(WireError::TrailingBytes { .. })
        ));
        long.extend_from_slice(&[0, 0]);
        assert!(matches!(
            split_datagram(&long),
            Err(WireError::Truncated { .. })
        ));
        let mut single = encode_datagram(Endian::Little, &packets[..1]).unwrap();
        single.extend_from_slice(b"pad");
        assert!(matches!(
            split_datagram(&single),
            Err(WireError::TrailingBytes { .. })
        ));
        let mut negative = raw.clone();
        negative[30..32].copy_from_slice(&(-4i16).to_le_bytes());
        assert!(matches!(
            split_datagram(&negative),
            Err(WireError::Negative { .. })
        ));
        let mut over = raw.clone();
        over[30..32].copy_from_slice(&100i16.to_le_bytes());
        assert!(matches!(
            split_datagram(&over),
            Err(WireError::LengthMismatch { .. })
        ));
        // A length that lies by less than the alignment gap is absorbed by it, as in C.
        let mut absorbed = raw;
        absorbed[30..32].copy_from_slice(&6i16.to_le_bytes());
        assert_eq!(split_datagram(&absorbed).unwrap().1[0].1.len(), 6);
        assert!(split_datagram(&[0u8; 31]).is_err());
        assert!(split_datagram(&[0u8; MAX_DATAGRAM + 1]).is_err());
    }

    #[test]
    fn encoder_refuses_what_cannot_travel() {
        assert!(encode_datagram(Endian::Little, &[]).is_err());
        let big = vec![0u8; MAX_PACKET_BODY];
        let ok = encode_datagram(Endian::Little, &[(agreed(1, 1), &big[..])]).unwrap();
        assert_eq!(ok.len(), MAX_DATAGRAM);
        assert!(encode_datagram(
            Endian::Little,
            &[(agreed(1, 1), &big[..]), (agreed(2, 1), &[][..])]
        )
        .is_err());
        let too_big = vec![0u8; MAX_PACKET_BODY + 1];
        assert!(encode_datagram(Endian::Little, &[(agreed(1, 1), &too_big[..])]).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..1600)) {
            let _ = PacketHeader::decode(&raw);
            let _ = PacketHeader::decode_in(&raw, Endian::Big);
            if let Ok((endian, packets)) = split_datagram(&raw) {
                // Whatever decodes re-encodes to the same length and the same headers.
                let again = encode_datagram(endian, &packets).unwrap();
                prop_assert_eq!(again.len(), raw.len());
            }
        }

        #[test]
        fn datagrams_round_trip(big in any::<bool>(),
                                lens in proptest::collection::vec(0usize..200, 1..6),
                                seq in any::<i32>(), index in any::<i16>()) {
            let endian = if big { Endian::Big } else { Endian::Little };
            let bodies: Vec<Vec<u8>> = lens.iter().map(|&n| vec![0xa5; n]).collect();
            let packets: Vec<_> = bodies.iter().map(|b| {
                let mut h = agreed(seq, 9);
                h.packet_index = index;
                (h, &b[..])
            }).collect();
            let raw = encode_datagram(endian, &packets).unwrap();
            let (read, split) = split_datagram(&raw).unwrap();
            prop_assert_eq!(read, endian);
            prop_assert_eq!(split.len(), packets.len());
            prop_assert_eq!(encode_datagram(endian, &split).unwrap(), raw);
        }
    }
}
