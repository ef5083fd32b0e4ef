//! What every benchmark suite uses: the binaries under test, daemon and client kinds, and one
//! measured flood between two daemons. Daemons themselves start through spread-testkit.

use anyhow::{bail, Context};
use spread_testkit::{CSpread, DaemonKind};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whose daemon a measurement runs on.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub(crate) enum Implementation {
    Rust,
    C,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub(crate) enum ClientKind {
    Spreadctl,
    Spflooder,
}

/// The binaries a suite runs: ours, and C Spread's when installed.
pub(crate) struct Tools {
    pub(crate) spread: PathBuf,
    pub(crate) spreadctl: PathBuf,
    pub(crate) c: Option<CSpread>,
}

impl Tools {
    /// How the test kit starts `implementation`'s daemon.
    pub(crate) fn daemon_kind(&self, implementation: Implementation) -> anyhow::Result<DaemonKind> {
        Ok(match implementation {
            Implementation::Rust => DaemonKind::rust(&self.spread),
            Implementation::C => DaemonKind::C(self.c.clone().context("C Spread not found")?),
        })
    }
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
