//! Starting real daemons for integration tests: ours always, C 3.17's when installed.
//!
//! Every daemon gets its own port (below 32768, which 3.17's library requires), its own
//! config file and local socket in a private directory, so tests run in parallel and beside
//! any daemon someone left running.
#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// A port whose TCP and UDP (port, port+1) are free on `ip` right now.
pub fn free_port(ip: Ipv4Addr) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 600) as u16 * 20;
    loop {
        let offset = NEXT.fetch_add(2, Ordering::Relaxed) % 12_000;
        let port = 20_000 + (base - 20_000 + offset) % 12_000;
        let free = TcpListener::bind((ip, port)).is_ok()
            && TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
            && UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
            && UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port + 1)).is_ok()
            && !Path::new(&format!("/tmp/{port}")).exists();
        if free {
            return port;
        }
    }
}

/// A private scratch directory, removed on drop — kept when the test panicked or
/// `SPREAD_TEST_KEEP` is set, so the daemons' logs can be read.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU16 = AtomicU16::new(0);
        let dir = std::env::temp_dir().join(format!(
            "spread-rs-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("SPREAD_TEST_KEEP").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running daemon process, killed on drop.
pub struct RunningDaemon {
    pub child: Child,
    pub port: u16,
    pub ip: Ipv4Addr,
    pub name: String,
    pub local_socket: PathBuf,
    pub log: PathBuf,
    pub dir: TempDir,
}

impl RunningDaemon {
    /// `port@ip`, for clients.
    pub fn address(&self) -> String {
        format!("{}@{}", self.port, self.ip)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.local_socket);
    }
}

pub fn wait_for_port(ip: Ipv4Addr, port: u16, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect((ip, port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "daemon exited ({status}) before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("daemon did not listen on {ip}:{port} within 10 s");
}

/// A one-daemon spread.conf.
pub fn one_daemon_conf(name: &str, ip: Ipv4Addr, port: u16) -> String {
    format!("Spread_Segment 127.0.0.255:{port} {{\n    {name} {ip}\n}}\n")
}

/// Starts our daemon with `conf_extra` appended to a one-daemon config.
pub fn start_rust_daemon(conf_extra: &str) -> RunningDaemon {
    start_rust_daemon_with_args(conf_extra, &[])
}

/// [`start_rust_daemon`], with more command-line arguments.
pub fn start_rust_daemon_with_args(conf_extra: &str, args: &[&str]) -> RunningDaemon {
    let ip = Ipv4Addr::LOCALHOST;
    let port = free_port(ip);
    let dir = TempDir::new("rust");
    let conf = dir.0.join("spread.conf");
    std::fs::write(
        &conf,
        format!("{}{conf_extra}", one_daemon_conf("n1", ip, port)),
    )
    .unwrap();
    let local_socket = dir.0.join("sock");
    let log = dir.0.join("daemon.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_spread"))
        .arg("-c")
        .arg(&conf)
        .args(["-n", "n1", "--local-socket"])
        .arg(&local_socket)
        .args(args)
        .env("SPREAD_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start the spread binary");
    wait_for_port(ip, port, &mut child, &log);
    RunningDaemon {
        child,
        port,
        ip,
        name: "n1".into(),
        local_socket,
        log,
        dir,
    }
}

/// Daemons (three unless asked otherwise), each alone in its own segment on 127.0.0.1, .2,
/// .3, … (the layout of the captured C ring), sharing one port.
pub struct Ring3 {
    pub port: u16,
    pub dir: TempDir,
    pub daemons: Vec<Option<RunningDaemon>>,
    /// Which daemons are C 3.17 (from this prefix) rather than ours.
    pub c_members: Vec<Option<PathBuf>>,
    /// Whether ours run with `--with-c-daemons`: set when the ring starts with a C daemon
    /// and kept, as every daemon of a ring must use the same timeouts.
    pub with_c_daemons: bool,
    /// A command line (program, then its leading arguments) that runs our daemon `n` instead
    /// of the native binary, e.g. an emulator and a cross-built `spread`; our usual
    /// arguments follow it.
    pub commands: Vec<Option<Vec<String>>>,
}

impl Ring3 {
    pub fn conf_text(port: u16, count: u8) -> String {
        (1..=count)
            .map(|n| {
                format!("Spread_Segment 127.0.0.255:{port} {{\n    n{n} 127.0.0.{n} {{ D 127.0.0.{n} C 127.0.0.{n} }}\n}}\n")
            })
            .collect()
    }

    pub fn start(extra: &str) -> Ring3 {
        Ring3::start_mixed(extra, [None, None, None])
    }

    /// A ring where daemon `n` is C 3.17 when `c_members[n - 1]` names its prefix. Ours
    /// then run with `--with-c-daemons`.
    pub fn start_mixed(extra: &str, c_members: [Option<PathBuf>; 3]) -> Ring3 {
        Ring3::start_with(extra, c_members.to_vec(), vec![None; 3])
    }

    /// A ring of our daemons where daemon `n` runs as `commands[n - 1]` when that is set
    /// (see [`Ring3::commands`]).
    pub fn start_with_commands(extra: &str, commands: [Option<Vec<String>>; 3]) -> Ring3 {
        Ring3::start_with(extra, vec![None; 3], commands.to_vec())
    }

    /// A ring where daemon `n` is C 3.17 when `c_members[n - 1]` names a prefix, and else
    /// ours, run as `commands[n - 1]` when that is set.
    pub fn start_mixed_with_commands(
        extra: &str,
        c_members: Vec<Option<PathBuf>>,
        commands: Vec<Option<Vec<String>>>,
    ) -> Ring3 {
        Ring3::start_with(extra, c_members, commands)
    }

    /// A ring of `c_members.len()` daemons, C 3.17 where an entry names a prefix.
    pub fn start_n(extra: &str, c_members: Vec<Option<PathBuf>>) -> Ring3 {
        let count = c_members.len();
        Ring3::start_with(extra, c_members, vec![None; count])
    }

    fn start_with(
        extra: &str,
        c_members: Vec<Option<PathBuf>>,
        commands: Vec<Option<Vec<String>>>,
    ) -> Ring3 {
        let count = c_members.len() as u8;
        let port = (1..=3)
            .map(|_| free_port(Ipv4Addr::LOCALHOST))
            .find(|p| {
                (1..=count).all(|n| TcpListener::bind((Ipv4Addr::new(127, 0, 0, n), *p)).is_ok())
            })
            .expect("a port free on every daemon's address");
        let dir = TempDir::new("ring3");
        std::fs::write(
            dir.0.join("spread.conf"),
            format!("{}{extra}", Ring3::conf_text(port, count)),
        )
        .unwrap();
        make_world_readable(&dir.0);
        let mut ring = Ring3 {
            port,
            dir,
            daemons: (0..count).map(|_| None).collect(),
            with_c_daemons: c_members.iter().any(Option::is_some),
            c_members,
            commands,
        };
        for n in 1..=count {
            ring.start_daemon(n);
        }
        ring
    }

    /// Starts (or restarts) daemon `n` (from 1).
    pub fn start_daemon(&mut self, n: u8) {
        let ip = Ipv4Addr::new(127, 0, 0, n);
        let mut local_socket = self.dir.0.join(format!("sock{n}"));
        let log = self.dir.0.join(format!("n{n}.log"));
        let log_file = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap()
        };
        let with_c = self.with_c_daemons;
        let mut child = match &self.c_members[n as usize - 1] {
            Some(prefix) => {
                // 3.17 puts its local socket at /tmp/<port>, deleting whatever is there:
                // C daemons sharing the port take it from each other, which costs nothing
                // here (the tests' clients use TCP).
                local_socket = PathBuf::from(format!("/tmp/{}", self.port));
                let spread = prefix.join("sbin/spread");
                let mut cmd = if is_root() {
                    let mut c = Command::new("setpriv");
                    c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                        .arg(&spread);
                    c
                } else {
                    Command::new(&spread)
                };
                cmd.args(["-n", &format!("n{n}"), "-c"])
                    .arg(self.dir.0.join("spread.conf"))
                    .stdout(log_file())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start the C spread daemon")
            }
            None => {
                let mut cmd = match &self.commands[n as usize - 1] {
                    Some(argv) => {
                        let mut c = Command::new(&argv[0]);
                        c.args(&argv[1..]);
                        c
                    }
                    None => Command::new(env!("CARGO_BIN_EXE_spread")),
                };
                cmd.arg("-c")
                    .arg(self.dir.0.join("spread.conf"))
                    .args(["-n", &format!("n{n}"), "--local-socket"])
                    .arg(&local_socket);
                if with_c {
                    cmd.arg("--with-c-daemons");
                }
                cmd.env("SPREAD_LOG", "debug")
                    .stdout(Stdio::null())
                    .stderr(log_file())
                    .spawn()
                    .expect("start the spread binary")
            }
        };
        wait_for_port(ip, self.port, &mut child, &log);
        self.daemons[n as usize - 1] = Some(RunningDaemon {
            child,
            port: self.port,
            ip,
            name: format!("n{n}"),
            local_socket,
            log,
            dir: TempDir::new("ring3-daemon"),
        });
    }

    pub fn address(&self, n: u8) -> String {
        format!("{}@127.0.0.{n}", self.port)
    }

    /// Sends `signal` (`"STOP"`, `"CONT"`, …) to daemon `n`, if it runs.
    pub fn signal(&self, n: u8, signal: &str) {
        if let Some(d) = &self.daemons[n as usize - 1] {
            let status = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(d.child.id().to_string())
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -{signal} of n{n}");
        }
    }

    /// kill -9 of daemon `n`.
    pub fn kill(&mut self, n: u8) {
        if let Some(mut d) = self.daemons[n as usize - 1].take() {
            d.kill();
        }
    }
}

/// Where an installed C Spread 3.17 is: `SPREAD_C_PREFIX`, else /usr/local, else /usr.
pub fn c_spread_prefix() -> Option<PathBuf> {
    let candidates = std::env::var_os("SPREAD_C_PREFIX")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/local", "/usr"].map(PathBuf::from));
    candidates
        .into_iter()
        .find(|p| p.join("sbin/spread").exists() && p.join("bin/spuser").exists())
}

/// The C daemon if installed, else prints a SKIPPED line naming the test and returns None.
pub fn c_spread_or_skip(test: &str) -> Option<PathBuf> {
    let found = c_spread_prefix();
    if found.is_none() {
        println!("SKIPPED: {test}: no C Spread 3.17 installed (set SPREAD_C_PREFIX, or install it in /usr/local)");
    }
    found
}

/// Starts a C 3.17 daemon from `prefix`, unprivileged (as root it would chroot and switch
/// user), on its own address so its UDP ports do not clash with other daemons.
pub fn start_c_daemon(prefix: &Path) -> RunningDaemon {
    let ip = Ipv4Addr::LOCALHOST;
    let port = free_port(ip);
    let dir = TempDir::new("c");
    let conf = dir.0.join("spread.conf");
    std::fs::write(&conf, one_daemon_conf("n1", ip, port)).unwrap();
    make_world_readable(&dir.0);
    let log = dir.0.join("daemon.log");
    let spread = prefix.join("sbin/spread");
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&spread);
        c
    } else {
        Command::new(&spread)
    };
    let mut child = cmd
        .args(["-n", "n1", "-c"])
        .arg(&conf)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the C spread daemon");
    wait_for_port(ip, port, &mut child, &log);
    wait_until_operational(&format!("{port}@{ip}"));
    RunningDaemon {
        child,
        port,
        ip,
        name: "n1".into(),
        local_socket: PathBuf::from(format!("/tmp/{port}")),
        log,
        dir,
    }
}

/// Joins a probe group until the membership comes back: a C daemon forms its (one-daemon)
/// ring a few seconds after it starts listening, and orders nothing before that.
pub fn wait_until_operational(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let options = spread::ConnectOptions::new(address).name("probe");
    let mut probe = spread::Mailbox::connect(&options).expect("connect a readiness probe");
    probe.join("readiness-probe").unwrap();
    while Instant::now() < deadline {
        if let Ok(Some(spread::Event::Membership(_))) =
            probe.receive_timeout(Duration::from_millis(500))
        {
            let _ = probe.disconnect();
            // Let the probe's departure be ordered before the test's own traffic.
            std::thread::sleep(Duration::from_millis(100));
            return;
        }
    }
    panic!("daemon at {address} never delivered a membership");
}

fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false)
}

fn make_world_readable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o644));
        }
    }
    let _ = std::fs::set_permissions(
        std::env::temp_dir(),
        std::fs::Permissions::from_mode(0o1777),
    );
}

/// Connects a spread-rs client named `name`.
pub fn connect_named(addr: &str, name: &str) -> spread::Mailbox {
    spread::Mailbox::connect(&spread::ConnectOptions::new(addr).name(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Receives until a regular membership of `group` with `n` members arrives; returns the
/// events before it and the membership.
pub fn until_members(
    m: &mut spread::Mailbox,
    group: &str,
    n: usize,
    within: Duration,
) -> (Vec<spread::Event>, spread::MembershipChange) {
    let deadline = Instant::now() + within;
    let mut before = Vec::new();
    while Instant::now() < deadline {
        match m.receive_timeout(Duration::from_millis(200)).unwrap() {
            Some(spread::Event::Membership(ms)) if ms.group == group => {
                if let spread::MembershipChange::Regular { members, .. } = &ms.change {
                    if members.len() == n {
                        return (before, ms.change);
                    }
                }
                before.push(spread::Event::Membership(ms));
            }
            Some(e) => before.push(e),
            None => {}
        }
    }
    panic!("no view of {group} with {n} members within {within:?}; got {before:?}");
}
