//! Reading `spread.conf`, the configuration file of the Spread 3.17 daemon.
//!
//! Everything Spread 3.17 accepts is accepted here with the same meaning:
//! `Spread_Segment` blocks (daemons written as `name`, `name ADDR`,
//! `name { interfaces }` or `name ADDR { interfaces }`), `DebugFlags`,
//! `EventPriority`, `EventLogFile`, `EventTimeStamp`, `DangerousMonitor`,
//! `SocketPortReuse`, `RuntimeDir`, `DaemonUser`, `DaemonGroup`,
//! `RequiredAuthMethods`, `AllowedAuthMethods`, `AccessControlPolicy`,
//! `LinkProtocol` and `RouteMatrix`. The word rules (what ends a token,
//! which words are reserved, what is case-sensitive) are described in
//! the `lexer` submodule. As an extension, the timeout directives of later Spread
//! versions (`TokenTimeout = 1250` and so on, in milliseconds) fill
//! [`Config::timeouts`].
//!
//! # Errors
//!
//! Parsing stops at the first problem and returns one [`ConfigError`]
//! whose position is the offending token, e.g.
//! `spread.conf:7:5: expected a daemon name or '}', found '='`. Besides
//! syntax, these are errors, as in Spread: an octet above 255, more than
//! [`MAX_SEGMENTS`] segments, [`MAX_DAEMONS`] daemons or
//! [`MAX_INTERFACES_PER_DAEMON`] interfaces per daemon, a daemon name over
//! [`MAX_DAEMON_NAME_BYTES`] bytes or used twice, an empty interface block,
//! a host name that does not resolve, an unknown access control policy,
//! too short a `RouteMatrix` row, loopback segments mixed with network
//! ones. Stricter than Spread (which would misbehave instead): two daemons
//! with one address, an empty daemon name, a segment port above
//! [`MAX_SEGMENT_PORT`], and a configuration without any daemon (Spread
//! parses an empty file, then cannot find itself in it).
//!
//! # Warnings and directives a daemon does not act on
//!
//! The parser does not know which settings the daemon implements, so it
//! only records facts: [`Config::directives`] lists every top-level
//! construct written, with its position, and
//! [`Config::unsupported_directives`] turns the ones missing from the
//! daemon's list into warnings. [`Config::warnings`] holds what the
//! parser itself noticed: text that is accepted but will not do what it
//! seems to (a port on a daemon or interface address, which Spread
//! replaces by the segment's port; a link cost above 100; an unknown
//! authentication method; an empty user, group or runtime directory).
//!
//! # Defaults
//!
//! Absent settings are `None`, empty, `false` or [`PortReuse::Auto`], and
//! the daemon applies Spread's defaults. A segment written without a port
//! (or with `:0`) uses [`DEFAULT_PORT`]. [`Config::embedded_default`] is
//! the minimal file Spread ships: daemon `localhost` at 127.0.0.1 in
//! segment 127.0.0.255:4803.
//!
//! # From the file to the ring
//!
//! [`ring_options`] maps a configuration to the settings a ring starts with; the daemon
//! and the simulator both go through it.

pub mod access_ip;
mod diagnostic;
mod lexer;
mod model;
mod parser;
mod ring;

#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;

pub use diagnostic::{ConfigError, Diagnostic};
pub use model::*;
pub use ring::{flow_control, ring_conf, ring_options, timeouts, RingStart};

/// Looks a host name up for daemons written without an address.
pub type Resolver<'a> = &'a dyn Fn(&str) -> Option<Ipv4Addr>;

/// Parses configuration text; `file_name` is used in diagnostics only.
/// Daemons written without an address are resolved with
/// [`system_resolver`].
pub fn parse_str(text: &str, file_name: &str) -> Result<Config, ConfigError> {
    parse_str_with_resolver(text, file_name, &system_resolver)
}

/// Like [`parse_str`], with host names looked up by `resolve`.
pub fn parse_str_with_resolver(
    text: &str,
    file_name: &str,
    resolve: Resolver<'_>,
) -> Result<Config, ConfigError> {
    parser::Parser::new(text, file_name, resolve)?.parse()
}

/// Reads and parses a file. A file that cannot be read gives an error at
/// line 0. Bytes that are not UTF-8 are replaced, so stray Latin-1 in
/// comments does no harm.
pub fn parse_file(path: &Path) -> Result<Config, ConfigError> {
    let file_name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|err| {
        ConfigError::new(
            &file_name,
            0,
            0,
            format!("cannot read configuration file: {err}"),
        )
    })?;
    parse_str(&String::from_utf8_lossy(&bytes), &file_name)
}

/// The first IPv4 address the system resolver gives for `name`, as the C
/// daemon takes the first address of gethostbyname().
pub fn system_resolver(name: &str) -> Option<Ipv4Addr> {
    (name, 0)
        .to_socket_addrs()
        .ok()?
        .find_map(|address| match address {
            SocketAddr::V4(v4) => Some(*v4.ip()),
            SocketAddr::V6(_) => None,
        })
}
