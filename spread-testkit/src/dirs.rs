//! Scratch directories for daemons' configs, sockets and logs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A private scratch directory, removed on drop — kept when the thread is panicking or
/// `SPREAD_TEST_KEEP` is set, so the daemons' logs can be read after a failure.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty directory whose name carries `tag` and this process's id.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "spread-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("SPREAD_TEST_KEEP").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lets a C daemon that runs as nobody read `dir` and its files, and create its socket
/// `/tmp/<port>` (the temporary directory must be world-writable and sticky for that).
pub fn make_world_readable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o644));
        }
    }
    let _ = std::fs::set_permissions(
        std::env::temp_dir(),
        std::fs::Permissions::from_mode(0o1777),
    );
}
