//! `cargo xtask ci`: the one command that says whether main is green.

use xshell::{cmd, Shell};

pub fn run(sh: &Shell) -> anyhow::Result<()> {
    println!("== cargo fmt --check");
    cmd!(sh, "cargo fmt --all -- --check").run()?;
    println!("== cargo clippy -D warnings");
    cmd!(
        sh,
        "cargo clippy --workspace --all-targets --quiet -- -D warnings"
    )
    .run()?;
    println!("== cargo test");
    cmd!(sh, "cargo test --workspace").run()?;
    Ok(())
}
