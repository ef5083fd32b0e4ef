//! Daemon addresses as 3.17 writes them: `4803` (local socket), `4803@host`, `4803@1.2.3.4`.

use crate::Error;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonAddress {
    /// TCP to `host:port`.
    Tcp { host: String, port: u16 },
    /// The local socket at this path (`/tmp/<port>` for a bare port).
    Local(PathBuf),
}

impl DaemonAddress {
    /// Parses a 3.17 daemon name. Empty means `4803`, as in the C library.
    pub fn parse(spec: &str) -> Result<DaemonAddress, Error> {
        let spec = if spec.is_empty() { "4803" } else { spec };
        if spec.contains(' ') {
            return Err(Error::IllegalSpread(spec.into()));
        }
        let (port, host) = match spec.split_once('@') {
            Some((port, host)) => (port, Some(host)),
            None => (spec, None),
        };
        let port: u16 = port
            .parse()
            .map_err(|_| Error::IllegalSpread(spec.into()))?;
        Ok(match host {
            Some(h) if !h.is_empty() => DaemonAddress::Tcp {
                host: h.to_string(),
                port,
            },
            Some(_) => return Err(Error::IllegalSpread(spec.into())),
            None => DaemonAddress::Local(PathBuf::from(format!("/tmp/{port}"))),
        })
    }
}

impl DaemonAddress {
    /// A host name that does not resolve makes the address unusable (ILLEGAL_SPREAD).
    pub(crate) fn unresolved(&self) -> Error {
        Error::IllegalSpread(self.to_string())
    }

    /// Nothing accepted a connection here (`source`: the last attempt's error).
    pub(crate) fn could_not_connect(&self, source: std::io::Error) -> Error {
        Error::CouldNotConnect {
            address: self.to_string(),
            source,
        }
    }
}

impl std::fmt::Display for DaemonAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonAddress::Tcp { host, port } => write!(f, "{port}@{host}"),
            DaemonAddress::Local(path) => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_3_17_forms() {
        assert_eq!(
            DaemonAddress::parse("4803").unwrap(),
            DaemonAddress::Local("/tmp/4803".into())
        );
        assert_eq!(
            DaemonAddress::parse("").unwrap(),
            DaemonAddress::Local("/tmp/4803".into())
        );
        assert_eq!(
            DaemonAddress::parse("4803@127.0.0.1").unwrap(),
            DaemonAddress::Tcp {
                host: "127.0.0.1".into(),
                port: 4803
            }
        );
        assert!(DaemonAddress::parse("48 03").is_err());
        assert!(DaemonAddress::parse("x@y").is_err());
        assert!(DaemonAddress::parse("4803@").is_err());
    }
}
