//! The blocking client: one [`Mailbox`] per session, over TCP or the local socket.
//!
//! With liveness on, a small thread per Mailbox writes the probes on schedule while the
//! application is busy elsewhere; every whole message is written under one lock, so the
//! thread's probes and the application's requests never interleave.

use crate::address::DaemonAddress;
use crate::connect::{self, ConnectOptions};
use crate::inbox::{lock, Inbox};
use crate::liveness::{self, Liveness, Prober};
use crate::proto::Codec;
use crate::types::{Event, Service};
use crate::Error;
use spread_wire::handshake::{self, Parsed, Reject};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

enum Transport {
    Tcp(TcpStream),
    Local(UnixStream),
}

impl Transport {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.set_read_timeout(t),
            Transport::Local(s) => s.set_read_timeout(t),
        }
    }

    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.set_write_timeout(t),
            Transport::Local(s) => s.set_write_timeout(t),
        }
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.set_nonblocking(on),
            Transport::Local(s) => s.set_nonblocking(on),
        }
    }

    fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Transport::Tcp(s) => s.shutdown(how),
            Transport::Local(s) => s.shutdown(how),
        };
    }

    /// Ends the connection so that the daemon reads everything we sent: our FIN goes after
    /// our last byte, and we read (and drop) what the daemon still sends until it closes
    /// too. Closing with unread bytes (a probe answer, a delivery) would send a reset
    /// instead, and a reset lets the daemon's kernel drop what it has not read yet — the
    /// tail of a write-only client's messages. Waits at most `LINGER`.
    fn close_gracefully(&self) {
        self.shutdown(Shutdown::Write);
        let until = Instant::now() + LINGER;
        let mut sink = [0u8; 16 * 1024];
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if self
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .is_err()
            {
                break;
            }
            match (&*self).read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.shutdown(Shutdown::Both);
    }
}

/// How long closing a session waits for the daemon to close its side.
const LINGER: Duration = Duration::from_secs(2);

impl Read for &Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => (&*s).read(buf),
            Transport::Local(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => (&*s).write(buf),
            Transport::Local(s) => (&*s).write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The connection, shared by the Mailbox (reads and writes) and its probe thread (writes).
struct Shared {
    transport: Transport,
    /// Held while one whole message is written. `Some` once a write failed: the stream may
    /// hold half a message, so nothing more is written.
    writer: Mutex<Option<WriteFailure>>,
}

#[derive(Clone, Copy, Debug)]
enum WriteFailure {
    /// A write stayed blocked past `Liveness::write_stall`: the daemon reads nothing.
    Stalled(Duration),
    Closed,
}

impl WriteFailure {
    fn error(self) -> Error {
        match self {
            WriteFailure::Stalled(after) => Error::DaemonTimeout { after },
            WriteFailure::Closed => Error::ConnectionClosed,
        }
    }
}

impl Shared {
    fn lock_writer(&self) -> MutexGuard<'_, Option<WriteFailure>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes one whole message, or notes why it could not.
    fn write_message(&self, bytes: &[u8], stall: Option<Duration>) -> Result<(), Error> {
        let mut failed = self.lock_writer();
        if let Some(f) = *failed {
            return Err(f.error());
        }
        match (&self.transport).write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) => {
                let failure = match stall {
                    Some(after) if is_timeout(&e) => WriteFailure::Stalled(after),
                    _ => WriteFailure::Closed,
                };
                *failed = Some(failure);
                drop(failed);
                // Whatever is half written must not be followed by anything.
                self.transport.shutdown(Shutdown::Both);
                match (failure, closed_or_io(e)) {
                    (WriteFailure::Stalled(_), _) => Err(failure.error()),
                    (_, e) => Err(e),
                }
            }
        }
    }

    fn write_failure(&self) -> Option<WriteFailure> {
        *self.lock_writer()
    }
}

/// The probe side of a Mailbox: bookkeeping shared with the probe thread, and the channel
/// whose closing stops that thread.
struct Probing {
    prober: Arc<Mutex<Prober>>,
    liveness: Liveness,
    _stop: mpsc::Sender<()>,
}

/// A session with a daemon.
pub struct Mailbox {
    shared: Arc<Shared>,
    inbox: Inbox,
    address: DaemonAddress,
    read_timeout: Option<Duration>,
    probing: Option<Probing>,
    /// Set once the connection has closed or broken: every later call is refused, as
    /// 3.17's library does, instead of writing into a dead socket.
    ended: bool,
}

/// The probe thread needs little: it sleeps, locks, writes.
const PROBE_THREAD_STACK: usize = 64 * 1024;

impl Mailbox {
    /// Connects and runs the 3.17 handshake (offering the liveness probe when
    /// `options.liveness` is set).
    pub fn connect(options: &ConnectOptions) -> Result<Mailbox, Error> {
        Mailbox::connect_to(DaemonAddress::parse(&options.daemon)?, options)
    }

    /// Connects to a local socket at `path` (for daemons whose socket is not `/tmp/<port>`).
    pub fn connect_local(
        path: impl Into<std::path::PathBuf>,
        options: &ConnectOptions,
    ) -> Result<Mailbox, Error> {
        Mailbox::connect_to(DaemonAddress::Local(path.into()), options)
    }

    /// Connects to `address`, ignoring `options.daemon`.
    pub fn connect_to(address: DaemonAddress, options: &ConnectOptions) -> Result<Mailbox, Error> {
        let request = connect::connect_request(options)?;
        let deadline = options.timeout.map(|t| Instant::now() + t);
        let transport = open(&address, options.timeout)?;
        if let (Transport::Tcp(s), Some(k)) = (&transport, options.keepalive) {
            k.apply(s)?;
        }
        let mut buf = Vec::new();
        (&transport).write_all(&request)?;
        let offered = read_until(&transport, &mut buf, deadline, handshake::parse_auth_list)?;
        let (choice, mode) = connect::auth_choice(options, offered)?;
        (&transport).write_all(&choice)?;
        let accepted = read_until(&transport, &mut buf, deadline, handshake::parse_accept)?;
        transport.set_read_timeout(None)?;
        let codec = Codec::new(accepted.private_group);
        let probe = match (options.liveness, mode) {
            (Some(liveness), Some(mode)) => {
                let prober = Prober::new(liveness, mode, &codec);
                // A write blocked this long means the daemon reads nothing: give up then.
                transport.set_write_timeout(Some(prober.liveness.write_stall()))?;
                Some(prober)
            }
            _ => None,
        };
        let shared = Arc::new(Shared {
            transport,
            writer: Mutex::new(None),
        });
        let probing = match probe {
            Some(prober) => Some(start_probing(&shared, prober)?),
            None => None,
        };
        Ok(Mailbox {
            shared,
            inbox: Inbox::new(codec, buf),
            address,
            read_timeout: None,
            probing,
            ended: false,
        })
    }

    /// Our private group, `#name#daemon`: send to it to reach this session alone.
    pub fn private_group(&self) -> String {
        self.inbox.own.clone()
    }

    /// The underlying TCP connection, `None` over the local socket (for inspection, e.g.
    /// of socket options).
    pub fn tcp_stream(&self) -> Option<&TcpStream> {
        match &self.shared.transport {
            Transport::Tcp(s) => Some(s),
            Transport::Local(_) => None,
        }
    }

    pub fn address(&self) -> &DaemonAddress {
        &self.address
    }

    /// The liveness probing in force (`None` when off): the deadline as applied (see
    /// [`crate::NOOP_MIN_DEADLINE`] with a C daemon), and whether the daemon took our probe (ours)
    /// or not (C 3.17).
    pub fn liveness(&self) -> Option<(Liveness, crate::ProbeMode)> {
        self.probing
            .as_ref()
            .map(|p| (p.liveness, lock(&p.prober).mode))
    }

    pub fn join(&mut self, group: &str) -> Result<(), Error> {
        self.check_live()?;
        let bytes = self.inbox.codec.membership_request(true, group)?;
        self.send(&bytes)
    }

    pub fn leave(&mut self, group: &str) -> Result<(), Error> {
        self.check_live()?;
        let bytes = self.inbox.codec.membership_request(false, group)?;
        self.send(&bytes)
    }

    /// Sends `data` to `groups` (1 to 100). Returns the number of data bytes sent.
    pub fn multicast<G: AsRef<str>>(
        &mut self,
        service: Service,
        groups: &[G],
        mess_type: i16,
        data: &[u8],
    ) -> Result<usize, Error> {
        self.multicast_scatter(service, groups, mess_type, &[data])
    }

    /// Sends the concatenation of `parts` as one message.
    pub fn multicast_scatter<G: AsRef<str>>(
        &mut self,
        service: Service,
        groups: &[G],
        mess_type: i16,
        parts: &[&[u8]],
    ) -> Result<usize, Error> {
        self.check_live()?;
        let bytes = self
            .inbox
            .codec
            .multicast(service, groups, mess_type, parts)?;
        self.send(&bytes)?;
        Ok(parts.iter().map(|p| p.len()).sum())
    }

    /// Waits for the next event. With liveness on, fails with [`Error::DaemonTimeout`]
    /// once the daemon has left a probe unanswered for the deadline.
    pub fn receive(&mut self) -> Result<Event, Error> {
        self.check_live()?;
        loop {
            if let Some(event) = self.wait(None)? {
                return Ok(event);
            }
        }
    }

    /// Waits at most `timeout`; `Ok(None)` when nothing came.
    pub fn receive_timeout(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        self.check_live()?;
        self.wait(Some(Instant::now() + timeout))
    }

    /// Bytes received and not yet returned as events, without blocking (3.17's SP_poll).
    /// Probe answers and our own no-op probes are not counted.
    pub fn poll(&mut self) -> Result<usize, Error> {
        self.check_live()?;
        let result = {
            // No write may see the socket non-blocking: hold the write lock meanwhile.
            let shared = Arc::clone(&self.shared);
            let _writing = shared.lock_writer();
            self.shared.transport.set_nonblocking(true)?;
            let result = self.read_more();
            self.shared.transport.set_nonblocking(false)?;
            result
        };
        let result = self.settle(result);
        match result {
            Ok(()) => {}
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => self.check_probe()?,
            Err(e) => return Err(e),
        }
        let skipped = self
            .inbox
            .skip_swallowed(self.probing.as_ref().map(|p| &*p.prober));
        self.note(skipped)?;
        Ok(self.inbox.pending())
    }

    /// Says goodbye to the daemon: our groups see us leave by disconnect.
    pub fn disconnect(mut self) -> Result<(), Error> {
        self.check_live()?;
        let bytes = self.inbox.codec.disconnect_request();
        self.send(&bytes)
    }

    fn check_live(&self) -> Result<(), Error> {
        if self.ended {
            Err(Error::IllegalSession)
        } else {
            Ok(())
        }
    }

    /// Marks the session ended when `result` says the connection is gone.
    fn note<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result {
            if e.ends_session() {
                self.end();
            }
        }
        result
    }

    fn end(&mut self) {
        self.ended = true;
        self.probing = None;
        self.shared.transport.shutdown(Shutdown::Both);
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let stall = self.probing.as_ref().map(|p| p.liveness.write_stall());
        let result = self.shared.write_message(bytes, stall);
        self.note(result)
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        if self.read_timeout != timeout {
            self.shared.transport.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        Ok(())
    }

    /// Returns an event, or `None` once `deadline` passed. Reads in slices while probing,
    /// to look at the probe's clock between them.
    fn wait(&mut self, deadline: Option<Instant>) -> Result<Option<Event>, Error> {
        loop {
            if let Some(event) = self.take_event()? {
                return Ok(Some(event));
            }
            let probing = self.probing.as_ref().map(|p| &p.liveness);
            let Some(slice) = liveness::read_slice(deadline, probing, Instant::now()) else {
                return Ok(None);
            };
            self.set_timeout(slice)?;
            match self.fill() {
                Ok(()) => {}
                Err(Error::Io(e)) if is_timeout(&e) => self.check_probe()?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Fails with [`Error::DaemonTimeout`] (ending the session) when a probe went
    /// unanswered for the deadline or a write stalled that long.
    fn check_probe(&mut self) -> Result<(), Error> {
        let Some(p) = &self.probing else {
            return Ok(());
        };
        let overdue = lock(&p.prober).overdue(Instant::now());
        let result = match (overdue, self.shared.write_failure()) {
            (Some(after), _) => Err(Error::DaemonTimeout { after }),
            (None, Some(f)) => Err(f.error()),
            (None, None) => Ok(()),
        };
        self.note(result)
    }

    fn take_event(&mut self) -> Result<Option<Event>, Error> {
        let taken = self
            .inbox
            .take_event(self.probing.as_ref().map(|p| &*p.prober));
        self.note(taken)
    }

    fn fill(&mut self) -> Result<(), Error> {
        let result = self.read_more();
        self.settle(result)
    }

    /// What a read's result means for the session (not under the write lock).
    fn settle(&mut self, mut result: Result<(), Error>) -> Result<(), Error> {
        if result.is_err() {
            // The probe thread gave up on a stalled write and closed the socket under us.
            if let Some(f @ WriteFailure::Stalled(_)) = self.shared.write_failure() {
                result = Err(f.error());
            }
        }
        match &result {
            // A timeout or an empty non-blocking read leaves the session alive.
            Err(Error::Io(e)) if is_timeout(e) => result,
            _ => self.note(result),
        }
    }

    fn read_more(&mut self) -> Result<(), Error> {
        let began = Instant::now();
        let result = (&self.shared.transport).read(self.inbox.spare());
        let n = *result.as_ref().unwrap_or(&0);
        let prober = self.probing.as_ref().map(|p| &*p.prober);
        self.inbox.filled(n, began, prober);
        match result {
            Ok(0) => Err(Error::ConnectionClosed),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(closed_or_io(e)),
        }
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        // The probe thread stops at once (a write it is blocked in fails at our FIN); the
        // connection closes now, not when the thread lets go of it.
        self.probing = None;
        if self.ended {
            self.shared.transport.shutdown(Shutdown::Both);
        } else {
            self.shared.transport.close_gracefully();
        }
    }
}

/// Sends the first probe at once (so our daemon learns the promise) and starts the thread
/// that sends the others every interval until the Mailbox goes.
fn start_probing(shared: &Arc<Shared>, prober: Prober) -> Result<Probing, Error> {
    let liveness = prober.liveness;
    let bytes = prober.bytes().to_vec();
    let prober = Arc::new(Mutex::new(prober));
    let now = Instant::now();
    lock(&prober).sent(now);
    shared.write_message(&bytes, Some(liveness.write_stall()))?;
    let (stop, stopped) = mpsc::channel::<()>();
    let (shared, thread_prober) = (Arc::clone(shared), Arc::clone(&prober));
    std::thread::Builder::new()
        .name("spread-probe".into())
        .stack_size(PROBE_THREAD_STACK)
        .spawn(move || loop {
            match stopped.recv_timeout(liveness.interval) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            let now = Instant::now();
            {
                let mut p = lock(&thread_prober);
                if !p.due(now) {
                    continue;
                }
                p.sent(now);
            }
            if shared
                .write_message(&bytes, Some(liveness.write_stall()))
                .is_err()
            {
                return;
            }
        })?;
    Ok(Probing {
        prober,
        liveness,
        _stop: stop,
    })
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn closed_or_io(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => Error::ConnectionClosed,
        _ => Error::Io(e),
    }
}

fn open(address: &DaemonAddress, timeout: Option<Duration>) -> Result<Transport, Error> {
    let fail = |source| Error::CouldNotConnect {
        address: address.to_string(),
        source,
    };
    match address {
        DaemonAddress::Local(path) => UnixStream::connect(path)
            .map(Transport::Local)
            .map_err(fail),
        DaemonAddress::Tcp { host, port } => {
            let addrs: Vec<_> = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|_| Error::IllegalSpread(address.to_string()))?
                .collect();
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
            for a in addrs {
                let attempt = match timeout {
                    Some(t) => TcpStream::connect_timeout(&a, t),
                    None => TcpStream::connect(a),
                };
                match attempt {
                    Ok(s) => {
                        s.set_nodelay(true)?;
                        return Ok(Transport::Tcp(s));
                    }
                    Err(e) => last = e,
                }
            }
            Err(fail(last))
        }
    }
}

/// Reads until `parse` finds a whole item, removing it from `buf`.
fn read_until<T>(
    transport: &Transport,
    buf: &mut Vec<u8>,
    deadline: Option<Instant>,
    parse: impl Fn(&[u8]) -> Result<Parsed<T>, Reject>,
) -> Result<T, Error> {
    loop {
        match parse(buf).map_err(Error::Rejected)? {
            Parsed::Done(item, used) => {
                buf.drain(..used);
                return Ok(item);
            }
            Parsed::NeedMore => {}
        }
        let left = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Timeout);
                }
                Some(left)
            }
            None => None,
        };
        transport.set_read_timeout(left)?;
        let mut chunk = [0u8; 512];
        let mut reader = transport;
        match reader.read(&mut chunk) {
            Ok(0) => return Err(Error::ConnectionClosed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => return Err(Error::Timeout),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(closed_or_io(e)),
        }
    }
}
