//! What a client saw, in one type for both libraries: every call's return code and every
//! event, with the fields `SP_receive` fills in.

use std::fmt;

/// One step of a recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// SP_connect: ACCEPT_SESSION (1) and the private group, or an error code and "".
    Connect {
        client: String,
        code: i32,
        private_group: String,
    },
    /// SP_join, SP_leave, SP_multicast, SP_disconnect: what it returned (bytes sent for a
    /// multicast, 0 for the others, or an error code).
    Call {
        client: String,
        call: String,
        code: i32,
    },
    /// An event SP_receive returned.
    Event { client: String, event: Received },
    /// SP_receive returned an error code.
    ReceiveError { client: String, code: i32 },
    /// Nothing arrived within the wait.
    Quiet { client: String },
    /// The script killed a daemon.
    Killed { daemon: usize },
}

/// An event as `SP_receive` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The service word: a service bit (plus SELF_DISCARD) for data; REG_MEMB_MESS or
    /// TRANSITION_MESS plus a CAUSED_BY_* bit for memberships; REJECT_MESS plus the old type.
    pub service_type: i32,
    /// The sending client's private group; for a membership, the group.
    pub sender: String,
    /// The destination groups; for a membership, the members.
    pub groups: Vec<String>,
    /// The sender's mess_type; for a regular membership, our index among the members.
    pub mess_type: i16,
    pub endian_mismatch: bool,
    /// The payload of a data message (empty for memberships: see `membership`).
    pub data: Payload,
    /// The body of a membership message, decoded.
    pub membership: Option<MembershipBody>,
}

/// A membership body: the group id and, for a regular membership, the vs_set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipBody {
    /// proc_id, time, index.
    pub group_id: [i32; 3],
    pub vs_set: Option<Vec<String>>,
}

/// Message bytes, shown by length and checksum (large messages are 144 kB).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Payload(pub Vec<u8>);

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() <= 24 {
            write!(f, "{:?}", String::from_utf8_lossy(&self.0))
        } else {
            let sum = self
                .0
                .iter()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(*b)));
            write!(f, "<{} bytes, hash {sum:08x}>", self.0.len())
        }
    }
}

/// A field that legitimately differs between two recordings, blanked before comparing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignore {
    /// `group_id[1]`: the membership's time, from the daemon's clock.
    GroupIdTime,
    /// The whole group id (proc_id, time, index): daemons number views differently.
    GroupId,
    /// The private group the daemon picks for a session connected without a name
    /// (`#r<random>#daemon`), wherever it appears.
    AssignedNames,
}

/// `records` with the `ignored` fields blanked.
pub fn normalize(records: &[Record], ignored: &[Ignore]) -> Vec<Record> {
    let mut renames: Vec<(String, String)> = Vec::new();
    if ignored.contains(&Ignore::AssignedNames) {
        for r in records {
            if let Record::Connect {
                client,
                private_group,
                ..
            } = r
            {
                if private_group.starts_with("#r") && !client.starts_with('r') {
                    let daemon = private_group.rsplit('#').next().unwrap_or("");
                    renames.push((private_group.clone(), format!("#<{client}>#{daemon}")));
                }
            }
        }
    }
    let rename = |s: &String| -> String {
        renames
            .iter()
            .find(|(from, _)| from == s)
            .map(|(_, to)| to.clone())
            .unwrap_or_else(|| s.clone())
    };
    records
        .iter()
        .map(|r| match r {
            Record::Connect {
                client,
                code,
                private_group,
            } => Record::Connect {
                client: client.clone(),
                code: *code,
                private_group: rename(private_group),
            },
            Record::Event { client, event } => {
                let mut e = event.clone();
                e.sender = rename(&e.sender);
                e.groups = e.groups.iter().map(rename).collect();
                if let Some(m) = &mut e.membership {
                    if ignored.contains(&Ignore::GroupId) {
                        m.group_id = [0; 3];
                    } else if ignored.contains(&Ignore::GroupIdTime) {
                        m.group_id[1] = 0;
                    }
                    if let Some(vs) = &mut m.vs_set {
                        *vs = vs.iter().map(rename).collect();
                    }
                }
                Record::Event {
                    client: client.clone(),
                    event: e,
                }
            }
            other => other.clone(),
        })
        .collect()
}

/// Two recordings of one scenario compared action by action.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Actions whose records differ and are not known to.
    pub unexpected: Vec<String>,
    /// Known differences that showed up, with their reasons.
    pub known_seen: Vec<String>,
    /// Known differences that did not show up: spread-rs changed, the note is stale.
    pub known_missing: Vec<String>,
}

impl Comparison {
    pub fn ok(&self) -> bool {
        self.unexpected.is_empty() && self.known_missing.is_empty()
    }
}

/// Compares two recordings (one list of records per action) after blanking `ignored`;
/// `known` maps action indexes to why spread-rs differs there.
pub fn compare(
    actions: &[String],
    known: &std::collections::BTreeMap<usize, String>,
    ignored: &[Ignore],
    (left_name, left): (&str, &[Vec<Record>]),
    (right_name, right): (&str, &[Vec<Record>]),
) -> Comparison {
    let left = normalize_steps(left, ignored);
    let right = normalize_steps(right, ignored);
    let mut c = Comparison::default();
    for i in 0..left.len().max(right.len()) {
        let (l, r) = (left.get(i), right.get(i));
        let what = actions.get(i).map_or("?", String::as_str);
        let shown = || {
            format!(
                "action {i} ({what}):\n    {left_name}: {}\n    {right_name}: {}",
                show(l),
                show(r)
            )
        };
        match (l == r, known.get(&i)) {
            (true, None) => {}
            (false, None) => c.unexpected.push(shown()),
            (false, Some(why)) => c.known_seen.push(format!("{}\n    known: {why}", shown())),
            (true, Some(why)) => c
                .known_missing
                .push(format!("action {i} ({what}) no longer differs: {why}")),
        }
    }
    c
}

/// [`normalize`] over a recording kept per action (names learnt anywhere apply everywhere).
fn normalize_steps(steps: &[Vec<Record>], ignored: &[Ignore]) -> Vec<Vec<Record>> {
    let flat: Vec<Record> = steps.iter().flatten().cloned().collect();
    let mut flat = normalize(&flat, ignored).into_iter();
    steps
        .iter()
        .map(|s| flat.by_ref().take(s.len()).collect())
        .collect()
}

fn show(r: Option<&Vec<Record>>) -> String {
    match r {
        None => "(nothing)".into(),
        Some(v) if v.is_empty() => "(no record)".into(),
        Some(v) => v
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join("\n        "),
    }
}

/// A recording, one record a line, numbered by action.
pub fn render(steps: &[Vec<Record>]) -> String {
    let mut out = String::new();
    for (i, records) in steps.iter().enumerate() {
        for r in records {
            out.push_str(&format!("{i:3} {r:?}\n"));
        }
    }
    out
}
