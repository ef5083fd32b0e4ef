//! A deterministic world of spread-rs daemons.
//!
//! Every daemon is the real sans-IO core ([`spread_daemon::core::Daemon`]); the network is
//! a priority queue of datagrams on a virtual clock; clients speak the real client protocol
//! through the core's session layer. Everything random — delays, loss, duplication,
//! partitions, crashes, what clients send — comes from one `u64` seed, so a failing run
//! replays exactly.

mod check;
mod rng;
mod scenario;
mod world;

pub use check::{check, Violation};
pub use rng::Rng;
pub use scenario::{Faults, Scenario};
pub use world::{ClientLog, Logged, World};

/// The outcome of one seeded run.
#[derive(Debug)]
pub struct RunReport {
    pub seed: u64,
    pub daemons: usize,
    pub clients: usize,
    pub messages_delivered: usize,
    /// Instants the world stepped through.
    pub steps: u64,
    /// Reads of a client put off because its daemon was congested (backpressure at work).
    pub reads_paused: u64,
    pub violations: Vec<Violation>,
}

/// The scenario of one seed; rings past 128 daemons (extended mode) get the big-ring one.
pub fn scenario(seed: u64, daemons: usize) -> Scenario {
    let mut rng = Rng::new(seed);
    if daemons > 128 {
        Scenario::big(&mut rng, daemons)
    } else {
        Scenario::random(&mut rng, daemons)
    }
}

/// Runs one seed: the scenario, faults and traffic all come from it.
pub fn run_seed(seed: u64, daemons: usize) -> RunReport {
    let scenario = scenario(seed, daemons);
    let mut world = World::new(seed, scenario);
    let logs = world.run_in_place();
    let violations = check(&logs);
    RunReport {
        seed,
        daemons,
        clients: logs.len(),
        messages_delivered: logs
            .iter()
            .map(|l| {
                l.events
                    .iter()
                    .filter(|e| matches!(e, Logged::Message { .. }))
                    .count()
            })
            .sum(),
        steps: world.steps,
        reads_paused: world.reads_paused,
        violations,
    }
}
