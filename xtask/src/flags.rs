//! Every command and flag of `cargo xtask`, declared in one place; the modules that run the
//! commands take these structs as they are.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "cargo xtask")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Formatting, clippy with warnings as errors, and every test.
    Ci,
    /// Throughput benchmarks; prints ours, C's (when installed) and the ratio.
    Bench(BenchArgs),
    /// Runs the deterministic simulator over many seeds and checks Extended Virtual Synchrony.
    Sim(SimArgs),
    /// Cross-builds the daemon and spreadctl for aarch64, powerpc64 (big-endian) or s390x
    /// Linux with clang, installing what is missing, and runs them under qemu; with
    /// `--target all`, every platform as far as this machine allows, into docs/platforms.md.
    Build(BuildArgs),
    /// The interop matrix: rings of C 3.17 daemons, ours and both mixed × libspread and
    /// spread-rs × join, leave, disconnect, kill -9, restart + merge, partition + heal,
    /// checked for Extended Virtual Synchrony; writes docs/interop.md and docs/interop.json.
    /// Without a C Spread, runs the all-Rust part.
    Interop(InteropArgs),
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Where C Spread is installed (else found as spread-sys's build finds it:
    /// SPREAD_C_PREFIX, SPREAD_INCLUDE_DIR/SPREAD_LIB_DIR, pkg-config, /usr/local, /usr).
    #[arg(long)]
    pub c_prefix: Option<PathBuf>,
    /// Runs per cell; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Fewer messages per run (a smoke test of the bench itself).
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Which benchmarks: `daemon` (one daemon), `ring` (three daemons), `all` (both), or
    /// `failover` (client failover in network namespaces; needs root).
    #[arg(long, default_value = "all")]
    pub suite: String,
    /// The suite, written without `--suite` (`cargo xtask bench failover`).
    #[arg(value_name = "SUITE")]
    pub which: Option<String>,
}

#[derive(clap::Args)]
pub struct SimArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// Daemons per run: a number, or a range such as 3-7 (each seed picks one).
    #[arg(long, default_value = "3-7")]
    pub daemons: String,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub first: u64,
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The Rust target triple: aarch64-, powerpc64- or s390x-unknown-linux-gnu; or `all`:
    /// every platform as far as this machine allows, written to platforms/platforms.json
    /// and docs/platforms.md.
    #[arg(long, required_unless_present = "render_only")]
    pub target: Option<String>,
    /// Also run, under qemu, the test suites that start no processes (codecs, the client
    /// library, the daemon core, replays of the C captures), and for a big-endian target
    /// the mixed-endian ring test.
    #[arg(long)]
    pub test: bool,
    /// Build nothing, only render docs/platforms.md again from platforms/platforms.json
    /// (alone or with `--target all`).
    #[arg(long)]
    pub render_only: bool,
    /// With `--render-only`: write nothing, and fail if docs/platforms.md (or the notes in
    /// platforms/platforms.json) differ from what `--render-only` would write.
    #[arg(long, requires = "render_only")]
    pub check: bool,
}

#[derive(clap::Args)]
pub struct InteropArgs {
    /// Prefix of an installed C Spread 3.17 (else found as spread-sys's build finds it:
    /// SPREAD_C_PREFIX, SPREAD_INCLUDE_DIR/SPREAD_LIB_DIR, pkg-config, /usr/local, /usr).
    #[arg(long)]
    pub c_prefix: Option<PathBuf>,
    /// Only the all-Rust ring with spread-rs (written to target/interop-quick unless --out
    /// says otherwise, so docs keep the whole matrix).
    #[arg(long)]
    pub quick: bool,
    /// Where interop.md and interop.json go (default: docs).
    #[arg(long)]
    pub out: Option<PathBuf>,
}
