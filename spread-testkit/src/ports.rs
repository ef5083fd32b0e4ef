//! Ports for daemons that run beside each other and beside any daemon someone left running.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};

/// A port below 32768 (3.17's library refuses higher ones) whose TCP is free on every one of
/// `ips` and on any address, whose UDP port and port+1 are free, and whose C local socket
/// `/tmp/<port>` does not exist. Each process starts at its own offset and never returns the
/// same port twice in a row of 6,000: a C daemon sets no SO_REUSEADDR, so it cannot bind a
/// port a previous daemon left in TIME_WAIT.
pub fn free_port(ips: &[Ipv4Addr]) -> u16 {
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = (std::process::id() % 600) as u16 * 20;
    loop {
        let offset = NEXT.fetch_add(2, Ordering::Relaxed) % SPAN;
        let port = FIRST + (base + offset) % SPAN;
        let free = ips.iter().all(|ip| TcpListener::bind((*ip, port)).is_ok())
            && TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
            && UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
            && UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port + 1)).is_ok()
            && !Path::new(&format!("/tmp/{port}")).exists();
        if free {
            return port;
        }
    }
}
