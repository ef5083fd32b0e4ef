//! Prints one seed's per-client view history (for debugging: `SEED=n DAEMONS=k cargo test
//! -p spread-sim --test replay_seed -- --nocapture --ignored`).
use spread_sim::{Logged, Rng, Scenario, World};

#[test]
#[ignore]
fn dump_seed() {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let daemons: usize = std::env::var("DAEMONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    if std::env::var("TRACE").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("TRACE").unwrap())
            .with_target(false)
            .without_time()
            .try_init();
    }
    let mut rng = Rng::new(seed);
    let scenario = Scenario::random(&mut rng, daemons);
    println!("{scenario:?}");
    let logs = World::new(seed, scenario).run();
    for l in &logs {
        let mut line = format!("{} crashed={} alive={}:", l.name, l.crashed, l.alive_at_end);
        let mut count = 0;
        for e in &l.events {
            match e {
                Logged::Message { .. } => count += 1,
                Logged::Regular { id, members } => {
                    line += &format!(
                        " [{count}] R{}.{}/{} {:?}",
                        id.proc_id & 0xff,
                        id.time - 1_800_000_000,
                        id.index,
                        members.len()
                    );
                    count = 0;
                }
                Logged::Transitional { id } => {
                    line += &format!(" [{count}] T{}/{}", id.time - 1_800_000_000, id.index);
                    count = 0;
                }
            }
        }
        println!("{line} [{count}]");
    }
}

#[test]
#[ignore]
fn trace_sender() {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let daemons: usize = std::env::var("DAEMONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let sender: u32 = std::env::var("SENDER")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    if let Ok(filter) = std::env::var("TRACE") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .without_time()
            .try_init();
    }
    let mut rng = Rng::new(seed);
    let scenario = Scenario::random(&mut rng, daemons);
    let logs = World::new(seed, scenario).run();
    for l in &logs {
        if l.client == sender {
            println!(
                "sender {} sent {:?}",
                l.name,
                &l.sent[..l.sent.len().min(12)]
            );
        }
    }
    for l in &logs {
        let mut line = format!("{}:", l.name);
        for e in &l.events {
            match e {
                Logged::Message {
                    sender: s,
                    seq,
                    service,
                } if *s == sender && *seq >= 265 && *seq < 400 => {
                    line += &format!(" {seq}{:?}", service)
                        .chars()
                        .take(6)
                        .collect::<String>()
                }
                Logged::Regular { id, members } => {
                    line += &format!(
                        " |R{}/{}({})",
                        id.time - 1_800_000_000,
                        id.index,
                        members.len()
                    )
                }
                Logged::Transitional { .. } => line += " |T",
                _ => {}
            }
        }
        println!("{}", line.chars().take(400).collect::<String>());
    }
}
