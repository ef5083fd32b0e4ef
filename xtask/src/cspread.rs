//! Finding an installed C Spread 3.17 the way a user's machine has it.

use std::path::{Path, PathBuf};

/// `--c-prefix`, else `SPREAD_C_PREFIX`, else the prefix of a `spread` on PATH, else
/// /usr/local. A prefix counts when it has sbin/spread (or bin/spread) and bin/spflooder.
pub fn find(explicit: Option<&Path>) -> Option<CSpread> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("spflooder").exists())
            .and_then(|dir| dir.parent().map(Path::to_path_buf))
    });
    explicit
        .map(Path::to_path_buf)
        .into_iter()
        .chain(std::env::var_os("SPREAD_C_PREFIX").map(PathBuf::from))
        .chain(from_path)
        .chain([PathBuf::from("/usr/local")])
        .find_map(|prefix| CSpread::at(&prefix))
}

pub struct CSpread {
    pub daemon: PathBuf,
}

impl CSpread {
    fn at(prefix: &Path) -> Option<CSpread> {
        let daemon = [prefix.join("sbin/spread"), prefix.join("bin/spread")]
            .into_iter()
            .find(|p| p.exists())?;
        prefix
            .join("bin/spflooder")
            .exists()
            .then_some(CSpread { daemon })
    }
}
