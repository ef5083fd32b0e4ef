//! Differential scenarios: one script of client actions (connect, join, multicast with a
//! service type, leave, disconnect, kill a daemon, ...) played through C Spread 3.17's
//! libspread (via spread-sys) and through spread-rs, against the C daemon and ours, with
//! every call's result and every event recorded in one [`Record`] type.
//!
//! `tests/differential.rs` plays each scenario four times (two libraries x two daemons) and
//! asserts that, for each daemon, the libspread recording equals the spread-rs recording
//! field by field, except the fields the scenario names in [`Scenario::ignore`] and the
//! steps where spread-rs is known to differ ([`Scenario::known`], each with its reason).

pub mod clients;
pub mod daemons;
pub mod interop;
pub mod record;
#[cfg(feature = "libspread")]
pub mod scenarios;
pub mod script;

pub use clients::{Client, Library, SpreadRs};
#[cfg(feature = "libspread")]
pub use clients::{LibSpread, LIBSPREAD};
pub use daemons::Cluster;
pub use record::{compare, normalize, render, Comparison, Ignore, Payload, Received, Record};
pub use script::{run, Action, Scenario, Script};
pub use spread_testkit::{build_our_daemon, CSpread, DaemonKind};
