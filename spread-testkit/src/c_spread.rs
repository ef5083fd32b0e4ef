//! The one C Spread 3.17 finder: spread-sys's own search (its build script's `find` module,
//! through spread-sys-build), then the programs beside the library it found.

use spread_sys_build::env::Env;
use spread_sys_build::find::{self, Options};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// An installed C Spread 3.17: its daemon, client programs and library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSpread {
    /// The installation prefix (the parent of `include/` when the search went by
    /// directories or pkg-config).
    pub prefix: PathBuf,
    /// `sbin/spread`, else `bin/spread`.
    pub daemon: PathBuf,
    pub spuser: PathBuf,
    pub spflooder: PathBuf,
    pub spmonitor: PathBuf,
    /// The directory holding `libspread` (and `libtspread`).
    pub lib_dir: PathBuf,
    /// The directory holding `sp.h`.
    pub include_dir: PathBuf,
}

impl CSpread {
    /// Searches as spread-sys's build does, first match wins: `SPREAD_C_PREFIX`;
    /// `SPREAD_INCLUDE_DIR` / `SPREAD_LIB_DIR`; a `spread.pc` through pkg-config;
    /// `/usr/local`, then `/usr`. A variable that is set is authoritative. The installation
    /// must also hold the daemon, spuser, spflooder and spmonitor. Searched once per process.
    pub fn find() -> Result<CSpread, String> {
        static FOUND: OnceLock<Result<CSpread, String>> = OnceLock::new();
        FOUND.get_or_init(|| CSpread::search(None)).clone()
    }

    /// [`CSpread::find`], with `explicit` (a tool's `--c-prefix`) taking the place of
    /// `SPREAD_C_PREFIX` when given.
    pub fn find_in(explicit: Option<&Path>) -> Result<CSpread, String> {
        match explicit {
            Some(prefix) => CSpread::search(Some(prefix)),
            None => CSpread::find(),
        }
    }

    /// [`CSpread::find`], or `None` after [`skip`](crate::skip)ping `test`.
    pub fn find_or_skip(test: &str) -> Option<CSpread> {
        match CSpread::find() {
            Ok(found) => Some(found),
            Err(why) => {
                crate::skip(test, &why);
                None
            }
        }
    }

    fn search(explicit: Option<&Path>) -> Result<CSpread, String> {
        let target = env!("SPREAD_TESTKIT_TARGET");
        let explicit: Option<OsString> = explicit.map(|p| p.as_os_str().to_owned());
        // Tests run on the machine they were built for: the host is the target.
        let env = Env::new(target, target, move |name| match &explicit {
            Some(prefix) if name.ends_with("SPREAD_C_PREFIX") => Some(prefix.clone()),
            _ => std::env::var_os(name),
        });
        let found = find::find(&env, &Options::new(false)).map_err(|e| match e {
            find::Error::NotFound { tried, .. } => format!(
                "no C Spread 3.17 found (set SPREAD_C_PREFIX, or install it in /usr/local); \
                 tried: {}",
                tried.join("; ")
            ),
            other => other.to_string(),
        })?;
        let prefix = found.prefix.clone().unwrap_or_else(|| {
            let include = &found.include_dir;
            include.parent().unwrap_or(include).to_path_buf()
        });
        let daemon = [prefix.join("sbin/spread"), prefix.join("bin/spread")]
            .into_iter()
            .find(|p| p.is_file());
        let program = |name: &str| prefix.join("bin").join(name);
        let (spuser, spflooder, spmonitor) = (
            program("spuser"),
            program("spflooder"),
            program("spmonitor"),
        );
        let missing: Vec<String> = [&spuser, &spflooder, &spmonitor]
            .into_iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .chain(
                daemon
                    .is_none()
                    .then(|| format!("{}/sbin/spread", prefix.display())),
            )
            .collect();
        match daemon {
            Some(daemon) if missing.is_empty() => Ok(CSpread {
                prefix,
                daemon,
                spuser,
                spflooder,
                spmonitor,
                lib_dir: found.lib_dir,
                include_dir: found.include_dir,
            }),
            _ => Err(format!(
                "C Spread's library found by {} in {}, but no {}",
                found.found_by,
                found.lib_dir.display(),
                missing.join(", ")
            )),
        }
    }
}
