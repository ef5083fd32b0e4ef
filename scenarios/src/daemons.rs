//! The daemons a scenario runs against: a [`Ring`] of the test kit (spread-testkit), one
//! kind of daemon, numbered from 0 as scripts number them.

use spread_testkit::{DaemonKind, Ring};
use std::time::Duration;

/// `count` daemons of one kind, `n1` on 127.0.0.1, `n2` on 127.0.0.2, …, each alone in its
/// segment, all on one port (one daemon has the plain one-segment config).
pub struct Cluster {
    pub kind: DaemonKind,
    pub ring: Ring,
}

impl Cluster {
    /// Starts the daemons and waits until they order messages as one ring.
    pub fn start(kind: &DaemonKind, count: usize) -> Cluster {
        let count = u8::try_from(count).expect("a scenario of at most 255 daemons");
        let ring = Ring::start_uniform(kind, count, "");
        if let Err(e) = ring.wait_until_one_ring(Duration::from_secs(60)) {
            panic!("{e}\n{}", ring.logs());
        }
        Cluster {
            kind: kind.clone(),
            ring,
        }
    }

    /// `port@127.0.0.n+1`, for clients of daemon `n` (0-based).
    pub fn address(&self, n: usize) -> String {
        self.ring.address(n as u8 + 1)
    }

    /// kill -9 of daemon `n` (0-based).
    pub fn kill(&mut self, n: usize) {
        self.ring.kill(n as u8 + 1);
    }
}
