//! The session handshake: the connect message, the auth exchange, and the name it gets.

use super::{CloseReason, Daemon, Session, State};
use crate::core::ConnId;
use bytes::{Bytes, BytesMut};
use spread_wire::consts::limits;
use spread_wire::handshake::{self, ConnectRequest, Parsed, Reject, AUTH_CHOICE_LEN};
use spread_wire::names::private_group_name;
use spread_wire::probe;
use spread_wire::Endian;
use std::time::Instant;

impl Daemon {
    pub(super) fn advance_connect(&mut self, now: Instant, conn: ConnId) {
        let c = self.conns.get_mut(&conn).expect("conn exists");
        let State::AwaitConnect { buf, .. } = &mut c.state else {
            return;
        };
        let (request, used) = match handshake::parse_connect(buf) {
            Ok(Parsed::NeedMore) => return,
            Ok(Parsed::Done(request, used)) => (request, used),
            Err(reject) => return self.reject(conn, reject),
        };
        let rest = buf.split_off(used);
        let name = if request.name.is_empty() {
            self.pick_name(conn)
        } else if self.names.contains_key(&request.name) {
            return self.reject(conn, Reject::NotUnique);
        } else {
            request.name.clone()
        };
        self.names.insert(name.clone(), conn);
        let c = self.conns.get_mut(&conn).expect("conn exists");
        if !request.version.negotiates_auth() {
            let allowed = self.opts.auth.decide_without_negotiation(c.peer);
            return self.finish_auth(conn, request, name, allowed, rest);
        }
        let offered = self.opts.auth.offered();
        if offered.is_empty() {
            c.out.push(handshake::encode_auth_list(&offered).into());
            self.mark_writable(conn);
            return self.deny(conn);
        }
        // Only a client that offered the probe sees the pseudo-method; libspread never does.
        let mut listed = offered;
        if request.offers_probe {
            listed.push(probe::METHOD);
        }
        c.out.push(handshake::encode_auth_list(&listed).into());
        self.mark_writable(conn);
        let deadline = now + self.opts.auth_timeout;
        let c = self.conns.get_mut(&conn).expect("conn exists");
        c.state = State::AwaitAuthChoice {
            request,
            name,
            buf: rest,
            deadline,
        };
        self.deadlines.insert((deadline, conn));
        self.advance_auth(conn);
    }

    pub(super) fn advance_auth(&mut self, conn: ConnId) {
        let c = self.conns.get_mut(&conn).expect("conn exists");
        let State::AwaitAuthChoice { buf, .. } = &mut c.state else {
            return;
        };
        if buf.len() < AUTH_CHOICE_LEN {
            return;
        }
        let rest = buf.split_off(AUTH_CHOICE_LEN);
        let choice: [u8; AUTH_CHOICE_LEN] = buf[..].try_into().expect("90 bytes");
        let methods = handshake::parse_auth_choice(&choice);
        let allowed = self.opts.auth.decide(&methods, c.peer);
        self.end_handshake(conn);
        let c = self.conns.get_mut(&conn).expect("conn exists");
        let State::AwaitAuthChoice { request, name, .. } =
            std::mem::replace(&mut c.state, State::Closed)
        else {
            unreachable!()
        };
        self.finish_auth(conn, request, name, allowed, rest);
    }

    pub(super) fn finish_auth(
        &mut self,
        conn: ConnId,
        request: ConnectRequest,
        name: Vec<u8>,
        allowed: bool,
        rest: Vec<u8>,
    ) {
        if !allowed {
            return self.deny(conn);
        }
        self.end_handshake(conn);
        let private_group = private_group_name(&name, self.opts.identity.name.as_bytes());
        let c = self.conns.get_mut(&conn).expect("conn exists");
        c.out
            .push(handshake::encode_accept(request.version, &private_group).into());
        c.state = State::Open(Box::new(Session {
            name,
            private_group,
            wants_membership: request.wants_membership,
            inbuf: BytesMut::from(&rest[..]),
            header: None,
            probes: request.offers_probe && request.version.negotiates_auth(),
            hold: None,
            last_heard: self.now,
            writer: Endian::NATIVE,
            last_reassured: self.now,
        }));
        self.stats.sessions_accepted += 1;
        self.mark_writable(conn);
        self.read_messages(conn);
    }

    /// A handshake deadline passed: a connection still waiting for its connect message or
    /// auth choice (and not given a later deadline since) is refused or closed.
    pub(super) fn handshake_expired(&mut self, conn: ConnId, deadline: Instant) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        match &c.state {
            State::AwaitConnect { buf, deadline: d } if *d == deadline => {
                // 3.17 judges a connect message by what arrived; one that stopped after
                // the version gets REJECT_NO_NAME, one that stopped in the name
                // REJECT_ILLEGAL_NAME, and silence just a close.
                let reject = if buf.is_empty() {
                    None
                } else if handshake::connect_is_truncated_before_name(buf) || buf.len() < 2 {
                    Some(Reject::NoName)
                } else {
                    Some(Reject::IllegalName)
                };
                match reject {
                    Some(r) => self.reject(conn, r),
                    None => {
                        self.end_handshake(conn);
                        self.close(conn, false, CloseReason::HandshakeTimeout);
                    }
                }
            }
            State::AwaitAuthChoice { deadline: d, .. } if *d == deadline => {
                self.reject(conn, Reject::Auth);
            }
            _ => {}
        }
    }

    /// Refuses with REJECT_AUTH and frees the reserved name.
    pub(super) fn deny(&mut self, conn: ConnId) {
        self.release_name(conn);
        self.reject(conn, Reject::Auth);
    }

    pub(super) fn reject(&mut self, conn: ConnId, reject: Reject) {
        self.release_name(conn);
        self.end_handshake(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.out.push(Bytes::copy_from_slice(&[reject.byte()]));
            self.mark_writable(conn);
        }
        self.close(conn, true, CloseReason::Rejected(reject));
    }

    pub(super) fn end_handshake(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            if matches!(
                c.state,
                State::AwaitConnect { .. } | State::AwaitAuthChoice { .. }
            ) {
                self.handshakes -= 1;
            }
        }
    }

    /// Frees the name a handshaking connection reserved (rejects are rare: a scan is fine).
    pub(super) fn release_name(&mut self, conn: ConnId) {
        self.names.retain(|_, owner| *owner != conn);
    }

    /// `r<0..9998>-<conn>`, unique among sessions, like 3.17's assigned names.
    pub(super) fn pick_name(&mut self, conn: ConnId) -> Vec<u8> {
        if let Some(name) = self.opts.assigned_names.pop_front() {
            return name;
        }
        loop {
            // xorshift64*: small, seeded, and deterministic for tests.
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            let r = (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % 9999;
            let mut name = format!("r{r}-{conn}").into_bytes();
            name.truncate(limits::MAX_PRIVATE_NAME);
            if !self.names.contains_key(&name) {
                return name;
            }
        }
    }
}
