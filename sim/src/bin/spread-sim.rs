//! `spread-sim --seeds N --daemons K [--first S]`: runs seeds, prints failures with the
//! command that replays each.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str, default: u64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seeds = get("--seeds", 100);
    let first = get("--first", 1);
    let daemons_spec = args
        .iter()
        .position(|a| a == "--daemons")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "3-7".into());
    let (lo, hi) = match daemons_spec.split_once('-') {
        Some((a, b)) => (a.parse().unwrap_or(3), b.parse().unwrap_or(7)),
        None => {
            let n = daemons_spec.parse().unwrap_or(3);
            (n, n)
        }
    };
    let mut failed = 0;
    let mut delivered = 0;
    let mut steps = 0;
    let mut reads_paused = 0;
    let started = std::time::Instant::now();
    for seed in first..first + seeds {
        let daemons = lo + (seed as usize % (hi - lo + 1));
        let report = spread_sim::run_seed(seed, daemons);
        delivered += report.messages_delivered;
        steps += report.steps;
        reads_paused += report.reads_paused;
        if !report.violations.is_empty() {
            failed += 1;
            println!(
                "seed {seed} ({daemons} daemons): {} violations",
                report.violations.len()
            );
            for v in report.violations.iter().take(5) {
                println!("    {v}");
            }
            println!("    replay: cargo xtask sim --seeds 1 --first {seed} --daemons {daemons}");
            println!(
                "    views:  cargo run -p spread-sim --example replay_seed -- {seed} {daemons}"
            );
        }
    }
    println!(
        "{} seeds ({daemons_spec} daemons), {} with violations, {} deliveries checked, \
         {} steps, {} client reads held back by a congested daemon, {:.1} s",
        seeds,
        failed,
        delivered,
        steps,
        reads_paused,
        started.elapsed().as_secs_f64()
    );
    println!("sim: {} passed, {} failed", seeds - failed, failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
