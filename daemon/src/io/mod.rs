//! The event loop: the only place in the daemon with sockets and clocks.
//!
//! It accepts clients on TCP and on the local socket, feeds their bytes to the
//! [`Daemon`](crate::core::Daemon) core, writes what the core queued, and closes what the
//! core says to close. Nothing here decides anything about Spread.

mod local_socket;
mod stream;
mod udp;

pub use local_socket::{bind_local_socket, LocalSocket, LocalSocketError};
pub use udp::{Binding, RingSockets};

use crate::core::{CloseReason, ConnId, CoreEvent, Daemon, Peer};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{self, IoSlice, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
pub use stream::ClientKeepalive;
use stream::Stream;

/// Listeners handed to the loop.
pub struct Listeners {
    pub tcp: Vec<TcpListener>,
    pub local: Option<LocalSocket>,
    /// The ring's sockets, when the daemon is configured with others.
    pub ring: Option<RingSockets>,
}

/// Tokens of the ring's receive sockets start here (below them: client listeners).
const FIRST_UDP: u64 = 32;

struct Conn {
    stream: Stream,
    /// Registered for writable events (only while the core's queue would not drain).
    wants_write: bool,
    /// The core asked to close once the queue is written.
    closing: bool,
}

/// Tokens below this are listeners.
const FIRST_CONN: u64 = 64;
/// Slices per vectored write: enough to batch many small messages into one syscall.
const MAX_SLICES: usize = 64;
/// Datagrams handled between two rounds of client writes (see `receive_datagrams`).
const DATAGRAMS_PER_CLIENT_FLUSH: usize = 64;

pub struct EventLoop {
    poll: Poll,
    core: Daemon,
    listeners: Listeners,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    read_buf: Vec<u8>,
    stop: &'static AtomicBool,
    /// Clients not read while a receiver is congested; read again once it drains.
    paused: Vec<ConnId>,
    /// Where to keep the ring's last used time, and what was last written there.
    ring_time: Option<(std::path::PathBuf, i32)>,
    /// Keepalive of client TCP connections (`None`: the OS defaults).
    client_keepalive: Option<ClientKeepalive>,
}

impl EventLoop {
    pub fn new(
        core: Daemon,
        mut listeners: Listeners,
        stop: &'static AtomicBool,
    ) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        for (i, l) in listeners.tcp.iter_mut().enumerate() {
            poll.registry().register(l, Token(i), Interest::READABLE)?;
        }
        if let Some(ring) = listeners.ring.as_mut() {
            for (i, (socket, _)) in ring.receivers.iter_mut().enumerate() {
                poll.registry().register(
                    socket,
                    Token((FIRST_UDP + i as u64) as usize),
                    Interest::READABLE,
                )?;
            }
        }
        if let Some(local) = listeners.local.as_mut() {
            poll.registry().register(
                &mut local.listener,
                Token(FIRST_CONN as usize - 1),
                Interest::READABLE,
            )?;
        }
        Ok(EventLoop {
            poll,
            core,
            listeners,
            conns: HashMap::new(),
            next_conn: FIRST_CONN,
            read_buf: vec![0; 256 * 1024],
            stop,
            paused: Vec::new(),
            ring_time: None,
            client_keepalive: Some(ClientKeepalive::default()),
        })
    }

    /// Sets keepalive for client connections accepted from now on.
    pub fn set_client_keepalive(&mut self, keepalive: Option<ClientKeepalive>) {
        self.client_keepalive = keepalive;
    }

    /// Keeps the ring's last used time in `file`, so a restarted daemon never reuses a ring
    /// id (ids carry wall-clock seconds, and a quick restart can land in the same second).
    pub fn keep_ring_time_in(&mut self, file: Option<std::path::PathBuf>) {
        self.ring_time = file.map(|f| (f, i32::MIN));
    }

    fn save_ring_time(&mut self) {
        let Some((file, saved)) = self.ring_time.as_mut() else {
            return;
        };
        let Some(now) = self.core.ring().map(|r| r.last_time_used()) else {
            return;
        };
        if now != *saved {
            *saved = now;
            if let Err(e) = std::fs::write(&*file, format!("{now}\n")) {
                tracing::warn!("cannot keep the ring time in {}: {e}", file.display());
            }
        }
    }

    /// Runs until `stop` is set (by a signal handler).
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            // Wake at least every 200 ms to notice a stop request.
            let mut timeout = Duration::from_millis(200);
            if let Some(deadline) = self.core.poll_timeout() {
                timeout = timeout.min(deadline.saturating_duration_since(now));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for event in events.iter() {
                let token = event.token().0 as u64;
                if (FIRST_UDP..FIRST_CONN - 1).contains(&token) {
                    self.receive_datagrams(now, (token - FIRST_UDP) as usize);
                    continue;
                }
                if token < FIRST_CONN {
                    self.accept(now, token);
                    continue;
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read(now, token);
                }
                if event.is_writable() {
                    self.write(token);
                }
            }
            self.core.handle_timeout(now);
            self.drain_core();
            self.save_ring_time();
            if !self.paused.is_empty() && !self.core.is_congested() {
                for conn in std::mem::take(&mut self.paused) {
                    self.read(now, conn);
                }
            }
        }
        if let Some(local) = &self.listeners.local {
            local.remove();
        }
        Ok(())
    }

    fn accept(&mut self, now: Instant, token: u64) {
        loop {
            let accepted = if token == FIRST_CONN - 1 {
                let Some(local) = self.listeners.local.as_ref() else {
                    return;
                };
                local
                    .listener
                    .accept()
                    .map(|(s, _)| (Stream::Unix(s), Peer::Local))
            } else {
                self.listeners.tcp[token as usize]
                    .accept()
                    .map(|(s, addr)| {
                        let peer = match addr {
                            SocketAddr::V4(a) => Peer::Tcp(*a.ip()),
                            SocketAddr::V6(a) => Peer::Tcp(
                                a.ip()
                                    .to_ipv4_mapped()
                                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                            ),
                        };
                        (Stream::Tcp(s), peer)
                    })
            };
            let (mut stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Out of descriptors, or the client gave up: log and carry on.
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            };
            stream.tune(self.client_keepalive);
            let conn = self.next_conn;
            self.next_conn += 1;
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut stream, Token(conn as usize), Interest::READABLE)
            {
                tracing::warn!("cannot watch a new connection: {e}");
                continue;
            }
            self.conns.insert(
                conn,
                Conn {
                    stream,
                    wants_write: false,
                    closing: false,
                },
            );
            self.core.handle_connect(now, conn, peer);
        }
    }

    fn read(&mut self, now: Instant, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if c.closing {
                return;
            }
            if self.core.is_congested() {
                // Readiness is edge-triggered: remember to come back to this client.
                if !self.paused.contains(&conn) {
                    self.paused.push(conn);
                }
                return;
            }
            match c.stream.read(&mut self.read_buf) {
                Ok(0) => return self.hangup(now, conn),
                Ok(n) => {
                    self.core.handle_input(now, conn, &self.read_buf[..n]);
                    // Write replies before reading more, so a busy client cannot starve
                    // the queue it fills.
                    self.drain_core();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.hangup(now, conn),
            }
        }
    }

    fn hangup(&mut self, now: Instant, conn: ConnId) {
        if let Some(mut c) = self.conns.remove(&conn) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        self.core.handle_hangup(now, conn);
    }

    fn receive_datagrams(&mut self, now: Instant, index: usize) {
        let mut since_drain = 0;
        loop {
            let Some(ring) = self.listeners.ring.as_ref() else {
                return;
            };
            let (socket, port) = &ring.receivers[index];
            match socket.recv_from(&mut self.read_buf) {
                Ok((n, _from)) => {
                    let port = *port;
                    self.core.handle_datagram(now, port, &self.read_buf[..n]);
                    // Tokens and retransmissions go out at once; client writes wait for a
                    // batch of datagrams, so a burst of deliveries costs one write per
                    // client instead of one per message (each loopback TCP write wakes the
                    // reader: per-message writes were most of a ring daemon's CPU).
                    self.send_datagrams();
                    since_drain += 1;
                    if since_drain == DATAGRAMS_PER_CLIENT_FLUSH {
                        since_drain = 0;
                        self.drain_core();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.drain_core(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!("receiving a datagram failed: {e}");
                    return self.drain_core();
                }
            }
        }
    }

    /// Sends what the ring wants sent. A send that would block is dropped: the ring
    /// recovers lost datagrams by itself.
    fn send_datagrams(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            let Some(ring) = self.listeners.ring.as_ref() else {
                continue;
            };
            let Some(addr) = ring.address(t.to) else {
                continue;
            };
            if let Err(e) = ring.sender.send_to(&t.payload, addr) {
                if e.kind() != io::ErrorKind::WouldBlock {
                    tracing::debug!("sending a datagram to {addr} failed: {e}");
                }
            }
        }
    }

    /// Closes what the core closed, and writes what it queued.
    fn drain_core(&mut self) {
        self.send_datagrams();
        while let Some(event) = self.core.poll_event() {
            match event {
                CoreEvent::Exit => {
                    // 3.17 exits at once on a monitor's negative component.
                    tracing::warn!("exiting: instructed by a monitor");
                    self.stop.store(true, Ordering::Relaxed);
                }
                CoreEvent::Close {
                    conn,
                    flush,
                    reason,
                } => {
                    match reason {
                        CloseReason::Violation(_) | CloseReason::TooSlow { .. } => {
                            tracing::warn!(conn, "dropping session: {reason}")
                        }
                        _ => tracing::debug!(conn, "closing session: {reason}"),
                    }
                    if flush {
                        if let Some(c) = self.conns.get_mut(&conn) {
                            c.closing = true;
                        }
                        self.write(conn);
                    } else {
                        self.close(conn);
                    }
                }
            }
        }
        while let Some(conn) = self.core.poll_writable() {
            self.write(conn);
        }
    }

    fn write(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(queue) = self.core.output(conn) else {
            return;
        };
        let mut failed = false;
        while !queue.is_empty() {
            let written = {
                let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(MAX_SLICES);
                queue.slices(&mut slices, MAX_SLICES);
                c.stream.write_vectored(&slices)
            };
            match written {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => queue.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        let empty = queue.is_empty();
        if failed {
            return self.hangup(Instant::now(), conn);
        }
        if empty && c.closing {
            return self.close(conn);
        }
        if empty == c.wants_write {
            // Ask for writable events only while something is stuck, never otherwise.
            c.wants_write = !empty;
            let interest = if empty {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            let _ = self
                .poll
                .registry()
                .reregister(&mut c.stream, Token(conn as usize), interest);
        }
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(mut c) = self.conns.remove(&conn) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        self.core.handle_closed(conn);
    }
}
