//! What the daemon has for one client and not yet written.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::IoSlice;

/// A queue of whole messages (shared [`Bytes`]), written front to back.
#[derive(Debug, Default)]
pub struct OutQueue {
    chunks: VecDeque<Bytes>,
    bytes: usize,
}

impl OutQueue {
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.bytes += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Queues `chunk` right behind the message being written, ahead of the rest: for small
    /// answers (the liveness probe's) that must not wait behind a backlog.
    pub fn push_urgent(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.bytes += chunk.len();
            let at = self.chunks.len().min(1);
            self.chunks.insert(at, chunk);
        }
    }

    /// Messages waiting (a partly written one counts).
    pub fn messages(&self) -> usize {
        self.chunks.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Up to `max` slices for one vectored write.
    pub fn slices<'a>(&'a self, out: &mut Vec<IoSlice<'a>>, max: usize) {
        out.clear();
        out.extend(self.chunks.iter().take(max).map(|c| IoSlice::new(c)));
    }

    /// Drops `n` written bytes from the front.
    pub fn consume(&mut self, mut n: usize) {
        self.bytes -= n;
        while n > 0 {
            let front = self.chunks.front_mut().expect("consumed more than queued");
            if front.len() <= n {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.bytes = 0;
    }
}
