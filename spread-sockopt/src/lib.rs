//! Per-connection TCP keepalive, for both ends of a Spread session: a client notices a
//! daemon host that died (power, cable, kernel panic), and the daemon a client host that
//! did, without any system-wide tuning. Linux's own default would take 2 h 12 min.
//!
//! One crate so that the client library and the daemon make the same per-OS choice of
//! options (the table in docs/failure-detection.md).

use std::os::fd::AsFd;
use std::time::Duration;

/// Keepalive probing of one connection: after `idle` without traffic, a probe every
/// `interval`; `count` unanswered probes end the connection (the next read or write on it
/// fails, which a Spread session reports as `ConnectionClosed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: Duration,
    pub interval: Duration,
    pub count: u32,
}

impl Keepalive {
    /// A dead host is noticed within about 8 s (5 s idle, then 3 probes 1 s apart).
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
    /// `stream`: a TCP socket (std's, tokio's or mio's).
    pub fn apply(&self, stream: &impl AsFd) -> std::io::Result<()> {
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
        // that case too, so a side sending into a dead host also learns within the same
        // deadline.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        socket.set_tcp_user_timeout(Some(self.deadline()))?;
        Ok(())
    }
}

impl Default for Keepalive {
    fn default() -> Keepalive {
        Keepalive::DEFAULT
    }
}

/// Kernels count keepalive times in whole seconds and refuse 0: round up, at least 1 s.
fn whole_seconds(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_up_to_whole_seconds_never_zero() {
        assert_eq!(whole_seconds(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            whole_seconds(Duration::from_millis(200)),
            Duration::from_secs(1)
        );
        assert_eq!(
            whole_seconds(Duration::from_millis(1001)),
            Duration::from_secs(2)
        );
        assert_eq!(
            whole_seconds(Duration::from_secs(7)),
            Duration::from_secs(7)
        );
    }

    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn a_connection_gets_every_option_and_the_user_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let k = Keepalive {
            idle: Duration::from_secs(2),
            interval: Duration::from_secs(1),
            count: 4,
        };
        k.apply(&stream).unwrap();
        let sock = socket2::SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.keepalive_time().unwrap(), k.idle);
        assert_eq!(sock.keepalive_interval().unwrap(), k.interval);
        assert_eq!(sock.keepalive_retries().unwrap(), k.count);
        assert_eq!(
            sock.tcp_user_timeout().unwrap(),
            Some(Duration::from_secs(6))
        );
    }
}
