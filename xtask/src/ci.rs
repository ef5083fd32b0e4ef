//! `cargo xtask ci`: the one command that says whether main is green.
//!
//! It ends with every test that did not run and why. A test that skips prints a `SKIPPED:`
//! line and appends `<test>: <reason>` to the file SPREAD_SKIP_LOG names; ci points that at
//! a fresh file for every `cargo test` it runs, and adds its own skips to the same file.

use spread_testkit::CSpread;
use std::io::Write;
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

/// The variable through which tests report a skip (see the module comment).
const SKIP_LOG_VAR: &str = "SPREAD_SKIP_LOG";

pub fn run(sh: &Shell) -> anyhow::Result<()> {
    let skip_log = fresh_skip_log()?;
    let result = checks(sh, &skip_log);
    print_skipped(&skip_log)?;
    result
}

fn checks(sh: &Shell, skip_log: &Path) -> anyhow::Result<()> {
    println!("== cargo fmt --check");
    cmd!(sh, "cargo fmt --all -- --check").run()?;
    println!("== docs/platforms.md is what platforms/platforms.json renders");
    cmd!(sh, "cargo xtask build --render-only --check").run()?;
    println!("== cargo clippy -D warnings");
    cmd!(sh, "cargo clippy --all-targets --quiet -- -D warnings").run()?;
    println!("== cargo test");
    cmd!(sh, "cargo test").env(SKIP_LOG_VAR, skip_log).run()?;
    // spread-sys links an installed C libspread and fails to build without one (by design,
    // like any -sys crate), so it and the differential scenarios built on it run only where
    // C Spread is installed.
    match CSpread::find() {
        Ok(c) => {
            println!(
                "== spread-sys and differential scenarios (C Spread at {})",
                c.daemon.display()
            );
            cmd!(sh, "cargo clippy -p spread-sys -p spread-scenarios --all-targets --quiet -- -D warnings").run()?;
            cmd!(sh, "cargo test -p spread-sys -p spread-scenarios")
                .env(SKIP_LOG_VAR, skip_log)
                .run()?;
        }
        Err(why) => skip(skip_log, "spread-sys and the differential scenarios", &why)?,
    }
    println!("== simulator: 500 seeds, 3 to 7 daemons, random faults");
    cmd!(
        sh,
        "cargo run --release --quiet -p spread-sim --bin spread-sim -- --seeds 500 --daemons 3-7"
    )
    .run()?;
    Ok(())
}

/// An empty skip log under target/, so the summary holds this run's skips only.
fn fresh_skip_log() -> anyhow::Result<PathBuf> {
    let path = crate::project_root().join("target/ci-skipped-tests.txt");
    std::fs::create_dir_all(path.parent().expect("under target/"))?;
    std::fs::write(&path, "")?;
    Ok(path)
}

/// A skip of ci's own, printed and logged as the tests do theirs.
fn skip(skip_log: &Path, what: &str, reason: &str) -> anyhow::Result<()> {
    println!("SKIPPED: {what}: {reason}");
    let mut log = std::fs::OpenOptions::new().append(true).open(skip_log)?;
    writeln!(log, "{what}: {reason}")?;
    Ok(())
}

fn print_skipped(skip_log: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(skip_log)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    println!();
    if lines.is_empty() {
        println!("0 skipped");
    } else {
        println!("{} skipped:", lines.len());
        for line in lines {
            println!("  {line}");
        }
    }
    Ok(())
}
