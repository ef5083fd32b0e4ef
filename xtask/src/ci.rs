//! `cargo xtask ci`: the one command that says whether main is green.

use xshell::{cmd, Shell};

pub fn run(sh: &Shell) -> anyhow::Result<()> {
    println!("== cargo fmt --check");
    cmd!(sh, "cargo fmt --all -- --check").run()?;
    println!("== cargo clippy -D warnings");
    cmd!(sh, "cargo clippy --all-targets --quiet -- -D warnings").run()?;
    println!("== cargo test");
    cmd!(sh, "cargo test").run()?;
    println!("== simulator: 500 seeds, 3 to 7 daemons, random faults");
    cmd!(
        sh,
        "cargo run --release --quiet -p spread-sim --bin spread-sim -- --seeds 500 --daemons 3-7"
    )
    .run()?;
    Ok(())
}
