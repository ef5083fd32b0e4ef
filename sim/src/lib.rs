//! A deterministic world of spread-rs daemons.
//!
//! Every daemon is the real sans-IO core ([`spread_daemon::core::Daemon`]); the network is
//! a priority queue of datagrams on a virtual clock; clients speak the real client protocol
//! through the core's session layer. Everything random — delays, loss, duplication,
//! partitions, crashes, what clients send — comes from one `u64` seed, so a failing run
//! replays exactly.

mod check;
mod rng;
mod world;

pub use check::{check, Violation};
pub use rng::Rng;
pub use world::{ClientLog, Faults, Logged, Scenario, World};

/// The outcome of one seeded run.
#[derive(Debug)]
pub struct RunReport {
    pub seed: u64,
    pub daemons: usize,
    pub clients: usize,
    pub messages_delivered: usize,
    pub steps: u64,
    pub violations: Vec<Violation>,
}

/// Runs one seed: the scenario, faults and traffic all come from it. Rings past 128
/// daemons (extended mode) get the big-ring scenario.
pub fn run_seed(seed: u64, daemons: usize) -> RunReport {
    let mut rng = Rng::new(seed);
    let scenario = if daemons > 128 {
        Scenario::big(&mut rng, daemons)
    } else {
        Scenario::random(&mut rng, daemons)
    };
    let world = World::new(seed, scenario);
    let logs = world.run();
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
        steps: 0,
        violations,
    }
}
