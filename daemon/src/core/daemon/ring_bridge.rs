//! The ring bridge: messages to the token ring, its deliveries and configuration changes
//! back, and the answers to monitors.

use super::{CoreEvent, Daemon, State};
use crate::core::groups::Notice;
use crate::core::ring::{self, Port, ProcId, Queue, Ring, RingEvent, Transmit};
use crate::core::ConnId;
use bytes::Bytes;
use spread_wire::consts::service;
use spread_wire::names::parse_private_group;
use spread_wire::ring::packet_type;
use spread_wire::{Endian, GroupName, MessageHeader, HEADER_LEN};
use std::time::Instant;

/// The ring side of the daemon: ordering through the token ring, deliveries and
/// configuration changes coming back.
impl Daemon {
    /// A datagram arrived on our data or token port.
    pub fn handle_datagram(&mut self, now: Instant, port: Port, datagram: &[u8]) {
        self.now = now;
        if let Some(ring) = self.ring.as_mut() {
            ring.handle_datagram(now, port, datagram);
            self.drain_ring();
        } else if port == Port::Data {
            self.answer_monitor_alone(datagram);
        }
    }

    /// A daemon configured alone has no ring but still answers `spmonitor` on its data
    /// port: status, and (with `DangerousMonitor`) a partition that tells it to exit.
    pub(super) fn answer_monitor_alone(&mut self, datagram: &[u8]) {
        use spread_wire::ring::monitor::{self, PerDaemonTable, Status};
        let Ok((endian, packets)) = spread_wire::ring::split_datagram(datagram) else {
            return;
        };
        let Some(&(header, body)) = packets.first() else {
            return;
        };
        let me = u32::from(self.opts.identity.ip);
        if !monitor::is_monitor_request(&header) || header.proc_id != me {
            return;
        }
        let kind = header.type_bits();
        if kind & packet_type::STATUS != 0 {
            let sessions = self
                .conns
                .values()
                .filter(|c| matches!(c.state, State::Open(_)))
                .count();
            let status = Status {
                sec: self.now.saturating_duration_since(self.started).as_secs() as i32,
                state: 1,
                gstate: self.groups.state_number(),
                my_id: me,
                leader_id: me,
                message_delivered: self.stats.messages_delivered as i32,
                membership_changes: 1,
                num_procs: 1,
                num_segments: 1,
                num_sessions: sessions.min(i16::MAX as usize) as i16,
                num_groups: self.groups.group_count().min(i16::MAX as usize) as i16,
                major_version: spread_wire::consts::version::MAJOR.into(),
                minor_version: spread_wire::consts::version::MINOR.into(),
                patch_version: spread_wire::consts::version::PATCH.into(),
                ..Status::default()
            };
            let mut reply = monitor::status_reply_header(me);
            reply.data_len = monitor::STATUS_LEN as i16;
            let body = status.encode(self.opts.endian);
            if let Ok(payload) =
                spread_wire::ring::encode_datagram(self.opts.endian, &[(reply, &body[..])])
            {
                let to = std::net::SocketAddrV4::new(header.proc_id.into(), header.seq as u16);
                self.transmits.push_back(Transmit {
                    to: ring::Destination::Monitor(to),
                    payload,
                });
            }
        } else if kind & packet_type::PARTITION != 0 {
            if !self.opts.dangerous_monitor {
                tracing::warn!("refusing a monitor's partition command: DangerousMonitor is off");
            } else if PerDaemonTable::decode(body, endian).is_ok_and(|t| t.entries[0] < 0) {
                tracing::warn!("a monitor told this daemon to exit");
                self.events.push_back(CoreEvent::Exit);
            }
        }
    }

    /// A datagram the ring wants sent.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        match self.ring.as_mut() {
            Some(ring) => ring.poll_transmit(),
            None => self.transmits.pop_front(),
        }
    }

    pub fn ring(&self) -> Option<&Ring> {
        self.ring.as_ref()
    }

    /// The daemon a member belongs to, by the daemon name in `#name#daemon`.
    pub(super) fn daemon_of(&self, member: &GroupName) -> ProcId {
        let me = u32::from(self.opts.identity.ip);
        let Some(parsed) = parse_private_group(member) else {
            return me;
        };
        match &self.ring {
            Some(ring) => ring.conf().by_name(parsed.daemon_name).unwrap_or(me),
            None => me,
        }
    }

    /// A kill of one of our sessions was ordered: its name is free again.
    pub(super) fn release_if_local(&mut self, member: &GroupName) {
        if let Some(parsed) = parse_private_group(member) {
            if parsed.daemon_name == self.opts.identity.name.as_bytes() {
                let name = parsed.private_name.to_vec();
                if let Some(conn) = self.names.get(&name) {
                    if !self.conns.contains_key(conn)
                        || matches!(self.conns[conn].state, State::Closed)
                    {
                        self.names.remove(&name);
                    }
                }
            }
        }
    }

    /// Hands a message to the ring to be ordered; `deliver` gets it back in the order.
    pub(super) fn submit_to_ring(&mut self, message: Bytes) {
        let kind = packet_kind_of(&message);
        let now = self.now;
        if let Some(ring) = self.ring.as_mut() {
            ring.submit(now, Queue::Normal, kind, message);
        }
        self.drain_ring();
    }

    /// Hands the ring's deliveries and configuration changes to the groups layer.
    pub(super) fn drain_ring(&mut self) {
        loop {
            let Some(event) = self.ring.as_mut().and_then(Ring::poll_event) else {
                return;
            };
            let mut notices = std::mem::take(&mut self.notices);
            match event {
                RingEvent::Deliver(message) => self.deliver(message),
                RingEvent::StatusRequest { to } => self.report_status(to),
                RingEvent::ExitRequested => self.events.push_back(CoreEvent::Exit),
                RingEvent::Transitional { members, id } => {
                    tracing::debug!(daemon = %self.opts.identity.name, ?members, ?id, state = ?self.groups.state(), "transitional configuration");
                    self.groups.transitional(&members, id, &mut notices);
                }
                RingEvent::Regular { members, id } => {
                    tracing::debug!(daemon = %self.opts.identity.name, ?members, ?id, state = ?self.groups.state(), "regular configuration");
                    let outcome = self.groups.regular(&members, id, &mut notices);
                    if !outcome.groups_messages.is_empty() {
                        let now = self.now;
                        let ring = self.ring.as_mut().expect("ring events come from a ring");
                        ring.set_active_queue(Queue::Groups);
                        for m in outcome.groups_messages {
                            let kind = packet_kind_of(&m);
                            ring.submit(now, Queue::Groups, kind, m);
                        }
                    }
                }
            }
            self.send_notices(&mut notices);
            self.notices = notices;
        }
    }

    /// Completes the ring's status report with the client side's counts and sends it.
    pub(super) fn report_status(&mut self, to: std::net::SocketAddrV4) {
        let sessions = self
            .conns
            .values()
            .filter(|c| matches!(c.state, State::Open(_)))
            .count();
        let groups = self.groups.group_count();
        let delivered = self.stats.messages_delivered;
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        let mut status = ring.status();
        status.num_sessions = sessions.min(i16::MAX as usize) as i16;
        status.num_groups = groups.min(i16::MAX as usize) as i16;
        status.message_delivered = delivered as i32;
        status.gstate = self.groups.state_number();
        ring.send_status(to, &status);
    }

    pub(super) fn send_notices(&mut self, notices: &mut Vec<Notice>) {
        for notice in notices.drain(..) {
            let wants = matches!(
                self.conns.get(&notice.to).map(|c| &c.state),
                Some(State::Open(s)) if s.wants_membership
            );
            if wants {
                self.queue(notice.to, notice.message);
            }
        }
    }

    /// A GROUPS message of the state exchange was delivered: when it completes the
    /// exchange, client messages flow again.
    pub(super) fn deliver_groups_message(
        &mut self,
        message: Bytes,
        header: &MessageHeader,
        writer: Endian,
        notices: &mut Vec<Notice>,
    ) {
        let member = header.private_group;
        let Some(sender) = self
            .ring
            .as_ref()
            .and_then(|r| r.conf().by_name(member.as_bytes()))
        else {
            return;
        };
        let names = &self.names;
        let conns = &self.conns;
        let me = self.opts.identity.name.as_bytes().to_vec();
        let lookup = |m: &GroupName| -> Option<ConnId> {
            let p = parse_private_group(m)?;
            if p.daemon_name != me.as_slice() {
                return None;
            }
            names
                .get(p.private_name)
                .copied()
                .filter(|c| conns.contains_key(c))
        };
        let done = self
            .groups
            .handle_groups_message(sender, message, header, writer, notices, &lookup);
        tracing::debug!(daemon = %self.opts.identity.name, sender, done, state = ?self.groups.state(), "GROUPS message");
        if done {
            if let Some(ring) = self.ring.as_mut() {
                ring.set_active_queue(Queue::Normal);
            }
        }
    }
}

/// The packet type a message (`header | groups | data`, in our order) travels as.
fn packet_kind_of(message: &[u8]) -> u32 {
    let header = MessageHeader::decode(message[..HEADER_LEN].try_into().expect("48")).0;
    packet_kind(header.msg_type)
}

/// The packet type of a service (3.17's `Message_get_packet_type`).
fn packet_kind(msg_type: u32) -> u32 {
    if msg_type & (service::UNRELIABLE | service::RELIABLE) != 0 {
        packet_type::RELIABLE
    } else if msg_type & service::FIFO != 0 {
        packet_type::FIFO
    } else if msg_type & (service::CAUSAL | service::AGREED) != 0 {
        packet_type::AGREED
    } else if msg_type & service::SAFE != 0 {
        packet_type::SAFE
    } else {
        packet_type::AGREED
    }
}
