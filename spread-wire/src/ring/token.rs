//! The 28-byte `token_header` and the regular token's retransmission requests.
//!
//! ```text
//! off size field
//!   0    4 type           0 (regular), FORM1 or FORM2; ARQ bits 16-19, RETRANS 20-23; marker
//!   4    4 transmitter_id daemon that sent this copy
//!   8    4 seq            highest sequence number of the ring (FORM: the form sequence)
//!  12    4 proc_id        last daemon that processed the token
//!  16    4 aru            "all received up to" candidate
//!  20    4 aru_last_id    daemon that last set or lowered aru
//!  24    2 flow_control   what was sent in the last rotation
//!  26    2 rtr_len        body bytes: ring_rtr records, or the FORM body
//! ```
//! Note `seq` comes before `proc_id` here, the other way round from [`PacketHeader`].
//!
//! A regular token's body is a sequence of `ring_rtr` records, each 16 bytes
//! `{memb_id(8), i32 proc_id, i16 seg_index, i16 num_seq}` followed by `num_seq` int32
//! sequence numbers the requester misses. A token datagram is exactly `28 + rtr_len` bytes.
//!
//! [`PacketHeader`]: super::PacketHeader

use super::packet::packet_type;
use super::{Limits, WireError, MAX_DATAGRAM};
use crate::codec::{Endian, ENDIAN_MARKER};
use crate::cursor::{checked_count, i16_count, Reader, Writer};
use crate::membership::MembershipId;

/// Bytes of a `token_header`.
pub const TOKEN_HEADER_LEN: usize = 28;

/// The most body bytes a token can carry (`sizeof(token_body)`): 1472 - 28.
pub const MAX_TOKEN_BODY: usize = MAX_DATAGRAM - TOKEN_HEADER_LEN;

/// Bytes of one `ring_rtr` record before its sequence numbers.
pub const RING_RTR_LEN: usize = 16;

/// One decoded `token_header`. `type_word` keeps the marker bits as they travelled; see
/// [`TokenHeader::type_bits`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenHeader {
    pub type_word: u32,
    /// C spells it `transmiter_id`.
    #[doc(alias = "transmiter_id")]
    pub transmitter_id: u32,
    pub seq: i32,
    pub proc_id: u32,
    pub aru: i32,
    pub aru_last_id: u32,
    pub flow_control: i16,
    /// Body length. Encoders write the real body length here, whatever this field holds.
    pub rtr_len: i16,
}

impl TokenHeader {
    /// Decodes the first 28 bytes of `bytes` in the order its marker names.
    pub fn decode(bytes: &[u8]) -> Result<(TokenHeader, Endian), WireError> {
        let marker: [u8; 4] = Reader::new(bytes, Endian::Little, "token header").array()?;
        let endian = Endian::of_type_word(marker);
        let head = Reader::new(bytes, endian, "token header").take(TOKEN_HEADER_LEN)?;
        let mut r = Reader::new(head, endian, "token header");
        let header = TokenHeader {
            type_word: r.u32()?,
            transmitter_id: r.u32()?,
            seq: r.i32()?,
            proc_id: r.u32()?,
            aru: r.i32()?,
            aru_last_id: r.u32()?,
            flow_control: r.i16()?,
            rtr_len: r.i16()?,
        };
        Ok((header, endian))
    }

    /// Encodes in `endian`, stamping its marker on the type word as `Net_send_token` does.
    pub fn encode(&self, endian: Endian) -> [u8; TOKEN_HEADER_LEN] {
        let mut out = Vec::with_capacity(TOKEN_HEADER_LEN);
        let mut w = Writer::new(&mut out, endian);
        w.u32(endian.stamp(self.type_word));
        w.u32(self.transmitter_id);
        w.i32(self.seq);
        w.u32(self.proc_id);
        w.i32(self.aru);
        w.u32(self.aru_last_id);
        w.i16(self.flow_control);
        w.i16(self.rtr_len);
        let mut fixed = [0u8; TOKEN_HEADER_LEN];
        fixed.copy_from_slice(&out);
        fixed
    }

    /// The type word without the endian marker.
    pub fn type_bits(&self) -> u32 {
        self.type_word & !ENDIAN_MARKER
    }

    /// The ARQ counter (0-15): the leader bumps it on each token it passes on; a copy with
    /// the ARQ already seen is a duplicate.
    pub fn arq(&self) -> u8 {
        ((self.type_word & packet_type::ARQ) >> packet_type::ARQ_SHIFT) as u8
    }

    /// The RETRANS counter (0-15): how often the same token has been re-sent.
    pub fn retrans(&self) -> u8 {
        ((self.type_word & packet_type::RETRANS) >> packet_type::RETRANS_SHIFT) as u8
    }

    /// The same header with ARQ set to `arq` mod 16 (C's `Set_arq`).
    pub fn with_arq(mut self, arq: u8) -> TokenHeader {
        self.type_word = (self.type_word & !packet_type::ARQ)
            | ((u32::from(arq) << packet_type::ARQ_SHIFT) & packet_type::ARQ);
        self
    }

    /// The same header with RETRANS set to `retrans` mod 16 (C's `Set_retrans`).
    pub fn with_retrans(mut self, retrans: u8) -> TokenHeader {
        self.type_word = (self.type_word & !packet_type::RETRANS)
            | ((u32::from(retrans) << packet_type::RETRANS_SHIFT) & packet_type::RETRANS);
        self
    }

    /// FORM1 wins if both FORM bits are set, as in `Memb_handle_token`.
    pub fn is_form1(&self) -> bool {
        self.type_word & packet_type::FORM1 != 0
    }

    pub fn is_form2(&self) -> bool {
        !self.is_form1() && self.type_word & packet_type::FORM2 != 0
    }

    /// Neither FORM bit: a regular token, whose body lists retransmission requests.
    pub fn is_regular(&self) -> bool {
        self.type_word & packet_type::FORM == 0
    }
}

/// Cuts a token datagram into header and body; the datagram must be exactly
/// `28 + rtr_len` bytes (the check `Prot_handle_token` makes).
pub fn split_token(bytes: &[u8]) -> Result<(TokenHeader, Endian, &[u8]), WireError> {
    split_token_in(bytes, Limits::SPREAD_3_17)
}

/// The same, with the given limits (extended rings carry longer tokens).
pub fn split_token_in(
    bytes: &[u8],
    limits: Limits,
) -> Result<(TokenHeader, Endian, &[u8]), WireError> {
    let (header, endian) = TokenHeader::decode(bytes)?;
    let body_len = checked_count(header.rtr_len.into(), "token rtr_len", limits.token_body)?;
    let body = &bytes[TOKEN_HEADER_LEN..];
    if body.len() != body_len {
        return Err(WireError::LengthMismatch {
            what: "token rtr_len",
            declared: header.rtr_len.into(),
            actual: body.len(),
        });
    }
    Ok((header, endian, body))
}

/// Encodes a token datagram: the header (stamped, `rtr_len` set to the body's length) and
/// the body. Refuses bodies over [`MAX_TOKEN_BODY`], which a C daemon dies on.
pub fn encode_token(
    header: &TokenHeader,
    endian: Endian,
    body: &[u8],
) -> Result<Vec<u8>, WireError> {
    encode_token_in(header, endian, body, Limits::SPREAD_3_17)
}

/// The same, with the given limits.
pub fn encode_token_in(
    header: &TokenHeader,
    endian: Endian,
    body: &[u8],
    limits: Limits,
) -> Result<Vec<u8>, WireError> {
    let rtr_len = i16_count(body.len(), "token body length", limits.token_body)?;
    let header = TokenHeader { rtr_len, ..*header };
    let mut out = Vec::with_capacity(TOKEN_HEADER_LEN + body.len());
    out.extend_from_slice(&header.encode(endian));
    out.extend_from_slice(body);
    Ok(out)
}

/// One retransmission request (`ring_rtr` and its sequence numbers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RingRtr {
    /// The ring the missing packets belong to (old rings during EVS recovery).
    pub memb_id: MembershipId,
    /// Whom to answer by unicast, or [`RingRtr::ANSWER_BY_CAST`].
    pub proc_id: i32,
    /// Which segment to answer by segment cast, or [`RingRtr::BROADCAST_SEGMENT`].
    pub seg_index: i16,
    /// The missing sequence numbers (`num_seq` on the wire is their count).
    pub seqs: Vec<i32>,
}

impl RingRtr {
    /// `proc_id` meaning "nobody in particular: answer by segment cast or broadcast".
    pub const ANSWER_BY_CAST: i32 = -1;
    /// `seg_index` meaning "answer by broadcast".
    pub const BROADCAST_SEGMENT: i16 = -1;

    pub fn encoded_len(&self) -> usize {
        RING_RTR_LEN + 4 * self.seqs.len()
    }
}

/// Decodes a regular token's body: records back to back, filling `rtr_len` exactly.
pub fn decode_rtr_list(body: &[u8], endian: Endian) -> Result<Vec<RingRtr>, WireError> {
    decode_rtr_list_in(body, endian, Limits::SPREAD_3_17)
}

/// The same, with the given limits.
pub fn decode_rtr_list_in(
    body: &[u8],
    endian: Endian,
    limits: Limits,
) -> Result<Vec<RingRtr>, WireError> {
    if body.len() > limits.token_body {
        return Err(WireError::TooMany {
            what: "token body length",
            value: body.len(),
            max: limits.token_body,
        });
    }
    let mut r = Reader::new(body, endian, "ring_rtr list");
    let mut list = Vec::new();
    while r.remaining() > 0 {
        let memb_id = MembershipId {
            proc_id: r.u32()?,
            time: r.i32()?,
        };
        let proc_id = r.i32()?;
        let seg_index = r.i16()?;
        let num_seq = r.i16()?;
        let num_seq = checked_count(num_seq.into(), "ring_rtr num_seq", MAX_TOKEN_BODY / 4)?;
        let seqs = (0..num_seq).map(|_| r.i32()).collect::<Result<_, _>>()?;
        list.push(RingRtr {
            memb_id,
            proc_id,
            seg_index,
            seqs,
        });
    }
    r.finish()?;
    Ok(list)
}

/// Encodes retransmission requests as a regular token body.
pub fn encode_rtr_list(list: &[RingRtr], endian: Endian) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out, endian);
    for rtr in list {
        let num_seq = i16_count(rtr.seqs.len(), "ring_rtr num_seq", MAX_TOKEN_BODY / 4)?;
        w.u32(rtr.memb_id.proc_id);
        w.i32(rtr.memb_id.time);
        w.i32(rtr.proc_id);
        w.i16(rtr.seg_index);
        w.i16(num_seq);
        for &seq in &rtr.seqs {
            w.i32(seq);
        }
    }
    if out.len() > MAX_TOKEN_BODY {
        return Err(WireError::TooMany {
            what: "token body length",
            value: out.len(),
            max: MAX_TOKEN_BODY,
        });
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

    fn requests() -> Vec<RingRtr> {
        vec![
            RingRtr {
                memb_id: MembershipId {
                    proc_id: 0x7f00_0001,
                    time: 1_795_653_426,
                },
                proc_id: 0x7f00_0002,
                seg_index: 1,
                seqs: vec![4, 5, 9],
            },
            RingRtr {
                memb_id: MembershipId {
                    proc_id: 0x7f00_0003,
                    time: 17,
                },
                proc_id: RingRtr::ANSWER_BY_CAST,
                seg_index: RingRtr::BROADCAST_SEGMENT,
                seqs: vec![],
            },
        ]
    }

    #[test]
    fn decodes_a_captured_hurried_token() {
        // one-broadcast-segment: the leader re-sends its held token, ARQ=4 RETRANS=1.
        let raw = hex("80001480 0100007f 09000000 0100007f 09000000 0100007f 0000 0000");
        let (h, endian, body) = split_token(&raw).unwrap();
        assert_eq!(endian, Endian::Little);
        assert_eq!(h.type_word, 0x8014_0080);
        assert_eq!((h.arq(), h.retrans()), (4, 1));
        assert!(h.is_regular());
        assert_eq!(
            (h.seq, h.proc_id, h.aru, h.aru_last_id),
            (9, 0x7f00_0001, 9, 0x7f00_0001)
        );
        assert!(body.is_empty());
        assert_eq!(encode_token(&h, endian, body).unwrap(), raw);
    }

    #[test]
    fn arq_and_retrans_are_nibbles() {
        let h = TokenHeader::default().with_arq(17).with_retrans(2);
        assert_eq!((h.arq(), h.retrans()), (1, 2));
        assert_eq!(h.type_word, 0x0021_0000);
        let form = TokenHeader {
            type_word: packet_type::FORM1 | packet_type::FORM2,
            ..TokenHeader::default()
        };
        assert!(form.is_form1() && !form.is_form2() && !form.is_regular());
    }

    #[test]
    fn regular_tokens_round_trip_in_both_orders() {
        for endian in [Endian::Little, Endian::Big] {
            let header = TokenHeader {
                type_word: 0,
                transmitter_id: 0x7f00_0001,
                seq: 40,
                proc_id: 0x7f00_0001,
                aru: 30,
                aru_last_id: 0x7f00_0002,
                flow_control: -3,
                rtr_len: 0,
            }
            .with_arq(5);
            let body = encode_rtr_list(&requests(), endian).unwrap();
            assert_eq!(body.len(), 16 + 12 + 16);
            let raw = encode_token(&header, endian, &body).unwrap();
            let (back, read, back_body) = split_token(&raw).unwrap();
            assert_eq!(read, endian);
            assert_eq!(back.rtr_len as usize, body.len());
            assert_eq!(back.type_bits(), header.type_word);
            assert_eq!(decode_rtr_list(back_body, endian).unwrap(), requests());
        }
    }

    #[test]
    fn lying_lengths_are_refused() {
        let body = encode_rtr_list(&requests(), Endian::Little).unwrap();
        let raw = encode_token(&TokenHeader::default(), Endian::Little, &body).unwrap();
        assert!(split_token(&raw[..raw.len() - 1]).is_err());
        let mut long = raw.clone();
        long.push(0);
        assert!(split_token(&long).is_err());
        assert!(split_token(&raw[..27]).is_err());
        // num_seq claims one more sequence number than the body holds.
        let mut lie = body.clone();
        lie[14] += 1;
        assert!(decode_rtr_list(&lie, Endian::Little).is_err());
        lie[14..16].copy_from_slice(&(-1i16).to_le_bytes());
        assert!(matches!(
            decode_rtr_list(&lie, Endian::Little),
            Err(WireError::Negative { .. })
        ));
        assert!(decode_rtr_list(&body[..body.len() - 3], Endian::Little).is_err());
        let mut negative = raw;
        negative[26..28].copy_from_slice(&(-1i16).to_le_bytes());
        assert!(split_token(&negative).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..1600),
                                    big in any::<bool>()) {
            let endian = if big { Endian::Big } else { Endian::Little };
            let _ = TokenHeader::decode(&raw);
            let _ = split_token(&raw);
            if let Ok(list) = decode_rtr_list(&raw, endian) {
                prop_assert_eq!(encode_rtr_list(&list, endian).unwrap(), raw);
            }
        }

        #[test]
        fn rtr_lists_round_trip(big in any::<bool>(),
                                seqs in proptest::collection::vec(proptest::collection::vec(any::<i32>(), 0..20), 0..8),
                                proc_id in any::<i32>(), seg in any::<i16>()) {
            let endian = if big { Endian::Big } else { Endian::Little };
            let list: Vec<RingRtr> = seqs.into_iter().map(|seqs| RingRtr {
                memb_id: MembershipId { proc_id: 1, time: 2 }, proc_id, seg_index: seg, seqs,
            }).collect();
            let body = encode_rtr_list(&list, endian).unwrap();
            prop_assert_eq!(decode_rtr_list(&body, endian).unwrap(), list);
        }
    }
}
