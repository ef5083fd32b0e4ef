//! The spread-rs daemon: a drop-in for Spread 3.17's `spread`.
//!
//! * [`config`] reads any 3.17 `spread.conf`, with errors at `file:line:column`.
//! * [`core`] is the daemon without I/O: sessions, groups, ordering.
//! * [`io`] is the one thin event loop with sockets and clocks.
//! * [`run`] wires them together for the `spread` binary and for tests.

pub mod config;
pub mod core;
pub mod io;
pub mod run;
