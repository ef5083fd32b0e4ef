//! `cargo xtask build --target T`: cross-builds the daemon and spreadctl for a Linux target
//! of another architecture (and byte order), then runs `spread --help` under qemu user
//! emulation to show the binary starts. Debian only: it installs what it lacks with rustup
//! and apt-get, and links with clang rather than a cross gcc (Debian's cross gcc packages
//! and gcc-multilib remove each other).
//!
//! `--target all` takes every platform of docs/platforms.md as far as this machine allows
//! (see all.rs), with this module's cross build as its tier-1 path.

use super::cargo_test::run_tests;
use super::record::{Record, Status};
use super::targets::Target;
use anyhow::{bail, Context};
use xshell::{cmd, Shell};

/// The cross build (and with `test`, the suites under qemu) of one Linux target; the
/// steps it gets through and the tests it counts go into `rec`.
pub(crate) fn cross(sh: &Shell, t: &Target, test: bool, rec: &mut Record) -> anyhow::Result<()> {
    let installed = cmd!(sh, "rustup target list --installed").read()?;
    if installed.lines().any(|l| l.trim() == t.rust) {
        println!("rustup target {}: already installed", t.rust);
    } else {
        println!("rustup target {}: adding", t.rust);
        let rust = t.rust;
        cmd!(sh, "rustup target add {rust}").run()?;
        rec.installed.push(format!("rustup target add {rust}"));
    }

    // crt files and libgcc_s come from libgcc-12-dev (Debian 12's gcc); C library from
    // libc6-dev; GNU ld from binutils where lld cannot link.
    let mut packages = vec![
        format!("libc6-dev-{}-cross", t.deb),
        format!("libgcc-12-dev-{}-cross", t.deb),
        "qemu-user-static".to_string(),
        "clang".to_string(),
    ];
    packages.push(if t.ld == "lld" {
        "lld".to_string()
    } else {
        format!("binutils-{}", t.gnu)
    });
    let missing: Vec<String> = packages
        .iter()
        .filter(|p| {
            let format = "${Status}";
            let status = cmd!(sh, "dpkg-query -W -f {format} {p}")
                .quiet()
                .ignore_status()
                .ignore_stderr()
                .read()
                .unwrap_or_default();
            status != "install ok installed"
        })
        .cloned()
        .collect();
    if missing.is_empty() {
        println!("apt packages: all present ({})", packages.join(" "));
    } else {
        // Never let apt trade another package for these (the cross gcc packages would
        // remove gcc-multilib, for one).
        let planned = &missing;
        let plan = cmd!(sh, "apt-get install -s {planned...}").read()?;
        let removals: Vec<&str> = plan.lines().filter(|l| l.starts_with("Remv")).collect();
        if !removals.is_empty() {
            bail!(
                "installing {} would remove packages, not doing it:\n{}",
                missing.join(" "),
                removals.join("\n")
            );
        }
        println!("apt packages: installing {}", missing.join(" "));
        cmd!(sh, "apt-get install -y {planned...}")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
            .context("apt-get install (needs root)")?;
        rec.installed
            .push(format!("apt-get install {}", missing.join(" ")));
    }

    let var = t.rust.to_uppercase().replace('-', "_");
    let rustflags = format!(
        "-C link-arg=--target={} -C link-arg=-fuse-ld={}",
        t.gnu, t.ld
    );
    println!("building with CARGO_TARGET_{var}_LINKER=clang CARGO_TARGET_{var}_RUSTFLAGS=\"{rustflags}\"");
    let rust = t.rust;
    cmd!(
        sh,
        "cargo build --release --target {rust} -p spread-daemon -p spreadctl"
    )
    .env(format!("CARGO_TARGET_{var}_LINKER"), "clang")
    .env(format!("CARGO_TARGET_{var}_RUSTFLAGS"), &rustflags)
    .run()?;
    // A release build of the two binaries: compiled, type-checked and linked.
    rec.steps.check = Status::Ok;
    rec.steps.build = Status::Ok;
    rec.steps.link = Status::Ok;

    let sysroot = format!("/usr/{}", t.gnu);
    let qemu = t.qemu;
    for bin in ["spread", "spreadctl"] {
        let path = crate::project_root().join(format!("target/{rust}/release/{bin}"));
        let help = cmd!(sh, "{qemu} -L {sysroot} {path} --help")
            .read()
            .with_context(|| format!("{bin} --help under {qemu}"))?;
        println!(
            "{qemu} -L {sysroot} {}: {}",
            path.display(),
            help.lines().next().unwrap_or("")
        );
    }
    println!("built both and ran them under emulation");
    if test {
        let runner = format!("{qemu} -L {sysroot}");
        println!("== tests under {qemu}");
        // Integration tests that start daemon processes would exec a foreign binary
        // directly (binfmt is not mounted), so only the in-process suites run here.
        let suites: [&[&str]; 2] = [
            &["-p", "spread-wire", "-p", "spread-rs"],
            &[
                "-p",
                "spread-daemon",
                "--lib",
                "--test",
                "replay_corpus",
                "--test",
                "ring_replay",
            ],
        ];
        rec.steps.run = Status::Failed;
        for suite in suites {
            let c = cmd!(sh, "cargo test --target {rust} {suite...}")
                .env(format!("CARGO_TARGET_{var}_LINKER"), "clang")
                .env(format!("CARGO_TARGET_{var}_RUSTFLAGS"), &rustflags)
                .env(format!("CARGO_TARGET_{var}_RUNNER"), &runner);
            run_tests(c, rec)?;
        }
        if t.big_endian {
            println!(
                "== mixed-endian ring: the {rust} daemon under {qemu} between two native ones"
            );
            let daemon = crate::project_root().join(format!("target/{rust}/release/spread"));
            let c = cmd!(
                sh,
                "cargo test --release -p spread-daemon --test mixed_endian -- --nocapture"
            )
            .env("SPREAD_BE_DAEMON", &daemon)
            .env("SPREAD_BE_RUNNER", &runner);
            run_tests(c, rec)?;
        }
        if rec.tests.failed == 0 {
            rec.steps.run = Status::Ok;
        }
        return Ok(());
    }
    if t.big_endian {
        println!(
        "a big-endian build: the mixed-endian ring test runs with\n  SPREAD_BE_DAEMON=target/{rust}/release/spread SPREAD_BE_RUNNER=\"{qemu} -L {sysroot}\" cargo test --release -p spread-daemon --test mixed_endian -- --nocapture"
    );
    }
    Ok(())
}
