//! N daemons, any of them C, each alone in its own segment on 127.0.0.1, .2, … (the layout of
//! the captured C ring), all on one port.

use crate::daemon::{alone_conf, spawn, Launch, Logs};
use crate::{
    free_port, make_world_readable, wait_until_one_ring, DaemonKind, RunningDaemon, TempDir,
};
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How a ring's daemons are spread over segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Each daemon alone in its segment (one daemon: the plain one-daemon config).
    SegmentPerDaemon,
    /// All in one segment, broadcast 127.255.255.255.
    OneSegment,
}

/// A ring of daemons `n1`, `n2`, … on 127.0.0.1, .2, …; daemons are numbered from 1, as
/// their names and addresses are.
pub struct Ring {
    pub port: u16,
    /// Holds `spread.conf` and every daemon's log and socket.
    pub dir: TempDir,
    /// Which implementation daemon `n` is, at `kinds[n - 1]`; may be changed before
    /// [`Ring::start_daemon`] restarts it as another.
    pub kinds: Vec<DaemonKind>,
    pub daemons: Vec<Option<RunningDaemon>>,
    /// Whether ours run with `--with-c-daemons`: set when the ring starts with a C daemon
    /// and kept, as every daemon of a ring must use the same timeouts.
    pub with_c_daemons: bool,
    /// Whether its daemons' logs are kept, restarted ones' too.
    pub logs: Logs,
}

impl Ring {
    /// The address of daemon `n`.
    pub fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, n)
    }

    /// The config of `count` daemons laid out as `layout`.
    pub fn conf_text(layout: Layout, port: u16, count: u8) -> String {
        let daemon = |n: u8| format!("    n{n} 127.0.0.{n} {{ D 127.0.0.{n} C 127.0.0.{n} }}\n");
        match layout {
            Layout::SegmentPerDaemon if count == 1 => alone_conf("n1", Ring::ip(1), port),
            Layout::SegmentPerDaemon => (1..=count)
                .map(|n| format!("Spread_Segment 127.0.0.255:{port} {{\n{}}}\n", daemon(n)))
                .collect(),
            Layout::OneSegment => format!(
                "Spread_Segment 127.255.255.255:{port} {{\n{}}}\n",
                (1..=count).map(daemon).collect::<String>()
            ),
        }
    }

    /// Starts one daemon of each of `kinds`, each alone in its segment, with `conf_extra`
    /// after the segments, and returns once each listens (not yet ordering messages: see
    /// [`Ring::wait_until_one_ring`]).
    pub fn try_start(kinds: Vec<DaemonKind>, conf_extra: &str) -> Result<Ring, String> {
        Ring::try_start_laid_out(kinds, Layout::SegmentPerDaemon, conf_extra)
    }

    /// [`Ring::try_start`] with the daemons laid out as `layout`.
    pub fn try_start_laid_out(
        kinds: Vec<DaemonKind>,
        layout: Layout,
        conf_extra: &str,
    ) -> Result<Ring, String> {
        Ring::try_start_with_logs(kinds, layout, conf_extra, Logs::Kept)
    }

    /// [`Ring::try_start_laid_out`], with the daemons' logs kept or discarded as `logs` says.
    pub fn try_start_with_logs(
        kinds: Vec<DaemonKind>,
        layout: Layout,
        conf_extra: &str,
        logs: Logs,
    ) -> Result<Ring, String> {
        let count = u8::try_from(kinds.len()).map_err(|_| "too many daemons")?;
        let ips: Vec<Ipv4Addr> = (1..=count).map(Ring::ip).collect();
        let port = free_port(&ips);
        let dir = TempDir::new("ring");
        let conf = dir.path().join("spread.conf");
        std::fs::write(
            &conf,
            format!("{}{conf_extra}", Ring::conf_text(layout, port, count)),
        )
        .map_err(|e| format!("writing {}: {e}", conf.display()))?;
        make_world_readable(dir.path());
        let mut ring = Ring {
            port,
            dir,
            with_c_daemons: kinds.iter().any(DaemonKind::is_c),
            daemons: (0..count).map(|_| None).collect(),
            kinds,
            logs,
        };
        for n in 1..=count {
            ring.try_start_daemon(n)?;
        }
        Ok(ring)
    }

    /// [`Ring::try_start`], panicking on failure.
    pub fn start(kinds: Vec<DaemonKind>, conf_extra: &str) -> Ring {
        Ring::try_start(kinds, conf_extra).unwrap_or_else(|e| panic!("starting a ring: {e}"))
    }

    /// `count` daemons of one kind.
    pub fn start_uniform(kind: &DaemonKind, count: u8, conf_extra: &str) -> Ring {
        Ring::start(vec![kind.clone(); usize::from(count)], conf_extra)
    }

    /// Starts (or restarts) daemon `n` as `kinds[n - 1]`.
    pub fn try_start_daemon(&mut self, n: u8) -> Result<(), String> {
        let daemon = spawn(&Launch {
            kind: &self.kinds[usize::from(n) - 1],
            name: &format!("n{n}"),
            ip: Ring::ip(n),
            port: self.port,
            conf: &self.dir.path().join("spread.conf"),
            dir: self.dir.path(),
            with_c_daemons: self.with_c_daemons,
            args: &[],
            logs: self.logs,
        })?;
        self.daemons[usize::from(n) - 1] = Some(daemon);
        Ok(())
    }

    /// [`Ring::try_start_daemon`], panicking on failure.
    pub fn start_daemon(&mut self, n: u8) {
        if let Err(e) = self.try_start_daemon(n) {
            panic!("starting n{n}: {e}");
        }
    }

    /// Daemon `n`, if it runs.
    pub fn daemon(&self, n: u8) -> Option<&RunningDaemon> {
        self.daemons[usize::from(n) - 1].as_ref()
    }

    /// `port@127.0.0.n`, for clients of daemon `n`.
    pub fn address(&self, n: u8) -> String {
        format!("{}@{}", self.port, Ring::ip(n))
    }

    /// Sends `signal` (`"STOP"`, `"CONT"`, …) to daemon `n`, if it runs.
    pub fn signal(&self, n: u8, signal: &str) {
        if let Some(d) = self.daemon(n) {
            let status = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(d.child.id().to_string())
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -{signal} of n{n}");
        }
    }

    /// kill -9 of daemon `n`; returns once its port can be bound again, for a restart.
    pub fn kill(&mut self, n: u8) {
        if let Some(mut d) = self.daemons[usize::from(n) - 1].take() {
            d.kill();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpListener::bind((Ring::ip(n), self.port)).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Probes at every running daemon join a group until the first sees them all (see
    /// [`wait_until_one_ring`]).
    pub fn wait_until_one_ring(&self, within: Duration) -> Result<(), String> {
        let up: Vec<String> = (1..=self.daemons.len() as u8)
            .filter(|&n| self.daemon(n).is_some())
            .map(|n| self.address(n))
            .collect();
        wait_until_one_ring(&up, within)
    }

    /// Every running daemon's log, for failure messages.
    pub fn logs(&self) -> String {
        self.daemons
            .iter()
            .flatten()
            .map(|d| format!("--- {}\n{}", d.log.display(), d.log_text()))
            .collect()
    }

    /// Copies the daemons' logs and the config to `to`.
    pub fn keep_logs(&self, to: &Path) {
        let _ = std::fs::create_dir_all(to);
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "log" || x == "conf") {
                    let _ = std::fs::copy(&p, to.join(e.file_name()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_daemon_alone_in_its_segment() {
        assert_eq!(
            Ring::conf_text(Layout::SegmentPerDaemon, 4803, 2),
            "Spread_Segment 127.0.0.255:4803 {\n    n1 127.0.0.1 { D 127.0.0.1 C 127.0.0.1 }\n}\n\
             Spread_Segment 127.0.0.255:4803 {\n    n2 127.0.0.2 { D 127.0.0.2 C 127.0.0.2 }\n}\n"
        );
        assert_eq!(
            Ring::conf_text(Layout::SegmentPerDaemon, 4803, 1),
            "Spread_Segment 127.0.0.255:4803 {\n    n1 127.0.0.1\n}\n"
        );
    }

    #[test]
    fn all_daemons_in_one_segment() {
        assert_eq!(
            Ring::conf_text(Layout::OneSegment, 4803, 2),
            "Spread_Segment 127.255.255.255:4803 {\n    n1 127.0.0.1 { D 127.0.0.1 C 127.0.0.1 }\n    \
             n2 127.0.0.2 { D 127.0.0.2 C 127.0.0.2 }\n}\n"
        );
    }
}
