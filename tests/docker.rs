//! `docker network create -d rvswitch` against a real dockerd: the daemon
//! runs as a process with `--docker`, and everything is driven with the
//! docker CLI, judged with `docker exec … ping`, `ip -o link`, `rvswitch
//! ctl` and the CNM store.
//!
//! Needs root, a running dockerd and the image `rvs-busybox:latest`
//! (`scripts/docker-image` builds it; the tests call it too). Without them
//! each test prints SKIP (and fails under RVS_TEST_STRICT=1, as in CI,
//! where `.ci/run` starts dockerd).
//!
//! Every test has its own daemon (state dir, API socket) and its own driver
//! name (= plugin socket `/run/docker/plugins/<name>.sock`), so tests run
//! at once; containers, networks and the daemon are removed in `Drop`, in
//! that order, even when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rvs_drivers::testutil::unique;
use serde_json::Value;

mod common;
use common::BIN;
const IMAGE: &str = "rvs-busybox:latest";
const PLUGIN_DIR: &str = "/run/docker/plugins";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
}

/// `docker ARGS`, panicking with its output when it fails; stdout trimmed.
#[track_caller]
fn docker_ok(args: &[&str]) -> String {
    let o = docker(args);
    assert!(
        o.status.success(),
        "docker {args:?} failed: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout).trim().to_string()
}

/// `rvswitch daemon --docker` with a private state dir, API socket and
/// driver name; killed, its plugin socket and state removed on drop.
struct Rvs {
    child: Option<Child>,
    dir: PathBuf,
    /// The Docker driver name (`-d`), the plugin socket's stem.
    driver: String,
}

impl Rvs {
    fn start() -> Rvs {
        let dir = std::env::temp_dir().join(unique("rvsdk"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Rvs {
            child: None,
            dir,
            driver: unique("rvs"),
        };
        d.spawn();
        d
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }

    fn plugin_socket(&self) -> PathBuf {
        Path::new(PLUGIN_DIR).join(format!("{}.sock", self.driver))
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("daemon")
            .arg("--socket")
            .arg(self.socket())
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--docker")
            .arg("--docker-socket")
            .arg(self.plugin_socket())
            // Sweep every 3 s (not 60): every test then also shows the
            // running reconcile takes nothing Docker still has.
            .args(["--docker-reconcile-secs", "3"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(common::spawn_ready(&mut cmd, Some(&self.log())));
        assert!(
            self.plugin_socket().exists(),
            "ready without its plugin socket"
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// SIGTERM and wait: a clean exit that removes the plugin socket.
    fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            let st = common::terminate(c);
            assert!(st.success(), "daemon exited with {st}: {}", self.log_text());
            assert!(
                !self.plugin_socket().exists(),
                "the plugin socket outlived the daemon"
            );
        }
    }

    /// SIGKILL: no cleanup at all.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            let _ = c.wait();
        }
    }

    fn ctl_raw(&self, args: &[&str]) -> Output {
        common::ctl_raw(&self.socket(), args)
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        common::ctl_json(&self.socket(), args)
    }

    /// The switch's ports, less the uplink (shared by every network with a
    /// gateway, removed with the last of them).
    fn ports(&self) -> Vec<String> {
        let mut p = names(&self.json(&["port", "list"]));
        p.retain(|n| n != "uplink");
        p
    }

    /// Names of the switch's bridge domains.
    fn domains(&self) -> Vec<String> {
        let mut d = names(&self.json(&["domain", "list"]));
        d.retain(|n| n != rvswitch::fabric::UPLINK_DOMAIN);
        d
    }

    /// Create a network with this daemon's driver; removed on drop.
    #[track_caller]
    fn network(&self, extra: &[&str]) -> Net {
        let name = unique("rvn");
        let mut args = vec!["network", "create", "-d", &self.driver];
        args.extend_from_slice(extra);
        args.push(&name);
        let id = docker_ok(&args);
        Net { name, id }
    }
}

impl Drop for Rvs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- rvswitch daemon log ({}) ---\n{}",
                self.driver,
                self.log_text()
            );
        }
        self.kill9();
        // Containers removed while the daemon was down (a test that failed
        // then) leave their veth pairs: remove what the store names.
        if let Ok(snap) = rvs_cnm::Store::open(&self.state_dir()).and_then(|s| s.load()) {
            for e in snap.endpoints {
                for link in e.ifaces.host.iter().chain([&e.ifaces.sandbox]) {
                    let _ = Command::new("ip").args(["link", "del", link]).output();
                }
            }
        }
        // The uplink (made with the first network that has a gateway); its
        // routes go with it.
        let up = rvswitch::fabric::Uplink::for_driver(&self.driver);
        let _ = Command::new("ip")
            .args(["link", "del", &up.host_if])
            .output();
        let _ = std::fs::remove_file(self.plugin_socket());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// A Docker network, removed on drop.
struct Net {
    name: String,
    id: String,
}

impl Net {
    /// The switch's bridge domain for it.
    fn domain(&self) -> String {
        format!("dk-{}", &self.id[..12])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.name]);
    }
}

/// A running container (`sleep`), removed on drop.
struct Ctr {
    name: String,
}

impl Ctr {
    #[track_caller]
    fn run(net: &Net, extra: &[&str]) -> Ctr {
        // Owned first, so a half-made container is removed too.
        let c = Ctr {
            name: unique("rvc"),
        };
        let mut args = vec!["run", "-d", "--name", &c.name, "--network", &net.name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "sleep", "600"]);
        docker_ok(&args);
        c
    }

    fn exec(&self, args: &[&str]) -> Output {
        let mut a = vec!["exec", &self.name];
        a.extend_from_slice(args);
        docker(&a)
    }

    /// A field of the container's endpoint on `net`.
    fn net_field(&self, net: &Net, field: &str) -> String {
        docker_ok(&[
            "inspect",
            "-f",
            &format!(
                "{{{{(index .NetworkSettings.Networks \"{}\").{field}}}}}",
                net.name
            ),
            &self.name,
        ])
    }

    fn ip(&self, net: &Net) -> String {
        let ip = self.net_field(net, "IPAddress");
        assert!(
            !ip.is_empty(),
            "{} has no address on {}",
            self.name,
            net.name
        );
        ip
    }

    /// The container's init process, to enter its namespaces from the host.
    fn pid(&self) -> String {
        docker_ok(&["inspect", "-f", "{{.State.Pid}}", &self.name])
    }

    /// `ethtool -k IFACE` inside the container, run from the host.
    fn offloads(&self, iface: &str) -> String {
        let o = Command::new("nsenter")
            .args(["-t", &self.pid(), "-n", "ethtool", "-k", iface])
            .output()
            .unwrap();
        assert!(o.status.success(), "ethtool: {}", text(&o.stderr));
        text(&o.stdout)
    }

    /// The 8 hex digits naming the endpoint's interfaces and port.
    fn tag(&self, net: &Net) -> String {
        self.net_field(net, "EndpointID")[..8].to_string()
    }

    fn ping(&self, ip: &str) -> bool {
        self.exec(&["ping", "-c1", "-W2", ip]).status.success()
    }

    fn ping_eventually(&self, ip: &str, within: Duration) -> bool {
        let t = Instant::now();
        loop {
            if self.ping(ip) {
                return true;
            }
            if t.elapsed() > within {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

/// Links in the host namespace whose name contains `tag`.
/// `a` fetches /bin/busybox from the httpd on `ip`:8000 and digests it:
/// (md5 of its own copy, md5 of what arrived). A wrong checksum anywhere on
/// the path stalls TCP instead.
fn fetch_busybox(a: &Ctr, ip: &str) -> (Option<String>, Option<String>) {
    let digest = |o: Output| {
        text(&o.stdout)
            .split_whitespace()
            .next()
            .map(str::to_string)
    };
    let want = digest(a.exec(&["busybox", "md5sum", "/bin/busybox"]));
    let got = digest(a.exec(&[
        "sh",
        "-c",
        &format!("busybox wget -q -O - http://{ip}:8000/busybox | busybox md5sum"),
    ]));
    assert!(want.is_some());
    (want, got)
}

fn links_with(tag: &str) -> Vec<String> {
    let o = Command::new("ip").args(["-o", "link"]).output().unwrap();
    text(&o.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| n.contains(tag))
        .collect()
}

#[test]
fn two_containers_on_one_network_talk() {
    if !common::docker_or_skip("two_containers_on_one_network_talk") {
        return;
    }
    let d = Rvs::start();
    let n = d.network(&[]);
    let a = Ctr::run(&n, &[]);
    let b = Ctr::run(&n, &[]);
    let (ia, ib) = (a.ip(&n), b.ip(&n));
    assert!(
        a.ping_eventually(&ib, Duration::from_secs(5)),
        "a cannot ping b"
    );
    assert!(b.ping(&ia), "b cannot ping a");
    // TCP too (a wrong checksum would stall it): fetch a 2 MB file over HTTP
    // and compare digests.
    let o = b.exec(&["busybox", "httpd", "-p", "8000", "-h", "/bin"]);
    assert!(o.status.success(), "httpd: {}", text(&o.stderr));
    let (want, got) = fetch_busybox(&a, &ib);
    assert_eq!(got, want, "the file came over TCP damaged or not at all");
    // The plumbing is what the driver promises: by default the container's
    // eth0 is the switch's TAP (vnet headers, TSO on, so TCP crosses the
    // switch in 64 KiB super-frames), and nothing of it is left in the
    // host's namespace.
    let tag = a.tag(&n);
    assert!(d.ports().contains(&format!("ep-{tag}")));
    let flags = text(&a.exec(&["cat", "/sys/class/net/eth0/tun_flags"]).stdout);
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("eth0 is not a TAP ({e}): {flags:?}"));
    assert_eq!(flags & 0x0002, 0x0002, "IFF_TAP: {flags:#x}");
    assert_eq!(flags & 0x4000, 0x4000, "IFF_VNET_HDR: {flags:#x}");
    let k = a.offloads("eth0");
    assert!(
        k.contains("tcp-segmentation-offload: on") && k.contains("tx-checksumming: on"),
        "{k}"
    );
    assert_eq!(links_with(&tag), Vec::<String>::new(), "left in the host");
    assert!(d.domains().contains(&n.domain()));
    let inside = text(&a.exec(&["ip", "-o", "link", "show", "eth0"]).stdout);
    let mac = a.net_field(&n, "MacAddress");
    assert!(inside.contains(&mac), "eth0 does not carry {mac}: {inside}");
    // The CNM objects as rvswitch ctl shows them.
    let nets = d.json(&["network"]);
    let ours = nets
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == Value::String(n.id.clone()))
        .unwrap_or_else(|| panic!("{nets}"));
    assert_eq!(ours["domain"], Value::String(n.domain()));
    assert_eq!(ours["endpoints"], 2);
    let eps = d.json(&["endpoint"]).to_string();
    assert!(
        eps.contains(&mac) && eps.contains(&format!("ep-{tag}")),
        "{eps}"
    );
    let sbs = d.json(&["sandbox"]);
    assert_eq!(sbs.as_array().unwrap().len(), 2, "{sbs}");
    let table = String::from_utf8(d.ctl_raw(&["network"]).stdout).unwrap();
    assert!(
        table.contains("DOMAIN") && table.contains(&n.domain()),
        "{table}"
    );
}

#[test]
fn networks_are_kept_apart() {
    if !common::docker_or_skip("networks_are_kept_apart") {
        return;
    }
    let d = Rvs::start();
    // Isolated by default, like Docker's bridge networks (with
    // `rvswitch.routing=true` they join: see
    // `routing_networks_reach_each_other`).
    let n1 = d.network(&[]);
    let n2 = d.network(&[]);
    let a = Ctr::run(&n1, &[]);
    let b = Ctr::run(&n2, &[]);
    let c = Ctr::run(&n1, &[]);
    docker_ok(&["network", "connect", &n2.name, &c.name]);
    let (ia, ib) = (a.ip(&n1), b.ip(&n2));
    assert!(
        c.ping_eventually(&ia, Duration::from_secs(5)),
        "c cannot reach a on the first network"
    );
    assert!(
        c.ping_eventually(&ib, Duration::from_secs(5)),
        "c cannot reach b on the second network"
    );
    assert!(!a.ping(&ib), "a reached b across networks");
    assert!(!b.ping(&ia), "b reached a across networks");
    // Each still has its own gateway.
    let gw = a.net_field(&n1, "Gateway");
    assert!(a.ping(&gw), "a cannot reach its gateway {gw}");
}

#[test]
fn routing_networks_reach_each_other() {
    if !common::docker_or_skip("routing_networks_reach_each_other") {
        return;
    }
    let d = Rvs::start();
    let n1 = d.network(&["-o", "rvswitch.routing=true"]);
    let n2 = d.network(&["-o", "rvswitch.routing=true"]);
    let a = Ctr::run(&n1, &[]);
    let b = Ctr::run(&n2, &[]);
    let gw = a.net_field(&n1, "Gateway");
    assert!(
        a.ping_eventually(&gw, Duration::from_secs(5)),
        "a cannot reach its gateway {gw}"
    );
    let ib = b.ip(&n2);
    assert!(
        a.ping_eventually(&ib, Duration::from_secs(5)),
        "a cannot reach b through the gateways"
    );
    // TCP across the router.
    let o = b.exec(&["busybox", "httpd", "-p", "8000", "-h", "/bin"]);
    assert!(o.status.success(), "httpd: {}", text(&o.stderr));
    let (want, got) = fetch_busybox(&a, &ib);
    assert_eq!(
        got, want,
        "the file came across the router damaged or not at all"
    );
}

#[test]
fn disconnect_rm_and_network_rm_leave_nothing_behind() {
    if !common::docker_or_skip("disconnect_rm_and_network_rm_leave_nothing_behind") {
        return;
    }
    let mut d = Rvs::start();
    let n = d.network(&[]);
    let a = Ctr::run(&n, &[]);
    let b = Ctr::run(&n, &[]);
    let (ta, tb) = (a.tag(&n), b.tag(&n));
    // The TAP is in the container, not in the host.
    assert_eq!(links_with(&ta), Vec::<String>::new(), "a's TAP in the host");
    assert!(a.exec(&["ip", "link", "show", "eth0"]).status.success());
    assert!(d.ports().contains(&format!("ep-{ta}")));
    assert!(d.ports().contains(&format!("ep-{tb}")));

    docker_ok(&["network", "disconnect", &n.name, &a.name]);
    assert_eq!(links_with(&ta), Vec::<String>::new(), "a's TAP is left");
    assert!(
        !a.exec(&["ip", "link", "show", "eth0"]).status.success(),
        "a still has eth0"
    );
    assert!(!d.ports().contains(&format!("ep-{ta}")), "a's port is left");

    docker_ok(&["rm", "-f", &b.name]);
    assert_eq!(links_with(&tb), Vec::<String>::new(), "b's TAP is left");
    assert!(!d.ports().contains(&format!("ep-{tb}")), "b's port is left");

    docker_ok(&["network", "rm", &n.name]);
    assert!(!d.domains().contains(&n.domain()), "the domain is left");
    assert_eq!(d.ports(), Vec::<String>::new());
    // The last network with a gateway took the uplink along: its links,
    // port, domain and the switch's default route.
    let up = rvswitch::fabric::Uplink::for_driver(&d.driver);
    assert_eq!(links_with(&up.host_if), Vec::<String>::new(), "uplink left");
    assert_eq!(
        names(&d.json(&["port", "list"])),
        Vec::<String>::new(),
        "uplink port left"
    );
    assert_eq!(names(&d.json(&["domain", "list"])), Vec::<String>::new());
    let routes = d.json(&["route", "list"]).to_string();
    assert!(!routes.contains("0.0.0.0/0"), "{routes}");

    d.stop();
    let snap = rvs_cnm::Store::open(&d.state_dir())
        .unwrap()
        .load()
        .unwrap();
    assert!(snap.networks.is_empty(), "{:?}", snap.networks);
    assert!(snap.endpoints.is_empty(), "{:?}", snap.endpoints);
}

#[test]
fn containers_keep_talking_across_daemon_restarts() {
    if !common::docker_or_skip("containers_keep_talking_across_daemon_restarts") {
        return;
    }
    let mut d = Rvs::start();
    let n = d.network(&[]);
    let a = Ctr::run(&n, &[]);
    let b = Ctr::run(&n, &[]);
    let ib = b.ip(&n);
    assert!(a.ping_eventually(&ib, Duration::from_secs(5)));

    d.stop();
    assert!(!a.ping(&ib), "traffic flowed without the switch");
    d.spawn();
    assert!(
        a.ping_eventually(&ib, Duration::from_secs(10)),
        "no ping after a clean restart"
    );

    d.kill9();
    d.spawn();
    assert!(
        a.ping_eventually(&ib, Duration::from_secs(10)),
        "no ping after kill -9 and a restart"
    );
    let inspect: Value =
        serde_json::from_str(&docker_ok(&["network", "inspect", &n.name])).unwrap();
    assert_eq!(inspect[0]["Containers"].as_object().unwrap().len(), 2);
    let c = Ctr::run(&n, &[]);
    assert!(
        c.ping_eventually(&a.ip(&n), Duration::from_secs(5)),
        "a new container cannot reach an old one"
    );
    assert_eq!(d.ports().len(), 3, "{:?}", d.ports());
}

/// The veth endpoints (`-o rvswitch.endpoint=afxdp|afpacket`) are kept as
/// options beside the default TAP: each carries ping and TCP, survives
/// kill -9, and leaves nothing behind.
#[test]
fn afxdp_and_afpacket_endpoints_still_work() {
    if !common::docker_or_skip("afxdp_and_afpacket_endpoints_still_work") {
        return;
    }
    let mut d = Rvs::start();
    for kind in ["afxdp", "afpacket"] {
        let n = d.network(&["-o", &format!("rvswitch.endpoint={kind}")]);
        let a = Ctr::run(&n, &[]);
        let b = Ctr::run(&n, &[]);
        let (ta, ib) = (a.tag(&n), b.ip(&n));
        assert!(
            a.ping_eventually(&ib, Duration::from_secs(5)),
            "{kind}: a cannot ping b"
        );
        let o = b.exec(&["busybox", "httpd", "-p", "8000", "-h", "/bin"]);
        assert!(o.status.success(), "httpd: {}", text(&o.stderr));
        let (want, got) = fetch_busybox(&a, &ib);
        assert_eq!(got, want, "{kind}: the file came over TCP damaged");
        assert_eq!(links_with(&ta), [format!("rvh{ta}")], "{kind}: host end");
        let port = d.json(&["port", "show", &format!("ep-{ta}")]);
        assert_eq!(port["kind"], kind, "{port}");
        d.kill9();
        d.spawn();
        assert!(
            a.ping_eventually(&ib, Duration::from_secs(10)),
            "{kind}: no ping after kill -9 and a restart"
        );
        drop(a);
        assert_eq!(links_with(&ta), Vec::<String>::new(), "{kind}: veth left");
        assert!(
            !d.ports().contains(&format!("ep-{ta}")),
            "{kind}: port left"
        );
    }
}

#[test]
fn driver_errors_reach_the_docker_cli() {
    if !common::docker_or_skip("driver_errors_reach_the_docker_cli") {
        return;
    }
    let d = Rvs::start();
    let create_fails = |extra: &[&str]| -> String {
        let name = unique("rvn");
        let mut args = vec!["network", "create", "-d", &d.driver];
        args.extend_from_slice(extra);
        args.push(&name);
        let o = docker(&args);
        if o.status.success() {
            let _ = docker(&["network", "rm", &name]);
            panic!("docker {args:?} succeeded");
        }
        text(&o.stderr)
    };
    let e = create_fails(&["-o", "rvswitch.vlan=5000"]);
    assert!(
        e.contains("option rvswitch.vlan=5000: expected a VLAN id 1-4094"),
        "{e}"
    );
    let e = create_fails(&["-o", "rvswitch.colour=red"]);
    assert!(e.contains("unknown option rvswitch.colour"), "{e}");
    let e = create_fails(&["-o", "rvswitch.vni=42"]);
    assert!(e.contains("needs rvswitch.vtep_local"), "{e}");
    let e = create_fails(&["-o", "rvswitch.vtep_local=192.0.2.1"]);
    assert!(e.contains("belongs to VXLAN networks"), "{e}");

    // rvswitch's IPAM: a /30 holds the gateway and one container.
    let n = d.network(&["--ipam-driver", &d.driver, "--subnet", "10.254.77.0/30"]);
    let _a = Ctr::run(&n, &[]);
    let name = unique("rvc");
    let b = Ctr { name: name.clone() };
    let o = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        &n.name,
        IMAGE,
        "sleep",
        "600",
    ]);
    assert!(!o.status.success(), "a second container fit in a /30");
    let e = text(&o.stderr);
    assert!(e.contains("pool 10.254.77.0/30 has no free address"), "{e}");
    drop(b);
    assert_eq!(d.ports().len(), 1, "{:?}", d.ports());
}

#[test]
fn internal_networks_give_no_default_route() {
    if !common::docker_or_skip("internal_networks_give_no_default_route") {
        return;
    }
    let d = Rvs::start();
    let internal = d.network(&["--internal"]);
    let open = d.network(&[]);
    let a = Ctr::run(&internal, &[]);
    let b = Ctr::run(&internal, &[]);
    let c = Ctr::run(&open, &[]);
    let routes = |x: &Ctr| text(&x.exec(&["ip", "route"]).stdout);
    let r = routes(&a);
    assert!(!r.contains("default"), "internal network route table: {r}");
    assert!(
        a.ping_eventually(&b.ip(&internal), Duration::from_secs(5)),
        "containers on an internal network cannot talk"
    );
    // The check above means something: a non-internal network does give one.
    let gw = c.net_field(&open, "Gateway");
    let r = routes(&c);
    assert!(r.contains(&format!("default via {gw}")), "{r}");
    // The switch has no gateway for the internal network, one for the other.
    let domains = d.json(&["domain", "list"]);
    let gateway_of = |n: &Net| {
        domains
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n.domain().as_str())
            .map(|x| x["gateway"].clone())
            .unwrap_or_else(|| panic!("no domain for {}: {domains}", n.name))
    };
    assert!(gateway_of(&internal).is_null(), "{domains}");
    assert!(!gateway_of(&open).is_null(), "{domains}");
    assert!(
        c.ping_eventually(&gw, Duration::from_secs(5)),
        "gateway {gw}"
    );
}

#[test]
fn what_docker_removes_while_the_daemon_is_down_is_freed() {
    if !common::docker_or_skip("what_docker_removes_while_the_daemon_is_down_is_freed") {
        return;
    }
    let mut d = Rvs::start();
    let n = d.network(&[]);
    let gone = d.network(&[]);
    let a = Ctr::run(&n, &[]);
    let c = Ctr::run(&n, &[]);
    let (ta, tc) = (a.tag(&n), c.tag(&n));
    d.stop();
    // The engine retries the missing driver for a while (about 15 s a
    // call), then goes ahead without it.
    let t = Instant::now();
    docker_ok(&["network", "disconnect", &n.name, &c.name]);
    eprintln!("disconnect without the driver took {:?}", t.elapsed());
    let t = Instant::now();
    docker_ok(&["network", "rm", &gone.name]);
    eprintln!("network rm without the driver took {:?}", t.elapsed());
    // The engine moved c's TAP back out of the container: it is still
    // there (persistent), for the restarted daemon to remove.
    assert_eq!(links_with(&tc), [format!("rvc{tc}")], "c's TAP");

    d.spawn();
    assert_eq!(links_with(&tc), Vec::<String>::new(), "c's TAP is left");
    assert_eq!(d.ports(), [format!("ep-{ta}")], "only a's port is left");
    assert_eq!(d.domains(), [n.domain()], "only n's domain is left");
    let gw = a.net_field(&n, "Gateway");
    assert!(
        a.ping_eventually(&gw, Duration::from_secs(10)),
        "gateway {gw}"
    );

    d.stop();
    let snap = rvs_cnm::Store::open(&d.state_dir())
        .unwrap()
        .load()
        .unwrap();
    let nets: Vec<&str> = snap.networks.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(nets, [n.id.as_str()]);
    assert_eq!(snap.endpoints.len(), 1, "{:?}", snap.endpoints);
    assert!(snap.endpoints[0].id.starts_with(&ta));
    // Up again, so removing a and n does not wait for a missing driver.
    d.spawn();
}

#[test]
fn vlan_and_mtu_options_are_applied() {
    if !common::docker_or_skip("vlan_and_mtu_options_are_applied") {
        return;
    }
    let d = Rvs::start();
    let n = d.network(&["-o", "rvswitch.vlan=10", "-o", "rvswitch.mtu=1400"]);
    let a = Ctr::run(&n, &[]);
    let b = Ctr::run(&n, &[]);
    assert!(
        a.ping_eventually(&b.ip(&n), Duration::from_secs(5)),
        "a cannot ping b on VLAN 10"
    );
    let gw = a.net_field(&n, "Gateway");
    assert!(a.ping(&gw), "a cannot reach its gateway {gw} on VLAN 10");
    let eth0 = text(&a.exec(&["ip", "-o", "link", "show", "eth0"]).stdout);
    assert!(eth0.contains("mtu 1400"), "{eth0}");
    let port = d.json(&["port", "show", &format!("ep-{}", a.tag(&n))]);
    assert_eq!(port["vlan"]["pvid"], 10, "{port}");
}

#[test]
fn ipv6_networks_carry_ipv6() {
    if !common::docker_or_skip("ipv6_networks_carry_ipv6") {
        return;
    }
    let d = Rvs::start();
    // Docker's IPAM picks the IPv4 pool; the IPv6 one must be given.
    let subnet = format!("fd00:7276:{:x}::/64", std::process::id() & 0xffff);
    let n = d.network(&["--ipv6", "--subnet", &subnet]);
    let a = Ctr::run(&n, &[]);
    let b = Ctr::run(&n, &[]);
    let ib6 = b.net_field(&n, "GlobalIPv6Address");
    assert!(!ib6.is_empty(), "b has no IPv6 address");
    assert!(
        a.ping_eventually(&ib6, Duration::from_secs(10)),
        "a cannot ping b at {ib6}"
    );
    let gw6 = a.net_field(&n, "IPv6Gateway");
    assert!(
        a.ping_eventually(&gw6, Duration::from_secs(5)),
        "a cannot reach the IPv6 gateway {gw6}"
    );
    assert!(a.ping(&b.ip(&n)), "IPv4 next to IPv6");
}

#[test]
fn a_vxlan_network_reaches_a_host_behind_the_kernels_vxlan() {
    if !common::docker_or_skip("a_vxlan_network_reaches_a_host_behind_the_kernels_vxlan") {
        return;
    }
    use rvs_drivers::testutil::{Netns, ip};
    // "Another host": a namespace reached over an underlay veth, with the
    // kernel's vxlan device and a Linux bridge, and a station behind it.
    let (rh, peer) = (Netns::new("dvr"), Netns::new("dvp"));
    let (u0, u1) = (unique("dvu"), unique("dvu"));
    ip(&["link", "add", &u0, "type", "veth", "peer", "name", &u1]);
    let _underlay = rvs_drivers::testutil::Link::adopt(&u0);
    ip(&["link", "set", &u1, "netns", &rh.name]);
    ip(&["addr", "add", "10.67.0.1/24", "dev", &u0]);
    ip(&["link", "set", &u0, "up"]);
    rh.ip(&["addr", "add", "10.67.0.2/24", "dev", &u1]);
    rh.ip(&["link", "set", &u1, "up"]);
    rh.ip(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        "4600",
        "local",
        "10.67.0.2",
        "remote",
        "10.67.0.1",
        "dstport",
        "4789",
    ]);
    rh.ip(&["link", "add", "br0", "type", "bridge"]);
    rh.ip(&["link", "set", "vx0", "master", "br0", "up"]);
    rh.ip(&["link", "add", "st0", "type", "veth", "peer", "name", "eth0"]);
    rh.ip(&["link", "set", "eth0", "netns", &peer.name]);
    rh.ip(&["link", "set", "st0", "master", "br0", "up"]);
    rh.ip(&["link", "set", "br0", "up"]);
    peer.ip(&["addr", "add", "10.68.0.200/24", "dev", "eth0"]);
    peer.ip(&["link", "set", "eth0", "mtu", "1450", "up"]);

    let d = Rvs::start();
    let n = d.network(&[
        "--subnet",
        "10.68.0.0/24",
        "-o",
        "rvswitch.kind=vxlan",
        "-o",
        "rvswitch.vni=4600",
        "-o",
        "rvswitch.vtep_local=10.67.0.1",
        "-o",
        "rvswitch.vtep_remotes=10.67.0.2",
    ]);
    assert!(
        d.ports().contains(&format!("vx-{}", &n.id[..12])),
        "{:?}",
        d.ports()
    );
    let a = Ctr::run(&n, &[]);
    let mtu = a.exec(&["cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(text(&mtu.stdout).trim(), "1450", "the overlay's MTU");
    assert!(
        a.ping_eventually("10.68.0.200", Duration::from_secs(10)),
        "the container reaches the station behind the kernel's VTEP"
    );
    assert!(peer.ping(&a.ip(&n), 2), "and back");
    drop(a);
    drop(n);
    assert!(
        !d.ports().iter().any(|p| p.starts_with("vx-")),
        "the VTEP port went with the network: {:?}",
        d.ports()
    );
}

#[test]
fn port_security_stops_a_container_that_spoofs_its_address() {
    if !common::docker_or_skip("port_security_stops_a_container_that_spoofs_its_address") {
        return;
    }
    let d = Rvs::start();
    for (secure, opts) in [
        (true, vec![]),
        (false, vec!["-o", "rvswitch.port_security=false"]),
    ] {
        let n = d.network(&opts);
        let a = Ctr::run(&n, &["--cap-add", "NET_ADMIN"]);
        let b = Ctr::run(&n, &[]);
        let (ia, ib) = (a.ip(&n), b.ip(&n));
        assert!(a.ping_eventually(&ib, Duration::from_secs(5)));
        // a claims another address of the subnet and pings from it.
        let spoof = format!("{}.250", ia.rsplit_once('.').unwrap().0);
        let o = a.exec(&["ip", "addr", "add", &format!("{spoof}/32"), "dev", "eth0"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let from_spoof = a
            .exec(&["ping", "-c2", "-W2", "-I", &spoof, &ib])
            .status
            .success();
        assert_eq!(
            from_spoof, !secure,
            "secure={secure}: spoofed source answered?"
        );
        if secure {
            let port = format!("ep-{}", a.tag(&n));
            let s = d.json(&["stats", &port]);
            assert!(
                s["drops"]["port_security_ip"].as_u64().unwrap_or(0) > 0,
                "{s}"
            );
            // Its own address still works.
            assert!(a.ping(&ib));
        }
    }
}

#[test]
fn containers_reach_the_outside_and_the_host_reaches_them() {
    if !common::docker_or_skip("containers_reach_the_outside_and_the_host_reaches_them") {
        return;
    }
    use rvs_drivers::testutil::{Link, Netns, ip};
    // "The outside": a namespace the host routes to.
    let out = Netns::new("dxo");
    let (h, o) = (unique("dxh"), unique("dxp"));
    ip(&["link", "add", &h, "type", "veth", "peer", "name", &o]);
    let _link = Link::adopt(&h);
    ip(&["link", "set", &o, "netns", &out.name]);
    ip(&["addr", "add", "10.81.0.1/24", "dev", &h]);
    ip(&["link", "set", &h, "up"]);
    out.ip(&["addr", "add", "10.81.0.2/24", "dev", &o]);
    out.ip(&["link", "set", &o, "up"]);
    out.ip(&["route", "add", "default", "via", "10.81.0.1"]);

    let d = Rvs::start();
    let n = d.network(&["--subnet", "10.82.0.0/24"]);
    let other = d.network(&["--subnet", "10.83.0.0/24"]);
    let a = Ctr::run(&n, &[]);
    let b = Ctr::run(&other, &[]);
    let ia = a.ip(&n);
    assert!(
        a.ping_eventually("10.81.0.2", Duration::from_secs(10)),
        "the container reaches the outside through its gateway and the host"
    );
    let host = Command::new("ping")
        .args(["-c", "1", "-W", "2", &ia])
        .status()
        .unwrap();
    assert!(host.success(), "the host reaches the container");
    // Isolation holds: not to the other network directly, nor around
    // through the uplink.
    assert!(!a.ping(&b.ip(&other)), "isolated networks stay apart");
    // The host routes the network through the uplink, and stops with it.
    let up = rvswitch::fabric::Uplink::for_driver(&d.driver);
    let routes = text(&Command::new("ip").args(["route"]).output().unwrap().stdout);
    assert!(
        routes.contains(&format!("10.82.0.0/24 via {} dev {}", up.gw_ip, up.host_if)),
        "{routes}"
    );

    // `-p HOST:CONTAINER`: the outside fetches a file from the container's
    // web server through the host port.
    let port = (20000 + std::process::id() % 20000).to_string();
    let c = Ctr::run(&n, &["-p", &format!("{port}:8000")]);
    let o = c.exec(&["busybox", "httpd", "-p", "8000", "-h", "/bin"]);
    assert!(o.status.success(), "httpd: {}", text(&o.stderr));
    let want = text(&c.exec(&["busybox", "md5sum", "/bin/busybox"]).stdout);
    let fetch = || {
        out.exec(
            "sh",
            &[
                "-c",
                &format!("busybox wget -q -O - http://10.81.0.1:{port}/busybox | md5sum"),
            ],
        )
    };
    let mut got = String::new();
    for _ in 0..10 {
        got = text(&fetch().stdout);
        if got.split_whitespace().next() == want.split_whitespace().next() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        got.split_whitespace().next(),
        want.split_whitespace().next(),
        "the published port served the container's file: {}",
        text(&fetch().stderr)
    );
    drop(c);
    let gone = fetch();
    assert!(
        text(&gone.stdout).starts_with("d41d8cd98f00b204e9800998ecf8427e"),
        "unpublished with the container: {}",
        text(&gone.stdout)
    );

    drop(a);
    drop(n);
    let routes = text(&Command::new("ip").args(["route"]).output().unwrap().stdout);
    assert!(!routes.contains("10.82.0.0/24"), "{routes}");
}

#[test]
fn the_running_daemon_frees_what_the_engine_does_not_have() {
    if !common::docker_or_skip("the_running_daemon_frees_what_the_engine_does_not_have") {
        return;
    }
    let d = Rvs::start();
    let n = d.network(&[]);
    let a = Ctr::run(&n, &[]);
    let b = Ctr::run(&n, &[]);
    // A network the engine never heard of (as if its removal never reached
    // us), made by speaking the plugin protocol directly.
    let rogue = format!("{:0>64}", "beef");
    let c = rvswitch::client::Client::new(&d.plugin_socket()).unwrap();
    let r = c
        .request(
            hyper::Method::POST,
            "/NetworkDriver.CreateNetwork",
            Some(&serde_json::json!({
                "NetworkID": rogue,
                "Options": {},
                "IPv4Data": [{"AddressSpace": "", "Pool": "10.86.0.0/24", "Gateway": "10.86.0.1/24"}],
                "IPv6Data": []
            })),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.json().get("Err").is_none(), "{}", r.json());
    let rogue_domain = format!("dk-{}", &rogue[..12]);
    assert!(d.domains().contains(&rogue_domain));
    // A network made through rvswitch's own API is not the engine's to
    // know: it stays.
    let o = d.ctl_raw(&["network", "create", "apikept", "--subnet", "10.87.0.0/24"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Two sweeps (3 s apart) later it is gone; Docker's network stays.
    let t = Instant::now();
    while d.domains().contains(&rogue_domain) && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(!d.domains().contains(&rogue_domain), "{}", d.log_text());
    assert!(d.domains().contains(&n.domain()));
    assert!(d.domains().contains(&"dk-apikept".to_string()));
    assert!(
        d.log_text()
            .contains("removed what the Docker engine no longer has")
    );
    assert!(a.ping(&b.ip(&n)), "the live network kept working");
}

/// The names of `net`'s domain in the switch's embedded DNS, once `cond`
/// holds for them (the driver reads them from the engine after a join or
/// leave; the engine lists a container only once its connect is done).
#[track_caller]
fn dns_names_until(d: &Rvs, net: &Net, cond: impl Fn(&Value) -> bool) -> Value {
    let t = std::time::Instant::now();
    loop {
        let v = d.json(&["name", "list", &net.domain()]);
        if cond(&v) {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "names never became as expected: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn has_name(v: &Value, name: &str, ip: &str) -> bool {
    v.as_array().unwrap().iter().any(|n| {
        n["name"] == Value::String(name.to_lowercase())
            && n["addresses"].as_array().unwrap().iter().any(|a| a == ip)
    })
}

/// Container names and `--network-alias`es, which the engine does not pass
/// to a remote driver, reach the switch's DNS from the engine's API, and
/// go with the container.
#[test]
fn container_names_and_aliases_resolve_on_the_gateway() {
    if !common::docker_or_skip("container_names_and_aliases_resolve_on_the_gateway") {
        return;
    }
    let d = Rvs::start();
    let n = d.network(&[]);
    let a = Ctr::run(&n, &["--network-alias", "web"]);
    let b = Ctr::run(&n, &[]);
    let ia = a.ip(&n);
    let gw = b.net_field(&n, "Gateway");
    assert!(!gw.is_empty(), "the network has a gateway");
    let a_name = a.name.clone();
    dns_names_until(&d, &n, |v| {
        has_name(v, &a_name, &ia) && has_name(v, "web", &ia)
    });
    // b asks the switch's name server on its gateway (not Docker's own,
    // 127.0.0.11, which its resolv.conf names).
    for name in ["web", a.name.as_str()] {
        let o = b.exec(&["busybox", "nslookup", name, &gw]);
        let out = text(&o.stdout);
        assert!(
            o.status.success() && out.contains(&ia),
            "nslookup {name} {gw}: {out}{}",
            text(&o.stderr)
        );
    }
    drop(a);
    dns_names_until(&d, &n, |v| {
        !has_name(v, &a_name, &ia) && !has_name(v, "web", &ia)
    });
}

/// `-o rvswitch.parent=NIC.VID` (Docker's macvlan `parent`): containers on
/// the NIC's LAN in that VLAN, tagged by the switch on one uplink trunk per
/// NIC (see `common::lan` for the LAN: a veth stands for the NIC). Bad
/// parents are Docker errors that change nothing; the uplink comes back
/// after a restart and goes with the NIC's last network.
#[test]
fn parent_networks_put_containers_on_the_nics_lan() {
    let test = "parent_networks_put_containers_on_the_nics_lan";
    if !common::docker_or_skip(test) || !common::run_or_skip(test, common::lan::tcpdump()) {
        return;
    }
    let mut lan = common::lan::Lan::new();
    lan.vlan_host(10, "10.82.10.100/24");
    lan.vlan_host(20, "10.82.20.100/24");
    let mut d = Rvs::start();
    let parent = |vid: u16| format!("rvswitch.parent={}", lan.parent(Some(vid)));
    let net_args = |vid: u16| {
        vec![
            "--subnet".to_string(),
            format!("10.82.{vid}.0/24"),
            // The LAN's router, not the switch: the switch has no gateway here.
            "--gateway".to_string(),
            format!("10.82.{vid}.254"),
            "-o".to_string(),
            parent(vid),
        ]
    };
    let create_fails = |extra: &[String]| -> String {
        let name = unique("rvn");
        let mut args = vec!["network", "create", "-d", &d.driver];
        args.extend(extra.iter().map(String::as_str));
        args.push(&name);
        let o = docker(&args);
        if o.status.success() {
            let _ = docker(&["network", "rm", &name]);
            panic!("docker {args:?} succeeded");
        }
        text(&o.stderr)
    };
    let before = (d.domains(), d.ports());
    let missing = unique("nope");
    for (extra, says) in [
        (
            vec!["-o".into(), format!("rvswitch.parent={missing}.10")],
            format!("no interface {missing}"),
        ),
        (
            vec![
                "-o".into(),
                format!("rvswitch.parent={}.5000", lan.nic.name),
            ],
            "VLAN id 5000 is outside 1..4094".into(),
        ),
        (
            vec!["--internal".into(), "-o".into(), parent(10)],
            "does not go with --internal".into(),
        ),
    ] {
        let e = create_fails(&extra);
        assert!(e.contains(&says), "{extra:?}: {e}");
    }
    assert_eq!(
        (d.domains(), d.ports()),
        before,
        "a refused network left something"
    );

    let args10 = net_args(10);
    let n10 = d.network(&args10.iter().map(String::as_str).collect::<Vec<_>>());
    let args20 = net_args(20);
    let n20 = d.network(&args20.iter().map(String::as_str).collect::<Vec<_>>());
    let mut dup = net_args(10);
    dup[1] = "10.82.11.0/24".into();
    dup[3] = "10.82.11.254".into();
    let e = create_fails(&dup);
    assert!(
        e.contains(&format!("already on parent {}", lan.parent(Some(10)))),
        "{e}"
    );
    let up = format!("up-{}", lan.nic.name);
    let port = d.json(&["port", "show", &up]);
    assert_eq!(
        port["vlan"]["allowed"], "10,20",
        "one trunk for both: {port}"
    );

    let cap = common::lan::Capture::start(&lan.ns);
    let a = Ctr::run(&n10, &[]);
    let b = Ctr::run(&n20, &[]);
    assert!(
        a.ping_eventually("10.82.10.100", Duration::from_secs(10)),
        "the container on VLAN 10 reaches the LAN's host on VLAN 10"
    );
    assert!(
        b.ping_eventually("10.82.20.100", Duration::from_secs(10)),
        "the container on VLAN 20 reaches the LAN's host on VLAN 20"
    );
    assert!(lan.host(0).ping(&a.ip(&n10), 2), "and back");
    // The host on VLAN 10, given an address of VLAN 20's subnet, asks for
    // b on its own VLAN: nobody there answers. The VLAN 20 host reaches b.
    let ib = b.ip(&n20);
    assert!(lan.host(1).ping(&ib, 2), "the host on VLAN 20 reaches b");
    lan.host(0)
        .ip(&["addr", "add", "10.82.20.50/24", "dev", "eth0"]);
    assert!(
        !lan.host(0).ping(&ib, 2),
        "a host on VLAN 10 reached the network on VLAN 20"
    );
    let lines = cap.lines();
    for (c, n, tag) in [(&a, &n10, "vlan 10,"), (&b, &n20, "vlan 20,")] {
        let mac = c.net_field(n, "MacAddress");
        let frames = common::lan::sent_by(&lines, &mac);
        assert!(!frames.is_empty(), "no frame of {mac} on the LAN");
        for f in frames {
            assert!(f.contains(tag), "{mac} sent outside {tag} {f}");
        }
    }

    d.stop();
    d.spawn();
    assert!(
        a.ping_eventually("10.82.10.100", Duration::from_secs(10)),
        "no ping to the LAN after a restart"
    );
    d.kill9();
    d.spawn();
    assert!(
        b.ping_eventually("10.82.20.100", Duration::from_secs(10)),
        "no ping to the LAN after kill -9 and a restart"
    );

    drop(a);
    drop(n10);
    let port = d.json(&["port", "show", &up]);
    assert_eq!(port["vlan"]["allowed"], "20", "{port}");
    drop(b);
    drop(n20);
    assert!(!d.ports().contains(&up), "{:?}", d.ports());
    assert!(
        !d.domains().contains(&format!("dk-{up}")),
        "{:?}",
        d.domains()
    );
}

/// `GET /PATH` over HTTP/1.0 from the host; the body, or None.
fn http_get(ip: std::net::IpAddr, port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c =
        std::net::TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(2)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    c.write_all(format!("GET /{path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    let (head, body) = s.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_string())
}

/// `http_get` until it returns `want` or `within` passes.
fn http_until(ip: std::net::IpAddr, port: u16, path: &str, want: &str, within: Duration) -> bool {
    let t = Instant::now();
    loop {
        if http_get(ip, port, path).as_deref() == Some(want) {
            return true;
        }
        if t.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A process the test started (a server in a container's namespace),
/// killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A UDP echo (answering `pong:` + the datagram) on `port` in the
/// network namespace of process `pid`, run from the host's python3.
fn udp_echo_in(pid: &str, port: u16) -> Proc {
    let src = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('0.0.0.0', {port}))\n\
         while True:\n    d, a = s.recvfrom(2048)\n    s.sendto(b'pong:' + d, a)\n"
    );
    Proc(
        Command::new("nsenter")
            .args(["-t", pid, "-n", "python3", "-c", &src])
            .stdout(Stdio::null())
            .spawn()
            .expect("nsenter python3"),
    )
}

/// A UDP round trip from the host to `ip`:`port`: the answer, or None.
fn udp_ask(ip: std::net::IpAddr, port: u16, msg: &str) -> Option<String> {
    let any: std::net::IpAddr = match ip {
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let s = std::net::UdpSocket::bind((any, 0)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.connect((ip, port)).ok()?;
    s.send(msg.as_bytes()).ok()?;
    let mut buf = [0u8; 256];
    let n = s.recv(&mut buf).ok()?;
    Some(text(&buf[..n]))
}

/// `-p` as Docker users write it, through the real engine: UDP, a range
/// (the engine sends one binding per port), each on the host's IPv4 and
/// IPv6 loopback; a random host port (`-p 80`) is refused with the reason.
#[test]
fn published_udp_ranges_and_ipv6_reach_the_container() {
    if !common::docker_or_skip("published_udp_ranges_and_ipv6_reach_the_container") {
        return;
    }
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let d = Rvs::start();
    let n = d.network(&["--subnet", "10.84.0.0/24"]);
    // Host ports of this test: a base per process, so runs side by side
    // do not meet.
    let base = 21000 + (std::process::id() % 4000) as u16 * 5;
    let (udp, lo, hi) = (base, base + 1, base + 3);
    let c = Ctr::run(
        &n,
        &[
            "-p",
            &format!("{udp}:5353/udp"),
            "-p",
            &format!("{lo}-{hi}:8080-8082"),
        ],
    );
    // The engine sent one binding per port of the range.
    let ep = c.net_field(&n, "EndpointID");
    let eps = d.json(&["endpoint"]);
    let mine = eps
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == ep.as_str())
        .unwrap_or_else(|| panic!("no endpoint {ep}: {eps}"));
    let mut host_ports: Vec<u64> = mine["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["host_port"].as_u64().unwrap())
        .collect();
    host_ports.sort();
    assert_eq!(host_ports, [udp, lo, lo + 1, hi].map(u64::from), "{mine}");

    // Each host port of the range reaches its own container port.
    for i in 0..3u16 {
        let o = c.exec(&[
            "sh",
            "-c",
            &format!(
                "mkdir -p /w{i} && echo port{i} > /w{i}/x && busybox httpd -p {} -h /w{i}",
                8080 + i
            ),
        ]);
        assert!(o.status.success(), "httpd: {}", text(&o.stderr));
    }
    for i in 0..3u16 {
        let want = format!("port{i}\n");
        for ip in [v4, v6] {
            assert!(
                http_until(ip, lo + i, "x", &want, Duration::from_secs(10)),
                "{ip} port {} serves container port {}: {:?}",
                lo + i,
                8080 + i,
                http_get(ip, lo + i, "x")
            );
        }
    }

    // UDP, over IPv4 and IPv6: each datagram gets its answer.
    let _echo = udp_echo_in(&c.pid(), 5353);
    for ip in [v4, v6] {
        let t = Instant::now();
        let mut got = None;
        while got.is_none() && t.elapsed() < Duration::from_secs(10) {
            got = udp_ask(ip, udp, "ping");
        }
        assert_eq!(got.as_deref(), Some("pong:ping"), "UDP over {ip}");
        for k in 0..3 {
            let m = format!("m{k}");
            assert_eq!(udp_ask(ip, udp, &m), Some(format!("pong:{m}")), "{ip} #{k}");
        }
    }

    // The container gone, every host port is free again (both families).
    drop(c);
    for p in [lo, lo + 1, hi] {
        std::net::TcpListener::bind((v4, p)).expect("the IPv4 port was released");
        std::net::TcpListener::bind((v6, p)).expect("the IPv6 port was released");
    }

    // `-p 80`: the engine asks for host port 0 and would never show the
    // port chosen, so it is refused, saying why; nothing is left behind.
    let name = unique("rvc");
    let o = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        &n.name,
        "-p",
        "80",
        IMAGE,
        "sleep",
        "60",
    ]);
    let _ = docker(&["rm", "-f", &name]);
    assert!(!o.status.success(), "-p 80 was accepted");
    let err = text(&o.stderr);
    assert!(err.contains("does not take back a host port"), "{err}");
}

/// Networks and endpoints made through the API (where rvswitch answers
/// itself) publish ports too, host port 0 included: the answer and `ctl
/// endpoint` show the port taken, which reaches the endpoint over IPv4
/// and IPv6; a port in use is refused and makes nothing.
#[test]
fn api_endpoints_publish_ports_and_report_the_free_port_taken() {
    if !common::docker_or_skip("api_endpoints_publish_ports_and_report_the_free_port_taken") {
        return;
    }
    use rvs_drivers::testutil::Netns;
    use serde_json::json;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let d = Rvs::start();
    let api = rvswitch::client::Client::new(&d.socket()).unwrap();
    let net = unique("apn");
    let r = api
        .post(
            "/v1/cnm/networks",
            &json!({"name": net, "subnet": "10.86.0.0/24"}),
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.error_message());
    let eps = format!("/v1/cnm/networks/{net}/endpoints");
    let r = api
        .post(
            &eps,
            &json!({"id": "pe1", "address": "10.86.0.5/24", "ports": [{"port": 7000}]}),
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.error_message());
    let e = r.json();
    let host = e["published"][0]["host_port"].as_u64().unwrap() as u16;
    assert_ne!(host, 0, "the free port taken is reported: {e}");
    let list = common::ctl_ok(&d.socket(), &["endpoint"]);
    assert!(list.contains(&format!("{host}->7000/tcp")), "{list}");

    // The endpoint in a namespace, serving a file on port 7000.
    let ns = Netns::new("apns");
    let r = api
        .post(
            &format!("{eps}/pe1/join"),
            &json!({"sandbox": format!("/run/netns/{}", ns.name)}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.error_message());
    let tap = r.json()["interface"].as_str().unwrap().to_string();
    rvs_drivers::testutil::ip(&["link", "set", &tap, "netns", &ns.name]);
    ns.ip(&["addr", "add", "10.86.0.5/24", "dev", &tap]);
    ns.ip(&["link", "set", &tap, "up"]);
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&["route", "add", "default", "via", "10.86.0.1"]);
    let www = d.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("x"), "api\n").unwrap();
    let _httpd = Proc(
        Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "busybox", "httpd", "-f", "-p", "7000", "-h",
            ])
            .arg(&www)
            .spawn()
            .unwrap(),
    );
    for ip in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        assert!(
            http_until(ip, host, "x", "api\n", Duration::from_secs(10)),
            "{ip} port {host} reaches the endpoint: {:?}",
            http_get(ip, host, "x")
        );
    }

    // The same host port for another endpoint: 409, and no endpoint.
    let r = api
        .post(
            &eps,
            &json!({"id": "pe2", "address": "10.86.0.6/24",
                    "ports": [{"port": 80, "host_port": host}]}),
        )
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.error_message());
    assert!(
        r.error_message().contains(&host.to_string()),
        "{}",
        r.error_message()
    );
    let all = d.json(&["endpoint"]);
    assert!(
        !all.as_array().unwrap().iter().any(|e| e["id"] == "pe2"),
        "{all}"
    );
    // Bad input: 400 with the reason.
    let r = api
        .post(&eps, &json!({"id": "pe3", "ports": [{"port": 0}]}))
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.error_message());
    let r = api
        .post(
            &eps,
            &json!({"id": "pe3", "ports": [{"port": 80, "protocol": "sctp"}]}),
        )
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.error_message());

    // Deleting the endpoint frees the port.
    let r = api.delete(&format!("{eps}/pe1")).unwrap();
    assert_eq!(r.status, 204, "{}", r.error_message());
    std::net::TcpListener::bind(("127.0.0.1", host)).expect("the port was released");
    let _ = api.delete(&format!("/v1/cnm/networks/{net}"));
}

/// The label services of `d`'s network `n` (`ctl service list`), once
/// `cond` holds (or whatever is there after 20 s).
fn services_until(d: &Rvs, n: &Net, cond: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let t = Instant::now();
    loop {
        let v = d.json(&["service", "list", &n.domain()]);
        let list = v.as_array().cloned().unwrap_or_default();
        if cond(&list) || t.elapsed() > Duration::from_secs(20) {
            return list;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Backend addresses of service view `s`.
fn backends_of(s: &Value) -> Vec<String> {
    let mut b: Vec<String> = s["service"]["spec"]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_string())
        .collect();
    b.sort();
    b
}

/// `docker run -l rvswitch.service=web -l rvswitch.service.port=80`: the
/// labelled containers are the backends of service `web` on the network,
/// with a VIP taken from the network; a client container's connections to
/// the VIP reach both; removing a container removes its backend, removing
/// the last removes the service.
#[test]
fn container_labels_declare_a_balanced_service() {
    if !common::docker_or_skip("container_labels_declare_a_balanced_service") {
        return;
    }
    let d = Rvs::start();
    let n = d.network(&["--subnet", "10.88.0.0/24"]);
    let labels = [
        "-l",
        "rvswitch.service=web",
        "-l",
        "rvswitch.service.port=80:8080/tcp",
    ];
    let backends: Vec<Ctr> = (0..2).map(|_| Ctr::run(&n, &labels)).collect();
    for b in &backends {
        // Each answers with its own name.
        let o = b.exec(&[
            "sh",
            "-c",
            &format!(
                "mkdir -p /www && echo {} > /www/index.html && busybox httpd -p 8080 -h /www",
                b.name
            ),
        ]);
        assert!(o.status.success(), "httpd: {}", text(&o.stderr));
    }
    let client = Ctr::run(&n, &[]);
    let mut want: Vec<String> = backends.iter().map(|b| b.ip(&n)).collect();
    want.sort();
    let list = services_until(&d, &n, |l| l.len() == 1 && backends_of(&l[0]) == want);
    assert_eq!(list.len(), 1, "{list:?}");
    let s = &list[0];
    assert_eq!(s["service"]["name"], "web");
    assert_eq!(s["service"]["spec"]["origin"], "docker-label");
    assert_eq!(backends_of(s), want, "{s}");
    let vip = s["service"]["spec"]["vips"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(vip, "10.88.0.254", "taken from the top of the subnet");

    // Connections to the VIP's port 80 reach both backends' port 8080.
    let fetch = |c: &Ctr| -> Option<String> {
        // (Debian's busybox wget crashes on -T: `timeout` instead.)
        let o = c.exec(&[
            "busybox",
            "timeout",
            "5",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{vip}/"),
        ]);
        if !o.status.success() {
            eprintln!("wget {vip}: {} {}", o.status, text(&o.stderr));
        }
        o.status
            .success()
            .then(|| text(&o.stdout).trim().to_string())
    };
    let mut hits = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..24 {
        if let Some(who) = fetch(&client) {
            *hits.entry(who).or_default() += 1;
        }
    }
    assert_eq!(
        hits.values().sum::<u32>(),
        24,
        "every connection answered: {hits:?}"
    );
    for b in &backends {
        assert!(hits.contains_key(&b.name), "{} got none: {hits:?}", b.name);
    }
    // The service's name resolves to the VIP on the gateway.
    let gw = "10.88.0.1";
    let o = client.exec(&["busybox", "nslookup", "web", gw]);
    assert!(text(&o.stdout).contains(&vip), "{}", text(&o.stdout));

    // One container removed: its backend goes, the other takes all.
    let mut backends = backends;
    let gone = backends.pop().unwrap();
    let left_ip = backends[0].ip(&n);
    drop(gone);
    let list = services_until(&d, &n, |l| {
        l.len() == 1 && backends_of(&l[0]) == std::slice::from_ref(&left_ip)
    });
    assert_eq!(backends_of(&list[0]), [left_ip], "{list:?}");
    assert_eq!(list[0]["service"]["spec"]["vips"][0], vip, "the VIP stays");
    for _ in 0..6 {
        assert_eq!(fetch(&client).as_deref(), Some(backends[0].name.as_str()));
    }
    // The last one removed: the service goes.
    backends.clear();
    let list = services_until(&d, &n, |l| l.is_empty());
    assert!(list.is_empty(), "{list:?}");
}
