//! Network namespaces: run code inside one, and create or delete named ones
//! the way `ip netns add|del` does (a bind mount of a namespace file under
//! `/run/netns/NAME`), so `ip netns` and Docker-style paths
//! (`/var/run/docker/netns/<id>`) both work.
//!
//! Owns: the `setns`/`unshare`/`mount` syscalls. Never: changes the
//! namespace of a caller's thread. Everything that enters a namespace does
//! so on a fresh thread that ends with the call.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where `ip netns` keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Why a namespace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("enter netns {path}: {op} failed: {source}")]
    Enter {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("create netns {name}: {op} failed: {source}")]
    Create {
        name: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("delete netns {name}: {op} failed: {source}")]
    Delete {
        name: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("netns name {0:?} is not usable: 1 to 64 characters, no '/', not '.' or '..'")]
    BadName(String),
    #[error("thread for netns {0} could not be spawned: {1}")]
    Spawn(PathBuf, #[source] io::Error),
}

/// The file of a namespace given by name (`/run/netns/NAME`) or by path
/// (anything containing a '/', e.g. `/var/run/docker/netns/1a2b`).
pub fn netns_path(name_or_path: &str) -> PathBuf {
    if name_or_path.contains('/') {
        PathBuf::from(name_or_path)
    } else {
        Path::new(NETNS_RUN_DIR).join(name_or_path)
    }
}

/// Run `f` on a fresh thread that has entered the network namespace at
/// `path` (a name under /run/netns or a path, see [`netns_path`]). Sockets
/// `f` opens belong to that namespace and stay there when returned. The
/// calling thread never changes namespace. A panic in `f` is re-raised here.
pub fn in_netns<T, F>(ns: &str, f: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let path = netns_path(ns);
    let file = File::open(&path).map_err(|source| NetnsError::Enter {
        path: path.clone(),
        op: "open",
        source,
    })?;
    in_netns_fd(file.as_fd(), &path, f)
}

/// Like [`in_netns`] with an open namespace file; `label` names it in errors.
pub fn in_netns_fd<T, F>(fd: BorrowedFd<'_>, label: &Path, f: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let raw = fd.as_raw_fd();
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("rvs-netns".into())
            .spawn_scoped(s, move || -> Result<T, NetnsError> {
                // SAFETY: `raw` is an open namespace fd borrowed for the whole
                // scope (the caller's BorrowedFd outlives this thread), and
                // setns only changes this short-lived thread's namespace.
                let rc = unsafe { libc::setns(raw, libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(NetnsError::Enter {
                        path: label.to_path_buf(),
                        op: "setns",
                        source: io::Error::last_os_error(),
                    });
                }
                Ok(f())
            })
            .map_err(|e| NetnsError::Spawn(label.to_path_buf(), e))?;
        match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn check_name(name: &str) -> Result<(), NetnsError> {
    if name.is_empty() || name.len() > 64 || name.contains('/') || name == "." || name == ".." {
        Err(NetnsError::BadName(name.to_string()))
    } else {
        Ok(())
    }
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("paths we build have no NUL")
}

/// `mount(src, dst, fstype, flags, NULL)` with errno as `io::Error`.
fn mount(src: &Path, dst: &Path, fstype: Option<&str>, flags: libc::c_ulong) -> io::Result<()> {
    let (s, d) = (cstr(src), cstr(dst));
    let t = fstype.map(|t| CString::new(t).expect("literal"));
    let tp = t.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
    // SAFETY: every pointer is a NUL-terminated string that lives across the
    // call (or null, which mount(2) accepts for fstype), and data is null.
    let rc = unsafe { libc::mount(s.as_ptr(), d.as_ptr(), tp, flags, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Make /run/netns a shared mount point, as iproute2 does, so namespaces
/// mounted under it show up in other mount namespaces too. Best effort.
fn prepare_run_dir() -> io::Result<()> {
    let dir = Path::new(NETNS_RUN_DIR);
    std::fs::create_dir_all(dir)?;
    let none = Path::new("none");
    let shared = libc::MS_SHARED | libc::MS_REC;
    if mount(none, dir, None, shared).is_ok() {
        return Ok(());
    }
    // Not a mount point yet: bind it onto itself, then mark it shared.
    mount(dir, dir, Some("none"), libc::MS_BIND | libc::MS_REC)?;
    mount(none, dir, None, shared)
}

/// Create a named namespace like `ip netns add NAME`: a new network
/// namespace (with only `lo`, down) bind-mounted on `/run/netns/NAME`.
/// Returns its path.
pub fn create_named(name: &str) -> Result<PathBuf, NetnsError> {
    check_name(name)?;
    let err = |op, source| NetnsError::Create {
        name: name.to_string(),
        op,
        source,
    };
    // A failure here only costs visibility in other mount namespaces.
    let _ = prepare_run_dir();
    let path = netns_path(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| err("create mount point", e))?;
    let thread_path = path.clone();
    let made = std::thread::Builder::new()
        .name("rvs-netns-add".into())
        .spawn(move || -> Result<(), (&'static str, io::Error)> {
            // SAFETY: unshare takes no pointers; it detaches only this
            // thread (which ends right after) into a new network namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(("unshare(CLONE_NEWNET)", io::Error::last_os_error()));
            }
            // thread-self, not self: /proc/self names the main thread,
            // which is still in the old namespace.
            let src = Path::new("/proc/thread-self/ns/net");
            mount(src, &thread_path, Some("none"), libc::MS_BIND).map_err(|e| ("bind mount", e))
        })
        .map_err(|e| err("spawn thread", e))?
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    if let Err((op, e)) = made {
        let _ = std::fs::remove_file(&path);
        return Err(err(op, e));
    }
    Ok(path)
}

/// Delete a named namespace like `ip netns del NAME`: unmount and remove
/// its file. The namespace itself goes away with its last user; links in
/// it are destroyed or returned to the initial namespace by the kernel.
pub fn delete_named(name: &str) -> Result<(), NetnsError> {
    check_name(name)?;
    let path = netns_path(name);
    let err = |op, source| NetnsError::Delete {
        name: name.to_string(),
        op,
        source,
    };
    let c = cstr(&path);
    // SAFETY: `c` is a NUL-terminated path that lives across the call.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = io::Error::last_os_error();
        // Not mounted (EINVAL) still lets us remove a stale file.
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(err("umount", e));
        }
    }
    std::fs::remove_file(&path).map_err(|e| err("remove mount point", e))
}

/// The inode number of a namespace file, which identifies the namespace
/// (two paths name the same namespace iff their inodes match).
pub fn netns_inode(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)?.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(netns_path("blue"), PathBuf::from("/run/netns/blue"));
        assert_eq!(
            netns_path("/var/run/docker/netns/1a2b"),
            PathBuf::from("/var/run/docker/netns/1a2b")
        );
        assert!(check_name("..").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("ok-name").is_ok());
    }

    #[test]
    fn missing_namespace_is_an_error_naming_the_path() {
        let e = in_netns("/nonexistent/rvs-ns", || ()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/rvs-ns"), "{e}");
    }
}
