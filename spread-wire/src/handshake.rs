//! The connect handshake of Spread 3.17, both sides.
//!
//! ```text
//! C->D  maj min [patch, if maj.min > 3.14] flags name_len name      (one write)
//! D->C  list_len "NULL IP "                (libraries >= 3.16 only; or one reject byte)
//! C->D  3 x 30 bytes of method names, NUL padded                    (one write)
//! D->C  01 maj min [patch, if library >= 3.15] len "#name#daemon"   (or one reject byte)
//! ```
//! `flags` is 1 when the client wants membership messages, plus 16 x priority.

use crate::consts::limits::{MAX_AUTH_METHODS, MAX_AUTH_NAME, MAX_PRIVATE_NAME};
use crate::consts::{code, version};
use crate::names::{is_name_byte, GroupName};

/// Why a daemon refuses a connection, sent as one signed byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Reject {
    #[error("the daemon serves too many sessions (REJECT_QUOTA)")]
    Quota,
    #[error("the connect message ended before the name (REJECT_NO_NAME)")]
    NoName,
    #[error("the private name is too long or has illegal characters (REJECT_ILLEGAL_NAME)")]
    IllegalName,
    #[error("another session already uses this private name (REJECT_NOT_UNIQUE)")]
    NotUnique,
    #[error("the client library's version is not supported (REJECT_VERSION)")]
    Version,
    #[error("authentication failed or was refused (REJECT_AUTH)")]
    Auth,
}

impl Reject {
    pub fn code(self) -> i32 {
        match self {
            Reject::Quota => code::REJECT_QUOTA,
            Reject::NoName => code::REJECT_NO_NAME,
            Reject::IllegalName => code::REJECT_ILLEGAL_NAME,
            Reject::NotUnique => code::REJECT_NOT_UNIQUE,
            Reject::Version => code::REJECT_VERSION,
            Reject::Auth => code::REJECT_AUTH,
        }
    }

    /// The byte that goes on the wire.
    pub fn byte(self) -> u8 {
        self.code() as i8 as u8
    }

    pub fn from_code(code: i32) -> Option<Reject> {
        [
            Reject::Quota,
            Reject::NoName,
            Reject::IllegalName,
            Reject::NotUnique,
            Reject::Version,
            Reject::Auth,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }
}

/// A library version as three bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
    pub patch: u8,
}

impl Version {
    pub const OURS: Version = Version {
        major: version::MAJOR,
        minor: version::MINOR,
        patch: version::PATCH,
    };

    pub fn number(self) -> u32 {
        version::number(self.major, self.minor, self.patch)
    }

    /// Libraries newer than 3.14 send a patch byte.
    fn sends_patch(major: u8, minor: u8) -> bool {
        version::number(major, minor, 0) > 31_400
    }

    /// Libraries from 3.15.0 expect the daemon's patch byte in the accept.
    pub fn expects_patch_in_accept(self) -> bool {
        self.number() >= 31_500
    }

    /// Libraries from 3.16.0 take part in the auth exchange.
    pub fn negotiates_auth(self) -> bool {
        self.number() >= 31_600
    }

    /// The oldest library a 3.17 daemon serves is 3.1.0.
    pub fn is_supported(self) -> bool {
        self.number() >= 30_100
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The client's first message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub version: Version,
    pub wants_membership: bool,
    pub priority: u8,
    /// The client offers the liveness probe ([`crate::probe::OFFER_FLAG`]).
    pub offers_probe: bool,
    /// Empty: the daemon picks a name.
    pub name: Vec<u8>,
}

impl ConnectRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.version.major, self.version.minor];
        if Version::sends_patch(self.version.major, self.version.minor) {
            out.push(self.version.patch);
        }
        let offer = if self.offers_probe {
            crate::probe::OFFER_FLAG
        } else {
            0
        };
        out.push(u8::from(self.wants_membership) | offer | (self.priority << 4));
        out.push(self.name.len() as u8);
        out.extend_from_slice(&self.name);
        out
    }
}

/// The result of looking at the bytes a client has sent so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Not enough bytes yet.
    NeedMore,
    /// A whole item and how many bytes it took.
    Done(T, usize),
}

/// Reads a connect message as the daemon does, from however many bytes have arrived.
///
/// Rules (3.17's `Sess_accept_continue`): versions below 3.1.0 get REJECT_VERSION; a name
/// length above 10 (or negative as a signed byte) gets REJECT_ILLEGAL_NAME, as does a name
/// byte outside `'$'..='~'`. Uniqueness is the caller's business.
pub fn parse_connect(buf: &[u8]) -> Result<Parsed<ConnectRequest>, Reject> {
    if buf.len() < 2 {
        return Ok(Parsed::NeedMore);
    }
    let (major, minor) = (buf[0], buf[1]);
    let mut at = 2;
    let mut patch = 0;
    if Version::sends_patch(major, minor) {
        let Some(&p) = buf.get(at) else {
            return Ok(Parsed::NeedMore);
        };
        patch = p;
        at += 1;
    }
    let version = Version {
        major,
        minor,
        patch,
    };
    if !version.is_supported() {
        return Err(Reject::Version);
    }
    let (Some(&flags), Some(&len)) = (buf.get(at), buf.get(at + 1)) else {
        return Ok(Parsed::NeedMore);
    };
    at += 2;
    let name_len = len as i8;
    if name_len < 0 || name_len as usize > MAX_PRIVATE_NAME {
        return Err(Reject::IllegalName);
    }
    let name_len = name_len as usize;
    let Some(name) = buf.get(at..at + name_len) else {
        return Ok(Parsed::NeedMore);
    };
    if !name.iter().all(|&b| is_name_byte(b)) {
        return Err(Reject::IllegalName);
    }
    // The flags byte is a signed char in C: odd means "wants membership", /16 the priority.
    let flags = flags as i8;
    let request = ConnectRequest {
        version,
        wants_membership: flags % 2 == 1,
        priority: (flags / 16).max(0) as u8,
        offers_probe: flags as u8 & crate::probe::OFFER_FLAG != 0,
        name: name.to_vec(),
    };
    Ok(Parsed::Done(request, at + name_len))
}

/// The length of a connect message whose first bytes are `buf`, once it is knowable; used to
/// tell "incomplete" from "the client stopped half way" when a deadline passes.
pub fn connect_is_truncated_before_name(buf: &[u8]) -> bool {
    let header = if buf.len() >= 2 && Version::sends_patch(buf[0], buf[1]) {
        3
    } else {
        2
    };
    buf.len() >= header && buf.len() < header + 2
}

/// The daemon's list of allowed auth methods: one length byte, then each name and a space.
pub fn encode_auth_list<S: AsRef<str>>(methods: &[S]) -> Vec<u8> {
    let mut text = String::new();
    for m in methods {
        text.push_str(m.as_ref());
        text.push(' ');
    }
    let mut out = Vec::with_capacity(text.len() + 1);
    out.push(text.len().min(255) as u8);
    out.extend_from_slice(&text.as_bytes()[..text.len().min(255)]);
    out
}

/// What the client reads where the auth list should be: the list, or a reject byte.
pub fn parse_auth_list(buf: &[u8]) -> Result<Parsed<Vec<String>>, Reject> {
    let Some(&len) = buf.first() else {
        return Ok(Parsed::NeedMore);
    };
    // The library reads this byte as a signed char: negative is a reject code.
    if (len as i8) < 0 {
        return Err(Reject::from_code(len as i8 as i32).unwrap_or(Reject::Auth));
    }
    let len = len as usize;
    let Some(text) = buf.get(1..1 + len) else {
        return Ok(Parsed::NeedMore);
    };
    let methods = String::from_utf8_lossy(text)
        .split(' ')
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Parsed::Done(methods, 1 + len))
}

/// The size of the client's auth choice: three 30-byte slots.
pub const AUTH_CHOICE_LEN: usize = MAX_AUTH_METHODS * MAX_AUTH_NAME;

/// The client's choice of methods, NUL padded into three 30-byte slots.
pub fn encode_auth_choice<S: AsRef<str>>(methods: &[S]) -> [u8; AUTH_CHOICE_LEN] {
    let mut out = [0u8; AUTH_CHOICE_LEN];
    for (slot, m) in methods.iter().take(MAX_AUTH_METHODS).enumerate() {
        let name = m.as_ref().as_bytes();
        let n = name.len().min(MAX_AUTH_NAME - 1);
        out[slot * MAX_AUTH_NAME..slot * MAX_AUTH_NAME + n].copy_from_slice(&name[..n]);
    }
    out
}

/// The methods named in a 90-byte choice, up to the first empty slot (as the daemon reads).
pub fn parse_auth_choice(choice: &[u8; AUTH_CHOICE_LEN]) -> Vec<String> {
    choice
        .chunks(MAX_AUTH_NAME)
        .map(|slot| {
            let end = slot.iter().position(|&b| b == 0).unwrap_or(slot.len());
            String::from_utf8_lossy(&slot[..end]).into_owned()
        })
        .take_while(|m| !m.is_empty())
        .collect()
}

/// The daemon's accept: `01 maj min [patch] len "#name#daemon"`.
pub fn encode_accept(library: Version, private_group: &GroupName) -> Vec<u8> {
    let name = private_group.as_bytes();
    let mut out = vec![code::ACCEPT_SESSION as u8, version::MAJOR, version::MINOR];
    if library.expects_patch_in_accept() {
        out.push(version::PATCH);
    }
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out
}

/// What a 3.17 client reads after its auth choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub daemon_version: Version,
    pub private_group: GroupName,
}

/// Reads the accept (or a reject byte) as a 3.15+ library: always a patch byte.
pub fn parse_accept(buf: &[u8]) -> Result<Parsed<Accepted>, Reject> {
    let Some(&first) = buf.first() else {
        return Ok(Parsed::NeedMore);
    };
    if first as i8 as i32 != code::ACCEPT_SESSION {
        return Err(Reject::from_code(first as i8 as i32).unwrap_or(Reject::Auth));
    }
    if buf.len() < 5 {
        return Ok(Parsed::NeedMore);
    }
    let len = buf[4] as usize;
    let Some(name) = buf.get(5..5 + len) else {
        return Ok(Parsed::NeedMore);
    };
    Ok(Parsed::Done(
        Accepted {
            daemon_version: Version {
                major: buf[1],
                minor: buf[2],
                patch: buf[3],
            },
            private_group: GroupName::from_bytes(name),
        },
        5 + len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_connect_parses() {
        // 03 11 03 01 05 "alice"
        let raw = b"\x03\x11\x03\x01\x05alice";
        let Parsed::Done(req, used) = parse_connect(raw).unwrap() else {
            panic!()
        };
        assert_eq!(used, raw.len());
        assert_eq!(req.version, Version::OURS);
        assert!(req.wants_membership);
        assert_eq!(req.name, b"alice");
        assert_eq!(req.encode(), raw.to_vec());
    }

    #[test]
    fn priority_and_flags() {
        let Parsed::Done(req, _) = parse_connect(b"\x03\x11\x03\x11\x01a").unwrap() else {
            panic!()
        };
        assert!(req.wants_membership);
        assert_eq!(req.priority, 1);
    }

    #[test]
    fn old_and_bad_connects_are_rejected() {
        assert_eq!(parse_connect(b"\x03\x00\x01\x01a"), Err(Reject::Version));
        assert_eq!(
            parse_connect(b"\x03\x11\x03\x01\x0bxxxxxxxxxxx"),
            Err(Reject::IllegalName)
        );
        assert_eq!(
            parse_connect(b"\x03\x11\x03\x01\x03a b"),
            Err(Reject::IllegalName)
        );
        assert_eq!(
            parse_connect(b"\x03\x11\x03\x01\xff"),
            Err(Reject::IllegalName)
        );
        assert_eq!(parse_connect(b"\x03\x11\x03\x01"), Ok(Parsed::NeedMore));
        // A 3.13 library sends no patch byte.
        let Parsed::Done(req, used) = parse_connect(b"\x03\x0d\x01\x03v13").unwrap() else {
            panic!()
        };
        assert_eq!((req.version.number(), used), (31_300, 7));
    }

    #[test]
    fn auth_list_and_choice() {
        assert_eq!(encode_auth_list(&["NULL"]), b"\x05NULL ".to_vec());
        assert_eq!(
            parse_auth_list(b"\x08NULL IP ").unwrap(),
            Parsed::Done(vec!["NULL".to_string(), "IP".to_string()], 9)
        );
        assert_eq!(parse_auth_list(b"\xfa"), Err(Reject::NotUnique));
        let choice = encode_auth_choice(&["NULL"]);
        assert_eq!(&choice[..5], b"NULL\0");
        assert_eq!(parse_auth_choice(&choice), vec!["NULL".to_string()]);
    }

    #[test]
    fn accept_round_trips() {
        let raw = encode_accept(Version::OURS, &GroupName::new("#dave#n1"));
        assert_eq!(raw, b"\x01\x03\x11\x03\x08#dave#n1".to_vec());
        let Parsed::Done(acc, used) = parse_accept(&raw).unwrap() else {
            panic!()
        };
        assert_eq!(used, raw.len());
        assert_eq!(acc.private_group, GroupName::new("#dave#n1"));
        // A 3.13 library gets no patch byte.
        let old = Version {
            major: 3,
            minor: 13,
            patch: 0,
        };
        assert_eq!(
            encode_accept(old, &GroupName::new("#v13#n1")),
            b"\x01\x03\x11\x07#v13#n1".to_vec()
        );
        assert_eq!(parse_accept(b"\xf7"), Err(Reject::Auth));
    }
}
