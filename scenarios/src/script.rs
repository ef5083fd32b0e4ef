//! Scenarios as scripts of client actions, and the runner that plays one through a client
//! library against a [`Cluster`] and records what every client got.

use crate::clients::{Client, Library};
use crate::daemons::Cluster;
use crate::record::{Ignore, Payload, Record};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Where a client connects.
#[derive(Clone, Debug)]
pub enum To {
    /// Daemon `n` of the cluster (0-based), as `port@127.0.0.n+1`.
    Daemon(usize),
    /// This daemon name, as given (for ILLEGAL_SPREAD).
    Literal(String),
    /// A port below 32768 on 127.0.0.1 where nothing listens (connection refused).
    Nobody,
}

/// Message contents.
#[derive(Clone, Debug)]
pub enum Data {
    Text(String),
    /// `len` bytes of a counting pattern.
    Pattern(usize),
}

impl Data {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Data::Text(s) => s.as_bytes().to_vec(),
            Data::Pattern(len) => (0..*len).map(|i| (i % 251) as u8).collect(),
        }
    }
}

/// One step of a scenario.
#[derive(Clone, Debug)]
pub enum Action {
    /// Connect client `client` as private name `name` ("" lets the daemon pick).
    Connect {
        client: String,
        to: To,
        name: String,
        membership: bool,
        auth: String,
    },
    Join(String, String),
    Leave(String, String),
    Multicast {
        client: String,
        service: i32,
        groups: Vec<String>,
        mess_type: i16,
        data: Data,
    },
    /// Receive `count` events, each within [`WAIT`] (an error or a timeout ends it).
    Receive(String, usize),
    /// Receive until a regular membership of `group` with `members` members arrives, within
    /// `within`, recording everything received on the way.
    ReceiveUntilMembers {
        client: String,
        group: String,
        members: usize,
        within: Duration,
    },
    /// Expect nothing for [`QUIET`]: records `Quiet`, or whatever came instead.
    Quiet(String),
    Disconnect(String),
    /// kill -9 of daemon `n`.
    Kill(usize),
    Sleep(Duration),
}

impl Action {
    /// One line saying what the action does.
    pub fn describe(&self) -> String {
        match self {
            Action::Connect {
                client,
                to,
                name,
                membership,
                auth,
            } => format!(
                "{client}: connect to {to:?} as {name:?}, membership {membership}, auth {auth}"
            ),
            Action::Join(c, g) => format!("{c}: join {g:?}"),
            Action::Leave(c, g) => format!("{c}: leave {g:?}"),
            Action::Multicast {
                client,
                service,
                groups,
                mess_type,
                data,
            } => {
                let to = if groups.len() > 3 {
                    format!("{} groups", groups.len())
                } else {
                    format!("{groups:?}")
                };
                format!(
                    "{client}: multicast 0x{service:x} to {to}, type {mess_type}, {:?}",
                    Payload(data.bytes())
                )
            }
            Action::Receive(c, n) => format!("{c}: receive {n}"),
            Action::ReceiveUntilMembers {
                client,
                group,
                members,
                ..
            } => format!("{client}: receive until {group} has {members} members"),
            Action::Quiet(c) => format!("{c}: expect nothing"),
            Action::Disconnect(c) => format!("{c}: disconnect"),
            Action::Kill(n) => format!("kill daemon {n}"),
            Action::Sleep(d) => format!("sleep {d:?}"),
        }
    }
}

/// How long one expected event may take.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing more" is watched for.
pub const QUIET: Duration = Duration::from_millis(400);

/// A named script with the number of daemons it needs, the fields that legitimately
/// differ between recordings of it, and the steps where spread-rs is known to behave
/// differently from libspread (action index and why).
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub daemons: usize,
    pub actions: Vec<Action>,
    pub ignore: Vec<Ignore>,
    pub known: BTreeMap<usize, String>,
}

/// A builder for scripts that read like the scenarios they are.
pub struct Script {
    scenario: Scenario,
}

fn s(x: &str) -> String {
    x.to_string()
}

impl Script {
    pub fn new(name: &str, daemons: usize) -> Script {
        Script {
            scenario: Scenario {
                name: name.into(),
                daemons,
                actions: Vec::new(),
                ignore: vec![Ignore::GroupIdTime],
                known: BTreeMap::new(),
            },
        }
    }

    pub fn ignore(mut self, field: Ignore) -> Script {
        self.scenario.ignore.push(field);
        self
    }

    /// The previous action is known to give different results through spread-rs than
    /// through libspread, for `reason`.
    pub fn differs(mut self, reason: &str) -> Script {
        let last = self.scenario.actions.len() - 1;
        self.scenario.known.insert(last, reason.into());
        self
    }

    fn push(mut self, a: Action) -> Script {
        self.scenario.actions.push(a);
        self
    }

    /// Connects `client` to daemon 0 under its own name, with memberships.
    pub fn connect(self, client: &str) -> Script {
        self.connect_to(client, To::Daemon(0), client)
    }

    pub fn connect_to(self, client: &str, to: To, name: &str) -> Script {
        self.push(Action::Connect {
            client: s(client),
            to,
            name: s(name),
            membership: true,
            auth: s("NULL"),
        })
    }

    pub fn connect_with(self, client: &str, name: &str, membership: bool, auth: &str) -> Script {
        self.push(Action::Connect {
            client: s(client),
            to: To::Daemon(0),
            name: s(name),
            membership,
            auth: s(auth),
        })
    }

    pub fn join(self, client: &str, group: &str) -> Script {
        self.push(Action::Join(s(client), s(group)))
    }

    pub fn leave(self, client: &str, group: &str) -> Script {
        self.push(Action::Leave(s(client), s(group)))
    }

    pub fn send(
        self,
        client: &str,
        service: i32,
        groups: &[&str],
        mess_type: i16,
        data: Data,
    ) -> Script {
        self.push(Action::Multicast {
            client: s(client),
            service,
            groups: groups.iter().map(|g| s(g)).collect(),
            mess_type,
            data,
        })
    }

    pub fn send_text(
        self,
        client: &str,
        service: i32,
        groups: &[&str],
        mess_type: i16,
        text: &str,
    ) -> Script {
        self.send(client, service, groups, mess_type, Data::Text(s(text)))
    }

    pub fn send_to_many(
        self,
        client: &str,
        service: i32,
        groups: Vec<String>,
        data: Data,
    ) -> Script {
        self.push(Action::Multicast {
            client: s(client),
            service,
            groups,
            mess_type: 0,
            data,
        })
    }

    pub fn recv(self, client: &str, count: usize) -> Script {
        self.push(Action::Receive(s(client), count))
    }

    pub fn recv_until_members(
        self,
        client: &str,
        group: &str,
        members: usize,
        within: Duration,
    ) -> Script {
        self.push(Action::ReceiveUntilMembers {
            client: s(client),
            group: s(group),
            members,
            within,
        })
    }

    pub fn quiet(self, client: &str) -> Script {
        self.push(Action::Quiet(s(client)))
    }

    pub fn disconnect(self, client: &str) -> Script {
        self.push(Action::Disconnect(s(client)))
    }

    pub fn kill(self, daemon: usize) -> Script {
        self.push(Action::Kill(daemon))
    }

    pub fn sleep(self, d: Duration) -> Script {
        self.push(Action::Sleep(d))
    }

    pub fn build(self) -> Scenario {
        self.scenario
    }
}

/// Plays `scenario` through `library` against `cluster`, recording every call's result and
/// every event: one list of records per action.
pub fn run(scenario: &Scenario, library: &dyn Library, cluster: &mut Cluster) -> Vec<Vec<Record>> {
    let mut clients: BTreeMap<String, Box<dyn Client>> = BTreeMap::new();
    let mut steps = Vec::new();
    let call = |client: &str, call: String, code: i32| Record::Call {
        client: client.into(),
        call,
        code,
    };
    for action in &scenario.actions {
        let mut out = Vec::new();
        match action {
            Action::Connect {
                client,
                to,
                name,
                membership,
                auth,
            } => {
                let daemon = match to {
                    To::Daemon(n) => cluster.address(*n),
                    To::Literal(s) => s.clone(),
                    To::Nobody => format!(
                        "{}@127.0.0.1",
                        spread_testkit::free_port(&[std::net::Ipv4Addr::LOCALHOST])
                    ),
                };
                match library.connect(&daemon, name, *membership, auth) {
                    Ok((c, private_group)) => {
                        clients.insert(client.clone(), c);
                        out.push(Record::Connect {
                            client: client.clone(),
                            code: 1,
                            private_group,
                        });
                    }
                    Err(code) => out.push(Record::Connect {
                        client: client.clone(),
                        code,
                        private_group: String::new(),
                    }),
                }
            }
            Action::Join(c, g) => {
                let code = client(&mut clients, c).join(g);
                out.push(call(c, format!("join {g}"), code));
            }
            Action::Leave(c, g) => {
                let code = client(&mut clients, c).leave(g);
                out.push(call(c, format!("leave {g}"), code));
            }
            Action::Multicast {
                client: c,
                service,
                groups,
                mess_type,
                data,
            } => {
                let bytes = data.bytes();
                let code = client(&mut clients, c).multicast(*service, groups, *mess_type, &bytes);
                let shown = if groups.len() > 3 {
                    format!("{} groups", groups.len())
                } else {
                    groups.join(",")
                };
                out.push(call(
                    c,
                    format!(
                        "multicast 0x{service:x} to {shown} type {mess_type} {:?}",
                        Payload(bytes)
                    ),
                    code,
                ));
            }
            Action::Receive(c, count) => {
                let cl = client(&mut clients, c);
                for _ in 0..*count {
                    match cl.receive(WAIT) {
                        Ok(Some(event)) => out.push(Record::Event {
                            client: c.clone(),
                            event,
                        }),
                        Ok(None) => {
                            out.push(Record::Quiet { client: c.clone() });
                            break;
                        }
                        Err(code) => {
                            out.push(Record::ReceiveError {
                                client: c.clone(),
                                code,
                            });
                            break;
                        }
                    }
                }
            }
            Action::ReceiveUntilMembers {
                client: c,
                group,
                members,
                within,
            } => {
                let cl = client(&mut clients, c);
                let deadline = Instant::now() + *within;
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        out.push(Record::Quiet { client: c.clone() });
                        break;
                    }
                    match cl.receive(left) {
                        Ok(Some(event)) => {
                            let done = event.sender == *group
                                && event.service_type as u32
                                    & spread_wire::consts::service::REG_MEMB
                                    != 0
                                && event.groups.len() == *members;
                            out.push(Record::Event {
                                client: c.clone(),
                                event,
                            });
                            if done {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(code) => {
                            out.push(Record::ReceiveError {
                                client: c.clone(),
                                code,
                            });
                            break;
                        }
                    }
                }
            }
            Action::Quiet(c) => match client(&mut clients, c).receive(QUIET) {
                Ok(None) => out.push(Record::Quiet { client: c.clone() }),
                Ok(Some(event)) => out.push(Record::Event {
                    client: c.clone(),
                    event,
                }),
                Err(code) => out.push(Record::ReceiveError {
                    client: c.clone(),
                    code,
                }),
            },
            Action::Disconnect(c) => {
                let code = client(&mut clients, c).disconnect();
                out.push(call(c, "disconnect".into(), code));
            }
            Action::Kill(n) => {
                cluster.kill(*n);
                out.push(Record::Killed { daemon: *n });
            }
            Action::Sleep(d) => std::thread::sleep(*d),
        }
        steps.push(out);
    }
    steps
}

fn client<'a>(
    clients: &'a mut BTreeMap<String, Box<dyn Client>>,
    name: &str,
) -> &'a mut Box<dyn Client> {
    clients
        .get_mut(name)
        .unwrap_or_else(|| panic!("the script uses client {name} before connecting it"))
}
