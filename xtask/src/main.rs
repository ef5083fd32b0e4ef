//! `cargo xtask <command>`: the project's automation, one module (or folder) per command;
//! every command's flags are in `flags`.
//!
//! * `ci` — what CI runs: formatting, lints, the whole test suite, then every skipped test.
//! * `bench` — throughput through our daemon and, when installed, the C one.
//! * `build --target T` — cross-builds the daemon and spreadctl and starts them under qemu;
//!   `build --target all` takes every platform as far as it goes and writes
//!   platforms/platforms.json and docs/platforms.md; `build --render-only [--check]`
//!   renders (or checks) docs/platforms.md from that file.
//! * `interop` — the interop matrix (C, Rust and mixed rings × libspread and spread-rs ×
//!   membership events), checked for Extended Virtual Synchrony, into docs/interop.md.

mod bench;
mod build;
mod ci;
mod flags;
mod interop;
mod sim;

use clap::Parser;
use flags::{Cli, Command};
use std::path::PathBuf;

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
