//! `lab deploy --reconfigure`: the difference between the lab as deployed
//! (the topology its state records) and a new file, as an ordered list of
//! [`Step`]s. Pure: no kernel, no daemon; the root crate's `lab` module
//! applies the steps one by one and, after each, applies [`Step::record`] to
//! the recorded topology, so a failure half-way leaves the record naming
//! what is really there and the next `--reconfigure` plans only the rest.
//!
//! What is compared ignores file positions (a line moved is no change).
//! Granularity: nodes, their interfaces (one switch port and veth/TAP each),
//! routes and sysctls; networks (their bridge domains, VXLAN ports and
//! switch routes); trunks. Anything unchanged has no step, so its
//! namespace, link and switch port are not touched. Switches themselves
//! (set, workers, RSTP, host) cannot change: that is a new lab.
//!
//! Order: what goes away first, from the outside in (trunks, nodes,
//! interfaces, switch routes, networks and their domains), then what comes,
//! from the inside out (domains, networks with their VXLAN ports, switch
//! routes, nodes, interfaces, node settings, trunks). A VXLAN network's
//! tunnel endpoints are its switches' host nodes, which stay (switches do
//! not change), so its ports can come before the nodes on it.

use std::fmt;

use rvs_cnm::prefix::Cidr;

use super::{InterfaceDef, NetKind, NetworkDef, NodeDef, Pos, SwitchRoute, Topology, TrunkDef};

/// A bridge domain as deploy makes it on one switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    pub switch: String,
    pub domain: String,
    /// RSTP on (the switch's `rstp`).
    pub stp: bool,
    /// The routed gateway: from the first `gateway: true` network of the
    /// domain on that switch.
    pub gateway: Option<GatewaySpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySpec {
    pub addresses: Vec<Cidr>,
    pub vid: u16,
    pub mtu: Option<u32>,
    /// Routes to the switch's other gateway networks (false: a DNS-only
    /// gateway, see [`crate::NetworkDef::dns_only`]).
    pub routing: bool,
    /// Its route table: 0 for routed gateways; each DNS-only gateway of a
    /// switch has its own ([`DNS_TABLE_BASE`] up), so its connected route
    /// meets neither the switch's static routes nor another network's.
    pub table: u16,
}

/// The first route table of DNS-only gateways.
pub const DNS_TABLE_BASE: u16 = 0xff00;

/// A VXLAN network's port on one of its switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanPort {
    pub switch: String,
    pub name: String,
    pub domain: String,
    pub vlan: u16,
    pub local: std::net::IpAddr,
    pub vni: u32,
    pub remotes: Vec<std::net::IpAddr>,
}

impl Topology {
    /// Every bridge domain, in first-use order.
    pub fn domain_specs(&self) -> Vec<DomainSpec> {
        let dns_tables = self.dns_tables();
        self.domains()
            .into_iter()
            .map(|(sw, dom)| {
                let stp = self.switches.iter().any(|s| s.name == sw && s.rstp);
                let on = |n: &&crate::NetworkDef| n.domain == dom && n.switches.contains(&sw);
                let routed = self.networks.iter().filter(on).find(|n| n.gateway);
                let dns_only = self.networks.iter().filter(on).find(|n| self.dns_host(n));
                let gateway = match (routed, dns_only) {
                    (Some(n), _) => Some(GatewaySpec {
                        addresses: n.gateway_addrs(),
                        vid: n.vlan,
                        mtu: n.mtu,
                        routing: true,
                        table: 0,
                    }),
                    (None, Some(n)) => Some(GatewaySpec {
                        addresses: n.dns_only.clone(),
                        vid: n.vlan,
                        mtu: n.mtu,
                        routing: false,
                        table: dns_tables[&(sw.clone(), dom.clone())],
                    }),
                    (None, None) => None,
                };
                DomainSpec {
                    switch: sw,
                    domain: dom,
                    stp,
                    gateway,
                }
            })
            .collect()
    }
}

impl Topology {
    /// The route table of each DNS-only gateway, by (switch, domain): a
    /// hash of the domain's name (so adding or removing another network
    /// does not move it), the next free one on a collision, in name order.
    fn dns_tables(&self) -> std::collections::HashMap<(String, String), u16> {
        let mut want: Vec<(String, String)> = self
            .networks
            .iter()
            .filter(|n| self.dns_host(n))
            .flat_map(|n| n.switches.iter().map(|s| (s.clone(), n.domain.clone())))
            .collect();
        want.sort();
        want.dedup();
        let mut out = std::collections::HashMap::new();
        let mut taken: std::collections::HashSet<(String, u16)> = Default::default();
        for (sw, dom) in want {
            // FNV-1a: stable across builds and Rust versions.
            let h = dom.bytes().fold(0x811c_9dc5u32, |h, b| {
                (h ^ b as u32).wrapping_mul(0x0100_0193)
            });
            let mut t = (h % 256) as u16;
            while taken.contains(&(sw.clone(), t)) {
                t = (t + 1) % 256;
            }
            taken.insert((sw.clone(), t));
            out.insert((sw, dom), DNS_TABLE_BASE + t);
        }
        out
    }
}

impl NetworkDef {
    /// The VXLAN ports of this network (none for a bridge).
    pub fn vxlan_ports(&self) -> Vec<VxlanPort> {
        let (NetKind::Vxlan, Some(vni), false) = (self.kind, self.vni, self.global) else {
            return Vec::new();
        };
        self.vteps
            .iter()
            .map(|(sw, local)| VxlanPort {
                switch: sw.clone(),
                name: format!("vxlan{vni}"),
                domain: self.domain.clone(),
                vlan: self.vlan,
                local: *local,
                vni,
                remotes: self
                    .vteps
                    .iter()
                    .filter(|(other, _)| other != sw)
                    .map(|(_, a)| *a)
                    .collect(),
            })
            .collect()
    }
}

/// One change. Each is idempotent when applied (a second try of a step
/// that failed half-way finishes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Its ports on both switches and its veth.
    RemoveTrunk(TrunkDef),
    /// Its processes, switch ports and namespace (which takes its links).
    RemoveNode(NodeDef),
    /// An interface of a node that stays: its switch port and its link.
    RemoveInterface {
        node: String,
        iface: InterfaceDef,
    },
    RemoveSwitchRoute {
        switch: String,
        route: SwitchRoute,
    },
    /// Its VXLAN ports that the new file does not have as they are, then
    /// the bridge domains no network of the new file uses. `replaced`: the
    /// new file has a network of that name (changed), added back later.
    RemoveNetwork {
        net: NetworkDef,
        vxlan: Vec<VxlanPort>,
        domains: Vec<(String, String)>,
        replaced: bool,
    },
    /// Make a bridge domain (`old` is `None`) or change its gateway/RSTP.
    Domain {
        old: Option<DomainSpec>,
        new: DomainSpec,
    },
    AddSwitchRoute {
        switch: String,
        route: SwitchRoute,
    },
    AddNode(NodeDef),
    AddInterface {
        node: String,
        iface: InterfaceDef,
    },
    /// Addresses, MAC or MTU of an interface, changed in place (its port
    /// and link stay).
    ChangeInterface {
        node: String,
        old: InterfaceDef,
        new: InterfaceDef,
    },
    /// Routes and sysctls of a node that stays (its `exec` commands ran
    /// once, when it was made, and do not run again).
    ChangeNode {
        old: NodeDef,
        new: NodeDef,
    },
    AddTrunk(TrunkDef),
    /// Its VXLAN ports (its domains were made by a [`Step::Domain`]).
    /// `replaces`: a network of that name was there (changed).
    AddNetwork {
        net: NetworkDef,
        replaces: bool,
    },
}

impl Step {
    /// What the recorded topology becomes once this step is applied.
    pub fn record(&self, rec: &mut Topology) {
        fn node_mut<'a>(rec: &'a mut Topology, name: &str) -> Option<&'a mut NodeDef> {
            rec.nodes.iter_mut().find(|n| n.name == name)
        }
        match self {
            Step::RemoveTrunk(t) => rec.trunks.retain(|x| x.name != t.name),
            Step::RemoveNode(n) => rec.nodes.retain(|x| x.name != n.name),
            Step::RemoveInterface { node, iface } => {
                if let Some(n) = node_mut(rec, node) {
                    n.interfaces.retain(|i| i.name != iface.name);
                }
            }
            Step::RemoveSwitchRoute { switch, route } => {
                if let Some(s) = rec.switches.iter_mut().find(|s| &s.name == switch) {
                    s.routes.retain(|r| !same_switch_route(r, route));
                }
            }
            Step::RemoveNetwork { net, .. } => rec.networks.retain(|x| x.name != net.name),
            // Domains follow from the networks: recorded with them.
            Step::Domain { .. } => {}
            Step::AddSwitchRoute { switch, route } => {
                if let Some(s) = rec.switches.iter_mut().find(|s| &s.name == switch) {
                    s.routes.retain(|r| !same_switch_route(r, route));
                    s.routes.push(route.clone());
                }
            }
            Step::AddNode(n) => {
                rec.nodes.retain(|x| x.name != n.name);
                rec.nodes.push(n.clone());
            }
            Step::AddInterface { node, iface } => {
                if let Some(n) = node_mut(rec, node) {
                    n.interfaces.retain(|i| i.name != iface.name);
                    n.interfaces.push(iface.clone());
                }
            }
            Step::ChangeInterface { node, new, .. } => {
                if let Some(i) = node_mut(rec, node)
                    .and_then(|n| n.interfaces.iter_mut().find(|i| i.name == new.name))
                {
                    *i = new.clone();
                }
            }
            Step::ChangeNode { new, .. } => {
                if let Some(n) = node_mut(rec, &new.name) {
                    n.routes = new.routes.clone();
                    n.sysctls = new.sysctls.clone();
                    n.exec = new.exec.clone();
                }
            }
            Step::AddTrunk(t) => {
                rec.trunks.retain(|x| x.name != t.name);
                rec.trunks.push(t.clone());
            }
            Step::AddNetwork { net: n, .. } => {
                rec.networks.retain(|x| x.name != n.name);
                rec.networks.push(n.clone());
            }
        }
    }
}

fn same_switch_route(a: &SwitchRoute, b: &SwitchRoute) -> bool {
    a.to == b.to && a.via == b.via && a.network == b.network
}

fn addrs(i: &InterfaceDef) -> String {
    let v: Vec<String> = i.addresses().map(|a| a.to_string()).collect();
    if v.is_empty() {
        "no address".into()
    } else {
        v.join(" ")
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::RemoveTrunk(t) => write!(f, "- trunk {}", t.name),
            Step::RemoveNode(n) => write!(f, "- node {} (namespace {})", n.name, n.netns),
            Step::RemoveInterface { node, iface } => write!(
                f,
                "- link {node}.{} (port {} on network {})",
                iface.name, iface.link, iface.network
            ),
            Step::RemoveSwitchRoute { switch, route } => {
                write!(f, "- switch {switch} route {} via {}", route.to, route.via)
            }
            Step::RemoveNetwork {
                net,
                domains,
                replaced,
                ..
            } => {
                if *replaced {
                    write!(f, "~ network {}: was {}", net.name, net_text(net))?;
                } else {
                    write!(f, "- network {}", net.name)?;
                }
                for (sw, d) in domains {
                    write!(f, " (domain {d} on switch {sw} goes)")?;
                }
                Ok(())
            }
            Step::Domain { old: None, new } => {
                write!(f, "+ domain {} on switch {}", new.domain, new.switch)
            }
            Step::Domain { old: Some(_), new } => write!(
                f,
                "~ domain {} on switch {}: gateway {}, rstp {}",
                new.domain,
                new.switch,
                new.gateway.as_ref().map_or("none".to_string(), |g| {
                    let a = g.addresses.iter().map(|a| a.to_string());
                    let a = a.collect::<Vec<_>>().join(" ");
                    if g.routing {
                        a
                    } else {
                        format!("{a} (DNS only)")
                    }
                }),
                if new.stp { "on" } else { "off" }
            ),
            Step::AddSwitchRoute { switch, route } => {
                write!(f, "+ switch {switch} route {} via {}", route.to, route.via)
            }
            Step::AddNode(n) => {
                let nets: Vec<&str> = n.interfaces.iter().map(|i| i.network.as_str()).collect();
                write!(
                    f,
                    "+ node {} (namespace {}, on {})",
                    n.name,
                    n.netns,
                    nets.join(", ")
                )
            }
            Step::AddInterface { node, iface } => write!(
                f,
                "+ link {node}.{} (port {} on network {}, {})",
                iface.name,
                iface.link,
                iface.network,
                addrs(iface)
            ),
            Step::ChangeInterface { node, old, new } => {
                write!(f, "~ interface {node}.{}:", new.name)?;
                if old.address != new.address || old.ipv6 != new.ipv6 {
                    write!(f, " addresses {} -> {}", addrs(old), addrs(new))?;
                }
                if old.mac != new.mac {
                    write!(
                        f,
                        " mac {} -> {}",
                        super::format_mac(&old.mac),
                        super::format_mac(&new.mac)
                    )?;
                }
                if old.mtu != new.mtu {
                    write!(f, " mtu {:?} -> {:?}", old.mtu, new.mtu)?;
                }
                Ok(())
            }
            Step::ChangeNode { old, new } => {
                write!(f, "~ node {}:", new.name)?;
                let gone = old.routes.iter().filter(|r| !has_route(&new.routes, r));
                let came = new.routes.iter().filter(|r| !has_route(&old.routes, r));
                for r in gone {
                    write!(f, " -route {} via {}", r.to, r.via)?;
                }
                for r in came {
                    write!(f, " +route {} via {}", r.to, r.via)?;
                }
                if old.sysctls != new.sysctls {
                    write!(f, " sysctls")?;
                }
                if old.exec != new.exec {
                    write!(f, " (exec changed: not run again on a running node)")?;
                }
                Ok(())
            }
            Step::AddTrunk(t) => write!(
                f,
                "+ trunk {} ({}/{} - {}/{})",
                t.name, t.ends[0].0, t.ends[0].1, t.ends[1].0, t.ends[1].1
            ),
            Step::AddNetwork { net, replaces } => {
                let sign = if *replaces { "~" } else { "+" };
                let what = if *replaces { ": now " } else { " " };
                write!(f, "{sign} network {}{what}{}", net.name, net_text(net))
            }
        }
    }
}

/// `domain D vlan V SUBNETS [gateway] [vni N]`.
fn net_text(n: &NetworkDef) -> String {
    let mut t = format!("(domain {} vlan {}", n.domain, n.vlan);
    for s in [n.subnet, n.ipv6].into_iter().flatten() {
        t += &format!(" {s}");
    }
    if n.gateway {
        t += " gateway";
    }
    if let Some(v) = n.vni {
        t += &format!(" vni {v}");
    }
    t + ")"
}

fn has_route(rs: &[super::RouteDef], r: &super::RouteDef) -> bool {
    rs.iter().any(|x| x.to == r.to && x.via == r.via)
}

/// The ordered steps from `old` (as deployed) to `new`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "{s}")?;
        }
        Ok(())
    }
}

/// `t` without file positions, interfaces and routes in a canonical order:
/// what deploy makes depends on none of them.
pub fn canonical(t: &Topology) -> Topology {
    let mut t = t.clone();
    for s in &mut t.switches {
        s.pos = Pos::default();
        for r in &mut s.routes {
            r.pos = Pos::default();
        }
        s.routes.sort_by_key(|r| (r.to.to_string(), r.via));
    }
    for n in &mut t.networks {
        n.pos = Pos::default();
    }
    for n in &mut t.nodes {
        n.pos = Pos::default();
        for i in &mut n.interfaces {
            i.pos = Pos::default();
        }
        n.interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        for r in &mut n.routes {
            r.pos = Pos::default();
        }
    }
    for tr in &mut t.trunks {
        tr.pos = Pos::default();
    }
    t.switches.sort_by(|a, b| a.name.cmp(&b.name));
    t.networks.sort_by(|a, b| a.name.cmp(&b.name));
    t.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    t.trunks.sort_by(|a, b| a.name.cmp(&b.name));
    for s in &mut t.services {
        s.pos = Pos::default();
    }
    t.services
        .sort_by(|a, b| (&a.network, &a.name).cmp(&(&b.network, &b.name)));
    t.probes.clear();
    t
}

/// Whether deploying `a` and `b` makes the same things.
pub fn same_deployment(a: &Topology, b: &Topology) -> bool {
    canonical(a) == canonical(b)
}

/// What an interface's switch port and link are made from: when any of it
/// differs, the interface is made anew; otherwise it is changed in place.
fn port_identity(topo: &Topology, i: &InterfaceDef) -> String {
    let net = topo.network(&i.network).map(|n| (&n.domain, n.vlan));
    format!(
        "{:?}",
        (
            &i.link,
            &i.switch,
            i.port,
            &i.impair,
            &i.network,
            net,
            topo.switch_netns(&i.switch),
        )
    )
}

/// The steps from `old` (the recorded deployment) to `new`, or why not:
/// the changes `--reconfigure` cannot make, each one a sentence.
pub fn plan(old: &Topology, new: &Topology) -> Result<Plan, Vec<String>> {
    let (old, new) = (canonical(old), canonical(new));
    let (old_specs, new_specs) = (old.domain_specs(), new.domain_specs());
    // A network's DNS-only address shows as its domain's gateway (a domain
    // step), not as a change of the network (which would remake it).
    let same = |a: Option<&crate::NetworkDef>, b: &crate::NetworkDef| {
        a.is_some_and(|a| {
            let (mut a, mut b) = (a.clone(), b.clone());
            a.dns_only.clear();
            b.dns_only.clear();
            a == b
        })
    };
    let mut refuse = Vec::new();
    if (old.store.is_some() || new.store.is_some()) && old != new {
        refuse.push(
            "the lab has a store (etcd) and global networks, which --reconfigure does not change: destroy and deploy it"
                .to_string(),
        );
        return Err(refuse);
    }
    if old.name != new.name {
        refuse.push(format!(
            "the lab's name changed ({} -> {}): that is another lab",
            old.name, new.name
        ));
    }
    {
        let strip = |t: &Topology| {
            t.switches
                .iter()
                .map(|s| {
                    let mut s = s.clone();
                    s.routes.clear();
                    s
                })
                .collect::<Vec<_>>()
        };
        if strip(&old) != strip(&new) {
            let names = |t: &Topology| {
                t.switches
                    .iter()
                    .map(|s| s.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            refuse.push(format!(
                "the switches changed (before: {}; now: {}; or their workers, rstp or host): a switch's daemon is not replaced by --reconfigure, destroy and deploy the lab",
                names(&old),
                names(&new)
            ));
        }
    }
    if !refuse.is_empty() {
        return Err(refuse);
    }

    let mut steps = Vec::new();
    // Nodes in both, also unchanged ones: their ports change with their
    // networks' domain or VLAN.
    // A container node whose image or command changed is a new container:
    // removed and added, not kept.
    let same_node = |o: &NodeDef| {
        new.node(&o.name)
            .filter(|n| n.image == o.image && n.cmd == o.cmd)
    };
    let kept_nodes: Vec<(&NodeDef, &NodeDef)> = old
        .nodes
        .iter()
        .filter_map(|o| same_node(o).map(|n| (o, n)))
        .collect();

    // --- Removals, outside in.
    for t in &old.trunks {
        if new.trunks.iter().all(|x| x != t) {
            steps.push(Step::RemoveTrunk(t.clone()));
        }
    }
    for n in &old.nodes {
        if same_node(n).is_none() {
            steps.push(Step::RemoveNode(n.clone()));
        }
    }
    // Interfaces made anew (removed here, added below) or changed in place.
    let mut remade: Vec<(String, InterfaceDef)> = Vec::new();
    let mut changed: Vec<(String, InterfaceDef, InterfaceDef)> = Vec::new();
    for (o, n) in &kept_nodes {
        for oi in &o.interfaces {
            match n.interfaces.iter().find(|i| i.name == oi.name) {
                None => steps.push(Step::RemoveInterface {
                    node: o.name.clone(),
                    iface: oi.clone(),
                }),
                Some(ni) if port_identity(&old, oi) != port_identity(&new, ni) => {
                    steps.push(Step::RemoveInterface {
                        node: o.name.clone(),
                        iface: oi.clone(),
                    });
                    remade.push((n.name.clone(), ni.clone()));
                }
                Some(ni) if ni != oi => changed.push((n.name.clone(), oi.clone(), ni.clone())),
                Some(_) => {}
            }
        }
    }
    for s in &old.switches {
        let ns = new.switches.iter().find(|x| x.name == s.name);
        for r in &s.routes {
            if !ns.is_some_and(|ns| ns.routes.iter().any(|x| same_switch_route(x, r)))
                || new.network(&r.network).map(|n| &n.domain)
                    != old.network(&r.network).map(|n| &n.domain)
            {
                steps.push(Step::RemoveSwitchRoute {
                    switch: s.name.clone(),
                    route: r.clone(),
                });
            }
        }
    }
    let new_domains = new.domains();
    let new_vxlan: Vec<VxlanPort> = new.networks.iter().flat_map(|n| n.vxlan_ports()).collect();
    let mut domains_left: Vec<(String, String)> = old
        .domains()
        .into_iter()
        .filter(|d| !new_domains.contains(d))
        .collect();
    for n in &old.networks {
        if same(new.network(&n.name), n) {
            continue;
        }
        let vxlan = n
            .vxlan_ports()
            .into_iter()
            .filter(|p| !new_vxlan.contains(p))
            .collect();
        // A domain goes with the last network of it that goes.
        let still = |d: &(String, String)| {
            old.networks.iter().any(|x| {
                x.name != n.name
                    && same(new.network(&x.name), x)
                    && x.domain == d.1
                    && x.switches.contains(&d.0)
            })
        };
        let mine: Vec<(String, String)> = domains_left
            .iter()
            .filter(|d| d.1 == n.domain && n.switches.contains(&d.0) && !still(d))
            .cloned()
            .collect();
        domains_left.retain(|d| !mine.contains(d));
        steps.push(Step::RemoveNetwork {
            net: n.clone(),
            vxlan,
            domains: mine,
            replaced: new.network(&n.name).is_some(),
        });
    }

    // --- Additions, inside out.
    for d in new_specs {
        match old_specs
            .iter()
            .find(|o| o.switch == d.switch && o.domain == d.domain)
        {
            None => steps.push(Step::Domain { old: None, new: d }),
            Some(o) if o != &d => steps.push(Step::Domain {
                old: Some(o.clone()),
                new: d,
            }),
            Some(_) => {}
        }
    }
    // Networks before the nodes on them: the record never holds an
    // interface on a network it does not hold.
    for n in &new.networks {
        if !same(old.network(&n.name), n) {
            steps.push(Step::AddNetwork {
                net: n.clone(),
                replaces: old.network(&n.name).is_some(),
            });
        }
    }
    for s in &new.switches {
        let os = old.switches.iter().find(|x| x.name == s.name);
        for r in &s.routes {
            let had = os.is_some_and(|os| os.routes.iter().any(|x| same_switch_route(x, r)))
                && new.network(&r.network).map(|n| &n.domain)
                    == old.network(&r.network).map(|n| &n.domain);
            if !had {
                steps.push(Step::AddSwitchRoute {
                    switch: s.name.clone(),
                    route: r.clone(),
                });
            }
        }
    }
    for n in &new.nodes {
        if !kept_nodes.iter().any(|(_, k)| k.name == n.name) {
            steps.push(Step::AddNode(n.clone()));
        }
    }
    for (o, n) in &kept_nodes {
        for ni in &n.interfaces {
            if !o.interfaces.iter().any(|i| i.name == ni.name) {
                steps.push(Step::AddInterface {
                    node: n.name.clone(),
                    iface: ni.clone(),
                });
            }
        }
    }
    for (node, iface) in remade {
        steps.push(Step::AddInterface { node, iface });
    }
    for (node, old, new) in changed {
        steps.push(Step::ChangeInterface { node, old, new });
    }
    for (o, n) in &kept_nodes {
        if o.routes != n.routes || o.sysctls != n.sysctls || o.exec != n.exec {
            steps.push(Step::ChangeNode {
                old: (*o).clone(),
                new: (*n).clone(),
            });
        }
    }
    for t in &new.trunks {
        if old.trunks.iter().all(|x| x != t) {
            steps.push(Step::AddTrunk(t.clone()));
        }
    }
    Ok(Plan { steps })
}
