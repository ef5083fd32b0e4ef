//! The wire formats of Spread 3.17, in one place.
//!
//! Every struct that Spread 3.17 puts on a socket is written in the *sender's* byte order,
//! and the sender marks that order in the endian bits (`0x80000080`) of its type words. This
//! crate decodes with the order the marker names and encodes with an order the caller
//! chooses ([`Endian::NATIVE`] to behave exactly like a C daemon or library on this host).
//!
//! The crate does no I/O and keeps no clocks: decoders take byte slices and say either what
//! they found, that they need more bytes, or why the bytes are not Spread.
//!
//! Families:
//! * [`consts`] — service bits, error codes and the 3.17 limits.
//! * [`names`] — the fixed 32-byte group name field and private-group parsing.
//! * [`header`] — the 48-byte message header used in both directions.
//! * [`handshake`] — the connect handshake, byte by byte.
//! * [`membership`] — group ids and the body of membership messages.
//! * [`probe`] — the liveness probe extension, negotiated so 3.17 programs never see it.
//! * [`frame`] — cutting a TCP byte stream into whole client messages.
//! * [`ring`] — daemon-to-daemon UDP: packets, tokens, membership and FORM bodies, the
//!   GROUPS exchange and monitor traffic.

pub mod codec;
pub mod consts;
mod cursor;
pub mod frame;
pub mod handshake;
pub mod header;
pub mod membership;
pub mod names;
pub mod probe;
pub mod ring;

pub use codec::Endian;
pub use header::{Hint, MessageHeader, HEADER_LEN};
pub use names::GroupName;
