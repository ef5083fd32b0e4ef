//! Three-daemon ring benchmarks: how fast a crashed daemon leaves the membership seen by
//! clients, how fast a ring forms and a restarted daemon merges back, and throughput from a
//! sender on n1 to a receiver on n2 — ours and, when installed, C 3.17.3's in the same run.
//!
//! Layouts: `segments` (each daemon alone in its own segment on 127.0.0.1/.2/.3, as the
//! captured C ring) and `one-segment` (all three in one broadcast segment; an unmodified C
//! 3.17 daemon cannot share a broadcast port with another on one host, so C runs only the
//! first).

use super::harness::{
    flood_between, free_port, make_readable, ClientKind, DaemonKind, TempDir, Tools,
};
use crate::cspread;
use anyhow::{bail, Context};
use spread::{ConnectOptions, Event, Mailbox, MembershipChange};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    Segments,
    OneSegment,
}

struct Ring {
    kind: DaemonKind,
    port: u16,
    dir: TempDir,
    children: Vec<Option<Child>>,
}

impl Drop for Ring {
    fn drop(&mut self) {
        for n in 1..=3 {
            self.kill(n);
        }
    }
}

fn conf(layout: Layout, port: u16) -> String {
    let daemon = |n: u8| format!("    n{n} 127.0.0.{n} {{ D 127.0.0.{n} C 127.0.0.{n} }}\n");
    match layout {
        Layout::Segments => (1..=3)
            .map(|n| format!("Spread_Segment 127.0.0.255:{port} {{\n{}}}\n", daemon(n)))
            .collect(),
        Layout::OneSegment => format!(
            "Spread_Segment 127.255.255.255:{port} {{\n{}{}{}}}\n",
            daemon(1),
            daemon(2),
            daemon(3)
        ),
    }
}

impl Ring {
    fn start(tools: &Tools, kind: DaemonKind, layout: Layout) -> anyhow::Result<Ring> {
        let port = free_port();
        let dir = TempDir(
            std::env::temp_dir().join(format!("spread-bench-ring-{}-{port}", std::process::id())),
        );
        std::fs::create_dir_all(&dir.0)?;
        std::fs::write(dir.0.join("spread.conf"), conf(layout, port))?;
        make_readable(&dir.0);
        let mut ring = Ring {
            kind,
            port,
            dir,
            children: vec![None, None, None],
        };
        for n in 1..=3 {
            ring.start_daemon(tools, n)?;
        }
        Ok(ring)
    }

    fn start_daemon(&mut self, tools: &Tools, n: u8) -> anyhow::Result<()> {
        let mut cmd = match self.kind {
            DaemonKind::Rust => {
                let mut c = std::process::Command::new(&tools.spread);
                c.arg("--local-socket")
                    .arg(self.dir.0.join(format!("sock{n}")));
                c
            }
            DaemonKind::C => cspread::unprivileged(&tools.c.as_ref().context("C Spread")?.daemon),
        };
        let child = cmd
            .args(["-n", &format!("n{n}"), "-c"])
            .arg(self.dir.0.join("spread.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.children[n as usize - 1] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((format!("127.0.0.{n}").as_str(), self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("daemon n{n} did not start");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn kill(&mut self, n: u8) {
        if let Some(mut c) = self.children[n as usize - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn address(&self, n: u8) -> String {
        format!("{}@127.0.0.{n}", self.port)
    }

    fn client(&self, n: u8, name: &str) -> anyhow::Result<Mailbox> {
        Ok(Mailbox::connect(
            &ConnectOptions::new(self.address(n)).name(name),
        )?)
    }
}

/// Waits for a regular view of `group` with `members` members; returns when it came.
fn until_view(
    m: &mut Mailbox,
    group: &str,
    members: usize,
    within: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(Event::Membership(ms)) = m.receive_timeout(Duration::from_millis(50))? {
            if let MembershipChange::Regular { members: list, .. } = &ms.change {
                if ms.group == group && list.len() == members {
                    return Ok(Instant::now());
                }
            }
        }
    }
    bail!("no view of {group} with {members} members within {within:?}")
}

struct Times {
    formation: Duration,
    crash: Duration,
    merge: Duration,
}

/// One cycle: start, form (clients on n1 and n3 see each other), kill -9 n3, restart it.
fn cycle(tools: &Tools, kind: DaemonKind) -> anyhow::Result<Times> {
    let started = Instant::now();
    let mut ring = Ring::start(tools, kind, Layout::Segments)?;
    let patience = Duration::from_secs(60);
    let mut a = ring.client(1, "a")?;
    let mut c = ring.client(3, "c")?;
    a.join("bench")?;
    c.join("bench")?;
    let formed = until_view(&mut a, "bench", 2, patience)?;
    let formation = formed - started;
    ring.kill(3);
    let killed = Instant::now();
    drop(c);
    let crash = until_view(&mut a, "bench", 1, patience)? - killed;
    let restarted = Instant::now();
    ring.start_daemon(tools, 3)?;
    let mut c = ring.client(3, "c2")?;
    c.join("bench")?;
    let merge = until_view(&mut a, "bench", 2, patience)? - restarted;
    Ok(Times {
        formation,
        crash,
        merge,
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn run(tools: &Tools, runs: usize, quick: bool) -> anyhow::Result<()> {
    println!();
    println!(
        "== ring: membership times (3 daemons, one per segment on 127.0.0.1-3; default timeouts)"
    );
    let ours_cycles = if quick { 3 } else { 10 };
    let mut kinds = vec![(DaemonKind::Rust, ours_cycles)];
    if tools.c.is_some() {
        kinds.push((DaemonKind::C, if quick { 1 } else { 3 }));
    }
    let mut rows = Vec::new();
    for (kind, cycles) in kinds {
        let mut times = Vec::new();
        for i in 0..cycles {
            let t = cycle(tools, kind).with_context(|| format!("{kind:?} ring, cycle {i}"))?;
            println!(
                "  {kind:?} cycle {i}: formation {:.0} ms, crash to new view {:.0} ms, merge {:.0} ms",
                t.formation.as_secs_f64() * 1e3,
                t.crash.as_secs_f64() * 1e3,
                t.merge.as_secs_f64() * 1e3
            );
            times.push(t);
        }
        rows.push((
            kind,
            cycles,
            median(times.iter().map(|t| t.formation).collect()),
            median(times.iter().map(|t| t.crash).collect()),
            median(times.iter().map(|t| t.merge).collect()),
        ));
    }
    println!();
    println!("| daemons | cycles | formation (median) | kill -9 to new view at a client (median) | restart to merged view (median) |");
    println!("|---|---|---|---|---|");
    for (kind, cycles, f, c, m) in &rows {
        println!(
            "| {kind:?} | {cycles} | {:.0} ms | {:.0} ms | {:.0} ms |",
            f.as_secs_f64() * 1e3,
            c.as_secs_f64() * 1e3,
            m.as_secs_f64() * 1e3
        );
    }

    println!();
    println!("== ring: throughput, sender on n1, receiver on n2 (msgs/s, median of {runs})");
    let mut table = Vec::new();
    for layout in [Layout::Segments, Layout::OneSegment] {
        let mut kinds = vec![DaemonKind::Rust];
        if tools.c.is_some() && layout == Layout::Segments {
            kinds.push(DaemonKind::C);
        }
        for kind in kinds {
            let ring = Ring::start(tools, kind, layout)?;
            // Operational once a message gets through.
            flood_between(
                tools,
                &ring.address(1),
                &ring.address(2),
                ClientKind::Spreadctl,
                "agreed",
                10,
                1,
                99,
            )
            .context("the ring never became operational")?;
            for service in ["reliable", "agreed"] {
                for bytes in [100usize, 1000, 10_000] {
                    let messages = if quick {
                        2000
                    } else if bytes >= 10_000 {
                        10_000
                    } else {
                        50_000
                    };
                    let mut clients = vec![ClientKind::Spreadctl];
                    if kind == DaemonKind::C && service == "reliable" {
                        clients.push(ClientKind::Spflooder);
                    }
                    for client in clients {
                        let mut rates = Vec::new();
                        for run in 0..runs {
                            rates.push(flood_between(
                                tools,
                                &ring.address(1),
                                &ring.address(2),
                                client,
                                service,
                                bytes,
                                messages,
                                run,
                            )?);
                        }
                        rates.sort_by(f64::total_cmp);
                        let median = rates[rates.len() / 2];
                        println!("  {layout:?} {kind:?} {client:?} {service} {bytes} B: {median:.0} msgs/s");
                        table.push((layout, kind, client, service, bytes, median));
                    }
                }
            }
        }
    }
    let find = |layout, kind, client, service: &str, bytes| {
        table
            .iter()
            .find(|(l, k, c, s, b, _)| {
                *l == layout && *k == kind && *c == client && *s == service && *b == bytes
            })
            .map(|t| t.5)
    };
    println!();
    println!(
        "| layout | service | size | ours (spreadctl) | C (spreadctl) | ratio | C (spflooder) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for layout in [Layout::Segments, Layout::OneSegment] {
        for service in ["reliable", "agreed"] {
            for bytes in [100usize, 1000, 10_000] {
                let ours = find(
                    layout,
                    DaemonKind::Rust,
                    ClientKind::Spreadctl,
                    service,
                    bytes,
                );
                let c = find(layout, DaemonKind::C, ClientKind::Spreadctl, service, bytes);
                let cf = find(layout, DaemonKind::C, ClientKind::Spflooder, service, bytes);
                let fmt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
                let ratio = match (ours, c) {
                    (Some(a), Some(b)) => format!("{:.1}x", a / b),
                    _ => "-".into(),
                };
                println!(
                    "| {layout:?} | {service} | {bytes} B | {} | {} | {ratio} | {} |",
                    fmt(ours),
                    fmt(c),
                    fmt(cf)
                );
            }
        }
    }
    Ok(())
}
