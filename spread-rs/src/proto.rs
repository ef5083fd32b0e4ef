//! The client side of the session protocol, without I/O.
//!
//! [`Codec`] builds request bytes and turns received bytes into [`Event`]s. It keeps no
//! socket and no clock, so blocking, async and simulated transports share it.

use crate::types::{
    Cause, Event, Membership, MembershipChange, Message, Rejected, Service, ServiceKind,
};
use crate::Error;
use spread_wire::consts::limits::{MAX_DATA_PLUS_GROUPS, MAX_GROUPS_PER_MESSAGE};
use spread_wire::consts::service;
use spread_wire::frame::{encode_message, Frame, FrameLen};
use spread_wire::membership::{GroupId, RegularBody};
use spread_wire::names::is_legal_group_name;
use spread_wire::probe;
use spread_wire::{Endian, GroupName, Hint, MessageHeader};

/// One whole message from the daemon, as [`Codec::decode_incoming`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Something for the application.
    Event(Event),
    /// Our daemon's answer to a liveness probe: a sign of life, nothing to deliver.
    ProbeAnswer,
}

/// One session's codec: knows our private group, builds requests, decodes deliveries.
#[derive(Clone, Debug)]
pub struct Codec {
    private_group: GroupName,
    endian: Endian,
}

impl Codec {
    pub fn new(private_group: GroupName) -> Codec {
        Codec {
            private_group,
            endian: Endian::NATIVE,
        }
    }

    /// A codec writing in a chosen byte order (tests play a big-endian client with it).
    pub fn with_endian(private_group: GroupName, endian: Endian) -> Codec {
        Codec {
            private_group,
            endian,
        }
    }

    pub fn private_group(&self) -> &GroupName {
        &self.private_group
    }

    /// The byte order this codec writes in.
    pub fn endian(&self) -> Endian {
        self.endian
    }

    fn header(&self, msg_type: u32, mess_type: i16) -> MessageHeader {
        MessageHeader {
            msg_type,
            private_group: self.private_group,
            num_groups: 0,
            hint: Hint::new(mess_type, self.endian),
            data_len: 0,
        }
    }

    /// A join or leave request; the group name must pass 3.17's library rules.
    pub fn membership_request(&self, join: bool, group: &str) -> Result<Vec<u8>, Error> {
        if !is_legal_group_name(group.as_bytes()) {
            return Err(Error::IllegalGroup(group.into()));
        }
        let kind = if join { service::JOIN } else { service::LEAVE };
        Ok(encode_message(
            &self.header(kind, 0),
            &[GroupName::new(group)],
            &[],
            self.endian,
        ))
    }

    /// The disconnect request: our own private group as its one group.
    pub fn disconnect_request(&self) -> Vec<u8> {
        encode_message(
            &self.header(service::KILL, 0),
            &[self.private_group],
            &[],
            self.endian,
        )
    }

    /// A multicast to 1..=100 groups of the concatenation of `parts`.
    pub fn multicast<G: AsRef<str>>(
        &self,
        service: Service,
        groups: &[G],
        mess_type: i16,
        parts: &[&[u8]],
    ) -> Result<Vec<u8>, Error> {
        if groups.is_empty() || groups.len() > MAX_GROUPS_PER_MESSAGE {
            return Err(Error::IllegalMessage(format!(
                "{} destination groups (1 to {MAX_GROUPS_PER_MESSAGE} allowed)",
                groups.len()
            )));
        }
        let data: usize = parts.iter().map(|p| p.len()).sum();
        let len = data + 32 * groups.len();
        if len > MAX_DATA_PLUS_GROUPS {
            return Err(Error::MessageTooLong {
                len,
                max: MAX_DATA_PLUS_GROUPS,
            });
        }
        let names: Vec<GroupName> = groups.iter().map(|g| GroupName::new(g.as_ref())).collect();
        Ok(encode_message(
            &self.header(service.type_word(), mess_type),
            &names,
            parts,
            self.endian,
        ))
    }

    /// Takes one whole delivery from the front of `buf`, if it holds one. A liveness probe
    /// answer is a protocol error here (a session that offered the probe reads with
    /// [`Codec::decode_incoming`]).
    pub fn decode(&self, buf: &[u8]) -> Result<Option<(Event, usize)>, Error> {
        match self.decode_incoming(buf)? {
            None => Ok(None),
            Some((Incoming::Event(event), used)) => Ok(Some((event, used))),
            Some((Incoming::ProbeAnswer, _)) => Err(Error::Protocol(format!(
                "message type 0x{:08x} (a probe answer) on a session without the probe",
                probe::TYPE
            ))),
        }
    }

    /// Takes one whole message from the front of `buf`, if it holds one: an event, or our
    /// daemon's answer to a liveness probe (which the transport swallows).
    pub fn decode_incoming(&self, buf: &[u8]) -> Result<Option<(Incoming, usize)>, Error> {
        let len = match Frame::len(buf).map_err(|e| Error::Protocol(e.to_string()))? {
            FrameLen::NeedMore(_) => return Ok(None),
            FrameLen::Complete(n) => n,
        };
        let frame = Frame::decode(&buf[..len]).map_err(|e| Error::Protocol(e.to_string()))?;
        if probe::is_probe(&frame.header) && frame.old_type.is_none() {
            return Ok(Some((Incoming::ProbeAnswer, len)));
        }
        Ok(Some((Incoming::Event(self.event(&frame)?), len)))
    }

    fn event(&self, frame: &Frame<'_>) -> Result<Event, Error> {
        let h = &frame.header;
        let groups: Vec<String> = frame.groups().map(|g| g.to_string_lossy()).collect();
        if let Some(old_type) = frame.old_type {
            return Ok(Event::Rejected(Rejected {
                old_type,
                groups,
                mess_type: h.hint.mess_type(),
                data: frame.data.to_vec(),
            }));
        }
        // A data message is anything with a service bit. 3.17's library would take a
        // service bit plus REG_MEMB for a membership; that lets a client forge views.
        if let Some(kind) = ServiceKind::from_type(h.msg_type) {
            return Ok(Event::Message(Message {
                service: kind,
                self_discard: h.msg_type & service::SELF_DISCARD != 0,
                sender: h.private_group.to_string_lossy(),
                groups,
                mess_type: h.hint.mess_type(),
                endian_mismatch: h.hint.endian() != self.endian,
                data: frame.data.to_vec(),
            }));
        }
        let group = h.private_group.to_string_lossy();
        let change = if h.msg_type & service::REG_MEMB != 0 {
            let body = RegularBody::decode(frame.data, frame.writer).ok_or_else(|| {
                Error::Protocol(format!("membership body of {} bytes", frame.data.len()))
            })?;
            let me = self.private_group.to_string_lossy();
            MembershipChange::Regular {
                cause: cause(h.msg_type),
                group_id: body.group_id.into(),
                my_index: groups.iter().position(|m| *m == me),
                members: groups,
                vs_set: body.vs_set.iter().map(|g| g.to_string_lossy()).collect(),
            }
        } else if h.msg_type & service::TRANSITION != 0 {
            let id = GroupId::decode(frame.data, frame.writer).ok_or_else(|| {
                Error::Protocol(format!("transitional body of {} bytes", frame.data.len()))
            })?;
            MembershipChange::Transitional {
                group_id: id.into(),
            }
        } else if h.msg_type & service::CAUSED_BY_LEAVE != 0 {
            MembershipChange::SelfLeave
        } else {
            return Err(Error::Protocol(format!(
                "message type 0x{:08x}",
                h.msg_type
            )));
        };
        Ok(Event::Membership(Membership { group, change }))
    }
}

fn cause(msg_type: u32) -> Cause {
    if msg_type & service::CAUSED_BY_JOIN != 0 {
        Cause::Join
    } else if msg_type & service::CAUSED_BY_LEAVE != 0 {
        Cause::Leave
    } else if msg_type & service::CAUSED_BY_DISCONNECT != 0 {
        Cause::Disconnect
    } else {
        Cause::Network
    }
}
