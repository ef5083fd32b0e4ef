use super::*;
use spread_wire::frame::Frame;
use spread_wire::probe;
use std::net::Ipv4Addr;

/// Connects `name` through the handshake; returns its private group.
fn connect(d: &mut Daemon, now: Instant, conn: ConnId, name: &str) {
    d.handle_connect(now, conn, Peer::Local);
    let mut hello = vec![3, 17, 3, 1, name.len() as u8];
    hello.extend_from_slice(name.as_bytes());
    d.handle_input(now, conn, &hello);
    let mut choice = [0u8; 90];
    choice[..4].copy_from_slice(b"NULL");
    d.handle_input(now, conn, &choice);
    drain(d, conn);
}

/// A client request to group `g` as `sender` writes it (`mess_type` in its hint), in `endian`.
fn request(
    msg_type: u32,
    sender: &str,
    mess_type: i16,
    data: &[u8],
    endian: spread_wire::Endian,
) -> Vec<u8> {
    spread_wire::frame::encode_message(
        &MessageHeader {
            msg_type,
            private_group: GroupName::new(sender),
            num_groups: 0,
            hint: spread_wire::Hint::new(mess_type, endian),
            data_len: 0,
        },
        &[GroupName::new("g")],
        &[data],
        endian,
    )
}

fn drain(d: &mut Daemon, conn: ConnId) -> Vec<u8> {
    let q = d.output(conn).unwrap();
    let mut out = Vec::new();
    let mut slices = Vec::new();
    q.slices(&mut slices, usize::MAX);
    for s in &slices {
        out.extend_from_slice(s);
    }
    let n = out.len();
    q.consume(n);
    out
}

/// A daemon on a big-endian host (ppc64, s390x) writes its own order; a little-endian
/// client's messages keep their hint, so receivers compute endian_mismatch as in 3.17.
#[test]
fn a_big_endian_daemon_serves_little_endian_clients() {
    let identity = Identity {
        name: "n1".into(),
        ip: Ipv4Addr::LOCALHOST,
    };
    let mut opts = DaemonOptions::new(
        identity,
        MembershipId {
            proc_id: 0x7f00_0001,
            time: 1,
        },
    );
    opts.endian = Endian::Big;
    let now = Instant::now();
    let mut d = Daemon::new(opts, now);
    connect(&mut d, now, 1, "le");
    let le = spread_wire::Endian::Little;
    let join = request(service::JOIN, "#le#n1", 0, b"", le);
    d.handle_input(now, 1, &join);
    let out = drain(&mut d, 1);
    let frame = Frame::decode(&out).unwrap();
    assert_eq!(frame.writer, Endian::Big, "the daemon writes its own order");
    assert_eq!(
        &out[0..4],
        &[0x00, 0x00, 0x11, 0x00],
        "REG_MEMB|CAUSED_BY_JOIN, big-endian"
    );
    let body = spread_wire::membership::RegularBody::decode(frame.data, Endian::Big).unwrap();
    assert_eq!(body.group_id.index, 1);
    let data = request(service::AGREED, "#le#n1", 0x1234, b"payload", le);
    d.handle_input(now, 1, &data);
    let out = drain(&mut d, 1);
    let frame = Frame::decode(&out).unwrap();
    assert_eq!(frame.writer, Endian::Big);
    assert_eq!(frame.header.msg_type, service::AGREED);
    assert_eq!(frame.header.data_len, 7);
    // The hint is still the little-endian client's bytes.
    assert_eq!(frame.header.hint.endian(), Endian::Little);
    assert_eq!(frame.header.hint.mess_type(), 0x1234);
    assert_eq!(frame.data, b"payload");
}

fn one_daemon(now: Instant) -> Daemon {
    let identity = Identity {
        name: "n1".into(),
        ip: Ipv4Addr::LOCALHOST,
    };
    Daemon::new(
        DaemonOptions::new(
            identity,
            MembershipId {
                proc_id: 0x7f00_0001,
                time: 1,
            },
        ),
        now,
    )
}

/// The auth list a client sees after sending `flags` in its connect message.
fn auth_list_for(d: &mut Daemon, now: Instant, conn: ConnId, flags: u8) -> Vec<u8> {
    d.handle_connect(now, conn, Peer::Local);
    d.handle_input(now, conn, &[3, 17, 3, flags, 2, b'p', b'0' + conn as u8]);
    drain(d, conn)
}

#[test]
fn only_a_client_that_offers_the_probe_sees_it_listed() {
    let now = Instant::now();
    let mut d = one_daemon(now);
    assert_eq!(auth_list_for(&mut d, now, 1, 1), b"\x05NULL ");
    assert_eq!(
        auth_list_for(&mut d, now, 2, 0x01 | probe::OFFER_FLAG),
        b"\x0bNULL PROBE "
    );
}

#[test]
fn a_probe_is_answered_and_a_silent_client_is_ended() {
    let t0 = Instant::now();
    let mut d = one_daemon(t0);
    auth_list_for(&mut d, t0, 1, probe::OFFER_FLAG);
    let mut choice = [0u8; 90];
    choice[..4].copy_from_slice(b"NULL");
    d.handle_input(t0, 1, &choice);
    drain(&mut d, 1);
    let own = GroupName::new("#p1#n1");
    for endian in [Endian::Big, Endian::Little] {
        d.handle_input(t0, 1, &probe::encode_request(&own, 300, endian));
        let answer = drain(&mut d, 1);
        let frame = Frame::decode(&answer).unwrap();
        assert!(probe::is_probe(&frame.header));
        assert_eq!(frame.header.private_group, GroupName::new("n1"));
    }
    // Heard within the hold: still open.
    d.handle_timeout(t0 + Duration::from_millis(200));
    assert_eq!(d.poll_event(), None);
    d.handle_timeout(t0 + Duration::from_millis(400));
    assert!(matches!(
        d.poll_event(),
        Some(CoreEvent::Close {
            conn: 1,
            reason: CloseReason::Silent { .. },
            ..
        })
    ));
}

#[test]
fn a_probe_from_a_client_that_did_not_offer_is_a_violation() {
    let now = Instant::now();
    let mut d = one_daemon(now);
    connect(&mut d, now, 1, "np");
    d.handle_input(
        now,
        1,
        &probe::encode_request(&GroupName::new("#np#n1"), 0, Endian::NATIVE),
    );
    assert!(matches!(
        d.poll_event(),
        Some(CoreEvent::Close {
            reason: CloseReason::Violation(_),
            ..
        })
    ));
}

#[test]
fn while_congested_probing_clients_are_reassured_not_ended() {
    let t0 = Instant::now();
    let mut d = one_daemon(t0);
    d.opts.congestion_mark = 4;
    d.opts.slow_client_grace = Duration::from_secs(10);
    auth_list_for(&mut d, t0, 1, probe::OFFER_FLAG);
    let mut choice = [0u8; 90];
    choice[..4].copy_from_slice(b"NULL");
    d.handle_input(t0, 1, &choice);
    let own = GroupName::new("#p1#n1");
    d.handle_input(t0, 1, &probe::encode_request(&own, 300, Endian::NATIVE));
    connect(&mut d, t0, 2, "slow");
    let le = Endian::NATIVE;
    let join = request(service::JOIN, "#slow#n1", 0, b"", le);
    d.handle_input(t0, 2, &join);
    for _ in 0..10 {
        let data = request(service::AGREED, "#p1#n1", 0, b"x", le);
        d.handle_input(t0, 1, &data);
    }
    drain(&mut d, 1);
    assert!(d.is_congested(), "the slow receiver congests the daemon");
    // Past p1's hold, with nothing read from it: not ended, and told we are alive.
    d.handle_timeout(t0 + Duration::from_millis(400));
    assert_eq!(d.poll_event(), None);
    let out = drain(&mut d, 1);
    let frame = Frame::decode(&out).unwrap();
    assert!(probe::is_probe(&frame.header));
}
