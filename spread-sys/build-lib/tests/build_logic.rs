//! spread-sys's build logic without a C Spread: discovery against fake installations made
//! from the header of our own in `spread-sys/tests/fake/include/sp.h` (and empty library
//! files), bindgen on that header for the host and for cross targets, and the one-paragraph
//! failures.

use spread_sys_build::env::Env;
use spread_sys_build::find::{self, Error, LinkKind, Options};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

const HOST: &str = "x86_64-unknown-linux-gnu";

/// A private scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "spread-sys-build-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fake_header() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fake/include/sp.h")
}

/// A fake installation under `prefix`: our sp.h in include/, empty library files in
/// `lib_subdir` (the search only looks at names).
fn install(prefix: &Path, lib_subdir: &str, libs: &[&str]) {
    std::fs::create_dir_all(prefix.join("include")).unwrap();
    std::fs::copy(fake_header(), prefix.join("include/sp.h")).unwrap();
    let lib = prefix.join(lib_subdir);
    std::fs::create_dir_all(&lib).unwrap();
    for name in libs {
        std::fs::write(lib.join(name), b"").unwrap();
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Options that never look at this machine's /usr/local, /usr or pkg-config.
fn hermetic(defaults: Vec<PathBuf>) -> Options {
    Options {
        thread_safe: false,
        default_prefixes: Some(defaults),
        pkg_config: false,
    }
}

fn nowhere() -> PathBuf {
    PathBuf::from("/nonexistent/spread-sys-test")
}

#[test]
fn finds_an_installation_by_spread_c_prefix() {
    let dir = TempDir::new("prefix");
    install(dir.path(), "lib", &["libspread.so", "libspread.a"]);
    let env = Env::with_vars(HOST, HOST, &[("SPREAD_C_PREFIX", &s(dir.path()))]);
    let found = find::find(&env, &hermetic(vec![nowhere()])).unwrap();
    assert_eq!(found.include_dir, dir.path().join("include"));
    assert_eq!(found.lib_dir, dir.path().join("lib"));
    assert_eq!(found.lib_name, "spread");
    assert_eq!(found.link, LinkKind::Dylib);
    assert_eq!(found.found_by, "SPREAD_C_PREFIX");
    assert_eq!(found.prefix.as_deref(), Some(dir.path()));
    assert_eq!(found.version, Some((3, 17, 3)));
    assert_eq!(found.clang_target, HOST);
    assert_eq!(found.sysroot, None);
}

#[test]
fn spread_static_and_the_thread_safe_library() {
    let dir = TempDir::new("static");
    install(
        dir.path(),
        "lib64",
        &["libspread.so", "libspread.a", "libtspread.a"],
    );
    let prefix = s(dir.path());
    let env = Env::with_vars(
        HOST,
        HOST,
        &[("SPREAD_C_PREFIX", &prefix), ("SPREAD_STATIC", "1")],
    );
    let found = find::find(&env, &hermetic(vec![])).unwrap();
    assert_eq!(
        (found.link, found.lib_dir),
        (LinkKind::Static, dir.path().join("lib64"))
    );

    // Thread-safe: only the static libtspread exists, so unset SPREAD_STATIC takes it...
    let env = Env::with_vars(HOST, HOST, &[("SPREAD_C_PREFIX", &prefix)]);
    let mut options = hermetic(vec![]);
    options.thread_safe = true;
    let found = find::find(&env, &options).unwrap();
    assert_eq!(
        (found.lib_name.as_str(), found.link),
        ("tspread", LinkKind::Static)
    );
    // ...and SPREAD_STATIC=0 (shared only) finds nothing, saying what it missed.
    let env = Env::with_vars(
        HOST,
        HOST,
        &[("SPREAD_C_PREFIX", &prefix), ("SPREAD_STATIC", "0")],
    );
    let err = find::find(&env, &options).unwrap_err();
    assert!(err.to_string().contains("but no libtspread.so in"), "{err}");
}

#[test]
fn the_target_prefixed_variable_wins() {
    let plain = TempDir::new("plain");
    let for_target = TempDir::new("for-target");
    install(plain.path(), "lib", &["libspread.so"]);
    install(for_target.path(), "lib", &["libspread.so"]);
    let env = Env::with_vars(
        HOST,
        HOST,
        &[
            ("SPREAD_C_PREFIX", &s(plain.path())),
            (
                "X86_64_UNKNOWN_LINUX_GNU_SPREAD_C_PREFIX",
                &s(for_target.path()),
            ),
        ],
    );
    let found = find::find(&env, &hermetic(vec![])).unwrap();
    assert_eq!(found.prefix.as_deref(), Some(for_target.path()));
}

#[test]
fn include_and_lib_dirs_each_or_both() {
    let dir = TempDir::new("dirs");
    install(dir.path(), "lib", &["libspread.a"]);
    let include = s(&dir.path().join("include"));
    let lib = s(&dir.path().join("lib"));
    for vars in [
        vec![
            ("SPREAD_INCLUDE_DIR", include.as_str()),
            ("SPREAD_LIB_DIR", lib.as_str()),
        ],
        vec![("SPREAD_INCLUDE_DIR", include.as_str())],
        vec![("SPREAD_LIB_DIR", lib.as_str())],
    ] {
        let env = Env::with_vars(HOST, HOST, &vars);
        let found = find::find(&env, &hermetic(vec![nowhere()])).unwrap();
        assert_eq!(found.include_dir, dir.path().join("include"), "{vars:?}");
        assert_eq!(found.lib_dir, dir.path().join("lib"), "{vars:?}");
        assert_eq!(found.link, LinkKind::Static);
        assert_eq!(found.found_by, "SPREAD_INCLUDE_DIR/SPREAD_LIB_DIR");
    }
}

#[test]
fn default_prefixes_in_order_with_multiarch_lib_dirs() {
    let first = TempDir::new("first");
    let second = TempDir::new("second");
    // The first has the header only; the second the header and a Debian multiarch lib dir.
    install(first.path(), "lib", &[]);
    install(second.path(), "lib/x86_64-linux-gnu", &["libspread.so"]);
    let env = Env::with_vars(HOST, HOST, &[]);
    let found = find::find(
        &env,
        &hermetic(vec![first.path().into(), second.path().into()]),
    )
    .unwrap();
    assert_eq!(found.lib_dir, second.path().join("lib/x86_64-linux-gnu"));
    assert_eq!(found.found_by, s(second.path()));
}

#[test]
fn a_spread_pc_for_pkg_config() {
    if std::process::Command::new("pkg-config")
        .arg("--version")
        .output()
        .is_err()
    {
        skip(
            "a_spread_pc_for_pkg_config",
            "no pkg-config on this machine",
        );
        return;
    }
    let dir = TempDir::new("pc");
    let prefix = dir.path().join("opt");
    install(&prefix, "lib", &["libspread.so"]);
    let pc_dir = dir.path().join("pkgconfig");
    std::fs::create_dir_all(&pc_dir).unwrap();
    std::fs::write(
        pc_dir.join("spread.pc"),
        format!(
            "prefix={}\nincludedir=${{prefix}}/include\nlibdir=${{prefix}}/lib\n\n\
             Name: spread\nDescription: test\nVersion: 3.17.3\nLibs: -L${{libdir}} -lspread\n\
             Cflags: -I${{includedir}}\n",
            s(&prefix)
        ),
    )
    .unwrap();
    let mut options = hermetic(vec![nowhere()]);
    options.pkg_config = true;
    let env = Env::with_vars(
        HOST,
        HOST,
        &[
            ("PKG_CONFIG_PATH", &s(&pc_dir)),
            ("PKG_CONFIG_LIBDIR", &s(&pc_dir)),
        ],
    );
    let found = find::find(&env, &options).unwrap();
    assert_eq!(found.found_by, "pkg-config spread");
    assert_eq!(found.include_dir, prefix.join("include"));
    assert_eq!(found.lib_dir, prefix.join("lib"));

    // Without the .pc, pkg-config is noted among the places tried.
    let env = Env::with_vars(HOST, HOST, &[("PKG_CONFIG_LIBDIR", &s(dir.path()))]);
    let err = find::find(&env, &options).unwrap_err().to_string();
    assert!(
        err.contains("pkg-config (no spread.pc on its path)"),
        "{err}"
    );
}

/// The failure a build without any C Spread ends with: one paragraph naming the variables
/// to set and what to install.
#[test]
fn nothing_found_is_one_paragraph_saying_what_to_do() {
    let env = Env::with_vars(HOST, HOST, &[]);
    let err = find::find(&env, &hermetic(vec![nowhere(), "/nonexistent/usr".into()])).unwrap_err();
    let text = err.to_string();
    println!("the build's message when nothing is found:\n{text}");
    assert!(matches!(err, Error::NotFound { .. }));
    assert!(!text.contains('\n'), "one paragraph: {text}");
    for needle in [
        "could not find the C Spread 3.17 client library (sp.h and libspread) for target x86_64-unknown-linux-gnu",
        "SPREAD_C_PREFIX (not set)",
        "/nonexistent/spread-sys-test: no /nonexistent/spread-sys-test/include/sp.h",
        "Set SPREAD_C_PREFIX",
        "SPREAD_INCLUDE_DIR and SPREAD_LIB_DIR",
        "X86_64_UNKNOWN_LINUX_GNU_SPREAD_C_PREFIX",
        "SPREAD_STATIC=1",
        "PKG_CONFIG_PATH",
        "build Spread 3.17.3 from its source release",
        "apt-get install libclang-dev",
        "spread-rs needs no C library",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in: {text}");
    }
}

#[test]
fn a_variable_that_is_set_is_authoritative() {
    let dir = TempDir::new("fallback");
    install(dir.path(), "lib", &["libspread.so"]);
    let env = Env::with_vars(
        HOST,
        HOST,
        &[("SPREAD_C_PREFIX", "/nonexistent/spread-sys-test")],
    );
    // A valid default prefix is not taken silently in its place.
    let text = find::find(&env, &hermetic(vec![dir.path().into()]))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(
            "tried: SPREAD_C_PREFIX: no /nonexistent/spread-sys-test/include/sp.h; \
             stopped there because SPREAD_C_PREFIX is set."
        ),
        "{text}"
    );
}

#[test]
fn every_variable_read_is_recorded_for_rerun_if_env_changed() {
    let env = Env::with_vars(HOST, HOST, &[("SPREAD_STATIC", "")]);
    let _ = find::find(&env, &hermetic(vec![nowhere()]));
    let names = env.names_read();
    for name in [
        "SPREAD_SYSROOT",
        "X86_64_UNKNOWN_LINUX_GNU_SPREAD_SYSROOT",
        "SPREAD_C_PREFIX",
        "X86_64_UNKNOWN_LINUX_GNU_SPREAD_C_PREFIX",
        "SPREAD_INCLUDE_DIR",
        "SPREAD_LIB_DIR",
        "SPREAD_STATIC",
        "X86_64_UNKNOWN_LINUX_GNU_SPREAD_STATIC",
        "BINDGEN_EXTRA_CLANG_ARGS_x86_64-unknown-linux-gnu",
        "BINDGEN_EXTRA_CLANG_ARGS",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
    // The prefixed name is tried first, as in openssl-sys.
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert!(pos("X86_64_UNKNOWN_LINUX_GNU_SPREAD_C_PREFIX") < pos("SPREAD_C_PREFIX"));
    // An empty value counts as unset and is not logged as a setting.
    assert!(env.values_read().is_empty(), "{:?}", env.values_read());
}

#[test]
fn a_cross_build_without_sysroot_fails_and_never_uses_host_headers() {
    let host_install = TempDir::new("host");
    install(host_install.path(), "lib", &["libspread.so"]);
    let target = "aarch64-unknown-linux-gnu";
    let env = Env::with_vars(
        target,
        HOST,
        &[("SPREAD_C_PREFIX", &s(host_install.path()))],
    );
    let err = find::find(&env, &Options::new(false)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NoSysroot { .. }), "{text}");
    assert!(!text.contains('\n'));
    for needle in [
        "cross-compiling for aarch64-unknown-linux-gnu on x86_64-unknown-linux-gnu",
        "SPREAD_SYSROOT (or AARCH64_UNKNOWN_LINUX_GNU_SPREAD_SYSROOT)",
        "--sysroot=DIR in BINDGEN_EXTRA_CLANG_ARGS_aarch64-unknown-linux-gnu",
        "The host's /usr/local and /usr are not used",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in: {text}");
    }
}

#[test]
fn a_cross_build_searches_inside_its_sysroot() {
    let sysroot = TempDir::new("sysroot");
    let target = "aarch64-unknown-linux-gnu";
    // Nothing installed in the sysroot yet: the default prefixes tried are inside it.
    let env = Env::with_vars(target, HOST, &[("SPREAD_SYSROOT", &s(sysroot.path()))]);
    let text = find::find(&env, &Options::new(false))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(&format!("{}: no", s(&sysroot.path().join("usr/local")))),
        "{text}"
    );
    assert!(!text.contains("tried: /usr/local"), "{text}");
    assert!(
        text.contains("pkg-config (skipped for a cross build"),
        "{text}"
    );

    install(
        &sysroot.path().join("usr"),
        "lib/aarch64-linux-gnu",
        &["libspread.so"],
    );
    let found = find::find(&env, &Options::new(false)).unwrap();
    assert_eq!(found.include_dir, sysroot.path().join("usr/include"));
    assert_eq!(
        found.lib_dir,
        sysroot.path().join("usr/lib/aarch64-linux-gnu")
    );
    assert_eq!(found.sysroot.as_deref(), Some(sysroot.path()));
}

#[test]
fn the_sysroot_may_come_from_bindgen_extra_clang_args() {
    let target = "armv7-unknown-linux-gnueabihf";
    for (name, value) in [
        (
            "BINDGEN_EXTRA_CLANG_ARGS_armv7-unknown-linux-gnueabihf",
            "-DX --sysroot=/sys/armv7",
        ),
        (
            "BINDGEN_EXTRA_CLANG_ARGS_armv7_unknown_linux_gnueabihf",
            "--sysroot /sys/armv7",
        ),
        ("BINDGEN_EXTRA_CLANG_ARGS", "--sysroot=/sys/armv7"),
    ] {
        let env = Env::with_vars(target, HOST, &[(name, value)]);
        assert_eq!(
            find::sysroot(&env),
            Some(PathBuf::from("/sys/armv7")),
            "{name}"
        );
    }
    assert_eq!(
        find::clang_target("riscv64gc-unknown-linux-gnu"),
        "riscv64-unknown-linux-gnu"
    );
    assert_eq!(find::clang_target(target), target);
}

// bindgen: these need libclang, which CI installs (libclang-dev).

/// Says why `test` did not run: a `SKIPPED:` line, and the same line in the file
/// SPREAD_SKIP_LOG names, from which `cargo xtask ci` lists every skipped test.
fn skip(test: &str, reason: &str) {
    println!("SKIPPED: {test}: {reason}");
    if let Some(log) = std::env::var_os("SPREAD_SKIP_LOG") {
        use std::io::Write;
        let line = format!("{test}: {reason}\n");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log);
        if let Err(e) = file.and_then(|mut f| f.write_all(line.as_bytes())) {
            panic!("{test}: writing the skip to {}: {e}", log.to_string_lossy());
        }
    }
}

fn libclang_or_skip(test: &str) -> bool {
    match clang_sys::load() {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_some() => panic!(
            "{test}: libclang is needed to test bindgen and CI must install it \
             (Debian: apt-get install libclang-dev): {e}"
        ),
        Err(e) => {
            skip(test, &format!("no libclang ({e}); install libclang-dev"));
            false
        }
    }
}

fn found_for(env: &Env, prefix: &Path) -> find::Found {
    install(prefix, "lib", &["libspread.so"]);
    find::find(env, &hermetic(vec![prefix.into()])).unwrap()
}

#[test]
fn bindgen_translates_our_header_for_the_host() {
    if !libclang_or_skip("bindgen_translates_our_header_for_the_host") {
        return;
    }
    let dir = TempDir::new("bindgen");
    let env = Env::with_vars(HOST, HOST, &[]);
    let found = found_for(&env, dir.path());
    let args = spread_sys_build::bindgen::clang_args(&env, &found);
    assert_eq!(args[0], "--target=x86_64-unknown-linux-gnu");
    assert!(args.contains(&format!("-I{}", s(&dir.path().join("include")))));
    let code = spread_sys_build::bindgen::generate(&env, &found, false).unwrap();
    for needle in [
        "pub fn SP_join(mbox: mailbox, group: *const ::core::ffi::c_char) -> ::core::ffi::c_int;",
        "pub fn SP_connect_timeout(",
        "pub const MESSAGE_TOO_LONG: i32 = -17;",
        "pub const SAFE_MESS: i32 = 32;",
        "pub const SPREAD_VERSION: i32 = 51445763;",
        "pub type mailbox = ::core::ffi::c_int;",
        "pub type sp_time = fake_time;",
        "[\"Size of fake_time\"][::core::mem::size_of::<fake_time>() - 16usize]",
    ] {
        assert!(code.contains(needle), "missing {needle:?} in:\n{code}");
    }
    assert!(
        !code.contains("E_init"),
        "the event library leaked in:\n{code}"
    );
}

#[test]
fn bindgen_gets_the_cross_target_and_sysroot() {
    if !libclang_or_skip("bindgen_gets_the_cross_target_and_sysroot") {
        return;
    }
    // i686: a long is 4 bytes, so sp_time is 8; clang must have compiled for the target.
    let sysroot = TempDir::new("sysroot-i686");
    let target = "i686-unknown-linux-gnu";
    let env = Env::with_vars(target, HOST, &[("SPREAD_SYSROOT", &s(sysroot.path()))]);
    let found = found_for(&env, &sysroot.path().join("usr"));
    let args = spread_sys_build::bindgen::clang_args(&env, &found);
    assert_eq!(
        args[..2],
        [
            "--target=i686-unknown-linux-gnu".to_string(),
            format!("--sysroot={}", s(sysroot.path()))
        ]
    );
    let code = spread_sys_build::bindgen::generate(&env, &found, false).unwrap();
    assert!(
        code.contains("[\"Size of fake_time\"][::core::mem::size_of::<fake_time>() - 8usize]"),
        "{code}"
    );
}

#[test]
fn a_header_bindgen_cannot_read_is_one_paragraph() {
    if !libclang_or_skip("a_header_bindgen_cannot_read_is_one_paragraph") {
        return;
    }
    let dir = TempDir::new("broken");
    let env = Env::with_vars(HOST, HOST, &[]);
    let found = found_for(&env, dir.path());
    std::fs::write(
        dir.path().join("include/sp.h"),
        "int SP_join(int mbox, const char *group\n",
    )
    .unwrap();
    let err = spread_sys_build::bindgen::generate(&env, &found, false).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Bindgen { .. }), "{text}");
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.contains("bindgen could not translate")
            && text.contains("--target=x86_64-unknown-linux-gnu"),
        "{text}"
    );
}
