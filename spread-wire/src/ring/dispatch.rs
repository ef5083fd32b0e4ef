//! Whole datagrams to typed packets and tokens, in the order the C daemon dispatches.
//!
//! A data-port packet is classified by the first matching bit of its type word:
//! PARTITION, STATUS, FC (monitor), ALIVE, JOIN, REFER (membership), HURRY, then any data
//! service bit (a message fragment). Anything else is refused, as the C daemon drops it.
//! A token is FORM1, else FORM2, else regular.

use super::form::{Form1Body, Form2Body};
use super::memb::{AliveBody, JoinBody, Refer};
use super::monitor::{PerDaemonTable, Status};
use super::packet::{packet_type, split_datagram, PacketHeader};
use super::token::{
    decode_rtr_list, encode_rtr_list, encode_token, split_token, RingRtr, TokenHeader,
};
use super::WireError;
use crate::codec::Endian;

/// The body of one data-port packet, typed by its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketBody<'a> {
    /// A fragment of a message (RELIABLE/FIFO/AGREED/SAFE); the first fragment of each
    /// message starts with its 48-byte message header.
    Data(&'a [u8]),
    /// "Release the token you hold": no body.
    Hurry,
    Alive(AliveBody),
    Join(JoinBody),
    /// No body; what it says comes from the header.
    Refer(Refer),
    /// A monitor's request for the daemon's status: no body.
    StatusRequest,
    StatusReply(Status),
    Partition(Box<PerDaemonTable>),
    FlowControl(Box<PerDaemonTable>),
}

impl<'a> PacketBody<'a> {
    /// Types and decodes `body` (exactly `header.data_len` bytes) by the header's type.
    pub fn decode(
        header: &PacketHeader,
        body: &'a [u8],
        endian: Endian,
    ) -> Result<PacketBody<'a>, WireError> {
        use packet_type as t;
        let empty = |what| match body.len() {
            0 => Ok(()),
            extra => Err(WireError::TrailingBytes { what, extra }),
        };
        Ok(if header.has(t::PARTITION) {
            PacketBody::Partition(Box::new(PerDaemonTable::decode(body, endian)?))
        } else if header.has(t::STATUS) {
            if body.is_empty() {
                PacketBody::StatusRequest
            } else {
                PacketBody::StatusReply(Status::decode(body, endian)?)
            }
        } else if header.has(t::FC) {
            PacketBody::FlowControl(Box::new(PerDaemonTable::decode(body, endian)?))
        } else if header.has(t::ALIVE) {
            PacketBody::Alive(AliveBody::decode(body, endian)?)
        } else if header.has(t::JOIN) {
            PacketBody::Join(JoinBody::decode(body, endian)?)
        } else if header.has(t::REFER) {
            empty("REFER body")?;
            PacketBody::Refer(Refer::from_header(header))
        } else if header.has(t::HURRY) {
            empty("HURRY body")?;
            PacketBody::Hurry
        } else if header.has(t::REGULAR) {
            PacketBody::Data(body)
        } else {
            return Err(WireError::UnknownType {
                what: "data-port packet",
                type_word: header.type_word,
            });
        })
    }

    /// The body bytes, in `endian`.
    pub fn encode(&self, endian: Endian) -> Result<Vec<u8>, WireError> {
        Ok(match self {
            PacketBody::Data(bytes) => bytes.to_vec(),
            PacketBody::Hurry | PacketBody::Refer(_) | PacketBody::StatusRequest => Vec::new(),
            PacketBody::Alive(alive) => alive.encode(endian)?,
            PacketBody::Join(join) => join.encode(endian)?,
            PacketBody::StatusReply(status) => status.encode(endian).to_vec(),
            PacketBody::Partition(table) | PacketBody::FlowControl(table) => {
                table.encode(endian).to_vec()
            }
        })
    }

    /// A short name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            PacketBody::Data(_) => "data",
            PacketBody::Hurry => "HURRY",
            PacketBody::Alive(_) => "ALIVE",
            PacketBody::Join(_) => "JOIN",
            PacketBody::Refer(_) => "REFER",
            PacketBody::StatusRequest => "STATUS request",
            PacketBody::StatusReply(_) => "STATUS reply",
            PacketBody::Partition(_) => "PARTITION",
            PacketBody::FlowControl(_) => "FC",
        }
    }
}

/// The packets of one datagram with their bodies typed.
pub type TypedPackets<'a> = Vec<(PacketHeader, PacketBody<'a>)>;

/// Splits a data-port datagram ([`split_datagram`]) and types every packet's body.
pub fn decode_data_datagram(bytes: &[u8]) -> Result<(Endian, TypedPackets<'_>), WireError> {
    let (endian, packets) = split_datagram(bytes)?;
    let typed = packets
        .into_iter()
        .map(|(header, body)| Ok((header, PacketBody::decode(&header, body, endian)?)))
        .collect::<Result<_, WireError>>()?;
    Ok((endian, typed))
}

/// A whole token-port datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    Regular {
        header: TokenHeader,
        /// Retransmission requests, in token order.
        requests: Vec<RingRtr>,
    },
    Form1 {
        header: TokenHeader,
        body: Box<Form1Body>,
    },
    Form2 {
        header: TokenHeader,
        body: Box<Form2Body>,
    },
}

impl Token {
    /// Decodes a token datagram: exactly `28 + rtr_len` bytes, whose body decodes whole.
    pub fn decode(bytes: &[u8]) -> Result<(Token, Endian), WireError> {
        let (header, endian, body) = split_token(bytes)?;
        let token = if header.is_form1() {
            Token::Form1 {
                header,
                body: Box::new(Form1Body::decode(body, endian)?),
            }
        } else if header.is_form2() {
            Token::Form2 {
                header,
                body: Box::new(Form2Body::decode(body, endian)?),
            }
        } else {
            Token::Regular {
                header,
                requests: decode_rtr_list(body, endian)?,
            }
        };
        Ok((token, endian))
    }

    /// Encodes the datagram in `endian`: type word stamped, `rtr_len` = body length.
    pub fn encode(&self, endian: Endian) -> Result<Vec<u8>, WireError> {
        let body = match self {
            Token::Regular { requests, .. } => encode_rtr_list(requests, endian)?,
            Token::Form1 { body, .. } => body.encode(endian)?,
            Token::Form2 { body, .. } => body.encode(endian)?,
        };
        encode_token(self.header(), endian, &body)
    }

    pub fn header(&self) -> &TokenHeader {
        match self {
            Token::Regular { header, .. }
            | Token::Form1 { header, .. }
            | Token::Form2 { header, .. } => header,
        }
    }

    /// A short name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Token::Regular { .. } => "token",
            Token::Form1 { .. } => "FORM1",
            Token::Form2 { .. } => "FORM2",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::MembershipId;
    use crate::ring::form::MembersTable;
    use crate::ring::monitor::{monitor_request, status_reply_header};
    use crate::ring::packet::encode_datagram;
    use proptest::prelude::*;

    #[test]
    fn every_packet_kind_is_typed_and_re_encoded() {
        let sender = 0x7f00_0002;
        let alive = AliveBody::default();
        let refer = Refer {
            rep_id: 0x7f00_0001,
            rep_type: 2,
        };
        let status = Status {
            num_procs: 3,
            ..Status::default()
        };
        let cases: Vec<(PacketHeader, PacketBody<'_>)> = vec![
            (
                PacketHeader::of_type(packet_type::AGREED),
                PacketBody::Data(b"fragment"),
            ),
            (PacketHeader::of_type(packet_type::HURRY), PacketBody::Hurry),
            (
                PacketHeader::of_type(packet_type::ALIVE),
                PacketBody::Alive(alive),
            ),
            (
                PacketHeader::of_type(packet_type::JOIN),
                PacketBody::Join(JoinBody::default()),
            ),
            (refer.header(sender), PacketBody::Refer(refer)),
            (
                monitor_request(packet_type::STATUS, sender, 6543),
                PacketBody::StatusRequest,
            ),
            (status_reply_header(sender), PacketBody::StatusReply(status)),
            (
                monitor_request(packet_type::PARTITION, sender, 6543),
                PacketBody::Partition(Box::default()),
            ),
            (
                monitor_request(packet_type::FC, sender, 6543),
                PacketBody::FlowControl(Box::default()),
            ),
        ];
        for endian in [Endian::Little, Endian::Big] {
            for (header, body) in &cases {
                let bytes = body.encode(endian).unwrap();
                let raw = encode_datagram(endian, &[(*header, &bytes[..])]).unwrap();
                let (read, typed) = decode_data_datagram(&raw).unwrap();
                assert_eq!(read, endian);
                assert_eq!(&typed[0].1, body, "{}", body.kind());
            }
        }
    }

    #[test]
    fn unknown_and_inconsistent_packets_are_refused() {
        let nothing = PacketHeader::of_type(0x0000_0800);
        let raw = encode_datagram(Endian::Little, &[(nothing, &[][..])]).unwrap();
        assert!(matches!(
            decode_data_datagram(&raw),
            Err(WireError::UnknownType { .. })
        ));
        let hurry = PacketHeader::of_type(packet_type::HURRY);
        let raw = encode_datagram(Endian::Little, &[(hurry, &[1][..])]).unwrap();
        assert!(matches!(
            decode_data_datagram(&raw),
            Err(WireError::TrailingBytes { .. })
        ));
        let status = PacketHeader::of_type(packet_type::STATUS);
        let raw = encode_datagram(Endian::Little, &[(status, &[0; 10][..])]).unwrap();
        assert!(decode_data_datagram(&raw).is_err());
    }

    #[test]
    fn tokens_round_trip_in_both_orders() {
        let header = TokenHeader {
            transmitter_id: 0x7f00_0001,
            seq: 3333,
            proc_id: 0x7f00_0001,
            ..TokenHeader::default()
        };
        let form2 = Form2Body {
            members: MembersTable::from_ids(&[0x7f00_0001], 0).unwrap(),
            ring_id: MembershipId {
                proc_id: 0x7f00_0001,
                time: 5,
            },
            rings: vec![],
        };
        let tokens = [
            Token::Regular {
                header,
                requests: vec![RingRtr::default()],
            },
            Token::Form1 {
                header: TokenHeader {
                    type_word: packet_type::FORM1,
                    ..header
                },
                body: Box::default(),
            },
            Token::Form2 {
                header: TokenHeader {
                    type_word: packet_type::FORM2,
                    ..header
                },
                body: Box::new(form2),
            },
        ];
        for endian in [Endian::Little, Endian::Big] {
            for token in &tokens {
                let raw = token.encode(endian).unwrap();
                let (back, read) = Token::decode(&raw).unwrap();
                assert_eq!(read, endian);
                assert_eq!(back.kind(), token.kind());
                assert_eq!(back.encode(endian).unwrap(), raw);
            }
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..1500)) {
            if let Ok((endian, packets)) = decode_data_datagram(&raw) {
                for (header, body) in &packets {
                    let bytes = body.encode(endian).unwrap();
                    prop_assert_eq!(bytes.len(), header.body_len().unwrap());
                }
            }
            if let Ok((token, endian)) = Token::decode(&raw) {
                prop_assert_eq!(token.encode(endian).unwrap().len(), raw.len());
            }
        }

        #[test]
        fn random_packet_bodies_behind_real_headers(body in proptest::collection::vec(any::<u8>(), 0..600),
                                                    kind in 0usize..9, big in any::<bool>()) {
            let endian = if big { Endian::Big } else { Endian::Little };
            use packet_type as t;
            let bits = [t::PARTITION, t::STATUS, t::FC, t::ALIVE, t::JOIN, t::REFER, t::HURRY, t::SAFE, 0x800];
            let header = PacketHeader::of_type(bits[kind]);
            if let Ok(typed) = PacketBody::decode(&header, &body, endian) {
                prop_assert_eq!(typed.encode(endian).unwrap(), body);
            }
        }

        #[test]
        fn random_token_bodies_behind_real_headers(body in proptest::collection::vec(any::<u8>(), 0..1444),
                                                   kind in 0u32..3, big in any::<bool>()) {
            let endian = if big { Endian::Big } else { Endian::Little };
            let type_word = [0, packet_type::FORM1, packet_type::FORM2][kind as usize];
            let header = TokenHeader { type_word, ..TokenHeader::default() };
            let raw = encode_token(&header, endian, &body).unwrap();
            if let Ok((token, read)) = Token::decode(&raw) {
                prop_assert_eq!(read, endian);
                prop_assert_eq!(token.encode(endian).unwrap(), raw);
            }
        }
    }
}
