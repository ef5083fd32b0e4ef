//! Each scenario four times: through libspread and through spread-rs, against the C daemon
//! and against ours. For each daemon the two recordings must be equal field by field, except
//! the fields the scenario names as legitimately different (group id times, names the
//! daemon picks).
#![cfg(feature = "libspread")]

use spread_scenarios::scenarios::scenario;
use spread_scenarios::*;

/// The daemons to run against: ours always (built if needed), C's when installed.
fn daemon_kinds(test: &str) -> Vec<DaemonKind> {
    let mut kinds = Vec::new();
    if let Some(c) = CSpread::find_or_skip(&format!("{test} against the C daemon")) {
        kinds.push(DaemonKind::C(c));
    }
    match build_our_daemon() {
        Ok(binary) => kinds.push(DaemonKind::rust(binary)),
        Err(e) => panic!("{test}: our daemon: {e}"),
    }
    kinds
}

/// Records `name` through both libraries against `kind` and compares the recordings;
/// returns the libspread recording.
fn record_both(name: &str, kind: &DaemonKind) -> Result<Vec<Vec<Record>>, String> {
    let sc = scenario(name, kind.is_c());
    let with_rs = {
        let mut cluster = Cluster::start(kind, sc.daemons);
        run(&sc, &SpreadRs, &mut cluster)
    };
    let with_c = {
        let mut cluster = Cluster::start(kind, sc.daemons);
        let _one_at_a_time = LIBSPREAD.lock().unwrap_or_else(|e| e.into_inner());
        run(&sc, &LibSpread, &mut cluster)
    };
    if std::env::var_os("SCENARIO_PRINT").is_some() {
        println!(
            "--- {name} against {}, libspread:\n{}--- spread-rs:\n{}",
            kind.label(),
            render(&with_c),
            render(&with_rs)
        );
    }
    let actions: Vec<String> = sc.actions.iter().map(Action::describe).collect();
    let cmp = compare(
        &actions,
        &sc.known,
        &sc.ignore,
        ("libspread", &with_c),
        ("spread-rs", &with_rs),
    );
    let records: usize = with_c.iter().map(Vec::len).sum();
    for known in &cmp.known_seen {
        println!(
            "{name} against {}: known difference at {known}",
            kind.label()
        );
    }
    if cmp.ok() {
        println!(
            "{name} against {}: libspread == spread-rs ({records} records; ignoring {:?}; {} known difference(s))",
            kind.label(),
            sc.ignore,
            cmp.known_seen.len()
        );
        Ok(with_c)
    } else {
        Err(format!(
            "{name} against {}: libspread and spread-rs differ (ignoring {:?}):\n{}\n\
             --- libspread recording:\n{}--- spread-rs recording:\n{}",
            kind.label(),
            sc.ignore,
            cmp.unexpected
                .iter()
                .chain(&cmp.known_missing)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            render(&with_c),
            render(&with_rs)
        ))
    }
}

fn differential(name: &str, only_ours: bool) {
    let mut failures = Vec::new();
    let mut by_daemon = Vec::new();
    for kind in daemon_kinds(name) {
        if only_ours && kind.is_c() {
            println!(
                "{name}: not run against the C daemon (C 3.17.3 aborts on a message over its limit)"
            );
            continue;
        }
        match record_both(name, &kind) {
            Ok(recording) => by_daemon.push((kind, recording)),
            Err(e) => failures.push(e),
        }
    }
    note_daemon_differences(name, &by_daemon);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Not asserted: where the C daemon and ours gave libspread different results for the
/// same script (group ids and daemon-picked names blanked).
fn note_daemon_differences(name: &str, by_daemon: &[(DaemonKind, Vec<Vec<Record>>)]) {
    let [(c_kind, c), (_, ours)] = by_daemon else {
        return;
    };
    let (sc_c, sc_ours) = (scenario(name, true), scenario(name, false));
    let actions: Vec<String> = sc_c.actions.iter().map(Action::describe).collect();
    let same_script = actions
        == sc_ours
            .actions
            .iter()
            .map(Action::describe)
            .collect::<Vec<_>>();
    if !c_kind.is_c() || !same_script {
        return;
    }
    let cmp = compare(
        &actions,
        &Default::default(),
        &[Ignore::GroupId, Ignore::AssignedNames],
        ("C daemon", c),
        ("our daemon", ours),
    );
    for d in &cmp.unexpected {
        println!("{name}: note, the daemons differ (libspread) at {d}");
    }
}

#[test]
fn every_service_type() {
    differential("every_service_type", false);
}

#[test]
fn self_discard() {
    differential("self_discard", false);
}

#[test]
fn multigroup() {
    differential("multigroup", false);
}

#[test]
fn membership_join_leave_disconnect() {
    differential("membership_join_leave_disconnect", false);
}

#[test]
fn membership_network() {
    differential("membership_network", false);
}

#[test]
fn large_messages() {
    differential("large_messages", false);
}

#[test]
fn connect_errors() {
    differential("connect_errors", false);
}

#[test]
fn group_and_message_errors() {
    differential("group_and_message_errors", false);
}

#[test]
fn daemon_killed() {
    differential("daemon_killed", false);
}

#[test]
fn library_limit() {
    differential("library_limit", true);
}

#[test]
fn too_many_groups() {
    differential("too_many_groups", false);
}

#[test]
fn no_groups() {
    differential("no_groups", false);
}

#[test]
fn every_scenario_has_a_test() {
    let source = include_str!("differential.rs");
    for name in spread_scenarios::scenarios::NAMES {
        assert!(
            source.contains(&format!("fn {name}()")),
            "scenario {name} has no test"
        );
    }
}
