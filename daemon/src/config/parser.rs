//! Recursive-descent parser over the tokens of [`super::lexer`].
//!
//! Grammar (Spread 3.17 plus the timeout extension):
//!
//! ```text
//! config     := item*
//! item       := segment | directive | route_matrix
//! segment    := "Spread_Segment" ADDRESS "{" daemon* "}"
//! daemon     := TEXT [ADDRESS] ["{" interface+ "}"]
//! interface  := ("D" | "C" | "M")* ADDRESS
//! directive  := "DebugFlags" "=" "{" (["!"] FLAG)* "}"
//!             | "EventPriority" "=" PRIORITY
//!             | "EventTimeStamp" ["=" TEXT]
//!             | "DangerousMonitor" "=" BOOL
//!             | "SocketPortReuse" "=" ON|OFF|AUTO
//!             | "LinkProtocol" "=" ("Hop" | "TcpHop")
//!             | TEXT_DIRECTIVE "=" TEXT
//!             | TIMEOUT_NAME "=" NUMBER
//! route_matrix := "RouteMatrix" "{" NUMBER* "}"   (one row per line)
//! ```

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::lexer::{InterfaceLetter, Keyword, Lexer, Token, TokenKind, KEYWORDS};
use super::model::{
    extension_directives, is_number_directive, Config, DaemonEntry, DebugFlag, DirectiveUse,
    EventPriority, Interface, InterfaceKinds, Segment, DEBUG_FLAG_BITS, DEFAULT_PORT,
    KNOWN_ACCESS_CONTROL_POLICIES, KNOWN_AUTH_METHODS, MAX_DAEMONS, MAX_DAEMONS_3_17,
    MAX_DAEMON_NAME_BYTES, MAX_INTERFACES_PER_DAEMON, MAX_ROUTE_COST, MAX_SEGMENTS,
    MAX_SEGMENT_PORT, NUMBER_DIRECTIVES, TIMEOUT_DIRECTIVES,
};
use super::{ConfigError, Diagnostic, Resolver};

/// Longest user or group name Spread takes.
const MAX_ACCOUNT_NAME_BYTES: usize = 32;
/// Longest runtime directory Spread takes (PATH_MAX on Linux).
const MAX_RUNTIME_DIR_BYTES: usize = 4096;
/// Spread copies an auth list into a 90-byte buffer that needs its NUL.
const MAX_AUTH_LIST_BYTES: usize = 89;

pub(crate) struct Parser<'a> {
    lexer: Lexer<'a>,
    current: Token,
    file_name: &'a str,
    resolve: Resolver<'a>,
    config: Config,
    /// Line where each daemon name was first used.
    daemon_names: HashMap<String, usize>,
    /// Daemon (name, line) owning each daemon address.
    daemon_addresses: HashMap<Ipv4Addr, (String, usize)>,
}

type ParseResult<T> = Result<T, ConfigError>;

impl<'a> Parser<'a> {
    pub(crate) fn new(text: &str, file_name: &'a str, resolve: Resolver<'a>) -> ParseResult<Self> {
        let mut lexer = Lexer::new(text, file_name);
        let current = lexer.next_token()?;
        Ok(Parser {
            lexer,
            current,
            file_name,
            resolve,
            config: Config::empty(file_name),
            daemon_names: HashMap::new(),
            daemon_addresses: HashMap::new(),
        })
    }

    pub(crate) fn parse(mut self) -> ParseResult<Config> {
        while self.current.kind != TokenKind::End {
            self.parse_item()?;
        }
        if self.config.daemon_count() == 0 {
            return Err(self.error_at(
                &self.current,
                "expected at least one Spread_Segment with a daemon, found end of file",
            ));
        }
        Ok(self.config)
    }

    // ----- token plumbing -------------------------------------------------

    fn advance(&mut self) -> ParseResult<Token> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.current, next))
    }

    fn error_at(&self, token: &Token, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file_name, token.line, token.column, message)
    }

    fn warn_at(&mut self, token: &Token, message: impl Into<String>) {
        let warning = Diagnostic::new(self.file_name, token.line, token.column, message);
        self.config.warnings.push(warning);
    }

    /// "expected X, found Y" at the current token, plus a hint when the
    /// token is a common slip.
    fn unexpected(&self, expected: &str) -> ConfigError {
        let found = self.current.describe();
        let hint = hint_for(&self.current);
        self.error_at(
            &self.current,
            format!("expected {expected}, found {found}{hint}"),
        )
    }

    fn expect(&mut self, kind: TokenKind, expected: &str) -> ParseResult<Token> {
        if self.current.kind == kind {
            self.advance()
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_equals_after(&mut self, directive: &str) -> ParseResult<Token> {
        self.expect(TokenKind::Equals, &format!("'=' after {directive}"))
    }

    fn expect_text(&mut self, expected: &str) -> ParseResult<Token> {
        if self.current.is_text() {
            self.advance()
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn record_directive(&mut self, name: &'static str, token: &Token) {
        self.config.directives.push(DirectiveUse {
            name,
            line: token.line,
            column: token.column,
        });
    }

    // ----- top level --------------------------------------------------------

    fn parse_item(&mut self) -> ParseResult<()> {
        match self.current.kind.clone() {
            TokenKind::Keyword(keyword) => self.parse_keyword_item(keyword),
            TokenKind::Word if timeout_directive(&self.current.text).is_some() => {
                self.parse_timeout()
            }
            TokenKind::Word if is_number_directive(&self.current.text) => self.parse_window(),
            _ => Err(self.unexpected("a directive or Spread_Segment")),
        }
    }

    fn parse_keyword_item(&mut self, keyword: Keyword) -> ParseResult<()> {
        let directive = self.advance()?;
        self.record_directive(keyword.spelling(), &directive);
        match keyword {
            Keyword::SpreadSegment => self.parse_segment(&directive),
            Keyword::RouteMatrix => self.parse_route_matrix(),
            Keyword::DebugFlags => self.parse_debug_flags(),
            Keyword::EventPriority => self.parse_event_priority(),
            Keyword::EventTimeStamp => self.parse_event_time_stamp(),
            Keyword::DangerousMonitor => self.parse_dangerous_monitor(),
            Keyword::SocketPortReuse => self.parse_socket_port_reuse(),
            Keyword::LinkProtocol => self.parse_link_protocol(),
            Keyword::AccessControlPolicy => self.parse_access_control_policy(),
            Keyword::AllowedAuthMethods | Keyword::RequiredAuthMethods => {
                self.parse_auth_methods(keyword)
            }
            Keyword::EventLogFile
            | Keyword::RuntimeDir
            | Keyword::DaemonUser
            | Keyword::DaemonGroup => self.parse_text_setting(keyword),
        }
    }

    // ----- segments and daemons ---------------------------------------------

    fn parse_segment(&mut self, keyword: &Token) -> ParseResult<()> {
        if self.config.segments.len() == MAX_SEGMENTS {
            return Err(self.error_at(
                keyword,
                format!("too many segments: Spread allows at most {MAX_SEGMENTS}"),
            ));
        }
        let (address, port) = match self.current.kind {
            TokenKind::Address { ip, port } => (ip, port),
            _ => {
                return Err(self.unexpected(
                    "the segment's broadcast or multicast address (A.B.C.D or A.B.C.D:PORT)",
                ))
            }
        };
        let address_token = self.advance()?;
        let port = self.segment_port(&address_token, port)?;
        self.check_loopback_mix(&address_token, address)?;
        self.expect(TokenKind::OpenBrace, "'{' to open the segment")?;
        self.config.segments.push(Segment {
            address,
            port,
            daemons: Vec::new(),
            line: keyword.line,
            column: keyword.column,
        });
        loop {
            match self.current.kind {
                TokenKind::CloseBrace => break,
                _ if self.current.is_text() => {
                    let daemon = self.parse_daemon(port)?;
                    let segment = self.config.segments.last_mut().expect("pushed above");
                    segment.daemons.push(daemon);
                }
                _ => return Err(self.unexpected("a daemon name or '}'")),
            }
        }
        self.advance()?;
        Ok(())
    }

    /// A segment's port: omitted or 0 means the default, as in Spread.
    fn segment_port(&self, token: &Token, written: Option<u32>) -> ParseResult<u16> {
        match written {
            None | Some(0) => Ok(DEFAULT_PORT),
            Some(port) if port <= u32::from(MAX_SEGMENT_PORT) => Ok(port as u16),
            Some(port) => Err(self.error_at(
                token,
                format!(
                    "port {port} is out of range: expected 1 to {MAX_SEGMENT_PORT} \
                     (the daemon also uses the port after it)"
                ),
            )),
        }
    }

    /// Spread refuses loopback segments next to network ones: a loopback
    /// daemon can never reach a remote one.
    fn check_loopback_mix(&self, token: &Token, address: Ipv4Addr) -> ParseResult<()> {
        let Some(first) = self.config.segments.first() else {
            return Ok(());
        };
        if first.is_loopback() == address.is_loopback() {
            return Ok(());
        }
        Err(self.error_at(
            token,
            format!(
                "segment {address} cannot be combined with segment {} (line {}): \
                 loopback and network segments cannot be mixed",
                first.address, first.line
            ),
        ))
    }

    fn parse_daemon(&mut self, segment_port: u16) -> ParseResult<DaemonEntry> {
        let name_token = self.advance()?;
        self.check_daemon_name(&name_token)?;
        let (address, resolved_from_name, address_token) = match self.current.kind {
            TokenKind::Address { ip, port } => {
                let token = self.advance()?;
                self.warn_if_port_ignored(&token, port, segment_port, "a daemon address");
                (ip, false, token)
            }
            TokenKind::OpenBrace | TokenKind::CloseBrace | TokenKind::Word | TokenKind::Quoted => {
                (self.resolve_name(&name_token)?, true, name_token.clone())
            }
            _ => {
                return Err(self.unexpected(
                    "an address or '{' after the daemon name, another daemon name or '}'",
                ))
            }
        };
        self.check_daemon_address(&address_token, address)?;
        let interfaces = if self.current.kind == TokenKind::OpenBrace {
            self.parse_interface_block(segment_port)?
        } else {
            Vec::new()
        };
        self.daemon_names
            .insert(name_token.text.clone(), name_token.line);
        self.daemon_addresses
            .insert(address, (name_token.text.clone(), name_token.line));
        Ok(DaemonEntry {
            name: name_token.text,
            address,
            resolved_from_name,
            interfaces,
            line: name_token.line,
            column: name_token.column,
        })
    }

    fn check_daemon_name(&mut self, token: &Token) -> ParseResult<()> {
        let name = &token.text;
        if name.is_empty() {
            return Err(self.error_at(token, "daemon name must not be empty"));
        }
        if name.len() > MAX_DAEMON_NAME_BYTES {
            return Err(self.error_at(
                token,
                format!(
                    "daemon name '{name}' is {} bytes long, at most {MAX_DAEMON_NAME_BYTES} are allowed",
                    name.len()
                ),
            ));
        }
        if let Some(first_line) = self.daemon_names.get(name) {
            return Err(self.error_at(
                token,
                format!("daemon name '{name}' is already used on line {first_line}"),
            ));
        }
        if self.config.daemon_count() == MAX_DAEMONS {
            return Err(self.error_at(token, format!("too many daemons: at most {MAX_DAEMONS}")));
        }
        if self.config.daemon_count() == MAX_DAEMONS_3_17 {
            self.warn_at(
                token,
                format!(
                    "more than {MAX_DAEMONS_3_17} daemons: the ring runs in extended mode, which Spread 3.17 daemons cannot join (3.17 refuses such a file)"
                ),
            );
        }
        Ok(())
    }

    /// Daemons are told apart by address on the wire, so two daemons with
    /// one address could never both join (Spread 3.17 does not check this).
    fn check_daemon_address(&self, token: &Token, address: Ipv4Addr) -> ParseResult<()> {
        match self.daemon_addresses.get(&address) {
            Some((owner, line)) => Err(self.error_at(
                token,
                format!("address {address} is already used by daemon '{owner}' on line {line}"),
            )),
            None => Ok(()),
        }
    }

    /// A daemon written without an address is named after its host.
    fn resolve_name(&self, name_token: &Token) -> ParseResult<Ipv4Addr> {
        (self.resolve)(&name_token.text).ok_or_else(|| {
            self.error_at(
                name_token,
                format!(
                    "cannot resolve daemon name '{}' to an IPv4 address; write the address after the name",
                    name_token.text
                ),
            )
        })
    }

    /// Spread gives every daemon and interface its segment's port, whatever
    /// is written; say so when the text claims otherwise.
    fn warn_if_port_ignored(
        &mut self,
        token: &Token,
        port: Option<u32>,
        segment_port: u16,
        what: &str,
    ) {
        if let Some(port) = port.filter(|&p| p != u32::from(segment_port)) {
            self.warn_at(
                token,
                format!(
                    "port {port} on {what} is ignored; the segment's port {segment_port} is used"
                ),
            );
        }
    }

    fn parse_interface_block(&mut self, segment_port: u16) -> ParseResult<Vec<Interface>> {
        self.advance()?; // the '{'
        let mut interfaces = Vec::new();
        loop {
            match self.current.kind {
                TokenKind::CloseBrace if !interfaces.is_empty() => break,
                TokenKind::CloseBrace => {
                    return Err(self
                        .unexpected("an interface address (an interface block cannot be empty)"))
                }
                TokenKind::InterfaceLetter(_) | TokenKind::Address { .. } => {
                    if interfaces.len() == MAX_INTERFACES_PER_DAEMON {
                        return Err(self.error_at(
                            &self.current,
                            format!(
                                "too many interfaces: a daemon may have at most {MAX_INTERFACES_PER_DAEMON}"
                            ),
                        ));
                    }
                    interfaces.push(self.parse_interface(segment_port)?);
                }
                _ => {
                    return Err(self.unexpected("an interface address, D, C, M or '}'"));
                }
            }
        }
        self.advance()?;
        Ok(interfaces)
    }

    fn parse_interface(&mut self, segment_port: u16) -> ParseResult<Interface> {
        let mut kinds = InterfaceKinds::default();
        while let TokenKind::InterfaceLetter(letter) = self.current.kind {
            match letter {
                InterfaceLetter::Daemon => kinds.daemon = true,
                InterfaceLetter::Client => kinds.client = true,
                InterfaceLetter::Monitor => kinds.monitor = true,
            }
            self.advance()?;
        }
        let TokenKind::Address { ip, port } = self.current.kind else {
            return Err(self.unexpected("an interface address"));
        };
        let token = self.advance()?;
        self.warn_if_port_ignored(&token, port, segment_port, "an interface address");
        if kinds.is_empty() {
            kinds = InterfaceKinds::ALL;
        }
        Ok(Interface { address: ip, kinds })
    }

    // ----- directives -------------------------------------------------------

    fn parse_debug_flags(&mut self) -> ParseResult<()> {
        self.expect_equals_after("DebugFlags")?;
        self.expect(TokenKind::OpenBrace, "'{' to open the debug flag list")?;
        let mut flags = Vec::new();
        loop {
            let enabled = match self.current.kind {
                TokenKind::CloseBrace => break,
                TokenKind::DebugFlag => true,
                TokenKind::Bang => {
                    self.advance()?;
                    if self.current.kind != TokenKind::DebugFlag {
                        return Err(self.unexpected("a debug flag name after '!'"));
                    }
                    false
                }
                _ => return Err(self.unexpected("a debug flag name, '!' or '}'")),
            };
            let name = self.advance()?.text;
            flags.push(DebugFlag { name, enabled });
        }
        self.advance()?;
        self.config.debug_flags = Some(flags);
        Ok(())
    }

    fn parse_event_priority(&mut self) -> ParseResult<()> {
        self.expect_equals_after("EventPriority")?;
        let TokenKind::Priority(level) = self.current.kind else {
            return Err(self.unexpected("pDEBUG, INFO, WARNING, ERROR, CRITICAL or FATAL"));
        };
        self.advance()?;
        self.config.event_priority = Some(level);
        Ok(())
    }

    fn parse_event_time_stamp(&mut self) -> ParseResult<()> {
        let format = if self.current.kind == TokenKind::Equals {
            self.advance()?;
            Some(self.expect_text("a time stamp format")?.text)
        } else {
            None
        };
        self.config.event_time_stamp = Some(format);
        Ok(())
    }

    fn parse_dangerous_monitor(&mut self) -> ParseResult<()> {
        self.expect_equals_after("DangerousMonitor")?;
        let TokenKind::Bool(value) = self.current.kind else {
            return Err(self.unexpected("true, false, yes or no"));
        };
        self.advance()?;
        self.config.dangerous_monitor = value;
        Ok(())
    }

    fn parse_socket_port_reuse(&mut self) -> ParseResult<()> {
        self.expect_equals_after("SocketPortReuse")?;
        let TokenKind::PortReuse(value) = self.current.kind else {
            return Err(self.unexpected("AUTO, ON or OFF"));
        };
        self.advance()?;
        self.config.socket_port_reuse = value;
        Ok(())
    }

    fn parse_link_protocol(&mut self) -> ParseResult<()> {
        self.expect_equals_after("LinkProtocol")?;
        let TokenKind::LinkProtocol(protocol) = self.current.kind else {
            return Err(self.unexpected("Hop or TcpHop"));
        };
        self.advance()?;
        self.config.link_protocol = Some(protocol);
        Ok(())
    }

    fn parse_access_control_policy(&mut self) -> ParseResult<()> {
        self.expect_equals_after("AccessControlPolicy")?;
        let policy = self.expect_text("a policy name")?;
        if !KNOWN_ACCESS_CONTROL_POLICIES.contains(&policy.text.as_str()) {
            return Err(self.error_at(
                &policy,
                format!(
                    "unknown access control policy '{}': expected one of {}",
                    policy.text,
                    KNOWN_ACCESS_CONTROL_POLICIES.join(", ")
                ),
            ));
        }
        self.config.access_control_policy = Some(policy.text);
        Ok(())
    }

    fn parse_auth_methods(&mut self, keyword: Keyword) -> ParseResult<()> {
        self.expect_equals_after(keyword.spelling())?;
        let list = self.expect_text("a list of authentication methods")?;
        if list.text.len() > MAX_AUTH_LIST_BYTES {
            return Err(self.error_at(
                &list,
                format!("authentication method list is longer than {MAX_AUTH_LIST_BYTES} bytes"),
            ));
        }
        for method in list.text.split_whitespace() {
            if !KNOWN_AUTH_METHODS.contains(&method) {
                self.warn_at(
                    &list,
                    format!("unknown authentication method '{method}' (Spread ignores it)"),
                );
            }
            let methods = if keyword == Keyword::AllowedAuthMethods {
                &mut self.config.allowed_auth_methods
            } else {
                &mut self.config.required_auth_methods
            };
            methods.push(method.to_string());
        }
        Ok(())
    }

    /// Directives whose value is free text: `EventLogFile`, `RuntimeDir`,
    /// `DaemonUser`, `DaemonGroup`.
    fn parse_text_setting(&mut self, keyword: Keyword) -> ParseResult<()> {
        let name = keyword.spelling();
        self.expect_equals_after(name)?;
        let value = self.expect_text(&format!("a value for {name}"))?;
        let max_bytes = match keyword {
            Keyword::DaemonUser | Keyword::DaemonGroup => MAX_ACCOUNT_NAME_BYTES,
            Keyword::RuntimeDir => MAX_RUNTIME_DIR_BYTES,
            _ => usize::MAX,
        };
        if value.text.len() > max_bytes {
            return Err(self.error_at(&value, format!("{name} is longer than {max_bytes} bytes")));
        }
        // Spread skips empty values for these three, keeping its defaults.
        if value.text.is_empty() && keyword != Keyword::EventLogFile {
            self.warn_at(&value, format!("empty {name} is ignored"));
            return Ok(());
        }
        let slot = match keyword {
            Keyword::EventLogFile => &mut self.config.event_log_file,
            Keyword::RuntimeDir => &mut self.config.runtime_dir,
            Keyword::DaemonUser => &mut self.config.daemon_user,
            _ => &mut self.config.daemon_group,
        };
        *slot = Some(value.text);
        Ok(())
    }

    fn parse_timeout(&mut self) -> ParseResult<()> {
        let name = timeout_directive(&self.current.text).expect("checked by caller");
        let directive = self.advance()?;
        self.record_directive(name, &directive);
        self.expect_equals_after(name)?;
        if self.current.kind != TokenKind::Number {
            return Err(self.unexpected("a whole number of milliseconds"));
        }
        let value = self.advance()?;
        let millis = value
            .text
            .parse::<u64>()
            .ok()
            .filter(|&ms| ms > 0)
            .ok_or_else(|| {
                self.error_at(
                    &value,
                    format!(
                        "{name} must be a positive number of milliseconds, found '{}'",
                        value.text
                    ),
                )
            })?;
        let slot = self
            .config
            .timeouts
            .slot_mut(name)
            .expect("every timeout directive has a slot");
        *slot = Some(Duration::from_millis(millis));
        Ok(())
    }

    fn parse_window(&mut self) -> ParseResult<()> {
        let (name, unit, least, most) = *NUMBER_DIRECTIVES
            .iter()
            .find(|(name, ..)| *name == self.current.text)
            .expect("checked by caller");
        let directive = self.advance()?;
        self.record_directive(name, &directive);
        self.expect_equals_after(name)?;
        if self.current.kind != TokenKind::Number {
            return Err(self.unexpected(&format!("a whole number of {unit}")));
        }
        let value = self.advance()?;
        let n = value
            .text
            .parse::<u32>()
            .ok()
            .filter(|n| (least..=most).contains(n))
            .ok_or_else(|| {
                self.error_at(
                    &value,
                    format!(
                        "{name} must be a number of {unit} from {least} to {most}, found '{}'",
                        value.text
                    ),
                )
            })?;
        let slot = match name {
            "Window" => &mut self.config.window,
            "PersonalWindow" => &mut self.config.personal_window,
            "ClientKeepaliveIdle" => &mut self.config.client_keepalive_idle,
            "ClientKeepaliveInterval" => &mut self.config.client_keepalive_interval,
            _ => &mut self.config.client_keepalive_count,
        };
        *slot = Some(n);
        Ok(())
    }

    /// Rows are runs of numbers on one line; each must give a cost for
    /// every segment declared so far.
    fn parse_route_matrix(&mut self) -> ParseResult<()> {
        self.expect(TokenKind::OpenBrace, "'{' after RouteMatrix")?;
        loop {
            match self.current.kind {
                TokenKind::CloseBrace => break,
                TokenKind::Number => self.parse_route_row()?,
                _ => return Err(self.unexpected("a row of link costs or '}'")),
            }
        }
        self.advance()?;
        Ok(())
    }

    fn parse_route_row(&mut self) -> ParseResult<()> {
        let first = self.current.clone();
        if self.config.route_matrix.len() == MAX_SEGMENTS {
            return Err(self.error_at(
                &first,
                format!("too many route matrix rows: at most {MAX_SEGMENTS}"),
            ));
        }
        let mut row = Vec::new();
        while self.current.kind == TokenKind::Number && self.current.line == first.line {
            let cost_token = self.advance()?;
            row.push(self.route_cost(&cost_token));
        }
        let segments = self.config.segments.len();
        if row.len() < segments || row.len() > MAX_SEGMENTS {
            return Err(self.error_at(
                &first,
                format!(
                    "route matrix row has {} costs, expected one for each of the {segments} segments declared above",
                    row.len()
                ),
            ));
        }
        self.config.route_matrix.push(row);
        Ok(())
    }

    fn route_cost(&mut self, token: &Token) -> u8 {
        match token.text.parse::<u64>() {
            Ok(cost) if cost <= u64::from(MAX_ROUTE_COST) => cost as u8,
            _ => {
                self.warn_at(
                    token,
                    format!("link cost {} is lowered to {MAX_ROUTE_COST}", token.text),
                );
                MAX_ROUTE_COST
            }
        }
    }
}

fn timeout_directive(word: &str) -> Option<&'static str> {
    TIMEOUT_DIRECTIVES
        .iter()
        .find(|name| **name == word)
        .copied()
}

/// A short explanation for tokens that are usually a slip of the pen.
fn hint_for(token: &Token) -> String {
    let text = token.text.as_str();
    let hint = match token.kind {
        TokenKind::Word if text.contains('=') && text.len() > 1 => {
            "put blanks around '='".to_string()
        }
        TokenKind::Word if text.eq_ignore_ascii_case("ANY") => {
            "Spread has no ANY; an address without D, C or M carries every kind".to_string()
        }
        TokenKind::Word => match case_insensitive_reserved(text) {
            Some(spelling) => format!("names are case-sensitive: did you mean '{spelling}'?"),
            None => return String::new(),
        },
        TokenKind::DebugFlag if text == "DEBUG" => {
            "as a priority, Spread spells it 'pDEBUG'".to_string()
        }
        TokenKind::Number => "numbers must be quoted to be used as text".to_string(),
        TokenKind::End | TokenKind::Quoted | TokenKind::Address { .. } => return String::new(),
        TokenKind::OpenBrace
        | TokenKind::CloseBrace
        | TokenKind::Equals
        | TokenKind::Colon
        | TokenKind::Bang => return String::new(),
        _ => "reserved words must be quoted to be used as text".to_string(),
    };
    format!(" ({hint})")
}

/// The correct spelling of a directive or debug flag written in the wrong case.
fn case_insensitive_reserved(word: &str) -> Option<&'static str> {
    let directives = KEYWORDS.iter().map(|(spelling, _)| *spelling);
    let flags = DEBUG_FLAG_BITS.iter().map(|(name, _)| *name);
    let priorities = EventPriority::KEYWORDS.iter().map(|(name, _)| *name);
    directives
        .chain(extension_directives())
        .chain(flags)
        .chain(priorities)
        .find(|spelling| spelling.eq_ignore_ascii_case(word))
}
