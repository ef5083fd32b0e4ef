//! The liveness probe against scripted daemons: the exact bytes with liveness off, probe
//! requests and swallowed answers with our daemon, no-op probes with a C daemon, and
//! `DaemonTimeout` when the daemon goes silent — for the blocking and the async Mailbox.

use spread::proto::Codec;
use spread::{ConnectOptions, Error, Event, Liveness, Mailbox, ProbeMode, Service};
use spread_wire::frame::{Frame, FrameLen};
use spread_wire::handshake::{self, Parsed, Version, AUTH_CHOICE_LEN};
use spread_wire::{probe, Endian, GroupName};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const OWN: &str = "#alice#n1";

fn fast() -> Liveness {
    Liveness::new(Duration::from_millis(100), Duration::from_millis(500))
}

/// A scripted daemon on a free port: runs the handshake listing `methods`, then `script`.
fn fake_daemon<T: Send + 'static>(
    methods: &'static str,
    script: impl FnOnce(TcpStream, Vec<u8>, [u8; AUTH_CHOICE_LEN]) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut connect = Vec::new();
        loop {
            if let Ok(Parsed::Done(_, used)) = handshake::parse_connect(&connect) {
                connect.truncate(used);
                break;
            }
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            connect.push(b[0]);
        }
        s.write_all(&handshake::encode_auth_list(
            &methods.split_whitespace().collect::<Vec<_>>(),
        ))
        .unwrap();
        let mut choice = [0u8; AUTH_CHOICE_LEN];
        s.read_exact(&mut choice).unwrap();
        s.write_all(&handshake::encode_accept(
            Version::OURS,
            &GroupName::new(OWN),
        ))
        .unwrap();
        script(s, connect, choice)
    });
    (format!("{port}@127.0.0.1"), handle)
}

/// Reads one whole message.
fn read_message(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    loop {
        let need = match Frame::len(&buf).unwrap() {
            FrameLen::Complete(n) => return Some(buf[..n].to_vec()),
            FrameLen::NeedMore(n) => n,
        };
        let mut more = vec![0u8; need - buf.len()];
        if s.read_exact(&mut more).is_err() {
            return None;
        }
        buf.extend_from_slice(&more);
    }
}

#[test]
fn liveness_off_sends_exactly_3_17s_bytes() {
    let (addr, daemon) = fake_daemon("NULL", |mut s, connect, choice| {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        (connect, choice, rest)
    });
    let options = ConnectOptions::new(addr).name("alice").liveness(None);
    let mut m = Mailbox::connect(&options).unwrap();
    assert_eq!(m.liveness(), None);
    m.join("g").unwrap();
    // Time for probes, were any sent.
    std::thread::sleep(Duration::from_millis(300));
    m.disconnect().unwrap();
    let (connect, choice, rest) = daemon.join().unwrap();
    assert_eq!(connect, b"\x03\x11\x03\x01\x05alice");
    assert_eq!(choice, handshake::encode_auth_choice(&["NULL"]));
    let codec = Codec::new(GroupName::new(OWN));
    let mut expected = codec.membership_request(true, "g").unwrap();
    expected.extend_from_slice(&codec.disconnect_request());
    assert_eq!(rest, expected);
}

#[test]
fn our_daemon_gets_probes_and_its_answers_are_swallowed() {
    let (addr, daemon) = fake_daemon("NULL PROBE", |mut s, connect, choice| {
        let mut holds = Vec::new();
        for _ in 0..3 {
            let msg = read_message(&mut s).unwrap();
            let (header, writer) =
                spread_wire::MessageHeader::decode(msg[..48].try_into().unwrap());
            assert!(probe::is_probe(&header));
            holds.push(probe::decode_request_body(&msg[48..], writer).unwrap());
            s.write_all(&probe::encode_answer(&GroupName::new("n1"), Endian::Big))
                .unwrap();
        }
        let codec = Codec::new(GroupName::new("#bob#n1"));
        s.write_all(
            &codec
                .multicast(Service::AGREED, &["g"], 7, &[b"hi"])
                .unwrap(),
        )
        .unwrap();
        // Stay open until the client goes.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        (connect, choice, holds)
    });
    let options = ConnectOptions::new(addr)
        .name("alice")
        .liveness(Some(fast()));
    let mut m = Mailbox::connect(&options).unwrap();
    assert_eq!(m.liveness(), Some((fast(), ProbeMode::Native)));
    match m.receive_timeout(Duration::from_secs(10)).unwrap() {
        Some(Event::Message(msg)) => assert_eq!((msg.mess_type, &msg.data[..]), (7, &b"hi"[..])),
        other => panic!("expected the message, got {other:?}"),
    }
    assert_eq!(m.poll().unwrap(), 0);
    drop(m);
    let (connect, choice, holds) = daemon.join().unwrap();
    assert_eq!(connect[3] & probe::OFFER_FLAG, probe::OFFER_FLAG);
    assert_eq!(handshake::parse_auth_choice(&choice), ["NULL"]);
    assert_eq!(holds, [500, 500, 500]);
}

#[test]
fn a_c_daemon_gets_no_op_probes_and_their_echoes_are_swallowed() {
    let (addr, daemon) = fake_daemon("NULL", |mut s, _, choice| {
        let mut seen = Vec::new();
        // The first no-op at once, the next after a quarter of the 20 s deadline.
        for _ in 0..2 {
            let msg = read_message(&mut s).unwrap();
            let frame = Frame::decode(&msg).unwrap();
            seen.push((
                frame.header.msg_type,
                frame
                    .groups()
                    .map(|g| g.to_string_lossy())
                    .collect::<Vec<_>>(),
                frame.header.hint.mess_type(),
                frame.data.len(),
            ));
            // A C daemon delivers it back as sent.
            s.write_all(&msg).unwrap();
        }
        let codec = Codec::new(GroupName::new("#bob#n1"));
        s.write_all(
            &codec
                .multicast(Service::AGREED, &["g"], 7, &[b"hi"])
                .unwrap(),
        )
        .unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        (choice, seen)
    });
    let options = ConnectOptions::new(addr)
        .name("alice")
        .liveness(Some(fast()));
    let mut m = Mailbox::connect(&options).unwrap();
    let applied = Liveness {
        deadline: spread::NOOP_MIN_DEADLINE,
        interval: spread::NOOP_MIN_DEADLINE / 4,
    };
    assert_eq!(m.liveness(), Some((applied, ProbeMode::NoOp)));
    match m.receive_timeout(Duration::from_secs(20)).unwrap() {
        Some(Event::Message(msg)) => assert_eq!((msg.mess_type, &msg.data[..]), (7, &b"hi"[..])),
        other => panic!("expected the message, got {other:?}"),
    }
    drop(m);
    let (choice, seen) = daemon.join().unwrap();
    assert_eq!(handshake::parse_auth_choice(&choice), ["NULL"]);
    for (msg_type, groups, mess_type, len) in seen {
        assert_eq!(msg_type, spread_wire::consts::service::RELIABLE);
        assert_eq!(groups, [OWN]);
        assert_eq!(mess_type, spread::NOOP_MESS_TYPE);
        assert_eq!(len, 0);
    }
}

#[test]
fn a_silent_daemon_ends_the_session_with_daemon_timeout() {
    let (addr, daemon) = fake_daemon("NULL PROBE", |mut s, _, _| {
        // Reads the probes, answers none, until the client gives up and closes.
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    });
    let options = ConnectOptions::new(addr)
        .name("alice")
        .liveness(Some(fast()));
    let mut m = Mailbox::connect(&options).unwrap();
    let started = Instant::now();
    let err = loop {
        match m.receive_timeout(Duration::from_secs(1)) {
            Ok(None) if started.elapsed() < Duration::from_secs(20) => continue,
            other => break other.expect_err("the daemon sent nothing"),
        }
    };
    assert!(
        matches!(err, Error::DaemonTimeout { after } if after == Duration::from_millis(500)),
        "{err:?}"
    );
    assert_eq!(err.code(), spread_wire::consts::code::CONNECTION_CLOSED);
    assert!(err
        .to_string()
        .contains("did not answer the liveness probe"));
    assert!(matches!(m.receive(), Err(Error::IllegalSession)));
    assert!(matches!(
        m.multicast(Service::AGREED, &["g"], 0, b"x"),
        Err(Error::IllegalSession)
    ));
    // The client closed the connection: the daemon's read ends.
    daemon.join().unwrap();
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "current_thread")]
async fn async_our_daemon_gets_probes_and_answers_are_swallowed() {
    let (addr, daemon) = fake_daemon("NULL PROBE", |mut s, _, choice| {
        for _ in 0..3 {
            let msg = read_message(&mut s).unwrap();
            let (header, _) = spread_wire::MessageHeader::decode(msg[..48].try_into().unwrap());
            assert!(probe::is_probe(&header));
            s.write_all(&probe::encode_answer(&GroupName::new("n1"), Endian::Big))
                .unwrap();
        }
        let codec = Codec::new(GroupName::new("#bob#n1"));
        s.write_all(
            &codec
                .multicast(Service::AGREED, &["g"], 7, &[b"hi"])
                .unwrap(),
        )
        .unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        choice
    });
    let options = ConnectOptions::new(addr)
        .name("alice")
        .liveness(Some(fast()));
    let mut m = spread::tokio::Mailbox::connect(&options).await.unwrap();
    assert_eq!(m.liveness(), Some((fast(), ProbeMode::Native)));
    match m.receive_timeout(Duration::from_secs(10)).await.unwrap() {
        Some(Event::Message(msg)) => assert_eq!(msg.data, b"hi"),
        other => panic!("expected the message, got {other:?}"),
    }
    m.disconnect().await.unwrap();
    let choice = tokio::task::spawn_blocking(move || daemon.join().unwrap())
        .await
        .unwrap();
    assert_eq!(handshake::parse_auth_choice(&choice), ["NULL"]);
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "current_thread")]
async fn async_a_silent_daemon_ends_the_session_with_daemon_timeout() {
    let (addr, daemon) = fake_daemon("NULL PROBE", |mut s, _, _| {
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    });
    let options = ConnectOptions::new(addr)
        .name("alice")
        .liveness(Some(fast()));
    let mut m = spread::tokio::Mailbox::connect(&options).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), m.receive()).await;
    let err = result
        .expect("receive must not hang")
        .expect_err("nothing was sent");
    assert!(matches!(err, Error::DaemonTimeout { .. }), "{err:?}");
    assert!(matches!(m.receive().await, Err(Error::IllegalSession)));
    drop(m);
    tokio::task::spawn_blocking(move || daemon.join().unwrap())
        .await
        .unwrap();
}

/// A daemon that answers nothing and reports when its side of the connection ends.
fn silent_daemon() -> (String, std::sync::mpsc::Receiver<()>) {
    let (closed, seen) = std::sync::mpsc::channel();
    let (addr, _daemon) = fake_daemon("NULL PROBE", move |mut s, _, _| {
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        let _ = closed.send(());
    });
    (addr, seen)
}

/// Once the session has ended, the connection closes at once, not when the Mailbox is
/// dropped: our daemon sees the client leave now (both transports).
#[test]
fn an_ended_session_closes_its_connection_before_the_mailbox_goes() {
    let (addr, closed) = silent_daemon();
    let options = ConnectOptions::new(addr)
        .name("alice")
        .liveness(Some(fast()));
    let mut m = Mailbox::connect(&options).unwrap();
    let err = m.receive().expect_err("nothing was sent");
    assert!(matches!(err, Error::DaemonTimeout { .. }), "{err:?}");
    closed
        .recv_timeout(Duration::from_secs(10))
        .expect("the connection closed while the Mailbox lives");
    drop(m);
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "current_thread")]
async fn async_an_ended_session_closes_its_connection_before_the_mailbox_goes() {
    let (addr, closed) = silent_daemon();
    let options = ConnectOptions::new(addr)
        .name("alice")
        .liveness(Some(fast()));
    let mut m = spread::tokio::Mailbox::connect(&options).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), m.receive()).await;
    let err = result
        .expect("receive must not hang")
        .expect_err("nothing was sent");
    assert!(matches!(err, Error::DaemonTimeout { .. }), "{err:?}");
    tokio::task::spawn_blocking(move || closed.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the connection closed while the Mailbox lives");
    drop(m);
}
