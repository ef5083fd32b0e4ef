//! Starting a daemon: command line, configuration, identity, listeners, the loop.

use crate::config::{self, Config};
use crate::core::{Daemon, DaemonOptions, Identity};
use crate::io::{bind_local_socket, Binding, EventLoop, Listeners, RingSockets};
use spread_wire::membership::MembershipId;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The daemon's command line, compatible with 3.17's.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "spread", version, about = "Spread 3.17 daemon (pure Rust)")]
pub struct Options {
    /// The configuration file. Without it: ./spread.conf if present, else the embedded
    /// default (one daemon on 127.0.0.1, port 4803).
    #[arg(short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This daemon's name in the configuration. Without it the daemon finds itself by its
    /// host's addresses, as 3.17 does.
    #[arg(short = 'n', value_name = "NAME")]
    pub name: Option<String>,
    /// Accepted for compatibility with 3.17 (`-l y` turns on its membership log).
    #[arg(short = 'l', value_name = "y|n")]
    pub log: Option<String>,
    /// Where the local socket goes, instead of /tmp/<port>.
    #[arg(long, value_name = "PATH")]
    pub local_socket: Option<PathBuf>,
    /// Do not open a local socket.
    #[arg(long)]
    pub no_local_socket: bool,
    /// The ring includes C Spread 3.17 daemons: use 3.17's timeouts (LAN or wide, decided
    /// from the segments as 3.17 does) and flow-control windows instead of ours. A flag
    /// rather than a directive because 3.17's parser rejects the directives that set them,
    /// so a spread.conf shared with C daemons cannot carry them.
    #[arg(long)]
    pub with_c_daemons: bool,
    /// The IP access list the IP auth method reads, instead of looking for spread.access_ip
    /// in the working directory, beside the configuration file, then in /etc.
    #[arg(long, value_name = "FILE")]
    pub access_ip: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{0}")]
    Identity(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    LocalSocket(#[from] crate::io::LocalSocketError),
    #[error("cannot open the ring's UDP sockets: {0}")]
    Ring(std::io::Error),
    #[error("event loop: {0}")]
    Io(#[from] std::io::Error),
    #[error("IP access list {0}")]
    AccessList(#[from] config::access_ip::AccessListError),
}

/// The 3.17 directives this daemon acts on; others are accepted with a warning. (It acts on
/// every extension directive too: see `config::extension_directives`.)
const ACTED_ON: &[&str] = &[
    "Spread_Segment",
    "DebugFlags",
    "EventLogFile",
    "AllowedAuthMethods",
    "RequiredAuthMethods",
    "SocketPortReuse",
    "DangerousMonitor",
];

fn acted_on() -> Vec<&'static str> {
    ACTED_ON
        .iter()
        .copied()
        .chain(config::extension_directives())
        .collect()
}

pub fn load_config(options: &Options) -> Result<Config, StartError> {
    if let Some(path) = &options.config {
        return Ok(config::parse_file(path)?);
    }
    let local = Path::new("spread.conf");
    if local.exists() {
        return Ok(config::parse_file(local)?);
    }
    Ok(Config::embedded_default())
}

/// Which configured daemon we are: `-n NAME`, else our host's addresses, else the only one.
pub fn find_identity(config: &Config, name: Option<&str>) -> Result<(Identity, u16), StartError> {
    let found = match name {
        Some(name) => config.daemon_by_name(name).ok_or_else(|| {
            StartError::Identity(format!("no daemon named '{name}' in {}", config.file_name))
        })?,
        None => {
            let host = hostname();
            let by_address = (host.as_str(), 0)
                .to_socket_addrs()
                .into_iter()
                .flatten()
                .filter_map(|a| match a {
                    SocketAddr::V4(v4) => config.daemon_by_address(*v4.ip()),
                    SocketAddr::V6(_) => None,
                })
                .next();
            match by_address.or_else(|| config.daemon_by_name(&host)) {
                Some(found) => found,
                None if config.daemon_count() == 1 => (0, 0),
                None => {
                    return Err(StartError::Identity(format!(
                        "this host ({host}) is not in {}; name the daemon with -n NAME",
                        config.file_name
                    )))
                }
            }
        }
    };
    let entry = config.daemon(found).expect("found daemons exist");
    let port = config.segments[found.0].port;
    Ok((
        Identity {
            name: entry.name.clone(),
            ip: entry.address,
        },
        port,
    ))
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Lets the daemon hold about two descriptors per session (3.17 needs 2 x 997 + a few).
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into `lim`, a local rlimit, and setrlimit only reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SPREAD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let log_file = config.expand_log_file_name(&hostname()).and_then(|name| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(name)
            .ok()
    });
    let _ = match log_file {
        Some(file) => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

fn tcp_listeners(
    config: &Config,
    identity: &Identity,
    port: u16,
) -> Result<Vec<mio::net::TcpListener>, StartError> {
    let entry = config
        .all_daemons()
        .find(|d| d.name == identity.name)
        .expect("identity comes from the config");
    let mut listeners = Vec::new();
    for iface in entry.listen_interfaces().iter().filter(|i| i.kinds.client) {
        let addr = SocketAddr::from((iface.address, port));
        // 3.17's `auto` sets SO_REUSEADDR only on specific addresses, so a restarted 3.17
        // daemon cannot bind while its old connections sit in TIME_WAIT. For a TCP listener
        // the option never lets two daemons listen at once, so `auto` turns it on.
        let reuse = !matches!(config.socket_port_reuse, config::PortReuse::Off);
        let listen = || -> std::io::Result<mio::net::TcpListener> {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            socket.set_reuse_address(reuse)?;
            socket.set_nonblocking(true)?;
            socket.bind(&addr.into())?;
            socket.listen(1024)?;
            Ok(mio::net::TcpListener::from_std(socket.into()))
        };
        listeners.push(listen().map_err(|source| StartError::Listen { addr, source })?);
    }
    Ok(listeners)
}

/// Keepalive of client connections: ours (5 s idle, 3 probes 1 s apart) or spread.conf's.
pub fn client_keepalive(config: &Config) -> crate::io::ClientKeepalive {
    let mut k = crate::io::ClientKeepalive::default();
    if let Some(idle) = config.client_keepalive_idle {
        k.idle = std::time::Duration::from_secs(idle.into());
    }
    if let Some(interval) = config.client_keepalive_interval {
        k.interval = std::time::Duration::from_secs(interval.into());
    }
    if let Some(count) = config.client_keepalive_count {
        k.count = count;
    }
    k
}

/// Where the last ring time this daemon used is kept across restarts.
fn ring_time_file(config: &Config, identity: &Identity, port: u16) -> PathBuf {
    let dir = config
        .runtime_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().display().to_string());
    PathBuf::from(dir).join(format!("spread-{}-{port}.ringtime", identity.name))
}

/// Runs the daemon until SIGINT or SIGTERM.
pub fn run(options: Options) -> Result<(), StartError> {
    let config = load_config(&options)?;
    init_logging(&config);
    for warning in config
        .warnings
        .iter()
        .chain(&config.unsupported_directives(&acted_on()))
    {
        tracing::warn!("{warning}");
    }
    let (identity, port) = find_identity(&config, options.name.as_deref())?;
    raise_open_file_limit();
    let tcp = tcp_listeners(&config, &identity, port)?;
    let local = if options.no_local_socket {
        None
    } else {
        let path = options
            .local_socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/tmp/{port}")));
        Some(bind_local_socket(&path)?)
    };
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let memb_id = MembershipId {
        proc_id: u32::from(identity.ip),
        time: now_secs as i32,
    };
    let mut opts = DaemonOptions::new(identity.clone(), memb_id);
    let mut ring_sockets = None;
    let mut time_file = None;
    {
        let conf = config::ring_conf(&config);
        let entry = config
            .all_daemons()
            .find(|d| d.name == identity.name)
            .expect("identity");
        let position = conf
            .position(u32::from(identity.ip))
            .expect("identity in ring");
        let mut addresses: Vec<std::net::Ipv4Addr> = entry
            .listen_interfaces()
            .iter()
            .filter(|i| i.kinds.daemon)
            .map(|i| i.address)
            .collect();
        if addresses.is_empty() {
            addresses.push(std::net::Ipv4Addr::UNSPECIFIED);
        }
        let binding = Binding {
            addresses,
            port,
            segment: position.segment,
        };
        if config.daemon_count() == 1 {
            // Alone, the daemon has no ring, but its data port still answers spmonitor.
            match RingSockets::bind(&conf, &binding) {
                Ok(sockets) => ring_sockets = Some(sockets),
                Err(e) => tracing::warn!(
                    "cannot open the data port {port} for monitor requests ({e}); spmonitor will get no answer"
                ),
            }
        } else {
            ring_sockets = Some(RingSockets::bind(&conf, &binding).map_err(StartError::Ring)?);
            let file = ring_time_file(&config, &identity, port);
            let last_time_used = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            let ring = config::ring_options(
                &config,
                u32::from(identity.ip),
                config::RingStart {
                    with_c_daemons: options.with_c_daemons,
                    endian: opts.endian,
                    wall_clock_secs: now_secs as i64,
                    last_time_used,
                },
            );
            tracing::info!(
                "ring of {} daemons; token timeout {:?}, hurry {:?}",
                config.daemon_count(),
                ring.timeouts.token,
                ring.timeouts.hurry
            );
            opts.ring = Some(ring);
            time_file = Some(file);
        }
    }
    opts.dangerous_monitor = config.dangerous_monitor;
    opts.seed = now_secs ^ u64::from(std::process::id());
    if !config.allowed_auth_methods.is_empty() {
        opts.auth.allowed = config.allowed_auth_methods.clone();
    }
    opts.auth.required = config.required_auth_methods.clone();
    if opts.auth.uses("IP") {
        opts.auth.ip_rules = ip_access_list(&options)?;
    }
    tracing::info!(
        "daemon {} ({}) serving clients on port {port}{}",
        identity.name,
        identity.ip,
        local
            .as_ref()
            .map(|l| format!(" and {}", l.path.display()))
            .unwrap_or_default()
    );
    install_stop_handlers();
    let listeners = Listeners {
        tcp,
        local,
        ring: ring_sockets,
    };
    let mut event_loop = EventLoop::new(Daemon::new(opts, Instant::now()), listeners, &STOP)?;
    event_loop.keep_ring_time_in(time_file);
    event_loop.set_client_keepalive(Some(client_keepalive(&config)));
    event_loop.run()?;
    tracing::info!("daemon {} exiting", identity.name);
    Ok(())
}

static STOP: AtomicBool = AtomicBool::new(false);

/// The rules of the IP auth method. Without a list it admits no one, as 3.17 (which says so
/// at startup too); a malformed list stops the daemon.
fn ip_access_list(options: &Options) -> Result<Vec<crate::core::IpRule>, StartError> {
    use config::access_ip;
    let places = match &options.access_ip {
        Some(file) if !file.exists() => {
            return Err(StartError::AccessList(access_ip::AccessListError {
                file: file.display().to_string(),
                line: 0,
                message: "no such file".into(),
            }))
        }
        Some(file) => vec![file.clone()],
        None => access_ip::search_path(options.config.as_deref()),
    };
    match access_ip::load(&places)? {
        Some((file, rules)) => {
            tracing::info!("IP access list {}: {} entries", file.display(), rules.len());
            Ok(rules)
        }
        None => {
            let looked: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
            tracing::error!(
                "IP auth method in use but no IP access list found (looked for {}): it admits no one",
                looked.join(", ")
            );
            Ok(Vec::new())
        }
    }
}

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn install_stop_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the event
    // loop wakes at least every 200 ms to look at it.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
