//! One daemon, ours or C 3.17's, as a process with its config, socket and log.

use crate::{free_port, make_world_readable, CSpread, TempDir};
use std::ffi::{OsStr, OsString};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Which implementation runs a daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonKind {
    /// C Spread 3.17's daemon.
    C(CSpread),
    /// Ours, run as this command line: our `spread`, or e.g. an emulator followed by a
    /// cross-built `spread`. Our usual arguments follow it.
    Rust(Vec<OsString>),
}

impl DaemonKind {
    /// Our daemon, this binary.
    pub fn rust(binary: impl AsRef<OsStr>) -> DaemonKind {
        DaemonKind::Rust(vec![binary.as_ref().to_owned()])
    }

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

/// What becomes of a daemon's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Logs {
    /// Written to `<name>.log` in its directory, ours at debug level: what a failed test is
    /// read by.
    #[default]
    Kept,
    /// Discarded, and ours at the level it would run at anyway: benchmarks measure the
    /// daemon, not its debug logging.
    Discarded,
}

/// A running daemon process, killed on drop.
pub struct RunningDaemon {
    pub child: Child,
    pub name: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    /// Ours: in the daemon's directory. C's: `/tmp/<port>`, where 3.17 always puts it.
    pub local_socket: PathBuf,
    /// Its log (our stderr, C's stdout); absent when the daemon runs with [`Logs::Discarded`].
    pub log: PathBuf,
    /// The directory of a daemon started alone, which it owns; a ring's daemons share the
    /// ring's.
    dir: Option<TempDir>,
}

impl RunningDaemon {
    /// `port@ip`, for clients.
    pub fn address(&self) -> String {
        format!("{}@{}", self.port, self.ip)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The directory holding the config, log and socket of a daemon started alone.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(TempDir::path)
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// kill -9, and waits for the process.
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

/// What [`spawn`] needs to start daemon `name`.
pub(crate) struct Launch<'a> {
    pub kind: &'a DaemonKind,
    pub name: &'a str,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub conf: &'a Path,
    /// Where its log and (ours) its local socket go.
    pub dir: &'a Path,
    /// Ours runs with `--with-c-daemons` (3.17's timeouts): a ring with a C daemon.
    pub with_c_daemons: bool,
    /// More arguments after the usual ones.
    pub args: &'a [&'a str],
    pub logs: Logs,
}

/// Starts the daemon and waits until it listens for clients. The log is appended to, so a
/// restarted daemon's log follows its previous one.
pub(crate) fn spawn(launch: &Launch<'_>) -> Result<RunningDaemon, String> {
    let name = launch.name;
    let log = launch.dir.join(format!("{name}.log"));
    let log_file = || -> Result<Stdio, String> {
        match launch.logs {
            Logs::Kept => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map(Stdio::from)
                .map_err(|e| format!("opening {}: {e}", log.display())),
            Logs::Discarded => Ok(Stdio::null()),
        }
    };
    let (mut command, local_socket) = match launch.kind {
        DaemonKind::C(c) => {
            // 3.17 puts its local socket at /tmp/<port>, deleting whatever is there: C
            // daemons sharing a port take it from each other, which costs nothing here
            // (clients use TCP).
            let mut command = unprivileged(&c.daemon);
            command
                .args(["-n", name, "-c"])
                .arg(launch.conf)
                .stdout(log_file()?)
                .stderr(Stdio::null());
            (command, PathBuf::from(format!("/tmp/{}", launch.port)))
        }
        DaemonKind::Rust(argv) => {
            let (program, leading) = argv.split_first().ok_or("an empty command line")?;
            let local_socket = launch.dir.join(format!("sock-{name}"));
            let mut command = Command::new(program);
            command
                .args(leading)
                .arg("-c")
                .arg(launch.conf)
                .args(["-n", name, "--local-socket"])
                .arg(&local_socket);
            if launch.with_c_daemons {
                command.arg("--with-c-daemons");
            }
            if launch.logs == Logs::Kept {
                command.env("SPREAD_LOG", "debug");
            }
            command.stdout(Stdio::null()).stderr(log_file()?);
            (command, local_socket)
        }
    };
    let child = command
        .args(launch.args)
        .spawn()
        .map_err(|e| format!("starting {} {name}: {e}", launch.kind.label()))?;
    let mut daemon = RunningDaemon {
        child,
        name: name.into(),
        ip: launch.ip,
        port: launch.port,
        local_socket,
        log,
        dir: None,
    };
    wait_for_port(launch.ip, launch.port, &mut daemon.child, &daemon.log)?;
    if !launch.kind.is_c() && !launch.args.contains(&"--no-local-socket") {
        wait_for_local_socket(&daemon.local_socket, &mut daemon.child, &daemon.log)?;
    }
    Ok(daemon)
}

/// Ours listens on TCP first and binds its local socket after: a test that connects there
/// as soon as TCP answers was refused now and then under load.
fn wait_for_local_socket(path: &Path, child: &mut Child, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "daemon exited ({status}) before listening on {}:\n{}",
                path.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "daemon did not listen on {} within 10 s",
        path.display()
    ))
}

/// Running as root, the C daemon would chroot and switch user: it runs as nobody instead.
fn unprivileged(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Waits up to 10 s until `ip:port` accepts a connection; fails early, with the log, when
/// the daemon exits.
pub fn wait_for_port(ip: Ipv4Addr, port: u16, child: &mut Child, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect((ip, port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "daemon exited ({status}) before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("daemon did not listen on {ip}:{port} within 10 s"))
}

/// The config of daemon `name` alone in its segment on `ip`.
pub fn alone_conf(name: &str, ip: Ipv4Addr, port: u16) -> String {
    format!("Spread_Segment 127.0.0.255:{port} {{\n    {name} {ip}\n}}\n")
}

/// Starts daemon `n1` alone on 127.0.0.1 and a free port, in a directory of its own, with
/// `conf_extra` after its segment and `args` after the usual arguments. Returns once it
/// listens: a C daemon orders messages only seconds later (see
/// [`wait_until_operational`](crate::wait_until_operational)).
pub fn start_alone(
    kind: &DaemonKind,
    conf_extra: &str,
    args: &[&str],
) -> Result<RunningDaemon, String> {
    start_alone_with_logs(kind, conf_extra, args, Logs::Kept)
}

/// [`start_alone`], with its log kept or discarded as `logs` says.
pub fn start_alone_with_logs(
    kind: &DaemonKind,
    conf_extra: &str,
    args: &[&str],
    logs: Logs,
) -> Result<RunningDaemon, String> {
    let ip = Ipv4Addr::LOCALHOST;
    let port = free_port(&[ip]);
    let dir = TempDir::new(if kind.is_c() { "c" } else { "rust" });
    let conf = dir.path().join("spread.conf");
    std::fs::write(&conf, format!("{}{conf_extra}", alone_conf("n1", ip, port)))
        .map_err(|e| format!("writing {}: {e}", conf.display()))?;
    make_world_readable(dir.path());
    let mut daemon = spawn(&Launch {
        kind,
        name: "n1",
        ip,
        port,
        conf: &conf,
        dir: dir.path(),
        with_c_daemons: false,
        args,
        logs,
    })?;
    daemon.dir = Some(dir);
    Ok(daemon)
}

/// Our daemon binary for code outside the daemon's own tests (which have
/// `CARGO_BIN_EXE_spread`): `SPREAD_RS_DAEMON`, else `cargo build -p spread-daemon --bin
/// spread` into the target directory of the running test binary, once per process.
pub fn build_our_daemon() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SPREAD_RS_DAEMON") {
        return Ok(PathBuf::from(p));
    }
    // A test binary is <target>/<profile>/deps/<name>: the daemon goes to
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
