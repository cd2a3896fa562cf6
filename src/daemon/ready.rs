//! Starting a daemon and knowing when it serves: the caller's side of the
//! readiness notification the daemon sends (`READY=1` on `NOTIFY_SOCKET`,
//! the sd_notify protocol systemd's `Type=notify` uses). The lab tool and
//! the tests start daemons with it instead of polling their sockets.
//!
//! Owns: the notification socket's life (a datagram socket under the temp
//! directory, removed when done) and the wait. Never: what the daemon does.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    #[error("readiness socket {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("start: {0}")]
    Spawn(std::io::Error),
    #[error("exited ({0}) before it was ready")]
    Exited(ExitStatus),
    #[error("not ready within {0:?}")]
    Timeout(Duration),
}

/// Spawn `cmd` (an `rvswitch daemon ...`, possibly wrapped in `ip netns
/// exec`: a path-named socket reaches across namespaces) with
/// `NOTIFY_SOCKET` set, and return once it sends `READY=1`. A daemon that
/// exits first, or is not ready within `within`, is an error (a late one
/// is killed).
pub fn spawn_ready(cmd: &mut Command, within: Duration) -> Result<Child, ReadyError> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "rvs-notify-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    let serr = |source| ReadyError::Socket {
        path: path.clone(),
        source,
    };
    let sock = UnixDatagram::bind(&path).map_err(serr)?;
    struct Unlink(PathBuf);
    impl Drop for Unlink {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _unlink = Unlink(path.clone());
    // Wake now and then to notice a daemon that died instead.
    sock.set_read_timeout(Some(Duration::from_millis(250)))
        .map_err(serr)?;
    let mut child = cmd
        .env("NOTIFY_SOCKET", &path)
        .spawn()
        .map_err(ReadyError::Spawn)?;
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 1024];
    loop {
        match sock.recv(&mut buf) {
            Ok(n)
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "READY=1") =>
            {
                return Ok(child);
            }
            Ok(_) => {}
            // A signal to the waiting process (EINTR) is no answer either.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(serr(e));
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(ReadyError::Exited(st));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ReadyError::Timeout(within));
        }
    }
}
