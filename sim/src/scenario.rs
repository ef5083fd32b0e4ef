//! The shape of a run — its ring, traffic and faults — and the spread.conf it runs under.

use crate::rng::Rng;
use spread_daemon::core::ring::{FlowControl, Timeouts};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

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
    /// Mean time between one client's pauses in reading its socket; while paused, its
    /// daemon's writes to it block and its queue grows (backpressure, then a drop).
    pub stall_every: Option<Duration>,
    /// The longest such pause.
    pub max_stall: Duration,
    /// Mean time between a monitor telling a daemon to exit (the daemon is restarted after
    /// a while, as after a crash). Turns on `DangerousMonitor`.
    pub exit_every: Option<Duration>,
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
            stall_every: None,
            max_stall: Duration::ZERO,
            exit_every: None,
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
            // Drawn after the others, so a seed keeps the faults it had before these were.
            stall_every: rng.chance(0.4).then(|| ms(500 + rng.below(2000))),
            // Past the core's 2 s grace, a client that reads nothing is dropped.
            max_stall: ms(200 + rng.below(2800)),
            exit_every: rng.chance(0.2).then(|| ms(1000 + rng.below(2000))),
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
    /// The ring's timeouts and windows, written into spread.conf.
    pub timeouts: Timeouts,
    pub flow: FlowControl,
}

/// Daemons' addresses are 10.0.S.N: segment S (from 1), daemon N (from 1).
const BASE_IP: u32 = 0x0a00_0000;
/// Every segment's port.
pub const PORT: u16 = 4803;

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
                ..Faults::none()
            },
            timeouts: Timeouts {
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

    /// The address of daemon `d` (named `d{d}`), in segment `d % segments`.
    pub fn address(&self, d: usize) -> Ipv4Addr {
        let s = d % self.segments;
        Ipv4Addr::from(BASE_IP | ((s as u32 + 1) << 8) | (d as u32 + 1))
    }

    /// The spread.conf every daemon of the run reads: its segments and daemons, and the
    /// scenario's timeouts and windows as the extension directives a real file would use.
    pub fn spread_conf(&self) -> String {
        let mut text = String::new();
        for s in 0..self.segments {
            let bcast = Ipv4Addr::from(BASE_IP | ((s as u32 + 1) << 8) | 255);
            let _ = writeln!(text, "Spread_Segment {bcast}:{PORT} {{");
            for d in (s..self.daemons).step_by(self.segments) {
                let _ = writeln!(text, "    d{d} {}", self.address(d));
            }
            text.push_str("}\n");
        }
        let t = &self.timeouts;
        for (directive, value) in [
            ("TokenTimeout", t.token),
            ("HurryTimeout", t.hurry),
            ("AliveTimeout", t.alive),
            ("JoinTimeout", t.join),
            ("RepTimeout", t.rep),
            ("SegTimeout", t.seg),
            ("GatherTimeout", t.gather),
            ("FormTimeout", t.form),
            ("LookupTimeout", t.lookup),
        ] {
            assert!(
                value.subsec_nanos() % 1_000_000 == 0,
                "{directive} {value:?}: spread.conf takes whole milliseconds"
            );
            let _ = writeln!(text, "{directive} = {}", value.as_millis());
        }
        let _ = writeln!(text, "Window = {}", self.flow.window);
        let _ = writeln!(text, "PersonalWindow = {}", self.flow.personal_window);
        if self.faults.exit_every.is_some() {
            text.push_str("DangerousMonitor = yes\n");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spread_daemon::config;

    /// Every ring size the simulator runs, from 3.17's to extended ones, is a spread.conf
    /// the daemon's parser accepts, with every daemon in it once.
    #[test]
    fn the_generated_spread_conf_parses_for_every_ring_size() {
        for daemons in [3, 7, 128, 130, 1000] {
            let scenario = if daemons > 128 {
                Scenario::big(&mut Rng::new(1), daemons)
            } else {
                Scenario::random(&mut Rng::new(1), daemons)
            };
            let text = scenario.spread_conf();
            let parsed = config::parse_str_with_resolver(&text, "spread.conf", &|_| None)
                .unwrap_or_else(|e| panic!("{daemons} daemons: {e}"));
            assert_eq!(parsed.daemon_count(), daemons);
            assert_eq!(config::ring_conf(&parsed).num_procs(), daemons);
            let t = config::timeouts(&parsed, false);
            assert_eq!(t, scenario.timeouts, "{daemons} daemons");
        }
    }
}
