//! The two client libraries behind one interface: C 3.17's libspread through spread-sys, and
//! spread-rs. Every call returns what the C API would: a return code, or a [`Received`].

use crate::record::{MembershipBody, Payload, Received};
use spread_wire::consts::{code, service as svc};
use std::time::Duration;

/// A client library.
pub trait Library: Sync {
    fn name(&self) -> &'static str;
    /// Connects to `daemon` (`port@host`) as `name` ("" lets the daemon pick), with
    /// membership messages or not, offering auth method `auth`.
    fn connect(
        &self,
        daemon: &str,
        name: &str,
        membership: bool,
        auth: &str,
    ) -> Result<(Box<dyn Client>, String), i32>;
}

/// A session of a client library.
pub trait Client {
    fn join(&mut self, group: &str) -> i32;
    fn leave(&mut self, group: &str) -> i32;
    /// One group: SP_multicast; several (or none): SP_multigroup_multicast.
    fn multicast(&mut self, service: i32, groups: &[String], mess_type: i16, data: &[u8]) -> i32;
    /// The next event within `wait`: `Ok(None)` when none came, `Err(code)` on an error.
    fn receive(&mut self, wait: Duration) -> Result<Option<Received>, i32>;
    fn disconnect(&mut self) -> i32;
}

// ---------------------------------------------------------------- libspread (spread-sys)

#[cfg(feature = "libspread")]
pub use sys::{LibSpread, LIBSPREAD};

/// Needs the installed C library: built with the `libspread` feature (the default).
#[cfg(feature = "libspread")]
mod sys {
    use super::*;
    use std::ffi::{c_char, c_int, c_void, CStr, CString};
    use std::sync::Mutex;

    /// C Spread 3.17's library, `libtspread` (its thread-safe build) through spread-sys.
    pub struct LibSpread;

    /// libspread keeps process-wide state (the auth method, the session table indexed by the
    /// socket): one scenario at a time drives it, so no other thread's session can take the
    /// socket number of one the library closed.
    pub static LIBSPREAD: Mutex<()> = Mutex::new(());

    extern "C" fn accept_auth(_fd: c_int, _data: *mut c_void) -> c_int {
        1
    }

    fn set_auth(method: &str) {
        let name = CString::new(method).unwrap();
        // SAFETY: `name` is NUL-terminated and the library copies it; `accept_auth` is a
        // plain function that touches nothing, and the data pointer it is given is never read.
        let ret = unsafe {
            spread_sys::SP_set_auth_method(name.as_ptr(), Some(accept_auth), std::ptr::null_mut())
        };
        assert_eq!(ret, 1, "SP_set_auth_method({method})");
    }

    impl Library for LibSpread {
        fn name(&self) -> &'static str {
            "libspread"
        }

        fn connect(
            &self,
            daemon: &str,
            name: &str,
            membership: bool,
            auth: &str,
        ) -> Result<(Box<dyn Client>, String), i32> {
            let c_daemon = CString::new(daemon).unwrap();
            let c_name = CString::new(name).unwrap();
            let mut mbox: spread_sys::mailbox = -1;
            let mut group = [0 as c_char; spread_sys::MAX_GROUP_NAME as usize];
            if auth != "NULL" {
                set_auth(auth);
            }
            // SAFETY: the strings are NUL-terminated and live across the call (a null name
            // asks the daemon for one); `mbox` and `group` are ours to write, `group` with the
            // MAX_GROUP_NAME bytes the library writes at most.
            let ret = unsafe {
                spread_sys::SP_connect_timeout(
                    c_daemon.as_ptr(),
                    if name.is_empty() {
                        std::ptr::null()
                    } else {
                        c_name.as_ptr()
                    },
                    0,
                    c_int::from(membership),
                    &mut mbox,
                    group.as_mut_ptr(),
                    spread_sys::sp_time { sec: 10, usec: 0 },
                )
            };
            if auth != "NULL" {
                set_auth("NULL");
            }
            if ret != spread_sys::ACCEPT_SESSION {
                return Err(ret);
            }
            // SAFETY: `group` started zeroed and the accepted connect wrote a NUL-terminated
            // name shorter than it, so it holds a NUL within bounds.
            let private_group = unsafe { CStr::from_ptr(group.as_ptr()) }
                .to_string_lossy()
                .into_owned();
            Ok((
                Box::new(SysClient {
                    mbox,
                    alive: true,
                    buf: vec![0; 256 * 1024],
                    groups: vec![[0; 32]; 512],
                }),
                private_group,
            ))
        }
    }

    struct SysClient {
        mbox: spread_sys::mailbox,
        /// False once the session ended (the library closes the socket on an error): its
        /// number may then be another socket's, so it is not polled or disconnected again.
        /// Calls still go to the library, which answers ILLEGAL_SESSION from its session table
        /// ([`LIBSPREAD`] keeps other libspread sessions from taking the number meanwhile).
        alive: bool,
        buf: Vec<u8>,
        groups: Vec<[c_char; 32]>,
    }

    fn group_array(groups: &[String]) -> Vec<[c_char; 32]> {
        groups
            .iter()
            .map(|g| {
                let mut a = [0 as c_char; 32];
                for (slot, b) in a.iter_mut().zip(g.bytes().take(31)) {
                    *slot = b as c_char;
                }
                a
            })
            .collect()
    }

    fn c_string(bytes: &[c_char]) -> String {
        let bytes: Vec<u8> = bytes
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    impl Client for SysClient {
        fn join(&mut self, group: &str) -> i32 {
            let g = CString::new(group).unwrap();
            // SAFETY: `g` is NUL-terminated and outlives the call; the library checks `mbox`
            // against its session table, so a closed one only gets ILLEGAL_SESSION.
            unsafe { spread_sys::SP_join(self.mbox, g.as_ptr()) }
        }

        fn leave(&mut self, group: &str) -> i32 {
            let g = CString::new(group).unwrap();
            // SAFETY: as in `join`.
            unsafe { spread_sys::SP_leave(self.mbox, g.as_ptr()) }
        }

        fn multicast(
            &mut self,
            service: i32,
            groups: &[String],
            mess_type: i16,
            data: &[u8],
        ) -> i32 {
            let ret = if groups.len() == 1 {
                let g = CString::new(groups[0].as_str()).unwrap();
                // SAFETY: `g` is NUL-terminated, and the library reads `data.len()` bytes
                // of `data`; both outlive the call. A stale `mbox` gets ILLEGAL_SESSION.
                unsafe {
                    spread_sys::SP_multicast(
                        self.mbox,
                        service,
                        g.as_ptr(),
                        mess_type,
                        data.len() as c_int,
                        data.as_ptr().cast(),
                    )
                }
            } else {
                let array = group_array(groups);
                // SAFETY: `array` holds `array.len()` names of 32 bytes, each NUL-terminated
                // (group_array keeps at most 31 bytes), and `data` `data.len()` bytes; both
                // outlive the call.
                unsafe {
                    spread_sys::SP_multigroup_multicast(
                        self.mbox,
                        service,
                        array.len() as c_int,
                        array.as_ptr(),
                        mess_type,
                        data.len() as c_int,
                        data.as_ptr().cast(),
                    )
                }
            };
            if ret == code::CONNECTION_CLOSED {
                self.alive = false;
            }
            ret
        }

        fn receive(&mut self, wait: Duration) -> Result<Option<Received>, i32> {
            // A closed session's socket number may be another's now: no poll, the library
            // answers from its session table.
            if self.alive {
                let mut pfd = libc::pollfd {
                    fd: self.mbox,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, ours for the call; an fd that is not open only
                // sets POLLNVAL.
                let n = unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as c_int) };
                if n == 0 {
                    return Ok(None);
                }
            }
            let mut service_type: spread_sys::service = 0;
            let mut sender = [0 as c_char; 32];
            let mut num_groups: c_int = 0;
            let mut mess_type: i16 = 0;
            let mut endian_mismatch: c_int = 0;
            // SAFETY: every out-pointer is ours to write: `sender` has the 32 bytes of a group
            // name, and the library writes at most `self.groups.len()` names and
            // `self.buf.len()` bytes, the capacities it is given.
            let ret = unsafe {
                spread_sys::SP_receive(
                    self.mbox,
                    &mut service_type,
                    sender.as_mut_ptr(),
                    self.groups.len() as c_int,
                    &mut num_groups,
                    self.groups.as_mut_ptr(),
                    &mut mess_type,
                    &mut endian_mismatch,
                    self.buf.len() as c_int,
                    self.buf.as_mut_ptr().cast(),
                )
            };
            if ret < 0 {
                if ret == code::CONNECTION_CLOSED || ret == code::ILLEGAL_SESSION {
                    self.alive = false;
                }
                return Err(ret);
            }
            let body = &self.buf[..ret as usize];
            let groups: Vec<String> = self.groups[..num_groups.max(0) as usize]
                .iter()
                .map(|g| c_string(g))
                .collect();
            let kind = service_type as u32;
            let is_memb = kind & svc::MEMBERSHIP != 0 && kind & svc::REJECT == 0;
            let (data, membership) = if is_memb {
                (Payload::default(), c_membership_body(kind, body))
            } else {
                (Payload(body.to_vec()), None)
            };
            Ok(Some(Received {
                service_type,
                sender: c_string(&sender),
                groups,
                mess_type,
                endian_mismatch: endian_mismatch != 0,
                data,
                membership,
            }))
        }

        fn disconnect(&mut self) -> i32 {
            self.alive = false;
            // SAFETY: takes only the mailbox number, which the library checks.
            unsafe { spread_sys::SP_disconnect(self.mbox) }
        }
    }

    impl Drop for SysClient {
        fn drop(&mut self) {
            if self.alive {
                // SAFETY: takes only the mailbox number, which the library checks.
                unsafe { spread_sys::SP_disconnect(self.mbox) };
            }
        }
    }

    /// A membership body as libspread hands it over (in our byte order): the group id at
    /// SP_get_gid_offset_memb_mess, and for a regular membership the vs_set count and names.
    fn c_membership_body(kind: u32, body: &[u8]) -> Option<MembershipBody> {
        let int = |at: usize| -> Option<i32> {
            body.get(at..at + 4)
                .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
        };
        // SAFETY: these three take nothing and return a constant offset.
        let gid_at = unsafe { spread_sys::SP_get_gid_offset_memb_mess() } as usize;
        let group_id = [int(gid_at)?, int(gid_at + 4)?, int(gid_at + 8)?];
        let vs_set = if kind & svc::REG_MEMB != 0 {
            // SAFETY: as above.
            let num_at = unsafe { spread_sys::SP_get_num_vs_offset_memb_mess() } as usize;
            // SAFETY: as above.
            let set_at = unsafe { spread_sys::SP_get_vs_set_offset_memb_mess() } as usize;
            let n = int(num_at)? as usize;
            Some(
                (0..n)
                    .map(|i| {
                        let name = body
                            .get(set_at + 32 * i..set_at + 32 * (i + 1))
                            .unwrap_or(&[]);
                        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                        String::from_utf8_lossy(&name[..end]).into_owned()
                    })
                    .collect(),
            )
        } else {
            None
        };
        Some(MembershipBody { group_id, vs_set })
    }
}

// ---------------------------------------------------------------- spread-rs

/// The pure-Rust client.
pub struct SpreadRs;

impl Library for SpreadRs {
    fn name(&self) -> &'static str {
        "spread-rs"
    }

    fn connect(
        &self,
        daemon: &str,
        name: &str,
        membership: bool,
        auth: &str,
    ) -> Result<(Box<dyn Client>, String), i32> {
        let options = spread::ConnectOptions::new(daemon)
            .name(name)
            .membership(membership)
            .auth_methods([auth]);
        match spread::Mailbox::connect(&options) {
            Ok(m) => {
                let group = m.private_group();
                Ok((Box::new(RsClient { mailbox: Some(m) }), group))
            }
            Err(e) => Err(e.code()),
        }
    }
}

struct RsClient {
    /// `None` after disconnect (which consumes the mailbox).
    mailbox: Option<spread::Mailbox>,
}

fn service_of(word: i32) -> Option<spread::Service> {
    let word = word as u32;
    let kind = spread::ServiceKind::from_type(word)?;
    Some(spread::Service {
        kind,
        self_discard: word & svc::SELF_DISCARD != 0,
    })
}

fn result_code(r: Result<(), spread::Error>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

impl Client for RsClient {
    fn join(&mut self, group: &str) -> i32 {
        match &mut self.mailbox {
            Some(m) => result_code(m.join(group)),
            None => code::ILLEGAL_SESSION,
        }
    }

    fn leave(&mut self, group: &str) -> i32 {
        match &mut self.mailbox {
            Some(m) => result_code(m.leave(group)),
            None => code::ILLEGAL_SESSION,
        }
    }

    fn multicast(&mut self, service: i32, groups: &[String], mess_type: i16, data: &[u8]) -> i32 {
        let Some(m) = &mut self.mailbox else {
            return code::ILLEGAL_SESSION;
        };
        let Some(service) = service_of(service) else {
            // spread-rs's types cannot express a service word without a service bit.
            return code::ILLEGAL_SERVICE;
        };
        match m.multicast(service, groups, mess_type, data) {
            Ok(n) => n as i32,
            Err(e) => e.code(),
        }
    }

    fn receive(&mut self, wait: Duration) -> Result<Option<Received>, i32> {
        let Some(m) = &mut self.mailbox else {
            return Err(code::ILLEGAL_SESSION);
        };
        let me = m.private_group();
        match m.receive_timeout(wait) {
            Ok(None) => Ok(None),
            Ok(Some(event)) => Ok(Some(received_of(event, &me))),
            Err(e) => Err(e.code()),
        }
    }

    fn disconnect(&mut self) -> i32 {
        match self.mailbox.take() {
            Some(m) => result_code(m.disconnect()),
            None => code::ILLEGAL_SESSION,
        }
    }
}

/// A spread-rs event in `SP_receive`'s terms.
fn received_of(event: spread::Event, _me: &str) -> Received {
    use spread::{Cause, Event, MembershipChange};
    match event {
        Event::Message(m) => Received {
            service_type: (m.service.bit() | if m.self_discard { svc::SELF_DISCARD } else { 0 })
                as i32,
            sender: m.sender,
            groups: m.groups,
            mess_type: m.mess_type,
            endian_mismatch: m.endian_mismatch,
            data: Payload(m.data),
            membership: None,
        },
        Event::Membership(ms) => {
            let gid = |g: spread::GroupId| [g.proc_id as i32, g.time, g.index];
            match ms.change {
                MembershipChange::Regular {
                    cause,
                    group_id,
                    members,
                    my_index,
                    vs_set,
                } => Received {
                    service_type: (svc::REG_MEMB
                        | match cause {
                            Cause::Join => svc::CAUSED_BY_JOIN,
                            Cause::Leave => svc::CAUSED_BY_LEAVE,
                            Cause::Disconnect => svc::CAUSED_BY_DISCONNECT,
                            Cause::Network => svc::CAUSED_BY_NETWORK,
                        }) as i32,
                    sender: ms.group,
                    groups: members,
                    mess_type: my_index.map_or(-1, |i| i as i16),
                    endian_mismatch: false,
                    data: Payload::default(),
                    membership: Some(MembershipBody {
                        group_id: gid(group_id),
                        vs_set: Some(vs_set),
                    }),
                },
                MembershipChange::Transitional { group_id } => Received {
                    service_type: svc::TRANSITION as i32,
                    sender: ms.group,
                    groups: Vec::new(),
                    mess_type: -1,
                    endian_mismatch: false,
                    data: Payload::default(),
                    membership: Some(MembershipBody {
                        group_id: gid(group_id),
                        vs_set: None,
                    }),
                },
                MembershipChange::SelfLeave => Received {
                    service_type: svc::CAUSED_BY_LEAVE as i32,
                    sender: ms.group,
                    groups: Vec::new(),
                    mess_type: -1,
                    endian_mismatch: false,
                    data: Payload::default(),
                    membership: None,
                },
            }
        }
        Event::Rejected(r) => Received {
            service_type: (svc::REJECT | r.old_type) as i32,
            sender: String::new(),
            groups: r.groups,
            mess_type: r.mess_type,
            endian_mismatch: false,
            data: Payload(r.data),
            membership: None,
        },
        // A plain Mailbox returns nothing else (failover events come from Failover only).
        _ => Received {
            service_type: 0,
            sender: String::new(),
            groups: Vec::new(),
            mess_type: 0,
            endian_mismatch: false,
            data: Payload::default(),
            membership: None,
        },
    }
}
