//! The async client over tokio (cargo feature `tokio`): [`Mailbox`] and [`Failover`], with
//! the semantics of the blocking [`crate::Mailbox`] and [`crate::Failover`].
//!
//! Both drive the same sans-IO pieces as the blocking transport: the handshake steps, the
//! [`crate::proto::Codec`], the probe bookkeeping and the failover policy. Liveness probes
//! are written by a task spawned at connect (so a runtime must be running), through the same
//! lock as the application's requests; the task is aborted when the Mailbox goes.
//!
//! 3.17's `SP_poll` has no counterpart here: an async caller awaits [`Mailbox::receive`]
//! (or races it with other futures) instead of asking how many bytes are waiting.

use crate::address::DaemonAddress;
use crate::connect::{self, ConnectOptions};
use crate::failover::{FailoverOptions, Plan, Step};
use crate::inbox::{lock, Inbox};
use crate::liveness::{self, Liveness, ProbeMode, Prober};
use crate::proto::Codec;
use crate::types::{Event, Service};
use crate::Error;
use ::tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ::tokio::net::{TcpStream, UnixStream};
use ::tokio::sync::Mutex as AsyncMutex;
use ::tokio::task::JoinHandle;
use spread_wire::handshake::{self, Parsed, Reject};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// The write half, shared with the probe task. `failed` is set once a write failed (the
/// stream may hold half a message, so nothing more is written).
struct WriteHalf {
    writer: Writer,
    failed: Option<Error>,
}

fn copy_failure(e: &Error) -> Error {
    match e {
        Error::DaemonTimeout { after } => Error::DaemonTimeout { after: *after },
        _ => Error::ConnectionClosed,
    }
}

/// Writes one whole message under the lock; a write blocked for `stall` is a stalled
/// daemon.
async fn write_message(
    half: &AsyncMutex<WriteHalf>,
    bytes: &[u8],
    stall: Option<Duration>,
) -> Result<(), Error> {
    let mut half = half.lock().await;
    if let Some(e) = &half.failed {
        return Err(copy_failure(e));
    }
    let result = match stall {
        Some(after) => match ::tokio::time::timeout(after, half.writer.write_all(bytes)).await {
            Ok(r) => r.map_err(closed_or_io),
            Err(_) => Err(Error::DaemonTimeout { after }),
        },
        None => half.writer.write_all(bytes).await.map_err(closed_or_io),
    };
    if let Err(e) = &result {
        half.failed = Some(copy_failure(e));
    }
    result
}

struct Probing {
    prober: Arc<Mutex<Prober>>,
    liveness: Liveness,
    task: JoinHandle<()>,
}

impl Drop for Probing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long `disconnect` waits for the daemon to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// An async session with a daemon; see [`crate::Mailbox`]. Call `disconnect` to end it:
/// dropping it closes the connection at once, and bytes the daemon has not read yet may be
/// lost.
pub struct Mailbox {
    reader: Reader,
    writer: Arc<AsyncMutex<WriteHalf>>,
    inbox: Inbox,
    address: DaemonAddress,
    probing: Option<Probing>,
    ended: bool,
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
        let deadline = options.timeout.map(|t| Instant::now() + t);
        let (mut reader, mut writer) = open(&address, options).await?;
        let mut buf = Vec::new();
        writer.write_all(&request).await.map_err(closed_or_io)?;
        let offered =
            read_until(&mut reader, &mut buf, deadline, handshake::parse_auth_list).await?;
        let (choice, mode) = connect::auth_choice(options, offered)?;
        writer.write_all(&choice).await.map_err(closed_or_io)?;
        let accepted = read_until(&mut reader, &mut buf, deadline, handshake::parse_accept).await?;
        let codec = Codec::new(accepted.private_group);
        let writer = Arc::new(AsyncMutex::new(WriteHalf {
            writer,
            failed: None,
        }));
        let probing = match (options.liveness, mode) {
            (Some(liveness), Some(mode)) => {
                Some(start_probing(&writer, Prober::new(liveness, mode, &codec)).await?)
            }
            _ => None,
        };
        Ok(Mailbox {
            reader,
            writer,
            inbox: Inbox::new(codec, buf),
            address,
            probing,
            ended: false,
        })
    }

    /// Our private group, `#name#daemon`.
    pub fn private_group(&self) -> String {
        self.inbox.own.clone()
    }

    pub fn address(&self) -> &DaemonAddress {
        &self.address
    }

    /// The liveness probing in force (see [`crate::Mailbox::liveness`]).
    pub fn liveness(&self) -> Option<(Liveness, ProbeMode)> {
        self.probing
            .as_ref()
            .map(|p| (p.liveness, lock(&p.prober).mode))
    }

    pub async fn join(&mut self, group: &str) -> Result<(), Error> {
        self.check_live()?;
        let bytes = self.inbox.codec.membership_request(true, group)?;
        self.send(&bytes).await
    }

    pub async fn leave(&mut self, group: &str) -> Result<(), Error> {
        self.check_live()?;
        let bytes = self.inbox.codec.membership_request(false, group)?;
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
        self.check_live()?;
        let bytes = self
            .inbox
            .codec
            .multicast(service, groups, mess_type, parts)?;
        self.send(&bytes).await?;
        Ok(parts.iter().map(|p| p.len()).sum())
    }

    /// Waits for the next event; [`Error::DaemonTimeout`] as in [`crate::Mailbox::receive`].
    pub async fn receive(&mut self) -> Result<Event, Error> {
        self.check_live()?;
        loop {
            if let Some(event) = self.wait(None).await? {
                return Ok(event);
            }
        }
    }

    /// Waits at most `timeout`; `Ok(None)` when nothing came.
    pub async fn receive_timeout(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        self.check_live()?;
        self.wait(Some(Instant::now() + timeout)).await
    }

    /// Says goodbye to the daemon: our groups see us leave by disconnect.
    pub async fn disconnect(mut self) -> Result<(), Error> {
        self.check_live()?;
        let bytes = self.inbox.codec.disconnect_request();
        self.send(&bytes).await?;
        self.probing = None;
        let mut half = self.writer.lock().await;
        let _ = half.writer.shutdown().await;
        drop(half);
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

    fn check_live(&self) -> Result<(), Error> {
        if self.ended {
            Err(Error::IllegalSession)
        } else {
            Ok(())
        }
    }

    fn note<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result {
            if e.ends_session() {
                self.ended = true;
                self.probing = None;
            }
        }
        result
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let stall = self.probing.as_ref().map(|p| p.liveness.write_stall());
        let result = write_message(&self.writer, bytes, stall).await;
        self.note(result)
    }

    async fn wait(&mut self, deadline: Option<Instant>) -> Result<Option<Event>, Error> {
        loop {
            let prober = self.probing.as_ref().map(|p| &*p.prober);
            let taken = self.inbox.take_event(prober);
            if let Some(event) = self.note(taken)? {
                return Ok(Some(event));
            }
            let probing = self.probing.as_ref().map(|p| &p.liveness);
            let Some(slice) = liveness::read_slice(deadline, probing, Instant::now()) else {
                return Ok(None);
            };
            let began = Instant::now();
            let spare = self.inbox.spare();
            let read = match slice {
                // Reading is cancel-safe: a read cut short by the timeout took nothing.
                Some(s) => ::tokio::time::timeout(s, self.reader.read(spare))
                    .await
                    .ok(),
                None => Some(self.reader.read(spare).await),
            };
            let n = match &read {
                Some(Ok(n)) => *n,
                _ => 0,
            };
            let prober = self.probing.as_ref().map(|p| &*p.prober);
            self.inbox.filled(n, began, prober);
            let result = match read {
                None => self.check_probe().await,
                Some(Ok(0)) => Err(self.closed_cause().await),
                Some(Ok(_)) => Ok(()),
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
                Some(Err(e)) => Err(closed_or_io(e)),
            };
            self.note(result)?;
        }
    }

    /// Why the connection closed: a probe task that gave up on a stalled write says so.
    async fn closed_cause(&self) -> Error {
        match &self.writer.lock().await.failed {
            Some(e @ Error::DaemonTimeout { .. }) => copy_failure(e),
            _ => Error::ConnectionClosed,
        }
    }

    async fn check_probe(&self) -> Result<(), Error> {
        let Some(p) = &self.probing else {
            return Ok(());
        };
        if let Some(after) = lock(&p.prober).overdue(Instant::now()) {
            return Err(Error::DaemonTimeout { after });
        }
        // Without waiting for a write in progress: its failure will show next time.
        if let Ok(half) = self.writer.try_lock() {
            if let Some(e) = &half.failed {
                return Err(copy_failure(e));
            }
        }
        Ok(())
    }
}

/// Sends the first probe at once and spawns the task that sends the others.
async fn start_probing(
    writer: &Arc<AsyncMutex<WriteHalf>>,
    prober: Prober,
) -> Result<Probing, Error> {
    let liveness = prober.liveness;
    let bytes = prober.bytes().to_vec();
    let prober = Arc::new(Mutex::new(prober));
    lock(&prober).sent(Instant::now());
    write_message(writer, &bytes, Some(liveness.write_stall())).await?;
    let (writer, task_prober) = (Arc::clone(writer), Arc::clone(&prober));
    let task = ::tokio::spawn(async move {
        let start = ::tokio::time::Instant::now() + liveness.interval;
        let mut ticks = ::tokio::time::interval_at(start, liveness.interval);
        ticks.set_missed_tick_behavior(::tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = Instant::now();
            {
                let mut p = lock(&task_prober);
                if !p.due(now) {
                    continue;
                }
                p.sent(now);
            }
            if write_message(&writer, &bytes, Some(liveness.write_stall()))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(Probing {
        prober,
        liveness,
        task,
    })
}

fn closed_or_io(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Error::ConnectionClosed,
        _ => Error::Io(e),
    }
}

async fn open(
    address: &DaemonAddress,
    options: &ConnectOptions,
) -> Result<(Reader, Writer), Error> {
    let fail = |source| Error::CouldNotConnect {
        address: address.to_string(),
        source,
    };
    match address {
        DaemonAddress::Local(path) => {
            let s = limit(options.timeout, UnixStream::connect(path))
                .await
                .map_err(fail)?;
            let (r, w) = s.into_split();
            Ok((Box::new(r), Box::new(w)))
        }
        DaemonAddress::Tcp { host, port } => {
            let addrs: Vec<_> = ::tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|_| Error::IllegalSpread(address.to_string()))?
                .collect();
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
            for a in addrs {
                match limit(options.timeout, TcpStream::connect(a)).await {
                    Ok(s) => {
                        s.set_nodelay(true)?;
                        if let Some(k) = options.keepalive {
                            k.apply(&s)?;
                        }
                        let (r, w) = s.into_split();
                        return Ok((Box::new(r), Box::new(w)));
                    }
                    Err(e) => last = e,
                }
            }
            Err(fail(last))
        }
    }
}

/// `fut`, cut short after `timeout`.
async fn limit<T>(
    timeout: Option<Duration>,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match timeout {
        Some(t) => ::tokio::time::timeout(t, fut)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "connect"))),
        None => fut.await,
    }
}

/// Reads until `parse` finds a whole item, removing it from `buf`.
async fn read_until<T>(
    reader: &mut Reader,
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
        let mut chunk = [0u8; 512];
        let read = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                match ::tokio::time::timeout(left, reader.read(&mut chunk)).await {
                    Ok(r) => r,
                    Err(_) => return Err(Error::Timeout),
                }
            }
            None => reader.read(&mut chunk).await,
        };
        match read {
            Ok(0) => return Err(Error::ConnectionClosed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(closed_or_io(e)),
        }
    }
}

/// The async [`crate::Failover`]: same policy, same events.
pub struct Failover {
    plan: Plan,
    mailbox: Option<Mailbox>,
}

impl Failover {
    /// Connects to the first daemon that answers; see [`crate::Failover::connect`].
    pub async fn connect(options: &FailoverOptions) -> Result<Failover, Error> {
        let mut f = Failover {
            plan: Plan::new(options)?,
            mailbox: None,
        };
        f.reconnect().await?;
        Ok(f)
    }

    /// The daemon serving us, `None` while none does.
    pub fn address(&self) -> Option<&DaemonAddress> {
        self.mailbox.as_ref().map(Mailbox::address)
    }

    /// Our private group on the current daemon.
    pub fn private_group(&self) -> Option<String> {
        self.mailbox.as_ref().map(Mailbox::private_group)
    }

    /// The groups joined (and joined again after every failover).
    pub fn groups(&self) -> &[String] {
        self.plan.groups()
    }

    /// Joins `group`, now and after every failover.
    pub async fn join(&mut self, group: &str) -> Result<(), Error> {
        self.plan.joined(group)?;
        match self.live().await?.join(group).await {
            Err(e) if e.is_session_lost() => self.fail_over(e).await,
            r => r,
        }
    }

    /// Leaves `group`, and forgets it.
    pub async fn leave(&mut self, group: &str) -> Result<(), Error> {
        self.plan.left(group);
        match self.live().await?.leave(group).await {
            Err(e) if e.is_session_lost() => self.fail_over(e).await,
            r => r,
        }
    }

    /// Sends through the current daemon; see [`crate::Failover::multicast`].
    pub async fn multicast<G: AsRef<str>>(
        &mut self,
        service: Service,
        groups: &[G],
        mess_type: i16,
        data: &[u8],
    ) -> Result<usize, Error> {
        let result = self
            .live()
            .await?
            .multicast(service, groups, mess_type, data)
            .await;
        if let Err(e) = &result {
            if e.is_session_lost() {
                self.plan.lose(e, SystemTime::now());
                self.mailbox = None;
            }
        }
        result
    }

    /// The next event; after a failover, first [`Event::Failover`].
    pub async fn receive(&mut self) -> Result<Event, Error> {
        loop {
            if let Some(info) = self.plan.pending.pop_front() {
                return Ok(Event::Failover(info));
            }
            match self.live().await?.receive().await {
                Err(e) if e.is_session_lost() => self.fail_over(e).await?,
                r => return r,
            }
        }
    }

    /// As [`Failover::receive`], waiting at most `timeout` for an event.
    pub async fn receive_timeout(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(info) = self.plan.pending.pop_front() {
                return Ok(Some(Event::Failover(info)));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.live().await?.receive_timeout(left).await {
                Err(e) if e.is_session_lost() => self.fail_over(e).await?,
                r => return r,
            }
        }
    }

    /// Ends the session with the current daemon (if any).
    pub async fn disconnect(mut self) -> Result<(), Error> {
        match self.mailbox.take() {
            Some(m) => m.disconnect().await,
            None => Ok(()),
        }
    }

    async fn live(&mut self) -> Result<&mut Mailbox, Error> {
        if self.mailbox.is_none() {
            self.reconnect().await?;
        }
        Ok(self.mailbox.as_mut().expect("connected"))
    }

    async fn fail_over(&mut self, cause: Error) -> Result<(), Error> {
        self.plan.lose(&cause, SystemTime::now());
        self.mailbox = None;
        self.reconnect().await
    }

    async fn reconnect(&mut self) -> Result<(), Error> {
        let mut schedule = self.plan.schedule(Instant::now());
        let mut last = None;
        loop {
            match self.plan.next(&mut schedule, Instant::now()) {
                Step::Try(i) => match self.try_daemon(i).await {
                    Ok(m) => {
                        self.plan.connected(i, m.private_group());
                        self.mailbox = Some(m);
                        return Ok(());
                    }
                    Err(e) => last = Some(e),
                },
                Step::Wait(pause) => ::tokio::time::sleep(pause).await,
                Step::GiveUp => return Err(last.unwrap_or(Error::Timeout)),
            }
        }
    }

    async fn try_daemon(&self, i: usize) -> Result<Mailbox, Error> {
        let mut m = Mailbox::connect_to(self.plan.addresses[i].clone(), &self.plan.connect).await?;
        for g in self.plan.groups() {
            m.join(g).await?;
        }
        Ok(m)
    }
}
