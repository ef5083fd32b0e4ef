//! The async client over tokio (cargo feature `tokio`): [`Mailbox`] and [`Failover`], with
//! the semantics of the blocking [`crate::Mailbox`] and [`crate::Failover`].
//!
//! Both drive the same sans-IO pieces as the blocking transport — the handshake steps, the
//! session state (when it has ended, what a read or a failed write means, how long to read),
//! the [`crate::proto::Codec`], the probe bookkeeping and the failover policy — and differ
//! only in their I/O calls. Liveness probes are written by a task spawned at connect (so a
//! runtime must be running), through the same lock as the application's requests; the task
//! is aborted when the Mailbox goes.
//!
//! 3.17's `SP_poll` has no counterpart here: an async caller awaits [`Mailbox::receive`]
//! (or races it with other futures) instead of asking how many bytes are waiting.

use crate::address::DaemonAddress;
use crate::connect::{self, ConnectOptions, HandshakeInput, HANDSHAKE_CHUNK};
use crate::failover::{FailoverOptions, Plan, Served, Step};
use crate::inbox::lock;
use crate::liveness::{Liveness, ProbeMode, Prober};
use crate::proto::Codec;
use crate::session::{self, closed_or_io, Next, Probing, Session, WriteFailure};
use crate::types::{Event, Service};
use crate::Error;
use ::tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ::tokio::net::{tcp, unix, TcpStream, UnixStream};
use ::tokio::sync::Mutex as AsyncMutex;
use ::tokio::task::JoinHandle;
use spread_wire::handshake::{self, Parsed, Reject};
use std::io;
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The read half of the connection, which can also close the whole connection at once.
enum ReadHalf {
    Tcp(tcp::OwnedReadHalf),
    Local(unix::OwnedReadHalf),
}

impl ReadHalf {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ReadHalf::Tcp(r) => r.read(buf).await,
            ReadHalf::Local(r) => r.read(buf).await,
        }
    }

    /// Shuts the connection down both ways, the write half's side too.
    fn close_now(&self) {
        let socket = match self {
            ReadHalf::Tcp(r) => socket2::SockRef::from(r.as_ref()),
            ReadHalf::Local(r) => socket2::SockRef::from(r.as_ref()),
        };
        let _ = socket.shutdown(Shutdown::Both);
    }
}

/// The write side, shared with the probe task: one whole message at a time under `half`'s
/// lock. `failed` is set once a write failed (outside that lock, so that the reader learns
/// it without waiting for a write in progress).
struct Writer {
    half: AsyncMutex<Box<dyn AsyncWrite + Send + Unpin>>,
    failed: Mutex<Option<WriteFailure>>,
}

impl Writer {
    /// Writes one whole message; a write blocked for `stall` is a stalled daemon.
    async fn write_message(&self, bytes: &[u8], stall: Option<Duration>) -> Result<(), Error> {
        let mut half = self.half.lock().await;
        if let Some(f) = self.failure() {
            return Err(f.error());
        }
        let written = match stall {
            Some(after) => ::tokio::time::timeout(after, half.write_all(bytes))
                .await
                .ok(),
            None => Some(half.write_all(bytes).await),
        };
        let error = match written {
            Some(Ok(())) => return Ok(()),
            Some(Err(e)) => Some(e),
            None => None,
        };
        let (failure, error) = WriteFailure::of(error, stall);
        *lock(&self.failed) = Some(failure);
        Err(error)
    }

    fn failure(&self) -> Option<WriteFailure> {
        *lock(&self.failed)
    }
}

/// Aborts the probe task when dropped.
struct ProbeTask(JoinHandle<()>);

impl Drop for ProbeTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long `disconnect` waits for the daemon to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// An async session with a daemon; see [`crate::Mailbox`]. Call `disconnect` to end it:
/// dropping it closes the connection at once, and bytes the daemon has not read yet may be
/// lost.
pub struct Mailbox {
    reader: ReadHalf,
    writer: Arc<Writer>,
    session: Session<ProbeTask>,
}

impl Mailbox {
    /// Connects and runs the 3.17 handshake; must run inside a tokio runtime (the probe
    /// task is spawned on it).
    pub async fn connect(options: &ConnectOptions) -> Result<Mailbox, Error> {
        Mailbox::connect_to(DaemonAddress::parse(&options.daemon)?, options).await
    }

    /// Connects to a local socket at `path` (for daemons whose socket is not `/tmp/<port>`).
    pub async fn connect_local(
        path: impl Into<std::path::PathBuf>,
        options: &ConnectOptions,
    ) -> Result<Mailbox, Error> {
        Mailbox::connect_to(DaemonAddress::Local(path.into()), options).await
    }

    /// Connects to `address`, ignoring `options.daemon`.
    pub async fn connect_to(
        address: DaemonAddress,
        options: &ConnectOptions,
    ) -> Result<Mailbox, Error> {
        let request = connect::connect_request(options)?;
        let mut input = HandshakeInput::new(options, Instant::now());
        let (mut reader, mut writer) = open(&address, options).await?;
        writer.write_all(&request).await.map_err(closed_or_io)?;
        let offered = read_until(&mut reader, &mut input, handshake::parse_auth_list).await?;
        let (choice, mode) = connect::auth_choice(options, offered)?;
        writer.write_all(&choice).await.map_err(closed_or_io)?;
        let accepted = read_until(&mut reader, &mut input, handshake::parse_accept).await?;
        let codec = Codec::new(accepted.private_group);
        let writer = Arc::new(Writer {
            half: AsyncMutex::new(writer),
            failed: Mutex::new(None),
        });
        let probing = match connect::prober(options, mode, &codec) {
            Some(prober) => Some(start_probing(&writer, prober).await?),
            None => None,
        };
        Ok(Mailbox {
            reader,
            writer,
            session: Session::new(codec, input.into_leftover(), address, probing),
        })
    }

    /// Our private group, `#name#daemon`.
    pub fn private_group(&self) -> String {
        self.session.private_group()
    }

    pub fn address(&self) -> &DaemonAddress {
        &self.session.address
    }

    /// The liveness probing in force (see [`crate::Mailbox::liveness`]).
    pub fn liveness(&self) -> Option<(Liveness, ProbeMode)> {
        self.session.liveness()
    }

    pub async fn join(&mut self, group: &str) -> Result<(), Error> {
        let bytes = self.session.requests()?.membership_request(true, group)?;
        self.send(&bytes).await
    }

    pub async fn leave(&mut self, group: &str) -> Result<(), Error> {
        let bytes = self.session.requests()?.membership_request(false, group)?;
        self.send(&bytes).await
    }

    /// Sends `data` to `groups` (1 to 100). Returns the number of data bytes sent.
    pub async fn multicast<G: AsRef<str>>(
        &mut self,
        service: Service,
        groups: &[G],
        mess_type: i16,
        data: &[u8],
    ) -> Result<usize, Error> {
        self.multicast_scatter(service, groups, mess_type, &[data])
            .await
    }

    /// Sends the concatenation of `parts` as one message.
    pub async fn multicast_scatter<G: AsRef<str>>(
        &mut self,
        service: Service,
        groups: &[G],
        mess_type: i16,
        parts: &[&[u8]],
    ) -> Result<usize, Error> {
        let codec = self.session.requests()?;
        let bytes = codec.multicast(service, groups, mess_type, parts)?;
        self.send(&bytes).await?;
        Ok(parts.iter().map(|p| p.len()).sum())
    }

    /// Waits for the next event; [`Error::DaemonTimeout`] as in [`crate::Mailbox::receive`].
    pub async fn receive(&mut self) -> Result<Event, Error> {
        self.session.check_live()?;
        loop {
            if let Some(event) = self.wait(None).await? {
                return Ok(event);
            }
        }
    }

    /// Waits at most `timeout`; `Ok(None)` when nothing came.
    pub async fn receive_timeout(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        self.session.check_live()?;
        self.wait(Some(Instant::now() + timeout)).await
    }

    /// Says goodbye to the daemon: our groups see us leave by disconnect.
    pub async fn disconnect(mut self) -> Result<(), Error> {
        let bytes = self.session.requests()?.disconnect_request();
        self.send(&bytes).await?;
        self.session.stop_probing();
        let _ = self.writer.half.lock().await.shutdown().await;
        // Read (and drop) what the daemon still sends until it closes: closing with unread
        // bytes would reset the connection, and a reset may cost the daemon the tail of
        // what we sent (see the blocking Mailbox's close).
        let mut sink = [0u8; 16 * 1024];
        let _ = ::tokio::time::timeout(LINGER, async {
            while let Ok(n) = self.reader.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        Ok(())
    }

    /// `result`, after closing the connection at once if the session has ended.
    fn closing<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if self.session.ended() {
            self.reader.close_now();
        }
        result
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let stall = self.session.write_stall();
        let written = self.writer.write_message(bytes, stall).await;
        let written = self.session.note(written);
        self.closing(written)
    }

    async fn wait(&mut self, deadline: Option<Instant>) -> Result<Option<Event>, Error> {
        loop {
            let slice = match self.session.next(deadline, Instant::now()) {
                Next::Ready(ready) => return self.closing(ready),
                Next::Read(slice) => slice,
            };
            let began = Instant::now();
            let read = within(slice, self.reader.read(self.session.spare())).await;
            let writer = &self.writer;
            let done = self
                .session
                .read_done(read, began, || writer.failure(), Instant::now());
            self.closing(done)?;
        }
    }
}

/// Sends the first probe at once and spawns the task that sends the others.
async fn start_probing(writer: &Arc<Writer>, prober: Prober) -> Result<Probing<ProbeTask>, Error> {
    let liveness = prober.liveness;
    let (prober, bytes) = session::first_probe(prober, Instant::now());
    writer
        .write_message(&bytes, Some(liveness.write_stall()))
        .await?;
    let (writer, task_prober) = (Arc::clone(writer), Arc::clone(&prober));
    let task = ::tokio::spawn(async move {
        let start = ::tokio::time::Instant::now() + liveness.interval;
        let mut ticks = ::tokio::time::interval_at(start, liveness.interval);
        ticks.set_missed_tick_behavior(::tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if !lock(&task_prober).send_if_due(Instant::now()) {
                continue;
            }
            let sent = writer.write_message(&bytes, Some(liveness.write_stall()));
            if sent.await.is_err() {
                return;
            }
        }
    });
    Ok(Probing {
        prober,
        liveness,
        _stop: ProbeTask(task),
    })
}

async fn open(
    address: &DaemonAddress,
    options: &ConnectOptions,
) -> Result<(ReadHalf, Box<dyn AsyncWrite + Send + Unpin>), Error> {
    let fail = |source| address.could_not_connect(source);
    match address {
        DaemonAddress::Local(path) => {
            let stream = within_or_timeout(options.timeout, UnixStream::connect(path))
                .await
                .map_err(fail)?;
            let (r, w) = stream.into_split();
            Ok((ReadHalf::Local(r), Box::new(w)))
        }
        DaemonAddress::Tcp { host, port } => {
            let addrs = ::tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|_| address.unresolved())?;
            let mut attempt = Err(connect::no_address());
            for a in addrs {
                attempt = within_or_timeout(options.timeout, TcpStream::connect(a)).await;
                if attempt.is_ok() {
                    break;
                }
            }
            let stream = attempt.map_err(fail)?;
            connect::tune(&stream, options)?;
            let (r, w) = stream.into_split();
            Ok((ReadHalf::Tcp(r), Box::new(w)))
        }
    }
}

/// `fut`'s output, or `None` when `limit` passed first (`None`: no limit).
async fn within<T>(
    limit: Option<Duration>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    match limit {
        Some(t) => ::tokio::time::timeout(t, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// `fut`, failing with `TimedOut` after `limit`.
async fn within_or_timeout<T>(
    limit: Option<Duration>,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    within(limit, fut)
        .await
        .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::TimedOut, "connect")))
}

/// Reads until `parse` finds a whole item in what the daemon sent.
async fn read_until<T>(
    reader: &mut ReadHalf,
    input: &mut HandshakeInput,
    parse: impl Fn(&[u8]) -> Result<Parsed<T>, Reject>,
) -> Result<T, Error> {
    let mut chunk = [0u8; HANDSHAKE_CHUNK];
    loop {
        if let Some(item) = input.take(&parse)? {
            return Ok(item);
        }
        let limit = input.time_left(Instant::now())?;
        let read = within(limit, reader.read(&mut chunk)).await;
        input.received(&chunk, read)?;
    }
}

impl Served for Mailbox {
    fn address(&self) -> &DaemonAddress {
        Mailbox::address(self)
    }
    fn private_group(&self) -> String {
        Mailbox::private_group(self)
    }
}

/// The async [`crate::Failover`]: same policy, same events.
pub struct Failover {
    plan: Plan<Mailbox>,
}

impl Failover {
    /// Connects to the first daemon that answers; see [`crate::Failover::connect`].
    pub async fn connect(options: &FailoverOptions) -> Result<Failover, Error> {
        let mut f = Failover {
            plan: Plan::new(options)?,
        };
        f.live().await?;
        Ok(f)
    }

    /// The groups joined (and joined again after every failover).
    pub fn groups(&self) -> &[String] {
        self.plan.groups()
    }

    /// Our private group on the current daemon.
    pub fn private_group(&self) -> Option<String> {
        self.plan.private_group()
    }

    /// The daemon serving us, `None` while none does.
    pub fn address(&self) -> Option<&DaemonAddress> {
        self.plan.address()
    }

    /// Joins `group`, now and after every failover.
    pub async fn join(&mut self, group: &str) -> Result<(), Error> {
        self.plan.joined(group)?;
        let joined = self.live().await?.join(group).await;
        if self.plan.lost(&joined, SystemTime::now()) {
            // The reconnect joins it with the others.
            return self.live().await.map(drop);
        }
        joined
    }

    /// Leaves `group`, and forgets it.
    pub async fn leave(&mut self, group: &str) -> Result<(), Error> {
        self.plan.left(group);
        let left = self.live().await?.leave(group).await;
        if self.plan.lost(&left, SystemTime::now()) {
            return self.live().await.map(drop);
        }
        left
    }

    /// Sends through the current daemon; see [`crate::Failover::multicast`].
    pub async fn multicast<G: AsRef<str>>(
        &mut self,
        service: Service,
        groups: &[G],
        mess_type: i16,
        data: &[u8],
    ) -> Result<usize, Error> {
        let mailbox = self.live().await?;
        let sent = mailbox.multicast(service, groups, mess_type, data).await;
        self.plan.lost(&sent, SystemTime::now());
        sent
    }

    /// The next event; after a failover, first [`Event::Failover`].
    pub async fn receive(&mut self) -> Result<Event, Error> {
        loop {
            if let Some(failover) = self.plan.failover_event() {
                return Ok(failover);
            }
            let received = self.live().await?.receive().await;
            if !self.plan.lost(&received, SystemTime::now()) {
                return received;
            }
            // Reconnect now: the failover is reported before anything the new session brings.
            self.live().await?;
        }
    }

    /// As [`Failover::receive`], waiting at most `timeout` for an event.
    pub async fn receive_timeout(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(failover) = self.plan.failover_event() {
                return Ok(Some(failover));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let received = self.live().await?.receive_timeout(left).await;
            if !self.plan.lost(&received, SystemTime::now()) {
                return received;
            }
            // Reconnect now: the failover is reported before anything the new session brings.
            self.live().await?;
        }
    }

    /// Ends the session with the current daemon (if any).
    pub async fn disconnect(mut self) -> Result<(), Error> {
        match self.plan.session.take() {
            Some(m) => m.disconnect().await,
            None => Ok(()),
        }
    }

    /// The session, after reconnecting if there is none (see [`crate::Failover`]).
    async fn live(&mut self) -> Result<&mut Mailbox, Error> {
        if self.plan.session.is_none() {
            let mut schedule = self.plan.schedule(Instant::now());
            while self.plan.session.is_none() {
                match self.plan.next(&mut schedule, Instant::now()) {
                    Step::Try(i) => match self.try_daemon(i).await {
                        Ok(m) => self.plan.connected(i, m.private_group(), m),
                        Err(e) => schedule.failed(e),
                    },
                    Step::Wait(pause) => ::tokio::time::sleep(pause).await,
                    Step::GiveUp => return Err(schedule.give_up()),
                }
            }
        }
        Ok(self.plan.session.as_mut().expect("connected"))
    }

    async fn try_daemon(&self, i: usize) -> Result<Mailbox, Error> {
        let mut m = Mailbox::connect_to(self.plan.addresses[i].clone(), &self.plan.connect).await?;
        for g in self.plan.groups() {
            m.join(g).await?;
        }
        Ok(m)
    }
}
