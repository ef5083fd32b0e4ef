//! Bad input against a real daemon: the daemon stays up, drops only the offending session
//! with a logged reason, and a well-behaved pair of clients connected all along loses
//! nothing.

mod common;

use common::*;
use spread::{ConnectOptions, Event, Mailbox, Service};
use spread_wire::consts::service;
use spread_wire::frame::encode_message;
use spread_wire::{Endian, GroupName, Hint, MessageHeader};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Two clients exchanging numbered AGREED messages; `check` verifies every one arrived in
/// order, to both.
struct Witness {
    sender: Mailbox,
    receiver: Mailbox,
    sent: u32,
}

impl Witness {
    fn new(addr: &str) -> Witness {
        let mut receiver = Mailbox::connect(&ConnectOptions::new(addr).name("wrecv")).unwrap();
        receiver.join("witness").unwrap();
        wait_membership(&mut receiver);
        let sender =
            Mailbox::connect(&ConnectOptions::new(addr).name("wsend").membership(false)).unwrap();
        Witness {
            sender,
            receiver,
            sent: 0,
        }
    }

    fn send_some(&mut self, n: u32) {
        for _ in 0..n {
            self.sent += 1;
            self.sender
                .multicast(Service::AGREED, &["witness"], 0, &self.sent.to_le_bytes())
                .unwrap();
        }
    }

    /// Everything sent so far arrives, in order, with nothing else in between.
    fn check(&mut self, received: &mut u32) {
        while *received < self.sent {
            match self
                .receiver
                .receive_timeout(Duration::from_secs(10))
                .unwrap()
            {
                Some(Event::Message(m)) => {
                    *received += 1;
                    assert_eq!(
                        m.data,
                        received.to_le_bytes(),
                        "witness message out of order"
                    );
                }
                Some(other) => panic!("witness got {other:?}"),
                None => panic!("witness lost messages: {received} of {}", self.sent),
            }
        }
    }
}

fn wait_membership(m: &mut Mailbox) {
    match m.receive_timeout(Duration::from_secs(5)).unwrap() {
        Some(Event::Membership(_)) => {}
        other => panic!("expected a membership, got {other:?}"),
    }
}

/// A raw connection that has done the handshake as `name`.
fn raw_session(addr: (std::net::Ipv4Addr, u16), name: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hello = vec![3, 17, 3, 1, name.len() as u8];
    hello.extend_from_slice(name.as_bytes());
    s.write_all(&hello).unwrap();
    let mut list = [0u8; 6];
    s.read_exact(&mut list).unwrap();
    let mut choice = [0u8; 90];
    choice[..4].copy_from_slice(b"NULL");
    s.write_all(&choice).unwrap();
    let mut accept = vec![0u8; 5 + format!("#{name}#n1").len()];
    s.read_exact(&mut accept).unwrap();
    assert_eq!(accept[0], 1, "accepted");
    s
}

fn header(msg_type: u32, name: &str, groups: i32, data_len: i32) -> [u8; 48] {
    MessageHeader {
        msg_type,
        private_group: GroupName::new(&format!("#{name}#n1")),
        num_groups: groups,
        hint: Hint::new(0, Endian::Little),
        data_len,
    }
    .encode(Endian::Little)
}

/// True once the daemon has closed `s` (read returns 0 or an error).
fn closed_by_daemon(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            Ok(_) => continue,
        }
    }
}

#[test]
fn protocol_violations_drop_only_the_violator() {
    let mut d = start_rust_daemon("");
    let addr = d.address();
    let target = (d.ip, d.port);
    let mut witness = Witness::new(&addr);
    let mut received = 0;
    let g1 = GroupName::new("g1").0;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "lying length",
            header(service::AGREED, "v1", 1, 1 << 30).to_vec(),
        ),
        (
            "huge group count",
            header(service::AGREED, "v2", 1 << 20, 0).to_vec(),
        ),
        (
            "negative group count",
            header(service::AGREED, "v3", -1, 0).to_vec(),
        ),
        ("unknown type", header(0x0080_0000, "v4", 1, 0).to_vec()),
        ("no type bits", header(0, "v5", 1, 0).to_vec()),
        (
            "join and leave together",
            header(service::JOIN | service::LEAVE, "v6", 1, 0).to_vec(),
        ),
        (
            "two services",
            header(service::RELIABLE | service::AGREED, "v7", 1, 0).to_vec(),
        ),
        (
            "forged membership",
            [
                &header(service::AGREED | service::REG_MEMB, "v8", 1, 0)[..],
                &g1,
            ]
            .concat(),
        ),
        (
            "forged reject",
            [
                &header(service::AGREED | service::REJECT, "v9", 1, 0)[..],
                &g1,
            ]
            .concat(),
        ),
        (
            "forged sender",
            header(service::AGREED, "wrecv", 1, 0).to_vec(),
        ),
        ("hint with stray bits", {
            let mut h = header(service::AGREED, "v11", 1, 0);
            h[43] = 0x81;
            h.to_vec()
        }),
        (
            "one byte over the size limit",
            header(service::AGREED, "v12", 1, 143_921).to_vec(),
        ),
    ];
    for (i, (what, bytes)) in cases.iter().enumerate() {
        let name = if *what == "forged sender" {
            "v10".to_string()
        } else {
            format!("v{}", i + 1)
        };
        let mut s = raw_session(target, &name);
        s.write_all(bytes).unwrap();
        assert!(closed_by_daemon(&mut s), "{what}: session not dropped");
        witness.send_some(5);
        witness.check(&mut received);
    }
    assert!(d.is_alive(), "daemon died");
    let log = d.log_text();
    assert!(
        log.matches("dropping session: protocol violation").count() >= cases.len(),
        "{log}"
    );
    assert!(log.contains("carries bits a client may not set"), "{log}");
}

#[test]
fn random_and_truncated_handshakes_and_byte_at_a_time_senders() {
    let mut d = start_rust_daemon("");
    let addr = d.address();
    let target = (d.ip, d.port);
    let mut witness = Witness::new(&addr);
    let mut received = 0;
    // A deterministic stream of junk: xorshift from a fixed seed.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut junk = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    for round in 0..60 {
        let mut s = TcpStream::connect(target).unwrap();
        let len = [0, 1, 2, 3, 4, 5, 7, 20, 95, 200, 4000][round % 11];
        let mut bytes = junk(len);
        if round % 3 == 0 && len >= 5 {
            // A plausible start (3.17.3) followed by junk.
            bytes[..3].copy_from_slice(&[3, 17, 3]);
        }
        let _ = s.write_all(&bytes);
        if round % 2 == 0 {
            drop(s);
        } else {
            assert!(
                closed_by_daemon(&mut s),
                "round {round}: junk session kept open"
            );
        }
        witness.send_some(2);
    }
    witness.check(&mut received);

    // A client that sends everything one byte at a time still gets served.
    let mut slow = TcpStream::connect(target).unwrap();
    slow.set_nodelay(true).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let trickle = |s: &mut TcpStream, bytes: &[u8]| {
        for b in bytes {
            s.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    trickle(&mut slow, b"\x03\x11\x03\x01\x04slow");
    let mut list = [0u8; 6];
    slow.read_exact(&mut list).unwrap();
    let mut choice = [0u8; 90];
    choice[..4].copy_from_slice(b"NULL");
    trickle(&mut slow, &choice);
    let mut accept = [0u8; 5 + 8];
    slow.read_exact(&mut accept).unwrap();
    assert_eq!(&accept[5..], b"#slow#n1");
    let hdr = MessageHeader {
        msg_type: service::RELIABLE,
        private_group: GroupName::new("#slow#n1"),
        num_groups: 1,
        hint: Hint::new(9, Endian::Little),
        data_len: 0,
    };
    let msg = encode_message(
        &hdr,
        &[GroupName::new("witness")],
        &[b"trickled"],
        Endian::Little,
    );
    trickle(&mut slow, &msg);
    match witness
        .receiver
        .receive_timeout(Duration::from_secs(5))
        .unwrap()
    {
        Some(Event::Message(m)) => assert_eq!(
            (m.sender.as_str(), m.data.as_slice()),
            ("#slow#n1", &b"trickled"[..])
        ),
        other => panic!("trickled message not delivered: {other:?}"),
    }
    witness.send_some(10);
    witness.check(&mut received);
    assert!(d.is_alive());
}

#[test]
fn a_thousand_silent_connections() {
    let mut d = start_rust_daemon("");
    let addr = d.address();
    let target = (d.ip, d.port);
    let mut witness = Witness::new(&addr);
    let mut received = 0;
    let mut silent = Vec::new();
    for i in 0..1000 {
        match TcpStream::connect(target) {
            Ok(s) => silent.push(s),
            Err(e) => panic!("connection {i} refused: {e}"),
        }
        if i % 100 == 0 {
            witness.send_some(10);
        }
    }
    witness.check(&mut received);
    // The daemon gives each one second for its connect message, then closes it.
    let start = Instant::now();
    for s in silent.iter_mut().take(50) {
        assert!(closed_by_daemon(s));
    }
    assert!(start.elapsed() < Duration::from_secs(10));
    drop(silent);
    // And serves new clients afterwards.
    let mut late = Mailbox::connect(&ConnectOptions::new(&addr).name("late")).unwrap();
    late.join("latecomers").unwrap();
    wait_membership(&mut late);
    witness.send_some(10);
    witness.check(&mut received);
    assert!(d.is_alive());
}

#[test]
fn a_client_that_never_reads_is_dropped_and_nobody_else_loses_a_message() {
    let mut d = start_rust_daemon("");
    let addr = d.address();
    let target = (d.ip, d.port);
    let mut witness = Witness::new(&addr);
    let mut received = 0;
    // The stuck client joins the witness group and then never reads.
    let mut stuck = raw_session(target, "stuck");
    let mut join = header(service::JOIN, "stuck", 1, 0).to_vec();
    join.extend_from_slice(&GroupName::new("witness").0);
    stuck.write_all(&join).unwrap();
    match witness
        .receiver
        .receive_timeout(Duration::from_secs(5))
        .unwrap()
    {
        Some(Event::Membership(_)) => {}
        other => panic!("{other:?}"),
    }
    // Far more than its socket buffers can hold: 40 MB.
    let big = vec![7u8; 100_000];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut dropped = false;
    while Instant::now() < deadline && !dropped {
        for _ in 0..40 {
            witness
                .sender
                .multicast(Service::AGREED, &["witness"], 0, &big)
                .unwrap();
        }
        // Drain the well-behaved receiver; the stuck one's departure shows up here.
        loop {
            match witness
                .receiver
                .receive_timeout(Duration::from_millis(200))
                .unwrap()
            {
                Some(Event::Message(m)) => assert_eq!(m.data.len(), big.len()),
                Some(Event::Membership(ms)) => {
                    assert!(format!("{ms:?}").contains("Disconnect"), "{ms:?}");
                    dropped = true;
                }
                Some(other) => panic!("{other:?}"),
                None => break,
            }
        }
    }
    assert!(dropped, "the client that never reads was never dropped");
    assert!(
        d.log_text().contains("client does not read"),
        "{}",
        d.log_text()
    );
    witness.send_some(20);
    witness.check(&mut received);
    assert!(d.is_alive());
}
