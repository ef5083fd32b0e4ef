//! `spmonitor`'s requests against our daemons: status reports always; partitions only with
//! `DangerousMonitor = yes` (3.17's rule). The requests are built here byte for byte as the
//! C monitor builds them (spread-wire's `ring::monitor`).

mod common;

use common::{connect_named, ours, start_rust_daemon, until_members, Ring};
use spread::{Event, MembershipChange, Service};
use spread_wire::ring::monitor::{monitor_request, PerDaemonTable, Status};
use spread_wire::ring::{encode_datagram, packet_type, split_datagram};
use spread_wire::Endian;
use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

/// The monitor runs as configured daemon n1 (127.0.0.1), as spmonitor does with `-n n1`.
fn monitor() -> (UdpSocket, u16) {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

fn request(socket: &UdpSocket, reply_port: u16, ring: &Ring, n: u8, kind: u32, body: &[u8]) {
    send_request(
        socket,
        reply_port,
        (Ipv4Addr::new(127, 0, 0, n), ring.port),
        kind,
        body,
    );
}

fn send_request(socket: &UdpSocket, reply_port: u16, to: (Ipv4Addr, u16), kind: u32, body: &[u8]) {
    let mut header = monitor_request(kind, u32::from(Ipv4Addr::LOCALHOST), reply_port);
    header.data_len = body.len() as i16;
    let datagram = encode_datagram(Endian::NATIVE, &[(header, body)]).unwrap();
    socket.send_to(&datagram, to).unwrap();
}

/// A daemon configured alone has no ring, yet answers status and obeys "terminate".
#[test]
fn a_lone_daemon_answers_status_and_exits_when_told() {
    let mut daemon = start_rust_daemon("DangerousMonitor = yes\n");
    let (socket, port) = monitor();
    let to = (daemon.ip, daemon.port);
    let mut buf = [0u8; 1500];
    let status = (0..20)
        .find_map(|_| {
            send_request(&socket, port, to, packet_type::STATUS, &[]);
            let (len, _) = socket.recv_from(&mut buf).ok()?;
            let (endian, packets) = split_datagram(&buf[..len]).ok()?;
            Status::decode(packets[0].1, endian).ok()
        })
        .expect("a status report");
    assert_eq!((status.num_procs, status.state), (1, 1));
    assert_eq!(status.my_id, u32::from(daemon.ip));
    let mut table = PerDaemonTable::default();
    table.entries[0] = -1;
    send_request(
        &socket,
        port,
        to,
        packet_type::PARTITION,
        &table.encode(Endian::NATIVE),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.is_alive() {
        assert!(
            Instant::now() < deadline,
            "the daemon did not exit when told"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn partition(socket: &UdpSocket, reply_port: u16, ring: &Ring, components: &[i16]) {
    let mut table = PerDaemonTable::default();
    table.entries[..components.len()].copy_from_slice(components);
    let body = table.encode(Endian::NATIVE);
    for n in 1..=components.len() as u8 {
        request(socket, reply_port, ring, n, packet_type::PARTITION, &body);
    }
}

#[test]
fn every_daemon_answers_a_status_request() {
    let ring = Ring::start_uniform(&ours(), 3, "");
    let (socket, port) = monitor();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut operational = std::collections::BTreeMap::new();
    while operational.len() < 3 && Instant::now() < deadline {
        for n in 1..=3 {
            request(&socket, port, &ring, n, packet_type::STATUS, &[]);
        }
        let mut buf = [0u8; 1500];
        while let Ok((len, _)) = socket.recv_from(&mut buf) {
            let (endian, packets) = split_datagram(&buf[..len]).unwrap();
            let (header, body) = packets[0];
            assert_ne!(header.type_bits() & packet_type::STATUS, 0);
            let status = Status::decode(body, endian).unwrap();
            assert_eq!(
                (
                    status.major_version,
                    status.minor_version,
                    status.patch_version
                ),
                (3, 17, 3)
            );
            assert_eq!(status.num_procs, 3);
            assert_eq!(header.proc_id, status.my_id, "the reply names its daemon");
            if status.state == 1 && status.membership_changes >= 1 {
                operational.insert(status.my_id, status);
            }
        }
    }
    let ids: Vec<Ipv4Addr> = operational.keys().map(|&id| Ipv4Addr::from(id)).collect();
    assert_eq!(
        ids,
        [1, 2, 3].map(|n| Ipv4Addr::new(127, 0, 0, n)),
        "a report from every daemon, operational"
    );
}

/// Joins c1 (on n1) and c3 (on n3) to one group and waits for the two-member view.
fn two_members(ring: &Ring) -> (spread::Mailbox, spread::Mailbox) {
    let mut c1 = connect_named(&ring.address(1), "c1");
    let mut c3 = connect_named(&ring.address(3), "c3");
    c1.join("g").unwrap();
    c3.join("g").unwrap();
    until_members(&mut c1, "g", 2, Duration::from_secs(20));
    until_members(&mut c3, "g", 2, Duration::from_secs(20));
    (c1, c3)
}

#[test]
fn a_partition_splits_and_heals_the_ring_when_dangerous_monitor_is_on() {
    let ring = Ring::start_uniform(&ours(), 3, "DangerousMonitor = yes\n");
    let (mut c1, mut c3) = two_members(&ring);
    let (socket, port) = monitor();
    partition(&socket, port, &ring, &[0, 0, 1]);
    let (_, alone) = until_members(&mut c1, "g", 1, Duration::from_secs(20));
    assert!(matches!(alone, MembershipChange::Regular { .. }));
    until_members(&mut c3, "g", 1, Duration::from_secs(20));
    partition(&socket, port, &ring, &[0, 0, 0]);
    until_members(&mut c1, "g", 2, Duration::from_secs(20));
    until_members(&mut c3, "g", 2, Duration::from_secs(20));
}

#[test]
fn a_partition_is_refused_when_dangerous_monitor_is_off() {
    let ring = Ring::start_uniform(&ours(), 3, "");
    let (mut c1, mut c3) = two_members(&ring);
    let (socket, port) = monitor();
    partition(&socket, port, &ring, &[0, 0, 1]);
    // Give a partition time to act (our token timeout is well under this), then check
    // that c3's message reaches c1 with no membership change before it.
    std::thread::sleep(Duration::from_secs(2));
    c3.multicast(Service::AGREED, &["g"], 0, b"still one ring")
        .unwrap();
    loop {
        match c1.receive_timeout(Duration::from_secs(10)).unwrap() {
            Some(Event::Message(m)) if m.data == b"still one ring" => break,
            Some(Event::Membership(m)) => panic!("the refused partition changed a view: {m:?}"),
            Some(_) => {}
            None => panic!("c3's message did not arrive"),
        }
    }
}
