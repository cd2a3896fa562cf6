//! `lab deploy` and `lab destroy`.
//!
//! Deploy is a sequence of "ensure" steps, each of which looks first and
//! only makes what is missing: a second deploy of the same file finds
//! everything in place and changes nothing, and a deploy that died half-way
//! is completed by the next one. Each namespace, link and daemon is written
//! to the lab state before it is made, so destroy knows about it whatever
//! happened.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hyper::Method;
use rvs_drivers::netlink::{Netlink, Route};
use rvs_drivers::netns;
use rvs_lab::{
    DomainSpec, InterfaceDef, NetKind, NetworkDef, NodeDef, PortKind, SwitchDef, SwitchRoute,
    Topology, TrunkDef, VxlanPort,
};
use serde_json::{Value, json};

use super::host::{configure_inside, daemon_pids, kill_in_netns, nl_err, on, stop_pid, sysctls_in};
use super::state::{LabState, digest, exists};
use super::switches::Switches;
use super::{LabError, Paths, err};
use crate::api::{DomainRecord, GatewaySpec};
use crate::client::Client;

/// The lab's state, or a new one; refused when the lab runs from another
/// version of the file (or from neither file, after a `--reconfigure` that
/// stopped half-way): that is `--reconfigure`'s job.
fn state_for_deploy(topo: &Topology, file: &Path) -> Result<LabState, LabError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| err(format!("read {}: {e}", file.display())))?;
    let paths = Paths::of(&topo.name);
    match LabState::load(&paths)? {
        Some(s)
            if s.digest != digest(&text)
                || s.deployed
                    .as_ref()
                    .is_some_and(|d| !rvs_lab::same_deployment(d, topo)) =>
        {
            Err(err(format!(
                "lab {} is deployed from another version of its file ({}): `rvswitch lab deploy --reconfigure {f}` applies only the difference, `rvswitch lab destroy {f}` removes the lab (no changes made)",
                topo.name,
                s.file.display(),
                f = file.display()
            )))
        }
        Some(s) => Ok(s),
        None => Ok(LabState {
            lab: topo.name.clone(),
            file: std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf()),
            digest: digest(&text),
            ..LabState::default()
        }),
    }
}

pub fn deploy(topo: &Topology, file: &Path) -> Result<(), LabError> {
    let paths = Paths::of(&topo.name);
    let mut st = state_for_deploy(topo, file)?;
    let nl = Netlink::new().map_err(nl_err)?;
    preflight(topo, &st, &nl)?;
    st.complete = false;
    st.save(&paths)?;

    // Namespaces first: a switch may run inside a node's.
    for node in &topo.nodes {
        ensure_netns(topo, node, &paths, &mut st)?;
    }
    // Two rounds: the switches outside the lab's cluster with what hangs
    // off them (the underlay, the etcd members' and the hosts' links),
    // then the store, then the cluster's switches (which need etcd when
    // they start) and the rest. Without a store the first round is all.
    let mut switches = Switches::none();
    for clustered in [false, true] {
        if clustered && let Some(store) = &topo.store {
            super::store::ensure_store(topo, store, &paths)?;
        }
        switches.start(topo, &paths, &mut st, |sw| {
            topo.clustered(&sw.name) == clustered
        })?;
        for d in topo.domain_specs() {
            if topo.clustered(&d.switch) == clustered {
                ensure(
                    switches.get(&d.switch),
                    &format!("/v1/domains/{}", d.domain),
                    "/v1/domains",
                    domain_body(&d),
                )?;
            }
        }
        for sw in topo
            .switches
            .iter()
            .filter(|s| topo.clustered(&s.name) == clustered)
        {
            ensure_switch_routes(topo, sw, switches.get(&sw.name))?;
        }
        if clustered {
            for net in topo.networks.iter().filter(|n| n.global) {
                super::store::ensure_global_network(net, &switches)?;
            }
        }
        for node in &topo.nodes {
            for i in node
                .interfaces
                .iter()
                .filter(|i| topo.clustered(&i.switch) == clustered)
            {
                ensure_interface(topo, node, i, &paths, &mut st, &nl, &switches)?;
            }
        }
    }
    debug_assert!(topo.switches.iter().all(|s| switches.has(&s.name)));
    for (k, node) in topo.nodes.iter().enumerate() {
        ensure_node_settings(node)?;
        // Progress, as containerlab shows it (stderr: stdout is the table).
        eprintln!(
            "lab {}: [{}/{}] node {} wired ({} interface(s))",
            topo.name,
            k + 1,
            topo.nodes.len(),
            node.name,
            node.interfaces.len()
        );
    }
    for t in &topo.trunks {
        ensure_trunk(topo, t, &paths, &mut st, &nl, &switches)?;
    }
    // After the nodes: a tunnel endpoint binds its host node's address.
    for net in topo.networks.iter().filter(|n| n.kind == NetKind::Vxlan) {
        ensure_vxlan(net, &switches)?;
    }
    for net in &topo.networks {
        ensure_parent(net, &switches)?;
    }
    // Names and resolvers before the nodes' commands, which may use them.
    super::dns::ensure_names(topo, |sw| switches.get(sw))?;
    super::services::ensure_services(topo, |sw| switches.get(sw))?;
    super::dns::ensure_resolv_confs(topo)?;
    for node in &topo.nodes {
        run_exec(node, &paths, &mut st)?;
    }
    // What --reconfigure compares the next file with.
    st.deployed = Some(topo.clone());
    st.complete = true;
    st.save(&paths)?;
    println!(
        "lab {}: {} node(s), {} network(s), {} switch(es) up",
        topo.name,
        topo.nodes.len(),
        topo.networks.len(),
        topo.switches.len()
    );
    super::check::print_table(topo, None);
    Ok(())
}

/// A domain's `POST /v1/domains` body.
pub(super) fn domain_body(d: &DomainSpec) -> DomainRecord {
    let mut rec = DomainRecord::named(&d.domain);
    if d.stp {
        rec.stp = Some(Default::default());
    }
    rec.gateway = d.gateway.as_ref().map(|g| {
        let mut spec =
            GatewaySpec::with_addresses(g.addresses.iter().map(|a| a.to_string()).collect());
        spec.vid = g.vid;
        // A DNS-only gateway (a network without `gateway: true`) answers
        // ARP and DNS but does not route, in a table of its own.
        spec.routing = g.routing;
        spec.table = g.table;
        // Out of u16 range: sent as 65535, which the daemon refuses by name.
        spec.mtu = g.mtu.map(|m| u16::try_from(m).unwrap_or(u16::MAX));
        spec
    });
    rec
}

/// Refuse, before making anything, names that exist but are not this lab's.
pub(super) fn preflight(topo: &Topology, st: &LabState, nl: &Netlink) -> Result<(), LabError> {
    let mut clashes = Vec::new();
    for n in &topo.nodes {
        if netns::netns_path(&n.netns).exists() && !st.namespaces.contains(&n.netns) {
            clashes.push(format!("namespace {} (node {})", n.netns, n.name));
        }
    }
    // Links of switches inside nodes live in the lab's own namespaces.
    let in_host = |sw: &str| topo.switch_netns(sw).is_none();
    let links = topo
        .nodes
        .iter()
        .flat_map(|n| {
            n.interfaces
                .iter()
                .filter(|i| in_host(&i.switch))
                .map(|i| i.link.clone())
        })
        .chain(
            topo.trunks
                .iter()
                .flat_map(|t| t.ends.iter().filter(|e| in_host(&e.0)).map(|e| e.2.clone())),
        );
    for l in links {
        if nl.find_link(&l).map_err(nl_err)?.is_some() && !st.links.contains(&l) {
            clashes.push(format!("link {l}"));
        }
    }
    if clashes.is_empty() {
        Ok(())
    } else {
        Err(err(format!(
            "lab {}: these exist and were not made by this lab: {} (remove them or rename the lab; no changes made)",
            topo.name,
            clashes.join(", ")
        )))
    }
}

/// GET `get`; on 404 POST `body` to `post`. Whether it was made.
pub(super) fn ensure<T: serde::Serialize>(
    c: &Client,
    get: &str,
    post: &str,
    body: T,
) -> Result<bool, LabError> {
    let r = c.get(get).map_err(err)?;
    match r.status {
        200 => Ok(false),
        404 => {
            c.post(post, &body).and_then(|r| r.ok()).map_err(|e| {
                let body = serde_json::to_string(&body).unwrap_or_default();
                err(format!("{post} {body}: {e}"))
            })?;
            Ok(true)
        }
        s => Err(err(format!("GET {get}: HTTP {s}: {}", r.error_message()))),
    }
}

/// The switch's static routes (table 0), added when missing.
fn ensure_switch_routes(topo: &Topology, sw: &SwitchDef, c: &Client) -> Result<(), LabError> {
    if sw.routes.is_empty() {
        return Ok(());
    }
    let have = c
        .get("/v1/routes")
        .and_then(|r| r.ok())
        .map_err(|e| err(format!("switch {}: list routes: {e}", sw.name)))?
        .json();
    for r in &sw.routes {
        ensure_switch_route(topo, &sw.name, r, c, &have)?;
    }
    Ok(())
}

/// One static route of a switch, added unless `have` (the switch's route
/// list) holds it.
pub(super) fn ensure_switch_route(
    topo: &Topology,
    sw: &str,
    r: &SwitchRoute,
    c: &Client,
    have: &Value,
) -> Result<(), LabError> {
    let prefix = r.to.to_string();
    let exists = have.as_array().into_iter().flatten().any(|x| {
        x["prefix"].as_str() == Some(prefix.as_str())
            && x["table"].as_u64().unwrap_or(0) == 0
            && x["kind"].as_str() == Some("static")
    });
    if exists {
        return Ok(());
    }
    let net = topo.network(&r.network).ok_or_else(|| {
        err(format!(
            "switch {sw}: route {prefix}: no network {}",
            r.network
        ))
    })?;
    let body = json!({ "prefix": prefix, "domain": net.domain, "via": r.via.to_string() });
    c.request(Method::POST, "/v1/routes", Some(&body))
        .and_then(|x| x.ok())
        .map_err(|e| err(format!("switch {sw}: add route {body}: {e}")))?;
    Ok(())
}

/// A switch port: added when missing; removed and added again when
/// `remake` (its interface was just made anew) or when the daemon reports
/// it failed (its interface went away and came back).
pub(super) fn ensure_port(c: &Client, body: Value, remake: bool) -> Result<(), LabError> {
    let name = body["name"].as_str().expect("ports have names").to_string();
    let path = format!("/v1/ports/{name}");
    let r = c.get(&path).map_err(err)?;
    let exists = match r.status {
        200 => true,
        404 => false,
        s => return Err(err(format!("GET {path}: HTTP {s}: {}", r.error_message()))),
    };
    if exists {
        if !remake && r.json()["state"].as_str() == Some("up") {
            return Ok(());
        }
        c.request(Method::DELETE, &path, None)
            .and_then(|r| r.ok())
            .map_err(|e| err(format!("remove port {name} to make it again: {e}")))?;
    }
    c.request(Method::POST, "/v1/ports", Some(&body))
        .and_then(|r| r.ok())
        .map_err(|e| err(format!("add port {body}: {e}")))?;
    Ok(())
}

/// A node's namespace, with IPv6 addresses usable at once (no duplicate
/// address detection wait: a lab's addresses are unique by validation).
pub(super) fn ensure_netns(
    topo: &Topology,
    node: &NodeDef,
    paths: &Paths,
    st: &mut LabState,
) -> Result<(), LabError> {
    let ns = &node.netns;
    if node.image.is_some() {
        let fresh = !netns::netns_path(ns).exists();
        let dns = super::dns::dns_servers(topo, node);
        super::container::ensure(node, &topo.name, &dns, paths, st)?;
        if fresh {
            st.exec_done.retain(|n| n != &node.name);
        }
    } else if !netns::netns_path(ns).exists() {
        st.record_netns(paths, ns)?;
        netns::create_named(ns).map_err(err)?;
        // A new namespace (it was deleted by hand?) runs its commands again.
        st.exec_done.retain(|n| n != &node.name);
    }
    sysctls_in(
        ns,
        vec![
            ("net.ipv6.conf.all.accept_dad".into(), "0".into()),
            ("net.ipv6.conf.default.accept_dad".into(), "0".into()),
        ],
        false,
    )?;
    Netlink::in_netns(ns, |n| n.set_up("lo")).map_err(nl_err)
}

/// A node's interfaces, routes and sysctls (its namespace exists).
pub(super) fn ensure_node(
    topo: &Topology,
    node: &NodeDef,
    paths: &Paths,
    st: &mut LabState,
    nl: &Netlink,
    switches: &Switches,
) -> Result<(), LabError> {
    for i in &node.interfaces {
        ensure_interface(topo, node, i, paths, st, nl, switches)?;
    }
    ensure_node_settings(node)
}

/// One interface of a node: its link (veth or TAP), its switch port and
/// its settings inside the node.
pub(super) fn ensure_interface(
    topo: &Topology,
    node: &NodeDef,
    i: &InterfaceDef,
    paths: &Paths,
    st: &mut LabState,
    nl: &Netlink,
    switches: &Switches,
) -> Result<(), LabError> {
    let ns = &node.netns;
    {
        let sw_ns = topo.switch_netns(&i.switch);
        let net = topo
            .network(&i.network)
            .ok_or_else(|| err(format!("node {}: no network {}", node.name, i.network)))?;
        let c = switches.get(&i.switch);
        if net.global {
            return super::store::ensure_global_interface(node, i, net, c, sw_ns.as_deref(), nl);
        }
        let vlan = json!({ "mode": "access", "pvid": net.vlan });
        let options = match &i.impair {
            Some(imp) => json!({ "impair": {
                "delay_ms": imp.delay_ms.unwrap_or(0),
                "jitter_ms": imp.jitter_ms.unwrap_or(0),
                "loss_pct": f64::from(imp.loss_bp.unwrap_or(0)) / 100.0,
                "dup_pct": f64::from(imp.dup_bp.unwrap_or(0)) / 100.0,
                "rate_kbps": imp.rate_kbit.unwrap_or(0),
                "seed": imp.seed.unwrap_or(0),
            }}),
            None => json!({}),
        };
        match i.port {
            PortKind::Tap => {
                // Persistent, and found again inside the node under its
                // name there: a restarted switch re-attaches to the TAP the
                // node already has instead of making a new one.
                let mut options = options;
                options["persist"] = json!(true);
                options["netns"] = json!(ns);
                options["netns_ifname"] = json!(i.name);
                // A TAP that is nowhere (its node was deleted, and the TAP
                // with it) leaves a dead port behind: make the port again.
                let nowhere = Netlink::in_netns(ns, |n| n.find_link(&i.name))
                    .map_err(nl_err)?
                    .is_none()
                    && on(sw_ns.as_deref(), nl, |n| n.find_link(&i.link))?.is_none();
                ensure_port(
                    c,
                    json!({ "name": i.link, "kind": "tap", "domain": net.domain, "vlan": vlan, "options": options,
                        "stp": { "admin_edge": true } }),
                    nowhere,
                )?;
                let inside = Netlink::in_netns(ns, |n| n.find_link(&i.name)).map_err(nl_err)?;
                if inside.is_none() {
                    st.record_link(paths, &i.link)?;
                    if on(sw_ns.as_deref(), nl, |n| n.find_link(&i.link))?.is_none() {
                        return Err(err(format!(
                            "node {}: the switch's TAP {} is neither in the switch's namespace nor in {ns}",
                            node.name, i.link
                        )));
                    }
                    on(sw_ns.as_deref(), nl, |n| n.move_to_netns(&i.link, ns))?;
                    Netlink::in_netns(ns, |n| n.rename(&i.link, &i.name)).map_err(nl_err)?;
                }
                configure_inside(node, i)?;
            }
            PortKind::Afxdp | PortKind::Afpacket => {
                let made = ensure_veth(node, i, sw_ns.as_deref(), paths, st, nl)?;
                configure_inside(node, i)?;
                if i.port == PortKind::Afxdp {
                    // Frames from the node must carry full checksums: AF_XDP
                    // in copy mode does not complete partial ones.
                    rvs_drivers::afxdp::set_tx_checksum_in_netns(
                        &netns::netns_path(ns),
                        &i.name,
                        false,
                    )
                    .map_err(err)?;
                }
                ensure_port(
                    c,
                    json!({ "name": i.link, "kind": i.port.as_str(), "iface": i.link, "domain": net.domain, "vlan": vlan, "options": options,
                        "stp": { "admin_edge": true } }),
                    made,
                )?;
            }
        }
    }
    Ok(())
}

/// A node's routes (added when missing) and sysctls.
pub(super) fn ensure_node_settings(node: &NodeDef) -> Result<(), LabError> {
    let ns = &node.netns;
    let routes: Vec<Route> = node
        .routes
        .iter()
        .map(|r| Route {
            dst: r.to.addr,
            prefix: r.to.len,
            via: Some(r.via),
            dev: None,
        })
        .collect();
    Netlink::in_netns(ns, |n| {
        for r in &routes {
            match n.add_route(r) {
                Err(e) if e.errno() == Some(17) => {} // EEXIST: already there
                other => other?,
            }
        }
        Ok(())
    })
    .map_err(|e| err(format!("node {}: {e}", node.name)))?;
    if !node.sysctls.is_empty() {
        sysctls_in(ns, node.sysctls.clone(), true)
            .map_err(|e| err(format!("node {}: {e}", node.name)))?;
    }
    Ok(())
}

/// The veth of an interface: `link` in the switch's namespace (`sw_ns`,
/// the host's when `None`), its peer `name` inside the node. A half-made
/// pair (a crash between the steps) is made again. Whether it was (re)made.
fn ensure_veth(
    node: &NodeDef,
    i: &InterfaceDef,
    sw_ns: Option<&str>,
    paths: &Paths,
    st: &mut LabState,
    nl: &Netlink,
) -> Result<bool, LabError> {
    let ns = &node.netns;
    let host = on(sw_ns, nl, |n| n.find_link(&i.link))?.is_some();
    let inside = Netlink::in_netns(ns, |n| n.find_link(&i.name))
        .map_err(nl_err)?
        .is_some();
    let made = !(host && inside);
    if made {
        if host {
            on(sw_ns, nl, |n| n.delete_link(&i.link))?;
        }
        if inside {
            Netlink::in_netns(ns, |n| n.delete_link(&i.name)).map_err(nl_err)?;
        }
        st.record_link(paths, &i.link)?;
        // Made in the host namespace, then each end moved where it
        // belongs; the peer's first name only has to be unique for a moment.
        let tmp = temp_link_name();
        nl.create_veth(&i.link, &tmp).map_err(nl_err)?;
        if let Some(sw) = sw_ns {
            nl.move_to_netns(&i.link, sw).map_err(nl_err)?;
        }
        nl.move_to_netns(&tmp, ns).map_err(nl_err)?;
        Netlink::in_netns(ns, |n| n.rename(&tmp, &i.name)).map_err(nl_err)?;
    }
    on(sw_ns, nl, |n| {
        if let Some(m) = i.mtu {
            n.set_mtu(&i.link, m)?;
        }
        n.set_up(&i.link)
    })?;
    Ok(made)
}

/// A name for a veth peer's first moments in the host namespace, unique to
/// this process and call: `rvl` + pid + counter, at most 15 characters.
fn temp_link_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("rvl{:x}.{:x}", std::process::id(), n & 0xfff)
}

pub(super) fn ensure_trunk(
    topo: &Topology,
    t: &TrunkDef,
    paths: &Paths,
    st: &mut LabState,
    nl: &Netlink,
    switches: &Switches,
) -> Result<(), LabError> {
    let (a, b) = (&t.ends[0].2, &t.ends[1].2);
    let (ns_a, ns_b) = (
        topo.switch_netns(&t.ends[0].0),
        topo.switch_netns(&t.ends[1].0),
    );
    let have_a = on(ns_a.as_deref(), nl, |n| n.find_link(a))?.is_some();
    let have_b = on(ns_b.as_deref(), nl, |n| n.find_link(b))?.is_some();
    let made = !(have_a && have_b);
    if made {
        for (l, have, ns) in [(a, have_a, &ns_a), (b, have_b, &ns_b)] {
            if have {
                on(ns.as_deref(), nl, |n| n.delete_link(l))?;
            }
        }
        st.record_link(paths, a)?;
        st.record_link(paths, b)?;
        nl.create_veth(a, b).map_err(nl_err)?;
        for (l, ns) in [(a, &ns_a), (b, &ns_b)] {
            if let Some(ns) = ns {
                nl.move_to_netns(l, ns).map_err(nl_err)?;
            }
        }
    }
    let mut vlan = json!({ "mode": "trunk", "allowed": t.allowed() });
    if let Some(n) = t.native {
        vlan["native"] = json!(n);
    }
    for (sw, dom, link) in &t.ends {
        let ns = topo.switch_netns(sw);
        on(ns.as_deref(), nl, |n| n.set_up(link))?;
        if t.port == PortKind::Afxdp {
            match &ns {
                Some(ns) => rvs_drivers::afxdp::set_tx_checksum_in_netns(
                    &netns::netns_path(ns),
                    link,
                    false,
                )
                .map_err(err)?,
                None => rvs_drivers::ethtool::set_tx_checksum(link, false).map_err(err)?,
            }
        }
        ensure_port(
            switches.get(sw),
            json!({ "name": link, "kind": t.port.as_str(), "iface": link, "domain": dom, "vlan": vlan }),
            made,
        )?;
    }
    Ok(())
}

/// A VXLAN network: on each of its switches a `vxlan` port in its domain,
/// bound to the switch's host node address, flooding to the others.
pub(super) fn ensure_vxlan(net: &NetworkDef, switches: &Switches) -> Result<(), LabError> {
    for p in net.vxlan_ports() {
        ensure_vxlan_port(&p, switches)?;
    }
    Ok(())
}

pub(super) fn ensure_vxlan_port(p: &VxlanPort, switches: &Switches) -> Result<(), LabError> {
    let remotes: Vec<String> = p.remotes.iter().map(|a| a.to_string()).collect();
    ensure_port(
        switches.get(&p.switch),
        json!({
            "name": p.name,
            "kind": "vxlan",
            "domain": p.domain,
            "vlan": { "mode": "access", "pvid": p.vlan },
            "options": { "local": p.local.to_string(), "vni": p.vni, "remotes": remotes },
        }),
        false,
    )
}

/// A network's `parent:`: its VLAN bridged to the host NIC through the
/// switch's uplink port on it (`POST /v1/domains/{d}/parents`), unless it
/// is already.
pub(super) fn ensure_parent(net: &NetworkDef, switches: &Switches) -> Result<(), LabError> {
    let Some(p) = &net.parent else {
        return Ok(());
    };
    for sw in &net.switches {
        let c = switches.get(sw);
        let path = format!("/v1/domains/{}/parents", net.domain);
        let have = c
            .get(&path)
            .and_then(|r| r.ok())
            .map_err(|e| err(format!("switch {sw}: GET {path}: {e}")))?
            .json();
        let text = p.to_string();
        if have
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v["parent"] == text.as_str()))
        {
            continue;
        }
        let mut req = crate::api::ParentRequest::new(&text);
        req.vlan = p.vid.is_none().then_some(net.vlan);
        c.post(&path, &req)
            .and_then(|r| r.ok())
            .map_err(|e| err(format!("network {}: parent {text}: {e}", net.name)))?;
    }
    Ok(())
}

/// A node's start-up commands, once per deployment (recorded).
pub(super) fn run_exec(node: &NodeDef, paths: &Paths, st: &mut LabState) -> Result<(), LabError> {
    if node.exec.is_empty() || st.exec_done.contains(&node.name) {
        return Ok(());
    }
    let logf = paths.log(&format!("exec-{}", node.name));
    for cmd in &node.exec {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&logf)
            .map_err(|e| err(format!("open {}: {e}", logf.display())))?;
        // Output goes to the log, not a pipe: a command that leaves a
        // process in the background (`iperf3 -s &`) does not hold us. A
        // container node's commands run in the container, with its tools.
        let mut c = if node.image.is_some() {
            super::container::exec_command(node, &["sh".into(), "-c".into(), cmd.clone()])
        } else {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &node.netns, "sh", "-c", cmd]);
            c
        };
        let status = c
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(err)?)
            .stderr(log)
            .process_group(0)
            .status()
            .map_err(|e| {
                err(format!(
                    "node {}: run `{cmd}` (is iproute2 installed?): {e}",
                    node.name
                ))
            })?;
        if !status.success() {
            return Err(err(format!(
                "node {}: `{cmd}` failed ({status}); its output is in {}",
                node.name,
                logf.display()
            )));
        }
    }
    st.exec_done.push(node.name.clone());
    st.save(paths)
}

/// Remove everything lab `lab` made. Idempotent; a lab that is not there
/// is not an error.
pub fn destroy(lab: &str) -> Result<(), LabError> {
    if !rvs_lab::lab_name_ok(lab) {
        return Err(err(format!("bad lab name {lab:?}")));
    }
    let paths = Paths::of(lab);
    let st = LabState::load(&paths)?;
    if st.is_none() && !exists(&paths.run) && !exists(&paths.state) {
        println!("lab {lab}: nothing to destroy");
        return Ok(());
    }
    let st = st.unwrap_or_default();
    let mut problems: Vec<String> = Vec::new();
    // Every daemon serving a socket of this lab, recorded or not, first
    // and gracefully (some run inside the lab's namespaces).
    let mut sockets: Vec<PathBuf> = st.daemons.values().cloned().collect();
    if let Ok(d) = std::fs::read_dir(&paths.run) {
        sockets.extend(d.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    let mut stopped = 0;
    for s in &sockets {
        for pid in daemon_pids(s) {
            stop_pid(pid);
            stopped += 1;
        }
    }
    // Containers of container nodes (their namespaces go below).
    let mut containers = 0;
    for c in &st.containers {
        match super::container::remove(c) {
            Ok(()) => containers += 1,
            Err(e) => problems.push(e),
        }
    }
    // Then whatever else runs in the lab's namespaces (node commands).
    let mut killed = 0;
    for ns in &st.namespaces {
        killed += kill_in_netns(ns);
    }
    let mut removed_ns = 0;
    for ns in &st.namespaces {
        super::dns::remove_netns_etc(ns);
        if netns::netns_path(ns).exists() {
            match netns::delete_named(ns) {
                Ok(()) => removed_ns += 1,
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    let mut removed_links = 0;
    match Netlink::new() {
        Ok(nl) => {
            for l in &st.links {
                match nl.find_link(l) {
                    Ok(Some(_)) => match nl.delete_link(l) {
                        Ok(()) => removed_links += 1,
                        // Its peer went first and took it along.
                        Err(_) if matches!(nl.find_link(l), Ok(None)) => {}
                        Err(e) => problems.push(e.to_string()),
                    },
                    Ok(None) => {}
                    Err(e) => problems.push(e.to_string()),
                }
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    for d in [&paths.run, &paths.state] {
        if exists(d)
            && let Err(e) = std::fs::remove_dir_all(d)
        {
            problems.push(format!("remove {}: {e}", d.display()));
        }
    }
    println!(
        "lab {lab}: destroyed ({stopped} daemon(s), {containers} container(s), {removed_ns} namespace(s), {removed_links} link(s), {killed} node process(es))"
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(err(format!(
            "lab {lab}: some things could not be removed:\n  {}",
            problems.join("\n  ")
        )))
    }
}
