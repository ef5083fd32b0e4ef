//! `spreadctl watch`: a client that stays in a group through failures, reporting each
//! failover with wall-clock times — the client side of `cargo xtask bench --suite failover`.
//!
//! Prints, one line each, times in Unix milliseconds:
//! * `ready <t> <daemon>` once joined and in a view with itself;
//! * `failover <detected> <rejoined> <lost> <now> <cause>` after each failover, `rejoined`
//!   being the first view of the group that holds the new private group.

use spread::{
    ConnectOptions, Event, Failover, FailoverOptions, Liveness, MembershipChange, Service,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(clap::Args)]
pub struct WatchArgs {
    /// Daemons in the order to try them, comma separated (`4803@10.0.0.1,4803@10.0.0.2`).
    #[arg(long, value_delimiter = ',', required = true)]
    daemons: Vec<String>,
    /// Private name.
    #[arg(long, default_value = "watch")]
    name: String,
    /// The group to stay in.
    #[arg(long, default_value = "watched")]
    group: String,
    /// Liveness probe interval, in ms (0: the library's default probe).
    #[arg(long, default_value_t = 0)]
    probe_interval_ms: u64,
    /// Liveness deadline, in ms (with --probe-interval-ms).
    #[arg(long, default_value_t = 0)]
    probe_deadline_ms: u64,
    /// Multicast a small AGREED message this often, in ms (0: stay idle).
    #[arg(long, default_value_t = 0)]
    send_every_ms: u64,
    /// Exit after this many failovers.
    #[arg(long, default_value_t = 1)]
    failovers: usize,
}

fn unix_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

pub fn run(args: WatchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut connect = ConnectOptions::new("").name(&args.name).membership(true);
    if args.probe_interval_ms > 0 {
        connect = connect.liveness(Some(Liveness {
            interval: Duration::from_millis(args.probe_interval_ms),
            deadline: Duration::from_millis(args.probe_deadline_ms.max(args.probe_interval_ms)),
        }));
    }
    let options = FailoverOptions::new(args.daemons.clone(), connect)
        .connect_timeout(Duration::from_millis(500))
        .give_up_after(None);
    let mut session = Failover::connect(&options)?;
    session.join(&args.group)?;
    let mut ready = false;
    let mut awaiting: Option<(SystemTime, String)> = None;
    let mut done = 0;
    let mut next_send = std::time::Instant::now();
    let slice = Duration::from_millis(if args.send_every_ms > 0 {
        args.send_every_ms
    } else {
        100
    });
    loop {
        if args.send_every_ms > 0 && std::time::Instant::now() >= next_send {
            next_send += Duration::from_millis(args.send_every_ms);
            // A failed multicast is the session ending: receive reports what follows.
            let _ = session.multicast(Service::AGREED, &[&args.group], 0, b"tick");
        }
        let event = match session.receive_timeout(slice) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("watch: {e}");
                continue;
            }
        };
        match event {
            Event::Failover(info) => {
                let detected = info.detected_at;
                let line = format!(
                    "{} {} {}",
                    info.lost,
                    info.now,
                    info.cause.replace(' ', "_")
                );
                awaiting = Some((detected, line));
            }
            Event::Membership(m) if m.group == args.group => {
                let MembershipChange::Regular { members, .. } = &m.change else {
                    continue;
                };
                let me = session.private_group().unwrap_or_default();
                if !members.contains(&me) {
                    continue;
                }
                let now = SystemTime::now();
                if !ready {
                    ready = true;
                    let daemon = session.address().map(|a| a.to_string()).unwrap_or_default();
                    println!("ready {} {daemon}", unix_ms(now));
                } else if let Some((detected, line)) = awaiting.take() {
                    println!("failover {} {} {line}", unix_ms(detected), unix_ms(now));
                    done += 1;
                    if done >= args.failovers {
                        return Ok(());
                    }
                }
            }
            _ => {}
        }
    }
}
