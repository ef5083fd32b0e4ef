//! The blocking client: one [`Mailbox`] per session, over TCP or the local socket.
//!
//! With liveness on, a small thread per Mailbox writes the probes on schedule while the
//! application is busy elsewhere; every whole message is written under one lock, so the
//! thread's probes and the application's requests never interleave.

use crate::address::DaemonAddress;
use crate::connect::{self, ConnectOptions, HandshakeInput, HANDSHAKE_CHUNK};
use crate::inbox::lock;
use crate::liveness::{Liveness, Prober};
use crate::proto::Codec;
use crate::session::{self, closed_or_io, Next, Probing, Session, WriteFailure};
use crate::types::{Event, Service};
use crate::Error;
use spread_wire::handshake::{self, Parsed, Reject};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
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
    /// Held while one whole message is written. `Some` once a write failed.
    writer: Mutex<Option<WriteFailure>>,
}

impl Shared {
    /// Writes one whole message, or notes why it could not.
    fn write_message(&self, bytes: &[u8], stall: Option<Duration>) -> Result<(), Error> {
        let mut failed = lock(&self.writer);
        if let Some(f) = *failed {
            return Err(f.error());
        }
        let Err(e) = (&self.transport).write_all(bytes) else {
            return Ok(());
        };
        // The write timeout is set only while probing: a timeout is a stalled write.
        let error = (stall.is_none() || !is_timeout(&e)).then_some(e);
        let (failure, error) = WriteFailure::of(error, stall);
        *failed = Some(failure);
        drop(failed);
        // Whatever is half written must not be followed by anything; a reader blocked in
        // `receive` wakes up.
        self.transport.shutdown(Shutdown::Both);
        Err(error)
    }

    /// How writing failed, if it did (waits for a write in progress).
    fn write_failure(&self) -> Option<WriteFailure> {
        *lock(&self.writer)
    }
}

/// A session with a daemon.
pub struct Mailbox {
    shared: Arc<Shared>,
    /// Dropping the sender stops the probe thread.
    session: Session<mpsc::Sender<()>>,
    read_timeout: Option<Duration>,
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
        let mut input = HandshakeInput::new(options, Instant::now());
        let transport = open(&address, options)?;
        (&transport).write_all(&request).map_err(closed_or_io)?;
        let offered = read_until(&transport, &mut input, handshake::parse_auth_list)?;
        let (choice, mode) = connect::auth_choice(options, offered)?;
        (&transport).write_all(&choice).map_err(closed_or_io)?;
        let accepted = read_until(&transport, &mut input, handshake::parse_accept)?;
        transport.set_read_timeout(None)?;
        let codec = Codec::new(accepted.private_group);
        let prober = connect::prober(options, mode, &codec);
        if let Some(p) = &prober {
            // A write blocked this long means the daemon reads nothing: give up then.
            transport.set_write_timeout(Some(p.liveness.write_stall()))?;
        }
        let shared = Arc::new(Shared {
            transport,
            writer: Mutex::new(None),
        });
        let probing = match prober {
            Some(prober) => Some(start_probing(&shared, prober)?),
            None => None,
        };
        Ok(Mailbox {
            shared,
            session: Session::new(codec, input.into_leftover(), address, probing),
            read_timeout: None,
        })
    }

    /// Our private group, `#name#daemon`: send to it to reach this session alone.
    pub fn private_group(&self) -> String {
        self.session.private_group()
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
        &self.session.address
    }

    /// The liveness probing in force (`None` when off): the deadline as applied (see
    /// [`crate::NOOP_MIN_DEADLINE`] with a C daemon), and whether the daemon took our probe (ours)
    /// or not (C 3.17).
    pub fn liveness(&self) -> Option<(Liveness, crate::ProbeMode)> {
        self.session.liveness()
    }

    pub fn join(&mut self, group: &str) -> Result<(), Error> {
        let bytes = self.session.requests()?.membership_request(true, group)?;
        self.send(&bytes)
    }

    pub fn leave(&mut self, group: &str) -> Result<(), Error> {
        let bytes = self.session.requests()?.membership_request(false, group)?;
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
        let codec = self.session.requests()?;
        let bytes = codec.multicast(service, groups, mess_type, parts)?;
        self.send(&bytes)?;
        Ok(parts.iter().map(|p| p.len()).sum())
    }

    /// Waits for the next event. With liveness on, fails with [`Error::DaemonTimeout`]
    /// once the daemon has left a probe unanswered for the deadline.
    pub fn receive(&mut self) -> Result<Event, Error> {
        self.session.check_live()?;
        loop {
            if let Some(event) = self.wait(None)? {
                return Ok(event);
            }
        }
    }

    /// Waits at most `timeout`; `Ok(None)` when nothing came.
    pub fn receive_timeout(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        self.session.check_live()?;
        self.wait(Some(Instant::now() + timeout))
    }

    /// Bytes received and not yet returned as events, without blocking (3.17's SP_poll).
    /// Probe answers and our own no-op probes are not counted.
    pub fn poll(&mut self) -> Result<usize, Error> {
        self.session.check_live()?;
        let began = Instant::now();
        let (read, restored) = {
            // No write may see the socket non-blocking: hold the write lock meanwhile.
            let _writing = lock(&self.shared.writer);
            self.shared.transport.set_nonblocking(true)?;
            let read = (&self.shared.transport).read(self.session.spare());
            (read, self.shared.transport.set_nonblocking(false))
        };
        let shared = &self.shared;
        let done = self.session.read_done(
            timed(read),
            began,
            || shared.write_failure(),
            Instant::now(),
        );
        restored?;
        self.closing(done)?;
        let pending = self.session.pending_after_swallowing();
        self.closing(pending)
    }

    /// Says goodbye to the daemon: our groups see us leave by disconnect.
    pub fn disconnect(mut self) -> Result<(), Error> {
        let bytes = self.session.requests()?.disconnect_request();
        self.send(&bytes)
    }

    /// `result`, after closing the connection at once if the session has ended.
    fn closing<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if self.session.ended() {
            self.shared.transport.shutdown(Shutdown::Both);
        }
        result
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let written = self.shared.write_message(bytes, self.session.write_stall());
        let written = self.session.note(written);
        self.closing(written)
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        if self.read_timeout != timeout {
            self.shared.transport.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        Ok(())
    }

    /// Returns an event, or `None` once `deadline` passed.
    fn wait(&mut self, deadline: Option<Instant>) -> Result<Option<Event>, Error> {
        loop {
            let slice = match self.session.next(deadline, Instant::now()) {
                Next::Ready(ready) => return self.closing(ready),
                Next::Read(slice) => slice,
            };
            self.set_timeout(slice)?;
            let began = Instant::now();
            let read = timed((&self.shared.transport).read(self.session.spare()));
            let shared = &self.shared;
            let done =
                self.session
                    .read_done(read, began, || shared.write_failure(), Instant::now());
            self.closing(done)?;
        }
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        // The probe thread stops at once (a write it is blocked in fails at our FIN); the
        // connection closes now, not when the thread lets go of it.
        self.session.stop_probing();
        if self.session.ended() {
            self.shared.transport.shutdown(Shutdown::Both);
        } else {
            self.shared.transport.close_gracefully();
        }
    }
}

/// Sends the first probe at once and starts the thread that sends the others every
/// interval until the Mailbox goes.
fn start_probing(shared: &Arc<Shared>, prober: Prober) -> Result<Probing<mpsc::Sender<()>>, Error> {
    let liveness = prober.liveness;
    let (prober, bytes) = session::first_probe(prober, Instant::now());
    shared.write_message(&bytes, Some(liveness.write_stall()))?;
    let (stop, stopped) = mpsc::channel::<()>();
    let (shared, thread_prober) = (Arc::clone(shared), Arc::clone(&prober));
    std::thread::Builder::new()
        .name("spread-probe".into())
        .stack_size(PROBE_THREAD_STACK)
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(liveness.interval)
            {
                if lock(&thread_prober).send_if_due(Instant::now())
                    && shared
                        .write_message(&bytes, Some(liveness.write_stall()))
                        .is_err()
                {
                    return;
                }
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

/// A read's result with its time running out (a read timeout, or nothing to read without
/// blocking) as `None`, as the session takes it.
fn timed(read: io::Result<usize>) -> Option<io::Result<usize>> {
    match read {
        Err(e) if is_timeout(&e) => None,
        read => Some(read),
    }
}

fn open(address: &DaemonAddress, options: &ConnectOptions) -> Result<Transport, Error> {
    let transport = match address {
        DaemonAddress::Local(path) => UnixStream::connect(path).map(Transport::Local),
        DaemonAddress::Tcp { host, port } => {
            let addrs = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|_| address.unresolved())?;
            connect::first_connected(addrs, |a| match options.timeout {
                Some(t) => TcpStream::connect_timeout(&a, t),
                None => TcpStream::connect(a),
            })
            .map(Transport::Tcp)
        }
    };
    let transport = transport.map_err(|source| address.could_not_connect(source))?;
    if let Transport::Tcp(stream) = &transport {
        connect::tune(stream, options)?;
    }
    Ok(transport)
}

/// Reads until `parse` finds a whole item in what the daemon sent.
fn read_until<T>(
    transport: &Transport,
    input: &mut HandshakeInput,
    parse: impl Fn(&[u8]) -> Result<Parsed<T>, Reject>,
) -> Result<T, Error> {
    loop {
        if let Some(item) = input.take(&parse)? {
            return Ok(item);
        }
        transport.set_read_timeout(input.time_left(Instant::now())?)?;
        let mut chunk = [0u8; HANDSHAKE_CHUNK];
        let read = timed((&*transport).read(&mut chunk));
        input.received(&chunk, read)?;
    }
}
