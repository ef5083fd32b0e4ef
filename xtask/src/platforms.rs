//! `cargo xtask build --target all`: takes every platform as far as this machine allows and
//! writes what happened as data, platforms/platforms.json, then renders docs/platforms.md
//! from that file alone.
//!
//! * Tier 1, built and the suites run: x86_64 Linux natively; aarch64, powerpc64 and s390x
//!   Linux cross-built with clang and run under qemu (build.rs, `--test`).
//! * Tier 2, built and linked (daemon, spreadctl and every test binary), not run: FreeBSD,
//!   NetBSD and both macOS targets through cargo-zigbuild (zig from PyPI's ziglang), and
//!   OpenBSD, which has no prebuilt std, through nightly's -Zbuild-std.
//! * Tier 3, compiled to object code: AIX, with the nightly that builds its std.
//!
//! A target that fails does not stop the run: its record says which step failed and why,
//! and the summary at the end lists what could not be done. The JSON is written again after
//! every target, so an interrupted run leaves only true statements behind.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Instant;
use xshell::{cmd, Shell};

const JSON: &str = "platforms/platforms.json";
const DOC: &str = "docs/platforms.md";
/// The nightly that builds AIX's std with the project's dependencies.
const AIX_NIGHTLY: &str = "nightly-2025-06-10";
/// What the build-std path of OpenBSD uses.
const NIGHTLY: &str = "nightly";
/// Used where a target has no C sysroot here, so that a crate compiling C for it fails
/// loudly rather than picking up the host's headers.
const NO_SYSROOT: &str = "--sysroot=/nonexistent";

#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// The pinned toolchain on the host.
    Native,
    /// build.rs: clang, the Debian cross sysroot, qemu user emulation.
    Qemu,
    /// cargo-zigbuild with a prebuilt std from rustup.
    Zig,
    /// cargo-zigbuild with std built from source by a nightly.
    ZigBuildStd,
    /// A nightly's -Zbuild-std, no linker to be had.
    BuildStd,
}

struct Platform {
    rust: &'static str,
    tier: u8,
    via: Via,
}

const PLATFORMS: [Platform; 10] = [
    Platform {
        rust: "x86_64-unknown-linux-gnu",
        tier: 1,
        via: Via::Native,
    },
    Platform {
        rust: "aarch64-unknown-linux-gnu",
        tier: 1,
        via: Via::Qemu,
    },
    Platform {
        rust: "powerpc64-unknown-linux-gnu",
        tier: 1,
        via: Via::Qemu,
    },
    Platform {
        rust: "s390x-unknown-linux-gnu",
        tier: 1,
        via: Via::Qemu,
    },
    Platform {
        rust: "x86_64-unknown-freebsd",
        tier: 2,
        via: Via::Zig,
    },
    Platform {
        rust: "x86_64-unknown-netbsd",
        tier: 2,
        via: Via::Zig,
    },
    Platform {
        rust: "x86_64-apple-darwin",
        tier: 2,
        via: Via::Zig,
    },
    Platform {
        rust: "aarch64-apple-darwin",
        tier: 2,
        via: Via::Zig,
    },
    Platform {
        rust: "x86_64-unknown-openbsd",
        tier: 2,
        via: Via::ZigBuildStd,
    },
    Platform {
        rust: "powerpc64-ibm-aix",
        tier: 3,
        via: Via::BuildStd,
    },
];

/// The notes column of docs/platforms.md: the only words in it not produced by a run.
const NOTES: &[(&str, &str)] = &[
    (
        "x86_64-unknown-linux-gnu",
        "The development platform; CI runs the whole suite here.",
    ),
    (
        "aarch64-unknown-linux-gnu",
        "Little-endian like x86_64, so no mixed-endian ring; the in-process suites only.",
    ),
    (
        "powerpc64-unknown-linux-gnu",
        "Big-endian (ELFv1); also a ring of this daemon under qemu between two x86_64 ones, and (where C Spread is installed) between two C 3.17 daemons.",
    ),
    (
        "s390x-unknown-linux-gnu",
        "Big-endian; also a ring of this daemon under qemu between two x86_64 ones, and (where C Spread is installed) between two C 3.17 daemons.",
    ),
    (
        "x86_64-unknown-freebsd",
        "Linked against zig's FreeBSD libc stubs; never run.",
    ),
    (
        "x86_64-unknown-netbsd",
        "Linked against zig's NetBSD libc stubs; never run.",
    ),
    (
        "x86_64-apple-darwin",
        "Linked against zig's libSystem stubs, no Apple SDK; never run.",
    ),
    (
        "aarch64-apple-darwin",
        "Linked against zig's libSystem stubs, no Apple SDK; never run.",
    ),
    (
        "x86_64-unknown-openbsd",
        "No prebuilt std (Rust tier 3): std built from source by nightly; linked against zig's OpenBSD libc stubs. No per-socket keepalive times: SO_KEEPALIVE with the system's net.inet.tcp.keep* values (spread-rs's liveness probe covers it: docs/failure-detection.md).",
    ),
    (
        "powerpc64-ibm-aix",
        "No AIX sysroot or linker here: object code only. Keepalive idle time per socket; interval and count are the system's (socket2 0.5 sets no others on AIX).",
    ),
];

#[derive(Serialize, Deserialize, Clone, Copy, Default, PartialEq, Debug)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    #[default]
    NotAttempted,
    Ok,
    Failed,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub(crate) struct Steps {
    pub check: Status,
    pub build: Status,
    pub link: Status,
    pub run: Status,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub(crate) struct Tests {
    /// `test result:` lines seen, one per test binary run.
    pub binaries: u32,
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
}

/// What one run found out about one target.
#[derive(Serialize, Deserialize, Clone, Default)]
#[serde(default)]
pub(crate) struct Record {
    pub target: String,
    pub tier: u8,
    /// The last step the tier asks for: run, link or build.
    pub goal: String,
    pub steps: Steps,
    /// The last step that passed, with every step before it.
    pub reached: String,
    pub tests: Tests,
    pub toolchain: String,
    pub tools: Vec<String>,
    pub commands: Vec<String>,
    pub date: String,
    pub seconds: f64,
    pub target_os: String,
    pub target_endian: String,
    pub poller: String,
    pub keepalive: Vec<String>,
    pub notes: String,
    /// What this run installed for the target (rustup, pip, apt).
    pub installed: Vec<String>,
    /// Why a step failed, or what stopped the target before its goal.
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Report {
    /// False while the run is going on or when it was interrupted: targets still
    /// `not_attempted` then were not reached, which says nothing about them.
    complete: bool,
    started: String,
    finished: Option<String>,
    wall_seconds: f64,
    host: String,
    command: String,
    platforms: Vec<Record>,
}

pub fn run(sh: &Shell, render_only: bool) -> anyhow::Result<()> {
    if render_only {
        let text = sh
            .read_file(JSON)
            .with_context(|| format!("reading {JSON}"))?;
        let mut report: Report = serde_json::from_str(&text)?;
        // The notes are the one hand-written column: take them from NOTES as they are now.
        for rec in &mut report.platforms {
            rec.notes = note(&rec.target).into();
        }
        sh.write_file(JSON, serde_json::to_string_pretty(&report)? + "\n")?;
        sh.write_file(DOC, render(&report))?;
        println!("rendered {DOC} from {JSON} (notes from NOTES)");
        return Ok(());
    }
    let start = Instant::now();
    let mut report = Report {
        complete: false,
        started: now(sh),
        finished: None,
        wall_seconds: 0.0,
        host: cmd!(sh, "uname -srm").read().unwrap_or_default(),
        command: "cargo xtask build --target all".into(),
        platforms: PLATFORMS
            .iter()
            .map(|p| Record {
                target: p.rust.into(),
                tier: p.tier,
                goal: goal(p.tier).into(),
                reached: "nothing".into(),
                notes: note(p.rust).into(),
                ..Record::default()
            })
            .collect(),
    };
    save(sh, &mut report, start)?;

    for (i, p) in PLATFORMS.iter().enumerate() {
        println!(
            "\n===== [{}/{}] {} (tier {}: {}) =====",
            i + 1,
            PLATFORMS.len(),
            p.rust,
            p.tier,
            goal(p.tier)
        );
        let t0 = Instant::now();
        let mut rec = report.platforms[i].clone();
        rec.date = now(sh);
        let result = platform(sh, p, &mut rec);
        rec.seconds = round1(t0.elapsed().as_secs_f64());
        if let Err(e) = result {
            let msg = format!("{e:#}");
            println!("!! {}: {msg}", p.rust);
            rec.error.get_or_insert(msg);
        }
        rec.reached = reached(&rec.steps).into();
        println!(
            "----- {}: reached {} of {} in {:.0} s",
            p.rust, rec.reached, rec.goal, rec.seconds
        );
        report.platforms[i] = rec;
        save(sh, &mut report, start)?;
    }
    report.complete = true;
    report.finished = Some(now(sh));
    save(sh, &mut report, start)?;
    summary(&report);
    Ok(())
}

fn goal(tier: u8) -> &'static str {
    match tier {
        1 => "run",
        2 => "link",
        _ => "build",
    }
}

fn note(target: &str) -> &'static str {
    NOTES
        .iter()
        .find(|(t, _)| *t == target)
        .map_or("", |(_, n)| n)
}

fn reached(s: &Steps) -> &'static str {
    let mut last = "nothing";
    for (name, st) in [
        ("check", s.check),
        ("build", s.build),
        ("link", s.link),
        ("run", s.run),
    ] {
        if st != Status::Ok {
            break;
        }
        last = name;
    }
    last
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn now(sh: &Shell) -> String {
    cmd!(sh, "date -u +%Y-%m-%dT%H:%M:%SZ")
        .quiet()
        .read()
        .unwrap_or_default()
}

fn save(sh: &Shell, report: &mut Report, start: Instant) -> anyhow::Result<()> {
    report.wall_seconds = round1(start.elapsed().as_secs_f64());
    sh.create_dir("platforms")?;
    sh.write_file(JSON, serde_json::to_string_pretty(report)? + "\n")?;
    sh.write_file(DOC, render(report))?;
    Ok(())
}

/// One target, as far as it goes; steps are recorded as they pass.
fn platform(sh: &Shell, p: &Platform, rec: &mut Record) -> anyhow::Result<()> {
    let toolchain = match p.via {
        Via::Native | Via::Qemu | Via::Zig => None,
        Via::ZigBuildStd => Some(NIGHTLY),
        Via::BuildStd => Some(AIX_NIGHTLY),
    };
    if let Some(tc) = toolchain {
        ensure_nightly(sh, tc, &mut rec.installed)?;
    } else if p.via == Via::Zig {
        // (build.rs adds the qemu targets itself.)
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
            let t = crate::build::TARGETS
                .iter()
                .find(|t| t.rust == p.rust)
                .context("no cross target in build.rs")?;
            rec.tools = vec![
                first_line(sh, "clang", &["--version"]),
                first_line(sh, t.qemu, &["--version"]),
            ];
            rec.commands = vec![format!("cargo xtask build --target {} --test", p.rust)];
            crate::build::cross(sh, t, true, rec)
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

struct Outcome {
    ok: bool,
    tests: Tests,
    first_error: Option<String>,
}

/// Runs a command, echoing its output as it comes, counting `test result:` lines and
/// keeping the first `error` line for the record.
fn stream(c: xshell::Cmd<'_>) -> Outcome {
    let mut command = std::process::Command::from(c);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Outcome {
                ok: false,
                tests: Tests::default(),
                first_error: Some(format!("cannot start: {e}")),
            }
        }
    };
    let stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut first: Option<String> = None;
        // rustc's note under a linker error: what the linker itself said.
        let mut note: Option<String> = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let l = line.trim();
            if first.is_none()
                && (l.starts_with("error") || l.contains("error:"))
                && !l.starts_with("error: could not compile")
            {
                first = Some(l.to_string());
            } else if first.is_some() && note.is_none() {
                if let Some(n) = l.strip_prefix("= note:").map(str::trim) {
                    if !n.is_empty() && !n.starts_with('"') && !n.starts_with("some arguments") {
                        note = Some(n.to_string());
                    }
                }
            }
        }
        match (first, note) {
            (Some(f), Some(n)) => Some(format!("{f}: {n}")),
            (first, _) => first,
        }
    });
    let mut tests = Tests::default();
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        println!("{line}");
        if let Some(rest) = line.trim().strip_prefix("test result: ") {
            tests.binaries += 1;
            for part in rest.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                    continue;
                };
                let n: u32 = n.parse().unwrap_or(0);
                match kind {
                    "passed" => tests.passed += n,
                    "failed" => tests.failed += n,
                    "ignored" => tests.ignored += n,
                    _ => {}
                }
            }
        }
    }
    let ok = child.wait().map(|s| s.success()).unwrap_or(false);
    let first_error = errors.join().ok().flatten();
    Outcome {
        ok,
        tests,
        first_error,
    }
}

/// Runs a `cargo test` command and adds its counts to `rec`; an error only when it failed
/// without a failing test to show for it (a build error, a crash of the runner).
pub(crate) fn run_tests(c: xshell::Cmd<'_>, rec: &mut Record) -> anyhow::Result<()> {
    let shown = c.to_string();
    println!("$ {shown}");
    let out = stream(c);
    rec.tests.binaries += out.tests.binaries;
    rec.tests.passed += out.tests.passed;
    rec.tests.failed += out.tests.failed;
    rec.tests.ignored += out.tests.ignored;
    if out.ok || out.tests.failed > 0 {
        return Ok(());
    }
    bail!(
        "{shown}: {}",
        out.first_error
            .unwrap_or_else(|| "exited non-zero".to_string())
    )
}

fn mark(s: Status) -> &'static str {
    match s {
        Status::Ok => "✓",
        Status::Failed => "✗",
        Status::NotAttempted => "–",
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn render(r: &Report) -> String {
    let mut md = String::new();
    md.push_str("# Platforms\n\n");
    md.push_str(
        "<!-- Generated by `cargo xtask build --target all` from platforms/platforms.json; \
         do not edit. The notes column comes from NOTES in xtask/src/platforms.rs. -->\n\n",
    );
    md.push_str(&format!(
        "Run `{}` on {}, started {}{}; wall time {:.0} s ({:.1} min).{}\n\n",
        r.command,
        r.host,
        r.started,
        r.finished
            .as_ref()
            .map(|f| format!(", finished {f}"))
            .unwrap_or_default(),
        r.wall_seconds,
        r.wall_seconds / 60.0,
        if r.complete {
            ""
        } else {
            " **The run is incomplete: targets marked – were not reached.**"
        }
    ));
    md.push_str(
        "Tier 1: built, and the test suites run (natively or under qemu). Tier 2: built and \
         linked (daemon, spreadctl and the test binaries), not run. Tier 3: compiled to \
         object code. ✓ passed, ✗ failed, – not attempted; a build implies a check. Times are \
         this run's, and depend on what target/ already held.\n\n",
    );
    md.push_str(
        "| Target | Tier | Goal | Reached | Check | Build | Link | Run | Tests (passed/failed/ignored) | Poller | Keepalive options | Toolchain | Time (s) | Notes |\n",
    );
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for p in &r.platforms {
        let tests = if p.steps.run == Status::NotAttempted && p.tests.binaries == 0 {
            "–".to_string()
        } else {
            format!(
                "{}/{}/{} in {} binaries",
                p.tests.passed, p.tests.failed, p.tests.ignored, p.tests.binaries
            )
        };
        let mut toolchain = p.toolchain.clone();
        for t in &p.tools {
            toolchain.push_str("; ");
            toolchain.push_str(t);
        }
        md.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            p.target,
            p.tier,
            p.goal,
            p.reached,
            mark(p.steps.check),
            mark(p.steps.build),
            mark(p.steps.link),
            mark(p.steps.run),
            tests,
            if p.poller.is_empty() {
                "–"
            } else {
                &p.poller
            },
            cell(&p.keepalive.join(", ")),
            cell(&toolchain),
            if p.date.is_empty() {
                "–".to_string()
            } else {
                format!("{:.0}", p.seconds)
            },
            cell(&p.notes),
        ));
    }
    let problems: Vec<&Record> = r.platforms.iter().filter(|p| p.error.is_some()).collect();
    if !problems.is_empty() {
        md.push_str("\n## What stopped a target\n\n");
        for p in problems {
            md.push_str(&format!(
                "- `{}`: {}\n",
                p.target,
                cell(p.error.as_deref().unwrap_or(""))
            ));
        }
    }
    let installed: Vec<(&str, &String)> = r
        .platforms
        .iter()
        .flat_map(|p| p.installed.iter().map(move |i| (p.target.as_str(), i)))
        .collect();
    if !installed.is_empty() {
        md.push_str("\n## Installed by this run\n\n");
        for (target, i) in installed {
            md.push_str(&format!("- for `{target}`: `{}`\n", cell(i)));
        }
    }
    md.push_str("\n## Commands\n\n");
    for p in &r.platforms {
        if p.commands.is_empty() {
            continue;
        }
        md.push_str(&format!("- `{}`:\n", p.target));
        for c in &p.commands {
            md.push_str(&format!("  - `{}`\n", cell(c)));
        }
    }
    md
}

fn summary(r: &Report) {
    println!("\n===== summary ({:.0} s) =====", r.wall_seconds);
    let installed: Vec<&String> = r.platforms.iter().flat_map(|p| &p.installed).collect();
    if installed.is_empty() {
        println!("installed: nothing (all present)");
    } else {
        println!("installed:");
        for i in installed {
            println!("  {i}");
        }
    }
    for p in &r.platforms {
        let ok = match p.goal.as_str() {
            "run" => p.steps.run == Status::Ok,
            "link" => p.steps.link == Status::Ok,
            _ => p.steps.build == Status::Ok,
        };
        let tests = if p.tests.binaries > 0 {
            format!(
                ", tests {} passed, {} failed",
                p.tests.passed, p.tests.failed
            )
        } else {
            String::new()
        };
        println!(
            "{} tier {} {:<30} reached {:<7} (goal {}){tests}, {:.0} s",
            if ok { "ok  " } else { "FAIL" },
            p.tier,
            p.target,
            p.reached,
            p.goal,
            p.seconds
        );
        if let Some(e) = &p.error {
            println!("       why: {e}");
        }
    }
    println!("written: {JSON}, {DOC}");
}
