use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;

/// A resolver that knows two hosts, so tests never touch the network.
fn fake_dns(name: &str) -> Option<Ipv4Addr> {
    match name {
        "hosta" => Some(Ipv4Addr::new(10, 0, 0, 1)),
        "hostb" => Some(Ipv4Addr::new(10, 0, 0, 2)),
        _ => None,
    }
}

fn parse(text: &str) -> Config {
    parse_str_with_resolver(text, "spread.conf", &fake_dns).unwrap_or_else(|err| panic!("{err}"))
}

fn error(text: &str) -> String {
    match parse_str_with_resolver(text, "spread.conf", &fake_dns) {
        Ok(config) => panic!("expected an error, parsed {config:?}"),
        Err(err) => err.to_string(),
    }
}

/// One valid segment, to append directives to.
const ONE_DAEMON: &str = "Spread_Segment 127.0.0.255 {\n n1 127.0.0.1\n}\n";

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

const DC: InterfaceKinds = InterfaceKinds {
    daemon: true,
    client: false,
    monitor: false,
};

fn daemon_and_client_on(address: Ipv4Addr) -> Vec<Interface> {
    vec![
        Interface { address, kinds: DC },
        Interface {
            address,
            kinds: InterfaceKinds {
                daemon: false,
                client: true,
                monitor: false,
            },
        },
    ]
}

// ----- the project's sample files ----------------------------------------

const THREE_SEGMENTS: &str = "\
# Spread 3.17.3 reference ring: 3 daemons on loopback, ONE DAEMON PER SEGMENT.
# Explicit D/C interface stanzas make
# each daemon bind only its own 127.0.0.x address.

DebugFlags = { PRINT EXIT MEMBERSHIP CONFIGURATION }
EventTimeStamp = \"[%H:%M:%S]\"

Spread_Segment  127.0.0.255:4803 {
\tn1\t127.0.0.1 {
\t\tD 127.0.0.1
\t\tC 127.0.0.1
\t}
}
Spread_Segment  127.0.0.255:4803 {
\tn2\t127.0.0.2 {
\t\tD 127.0.0.2
\t\tC 127.0.0.2
\t}
}
Spread_Segment  127.0.0.255:4803 {
\tn3\t127.0.0.3 {
\t\tD 127.0.0.3
\t\tC 127.0.0.3
\t}
}
";

const ONE_BROADCAST_SEGMENT: &str = "\
# Spread 3.17.3 reference ring, variant B: the canonical ONE-SEGMENT layout
# Ports: client TCP 4803, UDP data/broadcast 4803, UDP token 4804.
DebugFlags = { PRINT EXIT MEMBERSHIP CONFIGURATION }
EventTimeStamp = \"[%H:%M:%S]\"

Spread_Segment  127.255.255.255:4803 {
\tn1\t127.0.0.1 {
\t\tD 127.0.0.1
\t\tC 127.0.0.1
\t}
\tn2\t127.0.0.2 {
\t\tD 127.0.0.2
\t\tC 127.0.0.2
\t}
\tn3\t127.0.0.3 {
\t\tD 127.0.0.3
\t\tC 127.0.0.3
\t}
}
";

const CORPUS_THREE_SEGMENTS: &str = "\
# Corpus copy of <C reference> (one daemon per segment),
# moved to 127.0.0.11/.12/.13 (127.0.0.1/.2 were taken by foreign daemons).
DebugFlags = { PRINT EXIT MEMBERSHIP CONFIGURATION SESSION }
EventTimeStamp = \"[%H:%M:%S]\"

Spread_Segment  127.0.0.255:4803 {
\tn1\t127.0.0.11 {
\t\tD 127.0.0.11
\t\tC 127.0.0.11
\t}
}
Spread_Segment  127.0.0.255:4803 {
\tn2\t127.0.0.12 {
\t\tD 127.0.0.12
\t\tC 127.0.0.12
\t}
}
Spread_Segment  127.0.0.255:4803 {
\tn3\t127.0.0.13 {
\t\tD 127.0.0.13
\t\tC 127.0.0.13
\t}
}
";

const CORPUS_IP_AUTH: &str = "\
# Single daemon n1 on 127.0.0.11 that only allows the \"IP\" auth method.
DebugFlags = { PRINT EXIT MEMBERSHIP CONFIGURATION SESSION }
EventTimeStamp = \"[%H:%M:%S]\"
AllowedAuthMethods = \"IP\"

Spread_Segment  127.0.0.255:4803 {
\tn1\t127.0.0.11 {
\t\tD 127.0.0.11
\t\tC 127.0.0.11
\t}
}
";

fn enabled_flags(names: &[&str]) -> Option<Vec<DebugFlag>> {
    Some(
        names
            .iter()
            .map(|name| DebugFlag {
                name: name.to_string(),
                enabled: true,
            })
            .collect(),
    )
}

#[test]
fn three_segments_sample() {
    let config = parse(THREE_SEGMENTS);
    assert_eq!(config.segments.len(), 3);
    for (index, segment) in config.segments.iter().enumerate() {
        let own = ip(127, 0, 0, index as u8 + 1);
        assert_eq!(segment.address, ip(127, 0, 0, 255));
        assert_eq!(segment.port, 4803);
        assert_eq!(segment.daemons.len(), 1);
        let daemon = &segment.daemons[0];
        assert_eq!(daemon.name, format!("n{}", index + 1));
        assert_eq!(daemon.address, own);
        assert_eq!(daemon.interfaces, daemon_and_client_on(own));
    }
    assert_eq!(config.segments[1].line, 14);
    assert_eq!(config.segments[1].daemons[0].line, 15);
    assert_eq!(
        config.debug_flags,
        enabled_flags(&["PRINT", "EXIT", "MEMBERSHIP", "CONFIGURATION"])
    );
    assert_eq!(config.debug_mask(), Some(0x4 | 0x2 | 0x200 | 0x100));
    assert_eq!(
        config.event_time_stamp,
        Some(Some("[%H:%M:%S]".to_string()))
    );
    assert!(config.warnings.is_empty());
}

#[test]
fn one_broadcast_segment_sample() {
    let config = parse(ONE_BROADCAST_SEGMENT);
    assert_eq!(config.segments.len(), 1);
    let segment = &config.segments[0];
    assert_eq!(
        (segment.address, segment.port),
        (ip(127, 255, 255, 255), 4803)
    );
    let names: Vec<&str> = config.all_daemons().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["n1", "n2", "n3"]);
    assert_eq!(
        segment.daemons[2].interfaces,
        daemon_and_client_on(ip(127, 0, 0, 3))
    );
}

#[test]
fn corpus_samples() {
    let three = parse(CORPUS_THREE_SEGMENTS);
    assert_eq!(three.daemon_by_name("n3"), Some((2, 0)));
    assert_eq!(three.daemon_by_address(ip(127, 0, 0, 12)), Some((1, 0)));
    assert_eq!(
        three.debug_flags,
        enabled_flags(&["PRINT", "EXIT", "MEMBERSHIP", "CONFIGURATION", "SESSION"])
    );

    let ip_auth = parse(CORPUS_IP_AUTH);
    assert_eq!(ip_auth.allowed_auth_methods, ["IP"]);
    assert!(ip_auth.required_auth_methods.is_empty());
    assert_eq!(ip_auth.daemon_count(), 1);
    assert!(ip_auth.warnings.is_empty());
}

// ----- segments, daemons and interfaces ------------------------------------

#[test]
fn minimal_file_uses_default_port_and_wildcard_interfaces() {
    let config = parse("Spread_Segment 127.0.0.255 {\n\tlocalhost 127.0.0.1\n}\n");
    let segment = &config.segments[0];
    assert_eq!(segment.port, DEFAULT_PORT);
    let daemon = &segment.daemons[0];
    assert!(daemon.interfaces.is_empty());
    assert_eq!(
        daemon.listen_interfaces(),
        [Interface {
            address: Ipv4Addr::UNSPECIFIED,
            kinds: InterfaceKinds::ALL
        }]
    );
    assert_eq!(config.event_time_stamp, None);
    assert_eq!(config.debug_flags, None);
    assert_eq!(config.socket_port_reuse, PortReuse::Auto);
    assert!(!config.dangerous_monitor);
}

#[test]
fn port_zero_means_default_port() {
    let config = parse("Spread_Segment 225.0.1.1:0 { m1 1.2.3.4 }");
    assert_eq!(config.segments[0].port, 4803);
    let config = parse("Spread_Segment 225.0.1.1:3333 { m1 1.2.3.4 }");
    assert_eq!(config.segments[0].port, 3333);
}

#[test]
fn multihomed_interfaces_with_and_without_letters() {
    let text = "Spread_Segment 225.0.1.1 {
    multihomed1 1.2.3.4 {
        D 192.168.0.4
        C 1.2.3.4 }
    multihomed2 1.2.3.5 { D C M 192.168.0.5 C 127.0.0.1 }
    multihomed3 1.2.3.6 {
        192.168.0.6
        1.2.3.6 }
}";
    let config = parse(text);
    let daemons = &config.segments[0].daemons;
    assert_eq!(daemons[0].interfaces, {
        let mut expected = daemon_and_client_on(ip(1, 2, 3, 4));
        expected[0].address = ip(192, 168, 0, 4);
        expected
    });
    assert_eq!(daemons[1].interfaces[0].kinds, InterfaceKinds::ALL);
    assert_eq!(daemons[1].interfaces[1].address, ip(127, 0, 0, 1));
    assert!(daemons[2]
        .interfaces
        .iter()
        .all(|interface| interface.kinds == InterfaceKinds::ALL));
    // Spread finds a daemon by any of its interface addresses.
    assert_eq!(config.daemon_by_address(ip(192, 168, 0, 6)), Some((0, 2)));
    assert_eq!(config.daemon_by_address(ip(9, 9, 9, 9)), None);
}

#[test]
fn daemons_without_address_are_resolved_by_name() {
    let config = parse("Spread_Segment 10.0.0.255 {\n hosta\n hostb { D 10.0.0.2 }\n}");
    let daemons = &config.segments[0].daemons;
    assert_eq!(daemons[0].address, ip(10, 0, 0, 1));
    assert!(daemons[0].resolved_from_name);
    assert_eq!(daemons[1].address, ip(10, 0, 0, 2));
    assert_eq!(daemons[1].interfaces.len(), 1);
    assert_eq!(
        error("Spread_Segment 10.0.0.255 {\n  nosuchhost\n}"),
        "spread.conf:2:3: cannot resolve daemon name 'nosuchhost' to an IPv4 address; \
         write the address after the name"
    );
}

#[test]
fn quoted_names_may_hold_blanks_and_reserved_words() {
    let config = parse(
        "Spread_Segment 127.0.0.255 {\n \"my host\" 127.0.0.1\n 'D' 127.0.0.2\n \"ALL\" 127.0.0.3 }",
    );
    let names: Vec<&str> = config.all_daemons().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["my host", "D", "ALL"]);
}

#[test]
fn reserved_word_as_daemon_name_is_an_error() {
    assert_eq!(
        error("Spread_Segment 127.0.0.255 {\n  D 127.0.0.1\n}"),
        "spread.conf:2:3: expected a daemon name or '}', found reserved word 'D' \
         (reserved words must be quoted to be used as text)"
    );
    assert_eq!(
        error("Spread_Segment 127.0.0.255 {\n  4803 127.0.0.1\n}"),
        "spread.conf:2:3: expected a daemon name or '}', found '4803' \
         (numbers must be quoted to be used as text)"
    );
}

#[test]
fn lookup_helpers_follow_configuration_order() {
    let config = parse(CORPUS_THREE_SEGMENTS);
    let order: Vec<Ipv4Addr> = config.all_daemons().map(|d| d.address).collect();
    assert_eq!(
        order,
        [ip(127, 0, 0, 11), ip(127, 0, 0, 12), ip(127, 0, 0, 13)]
    );
    assert_eq!(config.daemon_by_name("n2"), Some((1, 0)));
    assert_eq!(config.daemon_by_name("N2"), None);
    let found = config.daemon(config.daemon_by_name("n1").unwrap()).unwrap();
    assert_eq!(found.address, ip(127, 0, 0, 11));
}

#[test]
fn daemon_and_interface_ports_are_ignored_with_a_warning() {
    let config = parse("Spread_Segment 127.0.0.255:4803 {\n n1 127.0.0.1:5000 { D 127.0.0.1:4803 C 127.0.0.1:6000 }\n}");
    let messages: Vec<String> = config.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        messages,
        [
            "spread.conf:2:5: port 5000 on a daemon address is ignored; the segment's port 4803 is used",
            "spread.conf:2:41: port 6000 on an interface address is ignored; the segment's port 4803 is used",
        ]
    );
}

// ----- directives -----------------------------------------------------------

#[test]
fn debug_flags_with_negation() {
    let config = parse(&format!(
        "DebugFlags = {{ ALL !DATA_LINK ! NETWORK }}\n{ONE_DAEMON}"
    ));
    let flags = config.debug_flags.as_ref().unwrap();
    assert_eq!(flags.len(), 3);
    assert!(flags[0].enabled && !flags[1].enabled && !flags[2].enabled);
    assert_eq!(config.debug_mask(), Some(!0x30));
    // Each block replaces the previous one; an empty block means no events.
    let config = parse(&format!(
        "DebugFlags = {{ PRINT }}\nDebugFlags = {{ }}\n{ONE_DAEMON}"
    ));
    assert_eq!(config.debug_mask(), Some(0));
}

#[test]
fn debug_flag_errors() {
    assert_eq!(
        error("DebugFlags = { PRINT print }"),
        "spread.conf:1:22: expected a debug flag name, '!' or '}', found 'print' \
         (names are case-sensitive: did you mean 'PRINT'?)"
    );
    // A '!' ending its line is an ordinary word, as in Spread.
    assert_eq!(
        error("DebugFlags = { PRINT !\nEXIT }"),
        "spread.conf:1:22: expected a debug flag name, '!' or '}', found '!'"
    );
}

#[test]
fn event_priority_levels() {
    for (word, level) in EventPriority::KEYWORDS {
        let config = parse(&format!("EventPriority = {word}\n{ONE_DAEMON}"));
        assert_eq!(config.event_priority, Some(level));
    }
    assert_eq!(
        error("EventPriority = DEBUG"),
        "spread.conf:1:17: expected pDEBUG, INFO, WARNING, ERROR, CRITICAL or FATAL, \
         found reserved word 'DEBUG' (as a priority, Spread spells it 'pDEBUG')"
    );
}

#[test]
fn event_log_file_and_host_name_expansion() {
    let config = parse(&format!(
        "EventLogFile = /var/log/spread_%h-%H.%x%\n{ONE_DAEMON}"
    ));
    assert_eq!(
        config.event_log_file.as_deref(),
        Some("/var/log/spread_%h-%H.%x%")
    );
    assert_eq!(
        config.expand_log_file_name("box1").as_deref(),
        Some("/var/log/spread_box1-box1.%x%")
    );
    assert_eq!(parse(ONE_DAEMON).expand_log_file_name("box1"), None);
}

#[test]
fn event_time_stamp_with_and_without_format() {
    let config = parse(&format!("EventTimeStamp\n{ONE_DAEMON}"));
    assert_eq!(config.event_time_stamp, Some(None));
    let config = parse(&format!(
        "EventTimeStamp = '[%a %d %b %Y %H:%M:%S]'\n{ONE_DAEMON}"
    ));
    assert_eq!(
        config.event_time_stamp,
        Some(Some("[%a %d %b %Y %H:%M:%S]".to_string()))
    );
}

#[test]
fn boolean_and_port_reuse_values_ignore_case() {
    for (word, expected) in [
        ("true", true),
        ("YES", true),
        ("False", false),
        ("no", false),
    ] {
        let config = parse(&format!("DangerousMonitor = {word}\n{ONE_DAEMON}"));
        assert_eq!(config.dangerous_monitor, expected, "{word}");
    }
    for (word, expected) in [
        ("AUTO", PortReuse::Auto),
        ("on", PortReuse::On),
        ("Off", PortReuse::Off),
    ] {
        let config = parse(&format!("SocketPortReuse = {word}\n{ONE_DAEMON}"));
        assert_eq!(config.socket_port_reuse, expected, "{word}");
    }
    assert_eq!(
        error("DangerousMonitor = on"),
        "spread.conf:1:20: expected true, false, yes or no, found reserved word 'on' \
         (reserved words must be quoted to be used as text)"
    );
}

#[test]
fn runtime_dir_user_and_group() {
    let config = parse(&format!(
        "RuntimeDir = /var/run/spread\nDaemonUser = spread\nDaemonGroup = \"daemon\"\n{ONE_DAEMON}"
    ));
    assert_eq!(config.runtime_dir.as_deref(), Some("/var/run/spread"));
    assert_eq!(config.daemon_user.as_deref(), Some("spread"));
    assert_eq!(config.daemon_group.as_deref(), Some("daemon"));
    // Spread ignores empty values.
    let config = parse(&format!("DaemonUser = \"\"\n{ONE_DAEMON}"));
    assert_eq!(config.daemon_user, None);
    assert_eq!(
        config.warnings[0].to_string(),
        "spread.conf:1:14: empty DaemonUser is ignored"
    );
    assert_eq!(
        error(&format!("DaemonGroup = {}", "g".repeat(33))),
        "spread.conf:1:15: DaemonGroup is longer than 32 bytes"
    );
}

#[test]
fn auth_methods_and_policy() {
    let config = parse(&format!(
        "AllowedAuthMethods = \"NULL IP\"\nRequiredAuthMethods = \"IP  KERBEROS\"\n\
         AccessControlPolicy = \"PERMIT\"\n{ONE_DAEMON}"
    ));
    assert_eq!(config.allowed_auth_methods, ["NULL", "IP"]);
    assert_eq!(config.required_auth_methods, ["IP", "KERBEROS"]);
    assert_eq!(config.access_control_policy.as_deref(), Some("PERMIT"));
    assert_eq!(
        config.warnings[0].to_string(),
        "spread.conf:2:23: unknown authentication method 'KERBEROS' (Spread ignores it)"
    );
    assert_eq!(
        error("AccessControlPolicy = DENY"),
        "spread.conf:1:23: unknown access control policy 'DENY': expected one of PERMIT"
    );
}

#[test]
fn link_protocol_and_route_matrix() {
    let text = "Spread_Segment 10.0.0.255 { a 10.0.0.1 }
Spread_Segment 10.0.1.255 { b 10.0.1.1 }
LinkProtocol = Hop
RouteMatrix {
  0 1
  1 0 # costs
  250 7 9
}";
    let config = parse(text);
    assert_eq!(config.link_protocol, Some(LinkProtocol::Hop));
    let tcp = parse(&format!("LinkProtocol = TcpHop\n{ONE_DAEMON}"));
    assert_eq!(tcp.link_protocol, Some(LinkProtocol::TcpHop));
    assert_eq!(
        config.route_matrix,
        [vec![0, 1], vec![1, 0], vec![100, 7, 9]]
    );
    assert_eq!(
        config.warnings[0].to_string(),
        "spread.conf:7:3: link cost 250 is lowered to 100"
    );
    assert_eq!(
        error("Spread_Segment 10.0.0.255 { a 10.0.0.1 }\nSpread_Segment 10.0.1.255 { b 10.0.1.1 }\nRouteMatrix {\n 5\n}"),
        "spread.conf:4:2: route matrix row has 1 costs, expected one for each of the 2 segments declared above"
    );
}

#[test]
fn timeouts_extension() {
    let names = [
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
    let text: String = names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{name} = {}\n", 100 + i))
        .collect();
    let config = parse(&format!("{text}{ONE_DAEMON}"));
    let t = config.timeouts;
    let got = [
        t.token, t.hurry, t.alive, t.join, t.rep, t.seg, t.gather, t.form, t.lookup,
    ];
    for (i, value) in got.iter().enumerate() {
        assert_eq!(*value, Some(Duration::from_millis(100 + i as u64)));
    }
    assert_eq!(
        error("TokenTimeout = 0"),
        "spread.conf:1:16: TokenTimeout must be a positive number of milliseconds, found '0'"
    );
    assert_eq!(
        error("JoinTimeout = soon"),
        "spread.conf:1:15: expected a whole number of milliseconds, found 'soon'"
    );
}

#[test]
fn directives_are_recorded_for_the_daemon_to_judge() {
    let config = parse(&format!(
        "EventPriority = INFO\n\nTokenTimeout = 5\n{ONE_DAEMON}"
    ));
    let names: Vec<&str> = config.directives.iter().map(|d| d.name).collect();
    assert_eq!(names, ["EventPriority", "TokenTimeout", "Spread_Segment"]);
    let warnings: Vec<String> = config
        .unsupported_directives(&["Spread_Segment", "TokenTimeout"])
        .iter()
        .map(|w| w.to_string())
        .collect();
    assert_eq!(
        warnings,
        ["spread.conf:1:1: 'EventPriority' is accepted but this daemon ignores it"]
    );
}

// ----- lexical details --------------------------------------------------------

#[test]
fn comments_everywhere() {
    let text = "# leading comment
DebugFlags = { PRINT # inside the flag list
  EXIT }#glued to a brace
Spread_Segment 127.0.0.255:4803 { # after the brace
  n1 # between name and address
  127.0.0.1 { # interface block
     D 127.0.0.1 # after an interface
  } # after the block
  n2#glued to a name
  127.0.0.2
} # trailing
# final comment without newline";
    let config = parse(text);
    assert_eq!(config.debug_flags, enabled_flags(&["PRINT", "EXIT"]));
    let names: Vec<&str> = config.all_daemons().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["n1", "n2"]);
    assert_eq!(config.segments[0].daemons[1].address, ip(127, 0, 0, 2));
}

#[test]
fn crlf_line_endings() {
    let text = THREE_SEGMENTS.replace('\n', "\r\n");
    assert_eq!(parse(&text).segments, parse(THREE_SEGMENTS).segments);
    assert_eq!(
        error("DebugFlags = { PRINT }\r\nSpread_Segment 127.0.0.255 {\r\n = \r\n}\r\n"),
        "spread.conf:3:2: expected a daemon name or '}', found '='"
    );
}

#[test]
fn quoted_strings_follow_the_longest_match_rule() {
    // The word `"log"x` reaching the next blank is longer than the quoted
    // part, so it is taken whole, quotes included.
    let config = parse(&format!("EventLogFile = \"log\"x\n{ONE_DAEMON}"));
    assert_eq!(config.event_log_file.as_deref(), Some("\"log\"x"));
    // A quoted string may span lines; later line numbers stay right.
    let text = "EventLogFile = 'a\nb'\nSpread_Segment 127.0.0.255 {\n = }";
    assert_eq!(
        error(text),
        "spread.conf:4:2: expected a daemon name or '}', found '='"
    );
}

#[test]
fn equals_must_stand_alone() {
    assert_eq!(
        error("EventLogFile=/tmp/x"),
        "spread.conf:1:1: expected a directive or Spread_Segment, found 'EventLogFile=/tmp/x' \
         (put blanks around '=')"
    );
}

#[test]
fn empty_and_comment_only_files_are_errors() {
    assert_eq!(
        error(""),
        "spread.conf:1:1: expected at least one Spread_Segment with a daemon, found end of file"
    );
    assert_eq!(
        error("# nothing\n\nDebugFlags = { PRINT }\n"),
        "spread.conf:4:1: expected at least one Spread_Segment with a daemon, found end of file"
    );
    assert_eq!(
        error("Spread_Segment 127.0.0.255 { }\n"),
        "spread.conf:2:1: expected at least one Spread_Segment with a daemon, found end of file"
    );
}

// ----- error kinds --------------------------------------------------------------

#[test]
fn unknown_directive() {
    assert_eq!(
        error("Spread_Segment 127.0.0.255 { n1 127.0.0.1 }\nMaxSessions = 5\n"),
        "spread.conf:2:1: expected a directive or Spread_Segment, found 'MaxSessions'"
    );
    assert_eq!(
        error("eventlogfile = x"),
        "spread.conf:1:1: expected a directive or Spread_Segment, found 'eventlogfile' \
         (names are case-sensitive: did you mean 'EventLogFile'?)"
    );
}

#[test]
fn misplaced_equals_inside_segment() {
    let text = "# header\n\n\n\n\nSpread_Segment 127.0.0.255 {\n    = n1 127.0.0.1\n}";
    assert_eq!(
        error(text),
        "spread.conf:7:5: expected a daemon name or '}', found '='"
    );
    assert_eq!(
        error("Spread_Segment 127.0.0.255 {\n  n1 = 127.0.0.1\n}"),
        "spread.conf:2:6: expected an address or '{' after the daemon name, \
         another daemon name or '}', found '='"
    );
}

#[test]
fn bad_addresses_and_ports() {
    assert_eq!(
        error("Spread_Segment 127.0.0.255 {\n  n1 127.0.0.256\n}"),
        "spread.conf:2:6: invalid IPv4 address '127.0.0.256': each part must be 0 to 255"
    );
    assert_eq!(
        error("Spread_Segment 127.0.0.255:65535 { n1 127.0.0.1 }"),
        "spread.conf:1:16: port 65535 is out of range: expected 1 to 65534 \
         (the daemon also uses the port after it)"
    );
    assert_eq!(
        error("Spread_Segment 127.0.0.255 4803 { n1 127.0.0.1 }"),
        "spread.conf:1:28: expected '{' to open the segment, found '4803' \
         (numbers must be quoted to be used as text)"
    );
    assert_eq!(
        error("Spread_Segment localnet { n1 127.0.0.1 }"),
        "spread.conf:1:16: expected the segment's broadcast or multicast address \
         (A.B.C.D or A.B.C.D:PORT), found 'localnet'"
    );
}

#[test]
fn daemon_name_length_limit() {
    let ok = format!(
        "Spread_Segment 127.0.0.255 {{ {} 127.0.0.1 }}",
        "a".repeat(19)
    );
    assert_eq!(parse(&ok).segments[0].daemons[0].name.len(), 19);
    let too_long = format!(
        "Spread_Segment 127.0.0.255 {{ {} 127.0.0.1 }}",
        "a".repeat(20)
    );
    assert_eq!(
        error(&too_long),
        format!(
            "spread.conf:1:30: daemon name '{}' is 20 bytes long, at most 19 are allowed",
            "a".repeat(20)
        )
    );
}

#[test]
fn duplicate_daemon_name_and_address() {
    assert_eq!(
        error("Spread_Segment 127.0.0.255 {\n n1 127.0.0.1\n n1 127.0.0.2\n}"),
        "spread.conf:3:2: daemon name 'n1' is already used on line 2"
    );
    assert_eq!(
        error("Spread_Segment 127.0.0.255 {\n n1 127.0.0.1\n}\nSpread_Segment 127.0.1.255 {\n n2 127.0.0.1\n}"),
        "spread.conf:5:5: address 127.0.0.1 is already used by daemon 'n1' on line 2"
    );
}

#[test]
fn too_many_daemons_and_segments() {
    // Past 3.17's 128 daemons: accepted, in extended mode, with a warning saying so.
    let mut text = String::from("Spread_Segment 10.0.0.255 {\n");
    for i in 0..130 {
        text.push_str(&format!(" d{i} 10.0.{}.{}\n", i / 200, i % 200 + 1));
    }
    text.push('}');
    let config = parse_str(&text, "spread.conf").expect("130 daemons are accepted");
    assert_eq!(config.daemon_count(), 130);
    assert!(
        config.warnings.iter().any(|w| w
            .to_string()
            .contains("spread.conf:130:2: more than 128 daemons: the ring runs in extended mode")),
        "{:?}",
        config.warnings
    );
    let mut text = String::from("Spread_Segment 10.0.0.255 {\n");
    for i in 0..4097 {
        text.push_str(&format!(
            " d{i} 10.{}.{}.{}\n",
            i / 60000,
            (i / 200) % 250,
            i % 200 + 1
        ));
    }
    text.push('}');
    assert!(error(&text).contains("too many daemons: at most 4096"));

    let mut text = String::new();
    for i in 0..21 {
        text.push_str(&format!(
            "Spread_Segment 10.0.{i}.255 {{ d{i} 10.0.{i}.1 }}\n"
        ));
    }
    assert_eq!(
        error(&text),
        "spread.conf:21:1: too many segments: Spread allows at most 20"
    );
}

#[test]
fn interface_block_limits() {
    let eleven: String = (1..=11).map(|i| format!(" D 10.0.0.{i}")).collect();
    assert_eq!(
        error(&format!(
            "Spread_Segment 10.0.0.255 {{ n1 10.0.0.1 {{{eleven} }} }}"
        )),
        "spread.conf:1:154: too many interfaces: a daemon may have at most 10"
    );
    assert_eq!(
        error("Spread_Segment 10.0.0.255 {\n n1 10.0.0.1 {\n }\n}"),
        "spread.conf:3:2: expected an interface address (an interface block cannot be empty), found '}'"
    );
    assert_eq!(
        error("Spread_Segment 10.0.0.255 { n1 10.0.0.1 { ANY 10.0.0.1 } }"),
        "spread.conf:1:43: expected an interface address, D, C, M or '}', found 'ANY' \
         (Spread has no ANY; an address without D, C or M carries every kind)"
    );
    assert_eq!(
        error("Spread_Segment 10.0.0.255 { n1 10.0.0.1 { D C } }"),
        "spread.conf:1:47: expected an interface address, found '}'"
    );
}

#[test]
fn loopback_and_network_segments_cannot_mix() {
    assert_eq!(
        error("Spread_Segment 127.0.0.255 { a 127.0.0.1 }\nSpread_Segment 10.0.0.255 { b 10.0.0.1 }"),
        "spread.conf:2:16: segment 10.0.0.255 cannot be combined with segment 127.0.0.255 (line 1): \
         loopback and network segments cannot be mixed"
    );
}

#[test]
fn unterminated_block_reports_end_of_file() {
    assert_eq!(
        error("Spread_Segment 127.0.0.255 {\n n1 127.0.0.1\n"),
        "spread.conf:3:1: expected a daemon name or '}', found end of file"
    );
}

// ----- entry points ---------------------------------------------------------------

#[test]
fn embedded_default_is_the_minimal_sample() {
    let config = Config::embedded_default();
    assert_eq!(config.segments.len(), 1);
    let segment = &config.segments[0];
    assert_eq!((segment.address, segment.port), (ip(127, 0, 0, 255), 4803));
    assert_eq!(segment.daemons[0].name, EMBEDDED_DEFAULT_DAEMON_NAME);
    assert_eq!(config.daemon_by_address(Ipv4Addr::LOCALHOST), Some((0, 0)));
    let reparsed = parse("Spread_Segment 127.0.0.255:4803 {\nlocalhost 127.0.0.1\n}");
    assert_eq!(
        reparsed.segments[0].daemons[0].address,
        segment.daemons[0].address
    );
}

#[test]
fn parse_file_reads_files_and_reports_io_errors() {
    let directory = std::env::temp_dir().join(format!("spread-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("spread.conf");
    std::fs::write(&path, THREE_SEGMENTS).unwrap();
    assert_eq!(parse_file(&path).unwrap().daemon_count(), 3);

    let missing = directory.join("missing.conf");
    let err = parse_file(&missing).unwrap_err();
    assert_eq!(err.diagnostic().line, 0);
    assert!(err.to_string().starts_with(&format!(
        "{}:0:0: cannot read configuration file:",
        missing.display()
    )));
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn flow_control_windows() {
    let config = parse_str(
        &format!("Window = 60\nPersonalWindow = 15\n{ONE_DAEMON}"),
        "spread.conf",
    )
    .unwrap();
    assert_eq!(
        (config.window, config.personal_window),
        (Some(60), Some(15))
    );
    assert_eq!(
        error("Window = 0"),
        "spread.conf:1:10: Window must be a number of datagrams from 1 to 30000, found '0'"
    );
}

#[test]
fn client_keepalive_directives() {
    let config = parse_str(
        &format!("ClientKeepaliveIdle = 2\nClientKeepaliveInterval = 1\nClientKeepaliveCount = 4\n{ONE_DAEMON}"),
        "spread.conf",
    )
    .unwrap();
    assert_eq!(
        (
            config.client_keepalive_idle,
            config.client_keepalive_interval,
            config.client_keepalive_count
        ),
        (Some(2), Some(1), Some(4))
    );
    assert_eq!(
        error("ClientKeepaliveCount = 0"),
        "spread.conf:1:24: ClientKeepaliveCount must be a number of probes from 1 to 100, found '0'"
    );
}
