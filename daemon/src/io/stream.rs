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

impl Stream {
    /// Nagle off (a Spread message must leave at once) and large buffers, as 3.17 does.
    pub fn tune(&mut self) {
        let fd = match self {
            Stream::Tcp(s) => {
                let _ = s.set_nodelay(true);
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
