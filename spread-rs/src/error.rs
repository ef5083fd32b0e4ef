//! Errors, each mapping to the code 3.17's library would return.

use spread_wire::consts::code;
use spread_wire::handshake::Reject;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon address cannot be used (3.17: ILLEGAL_SPREAD).
    #[error("illegal daemon address '{0}'")]
    IllegalSpread(String),
    /// Nothing answered at the daemon address (COULD_NOT_CONNECT).
    #[error("could not connect to {address}: {source}")]
    CouldNotConnect {
        address: String,
        source: std::io::Error,
    },
    /// The daemon refused the session (one of the REJECT_* codes).
    #[error("daemon refused the session: {0}")]
    Rejected(Reject),
    /// The connection ended (CONNECTION_CLOSED).
    #[error("connection closed by the daemon")]
    ConnectionClosed,
    /// The private name is not one 3.17 allows (REJECT_ILLEGAL_NAME, decided locally).
    #[error("illegal private name: {0}")]
    IllegalName(String),
    /// A group name 3.17's library refuses: 1 to 31 bytes in '$'..='~' (ILLEGAL_GROUP).
    #[error("illegal group name {0:?}")]
    IllegalGroup(String),
    /// More than 100 destination groups, or none (ILLEGAL_MESSAGE).
    #[error("illegal message: {0}")]
    IllegalMessage(String),
    /// Data plus 32 bytes per group over what a daemon accepts (MESSAGE_TOO_LONG).
    #[error("message of {len} bytes (data + 32 per group) is over the limit of {max}")]
    MessageTooLong { len: usize, max: usize },
    /// The daemon sent bytes that are not Spread 3.17.
    #[error("protocol error from the daemon: {0}")]
    Protocol(String),
    /// The session has already ended (its connection closed earlier): 3.17's library
    /// answers every later call with ILLEGAL_SESSION.
    #[error("the session has ended")]
    IllegalSession,
    /// The operation did not complete in time.
    #[error("timed out")]
    Timeout,
    /// The daemon stopped answering: nothing came from it for `after` while liveness probes
    /// were being sent (or a write to it stayed blocked that long). The daemon may be hung
    /// (stopped, deadlocked, swapping); the session is over (CONNECTION_CLOSED), and every
    /// later call on the same Mailbox gets [`Error::IllegalSession`].
    #[error("the daemon did not answer the liveness probe within {after:?}")]
    DaemonTimeout { after: std::time::Duration },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Errors after which the connection is unusable.
    pub(crate) fn ends_session(&self) -> bool {
        matches!(
            self,
            Error::ConnectionClosed
                | Error::Io(_)
                | Error::Protocol(_)
                | Error::DaemonTimeout { .. }
        )
    }

    /// Errors that mean the session with the daemon is gone (a failover type reconnects
    /// after them): the connection ended, broke, timed out on liveness, or was already
    /// ended.
    pub fn is_session_lost(&self) -> bool {
        self.ends_session() || matches!(self, Error::IllegalSession)
    }

    /// The 3.17 return code a C program would see.
    pub fn code(&self) -> i32 {
        match self {
            Error::IllegalSpread(_) => code::ILLEGAL_SPREAD,
            Error::CouldNotConnect { .. } | Error::Timeout => code::COULD_NOT_CONNECT,
            Error::Rejected(r) => r.code(),
            Error::ConnectionClosed
            | Error::Io(_)
            | Error::Protocol(_)
            | Error::DaemonTimeout { .. } => code::CONNECTION_CLOSED,
            Error::IllegalName(_) => code::REJECT_ILLEGAL_NAME,
            Error::IllegalGroup(_) => code::ILLEGAL_GROUP,
            Error::IllegalMessage(_) => code::ILLEGAL_MESSAGE,
            Error::MessageTooLong { .. } => code::MESSAGE_TOO_LONG,
            Error::IllegalSession => code::ILLEGAL_SESSION,
        }
    }
}
