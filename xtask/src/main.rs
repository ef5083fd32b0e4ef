//! `cargo xtask <command>`: the project's automation, one module per command.
//!
//! * `ci` — what CI runs: formatting, lints, the whole test suite.
//! * `bench` — throughput through our daemon and, when installed, the C one.
//! * `build --target T` — cross-builds the daemon and spreadctl and starts them under qemu;
//!   `build --target all` takes every platform as far as it goes and writes
//!   platforms/platforms.json and docs/platforms.md.
//! * `interop` — the interop matrix (C, Rust and mixed rings × libspread and spread-rs ×
//!   membership events), checked for Extended Virtual Synchrony, into docs/interop.md.

mod bench;
mod bench_failover;
mod bench_ring;
mod build;
mod ci;
mod cspread;
mod interop;
mod platforms;
mod sim;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Formatting, clippy with warnings as errors, and every test.
    Ci,
    /// Throughput benchmarks; prints ours, C's (when installed) and the ratio.
    Bench(bench::BenchArgs),
    /// Runs the deterministic simulator over many seeds and checks Extended Virtual Synchrony.
    Sim(sim::SimArgs),
    /// Cross-builds the daemon and spreadctl for aarch64, powerpc64 (big-endian) or s390x
    /// Linux with clang, installing what is missing, and runs them under qemu; with
    /// `--target all`, every platform as far as this machine allows, into docs/platforms.md.
    Build(build::BuildArgs),
    /// The interop matrix: rings of C 3.17 daemons, ours and both mixed × libspread and
    /// spread-rs × join, leave, disconnect, kill -9, restart + merge, partition + heal,
    /// checked for Extended Virtual Synchrony; writes docs/interop.md and docs/interop.json.
    /// Without a C Spread, runs the all-Rust part.
    Interop(interop::InteropArgs),
}

/// The workspace root, whatever directory cargo was started in.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sh = xshell::Shell::new()?;
    sh.change_dir(project_root());
    match cli.command {
        Command::Ci => ci::run(&sh),
        Command::Bench(args) => bench::run(&sh, args),
        Command::Sim(args) => sim::run(&sh, args),
        Command::Build(args) => build::run(&sh, args),
        Command::Interop(args) => interop::run(&sh, args),
    }
}
