//! `spreadctl`: talk to any Spread 3.17 daemon from a terminal.
//!
//! * `spreadctl user` — interactive, with spuser's commands.
//! * `spreadctl flood` — N messages of S bytes, like spflooder; prints msgs/s and MB/s.
//! * `spreadctl watch` — stays in a group across daemon failures, printing each failover.

mod flood;
mod user;
mod watch;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "spreadctl", version, about = "Spread 3.17 client tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// An interactive session, like spuser: j/l/s/b/r/p/q commands on stdin.
    User(user::UserArgs),
    /// Sends (and/or receives) a flood of messages and reports the rate, like spflooder.
    Flood(flood::FloodArgs),
    /// Stays in a group through daemon failures, printing when each was noticed and healed.
    Watch(watch::WatchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::User(args) => user::run(args),
        Command::Flood(args) => flood::run(args),
        Command::Watch(args) => watch::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spreadctl: {e}");
            ExitCode::FAILURE
        }
    }
}
