//! An open session: reading and validating its messages, liveness probes, and its end.

use super::{CloseReason, Conn, Daemon, State};
use crate::core::ConnId;
use bytes::{Bytes, BytesMut};
use spread_wire::consts::limits::{MAX_DATA_PLUS_GROUPS, MAX_GROUPS_PER_MESSAGE, MAX_GROUP_NAME};
use spread_wire::consts::{limits, service};
use spread_wire::names::parse_private_group;
use spread_wire::probe;
use spread_wire::{Endian, GroupName, MessageHeader, HEADER_LEN};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(super) struct Session {
    pub(super) name: Vec<u8>,
    pub(super) private_group: GroupName,
    pub(super) wants_membership: bool,
    pub(super) inbuf: BytesMut,
    /// The validated header of the message being read, once its 48 bytes are in.
    pub(super) header: Option<MessageHeader>,
    /// The client offered the liveness probe and we accepted (spread-wire's `probe`).
    pub(super) probes: bool,
    /// The longest silence the client's last probe promised (`None`: no promise).
    pub(super) hold: Option<Duration>,
    /// When the last bytes from this client arrived.
    pub(super) last_heard: Instant,
    /// The byte order of the message being read, as its writer marked it.
    pub(super) writer: Endian,
    /// When we last sent an unasked probe answer (while congested and not reading).
    pub(super) last_reassured: Instant,
}

/// How often clients that promised a hold are checked for silence.
const HOLD_CHECK_EVERY: Duration = Duration::from_millis(50);

/// While the daemon reads no client (congested), how often probing clients get an unasked
/// answer: well inside any sensible probe deadline.
const REASSURE_EVERY: Duration = Duration::from_millis(250);

impl Daemon {
    pub(super) fn read_messages(&mut self, conn: ConnId) {
        loop {
            let Some(Conn {
                state: State::Open(session),
                ..
            }) = self.conns.get_mut(&conn)
            else {
                return;
            };
            if session.header.is_none() {
                if session.inbuf.len() < HEADER_LEN {
                    return;
                }
                let raw: &[u8; HEADER_LEN] = session.inbuf[..HEADER_LEN].try_into().expect("48");
                let (header, writer) = MessageHeader::decode(raw);
                session.writer = writer;
                if let Err(why) =
                    validate(&header, self.opts.endian, session, &self.opts.identity.name)
                {
                    self.stats.sessions_dropped_for_violations += 1;
                    return self.kill_session(conn, CloseReason::Violation(why), false);
                }
                // From here on the header is ours: our byte order, our marker; the hint
                // stays the sending client's (3.17 forwards it untouched).
                let mut fixed = header;
                fixed.private_group = GroupName::from_field(&raw[4..36]);
                let out: &mut [u8; HEADER_LEN] =
                    (&mut session.inbuf[..HEADER_LEN]).try_into().expect("48");
                fixed.write_into(out, self.opts.endian);
                session.header = Some(fixed);
            }
            let header = session.header.expect("validated header");
            let total = HEADER_LEN + header.body_len().expect("validated counts");
            if session.inbuf.len() < total {
                // Reserve once for big messages rather than growing by doubling.
                session.inbuf.reserve(total - session.inbuf.len());
                return;
            }
            session.header = None;
            let message = session.inbuf.split_to(total).freeze();
            self.handle_message(conn, header, message);
        }
    }

    pub(super) fn handle_message(&mut self, conn: ConnId, header: MessageHeader, message: Bytes) {
        let t = header.msg_type;
        if probe::is_probe(&header) {
            return self.answer_probe(conn, &message);
        }
        if t & service::JOIN != 0 {
            let group = GroupName::from_field(&message[HEADER_LEN..HEADER_LEN + MAX_GROUP_NAME]);
            if self.groups.local_member_count(&group) >= limits::MAX_LOCAL_GROUP_MEMBERS {
                return self.send_reject(conn, &header, &message, service::CAUSED_BY_JOIN);
            }
            self.order(message);
        } else if t & service::KILL != 0 {
            // 3.17 drops what was still queued for a client that says goodbye.
            self.kill_session_with(conn, CloseReason::Disconnected, false, Some(message));
        } else {
            // A leave or a data message.
            self.order(message);
        }
    }

    /// Answers a liveness probe at once and notes the silence the client promised not to
    /// exceed. Nothing of it reaches the ring.
    pub(super) fn answer_probe(&mut self, conn: ConnId, message: &Bytes) {
        let answer =
            probe::encode_answer(&GroupName::new(&self.opts.identity.name), self.opts.endian);
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let State::Open(session) = &mut c.state {
            // The header was turned to our order; the body is still in the client's.
            let hold_ms =
                probe::decode_request_body(&message[HEADER_LEN..], session.writer).unwrap_or(0);
            session.hold = (hold_ms > 0).then(|| Duration::from_millis(hold_ms.into()));
            if session.hold.is_some() && self.next_hold_check.is_none() {
                self.next_hold_check = Some(now + HOLD_CHECK_EVERY);
            }
        }
        c.out.push_urgent(Bytes::copy_from_slice(&answer));
        self.mark_writable(conn);
    }

    /// Ends the sessions of clients silent past the hold their last probe promised: a hung
    /// process or a dead host, which TCP alone would notice late or never.
    pub(super) fn check_holds(&mut self, now: Instant) {
        let Some(at) = self.next_hold_check else {
            return;
        };
        if now < at {
            return;
        }
        // While congested the event loop reads no client: their probes wait unread, so
        // silence is ours, not theirs. Take them as heard, and tell them we are alive with
        // unasked answers, or their own deadline would end sessions that are fine.
        let reading = self.congested.is_empty();
        let answer =
            probe::encode_answer(&GroupName::new(&self.opts.identity.name), self.opts.endian);
        let mut silent = Vec::new();
        let mut any = false;
        let mut reassured = Vec::new();
        for (conn, c) in self.conns.iter_mut() {
            if let State::Open(session) = &mut c.state {
                if let Some(hold) = session.hold {
                    any = true;
                    if !reading {
                        session.last_heard = now;
                        if now.saturating_duration_since(session.last_reassured) >= REASSURE_EVERY {
                            session.last_reassured = now;
                            c.out.push_urgent(Bytes::copy_from_slice(&answer));
                            reassured.push(*conn);
                        }
                    } else if now.saturating_duration_since(session.last_heard) >= hold {
                        silent.push((*conn, hold));
                    }
                }
            }
        }
        for conn in reassured {
            self.mark_writable(conn);
        }
        self.next_hold_check = any.then(|| now + HOLD_CHECK_EVERY);
        for (conn, hold) in silent {
            self.kill_session(conn, CloseReason::Silent { hold }, false);
        }
    }

    /// A refused join or leave goes back to its sender alone, in 3.17's reject layout:
    /// REJECT type, an old-type word, the groups plus the sender's private group, the data.
    pub(super) fn send_reject(
        &mut self,
        conn: ConnId,
        header: &MessageHeader,
        message: &Bytes,
        caused: u32,
    ) {
        let endian = self.opts.endian;
        let old_type = endian.stamp((header.msg_type & !(service::JOIN | service::LEAVE)) | caused);
        let mut reject = *header;
        reject.msg_type = service::REJECT | (header.msg_type & service::SELF_DISCARD);
        let groups_end = HEADER_LEN + header.num_groups as usize * MAX_GROUP_NAME;
        let mut out = Vec::with_capacity(message.len() + 4 + MAX_GROUP_NAME);
        let mut names = message[HEADER_LEN..groups_end].to_vec();
        if header.num_groups as usize >= MAX_GROUPS_PER_MESSAGE {
            names.truncate(names.len() - MAX_GROUP_NAME);
        }
        names.extend_from_slice(&header.private_group.0);
        reject.num_groups = (names.len() / MAX_GROUP_NAME) as i32;
        out.extend_from_slice(&reject.encode(endian));
        out.extend_from_slice(&endian.u32_bytes(old_type));
        out.extend_from_slice(&names);
        out.extend_from_slice(&message[groups_end..]);
        self.queue(conn, out.into());
    }

    /// Ends an open session: its kill enters the order (so its groups learn of it), and the
    /// event loop closes the socket.
    pub(super) fn kill_session(&mut self, conn: ConnId, reason: CloseReason, flush: bool) {
        self.kill_session_with(conn, reason, flush, None)
    }

    pub(super) fn kill_session_with(
        &mut self,
        conn: ConnId,
        reason: CloseReason,
        flush: bool,
        request: Option<Bytes>,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let State::Open(session) = std::mem::replace(&mut c.state, State::Closed) else {
            return;
        };
        if !flush {
            c.out.clear();
        }
        self.close(conn, flush, reason);
        // The name stays taken until the kill is ordered: until then the session is still
        // a member of its groups everywhere.
        let kill = request.unwrap_or_else(|| self.kill_notice(session.private_group));
        self.order(kill);
    }

    /// The daemon's own notice that a session ended, for a client that left without a
    /// word: a bare KILL header that travels SAFE, as in 3.17.
    fn kill_notice(&self, member: GroupName) -> Bytes {
        let endian = self.opts.endian;
        let header = MessageHeader {
            msg_type: service::KILL | service::SAFE,
            private_group: member,
            num_groups: 0,
            hint: spread_wire::Hint::daemon(endian),
            data_len: 0,
        };
        Bytes::copy_from_slice(&header.encode(endian))
    }
}

/// The checks 3.17 makes on every header a client sends (`Sess_validate_read_header`), and
/// one it does not: a data message may carry nothing but one service bit and SELF_DISCARD,
/// so no client can forge a membership (REG_MEMB) or a reject for others.
fn validate(
    header: &MessageHeader,
    daemon_endian: Endian,
    session: &Session,
    daemon: &str,
) -> Result<(), String> {
    let t = header.msg_type;
    if session.probes && probe::is_probe(header) {
        if header.num_groups != 0 || header.data_len as usize != probe::REQUEST_BODY_LEN {
            return Err("a liveness probe carries no groups and a 4-byte body".into());
        }
        return Ok(());
    }
    let services = (t & service::REGULAR).count_ones();
    let requests = (t & (service::JOIN | service::LEAVE | service::KILL)).count_ones();
    if services + requests != 1 {
        return Err(format!(
            "type 0x{t:08x} must name exactly one service or one request"
        ));
    }
    let allowed = if services == 1 {
        service::REGULAR | service::SELF_DISCARD
    } else {
        service::JOIN | service::LEAVE | service::KILL
    };
    if t & !allowed != 0 {
        return Err(format!("type 0x{t:08x} carries bits a client may not set"));
    }
    let ours = parse_private_group(&header.private_group).is_some_and(|p| {
        p.private_name == session.name.as_slice() && p.daemon_name == daemon.as_bytes()
    });
    if !ours {
        return Err(format!(
            "sender {} is not this session ({})",
            header.private_group, session.private_group
        ));
    }
    if header.num_groups < 0 || header.num_groups as usize > MAX_GROUPS_PER_MESSAGE {
        return Err(format!("num_groups {} outside 0..=100", header.num_groups));
    }
    if requests == 1 && t & service::KILL == 0 && header.num_groups < 1 {
        return Err("a join or leave names no group".into());
    }
    // The daemon reads the hint in its own order, whoever wrote it.
    if header.hint.has_stray_bits(daemon_endian) {
        return Err(format!(
            "hint {:02x?} has bits outside 0x80ffff80",
            header.hint.0
        ));
    }
    if header.data_len < 0 {
        return Err(format!("negative data_len {}", header.data_len));
    }
    let size = header.data_len as usize + header.num_groups as usize * MAX_GROUP_NAME;
    if size > MAX_DATA_PLUS_GROUPS {
        return Err(format!(
            "data plus group names is {size} bytes, more than {MAX_DATA_PLUS_GROUPS}"
        ));
    }
    Ok(())
}
