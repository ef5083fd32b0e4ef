//! Who may connect: the auth methods a 3.17 daemon offers and how it decides.
//!
//! 3.17 registers NULL and IP (PWORD only in builds with passwords, which we do not offer).
//! A client names up to three methods; the daemon runs those plus every required one, and
//! the session is accepted only if all of them pass.

use super::Peer;
use std::net::Ipv4Addr;

/// The methods this daemon implements, in the order 3.17 registers (and lists) them.
pub const KNOWN_METHODS: [&str; 2] = ["NULL", "IP"];

/// One line of an IP access list: a network, or the local socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpRule {
    Network {
        addr: Ipv4Addr,
        prefix: u8,
    },
    /// `unix`: sessions on the local socket.
    LocalSocket,
}

impl IpRule {
    fn admits(&self, peer: Peer) -> bool {
        match (self, peer) {
            (IpRule::LocalSocket, Peer::Local) => true,
            (IpRule::Network { addr, prefix }, Peer::Tcp(ip)) => {
                let mask = if *prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from((*prefix).min(32)))
                };
                u32::from(*addr) & mask == u32::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The daemon's auth configuration.
#[derive(Clone, Debug)]
pub struct AuthPolicy {
    /// `AllowedAuthMethods`; 3.17's default is NULL alone.
    pub allowed: Vec<String>,
    /// `RequiredAuthMethods`: run for every session whatever the client chose.
    pub required: Vec<String>,
    /// Who the IP method admits. Empty: nobody (3.17 with no access file).
    pub ip_rules: Vec<IpRule>,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy {
            allowed: vec!["NULL".into()],
            required: Vec::new(),
            ip_rules: Vec::new(),
        }
    }
}

impl AuthPolicy {
    /// Whether `method` is allowed or required (its checks may run for some session).
    pub fn uses(&self, method: &str) -> bool {
        self.allowed
            .iter()
            .chain(&self.required)
            .any(|m| m.eq_ignore_ascii_case(method))
    }

    /// The list sent to clients: allowed methods we implement, in registration order.
    pub fn offered(&self) -> Vec<&'static str> {
        KNOWN_METHODS
            .into_iter()
            .filter(|m| self.allowed.iter().any(|a| a.eq_ignore_ascii_case(m)))
            .collect()
    }

    fn method_passes(&self, method: &str, peer: Peer) -> bool {
        match method {
            "NULL" => true,
            "IP" => self.ip_rules.iter().any(|r| r.admits(peer)),
            _ => false,
        }
    }

    /// Decides a session whose client chose `chosen`.
    pub fn decide(&self, chosen: &[String], peer: Peer) -> bool {
        let offered = self.offered();
        if chosen.is_empty() || !chosen.iter().all(|c| offered.contains(&c.as_str())) {
            return false;
        }
        chosen
            .iter()
            .map(String::as_str)
            .chain(self.required.iter().map(String::as_str))
            .all(|m| self.method_passes(m, peer))
    }

    /// Libraries older than 3.16 do not negotiate: IP if offered, else NULL if offered.
    pub fn decide_without_negotiation(&self, peer: Peer) -> bool {
        let offered = self.offered();
        if offered.contains(&"IP") {
            self.method_passes("IP", peer)
        } else {
            offered.contains(&"NULL")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_offers_null_only() {
        let p = AuthPolicy::default();
        assert_eq!(p.offered(), vec!["NULL"]);
        assert!(p.decide(&["NULL".into()], Peer::Local));
        assert!(!p.decide(&["IP".into()], Peer::Local));
        assert!(!p.decide(&[], Peer::Local));
    }

    #[test]
    fn ip_without_rules_denies() {
        let p = AuthPolicy {
            allowed: vec!["IP".into()],
            ..Default::default()
        };
        assert_eq!(p.offered(), vec!["IP"]);
        assert!(!p.decide(&["IP".into()], Peer::Tcp(Ipv4Addr::LOCALHOST)));
        let p = AuthPolicy {
            ip_rules: vec![IpRule::Network {
                addr: Ipv4Addr::new(127, 0, 0, 0),
                prefix: 8,
            }],
            ..p
        };
        assert!(p.decide(&["IP".into()], Peer::Tcp(Ipv4Addr::new(127, 0, 0, 11))));
        assert!(!p.decide(&["IP".into()], Peer::Tcp(Ipv4Addr::new(10, 0, 0, 1))));
    }
}
