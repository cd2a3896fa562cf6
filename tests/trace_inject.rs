//! `ctl trace inject` against a real daemon: namespaces on TAP ports of
//! two routed networks, frames injected by hex. Each report is judged by
//! what the namespaces really receive: nothing during the dry run (tcpdump
//! on the destination), the same frame when it is then sent for real.
//!
//! The bad-input test runs anywhere (memory ports); the others need root
//! (SKIP otherwise, a failure under RVS_TEST_STRICT=1).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use rvs_drivers::testutil::{Netns, inject_frame, root_or_skip, unique};
use serde_json::{Value, json};

mod common;
use common::daemon::Daemon;
use common::lan::{Capture, sent_by, tcpdump};
use common::{BIN, run_or_skip};

/// A MAC no namespace has: what the injected frames come from.
const FAKE: &str = "02:99:00:00:00:01";

fn mac_bytes(m: &str) -> Vec<u8> {
    m.split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Ethernet + IPv4 + UDP (valid header checksum, UDP checksum 0).
fn udp_frame(dst: &str, src: &str, from: [u8; 4], to: [u8; 4], ttl: u8) -> Vec<u8> {
    let payload = b"rvswitch trace inject";
    let mut f = mac_bytes(dst);
    f.extend(mac_bytes(src));
    f.extend([0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0, 0, ttl, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend(from);
    ip.extend(to);
    let sum: u32 = ip
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend(ip);
    f.extend(40000u16.to_be_bytes());
    f.extend(9999u16.to_be_bytes());
    f.extend((8 + payload.len() as u16).to_be_bytes());
    f.extend([0, 0]);
    f.extend(payload);
    f
}

struct Node {
    ns: Netns,
    port: String,
    mac: String,
}

fn node(d: &Daemon, h: &Netns, domain: &str, addr: &str, gw: &str) -> Node {
    let ns = Netns::new("rvtn");
    let port = unique("rvtt");
    d.ctl(&[
        "port", "add", &port, "--kind", "tap", "--domain", domain, "--access", "1",
    ]);
    h.ip(&["link", "set", &port, "netns", &ns.name]);
    ns.ip(&["link", "set", &port, "name", "eth0"]);
    ns.ip(&["addr", "add", addr, "dev", "eth0"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["route", "add", "default", "via", gw]);
    let link = String::from_utf8(ns.ip(&["-o", "link", "show", "eth0"]).stdout).unwrap();
    let mac = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("eth0 has a MAC")
        .to_string();
    Node { ns, port, mac }
}

/// net1 (10.77.1.0/24): a, b, x; net2 (10.77.2.0/24): c. Everyone has
/// pinged its gateway (so the FDB knows them) and a has reached c (so the
/// router knows c).
struct Rig {
    d: Daemon,
    _h: Netns,
    a: Node,
    b: Node,
    x: Node,
    c: Node,
}

fn rig() -> Rig {
    let h = Netns::new("rvth");
    let d = Daemon::start(Some(&h), &[]);
    d.ctl(&["domain", "add", "net1", "--gateway", "10.77.1.1/24"]);
    d.ctl(&["domain", "add", "net2", "--gateway", "10.77.2.1/24"]);
    let a = node(&d, &h, "net1", "10.77.1.10/24", "10.77.1.1");
    let b = node(&d, &h, "net1", "10.77.1.11/24", "10.77.1.1");
    let x = node(&d, &h, "net1", "10.77.1.12/24", "10.77.1.1");
    let c = node(&d, &h, "net2", "10.77.2.10/24", "10.77.2.1");
    for n in [&a, &b, &x] {
        assert!(n.ns.ping_eventually("10.77.1.1", Duration::from_secs(5)));
    }
    assert!(c.ns.ping_eventually("10.77.2.1", Duration::from_secs(5)));
    assert!(a.ns.ping_eventually("10.77.2.10", Duration::from_secs(5)));
    Rig {
        d,
        _h: h,
        a,
        b,
        x,
        c,
    }
}

fn inject(d: &Daemon, port: &str, frame: &[u8]) -> String {
    d.ctl(&["trace", "inject", port, &hex(frame)])
}

/// The gateway's MAC as `n` resolved it.
fn gateway_mac(n: &Node, gw: &str) -> String {
    let o = String::from_utf8(n.ns.ip(&["neigh", "show", gw]).stdout).unwrap();
    o.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or_else(|| panic!("{gw} unresolved: {o}"))
        .to_string()
}

/// The lines of `out` of one stage.
fn stage<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| l.split_whitespace().next() == Some(name))
        .collect()
}

#[test]
fn a_known_destination_shows_its_port_and_nothing_arrives_until_sent_for_real() {
    if !root_or_skip("a_known_destination_shows_its_port_and_nothing_arrives_until_sent_for_real")
        || !run_or_skip("trace_inject known", tcpdump())
    {
        return;
    }
    let r = rig();
    let f = udp_frame(&r.b.mac, FAKE, [10, 77, 1, 10], [10, 77, 1, 11], 64);
    let cap = Capture::start(&r.b.ns);
    let out = inject(&r.d, &r.a.port, &f);
    assert!(stage(&out, "lookup")[0].contains("(learned, age"), "{out}");
    let egress = stage(&out, "egress");
    assert_eq!(egress.len(), 1, "{out}");
    assert!(egress[0].contains(&format!("port {} (", r.b.port)), "{out}");
    assert!(egress[0].contains("untagged"), "{out}");
    assert!(out.contains("would send 1 frame(s)"), "{out}");
    // JSON: the exact bytes, the frame unchanged (access to access).
    let v: Value = serde_json::from_str(&r.d.ctl(&[
        "--format",
        "json",
        "trace",
        "inject",
        &r.a.port,
        &hex(&f),
    ]))
    .unwrap();
    assert_eq!(v["sent"][0]["port"], r.b.port.as_str());
    assert_eq!(v["sent"][0]["frame"], hex(&f).as_str());
    std::thread::sleep(Duration::from_millis(300));
    // The fake source was not learned.
    let fdb = r.d.json(&["fdb", "show", "net1"]).to_string();
    assert!(!fdb.contains(FAKE), "{fdb}");
    // Now for real, from a's namespace: b receives it.
    inject_frame(&r.a.ns, "eth0", &f).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let lines = cap.lines();
    let got = sent_by(&lines, FAKE);
    assert_eq!(got.len(), 1, "only the real send arrives: {lines:#?}");
    assert!(
        r.d.json(&["fdb", "show", "net1"])
            .to_string()
            .contains(FAKE)
    );
}

#[test]
fn a_broadcast_lists_every_other_port_of_the_network() {
    if !root_or_skip("a_broadcast_lists_every_other_port_of_the_network")
        || !run_or_skip("trace_inject flood", tcpdump())
    {
        return;
    }
    let r = rig();
    let mut f = mac_bytes("ff:ff:ff:ff:ff:ff");
    f.extend(mac_bytes(FAKE));
    f.extend([0x88, 0xb5]);
    f.extend([0u8; 46]);
    let cap = Capture::start(&r.x.ns);
    let out = inject(&r.d, &r.a.port, &f);
    let egress = stage(&out, "egress").join("\n");
    for n in [&r.b, &r.x] {
        assert!(egress.contains(&format!("port {} (", n.port)), "{out}");
    }
    assert!(!egress.contains(&r.a.port), "not back out of a: {out}");
    assert!(!egress.contains(&r.c.port), "not into net2: {out}");
    assert!(out.contains("would send 2 frame(s)"), "{out}");
    std::thread::sleep(Duration::from_millis(300));
    inject_frame(&r.a.ns, "eth0", &f).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let lines = cap.lines();
    assert_eq!(sent_by(&lines, FAKE).len(), 1, "{lines:#?}");
}

#[test]
fn a_routed_frame_shows_the_route_and_the_ttl_and_is_not_routed() {
    if !root_or_skip("a_routed_frame_shows_the_route_and_the_ttl_and_is_not_routed")
        || !run_or_skip("trace_inject routed", tcpdump())
    {
        return;
    }
    let r = rig();
    let gw = gateway_mac(&r.a, "10.77.1.1");
    let f = udp_frame(&gw, &r.a.mac, [10, 77, 1, 10], [10, 77, 2, 10], 64);
    let cap = Capture::start(&r.c.ns);
    let out = inject(&r.d, &r.a.port, &f);
    let l3 = stage(&out, "l3").join("\n");
    assert!(
        l3.contains("route 10.77.2.0/24 connected, domain net2") && l3.contains("ttl 64\u{2192}63"),
        "{out}"
    );
    let egress = stage(&out, "egress");
    assert_eq!(egress.len(), 1, "{out}");
    assert!(egress[0].contains(&format!("port {} (", r.c.port)), "{out}");
    let v: Value =
        serde_json::from_str(&r.d.ctl(&["--json", "trace", "inject", &r.a.port, &hex(&f)]))
            .unwrap();
    let sent = v["sent"][0]["frame"].as_str().unwrap();
    assert_eq!(&sent[..12], hex(&mac_bytes(&r.c.mac)), "to c's MAC");
    assert_eq!(&sent[44..46], "3f", "TTL 63 in the bytes");
    std::thread::sleep(Duration::from_millis(300));
    inject_frame(&r.a.ns, "eth0", &f).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let lines = cap.lines();
    let udp: Vec<_> = lines.iter().filter(|l| l.contains(".9999:")).collect();
    assert_eq!(udp.len(), 1, "only the real send is routed: {lines:#?}");
}

/// Bad input gets a reason and a 4xx; hex comes with separators and from
/// stdin. Memory ports: runs anywhere.
#[test]
fn bad_input_is_refused_with_a_reason_and_hex_may_come_from_stdin() {
    let d = Daemon::start(None, &["--test-memory-ports"]);
    d.ctl(&["domain", "add", "net1"]);
    for p in ["p1", "p2"] {
        d.ctl(&[
            "port", "add", p, "--kind", "tap", "--domain", "net1", "--access", "10",
        ]);
    }
    let frame = "ff:ff:ff:ff:ff:ff 02:99:00:00:00:01 88-b5 00 00";
    for (body, status, needle) in [
        (
            json!({"port": "nope", "frame": "ffffffffffff029900000001"}),
            404,
            "no port nope",
        ),
        (json!({"port": "p1", "frame": "zz"}), 400, "not hex"),
        (json!({"port": "p1", "frame": "fff"}), 400, "odd number"),
        (
            json!({"port": "p1", "frame": "0011"}),
            400,
            "shorter than an Ethernet header",
        ),
        (
            json!({"port": "p1", "frame": frame, "vlan": 4095}),
            400,
            "vlan 4095",
        ),
        (
            json!({"port": "p1", "frame": frame, "count": 1}),
            400,
            "unknown field",
        ),
    ] {
        let (s, v) = d.call("POST", "/v1/trace/inject", Some(body.clone()));
        assert_eq!(s, status, "{body}: {v}");
        assert!(v.to_string().contains(needle), "{body}: {v}");
    }
    let o = common::ctl_raw(&d.socket(), &["trace", "inject", "p1", "0011"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("shorter than an Ethernet header"));
    // From stdin, with separators.
    let mut child = Command::new(BIN)
        .args(["ctl", "--socket"])
        .arg(d.socket())
        .args(["trace", "inject", "p1", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{frame}\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(stage(&out, "egress")[0].contains("port p2 ("), "{out}");
    assert!(
        out.contains("classify   port p1 (0) access vlan 10"),
        "{out}"
    );
    // Nothing was counted or learned.
    let stats = d.json(&["stats", "p1"]).to_string();
    assert!(stats.contains("\"rx_packets\":0"), "{stats}");
    assert!(
        !d.json(&["fdb", "show", "net1"])
            .to_string()
            .contains("02:99")
    );
}
