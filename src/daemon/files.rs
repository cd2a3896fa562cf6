//! The daemon's files: the API and plugin sockets (bound so that they are
//! never reachable with looser permissions, and checked with their
//! directory) and the state directory (0700, its files 0600).
//!
//! Owns: those checks. Never: what is served on the sockets or stored.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::error::DaemonError;
use super::store;

fn sock_err(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> DaemonError {
    let path = path.to_path_buf();
    move |cause| DaemonError::Socket { path, what, cause }
}

/// Bind the API socket so that it is never reachable with looser
/// permissions: bind under a temporary name, chmod 0600, rename into place.
/// A directory we create for it is 0700.
pub(crate) fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, DaemonError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(sock_err(path, "create directory"))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(sock_err(path, "chmod directory"))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp).map_err(sock_err(path, "bind"))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(sock_err(path, "chmod and rename")(e));
    }
    if let Err(why) = check_socket_private(path, dir) {
        let _ = std::fs::remove_file(path);
        return Err(DaemonError::Unsafe {
            path: path.to_path_buf(),
            why,
        });
    }
    Ok(listener)
}

/// The socket in place must be ours and 0600, and its directory must not
/// let anyone else replace it (owned by us or root, and not writable by
/// group or others unless sticky, as /tmp is): whoever reaches the socket
/// controls the whole switch.
fn check_socket_private(path: &Path, dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let me = nix::unistd::geteuid().as_raw();
    let m = std::fs::symlink_metadata(path).map_err(|e| format!("stat: {e}"))?;
    if !m.file_type().is_socket() {
        return Err("is not a socket after binding it".into());
    }
    if m.uid() != me || m.mode() & 0o777 != 0o600 {
        return Err(format!(
            "is owned by uid {} with mode {:o} after binding; want uid {me}, mode 600",
            m.uid(),
            m.mode() & 0o777
        ));
    }
    let d = std::fs::metadata(dir).map_err(|e| format!("stat {}: {e}", dir.display()))?;
    if d.uid() != me && d.uid() != 0 {
        return Err(format!(
            "its directory {} is owned by uid {}, who could replace the socket",
            dir.display(),
            d.uid()
        ));
    }
    let sticky = d.mode() & 0o1000 != 0;
    if d.mode() & 0o022 != 0 && !sticky {
        return Err(format!(
            "its directory {} has mode {:o}: group or others could replace the socket",
            dir.display(),
            d.mode() & 0o777
        ));
    }
    Ok(())
}

/// The state directory holds the whole network configuration: create it
/// 0700, or tighten it to 0700 if it exists with looser permissions. A
/// directory that is not ours alone (another owner, or sticky like /tmp)
/// is refused rather than changed.
pub(crate) fn private_state_dir(dir: &Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let err = |what| {
        let path = dir.to_path_buf();
        move |cause| DaemonError::StateDir { path, what, cause }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err("create"))?;
    let m = std::fs::metadata(dir).map_err(err("stat"))?;
    let mode = m.mode();
    if m.uid() != nix::unistd::geteuid().as_raw() || mode & 0o1000 != 0 {
        return Err(DaemonError::StateDir {
            path: dir.to_path_buf(),
            what: "not the daemon's own directory (another owner, or shared and sticky)",
            cause: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
    }
    if mode & 0o077 != 0 {
        tracing::info!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "state directory tightened to 700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(err("chmod 700"))?;
    }
    Ok(())
}

/// The stores' database files become 0600 (redb creates them with the
/// default 0644).
pub(crate) fn private_state_files(dir: &Path) -> Result<(), DaemonError> {
    for name in [store::STATE_FILE] {
        let path = dir.join(name);
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if m.is_file() && m.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(
                |cause| DaemonError::StateDir {
                    path,
                    what: "chmod 600",
                    cause,
                },
            )?;
        }
    }
    Ok(())
}

/// Refuse to start next to a live daemon on the same socket (checked before
/// anything is opened, so its ports are not touched). A stale socket file
/// is replaced when the new one is renamed into place.
pub(crate) fn check_socket_free(path: &Path) -> Result<(), DaemonError> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(DaemonError::InUse(path.to_path_buf()));
    }
    Ok(())
}
