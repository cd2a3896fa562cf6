//! A lab's names in the embedded DNS: every node under its name (and its
//! `aliases:`) on each network it is on, pushed to the switches' daemons
//! under the network's domain and VLAN (with a DNS listener in each VLAN
//! of a domain that carries several);
//! and each node's resolver, the DNS address of its networks, in
//! `/etc/netns/<namespace>/resolv.conf` (which `ip netns exec`, and so
//! `lab exec`, mounts over /etc/resolv.conf).
//!
//! Owns: which names a network has and the node's resolv.conf (written at
//! deploy and reconfigure, removed with the namespace). Never: DNS packets.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rvs_lab::{NetworkDef, NodeDef, Topology};

use super::{LabError, err};
use crate::api::{DnsListenerRecord, DnsListenerSpec, NameRecord, NameSpec};
use crate::client::Client;

/// Where `ip netns exec` finds a namespace's own /etc files.
pub const NETNS_ETC: &str = "/etc/netns";

/// The names of network `net`: every node with an interface on it, or on
/// a network sharing its subnet in its VLAN (one address pool, one segment
/// of names), with those interfaces' addresses; aliases too.
pub fn names_of(topo: &Topology, net: &NetworkDef) -> BTreeMap<String, Vec<IpAddr>> {
    let related = |m: &NetworkDef| {
        m.name == net.name
            || (m.vlan == net.vlan
                && ((m.subnet.is_some() && m.subnet == net.subnet)
                    || (m.ipv6.is_some() && m.ipv6 == net.ipv6)))
    };
    let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for node in &topo.nodes {
        let addrs: Vec<IpAddr> = node
            .interfaces
            .iter()
            .filter(|i| topo.network(&i.network).is_some_and(related))
            .flat_map(|i| i.addresses().map(|c| c.addr))
            .collect();
        if addrs.is_empty() {
            continue;
        }
        for name in std::iter::once(&node.name).chain(&node.aliases) {
            let e = out.entry(rvs_dns::normalize(name)).or_default();
            for a in &addrs {
                if !e.contains(a) {
                    e.push(*a);
                }
            }
        }
    }
    out.values_mut()
        .for_each(|v| v.truncate(crate::api::NAME_ADDRESSES_MAX));
    out
}

/// Make every switch's names what the lab says: for each network that
/// serves DNS (a routed gateway's, or the holder of a DNS-only address),
/// on each of its switches, set the names it should have under its
/// domain and VLAN, and delete the others; and the DNS listeners of
/// domains carrying several VLANs.
/// `switch` gives the API client of a switch by name.
pub fn ensure_names<'a>(
    topo: &Topology,
    switch: impl Fn(&str) -> &'a Client,
) -> Result<(), LabError> {
    ensure_listeners(topo, &switch)?;
    let specs = topo.domain_specs();
    // (switch, domain) → VLAN → name → addresses.
    type Want = BTreeMap<u16, BTreeMap<String, Vec<IpAddr>>>;
    let mut want: BTreeMap<(String, String), Want> = BTreeMap::new();
    for net in topo
        .networks
        .iter()
        .filter(|n| !n.dns_addrs().is_empty() && (n.gateway || topo.dns_host(n)))
    {
        for sw in &net.switches {
            let scopes = want.entry((sw.clone(), net.domain.clone())).or_default();
            let names = scopes.entry(net.vlan).or_default();
            for (name, addrs) in names_of(topo, net) {
                names.entry(name).or_insert(addrs);
            }
        }
    }
    for ((sw, domain), scopes) in &want {
        let gw_vid = specs
            .iter()
            .find(|d| &d.switch == sw && &d.domain == domain)
            .and_then(|d| d.gateway.as_ref())
            .map_or(1, |g| g.vid);
        let c = switch(sw);
        let base = format!("/v1/domains/{domain}/names");
        let r = c.get(&base).and_then(|r| r.ok()).map_err(err)?;
        let have: Vec<NameRecord> =
            serde_json::from_slice(&r.body).map_err(|e| err(format!("GET {base}: {e}")))?;
        let scope_of = |h: &NameRecord| h.vlan.unwrap_or(gw_vid);
        // How the daemon stores a name of VLAN `vid`: the gateway's VLAN as
        // none. A record stored otherwise (its VLAN became the gateway's
        // since) is made again.
        let stored = |vid: u16| (vid != gw_vid).then_some(vid);
        let right = |h: &NameRecord, vid: u16, addrs: Option<&Vec<IpAddr>>| {
            h.vlan == stored(vid) && addrs.is_none_or(|a| &h.addresses == a)
        };
        for h in &have {
            let vid = scope_of(h);
            let wanted = scopes.get(&vid).and_then(|n| n.get(&h.name));
            if wanted.is_none() || !right(h, vid, None) {
                let q = h.vlan.map(|v| format!("?vlan={v}")).unwrap_or_default();
                c.delete(&format!("{base}/{}{q}", h.name))
                    .and_then(|r| r.ok())
                    .map_err(err)?;
            }
        }
        for (vid, names) in scopes {
            for (name, addrs) in names {
                if have
                    .iter()
                    .any(|h| scope_of(h) == *vid && &h.name == name && right(h, *vid, Some(addrs)))
                {
                    continue;
                }
                let spec = NameSpec {
                    addresses: addrs.clone(),
                    vlan: stored(*vid),
                };
                c.send(hyper::Method::PUT, &format!("{base}/{name}"), &spec)
                    .and_then(|r| r.ok())
                    .map_err(|e| err(format!("name {name} in domain {domain} VLAN {vid}: {e}")))?;
            }
        }
    }
    Ok(())
}

/// Make every switch's DNS listeners what the lab says (for each domain
/// the lab makes: set the wanted ones, delete the others).
fn ensure_listeners<'a>(
    topo: &Topology,
    switch: &impl Fn(&str) -> &'a Client,
) -> Result<(), LabError> {
    let want = topo.dns_listeners();
    for (sw, domain) in topo.domains() {
        let c = switch(&sw);
        let base = format!("/v1/domains/{domain}/dns");
        let r = c.get(&base).and_then(|r| r.ok()).map_err(err)?;
        let have: Vec<DnsListenerRecord> =
            serde_json::from_slice(&r.body).map_err(|e| err(format!("GET {base}: {e}")))?;
        let mine: Vec<&rvs_lab::DnsListenerSpec> = want
            .iter()
            .filter(|l| l.switch == sw && l.domain == domain)
            .collect();
        for h in &have {
            if !mine.iter().any(|l| l.vid == h.vid) {
                c.delete(&format!("{base}/{}", h.vid))
                    .and_then(|r| r.ok())
                    .map_err(err)?;
            }
        }
        for l in mine {
            let addresses: Vec<IpAddr> = l.addresses.iter().map(|a| a.addr).collect();
            let mut sorted = addresses.clone();
            sorted.sort();
            if have.iter().any(|h| h.vid == l.vid && h.addresses == sorted) {
                continue;
            }
            c.send(
                hyper::Method::PUT,
                &format!("{base}/{}", l.vid),
                &DnsListenerSpec { addresses },
            )
            .and_then(|r| r.ok())
            .map_err(|e| err(format!("DNS listener of {domain} in VLAN {}: {e}", l.vid)))?;
        }
    }
    Ok(())
}

fn etc_dir(ns: &str) -> PathBuf {
    Path::new(NETNS_ETC).join(ns)
}

/// The resolv.conf of `node`: the DNS addresses of its networks, in
/// interface order (at most three, as the C library reads), or `None`
/// when none of its networks has a DNS.
pub fn resolv_conf(topo: &Topology, lab: &str, node: &NodeDef) -> Option<String> {
    let servers = dns_servers(topo, node);
    if servers.is_empty() {
        return None;
    }
    let mut s = format!(
        "# rvswitch lab {lab}: the embedded DNS of node {}'s networks\n",
        node.name
    );
    for a in servers.iter().take(3) {
        s.push_str(&format!("nameserver {a}\n"));
    }
    Some(s)
}

/// The DNS addresses of `node`'s networks, in interface order (at most
/// three, as the C library reads).
pub fn dns_servers(topo: &Topology, node: &NodeDef) -> Vec<IpAddr> {
    let mut servers: Vec<IpAddr> = Vec::new();
    for i in &node.interfaces {
        let Some(net) = topo.network(&i.network) else {
            continue;
        };
        for a in net.dns_addrs() {
            if !servers.contains(&a.addr) {
                servers.push(a.addr);
            }
        }
    }
    servers.truncate(3);
    servers
}

/// Write (or remove) every node's resolv.conf.
pub fn ensure_resolv_confs(topo: &Topology) -> Result<(), LabError> {
    for node in &topo.nodes {
        let dir = etc_dir(&node.netns);
        match resolv_conf(topo, &topo.name, node) {
            Some(text) => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| err(format!("create {}: {e}", dir.display())))?;
                let f = dir.join("resolv.conf");
                std::fs::write(&f, text).map_err(|e| err(format!("write {}: {e}", f.display())))?;
            }
            None => remove_netns_etc(&node.netns),
        }
    }
    Ok(())
}

/// Remove the resolv.conf written for namespace `ns`, and its directory
/// when nothing else is in it.
pub fn remove_netns_etc(ns: &str) {
    let dir = etc_dir(ns);
    let _ = std::fs::remove_file(dir.join("resolv.conf"));
    let _ = std::fs::remove_dir(&dir);
}
