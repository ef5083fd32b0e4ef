//! `cargo xtask bench --suite daemon`: throughput through one daemon, ours and (when
//! installed) C's, in the same run, median of several runs, with the ratio.
//!
//! Method, the same for every cell: a read-only receiver joins the group; once it has its
//! membership a write-only sender sends N messages of S bytes; the time runs from the
//! sender's start until the receiver has received all N. Clients are `spreadctl flood`
//! (any service) and, where C Spread is installed, C's `spflooder` (RELIABLE only), so the
//! comparison can be made with the same client on both daemons.

use super::harness::{
    flood_between, free_port, make_readable, ClientKind, DaemonKind, TempDir, Tools,
};
use crate::cspread;
use anyhow::{bail, Context};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(serde::Serialize)]
struct Cell {
    daemon: DaemonKind,
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
    let daemons: Vec<DaemonKind> = if tools.c.is_some() {
        vec![DaemonKind::Rust, DaemonKind::C]
    } else {
        vec![DaemonKind::Rust]
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
    daemon: DaemonKind,
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
                DaemonKind::Rust,
                ClientKind::Spreadctl,
                service,
                bytes,
            )
            .unwrap_or(0.0);
            if !with_c {
                println!("| {service} | {bytes} B | {ours:.0} |");
                continue;
            }
            let c = rate(cells, DaemonKind::C, ClientKind::Spreadctl, service, bytes)
                .unwrap_or(f64::NAN);
            let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
            let ours_fl = rate(
                cells,
                DaemonKind::Rust,
                ClientKind::Spflooder,
                service,
                bytes,
            );
            let c_fl = rate(cells, DaemonKind::C, ClientKind::Spflooder, service, bytes);
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

struct RunningDaemon {
    child: Child,
    address: String,
    _dir: TempDir,
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_daemon(tools: &Tools, kind: DaemonKind) -> anyhow::Result<RunningDaemon> {
    let port = free_port();
    let dir =
        TempDir(std::env::temp_dir().join(format!("spread-bench-{}-{port}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let conf = dir.0.join("spread.conf");
    std::fs::write(
        &conf,
        format!("Spread_Segment 127.0.0.255:{port} {{\n    bench 127.0.0.1\n}}\n"),
    )?;
    make_readable(&dir.0);
    let mut command = match kind {
        DaemonKind::Rust => {
            let mut c = Command::new(&tools.spread);
            c.arg("--local-socket").arg(dir.0.join("sock"));
            c
        }
        DaemonKind::C => cspread::unprivileged(&tools.c.as_ref().expect("C found").daemon),
    };
    let child = command
        .args(["-n", "bench", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting the {kind:?} daemon"))?;
    let address = format!("{port}@127.0.0.1");
    let mut running = RunningDaemon {
        child,
        address,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline || running.child.try_wait()?.is_some() {
            bail!("the {kind:?} daemon did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A C daemon orders nothing until its ring has formed: wait until a flood gets through.
    flood(tools, &running, ClientKind::Spreadctl, "agreed", 10, 1, 99)
        .context("the daemon never became operational")?;
    let _ = &mut running;
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
    flood_between(
        tools,
        &daemon.address,
        &daemon.address,
        client,
        service,
        bytes,
        messages,
        run,
    )
}
