//! Services with a VIP as a user meets them: `rvswitch daemon` as a
//! process, a client and three backends in their own network namespaces
//! on TAP ports of one network, `ctl service add`, and real sockets: UDP
//! servers in the backends answer with their own name, so the client sees
//! which backend each flow reached; TCP listeners are what the health
//! check connects to.
//!
//! The API test runs anywhere (memory ports); the others need root (SKIP
//! otherwise, a failure under RVS_TEST_STRICT=1).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use rvs_drivers::netns::in_netns;
use rvs_drivers::testutil::{Netns, root_or_skip, unique};
use serde_json::{Value, json};

mod common;
use common::daemon::Daemon;

/// The services API: validated (nothing kept of a refused request),
/// stored, gone with the domain. Memory ports only: runs without root.
#[test]
fn services_are_validated_stored_and_go_with_their_domain() {
    let mut d = Daemon::start(None, &["--test-memory-ports"]);
    d.ctl(&["domain", "add", "net1", "--gateway", "10.9.0.1/24"]);
    d.ctl(&["domain", "add", "l2only"]);
    let good = json!({"vips": ["10.9.0.100"], "ports": [{"port": 80, "protocol": "tcp"}],
                      "backends": ["web1", "10.9.0.12"]});
    let (s, v) = d.call("PUT", "/v1/domains/net1/services/Web", Some(good.clone()));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["service"]["name"], "web", "stored in lower case");
    // web1 has no name yet: listed without an address.
    assert_eq!(
        v["backends"][0],
        json!({"backend": "web1", "address": null})
    );
    assert_eq!(v["backends"][1]["up"], true);
    let with = |k: &str, val: Value| {
        let mut b = good.clone();
        b[k] = val;
        b
    };
    for (path, body, status, needle) in [
        (
            "/v1/domains/net1/services/a..b",
            good.clone(),
            400,
            "invalid DNS name",
        ),
        (
            "/v1/domains/net1/services/x",
            with("vips", json!([])),
            400,
            "one or two VIPs",
        ),
        (
            "/v1/domains/net1/services/x",
            with("vips", json!(["10.9.0.101", "10.9.0.102"])),
            400,
            "one or two VIPs",
        ),
        (
            "/v1/domains/net1/services/x",
            with("vips", json!(["224.0.0.5"])),
            400,
            "not a unicast",
        ),
        (
            "/v1/domains/net1/services/x",
            with("vips", json!(["fe80::64"])),
            400,
            "not a unicast address the gateway routes to",
        ),
        (
            "/v1/domains/net1/services/x",
            with("vips", json!(["255.255.255.255"])),
            400,
            "not a unicast address the gateway routes to",
        ),
        (
            "/v1/domains/net1/services/x",
            with("ports", json!([])),
            400,
            "1 to 64 ports",
        ),
        (
            "/v1/domains/net1/services/x",
            with("ports", json!([{"port": 80, "protocol": "sctp"}])),
            400,
            "invalid request body",
        ),
        (
            "/v1/domains/net1/services/x",
            with("ports", json!([{"port": 0, "protocol": "udp"}])),
            400,
            "port 0",
        ),
        (
            "/v1/domains/net1/services/x",
            with("backends", json!([])),
            400,
            "1 to 256 backends",
        ),
        (
            "/v1/domains/net1/services/x",
            with("backends", json!(["a", "a"])),
            400,
            "given twice",
        ),
        (
            "/v1/domains/net1/services/x",
            with("backends", json!(["bad name!"])),
            400,
            "neither an address nor a name",
        ),
        (
            "/v1/domains/net1/services/x",
            with("health_check", json!({"interval_ms": 10})),
            400,
            "interval_ms",
        ),
        (
            "/v1/domains/net1/services/x",
            with("weight", json!(3)),
            400,
            "unknown field",
        ),
        (
            "/v1/domains/net1/services/x",
            with("origin", json!("mine")),
            400,
            "the only origin",
        ),
        (
            "/v1/domains/net1/services/x",
            with("mode", json!("dnsrr")),
            400,
            "dnsrr service has no VIPs",
        ),
        (
            "/v1/domains/net1/services/x",
            good.clone(),
            409,
            "belongs to service web",
        ),
        (
            "/v1/domains/net1/services/x",
            with("vips", json!(["10.9.0.1"])),
            409,
            "address of the gateway",
        ),
        (
            "/v1/domains/l2only/services/x",
            good.clone(),
            409,
            "no gateway",
        ),
        ("/v1/domains/nope/services/x", good.clone(), 404, "nope"),
    ] {
        let (s, v) = d.call("PUT", path, Some(body));
        assert_eq!(s, status, "{path}: {v}");
        let e = v["error"].as_str().unwrap_or_default();
        assert!(e.contains(needle), "{path}: {v}");
    }
    let list = d.json(&["service", "list", "net1"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    // ctl, and a restart keeps what was stored.
    d.ctl(&[
        "service",
        "add",
        "dns",
        "--network",
        "net1",
        "--mode",
        "dnsrr",
        "--backend",
        "web1",
    ]);
    d.ctl(&[
        "service",
        "add",
        "api",
        "--network",
        "net1",
        "--vip",
        "10.9.0.101",
        "--vip",
        "fd09::101",
        "--port",
        "443:8443/tcp",
        "--port",
        "53/udp",
        "--backend",
        "10.9.0.12",
        "--health-check",
        "--interval-ms",
        "500",
        "--timeout-ms",
        "1200",
    ]);
    d.restart();
    let list = d.json(&["service", "list", "net1"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "dns", "web"]);
    let api = &list[0]["service"]["spec"];
    assert_eq!(
        api["ports"][0],
        json!({"port": 443, "protocol": "tcp", "target_port": 8443})
    );
    assert_eq!(
        api["health_check"],
        json!({"interval_ms": 500, "timeout_ms": 1200})
    );
    assert_eq!(api["vips"], json!(["10.9.0.101", "fd09::101"]));
    let o = common::ctl_raw(
        &d.socket(),
        &[
            "service",
            "add",
            "z",
            "--network",
            "net1",
            "--vip",
            "10.9.0.102",
            "--port",
            "80/icmp",
            "--backend",
            "a",
        ],
    );
    assert!(!o.status.success(), "a bad --port is refused by ctl");
    d.ctl(&["service", "del", "net1", "API"]);
    let (s, _) = d.call("DELETE", "/v1/domains/net1/services/api", None);
    assert_eq!(s, 404);
    // Deleting the domain deletes its services.
    d.ctl(&["domain", "del", "net1"]);
    d.ctl(&["domain", "add", "net1", "--gateway", "10.9.0.1/24"]);
    assert_eq!(d.json(&["service", "list", "net1"]), json!([]));
}

// ---- the rig: a client and three backends on one network ------------------

const GW: &str = "10.88.1.1";
const VIP: &str = "10.88.1.100";
const VIP6: &str = "fd88:1::100";
/// The backends' UDP port (the service's target) and TCP check port.
const UDP_PORT: u16 = 5353;
const TCP_PORT: u16 = 8080;

/// A backend: its namespace (with a UDP server answering its name) and
/// the switch of its TCP listener (turned off to "kill" it).
struct Backend {
    ns: Netns,
    tcp_stop: Arc<AtomicBool>,
}

struct Rig {
    d: Daemon,
    _h: Netns,
    client: Netns,
    backends: Vec<Backend>,
    stop: Arc<AtomicBool>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for b in &self.backends {
            b.tcp_stop.store(true, Ordering::Relaxed);
        }
    }
}

fn node(d: &Daemon, h: &Netns, domain: &str, addrs: &[String]) -> Netns {
    let ns = Netns::new("rvln");
    let port = unique("rvlt");
    d.ctl(&[
        "port", "add", &port, "--kind", "tap", "--domain", domain, "--access", "1",
    ]);
    h.ip(&["link", "set", &port, "netns", &ns.name]);
    ns.ip(&["link", "set", &port, "name", "eth0"]);
    for a in addrs {
        let mut args = vec!["addr", "add", a.as_str(), "dev", "eth0"];
        if a.contains(':') {
            args.push("nodad");
        }
        ns.ip(&args);
    }
    ns.ip(&["link", "set", "eth0", "up"]);
    ns
}

/// A UDP server in `ns` on both families answering each datagram with
/// `name`, until `stop`.
fn udp_server(ns: &Netns, name: &str, stop: Arc<AtomicBool>) {
    // One dual-stack socket (IPv4 arrives v4-mapped).
    let s = in_netns(&ns.name, || UdpSocket::bind(("::", UDP_PORT)).unwrap()).unwrap();
    {
        let (name, stop) = (name.to_string(), stop.clone());
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((_, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(name.as_bytes(), from);
                }
            }
        });
    }
}

/// A TCP server in `ns` (dual stack) answering every connection with
/// `name`, until `stop`: then its listening socket closes (and the kernel
/// answers the port with RST).
fn tcp_listener(ns: &Netns, name: &str, stop: Arc<AtomicBool>) {
    let l = in_netns(&ns.name, || TcpListener::bind(("::", TCP_PORT)).unwrap()).unwrap();
    l.set_nonblocking(true).unwrap();
    let name = name.to_string();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut c, _)) => {
                    let _ = c.set_nonblocking(false);
                    let _ = c.write_all(name.as_bytes());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
}

fn rig() -> Rig {
    let h = Netns::new("rvlh");
    let d = Daemon::start(Some(&h), &[]);
    d.ctl(&["domain", "add", "net1"]);
    d.ctl(&["gateway", "set", "net1", "10.88.1.1/24", "fd88:1::1/64"]);
    let stop = Arc::new(AtomicBool::new(false));
    let client = node(
        &d,
        &h,
        "net1",
        &["10.88.1.10/24".into(), "fd88:1::10/64".into()],
    );
    let mut backends = Vec::new();
    for i in 1..=3 {
        let ns = node(
            &d,
            &h,
            "net1",
            &[format!("10.88.1.1{i}/24"), format!("fd88:1::1{i}/64")],
        );
        let name = format!("b{i}");
        d.ctl(&[
            "name",
            "set",
            "net1",
            &name,
            &format!("10.88.1.1{i}"),
            &format!("fd88:1::1{i}"),
        ]);
        udp_server(&ns, &name, stop.clone());
        let tcp_stop = Arc::new(AtomicBool::new(false));
        tcp_listener(&ns, &name, tcp_stop.clone());
        // The gateway learns each backend before the first flow.
        assert!(
            ns.ping_eventually(GW, Duration::from_secs(5)),
            "{name} reaches the gateway"
        );
        assert!(ns.ping_eventually("fd88:1::1", Duration::from_secs(5)));
        backends.push(Backend { ns, tcp_stop });
    }
    assert!(client.ping_eventually(GW, Duration::from_secs(5)));
    Rig {
        d,
        _h: h,
        client,
        backends,
        stop,
    }
}

/// Send one datagram to `vip`:53 from each of `ports` (each its own flow)
/// from the client and return the name of the backend that answered each;
/// unanswered flows are retried, then reported as missing.
fn flows(r: &Rig, vip: &str, ports: std::ops::Range<u16>) -> HashMap<u16, String> {
    let vip: IpAddr = vip.parse().unwrap();
    let to = SocketAddr::new(vip, 53);
    let mut got = HashMap::new();
    let all: Vec<u16> = ports.collect();
    for chunk in all.chunks(400) {
        let socks: Vec<(u16, UdpSocket)> = in_netns(&r.client.name, || {
            chunk
                .iter()
                .map(|&p| {
                    let bind: SocketAddr = if vip.is_ipv4() {
                        ([0, 0, 0, 0], p).into()
                    } else {
                        (std::net::Ipv6Addr::UNSPECIFIED, p).into()
                    };
                    (p, UdpSocket::bind(bind).unwrap())
                })
                .collect()
        })
        .unwrap();
        for attempt in 0..4 {
            let missing: Vec<&(u16, UdpSocket)> =
                socks.iter().filter(|(p, _)| !got.contains_key(p)).collect();
            if missing.is_empty() {
                break;
            }
            for (_, s) in &missing {
                s.send_to(b"hi", to).unwrap();
                if attempt == 0 {
                    // Keep the rate moderate: the TAP queues are short.
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
            let deadline = Instant::now() + Duration::from_millis(500 + 500 * attempt);
            for (p, s) in &missing {
                let left = deadline.saturating_duration_since(Instant::now());
                s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .unwrap();
                let mut buf = [0u8; 16];
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    assert_eq!(from, to, "the reply comes from the VIP and port 53");
                    got.insert(*p, String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        }
    }
    got
}

fn count(m: &HashMap<u16, String>) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    for v in m.values() {
        *c.entry(v.clone()).or_insert(0) += 1;
    }
    c
}

#[test]
fn a_vip_spreads_udp_flows_evenly_and_a_leaving_backend_moves_only_its_own() {
    if !root_or_skip("a_vip_spreads_udp_flows_evenly_and_a_leaving_backend_moves_only_its_own") {
        return;
    }
    let r = rig();
    r.d.ctl(&[
        "service",
        "add",
        "web",
        "--network",
        "net1",
        "--vip",
        VIP,
        "--port",
        "53:5353/udp",
        "--backend",
        "b1",
        "--backend",
        "b2",
        "--backend",
        "b3",
    ]);
    const N: u16 = 10_000;
    let first = flows(&r, VIP, 20_000..20_000 + N);
    assert_eq!(first.len(), N as usize, "every flow answered");
    let c = count(&first);
    println!("10,000 UDP flows over 3 backends: {c:?}");
    for b in ["b1", "b2", "b3"] {
        let share = *c.get(b).unwrap_or(&0) as f64 / N as f64;
        assert!(
            (share - 1.0 / 3.0).abs() <= 0.1 / 3.0,
            "{b}: {share:.3} of {c:?}"
        );
    }
    // b2's endpoint leaves (its name goes): the same flows again.
    r.d.ctl(&["name", "del", "net1", "b2"]);
    let v = r.d.json(&["service", "show", "net1", "web"]);
    assert_eq!(
        v["backends"][1],
        json!({"backend": "b2", "address": null}),
        "{v}"
    );
    let second = flows(&r, VIP, 20_000..20_000 + N);
    assert_eq!(second.len(), N as usize);
    let mut moved = 0;
    for (p, was) in &first {
        let now = &second[p];
        if was == "b2" {
            assert_ne!(
                now, "b2",
                "flow from port {p} still on the backend that left"
            );
            moved += 1;
        } else {
            assert_eq!(now, was, "flow from port {p} moved off a remaining backend");
        }
    }
    assert_eq!(moved, c["b2"]);
    // New flows spread over the two that are left.
    let third = count(&flows(&r, VIP, 40_000..42_000));
    assert_eq!(third.get("b2"), None);
    assert!(third["b1"] > 800 && third["b3"] > 800, "{third:?}");
    let stats = r.d.json(&["stats"]);
    assert!(
        stats["stages"]["lb_new_flows"].as_u64().unwrap() >= N as u64,
        "{stats}"
    );
}

#[test]
fn tcp_and_ipv6_vips_reach_every_backend() {
    if !root_or_skip("tcp_and_ipv6_vips_reach_every_backend") {
        return;
    }
    let r = rig();
    r.d.ctl(&[
        "service",
        "add",
        "web",
        "--network",
        "net1",
        "--vip",
        VIP,
        "--vip",
        VIP6,
        "--port",
        "80:8080/tcp",
        "--port",
        "53:5353/udp",
        "--backend",
        "b1",
        "--backend",
        "b2",
        "--backend",
        "b3",
    ]);
    for vip in [VIP, VIP6] {
        // TCP: a whole connection through the VIP (handshake, data, close).
        let to = SocketAddr::new(vip.parse().unwrap(), 80);
        let mut seen = HashMap::new();
        for _ in 0..60 {
            let mut c = in_netns(&r.client.name, || {
                TcpStream::connect_timeout(&to, Duration::from_secs(3))
            })
            .unwrap()
            .unwrap_or_else(|e| panic!("connect to {to}: {e}"));
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut name = String::new();
            c.read_to_string(&mut name).unwrap();
            assert_eq!(c.peer_addr().unwrap(), to);
            *seen.entry(name).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 3, "{vip}: every backend answered TCP: {seen:?}");
        // UDP over the same VIP.
        let got = count(&flows(&r, vip, 30_000..30_300));
        assert_eq!(got.values().sum::<usize>(), 300, "{vip}: {got:?}");
        assert_eq!(got.len(), 3, "{vip}: {got:?}");
    }
    // The VIP answers ping itself.
    assert!(r.client.ping(VIP, 1));
    assert!(r.client.ping(VIP6, 1));
}

/// Backend b3 stops listening: the health check (every 1 s, down after
/// 2.5 s of silence) takes it out within 3 s; new flows avoid it. It comes
/// back when it listens again.
#[test]
fn a_killed_backend_is_skipped_after_health_checks() {
    if !root_or_skip("a_killed_backend_is_skipped_after_health_checks") {
        return;
    }
    let mut r = rig();
    r.d.ctl(&[
        "service",
        "add",
        "web",
        "--network",
        "net1",
        "--vip",
        VIP,
        "--port",
        "53:5353/udp",
        "--backend",
        "b1",
        "--backend",
        "b2",
        "--backend",
        "b3",
        "--health-check",
        "8080",
    ]);
    let ups = |r: &Rig| -> Vec<bool> {
        let v = r.d.json(&["service", "show", "net1", "web"]);
        v["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["up"].as_bool().unwrap())
            .collect()
    };
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        ups(&r),
        [true, true, true],
        "every backend answers its check"
    );
    // Kill b3's service: its port closes (the kernel answers RST).
    r.backends[2].tcp_stop.store(true, Ordering::Relaxed);
    let killed = Instant::now();
    while ups(&r)[2] && killed.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = killed.elapsed();
    println!("b3 marked down {took:?} after its port closed");
    assert!(!ups(&r)[2], "b3 still up 5 s after its port closed");
    assert!(took <= Duration::from_secs(3), "took {took:?}");
    let got = count(&flows(&r, VIP, 21_000..21_600));
    assert_eq!(got.get("b3"), None, "{got:?}");
    assert_eq!(got.values().sum::<usize>(), 600);
    // b3 listens again: back within a check or two.
    std::thread::sleep(Duration::from_millis(50));
    let again = Arc::new(AtomicBool::new(false));
    tcp_listener(&r.backends[2].ns, "b3", again.clone());
    r.backends[2].tcp_stop = again;
    let back = Instant::now();
    while !ups(&r)[2] && back.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ups(&r)[2], "b3 back up");
    let got = count(&flows(&r, VIP, 22_000..22_600));
    assert!(got.get("b3").copied().unwrap_or(0) > 100, "{got:?}");
}

fn dns_query(s: &UdpSocket, id: u16, name: &str, t: RecordType) -> Vec<String> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    let q = m.to_vec().unwrap();
    let mut buf = [0u8; 1500];
    for _ in 0..3 {
        s.send(&q).unwrap();
        while let Ok(n) = s.recv(&mut buf) {
            let a = Message::from_vec(&buf[..n]).unwrap();
            if a.metadata.id == id {
                return a.answers.iter().map(|r| r.data.to_string()).collect();
            }
        }
    }
    panic!("no answer for {name}");
}

#[test]
fn a_service_name_resolves_to_its_vip_or_round_robin_to_its_backends() {
    if !root_or_skip("a_service_name_resolves_to_its_vip_or_round_robin_to_its_backends") {
        return;
    }
    let r = rig();
    r.d.ctl(&[
        "service",
        "add",
        "web",
        "--network",
        "net1",
        "--vip",
        VIP,
        "--vip",
        VIP6,
        "--port",
        "53:5353/udp",
        "--backend",
        "b1",
        "--backend",
        "b2",
    ]);
    r.d.ctl(&[
        "service",
        "add",
        "pool",
        "--network",
        "net1",
        "--mode",
        "dnsrr",
        "--backend",
        "b1",
        "--backend",
        "b3",
    ]);
    let s = in_netns(&r.client.name, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.connect((GW, 53)).unwrap();
        s
    })
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(dns_query(&s, 1, "web.", RecordType::A), [VIP]);
    assert_eq!(dns_query(&s, 2, "web.", RecordType::AAAA), [VIP6]);
    let mut first = HashMap::new();
    for id in 10..40 {
        let a = dns_query(&s, id, "pool.", RecordType::A);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, ["10.88.1.11", "10.88.1.13"]);
        *first.entry(a[0].clone()).or_insert(0) += 1;
    }
    assert_eq!(
        first.len(),
        2,
        "both addresses come first in turn: {first:?}"
    );
    // And by name, what a user does: the VIP reached through its name.
    let to: SocketAddr = (VIP.parse::<IpAddr>().unwrap(), 53).into();
    let u = in_netns(&r.client.name, || UdpSocket::bind("0.0.0.0:0").unwrap()).unwrap();
    u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    u.send_to(b"x", to).unwrap();
    let mut buf = [0u8; 8];
    let (n, from) = u.recv_from(&mut buf).unwrap();
    assert_eq!(from, to);
    assert!(matches!(&buf[..n], b"b1" | b"b2"));
}
