//! Fed the recorded daemon bytes, spread-rs yields the events the C client printed.
//!
//! The corpus (`testdata/spread-3.17.3/client-corpus`, see the README there) holds
//! every TCP stream between C 3.17.3 daemons and programs linked with the C 3.17.3 client
//! library, plus an `events.log` with what each SP_receive returned. For every stream we cut
//! off the connect handshake, decode the daemon->client bytes with [`Codec::decode`] and
//! compare the events, in order, with that client's `RECV` (and `MEMB`) lines.
//!
//! Differences that are legitimate are named and asserted exactly, per scenario:
//! * `RECV` lines that are not deliveries (errors of the C receive call) are listed;
//! * [`Finding`]s: h8's data message with REG_MEMB_MESS, h9's forged reject bounce;
//! * decode errors (only h9, after the forged bounce desyncs the stream as it does in C);
//! * the tail of d_sizes, whose `events.log` ends mid-scenario, is checked against a table;
//! * group-id times: each `events.log` comes from an earlier run than the capture (compare
//!   the daemon logs' "Membership id" with the capture's `t0_epoch`), so the ring time in
//!   every group id differs; each scenario asserts its (log, capture) time pairs.
//!
//! Anything else that differs is a mismatch and fails the test.

use serde::Deserialize;
use spread::proto::Codec;
use spread::{Cause, Event, MembershipChange, Message, ServiceKind};
use spread_wire::consts::{code, service};
use spread_wire::handshake::{self, Parsed, Reject};
use spread_wire::membership::{GroupId as WireGroupId, MembershipId, RegularBody};
use spread_wire::{Endian, GroupName};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A file of the client corpus kept in the repository (testdata/spread-3.17.3/README.md says
/// what it is); a missing one fails the test rather than letting it pass having checked
/// nothing.
fn testdata(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/spread-3.17.3/client-corpus")
        .join(relative);
    assert!(path.exists(), "missing test data: {}", path.display());
    path
}

// ---- hex ----------------------------------------------------------------------------------

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd-length hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

// ---- the captured streams -----------------------------------------------------------------

#[derive(Deserialize)]
struct CaptureFile {
    streams: Vec<StreamJson>,
}

#[derive(Deserialize)]
struct StreamJson {
    index: usize,
    private_group: String,
    c2d_hex: String,
    d2c_hex: String,
}

/// How a stream's connect handshake ended, as the daemon's bytes say.
#[derive(Debug)]
enum Opening {
    /// Accepted: the private group and the deliveries that follow the handshake.
    Accepted { group: GroupName, rest: Vec<u8> },
    /// One reject byte in place of the auth list or of the accept.
    Rejected(Reject),
    /// The daemon sent nothing (a silent client, or nothing listening).
    NoReply,
    /// A pre-3.16 client: no auth list, and no patch byte in the accept. spread-rs only
    /// speaks 3.17, so these streams (a_connect's raw 3.13 client) are not decoded.
    OldLibrary,
}

fn open(c2d: &[u8], d2c: &[u8]) -> Opening {
    if let Ok(Parsed::Done(req, _)) = handshake::parse_connect(c2d) {
        if !req.version.negotiates_auth() {
            return Opening::OldLibrary;
        }
    }
    let auth_len = match handshake::parse_auth_list(d2c) {
        Ok(Parsed::Done(_, used)) => used,
        Ok(Parsed::NeedMore) => return Opening::NoReply,
        Err(r) => return Opening::Rejected(r),
    };
    match handshake::parse_accept(&d2c[auth_len..]) {
        Ok(Parsed::Done(acc, used)) => Opening::Accepted {
            group: acc.private_group,
            rest: d2c[auth_len + used..].to_vec(),
        },
        Ok(Parsed::NeedMore) => Opening::NoReply,
        Err(r) => Opening::Rejected(r),
    }
}

/// What [`Codec::decode`] made of a stream's deliveries.
struct Decoded {
    events: Vec<Event>,
    /// The error that stopped decoding, if any.
    error: Option<String>,
    /// Bytes left when decoding stopped.
    undecoded: usize,
}

fn decode_all(codec: &Codec, bytes: &[u8]) -> Decoded {
    let (mut events, mut at, mut error) = (Vec::new(), 0, None);
    loop {
        match codec.decode(&bytes[at..]) {
            Ok(Some((event, used))) => {
                events.push(event);
                at += used;
            }
            Ok(None) => break,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    Decoded {
        events,
        error,
        undecoded: bytes.len() - at,
    }
}

// ---- events.log ---------------------------------------------------------------------------

/// A parsed `MEMB` line: the membership body as C's library read it.
#[derive(Clone, Debug, PartialEq)]
enum Memb {
    Regular {
        group_id: (u32, i32, i32),
        vs_set: Vec<String>,
    },
    Transitional {
        group_id: (u32, i32, i32),
    },
    SelfLeave,
}

/// A parsed `RECV` line: everything SP_receive returned.
#[derive(Clone, Debug)]
struct Recv {
    line: String,
    ret: i32,
    ret_name: String,
    service_in: u32,
    service_type: u32,
    sender: String,
    num_groups: i32,
    groups: Vec<String>,
    mess_type: i32,
    endian_mismatch: i32,
    data_len: i32,
    /// The first (up to) 64 bytes of data the call returned.
    data: Vec<u8>,
    memb: Option<Memb>,
}

/// What a `RECV` line means for the comparison.
#[derive(Debug, PartialEq)]
enum RecvKind {
    /// A whole message.
    Delivery,
    /// DROP_RECV cut the message to the caller's buffers and consumed it: only the header
    /// fields and the prefixes C returned can be compared.
    Truncated,
    /// *_TOO_SHORT without DROP_RECV: the library keeps the message and the next successful
    /// receive returns it. spread-rs has no caller buffers, so it has no such return.
    KeptForRetry,
    /// An error of the C call (CONNECTION_CLOSED, ILLEGAL_MESSAGE, ...): nothing delivered.
    Failed,
}

impl Recv {
    fn kind(&self) -> RecvKind {
        let drop = self.service_in & service::DROP_RECV != 0;
        let too_short = self.ret == code::BUFFER_TOO_SHORT || self.ret == code::GROUPS_TOO_SHORT;
        match (too_short, drop) {
            (true, false) => RecvKind::KeptForRetry,
            (true, true) => RecvKind::Truncated,
            // With DROP_RECV and only the groups short, C returns data_len and -n groups.
            (false, true) if self.num_groups < 0 => RecvKind::Truncated,
            _ if self.ret < 0 => RecvKind::Failed,
            _ => RecvKind::Delivery,
        }
    }
}

/// One session of the C program: from its SP_connect to the next one with the same label.
#[derive(Debug)]
struct Session {
    mbox: Option<u32>,
    private_group: String,
    receives: Vec<Recv>,
}

struct EventsLog {
    sessions: Vec<Session>,
    /// RECV lines of labels without a session (a_connect's mailbox 999).
    orphans: Vec<Recv>,
    /// Reject codes of failed connects, in log order (library calls and raw connects).
    rejects: Vec<i32>,
}

/// Splits `+SSS.mmm WHO KIND text` into (who, kind, text).
fn split_line(line: &str) -> Option<(&str, &str, &str)> {
    let (_time, rest) = line.split_once(' ')?;
    let (who, rest) = rest.trim_start().split_once(' ')?;
    let rest = rest.trim_start();
    let (kind, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((who, kind, text.trim_start()))
}

/// The text after ` key=` (or at the start, `key=`).
fn after<'a>(text: &'a str, key: &str) -> &'a str {
    let pat = format!(" {key}=");
    let at = text
        .find(&pat)
        .map(|i| i + pat.len())
        .or_else(|| text.strip_prefix(&format!("{key}=")).map(|_| key.len() + 1))
        .unwrap_or_else(|| panic!("no {key}= in {text}"));
    &text[at..]
}

/// A leading decimal integer ("-1515870810(untouched)" gives -1515870810).
fn int(s: &str) -> i64 {
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(s.len(), |(i, _)| i);
    s[..end]
        .parse()
        .unwrap_or_else(|_| panic!("no integer at {s}"))
}

fn hex_word(s: &str) -> u32 {
    let s = s.strip_prefix("0x").expect("0x");
    let end = s.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(s.len());
    u32::from_str_radix(&s[..end], 16).expect("hex word")
}

/// A C-style quoted string (the log escapes bytes as `\xHH`) and the text after it.
fn quoted(s: &str) -> (String, &str) {
    let body = s
        .strip_prefix('"')
        .unwrap_or_else(|| panic!("no string at {s}"));
    let (mut out, mut bytes) = (Vec::new(), body.bytes().enumerate());
    while let Some((i, b)) = bytes.next() {
        match b {
            b'"' => return (String::from_utf8_lossy(&out).into_owned(), &body[i + 1..]),
            b'\\' => {
                assert_eq!(bytes.next().map(|(_, x)| x), Some(b'x'), "escape in {s}");
                out.push(u8::from_str_radix(&body[i + 2..i + 4], 16).expect("\\xHH"));
                bytes.nth(1);
            }
            _ => out.push(b),
        }
    }
    panic!("unterminated string at {s}")
}

/// `["a","b"]`.
fn quoted_list(s: &str) -> Vec<String> {
    let mut rest = s.strip_prefix('[').expect("[");
    let mut out = Vec::new();
    while !rest.starts_with(']') {
        let (item, tail) = quoted(rest);
        out.push(item);
        rest = tail.strip_prefix(',').unwrap_or(tail);
    }
    out
}

fn group_id(s: &str) -> (u32, i32, i32) {
    let inner = &s[1..s.find('}').expect("}")];
    let parts: Vec<i64> = inner.split(',').map(int).collect();
    (parts[0] as u32, parts[1] as i32, parts[2] as i32)
}

fn parse_recv(text: &str) -> Recv {
    let (_, result) = text.split_once(") = ").expect("return value");
    let ret = int(result) as i32;
    let ret_name = result.split_whitespace().nth(1).unwrap_or("").to_string();
    let data_field = after(text, "data_len");
    let data_hex = &data_field[data_field.find("]=").expect("data[..]=") + 2..];
    Recv {
        line: text.to_string(),
        ret,
        ret_name,
        service_in: hex_word(after(text, "service_in")),
        service_type: hex_word(after(text, "service_type")),
        sender: quoted(after(text, "sender")).0,
        num_groups: int(after(text, "num_groups")) as i32,
        groups: quoted_list(after(text, "groups")),
        mess_type: int(after(text, "mess_type")) as i32,
        endian_mismatch: int(after(text, "endian_mismatch")) as i32,
        data_len: int(data_field) as i32,
        data: unhex(data_hex.split_whitespace().next().unwrap_or("")),
        memb: None,
    }
}

fn parse_memb(text: &str) -> Memb {
    if text.starts_with("SELF-LEAVE") {
        Memb::SelfLeave
    } else if text.starts_with("TRANSITIONAL") {
        Memb::Transitional {
            group_id: group_id(after(text, "group_id")),
        }
    } else {
        assert!(text.starts_with("REGULAR"), "MEMB {text}");
        Memb::Regular {
            group_id: group_id(after(text, "group_id")),
            vs_set: quoted_list(after(text, "vs_set")),
        }
    }
}

/// The reject code a failed connect line reports, if it is one.
fn reject_code(kind: &str, text: &str) -> Option<i32> {
    let value = match kind {
        "CALL" if text.starts_with("SP_connect") => int(text.split_once(") = ")?.1),
        "RAW" if text.contains("as signed char = ") => int(text.split_once("as signed char = ")?.1),
        _ => return None,
    };
    Reject::from_code(value as i32).map(|r| r.code())
}

fn parse_log(text: &str) -> EventsLog {
    let mut log = EventsLog {
        sessions: Vec::new(),
        orphans: Vec::new(),
        rejects: Vec::new(),
    };
    let mut current: HashMap<String, usize> = HashMap::new();
    for line in text.lines() {
        let Some((who, kind, text)) = split_line(line) else {
            continue;
        };
        if let Some(code) = reject_code(kind, text) {
            log.rejects.push(code);
        }
        if kind == "CALL" && text.contains("private_group=\"") {
            // `-> mbox=N private_group="..."` after SP_connect, or a3_quota's one-line form.
            let mbox = text.strip_prefix("-> mbox=").map(|m| int(m) as u32);
            log.sessions.push(Session {
                mbox,
                private_group: quoted(after(text, "private_group")).0,
                receives: Vec::new(),
            });
            current.insert(who.to_string(), log.sessions.len() - 1);
        } else if kind == "RECV" {
            let recv = parse_recv(text);
            let mbox = int(after(text.replace('(', " ").as_str(), "mbox")) as u32;
            match current.get(who).map(|&i| &mut log.sessions[i]) {
                Some(s) if s.mbox == Some(mbox) => s.receives.push(recv),
                _ => log.orphans.push(recv),
            }
        } else if kind == "MEMB" {
            // A MEMB line parses the body of the same label's RECV just before it.
            let s = &mut log.sessions[current[who]];
            let last = s.receives.last_mut().expect("MEMB after a RECV");
            assert!(last.memb.is_none(), "two MEMB lines for {}", last.line);
            last.memb = Some(parse_memb(text));
        }
    }
    log
}

// ---- comparing ----------------------------------------------------------------------------

/// A named, legitimate difference between spread-rs and the C library.
#[derive(Clone, Debug, PartialEq)]
enum Finding {
    /// A data message whose type also has REG_MEMB_MESS (h8). C's library parses its data as
    /// a membership body (the `MEMB` group id); spread-rs returns a data Message because a
    /// service bit is set, so one client cannot forge views for others.
    ServiceBitWins {
        c_service_type: u32,
        c_group_id: (u32, i32, i32),
        ours: ServiceKind,
    },
    /// A reject event. The corpus has no genuine daemon reject, only h9's bounce of a
    /// client-forged REJECT|AGREED in the plain layout, which both libraries misread.
    Rejected {
        old_type: u32,
        groups: Vec<String>,
        mess_type: i16,
        data: Vec<u8>,
    },
    /// A DROP_RECV receive C cut to the caller's buffers (compared by prefix only).
    Truncated { c_return: String },
}

/// The result of one stream.
#[derive(Debug)]
struct StreamResult {
    index: usize,
    group: String,
    /// Events compared with a C delivery.
    matched: usize,
    /// Events spread-rs decoded after the client's last logged receive.
    tail: Vec<Event>,
    /// C receive lines that are no delivery: return name (and "kept" for retries).
    not_deliveries: Vec<String>,
    findings: Vec<Finding>,
    /// (time in events.log, time in the capture) of every membership group id.
    clock: BTreeSet<(i32, i32)>,
    error: Option<String>,
    undecoded: usize,
}

#[derive(Debug, Default)]
struct Report {
    streams: Vec<StreamResult>,
    /// Streams not decoded, and why: (index, reason).
    not_decoded: Vec<(usize, String)>,
    /// Accepted streams whose session the log does not list: (index, group, events).
    unlogged: Vec<(usize, String, Vec<Event>)>,
    /// Receive lines without a session, by return name.
    orphans: Vec<String>,
    /// (events.log, capture) times of the group ids: see [`in_log_clock`].
    clock: BTreeSet<(i32, i32)>,
    mismatches: Vec<String>,
}

impl Report {
    fn stream(&self, group: &str) -> &StreamResult {
        let mut found = self.streams.iter().filter(|s| s.group == group);
        let s = found.next().unwrap_or_else(|| panic!("no stream {group}"));
        assert!(found.next().is_none(), "several streams {group}");
        s
    }

    /// (group, C return) for every receive line that is no delivery.
    fn not_deliveries(&self) -> Vec<(String, String)> {
        self.streams
            .iter()
            .flat_map(|s| {
                s.not_deliveries
                    .iter()
                    .map(|n| (s.group.clone(), n.clone()))
            })
            .collect()
    }

    fn findings(&self) -> Vec<(String, Finding)> {
        self.streams
            .iter()
            .flat_map(|s| s.findings.iter().map(|f| (s.group.clone(), f.clone())))
            .collect()
    }

    fn errors(&self) -> Vec<(String, String, usize)> {
        self.streams
            .iter()
            .filter_map(|s| Some((s.group.clone(), s.error.clone()?, s.undecoded)))
            .collect()
    }

    fn tails(&self) -> Vec<(String, usize)> {
        self.streams
            .iter()
            .filter(|s| !s.tail.is_empty())
            .map(|s| (s.group.clone(), s.tail.len()))
            .collect()
    }

    /// Fails with every mismatch: each one is a spread-rs bug or an unnamed difference.
    fn assert_no_mismatch(&self) {
        assert!(
            self.mismatches.is_empty(),
            "{} mismatch(es):\n{}",
            self.mismatches.len(),
            self.mismatches.join("\n")
        );
    }

    /// The checks every scenario shares: no mismatch, nothing undecoded or left over
    /// except what the scenario names.
    fn assert_plain(&self) {
        self.assert_no_mismatch();
        assert_eq!(self.findings(), vec![]);
        assert_eq!(self.errors(), vec![]);
        assert_eq!(self.tails(), vec![]);
        assert!(self.unlogged.is_empty(), "streams without a logged session");
        for s in &self.streams {
            assert_eq!(s.undecoded, 0, "stream {} has trailing bytes", s.index);
        }
    }
}

/// Reads one scenario and compares every stream. `big_endian` names the private groups
/// of clients whose library ran big-endian (endian_mismatch is relative to the reader).
fn replay(name: &str, big_endian: &[&str]) -> Report {
    let json = std::fs::read_to_string(testdata(&format!("{name}/{name}.streams.json")))
        .expect("streams.json");
    let capture: CaptureFile = serde_json::from_str(&json).expect("streams.json parses");
    let log_text = std::fs::read_to_string(testdata(&format!("{name}/{name}.events.log")))
        .expect("events.log");
    let log = parse_log(&log_text);
    let mut report = Report {
        orphans: log.orphans.iter().map(|r| r.ret_name.clone()).collect(),
        ..Report::default()
    };
    for r in &log.orphans {
        if r.kind() != RecvKind::Failed {
            report
                .mismatches
                .push(format!("a delivery without a session: {}", r.line));
        }
    }
    let mut stream_rejects = Vec::new();
    // The n-th stream with a private group is the n-th session the log gives that group.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in capture.streams {
        let (c2d, d2c) = (unhex(&s.c2d_hex), unhex(&s.d2c_hex));
        let (group, rest) = match open(&c2d, &d2c) {
            Opening::Accepted { group, rest } => (group, rest),
            Opening::Rejected(r) => {
                stream_rejects.push(r.code());
                report
                    .not_decoded
                    .push((s.index, format!("rejected {}", r.code())));
                continue;
            }
            other => {
                report.not_decoded.push((s.index, format!("{other:?}")));
                continue;
            }
        };
        assert_eq!(
            group.to_string_lossy(),
            s.private_group,
            "stream {}",
            s.index
        );
        let endian = if big_endian.contains(&s.private_group.as_str()) {
            Endian::Big
        } else {
            Endian::Little
        };
        let decoded = decode_all(&Codec::with_endian(group, endian), &rest);
        let nth = seen.entry(s.private_group.clone()).or_default();
        let session = log
            .sessions
            .iter()
            .filter(|x| x.private_group == s.private_group)
            .nth(*nth);
        *nth += 1;
        let Some(session) = session else {
            let unlogged = (s.index, s.private_group.clone(), decoded.events);
            report.unlogged.push(unlogged);
            continue;
        };
        let result = compare_stream(s.index, &s.private_group, session, decoded, endian);
        report.mismatches.extend(result.1);
        report.streams.push(result.0);
    }
    report.clock = report
        .streams
        .iter()
        .flat_map(|s| s.clock.iter().copied())
        .collect();
    report.mismatches.extend(clock_conflicts(&report.clock));
    if stream_rejects != log.rejects {
        report.mismatches.push(format!(
            "reject codes: streams {stream_rejects:?}, events.log {:?}",
            log.rejects
        ));
    }
    report
}

/// One run's ring times must map to the other's one to one.
fn clock_conflicts(pairs: &BTreeSet<(i32, i32)>) -> Vec<String> {
    let (mut forward, mut back) = (BTreeMap::new(), BTreeMap::new());
    let mut out = Vec::new();
    for &(log, capture) in pairs {
        if let Some(other) = forward.insert(log, capture) {
            out.push(format!(
                "log time {log} is capture time {other} and {capture}"
            ));
        }
        if let Some(other) = back.insert(capture, log) {
            out.push(format!(
                "capture time {capture} is log time {other} and {log}"
            ));
        }
    }
    out
}

/// Pairs a stream's decoded events with its session's receive lines, in order.
fn compare_stream(
    index: usize,
    group: &str,
    session: &Session,
    decoded: Decoded,
    endian: Endian,
) -> (StreamResult, Vec<String>) {
    let mut result = StreamResult {
        index,
        group: group.to_string(),
        matched: 0,
        tail: Vec::new(),
        not_deliveries: Vec::new(),
        findings: Vec::new(),
        clock: BTreeSet::new(),
        error: decoded.error,
        undecoded: decoded.undecoded,
    };
    let mut mismatches = Vec::new();
    let mut events = decoded.events.into_iter();
    for recv in &session.receives {
        match recv.kind() {
            RecvKind::Failed => {
                result.not_deliveries.push(recv.ret_name.clone());
                continue;
            }
            RecvKind::KeptForRetry => {
                result
                    .not_deliveries
                    .push(format!("{} (kept)", recv.ret_name));
                continue;
            }
            RecvKind::Truncated => result.findings.push(Finding::Truncated {
                c_return: recv.ret_name.clone(),
            }),
            RecvKind::Delivery => {}
        }
        let at = format!("stream {index} {group} event {}", result.matched);
        let Some(event) = events.next() else {
            mismatches.push(format!(
                "{at}: spread-rs has no event for C's {}",
                recv.line
            ));
            continue;
        };
        let truncated = recv.kind() == RecvKind::Truncated;
        let (diff, finding) = compare_event(recv, &event, endian, truncated);
        let line = &recv.line;
        mismatches.extend(
            diff.problems
                .iter()
                .map(|p| format!("{at}: {p}\n   C: {line}")),
        );
        result.clock.extend(diff.clock);
        result.findings.extend(finding);
        result.matched += 1;
    }
    result.tail = events.collect();
    (result, mismatches)
}

/// What comparing one event found: "field: C=.., spread-rs=.." lines, and the pairs of
/// membership times (events.log, capture) it saw.
#[derive(Default)]
struct Diff {
    problems: Vec<String>,
    clock: Vec<(i32, i32)>,
}

impl Diff {
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, field: &str, c: T, ours: T) {
        if c != ours {
            self.problems
                .push(format!("{field}: C={c:?}, spread-rs={ours:?}"));
        }
    }
}

fn compare_event(
    r: &Recv,
    event: &Event,
    endian: Endian,
    truncated: bool,
) -> (Diff, Option<Finding>) {
    let mut d = Diff::default();
    let t = r.service_type;
    let finding = if t & service::REJECT != 0 {
        compare_rejected(r, event, &mut d)
    } else if t & service::REGULAR != 0 {
        compare_message(r, event, &mut d, truncated)
    } else {
        compare_membership(r, event, endian, &mut d, truncated);
        None
    };
    (d, finding)
}

/// The data bytes C returned must be the start of ours; whole when nothing was cut.
fn compare_data(r: &Recv, ours: &[u8], d: &mut Diff, truncated: bool) {
    if !truncated {
        d.eq("data_len", r.data_len as usize, ours.len());
        d.eq("return value", r.ret as usize, ours.len());
        d.eq("bytes logged", r.data.len(), ours.len().min(64));
    }
    d.eq("data", &r.data[..], &ours[..r.data.len().min(ours.len())]);
}

fn compare_groups(r: &Recv, ours: &[String], d: &mut Diff, truncated: bool) {
    if truncated && r.num_groups < 0 {
        // GROUPS_TOO_SHORT: -n is the real count, and only max_groups names were filled.
        d.eq("num_groups", (-r.num_groups) as usize, ours.len());
        d.eq(
            "groups",
            &r.groups[..],
            &ours[..r.groups.len().min(ours.len())],
        );
    } else {
        d.eq("num_groups", r.num_groups as usize, ours.len());
        d.eq("groups", &r.groups[..], ours);
    }
}

fn compare_message(r: &Recv, event: &Event, d: &mut Diff, truncated: bool) -> Option<Finding> {
    let Event::Message(m) = event else {
        d.problems
            .push(format!("C returned a data message, spread-rs {event:?}"));
        return None;
    };
    let ours = type_word(m);
    // The service bits and SELF_DISCARD are all a Message carries of the type word.
    let c_service = r.service_type & (service::REGULAR | service::SELF_DISCARD);
    d.eq(
        "service_type",
        format!("{c_service:#x}"),
        format!("{ours:#x}"),
    );
    d.eq("sender", r.sender.as_str(), m.sender.as_str());
    compare_groups(r, &m.groups, d, truncated);
    d.eq("mess_type", r.mess_type, i32::from(m.mess_type));
    if !truncated {
        // BUFFER_TOO_SHORT puts -data_len in endian_mismatch.
        d.eq(
            "endian_mismatch",
            r.endian_mismatch,
            i32::from(m.endian_mismatch),
        );
    }
    compare_data(r, &m.data, d, truncated);
    let extra = r.service_type & !(service::REGULAR | service::SELF_DISCARD);
    if extra == 0 {
        return None;
    }
    // Only h8's REG_MEMB_MESS is expected here; the C library parsed the data as a body.
    match &r.memb {
        Some(Memb::Regular { group_id, .. }) if extra == service::REG_MEMB => {
            Some(Finding::ServiceBitWins {
                c_service_type: r.service_type,
                c_group_id: *group_id,
                ours: m.service,
            })
        }
        other => {
            d.problems.push(format!(
                "type bits {extra:#x} besides the service, MEMB {other:?}"
            ));
            None
        }
    }
}

fn type_word(m: &Message) -> u32 {
    m.service.bit()
        | if m.self_discard {
            service::SELF_DISCARD
        } else {
            0
        }
}

fn compare_rejected(r: &Recv, event: &Event, d: &mut Diff) -> Option<Finding> {
    let Event::Rejected(x) = event else {
        d.problems
            .push(format!("C returned a reject, spread-rs {event:?}"));
        return None;
    };
    // C's library returns old_type | REJECT_MESS as the service type.
    d.eq("service_type", r.service_type, x.old_type | service::REJECT);
    compare_groups(r, &x.groups, d, false);
    d.eq("mess_type", r.mess_type, i32::from(x.mess_type));
    compare_data(r, &x.data, d, false);
    Some(Finding::Rejected {
        old_type: x.old_type,
        groups: x.groups.clone(),
        mess_type: x.mess_type,
        data: x.data.clone(),
    })
}

fn cause_bit(cause: Cause) -> u32 {
    match cause {
        Cause::Join => service::CAUSED_BY_JOIN,
        Cause::Leave => service::CAUSED_BY_LEAVE,
        Cause::Disconnect => service::CAUSED_BY_DISCONNECT,
        Cause::Network => service::CAUSED_BY_NETWORK,
    }
}

fn wire_id((proc_id, time, index): (u32, i32, i32)) -> WireGroupId {
    WireGroupId {
        memb_id: MembershipId { proc_id, time },
        index,
    }
}

/// events.log and the capture were recorded in two runs of each scenario, so a group id's
/// time (the second the daemons' ring formed) differs between them. The id is compared in
/// the log's clock; the (log, capture) pair is kept, and [`replay`] checks that the pairs
/// of a scenario are one-to-one.
fn in_log_clock(
    r: &Recv,
    (proc_id, time, index): (u32, i32, i32),
    d: &mut Diff,
) -> (u32, i32, i32) {
    match &r.memb {
        Some(Memb::Regular { group_id, .. } | Memb::Transitional { group_id }) => {
            d.clock.push((group_id.1, time));
            (proc_id, group_id.1, index)
        }
        _ => (proc_id, time, index),
    }
}

fn compare_membership(r: &Recv, event: &Event, endian: Endian, d: &mut Diff, truncated: bool) {
    let Event::Membership(m) = event else {
        d.problems
            .push(format!("C returned a membership, spread-rs {event:?}"));
        return;
    };
    d.eq("group (sender)", r.sender.as_str(), m.group.as_str());
    // Membership messages come from the daemon itself: no foreign order to report.
    d.eq("endian_mismatch", r.endian_mismatch, 0);
    // The body C returned, which the receiving library has put in its own byte order.
    let (ours_type, body, memb) = match &m.change {
        MembershipChange::Regular {
            cause,
            group_id,
            members,
            my_index,
            vs_set,
        } => {
            compare_groups(r, members, d, truncated);
            // C passes the receiver's index in the member list as mess_type.
            d.eq(
                "mess_type (my index)",
                Some(r.mess_type),
                my_index.map(|i| i as i32),
            );
            let id = (group_id.proc_id, group_id.time, group_id.index);
            let id = in_log_clock(r, id, d);
            let mut body = Vec::new();
            RegularBody {
                group_id: wire_id(id),
                vs_set: vs_set.iter().map(|v| GroupName::new(v)).collect(),
            }
            .encode_into(&mut body, endian);
            let memb = Memb::Regular {
                group_id: id,
                vs_set: vs_set.clone(),
            };
            (service::REG_MEMB | cause_bit(*cause), body, memb)
        }
        MembershipChange::Transitional { group_id } => {
            compare_groups(r, &[], d, truncated);
            d.eq("mess_type", r.mess_type, -1);
            let id = (group_id.proc_id, group_id.time, group_id.index);
            let id = in_log_clock(r, id, d);
            let body = wire_id(id).encode(endian).to_vec();
            (
                service::TRANSITION,
                body,
                Memb::Transitional { group_id: id },
            )
        }
        MembershipChange::SelfLeave => {
            compare_groups(r, &[], d, truncated);
            d.eq("mess_type", r.mess_type, -1);
            (service::CAUSED_BY_LEAVE, Vec::new(), Memb::SelfLeave)
        }
    };
    d.eq(
        "service_type",
        format!("{:#x}", r.service_type),
        format!("{ours_type:#x}"),
    );
    d.eq("MEMB", r.memb.as_ref(), Some(&memb));
    compare_data(r, &body, d, truncated);
}

// ---- summaries for the events C did not log ------------------------------------------------

/// One line per event, for tables of expected events.
fn summary(e: &Event) -> String {
    match e {
        Event::Message(m) => format!(
            "{:?}{} {} {:?} mt={} len={}",
            m.service,
            if m.self_discard { "|SelfDiscard" } else { "" },
            m.sender,
            m.groups,
            m.mess_type,
            m.data.len()
        ),
        Event::Membership(m) => match &m.change {
            MembershipChange::Regular {
                cause,
                group_id,
                members,
                my_index,
                vs_set,
            } => format!(
                "{} {cause:?} {members:?} vs={vs_set:?} me={my_index:?} index={}",
                m.group, group_id.index
            ),
            MembershipChange::Transitional { group_id } => {
                format!("{} Transitional index={}", m.group, group_id.index)
            }
            MembershipChange::SelfLeave => format!("{} SelfLeave", m.group),
        },
        Event::Rejected(r) => format!("Rejected {:#x} {:?}", r.old_type, r.groups),
        other => format!("{other:?}"),
    }
}

fn message(e: &Event) -> &Message {
    match e {
        Event::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

// ---- scenarios ----------------------------------------------------------------------------

fn strings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The group-id times of a scenario: (events.log's run, the capture's run).
fn clock(pairs: &[(i32, i32)]) -> BTreeSet<(i32, i32)> {
    pairs.iter().copied().collect()
}

#[test]
fn a_connect() {
    let r = replay("a_connect", &[]);
    r.assert_plain();
    assert_eq!(r.clock, clock(&[(1795660097, 1795660465)]));
    assert_eq!(r.not_deliveries(), vec![]);
    // a13: SP_receive on mailbox 999, which is no session.
    assert_eq!(r.orphans, vec!["ILLEGAL_SESSION"]);
    let not_decoded: Vec<(usize, &str)> = r
        .not_decoded
        .iter()
        .map(|(i, w)| (*i, w.as_str()))
        .collect();
    assert_eq!(
        not_decoded,
        vec![
            (9, "rejected -6"),  // a5b: the truncated name is taken
            (10, "rejected -5"), // a5c: raw name length 11
            (11, "rejected -6"), // a6: duplicate alice
            (12, "rejected -5"), // a7: illegal characters, four times
            (13, "rejected -5"),
            (14, "rejected -5"),
            (15, "rejected -5"),
            (17, "rejected -7"), // a8: lib 2.5 and 3.0
            (18, "rejected -7"),
            (19, "rejected -4"), // a9: no name-length byte
            (20, "NoReply"),     // a10: a silent client
            (21, "OldLibrary"),  // a10b: the raw 3.13 client
            (22, "NoReply"),     // a11: nothing listens on 127.0.0.99
            (23, "NoReply"),
        ]
    );
    // a3: the session without membership messages gets the data and nothing else.
    assert_eq!(r.stream("#nomemb#n1").matched, 1);
    assert_eq!(r.stream("#memb#n1").matched, 3);
}

#[test]
fn a2_auth() {
    let r = replay("a2_auth", &[]);
    r.assert_plain();
    // All three get f7, even the client that refused the list itself and sent no choice.
    let not_decoded: Vec<&str> = r.not_decoded.iter().map(|(_, w)| w.as_str()).collect();
    assert_eq!(not_decoded, vec!["rejected -9"; 3]);
    assert!(r.streams.is_empty());
}

#[test]
fn a3_quota() {
    let r = replay("a3_quota", &[]);
    r.assert_no_mismatch();
    // q997 and qx get REJECT_QUOTA (fd) before the daemon reads their connect.
    let not_decoded: Vec<&str> = r.not_decoded.iter().map(|(_, w)| w.as_str()).collect();
    assert_eq!(not_decoded, vec!["rejected -3"; 2]);
    // The log lists q0, every 100th, q990.. and qy; the other 980 sessions are only in the
    // capture. No session joins anything, so none has a delivery.
    assert_eq!(r.streams.len(), 18);
    assert_eq!(r.unlogged.len(), 980);
    assert!(r.unlogged.iter().all(|(_, _, events)| events.is_empty()));
    assert!(r
        .streams
        .iter()
        .all(|s| s.matched == 0 && s.tail.is_empty()));
}

#[test]
fn b_svc() {
    let r = replay("b_svc", &[]);
    r.assert_plain();
    assert_eq!(r.clock, clock(&[(1795660137, 1795660507)]));
    // b6: C sent RELIABLE|AGREED, the daemon killed its session.
    assert_eq!(
        r.not_deliveries(),
        strings(&[("#c#n1", "CONNECTION_CLOSED")])
    );
    // B gets all seven service types, A six (SAFE|SELF_DISCARD is not echoed to A).
    assert_eq!(r.stream("#a#n1").matched, 2 + 6 + 1 + 4 + 1 + 3);
    assert_eq!(r.stream("#b#n1").matched, 1 + 7 + 1 + 4 + 1 + 2);
}

#[test]
fn c_multigroup() {
    let r = replay("c_multigroup", &[]);
    r.assert_plain();
    assert_eq!(r.clock, clock(&[(1795660155, 1795660525)]));
    // c6: 101 groups; the daemon kills A. (The C daemon's 44..100-group bug shows only as
    // deliveries that are not on the wire: the same for both libraries.)
    assert_eq!(
        r.not_deliveries(),
        strings(&[("#a#n1", "CONNECTION_CLOSED")])
    );
    assert_eq!(r.stream("#b#n1").matched, 12);
}

/// The d_sizes events C did not log, one [`summary`] per event.
fn d_sizes_unlogged(me: usize) -> Vec<String> {
    let g123 = r#"["g1", "g2", "g3"]"#;
    let agreed =
        |mt: i16, groups: &str, len: usize| format!("Agreed #a#n1 {groups} mt={mt} len={len}");
    let g1 = r#"["g1"]"#;
    vec![
        // d1: the largest one-group message that works.
        agreed(106, g1, 143_919),
        // BUFFER_TOO_SHORT with and without DROP_RECV (100 bytes).
        format!("Fifo #a#n1 {g1} mt=120 len=100"),
        format!("Fifo #a#n1 {g1} mt=121 len=100"),
        // GROUPS_TOO_SHORT, then groups and buffer both short, each with and without DROP_RECV.
        agreed(122, g123, 20),
        agreed(123, g123, 20),
        agreed(124, g123, 20),
        agreed(125, g123, 20),
        // Membership messages into max_groups=1 and max_mess_len=8 (C joins, then leaves).
        format!(r##"g1 Join ["#a#n1", "#b#n1", "#c#n1"] vs=["#c#n1"] me=Some({me}) index=3"##),
        format!(r##"g1 Leave ["#a#n1", "#b#n1"] vs=["#c#n1"] me=Some({me}) index=4"##),
        // max_mess_len 0 for a 0-byte message.
        agreed(126, g1, 0),
        // d10b: D joins, gets 130 and 131, then disconnects.
        format!(r##"g1 Join ["#a#n1", "#b#n1", "#d#n1"] vs=["#d#n1"] me=Some({me}) index=5"##),
        agreed(130, g123, 20),
        agreed(131, g1, 40),
        format!(r##"g1 Disconnect ["#a#n1", "#b#n1"] vs=["#d#n1"] me=Some({me}) index=6"##),
    ]
}

#[test]
fn d_sizes() {
    let r = replay("d_sizes", &[]);
    r.assert_no_mismatch();
    assert_eq!(r.clock, clock(&[(1795660433, 1795660569)]));
    assert_eq!(r.findings(), vec![]);
    assert_eq!(r.errors(), vec![]);
    assert!(r.streams.iter().all(|s| s.undecoded == 0));
    // d_sizes.events.log (and its runner log) end after B's receive of d1's 1441-byte
    // message: A's receive of it, d2..d12, and the C and D sessions are not logged, so
    // what spread-rs decodes from there on is checked against the scenario's description.
    assert_eq!(r.not_deliveries(), vec![]);
    let (a, b) = (r.stream("#a#n1"), r.stream("#b#n1"));
    assert_eq!((a.matched, b.matched), (7, 7));
    let mut a_tail = d_sizes_unlogged(0);
    a_tail.insert(0, r#"Agreed #a#n1 ["g1"] mt=105 len=1441"#.to_string());
    let mut b_tail = d_sizes_unlogged(1);
    // d11: A's 143921 bytes pass the library, the daemon kills A; d12 then aborts it.
    b_tail.push(r##"g1 Disconnect ["#b#n1"] vs=["#a#n1"] me=Some(0) index=7"##.to_string());
    assert_eq!(a.tail.iter().map(summary).collect::<Vec<_>>(), a_tail);
    assert_eq!(b.tail.iter().map(summary).collect::<Vec<_>>(), b_tail);
    let unlogged: Vec<(&str, Vec<String>)> = r
        .unlogged
        .iter()
        .map(|(_, g, events)| (g.as_str(), events.iter().map(summary).collect()))
        .collect();
    let c = d_sizes_unlogged(2);
    assert_eq!(
        unlogged,
        vec![
            // C joins and leaves; it gets its own self-leave.
            ("#c#n1", vec![c[7].clone(), "g1 SelfLeave".to_string()]),
            // d10b: C's library returned garbage for 131 (the stale header of 130 applied to
            // 131's bytes, 4 bytes left over); spread-rs decodes both real messages.
            ("#d#n1", vec![c[10].clone(), c[11].clone(), c[12].clone()]),
        ]
    );
    let d = &r.unlogged[1].2;
    assert_eq!(message(&d[1]).data, b"three-groups-bug-dem");
    assert_eq!(
        message(&d[2]).data,
        b"next-message-after-the-drop-recv-retry!!"
    );
    // d1's bodies are data[i] = (i + len) % 251: the 1441 and 143919-byte ones arrive whole.
    for m in [&a.tail[0], &a.tail[1], &b.tail[0]].map(message) {
        let len = m.data.len();
        assert!(m
            .data
            .iter()
            .enumerate()
            .all(|(i, &x)| x as usize == (i + len) % 251));
    }
}

#[test]
fn e_memb() {
    let r = replay("e_memb", &[]);
    r.assert_plain();
    assert_eq!(r.clock, clock(&[(1795660228, 1795660599)]));
    assert_eq!(r.not_deliveries(), vec![]);
    // e8: raw joins of "bad group", "" and "x\x01y" give memberships of those names.
    assert_eq!(r.stream("#a#n1").matched, 14);
}

#[test]
fn f_ring() {
    let r = replay("f_ring", &[]);
    r.assert_plain();
    // Two ring memberships: the first ring, and the one after n3 crashed.
    assert_eq!(
        r.clock,
        clock(&[(1795660253, 1795660624), (1795660269, 1795660641)])
    );
    // f3: kill -9 of n3 closes C's first session.
    assert_eq!(
        r.not_deliveries(),
        strings(&[("#c#n3", "CONNECTION_CLOSED")])
    );
    assert_eq!(r.stream("#a#n1").matched, 13);
    assert_eq!(r.stream("#b#n2").matched, 11);
}

#[test]
fn g_endian_be() {
    // `be` ran the C library on big-endian powerpc64.
    let r = replay("g_endian_be", &["#be#n1"]);
    r.assert_plain();
    assert_eq!(r.clock, clock(&[(1795660304, 1795660677)]));
    assert_eq!(r.not_deliveries(), vec![]);
    assert_eq!(r.stream("#le#n1").matched, 7);
    assert_eq!(r.stream("#be#n1").matched, 5);
}

#[test]
fn h_violations() {
    let r = replay("h_violations", &[]);
    r.assert_no_mismatch();
    assert_eq!(r.clock, clock(&[(1795660329, 1795660703)]));
    assert_eq!(r.tails(), vec![]);
    assert!(r.unlogged.is_empty());
    // h1..h6: the daemon kills each violator.
    let mut expected: Vec<(&str, &str)> = ["#v1#n1", "#v2#n1", "#v3#n1", "#v4#n1"]
        .into_iter()
        .chain(["#v5#n1", "#v6#n1"])
        .map(|v| (v, "CONNECTION_CLOSED"))
        .collect();
    // h9: C's second receive after the misread bounce.
    expected.push(("#v9#n1", "ILLEGAL_MESSAGE"));
    assert_eq!(r.not_deliveries(), strings(&expected));
    // h8: AGREED|REG_MEMB_MESS. C's library parsed the data as a membership body with the
    // fake group id {127.0.0.1, 2, 3}; spread-rs returns an AGREED data Message.
    let forged = Finding::ServiceBitWins {
        c_service_type: service::AGREED | service::REG_MEMB,
        c_group_id: (0x7f00_0001, 2, 3),
        ours: ServiceKind::Agreed,
    };
    // h9: REJECT|AGREED comes back in the plain layout (no old_type word). The REJECT bit
    // makes spread-rs read the reject layout, as C's library does: the first 4 bytes of the
    // group name "grej" become old_type, the group starts 4 bytes late (""), and its last 3
    // bytes and the 1 data byte (0x80) are taken from the next message's type word.
    let garbage = Finding::Rejected {
        old_type: u32::from_le_bytes(*b"grej"),
        groups: vec![String::new()],
        mess_type: 9,
        data: vec![0x80],
    };
    assert_eq!(
        r.findings(),
        vec![
            ("#obs#n1".to_string(), forged.clone()),
            ("#v8#n1".to_string(), forged),
            ("#v9#n1".to_string(), garbage),
        ]
    );
    // The stream is then 4 bytes into O2's private message: its header is read from
    // "#obs2#n1..." (no endian marker: big-endian), whose num_groups is O2's hint word,
    // negative read big-endian. C returned ILLEGAL_MESSAGE there and then blocked;
    // spread-rs stops with a protocol error and leaves the 89 bytes it cannot frame.
    assert_eq!(
        r.errors(),
        vec![(
            "#v9#n1".to_string(),
            "protocol error from the daemon: negative num_groups (-2146697088)".to_string(),
            89
        )]
    );
    // h7: the big-endian-flagged header from a little-endian client is delivered with its
    // big-endian hint: mess_type 8, endian_mismatch for both (compared with C above).
    assert_eq!(r.stream("#v7#n1").matched, 2);
}
