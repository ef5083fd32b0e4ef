//! The bindings link and call the installed C library (no daemon needed); the scenario
//! tests in `scenarios/` drive it against real daemons.

use spread_sys::*;
use spread_wire::consts::{code, limits, service as svc};
use std::ffi::{c_char, CString};
use std::sync::Mutex;

#[test]
fn the_linked_library_is_the_3_17_of_the_header() {
    let (mut major, mut minor, mut patch) = (0, 0, 0);
    // SAFETY: three ints of ours for the library to write.
    let ok = unsafe { SP_version(&mut major, &mut minor, &mut patch) };
    assert_eq!(ok, 1);
    assert_eq!((major, minor), (3, 17));
    assert_eq!(SPREAD_VERSION, (major << 24) | (minor << 16) | patch);
    println!("linked libspread {major}.{minor}.{patch}");
}

#[test]
fn the_c_constants_equal_the_rust_implementations() {
    let pairs: [(i32, u32); 15] = [
        (UNRELIABLE_MESS, svc::UNRELIABLE),
        (RELIABLE_MESS, svc::RELIABLE),
        (FIFO_MESS, svc::FIFO),
        (CAUSAL_MESS, svc::CAUSAL),
        (AGREED_MESS, svc::AGREED),
        (SAFE_MESS, svc::SAFE),
        (REGULAR_MESS, svc::REGULAR),
        (SELF_DISCARD, svc::SELF_DISCARD),
        (REG_MEMB_MESS, svc::REG_MEMB),
        (TRANSITION_MESS, svc::TRANSITION),
        (CAUSED_BY_JOIN, svc::CAUSED_BY_JOIN),
        (CAUSED_BY_LEAVE, svc::CAUSED_BY_LEAVE),
        (CAUSED_BY_DISCONNECT, svc::CAUSED_BY_DISCONNECT),
        (CAUSED_BY_NETWORK, svc::CAUSED_BY_NETWORK),
        (REJECT_MESS, svc::REJECT),
    ];
    for (c, rust) in pairs {
        assert_eq!(c as u32, rust);
    }
    let codes = [
        (ACCEPT_SESSION, code::ACCEPT_SESSION),
        (ILLEGAL_SPREAD, code::ILLEGAL_SPREAD),
        (COULD_NOT_CONNECT, code::COULD_NOT_CONNECT),
        (REJECT_QUOTA, code::REJECT_QUOTA),
        (REJECT_NO_NAME, code::REJECT_NO_NAME),
        (REJECT_ILLEGAL_NAME, code::REJECT_ILLEGAL_NAME),
        (REJECT_NOT_UNIQUE, code::REJECT_NOT_UNIQUE),
        (REJECT_VERSION, code::REJECT_VERSION),
        (CONNECTION_CLOSED, code::CONNECTION_CLOSED),
        (REJECT_AUTH, code::REJECT_AUTH),
        (ILLEGAL_SESSION, code::ILLEGAL_SESSION),
        (ILLEGAL_SERVICE, code::ILLEGAL_SERVICE),
        (ILLEGAL_MESSAGE, code::ILLEGAL_MESSAGE),
        (ILLEGAL_GROUP, code::ILLEGAL_GROUP),
        (BUFFER_TOO_SHORT, code::BUFFER_TOO_SHORT),
        (GROUPS_TOO_SHORT, code::GROUPS_TOO_SHORT),
        (MESSAGE_TOO_LONG, code::MESSAGE_TOO_LONG),
    ];
    for (c, rust) in codes {
        assert_eq!(c, rust);
    }
    assert_eq!(MAX_GROUP_NAME as usize, limits::MAX_GROUP_NAME);
    assert_eq!(MAX_PRIVATE_NAME as usize, limits::MAX_PRIVATE_NAME);
    assert_eq!(MAX_PROC_NAME as usize, limits::MAX_PROC_NAME);
}

#[test]
fn the_membership_body_offsets_are_3_17s() {
    // group_id (12 bytes), then the number of vs_set members, then their names.
    // SAFETY: these take nothing and return a constant offset.
    unsafe {
        assert_eq!(SP_get_gid_offset_memb_mess(), 0);
        assert_eq!(SP_get_num_vs_offset_memb_mess(), 12);
        assert_eq!(SP_get_vs_set_offset_memb_mess(), 16);
    }
}

#[test]
fn the_macro_helpers_read_service_words() {
    assert!(is_regular_mess(SAFE_MESS | SELF_DISCARD));
    assert!(!is_regular_mess(REJECT_MESS | AGREED_MESS));
    assert!(is_membership_mess(REG_MEMB_MESS | CAUSED_BY_JOIN));
    assert!(is_reg_memb_mess(REG_MEMB_MESS | CAUSED_BY_NETWORK));
    assert!(is_transition_mess(TRANSITION_MESS));
    assert!(is_self_leave(CAUSED_BY_LEAVE));
    assert!(!is_self_leave(REG_MEMB_MESS | CAUSED_BY_LEAVE));
    assert!(is_reject_mess(REJECT_MESS | FIFO_MESS));
}

/// The default `libspread` is 3.17's single-threaded build, and `SP_connect_timeout` resolves
/// every `port@host` with the non-reentrant `gethostbyname` (before it even checks the port):
/// two test threads connecting at once crashed the test binary in CI (SIGSEGV). One connect at
/// a time, as an application using that library must.
static LIBSPREAD: Mutex<()> = Mutex::new(());

fn connect(daemon: &str) -> i32 {
    let _one_at_a_time = LIBSPREAD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let daemon = CString::new(daemon).unwrap();
    let name = CString::new("sys").unwrap();
    let mut mbox: mailbox = -1;
    let mut group = [0 as c_char; MAX_GROUP_NAME as usize];
    let timeout = sp_time { sec: 2, usec: 0 };
    // SAFETY: `daemon` and `name` are NUL-terminated and outlive the call; `mbox` and
    // `group` are ours to write, `group` with the MAX_GROUP_NAME bytes the library writes at
    // most. The lock keeps the library's non-reentrant resolver to one thread.
    unsafe {
        SP_connect_timeout(
            daemon.as_ptr(),
            name.as_ptr(),
            0,
            1,
            &mut mbox,
            group.as_mut_ptr(),
            timeout,
        )
    }
}

#[test]
fn connecting_where_no_daemon_listens() {
    // A port below 32768 that nothing listens on.
    let port = (20_001..32_000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .unwrap();
    assert_eq!(connect(&format!("{port}@127.0.0.1")), COULD_NOT_CONNECT);
}

#[test]
fn the_library_refuses_ports_from_32768() {
    // 3.17's library refuses daemon ports of 32768 and above.
    assert_eq!(connect("32768@127.0.0.1"), ILLEGAL_SPREAD);
    assert_eq!(connect("40000@127.0.0.1"), ILLEGAL_SPREAD);
}
