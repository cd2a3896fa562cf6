//! The README's main command: `rvswitch quickstart` deploys a real two-host
//! lab, prints an all-ok check grid, and leaves nothing behind — both when
//! run with `--once` and when stopped with Ctrl-C (SIGINT).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_drivers::testutil::{root_or_skip, unique};

const BIN: &str = env!("CARGO_BIN_EXE_rvswitch");

fn leftovers() -> Vec<String> {
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let links = Command::new("ip").args(["-br", "link"]).output().unwrap();
    String::from_utf8_lossy(&ns.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&links.stdout).lines())
        .filter(|l| l.contains("rvs-qs") || l.starts_with("qsa0") || l.starts_with("qsb0"))
        .map(str::to_string)
        .collect()
}

// Both tests use the quickstart's fixed names, so they run one after the
// other inside this test binary.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn quickstart_once_prints_an_all_ok_grid_and_cleans_up() {
    if !root_or_skip("quickstart_once_prints_an_all_ok_grid_and_cleans_up") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sock = std::env::temp_dir().join(format!("{}.sock", unique("rvqs")));
    let out = Command::new(BIN)
        .args(["quickstart", "--once", "--socket"])
        .arg(&sock)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let grid: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("rvs-qs-"))
        .collect();
    assert_eq!(grid.len(), 2, "{stdout}");
    assert!(
        grid.iter().all(|l| l.contains("ok") && !l.contains("FAIL")),
        "{stdout}"
    );
    assert!(stdout.contains("all checks passed"));
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
    assert!(!sock.exists(), "socket left behind");
}

#[test]
fn quickstart_stays_up_until_ctrl_c_then_cleans_up() {
    if !root_or_skip("quickstart_stays_up_until_ctrl_c_then_cleans_up") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sock = std::env::temp_dir().join(format!("{}.sock", unique("rvqs")));
    let mut child = Command::new(BIN)
        .args(["quickstart", "--socket"])
        .arg(&sock)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let t = Instant::now();
    loop {
        let l = lines.next().expect("quickstart ended early").unwrap();
        if l.contains("Ctrl-C tears it down") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "lab did not come up");
    }
    // The lab is usable while it is up.
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            "rvs-qs-a",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "10.99.0.2",
        ])
        .status()
        .unwrap();
    assert!(ping.success());
    let ctl = Command::new(BIN)
        .args(["ctl", "--socket"])
        .arg(&sock)
        .args(["fdb", "show", "quickstart"])
        .output()
        .unwrap();
    assert!(
        ctl.status.success(),
        "{}",
        String::from_utf8_lossy(&ctl.stderr)
    );
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "quickstart exited with {st}");
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
}
