//! Network namespaces: run code inside one, and create or delete named ones
//! the way `ip netns add|del` does (a bind mount of a namespace file under
//! `/run/netns/NAME`), so `ip netns` and Docker-style paths
//! (`/var/run/docker/netns/<id>`) both work.
//!
//! Owns: the `setns`/`unshare`/`mount` syscalls of the whole project (all
//! through `nix`'s safe wrappers; other modules enter a namespace only by
//! calling here). Never: changes the namespace of a caller's thread.
//! Everything that enters a namespace does so on a fresh thread that ends
//! with the call.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

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
    in_netns_path(&netns_path(ns), f)
}

/// Like [`in_netns`] with the namespace file's path as it is (no lookup
/// under /run/netns).
pub fn in_netns_path<T, F>(path: &Path, f: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let file = File::open(path).map_err(|source| NetnsError::Enter {
        path: path.to_path_buf(),
        op: "open",
        source,
    })?;
    in_netns_fd(file.as_fd(), path, f)
}

/// Like [`in_netns`] with an open namespace file; `label` names it in errors.
pub fn in_netns_fd<T, F>(fd: BorrowedFd<'_>, label: &Path, f: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("rvs-netns".into())
            .spawn_scoped(s, move || -> Result<T, NetnsError> {
                // Only this short-lived thread changes namespace.
                nix::sched::setns(fd, CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Enter {
                    path: label.to_path_buf(),
                    op: "setns",
                    source: e.into(),
                })?;
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

/// `mount(src, dst, fstype, flags, NULL)` with errno as `io::Error`.
fn mount(src: &Path, dst: &Path, fstype: Option<&str>, flags: MsFlags) -> io::Result<()> {
    nix::mount::mount(Some(src), dst, fstype, flags, None::<&str>).map_err(io::Error::from)
}

/// Make /run/netns a shared mount point, as iproute2 does, so namespaces
/// mounted under it show up in other mount namespaces too. Best effort.
fn prepare_run_dir() -> io::Result<()> {
    let dir = Path::new(NETNS_RUN_DIR);
    std::fs::create_dir_all(dir)?;
    let none = Path::new("none");
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    if mount(none, dir, None, shared).is_ok() {
        return Ok(());
    }
    // Not a mount point yet: bind it onto itself, then mark it shared.
    mount(dir, dir, Some("none"), MsFlags::MS_BIND | MsFlags::MS_REC)?;
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
            // Detaches only this thread (which ends right after) into a new
            // network namespace.
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| ("unshare(CLONE_NEWNET)", e.into()))?;
            // thread-self, not self: /proc/self names the main thread,
            // which is still in the old namespace.
            let src = Path::new("/proc/thread-self/ns/net");
            mount(src, &thread_path, Some("none"), MsFlags::MS_BIND).map_err(|e| ("bind mount", e))
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
    match nix::mount::umount2(&path, MntFlags::MNT_DETACH) {
        // Not mounted (EINVAL) still lets us remove a stale file.
        Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => return Err(err("umount", e.into())),
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

    /// `ip netns`' view of a namespace made and removed here: it is listed
    /// while it exists, code run in it sees only its own `lo`, and after
    /// deletion it is gone from the listing and the mount point is removed.
    #[test]
    fn named_namespace_is_created_entered_and_deleted() {
        use crate::testutil::{root_or_skip, unique};
        if !root_or_skip("named_namespace_is_created_entered_and_deleted") {
            return;
        }
        struct Cleanup(String);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = delete_named(&self.0);
            }
        }
        let name = unique("rvsns");
        let path = create_named(&name).unwrap();
        let guard = Cleanup(name.clone());
        assert_eq!(path, netns_path(&name));
        let listed = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&listed.stdout).contains(&name));
        let ours = netns_inode(Path::new("/proc/thread-self/ns/net")).unwrap();
        let (inside, links) = in_netns(&name, || {
            let ino = netns_inode(Path::new("/proc/thread-self/ns/net")).unwrap();
            let links: Vec<String> = std::fs::read_dir("/proc/thread-self/net/dev_snmp6")
                .map(|d| {
                    d.map(|e| e.unwrap().file_name().into_string().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            (ino, links)
        })
        .unwrap();
        assert_eq!(inside, netns_inode(&path).unwrap());
        assert_ne!(inside, ours, "the caller's thread stayed where it was");
        assert_eq!(
            netns_inode(Path::new("/proc/thread-self/ns/net")).unwrap(),
            ours
        );
        if !links.is_empty() {
            assert_eq!(links, vec!["lo".to_string()]);
        }
        drop(guard);
        assert!(!path.exists());
        assert!(delete_named(&name).is_err(), "already gone");
    }

    #[test]
    fn missing_namespace_is_an_error_naming_the_path() {
        let e = in_netns("/nonexistent/rvs-ns", || ()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/rvs-ns"), "{e}");
    }
}
