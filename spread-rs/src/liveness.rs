//! Liveness probing of the daemon, without I/O: what to send, when, and when to give up.
//!
//! TCP keepalive notices a dead *host*, never a daemon that is alive at the TCP level but
//! does not run (stopped with SIGSTOP, deadlocked, swapped out): its kernel still
//! acknowledges everything. A probe is a request the daemon itself must answer:
//!
//! * with our daemon ([`ProbeMode::Native`]): the client offers the probe in the
//!   handshake (spread-wire's `probe` module), our daemon accepts by listing the pseudo
//!   method `PROBE`, and the client sends a probe request every `interval`, promising to
//!   be heard from within `deadline` (`hold_ms`). The daemon answers each at once, and ends
//!   the session of a client that breaks its promise (a hung client);
//! * with a C 3.17 daemon ([`ProbeMode::NoOp`]), which never lists `PROBE`: the client
//!   multicasts an empty RELIABLE message of the reserved type [`NOOP_MESS_TYPE`] to its own
//!   private group every `interval`; the daemon orders and returns it. Those come back and
//!   are swallowed, never shown to the application. A C daemon delivers nothing while its
//!   ring changes membership, so this mode's deadline is at least [`NOOP_MIN_DEADLINE`].
//!
//! Any byte from the daemon counts as a sign of life. When a probe has stayed unanswered
//! (nothing at all came) for `deadline`, the session is over: [`crate::Error::DaemonTimeout`].

use crate::proto::Codec;
use crate::types::{Event, Service};
use std::time::{Duration, Instant};

/// How often to probe the daemon and how long it may stay silent.
///
/// Timing is the transport's business: one probe every `interval`; a probe unanswered for
/// `deadline` ends the session with [`crate::Error::DaemonTimeout`]. Our daemon also
/// learns `deadline` (as `hold_ms`) and ends the session if *it* hears nothing from us for
/// that long, which is how it detects hung clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    pub interval: Duration,
    pub deadline: Duration,
}

impl Liveness {
    /// Two probes a second, two seconds of silence tolerated: a dead or hung daemon of ours
    /// is noticed within about 2.5 s, and a daemon briefly busy (a membership change takes
    /// a few hundred ms with our defaults) is not taken for a hung one. With a C daemon the
    /// no-op probe stretches both (see [`NOOP_MIN_DEADLINE`]).
    pub const DEFAULT: Liveness = Liveness {
        interval: Duration::from_millis(500),
        deadline: Duration::from_secs(2),
    };

    /// Probes every `interval`; gives up after `deadline` of silence (at least `interval`,
    /// and at least 1 ms each).
    pub fn new(interval: Duration, deadline: Duration) -> Liveness {
        let interval = interval.max(Duration::from_millis(1));
        Liveness {
            interval,
            deadline: deadline.max(interval),
        }
    }

    /// The `hold_ms` of our probe requests: the deadline, in whole milliseconds.
    pub(crate) fn hold_ms(&self) -> u32 {
        u32::try_from(self.deadline.as_millis()).unwrap_or(u32::MAX)
    }

    /// How long one write may stay blocked before the session counts as dead. Longer than
    /// the deadline: a daemon applying backpressure (our daemon stops reading clients while a
    /// receiver is congested, for up to 2 s before it drops that receiver) is alive though it
    /// reads nothing, and the probe answers it sends meanwhile cannot be read by a thread
    /// that is blocked writing.
    pub(crate) fn write_stall(&self) -> Duration {
        self.deadline.max(WRITE_STALL_MIN)
    }

    /// How long one blocking read waits before the reader looks at the clock again.
    pub(crate) fn slice(&self) -> Duration {
        (self.interval / 2).clamp(Duration::from_millis(5), Duration::from_millis(500))
    }
}

impl Default for Liveness {
    fn default() -> Liveness {
        Liveness::DEFAULT
    }
}

/// How long one read may wait: until `deadline` (the caller's), cut into the probe's slices
/// while `probing`. `None` once the deadline has passed; `Some(None)` waits without limit.
pub(crate) fn read_slice(
    deadline: Option<Instant>,
    probing: Option<&Liveness>,
    now: Instant,
) -> Option<Option<Duration>> {
    let left = match deadline {
        Some(d) => {
            let left = d.saturating_duration_since(now);
            if left.is_zero() {
                return None;
            }
            Some(left)
        }
        None => None,
    };
    Some(match (probing, left) {
        (Some(l), Some(left)) => Some(left.min(l.slice())),
        (Some(l), None) => Some(l.slice()),
        (None, left) => left,
    })
}

/// How a session probes its daemon (decided by the handshake).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeMode {
    /// Our daemon accepted the offer: probe requests and answers (spread-wire's `probe`).
    Native,
    /// The daemon did not accept (C 3.17): an empty message to our own private group.
    NoOp,
}

/// The shortest deadline of no-op probes: a C 3.17 daemon delivers nothing while its ring
/// changes membership (startup, a crash elsewhere), which takes seconds, so a shorter
/// deadline would take a daemon busy reforming its ring for a hung one.
pub const NOOP_MIN_DEADLINE: Duration = Duration::from_secs(20);

/// The shortest time a write may stay blocked (see [`Liveness::write_stall`]).
pub(crate) const WRITE_STALL_MIN: Duration = Duration::from_secs(5);

/// The message type of the no-op probe sent to a C daemon; an application should not use
/// it for messages to its own private group (those with an empty body are swallowed).
pub const NOOP_MESS_TYPE: i16 = i16::MIN + 1;

/// One session's probe bookkeeping, shared by the reader and whoever sends the probes
/// (behind a mutex).
#[derive(Debug)]
pub(crate) struct Prober {
    pub liveness: Liveness,
    pub mode: ProbeMode,
    bytes: Vec<u8>,
    /// When the first probe still without any answer was sent.
    unanswered_since: Option<Instant>,
}

impl Prober {
    /// `liveness` as asked; with [`ProbeMode::NoOp`] the deadline is at least
    /// [`NOOP_MIN_DEADLINE`] and the interval at least a quarter of the deadline (each
    /// no-op is a message through the whole ring: four per deadline are plenty).
    pub fn new(mut liveness: Liveness, mode: ProbeMode, codec: &Codec) -> Prober {
        if mode == ProbeMode::NoOp {
            liveness.deadline = liveness.deadline.max(NOOP_MIN_DEADLINE);
            liveness.interval = liveness.interval.max(liveness.deadline / 4);
        }
        let own = codec.private_group();
        let bytes = match mode {
            ProbeMode::Native => {
                spread_wire::probe::encode_request(own, liveness.hold_ms(), codec.endian())
            }
            ProbeMode::NoOp => codec
                .multicast(
                    Service::RELIABLE,
                    &[own.to_string_lossy()],
                    NOOP_MESS_TYPE,
                    &[],
                )
                .expect("one group, no data"),
        };
        Prober {
            liveness,
            mode,
            bytes,
            unanswered_since: None,
        }
    }

    /// The whole probe message.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether a probe should be sent at `now`. Our daemon must hear from us within the
    /// deadline, so native probes always go out; no-op probes stop once the daemon is known
    /// to be overdue (or the application is not reading), so their echoes do not pile up.
    pub fn due(&self, now: Instant) -> bool {
        match self.mode {
            ProbeMode::Native => true,
            ProbeMode::NoOp => self.overdue(now).is_none(),
        }
    }

    /// Whether to send a probe at `now` (see [`Prober::due`]); if so, it counts as sent.
    pub fn send_if_due(&mut self, now: Instant) -> bool {
        let due = self.due(now);
        if due {
            self.sent(now);
        }
        due
    }

    /// A probe was written (its writing began at `at`).
    pub fn sent(&mut self, at: Instant) {
        self.unanswered_since.get_or_insert(at);
    }

    /// Bytes came from the daemon in a read that began at `at`: every probe sent before
    /// then counts as answered.
    pub fn heard(&mut self, at: Instant) {
        if self.unanswered_since.is_some_and(|t| t <= at) {
            self.unanswered_since = None;
        }
    }

    /// `Some(deadline)` when a probe has gone unanswered for the deadline at `now`.
    pub fn overdue(&self, now: Instant) -> Option<Duration> {
        let since = self.unanswered_since?;
        (now.saturating_duration_since(since) >= self.liveness.deadline)
            .then_some(self.liveness.deadline)
    }

    /// Whether `event` is one of our own no-op probes coming back.
    pub fn is_echo(&self, event: &Event, own: &str) -> bool {
        self.mode == ProbeMode::NoOp && is_noop_echo(event, own)
    }
}

/// An empty RELIABLE message of [`NOOP_MESS_TYPE`] from us to our private group alone.
pub(crate) fn is_noop_echo(event: &Event, own: &str) -> bool {
    match event {
        Event::Message(m) => {
            m.mess_type == NOOP_MESS_TYPE
                && m.data.is_empty()
                && m.sender == own
                && m.groups.len() == 1
                && m.groups[0] == own
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spread_wire::GroupName;

    #[test]
    fn a_probe_is_overdue_only_after_the_deadline_without_any_byte() {
        let codec = Codec::new(GroupName::new("#a#n1"));
        let l = Liveness::new(Duration::from_millis(100), Duration::from_millis(300));
        let mut p = Prober::new(l, ProbeMode::Native, &codec);
        let t0 = Instant::now();
        assert_eq!(p.overdue(t0 + Duration::from_secs(10)), None);
        p.sent(t0);
        p.sent(t0 + Duration::from_millis(100));
        assert_eq!(p.overdue(t0 + Duration::from_millis(299)), None);
        assert_eq!(
            p.overdue(t0 + Duration::from_millis(300)),
            Some(Duration::from_millis(300))
        );
        // A read that began before the probe was sent does not answer it.
        p.heard(t0 - Duration::from_millis(1));
        assert!(p.overdue(t0 + Duration::from_millis(300)).is_some());
        p.heard(t0 + Duration::from_millis(1));
        assert_eq!(p.overdue(t0 + Duration::from_secs(10)), None);
    }

    #[test]
    fn no_op_probes_pause_while_overdue_native_ones_never() {
        let codec = Codec::new(GroupName::new("#a#n1"));
        let l = Liveness::new(Duration::from_millis(100), Duration::from_millis(300));
        let t0 = Instant::now();
        let late = t0 + Duration::from_secs(1);
        let mut noop = Prober::new(l, ProbeMode::NoOp, &codec);
        let mut native = Prober::new(l, ProbeMode::Native, &codec);
        assert_eq!(noop.liveness.deadline, NOOP_MIN_DEADLINE);
        noop.sent(t0);
        native.sent(t0);
        assert!(noop.due(late));
        assert!(!noop.due(t0 + NOOP_MIN_DEADLINE));
        assert!(native.due(late));
    }

    #[test]
    fn the_no_op_probe_is_recognised_when_it_comes_back() {
        let codec = Codec::new(GroupName::new("#a#n1"));
        let p = Prober::new(Liveness::DEFAULT, ProbeMode::NoOp, &codec);
        // The daemon returns the message as sent (it re-stamps nothing a client sees here).
        let (event, used) = codec.decode(p.bytes()).unwrap().unwrap();
        assert_eq!(used, p.bytes().len());
        assert!(p.is_echo(&event, "#a#n1"));
        assert!(!p.is_echo(&event, "#b#n1"));
        let other = codec
            .multicast(Service::RELIABLE, &["#a#n1"], NOOP_MESS_TYPE, &[b"x"])
            .unwrap();
        let (event, _) = codec.decode(&other).unwrap().unwrap();
        assert!(!p.is_echo(&event, "#a#n1"));
        let native = Prober::new(Liveness::DEFAULT, ProbeMode::Native, &codec);
        let (event, _) = codec.decode(p.bytes()).unwrap().unwrap();
        assert!(!native.is_echo(&event, "#a#n1"));
    }

    #[test]
    fn hold_ms_is_the_deadline() {
        let l = Liveness::new(Duration::from_millis(200), Duration::from_secs(1));
        assert_eq!(l.hold_ms(), 1000);
        // The deadline is never shorter than the interval.
        let l = Liveness::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(l.deadline, Duration::from_secs(2));
    }
}
