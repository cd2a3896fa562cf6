//! Bridge domains on a host NIC's LAN (`rvswitch ctl parent`, the API's
//! `/v1/domains/{name}/parents`): a veth pair stands for the NIC — one end
//! is the parent in the daemon's namespace, the other end sits in a
//! namespace standing for the LAN, with the kernel's VLAN devices for the
//! tagged segments, each in a namespace of its own (a host on VLAN 10, a
//! host on VLAN 20). Judged with ping from both sides and a capture on the
//! LAN side (`tcpdump -e`, which shows each frame's 802.1Q tag).
//!
//! Root only: without root each test prints SKIP (and fails under
//! RVS_TEST_STRICT=1). Every name is unique; namespaces, links and the
//! daemon are removed in `Drop`, also when a test fails.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use rvs_drivers::testutil::{Link, Netns, ip, root_or_skip, unique};
use serde_json::Value;

mod common;
use common::BIN;
use common::lan::{self, Capture, Lan, sent_by};

/// A daemon process with a private socket and state directory, killed and
/// cleaned up on drop.
struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = std::env::temp_dir().join(unique("rvsup"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Daemon { child: None, dir };
        d.spawn();
        d
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("api.sock")
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
            .arg(self.dir.join("state"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(common::spawn_ready(&mut cmd, Some(&self.log())));
    }

    /// SIGKILL, as a crash: nothing is cleaned up by the daemon.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

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

    /// What the switch holds: domains and ports, as the API lists them
    /// (less the live counters).
    fn state(&self) -> (Value, Value) {
        let mut ports = self.json(&["port", "list"]);
        for p in ports.as_array_mut().unwrap() {
            p.as_object_mut().unwrap().remove("learned");
        }
        let mut domains = self.json(&["domain", "list"]);
        for d in domains.as_array_mut().unwrap() {
            d.as_object_mut().unwrap().remove("fdb_entries");
        }
        (domains, ports)
    }

    /// `ctl parent add` that must fail: (status text, error message).
    #[track_caller]
    fn refused(&self, args: &[&str]) -> String {
        let mut a = vec!["parent", "add"];
        a.extend_from_slice(args);
        let o = self.ctl_raw(&a);
        assert!(!o.status.success(), "ctl {a:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- daemon log ---\n{}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
        }
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An endpoint of the switch: a namespace whose `eth0` is a veth whose host
/// end is an AF_PACKET port of `domain`, access in `vlan`. A veth (not a
/// TAP) so it outlives a daemon that is killed.
fn endpoint(d: &Daemon, domain: &str, vlan: u16, addr: &str) -> (Netns, Link, String) {
    let ns = Netns::new("ep");
    let (host, peer) = Link::veth("rvh", Some(&ns));
    ns.ip(&["link", "set", &peer, "name", "eth0"]);
    ns.ip(&["addr", "add", addr, "dev", "eth0"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    let port = unique("ep");
    d.ctl(&[
        "port",
        "add",
        &port,
        "--kind",
        "afpacket",
        "--iface",
        &host.name,
        "--domain",
        domain,
        "--access",
        &vlan.to_string(),
    ]);
    (ns, host, port)
}

/// The MAC of `eth0` in `ns`.
fn mac(ns: &Netns) -> String {
    let o = ns.exec("cat", &["/sys/class/net/eth0/address"]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn tcpdump_or_skip(test: &str) -> bool {
    root_or_skip(test) && common::run_or_skip(test, lan::tcpdump())
}

#[test]
fn vlans_of_a_domain_reach_their_lan_segments_and_only_theirs() {
    let test = "vlans_of_a_domain_reach_their_lan_segments_and_only_theirs";
    if !tcpdump_or_skip(test) {
        return;
    }
    let mut lan = Lan::new();
    // The LAN: untagged, the LAN namespace itself; a host on each of VLAN
    // 10 and 20, with addresses of one subnet, so only the tags keep them
    // apart.
    lan.ns.ip(&["addr", "add", "10.81.0.100/24", "dev", "eth0"]);
    lan.vlan_host(10, "10.81.5.100/24");
    lan.vlan_host(20, "10.81.5.200/24");
    let (h10, h20) = (lan.host(0), lan.host(1));

    let mut d = Daemon::start();
    let dom = unique("lan");
    d.ctl(&["domain", "add", &dom]);
    let (eu, _lu, _) = endpoint(&d, &dom, 1, "10.81.0.1/24");
    let (e10, _l10, _) = endpoint(&d, &dom, 10, "10.81.5.10/24");
    let (e20, _l20, _) = endpoint(&d, &dom, 20, "10.81.5.20/24");
    for vid in [Some(10), Some(20), None] {
        d.ctl(&["parent", "add", &dom, &lan.parent(vid)]);
    }
    // One uplink port for the interface: a trunk of 10 and 20, native 1.
    let up = d.json(&["port", "show", &format!("up-{}", lan.nic.name)]);
    assert_eq!(up["iface"], lan.nic.name.as_str(), "{up}");
    assert_eq!(up["vlan"]["mode"], "trunk", "{up}");
    assert_eq!(up["vlan"]["allowed"], "10,20", "{up}");
    assert_eq!(up["vlan"]["native"], 1, "{up}");
    let parents = d.json(&["parent", "list", &dom]);
    assert_eq!(parents.as_array().unwrap().len(), 3, "{parents}");

    let cap = Capture::start(&lan.ns);
    assert!(
        eu.ping_eventually("10.81.0.100", Duration::from_secs(5)),
        "the untagged endpoint reaches the LAN"
    );
    assert!(
        e10.ping_eventually("10.81.5.100", Duration::from_secs(5)),
        "VLAN 10's endpoint reaches the host on VLAN 10"
    );
    assert!(
        e20.ping_eventually("10.81.5.200", Duration::from_secs(5)),
        "VLAN 20's endpoint reaches the host on VLAN 20"
    );
    assert!(h10.ping("10.81.5.10", 2), "and back");
    // The same subnet, the other VLAN: nothing gets through either way.
    assert!(!h10.ping("10.81.5.20", 2), "VLAN 10 reached VLAN 20");
    assert!(!h20.ping("10.81.5.10", 2), "VLAN 20 reached VLAN 10");
    assert!(
        !e10.ping("10.81.5.200", 2),
        "VLAN 10 reached VLAN 20's host"
    );
    let lines = cap.lines();
    for (ns, tag) in [(&e10, "vlan 10"), (&e20, "vlan 20")] {
        let m = mac(ns);
        let frames = sent_by(&lines, &m);
        assert!(!frames.is_empty(), "no frame of {m} on the LAN: {lines:#?}");
        for f in frames {
            assert!(
                f.contains(&format!("{tag},")),
                "{m} sent outside {tag}: {f}"
            );
        }
    }
    let m = mac(&eu);
    let frames = sent_by(&lines, &m);
    assert!(!frames.is_empty(), "no frame of {m} on the LAN");
    for f in frames {
        assert!(!f.contains("vlan"), "the untagged network sent tagged: {f}");
    }

    // A crash and a clean stop: the uplink comes back with its VLANs from
    // the stored state, and the LAN is reached again.
    d.kill9();
    assert!(!e10.ping("10.81.5.100", 1), "nothing forwards while down");
    d.spawn();
    assert_eq!(d.json(&["parent", "list", &dom]), parents);
    assert!(e10.ping_eventually("10.81.5.100", Duration::from_secs(5)));
    assert!(eu.ping_eventually("10.81.0.100", Duration::from_secs(5)));
    d.stop();
    d.spawn();
    assert!(e20.ping_eventually("10.81.5.200", Duration::from_secs(5)));
    assert!(!h20.ping("10.81.5.10", 1), "still apart after restarts");

    // Taken off one by one: the last VLAN takes the uplink port away.
    d.ctl(&["parent", "del", &dom, &lan.parent(Some(10))]);
    assert!(!e10.ping("10.81.5.100", 1), "VLAN 10 is off the LAN");
    assert!(e20.ping("10.81.5.200", 2), "VLAN 20 is not");
    d.ctl(&["parent", "del", &dom, &lan.parent(Some(20))]);
    d.ctl(&["parent", "del", &dom, &lan.parent(None)]);
    let ports = d.json(&["port", "list"]);
    assert!(
        !ports
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"].as_str().unwrap().starts_with("up-")),
        "{ports}"
    );
}

#[test]
fn bad_parents_are_refused_and_change_nothing() {
    if !root_or_skip("bad_parents_are_refused_and_change_nothing") {
        return;
    }
    let d = Daemon::start();
    let (a, b) = (unique("lan"), unique("lan"));
    d.ctl(&["domain", "add", &a]);
    d.ctl(&["domain", "add", &b]);
    let (nic, _) = Link::veth("nic", None);
    let (held, _) = Link::veth("nic", None);
    let (slave, _) = Link::veth("nic", None);
    // A bridge to enslave one to, where the kernel has bridges.
    let br = unique("br");
    let bridged = Command::new("ip")
        .args(["link", "add", &br, "type", "bridge"])
        .output()
        .is_ok_and(|o| o.status.success());
    let _br = Link::adopt(&br);
    if bridged {
        ip(&["link", "set", &slave.name, "master", &br]);
    } else {
        eprintln!("no bridge devices in this kernel: the enslaved parent is not checked");
    }
    d.ctl(&[
        "port", "add", "mine", "--kind", "afpacket", "--iface", &held.name, "--domain", &a,
    ]);
    d.ctl(&["parent", "add", &a, &format!("{}.10", nic.name)]);
    let before = d.state();

    let n = &nic.name;
    let missing = unique("nope");
    for (args, says) in [
        (vec![a.clone(), format!("{missing}.10")], "no interface"),
        (vec![a.clone(), format!("{n}.4095")], "outside 1..4094"),
        (vec![a.clone(), format!("{n}.0")], "outside 1..4094"),
        (vec![a.clone(), "a/b".to_string()], "not an interface name"),
        (vec![a.clone(), "lo".to_string()], "loopback"),
        (
            vec![a.clone(), format!("{}.7", held.name)],
            "held by port mine",
        ),
        (
            vec![a.clone(), format!("{n}.10")],
            "already carries VLAN 10",
        ),
        (vec![b.clone(), format!("{n}.20")], "in one bridge domain"),
        (vec![unique("zz"), format!("{n}.20")], "no bridge domain"),
        (
            vec![a.clone(), format!("{n}.20"), "--vlan".into(), "21".into()],
            "does not translate",
        ),
        (
            vec![
                a.clone(),
                format!("{n}.20"),
                "--kind".into(),
                "afxdp".into(),
            ],
            "is afpacket, not afxdp",
        ),
        (
            vec![a.clone(), format!("{n}.20"), "--kind".into(), "tap".into()],
            "afpacket or afxdp",
        ),
    ]
    .into_iter()
    .chain(bridged.then(|| (vec![a.clone(), slave.name.clone()], "enslaved to")))
    {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = d.refused(&args);
        assert!(e.contains(says), "{args:?}: {e}");
    }
    // Through the API: the statuses.
    let c = rvswitch::client::Client::new(&d.socket()).unwrap();
    let path = format!("/v1/domains/{a}/parents");
    let post = |v: Value| c.post(&path, &v).unwrap().status;
    let p = |t: String| serde_json::json!({ "parent": t });
    assert_eq!(post(p(format!("{missing}.3"))), 404);
    assert_eq!(post(p(format!("{n}.5000"))), 400);
    if bridged {
        assert_eq!(post(p(slave.name.clone())), 409);
    }
    assert_eq!(post(p(format!("{n}.10"))), 409);
    assert_eq!(post(serde_json::json!({"parent": "x", "colour": 1})), 400);
    assert_eq!(c.delete(&format!("{path}/{n}.99")).unwrap().status, 404);
    assert_eq!(d.state(), before, "a refused parent changed something");
    if bridged {
        let o = ip(&["-o", "link", "show", &slave.name]);
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("master {br}")));
    }
}

/// The same LAN through an AF_XDP uplink (`--kind afxdp`): tagged and
/// untagged VLANs of one trunk, and a second VLAN added to the running
/// port (a configuration change, not a reopen).
#[test]
fn an_afxdp_uplink_carries_tagged_and_untagged_vlans() {
    let test = "an_afxdp_uplink_carries_tagged_and_untagged_vlans";
    if !root_or_skip(test) {
        return;
    }
    let mut lan = Lan::new();
    lan.ns.ip(&["addr", "add", "10.83.0.100/24", "dev", "eth0"]);
    lan.vlan_host(30, "10.83.30.100/24");
    let d = Daemon::start();
    let dom = unique("lan");
    d.ctl(&["domain", "add", &dom]);
    let (eu, _lu, _) = endpoint(&d, &dom, 1, "10.83.0.1/24");
    let (e30, _l30, _) = endpoint(&d, &dom, 30, "10.83.30.1/24");
    d.ctl(&["parent", "add", &dom, &lan.parent(None), "--kind", "afxdp"]);
    assert!(
        eu.ping_eventually("10.83.0.100", Duration::from_secs(5)),
        "the untagged VLAN crosses the AF_XDP uplink"
    );
    assert!(
        !e30.ping("10.83.30.100", 1),
        "VLAN 30 is not on the LAN yet"
    );
    d.ctl(&["parent", "add", &dom, &lan.parent(Some(30))]);
    let up = d.json(&["port", "show", &format!("up-{}", lan.nic.name)]);
    assert_eq!(up["kind"], "afxdp", "{up}");
    assert_eq!(up["vlan"]["allowed"], "30", "{up}");
    assert!(
        e30.ping_eventually("10.83.30.100", Duration::from_secs(5)),
        "VLAN 30 crosses it tagged"
    );
    assert!(lan.host(0).ping("10.83.30.1", 2), "and back");
    assert!(eu.ping("10.83.0.100", 1), "the untagged one still does");
}
