//! The daemon-to-daemon sockets: data (port P) and token (P+1) receivers, and one unbound
//! sender, bound as 3.17 binds them.
//!
//! * With interface stanzas, each `D` address gets a data and a token socket; without, the
//!   wildcard address does.
//! * When more than one daemon is configured in our segment, one more data socket is bound
//!   to the segment's broadcast address (a socket bound to a unicast address does not see
//!   broadcasts), and a multicast segment address is joined.
//! * Receive sockets set SO_REUSEADDR (3.17's do not), so several daemons on one host can
//!   share a segment's broadcast address.

use crate::core::ring::{Destination, Port, RingConf};
use mio::net::UdpSocket;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

pub struct RingSockets {
    /// Receivers and the port each one serves.
    pub receivers: Vec<(UdpSocket, Port)>,
    pub sender: UdpSocket,
    conf: RingConf,
}

/// What to bind for this daemon.
pub struct Binding {
    /// `D` interface addresses, or the wildcard address.
    pub addresses: Vec<Ipv4Addr>,
    pub port: u16,
    pub segment: usize,
}

fn receiver(addr: SocketAddrV4) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    // Bursts of datagrams arrive between two reads: give the kernel room for them.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.bind(&SocketAddr::V4(addr).into())?;
    Ok(UdpSocket::from_std(socket.into()))
}

impl RingSockets {
    pub fn bind(conf: &RingConf, binding: &Binding) -> io::Result<RingSockets> {
        let mut receivers = Vec::new();
        for addr in &binding.addresses {
            receivers.push((
                receiver(SocketAddrV4::new(*addr, binding.port))?,
                Port::Data,
            ));
            receivers.push((
                receiver(SocketAddrV4::new(*addr, binding.port + 1))?,
                Port::Token,
            ));
        }
        let segment = &conf.segments[binding.segment];
        let wildcard = binding.addresses.iter().all(|a| a.is_unspecified());
        if conf.bcast_needed(binding.segment) {
            if segment.bcast.is_multicast() {
                let socket = &receivers[0].0;
                for addr in &binding.addresses {
                    socket.join_multicast_v4(&segment.bcast, addr)?;
                }
            } else if !wildcard {
                receivers.push((
                    receiver(SocketAddrV4::new(segment.bcast, binding.port))?,
                    Port::Data,
                ));
            }
        }
        let sender = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        sender.set_broadcast(true)?;
        sender.set_nonblocking(true)?;
        let _ = sender.set_multicast_ttl_v4(1);
        let _ = sender.set_send_buffer_size(4 << 20);
        Ok(RingSockets {
            receivers,
            sender: UdpSocket::from_std(sender.into()),
            conf: conf.clone(),
        })
    }

    /// Where a destination is on the network.
    pub fn address(&self, to: Destination) -> Option<SocketAddr> {
        let port_of = |id| {
            let pos = self.conf.position(id)?;
            Some(self.conf.segments[pos.segment].port)
        };
        Some(match to {
            Destination::Data(id) => SocketAddr::from((Ipv4Addr::from(id), port_of(id)?)),
            Destination::Token(id) => SocketAddr::from((Ipv4Addr::from(id), port_of(id)? + 1)),
            Destination::Monitor(addr) => SocketAddr::from(addr),
            Destination::Segment(s) => {
                let seg = self.conf.segments.get(s)?;
                SocketAddr::from((seg.bcast, seg.port))
            }
        })
    }
}
