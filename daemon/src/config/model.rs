//! The parsed form of a `spread.conf`, and the questions a daemon asks of it.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::Diagnostic;

/// Port used by a segment whose address is written without one (or with `:0`).
pub const DEFAULT_PORT: u16 = 4803;
/// Highest port a segment may use: the daemon also listens on `port + 1`
/// for the token, so 65535 would leave it nowhere to go.
pub const MAX_SEGMENT_PORT: u16 = 65534;
/// Daemon names live in fixed 20-byte buffers (with a terminating NUL) in
/// the C daemon and appear inside private group names, so 19 bytes is the
/// most a name may take.
pub const MAX_DAEMON_NAME_BYTES: usize = 19;
/// Most daemons a Spread 3.17 configuration may hold; a larger one runs the ring in
/// extended mode, which no 3.17 daemon can be part of.
pub const MAX_DAEMONS_3_17: usize = 128;
/// Most daemons in the whole configuration, extended mode included.
pub const MAX_DAEMONS: usize = 4096;
pub const MAX_SEGMENTS: usize = 20;
pub const MAX_INTERFACES_PER_DAEMON: usize = 10;
/// Highest link cost in a `RouteMatrix`; larger values are lowered to it.
pub const MAX_ROUTE_COST: u8 = 100;
/// File name reported for [`Config::embedded_default`].
pub const EMBEDDED_DEFAULT_FILE_NAME: &str = "<embedded default>";
/// Name of the single daemon of [`Config::embedded_default`]; the same name
/// the minimal sample configuration shipped with Spread uses.
pub const EMBEDDED_DEFAULT_DAEMON_NAME: &str = "localhost";

/// Debug flag names of `DebugFlags = { ... }` and the bits they stand for
/// in Spread's event mask. `ALL` and `NONE` are shorthands.
pub const DEBUG_FLAG_BITS: [(&str, u32); 18] = [
    ("DEBUG", 0x0000_0001),
    ("EXIT", 0x0000_0002),
    ("PRINT", 0x0000_0004),
    ("DATA_LINK", 0x0000_0010),
    ("NETWORK", 0x0000_0020),
    ("PROTOCOL", 0x0000_0040),
    ("SESSION", 0x0000_0080),
    ("CONFIGURATION", 0x0000_0100),
    ("MEMBERSHIP", 0x0000_0200),
    ("FLOW_CONTROL", 0x0000_0400),
    ("STATUS", 0x0000_0800),
    ("EVENTS", 0x0000_1000),
    ("GROUPS", 0x0000_2000),
    ("MEMORY", 0x0001_0000),
    ("SKIPLIST", 0x0020_0000),
    ("ACM", 0x0040_0000),
    ("ALL", 0xffff_ffff),
    ("NONE", 0x0000_0000),
];

/// Authentication method names Spread 3.17 registers. Other names are
/// accepted (the C daemon silently ignores them) but draw a warning.
pub const KNOWN_AUTH_METHODS: [&str; 3] = ["NULL", "IP", "PWORD"];
/// Access control policies Spread 3.17 registers; any other is an error.
pub const KNOWN_ACCESS_CONTROL_POLICIES: [&str; 1] = ["PERMIT"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Name of the file the configuration came from, for diagnostics.
    pub file_name: String,
    pub segments: Vec<Segment>,
    /// The last `DebugFlags` block, in written order; `None` when absent
    /// (the daemon then keeps its built-in mask). See [`Config::debug_mask`].
    pub debug_flags: Option<Vec<DebugFlag>>,
    pub event_priority: Option<EventPriority>,
    /// As written: `%h`/`%H` are expanded by [`Config::expand_log_file_name`].
    pub event_log_file: Option<String>,
    /// `None`: no time stamps. `Some(None)`: time stamps in the default
    /// format. `Some(Some(f))`: time stamps in strftime format `f`.
    pub event_time_stamp: Option<Option<String>>,
    pub dangerous_monitor: bool,
    pub socket_port_reuse: PortReuse,
    pub runtime_dir: Option<String>,
    pub daemon_user: Option<String>,
    pub daemon_group: Option<String>,
    /// Method names from every `RequiredAuthMethods`, in order.
    pub required_auth_methods: Vec<String>,
    /// Method names from every `AllowedAuthMethods`, in order. Note that in
    /// Spread, writing either auth directive at all turns the default
    /// `NULL` method off unless it is listed.
    pub allowed_auth_methods: Vec<String>,
    pub access_control_policy: Option<String>,
    pub link_protocol: Option<LinkProtocol>,
    /// Rows of every `RouteMatrix` block, in order, costs as written
    /// (lowered to [`MAX_ROUTE_COST`]).
    pub route_matrix: Vec<Vec<u8>>,
    pub timeouts: Timeouts,
    /// `Window` and `PersonalWindow` (an extension): the ring's flow control, in datagrams
    /// per token rotation and per token visit.
    pub window: Option<u32>,
    pub personal_window: Option<u32>,
    /// `ClientKeepaliveIdle`, `ClientKeepaliveInterval` (seconds) and `ClientKeepaliveCount`
    /// (an extension): TCP keepalive of client connections.
    pub client_keepalive_idle: Option<u32>,
    pub client_keepalive_interval: Option<u32>,
    pub client_keepalive_count: Option<u32>,
    /// Every top-level construct written, in order, so that the daemon can
    /// warn about those it does not act on (see
    /// [`Config::unsupported_directives`]).
    pub directives: Vec<DirectiveUse>,
    /// Things that were accepted but will not have the effect the text
    /// suggests (ignored ports, clamped costs, unknown auth methods...).
    pub warnings: Vec<Diagnostic>,
}

/// One top-level construct as written: `Spread_Segment`, `DebugFlags`,
/// `TokenTimeout`, and so on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectiveUse {
    pub name: &'static str,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    pub token: Option<Duration>,
    pub hurry: Option<Duration>,
    pub alive: Option<Duration>,
    pub join: Option<Duration>,
    pub rep: Option<Duration>,
    pub seg: Option<Duration>,
    pub gather: Option<Duration>,
    pub form: Option<Duration>,
    pub lookup: Option<Duration>,
}

/// Whole-number directives, extensions 3.17's parser rejects: (name, unit, least, most).
/// `Window`/`PersonalWindow` are the ring's flow control (3.17 fixes them at 60 and 15);
/// the `ClientKeepalive*` ones set TCP keepalive on every client connection.
pub const NUMBER_DIRECTIVES: [(&str, &str, u32, u32); 5] = [
    ("Window", "datagrams", 1, 30_000),
    ("PersonalWindow", "datagrams", 1, 30_000),
    ("ClientKeepaliveIdle", "seconds", 1, 86_400),
    ("ClientKeepaliveInterval", "seconds", 1, 3_600),
    ("ClientKeepaliveCount", "probes", 1, 100),
];

/// Whether `word` names one of [`NUMBER_DIRECTIVES`].
pub fn is_number_directive(word: &str) -> bool {
    NUMBER_DIRECTIVES.iter().any(|(name, ..)| *name == word)
}

/// The extension directives (timeouts and numbers): this daemon acts on every one.
pub fn extension_directives() -> impl Iterator<Item = &'static str> {
    TIMEOUT_DIRECTIVES
        .into_iter()
        .chain(NUMBER_DIRECTIVES.iter().map(|(name, ..)| *name))
}

/// The timeout directives of later Spread versions, accepted as an extension.
pub const TIMEOUT_DIRECTIVES: [&str; 9] = [
    "TokenTimeout",
    "HurryTimeout",
    "AliveTimeout",
    "JoinTimeout",
    "RepTimeout",
    "SegTimeout",
    "GatherTimeout",
    "FormTimeout",
    "LookupTimeout",
];

impl Timeouts {
    /// The field a timeout directive sets, or `None` for other names.
    pub fn slot_mut(&mut self, directive: &str) -> Option<&mut Option<Duration>> {
        let slot = match directive {
            "TokenTimeout" => &mut self.token,
            "HurryTimeout" => &mut self.hurry,
            "AliveTimeout" => &mut self.alive,
            "JoinTimeout" => &mut self.join,
            "RepTimeout" => &mut self.rep,
            "SegTimeout" => &mut self.seg,
            "GatherTimeout" => &mut self.gather,
            "FormTimeout" => &mut self.form,
            "LookupTimeout" => &mut self.lookup,
            _ => return None,
        };
        Some(slot)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Broadcast or multicast address the segment's daemons share.
    pub address: Ipv4Addr,
    /// Port of every daemon in the segment ([`DEFAULT_PORT`] if omitted).
    pub port: u16,
    pub daemons: Vec<DaemonEntry>,
    pub line: usize,
    pub column: usize,
}

impl Segment {
    pub fn is_loopback(&self) -> bool {
        self.address.is_loopback()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonEntry {
    pub name: String,
    /// The daemon's identity on the ring.
    pub address: Ipv4Addr,
    /// True when no address was written and it came from resolving `name`.
    pub resolved_from_name: bool,
    /// Interfaces of an explicit `{ ... }` block, in order. Empty when the
    /// block is absent, which means: listen on every local address for all
    /// services (see [`DaemonEntry::listen_interfaces`]).
    pub interfaces: Vec<Interface>,
    pub line: usize,
    pub column: usize,
}

impl DaemonEntry {
    /// Whether `addr` identifies this daemon: its own address or any of its
    /// interface addresses (Spread looks daemons up by interface address).
    pub fn has_address(&self, addr: Ipv4Addr) -> bool {
        self.address == addr || self.interfaces.iter().any(|i| i.address == addr)
    }

    /// Where to listen. Without an interface block Spread binds the wildcard
    /// address for every service, so that case yields one `0.0.0.0`
    /// interface of all kinds.
    pub fn listen_interfaces(&self) -> Vec<Interface> {
        if self.interfaces.is_empty() {
            vec![Interface {
                address: Ipv4Addr::UNSPECIFIED,
                kinds: InterfaceKinds::ALL,
            }]
        } else {
            self.interfaces.clone()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    pub address: Ipv4Addr,
    pub kinds: InterfaceKinds,
}

/// Services an interface carries: `D` daemon-to-daemon traffic, `C` client
/// connections, `M` monitor traffic. An interface written without letters
/// carries all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InterfaceKinds {
    pub daemon: bool,
    pub client: bool,
    pub monitor: bool,
}

impl InterfaceKinds {
    pub const ALL: InterfaceKinds = InterfaceKinds {
        daemon: true,
        client: true,
        monitor: true,
    };

    pub fn is_empty(&self) -> bool {
        !(self.daemon || self.client || self.monitor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortReuse {
    /// SO_REUSEADDR only on sockets bound to a specific interface.
    #[default]
    Auto,
    On,
    Off,
}

/// `EventPriority` levels, lowest first. Spread 3.17 spells the lowest one
/// `pDEBUG` because `DEBUG` already names a debug flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventPriority {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
    Fatal,
}

impl EventPriority {
    pub const KEYWORDS: [(&'static str, EventPriority); 6] = [
        ("pDEBUG", EventPriority::Debug),
        ("INFO", EventPriority::Info),
        ("WARNING", EventPriority::Warning),
        ("ERROR", EventPriority::Error),
        ("CRITICAL", EventPriority::Critical),
        ("FATAL", EventPriority::Fatal),
    ];
}

/// `LinkProtocol = Hop | TcpHop`. Spread 3.17 accepts both names but only
/// runs its ring protocol (it even discards `TcpHop` as out of range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProtocol {
    Hop,
    TcpHop,
}

/// One entry of `DebugFlags = { ... }`: `NAME` (enabled) or `!NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugFlag {
    pub name: String,
    pub enabled: bool,
}

impl DebugFlag {
    pub fn bits(&self) -> u32 {
        debug_flag_bits(&self.name).unwrap_or(0)
    }
}

pub fn debug_flag_bits(name: &str) -> Option<u32> {
    DEBUG_FLAG_BITS
        .iter()
        .find(|(flag, _)| *flag == name)
        .map(|(_, bits)| *bits)
}

impl Config {
    /// A configuration with nothing set, to be filled by the parser.
    pub(crate) fn empty(file_name: &str) -> Config {
        Config {
            file_name: file_name.to_string(),
            segments: Vec::new(),
            debug_flags: None,
            event_priority: None,
            event_log_file: None,
            event_time_stamp: None,
            dangerous_monitor: false,
            socket_port_reuse: PortReuse::Auto,
            runtime_dir: None,
            daemon_user: None,
            daemon_group: None,
            required_auth_methods: Vec::new(),
            allowed_auth_methods: Vec::new(),
            access_control_policy: None,
            link_protocol: None,
            route_matrix: Vec::new(),
            timeouts: Timeouts::default(),
            window: None,
            personal_window: None,
            client_keepalive_idle: None,
            client_keepalive_interval: None,
            client_keepalive_count: None,
            directives: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// What to run with when no configuration file exists (the C daemon
    /// refuses to start then): the minimal file shipped with Spread, i.e.
    /// `Spread_Segment 127.0.0.255:4803 { localhost 127.0.0.1 }`.
    pub fn embedded_default() -> Config {
        let daemon = DaemonEntry {
            name: EMBEDDED_DEFAULT_DAEMON_NAME.to_string(),
            address: Ipv4Addr::LOCALHOST,
            resolved_from_name: false,
            interfaces: Vec::new(),
            line: 0,
            column: 0,
        };
        let segment = Segment {
            address: Ipv4Addr::new(127, 0, 0, 255),
            port: DEFAULT_PORT,
            daemons: vec![daemon],
            line: 0,
            column: 0,
        };
        let mut config = Config::empty(EMBEDDED_DEFAULT_FILE_NAME);
        config.segments.push(segment);
        config
    }

    /// (segment index, index within segment) of the daemon called `name`.
    pub fn daemon_by_name(&self, name: &str) -> Option<(usize, usize)> {
        self.find_daemon(|daemon| daemon.name == name)
    }

    /// (segment index, index within segment) of the first daemon whose own
    /// address or interface address is `addr`.
    pub fn daemon_by_address(&self, addr: Ipv4Addr) -> Option<(usize, usize)> {
        self.find_daemon(|daemon| daemon.has_address(addr))
    }

    fn find_daemon(&self, matches: impl Fn(&DaemonEntry) -> bool) -> Option<(usize, usize)> {
        self.segments
            .iter()
            .enumerate()
            .find_map(|(segment_index, segment)| {
                segment
                    .daemons
                    .iter()
                    .position(&matches)
                    .map(|daemon_index| (segment_index, daemon_index))
            })
    }

    pub fn daemon(&self, (segment, index): (usize, usize)) -> Option<&DaemonEntry> {
        self.segments.get(segment)?.daemons.get(index)
    }

    /// Every daemon, in configuration order (segment by segment).
    pub fn all_daemons(&self) -> impl Iterator<Item = &DaemonEntry> {
        self.segments
            .iter()
            .flat_map(|segment| segment.daemons.iter())
    }

    pub fn daemon_count(&self) -> usize {
        self.segments
            .iter()
            .map(|segment| segment.daemons.len())
            .sum()
    }

    /// The log file name with `%h` and `%H` replaced by `hostname`. Spread
    /// treats the two spellings alike, both standing for what gethostname()
    /// returns; any other `%` sequence stays as written.
    pub fn expand_log_file_name(&self, hostname: &str) -> Option<String> {
        let pattern = self.event_log_file.as_deref()?;
        let mut expanded = String::with_capacity(pattern.len() + hostname.len());
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '%' && matches!(chars.peek(), Some('h' | 'H')) {
                chars.next();
                expanded.push_str(hostname);
            } else {
                expanded.push(c);
            }
        }
        Some(expanded)
    }

    /// The event mask the last `DebugFlags` block selects: it starts empty,
    /// each `NAME` adds its bits and each `!NAME` removes them, in order.
    pub fn debug_mask(&self) -> Option<u32> {
        let flags = self.debug_flags.as_ref()?;
        Some(flags.iter().fold(0, |mask, flag| {
            if flag.enabled {
                mask | flag.bits()
            } else {
                mask & !flag.bits()
            }
        }))
    }

    /// A warning for each directive written whose name is not in
    /// `supported`, for a daemon to print before it starts.
    pub fn unsupported_directives(&self, supported: &[&str]) -> Vec<Diagnostic> {
        self.directives
            .iter()
            .filter(|used| !supported.contains(&used.name))
            .map(|used| {
                Diagnostic::new(
                    &self.file_name,
                    used.line,
                    used.column,
                    format!("'{}' is accepted but this daemon ignores it", used.name),
                )
            })
            .collect()
    }
}
