//! The build script's view of its environment: every variable is read through [`Env`], so each
//! one read gets a `cargo:rerun-if-env-changed` line and tests can hand in a map instead of
//! the process environment.

use std::cell::RefCell;
use std::ffi::OsString;
use std::path::PathBuf;

/// Where variables come from: the process environment, or a map in tests.
type Lookup = Box<dyn Fn(&str) -> Option<OsString>>;

/// Variables, the target and the host, with a log of every name read.
pub struct Env {
    target: String,
    host: String,
    lookup: Lookup,
    read: RefCell<Vec<(String, Option<OsString>)>>,
}

impl Env {
    /// The environment cargo gives a build script (`TARGET` and `HOST` must be set).
    pub fn from_build_script() -> Env {
        let required = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("{name} is not set: run this as cargo's build script"))
        };
        Env::new(&required("TARGET"), &required("HOST"), |name| {
            std::env::var_os(name)
        })
    }

    /// An environment for `target`, built on `host`, whose variables come from `lookup`.
    pub fn new(
        target: &str,
        host: &str,
        lookup: impl Fn(&str) -> Option<OsString> + 'static,
    ) -> Env {
        Env {
            target: target.to_string(),
            host: host.to_string(),
            lookup: Box::new(lookup),
            read: RefCell::new(Vec::new()),
        }
    }

    /// An environment holding exactly `vars` (for tests).
    #[allow(dead_code)] // the build script itself reads the process environment
    pub fn with_vars(target: &str, host: &str, vars: &[(&str, &str)]) -> Env {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Env::new(target, host, move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Building for another machine than the one running the build.
    pub fn is_cross(&self) -> bool {
        self.target != self.host
    }

    /// `<TARGET>_NAME` (the target upper-cased, `-` as `_`), else `NAME`; an empty value
    /// counts as unset. This is the one way the build reads its own settings.
    pub fn get(&self, name: &str) -> Option<OsString> {
        let prefixed = format!(
            "{}_{name}",
            self.target.to_uppercase().replace(['-', '.'], "_")
        );
        self.raw(&prefixed).or_else(|| self.raw(name))
    }

    /// [`Env::get`] as a path.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.get(name).map(PathBuf::from)
    }

    /// [`Env::get`] as a yes/no: `1`, `true`, `yes` and `on` are yes, anything else no.
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.get(name).map(|v| {
            matches!(
                v.to_string_lossy().trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
    }

    /// Exactly `name`, without the target prefix (for variables other tools define).
    pub fn raw(&self, name: &str) -> Option<OsString> {
        let value = (self.lookup)(name).filter(|v| !v.is_empty());
        self.read
            .borrow_mut()
            .push((name.to_string(), value.clone()));
        value
    }

    /// Every name read so far, in order, without repeats: each needs a rerun line.
    pub fn names_read(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (name, _) in self.read.borrow().iter() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// The variables that were set, `NAME = value`, for the build log.
    pub fn values_read(&self) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for (name, value) in self.read.borrow().iter() {
            if let Some(v) = value {
                let line = format!("{name} = {}", v.to_string_lossy());
                if !lines.contains(&line) {
                    lines.push(line);
                }
            }
        }
        lines
    }
}
