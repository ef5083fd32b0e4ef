//! Three real daemon processes in one ring (one segment each, on 127.0.0.1/.2/.3): every
//! service type across daemons, kill -9 of a daemon, restart and merge.

mod common;

use common::*;
use spread::{Cause, Event, Mailbox, MembershipChange, Service, ServiceKind};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[test]
fn three_daemons_order_every_service_survive_a_crash_and_merge_back() {
    let mut ring = Ring::start_uniform(&ours(), 3, "");
    let mut clients: Vec<Mailbox> = (1..=3)
        .map(|n| connect_named(&ring.address(n), &format!("c{n}")))
        .collect();
    for c in clients.iter_mut() {
        c.join("g").unwrap();
    }
    for c in clients.iter_mut() {
        until_members(c, "g", 3, Duration::from_secs(10));
    }

    // Every client sends every service; each receiver must get each sender's messages in
    // order, and all must agree on the order of the totally ordered ones.
    let per_sender = 20u32;
    for round in 0..per_sender {
        for (i, c) in clients.iter_mut().enumerate() {
            let kind = ServiceKind::ALL[(round as usize + i) % 6];
            let data = [i as u8, round as u8];
            c.multicast(Service::new(kind), &["g"], round as i16, &data)
                .unwrap();
        }
    }
    let mut orders: Vec<Vec<(u8, u8)>> = Vec::new();
    for c in clients.iter_mut() {
        let mut got: Vec<(u8, u8)> = Vec::new();
        while got.len() < 3 * per_sender as usize {
            match c.receive_timeout(Duration::from_secs(10)).unwrap() {
                Some(Event::Message(m)) => got.push((m.data[0], m.data[1])),
                Some(other) => panic!("unexpected {other:?}"),
                None => panic!("only {} of {} messages arrived", got.len(), 3 * per_sender),
            }
        }
        let mut next: BTreeMap<u8, u8> = BTreeMap::new();
        for (sender, round) in &got {
            let expected = next.entry(*sender).or_insert(0);
            assert_eq!(round, expected, "sender {sender}'s messages out of order");
            *expected += 1;
        }
        orders.push(got);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "daemons delivered in different orders"
    );

    // kill -9 of n3: the others see its member leave, by network, well within a second.
    let killed_at = Instant::now();
    ring.kill(3);
    let _ = clients.pop();
    for c in clients.iter_mut() {
        let (before, change) = until_members(c, "g", 2, Duration::from_secs(10));
        assert!(
            before.iter().any(|e| matches!(e, Event::Membership(m) if matches!(m.change, MembershipChange::Transitional { .. }))),
            "no transitional signal before the new view: {before:?}"
        );
        match change {
            MembershipChange::Regular {
                cause,
                members,
                vs_set,
                ..
            } => {
                assert_eq!(cause, Cause::Network);
                assert_eq!(members, vec!["#c1#n1", "#c2#n2"]);
                assert_eq!(vs_set.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }
    println!(
        "crash to new view at both clients: {:?}",
        killed_at.elapsed()
    );

    // Traffic goes on in the two-daemon ring.
    clients[0]
        .multicast(Service::SAFE, &["g"], 9, b"after")
        .unwrap();
    for c in clients.iter_mut() {
        match c.receive_timeout(Duration::from_secs(5)).unwrap() {
            Some(Event::Message(m)) => assert_eq!(m.data, b"after"),
            other => panic!("{other:?}"),
        }
    }

    // n3 comes back; its new client joins and everyone sees three members again.
    ring.start_daemon(3);
    let mut c3 = connect_named(&ring.address(3), "c3");
    c3.join("g").unwrap();
    until_members(&mut c3, "g", 3, Duration::from_secs(15));
    for c in clients.iter_mut() {
        until_members(c, "g", 3, Duration::from_secs(15));
    }
    c3.multicast(Service::AGREED, &["g"], 1, b"back").unwrap();
    for c in clients.iter_mut().chain(std::iter::once(&mut c3)) {
        match c.receive_timeout(Duration::from_secs(5)).unwrap() {
            Some(Event::Message(m)) => assert_eq!(m.data, b"back"),
            other => panic!("{other:?}"),
        }
    }
}
