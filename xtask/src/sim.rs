//! `cargo xtask sim --seeds N --daemons K [--first S]`: many daemons in one process on a
//! virtual clock, with loss, duplication, reordering, partitions and crashes drawn from each
//! seed; every client's deliveries are checked for Extended Virtual Synchrony. A failing
//! seed prints the command that replays it.

use xshell::{cmd, Shell};

#[derive(clap::Args)]
pub struct SimArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// Daemons per run: a number, or a range such as 3-7 (each seed picks one).
    #[arg(long, default_value = "3-7")]
    daemons: String,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    first: u64,
}

pub fn run(sh: &Shell, args: SimArgs) -> anyhow::Result<()> {
    let (seeds, daemons, first) = (args.seeds.to_string(), args.daemons, args.first.to_string());
    cmd!(sh, "cargo run --release --quiet -p spread-sim --bin spread-sim -- --seeds {seeds} --daemons {daemons} --first {first}").run()?;
    Ok(())
}
