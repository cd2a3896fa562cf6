//! The embedded DNS as a user meets it: `rvswitch daemon` as a process,
//! nodes in their own network namespaces on TAP ports, queries sent from
//! inside a node to its gateway's address, and a test resolver (UDP and
//! TCP, written here with hickory-proto) on the loopback of the namespace
//! the daemon runs in, as its only upstream: no address outside the
//! machine is ever asked.
//!
//! The names API test runs anywhere; the others need root (SKIP otherwise,
//! a failure under RVS_TEST_STRICT=1).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rvs_drivers::testutil::{Netns, root_or_skip, unique};
use serde_json::{Value, json};

mod common;
use common::daemon::{Daemon, call};

/// The names API: validated, stored, listed, gone with the domain. Memory
/// ports only: runs without root.
#[test]
fn names_are_validated_stored_and_go_with_their_domain() {
    let mut d = Daemon::start(None, &["--test-memory-ports"]);
    d.ctl(&["domain", "add", "net1", "--gateway", "10.9.0.1/24"]);
    let c = d.client();
    let put = |path: &str, body: Value| call(&c, "PUT", path, Some(body));
    let (s, v) = put(
        "/v1/domains/net1/names/Web",
        json!({"addresses": ["10.9.0.2", "fd09::2"]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["name"], "web", "stored in lower case");
    for (path, body, status, needle) in [
        (
            "/v1/domains/net1/names/bad%20name",
            json!({"addresses": ["10.9.0.2"]}),
            400,
            "invalid DNS name",
        ),
        (
            "/v1/domains/net1/names/a..b",
            json!({"addresses": ["10.9.0.2"]}),
            400,
            "invalid DNS name",
        ),
        (
            "/v1/domains/net1/names/x",
            json!({"addresses": []}),
            400,
            "1 to 128 addresses",
        ),
        (
            "/v1/domains/net1/names/x",
            json!({"addresses": ["224.0.0.1"]}),
            400,
            "not a unicast",
        ),
        (
            "/v1/domains/net1/names/x",
            json!({"addresses": ["nonsense"]}),
            400,
            "invalid request body",
        ),
        (
            "/v1/domains/net1/names/x",
            json!({"addresses": ["10.9.0.3"], "ttl": 5}),
            400,
            "unknown field",
        ),
        (
            "/v1/domains/nope/names/x",
            json!({"addresses": ["10.9.0.3"]}),
            404,
            "nope",
        ),
    ] {
        let (s, v) = put(path, body);
        assert_eq!(s, status, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{path}: {v}");
    }
    // Nothing of the refused requests was kept.
    let names = d.json(&["name", "list", "net1"]);
    assert_eq!(names.as_array().unwrap().len(), 1, "{names}");
    // ctl, and a restart keeps what was stored.
    d.ctl(&["name", "set", "net1", "db", "10.9.0.5"]);
    d.restart();
    let names = d.json(&["name", "list", "net1"]);
    let got: Vec<&str> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["db", "web"]);
    assert_eq!(names[1]["addresses"], json!(["10.9.0.2", "fd09::2"]));
    d.ctl(&["name", "del", "net1", "DB"]);
    let (s, v) = call(&c_of(&d), "DELETE", "/v1/domains/net1/names/db", None);
    assert_eq!(s, 404, "{v}");
    // Deleting the domain deletes its names: a new domain of that name has none.
    d.ctl(&["domain", "del", "net1"]);
    d.ctl(&["domain", "add", "net1", "--gateway", "10.9.0.1/24"]);
    assert_eq!(d.json(&["name", "list", "net1"]), json!([]));
}

/// DNS listeners and names by VLAN through the API: validated (4xx with
/// the reason, nothing kept), stored, kept beside the gateway, gone with
/// the domain. Memory ports only: runs without root.
#[test]
fn dns_listeners_and_vlan_names_are_validated_and_stored() {
    let mut d = Daemon::start(None, &["--test-memory-ports"]);
    d.ctl(&["domain", "add", "west"]);
    d.ctl(&["gateway", "set", "west", "10.9.10.1/24", "--vid", "10"]);
    d.ctl(&["domain", "add", "bare"]);
    let c = d.client();
    let put = |path: &str, body: Value| call(&c, "PUT", path, Some(body));
    let (s, v) = put(
        "/v1/domains/west/dns/20",
        json!({"addresses": ["10.9.20.254", "fd09:20::fe", "10.9.20.254"]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["vid"], 20);
    assert_eq!(v["addresses"], json!(["10.9.20.254", "fd09:20::fe"]));
    for (path, body, status, needle) in [
        (
            "/v1/domains/west/dns/10",
            json!({"addresses": ["10.9.10.254"]}),
            400,
            "gateway's own",
        ),
        (
            "/v1/domains/west/dns/0",
            json!({"addresses": ["10.9.0.254"]}),
            400,
            "not a VLAN id",
        ),
        (
            "/v1/domains/west/dns/4095",
            json!({"addresses": ["10.9.0.254"]}),
            400,
            "not a VLAN id",
        ),
        (
            "/v1/domains/west/dns/x",
            json!({"addresses": ["10.9.0.254"]}),
            400,
            "not a VLAN id",
        ),
        (
            "/v1/domains/west/dns/30",
            json!({"addresses": []}),
            400,
            "1 to 8 addresses",
        ),
        (
            "/v1/domains/west/dns/30",
            json!({"addresses": ["10.9.10.1"]}),
            400,
            "gateway's address",
        ),
        (
            "/v1/domains/west/dns/30",
            json!({"addresses": ["224.0.0.9"]}),
            400,
            "not a unicast",
        ),
        (
            "/v1/domains/west/dns/30",
            json!({"addresses": ["fe80::1"]}),
            400,
            "link-local",
        ),
        (
            "/v1/domains/west/dns/30",
            json!({"addresses": ["10.9.30.1"], "ttl": 1}),
            400,
            "unknown field",
        ),
        (
            "/v1/domains/bare/dns/30",
            json!({"addresses": ["10.9.30.1"]}),
            409,
            "no gateway",
        ),
        (
            "/v1/domains/nope/dns/30",
            json!({"addresses": ["10.9.30.1"]}),
            404,
            "nope",
        ),
        (
            "/v1/domains/west/names/b1",
            json!({"addresses": ["10.9.20.5"], "vlan": 4095}),
            400,
            "out of range",
        ),
    ] {
        let (s, v) = put(path, body);
        assert_eq!(s, status, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{path}: {v}");
    }
    let (s, v) = call(&c, "GET", "/v1/domains/west/dns", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v.as_array().unwrap().len(),
        1,
        "nothing refused was kept: {v}"
    );

    // Names by VLAN: one name in two scopes; the gateway's VLAN named
    // outright is the default scope.
    let (s, v) = put(
        "/v1/domains/west/names/b1",
        json!({"addresses": ["10.9.20.5"], "vlan": 20}),
    );
    assert_eq!((s, &v["vlan"]), (200, &json!(20)), "{v}");
    let (s, v) = put(
        "/v1/domains/west/names/b1",
        json!({"addresses": ["10.9.10.5"], "vlan": 10}),
    );
    assert_eq!(s, 200, "{v}");
    assert!(
        v.get("vlan").is_none(),
        "the gateway's VLAN is the default: {v}"
    );
    d.ctl(&["name", "set", "west", "r1", "10.9.10.6"]);

    // The gateway cannot move onto the listener's VLAN or go while it is there.
    let (s, v) = call(
        &c,
        "PATCH",
        "/v1/domains/west",
        Some(json!({"gateway": null})),
    );
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("west/20"), "{v}");

    d.restart();
    let c = d.client();
    let (_, v) = call(&c, "GET", "/v1/domains/west/dns", None);
    assert_eq!(
        v[0]["addresses"],
        json!(["10.9.20.254", "fd09:20::fe"]),
        "{v}"
    );
    let names = d.json(&["name", "list", "west"]);
    let mut got: Vec<(String, Value)> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n.get("vlan").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    got.sort_by_key(|(n, v)| (n.clone(), v.to_string()));
    assert_eq!(
        got,
        [
            ("b1".to_string(), json!(20)),
            ("b1".to_string(), Value::Null),
            ("r1".to_string(), Value::Null)
        ],
        "by name, then VLAN as text"
    );
    let (s, v) = call(&c, "DELETE", "/v1/domains/west/names/b1?vlan=x", None);
    assert_eq!(s, 400, "{v}");
    d.ctl(&["name", "del", "west", "b1", "--vlan", "20"]);
    let (s, v) = call(&c, "DELETE", "/v1/domains/west/names/b1?vlan=20", None);
    assert_eq!(s, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("VLAN 20"), "{v}");
    assert_eq!(
        d.json(&["name", "list", "west"]).as_array().unwrap().len(),
        2
    );

    let (s, v) = call(&c, "DELETE", "/v1/domains/west/dns/20", None);
    assert_eq!(s, 204, "{v}");
    let (s, v) = call(&c, "DELETE", "/v1/domains/west/dns/20", None);
    assert_eq!(s, 404, "{v}");
    // ctl too.
    d.ctl(&["dns", "set", "west", "20", "10.9.20.254"]);
    let l = d.json(&["dns", "list", "west"]);
    assert_eq!(
        l,
        json!([{"domain": "west", "vid": 20, "addresses": ["10.9.20.254"]}])
    );
    let table = d.ctl(&["dns", "list", "west"]);
    assert!(table.contains("10.9.20.254"), "{table}");
    // A gateway moving into the listener's VLAN is refused until it goes;
    // a name stored for that VLAN can still be deleted as it was given.
    d.ctl(&["name", "set", "west", "x", "10.9.20.7", "--vlan", "20"]);
    let gw20 = json!({"gateway": {"addresses": ["10.9.10.1/24"], "vid": 20}});
    let (s, v) = call(&c, "PATCH", "/v1/domains/west", Some(gw20.clone()));
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("gateway's"), "{v}");
    d.ctl(&["dns", "del", "west", "20"]);
    let (s, v) = call(&c, "PATCH", "/v1/domains/west", Some(gw20));
    assert_eq!(s, 200, "{v}");
    let (s, v) = call(&c, "DELETE", "/v1/domains/west/names/x?vlan=20", None);
    assert_eq!(s, 204, "{v}");
    let names = d.json(&["name", "list", "west"]);
    assert!(
        names.as_array().unwrap().iter().all(|n| n["name"] != "x"),
        "{names}"
    );
    d.ctl(&["dns", "set", "west", "10", "10.9.10.254"]);
    assert_eq!(
        d.json(&["dns", "list", "west"]).as_array().unwrap().len(),
        1
    );
    // The domain takes its listeners with it.
    d.ctl(&["domain", "del", "west"]);
    d.ctl(&["domain", "add", "west", "--gateway", "10.9.10.1/24"]);
    let (_, v) = call(&c, "GET", "/v1/domains/west/dns", None);
    assert_eq!(v, json!([]));
}

fn c_of(d: &Daemon) -> rvswitch::client::Client {
    d.client()
}

// ---- the test resolver ----------------------------------------------------

/// What the test resolver saw.
#[derive(Default)]
struct Seen {
    udp: AtomicU64,
    tcp: AtomicU64,
}

const OUTSIDE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 55);
/// Records of `big.test.` over TCP (too many for 512 bytes over UDP).
const BIG: usize = 40;

/// The answer of the test resolver to `q` (`None`: stay silent).
fn resolve(q: &Message, tcp: bool) -> Option<Message> {
    let question = q.queries.first()?.clone();
    let mut r = Message::response(q.metadata.id, OpCode::Query);
    r.metadata.recursion_available = true;
    r.add_query(question.clone());
    let name = question.name().to_ascii().to_ascii_lowercase();
    let a = |ip: Ipv4Addr| Record::from_rdata(question.name().clone(), 60, RData::A(A(ip)));
    match name.as_str() {
        "outside.test." if question.query_type() == RecordType::A => {
            r.add_answer(a(OUTSIDE));
        }
        "outside.test." => {}
        "big.test." if tcp => {
            for i in 0..BIG {
                r.add_answer(a(Ipv4Addr::new(198, 51, 100, i as u8 + 1)));
            }
        }
        "big.test." => r.metadata.truncation = true,
        "slow.test." => return None,
        _ => r.metadata.response_code = ResponseCode::NXDomain,
    }
    Some(r)
}

/// Start the test resolver on 127.0.0.1 of namespace `ns` (UDP and TCP on
/// one port); it runs until `stop`.
fn test_resolver(ns: &Netns, stop: Arc<AtomicBool>) -> (u16, Arc<Seen>) {
    let (udp, tcp) = rvs_drivers::netns::in_netns(&ns.name, || {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        let t = TcpListener::bind(("127.0.0.1", port)).unwrap();
        (u, t)
    })
    .unwrap();
    let port = udp.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    udp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (s1, stop1) = (seen.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stop1.load(Ordering::Relaxed) {
            let Ok((n, from)) = udp.recv_from(&mut buf) else {
                continue;
            };
            s1.udp.fetch_add(1, Ordering::Relaxed);
            if let Some(r) = Message::from_vec(&buf[..n])
                .ok()
                .and_then(|q| resolve(&q, false))
            {
                let _ = udp.send_to(&r.to_vec().unwrap(), from);
            }
        }
    });
    tcp.set_nonblocking(true).unwrap();
    let s2 = seen.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((mut c, _)) = tcp.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            s2.tcp.fetch_add(1, Ordering::Relaxed);
            c.set_nonblocking(false).unwrap();
            let mut len = [0u8; 2];
            if c.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            if c.read_exact(&mut q).is_err() {
                continue;
            }
            if let Some(r) = Message::from_vec(&q).ok().and_then(|q| resolve(&q, true)) {
                let b = r.to_vec().unwrap();
                let mut out = (b.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&b);
                let _ = c.write_all(&out);
            }
        }
    });
    (port, seen)
}

// ---- the lab of this file ------------------------------------------------

/// Namespace `h` runs the daemon and the test resolver; nodes `a`, `b` on
/// network net1 (10.77.1.0/24, fd77:1::/64), `c` on net2 (10.77.2.0/24).
struct Rig {
    d: Daemon,
    h: Netns,
    a: Netns,
    c: Netns,
    _b: Netns,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

const GW1: &str = "10.77.1.1";
const GW2: &str = "10.77.2.1";

fn node(d: &Daemon, h: &Netns, port: &str, domain: &str, addrs: &[&str]) -> Netns {
    let ns = Netns::new("rvdn");
    d.ctl(&[
        "port", "add", port, "--kind", "tap", "--domain", domain, "--access", "1",
    ]);
    h.ip(&["link", "set", port, "netns", &ns.name]);
    ns.ip(&["link", "set", port, "name", "eth0"]);
    for a in addrs {
        let mut args = vec!["addr", "add", a, "dev", "eth0"];
        if a.contains(':') {
            args.push("nodad");
        }
        ns.ip(&args);
    }
    ns.ip(&["link", "set", "eth0", "up"]);
    ns
}

fn rig() -> Rig {
    let h = Netns::new("rvdh");
    let stop = Arc::new(AtomicBool::new(false));
    let (port, seen) = test_resolver(&h, stop.clone());
    let up = format!("127.0.0.1:{port}");
    let d = Daemon::start(
        Some(&h),
        &["--dns-upstream", &up, "--dns-timeout-secs", "1"],
    );
    d.ctl(&["domain", "add", "net1"]);
    d.ctl(&["gateway", "set", "net1", "10.77.1.1/24", "fd77:1::1/64"]);
    d.ctl(&["domain", "add", "net2", "--gateway", "10.77.2.1/24"]);
    let pa = unique("rvta");
    let pb = unique("rvtb");
    let pc = unique("rvtc");
    let a = node(&d, &h, &pa, "net1", &["10.77.1.10/24", "fd77:1::10/64"]);
    let b = node(&d, &h, &pb, "net1", &["10.77.1.11/24", "fd77:1::11/64"]);
    let c = node(&d, &h, &pc, "net2", &["10.77.2.10/24"]);
    d.ctl(&["name", "set", "net1", "a", "10.77.1.10", "fd77:1::10"]);
    d.ctl(&["name", "set", "net1", "b", "10.77.1.11", "fd77:1::11"]);
    d.ctl(&["name", "set", "net1", "www.b-alias", "10.77.1.11"]);
    d.ctl(&["name", "set", "net2", "c", "10.77.2.10"]);
    Rig {
        d,
        h,
        a,
        c,
        _b: b,
        seen,
        stop,
    }
}

/// A UDP socket in `ns` talking to `server`:53.
fn client_socket(ns: &Netns, server: &str) -> UdpSocket {
    let server: IpAddr = server.parse().unwrap();
    let s = rvs_drivers::netns::in_netns(&ns.name, move || {
        let bind = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let s = UdpSocket::bind(bind).unwrap();
        s.connect(SocketAddr::new(server, 53)).unwrap();
        s
    })
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

fn query(id: u16, name: &str, t: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(4096);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// Ask and wait for the answer with this id (the first query of a node
/// may wait for the gateway to learn the node's MAC: retried).
fn ask(s: &UdpSocket, name: &str, t: RecordType) -> Message {
    ask_edns(s, name, t, false)
}

fn ask_edns(s: &UdpSocket, name: &str, t: RecordType, edns: bool) -> Message {
    static ID: AtomicU64 = AtomicU64::new(1);
    let id = ID.fetch_add(1, Ordering::Relaxed) as u16;
    let q = query(id, name, t, edns);
    let mut buf = [0u8; 65535];
    for _ in 0..3 {
        s.send(&q).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let Ok(n) = s.recv(&mut buf) else { break };
            let m = Message::from_vec(&buf[..n]).expect("the answer decodes");
            if m.metadata.id == id {
                return m;
            }
        }
    }
    panic!("no answer to {name} {t:?}");
}

fn rdata(m: &Message) -> Vec<String> {
    m.answers.iter().map(|r| r.data.to_string()).collect()
}

#[test]
fn names_resolve_in_their_network_and_not_across() {
    if !root_or_skip("names_resolve_in_their_network_and_not_across") {
        return;
    }
    let r = rig();
    let sa = client_socket(&r.a, GW1);
    let m = ask(&sa, "b.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(rdata(&m), ["10.77.1.11"]);
    assert_eq!(rdata(&ask(&sa, "B.", RecordType::AAAA)), ["fd77:1::11"]);
    assert_eq!(
        rdata(&ask(&sa, "www.b-alias.", RecordType::A)),
        ["10.77.1.11"]
    );
    // Over IPv6 to the gateway's IPv6 address as well.
    let sa6 = client_socket(&r.a, "fd77:1::1");
    assert_eq!(rdata(&ask(&sa6, "b.", RecordType::A)), ["10.77.1.11"]);
    // c is net2's: from net1 the name is unknown (forwarded, and the
    // upstream does not know it either).
    let m = ask(&sa, "c.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    let sc = client_socket(&r.c, GW2);
    assert_eq!(rdata(&ask(&sc, "c.", RecordType::A)), ["10.77.2.10"]);
    let m = ask(&sc, "b.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // Asking net2's gateway from net1 (routed there): not net1's DNS, not
    // net2's either: no answer at all.
    r.a.ip(&["route", "add", "10.77.2.0/24", "via", GW1]);
    let cross = client_socket(&r.a, GW2);
    cross
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    cross.send(&query(9, "c.", RecordType::A, false)).unwrap();
    let mut buf = [0u8; 512];
    assert!(
        cross.recv(&mut buf).is_err(),
        "net2's names are not served to net1"
    );

    // What a user runs: the system resolver of a node, pointed at its
    // gateway by /etc/netns/<ns>/resolv.conf.
    let conf = std::path::Path::new("/etc/netns").join(&r.a.name);
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("resolv.conf"), format!("nameserver {GW1}\n")).unwrap();
    let out = r.a.exec("getent", &["ahostsv4", "b"]);
    let pinged = r.a.ping("b", 1);
    let _ = std::fs::remove_dir_all(&conf);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("10.77.1.11"), "getent: {text}");
    assert!(pinged, "ping b from a");
    assert!(r.d.stage("dns_answered_local") >= 6);
    assert_eq!(r.d.l3_drop("dns_punt_full"), 0);
}

#[test]
fn reverse_lookups_answer_the_names_of_the_network() {
    if !root_or_skip("reverse_lookups_answer_the_names_of_the_network") {
        return;
    }
    let r = rig();
    let sa = client_socket(&r.a, GW1);
    let m = ask(&sa, "11.1.77.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(rdata(&m), ["b."]);
    let v6: IpAddr = "fd77:1::11".parse().unwrap();
    let m = ask(&sa, &Name::from(v6).to_ascii(), RecordType::PTR);
    assert_eq!(rdata(&m), ["b."]);
    // c's address is net2's: not answered in net1.
    let m = ask(&sa, "10.2.77.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn other_names_are_forwarded_cached_and_fetched_over_tcp_when_truncated() {
    if !root_or_skip("other_names_are_forwarded_cached_and_fetched_over_tcp_when_truncated") {
        return;
    }
    let r = rig();
    let sa = client_socket(&r.a, GW1);
    let m = ask(&sa, "outside.test.", RecordType::A);
    assert_eq!(rdata(&m), [OUTSIDE.to_string()]);
    assert!(m.metadata.recursion_available && !m.metadata.authoritative);
    let asked = r.seen.udp.load(Ordering::Relaxed);
    // Again: from the cache, the upstream is not asked.
    let m = ask(&sa, "OUTSIDE.test.", RecordType::A);
    assert_eq!(rdata(&m), [OUTSIDE.to_string()]);
    assert_eq!(r.seen.udp.load(Ordering::Relaxed), asked);
    assert!(r.d.stage("dns_cache_hits") >= 1);
    // Truncated over UDP upstream: asked again over TCP; the client (EDNS,
    // 4096 bytes offered, 1232 taken) gets every record.
    let m = ask_edns(&sa, "big.test.", RecordType::A, true);
    assert_eq!(m.answers.len(), BIG);
    assert!(!m.metadata.truncation);
    assert_eq!(r.seen.tcp.load(Ordering::Relaxed), 1);
    // A client without EDNS gets what fits in 512 bytes: truncated.
    let m = ask(&sa, "big.test.", RecordType::A);
    assert!(m.metadata.truncation);
    // An upstream that never answers: SERVFAIL after the timeout (1 s).
    let t = Instant::now();
    let m = ask(&sa, "slow.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert!(r.d.stage("dns_upstream_failures") >= 1);
    let _ = &r.h;
}

#[test]
fn malformed_queries_are_dropped_and_counted_and_the_daemon_goes_on() {
    if !root_or_skip("malformed_queries_are_dropped_and_counted_and_the_daemon_goes_on") {
        return;
    }
    let mut r = rig();
    let sa = client_socket(&r.a, GW1);
    // Let the gateway learn the node first.
    assert_eq!(rdata(&ask(&sa, "a.", RecordType::A)), ["10.77.1.10"]);
    let good = query(7, "b.", RecordType::A, false);
    let mut looped = good[..12].to_vec();
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let mut huge = good.clone();
    huge[4..12].copy_from_slice(&[0xff; 8]);
    let bad: Vec<Vec<u8>> = vec![
        good[..5].to_vec(),
        good[..good.len() - 1].to_vec(),
        looped,
        huge,
        vec![],
    ];
    for b in &bad {
        sa.send(b).unwrap();
    }
    sa.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(sa.recv(&mut buf).is_err(), "no answer to garbage");
    sa.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.d.stage("dns_malformed") < bad.len() as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(r.d.stage("dns_malformed"), bad.len() as u64);
    assert!(r.d.alive());
    assert_eq!(rdata(&ask(&sa, "b.", RecordType::A)), ["10.77.1.11"]);
}

/// 1,000 queries a second for 3 s from one node: every one answered; the
/// latency percentiles are printed (a figure, not a pass mark).
#[test]
fn a_thousand_queries_a_second_are_all_answered() {
    if !root_or_skip("a_thousand_queries_a_second_are_all_answered") {
        return;
    }
    let r = rig();
    let sa = client_socket(&r.a, GW1);
    assert_eq!(rdata(&ask(&sa, "b.", RecordType::A)), ["10.77.1.11"]);
    const N: usize = 3000;
    let rx = sa.try_clone().unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let start = Instant::now();
    let receiver = std::thread::spawn(move || {
        let mut got = vec![None::<Instant>; N];
        let mut buf = [0u8; 512];
        let mut n = 0;
        while n < N {
            let Ok(len) = rx.recv(&mut buf) else { break };
            let Ok(m) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            let i = m.metadata.id as usize;
            if i < N && got[i].is_none() && m.answers.len() == 1 {
                got[i] = Some(Instant::now());
                n += 1;
            }
        }
        got
    });
    let mut sent = vec![start; N];
    for (i, at) in sent.iter_mut().enumerate() {
        let due = start + Duration::from_micros(1000 * i as u64);
        while Instant::now() < due {
            std::thread::sleep(
                due.saturating_duration_since(Instant::now())
                    .min(Duration::from_micros(200)),
            );
        }
        *at = Instant::now();
        sa.send(&query(i as u16, "b.", RecordType::A, false))
            .unwrap();
    }
    let got = receiver.join().unwrap();
    let mut lat: Vec<Duration> = got
        .iter()
        .zip(&sent)
        .filter_map(|(g, s)| g.map(|g| g - *s))
        .collect();
    let answered = lat.len();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "dns: {answered}/{N} answered at 1000 queries/s over {:.1} s; latency p50 {:?} p99 {:?} max {:?}",
        start.elapsed().as_secs_f64(),
        pct(0.50),
        pct(0.99),
        lat.last().unwrap()
    );
    assert_eq!(answered, N, "every query answered");
    assert_eq!(r.d.l3_drop("dns_punt_full"), 0);
}

// ---- DNS over TCP ----------------------------------------------------------

/// A TCP connection from `ns` to `server`:53.
fn tcp_connect(ns: &Netns, server: &str) -> std::io::Result<TcpStream> {
    let to = SocketAddr::new(server.parse().unwrap(), 53);
    let s = rvs_drivers::netns::in_netns(&ns.name, move || {
        TcpStream::connect_timeout(&to, Duration::from_secs(3))
    })
    .unwrap()?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

fn framed(q: &[u8]) -> Vec<u8> {
    let mut v = (q.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(q);
    v
}

/// Read one length-prefixed answer.
fn tcp_read(s: &mut TcpStream) -> Message {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("an answer's length");
    let mut b = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut b).expect("the answer");
    Message::from_vec(&b).expect("the answer decodes")
}

/// Whether the server closed `s` (end of stream or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// `dig ARGS` in `ns`: its output (the test needs dig, from
/// bind9-dnsutils, as CI installs it).
fn dig(ns: &Netns, args: &[&str]) -> String {
    let mut a = vec!["+time=3", "+tries=1"];
    a.extend_from_slice(args);
    let o = ns.exec("dig", &a);
    assert!(o.status.success(), "dig {args:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn dig_or_skip(name: &str) -> bool {
    let ok = std::process::Command::new("dig")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("RVS_TEST_STRICT").is_none(),
            "{name}: dig is missing (apt-get install bind9-dnsutils)"
        );
        eprintln!("SKIP {name}: dig is missing (apt-get install bind9-dnsutils)");
    }
    ok
}

/// What a user sees: `dig +tcp` answers from the gateway over IPv4 and
/// IPv6, names stay per network over TCP, and a name with more addresses
/// than a UDP answer holds comes truncated over UDP and whole over TCP
/// (dig retries by itself), several queries on one connection.
#[test]
fn dns_over_tcp_answers_whole_where_udp_truncates() {
    if !root_or_skip("dns_over_tcp_answers_whole_where_udp_truncates")
        || !dig_or_skip("dns_over_tcp_answers_whole_where_udp_truncates")
    {
        return;
    }
    let r = rig();
    let many: Vec<String> = (1..=100).map(|i| format!("10.77.9.{i}")).collect();
    let mut args = vec!["name", "set", "net1", "many"];
    args.extend(many.iter().map(|s| s.as_str()));
    r.d.ctl(&args);

    let short = |ns: &Netns, args: &[&str]| -> Vec<String> {
        let mut a = args.to_vec();
        a.push("+short");
        let mut v: Vec<String> = dig(ns, &a).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(
        short(&r.a, &["+tcp", "@10.77.1.1", "b", "A"]),
        ["10.77.1.11"]
    );
    assert_eq!(
        short(&r.a, &["+tcp", "@fd77:1::1", "b", "AAAA"]),
        ["fd77:1::11"]
    );
    assert_eq!(
        short(&r.c, &["+tcp", "@10.77.2.1", "c", "A"]),
        ["10.77.2.10"]
    );
    // Per network over TCP too: c is not net1's, b not net2's (both
    // forwarded, unknown upstream).
    let out = dig(&r.a, &["+tcp", "@10.77.1.1", "c", "A"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    let out = dig(&r.c, &["+tcp", "@10.77.2.1", "b", "A"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    // Outside names over TCP: forwarded.
    assert_eq!(
        short(&r.a, &["+tcp", "@10.77.1.1", "outside.test", "A"]),
        [OUTSIDE.to_string()]
    );

    // UDP alone: truncated (TC, no records), with EDNS (1232 bytes) and
    // without (512).
    for edns in ["+edns=0", "+noedns"] {
        let out = dig(&r.a, &["+ignore", edns, "@10.77.1.1", "many", "A"]);
        assert!(out.contains(" tc"), "{edns}: {out}");
        assert!(out.contains("ANSWER: 0"), "{edns}: {out}");
    }
    // dig as users run it: truncated over UDP, retried over TCP, whole.
    let out = dig(&r.a, &["@10.77.1.1", "many", "A"]);
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    let mut want = many.clone();
    want.sort();
    assert_eq!(short(&r.a, &["@10.77.1.1", "many", "A"]), want);
    assert_eq!(short(&r.a, &["+tcp", "@fd77:1::1", "many", "A"]), want);

    // Two queries written at once on one connection: two answers.
    let mut s = tcp_connect(&r.a, GW1).unwrap();
    let mut both = framed(&query(0x51, "a.", RecordType::A, false));
    both.extend(framed(&query(0x52, "many.", RecordType::A, true)));
    s.write_all(&both).unwrap();
    let (m1, m2) = (tcp_read(&mut s), tcp_read(&mut s));
    assert_eq!(
        (m1.metadata.id, rdata(&m1)),
        (0x51, vec!["10.77.1.10".into()])
    );
    assert_eq!((m2.metadata.id, m2.answers.len()), (0x52, 100));
    assert!(!m2.metadata.truncation);
    // A figure, not a pass mark: 200 queries one after another on this
    // connection, and the same over UDP.
    let n = 200;
    let t = Instant::now();
    for i in 0..n {
        s.write_all(&framed(&query(i, "b.", RecordType::A, false)))
            .unwrap();
        assert_eq!(tcp_read(&mut s).metadata.id, i);
    }
    let tcp = t.elapsed() / n as u32;
    let sa = client_socket(&r.a, GW1);
    let t = Instant::now();
    for _ in 0..n {
        assert_eq!(ask(&sa, "b.", RecordType::A).answers.len(), 1);
    }
    let udp = t.elapsed() / n as u32;
    println!(
        "dns: one query after another: {tcp:?} per query over TCP (one connection), {udp:?} over UDP"
    );
    drop(s);
    assert!(r.d.stage("dns_tcp_connections") >= 9);
    assert!(r.d.stage("dns_tcp_queries") >= 10);
    assert_eq!(r.d.stage("dns_tcp_malformed"), 0);
    assert_eq!(r.d.l3_drop("dns_punt_full"), 0);
}

/// The TCP side is bounded: 16 connections per network, a 17th is
/// refused; a length no DNS message has resets the connection (counted);
/// an idle connection is closed; the daemon answers on afterwards.
#[test]
fn dns_over_tcp_is_bounded_and_drops_malformed_streams() {
    if !root_or_skip("dns_over_tcp_is_bounded_and_drops_malformed_streams") {
        return;
    }
    let mut r = rig();
    let q = framed(&query(7, "b.", RecordType::A, false));
    let mut held = Vec::new();
    for i in 0..rvswitch::dns::TCP_MAX_CONNECTIONS {
        let mut s = tcp_connect(&r.a, GW1).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        s.write_all(&q).unwrap();
        assert_eq!(rdata(&tcp_read(&mut s)), ["10.77.1.11"]);
        held.push(s);
    }
    let e = tcp_connect(&r.a, GW1).expect_err("one connection past the limit");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    assert!(r.d.stage("dns_tcp_refused") >= 1);
    // net2 has its own connections.
    let mut sc = tcp_connect(&r.c, GW2).expect("another network's limit is its own");
    sc.write_all(&framed(&query(8, "c.", RecordType::A, false)))
        .unwrap();
    assert_eq!(rdata(&tcp_read(&mut sc)), ["10.77.2.10"]);
    // Clients closing free their connections.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut s = loop {
        match tcp_connect(&r.a, GW1) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("no connection after closing: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    // A zero length is no DNS message: reset, counted.
    s.write_all(&[0, 0]).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "garbage closes"
    );
    assert_eq!(r.d.stage("dns_tcp_malformed"), 1);
    // A message that does not decode: dropped and counted like over UDP.
    let before = r.d.stage("dns_malformed");
    let mut s = tcp_connect(&r.a, GW1).unwrap();
    s.write_all(&framed(&[0xff; 20])).unwrap();
    s.write_all(&q).unwrap();
    assert_eq!(
        rdata(&tcp_read(&mut s)),
        ["10.77.1.11"],
        "the next query is answered"
    );
    assert_eq!(r.d.stage("dns_malformed"), before + 1);
    // Idle: closed by the server after its idle timeout.
    let t = Instant::now();
    assert!(
        closed_within(&mut s, rvswitch::dns::TCP_IDLE + Duration::from_secs(5)),
        "an idle connection is closed"
    );
    assert!(t.elapsed() >= rvswitch::dns::TCP_IDLE - Duration::from_secs(1));
    assert!(r.d.stage("dns_tcp_idle_closed") >= 1);
    assert!(r.d.alive());
    let mut s = tcp_connect(&r.a, GW1).unwrap();
    s.write_all(&q).unwrap();
    assert_eq!(rdata(&tcp_read(&mut s)), ["10.77.1.11"]);
}

/// A bridge domain carrying two VLANs (as examples/vlans.yml's): the
/// gateway in VLAN 10, a DNS listener in VLAN 20. Each VLAN's nodes
/// resolve their own VLAN's names from their own resolver, over UDP and
/// TCP, and not the other VLAN's; the listener answers ping and never
/// routes.
#[test]
fn each_vlan_of_a_domain_resolves_its_own_names() {
    if !root_or_skip("each_vlan_of_a_domain_resolves_its_own_names") {
        return;
    }
    let h = Netns::new("rvdh");
    let stop = Arc::new(AtomicBool::new(false));
    let (port, _seen) = test_resolver(&h, stop.clone());
    let _stop = StopOnDrop(stop);
    let up = format!("127.0.0.1:{port}");
    let d = Daemon::start(
        Some(&h),
        &["--dns-upstream", &up, "--dns-timeout-secs", "1"],
    );
    d.ctl(&["domain", "add", "west"]);
    d.ctl(&["gateway", "set", "west", "10.78.10.1/24", "--vid", "10"]);
    let vlan_node = |vid: &str, addr: &str| {
        let ns = Netns::new("rvdn");
        let port = unique("rvtv");
        d.ctl(&[
            "port", "add", &port, "--kind", "tap", "--domain", "west", "--access", vid,
        ]);
        h.ip(&["link", "set", &port, "netns", &ns.name]);
        ns.ip(&["link", "set", &port, "name", "eth0"]);
        ns.ip(&["addr", "add", addr, "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns
    };
    let red = vlan_node("10", "10.78.10.10/24");
    let blue = vlan_node("20", "10.78.20.10/24");
    let c = d.client();
    let (s, v) = call(
        &c,
        "PUT",
        "/v1/domains/west/dns/20",
        Some(json!({"addresses": ["10.78.20.254"]})),
    );
    assert_eq!(s, 200, "{v}");
    d.ctl(&["name", "set", "west", "r1", "10.78.10.10"]);
    d.ctl(&["name", "set", "west", "b1", "10.78.20.10", "--vlan", "20"]);

    let sr = client_socket(&red, "10.78.10.1");
    assert_eq!(rdata(&ask(&sr, "r1.", RecordType::A)), ["10.78.10.10"]);
    let m = ask(&sr, "b1.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");

    let sb = client_socket(&blue, "10.78.20.254");
    assert_eq!(rdata(&ask(&sb, "b1.", RecordType::A)), ["10.78.20.10"]);
    let m = ask(&sb, "r1.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");
    // Over TCP from VLAN 20 too.
    let mut t = tcp_connect(&blue, "10.78.20.254").expect("TCP to the listener");
    t.write_all(&framed(&query(77, "b1.", RecordType::A, false)))
        .unwrap();
    let m = tcp_read(&mut t);
    assert_eq!(
        (m.metadata.id, rdata(&m)),
        (77, vec!["10.78.20.10".to_string()])
    );
    drop(t);
    assert!(blue.ping("10.78.20.254", 1), "the listener answers ping");

    // The listener never routes: red's node is not reached through it.
    blue.ip(&["route", "add", "10.78.10.0/24", "via", "10.78.20.254"]);
    assert!(
        !blue.ping("10.78.10.10", 1),
        "no routing through a listener"
    );
    assert!(d.l3_drop("l3_not_for_gateway") >= 1);

    // What a user runs: the system resolver, pointed at the listener.
    let conf = std::path::Path::new("/etc/netns").join(&blue.name);
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("resolv.conf"), "nameserver 10.78.20.254\n").unwrap();
    let out = blue.exec("getent", &["ahostsv4", "b1"]);
    let _ = std::fs::remove_dir_all(&conf);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("10.78.20.10"), "getent: {text}");
}

/// Stops the test resolver when the test ends, however it ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
