//! Starting the daemon: configuration errors, the local socket's safety rules, warnings.

mod common;

use common::*;
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

fn spread(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spread"));
    cmd.args(args).stdin(Stdio::null());
    cmd
}

#[test]
fn a_config_error_names_file_line_and_column_and_starts_nothing() {
    let dir = TempDir::new("badconf");
    let port = free_port(&[Ipv4Addr::LOCALHOST]);
    let conf = dir.0.join("spread.conf");
    std::fs::write(
        &conf,
        format!(
            "# a comment\nSpread_Segment 127.0.0.255:{port} {{\n    n1 127.0.0.1\n    = oops\n}}\n"
        ),
    )
    .unwrap();
    let sock = dir.0.join("sock");
    let out = spread(&[
        "-n",
        "n1",
        "-c",
        conf.to_str().unwrap(),
        "--local-socket",
        sock.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:4:5:", conf.display())), "{err}");
    assert!(
        !sock.exists(),
        "a local socket was created by a daemon that did not start"
    );
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
}

#[test]
fn an_unknown_daemon_name_is_an_error() {
    let dir = TempDir::new("noname");
    let conf = dir.0.join("spread.conf");
    std::fs::write(
        &conf,
        alone_conf("n1", Ipv4Addr::LOCALHOST, free_port(&[Ipv4Addr::LOCALHOST])),
    )
    .unwrap();
    let out = spread(&[
        "-n",
        "n9",
        "-c",
        conf.to_str().unwrap(),
        "--no-local-socket",
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no daemon named 'n9'"));
}

#[test]
fn directives_we_do_not_act_on_are_accepted_with_a_warning() {
    let d = start_rust_daemon("DaemonUser = nobody\nDangerousMonitor = false\n");
    std::thread::sleep(Duration::from_millis(100));
    let log = d.log_text();
    assert!(
        log.contains("'DaemonUser' is accepted but this daemon ignores it"),
        "{log}"
    );
}

fn start_with_socket(path: &std::path::Path) -> std::process::Output {
    let dir = TempDir::new("sockconf");
    let conf = dir.0.join("spread.conf");
    std::fs::write(
        &conf,
        alone_conf("n1", Ipv4Addr::LOCALHOST, free_port(&[Ipv4Addr::LOCALHOST])),
    )
    .unwrap();
    spread(&[
        "-n",
        "n1",
        "-c",
        conf.to_str().unwrap(),
        "--local-socket",
        path.to_str().unwrap(),
    ])
    .output()
    .unwrap()
}

#[test]
fn the_local_socket_never_follows_or_removes_a_link_or_file() {
    let dir = TempDir::new("links");
    let victim = dir.0.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let link = dir.0.join("sock-link");
    symlink(&victim, &link).unwrap();
    let out = start_with_socket(&link);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a symbolic link"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    let out = start_with_socket(&victim);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a file"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

#[test]
fn the_local_socket_of_a_live_daemon_is_not_stolen() {
    let live = start_rust_daemon("");
    let out = start_with_socket(&live.local_socket);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already listening"));
    // The first daemon still serves its socket.
    let mbox = spread::Mailbox::connect_local(
        &live.local_socket,
        &spread::ConnectOptions::new("").name("still"),
    );
    assert!(mbox.is_ok());
}

#[test]
fn a_stale_socket_is_replaced_and_made_connectable_by_all() {
    let dir = TempDir::new("stale");
    let path = dir.0.join("sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    // A process forked by another test in the meantime holds the listener until it execs:
    // wait until nobody listens, so the socket is really stale.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::os::unix::net::UnixStream::connect(&path).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the socket stays live"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_socket());
    let socket = spread_daemon::io::bind_local_socket(&path).expect("a stale socket is replaced");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);
    socket.remove();
    assert!(!path.exists());
}

/// The daemon sets keepalive on client connections (its default 5 s idle, or spread.conf's
/// `ClientKeepaliveIdle`): the kernel's table shows a keepalive timer on the daemon's side of
/// an idle connection.
#[test]
#[cfg(target_os = "linux")]
fn client_connections_get_keepalive_from_the_daemon() {
    let daemon = start_rust_daemon("ClientKeepaliveIdle = 7\n");
    let m = spread::Mailbox::connect(
        &spread::ConnectOptions::new(daemon.address())
            .name("idle")
            .keepalive(None),
    )
    .unwrap();
    let client_port = m.tcp_stream().unwrap().local_addr().unwrap().port();
    // Columns: sl local rem st tx:rx tr:when ...; the daemon's side has local = its port and
    // remote = the client's port; tr 2 is the keepalive timer (1 would be a retransmission
    // still pending right after the handshake, so look again until the line is idle).
    let hex = |p: u16| format!("{p:04X}");
    let mut timer = String::new();
    let mut row = Vec::new();
    for _ in 0..30 {
        let table =
            std::fs::read_to_string(format!("/proc/{}/net/tcp", daemon.child.id())).unwrap();
        row = table
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .find(|f| {
                f.len() > 5
                    && f[1].ends_with(&hex(daemon.port))
                    && f[2].ends_with(&hex(client_port))
            })
            .expect("the daemon's side of the connection");
        timer = row[5].split_once(':').unwrap().0.to_string();
        if timer == "02" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        timer, "02",
        "no keepalive timer on the daemon's side: {row:?}"
    );
}
