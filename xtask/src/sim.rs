//! `cargo xtask sim --seeds N --daemons K [--first S]`: many daemons in one process on a
//! virtual clock, with loss, duplication, reordering, partitions and crashes drawn from each
//! seed; every client's deliveries are checked for Extended Virtual Synchrony. A failing
//! seed prints the command that replays it.

use crate::flags::SimArgs;
use xshell::{cmd, Shell};

pub fn run(sh: &Shell, args: SimArgs) -> anyhow::Result<()> {
    let (seeds, daemons, first) = (args.seeds.to_string(), args.daemons, args.first.to_string());
    cmd!(sh, "cargo run --release --quiet -p spread-sim --bin spread-sim -- --seeds {seeds} --daemons {daemons} --first {first}").run()?;
    Ok(())
}
