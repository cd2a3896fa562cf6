//! The daemon with real back ends, driven the way an operator drives it:
//! `rvswitch daemon` as a process, `rvswitch ctl` for every change, real
//! namespaces on TAP, AF_XDP and AF_PACKET ports, `ping`/`iperf3` to judge.
//! Root only: without root each test prints SKIP (and fails under
//! RVS_TEST_STRICT=1).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rvs_drivers::testutil::{Link, Netns, ip, root_or_skip, unique};
use serde_json::Value;

mod common;
use common::BIN;

/// A daemon process with a private socket and state directory, killed and
/// cleaned up on drop.
struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    /// The network namespace the daemon runs in (a namespace-"host").
    netns: Option<String>,
}

impl Daemon {
    fn start() -> Daemon {
        Self::start_in(None)
    }

    fn start_in(netns: Option<&Netns>) -> Daemon {
        let dir = std::env::temp_dir().join(unique("rvsd"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Daemon {
            child: None,
            dir,
            netns: netns.map(|n| n.name.clone()),
        };
        d.spawn();
        d
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }

    fn spawn(&mut self) {
        let mut cmd = match &self.netns {
            // `ip netns exec` execs the daemon in place: the child is it.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("daemon")
            .arg("--socket")
            .arg(self.socket())
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        self.child = Some(common::spawn_ready(&mut cmd, None));
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM and wait.
    fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            let st = common::terminate(c);
            assert!(st.success(), "daemon exited with {st}");
        }
    }

    fn ctl_raw(&self, args: &[&str]) -> Output {
        common::ctl_raw(&self.socket(), args)
    }

    #[track_caller]
    fn ctl(&self, args: &[&str]) -> String {
        common::ctl_ok(&self.socket(), args)
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        common::ctl_json(&self.socket(), args)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Create a TAP port through the daemon and move it into `ns` as eth0 with `addr`.
fn tap_into(d: &Daemon, ns: &Netns, port: &str, domain: &str, vlan: &[&str], addr: &str) {
    let mut args = vec!["port", "add", port, "--kind", "tap", "--domain", domain];
    args.extend_from_slice(vlan);
    d.ctl(&args);
    ip(&["link", "set", port, "netns", &ns.name]);
    ns.ip(&["link", "set", port, "name", "eth0"]);
    ns.ip(&["addr", "add", addr, "dev", "eth0"]);
    ns.ip(&["link", "set", "eth0", "up"]);
}

/// A veth into `ns` (eth0, `addr`, tx checksum offload off as AF_XDP needs)
/// whose host end becomes a port of kind `kind`.
fn veth_into(d: &Daemon, ns: &Netns, port: &str, kind: &str, domain: &str, addr: &str) -> Link {
    let (host, peer) = Link::veth("rvh", Some(ns));
    ns.ip(&["link", "set", &peer, "name", "eth0"]);
    ns.ip(&["addr", "add", addr, "dev", "eth0"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    let nspath = Path::new("/run/netns").join(&ns.name);
    rvs_drivers::afxdp::set_tx_checksum_in_netns(&nspath, "eth0", false).unwrap();
    d.ctl(&[
        "port", "add", port, "--kind", kind, "--iface", &host.name, "--domain", domain, "--access",
        "1",
    ]);
    host
}

fn port_stats(d: &Daemon, port: &str) -> Value {
    d.json(&["stats", port])
}

/// `iperf3` TCP from `from` to `to_addr` (server in `to`): the bytes the
/// client got acknowledged (it only finishes once every byte was ACKed, and a
/// wrong checksum anywhere stalls the connection instead).
fn iperf_bytes(from: &Netns, to: &Netns, to_addr: &str, bytes: &str) -> u64 {
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &to.name,
            "iperf3",
            "-s",
            "-1",
            "--forceflush",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 is installed");
    // It says when it listens: start the client then, not after a guess.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(server.stdout.take().unwrap()));
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("Server listening"))),
        "iperf3 server did not start"
    );
    let out = from.exec(
        "iperf3",
        &[
            "-c",
            to_addr,
            "-n",
            bytes,
            "-J",
            "--connect-timeout",
            "3000",
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(v["error"].is_null(), "iperf3 failed: {}", v["error"]);
    v["end"]["sum_sent"]["bytes"].as_u64().unwrap_or(0)
}

#[test]
fn tap_ports_made_through_the_api_carry_ping_and_tcp() {
    if !root_or_skip("tap_ports_made_through_the_api_carry_ping_and_tcp") {
        return;
    }
    let d = Daemon::start();
    d.ctl(&["domain", "add", "lan"]);
    let (a, b) = (Netns::new("rva"), Netns::new("rvb"));
    let (pa, pb) = (unique("rvt"), unique("rvt"));
    tap_into(&d, &a, &pa, "lan", &["--access", "1"], "10.71.0.1/24");
    tap_into(&d, &b, &pb, "lan", &["--access", "1"], "10.71.0.2/24");
    assert!(
        a.ping_eventually("10.71.0.2", Duration::from_secs(5)),
        "a cannot ping b"
    );
    assert!(b.ping("10.71.0.1", 3), "b cannot ping a");
    let got = iperf_bytes(&a, &b, "10.71.0.2", "20M");
    assert!(got >= 20 * 1024 * 1024, "TCP moved {got} bytes");
    let s = port_stats(&d, &pa);
    assert!(s["rx_packets"].as_u64().unwrap() > 10, "{s}");
    assert!(s["tx_packets"].as_u64().unwrap() > 10, "{s}");
    let fdb = d.json(&["fdb", "show", "lan"]);
    assert_eq!(
        fdb.as_array().unwrap().len(),
        2,
        "both stations learned: {fdb}"
    );
}

#[test]
fn mixed_tap_afxdp_and_afpacket_ports_reach_each_other() {
    if !root_or_skip("mixed_tap_afxdp_and_afpacket_ports_reach_each_other") {
        return;
    }
    let d = Daemon::start();
    d.ctl(&["domain", "add", "mix"]);
    let (t, x, p) = (Netns::new("rvt"), Netns::new("rvx"), Netns::new("rvp"));
    let tap = unique("rvt");
    tap_into(&d, &t, &tap, "mix", &["--access", "1"], "10.72.0.1/24");
    let _xl = veth_into(&d, &x, "xdp0", "afxdp", "mix", "10.72.0.2/24");
    let _pl = veth_into(&d, &p, "pkt0", "afpacket", "mix", "10.72.0.3/24");
    assert!(
        t.ping_eventually("10.72.0.2", Duration::from_secs(5)),
        "TAP -> AF_XDP"
    );
    assert!(
        t.ping_eventually("10.72.0.3", Duration::from_secs(5)),
        "TAP -> AF_PACKET"
    );
    assert!(x.ping("10.72.0.3", 2), "AF_XDP -> AF_PACKET");
    assert!(p.ping("10.72.0.1", 2), "AF_PACKET -> TAP");
    // TCP across the mixed ports both ways: TAP super-frames are cut in
    // software for AF_XDP, AF_XDP frames reach the TAP.
    let got = iperf_bytes(&t, &x, "10.72.0.2", "8M");
    assert!(
        got >= 8 * 1024 * 1024,
        "TAP -> AF_XDP TCP moved {got} bytes"
    );
    let got = iperf_bytes(&x, &t, "10.72.0.1", "8M");
    assert!(
        got >= 8 * 1024 * 1024,
        "AF_XDP -> TAP TCP moved {got} bytes"
    );
}

#[test]
fn access_ports_of_different_vlans_are_isolated() {
    if !root_or_skip("access_ports_of_different_vlans_are_isolated") {
        return;
    }
    let d = Daemon::start();
    d.ctl(&["domain", "add", "vl"]);
    let ns: Vec<Netns> = (0..3).map(|_| Netns::new("rvv")).collect();
    let vlans = [["--access", "10"], ["--access", "20"], ["--access", "10"]];
    for (i, n) in ns.iter().enumerate() {
        let p = unique("rvt");
        tap_into(&d, n, &p, "vl", &vlans[i], &format!("10.73.0.{}/24", i + 1));
    }
    assert!(
        ns[0].ping_eventually("10.73.0.3", Duration::from_secs(5)),
        "same VLAN must reach"
    );
    assert!(!ns[0].ping("10.73.0.2", 2), "VLAN 10 reached VLAN 20");
    assert!(!ns[1].ping("10.73.0.3", 2), "VLAN 20 reached VLAN 10");
}

fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s[s.rfind(')').unwrap() + 2..].split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn an_idle_daemon_with_four_ports_uses_under_two_percent_of_a_core() {
    if !root_or_skip("an_idle_daemon_with_four_ports_uses_under_two_percent_of_a_core") {
        return;
    }
    let d = Daemon::start();
    d.ctl(&["domain", "add", "idle"]);
    let mut links = Vec::new();
    for _ in 0..4 {
        let p = unique("rvi");
        d.ctl(&[
            "port", "add", &p, "--kind", "tap", "--domain", "idle", "--access", "1",
        ]);
        links.push(Link::adopt(&p));
    }
    assert_idle_under_two_percent(&d);
}

/// After half a second to settle, the daemon uses under 2 % of one core
/// over 5 s.
#[track_caller]
fn assert_idle_under_two_percent(d: &Daemon) {
    std::thread::sleep(Duration::from_millis(500));
    let ticks_per_s: u64 = 100; // USER_HZ on Linux
    let before = cpu_ticks(d.pid());
    std::thread::sleep(Duration::from_secs(5));
    let used = cpu_ticks(d.pid()) - before;
    // 2 % of one core over 5 s = 0.1 s = 10 ticks.
    assert!(
        used < 5 * ticks_per_s * 2 / 100,
        "idle daemon used {used} ticks in 5 s"
    );
}

/// The same for the kinds that wait on a socket over a veth: AF_XDP (the
/// XSK fd) and AF_PACKET (the packet socket, woken per frame). A worker
/// that polled them on a timer instead of sleeping on their fds would show
/// here.
#[test]
fn an_idle_daemon_with_afxdp_and_afpacket_ports_uses_under_two_percent_of_a_core() {
    if !root_or_skip(
        "an_idle_daemon_with_afxdp_and_afpacket_ports_uses_under_two_percent_of_a_core",
    ) {
        return;
    }
    let d = Daemon::start();
    d.ctl(&["domain", "add", "idle"]);
    let ns: Vec<Netns> = (0..4).map(|_| Netns::new("rvi")).collect();
    let mut links = Vec::new();
    for (i, (n, kind)) in ns
        .iter()
        .zip(["afxdp", "afxdp", "afpacket", "afpacket"])
        .enumerate()
    {
        let port = unique("rvi");
        let addr = format!("10.74.0.{}/24", i + 1);
        links.push(veth_into(&d, n, &port, kind, "idle", &addr));
    }
    // The ports carry traffic (so they are set up and polled), then go quiet.
    assert!(
        ns[0].ping_eventually("10.74.0.3", Duration::from_secs(5)),
        "AF_XDP -> AF_PACKET"
    );
    assert!(ns[1].ping("10.74.0.4", 1), "AF_XDP -> AF_PACKET");
    assert_idle_under_two_percent(&d);
}

#[test]
fn ports_and_static_entries_come_back_after_a_restart() {
    if !root_or_skip("ports_and_static_entries_come_back_after_a_restart") {
        return;
    }
    let mut d = Daemon::start();
    d.ctl(&["domain", "add", "keep"]);
    let p = unique("rvr");
    d.ctl(&[
        "port", "add", &p, "--kind", "tap", "--domain", "keep", "--trunk", "10,20", "--native", "1",
    ]);
    let _l = Link::adopt(&p);
    d.ctl(&[
        "fdb",
        "add",
        "keep",
        "--mac",
        "02:00:00:00:00:aa",
        "--vid",
        "10",
        "--port",
        &p,
    ]);
    d.stop();
    assert!(
        Command::new("ip")
            .args(["link", "show", &p])
            .output()
            .unwrap()
            .stdout
            .is_empty(),
        "TAP gone with the daemon"
    );
    d.spawn();
    let ports = d.json(&["port", "list"]);
    assert!(ports.to_string().contains(&p), "{ports}");
    assert!(ip(&["link", "show", &p]).status.success(), "TAP re-created");
    let fdb = d.json(&["fdb", "show", "keep"]);
    assert!(fdb.to_string().contains("02:00:00:00:00:aa"), "{fdb}");
}

#[test]
fn capture_writes_a_pcap_that_tcpdump_reads() {
    if !root_or_skip("capture_writes_a_pcap_that_tcpdump_reads") {
        return;
    }
    let d = Daemon::start();
    d.ctl(&["domain", "add", "cap"]);
    let (a, b) = (Netns::new("rvca"), Netns::new("rvcb"));
    let (pa, pb) = (unique("rvt"), unique("rvt"));
    tap_into(&d, &a, &pa, "cap", &["--access", "1"], "10.74.0.1/24");
    tap_into(&d, &b, &pb, "cap", &["--access", "1"], "10.74.0.2/24");
    assert!(a.ping_eventually("10.74.0.2", Duration::from_secs(5)));
    let file = d.dir.join("cap.pcap");
    let sock = d.socket();
    let file_arg = file.clone();
    let mut cap = Command::new(BIN)
        .arg("ctl")
        .arg("--socket")
        .arg(&sock)
        .args(["capture", "--seconds", "3", "-w"])
        .arg(&file_arg)
        .arg(&pb)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `ctl capture` says when the capture runs (like tcpdump's "listening
    // on"): ping then.
    let mut err = std::io::BufReader::new(cap.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut err, &mut first).unwrap();
    assert!(first.starts_with("capturing on"), "{first}");
    let cap = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
        let mut out = cap.wait_with_output().unwrap();
        out.stderr = rest.into_bytes();
        out
    });
    assert!(a.ping("10.74.0.2", 3));
    let out = cap.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(&file)
        .output()
        .expect("tcpdump is installed");
    let text = String::from_utf8_lossy(&read.stdout);
    assert!(
        read.status.success(),
        "tcpdump -r failed: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert!(
        text.contains("10.74.0.1 > 10.74.0.2: ICMP echo request"),
        "{text}"
    );
    assert!(
        text.contains("10.74.0.2 > 10.74.0.1: ICMP echo reply"),
        "{text}"
    );
}

/// Address `addr` on `ns`'s eth0 plus a default route via `gw` (IPv4 or
/// IPv6; IPv6 addresses skip duplicate address detection).
fn addr_and_default(ns: &Netns, addr: &str, gw: &str) {
    if addr.contains(':') {
        ns.ip(&["-6", "addr", "add", addr, "dev", "eth0", "nodad"]);
        ns.ip(&["-6", "route", "add", "default", "via", gw]);
    } else {
        ns.ip(&["route", "add", "default", "via", gw]);
    }
}

#[test]
fn gateways_route_between_networks_and_traceroute_shows_each_hop() {
    if !root_or_skip("gateways_route_between_networks_and_traceroute_shows_each_hop") {
        return;
    }
    let mut d = Daemon::start();
    d.ctl(&[
        "domain",
        "add",
        "net1",
        "--gateway",
        "10.61.1.1/24",
        "--gateway",
        "fd61:1::1/64",
    ]);
    d.ctl(&[
        "domain",
        "add",
        "net2",
        "--gateway",
        "10.61.2.1/24",
        "--gateway",
        "fd61:2::1/64",
    ]);
    let (a, b, r, c) = (
        Netns::new("rta"),
        Netns::new("rtb"),
        Netns::new("rtr"),
        Netns::new("rtc"),
    );
    let (pa, pb, pr) = (unique("rpa"), unique("rpb"), unique("rpr"));
    let _la = veth_into(&d, &a, &pa, "afxdp", "net1", "10.61.1.10/24");
    let _lb = veth_into(&d, &b, &pb, "afxdp", "net2", "10.61.2.10/24");
    let _lr = veth_into(&d, &r, &pr, "afxdp", "net2", "10.61.2.254/24");
    addr_and_default(&a, "10.61.1.10/24", "10.61.1.1");
    addr_and_default(&a, "fd61:1::10/64", "fd61:1::1");
    addr_and_default(&b, "10.61.2.10/24", "10.61.2.1");
    addr_and_default(&b, "fd61:2::10/64", "fd61:2::1");
    // R is a Linux router between net2 and a third network with host C.
    let (rc, cr) = (unique("rrc"), unique("rcr"));
    r.ip(&["link", "add", &rc, "type", "veth", "peer", "name", &cr]);
    r.ip(&["link", "set", &cr, "netns", &c.name]);
    r.ip(&["addr", "add", "10.61.3.1/24", "dev", &rc]);
    r.ip(&["link", "set", &rc, "up"]);
    r.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    r.ip(&["route", "add", "10.61.1.0/24", "via", "10.61.2.1"]);
    c.ip(&["link", "set", &cr, "name", "eth0"]);
    c.ip(&["addr", "add", "10.61.3.10/24", "dev", "eth0"]);
    c.ip(&["link", "set", "eth0", "up"]);
    c.ip(&["route", "add", "default", "via", "10.61.3.1"]);
    d.ctl(&[
        "route",
        "add",
        "10.61.3.0/24",
        "--via",
        "10.61.2.254",
        "--domain",
        "net2",
    ]);

    // The gateway answers, and the two networks reach each other.
    assert!(a.ping_eventually("10.61.1.1", Duration::from_secs(5)));
    assert!(a.ping_eventually("10.61.2.10", Duration::from_secs(5)));
    assert!(b.ping("10.61.1.10", 3));
    assert!(
        a.ping_eventually("fd61:2::10", Duration::from_secs(5)),
        "IPv6 across the gateway"
    );
    assert!(
        a.ping_eventually("10.61.3.10", Duration::from_secs(5)),
        "via the static route"
    );
    // TCP across the router (checksums rewritten correctly both ways).
    assert_eq!(iperf_bytes(&a, &b, "10.61.2.10", "2M"), 2 << 20);

    // traceroute from A to C: hop 1 is net1's gateway, hop 2 the Linux
    // router R, hop 3 C itself.
    let out = a.exec(
        "traceroute",
        &["-n", "-q", "1", "-w", "2", "-m", "5", "10.61.3.10"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let hops: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        hops,
        ["10.61.1.1", "10.61.2.254", "10.61.3.10"],
        "traceroute:\n{text}"
    );

    let neigh = d.json(&["neigh"]).to_string();
    assert!(
        neigh.contains("10.61.2.254") && neigh.contains("reachable"),
        "{neigh}"
    );
    let routes = d.ctl(&["route", "list"]);
    assert!(
        routes.contains("10.61.3.0/24") && routes.contains("connected"),
        "{routes}"
    );

    // Routing off on net2: its gateway still answers, the networks are
    // isolated.
    d.ctl(&[
        "gateway",
        "set",
        "net2",
        "10.61.2.1/24",
        "fd61:2::1/64",
        "--no-routing",
    ]);
    assert!(b.ping_eventually("10.61.2.1", Duration::from_secs(5)));
    assert!(!a.ping("10.61.2.10", 2), "routing is off");
    let stats = d.json(&["stats"]);
    assert!(
        stats["l3_drops"]["l3_routing_disabled"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{}",
        stats["l3_drops"]
    );
    d.ctl(&["gateway", "set", "net2", "10.61.2.1/24", "fd61:2::1/64"]);

    // Gateways and routes survive a restart (veth ports are re-attached).
    d.stop();
    d.spawn();
    assert!(a.ping_eventually("10.61.2.10", Duration::from_secs(10)));
    assert!(a.ping_eventually("10.61.3.10", Duration::from_secs(5)));

    // Bad input is refused and changes nothing.
    let o = d.ctl_raw(&[
        "route",
        "add",
        "10.61.3.1/24",
        "--via",
        "10.61.2.254",
        "--domain",
        "net2",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("host bits"),
        "{o:?}"
    );
    let o = d.ctl_raw(&["domain", "del", "net2"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("in use"),
        "{o:?}"
    );
}

/// A TAP port made by daemon `d` (running in namespace-host `host`), moved
/// into `node` as eth0 with `addr`.
fn tap_from_host_into(
    d: &Daemon,
    host: &Netns,
    node: &Netns,
    port: &str,
    domain: &str,
    addr: &str,
) {
    d.ctl(&["port", "add", port, "--kind", "tap", "--domain", domain]);
    host.ip(&["link", "set", port, "netns", &node.name]);
    node.ip(&["link", "set", port, "name", "eth0"]);
    node.ip(&["addr", "add", addr, "dev", "eth0"]);
    // The overlay's MTU: 1500 on the underlay less 50 bytes of VXLAN.
    node.ip(&["link", "set", "eth0", "mtu", "1450", "up"]);
}

#[test]
fn two_daemons_on_two_hosts_carry_two_isolated_vxlan_networks() {
    if !root_or_skip("two_daemons_on_two_hosts_carry_two_isolated_vxlan_networks") {
        return;
    }
    // Two namespace-"hosts" joined by an underlay link.
    let (h1, h2) = (Netns::new("vh1"), Netns::new("vh2"));
    let (u1, u2) = (unique("vu1"), unique("vu2"));
    h1.ip(&["link", "add", &u1, "type", "veth", "peer", "name", &u2]);
    h1.ip(&["link", "set", &u2, "netns", &h2.name]);
    h1.ip(&["addr", "add", "10.62.0.1/24", "dev", &u1]);
    h2.ip(&["addr", "add", "10.62.0.2/24", "dev", &u2]);
    h1.ip(&["link", "set", &u1, "up"]);
    h2.ip(&["link", "set", &u2, "up"]);
    let d1 = Daemon::start_in(Some(&h1));
    let d2 = Daemon::start_in(Some(&h2));
    // On each host: networks "blue" (VNI 4242) and "red" (VNI 4343), each
    // a bridge domain with one VTEP port on the shared UDP socket 4789.
    for (d, local, remote) in [
        (&d1, "10.62.0.1", "10.62.0.2"),
        (&d2, "10.62.0.2", "10.62.0.1"),
    ] {
        for (net, vni) in [("blue", "4242"), ("red", "4343")] {
            d.ctl(&["domain", "add", net]);
            let remotes = format!("remotes=[\"{remote}\"]");
            d.ctl(&[
                "port",
                "add",
                &format!("vx-{net}"),
                "--kind",
                "vxlan",
                "--domain",
                net,
                "--option",
                &format!("local={local}"),
                "--option",
                &format!("vni={vni}"),
                "--option",
                &remotes,
            ]);
        }
    }
    // Hosts: blue a1 (h1) + a2 (h2); red b1 (h1) + b2 (h2); one subnet, so
    // only the VNI keeps them apart.
    let (a1, a2, b1, b2) = (
        Netns::new("va1"),
        Netns::new("va2"),
        Netns::new("vb1"),
        Netns::new("vb2"),
    );
    tap_from_host_into(&d1, &h1, &a1, &unique("vta"), "blue", "10.63.0.1/24");
    tap_from_host_into(&d2, &h2, &a2, &unique("vta"), "blue", "10.63.0.2/24");
    tap_from_host_into(&d1, &h1, &b1, &unique("vtb"), "red", "10.63.0.3/24");
    tap_from_host_into(&d2, &h2, &b2, &unique("vtb"), "red", "10.63.0.4/24");

    assert!(
        a1.ping_eventually("10.63.0.2", Duration::from_secs(5)),
        "blue across hosts"
    );
    assert!(
        b1.ping_eventually("10.63.0.4", Duration::from_secs(5)),
        "red across hosts"
    );
    assert!(!a1.ping("10.63.0.4", 2), "blue must not reach red");
    assert!(!b2.ping("10.63.0.2", 2), "red must not reach blue");
    // TCP over the overlay (TAP TSO super-frames are cut to the underlay MTU).
    assert_eq!(iperf_bytes(&a2, &a1, "10.63.0.1", "4M"), 4 << 20);

    // The remote table learned a2's MAC behind 10.62.0.2.
    let r = d1.json(&["remote", "list", "vx-blue"]);
    let a2_mac = String::from_utf8(a2.exec("cat", &["/sys/class/net/eth0/address"]).stdout)
        .unwrap()
        .trim()
        .to_string();
    let entries = r["entries"].to_string();
    assert!(
        entries.contains(&a2_mac) && entries.contains("10.62.0.2"),
        "{r}"
    );
    assert!(r["stats"]["rx_decap"].as_u64().unwrap() > 0, "{r}");

    // Remotes change at run time and persist: without a flood list, blue's
    // broadcasts (ARP) no longer reach h2.
    d1.ctl(&["remote", "del", "vx-blue", "10.62.0.2"]);
    let r = d1.json(&["remote", "list", "vx-blue"]);
    assert_eq!(r["flood"], serde_json::json!([]), "{r}");
    let o = d1.ctl_raw(&["remote", "del", "vx-blue", "10.62.0.2"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no remote"),
        "{o:?}"
    );
    d1.ctl(&["remote", "add", "vx-blue", "10.62.0.2"]);
    let port = d1.json(&["port", "show", "vx-blue"]);
    assert_eq!(
        port["options"]["remotes"],
        serde_json::json!(["10.62.0.2"]),
        "{port}"
    );
    assert!(a1.ping_eventually("10.63.0.2", Duration::from_secs(5)));
}

/// The round-trip times `ping` printed, in milliseconds.
fn rtts(out: &Output) -> Vec<f64> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn impaired_ports_delay_and_drop_what_they_send() {
    if !root_or_skip("impaired_ports_delay_and_drop_what_they_send") {
        return;
    }
    let d = Daemon::start();
    d.ctl(&["domain", "add", "imp"]);
    let (a, b) = (Netns::new("ima"), Netns::new("imb"));
    tap_into(&d, &a, &unique("ipa"), "imp", &[], "10.64.0.1/24");
    // Frames the switch sends to b wait 40 ms (± 5).
    tap_into(
        &d,
        &b,
        &unique("ipb"),
        "imp",
        &[
            "--option",
            r#"impair={"delay_ms": 40, "jitter_ms": 5, "seed": 1}"#,
        ],
        "10.64.0.2/24",
    );
    assert!(a.ping_eventually("10.64.0.2", Duration::from_secs(5)));
    let out = a.exec("ping", &["-c", "5", "-i", "0.2", "-W", "2", "10.64.0.2"]);
    let t = rtts(&out);
    assert_eq!(t.len(), 5, "{out:?}");
    assert!(t.iter().all(|ms| *ms >= 35.0), "every echo waited: {t:?}");
    // A port that loses everything it sends.
    let c = Netns::new("imc");
    tap_into(
        &d,
        &c,
        &unique("ipc"),
        "imp",
        &["--option", r#"impair={"loss_pct": 100}"#],
        "10.64.0.3/24",
    );
    assert!(!a.ping("10.64.0.3", 3), "all lost");
    // Bad settings are refused and nothing is made.
    let o = d.ctl_raw(&[
        "port",
        "add",
        "ipx",
        "--kind",
        "tap",
        "--domain",
        "imp",
        "--option",
        r#"impair={"jitter_ms": 9}"#,
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("exceeds delay_ms") && e.contains("(HTTP 400)"),
        "{e}"
    );
    let link = Command::new("ip")
        .args(["link", "show", "ipx"])
        .output()
        .unwrap();
    assert!(!link.status.success(), "no TAP left behind");
}

#[test]
fn a_ring_of_three_bridges_runs_rstp_and_carries_no_storm() {
    if !root_or_skip("a_ring_of_three_bridges_runs_rstp_and_carries_no_storm") {
        return;
    }
    let d = Daemon::start();
    let doms = ["r1", "r2", "r3"];
    for s in doms {
        d.ctl(&["domain", "add", s, "--stp", "true"]);
    }
    // Ring links: veth pairs whose ends are ports of two bridge domains.
    let mut links = Vec::new();
    let mut ring_ports = Vec::new();
    for i in 0..3 {
        let (a, b) = (doms[i], doms[(i + 1) % 3]);
        let (l, peer) = Link::veth("rgl", None);
        ip(&["link", "set", &peer, "up"]);
        ip(&["link", "set", &l.name, "up"]);
        for (dom, ifc) in [(a, l.name.as_str()), (b, peer.as_str())] {
            let p = unique("rgp");
            d.ctl(&[
                "port", "add", &p, "--kind", "afpacket", "--iface", ifc, "--domain", dom,
            ]);
            ring_ports.push(p);
        }
        links.push(l);
    }
    // Hosts on r1 and r3, behind edge ports.
    let (h1, h3) = (Netns::new("rgh"), Netns::new("rgh"));
    tap_into(
        &d,
        &h1,
        &unique("rgt"),
        "r1",
        &["--stp-edge", "true"],
        "10.65.0.1/24",
    );
    tap_into(
        &d,
        &h3,
        &unique("rgt"),
        "r3",
        &["--stp-edge", "true"],
        "10.65.0.3/24",
    );
    assert!(
        h1.ping_eventually("10.65.0.3", Duration::from_secs(10)),
        "reachable over the tree"
    );
    // The tree settles with exactly one ring port blocked.
    let ring_states = || {
        let mut states = Vec::new();
        for s in doms {
            let v = d.json(&["stp", s]);
            for p in v["ports"].as_array().unwrap() {
                if ring_ports
                    .iter()
                    .any(|r| p["port"] == Value::String(r.clone()))
                {
                    states.push((p["role"].to_string(), p["state"].to_string()));
                }
            }
        }
        states
    };
    let t = Instant::now();
    let mut states = ring_states();
    while t.elapsed() < Duration::from_secs(40)
        && states.iter().filter(|(_, s)| s != "\"forwarding\"").count() != 1
    {
        std::thread::sleep(Duration::from_millis(200));
        states = ring_states();
    }
    let blocked: Vec<_> = states
        .iter()
        .filter(|(_, s)| s != "\"forwarding\"")
        .collect();
    assert_eq!(blocked.len(), 1, "{states:?}");
    assert_eq!(blocked[0].0, "\"alternate\"", "{states:?}");
    eprintln!("ring converged in {:?}: {states:?}", t.elapsed());
    // No storm: after broadcasts (ARP, pings to the subnet broadcast) the
    // ring ports' receive counters stay small.
    h1.exec(
        "ping",
        &["-b", "-c", "3", "-i", "0.2", "-w", "2", "10.65.0.255"],
    );
    std::thread::sleep(Duration::from_secs(2));
    let rx = |p: &str| port_stats(&d, p)["rx_packets"].as_u64().unwrap();
    let before: u64 = ring_ports.iter().map(|p| rx(p)).sum();
    std::thread::sleep(Duration::from_secs(2));
    let after: u64 = ring_ports.iter().map(|p| rx(p)).sum();
    assert!(
        after - before < 50,
        "ring ports kept receiving: {before} -> {after} frames in 2 s"
    );
    let text = d.ctl(&["stp", "r1"]);
    assert!(
        text.contains("ROLE") && text.contains("forwarding"),
        "{text}"
    );
    drop(links);
}
