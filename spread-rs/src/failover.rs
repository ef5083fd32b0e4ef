//! Failover between daemons: when the session ends (the daemon died, hung, or closed the
//! connection), connect to the next daemon, join every group again, and say so.
//!
//! [`Failover`] is the blocking type, `spread::tokio::Failover` the async one; both follow
//! one policy, kept here without I/O: the order in which daemons are tried, the backoff
//! between full rounds, the remembered groups, and the [`FailoverInfo`] reported.
//!
//! # What the application sees
//!
//! * The next `receive` after a failover returns [`Event::Failover`], naming the daemon
//!   lost, the one now serving, why, and the groups joined again. Then come the usual
//!   membership messages of those groups from the new daemon (each a join of our new
//!   private group), so Extended Virtual Synchrony reasoning goes on: the old private
//!   group left the groups by disconnect (or network), the new one joined.
//! * **Messages may have been missed**: whatever was delivered to the old session and not
//!   yet read, and everything sent to the groups between the old session's end and the
//!   re-join, is gone. [`FailoverInfo::may_have_missed_messages`] is always true to say so.
//! * A multicast that fails because the session ended returns that error (the message may
//!   or may not have been ordered); nothing is resent or silently dropped. The next call
//!   reconnects.
//! * Our private group changes with every failover (`#name#daemon` names the daemon).

use crate::address::DaemonAddress;
use crate::blocking::Mailbox;
use crate::connect::ConnectOptions;
pub use crate::types::FailoverInfo;
use crate::types::{Event, Service};
use crate::Error;
use spread_wire::names::is_legal_group_name;
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

/// In which order the daemons are tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// As listed: first the first one; after losing one, the one after it (wrapping).
    InOrder,
    /// A fresh random order every round (the lost daemon last), spreading the clients of a
    /// dead daemon over the others.
    Shuffled,
}

/// The pause between full rounds of failed attempts: `initial`, then multiplied by
/// `factor` up to `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub factor: f64,
}

impl Backoff {
    /// 100 ms, doubling, at most 5 s.
    pub const DEFAULT: Backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(5),
        factor: 2.0,
    };

    fn after(&self, pause: Duration) -> Duration {
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let next = pause.as_secs_f64() * factor;
        Duration::from_secs_f64(next.min(self.max.as_secs_f64()))
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::DEFAULT
    }
}

/// How a [`Failover`] connects.
#[derive(Clone, Debug)]
pub struct FailoverOptions {
    /// Daemon addresses as 3.17 writes them (`4803@host`, `4803` for /tmp/4803).
    pub daemons: Vec<String>,
    pub order: Order,
    pub backoff: Backoff,
    /// Limit on connecting to one daemon, handshake included.
    pub connect_timeout: Duration,
    /// How long one failover (or the first connect) keeps trying before the call returns
    /// the last error; `None` tries for ever. The next call tries again.
    pub give_up_after: Option<Duration>,
    /// Everything else (private name, membership, keepalive, liveness, auth): a template
    /// for every connection; its `daemon` and `timeout` are not used.
    pub connect: ConnectOptions,
}

impl FailoverOptions {
    /// `daemons` in order, 2 s per attempt, giving up after 30 s, the default backoff.
    pub fn new<S: Into<String>>(
        daemons: impl IntoIterator<Item = S>,
        connect: ConnectOptions,
    ) -> FailoverOptions {
        FailoverOptions {
            daemons: daemons.into_iter().map(Into::into).collect(),
            order: Order::InOrder,
            backoff: Backoff::DEFAULT,
            connect_timeout: Duration::from_secs(2),
            give_up_after: Some(Duration::from_secs(30)),
            connect,
        }
    }

    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn give_up_after(mut self, limit: Option<Duration>) -> Self {
        self.give_up_after = limit;
        self
    }
}

/// What the policy asks of a session, blocking or async.
pub(crate) trait Served {
    fn address(&self) -> &DaemonAddress;
    fn private_group(&self) -> String;
}

impl Served for Mailbox {
    fn address(&self) -> &DaemonAddress {
        Mailbox::address(self)
    }
    fn private_group(&self) -> String {
        Mailbox::private_group(self)
    }
}

/// The policy shared by the blocking and the async failover types: addresses, order,
/// backoff, remembered groups, and the session serving us (`M`: a blocking or an async
/// Mailbox). No I/O, no clock of its own: the wrappers connect, sleep and call.
#[derive(Debug)]
pub(crate) struct Plan<M> {
    pub addresses: Vec<DaemonAddress>,
    order: Order,
    backoff: Backoff,
    give_up_after: Option<Duration>,
    /// The template with the per-attempt timeout in place.
    pub connect: ConnectOptions,
    /// Groups joined and not left, in the order of joining.
    groups: Vec<String>,
    /// Which address serves (or served last).
    pub current: usize,
    /// Set while no session is up: the address lost, why, and when that was noticed.
    pub lost: Option<(usize, String, SystemTime)>,
    /// Failovers not yet reported by `receive`.
    pub pending: VecDeque<FailoverInfo>,
    rng: u64,
    /// The session serving us, `None` while none does (the next call reconnects).
    pub session: Option<M>,
}

/// What a reconnect does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Try the address at this index.
    Try(usize),
    /// Pause before the next round.
    Wait(Duration),
    /// Out of time: return the last error.
    GiveUp,
}

/// One reconnect's progress: the round being tried and the next pause.
#[derive(Debug)]
pub(crate) struct Schedule {
    after: Option<usize>,
    round: VecDeque<usize>,
    pause: Duration,
    give_up_at: Option<Instant>,
    waited: bool,
    /// Why the last attempt failed.
    last_error: Option<Error>,
}

impl Schedule {
    /// The attempt `Step::Try` named failed.
    pub fn failed(&mut self, error: Error) {
        self.last_error = Some(error);
    }

    /// What to return on `Step::GiveUp`: the last attempt's error.
    pub fn give_up(&mut self) -> Error {
        self.last_error.take().unwrap_or(Error::Timeout)
    }
}

impl<M> Plan<M> {
    pub fn new(options: &FailoverOptions) -> Result<Plan<M>, Error> {
        if options.daemons.is_empty() {
            return Err(Error::IllegalSpread(
                "no daemon addresses to fail over".into(),
            ));
        }
        let addresses = options
            .daemons
            .iter()
            .map(|d| DaemonAddress::parse(d))
            .collect::<Result<Vec<_>, _>>()?;
        let mut connect = options.connect.clone();
        connect.timeout = Some(options.connect_timeout);
        use std::hash::{BuildHasher, Hasher};
        let rng = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            | 1;
        Ok(Plan {
            addresses,
            order: options.order,
            backoff: options.backoff,
            give_up_after: options.give_up_after,
            connect,
            groups: Vec::new(),
            current: 0,
            lost: None,
            pending: VecDeque::new(),
            rng,
            session: None,
        })
    }

    /// The daemon serving us, `None` while none does.
    pub fn address(&self) -> Option<&DaemonAddress>
    where
        M: Served,
    {
        self.session.as_ref().map(M::address)
    }

    /// Our private group on the daemon serving us.
    pub fn private_group(&self) -> Option<String>
    where
        M: Served,
    {
        self.session.as_ref().map(M::private_group)
    }

    /// The groups to join on a new session.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Remembers a join (checking the name first, so a refused name is not remembered).
    pub fn joined(&mut self, group: &str) -> Result<(), Error> {
        if !is_legal_group_name(group.as_bytes()) {
            return Err(Error::IllegalGroup(group.into()));
        }
        if !self.groups.iter().any(|g| g == group) {
            self.groups.push(group.to_string());
        }
        Ok(())
    }

    pub fn left(&mut self, group: &str) {
        self.groups.retain(|g| g != group);
    }

    /// The session at `current` ended because of `cause`, noticed `at` (the first cause
    /// is kept until a new session is up). The session is dropped, which closes it.
    pub fn lose(&mut self, cause: &Error, at: SystemTime) {
        if self.lost.is_none() {
            self.lost = Some((self.current, cause.to_string(), at));
        }
        self.session = None;
    }

    /// Whether `result`, of a call on the session, says the session was lost (noticed
    /// `at`); if so the loss is recorded and the next call reconnects. The application gets
    /// the error of a lost multicast (it may or may not have been sent); a lost join,
    /// leave or receive is retried by reconnecting instead.
    pub fn lost<T>(&mut self, result: &Result<T, Error>, at: SystemTime) -> bool {
        match result {
            Err(e) if e.is_session_lost() => {
                self.lose(e, at);
                true
            }
            _ => false,
        }
    }

    /// The next [`Event::Failover`] `receive` reports before anything else.
    pub fn failover_event(&mut self) -> Option<Event> {
        self.pending.pop_front().map(Event::Failover)
    }

    /// A reconnect starting at `now`: after the lost daemon if there is one, else from the
    /// start of the list.
    pub fn schedule(&mut self, now: Instant) -> Schedule {
        let after = self.lost.as_ref().map(|(i, _, _)| *i);
        let mut s = Schedule {
            after,
            round: VecDeque::new(),
            pause: self.backoff.initial,
            give_up_at: self.give_up_after.map(|d| now + d),
            waited: false,
            last_error: None,
        };
        s.round = self.round(after);
        s
    }

    /// The next step of `s` at `now`.
    pub fn next(&mut self, s: &mut Schedule, now: Instant) -> Step {
        if s.give_up_at.is_some_and(|t| now >= t) {
            return Step::GiveUp;
        }
        if let Some(i) = s.round.pop_front() {
            s.waited = false;
            return Step::Try(i);
        }
        if !s.waited {
            s.waited = true;
            let pause = s.pause;
            s.pause = self.backoff.after(s.pause);
            if s.give_up_at.is_some_and(|t| now + pause >= t) {
                return Step::GiveUp;
            }
            return Step::Wait(pause);
        }
        s.round = self.round(s.after);
        self.next(s, now)
    }

    /// One round of addresses: every one once, the lost one last.
    fn round(&mut self, after: Option<usize>) -> VecDeque<usize> {
        let n = self.addresses.len();
        let mut order: Vec<usize> = match self.order {
            Order::InOrder => {
                let first = after.map_or(0, |i| (i + 1) % n);
                (0..n).map(|k| (first + k) % n).collect()
            }
            Order::Shuffled => {
                let mut v: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    let j = (self.random() % (i as u64 + 1)) as usize;
                    v.swap(i, j);
                }
                if let Some(lost) = after {
                    v.retain(|&i| i != lost);
                    v.push(lost);
                }
                v
            }
        };
        order.dedup();
        order.into()
    }

    fn random(&mut self) -> u64 {
        // xorshift64: enough to spread clients over daemons.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// A new `session` is up at `index`, with `private_group`, every group joined again:
    /// it serves from now on, and the failover (if this was one) waits for `receive` to
    /// report it.
    pub fn connected(&mut self, index: usize, private_group: String, session: M) {
        self.session = Some(session);
        self.current = index;
        if let Some((lost, cause, detected_at)) = self.lost.take() {
            self.pending.push_back(FailoverInfo {
                lost: self.addresses[lost].clone(),
                now: self.addresses[index].clone(),
                cause,
                detected_at,
                may_have_missed_messages: true,
                rejoined: self.groups.clone(),
                private_group,
            });
        }
    }
}

/// A session that survives the loss of its daemon: on top of [`Mailbox`], it reconnects to
/// another daemon of [`FailoverOptions::daemons`], joins the groups again and reports
/// [`Event::Failover`]. See the [module documentation](self) for what may be lost.
pub struct Failover {
    plan: Plan<Mailbox>,
}

impl Failover {
    /// Connects to the first daemon that answers (in the chosen order), with backoff
    /// between rounds, for at most `give_up_after`.
    pub fn connect(options: &FailoverOptions) -> Result<Failover, Error> {
        let mut f = Failover {
            plan: Plan::new(options)?,
        };
        f.live()?;
        Ok(f)
    }

    /// The daemon serving us, `None` while none does.
    pub fn address(&self) -> Option<&DaemonAddress> {
        self.plan.address()
    }

    /// Our private group on the current daemon.
    pub fn private_group(&self) -> Option<String> {
        self.plan.private_group()
    }

    /// The groups joined (and joined again after every failover).
    pub fn groups(&self) -> &[String] {
        self.plan.groups()
    }

    /// Joins `group`, now and after every failover.
    pub fn join(&mut self, group: &str) -> Result<(), Error> {
        self.plan.joined(group)?;
        let joined = self.live()?.join(group);
        if self.plan.lost(&joined, SystemTime::now()) {
            // The reconnect joins it with the others.
            return self.live().map(drop);
        }
        joined
    }

    /// Leaves `group`, and forgets it.
    pub fn leave(&mut self, group: &str) -> Result<(), Error> {
        self.plan.left(group);
        let left = self.live()?.leave(group);
        if self.plan.lost(&left, SystemTime::now()) {
            return self.live().map(drop);
        }
        left
    }

    /// Sends through the current daemon. When the session has ended, returns that error:
    /// the message may or may not have been sent; the next call reconnects.
    pub fn multicast<G: AsRef<str>>(
        &mut self,
        service: Service,
        groups: &[G],
        mess_type: i16,
        data: &[u8],
    ) -> Result<usize, Error> {
        let sent = self.live()?.multicast(service, groups, mess_type, data);
        self.plan.lost(&sent, SystemTime::now());
        sent
    }

    /// The next event; after a failover, first [`Event::Failover`]. Fails only when no
    /// daemon could be reached within `give_up_after`, or for errors of the call itself.
    pub fn receive(&mut self) -> Result<Event, Error> {
        loop {
            if let Some(failover) = self.plan.failover_event() {
                return Ok(failover);
            }
            let received = self.live()?.receive();
            if !self.plan.lost(&received, SystemTime::now()) {
                return received;
            }
            // Reconnect now: the failover is reported before anything the new session brings.
            self.live()?;
        }
    }

    /// As [`Failover::receive`], waiting at most `timeout` for an event (a reconnect may
    /// take longer); `Ok(None)` when nothing came.
    pub fn receive_timeout(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(failover) = self.plan.failover_event() {
                return Ok(Some(failover));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let received = self.live()?.receive_timeout(left);
            if !self.plan.lost(&received, SystemTime::now()) {
                return received;
            }
            // Reconnect now: the failover is reported before anything the new session brings.
            self.live()?;
        }
    }

    /// Ends the session with the current daemon (if any).
    pub fn disconnect(mut self) -> Result<(), Error> {
        match self.plan.session.take() {
            Some(m) => m.disconnect(),
            None => Ok(()),
        }
    }

    /// The session, after reconnecting if there is none: tries daemons until one serves
    /// us with every group joined again.
    fn live(&mut self) -> Result<&mut Mailbox, Error> {
        if self.plan.session.is_none() {
            let mut schedule = self.plan.schedule(Instant::now());
            while self.plan.session.is_none() {
                match self.plan.next(&mut schedule, Instant::now()) {
                    Step::Try(i) => match self.try_daemon(i) {
                        Ok(m) => self.plan.connected(i, m.private_group(), m),
                        Err(e) => schedule.failed(e),
                    },
                    Step::Wait(pause) => std::thread::sleep(pause),
                    Step::GiveUp => return Err(schedule.give_up()),
                }
            }
        }
        Ok(self.plan.session.as_mut().expect("connected"))
    }

    fn try_daemon(&self, i: usize) -> Result<Mailbox, Error> {
        let mut m = Mailbox::connect_to(self.plan.addresses[i].clone(), &self.plan.connect)?;
        for g in self.plan.groups() {
            m.join(g)?;
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(n: usize, order: Order) -> Plan<()> {
        let daemons: Vec<String> = (1..=n).map(|i| format!("4803@127.0.0.{i}")).collect();
        Plan::new(
            &FailoverOptions::new(daemons, ConnectOptions::new(""))
                .order(order)
                .give_up_after(Some(Duration::from_secs(10))),
        )
        .unwrap()
    }

    #[test]
    fn in_order_starts_after_the_lost_daemon_and_backs_off_between_rounds() {
        let mut p = plan(3, Order::InOrder);
        let t = Instant::now();
        let mut s = p.schedule(t);
        assert_eq!(p.next(&mut s, t), Step::Try(0));
        p.connected(0, "#a#n1".into(), ());
        assert!(p.pending.is_empty(), "the first connect is no failover");
        p.current = 1;
        p.lose(&Error::ConnectionClosed, SystemTime::now());
        let mut s = p.schedule(t);
        let steps: Vec<Step> = (0..8).map(|_| p.next(&mut s, t)).collect();
        let ms = Duration::from_millis;
        assert_eq!(
            steps,
            [
                Step::Try(2),
                Step::Try(0),
                Step::Try(1),
                Step::Wait(ms(100)),
                Step::Try(2),
                Step::Try(0),
                Step::Try(1),
                Step::Wait(ms(200)),
            ]
        );
        assert_eq!(p.next(&mut s, t + Duration::from_secs(10)), Step::GiveUp);
        p.connected(2, "#a#n3".into(), ());
        let info = p.pending.pop_front().unwrap();
        assert_eq!(info.lost.to_string(), "4803@127.0.0.2");
        assert_eq!(info.now.to_string(), "4803@127.0.0.3");
        assert_eq!(info.cause, Error::ConnectionClosed.to_string());
        assert!(info.may_have_missed_messages);
    }

    #[test]
    fn shuffled_rounds_hold_every_daemon_once_the_lost_one_last() {
        let mut p = plan(5, Order::Shuffled);
        p.current = 3;
        p.lose(&Error::ConnectionClosed, SystemTime::now());
        let t = Instant::now();
        let mut s = p.schedule(t);
        for _ in 0..3 {
            let mut round: Vec<usize> = (0..5)
                .map(|_| match p.next(&mut s, t) {
                    Step::Try(i) => i,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(round[4], 3);
            round.sort();
            assert_eq!(round, [0, 1, 2, 3, 4]);
            assert!(matches!(p.next(&mut s, t), Step::Wait(_)));
        }
    }

    #[test]
    fn backoff_grows_to_its_maximum() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(300),
            factor: 2.0,
        };
        assert_eq!(
            b.after(Duration::from_millis(100)),
            Duration::from_millis(200)
        );
        assert_eq!(
            b.after(Duration::from_millis(200)),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn groups_are_remembered_once_and_forgotten_on_leave() {
        let mut p = plan(1, Order::InOrder);
        p.joined("a").unwrap();
        p.joined("b").unwrap();
        p.joined("a").unwrap();
        assert!(p.joined("bad name").is_err());
        p.left("a");
        assert_eq!(p.groups(), ["b"]);
    }
}
