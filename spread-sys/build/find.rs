//! Finding an installed C Spread 3.17: its `sp.h` and its library.
//!
//! Search order, first match wins:
//!
//! 1. `SPREAD_C_PREFIX`: `include/sp.h` and `lib/` (or `lib64/`, `lib/<multiarch>/`) under it;
//! 2. `SPREAD_INCLUDE_DIR` / `SPREAD_LIB_DIR` (one of them is enough: the other is its
//!    sibling `include` or `lib`);
//! 3. pkg-config, when a `spread.pc` is on its path (its `includedir` and `libdir`);
//! 4. `/usr/local`, then `/usr` — inside the sysroot for a cross build, never the host's.
//!
//! A variable that is set is authoritative: when it points at no Spread, the search stops
//! there and says so, instead of silently taking another installation. Every variable may
//! carry the target's prefix (`X86_64_UNKNOWN_LINUX_GNU_SPREAD_C_PREFIX`), see [`Env::get`].
//! `SPREAD_STATIC=1` wants `libspread.a`, `SPREAD_STATIC=0` the shared library; unset, the
//! shared library is taken when there is one. The `thread-safe` feature asks for `libtspread`.

use super::env::Env;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How the library is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    Dylib,
    Static,
}

impl LinkKind {
    /// The word cargo's `rustc-link-lib` takes.
    pub fn cargo_kind(self) -> &'static str {
        match self {
            LinkKind::Dylib => "dylib",
            LinkKind::Static => "static",
        }
    }
}

/// What to look for.
#[derive(Clone, Debug)]
pub struct Options {
    /// Link `libtspread` (Spread's thread-safe build) instead of `libspread`.
    pub thread_safe: bool,
    /// Prefixes searched last; `None` means `/usr/local` and `/usr` (inside the sysroot when
    /// there is one).
    pub default_prefixes: Option<Vec<PathBuf>>,
    /// Ask pkg-config for a `spread.pc`.
    pub pkg_config: bool,
}

impl Options {
    pub fn new(thread_safe: bool) -> Options {
        Options {
            thread_safe,
            default_prefixes: None,
            pkg_config: true,
        }
    }

    /// The C library's name: `spread` or `tspread`.
    pub fn lib_name(&self) -> &'static str {
        if self.thread_safe {
            "tspread"
        } else {
            "spread"
        }
    }
}

/// An installation of C Spread that has both the header and the library asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The directory holding `sp.h` (and `sp_func.h`, `sp_events.h`).
    pub include_dir: PathBuf,
    /// The directory holding the library.
    pub lib_dir: PathBuf,
    /// `spread` or `tspread`.
    pub lib_name: String,
    pub link: LinkKind,
    /// The installation prefix, when the search went by one.
    pub prefix: Option<PathBuf>,
    /// What found it: a variable's name, `pkg-config` or a default prefix.
    pub found_by: String,
    /// `SPREAD_VERSION` of the header, when it can be read.
    pub version: Option<(u32, u32, u32)>,
    /// The Rust target and the triple clang is given for it.
    pub target: String,
    pub clang_target: String,
    /// The target's sysroot, for clang and the default prefixes.
    pub sysroot: Option<PathBuf>,
}

impl Found {
    pub fn header(&self) -> PathBuf {
        self.include_dir.join("sp.h")
    }
}

/// Why the build cannot go on. `Display` is one paragraph saying what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No installation was found; `tried` says where the search looked and what was missing.
    NotFound {
        target: String,
        lib_name: String,
        tried: Vec<String>,
    },
    /// A cross build without the target's sysroot.
    NoSysroot { target: String, host: String },
    /// libclang could not be loaded, so bindgen cannot run.
    NoLibclang { header: PathBuf, detail: String },
    /// bindgen ran and failed.
    Bindgen {
        header: PathBuf,
        target: String,
        clang_args: Vec<String>,
        detail: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound {
                target,
                lib_name,
                tried,
            } => write!(
                f,
                "spread-sys: could not find the C Spread 3.17 client library (sp.h and lib{lib_name}) \
                 for target {target}; tried: {tried}. Set SPREAD_C_PREFIX to the prefix Spread 3.17 \
                 was installed in (the directory holding include/sp.h and lib/lib{lib_name}.so or \
                 lib/lib{lib_name}.a), or set SPREAD_INCLUDE_DIR and SPREAD_LIB_DIR to those two \
                 directories; each variable may also be given with the target's prefix \
                 ({prefix}_SPREAD_C_PREFIX), SPREAD_STATIC=1 links lib{lib_name}.a, and a spread.pc on \
                 PKG_CONFIG_PATH is used too. Spread is not packaged by most distributions: build \
                 Spread 3.17.3 from its source release and install it (./configure && make && make \
                 install puts it in /usr/local, which is searched by default); reading sp.h also \
                 needs libclang (Debian/Ubuntu: apt-get install libclang-dev). Without a C Spread, \
                 leave spread-sys out of the build: the pure-Rust client spread-rs needs no C library.",
                tried = tried.join("; "),
                prefix = env_prefix(target),
            ),
            Error::NoSysroot { target, host } => write!(
                f,
                "spread-sys: cross-compiling for {target} on {host} needs the target's sysroot, so \
                 that bindgen's clang reads the target's headers and Spread is searched for inside \
                 it, never on this machine: set SPREAD_SYSROOT (or {prefix}_SPREAD_SYSROOT) to it, or \
                 pass --sysroot=DIR in BINDGEN_EXTRA_CLANG_ARGS_{target}; SPREAD_C_PREFIX, or \
                 SPREAD_INCLUDE_DIR and SPREAD_LIB_DIR, may then name a Spread 3.17 built for \
                 {target} outside the sysroot. The host's /usr/local and /usr are not used for a \
                 cross build.",
                prefix = env_prefix(target),
            ),
            Error::NoLibclang { header, detail } => write!(
                f,
                "spread-sys: bindgen needs libclang to read {} and none could be loaded ({detail}). \
                 Install it (Debian/Ubuntu: apt-get install libclang-dev; Fedora: dnf install \
                 clang-devel; macOS: xcode-select --install) or set LIBCLANG_PATH to the directory \
                 holding libclang.so.",
                header.display()
            ),
            Error::Bindgen {
                header,
                target,
                clang_args,
                detail,
            } => write!(
                f,
                "spread-sys: bindgen could not translate {} for {target} (clang arguments: {}): \
                 {detail}. Check that this is the sp.h of Spread 3.17 and, for a cross build, that \
                 the sysroot holds the target's C headers.",
                header.display(),
                clang_args.join(" ")
            ),
        }
    }
}

impl std::error::Error for Error {}

/// `x86_64-unknown-linux-gnu` as a variable prefix: `X86_64_UNKNOWN_LINUX_GNU`.
pub fn env_prefix(target: &str) -> String {
    target.to_uppercase().replace(['-', '.'], "_")
}

/// The triple clang knows for a Rust target (Rust's names differ for a few).
pub fn clang_target(rust_target: &str) -> String {
    let mut parts: Vec<String> = rust_target.split('-').map(str::to_string).collect();
    if let Some(arch) = parts.first_mut() {
        if arch.starts_with("riscv64") {
            *arch = "riscv64".into();
        } else if arch.starts_with("riscv32") {
            *arch = "riscv32".into();
        }
    }
    if rust_target.ends_with("-apple-ios-sim") {
        parts.pop();
        parts.push("simulator".into());
        return format!("{}-apple-ios-simulator", parts[0]);
    }
    parts.join("-")
}

/// `BINDGEN_EXTRA_CLANG_ARGS` as bindgen reads it: `_<target>`, `_<target_with_underscores>`,
/// then plain. Split on whitespace.
pub fn bindgen_extra_clang_args(env: &Env) -> Vec<String> {
    let target = env.target().to_string();
    [
        format!("BINDGEN_EXTRA_CLANG_ARGS_{target}"),
        format!("BINDGEN_EXTRA_CLANG_ARGS_{}", target.replace('-', "_")),
        "BINDGEN_EXTRA_CLANG_ARGS".to_string(),
    ]
    .iter()
    .find_map(|name| env.raw(name))
    .map(|v| {
        v.to_string_lossy()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

/// The target's sysroot: `SPREAD_SYSROOT`, else a `--sysroot` in the target's
/// `BINDGEN_EXTRA_CLANG_ARGS`.
pub fn sysroot(env: &Env) -> Option<PathBuf> {
    if let Some(s) = env.path("SPREAD_SYSROOT") {
        return Some(s);
    }
    let args = bindgen_extra_clang_args(env);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if let Some(dir) = arg.strip_prefix("--sysroot=") {
            return Some(PathBuf::from(dir));
        }
        if arg == "--sysroot" || arg == "-isysroot" {
            return it.next().map(PathBuf::from);
        }
    }
    None
}

/// Looks for an installation as [the module](self) describes.
pub fn find(env: &Env, options: &Options) -> Result<Found, Error> {
    let sysroot = sysroot(env);
    if env.is_cross() && sysroot.is_none() {
        return Err(Error::NoSysroot {
            target: env.target().into(),
            host: env.host().into(),
        });
    }
    let wants_static = env.flag("SPREAD_STATIC");
    let search = Search {
        env,
        options,
        wants_static,
        sysroot: sysroot.clone(),
    };
    let mut tried = Vec::new();
    let result = search.run(&mut tried);
    match result {
        Some(found) => Ok(found),
        None => Err(Error::NotFound {
            target: env.target().into(),
            lib_name: options.lib_name().into(),
            tried,
        }),
    }
}

struct Search<'a> {
    env: &'a Env,
    options: &'a Options,
    wants_static: Option<bool>,
    sysroot: Option<PathBuf>,
}

impl Search<'_> {
    /// The search; each place looked at adds a line to `tried`.
    fn run(&self, tried: &mut Vec<String>) -> Option<Found> {
        // 1. SPREAD_C_PREFIX, authoritative when set.
        if let Some(prefix) = self.env.path("SPREAD_C_PREFIX") {
            let found = self.at_prefix(&prefix, "SPREAD_C_PREFIX", tried);
            if found.is_none() {
                tried.push("stopped there because SPREAD_C_PREFIX is set".into());
            }
            return found;
        }
        tried.push("SPREAD_C_PREFIX (not set)".into());

        // 2. SPREAD_INCLUDE_DIR / SPREAD_LIB_DIR, authoritative when either is set.
        let include = self.env.path("SPREAD_INCLUDE_DIR");
        let lib = self.env.path("SPREAD_LIB_DIR");
        if include.is_some() || lib.is_some() {
            let include_dir = include
                .clone()
                .or_else(|| lib.as_ref().map(|l| sibling(l, "include")));
            let lib_dirs = match &lib {
                Some(l) => vec![l.clone()],
                None => include
                    .as_ref()
                    .map(|i| vec![sibling(i, "lib")])
                    .unwrap_or_default(),
            };
            let by = "SPREAD_INCLUDE_DIR/SPREAD_LIB_DIR";
            let found = self.check(include_dir.as_deref()?, &lib_dirs, None, by, tried);
            if found.is_none() {
                tried.push(format!("stopped there because {by} is set"));
            }
            return found;
        }
        tried.push("SPREAD_INCLUDE_DIR and SPREAD_LIB_DIR (not set)".into());

        // 3. pkg-config.
        if self.options.pkg_config {
            if let Some(found) = self.pkg_config(tried) {
                return Some(found);
            }
        }

        // 4. The default prefixes.
        let defaults = match (&self.options.default_prefixes, &self.sysroot) {
            (Some(list), _) => list.clone(),
            (None, Some(root)) => vec![root.join("usr/local"), root.join("usr")],
            (None, None) => vec![PathBuf::from("/usr/local"), PathBuf::from("/usr")],
        };
        for prefix in defaults {
            let by = prefix.display().to_string();
            if let Some(found) = self.at_prefix(&prefix, &by, tried) {
                return Some(found);
            }
        }
        None
    }

    fn at_prefix(&self, prefix: &Path, by: &str, tried: &mut Vec<String>) -> Option<Found> {
        let mut lib_dirs = vec![prefix.join("lib"), prefix.join("lib64")];
        if let Some(multiarch) = multiarch(self.env.target()) {
            lib_dirs.push(prefix.join("lib").join(multiarch));
        }
        self.check(&prefix.join("include"), &lib_dirs, Some(prefix), by, tried)
    }

    /// Whether `include_dir` has sp.h and one of `lib_dirs` the library wanted.
    fn check(
        &self,
        include_dir: &Path,
        lib_dirs: &[PathBuf],
        prefix: Option<&Path>,
        by: &str,
        tried: &mut Vec<String>,
    ) -> Option<Found> {
        let header = include_dir.join("sp.h");
        if !header.is_file() {
            tried.push(format!("{by}: no {}", header.display()));
            return None;
        }
        let name = self.options.lib_name();
        let files = lib_files(self.env.target(), name);
        let wanted: Vec<(LinkKind, &str)> = match self.wants_static {
            Some(true) => vec![(LinkKind::Static, files.1.as_str())],
            Some(false) => vec![(LinkKind::Dylib, files.0.as_str())],
            None => vec![
                (LinkKind::Dylib, files.0.as_str()),
                (LinkKind::Static, files.1.as_str()),
            ],
        };
        for (kind, file) in &wanted {
            if let Some(dir) = lib_dirs.iter().find(|d| d.join(file).is_file()) {
                return Some(Found {
                    include_dir: include_dir.to_path_buf(),
                    lib_dir: dir.clone(),
                    lib_name: name.into(),
                    link: *kind,
                    prefix: prefix.map(Path::to_path_buf),
                    found_by: by.into(),
                    version: std::fs::read_to_string(&header)
                        .ok()
                        .and_then(|text| header_version(&text)),
                    target: self.env.target().into(),
                    clang_target: clang_target(self.env.target()),
                    sysroot: self.sysroot.clone(),
                });
            }
        }
        let names: Vec<&str> = wanted.iter().map(|(_, f)| *f).collect();
        let dirs: Vec<String> = lib_dirs.iter().map(|d| d.display().to_string()).collect();
        tried.push(format!(
            "{by}: {} but no {} in {}",
            header.display(),
            names.join(" or "),
            dirs.join(", ")
        ));
        None
    }

    /// Asks `pkg-config` (or `$PKG_CONFIG`) for `spread`'s includedir and libdir, passing it
    /// the pkg-config variables as this build sees them.
    fn pkg_config(&self, tried: &mut Vec<String>) -> Option<Found> {
        let env = self.env;
        let allowed = !env.is_cross()
            || env.get("PKG_CONFIG_SYSROOT_DIR").is_some()
            || env.get("PKG_CONFIG_ALLOW_CROSS").is_some();
        if !allowed {
            tried.push(
                "pkg-config (skipped for a cross build without PKG_CONFIG_SYSROOT_DIR)".into(),
            );
            return None;
        }
        let program = env.get("PKG_CONFIG").unwrap_or_else(|| "pkg-config".into());
        let passed = [
            "PKG_CONFIG_PATH",
            "PKG_CONFIG_LIBDIR",
            "PKG_CONFIG_SYSROOT_DIR",
        ]
        .map(|name| (name, env.get(name)));
        let query = |variable: &str| -> Result<String, String> {
            let mut cmd = Command::new(&program);
            cmd.arg(format!("--variable={variable}")).arg("spread");
            for (name, value) in &passed {
                match value {
                    Some(v) => cmd.env(name, v),
                    None => cmd.env_remove(name),
                };
            }
            match cmd.output() {
                Ok(out) if out.status.success() => {
                    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
                }
                Ok(_) => Err("no spread.pc on its path".into()),
                Err(e) => Err(format!("{} not runnable: {e}", program.to_string_lossy())),
            }
        };
        let dirs = query("includedir").and_then(|i| query("libdir").map(|l| (i, l)));
        match dirs {
            Ok((include, lib)) if !include.is_empty() && !lib.is_empty() => {
                let lib = PathBuf::from(lib);
                self.check(
                    Path::new(&include),
                    &[lib],
                    None,
                    "pkg-config spread",
                    tried,
                )
            }
            Ok(_) => {
                tried.push("pkg-config: spread.pc has no includedir or libdir".into());
                None
            }
            Err(why) => {
                tried.push(format!("pkg-config ({why})"));
                None
            }
        }
    }
}

/// `/x/include` → `/x/lib` (and back).
fn sibling(dir: &Path, name: &str) -> PathBuf {
    dir.parent().unwrap_or(dir).join(name)
}

/// The shared and static file names of library `name` on `target`.
fn lib_files(target: &str, name: &str) -> (String, String) {
    if target.contains("-windows") {
        (format!("{name}.dll.lib"), format!("{name}.lib"))
    } else if target.contains("-apple-") {
        (format!("lib{name}.dylib"), format!("lib{name}.a"))
    } else {
        (format!("lib{name}.so"), format!("lib{name}.a"))
    }
}

/// Debian's multiarch directory for a Linux target: `x86_64-linux-gnu`.
fn multiarch(target: &str) -> Option<String> {
    let parts: Vec<&str> = target.split('-').collect();
    if parts.len() < 4 || parts[2] != "linux" {
        return None;
    }
    let arch = match parts[0] {
        "i586" | "i686" => "i386",
        a if a.starts_with("armv7") || a == "arm" => "arm",
        a if a.starts_with("riscv64") => "riscv64",
        a => a,
    };
    Some(format!("{arch}-linux-{}", parts[3]))
}

/// `SPREAD_VERSION` of an sp.h: `#define SPREAD_VERSION ( (3 << 24) | ( 17 << 16) | 3 )`.
pub fn header_version(text: &str) -> Option<(u32, u32, u32)> {
    let line = text.lines().find(|l| {
        let mut words = l.split_whitespace();
        words.next() == Some("#define") && words.next() == Some("SPREAD_VERSION")
    })?;
    let numbers: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    match numbers.as_slice() {
        [major, 24, minor, 16, patch] => Some((*major, *minor, *patch)),
        _ => None,
    }
}
