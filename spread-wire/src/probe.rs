//! The liveness probe: an extension between spread-rs and our daemon that never reaches a
//! C 3.17 daemon and never enters the ring.
//!
//! Negotiation, inside the 3.17 handshake:
//! * the client sets [`OFFER_FLAG`] (bit 1) in the connect message's flags byte. A 3.17
//!   daemon reads that byte as `flags % 2` (membership) and `flags / 16` (priority), so the
//!   bit changes nothing there;
//! * our daemon, and only when the client offered, appends the pseudo-method [`METHOD`] to
//!   the auth list it sends (`"NULL PROBE "`). The client removes it before choosing its
//!   methods. A libspread client never offers, so it sees the 3.17 bytes unchanged.
//!
//! After the accept, either side may then use these messages:
//!
//! ```text
//! C->D  header{type = PROBE, private_group = own, num_groups = 0, hint = 0, data_len = 4}
//!       u32 hold_ms (client's order): the daemon ends the session if it hears nothing at
//!       all from the client for this long (0: no such promise)
//! D->C  header{type = PROBE, private_group = daemon's name, num_groups = 0, data_len = 0}
//! ```
//!
//! The daemon answers every probe at once, ahead of queued deliveries if it can; the client
//! counts any byte from the daemon as a sign of life.

use crate::codec::Endian;
use crate::consts::service;
use crate::cursor::Reader;
use crate::header::{Hint, MessageHeader, HEADER_LEN};
use crate::names::GroupName;

/// The connect flags bit by which a client offers the probe.
pub const OFFER_FLAG: u8 = 0x02;

/// The pseudo auth method by which our daemon accepts the offer.
pub const METHOD: &str = "PROBE";

/// The message type word of probes and answers (a bit 3.17 never uses).
pub const TYPE: u32 = service::PROBE;

/// Bytes of a probe request's body.
pub const REQUEST_BODY_LEN: usize = 4;

/// A whole probe request as the client writes it.
pub fn encode_request(private_group: &GroupName, hold_ms: u32, endian: Endian) -> Vec<u8> {
    let header = MessageHeader {
        msg_type: TYPE,
        private_group: *private_group,
        num_groups: 0,
        hint: Hint([0; 4]),
        data_len: REQUEST_BODY_LEN as i32,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + REQUEST_BODY_LEN);
    out.extend_from_slice(&header.encode(endian));
    out.extend_from_slice(&endian.u32_bytes(hold_ms));
    out
}

/// The `hold_ms` of a probe request's body (written in `endian`, the header's order);
/// `None` if the body is not 4 bytes.
pub fn decode_request_body(body: &[u8], endian: Endian) -> Option<u32> {
    let mut r = Reader::new(body, endian, "probe request body");
    let hold_ms = r.u32().ok()?;
    r.finish().ok()?;
    Some(hold_ms)
}

/// A whole probe answer as the daemon writes it.
pub fn encode_answer(daemon_name: &GroupName, endian: Endian) -> [u8; HEADER_LEN] {
    MessageHeader {
        msg_type: TYPE,
        private_group: *daemon_name,
        num_groups: 0,
        hint: Hint([0; 4]),
        data_len: 0,
    }
    .encode(endian)
}

/// Whether a decoded header is a probe or a probe answer.
pub fn is_probe(header: &MessageHeader) -> bool {
    header.msg_type == TYPE
}

/// Splits our daemon's auth list into the real methods and whether it accepted the probe.
pub fn take_offer_answer(mut methods: Vec<String>) -> (Vec<String>, bool) {
    let before = methods.len();
    methods.retain(|m| m != METHOD);
    let accepted = methods.len() != before;
    (methods, accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_in_both_orders() {
        for endian in [Endian::Little, Endian::Big] {
            let g = GroupName::new("#a#n1");
            let bytes = encode_request(&g, 2500, endian);
            let (header, writer) = MessageHeader::decode(bytes[..HEADER_LEN].try_into().unwrap());
            assert!(is_probe(&header));
            assert_eq!(writer, endian);
            assert_eq!(header.body_len(), Some(REQUEST_BODY_LEN));
            assert_eq!(
                decode_request_body(&bytes[HEADER_LEN..], writer),
                Some(2500)
            );
        }
    }

    #[test]
    fn answer_has_no_body() {
        let answer = encode_answer(&GroupName::new("n1"), Endian::Big);
        let (header, _) = MessageHeader::decode(&answer);
        assert!(is_probe(&header));
        assert_eq!(header.body_len(), Some(0));
    }

    #[test]
    fn the_pseudo_method_is_taken_out_of_the_list() {
        let (methods, accepted) = take_offer_answer(vec!["NULL".into(), METHOD.into()]);
        assert_eq!(methods, ["NULL"]);
        assert!(accepted);
        let (methods, accepted) = take_offer_answer(vec!["NULL".into()]);
        assert_eq!(methods, ["NULL"]);
        assert!(!accepted);
    }
}
