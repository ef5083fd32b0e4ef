//! The JSON model of a `--target all` run (platforms/platforms.json): what each target
//! reached, its tests, and what the run installed.

use serde::{Deserialize, Serialize};

/// The run's record, read back by `--render-only`.
pub(crate) const JSON: &str = "platforms/platforms.json";

#[derive(Serialize, Deserialize, Clone, Copy, Default, PartialEq, Debug)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    #[default]
    NotAttempted,
    Ok,
    Failed,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub(crate) struct Steps {
    pub check: Status,
    pub build: Status,
    pub link: Status,
    pub run: Status,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub(crate) struct Tests {
    /// `test result:` lines seen, one per test binary run.
    pub binaries: u32,
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
}

/// What one run found out about one target.
#[derive(Serialize, Deserialize, Clone, Default)]
#[serde(default)]
pub(crate) struct Record {
    pub target: String,
    pub tier: u8,
    /// The last step the tier asks for: run, link or build.
    pub goal: String,
    pub steps: Steps,
    /// The last step that passed, with every step before it.
    pub reached: String,
    pub tests: Tests,
    pub toolchain: String,
    pub tools: Vec<String>,
    pub commands: Vec<String>,
    pub date: String,
    pub seconds: f64,
    pub target_os: String,
    pub target_endian: String,
    pub poller: String,
    pub keepalive: Vec<String>,
    pub notes: String,
    /// What this run installed for the target (rustup, pip, apt).
    pub installed: Vec<String>,
    /// Why a step failed, or what stopped the target before its goal.
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Report {
    /// False while the run is going on or when it was interrupted: targets still
    /// `not_attempted` then were not reached, which says nothing about them.
    pub complete: bool,
    pub started: String,
    pub finished: Option<String>,
    pub wall_seconds: f64,
    pub host: String,
    pub command: String,
    pub platforms: Vec<Record>,
}

pub(crate) fn reached(s: &Steps) -> &'static str {
    let mut last = "nothing";
    for (name, st) in [
        ("check", s.check),
        ("build", s.build),
        ("link", s.link),
        ("run", s.run),
    ] {
        if st != Status::Ok {
            break;
        }
        last = name;
    }
    last
}
