//! A ring of a C 3.17 daemon (n1) and two of ours (n2, n3, run with `--with-c-daemons`):
//! AGREED and SAFE traffic from clients of every daemon in one total order; kill -9 of one
//! of ours and of the C daemon, each restarted and merged back, with traffic checked after
//! every change. Needs an installed C Spread; prints SKIPPED without one.

mod common;

use common::*;
use spread::{Event, Mailbox, Service};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// 3.17's LAN timeouts: a lost daemon is noticed after ~11 s, a returning one after a
/// lookup round.
const VIEW_WAIT: Duration = Duration::from_secs(60);

/// Every client sends `per_sender` messages alternating AGREED and SAFE; every client must
/// receive all of them, each sender's in order, and all in the same order. Returns how many
/// messages each client delivered.
fn exchange(clients: &mut [Mailbox], tag: u8, per_sender: u16) -> usize {
    for round in 0..per_sender {
        for (i, c) in clients.iter_mut().enumerate() {
            let service = if round % 2 == 0 {
                Service::AGREED
            } else {
                Service::SAFE
            };
            let data = [tag, i as u8, (round >> 8) as u8, round as u8];
            c.multicast(service, &["mix"], 0, &data).unwrap();
        }
    }
    let expected = clients.len() * per_sender as usize;
    let mut orders = Vec::new();
    for c in clients.iter_mut() {
        let mut got = Vec::with_capacity(expected);
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < expected {
            assert!(
                Instant::now() < deadline,
                "{}: only {} of {expected} messages of round {tag}",
                c.private_group(),
                got.len()
            );
            match c.receive_timeout(Duration::from_secs(1)).unwrap() {
                Some(Event::Message(m)) => {
                    assert_eq!(m.data[0], tag, "a message of another round");
                    got.push((m.data[1], u16::from_be_bytes([m.data[2], m.data[3]])));
                }
                Some(other) => panic!("{}: unexpected {other:?}", c.private_group()),
                None => {}
            }
        }
        let mut next: BTreeMap<u8, u16> = BTreeMap::new();
        for (sender, round) in &got {
            let want = next.entry(*sender).or_insert(0);
            assert_eq!(round, want, "sender {sender} out of order or duplicated");
            *want += 1;
        }
        orders.push(got);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "C and Rust daemons delivered in different orders"
    );
    expected
}

fn await_members(clients: &mut [Mailbox], n: usize) -> Duration {
    let start = Instant::now();
    for c in clients.iter_mut() {
        until_members(c, "mix", n, VIEW_WAIT);
    }
    start.elapsed()
}

#[test]
fn c_and_rust_daemons_in_one_ring() {
    let Some(prefix) = c_spread_or_skip("c_and_rust_daemons_in_one_ring") else {
        return;
    };
    let mut ring = Ring3::start_mixed("", [Some(prefix), None, None]);
    let mut clients: Vec<Mailbox> = (1..=3)
        .map(|n| connect_named(&ring.address(n), &format!("c{n}")))
        .collect();
    for c in clients.iter_mut() {
        c.join("mix").unwrap();
    }
    let formed = await_members(&mut clients, 3);
    println!("mixed ring formed (all three clients in one view) after {formed:?}");
    let mut delivered = exchange(&mut clients, 1, 300);

    // kill -9 of our n3: the C daemon and our n2 go on together.
    ring.kill(3);
    clients.pop();
    let t = await_members(&mut clients, 2);
    println!("kill -9 of a Rust daemon to a 2-member view: {t:?}");
    delivered += exchange(&mut clients, 2, 300);

    ring.start_daemon(3);
    clients.push(connect_named(&ring.address(3), "c3"));
    clients[2].join("mix").unwrap();
    let t = await_members(&mut clients, 3);
    println!("Rust daemon restarted and merged: {t:?}");
    delivered += exchange(&mut clients, 3, 300);

    // kill -9 of the C daemon: ours go on; then it comes back and merges.
    ring.kill(1);
    clients.remove(0);
    let t = await_members(&mut clients, 2);
    println!("kill -9 of the C daemon to a 2-member view: {t:?}");
    delivered += exchange(&mut clients, 4, 300);

    ring.start_daemon(1);
    let mut c1 = connect_named(&ring.address(1), "c1");
    c1.join("mix").unwrap();
    clients.insert(0, c1);
    let t = await_members(&mut clients, 3);
    println!("C daemon restarted and merged: {t:?}");
    delivered += exchange(&mut clients, 5, 300);
    println!(
        "each client delivered all {delivered} AGREED/SAFE messages of its rounds, in one order"
    );
}
