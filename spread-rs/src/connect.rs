//! Connect options and the client's steps of the 3.17 handshake, without I/O: the
//! blocking and the async transport both write what these build and find the daemon's
//! answers in what they read with [`HandshakeInput`].

use crate::liveness::{Liveness, ProbeMode, Prober};
use crate::proto::Codec;
use crate::session::read_outcome;
use crate::{Error, Keepalive};
use spread_wire::handshake::{self, ConnectRequest, Parsed, Reject, Version, AUTH_CHOICE_LEN};
use spread_wire::names::is_name_byte;
use spread_wire::probe;
use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `4803`, `4803@host` or `4803@a.b.c.d`, as in 3.17.
    pub daemon: String,
    /// The private name, up to 10 characters; empty lets the daemon pick one.
    pub name: String,
    /// Receive membership messages.
    pub membership: bool,
    /// 0 or 1; 3.17 stores it and does nothing with it.
    pub priority: u8,
    /// Limit on connecting and the handshake; `None` waits as long as the OS does.
    pub timeout: Option<Duration>,
    /// Auth methods to use; every one must be in the daemon's list.
    pub auth_methods: Vec<String>,
    /// TCP keepalive of this connection ([`Keepalive::DEFAULT`] unless changed); `None`
    /// leaves the OS defaults (on Linux, 2 h 12 min to notice a dead host).
    pub keepalive: Option<Keepalive>,
    /// Liveness probing of the daemon ([`Liveness::DEFAULT`] unless changed): notices a
    /// daemon that is up but does not run, which keepalive cannot. `None` sends exactly
    /// the bytes of 3.17's library (no probe offered, no probe sent).
    pub liveness: Option<Liveness>,
}

impl ConnectOptions {
    pub fn new(daemon: impl Into<String>) -> ConnectOptions {
        ConnectOptions {
            daemon: daemon.into(),
            name: String::new(),
            membership: true,
            priority: 0,
            timeout: Some(Duration::from_secs(10)),
            auth_methods: vec!["NULL".into()],
            keepalive: Some(Keepalive::DEFAULT),
            liveness: Some(Liveness::DEFAULT),
        }
    }

    /// The daemon to connect to (as in [`ConnectOptions::new`]).
    pub fn daemon(mut self, daemon: impl Into<String>) -> Self {
        self.daemon = daemon.into();
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn membership(mut self, on: bool) -> Self {
        self.membership = on;
        self
    }

    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority.min(1);
        self
    }

    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Liveness probing: `Some` to probe (see [`Liveness`]), `None` for 3.17's exact bytes.
    pub fn liveness(mut self, liveness: Option<Liveness>) -> Self {
        self.liveness = liveness;
        self
    }

    pub fn auth_methods<S: Into<String>>(mut self, methods: impl IntoIterator<Item = S>) -> Self {
        self.auth_methods = methods.into_iter().map(Into::into).collect();
        self
    }
}

/// Step 1: the connect message (the name checked as 3.17 would, but refused rather than
/// cut). The probe is offered only when liveness is on.
pub(crate) fn connect_request(options: &ConnectOptions) -> Result<Vec<u8>, Error> {
    let name = options.name.as_bytes();
    // 3.17's library cuts long names to 10 characters; we refuse instead of silently
    // turning one name into another that may clash.
    if name.len() > spread_wire::consts::limits::MAX_PRIVATE_NAME
        || !name.iter().all(|&b| is_name_byte(b))
    {
        return Err(Error::IllegalName(options.name.clone()));
    }
    Ok(ConnectRequest {
        version: Version::OURS,
        wants_membership: options.membership,
        priority: options.priority.min(1),
        offers_probe: options.liveness.is_some(),
        name: name.to_vec(),
    }
    .encode())
}

/// Step 2: given the daemon's auth list, the choice to send and how the session will
/// probe (`None` when liveness is off). The pseudo-method `PROBE` is taken out first, so
/// the choice names real methods only; it is looked for only when we offered.
pub(crate) fn auth_choice(
    options: &ConnectOptions,
    offered: Vec<String>,
) -> Result<([u8; AUTH_CHOICE_LEN], Option<ProbeMode>), Error> {
    let (offered, mode) = match options.liveness {
        Some(_) => {
            let (methods, accepted) = probe::take_offer_answer(offered);
            let mode = if accepted {
                ProbeMode::Native
            } else {
                ProbeMode::NoOp
            };
            (methods, Some(mode))
        }
        None => (offered, None),
    };
    if options.auth_methods.is_empty() || !options.auth_methods.iter().all(|m| offered.contains(m))
    {
        // 3.17's library also gives up here, without sending a choice.
        return Err(Error::Rejected(Reject::Auth));
    }
    Ok((handshake::encode_auth_choice(&options.auth_methods), mode))
}

/// Tries the addresses a host name resolved to, in turn: the first connection made, or the
/// last error.
pub(crate) fn first_connected<A, S>(
    addrs: impl IntoIterator<Item = A>,
    mut connect: impl FnMut(A) -> io::Result<S>,
) -> io::Result<S> {
    let mut attempt = Err(no_address());
    for a in addrs {
        attempt = connect(a);
        if attempt.is_ok() {
            break;
        }
    }
    attempt
}

/// The error of a host name that resolved to no address at all.
pub(crate) fn no_address() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no address")
}

/// A new TCP connection: Nagle off (a request must leave at once) and the keepalive asked
/// for.
pub(crate) fn tune(stream: &impl AsFd, options: &ConnectOptions) -> io::Result<()> {
    socket2::SockRef::from(stream).set_nodelay(true)?;
    match options.keepalive {
        Some(k) => k.apply(stream),
        None => Ok(()),
    }
}

/// Step 3, once accepted: the session's probe bookkeeping, `None` when it does not probe.
pub(crate) fn prober(
    options: &ConnectOptions,
    mode: Option<ProbeMode>,
    codec: &Codec,
) -> Option<Prober> {
    match (options.liveness, mode) {
        (Some(liveness), Some(mode)) => Some(Prober::new(liveness, mode, codec)),
        _ => None,
    }
}

/// What the daemon sent during the handshake, read so far, and the handshake's deadline.
/// The transport reads; this finds the daemon's answers in the bytes and keeps what
/// follows the accept for the session.
pub(crate) struct HandshakeInput {
    buf: Vec<u8>,
    deadline: Option<Instant>,
}

/// How much one handshake read takes: the answers are short, and what follows the accept
/// belongs to the session.
pub(crate) const HANDSHAKE_CHUNK: usize = 512;

impl HandshakeInput {
    /// A handshake of at most `options.timeout`, starting at `now`.
    pub fn new(options: &ConnectOptions, now: Instant) -> HandshakeInput {
        HandshakeInput {
            buf: Vec::new(),
            deadline: options.timeout.map(|t| now + t),
        }
    }

    /// The item `parse` finds at the front of what was read, taken out; `None` until it
    /// has come whole.
    pub fn take<T>(
        &mut self,
        parse: impl Fn(&[u8]) -> Result<Parsed<T>, Reject>,
    ) -> Result<Option<T>, Error> {
        match parse(&self.buf).map_err(Error::Rejected)? {
            Parsed::Done(item, used) => {
                self.buf.drain(..used);
                Ok(Some(item))
            }
            Parsed::NeedMore => Ok(None),
        }
    }

    /// How long the next read may wait (`None`: without limit); [`Error::Timeout`] once
    /// the deadline has passed.
    pub fn time_left(&self, now: Instant) -> Result<Option<Duration>, Error> {
        match self.deadline {
            Some(d) if d <= now => Err(Error::Timeout),
            Some(d) => Ok(Some(d - now)),
            None => Ok(None),
        }
    }

    /// A read into `chunk` brought `read` (`None`: its time ran out).
    pub fn received(&mut self, chunk: &[u8], read: Option<io::Result<usize>>) -> Result<(), Error> {
        match read_outcome(read)? {
            Some(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            None => Err(Error::Timeout),
        }
    }

    /// What the daemon sent after the accept: the session's first bytes.
    pub fn into_leftover(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_liveness_the_connect_is_3_17s() {
        let options = ConnectOptions::new("4803").name("alice").liveness(None);
        assert_eq!(
            connect_request(&options).unwrap(),
            b"\x03\x11\x03\x01\x05alice".to_vec()
        );
        let with = ConnectOptions::new("4803").name("alice");
        assert_eq!(
            connect_request(&with).unwrap(),
            b"\x03\x11\x03\x03\x05alice".to_vec()
        );
    }

    #[test]
    fn the_probe_pseudo_method_never_reaches_the_choice() {
        let options = ConnectOptions::new("4803").auth_methods(["NULL", "PROBE"]);
        // Our daemon lists PROBE: it is taken out, and asking for it as a method fails.
        let r = auth_choice(&options, vec!["NULL".into(), "PROBE".into()]);
        assert!(matches!(r, Err(Error::Rejected(Reject::Auth))));
        let options = ConnectOptions::new("4803");
        let (choice, mode) = auth_choice(&options, vec!["NULL".into(), "PROBE".into()]).unwrap();
        assert_eq!(mode, Some(ProbeMode::Native));
        assert_eq!(handshake::parse_auth_choice(&choice), ["NULL"]);
        let (_, mode) = auth_choice(&options, vec!["NULL".into()]).unwrap();
        assert_eq!(mode, Some(ProbeMode::NoOp));
        let off = ConnectOptions::new("4803").liveness(None);
        let (_, mode) = auth_choice(&off, vec!["NULL".into()]).unwrap();
        assert_eq!(mode, None);
    }
}
