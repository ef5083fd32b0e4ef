//! Saying that a test did not run, where a person and `cargo xtask ci` both see it.

use std::io::Write;

/// The variable naming the file where skips are collected, for `cargo xtask ci`'s summary.
pub const SKIP_LOG: &str = "SPREAD_SKIP_LOG";

/// Prints `SKIPPED: <test>: <reason>` and, when `SPREAD_SKIP_LOG` names a file, appends
/// `<test>: <reason>` to it. Test processes run in parallel, so the line goes out in one
/// `write` to a file opened for appending: lines from several processes do not interleave.
pub fn skip(test: &str, reason: &str) {
    println!("SKIPPED: {test}: {reason}");
    let Some(path) = std::env::var_os(SKIP_LOG).filter(|p| !p.is_empty()) else {
        return;
    };
    let line = format!("{test}: {reason}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("could not add the skip to {}: {e}", path.to_string_lossy());
    }
}
