//! What only the daemon's integration tests need on top of the test kit (spread-testkit,
//! re-exported here): this crate's own `spread` binary, and a few client helpers.
#![allow(dead_code)]

pub use spread_testkit::*;

use std::time::{Duration, Instant};

/// Our daemon: the `spread` binary cargo built for these tests.
pub fn ours() -> DaemonKind {
    DaemonKind::rust(env!("CARGO_BIN_EXE_spread"))
}

/// Starts our daemon alone with `conf_extra` after its segment.
pub fn start_rust_daemon(conf_extra: &str) -> RunningDaemon {
    start_rust_daemon_with_args(conf_extra, &[])
}

/// [`start_rust_daemon`], with more command-line arguments.
pub fn start_rust_daemon_with_args(conf_extra: &str, args: &[&str]) -> RunningDaemon {
    start_alone(&ours(), conf_extra, args).unwrap_or_else(|e| panic!("our daemon: {e}"))
}

/// Starts C 3.17's daemon alone and waits until it orders messages.
pub fn start_c_daemon(c: &CSpread) -> RunningDaemon {
    let daemon = start_alone(&DaemonKind::C(c.clone()), "", &[])
        .unwrap_or_else(|e| panic!("the C daemon: {e}"));
    wait_until_operational(&daemon.address());
    daemon
}

/// Connects a spread-rs client named `name`.
pub fn connect_named(addr: &str, name: &str) -> spread::Mailbox {
    spread::Mailbox::connect(&spread::ConnectOptions::new(addr).name(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Receives until a regular membership of `group` with `n` members arrives; returns the
/// events before it and the membership.
pub fn until_members(
    m: &mut spread::Mailbox,
    group: &str,
    n: usize,
    within: Duration,
) -> (Vec<spread::Event>, spread::MembershipChange) {
    let deadline = Instant::now() + within;
    let mut before = Vec::new();
    while Instant::now() < deadline {
        match m.receive_timeout(Duration::from_millis(200)).unwrap() {
            Some(spread::Event::Membership(ms)) if ms.group == group => {
                if let spread::MembershipChange::Regular { members, .. } = &ms.change {
                    if members.len() == n {
                        return (before, ms.change);
                    }
                }
                before.push(spread::Event::Membership(ms));
            }
            Some(e) => before.push(e),
            None => {}
        }
    }
    panic!("no view of {group} with {n} members within {within:?}; got {before:?}");
}
