//! `cargo xtask bench --suite failover`: how fast a client notices a failed daemon and is
//! back in its groups through another, on hosts made of network namespaces.
//!
//! Topology, created here and removed at the end: namespaces `sbf-d1`..`sbf-d3` (one daemon
//! each) and `sbf-cl` (the client), each with one veth into a bridge in `sbf-sw`, addresses
//! 10.77.0.1-3 and 10.77.0.10 on one broadcast segment. The client is `spreadctl watch`,
//! which uses spread-rs's `Failover` and prints wall-clock times; faults hit d1, the
//! daemon it starts on:
//!
//! 1. daemon killed (SIGKILL);
//! 2. host lost while the client is idle (d1's link goes down: nothing answers any more);
//! 3. the same while the client is sending;
//! 4. daemon hung (SIGSTOP);
//! 5. partition between client and daemon (blackhole routes both ways; d1 stays in the ring).
//!
//! Each is run with the library's default liveness settings and tuned ones. Where a C
//! Spread 3.17 is installed, the same faults hit a ring of C daemons with a libspread
//! client that fails over the only way 3.17 allows, by itself when `SP_receive` fails
//! (spread-sys's `failover_watch` example).

use super::harness::Tools;
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HOSTS: [(&str, &str); 4] = [
    ("d1", "10.77.0.1"),
    ("d2", "10.77.0.2"),
    ("d3", "10.77.0.3"),
    ("cl", "10.77.0.10"),
];
const SWITCH: &str = "sbf-sw";
const PORT: u16 = 4803;
/// C daemons cannot bind a port with connections in TIME_WAIT (no SO_REUSEADDR): every
/// C scenario gets a fresh ring on its own port, from here up in steps of 10.
const C_PORTS: u16 = 4903;

fn ns(host: &str) -> String {
    format!("sbf-{host}")
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("ip")
        .args(args)
        .status()
        .context("running ip")?;
    if !status.success() {
        bail!("ip {} failed", args.join(" "));
    }
    Ok(())
}

fn in_ns(host: &str, args: &[&str]) -> anyhow::Result<()> {
    let n = ns(host);
    let mut all = vec!["netns", "exec", n.as_str()];
    all.extend_from_slice(args);
    let status = Command::new("ip").args(&all).status()?;
    if !status.success() {
        bail!("in {n}: {} failed", args.join(" "));
    }
    Ok(())
}

/// The namespaces and their wiring; removed on drop.
struct Network;

impl Network {
    fn create() -> anyhow::Result<Network> {
        Network::remove();
        ip(&["netns", "add", SWITCH])?;
        let net = Network;
        in_ns("sw", &["ip", "link", "add", "br0", "type", "bridge"])?;
        in_ns("sw", &["ip", "link", "set", "br0", "up"])?;
        for (host, addr) in HOSTS {
            let n = ns(host);
            ip(&["netns", "add", &n])?;
            let outer = format!("sbf-{host}-o");
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", "eth0", "netns", &n,
            ])?;
            ip(&["link", "set", &outer, "netns", SWITCH])?;
            in_ns("sw", &["ip", "link", "set", &outer, "master", "br0"])?;
            in_ns("sw", &["ip", "link", "set", &outer, "up"])?;
            in_ns(host, &["ip", "link", "set", "lo", "up"])?;
            let cidr = format!("{addr}/24");
            in_ns(
                host,
                &[
                    "ip",
                    "addr",
                    "add",
                    &cidr,
                    "brd",
                    "10.77.0.255",
                    "dev",
                    "eth0",
                ],
            )?;
            in_ns(host, &["ip", "link", "set", "eth0", "up"])?;
        }
        Ok(net)
    }

    fn remove() {
        for (host, _) in HOSTS {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns(host)])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", SWITCH])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        Network::remove();
    }
}

struct Daemons {
    children: Vec<Option<Child>>,
    conf: std::path::PathBuf,
    dir: std::path::PathBuf,
    spread: std::path::PathBuf,
    /// C 3.17 daemons: run unprivileged (as root they chroot and switch user).
    c: bool,
    port: u16,
}

impl Daemons {
    fn start(
        spread: &std::path::Path,
        c: bool,
        dir: &std::path::Path,
        port: u16,
    ) -> anyhow::Result<Daemons> {
        let conf = dir.join("spread.conf");
        let mut text = format!("Spread_Segment 10.77.0.255:{port} {{\n");
        for (host, addr) in &HOSTS[..3] {
            text.push_str(&format!("    {host} {addr}\n"));
        }
        text.push_str("}\n");
        std::fs::write(&conf, text)?;
        let mut d = Daemons {
            children: vec![None, None, None],
            conf,
            dir: dir.to_owned(),
            spread: spread.to_owned(),
            c,
            port,
        };
        for i in 0..3 {
            d.start_one(i)?;
        }
        Ok(d)
    }

    fn start_one(&mut self, i: usize) -> anyhow::Result<()> {
        let (host, _) = HOSTS[i];
        let log = std::fs::File::create(self.dir.join(format!("{host}.log")))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns(host)]);
        if self.c {
            cmd.args([
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
            ]);
        }
        cmd.arg(&self.spread)
            .arg("-c")
            .arg(&self.conf)
            .args(["-n", host]);
        if !self.c {
            cmd.arg("--no-local-socket");
        }
        let child = cmd.stdout(log.try_clone()?).stderr(log).spawn()?;
        self.children[i] = Some(child);
        Ok(())
    }

    fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(Child::id)
    }

    fn stop_one(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for i in 0..3 {
            self.stop_one(i);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
enum Fault {
    Killed,
    HostLostIdle,
    HostLostSending,
    Hung,
    Partitioned,
}

impl Fault {
    const ALL: [Fault; 5] = [
        Fault::Killed,
        Fault::HostLostIdle,
        Fault::HostLostSending,
        Fault::Hung,
        Fault::Partitioned,
    ];

    fn label(self) -> &'static str {
        match self {
            Fault::Killed => "(1) daemon process killed",
            Fault::HostLostIdle => "(2) daemon host lost, client idle",
            Fault::HostLostSending => "(3) daemon host lost, client sending",
            Fault::Hung => "(4) daemon hung (SIGSTOP)",
            Fault::Partitioned => "(5) partition client / daemon",
        }
    }

    fn inject(self, daemons: &Daemons) -> anyhow::Result<()> {
        let pid = daemons.pid(0).context("d1 runs")?.to_string();
        match self {
            Fault::Killed => {
                Command::new("kill").args(["-KILL", &pid]).status()?;
            }
            Fault::HostLostIdle | Fault::HostLostSending => {
                in_ns("d1", &["ip", "link", "set", "eth0", "down"])?;
            }
            Fault::Hung => {
                Command::new("kill").args(["-STOP", &pid]).status()?;
            }
            Fault::Partitioned => {
                in_ns("cl", &["ip", "route", "add", "blackhole", "10.77.0.1/32"])?;
                in_ns("d1", &["ip", "route", "add", "blackhole", "10.77.0.10/32"])?;
            }
        }
        Ok(())
    }

    fn repair(self, daemons: &mut Daemons) -> anyhow::Result<()> {
        match self {
            Fault::HostLostIdle | Fault::HostLostSending => {
                in_ns("d1", &["ip", "link", "set", "eth0", "up"])?;
            }
            Fault::Partitioned => {
                in_ns("cl", &["ip", "route", "del", "blackhole", "10.77.0.1/32"])?;
                in_ns("d1", &["ip", "route", "del", "blackhole", "10.77.0.10/32"])?;
            }
            _ => {}
        }
        daemons.stop_one(0);
        daemons.start_one(0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
enum Tuning {
    /// spread-rs with its default liveness settings, our daemons.
    Defaults,
    /// spread-rs probing every 100 ms with a 400 ms deadline, our daemons.
    Tuned,
    /// libspread against C 3.17 daemons (no settings to tune).
    C,
}

impl Tuning {
    /// How long to wait for a failover before writing "not within".
    fn wait(self) -> Duration {
        match self {
            Tuning::C => Duration::from_secs(30),
            _ => Duration::from_secs(60),
        }
    }

    /// How long the ring needs to take a restarted daemon back.
    fn label(self) -> &'static str {
        match self {
            Tuning::Defaults => "spread-rs, defaults (probe 500 ms / 2 s)",
            Tuning::Tuned => "spread-rs, probe 100 ms / 400 ms",
            Tuning::C => "libspread 3.17 + C daemons",
        }
    }

    fn settle(self) -> Duration {
        match self {
            // Each C scenario has a ring of its own (see C_PORTS).
            Tuning::C => Duration::ZERO,
            _ => Duration::from_secs(2),
        }
    }
}

#[derive(Debug, serde::Serialize)]
struct Row {
    fault: Fault,
    tuning: Tuning,
    detect_ms: Option<u128>,
    rejoined_ms: Option<u128>,
    failover_ms: Option<u128>,
    /// How long the run waited for the failover.
    waited_s: u64,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Reads lines from the watcher until one starts with `word`, or the time is up.
fn line_starting(
    lines: &std::sync::mpsc::Receiver<String>,
    word: &str,
    within: Duration,
) -> Option<String> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        let line = lines.recv_timeout(left).ok()?;
        if line.starts_with(word) {
            return Some(line);
        }
    }
}

fn reader(stdout: ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn scenario(
    tools: &Tools,
    c_client: Option<&std::path::Path>,
    daemons: &mut Daemons,
    fault: Fault,
    tuning: Tuning,
) -> anyhow::Result<Row> {
    let daemon_list: Vec<String> = HOSTS[..3]
        .iter()
        .map(|(_, addr)| format!("{}@{addr}", daemons.port))
        .collect();
    let mut watch = Command::new("ip");
    watch.args(["netns", "exec", &ns("cl")]);
    match (tuning, c_client) {
        (Tuning::C, Some(client)) => {
            // The C client only receives: "sending" makes no difference to when it learns.
            watch.arg(client).arg(daemon_list.join(","));
        }
        _ => {
            watch.arg(&tools.spreadctl).args([
                "watch",
                "--daemons",
                &daemon_list.join(","),
                "--name",
                "watch",
            ]);
            if tuning == Tuning::Tuned {
                watch.args(["--probe-interval-ms", "100", "--probe-deadline-ms", "400"]);
            }
            if fault == Fault::HostLostSending {
                watch.args(["--send-every-ms", "10"]);
            }
        }
    }
    let mut child = watch.stdout(Stdio::piped()).spawn()?;
    let lines = reader(child.stdout.take().expect("piped"));
    let row = (|| {
        let Some(ready) = line_starting(&lines, "ready", Duration::from_secs(30)) else {
            bail!("the watcher did not join within 30 s");
        };
        // The faults hit d1: the client must be on it.
        if ready.split_whitespace().nth(2) != Some(daemon_list[0].as_str()) {
            bail!("the watcher started on another daemon than d1: {ready}");
        }
        std::thread::sleep(Duration::from_millis(500));
        let t0 = now_ms();
        fault.inject(daemons)?;
        let line = line_starting(&lines, "failover", tuning.wait());
        let parsed = line.as_deref().and_then(|l| {
            let mut f = l.split_whitespace().skip(1);
            let detected: u128 = f.next()?.parse().ok()?;
            let rejoined: u128 = f.next()?.parse().ok()?;
            Some((detected, rejoined))
        });
        Ok(Row {
            fault,
            tuning,
            detect_ms: parsed.map(|(d, _)| d.saturating_sub(t0)),
            rejoined_ms: parsed.map(|(_, r)| r.saturating_sub(t0)),
            failover_ms: parsed.map(|(d, r)| r.saturating_sub(d)),
            waited_s: 0,
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    fault.repair(daemons)?;
    // Let the ring take d1 back before the next scenario.
    std::thread::sleep(tuning.settle());
    let mut row = row?;
    row.waited_s = tuning.wait().as_secs();
    Ok(row)
}

fn report(row: Row) -> Row {
    println!(
        "  {:<40} {:<40} knows after {:>16}, re-joined after {:>16}",
        row.fault.label(),
        row.tuning.label(),
        cell(row.detect_ms, row.waited_s),
        cell(row.rejoined_ms, row.waited_s),
    );
    row
}

fn cell(v: Option<u128>, waited_s: u64) -> String {
    v.map_or(format!("not within {waited_s} s"), |ms| format!("{ms} ms"))
}

pub fn run(tools: &Tools, json: Option<&std::path::Path>) -> anyhow::Result<()> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root || Command::new("ip").arg("-V").output().is_err() {
        println!("SKIPPED: bench failover needs root and iproute2 to build network namespaces");
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("sbf-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _net = Network::create()?;
    println!("failover: 3 daemons and one client, each in its own network namespace; faults hit the client's daemon");
    let mut rows = Vec::new();
    {
        let mut daemons = Daemons::start(&tools.spread, false, &dir, PORT)?;
        std::thread::sleep(Duration::from_secs(2));
        for tuning in [Tuning::Defaults, Tuning::Tuned] {
            for fault in Fault::ALL {
                rows.push(report(scenario(tools, None, &mut daemons, fault, tuning)?));
            }
        }
    }
    match &tools.c {
        Some(c) => {
            println!("building the libspread client (spread-sys example failover_watch)...");
            let status = Command::new("cargo")
                .args([
                    "build",
                    "--release",
                    "--quiet",
                    "-p",
                    "spread-sys",
                    "--example",
                    "failover_watch",
                ])
                .status()?;
            if !status.success() {
                bail!("building spread-sys's failover_watch failed");
            }
            let client = std::env::current_dir()?.join("target/release/examples/failover_watch");
            for (k, fault) in Fault::ALL.into_iter().enumerate() {
                let c_dir = dir.join(format!("c{k}"));
                std::fs::create_dir_all(&c_dir)?;
                let mut daemons = Daemons::start(&c.daemon, true, &c_dir, C_PORTS + 10 * k as u16)?;
                // The C daemons run as nobody: let them read the configuration and logs.
                let _ = Command::new("chmod")
                    .args(["-R", "a+rwX"])
                    .arg(&dir)
                    .status();
                std::thread::sleep(Duration::from_secs(10));
                rows.push(report(scenario(
                    tools,
                    Some(&client),
                    &mut daemons,
                    fault,
                    Tuning::C,
                )?));
            }
        }
        None => println!("no C Spread installed: no libspread rows (set --c-prefix to compare)"),
    }
    println!();
    println!("| scenario | client and settings | client knows | re-joined via another daemon | failover after detection |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.fault.label(),
            r.tuning.label(),
            cell(r.detect_ms, r.waited_s),
            cell(r.rejoined_ms, r.waited_s),
            cell(r.failover_ms, r.waited_s)
        );
    }
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    println!("logs: {}", dir.display());
    Ok(())
}
