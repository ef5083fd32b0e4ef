//! The ring's timers. As in 3.17's event queue, arming a timer that is already armed
//! replaces its deadline; each kind exists at most once.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// The token (or any packet of my ring) has not come for too long.
    TokenLoss,
    /// The leader re-sends its last token.
    Hurry,
    /// SEG: send ALIVE again.
    Alive,
    /// GATHER: send JOIN again.
    Join,
    /// REPRESENTED: my representative went quiet; back to SEG.
    ShiftToSeg,
    /// SEG is over: GATHER or REPRESENTED.
    GatherOrRepresented,
    /// GATHER is over: form a ring or gather again.
    FormOrFail,
    /// The leader looks for configured daemons missing from its ring.
    Lookup,
}

const KINDS: usize = 8;

impl Timer {
    fn slot(self) -> usize {
        self as usize
    }

    const ALL: [Timer; KINDS] = [
        Timer::TokenLoss,
        Timer::Hurry,
        Timer::Alive,
        Timer::Join,
        Timer::ShiftToSeg,
        Timer::GatherOrRepresented,
        Timer::FormOrFail,
        Timer::Lookup,
    ];
}

#[derive(Clone, Debug, Default)]
pub struct Timers {
    deadlines: [Option<Instant>; KINDS],
}

impl Timers {
    pub fn arm(&mut self, timer: Timer, now: Instant, after: Duration) {
        self.deadlines[timer.slot()] = Some(now + after);
    }

    pub fn cancel(&mut self, timer: Timer) {
        self.deadlines[timer.slot()] = None;
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// The earliest timer due at `now`, disarmed.
    pub fn take_due(&mut self, now: Instant) -> Option<Timer> {
        let due = Timer::ALL
            .into_iter()
            .filter_map(|t| {
                self.deadlines[t.slot()]
                    .filter(|d| *d <= now)
                    .map(|d| (d, t))
            })
            .min()?;
        self.cancel(due.1);
        Some(due.1)
    }
}

/// The membership and token timeouts (names of later Spread versions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub token: Duration,
    pub hurry: Duration,
    pub alive: Duration,
    pub join: Duration,
    pub rep: Duration,
    pub seg: Duration,
    pub gather: Duration,
    pub form: Duration,
    pub lookup: Duration,
}

impl Timeouts {
    /// 3.17.3's LAN values: a crashed daemon leaves the membership after about 11 s.
    pub fn spread_3_17_lan(segments: usize) -> Timeouts {
        let ms = Duration::from_millis;
        Timeouts {
            token: ms(5000),
            hurry: ms(2000),
            alive: ms(1000),
            join: ms(1000),
            rep: ms(2500),
            seg: ms(2000),
            gather: ms(5000),
            form: ms(5000),
            lookup: if segments == 1 {
                ms(300_000)
            } else {
                ms(60_000)
            },
        }
    }

    /// 3.17.3's values for a wide network (segments in different /16s).
    pub fn spread_3_17_wide() -> Timeouts {
        let ms = Duration::from_millis;
        Timeouts {
            token: ms(20_000),
            hurry: ms(6000),
            alive: ms(1000),
            join: ms(1000),
            rep: ms(5000),
            seg: ms(2000),
            gather: ms(10_000),
            form: ms(10_000),
            lookup: ms(90_000),
        }
    }

    /// Our defaults for a LAN of our own daemons: a crashed daemon is out of the
    /// membership in well under a second. The idle token turns every `hurry`, so a loss is
    /// noticed after `token`; then SEG (`seg`), GATHER (`gather`) and FORM follow.
    pub fn fast() -> Timeouts {
        let ms = Duration::from_millis;
        Timeouts {
            token: ms(200),
            hurry: ms(50),
            alive: ms(30),
            join: ms(30),
            rep: ms(150),
            seg: ms(60),
            gather: ms(120),
            form: ms(300),
            lookup: ms(2000),
        }
    }
}
