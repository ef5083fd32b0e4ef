//! Replays one seed of `spread-sim` and prints each client's history: the views it
//! installed (ring id, view time, index, member count) and how many messages it delivered
//! between them; with `--sender C`, client C's messages too, by sequence number.
//!
//! `cargo run -p spread-sim --example replay_seed -- SEED DAEMONS [--sender C]`
//! (`TRACE=debug` for the daemons' logs).

use spread_sim::{check, Logged, World};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    let Some(seed) = number(0) else {
        eprintln!("usage: replay_seed SEED [DAEMONS] [--sender CLIENT]");
        std::process::exit(2);
    };
    let daemons = number(1).unwrap_or(3) as usize;
    let sender: Option<u32> = args
        .iter()
        .position(|a| a == "--sender")
        .and_then(|i| args.get(i + 1)?.parse().ok());
    if let Ok(filter) = std::env::var("TRACE") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .without_time()
            .try_init();
    }
    let scenario = spread_sim::scenario(seed, daemons);
    println!("{scenario:#?}");
    let logs = World::new(seed, scenario).run();
    for l in &logs {
        let mut line = format!("{} crashed={} alive={}:", l.name, l.crashed, l.alive_at_end);
        let mut count = 0;
        for e in &l.events {
            match e {
                Logged::Message { sender: s, seq, .. } if Some(*s) == sender => {
                    line += &format!(" {seq}");
                    count += 1;
                }
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
        if Some(l.client) == sender {
            println!("    sent {:?}", l.sent);
        }
    }
    for v in check(&logs) {
        println!("violation {v}");
    }
}
