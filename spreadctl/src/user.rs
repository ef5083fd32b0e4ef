//! The interactive user, with spuser's commands:
//! `j <group>` join, `l <group>` leave, `s <group>` send the next line, `b <group>` burst of
//! 10, `m <service> <group>` send with a chosen service, `r` wait for one event,
//! `p` poll, `q` quit. Events are printed as they arrive.

use spread::{ConnectOptions, Event, Mailbox, MembershipChange, Service, ServiceKind};
use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct UserArgs {
    /// Daemon: `port`, `port@host`.
    #[arg(short = 's', long, default_value = "4803@127.0.0.1")]
    daemon: String,
    /// Private name (empty: the daemon picks one).
    #[arg(short = 'u', long, default_value = "")]
    user: String,
}

pub fn run(args: UserArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut mbox = Mailbox::connect(&ConnectOptions::new(&args.daemon).name(&args.user))?;
    println!(
        "User: connected to {} with private group {}",
        args.daemon,
        mbox.private_group()
    );
    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    print_menu();
    loop {
        while let Some(event) = mbox.receive_timeout(Duration::from_millis(20))? {
            print_event(&event);
        }
        let line = match lines.recv_timeout(Duration::from_millis(20)) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["j", group] => mbox.join(group)?,
            ["l", group] => mbox.leave(group)?,
            ["s", group] => {
                println!("enter message:");
                let text = lines.recv().unwrap_or_default();
                mbox.multicast(Service::SAFE, &[group], 1, text.as_bytes())?;
            }
            ["m", service, group] => {
                let kind: ServiceKind = service.parse()?;
                println!("enter message:");
                let text = lines.recv().unwrap_or_default();
                mbox.multicast(Service::new(kind), &[group], 1, text.as_bytes())?;
            }
            ["b", group] => {
                for i in 0..10 {
                    mbox.multicast(
                        Service::SAFE,
                        &[group],
                        2,
                        format!("burst message {i}").as_bytes(),
                    )?;
                }
            }
            ["r"] => print_event(&mbox.receive()?),
            ["p"] => println!("Polling: {} bytes waiting", mbox.poll()?),
            ["q"] => break,
            [] => {}
            _ => print_menu(),
        }
    }
    let _ = mbox.disconnect();
    println!("Bye.");
    Ok(())
}

fn print_menu() {
    println!(
        "commands: j <group> | l <group> | s <group> | m <service> <group> | b <group> | r | p | q"
    );
}

fn print_event(event: &Event) {
    match event {
        Event::Message(m) => println!(
            "received {:?} message from {}, of type {}, (endian {}) to {} groups\n({} bytes): {}",
            m.service,
            m.sender,
            m.mess_type,
            u8::from(m.endian_mismatch),
            m.groups.len(),
            m.data.len(),
            String::from_utf8_lossy(&m.data)
        ),
        Event::Membership(ms) => match &ms.change {
            MembershipChange::Regular {
                cause,
                group_id,
                members,
                my_index,
                vs_set,
            } => {
                println!(
                    "Received REGULAR membership for group {} with {} members, where I am member {}:",
                    ms.group,
                    members.len(),
                    my_index.map_or(-1, |i| i as i64)
                );
                for m in members {
                    println!("\t{m}");
                }
                println!(
                    "grp id is {} {} {}",
                    group_id.proc_id, group_id.time, group_id.index
                );
                println!("Due to {cause:?} of {}", vs_set.join(", "));
            }
            MembershipChange::Transitional { .. } => {
                println!("received TRANSITIONAL membership for group {}", ms.group)
            }
            MembershipChange::SelfLeave => {
                println!("received membership message that left group {}", ms.group)
            }
        },
        Event::Rejected(r) => println!(
            "REJECTED message of old type 0x{:x} to {:?}",
            r.old_type, r.groups
        ),
        other => println!("{other:?}"),
    }
}
