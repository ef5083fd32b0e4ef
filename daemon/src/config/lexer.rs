//! Splits `spread.conf` text into tokens the way Spread 3.17 does.
//!
//! The rules that matter, and that differ from most config languages:
//!
//! * A token ends only at blanks (space, tab, CR, LF), `#`, `{` or `}`.
//!   So `=` and `:` are tokens only when they stand alone: `a=b` is one
//!   word, and so is `EventLogFile=x`.
//! * A whole word is then classified: reserved words (directive names,
//!   debug flags, `D`/`C`/`M`, priorities, booleans...) are never plain
//!   text, `A.B.C.D[:PORT]` is an address, all digits is a number, anything
//!   else is a word. Directive names and flags are case-sensitive; the
//!   boolean and `ON`/`OFF`/`AUTO` values are not.
//! * A quoted string (`"..."` or `'...'`, no escapes, may span lines) wins
//!   over a word unless the word reaching the next blank is longer: `"ab"`
//!   is the text `ab`, `"ab"cd` is the word `"ab"cd`.
//! * `!` followed by anything on its line is a negation token by itself;
//!   at the very end of a line it is a word.
//! * `#` starts a comment only where a token could start.

use std::net::Ipv4Addr;

use super::model::{debug_flag_bits, EventPriority, LinkProtocol, PortReuse};
use super::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    SpreadSegment,
    EventLogFile,
    EventTimeStamp,
    EventPriority,
    DebugFlags,
    DangerousMonitor,
    SocketPortReuse,
    RuntimeDir,
    DaemonUser,
    DaemonGroup,
    RequiredAuthMethods,
    AllowedAuthMethods,
    AccessControlPolicy,
    LinkProtocol,
    RouteMatrix,
}

pub(crate) const KEYWORDS: [(&str, Keyword); 15] = [
    ("Spread_Segment", Keyword::SpreadSegment),
    ("EventLogFile", Keyword::EventLogFile),
    ("EventTimeStamp", Keyword::EventTimeStamp),
    ("EventPriority", Keyword::EventPriority),
    ("DebugFlags", Keyword::DebugFlags),
    ("DangerousMonitor", Keyword::DangerousMonitor),
    ("SocketPortReuse", Keyword::SocketPortReuse),
    ("RuntimeDir", Keyword::RuntimeDir),
    ("DaemonUser", Keyword::DaemonUser),
    ("DaemonGroup", Keyword::DaemonGroup),
    ("RequiredAuthMethods", Keyword::RequiredAuthMethods),
    ("AllowedAuthMethods", Keyword::AllowedAuthMethods),
    ("AccessControlPolicy", Keyword::AccessControlPolicy),
    ("LinkProtocol", Keyword::LinkProtocol),
    ("RouteMatrix", Keyword::RouteMatrix),
];

impl Keyword {
    pub(crate) fn spelling(self) -> &'static str {
        KEYWORDS
            .iter()
            .find(|(_, keyword)| *keyword == self)
            .map(|(spelling, _)| *spelling)
            .expect("every keyword has a spelling")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InterfaceLetter {
    Daemon,
    Client,
    Monitor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    OpenBrace,
    CloseBrace,
    Equals,
    Colon,
    Bang,
    Keyword(Keyword),
    Bool(bool),
    PortReuse(PortReuse),
    LinkProtocol(LinkProtocol),
    DebugFlag,
    InterfaceLetter(InterfaceLetter),
    Priority(EventPriority),
    /// `A.B.C.D` or `A.B.C.D:PORT`; the port is checked by the parser,
    /// which knows what it is for.
    Address {
        ip: Ipv4Addr,
        port: Option<u32>,
    },
    /// Digits only; the value is parsed by whoever expects a number.
    Number,
    Word,
    /// A quoted string; `Token::text` holds it without the quotes.
    Quoted,
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub text: String,
    pub line: usize,
    pub column: usize,
}

impl Token {
    /// True for tokens usable where Spread expects free text (a name, a
    /// path, a quoted list).
    pub(crate) fn is_text(&self) -> bool {
        matches!(self.kind, TokenKind::Word | TokenKind::Quoted)
    }

    /// How the token is shown in "found ..." messages.
    pub(crate) fn describe(&self) -> String {
        match self.kind {
            TokenKind::End => "end of file".to_string(),
            TokenKind::Quoted => format!("\"{}\"", self.text),
            TokenKind::Word | TokenKind::Number | TokenKind::Address { .. } => {
                format!("'{}'", self.text)
            }
            TokenKind::OpenBrace
            | TokenKind::CloseBrace
            | TokenKind::Equals
            | TokenKind::Colon
            | TokenKind::Bang => format!("'{}'", self.text),
            _ => format!("reserved word '{}'", self.text),
        }
    }
}

pub(crate) struct Lexer<'a> {
    chars: Vec<char>,
    position: usize,
    line: usize,
    column: usize,
    file_name: &'a str,
}

/// Characters that end a bare word.
fn ends_word(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '#' | '{' | '}')
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &str, file_name: &'a str) -> Self {
        // A byte-order mark is editor noise, not part of the first token.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Lexer {
            chars: text.chars().collect(),
            position: 0,
            line: 1,
            column: 1,
            file_name,
        }
    }

    pub(crate) fn next_token(&mut self) -> Result<Token, ConfigError> {
        self.skip_blanks_and_comments();
        let (line, column) = (self.line, self.column);
        let Some(first) = self.peek(0) else {
            return Ok(Token {
                kind: TokenKind::End,
                text: String::new(),
                line,
                column,
            });
        };
        let (kind, text) = match first {
            '{' => (TokenKind::OpenBrace, self.take(1)),
            '}' => (TokenKind::CloseBrace, self.take(1)),
            '!' if self.bang_stands_alone() => (TokenKind::Bang, self.take(1)),
            '"' | '\'' => self.quoted_or_word(first),
            _ => {
                let text = self.take(self.word_length());
                (self.classify_word(&text, line, column)?, text)
            }
        };
        Ok(Token {
            kind,
            text,
            line,
            column,
        })
    }

    fn peek(&self, offset: usize) -> Option<char> {
        self.chars.get(self.position + offset).copied()
    }

    /// Consumes `count` characters, keeping line and column up to date.
    fn take(&mut self, count: usize) -> String {
        let taken: String = self.chars[self.position..self.position + count]
            .iter()
            .collect();
        for c in taken.chars() {
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        self.position += count;
        taken
    }

    fn skip_blanks_and_comments(&mut self) {
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    self.take(1);
                }
                '#' => {
                    let rest_of_line = self.chars[self.position..]
                        .iter()
                        .take_while(|&&c| c != '\n')
                        .count();
                    self.take(rest_of_line);
                }
                _ => break,
            }
        }
    }

    fn word_length(&self) -> usize {
        self.chars[self.position..]
            .iter()
            .take_while(|&&c| !ends_word(c))
            .count()
    }

    /// `!` negates only when more text follows on the same line. A CR is
    /// treated as part of the line end so CRLF files behave like LF ones.
    fn bang_stands_alone(&self) -> bool {
        !matches!(self.peek(1), None | Some('\n' | '\r'))
    }

    /// At a quote character: the quoted string, unless the plain word that
    /// starts here is longer (then the quotes are ordinary characters).
    fn quoted_or_word(&mut self, quote: char) -> (TokenKind, String) {
        let closing = self.chars[self.position + 1..]
            .iter()
            .position(|&c| c == quote);
        let word_length = self.word_length();
        match closing {
            Some(inner_length) if inner_length + 2 >= word_length => {
                let with_quotes = self.take(inner_length + 2);
                let inner = with_quotes[1..with_quotes.len() - 1].to_string();
                (TokenKind::Quoted, inner)
            }
            _ => (TokenKind::Word, self.take(word_length)),
        }
    }

    fn classify_word(
        &self,
        word: &str,
        line: usize,
        column: usize,
    ) -> Result<TokenKind, ConfigError> {
        if let Some(kind) = classify_punctuation_or_reserved(word) {
            return Ok(kind);
        }
        if let Some((octets, port)) = split_address(word) {
            let ip = octets_to_ip(octets).ok_or_else(|| {
                ConfigError::new(
                    self.file_name,
                    line,
                    column,
                    format!("invalid IPv4 address '{word}': each part must be 0 to 255"),
                )
            })?;
            return Ok(TokenKind::Address { ip, port });
        }
        if word.chars().all(|c| c.is_ascii_digit()) {
            return Ok(TokenKind::Number);
        }
        Ok(TokenKind::Word)
    }
}

fn classify_punctuation_or_reserved(word: &str) -> Option<TokenKind> {
    let kind = match word {
        "=" => TokenKind::Equals,
        ":" => TokenKind::Colon,
        "D" => TokenKind::InterfaceLetter(InterfaceLetter::Daemon),
        "C" => TokenKind::InterfaceLetter(InterfaceLetter::Client),
        "M" => TokenKind::InterfaceLetter(InterfaceLetter::Monitor),
        "Hop" => TokenKind::LinkProtocol(LinkProtocol::Hop),
        "TcpHop" => TokenKind::LinkProtocol(LinkProtocol::TcpHop),
        _ => {
            if let Some((_, keyword)) = KEYWORDS.iter().find(|(k, _)| *k == word) {
                TokenKind::Keyword(*keyword)
            } else if let Some(value) = case_insensitive_value(word) {
                value
            } else if debug_flag_bits(word).is_some() {
                TokenKind::DebugFlag
            } else if let Some((_, level)) =
                EventPriority::KEYWORDS.iter().find(|(k, _)| *k == word)
            {
                TokenKind::Priority(*level)
            } else {
                return None;
            }
        }
    };
    Some(kind)
}

/// Boolean and port-reuse values, the only words Spread reads in any case.
fn case_insensitive_value(word: &str) -> Option<TokenKind> {
    let lower = word.to_ascii_lowercase();
    let kind = match lower.as_str() {
        "true" | "yes" => TokenKind::Bool(true),
        "false" | "no" => TokenKind::Bool(false),
        "on" => TokenKind::PortReuse(PortReuse::On),
        "off" => TokenKind::PortReuse(PortReuse::Off),
        "auto" => TokenKind::PortReuse(PortReuse::Auto),
        _ => return None,
    };
    Some(kind)
}

/// Splits `A.B.C.D` or `A.B.C.D:PORT` (1-3 digits per part, 1-5 for the
/// port) without judging the values.
fn split_address(word: &str) -> Option<([u32; 4], Option<u32>)> {
    let (address, port) = match word.split_once(':') {
        Some((address, port)) => (address, Some(port)),
        None => (word, None),
    };
    let parts: Vec<&str> = address.split('.').collect();
    if parts.len() != 4 || !parts.iter().all(|part| is_digits(part, 3)) {
        return None;
    }
    let port = match port {
        Some(port) if is_digits(port, 5) => Some(port.parse().ok()?),
        Some(_) => return None,
        None => None,
    };
    let mut octets = [0u32; 4];
    for (octet, part) in octets.iter_mut().zip(&parts) {
        *octet = part.parse().ok()?;
    }
    Some((octets, port))
}

fn is_digits(text: &str, max_len: usize) -> bool {
    (1..=max_len).contains(&text.len()) && text.chars().all(|c| c.is_ascii_digit())
}

fn octets_to_ip(octets: [u32; 4]) -> Option<Ipv4Addr> {
    let mut bytes = [0u8; 4];
    for (byte, octet) in bytes.iter_mut().zip(octets) {
        *byte = u8::try_from(octet).ok()?;
    }
    Some(Ipv4Addr::from(bytes))
}
