//! The CNI plugin driven exactly as a runtime drives it (CNI spec 1.1,
//! "Execution protocol"): the binary found by its `type` on `CNI_PATH`
//! (here a link named `rvswitch-cni`), `CNI_COMMAND`, `CNI_CONTAINERID`,
//! `CNI_NETNS`, `CNI_IFNAME`, `CNI_PATH` in a clean environment, the
//! network configuration on stdin, the result or error JSON on stdout.
//! IPAM is rvswitch's own or the reference `host-local` plugin, and the
//! reference `tuning` plugin runs chained after rvswitch, all from
//! Debian's `containernetworking-plugins` (in /usr/lib/cni). One test runs
//! podman (its CNI backend) with a conflist naming rvswitch-cni.
//!
//! Judged with ping between namespaces, `ip` inside them, host-local's
//! allocation files and the daemon's `/v1/cni/attachments`. Root only:
//! each test prints SKIP without root or the reference plugins (and fails
//! under RVS_TEST_STRICT=1, as in CI).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rvs_drivers::testutil::{Netns, root_or_skip, unique};
use serde_json::{Value, json};

mod common;
use common::BIN;

/// Where Debian's containernetworking-plugins installs the plugins.
const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

fn cni_or_skip(test: &str) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    let missing: Vec<&str> = ["host-local", "tuning"]
        .into_iter()
        .filter(|p| !Path::new(REFERENCE_PLUGINS).join(p).is_file())
        .collect();
    common::run_or_skip(
        test,
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "needs the reference CNI plugins {missing:?} in {REFERENCE_PLUGINS} \
                 (apt-get install containernetworking-plugins)"
            ))
        },
    )
}

/// A daemon and a CNI_PATH directory holding the plugin under the name a
/// configuration's `type` gives; all removed on drop.
struct Setup {
    child: Option<Child>,
    dir: PathBuf,
    /// Names the daemon's uplink (`--docker-name`), so daemons of tests
    /// running at once do not share one.
    driver: String,
}

impl Setup {
    fn start() -> Setup {
        let dir = std::env::temp_dir().join(unique("rvcni"));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::os::unix::fs::symlink(BIN, dir.join("bin/rvswitch-cni")).unwrap();
        let mut s = Setup {
            child: None,
            dir,
            driver: unique("rvcn"),
        };
        s.spawn();
        s
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
            .args(["--docker-name", &self.driver])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(common::spawn_ready(&mut cmd, Some(&self.log())));
    }

    /// SIGTERM and wait.
    fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            let st = common::terminate(c);
            assert!(st.success(), "daemon exited with {st}");
        }
    }

    fn cni_path(&self) -> String {
        format!("{}:{REFERENCE_PLUGINS}", self.dir.join("bin").display())
    }

    /// A network configuration naming this daemon.
    fn conf(&self, version: &str, name: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": version,
            "name": name,
            "type": "rvswitch-cni",
            "socket": self.socket(),
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    /// host-local's configuration keeping its state under this test's dir.
    fn host_local(&self, subnet: &str) -> Value {
        json!({
            "type": "host-local",
            "dataDir": self.dir.join("ipam"),
            "ranges": [[{"subnet": subnet}]],
        })
    }

    /// Run plugin `plugin` (found on CNI_PATH like a runtime finds it)
    /// with `command` for container `cid`'s `ifname` in `ns`.
    fn exec(
        &self,
        plugin: &str,
        command: &str,
        cid: &str,
        ns: Option<&Netns>,
        ifname: &str,
        conf: &Value,
    ) -> Outcome {
        let path = self
            .cni_path()
            .split(':')
            .map(|d| Path::new(d).join(plugin))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("plugin {plugin} not on CNI_PATH"));
        let netns = ns
            .map(|n| format!("/var/run/netns/{}", n.name))
            .unwrap_or_default();
        let mut child = Command::new(path)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", cid)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_ARGS", "")
            .env("CNI_PATH", self.cni_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        Outcome {
            ok: o.status.success(),
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text: format!("{text}{}", String::from_utf8_lossy(&o.stderr)),
        }
    }

    /// Our plugin, succeeding: its JSON.
    #[track_caller]
    fn ok(
        &self,
        command: &str,
        cid: &str,
        ns: Option<&Netns>,
        ifname: &str,
        conf: &Value,
    ) -> Value {
        let o = self.exec("rvswitch-cni", command, cid, ns, ifname, conf);
        assert!(o.ok, "{command} {cid}/{ifname} failed: {}", o.text);
        o.json
    }

    /// Our plugin, failing: the spec's error object.
    #[track_caller]
    fn error(
        &self,
        command: &str,
        cid: &str,
        ns: Option<&Netns>,
        ifname: &str,
        conf: &Value,
    ) -> Value {
        let o = self.exec("rvswitch-cni", command, cid, ns, ifname, conf);
        assert!(!o.ok, "{command} {cid}/{ifname} succeeded: {}", o.text);
        assert!(
            o.json["code"].as_u64().is_some() && o.json["msg"].as_str().is_some(),
            "not a CNI error object: {}",
            o.text
        );
        o.json
    }

    /// The daemon's attachments as (network, container, ifname).
    fn attachments(&self) -> Vec<(String, String, String)> {
        let c = rvswitch::client::Client::new(&self.socket()).unwrap();
        let r = c.get("/v1/cni/attachments").unwrap().ok().unwrap();
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let s = |k: &str| a[k].as_str().unwrap().to_string();
                (s("network"), s("container_id"), s("ifname"))
            })
            .collect()
    }

    fn port_names(&self) -> Vec<String> {
        common::ctl_json(&self.socket(), &["port", "list"])
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn domain_names(&self) -> Vec<String> {
        common::ctl_json(&self.socket(), &["domain", "list"])
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- rvswitch daemon log ---\n{}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The uplink of a network with a gateway (its host routes go with
        // it).
        let up = rvswitch::fabric::Uplink::for_driver(&self.driver);
        let _ = Command::new("ip")
            .args(["link", "del", &up.host_if])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Outcome {
    ok: bool,
    json: Value,
    text: String,
}

/// The address (without length) of a result's first IP.
fn addr(result: &Value) -> String {
    let a = result["ips"][0]["address"].as_str().unwrap();
    a.split('/').next().unwrap().to_string()
}

/// `conf` with `prevResult` set, as a runtime builds it for CHECK, DEL
/// and the next plugin of a list.
fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

fn links(ns: &Netns) -> String {
    String::from_utf8_lossy(&ns.exec("ip", &["-br", "addr"]).stdout).into_owned()
}

#[test]
fn add_check_del_with_rvswitch_ipam_survive_a_restart() {
    if !cni_or_skip("add_check_del_with_rvswitch_ipam_survive_a_restart") {
        return;
    }
    let mut s = Setup::start();
    let (a, b) = (Netns::new("cnia"), Netns::new("cnib"));
    let net = unique("pods");
    let conf = s.conf(
        "1.1.0",
        &net,
        json!({"ipam": {"type": "rvswitch", "subnet": "10.241.0.0/24", "gateway": "10.241.0.1"}}),
    );

    let v = s.ok("VERSION", "", None, "", &json!({"cniVersion": "1.1.0"}));
    assert_eq!(v["cniVersion"], "1.1.0");
    assert!(
        v["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("1.1.0"))
    );
    s.ok("STATUS", "", None, "", &conf);
    // `rvswitch cni` is the same plugin under the main binary's name.
    let o = Command::new(BIN)
        .arg("cni")
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["cniVersion"], "1.1.0");

    let ra = s.ok("ADD", "ctr-a", Some(&a), "eth0", &conf);
    let rb = s.ok("ADD", "ctr-b", Some(&b), "eth0", &conf);
    assert_eq!(ra["cniVersion"], "1.1.0");
    let iface = &ra["interfaces"][0];
    assert_eq!(iface["name"], "eth0");
    assert_eq!(iface["sandbox"], format!("/var/run/netns/{}", a.name));
    assert_eq!(ra["ips"][0]["interface"], 0);
    assert_eq!(ra["ips"][0]["gateway"], "10.241.0.1");
    let (ip_a, ip_b) = (addr(&ra), addr(&rb));
    assert_ne!(ip_a, ip_b, "rvswitch IPAM gave one address twice");
    for ip in [&ip_a, &ip_b] {
        assert!(ip.starts_with("10.241.0.") && ip != "10.241.0.1", "{ip}");
    }
    // The interface is in the namespace, with the result's MAC and address.
    let la = links(&a);
    assert!(la.contains(&format!("{}/24", ip_a)), "{la}");
    let mac = a.exec("cat", &["/sys/class/net/eth0/address"]);
    assert_eq!(
        String::from_utf8_lossy(&mac.stdout).trim(),
        iface["mac"].as_str().unwrap()
    );
    assert!(
        a.ping_eventually(&ip_b, Duration::from_secs(5)),
        "a cannot ping b"
    );
    assert!(b.ping(&ip_a, 2), "b cannot ping a");

    s.ok("CHECK", "ctr-a", Some(&a), "eth0", &with_prev(&conf, &ra));
    // CHECK of something never added is an error.
    let e = s.error("CHECK", "ctr-x", Some(&a), "eth9", &with_prev(&conf, &ra));
    assert_eq!(e["code"], 101, "{e}");

    // Attachments are desired state: a restart keeps them working.
    s.stop();
    let e = s.error("STATUS", "", None, "", &conf);
    assert_eq!(e["code"], 50, "STATUS without a daemon: {e}");
    s.spawn();
    assert!(
        a.ping_eventually(&ip_b, Duration::from_secs(5)),
        "a cannot ping b after a restart"
    );
    s.ok("CHECK", "ctr-b", Some(&b), "eth0", &with_prev(&conf, &rb));

    // CHECK sees what changed behind the attachment's back.
    b.ip(&["addr", "del", &format!("{ip_b}/24"), "dev", "eth0"]);
    let e = s.error("CHECK", "ctr-b", Some(&b), "eth0", &with_prev(&conf, &rb));
    assert!(e["msg"].as_str().unwrap().contains(&ip_b), "{e}");

    // DEL removes the interface and the port; a second DEL succeeds too.
    let ports_before = s.port_names().len();
    s.ok("DEL", "ctr-a", Some(&a), "eth0", &with_prev(&conf, &ra));
    assert!(!links(&a).contains("eth0"), "{}", links(&a));
    assert_eq!(s.port_names().len(), ports_before - 1);
    s.ok("DEL", "ctr-a", Some(&a), "eth0", &conf);
    s.ok("DEL", "ctr-a", None, "eth0", &conf);
    // The freed address is given again.
    let c = Netns::new("cnic");
    let rc = s.ok("ADD", "ctr-c", Some(&c), "eth0", &conf);
    assert_eq!(addr(&rc), ip_a, "the address of the removed attachment");
    s.ok("DEL", "ctr-c", Some(&c), "eth0", &conf);
    // A container that went while the daemon was down leaves nothing.
    let d = Netns::new("cnid");
    s.ok("ADD", "ctr-d", Some(&d), "eth0", &conf);
    s.stop();
    drop(d);
    s.spawn();
    let left: Vec<String> = s.attachments().into_iter().map(|a| a.1).collect();
    assert_eq!(left, ["ctr-b"]);
    s.ok("DEL", "ctr-b", Some(&b), "eth0", &conf);
    // The network went with its last attachment.
    assert!(s.attachments().is_empty());
    assert!(
        !s.domain_names().iter().any(|d| d.starts_with("dk-cni-")),
        "{:?}",
        s.domain_names()
    );
}

#[test]
fn delegated_host_local_ipam_and_a_chained_plugin() {
    if !cni_or_skip("delegated_host_local_ipam_and_a_chained_plugin") {
        return;
    }
    let s = Setup::start();
    let (a, b) = (Netns::new("cnia"), Netns::new("cnib"));
    let net = unique("hl");
    // 1.0.0: what Debian's host-local and tuning (v1.1.1) speak.
    let conf = s.conf(
        "1.0.0",
        &net,
        json!({"endpoint": "afpacket", "ipam": s.host_local("10.242.0.0/24")}),
    );
    let ra = s.ok("ADD", "ctr-a", Some(&a), "net1", &conf);
    let rb = s.ok("ADD", "ctr-b", Some(&b), "net1", &conf);
    let (ip_a, ip_b) = (addr(&ra), addr(&rb));
    // host-local chose them and recorded whose they are.
    let owner = |ip: &str| {
        std::fs::read_to_string(s.dir.join("ipam").join(&net).join(ip)).unwrap_or_default()
    };
    assert!(
        owner(&ip_a).contains("ctr-a"),
        "host-local's record of {ip_a}"
    );
    assert!(
        owner(&ip_b).contains("ctr-b"),
        "host-local's record of {ip_b}"
    );
    assert!(
        a.ping_eventually(&ip_b, Duration::from_secs(5)),
        "a cannot ping b"
    );

    // The next plugin of the list gets our result as prevResult and
    // passes it on (tuning fails without one).
    let tuning = json!({
        "cniVersion": "1.0.0", "name": net, "type": "tuning",
        "sysctl": {"net.ipv4.conf.net1.arp_ignore": "1"},
    });
    let o = s.exec(
        "tuning",
        "ADD",
        "ctr-a",
        Some(&a),
        "net1",
        &with_prev(&tuning, &ra),
    );
    assert!(o.ok, "tuning: {}", o.text);
    assert_eq!(o.json["interfaces"][0]["mac"], ra["interfaces"][0]["mac"]);
    assert_eq!(o.json["ips"], ra["ips"]);
    let sysctl = a.exec("sysctl", &["-n", "net.ipv4.conf.net1.arp_ignore"]);
    assert_eq!(String::from_utf8_lossy(&sysctl.stdout).trim(), "1");
    let o = s.exec("tuning", "ADD", "ctr-b", Some(&b), "net1", &tuning);
    assert!(!o.ok, "tuning runs without a prevResult: {}", o.text);

    // rvswitch chained after another plugin adds its interface to that
    // plugin's result.
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "lo", "sandbox": "x"}],
        "ips": [{"address": "192.0.2.1/32", "interface": 0}]});
    let c = Netns::new("cnic");
    let rc = s.ok("ADD", "ctr-c", Some(&c), "net1", &with_prev(&conf, &prev));
    assert_eq!(rc["interfaces"][0]["name"], "lo");
    assert_eq!(rc["interfaces"][1]["name"], "net1");
    assert_eq!(rc["ips"][0]["address"], "192.0.2.1/32");
    assert_eq!(rc["ips"][1]["interface"], 1);

    s.ok("CHECK", "ctr-a", Some(&a), "net1", &with_prev(&conf, &ra));
    // DEL hands the address back to host-local.
    s.ok("DEL", "ctr-a", Some(&a), "net1", &conf);
    assert_eq!(owner(&ip_a), "", "host-local still holds {ip_a}");
    assert!(!links(&a).contains("net1"));
    s.ok("DEL", "ctr-a", Some(&a), "net1", &conf);
    for (cid, ns) in [("ctr-b", &b), ("ctr-c", &c)] {
        s.ok("DEL", cid, Some(ns), "net1", &conf);
    }
    assert!(s.attachments().is_empty());
}

#[test]
fn gc_removes_what_the_runtime_no_longer_has() {
    if !cni_or_skip("gc_removes_what_the_runtime_no_longer_has") {
        return;
    }
    let s = Setup::start();
    let nss: Vec<Netns> = (0..3).map(|_| Netns::new("cnig")).collect();
    let net = unique("gc");
    let other = unique("gco");
    // 1.1.0 (GC), with host-local, which speaks up to 1.0.0.
    // AF_XDP endpoints (veth pairs, the host ends attached by AF_XDP).
    let conf = s.conf(
        "1.1.0",
        &net,
        json!({"endpoint": "afxdp", "ipam": s.host_local("10.243.0.0/24")}),
    );
    let conf2 = s.conf(
        "1.1.0",
        &other,
        json!({"ipam": {"type": "rvswitch", "subnet": "10.244.0.0/24"}}),
    );
    let mut ips = Vec::new();
    for (i, ns) in nss.iter().enumerate() {
        let r = s.ok("ADD", &format!("ctr-{i}"), Some(ns), "eth0", &conf);
        ips.push(addr(&r));
    }
    assert!(
        nss[0].ping_eventually(&ips[1], Duration::from_secs(5)),
        "no traffic over AF_XDP"
    );
    // Another network's attachment is not this GC's business.
    s.ok("ADD", "ctr-0", Some(&nss[0]), "eth1", &conf2);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "ctr-0", "ifname": "eth0"}]);
    s.ok("GC", "", None, "", &gc);
    let mut left = s.attachments();
    left.sort();
    let mut want = vec![
        (net.clone(), "ctr-0".to_string(), "eth0".to_string()),
        (other.clone(), "ctr-0".to_string(), "eth1".to_string()),
    ];
    want.sort();
    assert_eq!(left, want);
    for (i, ns) in nss.iter().enumerate().skip(1) {
        assert!(!links(ns).contains("eth0"), "ctr-{i} kept its interface");
        let f = s.dir.join("ipam").join(&net).join(&ips[i]);
        assert!(!f.exists(), "host-local still holds {}", ips[i]);
    }
    assert!(links(&nss[0]).contains(&ips[0]));
    // GC with an empty list removes the rest of this network.
    gc["cni.dev/valid-attachments"] = json!([]);
    s.ok("GC", "", None, "", &gc);
    assert_eq!(s.attachments().len(), 1);
}

#[test]
fn bad_calls_get_the_spec_errors_and_change_nothing() {
    if !cni_or_skip("bad_calls_get_the_spec_errors_and_change_nothing") {
        return;
    }
    let s = Setup::start();
    let a = Netns::new("cnib");
    let net = unique("bad");
    let conf = s.conf(
        "1.1.0",
        &net,
        json!({"ipam": {"type": "rvswitch", "subnet": "10.245.0.0/24"}}),
    );
    let e = s.error("ADD", "ctr-a", None, "eth0", &conf);
    assert_eq!(e["code"], 4, "no CNI_NETNS: {e}");
    let gone = Netns::new("cnib");
    let gone_name = gone.name.clone();
    drop(gone);
    let ghost = Netns { name: gone_name };
    let e = s.error("ADD", "ctr-a", Some(&ghost), "eth0", &conf);
    assert_eq!(e["code"], 3, "namespace gone: {e}");
    let e = s.error(
        "ADD",
        "ctr-a",
        Some(&a),
        "eth0",
        &json!({"cniVersion": "1.1.0"}),
    );
    assert_eq!(e["code"], 6, "configuration without name and type: {e}");
    let mut future = conf.clone();
    future["cniVersion"] = json!("2.0.0");
    let e = s.error("ADD", "ctr-a", Some(&a), "eth0", &future);
    assert_eq!(e["code"], 1, "{e}");
    let e = s.error("ADD", "bad/id", Some(&a), "eth0", &conf);
    assert_eq!(e["code"], 7, "container id with '/': {e}");
    let mut nosuch = conf.clone();
    nosuch["ipam"] = json!({"type": "no-such-ipam"});
    let e = s.error("ADD", "ctr-a", Some(&a), "eth0", &nosuch);
    assert_eq!(e["code"], 7, "{e}");
    // A name the namespace already has: the interface cannot take it, and
    // what was made for it is undone.
    let e = s.error("ADD", "ctr-a", Some(&a), "lo", &conf);
    assert!(e["msg"].as_str().unwrap().contains("lo"), "{e}");
    assert!(s.attachments().is_empty());
    assert!(s.port_names().is_empty(), "{:?}", s.port_names());
    assert!(!links(&a).contains("eth0"));
    assert_eq!(links(&a).lines().count(), 1, "{}", links(&a));

    // The network exists once attached: another description of it is
    // refused, and the first attachment is untouched.
    let ra = s.ok("ADD", "ctr-a", Some(&a), "eth0", &conf);
    let b = Netns::new("cnib");
    let mut other = conf.clone();
    other["vlan"] = json!(12);
    let e = s.error("ADD", "ctr-b", Some(&b), "eth0", &other);
    assert!(e["msg"].as_str().unwrap().contains("other settings"), "{e}");
    assert_eq!(s.attachments().len(), 1);
    assert!(!links(&b).contains("eth0"), "{}", links(&b));
    s.ok("CHECK", "ctr-a", Some(&a), "eth0", &with_prev(&conf, &ra));
    s.ok("DEL", "ctr-a", Some(&a), "eth0", &conf);
}

/// `podman` with its CNI network backend, all of its state under `dir`.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new(s: &Setup, net: &str) -> Podman {
        let dir = s.dir.join("podman");
        for d in ["net", "img/bin"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\", \"{REFERENCE_PLUGINS}\"]\n\
                 network_config_dir = \"{}\"\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
                s.dir.join("bin").display(),
                dir.join("net").display()
            ),
        )
        .unwrap();
        // A conflist as a CNI user writes one (1.0.0: podman 4.3's libcni).
        let list = json!({
            "cniVersion": "1.0.0",
            "name": net,
            "plugins": [{
                "type": "rvswitch-cni",
                "socket": s.socket(),
                "ipam": s.host_local("10.248.0.0/24"),
            }],
        });
        std::fs::write(dir.join(format!("net/{net}.conflist")), list.to_string()).unwrap();
        // The image: Debian's static busybox.
        let img = dir.join("img");
        std::fs::copy("/bin/busybox", img.join("bin/busybox")).unwrap();
        for a in ["sh", "ping", "sleep"] {
            std::os::unix::fs::symlink("busybox", img.join("bin").join(a)).unwrap();
        }
        let p = Podman { dir };
        let archive = p.dir.join("img.tar");
        let t = Command::new("tar")
            .arg("-C")
            .arg(&img)
            .arg("-cf")
            .arg(&archive)
            .arg(".")
            .status()
            .unwrap();
        assert!(t.success(), "tar of the image");
        let o = p
            .cmd()
            .args(["import", "--change", "ENV=PATH=/bin"])
            .arg(&archive)
            .arg("localhost/rvs-cni-bb:latest")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "podman import: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        p
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(["--storage-driver", "vfs"]);
        c
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd().args(args).output().unwrap();
        assert!(
            o.status.success(),
            "podman {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-a", "-f", "-t", "0"]).output();
    }
}

#[test]
fn podman_runs_containers_on_an_rvswitch_network() {
    if !cni_or_skip("podman_runs_containers_on_an_rvswitch_network") {
        return;
    }
    let has_podman = Command::new("podman").arg("--version").output().is_ok();
    if !common::run_or_skip(
        "podman_runs_containers_on_an_rvswitch_network",
        if has_podman {
            Ok(())
        } else {
            Err("needs podman (apt-get install podman)".into())
        },
    ) {
        return;
    }
    let s = Setup::start();
    let net = unique("podn");
    let p = Podman::new(&s, &net);
    let mut ids = Vec::new();
    for _ in 0..2 {
        // Limits this machine lets a container set (podman's defaults
        // raise them, which needs CAP_SYS_RESOURCE).
        ids.push(p.ok(&[
            "run",
            "-d",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
            "--network",
            &net,
            "localhost/rvs-cni-bb:latest",
            "sleep",
            "600",
        ]));
    }
    let ip_of = |id: &str| {
        p.ok(&[
            "inspect",
            "-f",
            &format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}"),
            id,
        ])
    };
    let ip_b = ip_of(&ids[1]);
    assert!(ip_b.starts_with("10.248.0."), "{ip_b}");
    p.ok(&["exec", &ids[0], "ping", "-c", "2", "-W", "2", &ip_b]);
    // The daemon holds an attachment per container, under podman's ids.
    let mut got: Vec<String> = s.attachments().into_iter().map(|a| a.1).collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    // Removing the containers runs DEL.
    p.ok(&["rm", "-f", "-t", "0", &ids[0], &ids[1]]);
    assert!(s.attachments().is_empty());
}

#[test]
fn a_gateway_network_reaches_the_host() {
    if !cni_or_skip("a_gateway_network_reaches_the_host") {
        return;
    }
    let s = Setup::start();
    let a = Netns::new("cniw");
    let net = unique("gw");
    let conf = s.conf(
        "1.1.0",
        &net,
        json!({"isDefaultGateway": true,
               "ipam": {"type": "rvswitch", "subnet": "10.249.0.0/24", "gateway": "10.249.0.1"}}),
    );
    let r = s.ok("ADD", "ctr-a", Some(&a), "eth0", &conf);
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.249.0.1"}])
    );
    let routes = String::from_utf8_lossy(&a.exec("ip", &["route"]).stdout).into_owned();
    assert!(
        routes.contains("default via 10.249.0.1 dev eth0"),
        "{routes}"
    );
    // The switch answers on the gateway, and routes to the host's end of
    // the uplink.
    assert!(a.ping_eventually("10.249.0.1", Duration::from_secs(5)));
    let up = rvswitch::fabric::Uplink::for_driver(&s.driver);
    assert!(
        a.ping(&up.host_ip.to_string(), 2),
        "the host is not reachable"
    );
    s.ok("DEL", "ctr-a", Some(&a), "eth0", &conf);
    // The last network with a gateway takes the uplink along.
    let link = Command::new("ip")
        .args(["link", "show", &up.host_if])
        .output()
        .unwrap();
    assert!(
        !link.status.success(),
        "uplink {} is still there",
        up.host_if
    );
}
