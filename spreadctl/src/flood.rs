//! The flooder. Modes follow spflooder's:
//! * default: join the group, send N messages, keep at most `window` of our own in flight
//!   (we receive our own copies), so the measured rate is end to end;
//! * `--wo` (write only): send N messages without joining;
//! * `--ro` (read only): join and receive N messages; the clock starts at the first one.

use spread::{ConnectOptions, Event, Mailbox, Service, ServiceKind};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct FloodArgs {
    /// Daemon: `port`, `port@host`.
    #[arg(short = 's', long, default_value = "4803@127.0.0.1")]
    daemon: String,
    /// Private name.
    #[arg(short = 'u', long, default_value = "flooder")]
    user: String,
    /// Messages to send (or receive, with --ro).
    #[arg(short = 'm', long, default_value_t = 10_000)]
    messages: u64,
    /// Bytes per message.
    #[arg(short = 'b', long, default_value_t = 1000)]
    bytes: usize,
    /// Service: unreliable, reliable, fifo, causal, agreed, safe.
    #[arg(long, default_value = "reliable")]
    service: ServiceKind,
    /// The group.
    #[arg(short = 'g', long, default_value = "flooder")]
    group: String,
    /// Only receive.
    #[arg(long = "ro", conflicts_with = "write_only")]
    read_only: bool,
    /// Only send.
    #[arg(long = "wo")]
    write_only: bool,
    /// Own messages in flight before waiting for them (default mode).
    #[arg(long, default_value_t = 200)]
    window: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    mode: &'static str,
    service: String,
    messages: u64,
    bytes: usize,
    seconds: f64,
    msgs_per_sec: f64,
    mbytes_per_sec: f64,
}

pub fn run(args: FloodArgs) -> Result<(), Box<dyn std::error::Error>> {
    let options = ConnectOptions::new(&args.daemon)
        .name(&args.user)
        .membership(!args.write_only);
    let mut mbox = Mailbox::connect(&options)?;
    let payload = vec![b'f'; args.bytes];
    let service = Service::new(args.service);
    let (mode, seconds) = if args.read_only {
        ("read-only", read_only(&mut mbox, &args)?)
    } else if args.write_only {
        let start = Instant::now();
        for _ in 0..args.messages {
            mbox.multicast(service, &[&args.group], 0, &payload)?;
        }
        ("write-only", start.elapsed().as_secs_f64())
    } else {
        (
            "send-receive",
            send_and_receive(&mut mbox, &args, service, &payload)?,
        )
    };
    let _ = mbox.disconnect();
    let report = Report {
        mode,
        service: format!("{:?}", args.service).to_lowercase(),
        messages: args.messages,
        bytes: args.bytes,
        seconds,
        msgs_per_sec: args.messages as f64 / seconds.max(1e-9),
        mbytes_per_sec: (args.messages as f64 * args.bytes as f64) / 1e6 / seconds.max(1e-9),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "flood {}: {} messages of {} bytes ({}) in {:.3} s: {:.0} msgs/s, {:.1} MB/s",
            report.mode,
            report.messages,
            report.bytes,
            report.service,
            report.seconds,
            report.msgs_per_sec,
            report.mbytes_per_sec
        );
    }
    Ok(())
}

fn join_and_wait(mbox: &mut Mailbox, group: &str) -> Result<(), Box<dyn std::error::Error>> {
    mbox.join(group)?;
    loop {
        match mbox.receive_timeout(Duration::from_secs(30))? {
            Some(Event::Membership(m)) if m.group == group => {
                // Benchmarks wait for this line before they start the sender.
                eprintln!("joined {group}");
                return Ok(());
            }
            Some(_) => {}
            None => return Err(format!("no membership for {group} within 30 s").into()),
        }
    }
}

fn read_only(mbox: &mut Mailbox, args: &FloodArgs) -> Result<f64, Box<dyn std::error::Error>> {
    join_and_wait(mbox, &args.group)?;
    let mut start = None;
    let mut received = 0;
    while received < args.messages {
        if let Event::Message(_) = mbox.receive()? {
            start.get_or_insert_with(Instant::now);
            received += 1;
        }
    }
    Ok(start.map_or(0.0, |s| s.elapsed().as_secs_f64()))
}

fn send_and_receive(
    mbox: &mut Mailbox,
    args: &FloodArgs,
    service: Service,
    payload: &[u8],
) -> Result<f64, Box<dyn std::error::Error>> {
    join_and_wait(mbox, &args.group)?;
    let me = mbox.private_group();
    let start = Instant::now();
    let (mut sent, mut mine) = (0u64, 0u64);
    while mine < args.messages {
        if sent < args.messages && sent - mine < args.window {
            mbox.multicast(service, &[&args.group], 0, payload)?;
            sent += 1;
            continue;
        }
        if let Event::Message(m) = mbox.receive()? {
            if m.sender == me {
                mine += 1;
            }
        }
    }
    Ok(start.elapsed().as_secs_f64())
}
