//! What every benchmark suite uses: the binaries under test, daemon and client kinds,
//! temporary directories, free ports, and one measured flood between two daemons.

use crate::cspread::CSpread;
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// The binaries a suite runs: ours, and C Spread's when installed.
pub(crate) struct Tools {
    pub(crate) spread: PathBuf,
    pub(crate) spreadctl: PathBuf,
    pub(crate) c: Option<CSpread>,
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

pub(crate) fn make_readable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o644));
        }
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
