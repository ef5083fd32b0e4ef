//! Three-daemon ring benchmarks: how fast a crashed daemon leaves the membership seen by
//! clients, how fast a ring forms and a restarted daemon merges back, and throughput from a
//! sender on n1 to a receiver on n2 — ours and, when installed, C 3.17.3's in the same run.
//!
//! Layouts: `segments` (each daemon alone in its own segment on 127.0.0.1/.2/.3, as the
//! captured C ring) and `one-segment` (all three in one broadcast segment; an unmodified C
//! 3.17 daemon cannot share a broadcast port with another on one host, so C runs only the
//! first).

use super::harness::{flood_between, ClientKind, Implementation, Tools};
use anyhow::{anyhow, bail, Context};
use spread::{ConnectOptions, Event, Mailbox, MembershipChange};
use spread_testkit::{Layout, Logs, Ring};
use std::time::{Duration, Instant};

/// Three daemons of `implementation` laid out as `layout`, their logs discarded (restarts'
/// too): the same config, and the same quiet daemons, for ours and C's.
fn start_ring(
    tools: &Tools,
    implementation: Implementation,
    layout: Layout,
) -> anyhow::Result<Ring> {
    let kinds = vec![tools.daemon_kind(implementation)?; 3];
    Ring::try_start_with_logs(kinds, layout, "", Logs::Discarded)
        .map_err(|e| anyhow!("starting a {implementation:?} ring: {e}"))
}

/// The layout as the reports have always named it.
fn layout_label(layout: Layout) -> &'static str {
    match layout {
        Layout::SegmentPerDaemon => "Segments",
        Layout::OneSegment => "OneSegment",
    }
}

fn client(ring: &Ring, n: u8, name: &str) -> anyhow::Result<Mailbox> {
    Ok(Mailbox::connect(
        &ConnectOptions::new(ring.address(n)).name(name),
    )?)
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
fn cycle(tools: &Tools, implementation: Implementation) -> anyhow::Result<Times> {
    let started = Instant::now();
    let mut ring = start_ring(tools, implementation, Layout::SegmentPerDaemon)?;
    let patience = Duration::from_secs(60);
    let mut a = client(&ring, 1, "a")?;
    let mut c = client(&ring, 3, "c")?;
    a.join("bench")?;
    c.join("bench")?;
    let formed = until_view(&mut a, "bench", 2, patience)?;
    let formation = formed - started;
    ring.kill(3);
    let killed = Instant::now();
    drop(c);
    let crash = until_view(&mut a, "bench", 1, patience)? - killed;
    let restarted = Instant::now();
    ring.try_start_daemon(3)
        .map_err(|e| anyhow!("restarting n3: {e}"))?;
    let mut c = client(&ring, 3, "c2")?;
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
    let mut kinds = vec![(Implementation::Rust, ours_cycles)];
    if tools.c.is_some() {
        kinds.push((Implementation::C, if quick { 1 } else { 3 }));
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
    for layout in [Layout::SegmentPerDaemon, Layout::OneSegment] {
        let mut kinds = vec![Implementation::Rust];
        if tools.c.is_some() && layout == Layout::SegmentPerDaemon {
            kinds.push(Implementation::C);
        }
        for kind in kinds {
            let ring = start_ring(tools, kind, layout)?;
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
                    if kind == Implementation::C && service == "reliable" {
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
                        println!(
                            "  {} {kind:?} {client:?} {service} {bytes} B: {median:.0} msgs/s",
                            layout_label(layout)
                        );
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
    for layout in [Layout::SegmentPerDaemon, Layout::OneSegment] {
        for service in ["reliable", "agreed"] {
            for bytes in [100usize, 1000, 10_000] {
                let ours = find(
                    layout,
                    Implementation::Rust,
                    ClientKind::Spreadctl,
                    service,
                    bytes,
                );
                let c = find(
                    layout,
                    Implementation::C,
                    ClientKind::Spreadctl,
                    service,
                    bytes,
                );
                let cf = find(
                    layout,
                    Implementation::C,
                    ClientKind::Spflooder,
                    service,
                    bytes,
                );
                let fmt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
                let ratio = match (ours, c) {
                    (Some(a), Some(b)) => format!("{:.1}x", a / b),
                    _ => "-".into(),
                };
                println!(
                    "| {} | {service} | {bytes} B | {} | {} | {ratio} | {} |",
                    layout_label(layout),
                    fmt(ours),
                    fmt(c),
                    fmt(cf)
                );
            }
        }
    }
    Ok(())
}
