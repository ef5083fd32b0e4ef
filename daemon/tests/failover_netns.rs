//! Failover when the daemon's *host* is lost and when the network between client and daemon
//! partitions — faults loopback cannot make — in network namespaces this test creates: two
//! daemon hosts and a client host joined by veth into a bridge. The client runs in a thread
//! that has entered the client host's namespace (`setns` moves only the calling thread).
//!
//! Host lost (the client idle, then sending) and partition, for the blocking and the async
//! `Failover`: the client must get a Failover event naming d1 as lost and d2 as serving, its
//! group re-joined. Needs root and iproute2; prints SKIPPED otherwise. No timing assertions beyond generous upper bounds. Linux only
//! (network namespaces).
#![cfg(target_os = "linux")]

mod common;

use spread::{ConnectOptions, Event, FailoverOptions, Liveness, MembershipChange, Service};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(30);
const GROUP: &str = "netns";

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The namespaces of one test; removed, with the daemons, on drop.
struct Hosts {
    prefix: String,
    daemons: Vec<Option<Child>>,
    conf: PathBuf,
    _dir: common::TempDir,
}

impl Hosts {
    /// `None` (after printing SKIPPED) where namespaces cannot be made.
    fn create(test: &str) -> Option<Hosts> {
        static SERIAL: AtomicU32 = AtomicU32::new(0);
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let prefix = format!(
            "sft{}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        if !root || !ip(&["netns", "add", &format!("{prefix}-sw")]) {
            common::skip(test, "needs root and iproute2 to create network namespaces");
            return None;
        }
        let dir = common::TempDir::new("netns");
        let conf = dir.0.join("spread.conf");
        std::fs::write(
            &conf,
            "Spread_Segment 10.78.0.255:4803 {\n    d1 10.78.0.1\n    d2 10.78.0.2\n}\n",
        )
        .unwrap();
        let hosts = Hosts {
            prefix,
            daemons: vec![None, None],
            conf,
            _dir: dir,
        };
        if let Err(step) = hosts.wire() {
            // A container may allow `ip netns add` and still refuse veth or bridges.
            common::skip(
                test,
                &format!("cannot build the test network ({step} failed)"),
            );
            return None;
        }
        Some(hosts)
    }

    /// The bridge, and each host's veth into it; `Err` names the step that failed.
    fn wire(&self) -> Result<(), String> {
        let run = |args: &[&str]| {
            if ip(args) {
                Ok(())
            } else {
                Err(format!("ip {}", args.join(" ")))
            }
        };
        let sw = self.ns("sw");
        run(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        run(&["-n", &sw, "link", "set", "br0", "up"])?;
        for (host, addr) in [
            ("d1", "10.78.0.1"),
            ("d2", "10.78.0.2"),
            ("cl", "10.78.0.10"),
        ] {
            let ns = self.ns(host);
            run(&["netns", "add", &ns])?;
            // Interface names are per namespace; the outer end gets a unique one while it
            // passes through ours.
            let outer = format!("{}{host}", &self.prefix[3..]);
            run(&[
                "link", "add", &outer, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            run(&["link", "set", &outer, "netns", &sw])?;
            run(&["-n", &sw, "link", "set", &outer, "master", "br0", "up"])?;
            run(&["-n", &ns, "link", "set", "lo", "up"])?;
            let cidr = format!("{addr}/24");
            run(&[
                "-n",
                &ns,
                "addr",
                "add",
                &cidr,
                "brd",
                "10.78.0.255",
                "dev",
                "eth0",
            ])?;
            run(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    fn start_daemon(&mut self, i: usize) {
        let host = ["d1", "d2"][i];
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .arg(env!("CARGO_BIN_EXE_spread"))
            .arg("-c")
            .arg(&self.conf)
            .args(["-n", host, "--no-local-socket"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.daemons[i] = Some(child);
    }

    /// Runs `f` in a thread inside the client host's namespace.
    fn in_client_host<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.ns("cl"));
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            // SAFETY: `ns` is an open namespace file for the whole call, and setns changes only
            // this thread's network namespace, which no other code shares.
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for d in self.daemons.iter_mut().flatten() {
            let _ = d.kill();
            let _ = d.wait();
        }
        for host in ["d1", "d2", "cl", "sw"] {
            ip(&["netns", "del", &self.ns(host)]);
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// d1's link goes down: nothing of that host answers any more.
    HostLost,
    /// The same while the client multicasts every 10 ms.
    HostLostSending,
    /// Blackhole routes both ways between the client and d1, which stays in the ring.
    Partition,
}

impl Fault {
    fn inject(self, hosts: &Hosts) {
        match self {
            Fault::HostLost | Fault::HostLostSending => {
                assert!(ip(&["-n", &hosts.ns("d1"), "link", "set", "eth0", "down"]))
            }
            Fault::Partition => {
                assert!(ip(&[
                    "-n",
                    &hosts.ns("cl"),
                    "route",
                    "add",
                    "blackhole",
                    "10.78.0.1/32"
                ]));
                assert!(ip(&[
                    "-n",
                    &hosts.ns("d1"),
                    "route",
                    "add",
                    "blackhole",
                    "10.78.0.10/32"
                ]));
            }
        }
    }
}

fn options() -> FailoverOptions {
    let connect = ConnectOptions::new("")
        .name("roamer")
        .liveness(Some(Liveness::new(
            Duration::from_millis(100),
            Duration::from_millis(500),
        )));
    FailoverOptions::new(["4803@10.78.0.1", "4803@10.78.0.2"], connect)
        .connect_timeout(Duration::from_secs(1))
        .give_up_after(Some(WITHIN))
}

/// Whether `event` is a view of GROUP holding `me`.
fn in_view(event: &Event, me: &str) -> bool {
    matches!(event, Event::Membership(m) if m.group == GROUP
        && matches!(&m.change, MembershipChange::Regular { members, .. } if members.iter().any(|x| x == me)))
}

/// What the client saw: the Failover event's (lost, now, rejoined) and whether a view with
/// its new private group followed.
type Outcome = (String, String, Vec<String>, bool);

fn check(fault: Fault, outcome: Outcome) {
    let (lost, now, rejoined, in_new_view) = outcome;
    assert_eq!(lost, "4803@10.78.0.1", "{fault:?}: the lost daemon");
    assert_eq!(now, "4803@10.78.0.2", "{fault:?}: the daemon serving now");
    assert_eq!(rejoined, [GROUP], "{fault:?}: groups re-joined");
    assert!(
        in_new_view,
        "{fault:?}: no view of {GROUP} with the new private group"
    );
}

fn blocking_client(hosts: &Hosts, fault: Fault) -> Outcome {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (fault_tx, fault_rx) = std::sync::mpsc::channel::<()>();
    let client = {
        let path = format!("/var/run/netns/{}", hosts.ns("cl"));
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            // SAFETY: as in `in_client_host`.
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0);
            let mut f = spread::Failover::connect(&options()).unwrap();
            f.join(GROUP).unwrap();
            let me = f.private_group().unwrap();
            let deadline = Instant::now() + WITHIN;
            while !f
                .receive_timeout(Duration::from_millis(200))
                .unwrap()
                .is_some_and(|e| in_view(&e, &me))
            {
                assert!(Instant::now() < deadline, "no first view");
            }
            ready_tx.send(()).unwrap();
            fault_rx.recv().unwrap();
            let deadline = Instant::now() + WITHIN;
            let sending = matches!(fault, Fault::HostLostSending);
            let info = loop {
                assert!(Instant::now() < deadline, "no Failover event");
                if sending {
                    // A multicast into the lost session fails; the next receive fails over.
                    let _ = f.multicast(Service::AGREED, &[GROUP], 0, b"tick");
                }
                if let Some(Event::Failover(info)) =
                    f.receive_timeout(Duration::from_millis(10)).unwrap()
                {
                    break info;
                }
            };
            let me = f.private_group().unwrap();
            let mut in_new_view = false;
            while Instant::now() < deadline && !in_new_view {
                in_new_view = f
                    .receive_timeout(Duration::from_millis(200))
                    .unwrap()
                    .is_some_and(|e| in_view(&e, &me));
            }
            (
                info.lost.to_string(),
                info.now.to_string(),
                info.rejoined,
                in_new_view,
            )
        })
    };
    ready_rx.recv_timeout(WITHIN).expect("the client joined");
    fault.inject(hosts);
    fault_tx.send(()).unwrap();
    client.join().unwrap()
}

fn async_client(hosts: &Hosts, fault: Fault) -> Outcome {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (fault_tx, fault_rx) = std::sync::mpsc::channel::<()>();
    let path = format!("/var/run/netns/{}", hosts.ns("cl"));
    let client = std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).unwrap();
        // SAFETY: as in `in_client_host`; a current-thread runtime keeps every socket here.
        let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut f = spread::tokio::Failover::connect(&options()).await.unwrap();
            f.join(GROUP).await.unwrap();
            let me = f.private_group().unwrap();
            let within = |what: &'static str| async move {
                tokio::time::sleep(WITHIN).await;
                panic!("{what}: not within {WITHIN:?}");
            };
            tokio::select! {
                _ = async { while !in_view(&f.receive().await.unwrap(), &me) {} } => {}
                _ = within("the first view") => {}
            }
            ready_tx.send(()).unwrap();
            // The fault comes from the main thread; wait for it without blocking the runtime.
            tokio::task::spawn_blocking(move || fault_rx.recv().unwrap())
                .await
                .unwrap();
            let sending = matches!(fault, Fault::HostLostSending);
            let info = tokio::select! {
                info = async {
                    loop {
                        if sending {
                            let _ = f.multicast(Service::AGREED, &[GROUP], 0, b"tick").await;
                        }
                        let got = f.receive_timeout(Duration::from_millis(10)).await.unwrap();
                        if let Some(Event::Failover(i)) = got {
                            break i;
                        }
                    }
                } => info,
                _ = within("the Failover event") => unreachable!(),
            };
            let me = f.private_group().unwrap();
            let in_new_view = tokio::select! {
                _ = async { while !in_view(&f.receive().await.unwrap(), &me) {} } => true,
                _ = tokio::time::sleep(WITHIN) => false,
            };
            (
                info.lost.to_string(),
                info.now.to_string(),
                info.rejoined,
                in_new_view,
            )
        })
    });
    ready_rx.recv_timeout(WITHIN).expect("the client joined");
    fault.inject(hosts);
    fault_tx.send(()).unwrap();
    client.join().unwrap()
}

fn run(test: &str, client: fn(&Hosts, Fault) -> Outcome) {
    for fault in [Fault::HostLost, Fault::HostLostSending, Fault::Partition] {
        // A fresh pair of hosts per fault: the lost one stays lost.
        let Some(mut hosts) = Hosts::create(test) else {
            return;
        };
        hosts.start_daemon(0);
        hosts.start_daemon(1);
        // Both daemons answer on their hosts before the client starts.
        hosts.in_client_host(|| {
            for addr in ["10.78.0.1:4803", "10.78.0.2:4803"] {
                let deadline = Instant::now() + WITHIN;
                while std::net::TcpStream::connect(addr).is_err() {
                    assert!(Instant::now() < deadline, "{addr} does not listen");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        let outcome = client(&hosts, fault);
        println!("{test}: {fault:?}: {outcome:?}");
        check(fault, outcome);
    }
}

#[test]
fn blocking_failover_when_the_daemon_host_is_lost_or_partitioned_away() {
    run(
        "blocking_failover_when_the_daemon_host_is_lost_or_partitioned_away",
        blocking_client,
    );
}

#[test]
fn async_failover_when_the_daemon_host_is_lost_or_partitioned_away() {
    run(
        "async_failover_when_the_daemon_host_is_lost_or_partitioned_away",
        async_client,
    );
}
