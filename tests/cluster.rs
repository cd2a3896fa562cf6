//! Hosts sharing networks through etcd (`rvswitch daemon --store
//! etcd://…`), tested against a real three-member etcd cluster (Debian's
//! `etcd-server`, three processes on loopback, new ports and data
//! directories per test, killed and removed on drop).
//!
//! Without the `etcd` binary each test prints SKIP (and fails under
//! RVS_TEST_STRICT=1, as CI installs it).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_drivers::testutil::{Netns, ip, root_or_skip, unique};
use serde_json::{Value, json};

mod common;

const ETCD: &str = "/usr/bin/etcd";

/// Whether the test can run: it needs Debian's `etcd-server`.
fn etcd_or_skip(test: &str) -> bool {
    let ready = if Path::new(ETCD).exists() {
        Ok(())
    } else {
        Err(format!("needs {ETCD} (apt-get install etcd-server)"))
    };
    common::run_or_skip(test, ready)
}

/// A port nobody listens on now, below the kernel's ephemeral range
/// (32768-60999 here): a port the kernel picked and released at once could
/// be handed out again as the source port of an outgoing connection (etcd
/// members connect to each other) before the member binds it. Each test
/// process starts at its own offset, and a port that does not bind is
/// skipped.
fn free_port(ip: Ipv4Addr) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() * 37) % 10_000;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (20_000 + (base - 20_000 + n) % 12_000) as u16;
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
}

/// One etcd member: its process and where it listens.
struct Member {
    name: String,
    client: String,
    peer: String,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A real etcd cluster of three members on `ip`; killed and its data
/// directories removed on drop.
pub struct Etcd {
    dir: PathBuf,
    members: Vec<Member>,
    initial: String,
}

impl Etcd {
    /// Start three members on `ip` and wait until the cluster answers.
    pub fn start(ip: Ipv4Addr) -> Etcd {
        let dir = std::env::temp_dir().join(unique("rvset"));
        std::fs::create_dir_all(&dir).unwrap();
        let members: Vec<Member> = (0..3)
            .map(|i| Member {
                name: format!("m{i}"),
                client: format!("http://{ip}:{}", free_port(ip)),
                peer: format!("http://{ip}:{}", free_port(ip)),
                data: dir.join(format!("m{i}.etcd")),
                log: dir.join(format!("m{i}.log")),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut e = Etcd {
            dir,
            members,
            initial,
        };
        for i in 0..3 {
            e.start_member(i);
        }
        e.wait_healthy(Duration::from_secs(20));
        e
    }

    fn start_member(&mut self, i: usize) {
        let token = self.dir.file_name().unwrap().to_string_lossy().to_string();
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .unwrap();
        let child = Command::new(ETCD)
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data)
            .args(["--listen-client-urls", &m.client])
            .args(["--advertise-client-urls", &m.client])
            .args(["--listen-peer-urls", &m.peer])
            .args(["--initial-advertise-peer-urls", &m.peer])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &token])
            // Short elections: the tests stop members on purpose.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        m.child = Some(child);
    }

    /// `etcd://H1:P1,H2:P2,H3:P3`, as `rvswitch daemon --store` takes it.
    pub fn url(&self) -> String {
        let hosts: Vec<&str> = self
            .members
            .iter()
            .map(|m| m.client.trim_start_matches("http://"))
            .collect();
        format!("etcd://{}", hosts.join(","))
    }

    /// Whether member `i` answers `/health` with `"health":"true"` (it has
    /// a leader and the cluster has quorum).
    fn healthy(&self, i: usize) -> bool {
        use std::io::{Read, Write};
        let addr = self.members[i].client.trim_start_matches("http://");
        let Ok(mut s) = TcpStream::connect(addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /health HTTP/1.0\r\n\r\n").is_err() {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains(r#""health":"true""#)
    }

    /// SIGKILL member `i` (its data stays for [`Etcd::restart`]).
    fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start member `i` again on its data.
    fn restart(&mut self, i: usize) {
        self.start_member(i);
    }

    fn wait_healthy(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while !(0..3).all(|i| self.healthy(i)) {
            for m in &mut self.members {
                if let Some(c) = &mut m.child
                    && let Some(st) = c.try_wait().unwrap()
                {
                    panic!(
                        "etcd member {} exited with {st}: {}",
                        m.name,
                        std::fs::read_to_string(&m.log).unwrap_or_default()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd cluster not healthy within {within:?}: {}",
                std::fs::read_to_string(&self.members[0].log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_three_member_etcd_cluster_starts_and_is_removed() {
    if !etcd_or_skip("a_three_member_etcd_cluster_starts_and_is_removed") {
        return;
    }
    let e = Etcd::start(Ipv4Addr::LOCALHOST);
    assert!((0..3).all(|i| e.healthy(i)));
    assert_eq!(e.url().matches(',').count(), 2, "{}", e.url());
    let dir = e.dir.clone();
    drop(e);
    assert!(!dir.exists(), "data directories removed");
}

/// An `rvswitch daemon` that is a member of the cluster: memory ports
/// (no traffic; these tests check the control plane), the Docker driver
/// on a private plugin socket.
struct Host {
    name: String,
    dir: PathBuf,
    args: Vec<String>,
    /// The namespace-host it runs in (None: this namespace).
    netns: Option<String>,
    /// The Docker plugin socket.
    plugin: PathBuf,
    child: Option<Child>,
}

impl Host {
    fn start(etcd: &Etcd, name: &str, vtep: &str, ttl: u64) -> Host {
        Host::start_with(
            name,
            vtep,
            &["--store", &etcd.url(), "--store-ttl", &ttl.to_string()],
        )
    }

    fn start_with(name: &str, vtep: &str, extra: &[&str]) -> Host {
        let mut args = vec!["--test-memory-ports"];
        args.extend_from_slice(extra);
        Host::start_in(None, name, vtep, &args)
    }

    /// A daemon with real ports in namespace-host `netns`.
    fn start_in(netns: Option<&str>, name: &str, vtep: &str, extra: &[&str]) -> Host {
        let dir = std::env::temp_dir().join(unique("rvscl"));
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let mut args: Vec<String> = vec![
            "--host-name".into(),
            name.into(),
            "--vtep".into(),
            vtep.into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut h = Host {
            name: name.into(),
            // A driver name of its own: the uplink veth pair a daemon makes
            // in the root namespace is named after it, outlives the daemon
            // by design, and is this host's to remove (see Drop); daemons of
            // one driver name would also sweep each other's marked links.
            plugin: dir.join(format!("{}.sock", unique("rvsdr"))),
            dir,
            args,
            netns: netns.map(str::to_string),
            child: None,
        };
        h.spawn();
        h
    }

    /// Serve dockerd: the plugin socket where it looks for drivers.
    fn for_dockerd(mut self, driver: &str) -> Host {
        self.kill9();
        self.plugin = PathBuf::from(format!("/run/docker/plugins/{driver}.sock"));
        self.spawn();
        self
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = match &self.netns {
            None => Command::new(common::BIN),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, common::BIN]);
                c
            }
        };
        cmd.arg("daemon")
            .args(&self.args)
            .arg("--socket")
            .arg(self.socket())
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--docker")
            .arg("--docker-socket")
            .arg(self.plugin())
            .arg("--docker-engine")
            .arg(self.dir.join("no-engine.sock"))
            .args(["--docker-reconcile-secs", "0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(common::spawn_ready(&mut cmd, Some(&self.log())));
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }

    fn plugin(&self) -> PathBuf {
        self.plugin.clone()
    }

    fn log(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            let st = common::terminate(c);
            assert!(st.success(), "daemon exited with {st}");
        }
    }

    fn cluster(&self) -> Value {
        common::ctl_json(&self.socket(), &["cluster"])
    }

    fn members(&self) -> Vec<(String, String)> {
        let mut m: Vec<(String, String)> = self.cluster()["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["host"].as_str().unwrap().to_string(),
                    m["vtep"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        m.sort();
        m
    }

    /// A Docker driver call on the plugin socket: the driver's answer.
    fn docker(&self, method: &str, body: &Value) -> Value {
        let c = rvswitch::client::Client::new(&self.plugin()).unwrap();
        let r = c
            .request(hyper::Method::POST, &format!("/{method}"), Some(body))
            .unwrap();
        r.json()
    }

    fn cnm_networks(&self) -> Vec<Value> {
        let r = rvswitch::client::Client::new(&self.socket())
            .unwrap()
            .get("/v1/cnm/networks")
            .unwrap();
        assert_eq!(r.status, 200);
        r.json().as_array().unwrap().clone()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill9();
        // The uplink of a daemon in the root namespace (one in a
        // namespace-host goes with its namespace).
        if self.netns.is_none()
            && let Some(driver) = self.plugin.file_stem().and_then(|s| s.to_str())
        {
            let u = rvswitch::fabric::Uplink::for_driver(driver);
            let _ = Command::new("ip")
                .args(["link", "del", &u.host_if])
                .status();
        }
        if self.plugin.starts_with("/run/docker/plugins") {
            let _ = std::fs::remove_file(&self.plugin);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Wait until `f` holds; how long it took, or None after `within`.
fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if f() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn hosts_register_under_leases_and_a_dead_one_leaves_within_the_ttl() {
    if !etcd_or_skip("hosts_register_under_leases_and_a_dead_one_leaves_within_the_ttl") {
        return;
    }
    let etcd = Etcd::start(Ipv4Addr::LOCALHOST);
    let a = Host::start(&etcd, "ha", "10.99.0.1", 2);
    let mut b = Host::start(&etcd, "hb", "10.99.0.2", 2);
    let mut c = Host::start(&etcd, "hc", "10.99.0.3", 2);
    let all = vec![
        ("ha".to_string(), "10.99.0.1".to_string()),
        ("hb".to_string(), "10.99.0.2".to_string()),
        ("hc".to_string(), "10.99.0.3".to_string()),
    ];
    for h in [&a, &b, &c] {
        assert!(
            eventually(Duration::from_secs(5), || h.members() == all).is_some(),
            "{} sees {:?}",
            h.name,
            h.members()
        );
    }
    let v = a.cluster();
    assert_eq!(v["host"], "ha");
    assert_eq!(v["ttl_secs"], 2);
    assert!(v["revision"].as_i64().unwrap() > 0, "{v}");
    let own = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["self"] == true)
        .unwrap();
    assert_eq!(own["lease"], v["lease"], "registered under its own lease");
    // The text form names members, VTEPs and leases.
    let text = common::ctl_ok(&a.socket(), &["cluster"]);
    assert!(text.contains("ha*") && text.contains("10.99.0.3"), "{text}");
    assert!(text.contains("TTL 2 s"), "{text}");

    // kill -9: its lease is no longer kept alive; it leaves within the TTL.
    c.kill9();
    let took = eventually(Duration::from_secs(6), || a.members().len() == 2)
        .expect("a killed host leaves when its lease expires");
    println!("killed host gone from the others after {took:?} (TTL 2 s)");
    assert!(took <= Duration::from_millis(2000 + 1500), "{took:?}");
    // A clean stop revokes the lease: gone at once.
    b.stop();
    let took = eventually(Duration::from_secs(2), || a.members().len() == 1)
        .expect("a stopped host leaves at once");
    println!("stopped host gone after {took:?}");
}

#[test]
fn a_store_that_cannot_be_used_stops_the_daemon_with_a_reason() {
    if !etcd_or_skip("a_store_that_cannot_be_used_stops_the_daemon_with_a_reason") {
        return;
    }
    let dir = std::env::temp_dir().join(unique("rvscb"));
    let run = |extra: &[&str]| {
        let o = Command::new(common::BIN)
            .arg("daemon")
            .arg("--test-memory-ports")
            .arg("--socket")
            .arg(dir.join("api.sock"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(extra)
            .output()
            .unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let e = run(&["--store", "http://127.0.0.1:1", "--vtep", "10.0.0.1"]);
    assert!(e.contains("etcd://HOST:PORT"), "{e}");
    let e = run(&["--store", "etcd://127.0.0.1:1"]);
    assert!(e.contains("--vtep"), "{e}");
    let port = free_port(Ipv4Addr::LOCALHOST);
    let e = run(&[
        "--store",
        &format!("etcd://127.0.0.1:{port}"),
        "--vtep",
        "10.0.0.1",
    ]);
    assert!(e.contains("cluster store"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn create_global(h: &Host, id: &str, name: &str, pool: Option<&str>) -> Value {
    let ipv4: Vec<Value> = pool
        .map(|p| vec![json!({"AddressSpace": "GlobalDefault", "Pool": p})])
        .unwrap_or_default();
    h.docker(
        "NetworkDriver.CreateNetwork",
        &json!({"NetworkID": id,
                "Options": {"com.docker.network.internal": true,
                            "com.docker.network.generic": {
                                "rvswitch.scope": "global", "rvswitch.name": name}},
                "IPv4Data": ipv4, "IPv6Data": []}),
    )
}

/// The engine's id of a network or endpoint (64 hex digits).
fn docker_id(tag: &str, n: usize) -> String {
    format!("{:0>64}", format!("{}{n:x}", hex(tag)))
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// (VNI, IPv4 subnets) of the CNM network called `name` on host `h`.
fn global_of(h: &Host, name: &str) -> (u64, Vec<String>) {
    let n = h
        .cnm_networks()
        .into_iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("{} has no network {name}", h.name));
    let vni = n["kind"]["vni"].as_u64().unwrap_or(0);
    let subnets = n["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pool"].as_str().unwrap().to_string())
        .collect();
    (vni, subnets)
}

#[test]
fn two_hosts_creating_one_global_network_at_once_get_one_vni_and_subnet() {
    if !etcd_or_skip("two_hosts_creating_one_global_network_at_once_get_one_vni_and_subnet") {
        return;
    }
    let etcd = Etcd::start(Ipv4Addr::LOCALHOST);
    let a = Host::start(&etcd, "ha", "10.99.0.1", 5);
    let b = Host::start(&etcd, "hb", "10.99.0.2", 5);
    // Several names, each created on both hosts at the same moment (each
    // host's engine gives it its own id).
    let names: Vec<String> = (0..6).map(|i| format!("g{i}")).collect();
    std::thread::scope(|s| {
        for (k, h) in [&a, &b].into_iter().enumerate() {
            for (i, name) in names.iter().enumerate() {
                s.spawn(move || {
                    let r = create_global(h, &docker_id(&format!("n{k}"), i), name, None);
                    assert!(r.get("Err").is_none(), "{}: {r}", h.name);
                });
            }
        }
    });
    let mut vnis = std::collections::BTreeSet::new();
    let mut subnets = std::collections::BTreeSet::new();
    for name in &names {
        let (va, sa) = global_of(&a, name);
        let (vb, sb) = global_of(&b, name);
        assert_eq!((va, &sa), (vb, &sb), "{name}: one VNI, one subnet");
        assert!(va > 0 && sa.len() == 1, "{name}: {va} {sa:?}");
        vnis.insert(va);
        subnets.insert(sa[0].clone());
    }
    assert_eq!(vnis.len(), names.len(), "every network its own VNI");
    assert_eq!(subnets.len(), names.len(), "every network its own subnet");

    // A third host asking for another subnet is told which one the
    // network has, and gets nothing.
    let (_, s0) = global_of(&a, "g0");
    let r = create_global(&a, &docker_id("other", 0), "g0", Some("10.77.0.0/24"));
    let err = r["Err"].as_str().unwrap_or_default().to_string();
    assert!(err.contains(&s0[0]) && err.contains("created by"), "{r}");
    assert_eq!(a.cnm_networks().len(), names.len(), "nothing half made");
    // Another network may not take its subnet.
    let r = create_global(&a, &docker_id("same", 0), "g1x", Some(&s0[0]));
    assert!(
        r["Err"]
            .as_str()
            .unwrap_or_default()
            .contains("another global network"),
        "{r}"
    );
    // Without a name, or on a daemon without a cluster: refused with why.
    let r = a.docker(
        "NetworkDriver.CreateNetwork",
        &json!({"NetworkID": docker_id("noname", 0),
                "Options": {"com.docker.network.generic": {"rvswitch.scope": "global"}},
                "IPv4Data": [], "IPv6Data": []}),
    );
    assert!(
        r["Err"]
            .as_str()
            .unwrap_or_default()
            .contains("rvswitch.name"),
        "{r}"
    );
    let solo = Host::start_with("solo", "10.99.0.9", &[]);
    let o = common::ctl_raw(&solo.socket(), &["cluster"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("not in a cluster"), "{e}");
    let r = create_global(&solo, &docker_id("solo", 0), "g0", None);
    assert!(
        r["Err"].as_str().unwrap_or_default().contains("--store"),
        "{r}"
    );
    assert!(solo.cnm_networks().is_empty());
}

#[test]
fn endpoints_created_in_parallel_on_three_hosts_never_share_an_address() {
    if !etcd_or_skip("endpoints_created_in_parallel_on_three_hosts_never_share_an_address") {
        return;
    }
    let etcd = Etcd::start(Ipv4Addr::LOCALHOST);
    let hosts = [
        Host::start(&etcd, "ha", "10.99.0.1", 5),
        Host::start(&etcd, "hb", "10.99.0.2", 5),
        Host::start(&etcd, "hc", "10.99.0.3", 5),
    ];
    for (k, h) in hosts.iter().enumerate() {
        let r = create_global(h, &docker_id(&format!("net{k}"), 0), "shared", None);
        assert!(r.get("Err").is_none(), "{r}");
    }
    let (_, subnet) = global_of(&hosts[0], "shared");
    let pool: rvs_cnm::prefix::Cidr = rvs_cnm::prefix::Cidr::parse_prefix(&subnet[0]).unwrap();
    // 200 endpoints: four callers per host at once.
    const N: usize = 200;
    let t0 = Instant::now();
    let got: Vec<(usize, String, String)> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (k, h) in hosts.iter().enumerate() {
            for t in 0..4 {
                handles.push(s.spawn(move || {
                    let mut out = Vec::new();
                    for i in (k * 4 + t..N).step_by(12) {
                        let id = docker_id("ep", i);
                        let r = h.docker(
                            "NetworkDriver.CreateEndpoint",
                            &json!({"NetworkID": docker_id(&format!("net{k}"), 0),
                                    "EndpointID": id,
                                    "Interface": {"Address": "", "AddressIPv6": "", "MacAddress": ""},
                                    "Options": {}}),
                        );
                        assert!(r.get("Err").is_none(), "{}: {r}", h.name);
                        let addr = r["Interface"]["Address"].as_str().unwrap().to_string();
                        out.push((k, id, addr));
                    }
                    out
                }));
            }
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    println!(
        "{N} endpoints on 3 hosts in {:?} (debug build)",
        t0.elapsed()
    );
    assert_eq!(got.len(), N);
    let addrs: std::collections::BTreeSet<&str> = got.iter().map(|(_, _, a)| a.as_str()).collect();
    assert_eq!(addrs.len(), N, "no address handed out twice");
    for (_, _, a) in &got {
        let c = rvs_cnm::prefix::Cidr::parse_addr(a).unwrap();
        assert!(pool.contains(c.addr) && c.len == pool.len, "{a} in {pool}");
    }
    // A host joining now reads all of them (in pages of 7 keys, at one
    // revision).
    let late = Host::start_with(
        "hl",
        "10.99.0.4",
        &["--store", &etcd.url(), "--store-read-page", "7"],
    );
    assert_eq!(late.cluster()["remote_endpoints"]["shared"], N as u64);
    assert_eq!(late.members().len(), 4);
    drop(late);
    // Deleting gives the address back: an endpoint on another host may
    // take it.
    let (k, id, addr) = got
        .iter()
        .min_by_key(|(_, _, a)| rvs_cnm::prefix::Cidr::parse_addr(a).unwrap().addr)
        .unwrap()
        .clone();
    let r = hosts[k].docker(
        "NetworkDriver.DeleteEndpoint",
        &json!({"NetworkID": docker_id(&format!("net{k}"), 0), "EndpointID": id}),
    );
    assert!(r.get("Err").is_none(), "{r}");
    let other = (k + 1) % 3;
    let r = hosts[other].docker(
        "NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": docker_id(&format!("net{other}"), 0),
                "EndpointID": docker_id("again", 0),
                "Interface": {"Address": addr, "AddressIPv6": "", "MacAddress": ""},
                "Options": {}}),
    );
    assert!(
        r.get("Err").is_none(),
        "the released address is claimed on another host: {r}"
    );
    // An address the engine chose is claimed too: a claim on a third host
    // (which has no local endpoint with it) is refused with who holds it.
    let third = (other + 1) % 3;
    let r = hosts[third].docker(
        "NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": docker_id(&format!("net{third}"), 0),
                "EndpointID": docker_id("dup", 0),
                "Interface": {"Address": addr, "AddressIPv6": "", "MacAddress": ""},
                "Options": {}}),
    );
    let err = r["Err"].as_str().unwrap_or_default();
    assert!(
        err.contains("held by endpoint") && err.contains(&hosts[other].name),
        "{r}"
    );
}

/// A Linux bridge in this namespace standing for the underlay LAN; removed
/// on drop.
/// An underlay bridge here at `10.251.NET.254/24` (etcd listens there),
/// and its namespace-hosts at `10.251.NET.HOST` on `ul0`.
struct Underlay(String, u8);

impl Underlay {
    fn new(net: u8) -> Underlay {
        let u = Underlay(unique("rvub"), net);
        ip(&["link", "add", &u.0, "type", "bridge"]);
        ip(&["addr", "add", &format!("10.251.{net}.254/24"), "dev", &u.0]);
        ip(&["link", "set", &u.0, "up"]);
        u
    }

    /// Put namespace-host `ns` on the underlay as `10.251.NET.host`.
    fn join(&self, ns: &Netns, host: u8) {
        let (outer, inner) = (unique("rvuh"), unique("rvun"));
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ]);
        ip(&["link", "set", &outer, "master", &self.0, "up"]);
        ip(&["link", "set", &inner, "netns", &ns.name]);
        ns.ip(&["link", "set", &inner, "name", "ul0"]);
        let a = format!("10.251.{}.{host}/24", self.1);
        ns.ip(&["addr", "add", &a, "dev", "ul0"]);
        ns.ip(&["link", "set", "ul0", "up"]);
    }
}

impl Drop for Underlay {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// Endpoint `ep` of network `net` made on host `h` through the Docker
/// driver, joined to container namespace `c` (the TAP moved in as eth0
/// with the address the cluster gave). Returns (address, MAC).
fn attach(h: &Host, host_ns: &Netns, net: &str, ep: &str, c: &Netns) -> (String, String) {
    let r = h.docker(
        "NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": net, "EndpointID": ep,
                "Interface": {"Address": "", "AddressIPv6": "", "MacAddress": ""},
                "Options": {}}),
    );
    assert!(r.get("Err").is_none(), "{}: {r}", h.name);
    let addr = r["Interface"]["Address"].as_str().unwrap().to_string();
    let mac = r["Interface"]["MacAddress"].as_str().unwrap().to_string();
    let j = h.docker(
        "NetworkDriver.Join",
        &json!({"NetworkID": net, "EndpointID": ep,
                "SandboxKey": format!("/var/run/netns/{}", c.name), "Options": {}}),
    );
    let tap = j["InterfaceName"]["SrcName"].as_str().unwrap().to_string();
    host_ns.ip(&["link", "set", &tap, "netns", &c.name]);
    c.ip(&["link", "set", &tap, "name", "eth0"]);
    c.ip(&["addr", "add", &addr, "dev", "eth0"]);
    c.ip(&["link", "set", "eth0", "up"]);
    (addr, mac)
}

/// The remote VTEPs (flood list and static entries) of host `h`'s VTEP
/// port for network `net`.
fn remotes(h: &Host, net: &str) -> (Vec<String>, Vec<(String, String)>) {
    let port = format!("vx-{}", &net[..12]);
    let r = rvswitch::client::Client::new(&h.socket())
        .unwrap()
        .get(&format!("/v1/ports/{port}/remotes"))
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.error_message());
    let v = r.json();
    let flood = v["flood"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let statics = v["static"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap().to_string(),
                e[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (flood, statics)
}

/// One ping with a 1 s wait.
fn ping_once(from: &Netns, addr: &str) -> bool {
    from.exec("ping", &["-c", "1", "-W", "1", addr])
        .status
        .success()
}

#[test]
fn an_endpoint_on_one_host_is_reached_from_the_others_and_withdrawn_when_its_host_dies() {
    let test =
        "an_endpoint_on_one_host_is_reached_from_the_others_and_withdrawn_when_its_host_dies";
    if !etcd_or_skip(test) || !root_or_skip(test) {
        return;
    }
    // The underlay: a bridge here (etcd listens on its address) and three
    // namespace-hosts on it, each with its own daemon.
    let underlay = Underlay::new(7);
    let host_ns: Vec<Netns> = (0..3).map(|i| Netns::new(&format!("ch{i}"))).collect();
    for (i, ns) in host_ns.iter().enumerate() {
        underlay.join(ns, i as u8 + 1);
    }
    let etcd = Etcd::start("10.251.7.254".parse().unwrap());
    let ttl = 3;
    let mut hosts: Vec<Host> = host_ns
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            Host::start_in(
                Some(&ns.name),
                &format!("h{i}"),
                &format!("10.251.7.{}", i + 1),
                &["--store", &etcd.url(), "--store-ttl", &ttl.to_string()],
            )
        })
        .collect();
    let nets: Vec<String> = (0..3).map(|k| docker_id(&format!("blue{k}"), 0)).collect();
    for (h, net) in hosts.iter().zip(&nets) {
        let r = create_global(h, net, "blue", None);
        assert!(r.get("Err").is_none(), "{r}");
    }
    let c: Vec<Netns> = (0..3).map(|i| Netns::new(&format!("cc{i}"))).collect();
    let (addr_b, _) = attach(
        &hosts[1],
        &host_ns[1],
        &nets[1],
        &docker_id("epb", 0),
        &c[1],
    );
    let (addr_c, _) = attach(
        &hosts[2],
        &host_ns[2],
        &nets[2],
        &docker_id("epc", 0),
        &c[2],
    );

    // The endpoint on A: time from its CreateEndpoint to being programmed
    // on B and C, and to the first answered ping from each.
    let t0 = Instant::now();
    let (addr_a, mac_a) = attach(
        &hosts[0],
        &host_ns[0],
        &nets[0],
        &docker_id("epa", 0),
        &c[0],
    );
    let addr_a = addr_a.split('/').next().unwrap().to_string();
    for (k, name) in [(1, "B"), (2, "C")] {
        eventually(Duration::from_secs(5), || {
            remotes(&hosts[k], &nets[k])
                .1
                .contains(&(mac_a.clone(), "10.251.7.1".to_string()))
        })
        .unwrap_or_else(|| panic!("A's endpoint never programmed on {name}"));
        println!(
            "A's endpoint programmed on {name} {:?} after its CreateEndpoint was sent",
            t0.elapsed()
        );
    }
    for (k, name) in [(1, "B"), (2, "C")] {
        assert!(
            eventually(Duration::from_secs(5), || ping_once(&c[k], &addr_a)).is_some(),
            "{name} reaches A's endpoint {addr_a}"
        );
        println!(
            "{name} pings A's endpoint {:?} after its CreateEndpoint",
            t0.elapsed()
        );
    }
    let addr_c = addr_c.split('/').next().unwrap().to_string();
    assert!(ping_once(&c[1], &addr_c), "B reaches C");
    assert!(
        ping_once(&c[0], addr_b.split('/').next().unwrap()),
        "A reaches B"
    );

    // kill -9 A's daemon: its lease expires, B and C drop its entries.
    hosts[0].kill9();
    let t0 = Instant::now();
    for (k, name) in [(1, "B"), (2, "C")] {
        let gone = eventually(Duration::from_secs(ttl + 3), || {
            let (flood, statics) = remotes(&hosts[k], &nets[k]);
            !flood.contains(&"10.251.7.1".to_string())
                && statics.iter().all(|(_, r)| r != "10.251.7.1")
        })
        .unwrap_or_else(|| panic!("{name} still has A's entries"));
        println!(
            "A's entries withdrawn on {name} {:?} after kill -9 (TTL {ttl} s)",
            t0.elapsed()
        );
        assert!(gone <= Duration::from_millis(ttl * 1000 + 1500), "{gone:?}");
    }
    // The others keep working.
    assert!(ping_once(&c[1], &addr_c), "B still reaches C");
    assert!(
        ping_once(&c[2], addr_b.split('/').next().unwrap()),
        "C still reaches B"
    );

    // A comes back: it publishes its endpoint again (found in its sandbox)
    // under a new lease and reads everyone else's.
    let t0 = Instant::now();
    hosts[0].spawn();
    assert!(
        eventually(Duration::from_secs(10), || ping_once(&c[1], &addr_a)).is_some(),
        "B reaches A's endpoint again after A's restart"
    );
    println!(
        "B pings A's endpoint {:?} after A's daemon was started again",
        t0.elapsed()
    );
    assert!(ping_once(&c[0], &addr_c), "A reaches C again");
    drop(c);
    drop(hosts);
    drop(etcd);
}

fn new_endpoint(h: &Host, net: &str, ep: &str) -> Value {
    h.docker(
        "NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": net, "EndpointID": ep,
                "Interface": {"Address": "", "AddressIPv6": "", "MacAddress": ""},
                "Options": {}}),
    )
}

fn endpoint_count(h: &Host) -> usize {
    let r = rvswitch::client::Client::new(&h.socket())
        .unwrap()
        .get("/v1/cnm/endpoints")
        .unwrap();
    r.json().as_array().unwrap().len()
}

fn remote_count(h: &Host, name: &str) -> u64 {
    h.cluster()["remote_endpoints"][name].as_u64().unwrap_or(0)
}

#[test]
fn without_quorum_global_changes_are_refused_whole_and_resume_with_it() {
    if !etcd_or_skip("without_quorum_global_changes_are_refused_whole_and_resume_with_it") {
        return;
    }
    let mut etcd = Etcd::start(Ipv4Addr::LOCALHOST);
    let a = Host::start(&etcd, "ha", "10.99.0.1", 5);
    let b = Host::start(&etcd, "hb", "10.99.0.2", 5);
    let (na, nb) = (docker_id("qa", 0), docker_id("qb", 0));
    for (h, n) in [(&a, &na), (&b, &nb)] {
        let r = create_global(h, n, "q", None);
        assert!(r.get("Err").is_none(), "{r}");
    }
    // One member down: the cluster carries on.
    etcd.stop(2);
    let r = new_endpoint(&a, &na, &docker_id("e", 1));
    assert!(r.get("Err").is_none(), "one member down: {r}");
    assert!(
        eventually(Duration::from_secs(5), || remote_count(&b, "q") == 1).is_some(),
        "b sees a's endpoint with one member down"
    );
    // Majority down: a global change is refused with the reason, and
    // nothing of it is kept.
    etcd.stop(1);
    let t0 = Instant::now();
    let r = new_endpoint(&a, &na, &docker_id("e", 2));
    let err = r["Err"].as_str().unwrap_or_default().to_string();
    println!("refused after {:?}: {err}", t0.elapsed());
    assert!(err.contains("unavailable: no quorum"), "{r}");
    assert_eq!(endpoint_count(&a), 1, "nothing half made");
    // Through the API: 503 with the reason (the store, not a conflict),
    // and nothing made.
    let networks = a.cnm_networks().len();
    let (st, v) = api_post(
        &a,
        "/v1/cnm/networks",
        &json!({"name": "late", "scope": "global", "internal": true}),
    );
    assert_eq!(st, 503, "{v}");
    let why = v["error"].as_str().unwrap_or_default();
    assert!(why.contains("unavailable: no quorum"), "{v}");
    assert_eq!(a.cnm_networks().len(), networks, "no network made: {v}");
    assert!(
        a.cnm_networks().iter().all(|n| n["name"] != "late"),
        "no network made"
    );
    // What exists stays: the daemon answers and keeps its endpoints.
    assert_eq!(remote_count(&b, "q"), 1);
    // Quorum back: the same call succeeds.
    etcd.restart(1);
    etcd.restart(2);
    etcd.wait_healthy(Duration::from_secs(20));
    let t0 = Instant::now();
    let took = eventually(Duration::from_secs(15), || {
        new_endpoint(&a, &na, &docker_id("e", 2))
            .get("Err")
            .is_none()
    })
    .expect("global changes resume with the quorum");
    println!("accepted again {took:?} after the quorum returned");
    assert!(
        eventually(Duration::from_secs(5), || remote_count(&b, "q") == 2).is_some(),
        "b sees the new endpoint after {:?}",
        t0.elapsed()
    );
    assert_eq!(endpoint_count(&a), 2);
}

/// `docker ARGS` that must succeed: its stdout, trimmed.
#[track_caller]
fn docker_ok(args: &[&str]) -> String {
    let o = Command::new("docker").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "docker {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Docker objects removed on drop (containers first).
struct DockerObjects {
    containers: Vec<String>,
    networks: Vec<String>,
}

impl Drop for DockerObjects {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
        for n in &self.networks {
            let _ = Command::new("docker").args(["network", "rm", n]).output();
        }
    }
}

#[test]
fn a_container_on_dockerd_reaches_an_endpoint_on_another_host_through_a_global_network() {
    let test =
        "a_container_on_dockerd_reaches_an_endpoint_on_another_host_through_a_global_network";
    if !etcd_or_skip(test) || !root_or_skip(test) || !common::docker_or_skip(test) {
        return;
    }
    // The underlay: a bridge here (this host's VTEP, and etcd) and one
    // namespace-host on it.
    let underlay = Underlay::new(8);
    let h1 = Netns::new("dh1");
    underlay.join(&h1, 1);
    let etcd = Etcd::start("10.251.8.254".parse().unwrap());
    let store = ["--store", &etcd.url(), "--store-ttl", "5"];
    let remote = Host::start_in(Some(&h1.name), "dh1", "10.251.8.1", &store);
    let driver = unique("rvsgl");
    let here = Host::start_in(None, "dk", "10.251.8.254", &store).for_dockerd(&driver);

    // The network on the namespace-host first: the cluster chooses its
    // VNI and subnet; dockerd's IPAM is then given the same subnet.
    let name = unique("dkg");
    let net1 = docker_id("dkg", 1);
    let r = create_global(&remote, &net1, &name, None);
    assert!(r.get("Err").is_none(), "{r}");
    let (_, subnet) = global_of(&remote, &name);
    let c1 = Netns::new("dc1");
    let (addr1, _) = attach(&remote, &h1, &net1, &docker_id("dke", 1), &c1);
    let addr1 = addr1.split('/').next().unwrap().to_string();

    let mut objs = DockerObjects {
        containers: Vec::new(),
        networks: Vec::new(),
    };
    let opt_scope = "rvswitch.scope=global".to_string();
    let opt_name = format!("rvswitch.name={name}");
    docker_ok(&[
        "network",
        "create",
        "-d",
        &driver,
        "--internal",
        "--subnet",
        &subnet[0],
        "-o",
        &opt_scope,
        "-o",
        &opt_name,
        &name,
    ]);
    objs.networks.push(name.clone());
    // An address of dockerd's choosing is claimed in the cluster as well.
    let base = subnet[0].rsplit_once('.').unwrap().0.to_string();
    let ip_here = format!("{base}.50");
    let cname = unique("rvc");
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &cname,
        "--network",
        &name,
        "--ip",
        &ip_here,
        "rvs-busybox:latest",
        "sleep",
        "600",
    ]);
    objs.containers.push(cname.clone());
    // No static remotes anywhere: the registry programs both sides.
    let t0 = Instant::now();
    let reached = eventually(Duration::from_secs(10), || {
        Command::new("docker")
            .args(["exec", &cname, "ping", "-c", "1", "-W", "1", &addr1])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(
        reached.is_some(),
        "the container reaches {addr1} on the namespace-host"
    );
    println!(
        "container pings the namespace-host's endpoint {:?} after docker run",
        t0.elapsed()
    );
    assert!(
        ping_once(&c1, &ip_here),
        "and the namespace-host's endpoint reaches the container"
    );
    // The engine's address is the cluster's: the namespace-host may not
    // take it.
    let r = h1_claim(&remote, &net1, &format!("{ip_here}/24"));
    assert!(
        r["Err"]
            .as_str()
            .unwrap_or_default()
            .contains("held by endpoint"),
        "{r}"
    );
    drop(objs);
    drop(here);
}

fn h1_claim(h: &Host, net: &str, addr: &str) -> Value {
    h.docker(
        "NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": net, "EndpointID": docker_id("claim", 0),
                "Interface": {"Address": addr, "AddressIPv6": "", "MacAddress": ""},
                "Options": {}}),
    )
}

/// Put `key` = `value` straight into etcd, as a daemon killed inside a
/// Docker call would have left it.
fn etcd_put(etcd: &Etcd, key: &str, value: &str) {
    let endpoints: Vec<String> = etcd.members.iter().map(|m| m.client.clone()).collect();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = etcd_client::Client::connect(endpoints, None).await.unwrap();
        c.put(key, value, None).await.unwrap();
    });
}

fn etcd_keys(etcd: &Etcd, prefix: &str) -> Vec<String> {
    let endpoints: Vec<String> = etcd.members.iter().map(|m| m.client.clone()).collect();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = etcd_client::Client::connect(endpoints, None).await.unwrap();
        let r = c
            .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
            .await
            .unwrap();
        r.kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect()
    })
}

#[test]
fn an_address_no_stored_endpoint_holds_is_given_back() {
    if !etcd_or_skip("an_address_no_stored_endpoint_holds_is_given_back") {
        return;
    }
    let etcd = Etcd::start(Ipv4Addr::LOCALHOST);
    let mut a = Host::start(&etcd, "ha", "10.99.0.1", 2);
    let net = docker_id("sw", 0);
    let r = create_global(&a, &net, "sw", None);
    assert!(r.get("Err").is_none(), "{r}");
    let r = new_endpoint(&a, &net, &docker_id("kept", 0));
    let kept = r["Interface"]["Address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let base = kept.rsplit_once('.').unwrap().0.to_string();
    // A claim of this host's for an endpoint it never stored (the claim
    // and its owner key, as a daemon killed inside a call leaves them), and
    // one of another host's.
    let lost = format!("/rvswitch/ipam/sw/{base}.77");
    let lost_owner = "/rvswitch/ipam-owners/sw/ha/never-stored".to_string();
    let theirs = format!("/rvswitch/ipam/sw/{base}.78");
    etcd_put(&etcd, &lost, r#"{"host":"ha","endpoint":"never-stored"}"#);
    etcd_put(&etcd, &lost_owner, &format!("{base}.77"));
    etcd_put(&etcd, &theirs, r#"{"host":"hz","endpoint":"elsewhere"}"#);
    let t0 = Instant::now();
    let gone = eventually(Duration::from_secs(15), || {
        !etcd_keys(&etcd, "/rvswitch/ipam/sw/").contains(&lost)
            && !etcd_keys(&etcd, "/rvswitch/ipam-owners/").contains(&lost_owner)
    })
    .expect("the unheld claim is given back, with its owner key");
    println!("unheld claim given back after {gone:?} (three TTLs of 2 s)");
    assert!(
        t0.elapsed() >= Duration::from_secs(4),
        "not while a call could still commit it"
    );
    let left = etcd_keys(&etcd, "/rvswitch/ipam/sw/");
    assert!(
        left.contains(&theirs),
        "another host's claim stays: {left:?}"
    );
    assert!(
        left.contains(&format!("/rvswitch/ipam/sw/{kept}")),
        "a stored endpoint's stays: {left:?}"
    );
    assert_eq!(
        etcd_keys(&etcd, "/rvswitch/ipam-owners/sw/ha/"),
        [format!(
            "/rvswitch/ipam-owners/sw/ha/{}",
            docker_id("kept", 0)
        )],
        "a stored endpoint's owner key stays"
    );
    // A claim without an owner key (made before owner keys existed) is
    // found by the read of every claim a host makes after its start.
    let old = format!("/rvswitch/ipam/sw/{base}.80");
    etcd_put(&etcd, &old, r#"{"host":"ha","endpoint":"old-claim"}"#);
    a.stop();
    a.spawn();
    eventually(Duration::from_secs(15), || {
        !etcd_keys(&etcd, "/rvswitch/ipam/sw/").contains(&old)
    })
    .expect("an unheld claim without owner key is given back after a start");
    assert!(etcd_keys(&etcd, "/rvswitch/ipam/sw/").contains(&theirs));
}

#[test]
fn a_store_with_authentication_takes_a_user_and_refuses_anonymous_hosts() {
    if !etcd_or_skip("a_store_with_authentication_takes_a_user_and_refuses_anonymous_hosts") {
        return;
    }
    let etcd = Etcd::start(Ipv4Addr::LOCALHOST);
    let endpoints: Vec<String> = etcd.members.iter().map(|m| m.client.clone()).collect();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = etcd_client::Client::connect(endpoints, None).await.unwrap();
        c.role_add("root").await.unwrap();
        c.user_add("root", "s3cret", None).await.unwrap();
        c.user_grant_role("root", "root").await.unwrap();
        c.auth_enable().await.unwrap();
    });
    let dir = std::env::temp_dir().join(unique("rvsau"));
    std::fs::create_dir_all(&dir).unwrap();
    let pw = dir.join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let a = Host::start_with(
        "ha",
        "10.99.0.1",
        &[
            "--store",
            &etcd.url(),
            "--store-user",
            "root",
            "--store-password-file",
            pw.to_str().unwrap(),
        ],
    );
    assert_eq!(a.members(), [("ha".to_string(), "10.99.0.1".to_string())]);
    // Without credentials, or with wrong ones: the daemon does not start,
    // and says why.
    std::fs::write(&pw, "wrong").unwrap();
    for extra in [
        vec!["--store", &etcd.url()],
        vec![
            "--store",
            &etcd.url(),
            "--store-user",
            "root",
            "--store-password-file",
            pw.to_str().unwrap(),
        ],
    ] {
        let e = host_b_refused(&dir, &extra);
        assert!(e.contains("cluster store"), "{extra:?}: {e}");
        let why = e
            .lines()
            .find(|l| l.contains("cluster store"))
            .unwrap_or_default();
        println!("refused: {}", why.trim());
    }
    assert_eq!(a.members().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Start a daemon as host "hb" (`10.99.0.2`) under `dir` with `extra`
/// options, expecting it to refuse; what it said.
fn host_b_refused(dir: &Path, extra: &[&str]) -> String {
    let o = Command::new(common::BIN)
        .arg("daemon")
        .arg("--test-memory-ports")
        .arg("--socket")
        .arg(dir.join("b.sock"))
        .arg("--state-dir")
        .arg(dir.join("b"))
        .args(["--vtep", "10.99.0.2", "--host-name", "hb"])
        .args(extra)
        .output()
        .unwrap();
    assert!(!o.status.success(), "{extra:?} started");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One etcd member serving clients over TLS only, with client certificates
/// required (`--client-cert-auth`); its certificates made with openssl.
struct TlsEtcd {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl Drop for TlsEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `openssl ARGS` in `dir`, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA (`NAME-ca.pem`) and, signed by it, a certificate for `usage`
/// (`serverAuth` with an IP SAN 127.0.0.1, or `clientAuth`).
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}-ca.key"),
            "-out",
            &format!("{name}-ca.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
        ],
    );
}

fn make_cert(dir: &Path, ca: &str, name: &str, usage: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

impl TlsEtcd {
    fn start() -> TlsEtcd {
        let dir = std::env::temp_dir().join(unique("rvstls"));
        std::fs::create_dir_all(&dir).unwrap();
        make_ca(&dir, "good");
        make_ca(&dir, "other");
        make_cert(&dir, "good", "server", "serverAuth");
        make_cert(&dir, "good", "client", "clientAuth");
        let ip = Ipv4Addr::LOCALHOST;
        let (port, peer) = (free_port(ip), free_port(ip));
        let client_url = format!("https://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
        let child = Command::new(ETCD)
            .current_dir(&dir)
            .args(["--name", "t0", "--data-dir", "t0.etcd"])
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t0={peer_url}")])
            .args(["--cert-file", "server.pem", "--key-file", "server.key"])
            .args(["--trusted-ca-file", "good-ca.pem", "--client-cert-auth"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let e = TlsEtcd { dir, port, child };
        let up = eventually(Duration::from_secs(20), || {
            Command::new("curl")
                .current_dir(&e.dir)
                .args(["-s", "--cacert", "good-ca.pem", "--cert", "client.pem"])
                .args(["--key", "client.key"])
                .arg(format!("https://127.0.0.1:{}/health", e.port))
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(r#""health":"true""#))
        });
        assert!(
            up.is_some(),
            "TLS etcd not healthy: {}",
            std::fs::read_to_string(e.dir.join("etcd.log")).unwrap_or_default()
        );
        e
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

/// `--store etcds://…` with `--store-ca`, `--store-cert`, `--store-key`:
/// the daemon joins a store that takes TLS clients with certificates only;
/// without a client certificate, with a CA that did not sign the server's,
/// over plain etcd:// or with no CA at all, it does not start, and says why.
#[test]
fn a_store_over_tls_takes_a_client_certificate_and_refuses_without_one() {
    if !etcd_or_skip("a_store_over_tls_takes_a_client_certificate_and_refuses_without_one") {
        return;
    }
    let etcd = TlsEtcd::start();
    let url = format!("etcds://127.0.0.1:{}", etcd.port);
    let (ca, cert, key) = (
        etcd.file("good-ca.pem"),
        etcd.file("client.pem"),
        etcd.file("client.key"),
    );
    let a = Host::start_with(
        "ht",
        "10.99.0.1",
        &[
            "--store",
            &url,
            "--store-ca",
            &ca,
            "--store-cert",
            &cert,
            "--store-key",
            &key,
        ],
    );
    assert_eq!(a.members(), [("ht".to_string(), "10.99.0.1".to_string())]);
    let plain = format!("etcd://127.0.0.1:{}", etcd.port);
    let other_ca = etcd.file("other-ca.pem");
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["--store", &url, "--store-ca", &ca], "cluster store"),
        (
            vec![
                "--store",
                &url,
                "--store-ca",
                &other_ca,
                "--store-cert",
                &cert,
                "--store-key",
                &key,
            ],
            "cluster store",
        ),
        (vec!["--store", &plain], "cluster store"),
        (
            vec!["--store", &url, "--store-cert", &cert, "--store-key", &key],
            "needs --store-ca",
        ),
        (vec!["--store", &plain, "--store-ca", &ca], "etcds://"),
    ];
    for (extra, why) in cases {
        let e = host_b_refused(&etcd.dir.join(unique("b")), &extra);
        assert!(e.contains(why), "{extra:?}: {e}");
        println!(
            "refused: {}",
            e.lines()
                .rfind(|l| l.contains(why))
                .unwrap_or_default()
                .trim()
        );
    }
    assert_eq!(a.members().len(), 1, "no refused host registered");
}

/// A tcpdump of VXLAN datagrams on link `dev` of this namespace into a
/// pcap file; stopped (and the file removed) on drop.
struct Capture {
    child: Option<Child>,
    file: PathBuf,
}

impl Capture {
    fn start(dev: &str) -> Capture {
        let file = std::env::temp_dir().join(format!("{}.pcap", unique("rvcap")));
        let err = file.with_extension("err");
        let child = Command::new("tcpdump")
            .args(["-i", dev, "-nn", "-U", "--immediate-mode", "-w"])
            .arg(&file)
            .args(["udp", "port", "4789"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("tcpdump (apt-get install tcpdump)");
        let listening = eventually(Duration::from_secs(5), || {
            std::fs::read_to_string(&err).is_ok_and(|s| s.contains("listening on"))
        });
        let _ = std::fs::remove_file(&err);
        assert!(listening.is_some(), "tcpdump never started listening");
        Capture {
            child: Some(child),
            file,
        }
    }

    /// Stop the capture; the inner frames of the VXLAN datagrams it saw.
    fn inner_frames(mut self) -> Vec<Vec<u8>> {
        // Give the last datagrams time to reach the file, then SIGTERM
        // (tcpdump flushes and exits).
        std::thread::sleep(Duration::from_millis(300));
        if let Some(c) = self.child.take() {
            common::terminate(c);
        }
        let pcap = std::fs::read(&self.file).unwrap();
        assert!(pcap.len() >= 24, "pcap header");
        let mut out = Vec::new();
        let mut at = 24;
        while at + 16 <= pcap.len() {
            let n = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
            let d = &pcap[at + 16..(at + 16 + n).min(pcap.len())];
            at += 16 + n;
            // Ethernet / IPv4 / UDP / VXLAN.
            if d.len() < 14 + 20 || d[12..14] != [8, 0] {
                continue;
            }
            let ihl = usize::from(d[14] & 0xf) * 4;
            let inner = 14 + ihl + 8 + 8;
            if d.len() > inner {
                out.push(d[inner..].to_vec());
            }
        }
        out
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The target of a broadcast ARP request or a multicast Neighbor
/// Solicitation, if `f` is one.
fn asked_for(f: &[u8]) -> Option<std::net::IpAddr> {
    let et = u16::from_be_bytes(f.get(12..14)?.try_into().ok()?);
    match et {
        0x0806 if f[..6] == [0xff; 6] && f.get(20..22)? == [0, 1] => {
            let t: [u8; 4] = f.get(38..42)?.try_into().ok()?;
            Some(t.into())
        }
        0x86dd if f[0] & 1 == 1 && *f.get(20)? == 58 && *f.get(54)? == 135 => {
            let t: [u8; 16] = f.get(62..78)?.try_into().ok()?;
            Some(t.into())
        }
        _ => None,
    }
}

/// Whether `f` is an ICMP or ICMPv6 echo request.
fn is_echo_request(f: &[u8]) -> bool {
    match f.get(12..14) {
        Some([8, 0]) => {
            f.get(23) == Some(&1) && f.get(14 + usize::from(f[14] & 0xf) * 4) == Some(&8)
        }
        Some([0x86, 0xdd]) => f.get(20) == Some(&58) && f.get(54) == Some(&128),
        _ => false,
    }
}

/// The neighbors (address → MAC) host `h`'s VTEP port for `net` answers
/// ARP/ND for, and its counters.
fn neighbors(h: &Host, net: &str) -> (Vec<(String, String)>, Value) {
    let port = format!("vx-{}", &net[..12]);
    let v = common::ctl_json(&h.socket(), &["remote", "list", &port]);
    let n = v["neighbors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap().to_string(),
                e[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (n, v["stats"].clone())
}

#[test]
fn no_broadcast_for_a_known_remote_reaches_the_underlay() {
    let test = "no_broadcast_for_a_known_remote_reaches_the_underlay";
    if !etcd_or_skip(test) || !root_or_skip(test) {
        return;
    }
    let underlay = Underlay::new(9);
    let host_ns: Vec<Netns> = (0..2).map(|i| Netns::new(&format!("sh{i}"))).collect();
    for (i, ns) in host_ns.iter().enumerate() {
        underlay.join(ns, i as u8 + 1);
    }
    let etcd = Etcd::start("10.251.9.254".parse().unwrap());
    let hosts: Vec<Host> = host_ns
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            Host::start_in(
                Some(&ns.name),
                &format!("s{i}"),
                &format!("10.251.9.{}", i + 1),
                &["--store", &etcd.url(), "--store-ttl", "5"],
            )
        })
        .collect();
    // A global network with IPv4 from the cluster and an IPv6 subnet the
    // engine hands out from (the registry carries both addresses).
    let nets: Vec<String> = (0..2).map(|k| docker_id(&format!("sup{k}"), 0)).collect();
    for (h, net) in hosts.iter().zip(&nets) {
        let r = h.docker(
            "NetworkDriver.CreateNetwork",
            &json!({"NetworkID": net,
                    "Options": {"com.docker.network.internal": true,
                                "com.docker.network.enable_ipv6": true,
                                "com.docker.network.generic": {
                                    "rvswitch.scope": "global", "rvswitch.name": "quiet"}},
                    "IPv4Data": [],
                    "IPv6Data": [{"AddressSpace": "GlobalDefault", "Pool": "fd42:9::/64"}]}),
        );
        assert!(r.get("Err").is_none(), "{r}");
    }
    let (_, subnets) = global_of(&hosts[0], "quiet");
    let c: Vec<Netns> = (0..2).map(|i| Netns::new(&format!("sc{i}"))).collect();
    let mut eps = Vec::new();
    for k in 0..2 {
        let v6 = format!("fd42:9::{:x}", 0xa + k);
        let ep = docker_id("sup-ep", k);
        let r = hosts[k].docker(
            "NetworkDriver.CreateEndpoint",
            &json!({"NetworkID": nets[k], "EndpointID": ep,
                    "Interface": {"Address": "", "AddressIPv6": format!("{v6}/64"),
                                  "MacAddress": ""},
                    "Options": {}}),
        );
        assert!(r.get("Err").is_none(), "{r}");
        let v4 = r["Interface"]["Address"].as_str().unwrap().to_string();
        let mac = r["Interface"]["MacAddress"].as_str().unwrap().to_string();
        let j = hosts[k].docker(
            "NetworkDriver.Join",
            &json!({"NetworkID": nets[k], "EndpointID": ep,
                    "SandboxKey": format!("/var/run/netns/{}", c[k].name), "Options": {}}),
        );
        let tap = j["InterfaceName"]["SrcName"].as_str().unwrap().to_string();
        host_ns[k].ip(&["link", "set", &tap, "netns", &c[k].name]);
        c[k].ip(&["link", "set", &tap, "name", "eth0"]);
        c[k].ip(&["addr", "add", &v4, "dev", "eth0"]);
        c[k].ip(&["addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"]);
        c[k].ip(&["link", "set", "eth0", "up"]);
        let v4 = v4.split('/').next().unwrap().to_string();
        eps.push((v4, v6, mac));
    }
    // Each host's VTEP port knows the other's endpoint: MAC and addresses.
    for (k, other) in [(0, 1), (1, 0)] {
        let (v4, v6, mac) = &eps[other];
        let want = [(v4.clone(), mac.clone()), (v6.clone(), mac.clone())];
        assert!(
            eventually(Duration::from_secs(5), || {
                let (n, _) = neighbors(&hosts[k], &nets[k]);
                want.iter().all(|w| n.contains(w))
            })
            .is_some(),
            "host {k} never learned {want:?}: {:?}",
            neighbors(&hosts[k], &nets[k]).0
        );
    }
    // An address of the subnet that nobody holds (its last host address).
    let unknown = {
        let (net, len) = subnets[0].split_once('/').unwrap();
        let net: u32 = net.parse::<Ipv4Addr>().unwrap().into();
        let len: u32 = len.parse().unwrap();
        Ipv4Addr::from(net + (1u32 << (32 - len)) - 2).to_string()
    };
    for ns in &c {
        ns.ip(&["neigh", "flush", "all"]);
    }

    let cap = Capture::start(&underlay.0);
    let a = &c[0];
    let (b4, b6) = (eps[1].0.clone(), eps[1].1.clone());
    assert!(ping_once(a, &b4), "A pings B over IPv4");
    assert!(
        a.exec("ping", &["-6", "-c", "1", "-W", "1", &b6])
            .status
            .success(),
        "A pings B over IPv6"
    );
    // Someone nobody knows is still asked for, through the underlay.
    assert!(!ping_once(a, &unknown), "{unknown} answers");
    let frames = cap.inner_frames();

    let echoes = frames.iter().filter(|f| is_echo_request(f)).count();
    assert!(
        echoes >= 2,
        "the capture saw the pings: {echoes} echo requests"
    );
    let asked: Vec<std::net::IpAddr> = frames.iter().filter_map(|f| asked_for(f)).collect();
    let unknown_ip: std::net::IpAddr = unknown.parse().unwrap();
    assert!(
        asked.contains(&unknown_ip),
        "the who-has for {unknown} was flooded over the underlay: {asked:?}"
    );
    let known: Vec<std::net::IpAddr> = eps
        .iter()
        .flat_map(|(v4, v6, _)| [v4.parse().unwrap(), v6.parse().unwrap()])
        .collect();
    let leaked: Vec<_> = asked.iter().filter(|t| known.contains(t)).collect();
    println!(
        "underlay: {} VXLAN datagrams, {echoes} echo requests, ARP/NS broadcasts for known \
         endpoints: {}, for others: {}",
        frames.len(),
        leaked.len(),
        asked.len() - leaked.len()
    );
    assert!(
        leaked.is_empty(),
        "broadcasts for known remotes: {leaked:?}"
    );
    // The requests were answered by the hosts' VTEP ports, and counted.
    let (_, sa) = neighbors(&hosts[0], &nets[0]);
    let (_, sb) = neighbors(&hosts[1], &nets[1]);
    let count = |k: &str| sa[k].as_u64().unwrap_or(0) + sb[k].as_u64().unwrap_or(0);
    println!(
        "suppressed: {} ARP, {} ND (A: {sa}, B: {sb})",
        count("arp_suppressed"),
        count("nd_suppressed")
    );
    assert!(sa["arp_suppressed"].as_u64() >= Some(1), "{sa}");
    assert!(sa["nd_suppressed"].as_u64() >= Some(1), "{sa}");
    drop(c);
    drop(hosts);
    drop(etcd);
}

/// `POST path` with `body` on host `h`'s API: (status, answer).
fn api_post(h: &Host, path: &str, body: &Value) -> (u16, Value) {
    let r = rvswitch::client::Client::new(&h.socket())
        .unwrap()
        .post(path, body)
        .unwrap();
    (r.status, r.json())
}

fn api_delete(h: &Host, path: &str) -> (u16, String) {
    let r = rvswitch::client::Client::new(&h.socket())
        .unwrap()
        .delete(path)
        .unwrap();
    (r.status, r.error_message())
}

#[test]
fn a_network_made_through_the_api_can_be_global_and_is_the_same_on_every_host() {
    let test = "a_network_made_through_the_api_can_be_global_and_is_the_same_on_every_host";
    if !etcd_or_skip(test) {
        return;
    }
    let etcd = Etcd::start(Ipv4Addr::LOCALHOST);
    let a = Host::start(&etcd, "ha", "10.99.0.1", 5);
    let b = Host::start(&etcd, "hb", "10.99.0.2", 5);
    // ctl on A, the API on B: one VNI, one subnet.
    let out = common::ctl_ok(
        &a.socket(),
        &[
            "network",
            "create",
            "green",
            "--scope",
            "global",
            "--internal",
        ],
    );
    assert!(out.contains("created global network green (VNI"), "{out}");
    let (st, v) = api_post(
        &b,
        "/v1/cnm/networks",
        &json!({"name": "green", "scope": "global", "internal": true}),
    );
    assert_eq!(st, 201, "{v}");
    let (vni, subnets) = global_of(&a, "green");
    assert!(vni > 0 && subnets.len() == 1, "{vni} {subnets:?}");
    assert_eq!(global_of(&b, "green"), (vni, subnets.clone()));
    assert_eq!(v["kind"]["vni"], vni, "{v}");
    // Docker's and the API's global networks are one kind of thing: a
    // Docker network of the same name on a third host joins it.
    let c = Host::start(&etcd, "hc", "10.99.0.3", 5);
    let r = create_global(&c, &docker_id("green", 0), "green", None);
    assert!(r.get("Err").is_none(), "{r}");
    assert_eq!(global_of(&c, "green"), (vni, subnets.clone()));
    // ctl says which networks are global.
    let list = common::ctl_ok(&a.socket(), &["network"]);
    let row = list.lines().find(|l| l.contains("green")).unwrap();
    assert!(row.contains("global"), "{list}");

    // An endpoint made through the API takes its address from the cluster
    // and is published: the other hosts see it.
    let (st, e) = api_post(&a, "/v1/cnm/networks/green/endpoints", &json!({"id": "g1"}));
    assert_eq!(st, 201, "{e}");
    let addr = e["ipv4"].as_str().unwrap().to_string();
    let pool = rvs_cnm::prefix::Cidr::parse_prefix(&subnets[0]).unwrap();
    assert!(
        pool.contains(rvs_cnm::prefix::Cidr::parse_addr(&addr).unwrap().addr),
        "{addr} in {pool}"
    );
    assert!(
        eventually(Duration::from_secs(5), || remote_count(&b, "green") == 1).is_some(),
        "B sees A's endpoint"
    );
    // The same address asked for on B is refused with who holds it.
    let (st, e) = api_post(
        &b,
        "/v1/cnm/networks/green/endpoints",
        &json!({"id": "g2", "address": addr}),
    );
    assert_eq!(st, 409, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("held by endpoint"),
        "{e}"
    );

    // Bad input: a 4xx with the reason, and nothing made.
    let before = b.cnm_networks().len();
    for (body, status, why) in [
        (
            json!({"name": "green", "scope": "global", "subnet": "10.77.0.0/24", "internal": true}),
            409,
            "created by",
        ),
        (json!({"name": "bad name"}), 400, "not usable"),
        (json!({"name": "n1", "vni": 7}), 400, "global networks"),
        (
            json!({"name": "n1", "subnet": "10.1.2.0/33"}),
            400,
            "subnet",
        ),
        (
            json!({"name": "n1", "scope": "galactic"}),
            400,
            "invalid request body",
        ),
        (json!({"name": "n1", "colour": "red"}), 400, "unknown field"),
    ] {
        let (st, v) = api_post(&b, "/v1/cnm/networks", &body);
        assert_eq!(st, status, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(why), "{body}: {v}");
    }
    assert_eq!(b.cnm_networks().len(), before, "nothing half made");
    // Docker's networks are Docker's to remove.
    let (st, e) = api_delete(&c, &format!("/v1/cnm/networks/{}", docker_id("green", 0)));
    assert_eq!(st, 409, "{e}");
    assert_eq!(api_delete(&c, "/v1/cnm/networks/nope").0, 404);
    // Deleting the endpoint gives its address back to the cluster;
    // deleting the network removes it here only.
    assert_eq!(api_delete(&a, "/v1/cnm/networks/green/endpoints/g1").0, 204);
    let (st, e) = api_post(
        &b,
        "/v1/cnm/networks/green/endpoints",
        &json!({"id": "g2", "address": addr}),
    );
    assert_eq!(st, 201, "the released address is free again: {e}");
    let out = common::ctl_ok(&a.socket(), &["network", "rm", "green"]);
    assert!(out.contains("deleted network green"), "{out}");
    assert!(a.cnm_networks().is_empty());
    assert_eq!(global_of(&b, "green").0, vni, "B keeps it");

    // A daemon outside a cluster refuses a global network, and says why.
    let solo = Host::start_with("solo", "10.99.0.9", &[]);
    let (st, v) = api_post(
        &solo,
        "/v1/cnm/networks",
        &json!({"name": "green", "scope": "global"}),
    );
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("--store"), "{v}");
    // ... and makes a local one.
    let (st, v) = api_post(
        &solo,
        "/v1/cnm/networks",
        &json!({"name": "green", "subnet": "10.1.2.0/24"}),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["subnets"][0]["gateway"], "10.1.2.1", "{v}");
}

impl Etcd {
    /// etcd's own counters (its Prometheus `/metrics`) for the families
    /// named: the store's (`etcd_mvcc_*`: every member applies every
    /// write) from the member that counted most, the others (watch events
    /// sent, bytes: each member serves its own clients) summed.
    fn counters(&self, names: &[&str]) -> std::collections::BTreeMap<String, f64> {
        use std::io::{Read, Write};
        let mut out: std::collections::BTreeMap<String, f64> =
            names.iter().map(|n| (n.to_string(), 0.0)).collect();
        for m in &self.members {
            let mut this: std::collections::BTreeMap<String, f64> =
                names.iter().map(|n| (n.to_string(), 0.0)).collect();
            let addr = m.client.trim_start_matches("http://");
            let Ok(mut s) = TcpStream::connect(addr) else {
                continue;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            for line in body.lines().filter(|l| !l.starts_with('#')) {
                let Some((key, val)) = line.rsplit_once(' ') else {
                    continue;
                };
                let fam = key.split('{').next().unwrap_or(key);
                if let (Some(v), Ok(x)) = (this.get_mut(fam), val.parse::<f64>()) {
                    *v += x;
                }
            }
            for (k, v) in this {
                let o = out.get_mut(&k).expect("named");
                if k.starts_with("etcd_mvcc_") {
                    *o = o.max(v);
                } else {
                    *o += v;
                }
            }
        }
        out
    }
}

/// The scale bench (`bench/cluster-scale`; ignored in the test run): N
/// endpoints (RVS_SCALE_N, default 300) created at once on H hosts
/// (RVS_SCALE_HOSTS, default 3, memory-port daemons) on one global network
/// of a real 3-member etcd. Prints the time until every endpoint is
/// created, the time until every host has every other host's endpoints in
/// its remote table (full reachability), and etcd's write and watch rates
/// over that time from its own counters. Asserts only that the counts are
/// right.
#[test]
#[ignore = "a benchmark: bench/cluster-scale runs it"]
fn scale_n_endpoints_across_hosts() {
    if !etcd_or_skip("scale_n_endpoints_across_hosts") {
        return;
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (n, nh) = (env("RVS_SCALE_N", 300), env("RVS_SCALE_HOSTS", 3).max(1));
    let etcd = Etcd::start(Ipv4Addr::LOCALHOST);
    let hosts: Vec<Host> = (0..nh)
        .map(|k| {
            Host::start(
                &etcd,
                &format!("s{k}"),
                &format!("10.98.{}.{}", k / 250, k % 250 + 1),
                10,
            )
        })
        .collect();
    for (k, h) in hosts.iter().enumerate() {
        let r = create_global(
            h,
            &docker_id(&format!("net{k}"), 0),
            "scale",
            Some("10.128.0.0/16"),
        );
        assert!(r.get("Err").is_none(), "{r}");
    }
    let fams = [
        "etcd_mvcc_put_total",
        "etcd_mvcc_txn_total",
        "etcd_mvcc_delete_total",
        "etcd_debugging_mvcc_events_total",
        "etcd_network_client_grpc_received_bytes_total",
        "etcd_network_client_grpc_sent_bytes_total",
    ];
    let before = etcd.counters(&fams);
    let t0 = Instant::now();
    let per_host: Vec<usize> = std::thread::scope(|s| {
        let hs: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(k, h)| {
                s.spawn(move || {
                    let mut made = 0;
                    for i in (k..n).step_by(nh) {
                        let r =
                            new_endpoint(h, &docker_id(&format!("net{k}"), 0), &docker_id("sc", i));
                        assert!(r.get("Err").is_none(), "{}: {r}", h.name);
                        made += 1;
                    }
                    made
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = t0.elapsed();
    let settle = eventually(Duration::from_secs(120), || {
        hosts
            .iter()
            .zip(&per_host)
            .all(|(h, own)| remote_count(h, "scale") == (n - own) as u64)
    })
    .expect("every host sees every other host's endpoints within 120 s");
    let full = created + settle;
    let after = etcd.counters(&fams);
    let secs = full.as_secs_f64();
    println!("scale: {n} endpoints on {nh} hosts, one global network, 3 etcd members");
    println!(
        "scale: created in {:.2} s ({:.0} endpoints/s); full reachability {:.2} s after the first call ({:.3} s after the last)",
        created.as_secs_f64(),
        n as f64 / created.as_secs_f64(),
        secs,
        settle.as_secs_f64()
    );
    for f in fams {
        let d = after[f] - before[f];
        println!("scale: {f} +{d:.0} ({:.0}/s)", d / secs);
    }
    println!(
        "scale: per endpoint: {:.1} puts, {:.1} txns, {:.1} watch events",
        (after[fams[0]] - before[fams[0]]) / n as f64,
        (after[fams[1]] - before[fams[1]]) / n as f64,
        (after[fams[3]] - before[fams[3]]) / n as f64
    );
}

/// The A records host `h`'s embedded DNS gives `name`, asked from
/// namespace `c` at gateway `gw` (empty: no address for it).
fn dns_a(c: &Netns, gw: Ipv4Addr, name: &str) -> Vec<String> {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};
    static ID: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
    let id = ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let q = m.to_vec().unwrap();
    let s = rvs_drivers::netns::in_netns(&c.name, || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.connect((gw, 53)).unwrap();
        s
    })
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 4096];
    // The first query may wait for the gateway to learn the node's MAC.
    for _ in 0..3 {
        s.send(&q).unwrap();
        while let Ok(n) = s.recv(&mut buf) {
            let r = Message::from_vec(&buf[..n]).expect("the answer decodes");
            if r.metadata.id == id {
                return r.answers.iter().map(|a| a.data.to_string()).collect();
            }
        }
    }
    panic!("no DNS answer to {name} from {gw}");
}

#[test]
fn names_of_an_endpoint_on_another_host_resolve_on_this_hosts_gateway() {
    let test = "names_of_an_endpoint_on_another_host_resolve_on_this_hosts_gateway";
    if !etcd_or_skip(test) || !root_or_skip(test) {
        return;
    }
    // Host A (real ports) in a namespace-host on an underlay bridge; host
    // B (memory ports) here, where etcd listens.
    let underlay = Underlay::new(13);
    let a_ns = Netns::new("nh0");
    underlay.join(&a_ns, 1);
    let etcd = Etcd::start("10.251.13.254".parse().unwrap());
    let store = ["--store", &etcd.url(), "--store-ttl", "3"];
    // Names that are not the network's go to an upstream that refuses at
    // once, so "no such name" is answered quickly.
    let mut a_args = store.to_vec();
    a_args.extend(["--dns-upstream", "127.0.0.1:9"]);
    let a = Host::start_in(Some(&a_ns.name), "na", "10.251.13.1", &a_args);
    let b = Host::start(&etcd, "nb", "10.251.13.2", 3);
    // One global network on both, with a gateway (so a DNS) on A.
    let (net_a, net_b) = (docker_id("dnsa", 0), docker_id("dnsb", 0));
    for (h, id) in [(&a, &net_a), (&b, &net_b)] {
        let r = h.docker(
            "NetworkDriver.CreateNetwork",
            &json!({"NetworkID": id,
                    "Options": {"com.docker.network.generic": {
                        "rvswitch.scope": "global", "rvswitch.name": "named"}},
                    "IPv4Data": [], "IPv6Data": []}),
        );
        assert!(r.get("Err").is_none(), "{}: {r}", h.name);
    }
    let (_, subnets) = global_of(&a, "named");
    let pool: Ipv4Addr = subnets[0].split('/').next().unwrap().parse().unwrap();
    let gw = Ipv4Addr::from(u32::from(pool) + 1);
    let c = Netns::new("nc0");
    attach(&a, &a_ns, &net_a, &docker_id("epa", 0), &c);

    // B's endpoint, and two names in B's table of the network: one for the
    // endpoint, one for an address no endpoint of B has (not published).
    let ep_b = docker_id("epb", 0);
    let r = new_endpoint(&b, &net_b, &ep_b);
    assert!(r.get("Err").is_none(), "{r}");
    let addr_b = r["Interface"]["Address"].as_str().unwrap();
    let addr_b = addr_b.split('/').next().unwrap().to_string();
    let domain_b = format!("dk-{}", &net_b[..12]);
    common::ctl_ok(&b.socket(), &["name", "set", &domain_b, "Web", &addr_b]);
    common::ctl_ok(&b.socket(), &["name", "set", &domain_b, "db", "192.0.2.7"]);
    let t0 = Instant::now();
    eventually(Duration::from_secs(10), || {
        dns_a(&c, gw, "web.") == [addr_b.clone()]
    })
    .unwrap_or_else(|| panic!("B's name never resolved on A: {:?}", dns_a(&c, gw, "web.")));
    println!("B's name resolves on A {:?} after it was set", t0.elapsed());
    assert_eq!(dns_a(&c, gw, "WEB."), vec![addr_b.clone()], "any case");
    assert!(dns_a(&c, gw, "db.").is_empty(), "not an endpoint's name");
    // Local to the network: B's own names table is untouched, and A's
    // stored names stay empty (the remote ones are not stored).
    let a_names = common::ctl_json(
        &a.socket(),
        &["name", "list", &format!("dk-{}", &net_a[..12])],
    );
    assert_eq!(a_names, json!([]), "remote names are not stored on A");

    // B removes its endpoint: the name goes from A's DNS.
    let r = b.docker(
        "NetworkDriver.DeleteEndpoint",
        &json!({"NetworkID": net_b, "EndpointID": ep_b}),
    );
    assert!(r.get("Err").is_none(), "{r}");
    eventually(Duration::from_secs(10), || dns_a(&c, gw, "web.").is_empty())
        .unwrap_or_else(|| panic!("B's name still resolves on A after its endpoint left"));

    // A name of a new endpoint, then B dies: gone when its lease expires.
    let ep_b2 = docker_id("epb", 1);
    let r = new_endpoint(&b, &net_b, &ep_b2);
    assert!(r.get("Err").is_none(), "{r}");
    let addr_b2 = r["Interface"]["Address"].as_str().unwrap();
    let addr_b2 = addr_b2.split('/').next().unwrap().to_string();
    common::ctl_ok(&b.socket(), &["name", "set", &domain_b, "api", &addr_b2]);
    eventually(Duration::from_secs(10), || {
        dns_a(&c, gw, "api.") == [addr_b2.clone()]
    })
    .expect("B's second name resolves on A");
    let mut b = b;
    b.kill9();
    eventually(Duration::from_secs(3 + 5), || {
        dns_a(&c, gw, "api.").is_empty()
    })
    .expect("B's names leave A's DNS with B's lease");
    drop(c);
    drop(a);
    drop(b);
    drop(etcd);
}

#[test]
fn two_hosts_filling_a_small_subnet_at_once_never_get_the_same_address() {
    if !etcd_or_skip("two_hosts_filling_a_small_subnet_at_once_never_get_the_same_address") {
        return;
    }
    let etcd = Etcd::start(Ipv4Addr::LOCALHOST);
    let hosts = [
        Host::start(&etcd, "fa", "10.99.0.1", 5),
        Host::start(&etcd, "fb", "10.99.0.2", 5),
    ];
    let nets: Vec<String> = (0..2).map(|k| docker_id(&format!("small{k}"), 0)).collect();
    for (h, net) in hosts.iter().zip(&nets) {
        let r = create_global(h, net, "small", Some("10.98.7.0/27"));
        assert!(r.get("Err").is_none(), "{r}");
    }
    let n = hosts[0]
        .cnm_networks()
        .into_iter()
        .find(|n| n["name"] == "small")
        .unwrap();
    // 30 host addresses in a /27, less the gateway if it has one.
    let free = 30 - usize::from(n["subnets"][0]["gateway"].is_string());
    // Three callers per host allocate until the subnet is full: the
    // hosts' cursors run into each other's addresses, and the last ones
    // find what is left by reading the claims.
    let got: Vec<(usize, String)> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (k, h) in hosts.iter().enumerate() {
            for t in 0..3 {
                let net = &nets[k];
                handles.push(s.spawn(move || {
                    let mut out = Vec::new();
                    for i in 0.. {
                        let r = new_endpoint(h, net, &docker_id(&format!("f{k}{t}"), i));
                        match r["Interface"]["Address"].as_str() {
                            Some(a) => out.push((k, a.to_string())),
                            None => {
                                let e = r["Err"].as_str().unwrap_or_default();
                                assert!(e.contains("no free address"), "{}: {r}", h.name);
                                break;
                            }
                        }
                    }
                    out
                }));
            }
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let addrs: std::collections::BTreeSet<&str> = got.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(
        addrs.len(),
        got.len(),
        "no address handed out twice: {got:?}"
    );
    assert_eq!(got.len(), free, "every address handed out: {got:?}");
    let pool = rvs_cnm::prefix::Cidr::parse_prefix("10.98.7.0/27").unwrap();
    for (_, a) in &got {
        let c = rvs_cnm::prefix::Cidr::parse_addr(a).unwrap();
        assert!(pool.contains(c.addr) && c.len == 27, "{a} in {pool}");
    }
    for (k, host) in hosts.iter().enumerate() {
        let mine = got.iter().filter(|(h, _)| *h == k).count();
        assert!(mine > 0, "host {k} got none: {got:?}");
        assert_eq!(endpoint_count(host), mine, "a refused call made nothing");
    }
    // One claim key and one owner key per address, nothing else.
    assert_eq!(etcd_keys(&etcd, "/rvswitch/ipam/small/").len(), free);
    assert_eq!(etcd_keys(&etcd, "/rvswitch/ipam-owners/small/").len(), free);
}

#[test]
fn api_networks_whose_names_share_twelve_characters_get_their_own_domains() {
    if !etcd_or_skip("api_networks_whose_names_share_twelve_characters_get_their_own_domains") {
        return;
    }
    let etcd = Etcd::start(Ipv4Addr::LOCALHOST);
    let mut a = Host::start(&etcd, "ta", "10.99.0.1", 5);
    // Two global and two local networks; each pair shares its first 12
    // characters ("research-net").
    let made = [
        json!({"name": "research-net-a", "scope": "global", "internal": true}),
        json!({"name": "research-net-b", "scope": "global", "internal": true}),
        json!({"name": "research-netlocal-1", "subnet": "10.97.1.0/24"}),
        json!({"name": "research-netlocal-2", "subnet": "10.97.2.0/24"}),
    ];
    let mut domains = Vec::new();
    for body in &made {
        let (st, v) = api_post(&a, "/v1/cnm/networks", body);
        assert_eq!(st, 201, "{body}: {v}");
        domains.push(v["domain"].as_str().unwrap().to_string());
    }
    let distinct: std::collections::BTreeSet<&String> = domains.iter().collect();
    assert_eq!(distinct.len(), 4, "one domain each: {domains:?}");
    for d in &domains {
        let r = rvswitch::client::Client::new(&a.socket())
            .unwrap()
            .get(&format!("/v1/domains/{d}"))
            .unwrap();
        assert_eq!(r.status, 200, "{d}: {}", r.error_message());
    }
    // Each endpoint lands in its own network's domain.
    for (k, body) in made.iter().enumerate() {
        let name = body["name"].as_str().unwrap();
        let (st, v) = api_post(
            &a,
            &format!("/v1/cnm/networks/{name}/endpoints"),
            &json!({"id": format!("e{k}"), "address": if k < 2 { Value::Null } else { json!(format!("10.97.{}.5/24", k - 1)) }}),
        );
        assert_eq!(st, 201, "{name}: {v}");
    }
    let ports = common::ctl_json(&a.socket(), &["port", "list"]);
    for (k, d) in domains.iter().enumerate() {
        let here = ports
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["domain"] == d.as_str())
            .count();
        // The endpoint's port, and a global network's VTEP port.
        assert_eq!(here, if k < 2 { 2 } else { 1 }, "ports of {d}: {ports}");
    }
    // Stable: after a restart the networks are in the same domains, and
    // asking for a network again is asking for the same one.
    a.stop();
    a.spawn();
    for (body, d) in made.iter().zip(&domains) {
        let (st, v) = api_post(&a, "/v1/cnm/networks", body);
        assert_eq!(st, 201, "{body}: {v}");
        assert_eq!(v["domain"], d.as_str(), "{v}");
    }
}
