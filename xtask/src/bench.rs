//! `cargo xtask bench`: throughput through one daemon, ours and (when installed) C's, in
//! the same run, median of several runs, with the ratio.
//!
//! Method, the same for every cell: a read-only receiver joins the group; once it has its
//! membership a write-only sender sends N messages of S bytes; the time runs from the
//! sender's start until the receiver has received all N. Clients are `spreadctl flood`
//! (any service) and, where C Spread is installed, C's `spflooder` (RELIABLE only), so the
//! comparison can be made with the same client on both daemons.

use crate::cspread::{self, CSpread};
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xshell::{cmd, Shell};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Where C Spread is installed (else SPREAD_C_PREFIX, PATH, /usr/local).
    #[arg(long)]
    c_prefix: Option<PathBuf>,
    /// Runs per cell; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Fewer messages per run (a smoke test of the bench itself).
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Which benchmarks: `daemon` (one daemon), `ring` (three daemons), `all` (both), or
    /// `failover` (client failover in network namespaces; needs root).
    #[arg(long, default_value = "all")]
    suite: String,
    /// The suite, written without `--suite` (`cargo xtask bench failover`).
    #[arg(value_name = "SUITE")]
    which: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub(crate) enum DaemonKind {
    Rust,
    C,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub(crate) enum ClientKind {
    Spreadctl,
    Spflooder,
}

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

pub(crate) struct Tools {
    pub(crate) spread: PathBuf,
    pub(crate) spreadctl: PathBuf,
    pub(crate) c: Option<CSpread>,
}

pub fn run(sh: &Shell, args: BenchArgs) -> anyhow::Result<()> {
    println!("building release binaries...");
    cmd!(
        sh,
        "cargo build --release --quiet -p spread-daemon -p spreadctl"
    )
    .run()?;
    let target = crate::project_root().join("target/release");
    let tools = Tools {
        spread: target.join("spread"),
        spreadctl: target.join("spreadctl"),
        c: cspread::find(args.c_prefix.as_deref()),
    };
    match &tools.c {
        Some(c) => println!("C Spread found: {}", c.daemon.display()),
        None => {
            println!("no C Spread installed: measuring our daemon only (set --c-prefix to compare)")
        }
    }
    let suite = args.which.clone().unwrap_or_else(|| args.suite.clone());
    let (one_daemon, ring) = match suite.as_str() {
        "daemon" => (true, false),
        "ring" => (false, true),
        "all" => (true, true),
        "failover" => return crate::bench_failover::run(&tools, args.json.as_deref()),
        other => bail!("unknown suite {other}: use daemon, ring, all or failover"),
    };
    if one_daemon {
        one_daemon_suite(&tools, &args)?;
    }
    if ring {
        crate::bench_ring::run(&tools, args.runs, args.quick)?;
    }
    Ok(())
}

/// One daemon, sender and receiver both on it: the daemon's own forwarding cost.
fn one_daemon_suite(tools: &Tools, args: &BenchArgs) -> anyhow::Result<()> {
    println!();
    println!(
        "== one daemon: throughput (msgs/s, median of {})",
        args.runs
    );
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
            let messages = message_count(bytes, args.quick);
            for service in ["reliable", "agreed"] {
                let mut clients = vec![ClientKind::Spreadctl];
                if tools.c.is_some() && service == "reliable" {
                    clients.push(ClientKind::Spflooder);
                }
                for client in clients {
                    let mut rates: Vec<f64> = (0..args.runs)
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
    if let Some(path) = &args.json {
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

pub(crate) struct TempDir(pub(crate) PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port free for TCP and UDP (port, port+1), never the same twice in one run: a C daemon
/// sets no SO_REUSEADDR, so it cannot bind a port a previous daemon left in TIME_WAIT.
pub(crate) fn free_port() -> u16 {
    static USED: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let start = (std::process::id() % 2000) as u16 * 2
        + USED.fetch_add(10, std::sync::atomic::Ordering::Relaxed);
    (0..4000u16)
        .map(|i| 21_000 + (start + i * 2) % 10_000)
        .find(|&p| {
            TcpListener::bind((Ipv4Addr::UNSPECIFIED, p)).is_ok()
                && UdpSocket::bind((Ipv4Addr::UNSPECIFIED, p)).is_ok()
                && UdpSocket::bind((Ipv4Addr::UNSPECIFIED, p + 1)).is_ok()
                && !Path::new(&format!("/tmp/{p}")).exists()
        })
        .expect("a free port")
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

pub(crate) fn make_readable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o644));
        }
    }
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

/// One measured flood from a sender on `from` to a receiver on `to`; returns messages per
/// second.
#[allow(clippy::too_many_arguments)]
pub(crate) fn flood_between(
    tools: &Tools,
    from: &str,
    to: &str,
    client: ClientKind,
    service: &str,
    bytes: usize,
    messages: u64,
    run: usize,
) -> anyhow::Result<f64> {
    let group = format!("bench{run}");
    // Fresh private names every flood: a daemon keeps a departed session's name until its
    // departure is ordered (through the ring, when there is one), so reusing "rd" at once can
    // be refused as not unique.
    static FLOODS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = FLOODS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (rd, wr) = (format!("rd{n}"), format!("wr{n}"));
    let (m, b) = (messages.to_string(), bytes.to_string());
    let (mut reader, mut writer) = match client {
        ClientKind::Spreadctl => {
            let base = |addr: &str, user: &str, mode: &str| {
                let mut c = Command::new(&tools.spreadctl);
                c.args([
                    "flood",
                    "-s",
                    addr,
                    "-u",
                    user,
                    mode,
                    "-m",
                    &m,
                    "-b",
                    &b,
                    "--service",
                    service,
                    "-g",
                    &group,
                ]);
                c
            };
            (base(to, &rd, "--ro"), base(from, &wr, "--wo"))
        }
        ClientKind::Spflooder => {
            let fl = &tools.c.as_ref().expect("C found").spflooder;
            let base = |addr: &str, user: &str, mode: &str| {
                let mut c = Command::new(fl);
                c.args(["-u", user, mode, "-m", &m, "-b", &b, "-s", addr]);
                c
            };
            (base(to, &rd, "-ro"), base(from, &wr, "-wo"))
        }
    };
    let mut reader = reader
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // spreadctl says when it has its membership; spflooder does not, so give it a moment.
    match client {
        ClientKind::Spreadctl => wait_for_line(&mut reader, "joined")?,
        ClientKind::Spflooder => std::thread::sleep(Duration::from_millis(500)),
    }
    let start = Instant::now();
    let status = writer
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("the sender failed ({status})");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = reader.try_wait()? {
            if !status.success() {
                bail!("the receiver failed ({status})");
            }
            break;
        }
        if Instant::now() > deadline {
            let _ = reader.kill();
            bail!("the receiver did not get all {messages} messages");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(messages as f64 / start.elapsed().as_secs_f64())
}

pub(crate) fn wait_for_line(child: &mut Child, word: &str) -> anyhow::Result<()> {
    let stderr = child.stderr.take().context("receiver stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        if line?.contains(word) {
            // Keep draining so the receiver never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Ok(());
        }
    }
    bail!("the receiver exited before it joined")
}
