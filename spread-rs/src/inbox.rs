//! The receive buffer of one session, without I/O: bytes read from the daemon go in, events
//! come out; probe answers and our own no-op probes are swallowed here, and any byte counts
//! as a sign of life. Both transports (blocking and tokio) read into it.

use crate::liveness::Prober;
use crate::proto::{Codec, Incoming};
use crate::types::Event;
use crate::Error;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// How much to read at once.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// Locks `m`, also after a panic elsewhere: what it guards stays consistent (each holder
/// makes one whole change).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) struct Inbox {
    pub codec: Codec,
    /// Our private group as text (to recognise our own no-op probes).
    pub own: String,
    buf: Vec<u8>,
    /// Bytes of `buf` already returned as events.
    consumed: usize,
}

impl Inbox {
    /// `leftover`: bytes read during the handshake after the accept.
    pub fn new(codec: Codec, leftover: Vec<u8>) -> Inbox {
        Inbox {
            own: codec.private_group().to_string_lossy(),
            codec,
            buf: leftover,
            consumed: 0,
        }
    }

    /// Room for one read at the end of the buffer; call [`Inbox::filled`] after it.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        &mut self.buf[start..]
    }

    /// `n` bytes of the spare room were read (0 for none) by a read that began at `began`.
    pub fn filled(&mut self, n: usize, began: Instant, prober: Option<&Mutex<Prober>>) {
        let len = self.buf.len() - READ_CHUNK + n;
        self.buf.truncate(len);
        if n > 0 {
            if let Some(p) = prober {
                lock(p).heard(began);
            }
        }
    }

    /// Bytes not yet returned as events.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// The next whole event, if the buffer holds one; probe answers and echoes of our
    /// no-op probes are dropped on the way.
    pub fn take_event(&mut self, prober: Option<&Mutex<Prober>>) -> Result<Option<Event>, Error> {
        loop {
            let Some((incoming, used)) = self.codec.decode_incoming(&self.buf[self.consumed..])?
            else {
                return Ok(None);
            };
            self.advance(used);
            match incoming {
                Incoming::ProbeAnswer => {}
                Incoming::Event(event) if self.is_echo(&event, prober) => {}
                Incoming::Event(event) => return Ok(Some(event)),
            }
        }
    }

    /// Drops probe answers and no-op echoes at the front of the buffer.
    pub fn skip_swallowed(&mut self, prober: Option<&Mutex<Prober>>) -> Result<(), Error> {
        loop {
            let swallow = match self.codec.decode_incoming(&self.buf[self.consumed..])? {
                Some((Incoming::ProbeAnswer, used)) => Some(used),
                Some((Incoming::Event(e), used)) if self.is_echo(&e, prober) => Some(used),
                _ => None,
            };
            match swallow {
                Some(used) => self.advance(used),
                None => return Ok(()),
            }
        }
    }

    fn is_echo(&self, event: &Event, prober: Option<&Mutex<Prober>>) -> bool {
        prober.is_some_and(|p| lock(p).is_echo(event, &self.own))
    }

    fn advance(&mut self, used: usize) {
        self.consumed += used;
        if self.consumed == self.buf.len() {
            self.buf.clear();
            self.consumed = 0;
        }
    }
}
