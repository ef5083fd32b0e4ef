//! A client connection: TCP or the local socket.

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};
use std::io::{self, IoSlice, Read, Write};

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// 3.17 asks for up to 200 KiB of socket buffer each way.
const SOCKET_BUFFER: usize = 200 * 1024;

/// TCP keepalive of client connections: a client host that died (or a half-open
/// connection) is noticed after `idle` + `interval` x `count`, and its groups see it leave
/// by disconnect — without tuning the whole system (Linux's default is 2 h 12 min). On
/// Linux `TCP_USER_TIMEOUT` bounds a connection we are sending into by the same time.
pub use spread_sockopt::Keepalive as ClientKeepalive;

impl Stream {
    /// Nagle off (a Spread message must leave at once), large buffers as 3.17 has, and
    /// keepalive on TCP connections.
    pub fn tune(&mut self, keepalive: Option<ClientKeepalive>) {
        let fd = match self {
            Stream::Tcp(s) => {
                let _ = s.set_nodelay(true);
                if let Some(k) = keepalive {
                    if let Err(e) = k.apply(&*s) {
                        tracing::debug!("cannot set keepalive on a client connection: {e}");
                    }
                }
                socket2::SockRef::from(&*s)
            }
            Stream::Unix(s) => socket2::SockRef::from(&*s),
        };
        let _ = fd.set_send_buffer_size(SOCKET_BUFFER);
        let _ = fd.set_recv_buffer_size(SOCKET_BUFFER);
    }

    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Unix(s) => s.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
        }
    }
}
