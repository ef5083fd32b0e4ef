//! Connect options and the client's steps of the 3.17 handshake, without I/O: the
//! blocking and the async transport both write what these build and parse what they read
//! with spread-wire's parsers.

use crate::liveness::{Liveness, ProbeMode};
use crate::{Error, Keepalive};
use spread_wire::handshake::{self, ConnectRequest, Reject, Version, AUTH_CHOICE_LEN};
use spread_wire::names::is_name_byte;
use spread_wire::probe;
use std::time::Duration;

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
