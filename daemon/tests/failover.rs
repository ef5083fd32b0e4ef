//! Liveness probes and failover against real daemons, for the blocking and the async client:
//! a daemon killed (SIGKILL) or hung (SIGSTOP) under a client, a client that stops talking
//! to our daemon, and the no-op probe against a C 3.17 daemon.
//!
//! No timing assertions beyond "it does not hang": each wait has a generous upper bound.

mod common;

use common::*;
use spread::{
    Cause, ConnectOptions, DaemonAddress, Error, Event, Failover, FailoverInfo, FailoverOptions,
    Liveness, Mailbox, MembershipChange, ProbeMode, Service,
};
use spread_wire::handshake::{self, ConnectRequest, Parsed, Version};
use spread_wire::{probe, Endian};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Generous: ring reformation after a crash, then a reconnect.
const WITHIN: Duration = Duration::from_secs(30);

fn fast() -> Liveness {
    Liveness::new(Duration::from_millis(200), Duration::from_secs(1))
}

fn options(name: &str) -> ConnectOptions {
    ConnectOptions::new("").name(name).liveness(Some(fast()))
}

fn failover_options(ring: &Ring, name: &str) -> FailoverOptions {
    FailoverOptions::new((1..=3).map(|n| ring.address(n)), options(name))
        .connect_timeout(Duration::from_secs(1))
        .give_up_after(Some(WITHIN))
}

fn addr(ring: &Ring, n: u8) -> DaemonAddress {
    DaemonAddress::parse(&ring.address(n)).unwrap()
}

/// SIGCONTs a stopped daemon however the test ends.
struct Resume<'a>(&'a Ring, u8);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.signal(self.1, "CONT");
    }
}

/// Whether `event` is a regular view of `group` holding every one of `members`.
fn view_with(event: &Event, group: &str, members: &[&str]) -> bool {
    match event {
        Event::Membership(m) if m.group == group => match &m.change {
            MembershipChange::Regular { members: all, .. } => {
                members.iter().all(|w| all.iter().any(|m| m == w))
            }
            _ => false,
        },
        _ => false,
    }
}

/// Receives from a Failover until `want` holds; panics after `within`.
fn failover_until(
    f: &mut Failover,
    within: Duration,
    what: &str,
    mut want: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match f.receive_timeout(Duration::from_millis(200)) {
            Ok(Some(e)) if want(&e) => return e,
            Ok(Some(e)) => seen.push(e),
            Ok(None) => {}
            Err(e) => panic!("{what}: {e} (after {seen:?})"),
        }
    }
    panic!("{what}: not within {within:?}; got {seen:?}");
}

/// Receives from a plain Mailbox until `want` holds.
fn mailbox_until(
    m: &mut Mailbox,
    within: Duration,
    what: &str,
    mut want: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match m.receive_timeout(Duration::from_millis(200)) {
            Ok(Some(e)) if want(&e) => return e,
            Ok(Some(e)) => seen.push(e),
            Ok(None) => {}
            Err(e) => panic!("{what}: {e} (after {seen:?})"),
        }
    }
    panic!("{what}: not within {within:?}; got {seen:?}");
}

fn failover_info(e: Event) -> FailoverInfo {
    match e {
        Event::Failover(info) => info,
        other => panic!("not a failover: {other:?}"),
    }
}

/// The common part of the blocking failover tests: a Failover client `fo` on n1 in group
/// `fg`, a plain member on n3; `lose_n1` takes n1 away; then the failover is checked, the
/// new view, and a message from the failed-over client reaching the other member.
fn blocking_failover(lose_n1: impl FnOnce(&mut Ring)) {
    let mut ring = Ring::start_uniform(&ours(), 3, "");
    let mut f = Failover::connect(&failover_options(&ring, "fo")).unwrap();
    assert_eq!(f.address(), Some(&addr(&ring, 1)));
    f.join("fg").unwrap();
    let mut other = connect_named(&ring.address(3), "other");
    other.join("fg").unwrap();
    let me = f.private_group().unwrap();
    let them = other.private_group();
    failover_until(&mut f, WITHIN, "first view", |e| {
        view_with(e, "fg", &[&me, &them])
    });
    until_members(&mut other, "fg", 2, WITHIN);

    lose_n1(&mut ring);

    let info = failover_info(failover_until(&mut f, WITHIN, "failover event", |e| {
        matches!(e, Event::Failover(_))
    }));
    assert_eq!(info.lost, addr(&ring, 1));
    assert_eq!(info.now, addr(&ring, 2), "the next daemon in order");
    assert_eq!(info.rejoined, ["fg"]);
    assert!(info.may_have_missed_messages);
    assert!(!info.cause.is_empty());
    let me = f.private_group().unwrap();
    assert_eq!(me, info.private_group);
    assert!(me.ends_with("#n2"), "{me}");
    assert_eq!(f.groups(), ["fg"]);

    // The re-join shows as a view with our new private group, and the other member sees it.
    failover_until(&mut f, WITHIN, "view after re-join", |e| {
        view_with(e, "fg", &[&me, &them])
    });
    mailbox_until(&mut other, WITHIN, "the failed-over member's join", |e| {
        view_with(e, "fg", &[&me, &them])
    });
    f.multicast(Service::AGREED, &["fg"], 5, b"after failover")
        .unwrap();
    let got = mailbox_until(
        &mut other,
        WITHIN,
        "message after failover",
        |e| matches!(e, Event::Message(m) if m.data == b"after failover"),
    );
    let Event::Message(m) = got else {
        unreachable!()
    };
    assert_eq!(m.sender, me);
    f.disconnect().unwrap();
}

#[test]
fn failover_after_the_serving_daemon_is_killed() {
    blocking_failover(|ring| ring.kill(1));
}

#[test]
fn failover_after_the_serving_daemon_hangs() {
    blocking_failover(|ring| {
        ring.signal(1, "STOP");
        // Resumed (and then killed) when the ring drops; the Failover must not wait for it.
    });
}

#[test]
fn a_hung_daemon_gives_daemon_timeout_not_a_hang() {
    let ring = Ring::start_uniform(&ours(), 2, "");
    let mut m = Mailbox::connect(&options("hung").daemon(ring.address(1))).unwrap();
    assert_eq!(m.liveness().map(|(_, mode)| mode), Some(ProbeMode::Native));
    m.join("hg").unwrap();
    until_members(&mut m, "hg", 1, WITHIN);
    ring.signal(1, "STOP");
    let _resume = Resume(&ring, 1);
    let started = Instant::now();
    let err = loop {
        match m.receive_timeout(Duration::from_millis(500)) {
            Ok(_) if started.elapsed() < Duration::from_secs(20) => {}
            Ok(e) => panic!("no DaemonTimeout within 20 s (last: {e:?})"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::DaemonTimeout { .. }), "{err}");
    assert!(matches!(m.receive(), Err(Error::IllegalSession)));
}

#[test]
fn our_daemon_ends_the_session_of_a_client_that_stops_talking() {
    let daemon = start_rust_daemon("");
    let mut watcher = connect_named(&daemon.address(), "watcher");
    watcher.join("quiet").unwrap();
    until_members(&mut watcher, "quiet", 1, WITHIN);

    // A raw client that offers the probe, joins, promises 500 ms, then goes silent (it
    // keeps the connection open and reads nothing).
    let mut raw = TcpStream::connect(("127.0.0.1", daemon.port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = ConnectRequest {
        version: Version::OURS,
        wants_membership: true,
        priority: 0,
        offers_probe: true,
        name: b"silent".to_vec(),
    };
    raw.write_all(&request.encode()).unwrap();
    let mut buf = Vec::new();
    let methods = read_parsed(&mut raw, &mut buf, handshake::parse_auth_list);
    let (methods, accepted) = probe::take_offer_answer(methods);
    assert!(accepted, "our daemon accepts the probe offer");
    assert_eq!(methods, ["NULL"]);
    raw.write_all(&handshake::encode_auth_choice(&methods))
        .unwrap();
    let accept = read_parsed(&mut raw, &mut buf, handshake::parse_accept);
    let own = accept.private_group;
    let codec = spread::proto::Codec::new(own);
    raw.write_all(&codec.membership_request(true, "quiet").unwrap())
        .unwrap();
    let silent = own.to_string_lossy();
    mailbox_until(&mut watcher, WITHIN, "the silent client's join", |e| {
        view_with(e, "quiet", &[&silent])
    });
    raw.write_all(&probe::encode_request(&own, 500, Endian::NATIVE))
        .unwrap();

    let gone = mailbox_until(&mut watcher, WITHIN, "the silent client's departure", |e| {
        matches!(e, Event::Membership(m) if m.group == "quiet" && matches!(
            &m.change,
            MembershipChange::Regular { cause: Cause::Disconnect, vs_set, .. }
                if vs_set.contains(&silent)
        ))
    });
    let Event::Membership(m) = gone else {
        unreachable!()
    };
    let MembershipChange::Regular { members, .. } = m.change else {
        unreachable!()
    };
    assert_eq!(members, [watcher.private_group()]);
    drop(raw);
}

fn read_parsed<T>(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> Result<Parsed<T>, handshake::Reject>,
) -> T {
    loop {
        if let Parsed::Done(item, used) = parse(buf).unwrap() {
            buf.drain(..used);
            return item;
        }
        let mut chunk = [0u8; 256];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "daemon closed during the handshake");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn a_c_daemon_is_kept_probed_by_no_op_messages_the_application_never_sees() {
    let Some(c) = CSpread::find_or_skip("a_c_daemon_is_kept_probed_by_no_op_messages") else {
        return;
    };
    let daemon = start_c_daemon(&c);
    let mut m = Mailbox::connect(&options("probed").daemon(daemon.address())).unwrap();
    assert_eq!(
        m.liveness().map(|(_, mode)| mode),
        Some(ProbeMode::NoOp),
        "a C daemon never lists PROBE"
    );
    m.join("cg").unwrap();
    until_members(&mut m, "cg", 1, WITHIN);
    // Past the (no-op) deadline with nothing but probes: no error, no event.
    let quiet_until = Instant::now() + spread::NOOP_MIN_DEADLINE + Duration::from_secs(2);
    while Instant::now() < quiet_until {
        match m.receive_timeout(Duration::from_millis(300)) {
            Ok(None) => {}
            other => panic!("the application saw {other:?}"),
        }
    }
    let mut sender = connect_named(&daemon.address(), "sender");
    sender
        .multicast(Service::AGREED, &["cg"], 3, b"real")
        .unwrap();
    let got = mailbox_until(&mut m, WITHIN, "the real message", |e| {
        matches!(e, Event::Message(_))
    });
    assert!(matches!(got, Event::Message(msg) if msg.data == b"real"));
    // The application's own empty messages to itself of another type are still delivered.
    let own = m.private_group();
    m.multicast(Service::RELIABLE, &[&own], 1, b"").unwrap();
    mailbox_until(
        &mut m,
        WITHIN,
        "own empty message",
        |e| matches!(e, Event::Message(msg) if msg.mess_type == 1 && msg.data.is_empty()),
    );
    m.disconnect().unwrap();
}

// ---- the async client ----------------------------------------------------------------------

async fn async_until(
    f: &mut spread::tokio::Failover,
    within: Duration,
    what: &str,
    mut want: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match f.receive_timeout(Duration::from_millis(200)).await {
            Ok(Some(e)) if want(&e) => return e,
            Ok(Some(e)) => seen.push(e),
            Ok(None) => {}
            Err(e) => panic!("{what}: {e} (after {seen:?})"),
        }
    }
    panic!("{what}: not within {within:?}; got {seen:?}");
}

async fn async_failover(stop_instead_of_kill: bool) {
    let mut ring = Ring::start_uniform(&ours(), 3, "");
    let mut f = spread::tokio::Failover::connect(&failover_options(&ring, "afo"))
        .await
        .unwrap();
    f.join("afg").await.unwrap();
    let mut other = connect_named(&ring.address(3), "other");
    other.join("afg").unwrap();
    let me = f.private_group().unwrap();
    let them = other.private_group();
    async_until(&mut f, WITHIN, "first view", |e| {
        view_with(e, "afg", &[&me, &them])
    })
    .await;
    until_members(&mut other, "afg", 2, WITHIN);

    if stop_instead_of_kill {
        ring.signal(1, "STOP");
    } else {
        ring.kill(1);
    }

    let info = failover_info(
        async_until(&mut f, WITHIN, "failover event", |e| {
            matches!(e, Event::Failover(_))
        })
        .await,
    );
    assert_eq!(info.lost, addr(&ring, 1));
    assert_eq!(info.now, addr(&ring, 2));
    assert_eq!(info.rejoined, ["afg"]);
    assert!(info.may_have_missed_messages);
    let me = f.private_group().unwrap();
    async_until(&mut f, WITHIN, "view after re-join", |e| {
        view_with(e, "afg", &[&me, &them])
    })
    .await;
    f.multicast(Service::AGREED, &["afg"], 5, b"async after")
        .await
        .unwrap();
    let got = tokio::task::block_in_place(|| {
        mailbox_until(
            &mut other,
            WITHIN,
            "message after failover",
            |e| matches!(e, Event::Message(m) if m.data == b"async after"),
        )
    });
    assert!(matches!(got, Event::Message(m) if m.sender == me));
    f.disconnect().await.unwrap();
    if stop_instead_of_kill {
        ring.signal(1, "CONT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn async_failover_after_the_serving_daemon_is_killed() {
    async_failover(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn async_failover_after_the_serving_daemon_hangs() {
    async_failover(true).await;
}

#[tokio::test(flavor = "current_thread")]
async fn async_a_hung_daemon_gives_daemon_timeout_not_a_hang() {
    let ring = Ring::start_uniform(&ours(), 2, "");
    let mut m = spread::tokio::Mailbox::connect(&options("ahung").daemon(ring.address(1)))
        .await
        .unwrap();
    assert_eq!(m.liveness().map(|(_, mode)| mode), Some(ProbeMode::Native));
    ring.signal(1, "STOP");
    let _resume = Resume(&ring, 1);
    let result = tokio::time::timeout(Duration::from_secs(20), m.receive()).await;
    let err = result
        .expect("receive must not hang")
        .expect_err("a stopped daemon sends nothing");
    assert!(matches!(err, Error::DaemonTimeout { .. }), "{err}");
    assert!(matches!(m.receive().await, Err(Error::IllegalSession)));
}
