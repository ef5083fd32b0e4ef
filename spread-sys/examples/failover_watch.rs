//! The C side of `cargo xtask bench --suite failover`: what a libspread application must do
//! itself to fail over (3.17 has no failover): connect to the first daemon of a list, join a
//! group, block in `SP_receive`; when that fails, connect to the next daemon and join again.
//!
//! Prints the same lines as `spreadctl watch` (times in Unix milliseconds):
//! `ready <t> <daemon>` and `failover <detected> <rejoined> <lost> <now> <cause>`.
//!
//! `cargo run -p spread-sys --example failover_watch -- 4803@10.0.0.1,4803@10.0.0.2 [group]`

use spread_sys::*;
use std::ffi::{CStr, CString};
use std::time::{SystemTime, UNIX_EPOCH};

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

struct Session {
    mbox: mailbox,
    private_group: String,
}

fn connect(daemon: &str, group: &CStr) -> Option<Session> {
    let daemon = CString::new(daemon).ok()?;
    let name = CString::new("cwatch").ok()?;
    let mut mbox: mailbox = 0;
    let mut private_group = [0 as core::ffi::c_char; MAX_GROUP_NAME as usize];
    let timeout = sp_time {
        sec: 0,
        usec: 500_000,
    };
    // SAFETY: `daemon` and `name` are NUL-terminated and outlive the call; `mbox` and
    // `private_group` are ours to write, the latter with the MAX_GROUP_NAME bytes the library
    // writes at most.
    let ret = unsafe {
        SP_connect_timeout(
            daemon.as_ptr(),
            name.as_ptr(),
            0,
            1,
            &mut mbox,
            private_group.as_mut_ptr(),
            timeout,
        )
    };
    if ret != ACCEPT_SESSION {
        return None;
    }
    // SAFETY: `private_group` started zeroed and the accepted connect wrote a NUL-terminated
    // name shorter than it, so a NUL lies within it.
    let private_group = unsafe { CStr::from_ptr(private_group.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: `group` is NUL-terminated and outlives the call; the library checks `mbox`
    // against its session table.
    if unsafe { SP_join(mbox, group.as_ptr()) } < 0 {
        return None;
    }
    Some(Session {
        mbox,
        private_group,
    })
}

/// Receives until a regular view of `group` holds our private group (`Ok`), or the
/// session fails (`Err(code)`).
fn until_in_view(s: &Session, group: &str) -> Result<(), i32> {
    const MAX_GROUPS: usize = 100;
    let mut groups = vec![[0 as core::ffi::c_char; MAX_GROUP_NAME as usize]; MAX_GROUPS];
    let mut sender = [0 as core::ffi::c_char; MAX_GROUP_NAME as usize];
    let mut mess = vec![0 as core::ffi::c_char; 200_000];
    loop {
        let (mut service, mut num_groups, mut mess_type, mut mismatch) = (0, 0, 0i16, 0);
        // SAFETY: every out-pointer is ours to write, and the library writes at most the
        // capacities passed: MAX_GROUPS names into `groups`, `mess.len()` bytes into `mess`,
        // one MAX_GROUP_NAME name into `sender`.
        let ret = unsafe {
            SP_receive(
                s.mbox,
                &mut service,
                sender.as_mut_ptr(),
                MAX_GROUPS as i32,
                &mut num_groups,
                groups.as_mut_ptr(),
                &mut mess_type,
                &mut mismatch,
                mess.len() as i32,
                mess.as_mut_ptr(),
            )
        };
        if ret < 0 {
            return Err(ret);
        }
        // SAFETY: `sender` is MAX_GROUP_NAME bytes, and names are at most MAX_GROUP_NAME - 1
        // bytes plus their NUL, so a NUL lies within it.
        let from = unsafe { CStr::from_ptr(sender.as_ptr()) }.to_string_lossy();
        if service & REG_MEMB_MESS != 0 && from == group {
            let members = &groups[..num_groups.max(0) as usize];
            let is_us = |m: &[core::ffi::c_char; MAX_GROUP_NAME as usize]| {
                // SAFETY: as for `sender`: a name and its NUL fit in MAX_GROUP_NAME bytes.
                unsafe { CStr::from_ptr(m.as_ptr()) }.to_string_lossy() == s.private_group
            };
            if members.iter().any(is_us) {
                return Ok(());
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let daemons: Vec<String> = args
        .get(1)
        .expect("usage: failover_watch <daemon,daemon,...> [group]")
        .split(',')
        .map(String::from)
        .collect();
    let group = args.get(2).cloned().unwrap_or_else(|| "watched".into());
    let group_c = CString::new(group.clone()).expect("group name");
    let mut at = 0;
    let mut session = loop {
        if let Some(s) = connect(&daemons[at], &group_c) {
            break s;
        }
        at = (at + 1) % daemons.len();
    };
    if until_in_view(&session, &group).is_err() {
        eprintln!("failover_watch: the first session failed before its view");
        std::process::exit(1);
    }
    println!("ready {} {}", unix_ms(), daemons[at]);
    loop {
        // Later views (others leaving, say) are not failures: wait for the session to fail.
        let code = loop {
            if let Err(code) = until_in_view(&session, &group) {
                break code;
            }
        };
        let detected = unix_ms();
        // SAFETY: takes only the mailbox number, which the library checks; ending the failed
        // session frees the library's state for it.
        unsafe { SP_disconnect(session.mbox) };
        let lost = daemons[at].clone();
        session = loop {
            at = (at + 1) % daemons.len();
            if let Some(s) = connect(&daemons[at], &group_c) {
                break s;
            }
        };
        if until_in_view(&session, &group).is_ok() {
            println!(
                "failover {detected} {} {lost} {} SP_receive_returned_{code}",
                unix_ms(),
                daemons[at]
            );
            return;
        }
    }
}
