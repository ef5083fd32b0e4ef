//! `cargo xtask ci`: the one command that says whether main is green.

use xshell::{cmd, Shell};

pub fn run(sh: &Shell) -> anyhow::Result<()> {
    println!("== cargo fmt --check");
    cmd!(sh, "cargo fmt --all -- --check").run()?;
    println!("== cargo clippy -D warnings");
    cmd!(sh, "cargo clippy --all-targets --quiet -- -D warnings").run()?;
    println!("== cargo test");
    cmd!(sh, "cargo test").run()?;
    // spread-sys links an installed C libspread and fails to build without one (by design,
    // like any -sys crate), so it and the differential scenarios built on it run only where
    // C Spread is installed.
    match crate::cspread::find(None) {
        Some(c) => {
            println!(
                "== spread-sys and differential scenarios (C Spread at {})",
                c.daemon.display()
            );
            cmd!(sh, "cargo clippy -p spread-sys -p spread-scenarios --all-targets --quiet -- -D warnings").run()?;
            cmd!(sh, "cargo test -p spread-sys -p spread-scenarios").run()?;
        }
        None => println!(
            "SKIPPED: spread-sys and the differential scenarios: no C Spread 3.17 installed (set SPREAD_C_PREFIX or install into /usr/local)"
        ),
    }
    println!("== simulator: 500 seeds, 3 to 7 daemons, random faults");
    cmd!(
        sh,
        "cargo run --release --quiet -p spread-sim --bin spread-sim -- --seeds 500 --daemons 3-7"
    )
    .run()?;
    Ok(())
}
