//! End-to-end tests of the control API and `rvswitch ctl`: the real binary
//! (with the hidden `--test-memory-ports` flag) for lifecycle, restart and
//! CLI tests, and an in-process daemon where a test must inject frames into
//! its memory ports. Each test has its own socket and state directory,
//! removed on drop (also when the test fails).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_drivers::testutil::{Link, root_or_skip, unique};
use rvs_switch::{MemoryPort, MemoryPortHandle, PacketPool, Port};
use rvswitch::api::{
    AddRemote, CreatePort, DomainPatch, DomainRecord, GatewaySpec, PortKind, PortPatch,
    RouteRecord, StaticEntry, StormSpec, TraceRequest, VlanSpec,
};
use rvswitch::client::{Client, Reply};
use rvswitch::daemon::DaemonArgs;
use rvswitch::{PortFactory, PortSpec};
use serde::Serialize;
use serde_json::{Value, json};

mod common;
use common::BIN;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!("rvs-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn socket(&self) -> PathBuf {
        self.0.join("run").join("api.sock")
    }
    fn state(&self) -> PathBuf {
        self.0.join("state")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn wait_ready(socket: &Path, mut alive: impl FnMut() -> bool) -> Client {
    let c = Client::new(socket).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = c.get("/v1/domains")
            && r.status == 200
        {
            return c;
        }
        assert!(alive(), "daemon exited before it answered");
        assert!(
            Instant::now() < deadline,
            "daemon did not answer on {socket:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The real binary.
struct BinDaemon {
    child: Option<Child>,
    socket: PathBuf,
    state: PathBuf,
    client: Client,
}

impl BinDaemon {
    fn start(dir: &TempDir) -> BinDaemon {
        Self::spawn(dir, &["--test-memory-ports"])
    }

    /// With memory ports and more daemon options.
    fn start_with(dir: &TempDir, args: &[&str]) -> BinDaemon {
        let mut all = vec!["--test-memory-ports"];
        all.extend_from_slice(args);
        Self::spawn(dir, &all)
    }

    /// With the real back ends (TAP, AF_XDP, AF_PACKET): root only.
    fn start_real(dir: &TempDir) -> BinDaemon {
        Self::spawn(dir, &[])
    }

    fn spawn(dir: &TempDir, extra: &[&str]) -> BinDaemon {
        let child = common::spawn_ready(
            Command::new(BIN)
                .arg("daemon")
                .args(extra)
                .args(["--workers", "2", "--socket"])
                .arg(dir.socket())
                .arg("--state-dir")
                .arg(dir.state())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
            None,
        );
        let client = Client::new(&dir.socket()).unwrap();
        BinDaemon {
            child: Some(child),
            socket: dir.socket(),
            state: dir.state(),
            client,
        }
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let status = child.wait().unwrap();
        assert!(status.success(), "daemon exited with {status}");
        assert!(!self.socket.exists(), "socket left behind");
    }

    /// SIGKILL: no chance to clean up.
    fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for BinDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A daemon in this process, with reachable memory ports.
struct InProc {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    handles: Arc<Mutex<HashMap<String, MemoryPortHandle>>>,
    client: Client,
}

impl InProc {
    fn start(dir: &TempDir, failing: &[&str]) -> InProc {
        let handles: Arc<Mutex<HashMap<String, MemoryPortHandle>>> = Default::default();
        let fail: HashSet<String> = failing.iter().map(|s| s.to_string()).collect();
        let h2 = handles.clone();
        let factory: PortFactory = Arc::new(move |spec: &PortSpec, _pool: &mut PacketPool| {
            if fail.contains(&spec.name) {
                return Err(rvswitch::spec::OpenError::Failed(format!(
                    "open {}: device vanished",
                    spec.name
                )));
            }
            let (p, h) = MemoryPort::new(&spec.name);
            h2.lock().unwrap().insert(spec.name.clone(), h);
            Ok(Box::new(p) as Box<dyn Port>)
        });
        let args = DaemonArgs {
            socket: dir.socket(),
            state_dir: dir.state(),
            workers: 1,
            worker_rt_priority: None,
            log_format: rvswitch::daemon::LogFormat::Text,
            metrics_listen: None,
            test_memory_ports: false,
            api: Default::default(),
            docker: Default::default(),
            cluster: Default::default(),
            dns: Default::default(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            rvswitch::daemon::run(&args, factory, async {
                let _ = rx.await;
            })
            .unwrap();
        });
        let client = wait_ready(&dir.socket(), || !thread.is_finished());
        InProc {
            stop: Some(tx),
            thread: Some(thread),
            handles,
            client,
        }
    }

    fn port(&self, name: &str) -> MemoryPortHandle {
        self.handles.lock().unwrap()[name].clone()
    }

    fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A valid request body, built from the API's own type (the tests keep
/// raw `json!` only for bodies that are malformed on purpose).
fn typed<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

fn static_entry(vid: u16, mac: &str, port: &str) -> StaticEntry {
    StaticEntry {
        vid,
        mac: mac.parse().unwrap(),
        port: port.to_string(),
    }
}

fn call(c: &Client, method: &str, path: &str, body: Option<Value>) -> Reply {
    let m = hyper::Method::from_bytes(method.as_bytes()).unwrap();
    c.request(m, path, body.as_ref()).unwrap()
}

/// Assert a status, and for errors a JSON message containing `needle`.
#[track_caller]
fn expect(r: Reply, status: u16, needle: &str) -> Value {
    assert_eq!(
        r.status,
        status,
        "body: {}",
        String::from_utf8_lossy(&r.body)
    );
    if status >= 400 {
        let msg = r.error_message();
        assert!(
            msg.to_lowercase().contains(&needle.to_lowercase()),
            "error {msg:?} lacks {needle:?}"
        );
    }
    r.json()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_string())
        .collect()
}

fn setup_domain_and_ports(c: &Client) {
    expect(
        call(
            c,
            "POST",
            "/v1/domains",
            Some(typed(&DomainRecord::named("bd0"))),
        ),
        201,
        "",
    );
    for p in ["p1", "p2"] {
        let body = CreatePort {
            vlan: VlanSpec::Access { pvid: 10 },
            ..CreatePort::new(p, PortKind::Tap, "bd0")
        };
        expect(call(c, "POST", "/v1/ports", Some(typed(&body))), 201, "");
    }
}

#[test]
fn domains_happy_path_and_bad_inputs() {
    let dir = TempDir::new("dom");
    let d = BinDaemon::start(&dir);
    let c = &d.client;
    let v = expect(
        call(
            c,
            "POST",
            "/v1/domains",
            Some(typed(&DomainRecord {
                aging_secs: 60,
                vlan_protocol: rvs_switch::VlanProtocol::Dot1Ad,
                ..DomainRecord::named("bd0")
            })),
        ),
        201,
        "",
    );
    assert_eq!(v["aging_secs"], 60);
    assert_eq!(v["vlan_protocol"], "802.1ad");
    expect(
        call(
            c,
            "POST",
            "/v1/domains",
            Some(typed(&DomainRecord::named("bd0"))),
        ),
        409,
        "already exists",
    );
    expect(
        call(c, "POST", "/v1/domains", Some(json!({"name": "bad name"}))),
        400,
        "not usable",
    );
    expect(
        call(
            c,
            "POST",
            "/v1/domains",
            Some(json!({"name": "x", "colour": 1})),
        ),
        400,
        "unknown field",
    );
    expect(
        call(
            c,
            "POST",
            "/v1/domains",
            Some(json!({"name": "x", "vlan_protocol": "isl"})),
        ),
        400,
        "unknown variant",
    );
    expect(
        call(
            c,
            "POST",
            "/v1/domains",
            Some(json!({"name": "x", "aging_secs": 3})),
        ),
        400,
        "aging_secs",
    );
    expect(
        c.request(hyper::Method::POST, "/v1/domains", None).unwrap(),
        400,
        "invalid request body",
    );
    assert_eq!(
        names(&expect(c.get("/v1/domains").unwrap(), 200, "")),
        ["bd0"]
    );
    expect(
        c.get("/v1/domains/nope").unwrap(),
        404,
        "no bridge domain nope",
    );
    let v = expect(c.get("/v1/domains/bd0").unwrap(), 200, "");
    assert_eq!(v["max_macs"], 16384, "bounded by default");
    let v = expect(
        call(
            c,
            "PATCH",
            "/v1/domains/bd0",
            Some(typed(&DomainPatch {
                max_macs: Some(5),
                ..DomainPatch::default()
            })),
        ),
        200,
        "",
    );
    assert_eq!(
        (v["max_macs"].as_u64(), v["aging_secs"].as_u64()),
        (Some(5), Some(60))
    );
    expect(
        call(c, "PATCH", "/v1/domains/bd0", Some(json!({"name": "x"}))),
        400,
        "unknown field",
    );
    expect(
        call(
            c,
            "PATCH",
            "/v1/domains/bd0",
            Some(json!({"aging_secs": 2_000_000})),
        ),
        400,
        "aging",
    );
    expect(
        call(
            c,
            "PATCH",
            "/v1/domains/nope",
            Some(typed(&DomainPatch::default())),
        ),
        404,
        "nope",
    );
    let v = expect(c.get("/v1/domains/bd0").unwrap(), 200, "");
    assert_eq!(v["max_macs"], 5, "a refused patch changed nothing");
    expect(call(c, "DELETE", "/v1/domains/nope", None), 404, "nope");
    expect(call(c, "DELETE", "/v1/domains/bd0", None), 204, "");
    expect(c.get("/v1/domains/bd0").unwrap(), 404, "bd0");
    expect(c.get("/v1/nothing").unwrap(), 404, "no such resource");
    expect(call(c, "PUT", "/v1/domains", None), 405, "not allowed");
    d.stop();
}

#[test]
fn ports_happy_path_and_bad_inputs() {
    let dir = TempDir::new("port");
    let d = BinDaemon::start(&dir);
    let c = &d.client;
    setup_domain_and_ports(c);
    let v = expect(c.get("/v1/ports/p1").unwrap(), 200, "");
    assert_eq!(
        (v["state"].as_str(), v["domain"].as_str()),
        (Some("up"), Some("bd0"))
    );
    assert_eq!(v["mac_limit"], 8192, "bounded by default");
    assert_eq!(v["vlan"], json!({"mode": "access", "pvid": 10}));
    let p = |body: Value| call(c, "POST", "/v1/ports", Some(body));
    expect(
        p(typed(&CreatePort::new("p1", PortKind::Tap, "bd0"))),
        409,
        "already exists",
    );
    expect(
        p(typed(&CreatePort::new("p3", PortKind::Tap, "zz"))),
        404,
        "no bridge domain zz",
    );
    expect(
        p(
            json!({"name": "p3", "kind": "tap", "domain": "bd0", "vlan": {"mode": "access", "pvid": 4095}}),
        ),
        400,
        "4095",
    );
    expect(
        p(
            json!({"name": "p3", "kind": "tap", "domain": "bd0", "vlan": {"mode": "trunk", "allowed": "1-9999"}}),
        ),
        400,
        "9999",
    );
    expect(
        p(json!({"name": "p3", "kind": "tap", "domain": "bd0", "mtu": 9000})),
        400,
        "unknown field",
    );
    expect(
        p(json!({"name": "p3", "kind": "afxdp", "domain": "bd0"})),
        400,
        "need an iface",
    );
    expect(
        p(
            json!({"name": "p3", "kind": "tap", "domain": "bd0", "options": {"test_fail": "no such device"}}),
        ),
        500,
        "no such device",
    );
    assert_eq!(
        names(&expect(c.get("/v1/ports").unwrap(), 200, "")),
        ["p1", "p2"],
        "failed create stored nothing"
    );
    expect(call(c, "DELETE", "/v1/domains/bd0", None), 409, "in use");
    let patch =
        |name: &str, body: Value| call(c, "PATCH", &format!("/v1/ports/{name}"), Some(body));
    let v = expect(
        patch(
            "p1",
            typed(&PortPatch {
                vlan: Some(VlanSpec::Trunk {
                    allowed: "10,20-30".parse().unwrap(),
                    native: Some(10),
                }),
                storm_control: Some(Some(StormSpec {
                    pps: 100,
                    burst: 10,
                })),
                ..PortPatch::default()
            }),
        ),
        200,
        "",
    );
    assert_eq!(v["vlan"]["allowed"], "10,20-30");
    assert_eq!(v["storm_control"]["pps"], 100);
    let v = expect(
        patch(
            "p1",
            typed(&PortPatch {
                storm_control: Some(None),
                enabled: Some(false),
                ..PortPatch::default()
            }),
        ),
        200,
        "",
    );
    assert!(v["storm_control"].is_null() && v["enabled"] == false);
    expect(
        patch("p1", json!({"vlan": {"mode": "tunnel", "svid": 0}})),
        400,
        "outside",
    );
    let move_to = |domain: &str| {
        typed(&PortPatch {
            domain: Some(domain.into()),
            ..PortPatch::default()
        })
    };
    expect(patch("p1", move_to("zz")), 404, "zz");
    expect(patch("p1", json!({"kind": "afxdp"})), 400, "unknown field");
    expect(
        patch("nope", typed(&PortPatch::default())),
        404,
        "no port nope",
    );
    // A second domain lands on the other worker: a port cannot move there.
    let v = expect(
        call(
            c,
            "POST",
            "/v1/domains",
            Some(typed(&DomainRecord::named("bd1"))),
        ),
        201,
        "",
    );
    assert_eq!(v["worker"], 1, "least loaded worker");
    expect(patch("p1", move_to("bd1")), 409, "another worker");
    expect(call(c, "DELETE", "/v1/ports/p1", None), 204, "");
    expect(call(c, "DELETE", "/v1/ports/p1", None), 404, "p1");
    expect(call(c, "DELETE", "/v1/ports/p2", None), 204, "");
    expect(call(c, "DELETE", "/v1/domains/bd0", None), 204, "");
    d.stop();
}

#[test]
fn fdb_happy_path_and_bad_inputs() {
    let dir = TempDir::new("fdb");
    let d = BinDaemon::start(&dir);
    let c = &d.client;
    setup_domain_and_ports(c);
    expect(
        call(
            c,
            "POST",
            "/v1/domains",
            Some(typed(&DomainRecord::named("bd1"))),
        ),
        201,
        "",
    );
    let add =
        |dom: &str, body: Value| call(c, "POST", &format!("/v1/domains/{dom}/fdb"), Some(body));
    expect(
        add("bd0", typed(&static_entry(10, "02:00:00:00:00:0a", "p1"))),
        201,
        "",
    );
    expect(
        add(
            "bd0",
            json!({"vid": 10, "mac": "02:00:00:00:00:zz", "port": "p1"}),
        ),
        400,
        "invalid MAC",
    );
    expect(
        add(
            "bd0",
            json!({"vid": 4095, "mac": "02:00:00:00:00:0b", "port": "p1"}),
        ),
        400,
        "4095",
    );
    expect(
        add(
            "bd0",
            json!({"vid": 0, "mac": "02:00:00:00:00:0b", "port": "p1"}),
        ),
        400,
        "outside",
    );
    expect(
        add(
            "bd0",
            json!({"vid": 10, "mac": "ff:ff:ff:ff:ff:ff", "port": "p1"}),
        ),
        400,
        "unicast",
    );
    expect(
        add("bd0", typed(&static_entry(20, "02:00:00:00:00:0b", "p1"))),
        400,
        "not a member of VLAN 20",
    );
    expect(
        add("bd0", typed(&static_entry(10, "02:00:00:00:00:0b", "nope"))),
        404,
        "no port nope",
    );
    expect(
        add("zz", typed(&static_entry(10, "02:00:00:00:00:0b", "p1"))),
        404,
        "zz",
    );
    expect(
        add("bd1", typed(&static_entry(10, "02:00:00:00:00:0b", "p1"))),
        409,
        "belongs to bridge domain bd0",
    );
    expect(
        add(
            "bd0",
            json!({"vid": 10, "mac": "02:00:00:00:00:0b", "port": "p1", "x": 1}),
        ),
        400,
        "unknown field",
    );
    let v = expect(c.get("/v1/domains/bd0/fdb").unwrap(), 200, "");
    assert_eq!(
        v,
        json!([{"vid": 10, "mac": "02:00:00:00:00:0a", "port": "p1", "static": true, "age_secs": 0, "damped": false}])
    );
    expect(c.get("/v1/domains/zz/fdb").unwrap(), 404, "zz");
    let flushed = expect(
        call(c, "DELETE", "/v1/domains/bd0/fdb?port=p1&vid=10", None),
        200,
        "",
    );
    assert_eq!(flushed["flushed"], 0, "static entries survive a flush");
    expect(
        call(c, "DELETE", "/v1/domains/bd0/fdb?port=nope", None),
        404,
        "nope",
    );
    expect(
        call(c, "DELETE", "/v1/domains/bd0/fdb?vid=5000", None),
        400,
        "5000",
    );
    expect(
        call(c, "DELETE", "/v1/domains/bd0/fdb?colour=red", None),
        400,
        "unknown field",
    );
    expect(
        call(
            c,
            "DELETE",
            "/v1/domains/bd0/fdb/10/02:00:00:00:00:zz",
            None,
        ),
        400,
        "invalid MAC",
    );
    expect(
        call(
            c,
            "DELETE",
            "/v1/domains/bd0/fdb/4095/02:00:00:00:00:0a",
            None,
        ),
        400,
        "4095",
    );
    expect(
        call(
            c,
            "DELETE",
            "/v1/domains/bd0/fdb/10/02:00:00:00:00:0a",
            None,
        ),
        204,
        "",
    );
    expect(
        call(
            c,
            "DELETE",
            "/v1/domains/bd0/fdb/10/02:00:00:00:00:0a",
            None,
        ),
        404,
        "no FDB entry",
    );
    assert_eq!(
        expect(c.get("/v1/domains/bd0/fdb").unwrap(), 200, ""),
        json!([])
    );
    d.stop();
}

fn frame(src: u8) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[2, 0, 0, 0, 0, src, 0x08, 0x00]);
    f.resize(60, 0x5a);
    f
}

/// A writer that says when the first bytes arrived.
struct Signalling(Vec<u8>, Option<std::sync::mpsc::Sender<()>>);

impl std::io::Write for Signalling {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        if let Some(tx) = self.1.take() {
            let _ = tx.send(());
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stats_trace_and_capture_see_traffic() {
    let dir = TempDir::new("obs");
    let d = InProc::start(&dir, &[]);
    let c = &d.client;
    setup_domain_and_ports(c);
    expect(
        call(c, "POST", "/v1/trace", Some(json!({"count": 0}))),
        400,
        "outside",
    );
    expect(
        call(
            c,
            "POST",
            "/v1/trace",
            Some(typed(&TraceRequest {
                count: 2,
                port: Some("nope".into()),
            })),
        ),
        404,
        "nope",
    );
    expect(
        call(
            c,
            "POST",
            "/v1/trace",
            Some(typed(&TraceRequest {
                count: 2,
                port: Some("p1".into()),
            })),
        ),
        204,
        "",
    );
    expect(
        c.get("/v1/ports/nope/capture?count=1").unwrap(),
        404,
        "nope",
    );
    expect(
        c.get("/v1/ports/p2/capture?count=0").unwrap(),
        400,
        "above 0",
    );
    expect(
        c.get("/v1/ports/p2/capture?count=1&snaplen=9").unwrap(),
        400,
        "unknown field",
    );
    // Capture p2 (where the flood goes) in the background; the pcap header
    // arrives once the capture is installed on the worker.
    let sock = dir.socket();
    let (started_tx, started) = std::sync::mpsc::channel();
    let cap = std::thread::spawn(move || {
        let mut out = Signalling(Vec::new(), Some(started_tx));
        Client::new(&sock)
            .unwrap()
            .download("/v1/ports/p2/capture?count=1&seconds=20", &mut out)
            .unwrap();
        out.0
    });
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("capture started");
    expect(
        c.get("/v1/ports/p2/capture?count=1").unwrap(),
        409,
        "already running",
    );
    d.port("p1").inject(frame(1));
    let pcap = cap.join().unwrap();
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "pcap magic");
    assert_eq!(pcap.len(), 24 + 16 + 60, "one record");
    assert_eq!(&pcap[40..], &frame(1)[..]);
    // The capture copies a frame just before the port transmits it.
    let mut sent = Vec::new();
    wait_for(
        || {
            sent.extend(d.port("p2").take_tx());
            !sent.is_empty()
        },
        "p2 to transmit",
    );
    assert_eq!(sent, vec![frame(1)]);
    let s = expect(c.get("/v1/stats").unwrap(), 200, "");
    assert_eq!(s["ports"][0]["name"], "p1");
    assert_eq!(
        (
            s["ports"][0]["rx_packets"].as_u64(),
            s["ports"][1]["tx_packets"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(s["stages"]["fwd_broadcast"], 1);
    assert_eq!(s["stages"]["learn_new"], 1);
    let p1 = expect(c.get("/v1/ports/p1/stats").unwrap(), 200, "");
    assert_eq!(
        (p1["rx_bytes"].as_u64(), p1["learned"].as_u64()),
        (Some(60), Some(1))
    );
    assert!(
        p1["drops"]
            .as_object()
            .unwrap()
            .contains_key("vlan_not_allowed")
    );
    expect(c.get("/v1/ports/nope/stats").unwrap(), 404, "nope");
    let t = expect(c.get("/v1/trace").unwrap(), 200, "");
    assert_eq!(t.as_array().unwrap().len(), 1, "{t}");
    assert_eq!(
        (t[0]["in_port"].as_str(), t[0]["len"].as_u64()),
        (Some("p1"), Some(60))
    );
    assert!(!t[0]["steps"].as_array().unwrap().is_empty());
    // The learned address shows in the FDB; a flush takes it.
    let f = expect(c.get("/v1/domains/bd0/fdb").unwrap(), 200, "");
    assert_eq!(
        (
            f[0]["mac"].as_str(),
            f[0]["port"].as_str(),
            f[0]["static"].as_bool()
        ),
        (Some("02:00:00:00:00:01"), Some("p1"), Some(false))
    );
    let n = expect(
        call(c, "DELETE", "/v1/domains/bd0/fdb?port=p1", None),
        200,
        "",
    );
    assert_eq!(n["flushed"], 1);
    // A frame from p2 is traced (one left of two) — then no more.
    d.port("p2").inject(frame(2));
    d.port("p1").inject(frame(3));
    wait_for(|| d.port("p2").take_tx().len() == 1, "second flood");
    let t = expect(c.get("/v1/trace").unwrap(), 200, "");
    assert_eq!(
        t.as_array().unwrap().len(),
        2,
        "only p1's packets, two at most: {t}"
    );
    d.stop();
}

/// Domains, ports and statics as lists (counters and ages left out).
fn config_of(c: &Client) -> (Value, Value, Value) {
    let doms = expect(c.get("/v1/domains").unwrap(), 200, "");
    let mut ports = expect(c.get("/v1/ports").unwrap(), 200, "");
    for p in ports.as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("learned");
    }
    let statics = expect(c.get("/v1/domains/bd0/fdb").unwrap(), 200, "");
    (doms, ports, statics)
}

#[test]
fn state_survives_restart_and_kill_9() {
    let dir = TempDir::new("restart");
    let d = BinDaemon::start(&dir);
    let c = &d.client;
    setup_domain_and_ports(c);
    expect(
        call(
            c,
            "POST",
            "/v1/domains",
            Some(typed(&DomainRecord {
                vlan_protocol: rvs_switch::VlanProtocol::Dot1Ad,
                aging_secs: 0,
                ..DomainRecord::named("qinq")
            })),
        ),
        201,
        "",
    );
    let body = json!({"name": "t1", "kind": "afxdp", "iface": "eth9", "queue": 2, "domain": "qinq",
                      "vlan": {"mode": "tunnel", "svid": 100}, "mac_limit": 8, "learning": false});
    expect(call(c, "POST", "/v1/ports", Some(body)), 201, "");
    expect(
        call(
            c,
            "POST",
            "/v1/domains/bd0/fdb",
            Some(typed(&static_entry(10, "02:00:00:00:00:0a", "p1"))),
        ),
        201,
        "",
    );
    let before = config_of(c);
    assert_eq!(before.2.as_array().unwrap().len(), 1);
    let (sock, state) = (d.socket.clone(), d.state.clone());
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(state.join("rvswitch.redb").exists());
    d.stop();

    let d = BinDaemon::start(&dir);
    assert_eq!(config_of(&d.client), before, "clean restart");
    // Acknowledged, then SIGKILL: still there.
    expect(
        call(
            &d.client,
            "POST",
            "/v1/domains/bd0/fdb",
            Some(typed(&static_entry(10, "02:00:00:00:00:0b", "p2"))),
        ),
        201,
        "",
    );
    expect(call(&d.client, "DELETE", "/v1/ports/t1", None), 204, "");
    let before = config_of(&d.client);
    d.kill9();

    let d = BinDaemon::start(&dir);
    let after = config_of(&d.client);
    assert_eq!(after, before, "after kill -9");
    assert_eq!(after.2.as_array().unwrap().len(), 2);
    assert_eq!(names(&after.1), ["p1", "p2"]);
    d.stop();
}

#[test]
fn a_port_that_fails_to_reopen_is_kept_and_reported() {
    let dir = TempDir::new("failed");
    let d = InProc::start(&dir, &[]);
    setup_domain_and_ports(&d.client);
    expect(
        call(
            &d.client,
            "POST",
            "/v1/domains/bd0/fdb",
            Some(typed(&static_entry(10, "02:00:00:00:00:0b", "p2"))),
        ),
        201,
        "",
    );
    d.stop();

    let d = InProc::start(&dir, &["p2"]);
    let c = &d.client;
    let p2 = expect(c.get("/v1/ports/p2").unwrap(), 200, "");
    assert_eq!(p2["state"], "failed");
    assert!(
        p2["error"].as_str().unwrap().contains("device vanished"),
        "{p2}"
    );
    assert_eq!(
        expect(c.get("/v1/ports/p1").unwrap(), 200, "")["state"],
        "up"
    );
    expect(call(c, "DELETE", "/v1/domains/bd0", None), 409, "p2");
    expect(
        call(
            c,
            "POST",
            "/v1/domains/bd0/fdb",
            Some(typed(&static_entry(10, "02:00:00:00:00:0c", "p2"))),
        ),
        409,
        "not attached",
    );
    expect(
        call(
            c,
            "POST",
            "/v1/trace",
            Some(typed(&TraceRequest {
                count: 1,
                port: Some("p2".into()),
            })),
        ),
        409,
        "not attached",
    );
    assert_eq!(
        expect(c.get("/v1/ports/p2/stats").unwrap(), 200, "")["rx_packets"],
        0
    );
    let v = expect(
        call(
            c,
            "PATCH",
            "/v1/ports/p2",
            Some(typed(&PortPatch {
                mac_limit: Some(4),
                ..PortPatch::default()
            })),
        ),
        200,
        "",
    );
    assert_eq!(
        (v["mac_limit"].as_u64(), v["state"].as_str()),
        (Some(4), Some("failed"))
    );
    d.stop();

    // The back end is back: the port, its new setting and its static return.
    let d = InProc::start(&dir, &[]);
    let p2 = expect(d.client.get("/v1/ports/p2").unwrap(), 200, "");
    assert_eq!(
        (p2["state"].as_str(), p2["mac_limit"].as_u64()),
        (Some("up"), Some(4))
    );
    let f = expect(d.client.get("/v1/domains/bd0/fdb").unwrap(), 200, "");
    assert_eq!(
        (f[0]["port"].as_str(), f[0]["static"].as_bool()),
        (Some("p2"), Some(true)),
        "{f}"
    );
    d.stop();
}

/// Every `$ref` in `v` (a `#/...` JSON pointer) points into `doc`.
fn refs_resolve(doc: &Value, v: &Value, at: &str, seen: &mut usize) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref") {
                let r = r.as_str().unwrap_or_else(|| panic!("{at}: $ref {r}"));
                let ptr = r
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("{at}: $ref {r} leaves the document"));
                assert!(
                    doc.pointer(ptr).is_some(),
                    "{at}: $ref {r} resolves to nothing"
                );
                *seen += 1;
            }
            for (k, x) in m {
                refs_resolve(doc, x, &format!("{at}/{k}"), seen);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs_resolve(doc, x, &format!("{at}/{i}"), seen);
            }
        }
        _ => {}
    }
}

/// The document served at `/v1/openapi.json` is generated from the
/// handlers and the API's types; this holds it to the router the daemon
/// really serves: it is valid OpenAPI 3.1, every documented operation is
/// served, and nothing is served that is not documented.
#[test]
fn openapi_document_matches_the_router() {
    let dir = TempDir::new("openapi");
    let d = InProc::start(&dir, &[]);
    let c = &d.client;
    let reply = c.get("/v1/openapi.json").unwrap();
    let text = String::from_utf8(reply.body.clone()).unwrap();
    let doc = expect(reply, 200, "");

    // A valid OpenAPI 3.1 document: it parses as one, every reference in
    // it resolves, and each operation has its own operationId.
    let spec = oas3::from_json(&text).expect("the document is OpenAPI 3.1");
    spec.validate_version()
        .expect("a supported OpenAPI version");
    let mut refs = 0;
    refs_resolve(&doc, &doc, "", &mut refs);
    assert!(
        refs > 50,
        "only {refs} references: is the document generated?"
    );
    let mut ids = HashSet::new();
    for (path, method, op) in spec.operations() {
        let id = op.operation_id.clone().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        assert!(ids.insert(id.clone()), "operationId {id} used twice");
        assert!(op.summary.is_some(), "{method} {path} has no summary");
        op.parameters(&spec).unwrap();
        op.request_body(&spec).unwrap();
        assert!(!op.responses(&spec).is_empty(), "{method} {path}");
    }
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        assert!(
            schema.get("allOf").is_none(),
            "{name}: an allOf of records that deny unknown fields validates nothing"
        );
    }

    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    let mut listed = HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in methods {
            if item.get(m.to_lowercase()).is_some() {
                listed.insert(format!("{m} {path}"));
            }
        }
    }
    // The API's surface, on purpose: a route added or dropped shows here.
    let routes: HashSet<String> = [
        "GET /v1/openapi.json",
        "GET /v1/domains",
        "POST /v1/domains",
        "GET /v1/domains/{name}",
        "PATCH /v1/domains/{name}",
        "DELETE /v1/domains/{name}",
        "GET /v1/domains/{name}/fdb",
        "POST /v1/domains/{name}/fdb",
        "DELETE /v1/domains/{name}/fdb",
        "DELETE /v1/domains/{name}/fdb/{vid}/{mac}",
        "GET /v1/domains/{name}/names",
        "PUT /v1/domains/{name}/names/{host}",
        "DELETE /v1/domains/{name}/names/{host}",
        "GET /v1/domains/{name}/dns",
        "PUT /v1/domains/{name}/dns/{vid}",
        "DELETE /v1/domains/{name}/dns/{vid}",
        "GET /v1/domains/{name}/services",
        "GET /v1/domains/{name}/services/{service}",
        "PUT /v1/domains/{name}/services/{service}",
        "DELETE /v1/domains/{name}/services/{service}",
        "GET /v1/domains/{name}/stp",
        "GET /v1/domains/{name}/parents",
        "POST /v1/domains/{name}/parents",
        "DELETE /v1/domains/{name}/parents/{parent}",
        "GET /v1/ports",
        "POST /v1/ports",
        "GET /v1/ports/{name}",
        "PATCH /v1/ports/{name}",
        "DELETE /v1/ports/{name}",
        "GET /v1/ports/{name}/stats",
        "GET /v1/ports/{name}/remotes",
        "POST /v1/ports/{name}/remotes",
        "DELETE /v1/ports/{name}/remotes/{remote}",
        "GET /v1/ports/{name}/capture",
        "GET /v1/routes",
        "POST /v1/routes",
        "DELETE /v1/routes/{table}/{addr}/{len}",
        "GET /v1/neighbors",
        "GET /v1/cnm/networks",
        "POST /v1/cnm/networks",
        "DELETE /v1/cnm/networks/{name}",
        "POST /v1/cnm/networks/{name}/endpoints",
        "DELETE /v1/cnm/networks/{name}/endpoints/{id}",
        "POST /v1/cnm/networks/{name}/endpoints/{id}/join",
        "GET /v1/cnm/endpoints",
        "GET /v1/cnm/sandboxes",
        "GET /v1/cni/attachments",
        "POST /v1/cni/attachments",
        "GET /v1/cni/attachments/{id}",
        "DELETE /v1/cni/attachments/{id}",
        "GET /v1/cluster",
        "GET /metrics",
        "GET /v1/log",
        "PUT /v1/log",
        "GET /v1/stats",
        "GET /v1/trace",
        "POST /v1/trace",
        "POST /v1/trace/inject",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(listed, routes);

    let concrete = |path: &str| {
        path.replace("{name}", "zz")
            .replace("{vid}", "1")
            .replace("{mac}", "02:00:00:00:00:01")
            .replace("{remote}", "192.0.2.1")
            .replace("{table}", "0")
            .replace("{addr}", "10.0.0.0")
            .replace("{len}", "8")
            .replace("{host}", "web")
            .replace("{id}", "e1")
            .replace("{parent}", "eth0.10")
            .replace("{service}", "web")
    };
    let fallback = |r: &Reply| r.status == 404 && r.error_message() == "no such resource";
    for (path, item) in doc["paths"].as_object().unwrap() {
        let url = concrete(path);
        for m in methods {
            let reply = call(c, m, &url, Some(json!({})));
            if item.get(m.to_lowercase()).is_some() {
                // Documented: served (an unknown name is the handler's
                // 404, not the router's fallback).
                assert_ne!(reply.status, 405, "{m} {path}");
                assert!(!fallback(&reply), "{m} {path} is documented, not routed");
                if path.starts_with("/v1/cnm/") {
                    expect(reply, 404, "start it with --docker");
                }
            } else {
                // Not documented: the router has no such method here.
                expect(reply, 405, "method not allowed");
            }
        }
    }
    // Around the documented paths (their prefixes, one segment more, and
    // some a client might guess) the router serves nothing.
    let mut near: HashSet<String> = ["/", "/v1/", "/v2/domains", "/v1/bridges", "/v1/health"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for path in doc["paths"].as_object().unwrap().keys() {
        let url = concrete(path);
        let segs: Vec<&str> = url.split('/').collect();
        for n in 2..segs.len() {
            near.insert(segs[..n].join("/"));
        }
        near.insert(format!("{url}/x"));
    }
    // A URL that fits a documented template was checked above.
    let fits = |template: &str, url: &str| {
        let (t, u): (Vec<&str>, Vec<&str>) =
            (template.split('/').collect(), url.split('/').collect());
        t.len() == u.len()
            && t.iter()
                .zip(&u)
                .all(|(t, u)| t == u || (t.starts_with('{') && !u.is_empty()))
    };
    let paths = doc["paths"].as_object().unwrap();
    for url in near.iter().filter(|u| !paths.keys().any(|p| fits(p, u))) {
        for m in methods {
            let reply = call(c, m, url, None);
            assert!(
                fallback(&reply),
                "{m} {url} is served but not documented: {}",
                reply.status
            );
        }
    }
    d.stop();
}

use common::{ctl_ok, ctl_raw as ctl};

#[track_caller]
fn ctl_err(sock: &Path, args: &[&str], needle: &str) {
    let o = ctl(sock, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "ctl {args:?} succeeded");
    assert!(
        err.contains(needle),
        "ctl {args:?}: {err:?} lacks {needle:?}"
    );
}

#[test]
fn ctl_drives_the_api() {
    let dir = TempDir::new("ctl");
    let d = BinDaemon::start(&dir);
    let sock = d.socket.clone();
    let s = sock.as_path();
    ctl_ok(s, &["domain", "add", "bd0", "--aging-secs", "120"]);
    ctl_ok(s, &["domain", "set", "bd0", "--max-macs", "50"]);
    ctl_err(s, &["domain", "add", "bd0"], "already exists");
    ctl_ok(
        s,
        &[
            "port", "add", "p1", "--kind", "tap", "--domain", "bd0", "--access", "10",
        ],
    );
    ctl_ok(
        s,
        &[
            "port", "add", "p2", "--kind", "afpacket", "--iface", "veth0", "--domain", "bd0",
            "--trunk", "10,20", "--native", "10",
        ],
    );
    ctl_err(
        s,
        &[
            "port", "add", "p3", "--kind", "tap", "--domain", "bd0", "--access", "4095",
        ],
        "4095",
    );
    ctl_ok(
        s,
        &[
            "port",
            "set",
            "p1",
            "--storm-pps",
            "100",
            "--storm-burst",
            "10",
            "--learning",
            "false",
        ],
    );
    let list = ctl_ok(s, &["port", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("NAME  KIND      IFACE"), "{list}");
    assert!(lines[2].contains("trunk 10,20 native 10"), "{list}");
    let col = lines[0].find("DOMAIN").unwrap();
    assert!(
        lines.iter().skip(1).all(|l| &l[col..col + 3] == "bd0"),
        "aligned: {list}"
    );
    let json: Value = serde_json::from_str(&ctl_ok(s, &["--json", "port", "show", "p1"])).unwrap();
    assert_eq!(
        (
            json["storm_control"]["pps"].as_u64(),
            json["learning"].as_bool()
        ),
        (Some(100), Some(false))
    );
    assert!(ctl_ok(s, &["domain", "show", "bd0"]).contains("p1,p2"));
    assert!(ctl_ok(s, &["domain", "list"]).contains("bd0"));
    ctl_ok(
        s,
        &[
            "fdb",
            "add",
            "bd0",
            "--vid",
            "10",
            "--mac",
            "02:00:00:00:00:0a",
            "--port",
            "p1",
        ],
    );
    ctl_err(
        s,
        &[
            "fdb",
            "add",
            "bd0",
            "--vid",
            "10",
            "--mac",
            "02:00:00:00:00:zz",
            "--port",
            "p1",
        ],
        "invalid MAC",
    );
    assert!(ctl_ok(s, &["fdb", "show", "bd0"]).contains("02:00:00:00:00:0a  p1    static"));
    assert!(ctl_ok(s, &["fdb", "flush", "bd0", "--port", "p1"]).contains("flushed 0"));
    ctl_ok(
        s,
        &[
            "fdb",
            "del",
            "bd0",
            "--vid",
            "10",
            "--mac",
            "02:00:00:00:00:0a",
        ],
    );
    ctl_err(
        s,
        &[
            "fdb",
            "del",
            "bd0",
            "--vid",
            "10",
            "--mac",
            "02:00:00:00:00:0a",
        ],
        "no FDB entry",
    );
    assert!(ctl_ok(s, &["stats"]).starts_with("PORT"));
    assert!(ctl_ok(s, &["stats", "p1"]).contains("rx_packets"));
    ctl_err(s, &["stats", "nope"], "no port nope");
    ctl_ok(s, &["trace", "start", "--count", "5", "--port", "p1"]);
    assert!(ctl_ok(s, &["trace", "show"]).contains("no packets traced"));
    let pcap = dir.0.join("p1.pcap");
    ctl_ok(
        s,
        &[
            "capture",
            "p1",
            "-w",
            pcap.to_str().unwrap(),
            "--seconds",
            "1",
        ],
    );
    assert_eq!(
        std::fs::read(&pcap).unwrap().len(),
        24,
        "header only: a memory port is quiet"
    );
    ctl_err(
        s,
        &["capture", "nope", "-w", pcap.to_str().unwrap()],
        "no port nope",
    );
    ctl_err(s, &["domain", "del", "bd0"], "in use");
    ctl_ok(s, &["port", "del", "p1"]);
    ctl_ok(s, &["port", "del", "p2"]);
    ctl_ok(s, &["domain", "del", "bd0"]);
    d.stop();
    ctl_err(s, &["domain", "list"], "cannot reach the daemon");
}

#[test]
fn socket_is_private_and_not_shared() {
    let dir = TempDir::new("sock");
    let d = BinDaemon::start(&dir);
    let dir_mode = std::fs::metadata(d.socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        dir_mode & 0o777,
        0o700,
        "a directory the daemon creates is private"
    );
    assert_eq!(
        std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let o = Command::new(BIN)
        .args(["daemon", "--test-memory-ports", "--socket"])
        .arg(&d.socket)
        .arg("--state-dir")
        .arg(dir.0.join("other-state"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("another daemon"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    expect(d.client.get("/v1/domains").unwrap(), 200, "");
    d.stop();
}

/// CPU time (user + system, in clock ticks) a process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = s[s.rfind(')').unwrap() + 2..].split(' ').collect();
    // Fields 14 (utime) and 15 (stime), counted from field 3 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn an_idle_daemon_sleeps() {
    let dir = TempDir::new("idle");
    let d = BinDaemon::start(&dir);
    setup_domain_and_ports(&d.client);
    expect(
        call(
            &d.client,
            "POST",
            "/v1/domains",
            Some(typed(&DomainRecord::named("bd1"))),
        ),
        201,
        "",
    );
    let pid = d.child.as_ref().unwrap().id();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    // Two spinning workers would use ~400 ticks (at 100 Hz) in 2 s.
    assert!(used < 20, "idle daemon used {used} ticks in 2 s");
    d.stop();
}

#[test]
fn sigterm_ends_a_running_capture_cleanly() {
    let dir = TempDir::new("term");
    let d = BinDaemon::start(&dir);
    setup_domain_and_ports(&d.client);
    let sock = d.socket.clone();
    let (started_tx, started) = std::sync::mpsc::channel();
    let cap = std::thread::spawn(move || {
        let mut out = Signalling(Vec::new(), Some(started_tx));
        let r = Client::new(&sock)
            .unwrap()
            .download("/v1/ports/p1/capture?seconds=60", &mut out);
        (r.map_err(|e| e.to_string()), out.0)
    });
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("capture started");
    let t = Instant::now();
    d.stop();
    // Well inside the 3 s grace for requests in flight: the capture ended
    // itself rather than being cut off.
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let (r, pcap) = cap.join().unwrap();
    assert_eq!(r, Ok(24), "a complete (empty) pcap");
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
}

#[test]
fn gateways_and_routes_happy_path_and_bad_inputs() {
    let dir = TempDir::new("l3");
    let d = InProc::start(&dir, &[]);
    let c = &d.client;
    let net = |name: &str, gw: Value| json!({"name": name, "gateway": gw});
    // Bad gateways change nothing.
    for (gw, needle) in [
        (json!({"addresses": []}), "at least one address"),
        (json!({"addresses": ["10.0.0.1"]}), "ADDRESS/LENGTH"),
        (json!({"addresses": ["10.0.0.1/33"]}), "0..=32"),
        (json!({"addresses": ["224.0.0.1/24"]}), "not a unicast"),
        (json!({"addresses": ["10.0.0.1/24"], "vid": 4095}), "vlan"),
        (
            json!({"addresses": ["10.0.0.1/24"], "mac": "01:00:5e:00:00:01"}),
            "unicast",
        ),
        (json!({"addresses": ["10.0.0.1/24"], "mtu": 20}), "mtu"),
        (
            json!({"addresses": ["10.0.0.1/24"], "bogus": 1}),
            "unknown field",
        ),
    ] {
        expect(
            call(c, "POST", "/v1/domains", Some(net("n1", gw))),
            400,
            needle,
        );
    }
    expect(
        call(c, "GET", "/v1/domains/n1", None),
        404,
        "no bridge domain",
    );
    let v = expect(
        call(
            c,
            "POST",
            "/v1/domains",
            Some(net(
                "n1",
                json!({"addresses": ["10.0.1.1/24", "fd00:1::1/64"]}),
            )),
        ),
        201,
        "",
    );
    assert_eq!(v["gateway"]["addresses"][1], "fd00:1::1/64");
    expect(
        call(
            c,
            "POST",
            "/v1/domains",
            Some(typed(&DomainRecord::named("n2"))),
        ),
        201,
        "",
    );
    // A route through a domain without a gateway, or with a bad prefix.
    let route = |prefix: &str, via: &str, domain: &str| {
        typed(&RouteRecord {
            table: 0,
            prefix: prefix.to_string(),
            via: Some(via.parse().unwrap()),
            domain: domain.to_string(),
        })
    };
    expect(
        call(
            c,
            "POST",
            "/v1/routes",
            Some(route("172.16.0.0/12", "10.0.2.9", "n2")),
        ),
        409,
        "no gateway",
    );
    expect(
        call(
            c,
            "POST",
            "/v1/routes",
            Some(route("172.16.0.0/12", "10.0.1.9", "nx")),
        ),
        404,
        "no bridge domain",
    );
    expect(
        call(
            c,
            "POST",
            "/v1/routes",
            Some(route("172.16.0.1/12", "10.0.1.9", "n1")),
        ),
        400,
        "host bits",
    );
    expect(
        call(
            c,
            "POST",
            "/v1/routes",
            Some(route("172.16.0.0/12", "fd00::9", "n1")),
        ),
        400,
        "family",
    );
    expect(
        call(
            c,
            "POST",
            "/v1/routes",
            Some(route("172.16.0.0/12", "10.0.1.9", "n1")),
        ),
        201,
        "",
    );
    expect(
        call(
            c,
            "POST",
            "/v1/routes",
            Some(route("172.16.0.0/12", "10.0.1.8", "n1")),
        ),
        409,
        "already exists",
    );
    let routes = expect(call(c, "GET", "/v1/routes", None), 200, "");
    let kinds: Vec<(String, String)> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["prefix"].as_str().unwrap().into(),
                r["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("10.0.1.0/24".into(), "connected".into()),
            ("172.16.0.0/12".into(), "static".into()),
            ("fd00:1::/64".into(), "connected".into()),
        ]
    );
    // The gateway cannot go while a route needs it; the domain neither.
    expect(
        call(
            c,
            "PATCH",
            "/v1/domains/n1",
            Some(typed(&DomainPatch {
                gateway: Some(None),
                ..DomainPatch::default()
            })),
        ),
        409,
        "172.16.0.0/12",
    );
    expect(call(c, "DELETE", "/v1/domains/n1", None), 409, "route");
    expect(
        call(c, "DELETE", "/v1/routes/0/172.16.0.0/12", None),
        204,
        "",
    );
    expect(
        call(c, "DELETE", "/v1/routes/0/172.16.0.0/12", None),
        404,
        "no static route",
    );
    expect(
        call(c, "DELETE", "/v1/routes/x/172.16.0.0/12", None),
        400,
        "table",
    );
    let v = expect(
        call(
            c,
            "PATCH",
            "/v1/domains/n1",
            Some(typed(&DomainPatch {
                gateway: Some(None),
                ..DomainPatch::default()
            })),
        ),
        200,
        "",
    );
    assert!(v.get("gateway").is_none(), "{v}");
    // Gateways and routes come back after a restart.
    expect(
        call(
            c,
            "PATCH",
            "/v1/domains/n2",
            Some(typed(&DomainPatch {
                gateway: Some(Some(GatewaySpec {
                    routing: false,
                    ..GatewaySpec::with_addresses(vec!["10.0.2.1/24".into()])
                })),
                ..DomainPatch::default()
            })),
        ),
        200,
        "",
    );
    expect(
        call(
            c,
            "POST",
            "/v1/routes",
            Some(route("192.168.0.0/16", "10.0.2.9", "n2")),
        ),
        201,
        "",
    );
    d.stop();
    let d = InProc::start(&dir, &[]);
    let c = &d.client;
    let v = expect(call(c, "GET", "/v1/domains/n2", None), 200, "");
    assert_eq!(v["gateway"]["routing"], false);
    let routes = expect(call(c, "GET", "/v1/routes", None), 200, "").to_string();
    assert!(routes.contains("192.168.0.0/16"), "{routes}");
    expect(call(c, "GET", "/v1/neighbors", None), 200, "");
    d.stop();
}

#[test]
fn vxlan_remotes_are_validated_and_stored() {
    let dir = TempDir::new("vx");
    let d = InProc::start(&dir, &[]);
    let c = &d.client;
    setup_domain_and_ports(c);
    let vx = json!({"name": "vx0", "kind": "vxlan", "domain": "bd0",
        "options": {"local": "192.0.2.1", "vni": 100, "remotes": ["192.0.2.2"]}});
    let mut bad = vx.clone();
    bad["iface"] = json!("eth0");
    expect(
        call(c, "POST", "/v1/ports", Some(bad)),
        400,
        "take no iface",
    );
    expect(call(c, "POST", "/v1/ports", Some(vx)), 201, "");
    let add = |body: Value| call(c, "POST", "/v1/ports/vx0/remotes", Some(body));
    expect(
        add(typed(&AddRemote {
            remote: "192.0.2.1".parse().unwrap(),
            mac: None,
        })),
        400,
        "own address",
    );
    expect(add(json!({"remote": "nope"})), 400, "");
    expect(
        add(json!({"remote": "192.0.2.3", "mac": "01:00:00:00:00:01"})),
        400,
        "unicast",
    );
    expect(
        call(
            c,
            "POST",
            "/v1/ports/p1/remotes",
            Some(typed(&AddRemote {
                remote: "192.0.2.3".parse().unwrap(),
                mac: None,
            })),
        ),
        409,
        "vxlan ports",
    );
    expect(call(c, "GET", "/v1/ports/nx/remotes", None), 404, "no port");
    expect(
        add(typed(&AddRemote {
            remote: "192.0.2.3".parse().unwrap(),
            mac: None,
        })),
        201,
        "",
    );
    let v = expect(
        add(typed(&AddRemote {
            remote: "192.0.2.4".parse().unwrap(),
            mac: Some("02:00:00:00:00:09".parse().unwrap()),
        })),
        201,
        "",
    );
    assert_eq!(v["flood"], json!(["192.0.2.2", "192.0.2.3"]));
    assert_eq!(v["static"], json!([["02:00:00:00:00:09", "192.0.2.4"]]));
    expect(
        call(c, "DELETE", "/v1/ports/vx0/remotes/192.0.2.9", None),
        404,
        "no remote",
    );
    expect(
        call(c, "DELETE", "/v1/ports/vx0/remotes/192.0.2.2", None),
        204,
        "",
    );
    d.stop();
    // Stored in the port's options: a restart opens it with them.
    let d = InProc::start(&dir, &[]);
    let v = expect(call(&d.client, "GET", "/v1/ports/vx0", None), 200, "");
    assert_eq!(v["options"]["remotes"], json!(["192.0.2.3"]));
    assert_eq!(
        v["options"]["static"],
        json!({"02:00:00:00:00:09": "192.0.2.4"})
    );
    d.stop();
}

/// Mistakes in a port request that only the back end can see (an interface
/// that does not exist, one already held, an MTU the TAP cannot take) are
/// the client's: 4xx naming the cause, and nothing is stored.
#[test]
fn back_end_refusals_of_a_bad_request_are_4xx() {
    if !root_or_skip("back_end_refusals_of_a_bad_request_are_4xx") {
        return;
    }
    let dir = TempDir::new("drv4xx");
    let d = BinDaemon::start_real(&dir);
    let c = &d.client;
    expect(
        call(
            c,
            "POST",
            "/v1/domains",
            Some(typed(&DomainRecord::named("bd0"))),
        ),
        201,
        "",
    );
    let p = |body: Value| call(c, "POST", "/v1/ports", Some(body));
    for kind in ["afxdp", "afpacket"] {
        expect(
            p(json!({"name": "x1", "kind": kind, "iface": "nosuchif0", "domain": "bd0"})),
            404,
            "interface nosuchif0 does not exist",
        );
    }
    let tap = unique("rvt");
    for mtu in [10u64, 99_999_999] {
        expect(
            p(json!({"name": tap, "kind": "tap", "domain": "bd0", "options": {"mtu": mtu}})),
            400,
            &format!("MTU {mtu} outside"),
        );
    }
    let (veth, _peer) = Link::veth("rva", None);
    expect(
        p(
            json!({"name": "x1", "kind": "afxdp", "iface": veth.name, "domain": "bd0",
                 "options": {"xdp_mode": "generic"}}),
        ),
        201,
        "",
    );
    expect(
        p(
            json!({"name": "x2", "kind": "afxdp", "iface": veth.name, "domain": "bd0",
                 "options": {"xdp_mode": "generic"}}),
        ),
        409,
        &veth.name,
    );
    assert_eq!(
        names(&expect(c.get("/v1/ports").unwrap(), 200, "")),
        ["x1"],
        "refused requests stored nothing"
    );
    expect(call(c, "DELETE", "/v1/ports/x1", None), 204, "");
    d.stop();
}

/// A static route's next hop must be on a subnet of its domain's gateway:
/// anything else could never be resolved by ARP/ND, so every packet would
/// wait for a neighbor that cannot answer. Refused with the reason, and a
/// gateway change that would strand a stored route's next hop is refused too.
#[test]
fn a_route_via_a_next_hop_off_every_subnet_is_refused() {
    let dir = TempDir::new("offlink");
    let d = BinDaemon::start(&dir);
    let (c, s) = (&d.client, &d.socket);
    ctl_ok(s, &["domain", "add", "d1", "--gateway", "10.0.0.1/24"]);
    let route = |via: &str| {
        typed(&RouteRecord {
            table: 0,
            prefix: "10.9.0.0/16".into(),
            via: Some(via.parse().unwrap()),
            domain: "d1".into(),
        })
    };
    for (via, needle) in [
        (
            "192.168.5.5",
            "not on a subnet of bridge domain d1's gateway",
        ),
        ("192.168.5.5", "10.0.0.0/24"),
        ("10.0.0.1", "gateway's own address"),
        ("10.0.1.5", "could never be resolved"),
    ] {
        expect(call(c, "POST", "/v1/routes", Some(route(via))), 400, needle);
    }
    ctl_err(
        s,
        &[
            "route",
            "add",
            "10.9.0.0/16",
            "--via",
            "192.168.5.5",
            "--domain",
            "d1",
        ],
        "HTTP 400",
    );
    let routes = expect(call(c, "GET", "/v1/routes", None), 200, "").to_string();
    assert!(!routes.contains("10.9.0.0/16"), "nothing stored: {routes}");
    // On the gateway's subnet: accepted. Moving the gateway away from it
    // would strand the route, so that is refused while the route exists.
    expect(
        call(c, "POST", "/v1/routes", Some(route("10.0.0.254"))),
        201,
        "",
    );
    expect(
        call(
            c,
            "PATCH",
            "/v1/domains/d1",
            Some(typed(&DomainPatch {
                gateway: Some(Some(GatewaySpec::with_addresses(vec![
                    "10.5.0.1/24".into(),
                ]))),
                ..DomainPatch::default()
            })),
        ),
        409,
        "10.9.0.0/16",
    );
    let v = expect(call(c, "GET", "/v1/domains/d1", None), 200, "");
    assert_eq!(v["gateway"]["addresses"], json!(["10.0.0.1/24"]));
    d.stop();
}

/// An interface carries at most one port, and never the loopback: a second
/// port on an interface (whatever the two kinds) is 409 naming the holder,
/// `lo` is 400, and nothing is stored for either. An interface another
/// program holds (here a second daemon's AF_XDP port) is 409 too.
#[test]
fn one_interface_carries_one_port_and_never_the_loopback() {
    if !root_or_skip("one_interface_carries_one_port_and_never_the_loopback") {
        return;
    }
    let dir = TempDir::new("iface1");
    let d = BinDaemon::start_real(&dir);
    let (c, s) = (&d.client, &d.socket);
    ctl_ok(s, &["domain", "add", "bd0"]);
    let p = |name: &str, kind: &str, iface: &str| {
        let body = json!({"name": name, "kind": kind, "iface": iface, "domain": "bd0",
                          "options": if kind == "afxdp" { json!({"xdp_mode": "generic"}) } else { json!({}) }});
        call(c, "POST", "/v1/ports", Some(body))
    };
    for kind in ["afpacket", "afxdp"] {
        expect(p("l0", kind, "lo"), 400, "lo is the loopback interface");
    }
    ctl_err(
        s,
        &[
            "port", "add", "l0", "--kind", "afpacket", "--iface", "lo", "--domain", "bd0",
        ],
        "HTTP 400",
    );
    let (va, _) = Link::veth("rva", None);
    let (vb, _) = Link::veth("rvb", None);
    expect(p("x1", "afxdp", &va.name), 201, "");
    expect(p("y1", "afpacket", &vb.name), 201, "");
    for (name, kind, iface, holder) in [
        ("x2", "afpacket", &va.name, "x1"),
        ("x3", "afxdp", &va.name, "x1"),
        ("y2", "afxdp", &vb.name, "y1"),
        ("y3", "afpacket", &vb.name, "y1"),
    ] {
        expect(
            p(name, kind, iface),
            409,
            &format!("interface {iface} is held by port {holder}"),
        );
    }
    assert_eq!(
        names(&expect(c.get("/v1/ports").unwrap(), 200, "")),
        ["x1", "y1"],
        "refused requests stored nothing"
    );
    // Another daemon cannot take the interface x1's AF_XDP socket holds.
    let dir2 = TempDir::new("iface2");
    let d2 = BinDaemon::start_real(&dir2);
    let c2 = &d2.client;
    expect(
        call(
            c2,
            "POST",
            "/v1/domains",
            Some(typed(&DomainRecord::named("bd0"))),
        ),
        201,
        "",
    );
    expect(
        call(
            c2,
            "POST",
            "/v1/ports",
            Some(
                json!({"name": "z1", "kind": "afxdp", "iface": va.name, "domain": "bd0",
                        "options": {"xdp_mode": "generic"}}),
            ),
        ),
        409,
        &format!("interface {} is in use by another program", va.name),
    );
    d2.stop();
    // Once x1 is gone, the interface is free again.
    expect(call(c, "DELETE", "/v1/ports/x1", None), 204, "");
    expect(p("x2", "afpacket", &va.name), 201, "");
    d.stop();
}

/// Every error answer has the one JSON shape, also those axum gives before
/// a handler runs (a body over the limit: 413).
#[test]
fn a_body_over_the_limit_is_a_json_413() {
    let dir = TempDir::new("413");
    let d = BinDaemon::start(&dir);
    let big = json!({"name": "x".repeat(3 << 20)});
    let r = call(&d.client, "POST", "/v1/domains", Some(big));
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).expect("a JSON error body");
    let msg = v["error"].as_str().expect("an error field");
    assert!(msg.contains("larger than 2097152 bytes"), "{msg}");
    assert_eq!(
        names(&expect(d.client.get("/v1/domains").unwrap(), 200, "")),
        Vec::<String>::new()
    );
    d.stop();
}

/// The state directory holds the whole configuration: it is 0700 (also one
/// that existed with looser permissions) and its database 0600. A socket
/// directory others could write to is refused before anything is served.
#[test]
fn state_is_private_and_a_shared_socket_directory_is_refused() {
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let dir = TempDir::new("priv");
    std::fs::create_dir_all(dir.state()).unwrap();
    std::fs::set_permissions(dir.state(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = BinDaemon::start(&dir);
    expect(
        call(
            &d.client,
            "POST",
            "/v1/domains",
            Some(typed(&DomainRecord::named("bd0"))),
        ),
        201,
        "",
    );
    assert_eq!(mode(&dir.state()), 0o700, "state directory");
    assert_eq!(mode(&dir.state().join("rvswitch.redb")), 0o600, "database");
    d.stop();
    let open = dir.0.join("open");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let sock = open.join("api.sock");
    let o = Command::new(BIN)
        .args(["daemon", "--test-memory-ports", "--socket"])
        .arg(&sock)
        .arg("--state-dir")
        .arg(dir.state())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "started with a world-writable socket directory"
    );
    assert!(
        err.contains("group or others could replace the socket"),
        "{err}"
    );
    assert!(!sock.exists(), "the socket was removed again");
}

/// Raw HTTP on the API socket, so a test controls each connection.
fn raw_connect(socket: &Path) -> std::os::unix::net::UnixStream {
    std::os::unix::net::UnixStream::connect(socket).unwrap()
}

/// Read until EOF or `limit`: (bytes, whether the peer closed).
fn raw_read(s: &mut std::os::unix::net::UnixStream, limit: Duration) -> (Vec<u8>, bool) {
    use std::io::Read;
    let end = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (out, false);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (out, false);
            }
            Err(_) => return (out, true),
        }
    }
}

/// Idle API connections are closed after the idle timeout (here 1 s);
/// at most `--api-max-connections` are served at once and further clients
/// wait for a free slot; a long request (a capture) is not idle.
#[test]
fn idle_api_connections_are_closed_and_their_number_capped() {
    use std::io::Write;
    let dir = TempDir::new("idle");
    let d = BinDaemon::start_with(
        &dir,
        &["--api-idle-secs", "3", "--api-max-connections", "8"],
    );
    setup_domain_and_ports(&d.client);
    let get = b"GET /v1/domains HTTP/1.1\r\nHost: rvswitch\r\n\r\n";
    // A capture of 20 s with no traffic: a request in progress, not idle.
    let mut cap = raw_connect(&d.socket);
    cap.write_all(
        b"GET /v1/ports/p1/capture?count=1&seconds=20 HTTP/1.1\r\nHost: rvswitch\r\n\r\n",
    )
    .unwrap();
    let (head, closed) = raw_read(&mut cap, Duration::from_secs(2));
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert!(!closed);
    // Fill every other slot with connections that never send anything.
    let t0 = Instant::now();
    let mut idle: Vec<_> = (0..7).map(|_| raw_connect(&d.socket)).collect();
    let mut waiting = raw_connect(&d.socket);
    waiting.write_all(get).unwrap();
    // Idle connections live 3 s: a slow machine still has well over a
    // second of that left to see the waiting client not answered (with a
    // 1 s timeout, a stall while connecting at load 9 once let the idle
    // ones go first).
    let (got, _) = raw_read(&mut waiting, Duration::from_millis(1000));
    assert!(
        t0.elapsed() >= Duration::from_secs(3) || got.is_empty(),
        "answered while every slot was taken: {}",
        String::from_utf8_lossy(&got)
    );
    for s in &mut idle {
        let (got, closed) = raw_read(s, Duration::from_secs(10));
        assert!(closed && got.is_empty(), "idle connection not closed");
    }
    let closed_after = t0.elapsed();
    assert!(
        closed_after >= Duration::from_millis(2900),
        "closed after {closed_after:?}, before the timeout"
    );
    // A slot freed: the waiting client is answered, and its connection,
    // idle after the answer, is closed in turn.
    let (got, closed) = raw_read(&mut waiting, Duration::from_secs(10));
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(closed, "kept-alive connection closed once idle");
    // The capture outlived every idle timeout.
    let (_, closed) = raw_read(&mut cap, Duration::from_millis(200));
    assert!(!closed, "a running capture was cut as idle");
    drop(cap);
    expect(d.client.get("/v1/domains").unwrap(), 200, "");
    d.stop();
}

/// Requests that `scripts/api-fuzz` (schemathesis against the OpenAPI
/// document) once answered with a 500: each is a bad call, so a 4xx with a
/// reason, and the daemon is unchanged by it.
#[test]
fn api_fuzz_findings_are_4xx() {
    let dir = TempDir::new("api-fuzz");
    let d = BinDaemon::start(&dir);
    let c = &d.client;
    // The spanning tree of a domain that does not exist (any name, also one
    // that is not a valid domain name) was the worker lookup's internal error.
    expect(
        call(c, "GET", "/v1/domains/nope/stp", None),
        404,
        "no bridge domain nope",
    );
    expect(
        call(c, "GET", "/v1/domains/%C2%81/stp", None),
        404,
        "no bridge domain",
    );
    let v = expect(call(c, "GET", "/v1/domains", None), 200, "");
    assert_eq!(names(&v), Vec::<String>::new());
}
