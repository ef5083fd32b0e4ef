use spread_sim::{check, Faults, Rng, Scenario, World};
use std::time::Duration;

#[test]
fn three_daemons_without_faults() {
    let scenario = Scenario {
        daemons: 3,
        segments: 1,
        clients_per_daemon: 1,
        client_spacing: 1,
        duration: Duration::from_secs(2),
        send_every: Duration::from_millis(20),
        faults: Faults::none(),
        timeouts: spread_daemon::core::ring::Timeouts::fast(),
    };
    let logs = World::new(1, scenario).run();
    for l in &logs {
        println!(
            "{} delivered {} events, sent {}",
            l.name,
            l.events.len(),
            l.sent.len()
        );
    }
    let violations = check(&logs);
    assert!(violations.is_empty(), "{violations:#?}");
    let _ = Rng::new(0);
}
