//! What the integration tests share: running `rvswitch ctl` against a
//! daemon's socket and stopping a daemon process cleanly. Each test file
//! uses part of it.
#![allow(dead_code)]

pub mod daemon;
pub mod lan;

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
/// serves (`READY=1` on `NOTIFY_SOCKET`, see `rvswitch::daemon::ready`).
/// Panics, with `log`'s text when given, if it exits first or is not ready
/// within 30 s.
pub fn spawn_ready(cmd: &mut std::process::Command, log: Option<&Path>) -> Child {
    rvswitch::daemon::ready::spawn_ready(cmd, std::time::Duration::from_secs(30)).unwrap_or_else(
        |e| {
            let text = log
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .unwrap_or_default();
            panic!("daemon: {e}: {text}")
        },
    )
}

/// Whether test `test` may run: `Ok` runs; `Err(why)` prints SKIP with the
/// reason and returns false, or fails the test under `RVS_TEST_STRICT=1`
/// (as in CI, where every dependency is installed).
pub fn run_or_skip(test: &str, ready: Result<(), String>) -> bool {
    match ready {
        Ok(()) => true,
        Err(why) => {
            if std::env::var("RVS_TEST_STRICT").as_deref() == Ok("1") {
                panic!("{test}: {why}, and RVS_TEST_STRICT=1 forbids skipping");
            }
            eprintln!("SKIP {test}: {why}");
            false
        }
    }
}

/// Whether a test that uses the Docker engine can run: root (see
/// `root_or_skip`), a dockerd answering, and the test image
/// (`scripts/docker-image`, built once per test process). Skips with the
/// reason otherwise (a failure under RVS_TEST_STRICT=1).
pub fn docker_or_skip(test: &str) -> bool {
    if !rvs_drivers::testutil::root_or_skip(test) {
        return false;
    }
    static READY: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    let ready = READY.get_or_init(|| {
        match Command::new("docker").arg("info").output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => return Err(format!("needs a running dockerd: {}", text(&o.stderr))),
            Err(e) => return Err(format!("needs the docker CLI: {e}")),
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/docker-image");
        let o = Command::new(&script)
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        if !o.status.success() {
            return Err(format!(
                "scripts/docker-image failed: {} {}",
                text(&o.stdout),
                text(&o.stderr)
            ));
        }
        Ok(())
    });
    run_or_skip(test, ready.clone())
}
