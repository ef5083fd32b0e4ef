//! `cargo xtask bench --suite daemon`: throughput through one daemon, ours and (when
//! installed) C's, in the same run, median of several runs, with the ratio.
//!
//! Method, the same for every cell: a read-only receiver joins the group; once it has its
//! membership a write-only sender sends N messages of S bytes; the time runs from the
//! sender's start until the receiver has received all N. Clients are `spreadctl flood`
//! (any service) and, where C Spread is installed, C's `spflooder` (RELIABLE only), so the
//! comparison can be made with the same client on both daemons.

use super::harness::{flood_between, ClientKind, Implementation, Tools};
use anyhow::{anyhow, Context};
use spread_testkit::{start_alone_with_logs, Logs, RunningDaemon};
use std::path::Path;

#[derive(serde::Serialize)]
struct Cell {
    daemon: Implementation,
    client: ClientKind,
    service: &'static str,
    bytes: usize,
    messages: u64,
    msgs_per_sec: f64,
    mbytes_per_sec: f64,
}

/// One daemon, sender and receiver both on it: the daemon's own forwarding cost.
pub fn run(tools: &Tools, runs: usize, quick: bool, json: Option<&Path>) -> anyhow::Result<()> {
    println!();
    println!("== one daemon: throughput (msgs/s, median of {})", runs);
    let sizes = [100usize, 1000, 10_000];
    let mut cells = Vec::new();
    let daemons: Vec<Implementation> = if tools.c.is_some() {
        vec![Implementation::Rust, Implementation::C]
    } else {
        vec![Implementation::Rust]
    };
    for daemon in daemons {
        let running = start_daemon(tools, daemon)?;
        for &bytes in &sizes {
            let messages = message_count(bytes, quick);
            for service in ["reliable", "agreed"] {
                let mut clients = vec![ClientKind::Spreadctl];
                if tools.c.is_some() && service == "reliable" {
                    clients.push(ClientKind::Spflooder);
                }
                for client in clients {
                    let mut rates: Vec<f64> = (0..runs)
                        .map(|run| flood(tools, &running, client, service, bytes, messages, run))
                        .collect::<anyhow::Result<_>>()?;
                    rates.sort_by(f64::total_cmp);
                    let median = rates[rates.len() / 2];
                    println!(
                        "  {daemon:?} daemon, {client:?} clients, {service:>8}, {bytes:>6} B: {median:>10.0} msgs/s  (runs: {})",
                        rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ")
                    );
                    cells.push(Cell {
                        daemon,
                        client,
                        service,
                        bytes,
                        messages,
                        msgs_per_sec: median,
                        mbytes_per_sec: median * bytes as f64 / 1e6,
                    });
                }
            }
        }
    }
    print_table(&cells, tools.c.is_some());
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&cells)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn message_count(bytes: usize, quick: bool) -> u64 {
    let full = if bytes >= 10_000 { 30_000 } else { 100_000 };
    if quick {
        full / 20
    } else {
        full
    }
}

fn rate(
    cells: &[Cell],
    daemon: Implementation,
    client: ClientKind,
    service: &str,
    bytes: usize,
) -> Option<f64> {
    cells
        .iter()
        .find(|c| {
            c.daemon == daemon && c.client == client && c.service == service && c.bytes == bytes
        })
        .map(|c| c.msgs_per_sec)
}

fn print_table(cells: &[Cell], with_c: bool) {
    println!();
    println!("Throughput through one daemon (msgs/s, median; receiver and sender on loopback)");
    if with_c {
        println!("| service | size | ours (spreadctl) | C (spreadctl) | ratio | ours (spflooder) | C (spflooder) | ratio |");
        println!("|---|---|---|---|---|---|---|---|");
    } else {
        println!("| service | size | ours (spreadctl) |");
        println!("|---|---|---|");
    }
    for service in ["reliable", "agreed"] {
        for bytes in [100usize, 1000, 10_000] {
            let ours = rate(
                cells,
                Implementation::Rust,
                ClientKind::Spreadctl,
                service,
                bytes,
            )
            .unwrap_or(0.0);
            if !with_c {
                println!("| {service} | {bytes} B | {ours:.0} |");
                continue;
            }
            let c = rate(
                cells,
                Implementation::C,
                ClientKind::Spreadctl,
                service,
                bytes,
            )
            .unwrap_or(f64::NAN);
            let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
            let ours_fl = rate(
                cells,
                Implementation::Rust,
                ClientKind::Spflooder,
                service,
                bytes,
            );
            let c_fl = rate(
                cells,
                Implementation::C,
                ClientKind::Spflooder,
                service,
                bytes,
            );
            let ratio_fl = match (ours_fl, c_fl) {
                (Some(a), Some(b)) => format!("{:.1}x", a / b),
                _ => "-".into(),
            };
            println!(
                "| {service} | {bytes} B | {ours:.0} | {c:.0} | {:.1}x | {} | {} | {ratio_fl} |",
                ours / c,
                fmt(ours_fl),
                fmt(c_fl)
            );
        }
    }
}

fn start_daemon(tools: &Tools, implementation: Implementation) -> anyhow::Result<RunningDaemon> {
    let kind = tools.daemon_kind(implementation)?;
    let running = start_alone_with_logs(&kind, "", &[], Logs::Discarded)
        .map_err(|e| anyhow!("starting the {implementation:?} daemon: {e}"))?;
    // A C daemon orders nothing until its ring has formed: wait until a flood gets through.
    flood(tools, &running, ClientKind::Spreadctl, "agreed", 10, 1, 99)
        .context("the daemon never became operational")?;
    Ok(running)
}

/// One measured flood; returns messages per second.
fn flood(
    tools: &Tools,
    daemon: &RunningDaemon,
    client: ClientKind,
    service: &str,
    bytes: usize,
    messages: u64,
    run: usize,
) -> anyhow::Result<f64> {
    let address = daemon.address();
    flood_between(
        tools, &address, &address, client, service, bytes, messages, run,
    )
}
