//! The scenarios: each a script, the same for both client libraries. `c_daemon` adapts the
//! few steps the C 3.17.3 daemon cannot take (it aborts on the largest message).

use crate::record::Ignore;
use crate::script::{Data, Scenario, Script, To};
use spread_sys::{
    AGREED_MESS, CAUSAL_MESS, FIFO_MESS, RELIABLE_MESS, SAFE_MESS, SELF_DISCARD, UNRELIABLE_MESS,
};
use spread_wire::consts::limits::{
    LIBRARY_MAX_DATA_PLUS_GROUPS as LIBRARY_MAX, MAX_DATA_PLUS_GROUPS,
};
use std::time::Duration;

pub const SERVICES: [i32; 6] = [
    UNRELIABLE_MESS,
    RELIABLE_MESS,
    FIFO_MESS,
    CAUSAL_MESS,
    AGREED_MESS,
    SAFE_MESS,
];

/// Every scenario's name, in the order the tests run them.
pub const NAMES: [&str; 12] = [
    "every_service_type",
    "self_discard",
    "multigroup",
    "membership_join_leave_disconnect",
    "membership_network",
    "large_messages",
    "connect_errors",
    "group_and_message_errors",
    "daemon_killed",
    "library_limit",
    "too_many_groups",
    "no_groups",
];

/// The scenario called `name`, for the C daemon or ours.
pub fn scenario(name: &str, c_daemon: bool) -> Scenario {
    match name {
        "every_service_type" => every_service_type(),
        "self_discard" => self_discard(),
        "multigroup" => multigroup(),
        "membership_join_leave_disconnect" => membership_join_leave_disconnect(),
        "membership_network" => membership_network(c_daemon),
        "large_messages" => large_messages(c_daemon),
        "connect_errors" => connect_errors(),
        "group_and_message_errors" => group_and_message_errors(),
        "daemon_killed" => daemon_killed(),
        "library_limit" => library_limit(),
        "too_many_groups" => too_many_groups(),
        "no_groups" => no_groups(),
        other => panic!("no scenario {other}"),
    }
}

/// a and b in g1; a sends each service type, then extreme mess_types.
fn every_service_type() -> Scenario {
    let mut s = Script::new("every_service_type", 1)
        .connect("a")
        .connect("b")
        .join("a", "g1")
        .recv("a", 1)
        .join("b", "g1")
        .recv("a", 1)
        .recv("b", 1);
    for (i, service) in SERVICES.into_iter().enumerate() {
        s = s.send_text("a", service, &["g1"], i as i16 + 1, &format!("message {i}"));
    }
    s = s.recv("b", 6).recv("a", 6);
    for mess_type in [-1, i16::MIN, i16::MAX, 0] {
        s = s.send_text("b", FIFO_MESS, &["g1"], mess_type, "");
    }
    s.recv("a", 4)
        .recv("b", 4)
        .quiet("a")
        .quiet("b")
        .disconnect("b")
        .recv("a", 1)
        .disconnect("a")
        .build()
}

/// SELF_DISCARD with every service: the sender gets no copy, others do; also to the
/// sender's own private group.
fn self_discard() -> Scenario {
    let mut s = Script::new("self_discard", 1)
        .connect("a")
        .connect("b")
        .join("a", "g")
        .recv("a", 1)
        .join("b", "g")
        .recv("a", 1)
        .recv("b", 1);
    for (i, service) in SERVICES.into_iter().enumerate() {
        s = s.send_text("a", service | SELF_DISCARD, &["g"], i as i16, "not for a");
    }
    s.recv("b", 6)
        .quiet("a")
        .send_text("a", AGREED_MESS | SELF_DISCARD, &["#a#n1"], 7, "to myself")
        .send_text(
            "a",
            AGREED_MESS | SELF_DISCARD,
            &["g", "#a#n1"],
            8,
            "g and me",
        )
        .send_text("a", SAFE_MESS, &["g"], 9, "with my copy")
        .recv("b", 2)
        .recv("a", 1)
        .quiet("a")
        .quiet("b")
        .build()
}

fn groups(n: usize, last: &str) -> Vec<String> {
    let mut g: Vec<String> = (0..n - 1).map(|i| format!("x{i}")).collect();
    g.push(last.into());
    g
}

/// One message to several groups; open groups; private groups; up to 100 groups and over.
fn multigroup() -> Scenario {
    Script::new("multigroup", 1)
        .connect("a")
        .connect("b")
        .join("b", "g1")
        .recv("b", 1)
        .join("b", "g3")
        .recv("b", 1)
        // a is in no group: open groups let it send; b gets one copy naming all three.
        .send_text("a", AGREED_MESS, &["g1", "g2", "g3"], 1, "three")
        .recv("b", 1)
        .send_text("a", RELIABLE_MESS, &["#b#n1"], 2, "private")
        .recv("b", 1)
        .send_text("a", RELIABLE_MESS, &["g1", "#b#n1"], 3, "once")
        .recv("b", 1)
        .send_text("a", RELIABLE_MESS, &["nobody", "#ghost#n1"], 4, "lost")
        .quiet("b")
        // 43 groups arrive everywhere; the C 3.17 daemon loses any message to 44 or more.
        .send_to_many("a", AGREED_MESS, groups(43, "g3"), Data::Text("43".into()))
        .recv("b", 1)
        .send_to_many("a", AGREED_MESS, groups(44, "g3"), Data::Text("44".into()))
        .quiet("b")
        .send_to_many(
            "a",
            AGREED_MESS,
            groups(100, "g3"),
            Data::Text("100".into()),
        )
        .quiet("b")
        .quiet("a")
        .build()
}

/// 101 destination groups: 3.17's library sends them and the daemon ends the session;
/// spread-rs refuses them (ILLEGAL_MESSAGE) and the session goes on.
fn too_many_groups() -> Scenario {
    Script::new("too_many_groups", 1)
        .connect("a")
        .join("a", "g")
        .recv("a", 1)
        .send_to_many("a", AGREED_MESS, groups(101, "g"), Data::Text("101".into()))
        .differs(
            "101 groups: libspread sends the message (no limit on the count) and the daemon \
             closes the session; spread-rs refuses it with ILLEGAL_MESSAGE (-13)",
        )
        .recv("a", 1)
        .differs("the daemon closed the libspread session (CONNECTION_CLOSED); the spread-rs one is open and idle")
        .build()
}

/// No destination group: 3.17's library sends it, the daemon delivers it nowhere and the
/// session goes on; spread-rs refuses it (ILLEGAL_MESSAGE).
fn no_groups() -> Scenario {
    Script::new("no_groups", 1)
        .connect("a")
        .join("a", "g")
        .recv("a", 1)
        .send_to_many("a", AGREED_MESS, Vec::new(), Data::Text("none".into()))
        .differs(
            "0 groups: libspread sends the message (delivered nowhere, the session goes on); \
             spread-rs refuses it with ILLEGAL_MESSAGE (-13)",
        )
        .quiet("a")
        .send_text("a", AGREED_MESS, &["g"], 1, "still here")
        .recv("a", 1)
        .build()
}

/// Memberships by join, leave and disconnect; a session without membership messages;
/// joining twice and leaving a group never joined.
fn membership_join_leave_disconnect() -> Scenario {
    Script::new("membership_join_leave_disconnect", 1)
        .connect("alice")
        .join("alice", "demo")
        .recv("alice", 1)
        .connect("bob")
        .join("bob", "demo")
        .recv("alice", 1)
        .recv("bob", 1)
        .leave("bob", "demo")
        .recv("bob", 1)
        .recv("alice", 1)
        .join("bob", "demo")
        .recv("alice", 1)
        .recv("bob", 1)
        .join("bob", "other")
        .recv("bob", 1)
        .disconnect("bob")
        .recv("alice", 1)
        // Joining twice and leaving a group never joined change nothing.
        .join("alice", "demo")
        .leave("alice", "never")
        .quiet("alice")
        // Without membership messages: data only, no views, no self-leave.
        .connect_with("quiet", "quiet", false, "NULL")
        .join("quiet", "demo")
        .recv("alice", 1)
        .send_text("alice", AGREED_MESS, &["demo"], 5, "hi")
        .recv("quiet", 1)
        .recv("alice", 1)
        .leave("quiet", "demo")
        .recv("alice", 1)
        .quiet("quiet")
        .leave("alice", "demo")
        .recv("alice", 1)
        .quiet("alice")
        .build()
}

/// A two-daemon ring; daemon 2 is killed: its member leaves by network.
fn membership_network(c_daemon: bool) -> Scenario {
    // The C daemon detects a crash after ~11 s with default timeouts.
    let within = Duration::from_secs(if c_daemon { 60 } else { 20 });
    Script::new("membership_network", 2)
        .connect_to("c1", To::Daemon(0), "c1")
        .connect_to("c2", To::Daemon(1), "c2")
        .join("c1", "g")
        .recv_until_members("c1", "g", 1, within)
        .join("c2", "g")
        .recv_until_members("c1", "g", 2, within)
        .recv_until_members("c2", "g", 2, within)
        .send_text("c2", SAFE_MESS, &["g"], 1, "before")
        .recv("c1", 1)
        .recv("c2", 1)
        .kill(1)
        .recv_until_members("c1", "g", 1, within)
        .recv("c2", 1)
        .send_text("c1", SAFE_MESS, &["g"], 2, "after")
        .recv("c1", 1)
        .quiet("c1")
        .build()
}

/// The largest message, one byte more (MESSAGE_TOO_LONG), and the session goes on.
fn large_messages(c_daemon: bool) -> Scenario {
    // data + 32 x groups <= 143,952 is what a 3.17 daemon admits; C 3.17.3 aborts on exactly
    // that size, so against it the largest is one byte short.
    let largest = MAX_DATA_PLUS_GROUPS - 32 - usize::from(c_daemon);
    let mut s = Script::new("large_messages", 1)
        .connect("a")
        .connect("b")
        .join("a", "big")
        .recv("a", 1)
        .join("b", "big")
        .recv("a", 1)
        .recv("b", 1)
        .send("a", AGREED_MESS, &["big"], 1, Data::Pattern(largest))
        .recv("b", 1)
        .recv("a", 1)
        // Over the library's limit (data + 32 x groups <= 144,000) both refuse it locally.
        .send(
            "a",
            AGREED_MESS,
            &["big"],
            2,
            Data::Pattern(LIBRARY_MAX - 32 + 1),
        )
        .send(
            "a",
            SAFE_MESS,
            &["big", "x", "y"],
            3,
            Data::Pattern(LIBRARY_MAX - 96 + 1),
        );
    if !c_daemon {
        s = s
            .send(
                "a",
                SAFE_MESS,
                &["big", "x", "y"],
                4,
                Data::Pattern(MAX_DATA_PLUS_GROUPS - 96),
            )
            .recv("b", 1)
            .recv("a", 1);
    }
    s.send_text("a", FIFO_MESS, &["big"], 5, "still here")
        .recv("b", 1)
        .recv("a", 1)
        .quiet("b")
        .build()
}

/// What SP_connect refuses: a taken name, an auth method the daemon lacks, malformed daemon
/// names, nobody listening; and a session whose name the daemon picks.
fn connect_errors() -> Scenario {
    let mut s = Script::new("connect_errors", 1)
        .ignore(Ignore::AssignedNames)
        .connect("alice")
        .connect_to("alice2", To::Daemon(0), "alice")
        .connect_to("anon", To::Daemon(0), "")
        .connect_with("ip", "ip", true, "IP")
        .connect_to("nobody", To::Nobody, "nobody");
    for (i, spec) in ["x@127.0.0.1", "4803@", "4803@no.such.host.invalid"]
        .into_iter()
        .enumerate()
    {
        s = s.connect_to(&format!("bad{i}"), To::Literal(spec.into()), "bad");
    }
    for (i, port) in [32768, 40000].into_iter().enumerate() {
        s = s
            .connect_to(
                &format!("high{i}"),
                To::Literal(format!("{port}@127.0.0.1")),
                "high",
            )
            .differs(
                "3.17's library refuses daemon ports from 32768 (ILLEGAL_SPREAD, -1); spread-rs \
                 accepts any port and tries to connect (COULD_NOT_CONNECT, -2)",
            );
    }
    s = s.connect_to("long", To::Daemon(0), "elevenchars").differs(
        "an 11-character private name: 3.17's library cuts it to 10 and connects as \
             #elevenchar; spread-rs refuses it (REJECT_ILLEGAL_NAME, -5)",
    );
    for (i, name) in ["a b", "#x", "tab\tname"].into_iter().enumerate() {
        s = s.connect_to(&format!("name{i}"), To::Daemon(0), name);
    }
    s.join("anon", "g")
        .recv("anon", 1)
        .send_text("alice", AGREED_MESS, &["g"], 1, "to anon")
        .recv("anon", 1)
        .build()
}

/// Group names the library refuses (ILLEGAL_GROUP) and a session that goes on after them.
fn group_and_message_errors() -> Scenario {
    let long = "x".repeat(31);
    let too_long = "x".repeat(32);
    let mut s = Script::new("group_and_message_errors", 1).connect("a");
    for bad in ["", "bad group", "#x", too_long.as_str(), "tab\tgroup"] {
        s = s.join("a", bad).leave("a", bad);
    }
    // The library checks no group name of a multicast: the daemon gets them as they are.
    s = s
        .send_text("a", AGREED_MESS, &["bad group"], 2, "space")
        .send_text("a", AGREED_MESS, &["g", "#x"], 3, "hash");
    s.join("a", &long)
        .recv("a", 1)
        .send_text("a", AGREED_MESS, &[long.as_str()], 1, "longest name")
        .recv("a", 1)
        .quiet("a")
        .build()
}

/// The daemon dies under a connected client.
fn daemon_killed() -> Scenario {
    Script::new("daemon_killed", 1)
        .connect("a")
        .join("a", "g")
        .recv("a", 1)
        .kill(0)
        .recv("a", 1)
        .send_text("a", AGREED_MESS, &["g"], 1, "after")
        .join("a", "g2")
        .build()
}

/// Between the daemon's limit (data + 32 x groups <= 143,952) and the C library's
/// (<= 144,000): only against our daemon (the C 3.17.3 daemon aborts on such a message).
fn library_limit() -> Scenario {
    Script::new("library_limit", 1)
        .connect("a")
        .join("a", "g")
        .recv("a", 1)
        .send("a", AGREED_MESS, &["g"], 1, Data::Pattern(MAX_DATA_PLUS_GROUPS - 32 + 1))
        .differs(
            "143,953 bytes (data + 32 x groups): libspread lets up to 144,000 through and the \
             daemon then closes the session; spread-rs refuses over 143,952 (MESSAGE_TOO_LONG)",
        )
        .recv("a", 1)
        .differs("the daemon closed the libspread session (CONNECTION_CLOSED); the spread-rs one is open and idle")
        .build()
}
