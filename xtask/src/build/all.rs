//! `cargo xtask build --target all`: takes every platform as far as this machine allows and
//! writes what happened as data, platforms/platforms.json, then renders docs/platforms.md
//! from that file alone.
//!
//! * Tier 1, built and the suites run: x86_64 Linux natively; aarch64, powerpc64 and s390x
//!   Linux cross-built with clang and run under qemu (cross.rs, `--test`).
//! * Tier 2, built and linked (daemon, spreadctl and every test binary), not run: FreeBSD,
//!   NetBSD and both macOS targets through cargo-zigbuild (zig from PyPI's ziglang), and
//!   OpenBSD, which has no prebuilt std, through nightly's -Zbuild-std.
//! * Tier 3, compiled to object code: AIX, with the nightly that builds its std.
//!
//! A target that fails does not stop the run: its record says which step failed and why,
//! and the summary at the end lists what could not be done. The JSON is written again after
//! every target, so an interrupted run leaves only true statements behind.

use super::platform::platform;
use super::record::{reached, Record, Report, Status, JSON};
use super::render::{render, DOC};
use super::targets::{goal, note, PLATFORMS};
use std::time::Instant;
use xshell::{cmd, Shell};

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
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
