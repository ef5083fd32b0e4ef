//! Cutting a client-protocol byte stream into whole messages.
//!
//! A message is `header(48) | num_groups x 32-byte names | data_len bytes`; a reject adds a
//! 4-byte old-type word between header and names. Both the daemon (reading clients) and the
//! client (reading its daemon) use [`Frame`].

use crate::codec::Endian;
use crate::consts::limits::MAX_GROUP_NAME;
use crate::cursor::Reader;
use crate::header::{MessageHeader, HEADER_LEN};
use crate::names::GroupName;

/// How much of a message a buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameLen {
    /// At least this many bytes are needed in total to know more.
    NeedMore(usize),
    /// The first message is this long.
    Complete(usize),
}

/// A decoded message, borrowing its names and data from the buffer.
#[derive(Clone, Debug)]
pub struct Frame<'a> {
    pub header: MessageHeader,
    /// The order of whoever wrote the header.
    pub writer: Endian,
    /// For reject messages: the type word of the message that was refused.
    pub old_type: Option<u32>,
    groups: &'a [u8],
    pub data: &'a [u8],
}

/// Why a stream cannot be framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("negative num_groups ({0})")]
    NegativeGroups(i32),
    #[error("negative data_len ({0})")]
    NegativeData(i32),
}

impl<'a> Frame<'a> {
    /// How long the first message in `buf` is, as far as its header tells.
    pub fn len(buf: &[u8]) -> Result<FrameLen, FrameError> {
        let Some(head) = buf.get(..HEADER_LEN) else {
            return Ok(FrameLen::NeedMore(HEADER_LEN));
        };
        let (header, _) = MessageHeader::decode(head.try_into().expect("48 bytes"));
        if header.num_groups < 0 {
            return Err(FrameError::NegativeGroups(header.num_groups));
        }
        if header.data_len < 0 {
            return Err(FrameError::NegativeData(header.data_len));
        }
        let total = HEADER_LEN + header.body_len().expect("counts checked");
        Ok(if buf.len() >= total {
            FrameLen::Complete(total)
        } else {
            FrameLen::NeedMore(total)
        })
    }

    /// Decodes one whole message (as measured by [`Frame::len`]).
    pub fn decode(buf: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        let total = match Frame::len(buf)? {
            FrameLen::Complete(n) => n,
            FrameLen::NeedMore(_) => panic!("Frame::decode needs a whole message"),
        };
        let (header, writer) = MessageHeader::decode(buf[..HEADER_LEN].try_into().expect("48"));
        // Frame::len measured the body from these counts, so every read below fits.
        let mut body = Reader::new(&buf[HEADER_LEN..total], writer, "message body");
        let old_type = if header.is_reject() {
            Some(body.u32().expect("measured"))
        } else {
            None
        };
        let groups = body
            .take(header.num_groups as usize * MAX_GROUP_NAME)
            .expect("measured");
        let data = body.take(body.remaining()).expect("measured");
        Ok(Frame {
            header,
            writer,
            old_type,
            groups,
            data,
        })
    }

    pub fn groups(&self) -> impl ExactSizeIterator<Item = GroupName> + 'a {
        self.groups
            .chunks(MAX_GROUP_NAME)
            .map(GroupName::from_field)
    }

    /// The raw group-name bytes, exactly as they came.
    pub fn raw_groups(&self) -> &'a [u8] {
        self.groups
    }
}

/// Encodes a whole message with a freshly made header (for clients and for messages the
/// daemon makes itself).
pub fn encode_message(
    header: &MessageHeader,
    groups: &[GroupName],
    data: &[&[u8]],
    endian: Endian,
) -> Vec<u8> {
    let data_len: usize = data.iter().map(|d| d.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + groups.len() * MAX_GROUP_NAME + data_len);
    let mut header = *header;
    header.num_groups = groups.len() as i32;
    header.data_len = data_len as i32;
    out.extend_from_slice(&header.encode(endian));
    for g in groups {
        out.extend_from_slice(&g.0);
    }
    for d in data {
        out.extend_from_slice(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::service;
    use crate::header::Hint;

    #[test]
    fn frames_a_message_in_pieces() {
        let h = MessageHeader {
            msg_type: service::SAFE,
            private_group: GroupName::new("#a#n1"),
            num_groups: 0,
            hint: Hint::new(3, Endian::Little),
            data_len: 0,
        };
        let msg = encode_message(
            &h,
            &[GroupName::new("g1")],
            &[b"hello", b" world"],
            Endian::Little,
        );
        assert_eq!(msg.len(), 48 + 32 + 11);
        assert_eq!(Frame::len(&msg[..10]), Ok(FrameLen::NeedMore(48)));
        assert_eq!(Frame::len(&msg[..50]), Ok(FrameLen::NeedMore(91)));
        assert_eq!(Frame::len(&msg), Ok(FrameLen::Complete(91)));
        let f = Frame::decode(&msg).unwrap();
        assert_eq!(f.data, b"hello world");
        assert_eq!(f.groups().collect::<Vec<_>>(), vec![GroupName::new("g1")]);
        assert_eq!(f.header.hint.mess_type(), 3);
    }

    #[test]
    fn negative_counts_do_not_frame() {
        let mut raw = [0u8; 48];
        raw[0] = 0x80;
        raw[3] = 0x80;
        raw[36..40].copy_from_slice(&(-1i32).to_le_bytes());
        assert_eq!(Frame::len(&raw), Err(FrameError::NegativeGroups(-1)));
    }
}
