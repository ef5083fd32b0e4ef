//! `cargo xtask bench`: one suite per module, each measuring ours and (when installed) C
//! Spread's in the same run: `one_daemon` (throughput through one daemon), `ring` (a
//! three-daemon ring: membership times and throughput), `failover` (client failover in
//! network namespaces). `harness` holds what they share.

mod failover;
mod harness;
mod one_daemon;
mod ring;

use crate::flags::BenchArgs;
use anyhow::bail;
use harness::Tools;
use spread_testkit::CSpread;
use xshell::{cmd, Shell};

pub fn run(sh: &Shell, args: BenchArgs) -> anyhow::Result<()> {
    println!("building release binaries...");
    cmd!(
        sh,
        "cargo build --release --quiet -p spread-daemon -p spreadctl"
    )
    .run()?;
    let target = crate::project_root().join("target/release");
    let tools = Tools {
        spread: target.join("spread"),
        spreadctl: target.join("spreadctl"),
        c: match CSpread::find_in(args.c_prefix.as_deref()) {
            Ok(c) => {
                println!("C Spread found: {}", c.daemon.display());
                Some(c)
            }
            Err(why) => {
                println!(
                    "no C Spread found ({why}): measuring our daemon only (set --c-prefix to compare)"
                );
                None
            }
        },
    };
    let suite = args.which.clone().unwrap_or_else(|| args.suite.clone());
    let (one_daemon, ring) = match suite.as_str() {
        "daemon" => (true, false),
        "ring" => (false, true),
        "all" => (true, true),
        "failover" => return failover::run(&tools, args.json.as_deref()),
        other => bail!("unknown suite {other}: use daemon, ring, all or failover"),
    };
    if one_daemon {
        one_daemon::run(&tools, args.runs, args.quick, args.json.as_deref())?;
    }
    if ring {
        ring::run(&tools, args.runs, args.quick)?;
    }
    Ok(())
}
