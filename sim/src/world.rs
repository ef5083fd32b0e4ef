//! The simulated world: daemons, network, clients, faults, on a virtual clock.

use crate::rng::Rng;
use bytes::Bytes;
use spread::proto::Codec;
use spread::{Event, GroupId, MembershipChange, Service, ServiceKind};
use spread_daemon::core::ring::{
    Destination, FlowControl, Port, ProcConf, ProcId, RingConf, RingOptions, SegmentConf, Timeouts,
};
use spread_daemon::core::{ConnId, CoreEvent, Daemon, DaemonOptions, Identity, Peer};
use spread_wire::handshake::{encode_auth_choice, ConnectRequest, Version};
use spread_wire::membership::MembershipId;
use spread_wire::{Endian, GroupName};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// What can go wrong, and how often.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram arrives twice.
    pub duplicate: f64,
    /// Delivery delay range; a wide range reorders.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Mean time between daemon crashes (a crashed daemon restarts after a while).
    pub crash_every: Option<Duration>,
    /// Mean time between network partitions (healed after a while).
    pub partition_every: Option<Duration>,
}

impl Faults {
    pub fn none() -> Faults {
        Faults {
            loss: 0.0,
            duplicate: 0.0,
            min_delay: Duration::from_micros(50),
            max_delay: Duration::from_micros(200),
            crash_every: None,
            partition_every: None,
        }
    }

    /// Faults drawn from the seed: every run a different mix.
    pub fn random(rng: &mut Rng) -> Faults {
        let ms = |n: u64| Duration::from_millis(n);
        Faults {
            loss: [0.0, 0.001, 0.01, 0.05][rng.below(4) as usize],
            duplicate: [0.0, 0.01, 0.05][rng.below(3) as usize],
            min_delay: Duration::from_micros(20 + rng.below(100)),
            max_delay: Duration::from_micros(200 + rng.below(3000)),
            crash_every: rng.chance(0.6).then(|| ms(800 + rng.below(2000))),
            partition_every: rng.chance(0.5).then(|| ms(800 + rng.below(2000))),
        }
    }
}

/// The shape of a run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub daemons: usize,
    /// Daemons are spread over this many segments.
    pub segments: usize,
    pub clients_per_daemon: usize,
    /// Only every `client_spacing`-th daemon gets clients (big rings).
    pub client_spacing: usize,
    /// How long faults and traffic go on; then the world heals and settles.
    pub duration: Duration,
    /// Mean time between a client's multicasts.
    pub send_every: Duration,
    pub faults: Faults,
    pub timeouts: Timeouts,
    /// The daemons' flow-control windows.
    pub flow: FlowControl,
}

impl Scenario {
    /// A big ring (past 3.17's 128 daemons): 50-daemon segments, clients on a few daemons,
    /// timeouts scaled to the ring's rotation, and one daemon crashing and coming back.
    pub fn big(rng: &mut Rng, daemons: usize) -> Scenario {
        let ms = Duration::from_millis;
        let rotation = ms(1 + daemons as u64 / 10);
        let token = ms(200).max(rotation * 8);
        Scenario {
            daemons,
            segments: daemons.div_ceil(50).min(20),
            clients_per_daemon: 1,
            client_spacing: (daemons / 8).max(1),
            duration: ms(4000),
            send_every: ms(20 + rng.below(20)),
            faults: Faults {
                loss: 0.0,
                duplicate: 0.0,
                min_delay: Duration::from_micros(20),
                max_delay: Duration::from_micros(60),
                crash_every: Some(ms(1500)),
                partition_every: None,
            },
            timeouts: spread_daemon::core::ring::Timeouts {
                token,
                hurry: token / 4,
                alive: ms(30),
                join: ms(30),
                rep: token,
                seg: ms(100),
                gather: token,
                form: token * 2,
                lookup: ms(5000),
            },
            flow: FlowControl::default(),
        }
    }

    pub fn random(rng: &mut Rng, daemons: usize) -> Scenario {
        Scenario {
            daemons,
            segments: 1 + rng.below(daemons.min(3) as u64) as usize,
            clients_per_daemon: 1 + rng.below(2) as usize,
            client_spacing: 1,
            duration: Duration::from_millis(2000 + rng.below(3000)),
            send_every: Duration::from_millis(5 + rng.below(40)),
            faults: Faults::random(rng),
            timeouts: Timeouts::fast(),
            flow: FlowControl::default(),
        }
    }
}

/// What a client saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Logged {
    Message {
        sender: u32,
        seq: u32,
        service: ServiceKind,
    },
    Regular {
        id: GroupId,
        members: Vec<String>,
    },
    Transitional {
        id: GroupId,
    },
}

/// One client session's history.
#[derive(Clone, Debug)]
pub struct ClientLog {
    pub client: u32,
    pub name: String,
    pub daemon: usize,
    pub events: Vec<Logged>,
    /// What it sent: (seq, service, self-discard).
    pub sent: Vec<(u32, ServiceKind, bool)>,
    /// Still connected at the end (its daemon never crashed under it).
    pub alive_at_end: bool,
    /// Its daemon crashed under it (then its last view may be incomplete).
    pub crashed: bool,
}

struct Client {
    log: ClientLog,
    conn: ConnId,
    codec: Option<Codec>,
    inbuf: Vec<u8>,
    handshake_done: bool,
    next_send: Instant,
    next_seq: u32,
}

struct SimDaemon {
    id: ProcId,
    /// The ring time kept across restarts, as the real daemon keeps it in a state file.
    last_time_used: Option<i32>,
    core: Option<Daemon>,
    restart_at: Option<Instant>,
    incarnation: u32,
}

struct Datagram {
    to: usize,
    port: Port,
    from: usize,
    payload: Vec<u8>,
}

pub struct World {
    pub seed: u64,
    start: Instant,
    now: Instant,
    scenario: Scenario,
    conf: RingConf,
    daemons: Vec<SimDaemon>,
    clients: Vec<Client>,
    finished: Vec<ClientLog>,
    network: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    /// Daemons' next deadlines (entries go stale; a popped one is checked against the
    /// daemon's current deadline).
    deadlines: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Daemon index by id.
    by_id: std::collections::HashMap<ProcId, usize>,
    in_flight: Vec<Option<Datagram>>,
    sequence: u64,
    /// Partition component of each daemon (all equal: connected).
    component: Vec<u8>,
    heal_at: Option<Instant>,
    next_crash: Option<Instant>,
    next_partition: Option<Instant>,
    net_rng: Rng,
    fault_rng: Rng,
    client_rng: Rng,
    next_conn: ConnId,
    next_client: u32,
    faults_on: bool,
    traffic_on: bool,
    /// Events processed, for progress reports.
    pub steps: u64,
}

const BASE_IP: u32 = 0x0a00_0000;

impl World {
    pub fn new(seed: u64, scenario: Scenario) -> World {
        let mut rng = Rng::new(seed);
        let net_rng = rng.fork();
        let mut fault_rng = rng.fork();
        let client_rng = rng.fork();
        let mut segments: Vec<SegmentConf> = (0..scenario.segments)
            .map(|s| SegmentConf {
                bcast: Ipv4Addr::from(BASE_IP | ((s as u32 + 1) << 8) | 255),
                port: 4803,
                procs: Vec::new(),
            })
            .collect();
        for d in 0..scenario.daemons {
            let s = d % scenario.segments;
            let id = BASE_IP | ((s as u32 + 1) << 8) | (d as u32 + 1);
            segments[s].procs.push(ProcConf {
                id,
                name: format!("d{d}"),
            });
        }
        let conf = RingConf::new(segments);
        let start = Instant::now();
        let daemons: Vec<SimDaemon> = conf
            .all()
            .map(|p| SimDaemon {
                id: p.id,
                last_time_used: None,
                core: None,
                restart_at: None,
                incarnation: 0,
            })
            .collect();
        let next_crash = scenario
            .faults
            .crash_every
            .map(|m| start + jitter(&mut fault_rng, m));
        let next_partition = scenario
            .faults
            .partition_every
            .map(|m| start + jitter(&mut fault_rng, m));
        let mut world = World {
            seed,
            start,
            now: start,
            component: vec![0; daemons.len()],
            daemons,
            clients: Vec::new(),
            finished: Vec::new(),
            network: BinaryHeap::new(),
            deadlines: BinaryHeap::new(),
            by_id: std::collections::HashMap::new(),
            in_flight: Vec::new(),
            sequence: 0,
            heal_at: None,
            next_crash,
            next_partition,
            net_rng,
            fault_rng,
            client_rng,
            next_conn: 1,
            next_client: 0,
            faults_on: true,
            traffic_on: true,
            steps: 0,
            scenario,
            conf,
        };
        world.by_id = world
            .daemons
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id, i))
            .collect();
        for d in 0..world.daemons.len() {
            world.boot(d);
        }
        world
    }

    /// Runs the fault phase, then heals and settles; returns every client's log.
    pub fn run(mut self) -> Vec<ClientLog> {
        self.run_in_place()
    }

    /// [`World::run`], keeping the world for a look at its daemons afterwards.
    pub fn run_in_place(&mut self) -> Vec<ClientLog> {
        let end = self.start + self.scenario.duration;
        self.run_until(end);
        // Liveness: faults stop, partitions heal, crashed daemons come back.
        self.faults_on = false;
        self.scenario.faults.loss = 0.0;
        self.scenario.faults.duplicate = 0.0;
        self.component.iter_mut().for_each(|c| *c = 0);
        for d in 0..self.daemons.len() {
            if self.daemons[d].core.is_none() {
                self.boot(d);
            }
        }
        let settle = self.now + Duration::from_secs(4);
        self.run_until(settle);
        // A last round of traffic that everyone alive must deliver, then quiet.
        self.traffic_on = false;
        for c in 0..self.clients.len() {
            self.client_send(c, ServiceKind::Safe);
        }
        let quiet = self.now + Duration::from_secs(2);
        self.run_until(quiet);
        let mut logs = std::mem::take(&mut self.finished);
        for c in self.clients.drain(..) {
            let mut log = c.log;
            log.alive_at_end = true;
            logs.push(log);
        }
        logs
    }

    /// Each running daemon's ring counters (what a monitor's status request reports).
    pub fn ring_stats(&self) -> Vec<spread_daemon::core::ring::RingStats> {
        self.daemons
            .iter()
            .filter_map(|d| d.core.as_ref()?.ring().map(|r| r.stats()))
            .collect()
    }

    fn run_until(&mut self, end: Instant) {
        loop {
            let next = self.next_event_time().unwrap_or(end);
            if next > end {
                self.now = end;
                return;
            }
            self.now = next;
            self.steps += 1;
            self.step();
        }
    }

    fn next_event_time(&self) -> Option<Instant> {
        let net = self.network.peek().map(|Reverse((t, _, _))| *t);
        let daemons = self
            .daemons
            .iter()
            .filter_map(|d| d.core.as_ref()?.poll_timeout());
        let restarts = self.daemons.iter().filter_map(|d| d.restart_at);
        let clients = self
            .clients
            .iter()
            .filter(|_| self.traffic_on)
            .map(|c| c.next_send);
        let faults = [self.next_crash, self.next_partition, self.heal_at]
            .into_iter()
            .flatten()
            .filter(|_| self.faults_on);
        net.into_iter()
            .chain(daemons)
            .chain(restarts)
            .chain(clients)
            .chain(faults)
            .min()
    }

    fn step(&mut self) {
        let now = self.now;
        while let Some(Reverse((t, _, slot))) = self.network.peek().copied() {
            if t > now {
                break;
            }
            self.network.pop();
            let Some(d) = self.in_flight[slot].take() else {
                continue;
            };
            if self.component[d.from] != self.component[d.to] {
                continue;
            }
            if let Some(core) = self.daemons[d.to].core.as_mut() {
                core.handle_datagram(now, d.port, &d.payload);
                self.pump(d.to);
            }
        }
        for d in 0..self.daemons.len() {
            if self.daemons[d].restart_at.is_some_and(|t| t <= now) {
                self.boot(d);
            }
            let due = self.daemons[d]
                .core
                .as_ref()
                .and_then(Daemon::poll_timeout)
                .is_some_and(|t| t <= now);
            if due {
                self.daemons[d]
                    .core
                    .as_mut()
                    .expect("due")
                    .handle_timeout(now);
                self.pump(d);
            }
        }
        if self.traffic_on {
            for c in 0..self.clients.len() {
                if c < self.clients.len() && self.clients[c].next_send <= now {
                    let kind = ServiceKind::ALL[self.client_rng.below(6) as usize];
                    self.client_send(c, kind);
                    let every = self.scenario.send_every;
                    self.clients[c].next_send = now + jitter(&mut self.client_rng, every);
                }
            }
        }
        if self.faults_on {
            self.inject_faults();
        }
    }

    fn inject_faults(&mut self) {
        let now = self.now;
        if self.next_crash.is_some_and(|t| t <= now) {
            let victim = self.fault_rng.below(self.daemons.len() as u64) as usize;
            // Keep at least one daemon up.
            let up = self.daemons.iter().filter(|d| d.core.is_some()).count();
            if self.daemons[victim].core.is_some() && up > 1 {
                self.crash(victim);
                let back = Duration::from_millis(300 + self.fault_rng.below(1500));
                self.daemons[victim].restart_at = Some(now + back);
            }
            let every = self.scenario.faults.crash_every.expect("crashes on");
            self.next_crash = Some(now + jitter(&mut self.fault_rng, every));
        }
        if self.next_partition.is_some_and(|t| t <= now) {
            for c in self.component.iter_mut() {
                *c = (self.fault_rng.below(2)) as u8;
            }
            self.heal_at = Some(now + Duration::from_millis(200 + self.fault_rng.below(1500)));
            let every = self.scenario.faults.partition_every.expect("partitions on");
            self.next_partition = Some(now + jitter(&mut self.fault_rng, every));
        }
        if self.heal_at.is_some_and(|t| t <= now) {
            self.component.iter_mut().for_each(|c| *c = 0);
            self.heal_at = None;
        }
    }

    // ---- daemons ------------------------------------------------------------------------------

    fn boot(&mut self, d: usize) {
        let id = self.daemons[d].id;
        let name = self.conf.name_of(id).expect("configured").to_string();
        let wall = 1_800_000_000 + self.now.duration_since(self.start).as_secs() as i64;
        let identity = Identity {
            name,
            ip: Ipv4Addr::from(id),
        };
        let mut opts = DaemonOptions::new(
            identity,
            MembershipId {
                proc_id: id,
                time: -1,
            },
        );
        opts.endian = Endian::Little;
        opts.seed = self.seed ^ (d as u64) << 32 ^ u64::from(self.daemons[d].incarnation);
        opts.connect_timeout = Duration::from_secs(3600);
        opts.ring = Some(RingOptions {
            conf: self.conf.clone(),
            me: id,
            timeouts: self.scenario.timeouts,
            flow: self.scenario.flow,
            endian: Endian::Little,
            wall_clock_secs: wall,
            last_time_used: self.daemons[d].last_time_used,
            dangerous_monitor: false,
        });
        self.daemons[d].core = Some(Daemon::new(opts, self.now));
        self.daemons[d].restart_at = None;
        self.daemons[d].incarnation += 1;
        if d.is_multiple_of(self.scenario.client_spacing.max(1)) {
            for _ in 0..self.scenario.clients_per_daemon {
                self.connect_client(d);
            }
        }
        self.pump(d);
    }

    fn crash(&mut self, d: usize) {
        if let Some(ring) = self.daemons[d].core.as_ref().and_then(|c| c.ring()) {
            self.daemons[d].last_time_used = Some(ring.last_time_used());
        }
        self.daemons[d].core = None;
        let (gone, kept): (Vec<Client>, Vec<Client>) =
            self.clients.drain(..).partition(|c| c.log.daemon == d);
        self.clients = kept;
        for c in gone {
            let mut log = c.log;
            log.crashed = true;
            self.finished.push(log);
        }
    }

    /// Drains what daemon `d` wants done, and notes its next deadline.
    fn pump(&mut self, d: usize) {
        self.pump_outputs(d);
        if let Some(t) = self.daemons[d].core.as_ref().and_then(Daemon::poll_timeout) {
            self.deadlines.push(Reverse((t, d)));
        }
    }

    /// Drains what daemon `d` wants done: datagrams into the network, bytes to clients.
    fn pump_outputs(&mut self, d: usize) {
        loop {
            let Some(core) = self.daemons[d].core.as_mut() else {
                return;
            };
            if let Some(t) = core.poll_transmit() {
                self.send(d, t.to, t.payload);
                continue;
            }
            if let Some(CoreEvent::Close { conn, .. }) = core.poll_event() {
                core.handle_closed(conn);
                if let Some(i) = self.clients.iter().position(|c| c.conn == conn) {
                    let c = self.clients.remove(i);
                    self.finished.push(c.log);
                }
                continue;
            }
            let Some(conn) = core.poll_writable() else {
                return;
            };
            let mut bytes = Vec::new();
            if let Some(q) = core.output(conn) {
                let mut slices = Vec::new();
                q.slices(&mut slices, usize::MAX);
                for s in &slices {
                    bytes.extend_from_slice(s);
                }
                drop(slices);
                q.consume(bytes.len());
            }
            if let Some(i) = self.clients.iter().position(|c| c.conn == conn) {
                self.client_receive(i, &bytes);
            }
        }
    }

    fn send(&mut self, from: usize, to: Destination, payload: Vec<u8>) {
        let targets: Vec<(usize, Port)> = match to {
            Destination::Data(id) => self
                .index_of(id)
                .map(|i| (i, Port::Data))
                .into_iter()
                .collect(),
            Destination::Token(id) => self
                .index_of(id)
                .map(|i| (i, Port::Token))
                .into_iter()
                .collect(),
            Destination::Segment(s) => self.conf.segments[s]
                .procs
                .iter()
                .filter_map(|p| self.index_of(p.id))
                .filter(|i| *i != from)
                .map(|i| (i, Port::Data))
                .collect(),
            // No monitors run in the simulator.
            Destination::Monitor(_) => Vec::new(),
        };
        for (to, port) in targets {
            let f = &self.scenario.faults;
            if self.net_rng.chance(f.loss) {
                continue;
            }
            let copies = if self.net_rng.chance(f.duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let spread = (f.max_delay.saturating_sub(f.min_delay)).as_micros() as u64;
                let delay = f.min_delay + Duration::from_micros(self.net_rng.below(spread + 1));
                self.sequence += 1;
                self.in_flight.push(Some(Datagram {
                    to,
                    port,
                    from,
                    payload: payload.clone(),
                }));
                let slot = self.in_flight.len() - 1;
                self.network
                    .push(Reverse((self.now + delay, self.sequence, slot)));
            }
        }
        if self.network.is_empty() {
            self.in_flight.clear();
        }
    }

    fn index_of(&self, id: ProcId) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    // ---- clients ------------------------------------------------------------------------------

    fn connect_client(&mut self, d: usize) {
        let client = self.next_client;
        self.next_client += 1;
        let conn = self.next_conn;
        self.next_conn += 1;
        let name = format!("c{client}");
        let core = self.daemons[d].core.as_mut().expect("booted");
        core.handle_connect(self.now, conn, Peer::Local);
        let hello = ConnectRequest {
            version: Version::OURS,
            wants_membership: true,
            priority: 0,
            offers_probe: false,
            name: name.clone().into_bytes(),
        };
        core.handle_input(self.now, conn, &hello.encode());
        core.handle_input(self.now, conn, &encode_auth_choice(&["NULL"]));
        let next_send = self.now + Duration::from_millis(20);
        self.clients.push(Client {
            log: ClientLog {
                client,
                name: format!(
                    "#{name}#{}",
                    self.conf.name_of(self.daemons[d].id).expect("configured")
                ),
                daemon: d,
                events: Vec::new(),
                sent: Vec::new(),
                alive_at_end: false,
                crashed: false,
            },
            conn,
            codec: None,
            inbuf: Vec::new(),
            handshake_done: false,
            next_send,
            next_seq: 0,
        });
    }

    fn client_receive(&mut self, i: usize, bytes: &[u8]) {
        let now = self.now;
        let c = &mut self.clients[i];
        c.inbuf.extend_from_slice(bytes);
        if !c.handshake_done {
            // Auth list, then the accept with our private group.
            let list_len = 1 + c.inbuf[0] as usize;
            let Some(accept) = c.inbuf.get(list_len..) else {
                return;
            };
            match spread_wire::handshake::parse_accept(accept) {
                Ok(spread_wire::handshake::Parsed::Done(acc, used)) => {
                    c.codec = Some(Codec::new(acc.private_group));
                    c.inbuf.drain(..list_len + used);
                    c.handshake_done = true;
                    let join = c
                        .codec
                        .as_ref()
                        .expect("set")
                        .membership_request(true, "g")
                        .expect("legal");
                    let d = c.log.daemon;
                    let conn = c.conn;
                    if let Some(core) = self.daemons[d].core.as_mut() {
                        core.handle_input(now, conn, &join);
                    }
                    self.pump(d);
                    return self.client_receive(i, &[]);
                }
                _ => return,
            }
        }
        let codec = c.codec.clone().expect("after handshake");
        loop {
            let c = &mut self.clients[i];
            match codec.decode(&c.inbuf) {
                Ok(Some((event, used))) => {
                    c.inbuf.drain(..used);
                    if let Some(logged) = to_logged(event) {
                        c.log.events.push(logged);
                    }
                }
                Ok(None) => return,
                Err(e) => panic!(
                    "seed {}: client {} got bytes it cannot decode: {e}",
                    self.seed, c.log.client
                ),
            }
        }
    }

    fn client_send(&mut self, i: usize, kind: ServiceKind) {
        let now = self.now;
        let c = &mut self.clients[i];
        let Some(codec) = c.codec.as_ref() else {
            return;
        };
        let seq = c.next_seq;
        c.next_seq += 1;
        let mut data = Vec::with_capacity(8);
        data.extend_from_slice(&c.log.client.to_le_bytes());
        data.extend_from_slice(&seq.to_le_bytes());
        let bytes = codec
            .multicast(Service::new(kind), &["g"], 0, &[&data])
            .expect("small");
        c.log.sent.push((seq, kind, false));
        let (d, conn) = (c.log.daemon, c.conn);
        if let Some(core) = self.daemons[d].core.as_mut() {
            core.handle_input(now, conn, &bytes);
        }
        self.pump(d);
    }
}

fn to_logged(event: Event) -> Option<Logged> {
    match event {
        Event::Message(m) if m.data.len() == 8 => Some(Logged::Message {
            sender: u32::from_le_bytes(m.data[0..4].try_into().expect("4")),
            seq: u32::from_le_bytes(m.data[4..8].try_into().expect("4")),
            service: m.service,
        }),
        Event::Membership(ms) => match ms.change {
            MembershipChange::Regular {
                group_id, members, ..
            } => Some(Logged::Regular {
                id: group_id,
                members,
            }),
            MembershipChange::Transitional { group_id } => {
                Some(Logged::Transitional { id: group_id })
            }
            MembershipChange::SelfLeave => None,
        },
        _ => None,
    }
}

/// Between half and one and a half of `mean`.
fn jitter(rng: &mut Rng, mean: Duration) -> Duration {
    let us = mean.as_micros().max(2) as u64;
    Duration::from_micros(us / 2 + rng.below(us))
}

#[allow(dead_code)]
fn group() -> GroupName {
    GroupName::new("g")
}

#[allow(dead_code)]
fn bytes_unused(_: Bytes) {}
