//! The world drives each daemon's core as the real event loop does: backpressure (no client
//! is read while a receiver is congested), sessions the core drops, and a monitor's order
//! to exit. Each case checks that the run kept Extended Virtual Synchrony, and that the
//! thing it is about happened.

use spread_daemon::core::ring::Timeouts;
use spread_sim::{check, Faults, Scenario, World};
use std::time::Duration;

fn busy_ring(faults: Faults) -> Scenario {
    Scenario {
        daemons: 3,
        segments: 1,
        clients_per_daemon: 2,
        client_spacing: 1,
        duration: Duration::from_secs(4),
        send_every: Duration::from_millis(5),
        faults,
        timeouts: Timeouts::fast(),
        flow: Default::default(),
    }
}

/// Clients pause reading for up to 1.5 s (under the core's 2 s grace): their queues pass
/// the congestion mark, their daemons stop reading every client until they drain, and no
/// one is dropped.
#[test]
fn a_client_that_pauses_reading_holds_back_its_daemons_senders() {
    let scenario = busy_ring(Faults {
        stall_every: Some(Duration::from_millis(400)),
        max_stall: Duration::from_millis(1500),
        ..Faults::none()
    });
    let mut world = World::new(3, scenario);
    let logs = world.run_in_place();
    let violations = check(&logs);
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(world.reads_paused > 0, "no read was ever held back");
    assert_eq!(world.sessions_closed, 0, "a client was dropped");
    assert!(logs.iter().all(|l| l.alive_at_end), "{logs:#?}");
}

/// Clients pause reading for up to 6 s: one that stays congested past the grace is dropped
/// (its queued messages discarded), and everyone else carries on.
#[test]
fn a_client_that_stops_reading_is_dropped() {
    let scenario = busy_ring(Faults {
        stall_every: Some(Duration::from_millis(800)),
        max_stall: Duration::from_secs(6),
        ..Faults::none()
    });
    let mut world = World::new(5, scenario);
    let logs = world.run_in_place();
    let violations = check(&logs);
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(world.sessions_closed > 0, "no client was dropped");
    assert!(logs.iter().any(|l| l.crashed && !l.alive_at_end));
    assert!(logs.iter().any(|l| l.alive_at_end));
}

/// With `DangerousMonitor`, a monitor's partition naming a daemon alone in a negative
/// component makes it exit: its clients' sessions end, and it is restarted later.
#[test]
fn a_daemon_a_monitor_tells_to_exit_stops() {
    let mut scenario = busy_ring(Faults {
        exit_every: Some(Duration::from_millis(700)),
        ..Faults::none()
    });
    scenario.daemons = 4;
    scenario.send_every = Duration::from_millis(20);
    assert!(scenario.spread_conf().contains("DangerousMonitor = yes"));
    let mut world = World::new(11, scenario);
    let logs = world.run_in_place();
    let violations = check(&logs);
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(world.daemon_exits > 0, "no daemon exited");
    assert!(
        logs.iter().any(|l| l.crashed),
        "no session ended with its daemon"
    );
    assert!(logs.iter().any(|l| l.alive_at_end));
}
