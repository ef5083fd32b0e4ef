//! Creating the local (Unix) socket safely.
//!
//! 3.17 deletes whatever sits at `/tmp/<port>` and binds there, which lets a local user
//! point that path elsewhere (CVE-2006-3118) and lets a second daemon steal the socket of a
//! live one. We never follow or delete anything but a stale socket:
//! * nothing there: bind;
//! * a socket that accepts connections: another daemon is alive, refuse to start;
//! * a socket nobody listens on: a leftover of a crashed daemon, remove it and bind;
//! * anything else (a link, a file, a directory): refuse, and say what is there.
//!
//! The socket is made mode 0666 like 3.17's, so any local user may connect; access is then
//! decided by the auth methods (put it in a directory with tighter permissions to restrict).

use mio::net::UnixListener;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LocalSocketError {
    #[error("{path}: a daemon is already listening on this local socket")]
    InUse { path: PathBuf },
    #[error("{path}: exists and is not a socket ({what}); refusing to remove or follow it")]
    NotASocket { path: PathBuf, what: &'static str },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// A bound local socket and the identity of its file, to remove it only while it is ours.
pub struct LocalSocket {
    pub listener: UnixListener,
    pub path: PathBuf,
    inode: (u64, u64),
}

impl LocalSocket {
    /// On shutdown: removes the socket file, unless another daemon has replaced it.
    pub fn remove(&self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.inode {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

pub fn bind_local_socket(path: &Path) -> Result<LocalSocket, LocalSocketError> {
    let io_err = |source| LocalSocketError::Io {
        path: path.to_owned(),
        source,
    };
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
        Ok(meta) => {
            let ft = meta.file_type();
            if !ft.is_socket() {
                let what = if ft.is_symlink() {
                    "a symbolic link"
                } else if ft.is_dir() {
                    "a directory"
                } else {
                    "a file"
                };
                return Err(LocalSocketError::NotASocket {
                    path: path.to_owned(),
                    what,
                });
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(LocalSocketError::InUse {
                    path: path.to_owned(),
                });
            }
            fs::remove_file(path).map_err(io_err)?;
        }
    }
    // bind(2) never follows a link: if something appeared since the check, it fails.
    let listener = UnixListener::bind(path).map_err(io_err)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o666)).map_err(io_err)?;
    let meta = fs::symlink_metadata(path).map_err(io_err)?;
    Ok(LocalSocket {
        listener,
        path: path.to_owned(),
        inode: (meta.dev(), meta.ino()),
    })
}
