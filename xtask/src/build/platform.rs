//! Taking one platform of the table as far as its tier asks: installing the toolchain and
//! tools its route needs, then check, build, link and run, each step recorded as it passes.

use super::cargo_test::{run_tests, stream};
use super::cross::cross;
use super::record::{Record, Status};
use super::targets::{Platform, Via, AIX_NIGHTLY, NIGHTLY, TARGETS};
use anyhow::{bail, Context};
use xshell::{cmd, Shell};

/// Used where a target has no C sysroot here, so that a crate compiling C for it fails
/// loudly rather than picking up the host's headers.
const NO_SYSROOT: &str = "--sysroot=/nonexistent";

/// One target, as far as it goes; steps are recorded as they pass.
pub(crate) fn platform(sh: &Shell, p: &Platform, rec: &mut Record) -> anyhow::Result<()> {
    let toolchain = match p.via {
        Via::Native | Via::Qemu | Via::Zig => None,
        Via::ZigBuildStd => Some(NIGHTLY),
        Via::BuildStd => Some(AIX_NIGHTLY),
    };
    if let Some(tc) = toolchain {
        ensure_nightly(sh, tc, &mut rec.installed)?;
    } else if p.via == Via::Zig {
        // (cross.rs adds the qemu targets itself.)
        ensure_target(sh, p.rust, &mut rec.installed)?;
    }
    rec.toolchain = rustc_version(sh, toolchain)?;
    describe(sh, p.rust, toolchain, rec)?;
    if matches!(p.via, Via::Zig | Via::ZigBuildStd) {
        ensure_zigbuild(sh, &mut rec.installed)?;
        rec.tools = vec![
            first_line(sh, "cargo-zigbuild", &["--version"]),
            format!(
                "zig {}",
                first_line(sh, "python3", &["-m", "ziglang", "version"])
            ),
        ];
    }

    match p.via {
        Via::Native => native(sh, rec),
        Via::Qemu => {
            let t = TARGETS
                .iter()
                .find(|t| t.rust == p.rust)
                .context("no cross target in TARGETS")?;
            rec.tools = vec![
                first_line(sh, "clang", &["--version"]),
                first_line(sh, t.qemu, &["--version"]),
            ];
            rec.commands = vec![format!("cargo xtask build --target {} --test", p.rust)];
            cross(sh, t, true, rec)
        }
        Via::Zig | Via::ZigBuildStd => linked(sh, p, toolchain, rec),
        Via::BuildStd => objects(sh, p, toolchain.unwrap_or(AIX_NIGHTLY), rec),
    }
}

/// x86_64 Linux: a debug build of the binaries, then the in-process suites.
fn native(sh: &Shell, rec: &mut Record) -> anyhow::Result<()> {
    let build = cmd!(sh, "cargo build -p spread-daemon -p spreadctl");
    rec.commands.push(build.to_string());
    build.run()?;
    rec.steps.check = Status::Ok;
    rec.steps.build = Status::Ok;
    rec.steps.link = Status::Ok;
    let test = cmd!(
        sh,
        "cargo test -p spread-wire -p spread-rs -p spread-daemon --lib"
    );
    rec.commands.push(test.to_string());
    rec.steps.run = Status::Failed;
    run_tests(test, rec)?;
    if rec.tests.failed == 0 {
        rec.steps.run = Status::Ok;
    }
    Ok(())
}

/// A `cargo [+tc] <sub> [-Zbuild-std] --target T` command for a tier 2 or 3 target, with
/// the environment such a nightly run needs.
fn cargo<'a>(
    sh: &'a Shell,
    toolchain: Option<&str>,
    sub: &str,
    target: &str,
    rest: &[&str],
) -> xshell::Cmd<'a> {
    let plus = toolchain.map(|tc| format!("+{tc}"));
    let zstd = toolchain.map(|_| "-Zbuild-std");
    let mut c = cmd!(
        sh,
        "cargo {plus...} {sub} {zstd...} --target {target} {rest...}"
    );
    if let Some(tc) = toolchain {
        // `cargo xtask` runs under the pinned toolchain, whose cargo would otherwise be
        // found again through these.
        c = c
            .env("RUSTUP_TOOLCHAIN", tc)
            .env_remove("CARGO")
            .env_remove("RUSTC")
            .env_remove("RUSTDOC");
    }
    if toolchain.is_some() {
        // No C sysroot for these targets: a crate that compiles C must fail loudly.
        let key = target.replace('-', "_");
        c = c
            .env(format!("CFLAGS_{key}"), NO_SYSROOT)
            .env(format!("BINDGEN_EXTRA_CLANG_ARGS_{key}"), NO_SYSROOT);
    }
    c
}

/// Runs one step; on failure records the first error line cargo printed.
fn step(c: xshell::Cmd<'_>, rec: &mut Record, name: &str) -> Status {
    rec.commands.push(c.to_string());
    println!("-- {name}: {c}");
    let out = stream(c);
    if out.ok {
        Status::Ok
    } else {
        let why = out
            .first_error
            .unwrap_or_else(|| "exited non-zero".to_string());
        rec.error.get_or_insert(format!("{name}: {why}"));
        Status::Failed
    }
}

const LIBS: [&str; 6] = [
    "-p",
    "spread-wire",
    "-p",
    "spread-rs",
    "-p",
    "spread-daemon",
];

/// Tier 2: the libraries (object code), then the binaries and every test binary linked.
fn linked(
    sh: &Shell,
    p: &Platform,
    toolchain: Option<&str>,
    rec: &mut Record,
) -> anyhow::Result<()> {
    let mut libs = LIBS.to_vec();
    libs.push("--lib");
    rec.steps.build = step(
        cargo(sh, toolchain, "zigbuild", p.rust, &libs),
        rec,
        "build",
    );
    if rec.steps.build != Status::Ok {
        // Is it the code or the toolchain? A check needs no code generation or linker.
        rec.steps.check = step(cargo(sh, toolchain, "check", p.rust, &LIBS), rec, "check");
        return Ok(());
    }
    rec.steps.check = Status::Ok;
    let mut all = LIBS.to_vec();
    all.extend(["-p", "spreadctl", "--bins", "--tests"]);
    rec.steps.link = step(cargo(sh, toolchain, "zigbuild", p.rust, &all), rec, "link");
    Ok(())
}

/// Tier 3: check, then object code for std and our libraries; the link of the daemon is
/// tried too, to record what stops it.
fn objects(sh: &Shell, p: &Platform, tc: &str, rec: &mut Record) -> anyhow::Result<()> {
    let pkgs = ["-p", "spread-daemon", "-p", "spread-rs"];
    rec.steps.check = step(cargo(sh, Some(tc), "check", p.rust, &pkgs), rec, "check");
    if rec.steps.check != Status::Ok {
        return Ok(());
    }
    let mut libs = pkgs.to_vec();
    libs.push("--lib");
    rec.steps.build = step(cargo(sh, Some(tc), "build", p.rust, &libs), rec, "build");
    if rec.steps.build != Status::Ok {
        return Ok(());
    }
    let bin = ["-p", "spread-daemon", "--bin", "spread"];
    rec.steps.link = step(cargo(sh, Some(tc), "build", p.rust, &bin), rec, "link");
    if rec.steps.link != Status::Ok {
        if let Some(e) = rec.error.take() {
            rec.error = Some(format!(
                "{e} (expected: the host's GNU ld got AIX's options; no AIX linker or sysroot here)"
            ));
        }
    }
    Ok(())
}

/// The OS-specific paths a target takes, from rustc's cfg for it. The tables follow mio
/// 1.x's choice of selector and the cfg_if block of spread-sockopt (the daemon's client
/// sockets and spread-rs) over socket2 0.5's set_tcp_keepalive.
fn describe(
    sh: &Shell,
    target: &str,
    toolchain: Option<&str>,
    rec: &mut Record,
) -> anyhow::Result<()> {
    let plus = toolchain.map(|tc| format!("+{tc}"));
    let cfg = cmd!(sh, "rustc {plus...} --print cfg --target {target}")
        .quiet()
        .read()?;
    let value = |key: &str| {
        cfg.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=\"")))
            .map(|v| v.trim_end_matches('"').to_string())
            .unwrap_or_default()
    };
    rec.target_os = value("target_os");
    rec.target_endian = value("target_endian");
    rec.poller = match rec.target_os.as_str() {
        "linux" | "android" | "illumos" | "redox" => "epoll",
        "freebsd" | "netbsd" | "openbsd" | "dragonfly" | "macos" | "ios" => "kqueue",
        "solaris" => "event ports",
        _ => "poll",
    }
    .into();
    let ka: &[&str] = match rec.target_os.as_str() {
        "linux" | "android" => &[
            "SO_KEEPALIVE",
            "TCP_KEEPIDLE",
            "TCP_KEEPINTVL",
            "TCP_KEEPCNT",
            "TCP_USER_TIMEOUT",
        ],
        "freebsd" | "netbsd" | "dragonfly" | "illumos" => &[
            "SO_KEEPALIVE",
            "TCP_KEEPIDLE",
            "TCP_KEEPINTVL",
            "TCP_KEEPCNT",
        ],
        "macos" | "ios" => &[
            "SO_KEEPALIVE",
            "TCP_KEEPALIVE",
            "TCP_KEEPINTVL",
            "TCP_KEEPCNT",
        ],
        "openbsd" => &["SO_KEEPALIVE"],
        _ => &["SO_KEEPALIVE", "TCP_KEEPIDLE"],
    };
    rec.keepalive = ka.iter().map(|s| s.to_string()).collect();
    Ok(())
}

fn rustc_version(sh: &Shell, toolchain: Option<&str>) -> anyhow::Result<String> {
    let plus = toolchain.map(|tc| format!("+{tc}"));
    Ok(cmd!(sh, "rustc {plus...} -V").quiet().read()?)
}

fn first_line(sh: &Shell, program: &str, args: &[&str]) -> String {
    cmd!(sh, "{program} {args...}")
        .quiet()
        .ignore_status()
        .ignore_stderr()
        .read()
        .unwrap_or_default()
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

fn ensure_target(sh: &Shell, target: &str, installed: &mut Vec<String>) -> anyhow::Result<()> {
    let have = cmd!(sh, "rustup target list --installed").quiet().read()?;
    if have.lines().any(|l| l.trim() == target) {
        println!("rustup target {target}: already installed");
        return Ok(());
    }
    println!("rustup target {target}: adding");
    cmd!(sh, "rustup target add {target}").run()?;
    installed.push(format!("rustup target add {target}"));
    Ok(())
}

fn ensure_nightly(sh: &Shell, tc: &str, installed: &mut Vec<String>) -> anyhow::Result<()> {
    let have = cmd!(sh, "rustup toolchain list").quiet().read()?;
    if !have
        .lines()
        .any(|l| l.starts_with(&format!("{tc}-x86_64-unknown-linux-gnu")))
    {
        println!("rustup toolchain {tc}: installing with rust-src");
        cmd!(
            sh,
            "rustup toolchain install {tc} --profile minimal --component rust-src"
        )
        .run()?;
        installed.push(format!(
            "rustup toolchain install {tc} --profile minimal --component rust-src"
        ));
        return Ok(());
    }
    let components = cmd!(sh, "rustup component list --toolchain {tc} --installed")
        .quiet()
        .read()?;
    if components.lines().any(|l| l.trim() == "rust-src") {
        println!("rustup toolchain {tc}: present, with rust-src");
    } else {
        println!("rustup toolchain {tc}: adding rust-src");
        cmd!(sh, "rustup component add rust-src --toolchain {tc}").run()?;
        installed.push(format!("rustup component add rust-src --toolchain {tc}"));
    }
    Ok(())
}

/// cargo-zigbuild and zig, from PyPI (cargo-zigbuild finds `python3 -m ziglang`).
fn ensure_zigbuild(sh: &Shell, installed: &mut Vec<String>) -> anyhow::Result<()> {
    let present = || {
        cmd!(sh, "cargo-zigbuild --version")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()
            .is_ok()
            && cmd!(sh, "python3 -m ziglang version")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run()
                .is_ok()
    };
    if present() {
        println!("cargo-zigbuild and zig: present");
        return Ok(());
    }
    println!("cargo-zigbuild and zig: pip install ziglang cargo-zigbuild");
    if cmd!(sh, "python3 -m pip install ziglang cargo-zigbuild")
        .run()
        .is_ok()
    {
        installed.push("pip install ziglang cargo-zigbuild".into());
    } else {
        println!("pip refused; trying again with --break-system-packages");
        cmd!(
            sh,
            "python3 -m pip install --break-system-packages ziglang cargo-zigbuild"
        )
        .run()?;
        installed.push("pip install --break-system-packages ziglang cargo-zigbuild".into());
    }
    if !present() {
        bail!("cargo-zigbuild or zig still missing after pip install");
    }
    Ok(())
}
