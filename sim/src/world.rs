//! The simulated world: daemons, network, clients, faults, on a virtual clock.
//!
//! Each daemon is driven as the real event loop (`daemon/src/io/mod.rs`) drives its core:
//! a client's bytes are read only while the core is not congested (a client paused so is
//! read again once it drains) — datagrams, new connections, timeouts and writes go on
//! meanwhile — the core's queued output reaches a client only while that client reads, a
//! close with `flush` first writes what is queued, and `Exit` stops the daemon. The
//! functions that mirror the event loop carry its functions' names.

use crate::rng::Rng;
use crate::scenario::{Scenario, PORT};
use spread::proto::Codec;
use spread::{Event, GroupId, MembershipChange, Service, ServiceKind};
use spread_daemon::config::{self, Config, RingStart};
use spread_daemon::core::ring::{Destination, Port, ProcId, RingConf};
use spread_daemon::core::{ConnId, CoreEvent, Daemon, DaemonOptions, Identity, Peer};
use spread_wire::handshake::{encode_auth_choice, ConnectRequest, Version};
use spread_wire::membership::MembershipId;
use spread_wire::ring::monitor::{monitor_request, PerDaemonTable};
use spread_wire::ring::packet::packet_type;
use spread_wire::Endian;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

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
    /// Still connected at the end.
    pub alive_at_end: bool,
    /// Its session ended under it — its daemon crashed or exited, or dropped it — so its
    /// last view may be incomplete.
    pub crashed: bool,
}

struct Client {
    log: ClientLog,
    conn: ConnId,
    codec: Option<Codec>,
    /// Bytes from the daemon not decoded yet.
    inbuf: Vec<u8>,
    /// Bytes the client wrote that its daemon has not read yet.
    unread: Vec<u8>,
    handshake_done: bool,
    next_send: Instant,
    next_seq: u32,
    /// Until then the client reads nothing, so the daemon's writes to it would block.
    stalled_until: Option<Instant>,
    next_stall: Option<Instant>,
    /// The core asked to close once the queue is written (`Close { flush: true }`).
    closing: bool,
}

struct SimDaemon {
    id: ProcId,
    /// The ring time kept across restarts, as the real daemon keeps it in a state file.
    last_time_used: Option<i32>,
    core: Option<Daemon>,
    restart_at: Option<Instant>,
    incarnation: u32,
    /// Clients not read while the core is congested; read again once it drains.
    paused: Vec<ConnId>,
    /// Clients that wrote since the daemon last read them.
    readable: Vec<ConnId>,
    /// A monitor told the daemon to exit: it stops at the end of this turn.
    exiting: bool,
}

struct Datagram {
    to: usize,
    port: Port,
    from: usize,
    payload: Vec<u8>,
}

/// Bytes one read of a client takes (the event loop's read buffer).
const READ_CHUNK: usize = 256 * 1024;
/// Datagrams handled between two rounds of client writes (as the event loop).
const DATAGRAMS_PER_CLIENT_FLUSH: usize = 64;

pub struct World {
    pub seed: u64,
    start: Instant,
    now: Instant,
    scenario: Scenario,
    /// The spread.conf every daemon reads.
    config: Config,
    conf: RingConf,
    daemons: Vec<SimDaemon>,
    clients: Vec<Client>,
    finished: Vec<ClientLog>,
    network: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    /// Daemon index by id.
    by_id: HashMap<ProcId, usize>,
    in_flight: Vec<Option<Datagram>>,
    sequence: u64,
    /// Partition component of each daemon (all equal: connected).
    component: Vec<u8>,
    heal_at: Option<Instant>,
    next_crash: Option<Instant>,
    next_partition: Option<Instant>,
    next_exit: Option<Instant>,
    net_rng: Rng,
    fault_rng: Rng,
    client_rng: Rng,
    /// Clients' pauses in reading, apart so they do not shift the other draws.
    stall_rng: Rng,
    next_conn: ConnId,
    next_client: u32,
    faults_on: bool,
    traffic_on: bool,
    /// Instants the world stepped through.
    pub steps: u64,
    /// Reads of a client put off because its daemon was congested.
    pub reads_paused: u64,
    /// Sessions the daemons closed (too slow, rejected, ...).
    pub sessions_closed: u64,
    /// Daemons that exited because a monitor told them to.
    pub daemon_exits: u64,
}

impl World {
    pub fn new(seed: u64, scenario: Scenario) -> World {
        let mut rng = Rng::new(seed);
        let net_rng = rng.fork();
        let mut fault_rng = rng.fork();
        let client_rng = rng.fork();
        let stall_rng = rng.fork();
        let text = scenario.spread_conf();
        let config = config::parse_str_with_resolver(&text, "spread.conf", &|_| None)
            .unwrap_or_else(|e| panic!("the simulated spread.conf: {e}\n{text}"));
        let conf = config::ring_conf(&config);
        let start = Instant::now();
        let daemons: Vec<SimDaemon> = conf
            .all()
            .map(|p| SimDaemon {
                id: p.id,
                last_time_used: None,
                core: None,
                restart_at: None,
                incarnation: 0,
                paused: Vec::new(),
                readable: Vec::new(),
                exiting: false,
            })
            .collect();
        let faults = &scenario.faults;
        let next_crash = faults
            .crash_every
            .map(|m| start + jitter(&mut fault_rng, m));
        let next_partition = faults
            .partition_every
            .map(|m| start + jitter(&mut fault_rng, m));
        let next_exit = faults.exit_every.map(|m| start + jitter(&mut fault_rng, m));
        let by_id = daemons.iter().enumerate().map(|(i, d)| (d.id, i)).collect();
        let mut world = World {
            seed,
            start,
            now: start,
            component: vec![0; daemons.len()],
            daemons,
            clients: Vec::new(),
            finished: Vec::new(),
            network: BinaryHeap::new(),
            by_id,
            in_flight: Vec::new(),
            sequence: 0,
            heal_at: None,
            next_crash,
            next_partition,
            next_exit,
            net_rng,
            fault_rng,
            client_rng,
            stall_rng,
            next_conn: 1,
            next_client: 0,
            faults_on: true,
            traffic_on: true,
            steps: 0,
            reads_paused: 0,
            sessions_closed: 0,
            daemon_exits: 0,
            scenario,
            config,
            conf,
        };
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
        // Liveness: faults stop, partitions heal, stalled clients read again, crashed
        // daemons come back.
        self.faults_on = false;
        self.scenario.faults.loss = 0.0;
        self.scenario.faults.duplicate = 0.0;
        self.component.iter_mut().for_each(|c| *c = 0);
        for c in 0..self.clients.len() {
            self.clients[c].next_stall = None;
            if self.clients[c].stalled_until.is_some() {
                self.clients[c].stalled_until = Some(self.now);
            }
        }
        self.step_clients();
        for d in 0..self.daemons.len() {
            if self.daemons[d].core.is_none() {
                self.boot(d);
            }
        }
        let settle = self.now + Duration::from_secs(4);
        self.run_until(settle);
        // A last round of traffic that everyone alive must deliver, then quiet.
        self.traffic_on = false;
        for conn in self.conns() {
            self.client_send(conn, ServiceKind::Safe);
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
        let sends = self
            .clients
            .iter()
            .filter(|_| self.traffic_on)
            .map(|c| c.next_send);
        let stalls = self
            .clients
            .iter()
            .flat_map(|c| [c.stalled_until, c.next_stall])
            .flatten();
        let faults = [
            self.next_crash,
            self.next_partition,
            self.next_exit,
            self.heal_at,
        ]
        .into_iter()
        .flatten()
        .filter(|_| self.faults_on);
        net.into_iter()
            .chain(daemons)
            .chain(restarts)
            .chain(sends)
            .chain(stalls)
            .chain(faults)
            .min()
    }

    fn step(&mut self) {
        let now = self.now;
        let mut received = vec![0usize; self.daemons.len()];
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
            let Some(core) = self.daemons[d.to].core.as_mut() else {
                continue;
            };
            core.handle_datagram(now, d.port, &d.payload);
            self.send_datagrams(d.to);
            received[d.to] += 1;
            if received[d.to].is_multiple_of(DATAGRAMS_PER_CLIENT_FLUSH) {
                self.drain_core(d.to);
            }
        }
        for (d, &n) in received.iter().enumerate() {
            if n > 0 {
                self.turn(d);
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
                self.turn(d);
            }
        }
        self.step_clients();
        if self.faults_on {
            self.inject_faults();
        }
    }

    /// Clients send, pause reading, and read again, as their times come.
    fn step_clients(&mut self) {
        let now = self.now;
        for conn in self.conns() {
            let Some(c) = self.client(conn) else {
                continue;
            };
            let (sends, stall_ends, stall_starts) = (
                self.traffic_on && c.next_send <= now,
                c.stalled_until.is_some_and(|t| t <= now),
                c.next_stall.is_some_and(|t| t <= now),
            );
            if sends {
                let kind = ServiceKind::ALL[self.client_rng.below(6) as usize];
                self.client_send(conn, kind);
                let every = self.scenario.send_every;
                let next = now + jitter(&mut self.client_rng, every);
                if let Some(c) = self.client_mut(conn) {
                    c.next_send = next;
                }
            }
            if stall_ends {
                self.client_mut(conn).expect("stalled").stalled_until = None;
                // The writable event: the daemon writes what piled up.
                let d = self.client(conn).expect("stalled").log.daemon;
                self.write(conn);
                self.turn(d);
            }
            if stall_starts {
                let f = &self.scenario.faults;
                let (every, longest) = (f.stall_every.expect("stalls on"), f.max_stall);
                let pause = Duration::from_micros(self.stall_rng.below(longest.as_micros() as u64));
                let next = now + pause + jitter(&mut self.stall_rng, every);
                if let Some(c) = self.client_mut(conn) {
                    c.stalled_until = Some(now + pause);
                    c.next_stall = Some(next);
                }
            }
        }
    }

    fn inject_faults(&mut self) {
        let now = self.now;
        if self.next_crash.is_some_and(|t| t <= now) {
            let victim = self.fault_rng.below(self.daemons.len() as u64) as usize;
            if self.may_stop(victim) {
                self.crash(victim);
                self.schedule_restart(victim);
            }
            let every = self.scenario.faults.crash_every.expect("crashes on");
            self.next_crash = Some(now + jitter(&mut self.fault_rng, every));
        }
        if self.next_exit.is_some_and(|t| t <= now) {
            let victim = self.fault_rng.below(self.daemons.len() as u64) as usize;
            if self.may_stop(victim) {
                self.monitor_tells_to_exit(victim);
            }
            let every = self.scenario.faults.exit_every.expect("exits on");
            self.next_exit = Some(now + jitter(&mut self.fault_rng, every));
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

    /// Whether daemon `d` runs and is not the last one running.
    fn may_stop(&self, d: usize) -> bool {
        let up = self.daemons.iter().filter(|d| d.core.is_some()).count();
        self.daemons[d].core.is_some() && up > 1
    }

    fn schedule_restart(&mut self, d: usize) {
        let back = Duration::from_millis(300 + self.fault_rng.below(1500));
        self.daemons[d].restart_at = Some(self.now + back);
    }

    /// A monitor's partition command, with daemon `d` alone in a negative component: with
    /// `DangerousMonitor`, 3.17's order to exit. It reaches `d` at once, whatever the
    /// network's partitions.
    fn monitor_tells_to_exit(&mut self, d: usize) {
        let id = self.daemons[d].id;
        let mut table = PerDaemonTable::default();
        table.entries[self.conf.index_of(id).expect("configured")] = -1;
        let body = table.encode(Endian::Little);
        // From a host the configuration names (the daemon's own), as a monitor must be.
        let mut header = monitor_request(packet_type::PARTITION, id, PORT);
        header.data_len = body.len() as i16;
        let datagram = spread_wire::ring::encode_datagram(Endian::Little, &[(header, &body[..])])
            .expect("one packet fits");
        let now = self.now;
        if let Some(core) = self.daemons[d].core.as_mut() {
            core.handle_datagram(now, Port::Data, &datagram);
            self.send_datagrams(d);
            self.turn(d);
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
        opts.dangerous_monitor = self.config.dangerous_monitor;
        opts.ring = Some(config::ring_options(
            &self.config,
            id,
            RingStart {
                with_c_daemons: false,
                endian: opts.endian,
                wall_clock_secs: wall,
                last_time_used: self.daemons[d].last_time_used,
            },
        ));
        let daemon = &mut self.daemons[d];
        daemon.core = Some(Daemon::new(opts, self.now));
        daemon.restart_at = None;
        daemon.incarnation += 1;
        daemon.paused.clear();
        daemon.readable.clear();
        daemon.exiting = false;
        if d.is_multiple_of(self.scenario.client_spacing.max(1)) {
            for _ in 0..self.scenario.clients_per_daemon {
                self.connect_client(d, "NULL");
            }
        }
        self.turn(d);
    }

    /// The daemon stops at once (a crash, or an exit a monitor ordered): its sessions end.
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

    /// One turn of daemon `d`'s event loop: read the clients that wrote, let the core time
    /// out what is due, carry out what it asks, and read again the clients paused while it
    /// was congested once it no longer is. Until nothing is left to read.
    fn turn(&mut self, d: usize) {
        loop {
            for conn in std::mem::take(&mut self.daemons[d].readable) {
                self.read(d, conn);
            }
            let now = self.now;
            let Some(core) = self.daemons[d].core.as_mut() else {
                return;
            };
            if core.poll_timeout().is_some_and(|t| t <= now) {
                core.handle_timeout(now);
            }
            self.drain_core(d);
            if self.daemons[d].exiting {
                self.daemon_exits += 1;
                self.crash(d);
                self.schedule_restart(d);
                return;
            }
            let daemon = &mut self.daemons[d];
            let core = daemon.core.as_mut().expect("running");
            if !daemon.paused.is_empty() && !core.is_congested() {
                for conn in std::mem::take(&mut self.daemons[d].paused) {
                    self.read(d, conn);
                }
            }
            if self.daemons[d].readable.is_empty() {
                return;
            }
        }
    }

    /// `EventLoop::read`: hands the core what a client wrote, unless the core is congested.
    fn read(&mut self, d: usize, conn: ConnId) {
        loop {
            let now = self.now;
            let Some(i) = self.clients.iter().position(|c| c.conn == conn) else {
                return;
            };
            let Some(core) = self.daemons[d].core.as_mut() else {
                return;
            };
            let c = &mut self.clients[i];
            if c.closing {
                return;
            }
            if core.is_congested() {
                let paused = &mut self.daemons[d].paused;
                if !paused.contains(&conn) {
                    paused.push(conn);
                    self.reads_paused += 1;
                }
                return;
            }
            if c.unread.is_empty() {
                return;
            }
            let n = c.unread.len().min(READ_CHUNK);
            let bytes: Vec<u8> = c.unread.drain(..n).collect();
            core.handle_input(now, conn, &bytes);
            // Write replies before reading more, as the event loop does.
            self.drain_core(d);
        }
    }

    /// `EventLoop::send_datagrams`: the ring's datagrams into the network.
    fn send_datagrams(&mut self, d: usize) {
        while let Some(t) = self.daemons[d]
            .core
            .as_mut()
            .and_then(Daemon::poll_transmit)
        {
            self.send(d, t.to, t.payload);
        }
    }

    /// `EventLoop::drain_core`: sends datagrams, closes what the core closed, stops the
    /// daemon if told to, and writes what it queued.
    fn drain_core(&mut self, d: usize) {
        self.send_datagrams(d);
        while let Some(event) = self.daemons[d].core.as_mut().and_then(Daemon::poll_event) {
            match event {
                CoreEvent::Exit => self.daemons[d].exiting = true,
                CoreEvent::Close {
                    conn, flush: true, ..
                } => {
                    if let Some(c) = self.client_mut(conn) {
                        c.closing = true;
                    }
                    self.write(conn);
                }
                CoreEvent::Close {
                    conn, flush: false, ..
                } => self.close(d, conn),
            }
        }
        while let Some(conn) = self.daemons[d]
            .core
            .as_mut()
            .and_then(Daemon::poll_writable)
        {
            self.write(conn);
        }
    }

    /// `EventLoop::write`: what the core queued for a client reaches it while it reads; a
    /// closing session closes once its queue is empty.
    fn write(&mut self, conn: ConnId) {
        let Some(c) = self.client(conn) else {
            return;
        };
        if c.stalled_until.is_some() {
            // The write would block; the client's next read is a writable event.
            return;
        }
        let (d, closing) = (c.log.daemon, c.closing);
        let Some(queue) = self.daemons[d].core.as_mut().and_then(|k| k.output(conn)) else {
            return;
        };
        let mut bytes = Vec::new();
        let mut slices = Vec::new();
        queue.slices(&mut slices, usize::MAX);
        for s in &slices {
            bytes.extend_from_slice(s);
        }
        drop(slices);
        queue.consume(bytes.len());
        self.client_receive(conn, &bytes);
        if closing {
            self.close(d, conn);
        }
    }

    /// `EventLoop::close`: the session ends; what the core still queued for it is lost.
    fn close(&mut self, d: usize, conn: ConnId) {
        if let Some(core) = self.daemons[d].core.as_mut() {
            core.handle_closed(conn);
        }
        if let Some(i) = self.clients.iter().position(|c| c.conn == conn) {
            self.sessions_closed += 1;
            let mut log = self.clients.remove(i).log;
            log.crashed = true;
            self.finished.push(log);
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
            // Monitors' orders are injected; their answers go nowhere.
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

    fn conns(&self) -> Vec<ConnId> {
        self.clients.iter().map(|c| c.conn).collect()
    }

    fn client(&self, conn: ConnId) -> Option<&Client> {
        self.clients.iter().find(|c| c.conn == conn)
    }

    fn client_mut(&mut self, conn: ConnId) -> Option<&mut Client> {
        self.clients.iter_mut().find(|c| c.conn == conn)
    }

    /// A client writes `bytes` to its daemon, which reads them on its next turn.
    fn client_write(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.client_mut(conn) else {
            return;
        };
        c.unread.extend_from_slice(bytes);
        let d = c.log.daemon;
        let readable = &mut self.daemons[d].readable;
        if !readable.contains(&conn) {
            readable.push(conn);
        }
    }

    /// A client of daemon `d` connects, choosing the `auth` method.
    fn connect_client(&mut self, d: usize, auth: &str) -> ConnId {
        let client = self.next_client;
        self.next_client += 1;
        let conn = self.next_conn;
        self.next_conn += 1;
        let name = format!("c{client}");
        let core = self.daemons[d].core.as_mut().expect("booted");
        core.handle_connect(self.now, conn, Peer::Local);
        let next_send = self.now + Duration::from_millis(20);
        let next_stall = self
            .scenario
            .faults
            .stall_every
            .map(|every| self.now + jitter(&mut self.stall_rng, every));
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
            unread: Vec::new(),
            handshake_done: false,
            next_send,
            next_seq: 0,
            stalled_until: None,
            next_stall: next_stall.filter(|_| self.faults_on),
            closing: false,
        });
        let hello = ConnectRequest {
            version: Version::OURS,
            wants_membership: true,
            priority: 0,
            offers_probe: false,
            name: name.into_bytes(),
        };
        self.client_write(conn, &hello.encode());
        self.client_write(conn, &encode_auth_choice(&[auth]));
        conn
    }

    fn client_receive(&mut self, conn: ConnId, bytes: &[u8]) {
        let seed = self.seed;
        let Some(c) = self.client_mut(conn) else {
            return;
        };
        c.inbuf.extend_from_slice(bytes);
        if !c.handshake_done {
            // Auth list, then the accept with our private group.
            let Some(&list_len) = c.inbuf.first() else {
                return;
            };
            let list_len = 1 + list_len as usize;
            let Some(accept) = c.inbuf.get(list_len..) else {
                return;
            };
            let Ok(spread_wire::handshake::Parsed::Done(acc, used)) =
                spread_wire::handshake::parse_accept(accept)
            else {
                return;
            };
            let codec = Codec::new(acc.private_group);
            let join = codec.membership_request(true, "g").expect("legal");
            c.codec = Some(codec);
            c.inbuf.drain(..list_len + used);
            c.handshake_done = true;
            self.client_write(conn, &join);
            return self.client_receive(conn, &[]);
        }
        let codec = c.codec.clone().expect("after handshake");
        loop {
            match codec.decode(&c.inbuf) {
                Ok(Some((event, used))) => {
                    c.inbuf.drain(..used);
                    if let Some(logged) = to_logged(event) {
                        c.log.events.push(logged);
                    }
                }
                Ok(None) => return,
                Err(e) => panic!(
                    "seed {seed}: client {} got bytes it cannot decode: {e}",
                    c.log.client
                ),
            }
        }
    }

    fn client_send(&mut self, conn: ConnId, kind: ServiceKind) {
        let Some(c) = self.client_mut(conn) else {
            return;
        };
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
        let d = c.log.daemon;
        self.client_write(conn, &bytes);
        self.turn(d);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Faults;

    fn two_daemons() -> World {
        let scenario = Scenario {
            daemons: 2,
            segments: 1,
            clients_per_daemon: 0,
            client_spacing: 1,
            duration: Duration::from_secs(1),
            send_every: Duration::from_millis(20),
            faults: Faults::none(),
            timeouts: spread_daemon::core::ring::Timeouts::fast(),
            flow: Default::default(),
        };
        World::new(1, scenario)
    }

    fn queued(world: &mut World, conn: ConnId) -> usize {
        let core = world.daemons[0].core.as_mut().expect("running");
        core.output(conn).map_or(0, |q| q.bytes())
    }

    /// A rejected client (`Close { flush: true }`) that is not reading stays connected, its
    /// reject queued, until it reads; then the session closes.
    #[test]
    fn a_close_with_flush_waits_for_the_client_to_read() {
        let mut world = two_daemons();
        let conn = world.connect_client(0, "PWORD");
        let later = world.now + Duration::from_secs(1);
        world.client_mut(conn).expect("connected").stalled_until = Some(later);
        world.turn(0);
        let client = world.client(conn).expect("open until its queue is written");
        assert!(client.closing);
        assert!(
            queued(&mut world, conn) > 0,
            "the reject waits in the queue"
        );
        world.client_mut(conn).expect("connected").stalled_until = None;
        world.write(conn);
        assert!(world.client(conn).is_none(), "closed once written");
        assert_eq!(world.sessions_closed, 1);
        assert!(world.finished.last().is_some_and(|l| l.crashed));
    }

    /// A client that reads gets its reject and is closed within the same turn.
    #[test]
    fn a_close_with_flush_to_a_reading_client_is_immediate() {
        let mut world = two_daemons();
        let conn = world.connect_client(0, "PWORD");
        world.turn(0);
        assert!(world.client(conn).is_none());
        assert_eq!(world.sessions_closed, 1);
    }
}
