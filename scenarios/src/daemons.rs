//! Real daemons for scenarios: ours (the `spread` binary of spread-daemon) and C 3.17's when
//! installed, alone or as a ring of one-daemon segments on 127.0.0.1, .2, ..., each on free
//! ports with its own config, so tests run in parallel and beside any other daemon.
//! (Adapted from daemon/tests/common/mod.rs.)

use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Which implementation of the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonKind {
    /// C Spread 3.17's `sbin/spread` under this prefix.
    C(PathBuf),
    /// Our `spread` binary.
    Rust(PathBuf),
}

impl DaemonKind {
    pub fn is_c(&self) -> bool {
        matches!(self, DaemonKind::C(_))
    }

    pub fn label(&self) -> &'static str {
        match self {
            DaemonKind::C(_) => "the C daemon",
            DaemonKind::Rust(_) => "our daemon",
        }
    }
}

/// Where an installed C Spread 3.17 is: `SPREAD_C_PREFIX`, else /usr/local, else /usr.
pub fn c_spread_prefix() -> Option<PathBuf> {
    std::env::var_os("SPREAD_C_PREFIX")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/local", "/usr"].map(PathBuf::from))
        .find(|p| p.join("sbin/spread").exists())
}

/// Our daemon binary: `SPREAD_RS_DAEMON`, else `cargo build -p spread-daemon --bin spread`
/// into this workspace's target directory (once per process).
pub fn rust_daemon() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build_rust_daemon).clone()
}

fn build_rust_daemon() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SPREAD_RS_DAEMON") {
        return Ok(PathBuf::from(p));
    }
    // This test binary is <target>/<profile>/deps/<name>: the daemon goes to
    // <target>/debug/spread.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let target_dir = exe
        .ancestors()
        .nth(3)
        .ok_or("no target directory above the test binary")?
        .to_path_buf();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args(["build", "--quiet", "-p", "spread-daemon", "--bin", "spread"])
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .map_err(|e| format!("running cargo build for the daemon: {e}"))?;
    let binary = target_dir.join("debug/spread");
    if status.success() && binary.exists() {
        Ok(binary)
    } else {
        Err(format!(
            "cargo build -p spread-daemon --bin spread failed ({status}); set SPREAD_RS_DAEMON"
        ))
    }
}

/// A port whose TCP and UDP (port, port+1) are free on `ips` right now, below 32768 (the
/// C library refuses higher ports).
pub fn free_port(ips: &[Ipv4Addr]) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = (std::process::id() % 500) as u16 * 20;
    loop {
        let offset = NEXT.fetch_add(2, Ordering::Relaxed) % 10_000;
        let port = 21_000 + (base + offset) % 10_000;
        let free = ips.iter().all(|ip| TcpListener::bind((*ip, port)).is_ok())
            && TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
            && UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
            && UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port + 1)).is_ok()
            && !Path::new(&format!("/tmp/{port}")).exists();
        if free {
            return port;
        }
    }
}

/// A private scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU16 = AtomicU16::new(0);
        let dir = std::env::temp_dir().join(format!(
            "spread-scenarios-{tag}-{}-{}",
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
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running daemon process, killed on drop.
pub struct RunningDaemon {
    pub child: Child,
    pub ip: Ipv4Addr,
    pub log: PathBuf,
}

impl RunningDaemon {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` daemons, `n1` on 127.0.0.1, `n2` on 127.0.0.2, ..., each alone in its segment, all on
/// one port. One daemon has the plain one-segment config.
pub struct Cluster {
    pub kind: DaemonKind,
    pub port: u16,
    pub daemons: Vec<Option<RunningDaemon>>,
    pub dir: TempDir,
}

impl Cluster {
    pub fn ip(n: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, n as u8 + 1)
    }

    /// Starts the daemons and waits until they order messages as one ring.
    pub fn start(kind: &DaemonKind, count: usize) -> Cluster {
        let ips: Vec<Ipv4Addr> = (0..count).map(Cluster::ip).collect();
        let port = free_port(&ips);
        let dir = TempDir::new(if kind.is_c() { "c" } else { "rust" });
        let conf = if count == 1 {
            format!("Spread_Segment 127.0.0.255:{port} {{\n    n1 127.0.0.1\n}}\n")
        } else {
            (1..=count)
                .map(|n| {
                    format!("Spread_Segment 127.0.0.255:{port} {{\n    n{n} 127.0.0.{n} {{ D 127.0.0.{n} C 127.0.0.{n} }}\n}}\n")
                })
                .collect()
        };
        std::fs::write(dir.0.join("spread.conf"), conf).unwrap();
        make_world_readable(&dir.0);
        let mut cluster = Cluster {
            kind: kind.clone(),
            port,
            daemons: Vec::new(),
            dir,
        };
        for n in 0..count {
            let d = cluster.spawn(n);
            cluster.daemons.push(Some(d));
        }
        cluster.wait_until_one_ring(Duration::from_secs(60));
        cluster
    }

    fn spawn(&self, n: usize) -> RunningDaemon {
        let ip = Cluster::ip(n);
        let name = format!("n{}", n + 1);
        let log = self.dir.0.join(format!("{name}.log"));
        let conf = self.dir.0.join("spread.conf");
        let mut cmd = match &self.kind {
            DaemonKind::Rust(binary) => {
                let mut c = Command::new(binary);
                c.arg("-c")
                    .arg(&conf)
                    .args(["-n", &name, "--local-socket"])
                    .arg(self.dir.0.join(format!("sock-{name}")))
                    .env("SPREAD_LOG", "debug")
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log).unwrap());
                c
            }
            DaemonKind::C(prefix) => {
                let mut c = c_daemon_command(prefix, &name, &conf);
                c.stdout(std::fs::File::create(&log).unwrap())
                    .stderr(Stdio::null());
                c
            }
        };
        let mut child = cmd.spawn().expect("start a spread daemon");
        wait_for_port(ip, self.port, &mut child, &log);
        RunningDaemon { child, ip, log }
    }

    /// `port@127.0.0.n+1`, for clients.
    pub fn address(&self, n: usize) -> String {
        format!("{}@{}", self.port, Cluster::ip(n))
    }

    /// kill -9 of daemon `n`.
    pub fn kill(&mut self, n: usize) {
        if let Some(mut d) = self.daemons.get_mut(n).and_then(Option::take) {
            d.kill();
        }
    }

    /// Every daemon's log, for failure messages.
    pub fn logs(&self) -> String {
        self.daemons
            .iter()
            .flatten()
            .map(|d| {
                format!(
                    "--- {}\n{}",
                    d.log.display(),
                    std::fs::read_to_string(&d.log).unwrap_or_default()
                )
            })
            .collect()
    }

    /// One probe client at each daemon joins a group until one of them sees all the probes:
    /// the daemons then form one ring (a C daemon takes seconds even alone). The probes
    /// leave before the scenario starts.
    fn wait_until_one_ring(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let n = self.daemons.len();
        let mut probes: Vec<spread::Mailbox> = (0..n)
            .map(|i| {
                let options =
                    spread::ConnectOptions::new(self.address(i)).name(format!("probe{i}"));
                spread::Mailbox::connect(&options)
                    .unwrap_or_else(|e| panic!("probe of {}: {e}", self.address(i)))
            })
            .collect();
        for p in probes.iter_mut() {
            p.join("ring-probe").unwrap();
        }
        'wait: while Instant::now() < deadline {
            match probes[0].receive_timeout(Duration::from_millis(500)) {
                Ok(Some(spread::Event::Membership(m))) => {
                    if let spread::MembershipChange::Regular { members, .. } = m.change {
                        if members.len() == n {
                            break 'wait;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("probe: {e}\n{}", self.logs()),
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} daemon(s) did not form one ring within {within:?}\n{}",
            n,
            self.logs()
        );
        for p in probes {
            let _ = p.disconnect();
        }
        // Let the probes' departures be ordered before the scenario's own traffic.
        std::thread::sleep(Duration::from_millis(300));
    }
}

pub(crate) fn wait_for_port(ip: Ipv4Addr, port: u16, child: &mut Child, log: &Path) {
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

pub(crate) fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

pub(crate) fn make_world_readable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o644));
        }
    }
}

/// The command line of C daemon `name` under `prefix`: as root the C daemon would chroot and
/// switch user, so it runs as nobody.
pub(crate) fn c_daemon_command(prefix: &Path, name: &str, conf: &Path) -> Command {
    let spread = prefix.join("sbin/spread");
    let mut c = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&spread);
        c
    } else {
        Command::new(&spread)
    };
    c.args(["-n", name, "-c"]).arg(conf);
    c
}
