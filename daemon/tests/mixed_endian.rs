//! A ring of mixed byte order: n2 is a big-endian build of our daemon (powerpc64, run under
//! qemu user emulation), n1 and n3 the native little-endian one. Clients of all three
//! exchange AGREED, SAFE, FIFO and RELIABLE messages; then the big-endian daemon is killed
//! with SIGKILL, the others go on in a 2-member view, and it is restarted and merges back.
//! A second test does the same with C 3.17 daemons as n1 and n3 (when C Spread is installed).
//!
//! Needs `SPREAD_BE_DAEMON` (the ppc64 `spread`) and `SPREAD_BE_RUNNER` (e.g.
//! `qemu-ppc64-static -L /usr/powerpc64-linux-gnu`); prints SKIPPED without them. Building
//! that binary: `cargo xtask build --target powerpc64-unknown-linux-gnu`, or see the
//! commands in the comment of `be_command` below.

mod common;

use common::*;
use spread::{Event, Mailbox, MembershipChange, Service, ServiceKind};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::{Duration, Instant};

/// Emulated, the big-endian daemon runs several times slower than native ones; every wait
/// is generous.
const VIEW_WAIT: Duration = Duration::from_secs(60);
const DELIVERY_WAIT: Duration = Duration::from_secs(60);

/// Our default timeouts (docs/operators.md, "The ring") times five, so a daemon slowed by
/// emulation on a busy host is not taken for a lost one. Every daemon reads the same file.
const SLOW_MEMBER_TIMEOUTS: &str = "\
TokenTimeout = 1000
HurryTimeout = 250
AliveTimeout = 150
JoinTimeout = 150
RepTimeout = 750
SegTimeout = 300
GatherTimeout = 600
FormTimeout = 1500
";

const GROUP: &str = "endian";

/// Messages per sender per round.
const PER_SENDER: u16 = 60;

/// The command line running the big-endian daemon, from the environment. Built here with:
///
/// ```text
/// apt-get install libc6-dev-ppc64-cross libgcc-12-dev-ppc64-cross binutils-powerpc64-linux-gnu \
///     qemu-user-static clang
/// rustup target add powerpc64-unknown-linux-gnu
/// CARGO_TARGET_POWERPC64_UNKNOWN_LINUX_GNU_LINKER=clang \
/// CARGO_TARGET_POWERPC64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=--target=powerpc64-linux-gnu -C link-arg=-fuse-ld=bfd" \
///   cargo build --release --target powerpc64-unknown-linux-gnu -p spread-daemon
/// SPREAD_BE_DAEMON=target/powerpc64-unknown-linux-gnu/release/spread \
/// SPREAD_BE_RUNNER="qemu-ppc64-static -L /usr/powerpc64-linux-gnu" \
///   cargo test -p spread-daemon --test mixed_endian -- --nocapture
/// ```
fn be_command(test: &str) -> Option<DaemonKind> {
    let daemon = std::env::var("SPREAD_BE_DAEMON")
        .ok()
        .filter(|s| !s.is_empty());
    let runner = std::env::var("SPREAD_BE_RUNNER")
        .ok()
        .filter(|s| !s.is_empty());
    let (Some(daemon), Some(runner)) = (daemon, runner) else {
        common::skip(test, "set SPREAD_BE_DAEMON and SPREAD_BE_RUNNER (see the comment of be_command in daemon/tests/mixed_endian.rs)");
        return None;
    };
    // Tests run in daemon/; a relative path may also be from the workspace root.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let daemon = std::fs::canonicalize(&daemon)
        .or_else(|_| std::fs::canonicalize(root.join(&daemon)))
        .unwrap_or_else(|e| panic!("SPREAD_BE_DAEMON={daemon}: {e}"))
        .to_string_lossy()
        .into_owned();
    let mut argv: Vec<OsString> = runner.split_whitespace().map(OsString::from).collect();
    argv.push(daemon.into());
    Some(DaemonKind::Rust(argv))
}

fn service_of(round: u16) -> Service {
    [
        Service::AGREED,
        Service::SAFE,
        Service::FIFO,
        Service::RELIABLE,
    ][round as usize % 4]
}

/// A message's identity in the test: (sender index, round).
type Id = (u8, u16);

/// Every client sends `PER_SENDER` messages cycling AGREED, SAFE, FIFO, RELIABLE, with a
/// mess_type and payload that tell them apart. Every client must receive all of them
/// intact, each sender's in order, and the AGREED/SAFE ones in the same order everywhere.
/// `senders` are the clients' indices (stable across rounds). Returns (messages delivered
/// in all, time until the last client had all).
fn exchange(clients: &mut [Mailbox], senders: &[u8], tag: u8) -> (usize, Duration) {
    let start = Instant::now();
    for round in 0..PER_SENDER {
        for (c, &i) in clients.iter_mut().zip(senders) {
            let mut data = vec![tag, i, (round >> 8) as u8, round as u8];
            // Some length and bytes that differ between messages.
            data.extend((0..(round % 7) * 40).map(|k| (k as u8) ^ i ^ tag));
            let mess_type = 0x1234 - round as i16 * 3 - i as i16;
            c.multicast(service_of(round), &[GROUP], mess_type, &data)
                .unwrap();
        }
    }
    let expected = clients.len() * PER_SENDER as usize;
    let mut totals: Vec<Vec<Id>> = Vec::new();
    for c in clients.iter_mut() {
        let who = c.private_group();
        let mut got: Vec<Id> = Vec::with_capacity(expected);
        let mut total: Vec<Id> = Vec::new();
        let deadline = Instant::now() + DELIVERY_WAIT;
        while got.len() < expected {
            assert!(
                Instant::now() < deadline,
                "{who}: only {} of {expected} messages of round {tag} within {DELIVERY_WAIT:?}",
                got.len()
            );
            match c.receive_timeout(Duration::from_secs(1)).unwrap() {
                Some(Event::Message(m)) => {
                    assert_eq!(m.data[0], tag, "{who}: a message of another round");
                    let (i, round) = (m.data[1], u16::from_be_bytes([m.data[2], m.data[3]]));
                    let body: Vec<u8> =
                        (0..(round % 7) * 40).map(|k| (k as u8) ^ i ^ tag).collect();
                    assert_eq!(&m.data[4..], &body[..], "{who}: payload of ({i}, {round})");
                    assert_eq!(
                        m.mess_type,
                        0x1234 - round as i16 * 3 - i as i16,
                        "{who}: mess_type of ({i}, {round})"
                    );
                    assert_eq!(
                        m.service,
                        service_of(round).kind,
                        "{who}: service of ({i}, {round})"
                    );
                    assert_eq!(m.groups, vec![GROUP.to_string()], "{who}: groups");
                    assert_eq!(
                        m.sender,
                        format!("#c{}#n{}", i + 1, i + 1),
                        "{who}: sender of ({i}, {round})"
                    );
                    assert!(
                        !m.endian_mismatch,
                        "{who}: ({i}, {round}) marked as from another byte order, but every client is little-endian"
                    );
                    if matches!(m.service, ServiceKind::Agreed | ServiceKind::Safe) {
                        total.push((i, round));
                    }
                    got.push((i, round));
                }
                Some(other) => panic!("{who}: unexpected {other:?}"),
                None => {}
            }
        }
        // Every message once; each sender's FIFO-or-stronger ones in order. (RELIABLE
        // promises no order: a C 3.17 daemon delivers it as soon as it has it.)
        let mut seen = std::collections::BTreeSet::new();
        for id in &got {
            assert!(seen.insert(*id), "{who}: {id:?} delivered twice");
        }
        let mut last: BTreeMap<u8, u16> = BTreeMap::new();
        for (sender, round) in got
            .iter()
            .filter(|(_, r)| service_of(*r).kind != ServiceKind::Reliable)
        {
            if let Some(before) = last.insert(*sender, *round) {
                assert!(
                    before < *round,
                    "{who}: sender {sender}'s messages out of order ({before} then {round})"
                );
            }
        }
        assert_eq!(last.len(), senders.len(), "{who}: not every sender heard");
        totals.push(total);
    }
    assert!(
        totals.windows(2).all(|w| w[0] == w[1]),
        "clients of little- and big-endian daemons delivered AGREED/SAFE in different orders"
    );
    (expected * clients.len(), start.elapsed())
}

/// Waits until every client has a regular view of GROUP with exactly `members`.
fn await_view(clients: &mut [Mailbox], members: &[&str]) -> Duration {
    let start = Instant::now();
    for c in clients.iter_mut() {
        let (_, change) = until_members(c, GROUP, members.len(), VIEW_WAIT);
        match change {
            MembershipChange::Regular { members: got, .. } => {
                assert_eq!(got, members, "{}: view", c.private_group())
            }
            other => panic!("{other:?}"),
        }
    }
    start.elapsed()
}

#[test]
fn big_endian_daemon_in_a_little_endian_ring() {
    let Some(be) = be_command("big_endian_daemon_in_a_little_endian_ring") else {
        return;
    };
    let started = Instant::now();
    let ring = Ring::start(vec![ours(), be, ours()], SLOW_MEMBER_TIMEOUTS);
    println!(
        "ring of n1 (native), n2 (big-endian, emulated), n3 (native) listening after {:?}",
        started.elapsed()
    );
    kill_and_merge_the_big_endian_daemon(ring, started);
}

/// The same with C 3.17 daemons on both sides of ours: the endian bits of 3.17's type
/// words between a big-endian Rust daemon and little-endian C ones.
#[test]
fn big_endian_daemon_in_a_ring_with_c_daemons() {
    let Some(be) = be_command("big_endian_daemon_in_a_ring_with_c_daemons") else {
        return;
    };
    let Some(c) = CSpread::find_or_skip("big_endian_daemon_in_a_ring_with_c_daemons") else {
        return;
    };
    let started = Instant::now();
    // 3.17's parser refuses the timeout directives: every daemon runs 3.17's own timeouts
    // (ours through --with-c-daemons), which are long enough for an emulated member.
    let ring = Ring::start(vec![DaemonKind::C(c.clone()), be, DaemonKind::C(c)], "");
    println!(
        "ring of n1 (C 3.17), n2 (ours, big-endian, emulated), n3 (C 3.17) listening after {:?}",
        started.elapsed()
    );
    kill_and_merge_the_big_endian_daemon(ring, started);
}

/// Clients on all three exchange messages; n2 (big-endian) is killed, the others go on in
/// a 2-member view; n2 restarts and merges; a last exchange.
fn kill_and_merge_the_big_endian_daemon(mut ring: Ring, started: Instant) {
    let all = ["#c1#n1", "#c2#n2", "#c3#n3"];
    let mut clients: Vec<Mailbox> = (1..=3)
        .map(|n| connect_named(&ring.address(n), &format!("c{n}")))
        .collect();
    for c in clients.iter_mut() {
        c.join(GROUP).unwrap();
    }
    let t = await_view(&mut clients, &all);
    println!("3-member view at all clients after {t:?}");
    let (mut delivered, t) = exchange(&mut clients, &[0, 1, 2], 1);
    println!("round 1 (3 daemons): {delivered} deliveries in {t:?}");

    // kill -9 of the big-endian daemon: the little-endian two go on.
    let killed = Instant::now();
    ring.kill(2);
    clients.remove(1);
    let t = await_view(&mut clients, &["#c1#n1", "#c3#n3"]);
    println!(
        "kill -9 of the big-endian daemon to a 2-member view at both other clients: {t:?} ({:?} since the kill)",
        killed.elapsed()
    );
    let (n, t) = exchange(&mut clients, &[0, 2], 2);
    delivered += n;
    println!("round 2 (2 daemons): {n} deliveries in {t:?}");

    // It comes back and merges.
    let restarted = Instant::now();
    ring.start_daemon(2);
    let mut c2 = connect_named(&ring.address(2), "c2");
    c2.join(GROUP).unwrap();
    clients.insert(1, c2);
    let t = await_view(&mut clients, &all);
    println!(
        "big-endian daemon restarted and merged, 3-member view at all clients: {t:?} ({:?} since the restart)",
        restarted.elapsed()
    );
    let (n, t) = exchange(&mut clients, &[0, 1, 2], 3);
    delivered += n;
    println!("round 3 (3 daemons again): {n} deliveries in {t:?}");
    println!(
        "all {delivered} deliveries intact and once each, each sender's FIFO-or-stronger ones in order, AGREED/SAFE in one order; whole test {:?}",
        started.elapsed()
    );
}
