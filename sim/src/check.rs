//! Extended Virtual Synchrony, checked on what every client delivered.
//!
//! A client's history is cut into *epochs*, one per regular view of its group; a
//! transitional signal splits an epoch into its regular and transitional part. The checks:
//! (a) clients of one view deliver the ordered services in the same order; (b) no gaps in a
//! sender's stream within a view; (c) a SAFE message delivered in a view's regular part
//! reaches every member of that view that did not crash; (d) views are installed once, in
//! the same order everywhere, with the same members, transitional before the next regular;
//! (e) an ordered message (FIFO, CAUSAL, AGREED, SAFE) delivered in the regular part of a
//! view is delivered in that same view by everyone who delivers it in a regular part;
//! (f) no duplicates; (g) every client that stayed connected delivered its own messages;
//! and at the end, every connected client shares one view and the last round of messages.

use crate::world::{ClientLog, Logged};
use spread::{GroupId, ServiceKind};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which property: "a" to "g", or "final".
    pub property: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}) {}", self.property, self.detail)
    }
}

type MsgId = (u32, u32);
/// A group view id as a sortable key.
type ViewKey = (u32, i32, i32);

#[derive(Debug)]
struct Epoch {
    view: GroupId,
    members: Vec<String>,
    /// (message, service, delivered after the transitional signal)
    messages: Vec<(MsgId, ServiceKind, bool)>,
    transitional: bool,
}

fn epochs(log: &ClientLog, out: &mut Vec<Violation>) -> Vec<Epoch> {
    let mut epochs: Vec<Epoch> = Vec::new();
    for event in &log.events {
        match event {
            Logged::Regular { id, members } => epochs.push(Epoch {
                view: *id,
                members: members.clone(),
                messages: Vec::new(),
                transitional: false,
            }),
            Logged::Transitional { id } => match epochs.last_mut() {
                Some(e) if !e.transitional && e.view == *id => e.transitional = true,
                _ => out.push(Violation {
                    property: "d",
                    detail: format!(
                        "client {} got a transitional signal for {id:?} outside that view",
                        log.name
                    ),
                }),
            },
            Logged::Message {
                sender,
                seq,
                service,
            } => match epochs.last_mut() {
                Some(e) => {
                    let t = e.transitional;
                    e.messages.push(((*sender, *seq), *service, t))
                }
                None => out.push(Violation {
                    property: "e",
                    detail: format!(
                        "client {} delivered {sender}/{seq} before any view",
                        log.name
                    ),
                }),
            },
        }
    }
    epochs
}

fn ordered(service: ServiceKind) -> bool {
    !matches!(service, ServiceKind::Reliable | ServiceKind::Unreliable)
}

/// Checks every property; an empty list means the run kept Extended Virtual Synchrony.
pub fn check(logs: &[ClientLog]) -> Vec<Violation> {
    let mut out = Vec::new();
    let all: Vec<(&ClientLog, Vec<Epoch>)> =
        logs.iter().map(|l| (l, epochs(l, &mut out))).collect();

    // (f) no duplicates; (d) each view once per client.
    for (log, eps) in &all {
        let mut seen = BTreeSet::new();
        let mut views = BTreeSet::new();
        for e in eps {
            if !views.insert(key(e.view)) {
                out.push(v(
                    "d",
                    format!("client {} installed view {:?} twice", log.name, e.view),
                ));
            }
            for (m, _, _) in &e.messages {
                if !seen.insert(*m) {
                    out.push(v("f", format!("client {} delivered {m:?} twice", log.name)));
                }
            }
        }
    }

    // (d) same members for one view; same order of common views.
    let mut members_of: HashMap<ViewKey, (&str, &Vec<String>)> = HashMap::new();
    for (log, eps) in &all {
        for e in eps {
            match members_of.get(&key(e.view)) {
                Some((who, m)) if *m != &e.members => out.push(v(
                    "d",
                    format!(
                        "view {:?}: {} sees {:?}, {} sees {:?}",
                        e.view, who, m, log.name, e.members
                    ),
                )),
                Some(_) => {}
                None => {
                    members_of.insert(key(e.view), (&log.name, &e.members));
                }
            }
        }
    }
    for (i, (a, ea)) in all.iter().enumerate() {
        for (b, eb) in all.iter().skip(i + 1) {
            let in_b: BTreeSet<_> = eb.iter().map(|e| key(e.view)).collect();
            let common_a: Vec<_> = ea
                .iter()
                .map(|e| key(e.view))
                .filter(|k| in_b.contains(k))
                .collect();
            let in_a: BTreeSet<_> = ea.iter().map(|e| key(e.view)).collect();
            let common_b: Vec<_> = eb
                .iter()
                .map(|e| key(e.view))
                .filter(|k| in_a.contains(k))
                .collect();
            if common_a != common_b {
                out.push(v(
                    "d",
                    format!(
                        "{} and {} installed common views in different orders",
                        a.name, b.name
                    ),
                ));
            }
        }
    }

    // (e) same view and part for every delivery of a message; (a) same order within a view.
    // RELIABLE messages of one packet are delivered on arrival, outside the total order,
    // so only the ordered services are tied to a view.
    let mut delivered_in: HashMap<MsgId, (ViewKey, bool, &str)> = HashMap::new();
    for (log, eps) in &all {
        for e in eps {
            for (m, _, t) in e.messages.iter().filter(|m| ordered(m.1)) {
                // Only deliveries in a view's regular part are tied to that view. After a
                // transitional signal each partition delivers the old ring's remaining
                // messages in its own transitional configuration, possibly after different
                // interim views; and a SAFE message every member had, but whose stability one
                // daemon had not yet learnt when the ring broke, is delivered before the
                // signal by some and after it by others (EVS allows both).
                if *t {
                    continue;
                }
                match delivered_in.get(m) {
                    Some((view, part, who)) if *view != key(e.view) => out.push(v(
                        "e",
                        format!(
                            "{m:?}: {who} delivered it in {view:?}/{}, {} in {:?}/{}",
                            part_name(*part),
                            log.name,
                            key(e.view),
                            part_name(*t)
                        ),
                    )),
                    Some(_) => {}
                    None => {
                        delivered_in.insert(*m, (key(e.view), *t, &log.name));
                    }
                }
            }
        }
    }
    let mut by_view: BTreeMap<ViewKey, Vec<(&ClientLog, &Epoch)>> = BTreeMap::new();
    for (log, eps) in &all {
        for e in eps {
            by_view.entry(key(e.view)).or_default().push((log, e));
        }
    }
    for (view, clients) in &by_view {
        for (i, (a, ea)) in clients.iter().enumerate() {
            for (b, eb) in clients.iter().skip(i + 1) {
                let sa: BTreeSet<MsgId> = ea
                    .messages
                    .iter()
                    .filter(|m| ordered(m.1))
                    .map(|m| m.0)
                    .collect();
                let sb: BTreeSet<MsgId> = eb
                    .messages
                    .iter()
                    .filter(|m| ordered(m.1))
                    .map(|m| m.0)
                    .collect();
                let oa: Vec<MsgId> = ea
                    .messages
                    .iter()
                    .filter(|m| ordered(m.1) && sb.contains(&m.0))
                    .map(|m| m.0)
                    .collect();
                let ob: Vec<MsgId> = eb
                    .messages
                    .iter()
                    .filter(|m| ordered(m.1) && sa.contains(&m.0))
                    .map(|m| m.0)
                    .collect();
                if oa != ob {
                    out.push(v(
                        "a",
                        format!(
                            "view {view:?}: {} and {} deliver in different orders",
                            a.name, b.name
                        ),
                    ));
                }
            }
        }
        // (c) SAFE in the regular part reaches every member of the view that did not crash.
        for (a, ea) in clients {
            for (m, service, t) in &ea.messages {
                if *service != ServiceKind::Safe || *t {
                    continue;
                }
                for member in &ea.members {
                    let Some((b, eb)) = clients.iter().find(|(l, _)| &l.name == member) else {
                        continue;
                    };
                    let crashed_here = b.crashed && all_last_view(b, &all) == Some(*view);
                    if !crashed_here && !eb.messages.iter().any(|x| x.0 == *m) {
                        out.push(v(
                            "c",
                            format!(
                                "view {view:?}: {} delivered SAFE {m:?} but member {} never did",
                                a.name, b.name
                            ),
                        ));
                    }
                }
            }
        }
    }

    // (b) no gaps in a sender's stream within a view.
    for (log, eps) in &all {
        let mut earlier: BTreeSet<MsgId> = BTreeSet::new();
        for e in eps {
            let mut per_sender: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
            for (m, _, _) in &e.messages {
                per_sender.entry(m.0).or_default().push(m.1);
            }
            let here: BTreeSet<MsgId> = e.messages.iter().map(|m| m.0).collect();
            for (sender, seqs) in per_sender {
                let (lo, hi) = (
                    *seqs.iter().min().expect("some"),
                    *seqs.iter().max().expect("some"),
                );
                for s in lo..=hi {
                    if !here.contains(&(sender, s)) && !earlier.contains(&(sender, s)) {
                        out.push(v(
                            "b",
                            format!(
                                "client {} in view {:?}: gap at {sender}/{s}",
                                log.name, e.view
                            ),
                        ));
                        break;
                    }
                }
            }
            earlier.extend(here);
        }
    }

    // (g) self-delivery for clients that stayed connected.
    for (log, eps) in &all {
        if !log.alive_at_end {
            continue;
        }
        let got: BTreeSet<MsgId> = eps
            .iter()
            .flat_map(|e| e.messages.iter().map(|m| m.0))
            .collect();
        for (seq, _, discard) in &log.sent {
            if !discard && !got.contains(&(log.client, *seq)) {
                out.push(v(
                    "g",
                    format!("client {} never delivered its own message {seq}", log.name),
                ));
                break;
            }
        }
    }

    // Liveness: everyone connected ends in one view with everyone's last message.
    let alive: Vec<&(&ClientLog, Vec<Epoch>)> =
        all.iter().filter(|(l, _)| l.alive_at_end).collect();
    if let Some((first, first_eps)) = alive.first() {
        let final_view = first_eps.last().map(|e| key(e.view));
        for (log, eps) in &alive {
            if eps.last().map(|e| key(e.view)) != final_view {
                out.push(v(
                    "final",
                    format!(
                        "{} ends in {:?}, {} in {:?}",
                        first.name,
                        final_view,
                        log.name,
                        eps.last().map(|e| key(e.view))
                    ),
                ));
            }
            let got: BTreeSet<MsgId> = eps
                .iter()
                .flat_map(|e| e.messages.iter().map(|m| m.0))
                .collect();
            for (other, _) in &alive {
                if let Some((seq, _, _)) = other.sent.last() {
                    if !got.contains(&(other.client, *seq)) {
                        out.push(v(
                            "final",
                            format!("{} never got {}'s last message", log.name, other.name),
                        ));
                    }
                }
            }
        }
    }
    out
}

fn all_last_view(log: &ClientLog, all: &[(&ClientLog, Vec<Epoch>)]) -> Option<ViewKey> {
    all.iter()
        .find(|(l, _)| l.client == log.client)
        .and_then(|(_, e)| e.last().map(|e| key(e.view)))
}

fn key(g: GroupId) -> ViewKey {
    (g.proc_id, g.time, g.index)
}

fn part_name(transitional: bool) -> &'static str {
    if transitional {
        "transitional"
    } else {
        "regular"
    }
}

fn v(property: &'static str, detail: String) -> Violation {
    Violation { property, detail }
}

#[cfg(test)]
mod tests {
    //! Hand-made histories, each breaking one property (or none), and what the checker
    //! says of them.

    use super::*;
    use ServiceKind::{Agreed, Reliable, Safe};

    /// A client's history, written event by event.
    struct Client(ClientLog);

    fn client(id: u32, name: &str) -> Client {
        Client(ClientLog {
            client: id,
            name: name.into(),
            daemon: 0,
            events: Vec::new(),
            sent: Vec::new(),
            alive_at_end: true,
            crashed: false,
        })
    }

    fn view_id(n: i32) -> GroupId {
        GroupId {
            proc_id: 1,
            time: n,
            index: 0,
        }
    }

    impl Client {
        fn view(mut self, n: i32, members: &[&str]) -> Client {
            self.0.events.push(Logged::Regular {
                id: view_id(n),
                members: members.iter().map(|m| m.to_string()).collect(),
            });
            self
        }

        fn transitional(mut self, n: i32) -> Client {
            self.0.events.push(Logged::Transitional { id: view_id(n) });
            self
        }

        fn got(mut self, sender: u32, seq: u32, service: ServiceKind) -> Client {
            self.0.events.push(Logged::Message {
                sender,
                seq,
                service,
            });
            self
        }

        fn sent(mut self, seq: u32, service: ServiceKind) -> Client {
            self.0.sent.push((seq, service, false));
            self
        }

        fn crashed(mut self) -> Client {
            self.0.crashed = true;
            self.0.alive_at_end = false;
            self
        }
    }

    fn properties(clients: Vec<Client>) -> BTreeSet<&'static str> {
        let logs: Vec<ClientLog> = clients.into_iter().map(|c| c.0).collect();
        check(&logs).into_iter().map(|v| v.property).collect()
    }

    /// Clients 1 ("a") and 2 ("b") in view 1, each with its own messages: a sends AGREED 0
    /// and SAFE 1, b sends AGREED 0.
    fn senders() -> (Client, Client) {
        let a = client(1, "a").sent(0, Agreed).sent(1, Safe);
        let b = client(2, "b").sent(0, Agreed);
        (a.view(1, &["a", "b"]), b.view(1, &["a", "b"]))
    }

    #[test]
    fn a_history_that_keeps_evs_passes() {
        let (a, b) = senders();
        let a = a.got(1, 0, Agreed).got(2, 0, Agreed).got(1, 1, Safe);
        let b = b.got(1, 0, Agreed).got(2, 0, Agreed).got(1, 1, Safe);
        assert_eq!(properties(vec![a, b]), BTreeSet::new());
    }

    #[test]
    fn a_view_change_with_a_transitional_part_passes() {
        let (a, b) = senders();
        let a = a
            .got(1, 0, Agreed)
            .transitional(1)
            .got(2, 0, Agreed)
            .view(2, &["a"])
            .got(1, 1, Safe);
        let b = b.got(1, 0, Agreed).got(2, 0, Agreed).crashed();
        assert_eq!(properties(vec![a, b]), BTreeSet::new());
    }

    #[test]
    fn a_duplicate_delivery_is_reported() {
        let (a, b) = senders();
        let a = a
            .got(1, 0, Agreed)
            .got(2, 0, Agreed)
            .got(1, 1, Safe)
            .got(2, 0, Agreed);
        let b = b.got(1, 0, Agreed).got(2, 0, Agreed).got(1, 1, Safe);
        assert!(properties(vec![a, b]).contains("f"));
    }

    #[test]
    fn a_swapped_pair_in_agreed_order_is_reported() {
        let (a, b) = senders();
        let a = a.got(1, 0, Agreed).got(2, 0, Agreed).got(1, 1, Safe);
        let b = b.got(2, 0, Agreed).got(1, 0, Agreed).got(1, 1, Safe);
        assert_eq!(properties(vec![a, b]), BTreeSet::from(["a"]));
    }

    #[test]
    fn reliable_messages_may_come_in_any_order() {
        let a = client(1, "a").sent(0, Reliable).view(1, &["a", "b"]);
        let b = client(2, "b").sent(0, Reliable).view(1, &["a", "b"]);
        let a = a.got(1, 0, Reliable).got(2, 0, Reliable);
        let b = b.got(2, 0, Reliable).got(1, 0, Reliable);
        assert_eq!(properties(vec![a, b]), BTreeSet::new());
    }

    #[test]
    fn a_gap_in_a_senders_stream_is_reported() {
        let a = client(1, "a")
            .sent(0, Reliable)
            .sent(1, Reliable)
            .sent(2, Reliable);
        let a = a.view(1, &["a"]).got(1, 0, Reliable).got(1, 2, Reliable);
        let found = properties(vec![a]);
        assert!(found.contains("b"), "{found:?}");
    }

    #[test]
    fn a_safe_message_a_surviving_member_never_delivered_is_reported() {
        let (a, b) = senders();
        let a = a.got(1, 0, Agreed).got(2, 0, Agreed).got(1, 1, Safe);
        let b = b.got(1, 0, Agreed).got(2, 0, Agreed);
        let found = properties(vec![a, b]);
        assert!(found.contains("c"), "{found:?}");
    }

    #[test]
    fn a_member_that_crashed_in_the_view_is_excused_a_safe_message() {
        let (a, b) = senders();
        let a = a.got(1, 0, Agreed).got(2, 0, Agreed).got(1, 1, Safe);
        let b = b.got(1, 0, Agreed).got(2, 0, Agreed).crashed();
        assert_eq!(properties(vec![a, b]), BTreeSet::new());
    }

    #[test]
    fn one_view_with_different_members_is_reported() {
        let a = client(1, "a").view(1, &["a", "b"]);
        let b = client(2, "b").view(1, &["b"]);
        assert_eq!(properties(vec![a, b]), BTreeSet::from(["d"]));
    }

    #[test]
    fn views_installed_in_different_orders_are_reported() {
        let a = client(1, "a").view(1, &["a", "b"]).view(2, &["a", "b"]);
        let b = client(2, "b").view(2, &["a", "b"]).view(1, &["a", "b"]);
        assert!(properties(vec![a, b]).contains("d"));
    }

    #[test]
    fn a_view_installed_twice_or_a_stray_transitional_signal_is_reported() {
        let twice = client(1, "a")
            .view(1, &["a"])
            .view(2, &["a"])
            .view(1, &["a"]);
        assert!(properties(vec![twice]).contains("d"));
        let stray = client(1, "a").view(1, &["a"]).transitional(2);
        assert!(properties(vec![stray]).contains("d"));
    }

    #[test]
    fn a_message_delivered_in_different_views_is_reported() {
        let a = client(1, "a").sent(0, Agreed).view(1, &["a", "b"]);
        let b = client(2, "b").view(1, &["a", "b"]);
        let a = a.got(1, 0, Agreed).view(2, &["a", "b"]);
        let b = b.view(2, &["a", "b"]).got(1, 0, Agreed);
        assert_eq!(properties(vec![a, b]), BTreeSet::from(["e"]));
    }

    #[test]
    fn a_message_before_any_view_is_reported() {
        let a = client(1, "a")
            .sent(0, Agreed)
            .got(1, 0, Agreed)
            .view(1, &["a"]);
        assert!(properties(vec![a]).contains("e"));
    }

    #[test]
    fn a_connected_client_that_never_got_its_own_message_is_reported() {
        let a = client(1, "a").sent(0, Agreed).sent(1, Agreed);
        let a = a.view(1, &["a"]).got(1, 0, Agreed);
        assert!(properties(vec![a]).contains("g"));
    }

    #[test]
    fn clients_that_end_in_different_views_are_reported() {
        let a = client(1, "a").view(1, &["a", "b"]).view(2, &["a"]);
        let b = client(2, "b").view(1, &["a", "b"]);
        assert_eq!(properties(vec![a, b]), BTreeSet::from(["final"]));
    }
}
