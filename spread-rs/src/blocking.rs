//! The blocking client: one [`Mailbox`] per session, over TCP or the local socket.

use crate::address::DaemonAddress;
use crate::proto::Codec;
use crate::types::{Event, Service};
use crate::{Error, Keepalive};
use spread_wire::handshake::{self, ConnectRequest, Parsed, Reject, Version};
use spread_wire::names::is_name_byte;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `4803`, `4803@host` or `4803@a.b.c.d`, as in 3.17.
    pub daemon: String,
    /// The private name, up to 10 characters; empty lets the daemon pick one.
    pub name: String,
    /// Receive membership messages.
    pub membership: bool,
    /// 0 or 1; 3.17 stores it and does nothing with it.
    pub priority: u8,
    /// Limit on connecting and the handshake; `None` waits as long as the OS does.
    pub timeout: Option<Duration>,
    /// Auth methods to use; every one must be in the daemon's list.
    pub auth_methods: Vec<String>,
    /// TCP keepalive of this connection ([`Keepalive::DEFAULT`] unless changed); `None`
    /// leaves the OS defaults (on Linux, 2 h 12 min to notice a dead host).
    pub keepalive: Option<Keepalive>,
}

impl ConnectOptions {
    pub fn new(daemon: impl Into<String>) -> ConnectOptions {
        ConnectOptions {
            daemon: daemon.into(),
            name: String::new(),
            membership: true,
            priority: 0,
            timeout: Some(Duration::from_secs(10)),
            auth_methods: vec!["NULL".into()],
            keepalive: Some(Keepalive::DEFAULT),
        }
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn membership(mut self, on: bool) -> Self {
        self.membership = on;
        self
    }

    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority.min(1);
        self
    }

    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    pub fn auth_methods<S: Into<String>>(mut self, methods: impl IntoIterator<Item = S>) -> Self {
        self.auth_methods = methods.into_iter().map(Into::into).collect();
        self
    }
}

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

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.set_nonblocking(on),
            Transport::Local(s) => s.set_nonblocking(on),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.read(buf),
            Transport::Local(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.write(buf),
            Transport::Local(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A session with a daemon.
pub struct Mailbox {
    transport: Transport,
    codec: Codec,
    address: DaemonAddress,
    inbuf: Vec<u8>,
    /// Bytes of `inbuf` already returned as events.
    consumed: usize,
    read_timeout: Option<Duration>,
    /// Set once the connection has closed or broken: every later call is refused, as
    /// 3.17's library does, instead of writing into a dead socket.
    ended: bool,
}

/// How much to read at once.
const READ_CHUNK: usize = 64 * 1024;

impl Mailbox {
    /// Connects and runs the 3.17 handshake.
    pub fn connect(options: &ConnectOptions) -> Result<Mailbox, Error> {
        Mailbox::connect_to(DaemonAddress::parse(&options.daemon)?, options)
    }

    /// Connects to a local socket at `path` (for daemons whose socket is not /tmp/<port>).
    pub fn connect_local(
        path: impl Into<std::path::PathBuf>,
        options: &ConnectOptions,
    ) -> Result<Mailbox, Error> {
        Mailbox::connect_to(DaemonAddress::Local(path.into()), options)
    }

    /// Connects to `address`, ignoring `options.daemon`.
    pub fn connect_to(address: DaemonAddress, options: &ConnectOptions) -> Result<Mailbox, Error> {
        let name = options.name.as_bytes();
        // 3.17's library cuts long names to 10 characters; we refuse instead of silently
        // turning one name into another that may clash.
        if name.len() > spread_wire::consts::limits::MAX_PRIVATE_NAME
            || !name.iter().all(|&b| is_name_byte(b))
        {
            return Err(Error::IllegalName(options.name.clone()));
        }
        let deadline = options.timeout.map(|t| Instant::now() + t);
        let mut transport = open(&address, options.timeout)?;
        if let (Transport::Tcp(s), Some(k)) = (&transport, options.keepalive) {
            k.apply(s)?;
        }
        let request = ConnectRequest {
            version: Version::OURS,
            wants_membership: options.membership,
            priority: options.priority.min(1),
            offers_probe: false,
            name: name.to_vec(),
        };
        let mut buf = Vec::new();
        transport.write_all(&request.encode())?;
        let offered = read_until(
            &mut transport,
            &mut buf,
            deadline,
            handshake::parse_auth_list,
        )?;
        if options.auth_methods.is_empty()
            || !options.auth_methods.iter().all(|m| offered.contains(m))
        {
            // 3.17's library also gives up here, without sending a choice.
            return Err(Error::Rejected(Reject::Auth));
        }
        transport.write_all(&handshake::encode_auth_choice(&options.auth_methods))?;
        let accepted = read_until(&mut transport, &mut buf, deadline, handshake::parse_accept)?;
        transport.set_read_timeout(None)?;
        Ok(Mailbox {
            transport,
            codec: Codec::new(accepted.private_group),
            address,
            inbuf: buf,
            consumed: 0,
            read_timeout: None,
            ended: false,
        })
    }

    /// Our private group, `#name#daemon`: send to it to reach this session alone.
    pub fn private_group(&self) -> String {
        self.codec.private_group().to_string_lossy()
    }

    /// The underlying TCP connection, `None` over the local socket (for inspection, e.g.
    /// of socket options).
    pub fn tcp_stream(&self) -> Option<&TcpStream> {
        match &self.transport {
            Transport::Tcp(s) => Some(s),
            Transport::Local(_) => None,
        }
    }

    pub fn address(&self) -> &DaemonAddress {
        &self.address
    }

    pub fn join(&mut self, group: &str) -> Result<(), Error> {
        self.check_live()?;
        let bytes = self.codec.membership_request(true, group)?;
        self.send(&bytes)
    }

    pub fn leave(&mut self, group: &str) -> Result<(), Error> {
        self.check_live()?;
        let bytes = self.codec.membership_request(false, group)?;
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
        let bytes = self.codec.multicast(service, groups, mess_type, parts)?;
        self.send(&bytes)?;
        Ok(parts.iter().map(|p| p.len()).sum())
    }

    /// Waits for the next event.
    pub fn receive(&mut self) -> Result<Event, Error> {
        self.check_live()?;
        self.set_timeout(None)?;
        loop {
            if let Some(event) = self.take_event()? {
                return Ok(event);
            }
            self.fill()?;
        }
    }

    /// Waits at most `timeout`; `Ok(None)` when nothing came.
    pub fn receive_timeout(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        self.check_live()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.take_event()? {
                return Ok(Some(event));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.set_timeout(Some(left))?;
            match self.fill() {
                Ok(()) => {}
                Err(Error::Io(e)) if is_timeout(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Bytes received and not yet returned as events, without blocking (3.17's SP_poll).
    pub fn poll(&mut self) -> Result<usize, Error> {
        self.check_live()?;
        self.transport.set_nonblocking(true)?;
        let result = self.fill();
        self.transport.set_nonblocking(false)?;
        match result {
            Ok(()) => {}
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        Ok(self.inbuf.len() - self.consumed)
    }

    /// Says goodbye to the daemon: our groups see us leave by disconnect.
    pub fn disconnect(mut self) -> Result<(), Error> {
        self.check_live()?;
        let bytes = self.codec.disconnect_request();
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
                self.ended = true;
            }
        }
        result
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let result = self.transport.write_all(bytes).map_err(closed_or_io);
        self.note(result)
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        if self.read_timeout != timeout {
            self.transport.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        Ok(())
    }

    fn take_event(&mut self) -> Result<Option<Event>, Error> {
        let decoded = self.codec.decode(&self.inbuf[self.consumed..]);
        match self.note(decoded)? {
            Some((event, used)) => {
                self.consumed += used;
                if self.consumed == self.inbuf.len() {
                    self.inbuf.clear();
                    self.consumed = 0;
                }
                Ok(Some(event))
            }
            None => Ok(None),
        }
    }

    fn fill(&mut self) -> Result<(), Error> {
        let result = self.read_more();
        match &result {
            // A timeout or an empty non-blocking read leaves the session alive.
            Err(Error::Io(e)) if is_timeout(e) => result,
            _ => self.note(result),
        }
    }

    fn read_more(&mut self) -> Result<(), Error> {
        if self.consumed > 0 {
            self.inbuf.drain(..self.consumed);
            self.consumed = 0;
        }
        let start = self.inbuf.len();
        self.inbuf.resize(start + READ_CHUNK, 0);
        let result = self.transport.read(&mut self.inbuf[start..]);
        let n = *result.as_ref().unwrap_or(&0);
        self.inbuf.truncate(start + n);
        match result {
            Ok(0) => Err(Error::ConnectionClosed),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(closed_or_io(e)),
        }
    }
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
    transport: &mut Transport,
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
        match transport.read(&mut chunk) {
            Ok(0) => return Err(Error::ConnectionClosed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => return Err(Error::Timeout),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(closed_or_io(e)),
        }
    }
}
