//! A lab's cluster: the etcd members its `store:` declares (one in each
//! member node's namespace, started by deploy, killed with the namespaces
//! by destroy, data under the lab's state directory), the daemon options
//! of the switches that carry global networks (`--store`, `--vtep`, the
//! CNM driver that global networks need), and the global networks and
//! their nodes' interfaces, made through the daemon's API
//! (`POST /v1/cnm/networks`, `…/endpoints`, `…/join`) as Docker would.
//!
//! Owns: the etcd processes' command lines and health wait, the mapping
//! of a global network and its interfaces onto API calls. Never: the
//! cluster's own logic (the daemons do that).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_drivers::netlink::Netlink;
use rvs_drivers::netns;
use rvs_lab::{
    ETCD_CLIENT_PORT, ETCD_PEER_PORT, InterfaceDef, NetworkDef, NodeDef, StoreDef, SwitchDef,
    Topology, format_mac,
};
use serde_json::json;

use super::deploy::{Switches, configure_inside, nl_err, on};
use super::{LabError, Paths, err};
use crate::client::Client;

const ETCD: &str = "etcd";
/// How long the members have to elect a leader.
const STORE_WAIT: Duration = Duration::from_secs(30);

/// The daemon options of switch `sw`: a cluster member when it carries a
/// global network (with the CNM driver on a socket of the lab's, and no
/// Docker engine to ask), nothing otherwise.
pub(super) fn daemon_args(topo: &Topology, sw: &SwitchDef, paths: &Paths) -> Vec<String> {
    let (Some(store), Some(vtep)) = (&topo.store, topo.vtep_of(&sw.name)) else {
        return Vec::new();
    };
    if !topo.clustered(&sw.name) {
        return Vec::new();
    }
    let run = |f: String| paths.run.join(f).to_string_lossy().to_string();
    vec![
        "--store".into(),
        store.url(),
        "--vtep".into(),
        vtep.to_string(),
        "--host-name".into(),
        sw.name.clone(),
        "--docker".into(),
        "--docker-socket".into(),
        run(format!("{}-cnm.sock", sw.name)),
        "--docker-engine".into(),
        run("no-docker-engine.sock".into()),
        "--docker-reconcile-secs".into(),
        "0".into(),
    ]
}

/// Whether the member at `addr` (reached from namespace `ns`) answers
/// `/health` with a leader.
fn healthy(ns: &str, addr: IpAddr) -> bool {
    let probe = move || -> bool {
        let sa = SocketAddr::new(addr, ETCD_CLIENT_PORT);
        let Ok(mut s) = TcpStream::connect_timeout(&sa, Duration::from_secs(1)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /health HTTP/1.0\r\n\r\n").is_err() {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains(r#""health":"true""#)
    };
    netns::in_netns(ns, probe).unwrap_or(false)
}

/// The etcd processes running in namespace `ns`.
fn etcd_pids(ns: &str) -> Vec<i32> {
    let Ok(ino) = netns::netns_inode(&netns::netns_path(ns)) else {
        return Vec::new();
    };
    let want = format!("net:[{ino}]");
    super::deploy::procs()
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|l| l.to_string_lossy() == want)
                && std::fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|e| e.file_name().is_some_and(|n| n == ETCD))
        })
        .collect()
}

/// Every member running and the cluster healthy: members that are not
/// running are started (on their data, kept across deploys), then deploy
/// waits for a leader.
pub(super) fn ensure_store(
    topo: &Topology,
    store: &StoreDef,
    paths: &Paths,
) -> Result<(), LabError> {
    let ns_of = |node: &str| {
        topo.node(node)
            .map(|n| n.netns.clone())
            .expect("validated: members are nodes")
    };
    let peer = |a: IpAddr| format!("http://{}", SocketAddr::new(a, ETCD_PEER_PORT));
    let client = |a: IpAddr| format!("http://{}", SocketAddr::new(a, ETCD_CLIENT_PORT));
    let initial: Vec<String> = store
        .members
        .iter()
        .map(|(n, a)| format!("{n}={}", peer(*a)))
        .collect();
    for (name, addr) in &store.members {
        let ns = ns_of(name);
        if !etcd_pids(&ns).is_empty() {
            continue;
        }
        let data = paths.state.join(format!("etcd-{name}"));
        let logf = paths.log(&format!("etcd-{name}"));
        std::fs::create_dir_all(&paths.run)
            .map_err(|e| err(format!("create {}: {e}", paths.run.display())))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&logf)
            .map_err(|e| err(format!("open {}: {e}", logf.display())))?;
        Command::new("ip")
            .args(["netns", "exec", &ns, ETCD, "--name", name])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client(*addr)])
            .args(["--advertise-client-urls", &client(*addr)])
            .args(["--listen-peer-urls", &peer(*addr)])
            .args(["--initial-advertise-peer-urls", &peer(*addr)])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args([
                "--initial-cluster-token",
                &format!("rvswitch-lab-{}", topo.name),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(err)?)
            .stderr(log)
            // Like the switches: not stopped by Ctrl-C in the deploying terminal.
            .process_group(0)
            .spawn()
            .map_err(|e| {
                err(format!(
                    "start etcd member {name} (apt-get install etcd-server): {e}"
                ))
            })?;
    }
    let t0 = Instant::now();
    while !store.members.iter().all(|(n, a)| healthy(&ns_of(n), *a)) {
        if t0.elapsed() > STORE_WAIT {
            let (first, _) = &store.members[0];
            let logf = paths.log(&format!("etcd-{first}"));
            let text = std::fs::read_to_string(&logf).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            return Err(err(format!(
                "the lab's etcd members have no healthy cluster after {STORE_WAIT:?}; {} ends:\n{}",
                logf.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Global network `net` on each of its switches (idempotent: the same
/// settings again change nothing).
pub(super) fn ensure_global_network(net: &NetworkDef, switches: &Switches) -> Result<(), LabError> {
    for sw in &net.switches {
        let body = json!({
            "name": net.name,
            "scope": "global",
            "subnet": net.subnet.map(|s| s.to_string()),
            "ipv6_subnet": net.ipv6.map(|s| s.to_string()),
            "vni": net.vni,
            "internal": true,
        });
        let r = switches
            .get(sw)
            .post("/v1/cnm/networks", &body)
            .map_err(err)?;
        if r.status != 201 {
            return Err(err(format!(
                "global network {} on switch {sw}: {}",
                net.name,
                r.error_message()
            )));
        }
    }
    Ok(())
}

/// An interface on a global network: an endpoint with the lab's address
/// and MAC (claimed in the cluster), joined to the node's namespace; the
/// TAP the switch made is moved in and named as the file says.
pub(super) fn ensure_global_interface(
    node: &NodeDef,
    i: &InterfaceDef,
    net: &NetworkDef,
    c: &Client,
    sw_ns: Option<&str>,
    nl: &Netlink,
) -> Result<(), LabError> {
    let what = |m: String| {
        err(format!(
            "node {} {} on {}: {m}",
            node.name, i.name, net.name
        ))
    };
    let eps = format!("/v1/cnm/networks/{}/endpoints", net.name);
    let body = json!({
        "id": i.link,
        "address": i.address.map(|a| a.to_string()),
        "address_ipv6": i.ipv6.map(|a| a.to_string()),
        "mac": format_mac(&i.mac),
    });
    let r = c.post(&eps, &body).map_err(err)?;
    if r.status != 201 {
        return Err(what(r.error_message()));
    }
    let sandbox = netns::netns_path(&node.netns).to_string_lossy().to_string();
    let r = c
        .post(
            &format!("{eps}/{}/join", i.link),
            &json!({ "sandbox": sandbox }),
        )
        .map_err(err)?;
    if r.status != 200 {
        return Err(what(r.error_message()));
    }
    let tap = r.json()["interface"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let inside = Netlink::in_netns(&node.netns, |n| n.find_link(&i.name))
        .map_err(nl_err)?
        .is_some();
    if !inside {
        if on(sw_ns, nl, |n| n.find_link(&tap))?.is_none() {
            return Err(what(format!(
                "the switch's interface {tap} is neither in the switch's namespace nor in {}",
                node.netns
            )));
        }
        on(sw_ns, nl, |n| n.move_to_netns(&tap, &node.netns))?;
        Netlink::in_netns(&node.netns, |n| n.rename(&tap, &i.name)).map_err(nl_err)?;
    }
    configure_inside(node, i)
}
