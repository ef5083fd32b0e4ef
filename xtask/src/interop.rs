//! `cargo xtask interop`: the interop matrix — rings of C 3.17 daemons, ours, and both mixed
//! × libspread and spread-rs × client and daemon events — checked for Extended Virtual
//! Synchrony on what every client received. The runner is spread-scenarios' `interop`
//! binary; this command finds C Spread, builds what is needed, shows progress and writes
//! docs/interop.md and docs/interop.json.

use crate::flags::InteropArgs;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use spread_testkit::CSpread;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;
use xshell::{cmd, Shell};

/// One cell as the runner reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Cell {
    row: String,
    daemons: String,
    library: String,
    event: String,
    status: String,
    failures: Vec<String>,
    seconds: f64,
    clients: usize,
    delivered: usize,
    logs: Option<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    c_spread: Option<String>,
    quick: bool,
    seconds: f64,
    cells: &'a [Cell],
}

const EVENTS: [(&str, &str); 6] = [
    ("join", "join"),
    ("leave", "leave"),
    ("disconnect", "disconnect"),
    ("kill", "kill -9"),
    ("restart", "restart + merge"),
    ("partition", "partition + heal"),
];

pub fn run(sh: &Shell, args: InteropArgs) -> anyhow::Result<()> {
    let root = crate::project_root();
    let prefix = match CSpread::find_in(args.c_prefix.as_deref()) {
        Ok(c) => {
            println!("C Spread 3.17 at {}", c.prefix.display());
            Some(c.prefix)
        }
        Err(why) => {
            println!("C Spread not found ({why}): running the all-Rust part only");
            None
        }
    };
    println!("== building our daemon and the matrix runner");
    cmd!(sh, "cargo build --quiet -p spread-daemon --bin spread").run()?;
    // libspread (through spread-sys) only where C Spread is installed.
    let features: &[&str] = if prefix.is_some() {
        &[]
    } else {
        &["--no-default-features"]
    };
    let mut build = sh.cmd("cargo").args([
        "build",
        "--quiet",
        "-p",
        "spread-scenarios",
        "--bin",
        "interop",
    ]);
    build = build.args(features);
    if let Some(p) = &prefix {
        build = build.env("SPREAD_C_PREFIX", p);
    }
    build.run()?;

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let logs = target.join("interop-logs");
    let _ = std::fs::remove_dir_all(&logs);
    let mut runner = Command::new(target.join("debug/interop"));
    runner
        .current_dir(&root)
        .env("SPREAD_RS_DAEMON", target.join("debug/spread"))
        .arg("--logs")
        .arg(&logs)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match &prefix {
        Some(p) => {
            runner.env("SPREAD_C_PREFIX", p);
        }
        None => {
            // The runner would otherwise find /usr or /usr/local on its own.
            runner
                .env("SPREAD_C_PREFIX", "/nonexistent")
                .arg("--rows")
                .arg("rust");
        }
    }
    if args.quick {
        runner.arg("--quick");
    }
    let started = Instant::now();
    let mut child = runner.spawn().context("starting the interop runner")?;
    let stdout = child.stdout.take().expect("piped");
    let mut cells: Vec<Cell> = Vec::new();
    let mut total = 0;
    println!(
        "{:>7}  {:<15} {:<10} {:<17} {:<5} {:>6}",
        "cell", "daemons", "client", "event", "", "secs"
    );
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(n) = line.strip_prefix("CELLS ") {
            total = n.trim().parse().unwrap_or(0);
        } else if let Some(json) = line.strip_prefix("CELL ") {
            let cell: Cell = serde_json::from_str(json).context("a cell from the runner")?;
            println!(
                "{:>7}  {:<15} {:<10} {:<17} {:<5} {:>6.1}  {}",
                format!("{}/{total}", cells.len() + 1),
                cell.daemons,
                cell.library,
                event_label(&cell.event),
                mark(&cell.status),
                cell.seconds,
                cell.failures
                    .first()
                    .map(|f| short(f, 90))
                    .unwrap_or_default()
            );
            cells.push(cell);
        }
    }
    let status = child.wait()?;
    let seconds = started.elapsed().as_secs_f64().round();
    if !status.success() {
        bail!("the interop runner failed ({status})");
    }

    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(if args.quick {
            "target/interop-quick"
        } else {
            "docs"
        })
    });
    let out = if out.is_absolute() {
        out
    } else {
        root.join(out)
    };
    std::fs::create_dir_all(&out)?;
    let report = Report {
        c_spread: prefix.as_ref().map(|p| p.display().to_string()),
        quick: args.quick,
        seconds,
        cells: &cells,
    };
    std::fs::write(
        out.join("interop.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    std::fs::write(out.join("interop.md"), markdown(&report))?;
    let passed = cells.iter().filter(|c| c.status == "pass").count();
    println!(
        "{passed}/{} cells pass in {seconds} s; wrote {} and {}",
        cells.len(),
        out.join("interop.md").display(),
        out.join("interop.json").display()
    );
    if passed < cells.len() {
        println!(
            "daemon logs of the cells that did not pass: {}",
            logs.display()
        );
    }
    Ok(())
}

fn event_label(key: &str) -> &str {
    EVENTS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(key, |(_, label)| label)
}

fn mark(status: &str) -> &'static str {
    match status {
        "pass" => "ok",
        "fail" => "FAIL",
        _ => "ERROR",
    }
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max).collect::<String>() + "…"
    }
}

fn markdown(report: &Report<'_>) -> String {
    let mut md = String::from(
        "# Interop matrix\n\n\
         Written by `cargo xtask interop`. Rings of three daemons (n1 n2 n3: C 3.17, ours, or \
         both mixed), one client per daemon plus one for the client events, all in one group, \
         each multicasting every service type (UNRELIABLE to SAFE) before, during and after \
         the event. What every client received is checked with the simulator's Extended \
         Virtual Synchrony checker (`sim/src/check.rs`: (a) same order in a view, (b) no \
         gaps, (c) SAFE reaches every member, (d) views alike everywhere, (e) messages stay \
         in their view, (f) no duplicates, (g) self-delivery, final shared view) plus (vs): \
         clients that move together between two views deliver the same messages in the \
         first.\n\n",
    );
    md.push_str(&format!(
        "C Spread: {}. {} cells, {} pass; {} s.\n\n",
        report
            .c_spread
            .as_deref()
            .unwrap_or("not found (all-Rust part only)"),
        report.cells.len(),
        report.cells.iter().filter(|c| c.status == "pass").count(),
        report.seconds
    ));
    md.push_str("| daemons | client |");
    for (_, label) in EVENTS {
        md.push_str(&format!(" {label} |"));
    }
    md.push_str("\n|---|---|");
    md.push_str(&"---|".repeat(EVENTS.len()));
    md.push('\n');
    let mut rows: Vec<(&str, &str)> = Vec::new();
    for c in report.cells {
        if !rows.contains(&(&c.daemons, &c.library)) {
            rows.push((&c.daemons, &c.library));
        }
    }
    let mut notes = Vec::new();
    for (daemons, library) in rows {
        md.push_str(&format!("| {daemons} | {library} |"));
        for (key, label) in EVENTS {
            let cell = report
                .cells
                .iter()
                .find(|c| c.daemons == daemons && c.library == library && c.event == key);
            match cell {
                None => md.push_str(" – |"),
                Some(c) if c.status == "pass" => md.push_str(" ✅ |"),
                Some(c) => {
                    notes.push(format!(
                        "{daemons} / {library} / {label}: {}",
                        short(&c.failures.join("; "), 400).replace('|', "\\|")
                    ));
                    md.push_str(&format!(
                        " {} [{}] |",
                        if c.status == "fail" { "❌" } else { "⚠️" },
                        notes.len()
                    ));
                }
            }
        }
        md.push('\n');
    }
    if !notes.is_empty() {
        md.push_str("\n❌ an invariant or an expected view failed; ⚠️ the cell could not run.\n\n");
        for (i, n) in notes.iter().enumerate() {
            md.push_str(&format!("{}. {n}\n", i + 1));
        }
    }
    md
}
