//! Waiting until daemons order messages: listening is not enough, as a C daemon forms its
//! ring (even a ring of one) seconds after it starts listening, and orders nothing before.

use std::time::{Duration, Instant};

/// One probe client at each of `addresses` joins a group until the first probe sees them
/// all in one membership: the daemons then order messages as one ring. The probes leave,
/// and their departure is given time to be ordered before the caller's own traffic.
pub fn wait_until_one_ring(addresses: &[String], within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut probes = Vec::new();
    for (i, address) in addresses.iter().enumerate() {
        // 3.17's exact bytes: a C daemon forming its ring answers no liveness probe.
        let options = spread::ConnectOptions::new(address.as_str())
            .name(format!("probe{i}"))
            .liveness(None);
        let mut probe =
            spread::Mailbox::connect(&options).map_err(|e| format!("probe of {address}: {e}"))?;
        probe
            .join("ring-probe")
            .map_err(|e| format!("probe of {address}: {e}"))?;
        probes.push(probe);
    }
    let Some(first) = probes.first_mut() else {
        return Ok(());
    };
    let mut formed = false;
    while !formed && Instant::now() < deadline {
        match first.receive_timeout(Duration::from_millis(500)) {
            Ok(Some(spread::Event::Membership(m))) => {
                if let spread::MembershipChange::Regular { members, .. } = m.change {
                    formed = members.len() == addresses.len();
                }
            }
            Ok(_) => {}
            Err(e) => return Err(format!("probe: {e}")),
        }
    }
    for probe in probes {
        let _ = probe.disconnect();
    }
    if !formed {
        return Err(format!(
            "{} daemon(s) did not form one ring within {within:?}",
            addresses.len()
        ));
    }
    std::thread::sleep(Duration::from_millis(300));
    Ok(())
}

/// [`wait_until_one_ring`] for one daemon, within 30 s; panics when it does not.
pub fn wait_until_operational(address: &str) {
    if let Err(e) = wait_until_one_ring(&[address.to_string()], Duration::from_secs(30)) {
        panic!("daemon at {address} never delivered a membership: {e}");
    }
}
