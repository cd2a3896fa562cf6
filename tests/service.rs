//! The daemon as a service manager and an operator's shell meet it: the
//! sd_notify readiness and watchdog protocol (what a systemd unit with
//! `Type=notify` and `WatchdogSec=` uses), JSON log lines, shell
//! completions and man pages. No root needed (in-memory ports).

use std::io::BufRead;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::BIN;

fn tmp(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("rvs-svc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

struct Cleanup(std::path::PathBuf, Option<std::process::Child>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &mut self.1 {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon with memory ports in a fresh directory, ready; stopped and its
/// directory removed when the returned guard drops. With `json_logs` its
/// stderr (JSON lines) comes back, else it is discarded.
fn daemon(
    tag: &str,
    json_logs: bool,
) -> (
    Cleanup,
    std::path::PathBuf,
    Option<std::process::ChildStderr>,
) {
    daemon_with(tag, json_logs, &[])
}

/// [`daemon`] with more daemon arguments.
fn daemon_with(
    tag: &str,
    json_logs: bool,
    extra: &[&str],
) -> (
    Cleanup,
    std::path::PathBuf,
    Option<std::process::ChildStderr>,
) {
    let dir = tmp(tag);
    let mut cmd = Command::new(BIN);
    cmd.args(["daemon", "--test-memory-ports"]).args(extra);
    if json_logs {
        cmd.args(["--log-format", "json"]).env("RUST_LOG", "info");
    }
    cmd.arg("--socket")
        .arg(dir.join("api.sock"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(Stdio::null())
        .stderr(if json_logs {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = common::spawn_ready(&mut cmd, None);
    let err = child.stderr.take();
    let sock = dir.join("api.sock");
    (Cleanup(dir, Some(child)), sock, err)
}

#[test]
fn under_a_watchdog_the_daemon_says_ready_then_pings_while_its_workers_answer() {
    let dir = tmp("wd");
    let notify = dir.join("notify");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // WATCHDOG_PID must be the daemon's own pid: exec from a shell keeps it.
    let script = format!(
        "WATCHDOG_PID=$$ exec {BIN} daemon --test-memory-ports --workers 2 \
         --socket {d}/api.sock --state-dir {d}/state",
        d = dir.display()
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Cleanup(dir.clone(), Some(child));
    let mut buf = [0u8; 512];
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("a notification within 20 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(recv().lines().any(|l| l == "READY=1"));
    // Pings at half the interval: several within a second.
    let t = Instant::now();
    let mut pings = 0;
    while t.elapsed() < Duration::from_secs(1) {
        if recv().lines().any(|l| l == "WATCHDOG=1") {
            pings += 1;
        }
    }
    assert!(pings >= 3, "{pings} watchdog pings in a second");
    // SIGTERM: it says it is stopping.
    let c = guard.1.take().unwrap();
    let pid = c.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut stopping = false;
    for _ in 0..20 {
        if recv().lines().any(|l| l == "STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1");
    guard.1 = Some(c);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (_guard, _sock, err) = daemon("json", true);
    let err = err.unwrap();
    let mut lines = std::io::BufReader::new(err).lines();
    let mut seen = 0;
    for l in lines.by_ref().take(2) {
        let l = l.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{v}"
        );
        seen += 1;
    }
    assert_eq!(seen, 2);
}

#[test]
fn completions_are_valid_shell_and_man_pages_cover_every_command() {
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(
        script.contains("rvswitch") && script.contains("daemon"),
        "{script}"
    );
    let dir = tmp("man");
    let _guard = Cleanup(dir.clone(), None);
    let file = dir.join("rvswitch.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    assert!(
        Command::new(BIN)
            .arg("man")
            .arg(&dir)
            .status()
            .unwrap()
            .success()
    );
    for page in [
        "rvswitch.1",
        "rvswitch-daemon.1",
        "rvswitch-ctl.1",
        "rvswitch-lab.1",
    ] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
    let daemon = std::fs::read_to_string(dir.join("rvswitch-daemon.1")).unwrap();
    assert!(daemon.contains("log\\-format"), "options documented");
}

/// `GET /metrics` parsed by the Prometheus project's own Python client
/// (Debian's python3-prometheus-client, its OpenMetrics parser, which is
/// strict: a counter's samples must be `<family>_total`, the text must end
/// in `# EOF`): every family has the right type and labels, and the values
/// are the ones the API reports.
#[test]
fn metrics_parse_with_the_prometheus_client_parser_and_match_the_api() {
    let have = Command::new("/usr/bin/python3")
        .args(["-c", "import prometheus_client.openmetrics.parser"])
        .status()
        .is_ok_and(|s| s.success());
    let ready = match have {
        true => Ok(()),
        false => Err("needs python3-prometheus-client".to_string()),
    };
    if !common::run_or_skip("metrics_parse_with_the_prometheus_client_parser", ready) {
        return;
    }
    let (guard, sock, _) = daemon("metrics", false);
    let dir = guard.0.clone();
    common::ctl_ok(&sock, &["domain", "add", "bd-m"]);
    for p in ["pm1", "pm2"] {
        common::ctl_ok(
            &sock,
            &["port", "add", p, "--kind", "tap", "--domain", "bd-m"],
        );
    }
    let out = Command::new("curl")
        .args(["-s", "-i", "--unix-socket"])
        .arg(&sock)
        .arg("http://rvswitch/metrics")
        .output()
        .expect("curl is installed");
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let file = dir.join("metrics.txt");
    std::fs::write(&file, body).unwrap();
    // The parser prints one line per sample: name, labels, value.
    let script = r#"
import sys, json
from prometheus_client.openmetrics.parser import text_string_to_metric_families
fams = {}
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    fams[f.name] = {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(fams))
"#;
    let parsed = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "the Prometheus parser refused it: {}\n{body}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let fams: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
    assert_eq!(
        fams["rvswitch_port_rx_packets"]["type"], "counter",
        "{fams}"
    );
    assert_eq!(fams["rvswitch_domain_fdb_entries"]["type"], "gauge");
    let sample = |fam: &str, labels: serde_json::Value| -> Option<f64> {
        fams[fam]["samples"]
            .as_array()?
            .iter()
            .find(|s| {
                labels
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| s[1][k] == *v)
            })
            .and_then(|s| s[2].as_f64())
    };
    assert_eq!(
        sample("rvswitch_ports", serde_json::json!({"state": "up"})),
        Some(2.0)
    );
    assert_eq!(
        sample(
            "rvswitch_domain_ports",
            serde_json::json!({"domain": "bd-m"})
        ),
        Some(2.0)
    );
    for p in ["pm1", "pm2"] {
        assert_eq!(
            sample("rvswitch_port_rx_packets", serde_json::json!({"port": p})),
            Some(0.0),
            "{p}"
        );
    }
    // Every drop reason of ctl stats is a label value.
    let stats = common::ctl_json(&sock, &["stats"]);
    let reasons = stats["ports"][0]["drops"].as_object().unwrap();
    for r in reasons.keys() {
        assert!(
            sample("rvswitch_port_drops", serde_json::json!({"reason": r})).is_some(),
            "reason {r} missing"
        );
    }
}

/// Docker's words work as aliases: `ls`, `create`, `inspect`, `rm`.
#[test]
fn ctl_takes_dockers_words() {
    let (_guard, sock, _) = daemon("words", false);
    common::ctl_ok(&sock, &["domain", "create", "bd-w"]);
    common::ctl_ok(
        &sock,
        &["port", "create", "pw", "--kind", "tap", "--domain", "bd-w"],
    );
    let ls = common::ctl_json(&sock, &["port", "ls"]);
    assert_eq!(ls[0]["name"], "pw", "{ls}");
    common::ctl_ok(
        &sock,
        &["domain", "create", "bd-g", "--gateway", "10.7.0.1/24"],
    );
    common::ctl_ok(
        &sock,
        &[
            "route",
            "add",
            "10.8.0.0/16",
            "--via",
            "10.7.0.254",
            "--domain",
            "bd-g",
        ],
    );
    let tree = common::ctl_ok(&sock, &["show"]);
    assert_eq!(
        tree,
        "domain bd-g (worker 0, 0 FDB entries)\n    gateway 10.7.0.1/24 vlan 1\n\
         domain bd-w (worker 0, 0 FDB entries)\n    port pw tap access 1 up\n\
         routes\n    table 0 10.8.0.0/16 via 10.7.0.254 domain bd-g\n"
    );
    common::ctl_ok(&sock, &["route", "del", "10.8.0.0/16"]);
    common::ctl_ok(&sock, &["domain", "rm", "bd-g"]);
    let one = common::ctl_json(&sock, &["domain", "inspect", "bd-w"]);
    assert_eq!(one["ports"], serde_json::json!(["pw"]), "{one}");
    common::ctl_ok(&sock, &["port", "rm", "pw"]);
    common::ctl_ok(&sock, &["domain", "rm", "bd-w"]);
    assert_eq!(
        common::ctl_json(&sock, &["domain", "ls"]),
        serde_json::json!([])
    );
}

/// The log filter changes while the daemon runs: debug lines appear, a bad
/// filter is refused and the old one stays.
#[test]
fn the_log_filter_changes_at_run_time() {
    let (_guard, sock, err) = daemon("loglevel", true);
    let err = err.unwrap();
    assert_eq!(common::ctl_ok(&sock, &["log"]).trim(), "info");
    let bad = common::ctl_raw(&sock, &["log", "rvswitch=loud["]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("HTTP 400"),
        "{bad:?}"
    );
    assert_eq!(common::ctl_ok(&sock, &["log"]).trim(), "info");
    common::ctl_ok(&sock, &["log", "info,rvswitch::daemon=debug"]);
    common::ctl_ok(&sock, &["domain", "ls"]);
    // Read the log on a thread: a missing line must fail, not hang.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    while let Ok(l) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        if v["level"] == "DEBUG"
            && v["fields"]["message"] == "API request"
            && v["fields"]["path"] == "/v1/domains"
        {
            seen = true;
            break;
        }
    }
    assert!(seen, "no debug line after the filter changed");
}

/// A free TCP port on loopback (bound, then released for the daemon).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `--metrics-listen`: Prometheus scrapes `/metrics` over TCP, and that
/// address serves nothing else — no route of the control API, read or
/// write, answers there, and a write sent there changes nothing.
#[test]
fn metrics_listen_serves_metrics_over_tcp_and_nothing_of_the_control_api() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (_guard, sock, _) = daemon_with("mtcp", false, &["--metrics-listen", &addr]);
    common::ctl_ok(&sock, &["domain", "add", "bd-t"]);
    let curl = |args: &[&str], url: &str| -> String {
        let out = Command::new("curl")
            .args(["-s", "-i", "--max-time", "10"])
            .args(args)
            .arg(url)
            .output()
            .expect("curl is installed");
        String::from_utf8(out.stdout).unwrap()
    };
    let m = curl(&[], &format!("http://{addr}/metrics"));
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(
        m.contains("rvswitch_domain_ports{domain=\"bd-t\",worker=\"0\"} 0"),
        "the metrics of this daemon: {m}"
    );
    assert!(m.trim_end().ends_with("# EOF"), "{m}");
    let r = curl(&[], &format!("http://{addr}/v1/domains"));
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let w = curl(
        &[
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"name":"bd-x"}"#,
        ],
        &format!("http://{addr}/v1/domains"),
    );
    assert!(w.starts_with("HTTP/1.1 404"), "{w}");
    let listed = common::ctl_ok(&sock, &["domain", "list"]);
    assert!(
        !listed.contains("bd-x"),
        "a write over TCP changed nothing: {listed}"
    );
    let p = curl(&["-X", "POST"], &format!("http://{addr}/metrics"));
    assert!(p.starts_with("HTTP/1.1 405"), "{p}");
}

/// A metrics address that cannot be bound stops the daemon at start with
/// the address in the message, before it says it is ready.
#[test]
fn an_unbindable_metrics_address_is_refused_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tmp("mbad");
    let out = Command::new(BIN)
        .args(["daemon", "--test-memory-ports", "--metrics-listen", &addr])
        .arg("--socket")
        .arg(dir.join("api.sock"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .unwrap();
    let _cleanup = Cleanup(dir, None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("--metrics-listen {addr}")), "{err}");
    drop(taken);
}

/// `ctl -q` and `ctl --format`, Docker's two habits for scripts: names one
/// a line; a Go template per item, with `json` and a `table` header; a bad
/// template is refused before anything is sent.
#[test]
fn ctl_quiet_and_format_print_what_scripts_read() {
    let (_guard, sock, _) = daemon("fmt", false);
    assert_eq!(
        common::ctl_ok(&sock, &["domain", "create", "bd-a", "-q"]),
        "bd-a\n"
    );
    common::ctl_ok(&sock, &["domain", "create", "bd-b"]);
    common::ctl_ok(
        &sock,
        &["port", "add", "pq1", "--kind", "tap", "--domain", "bd-a"],
    );
    assert_eq!(
        common::ctl_ok(&sock, &["domain", "ls", "-q"]),
        "bd-a\nbd-b\n"
    );
    assert_eq!(common::ctl_ok(&sock, &["port", "ls", "--quiet"]), "pq1\n");
    assert_eq!(
        common::ctl_ok(
            &sock,
            &["domain", "ls", "--format", "{{.name}}={{json .ports}}"]
        ),
        "bd-a=[\"pq1\"]\nbd-b=[]\n"
    );
    let t = common::ctl_ok(
        &sock,
        &[
            "domain",
            "ls",
            "--format",
            "table {{.name}}\\t{{len .ports}}",
        ],
    );
    let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        [vec!["NAME", "PORTS"], vec!["bd-a", "1"], vec!["bd-b", "0"]]
    );
    assert_eq!(
        common::ctl_ok(
            &sock,
            &["domain", "inspect", "bd-a", "--format", "{{.aging_secs}}"]
        ),
        "300\n"
    );
    let bad = common::ctl_raw(&sock, &["domain", "create", "bd-c", "--format", "{{.name"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--format"));
    assert_eq!(
        common::ctl_ok(&sock, &["domain", "ls", "-q"]),
        "bd-a\nbd-b\n",
        "a refused format sent nothing"
    );
}
