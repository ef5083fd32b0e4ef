//! One session with a daemon, without I/O: what the blocking and the async [`Mailbox`]es
//! decide alike — when the session has ended, which error a read or write failure is, when
//! to read and for how long, and what a read brought. The transports only read, write,
//! wait and close, and hand in what happened (and the time).
//!
//! [`Mailbox`]: crate::Mailbox

use crate::address::DaemonAddress;
use crate::inbox::{lock, Inbox};
use crate::liveness::{self, Liveness, ProbeMode, Prober};
use crate::proto::Codec;
use crate::types::Event;
use crate::Error;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The probe side of a session: bookkeeping shared with whoever writes the probes (a
/// thread or a task), and `stop`, whose dropping stops that writer.
pub(crate) struct Probing<S> {
    pub prober: Arc<Mutex<Prober>>,
    pub liveness: Liveness,
    pub _stop: S,
}

/// Starts probing at `now`: the bookkeeping to share with the probe writer, and the probe
/// to write at once (so that our daemon learns the promise) and then every interval.
pub(crate) fn first_probe(prober: Prober, now: Instant) -> (Arc<Mutex<Prober>>, Vec<u8>) {
    let bytes = prober.bytes().to_vec();
    let prober = Arc::new(Mutex::new(prober));
    lock(&prober).sent(now);
    (prober, bytes)
}

/// The state of one session, for either transport; `S` is how its probe writer stops.
pub(crate) struct Session<S> {
    pub inbox: Inbox,
    pub address: DaemonAddress,
    probing: Option<Probing<S>>,
    /// Set once the connection has closed or broken: every later call is refused, as
    /// 3.17's library does, instead of writing into a dead socket.
    ended: bool,
}

/// What a wait for an event does next.
pub(crate) enum Next {
    /// Return this: an event, `None` once the caller's deadline has passed, or the error
    /// that ended the session.
    Ready(Result<Option<Event>, Error>),
    /// Read once, waiting at most this long (`None`: without limit).
    Read(Option<Duration>),
}

impl<S> Session<S> {
    /// `leftover`: bytes read during the handshake after the accept.
    pub fn new(
        codec: Codec,
        leftover: Vec<u8>,
        address: DaemonAddress,
        probing: Option<Probing<S>>,
    ) -> Session<S> {
        Session {
            inbox: Inbox::new(codec, leftover),
            address,
            probing,
            ended: false,
        }
    }

    pub fn private_group(&self) -> String {
        self.inbox.own.clone()
    }

    pub fn liveness(&self) -> Option<(Liveness, ProbeMode)> {
        self.probing
            .as_ref()
            .map(|p| (p.liveness, lock(&p.prober).mode))
    }

    /// How long a write may stay blocked before the daemon counts as stalled (`None`
    /// without probing: then writes wait as long as the OS lets them).
    pub fn write_stall(&self) -> Option<Duration> {
        self.probing.as_ref().map(|p| p.liveness.write_stall())
    }

    /// Whether the connection is over: the transport closes it at once, so the daemon
    /// learns now rather than when the Mailbox is dropped.
    pub fn ended(&self) -> bool {
        self.ended
    }

    pub fn check_live(&self) -> Result<(), Error> {
        if self.ended {
            Err(Error::IllegalSession)
        } else {
            Ok(())
        }
    }

    /// Stops probing for good (the probe writer stops with it).
    pub fn stop_probing(&mut self) {
        self.probing = None;
    }

    /// Marks the session ended when `result` says the connection is gone.
    pub fn note<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result {
            if e.ends_session() {
                self.ended = true;
                self.probing = None;
            }
        }
        result
    }

    /// The codec that builds our requests, while the session is live.
    pub fn requests(&self) -> Result<&Codec, Error> {
        self.check_live()?;
        Ok(&self.inbox.codec)
    }

    /// An event already read, else how long to read before `deadline` (the caller's):
    /// in the probe's slices while probing, to look at its clock between them.
    pub fn next(&mut self, deadline: Option<Instant>, now: Instant) -> Next {
        let prober = self.probing.as_ref().map(|p| &*p.prober);
        let taken = self.inbox.take_event(prober);
        match self.note(taken) {
            Ok(None) => {}
            ready => return Next::Ready(ready),
        }
        let probing = self.probing.as_ref().map(|p| &p.liveness);
        match liveness::read_slice(deadline, probing, now) {
            Some(slice) => Next::Read(slice),
            None => Next::Ready(Ok(None)),
        }
    }

    /// Room for one read; call [`Session::read_done`] after it.
    pub fn spare(&mut self) -> &mut [u8] {
        self.inbox.spare()
    }

    /// What a read into [`Session::spare`] brought (`None`: its time ran out first; it
    /// began at `began`). `write_failure` tells how the transport's writes failed, if they
    /// did; it is asked only when the read did not bring bytes (a blocking transport may
    /// have to wait for a write in progress to learn it).
    pub fn read_done(
        &mut self,
        read: Option<io::Result<usize>>,
        began: Instant,
        write_failure: impl FnOnce() -> Option<WriteFailure>,
        now: Instant,
    ) -> Result<(), Error> {
        let n = match &read {
            Some(Ok(n)) => *n,
            _ => 0,
        };
        let prober = self.probing.as_ref().map(|p| &*p.prober);
        self.inbox.filled(n, began, prober);
        let result = match read_outcome(read) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => return self.check_probe(write_failure(), now),
            // A probe writer that gave up on a stalled write closed the connection under
            // us: that, not the close, is why the session ended.
            Err(e) => match write_failure() {
                Some(f @ WriteFailure::Stalled(_)) => Err(f.error()),
                _ => Err(e),
            },
        };
        self.note(result)
    }

    /// Fails with [`Error::DaemonTimeout`] (ending the session) when a probe went
    /// unanswered for the deadline, or with the failure of an earlier write.
    pub fn check_probe(
        &mut self,
        write_failure: Option<WriteFailure>,
        now: Instant,
    ) -> Result<(), Error> {
        let Some(p) = &self.probing else {
            return Ok(());
        };
        let overdue = lock(&p.prober).overdue(now);
        let result = match (overdue, write_failure) {
            (Some(after), _) => Err(Error::DaemonTimeout { after }),
            (None, Some(f)) => Err(f.error()),
            (None, None) => Ok(()),
        };
        self.note(result)
    }

    /// Drops probe answers and no-op echoes at the front of what was read; the bytes left
    /// (3.17's SP_poll).
    pub fn pending_after_swallowing(&mut self) -> Result<usize, Error> {
        let prober = self.probing.as_ref().map(|p| &*p.prober);
        let skipped = self.inbox.skip_swallowed(prober);
        self.note(skipped)?;
        Ok(self.inbox.pending())
    }
}

/// Why a connection takes no more writes. Once a write failed the stream may hold half a
/// message, so nothing more is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteFailure {
    /// A write stayed blocked past `Liveness::write_stall`: the daemon reads nothing.
    Stalled(Duration),
    Closed,
}

impl WriteFailure {
    /// A write of one whole message failed with `error`, or (`None`) stayed blocked for
    /// `stall`: the failure to remember, and the error to return now.
    pub fn of(error: Option<io::Error>, stall: Option<Duration>) -> (WriteFailure, Error) {
        match (error, stall) {
            (Some(e), _) => (WriteFailure::Closed, closed_or_io(e)),
            (None, Some(after)) => (WriteFailure::Stalled(after), Error::DaemonTimeout { after }),
            (None, None) => (WriteFailure::Closed, Error::ConnectionClosed),
        }
    }

    /// The error every later write gets.
    pub fn error(self) -> Error {
        match self {
            WriteFailure::Stalled(after) => Error::DaemonTimeout { after },
            WriteFailure::Closed => Error::ConnectionClosed,
        }
    }
}

/// What one read means: `Ok(Some(n))` bytes (0 after an interrupted read), `Ok(None)` when
/// its time ran out (`read` is `None`), or the error that ends the session.
pub(crate) fn read_outcome(read: Option<io::Result<usize>>) -> Result<Option<usize>, Error> {
    match read {
        None => Ok(None),
        Some(Ok(0)) => Err(Error::ConnectionClosed),
        Some(Ok(n)) => Ok(Some(n)),
        Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => Ok(Some(0)),
        Some(Err(e)) => Err(closed_or_io(e)),
    }
}

/// An I/O error as the application sees it: the daemon's side going away in any form
/// (reset, broken pipe, a stream that ended mid-message) is [`Error::ConnectionClosed`].
pub(crate) fn closed_or_io(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Error::ConnectionClosed,
        _ => Error::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_that_ends_is_a_closed_connection_whichever_way_it_is_said() {
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::UnexpectedEof,
        ] {
            assert!(matches!(
                closed_or_io(io::Error::from(kind)),
                Error::ConnectionClosed
            ));
        }
        assert!(matches!(
            read_outcome(Some(Ok(0))),
            Err(Error::ConnectionClosed)
        ));
        assert!(matches!(
            read_outcome(Some(Err(io::ErrorKind::Interrupted.into()))),
            Ok(Some(0))
        ));
        assert!(matches!(read_outcome(None), Ok(None)));
    }

    #[test]
    fn a_stalled_write_is_a_daemon_timeout_now_and_later() {
        let after = Duration::from_secs(5);
        let (failure, now) = WriteFailure::of(None, Some(after));
        assert!(matches!(now, Error::DaemonTimeout { .. }));
        assert!(matches!(failure.error(), Error::DaemonTimeout { after: a } if a == after));
        let (failure, now) = WriteFailure::of(Some(io::ErrorKind::BrokenPipe.into()), None);
        assert!(matches!(now, Error::ConnectionClosed));
        assert_eq!(failure, WriteFailure::Closed);
    }
}
