//! The C Spread finder on fake installations (the header of our own from spread-sys's tests,
//! empty files for the library and programs), so it is tested without a C Spread.

use spread_testkit::{CSpread, TempDir};
use std::path::Path;

/// A prefix holding sp.h, libspread.so and the programs named in `programs`.
fn fake_installation(tag: &str, programs: &[&str]) -> TempDir {
    let dir = TempDir::new(tag);
    let root = dir.path();
    for sub in ["include", "lib", "bin", "sbin"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    let header =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../spread-sys/tests/fake/include/sp.h");
    std::fs::copy(header, root.join("include/sp.h")).unwrap();
    std::fs::write(root.join("lib/libspread.so"), "").unwrap();
    for program in programs {
        std::fs::write(root.join(program), "").unwrap();
    }
    dir
}

#[test]
fn an_explicit_prefix_gives_the_daemon_programs_and_library() {
    let dir = fake_installation(
        "finder-whole",
        &[
            "sbin/spread",
            "bin/spuser",
            "bin/spflooder",
            "bin/spmonitor",
        ],
    );
    let root = dir.path();
    let found = CSpread::find_in(Some(root)).unwrap();
    assert_eq!(
        found,
        CSpread {
            prefix: root.to_path_buf(),
            daemon: root.join("sbin/spread"),
            spuser: root.join("bin/spuser"),
            spflooder: root.join("bin/spflooder"),
            spmonitor: root.join("bin/spmonitor"),
            lib_dir: root.join("lib"),
            include_dir: root.join("include"),
        }
    );
}

#[test]
fn a_daemon_in_bin_counts_too() {
    let dir = fake_installation(
        "finder-bin",
        &["bin/spread", "bin/spuser", "bin/spflooder", "bin/spmonitor"],
    );
    let found = CSpread::find_in(Some(dir.path())).unwrap();
    assert_eq!(found.daemon, dir.path().join("bin/spread"));
}

#[test]
fn a_library_without_its_programs_is_not_an_installation() {
    let dir = fake_installation("finder-lib-only", &["bin/spuser"]);
    let why = CSpread::find_in(Some(dir.path())).unwrap_err();
    for missing in ["spflooder", "spmonitor", "sbin/spread"] {
        assert!(why.contains(missing), "{why}");
    }
}

#[test]
fn an_explicit_prefix_without_spread_is_authoritative() {
    let dir = TempDir::new("finder-empty");
    let why = CSpread::find_in(Some(dir.path())).unwrap_err();
    assert!(why.contains("stopped there"), "{why}");
}
