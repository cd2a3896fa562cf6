//! What the integration tests share: running `rvswitch ctl` against a
//! daemon's socket and stopping a daemon process cleanly. Each test file
//! uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_rvswitch");

/// `rvswitch ctl --socket SOCKET ARGS`, whatever its status.
pub fn ctl_raw(socket: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("ctl")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

/// `rvswitch ctl` that must succeed: its stdout.
#[track_caller]
pub fn ctl_ok(socket: &Path, args: &[&str]) -> String {
    let o = ctl_raw(socket, args);
    assert!(
        o.status.success(),
        "rvswitch ctl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `rvswitch ctl --json` that must succeed: its JSON.
#[track_caller]
pub fn ctl_json(socket: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ctl_ok(socket, &a)).unwrap()
}

/// SIGTERM a daemon and wait for it.
pub fn terminate(mut child: Child) -> ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap()
}

/// Spawn a daemon (`cmd` is an `rvswitch daemon ...` command, possibly
/// wrapped in `ip netns exec`) and return once the daemon itself says it
/// serves: it sends `READY=1` to `NOTIFY_SOCKET` (the sd_notify protocol)
/// after binding its API and plugin sockets. Panics, with `log`'s text when
/// given, if it exits first or is not ready within 30 s.
pub fn spawn_ready(cmd: &mut std::process::Command, log: Option<&Path>) -> Child {
    use std::os::unix::net::UnixDatagram;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "rvs-notify-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).unwrap();
    struct Unlink(std::path::PathBuf);
    impl Drop for Unlink {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _unlink = Unlink(path.clone());
    // Wake up now and then to notice a daemon that died instead.
    sock.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let mut child = cmd.env("NOTIFY_SOCKET", &path).spawn().unwrap();
    let log_text = || {
        log.map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 1024];
    loop {
        match sock.recv(&mut buf) {
            Ok(n)
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "READY=1") =>
            {
                return child;
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("readiness socket: {e}"),
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "daemon exited with {st} before it was ready: {}",
                log_text()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("daemon not ready within 30 s: {}", log_text());
        }
    }
}
