//! Between the ring's logical messages and their bytes (`spread_wire::ring`).

use super::msgs::{Members, Packet, Rep, Reps, RingInfo, Rtr, Token, TokenBody};
use bytes::Bytes;
use spread_wire::ring::form::{Form1Body, Form2Body, MembersTable, RepsTable, RingRecord};
use spread_wire::ring::memb::{AliveBody, JoinBody, MemberList, RepInfo, RepList};
use spread_wire::ring::packet::{encode_datagram_in, packet_type, split_datagram_in, PacketHeader};
use spread_wire::ring::token::{
    decode_rtr_list_in, encode_rtr_list, encode_token_in as wire_token, split_token_in, RingRtr,
    TokenHeader,
};
use spread_wire::ring::{Limits, WireError};
use spread_wire::Endian;

/// The packets of a data-port datagram and the byte order of its sender.
pub fn decode_packets(datagram: &[u8], limits: Limits) -> Result<(Endian, Vec<Packet>), WireError> {
    let whole = Bytes::copy_from_slice(datagram);
    let (endian, parts) = split_datagram_in(datagram, limits)?;
    let base = datagram.as_ptr() as usize;
    let packets = parts
        .into_iter()
        .map(|(h, body)| {
            let at = body.as_ptr() as usize - base;
            Packet {
                kind: h.type_bits(),
                transmitter: h.transmitter_id,
                proc_id: h.proc_id,
                memb_id: h.memb_id,
                seq: h.seq,
                fifo_seq: h.fifo_seq,
                index: h.packet_index,
                body: whole.slice(at..at + body.len()),
            }
        })
        .collect();
    Ok((endian, packets))
}

/// One datagram holding `packets`, the first stamped with our marker.
pub fn encode_packets(packets: &[Packet], endian: Endian, limits: Limits) -> Vec<u8> {
    let parts: Vec<(PacketHeader, &[u8])> = packets
        .iter()
        .map(|p| {
            (
                PacketHeader {
                    type_word: p.kind,
                    transmitter_id: p.transmitter,
                    proc_id: p.proc_id,
                    memb_id: p.memb_id,
                    seq: p.seq,
                    fifo_seq: p.fifo_seq,
                    packet_index: p.index,
                    data_len: 0,
                },
                &p.body[..],
            )
        })
        .collect();
    encode_datagram_in(endian, &parts, limits)
        .expect("the ring never builds a datagram over its limits")
}

/// Rewrites a routed datagram for re-broadcast in my segment: ROUTED cleared and me as its
/// transmitter, in the datagram's own byte order.
pub fn reroute(datagram: &mut [u8], me: u32) {
    let raw: [u8; 4] = datagram[0..4].try_into().expect("a datagram has a header");
    let endian = Endian::of_type_word(raw);
    let word = endian.read_u32(raw) & !packet_type::ROUTED;
    datagram[0..4].copy_from_slice(&endian.u32_bytes(word));
    datagram[4..8].copy_from_slice(&endian.u32_bytes(me));
}

pub fn decode_token(datagram: &[u8], limits: Limits) -> Result<Token, WireError> {
    let (h, endian, body) = split_token_in(datagram, limits)?;
    let body = if h.is_form1() {
        let f = Form1Body::decode_in(body, endian, limits)?;
        TokenBody::Form1 {
            members: members_from(&f.members),
            reps: Reps {
                rep_index: f.reps.rep_index.max(0) as usize,
                reps: f.reps.reps().iter().map(rep_from).collect(),
            },
            rings: f.rings.iter().map(ring_from).collect(),
        }
    } else if h.is_form2() {
        let f = Form2Body::decode_in(body, endian, limits)?;
        TokenBody::Form2 {
            members: members_from(&f.members),
            memb_id: f.ring_id,
            rings: f.rings.iter().map(ring_from).collect(),
        }
    } else {
        TokenBody::Regular(
            decode_rtr_list_in(body, endian, limits)?
                .into_iter()
                .map(|r| Rtr {
                    memb_id: r.memb_id,
                    proc_id: r.proc_id,
                    seg_index: r.seg_index,
                    seqs: r.seqs,
                })
                .collect(),
        )
    };
    Ok(Token {
        kind: h.type_bits(),
        transmitter: h.transmitter_id,
        seq: h.seq,
        proc_id: h.proc_id,
        aru: h.aru,
        aru_last_id: h.aru_last_id,
        flow_control: h.flow_control,
        body,
    })
}

/// A token's bytes, or why it does not fit 3.17's limits (a FORM token with too many holes
/// or rings: 3.17 dies on those; we refuse to send them).
pub fn encode_token(token: &Token, endian: Endian, limits: Limits) -> Result<Vec<u8>, WireError> {
    let header = TokenHeader {
        type_word: token.kind,
        transmitter_id: token.transmitter,
        seq: token.seq,
        proc_id: token.proc_id,
        aru: token.aru,
        aru_last_id: token.aru_last_id,
        flow_control: token.flow_control,
        rtr_len: 0,
    };
    let body = match &token.body {
        TokenBody::Regular(records) => {
            let list: Vec<RingRtr> = records
                .iter()
                .map(|r| RingRtr {
                    memb_id: r.memb_id,
                    proc_id: r.proc_id,
                    seg_index: r.seg_index,
                    seqs: r.seqs.clone(),
                })
                .collect();
            encode_rtr_list(&list, endian)
        }
        TokenBody::Form1 {
            members,
            reps,
            rings,
        } => Form1Body {
            members: members_to(members, limits)?,
            reps: RepsTable::from_reps(
                &reps.reps.iter().map(rep_to).collect::<Vec<_>>(),
                reps.rep_index as i16,
            )?,
            rings: rings.iter().map(ring_to).collect(),
        }
        .encode_in(endian, limits),
        TokenBody::Form2 {
            members,
            memb_id,
            rings,
        } => Form2Body {
            members: members_to(members, limits)?,
            ring_id: *memb_id,
            rings: rings.iter().map(ring_to).collect(),
        }
        .encode_in(endian, limits),
    }?;
    wire_token(&header, endian, &body, limits)
}

/// An ALIVE body: the listed members.
pub fn encode_alive_body(members: &Members, endian: Endian, limits: Limits) -> Bytes {
    let body = AliveBody {
        members: member_list(members),
    };
    Bytes::from(
        body.encode_in(endian, limits)
            .expect("members within the ring's limits"),
    )
}

/// A JOIN body: the listed members, then the reps.
pub fn encode_join_body(members: &Members, reps: &Reps, endian: Endian, limits: Limits) -> Bytes {
    let body = JoinBody {
        members: member_list(members),
        reps: RepList {
            rep_index: reps.rep_index as i16,
            reps: reps.reps.iter().map(rep_to).collect(),
        },
    };
    Bytes::from(
        body.encode_in(endian, limits)
            .expect("within the ring's limits"),
    )
}

pub fn decode_join_body(
    body: &[u8],
    endian: Endian,
    limits: Limits,
) -> Result<(Members, Reps), WireError> {
    let join = JoinBody::decode_in(body, endian, limits)?;
    Ok((
        Members {
            num_members: join.members.members.len(),
            num_pending: 0,
            ids: join.members.members,
        },
        Reps {
            rep_index: join.reps.rep_index.max(0) as usize,
            reps: join.reps.reps.iter().map(rep_from).collect(),
        },
    ))
}

fn member_list(members: &Members) -> MemberList {
    MemberList {
        num_pending: members.num_pending as i16,
        members: members.listed().to_vec(),
    }
}

fn members_from(t: &MembersTable) -> Members {
    let listed = t.listed();
    Members {
        num_members: (t.num_members.max(0) as usize).min(listed.len()),
        num_pending: listed.len() - (t.num_members.max(0) as usize).min(listed.len()),
        ids: listed.to_vec(),
    }
}

fn members_to(m: &Members, limits: Limits) -> Result<MembersTable, WireError> {
    let total = (m.num_members + m.num_pending).min(m.ids.len());
    MembersTable::from_ids_in(&m.ids[..total], m.num_members.min(total), limits)
}

fn rep_from(r: &RepInfo) -> Rep {
    Rep {
        proc_id: r.proc_id,
        rep_type: r.rep_type,
        seg_index: r.seg_index,
    }
}

fn rep_to(r: &Rep) -> RepInfo {
    RepInfo {
        proc_id: r.proc_id,
        rep_type: r.rep_type,
        seg_index: r.seg_index,
    }
}

fn ring_from(r: &RingRecord) -> RingInfo {
    RingInfo {
        memb_id: r.memb_id,
        trans_time: r.trans_time,
        aru: r.aru,
        highest_seq: r.highest_seq,
        holes: r.holes.clone(),
        commit: r.commit.clone(),
        num_trans: r.num_trans.max(0) as usize,
    }
}

fn ring_to(r: &RingInfo) -> RingRecord {
    RingRecord {
        memb_id: r.memb_id,
        trans_time: r.trans_time,
        aru: r.aru,
        highest_seq: r.highest_seq,
        holes: r.holes.clone(),
        commit: r.commit.clone(),
        num_trans: r.num_trans as i16,
    }
}
