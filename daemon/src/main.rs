//! `spread`: the daemon binary. Flags as in 3.17: `-c FILE`, `-n NAME`, `-l y|n`.

use clap::Parser;
use spread_daemon::run::{run, Options};
use std::process::ExitCode;

fn main() -> ExitCode {
    let options = Options::parse();
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spread: {e}");
            ExitCode::FAILURE
        }
    }
}
