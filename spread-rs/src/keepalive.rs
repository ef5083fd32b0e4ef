//! Per-connection TCP keepalive: a client notices a daemon host that died (power, cable,
//! kernel panic) without any system-wide tuning. Linux's own default would take 2 h 12 min.

use std::os::fd::AsFd;
use std::time::Duration;

/// Keepalive probing of one connection: after `idle` without traffic, a probe every
/// `interval`; `count` unanswered probes end the connection (the next call on the
/// `Mailbox` fails with `ConnectionClosed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: Duration,
    pub interval: Duration,
    pub count: u32,
}

impl Keepalive {
    /// A dead daemon host is noticed within about 8 s (5 s idle, then 3 probes 1 s apart).
    pub const DEFAULT: Keepalive = Keepalive {
        idle: Duration::from_secs(5),
        interval: Duration::from_secs(1),
        count: 3,
    };

    /// How long an unanswered connection lives at most.
    pub fn deadline(&self) -> Duration {
        self.idle + self.interval * self.count
    }

    /// Applies the settings to `stream`, as far as the OS lets one connection choose them.
    /// `stream`: a TCP socket (std's or tokio's).
    pub(crate) fn apply(&self, stream: &impl AsFd) -> std::io::Result<()> {
        let socket = socket2::SockRef::from(stream);
        let params = socket2::TcpKeepalive::new().with_time(whole_seconds(self.idle));
        cfg_if::cfg_if! {
            // Where the OS has per-socket interval and count. OpenBSD has no per-socket
            // keepalive times at all: keepalive is switched on and the system's
            // net.inet.tcp.keep* settings apply. On AIX (socket2 0.5) only the idle
            // time is per socket.
            if #[cfg(any(
                target_os = "linux",
                target_os = "android",
                target_os = "freebsd",
                target_os = "netbsd",
                target_os = "dragonfly",
                target_os = "illumos",
                target_os = "macos",
                target_os = "ios",
            ))] {
                let params = params
                    .with_interval(whole_seconds(self.interval))
                    .with_retries(self.count.max(1));
            }
        }
        socket.set_tcp_keepalive(&params)?;
        // Keepalive stays silent while sent data is unacknowledged; on Linux this bounds
        // that case too, so a client sending into a dead host also learns within the
        // same deadline.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        socket.set_tcp_user_timeout(Some(self.deadline()))?;
        Ok(())
    }
}

/// Kernels count keepalive times in whole seconds and refuse 0: round up, at least 1 s.
fn whole_seconds(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}
