//! Lab topologies: namespaces ("nodes") wired through rvswitch, declared in
//! one YAML file (containerlab-flavoured) and deployed by `rvswitch lab`.
//!
//! Owns: the file format, its validation (every error names the file, line,
//! column and field), address allocation, the names a deployment uses
//! (namespaces, links, ports, MACs), the expectation matrix and the graph
//! renderings (DOT, Mermaid), and the plan of `lab deploy --reconfigure`
//! (the steps from a deployed topology to a new one, [`plan`]). Never:
//! touching the kernel or a daemon — that is the root crate's `lab`
//! module, which takes a validated [`Topology`].
//!
//! Its own crate, not part of `rvs-cnm`: a lab is not a Container Network
//! Model object. It shares only the prefix arithmetic (`rvs_cnm::prefix`).
//!
//! ```yaml
//! name: quickstart
//! networks:
//!   lan: {subnet: 10.99.0.0/24, ipv6: fd00:99::/64}
//! nodes:
//!   a: {interfaces: [{network: lan}]}
//!   b: {interfaces: [{network: lan, address: 10.99.0.2/24}]}
//! expect:
//!   reach: all
//! ```
//!
//! See docs/operations.md ("Labs") for every field.

mod clab;
mod diff;
mod graph;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

pub use diff::{DomainSpec, GatewaySpec, Plan, Step, VxlanPort, canonical, plan, same_deployment};
pub use graph::{to_dot, to_mermaid};
pub use parse::{lab_name_ok, parse, parse_file};

use rvs_cnm::prefix::Cidr;
use serde::{Deserialize, Serialize};

/// A position in the topology file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One problem in a topology file: `FILE:LINE:COL: FIELD: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabError {
    pub file: String,
    pub pos: Pos,
    /// The field's path, like `nodes.a.interfaces[0].address`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line == 0 {
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}:{}: ", self.file, self.pos.line, self.pos.col)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a file (at least one), in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabErrors(pub Vec<LabError>);

impl fmt::Display for LabErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LabErrors {}

/// A switch: one `rvswitch daemon`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchDef {
    pub name: String,
    pub pos: Pos,
    /// Run the daemon inside this node's namespace instead of the host's
    /// (a "hypervisor" for overlays: its VXLAN ports use the node's address).
    pub host: Option<String>,
    /// Run RSTP on the switch's trunks. Not supported by deploy yet.
    pub rstp: bool,
    pub workers: u16,
    /// Static routes of the switch's router (table 0).
    pub routes: Vec<SwitchRoute>,
}

/// A route in a switch: `to` via a next hop on a gateway network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchRoute {
    pub pos: Pos,
    pub to: Cidr,
    pub via: IpAddr,
    /// The gateway network (and so bridge domain) the next hop is on.
    pub network: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetKind {
    /// A VLAN of a bridge domain on one switch.
    Bridge,
    /// A VXLAN segment spanning several switches, each running in a node
    /// (`host`) whose address is its tunnel endpoint.
    Vxlan,
}

/// A network: one L2 segment (a VLAN of a bridge domain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDef {
    pub name: String,
    pub pos: Pos,
    pub kind: NetKind,
    /// The switches it lives on: one for a bridge, each VTEP for VXLAN.
    pub switches: Vec<String>,
    /// The bridge domain on each switch (default: the network's name).
    pub domain: String,
    /// Its VLAN in the domain: access ports get this PVID (default 1).
    pub vlan: u16,
    pub subnet: Option<Cidr>,
    pub ipv6: Option<Cidr>,
    pub mtu: Option<u32>,
    /// The switch routes for this network: its gateway holds the first
    /// address of each subnet, gateways of a switch route to each other.
    pub gateway: bool,
    pub vni: Option<u32>,
    /// VXLAN: each switch's tunnel endpoint address (its host node's).
    pub vteps: Vec<(String, IpAddr)>,
    /// `scope: global`: a network of the lab's cluster (`store:`), made on
    /// each of its switches through the daemon's API by name; its VNI is
    /// the cluster's (or `vni`), its nodes' addresses are claimed in etcd
    /// and the switches learn each other's endpoints from the registry
    /// (no static remotes).
    #[serde(default)]
    pub global: bool,
    /// Where the nodes find the embedded DNS on a network without a
    /// gateway: the highest address of each subnet left free by the nodes,
    /// held by a gateway that does not route, or, when the network shares
    /// its bridge domain with networks in other VLANs, by a DNS listener
    /// in its VLAN beside the domain's one gateway. Networks of one VLAN
    /// and subnet (one segment, e.g. across a trunk) share the address of
    /// the first of them, which holds it ([`Topology::dns_host`]). Empty
    /// when the network has a gateway (the DNS is there), shares its domain
    /// and VLAN with a routed network, or when no address is free.
    #[serde(default)]
    pub dns_only: Vec<Cidr>,
    /// The host NIC whose LAN the network is bridged to (`parent: eth0`
    /// untagged, in the domain's VLAN `vlan`; `parent: eth0.10` tagged, in
    /// VLAN 10), through the switch's uplink port on that interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<rvs_cnm::Parent>,
}

impl NetworkDef {
    /// The addresses of the network's DNS server: its gateway's, or the
    /// DNS-only ones (see [`NetworkDef::dns_only`]); empty: no DNS.
    pub fn dns_addrs(&self) -> Vec<Cidr> {
        if self.gateway {
            self.gateway_addrs()
        } else {
            self.dns_only.clone()
        }
    }

    /// The gateway addresses (first host of each subnet) when `gateway`.
    pub fn gateway_addrs(&self) -> Vec<Cidr> {
        if !self.gateway {
            return Vec::new();
        }
        [self.subnet, self.ipv6]
            .into_iter()
            .flatten()
            .map(|s| {
                let (lo, _) = s.range();
                Cidr {
                    addr: rvs_cnm::prefix::from_u128(s.addr, lo + 1),
                    len: s.len,
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortKind {
    Afxdp,
    Afpacket,
    Tap,
}

impl PortKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Afxdp => "afxdp",
            PortKind::Afpacket => "afpacket",
            PortKind::Tap => "tap",
        }
    }
}

/// Per-interface link impairments, applied by the switch port to the
/// frames it sends toward the node (netem-like).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Impair {
    pub delay_ms: Option<u32>,
    pub jitter_ms: Option<u32>,
    /// Loss in hundredths of a percent.
    pub loss_bp: Option<u32>,
    /// Duplication in hundredths of a percent.
    pub dup_bp: Option<u32>,
    pub rate_kbit: Option<u64>,
    /// Seed of the switch's generator (the same seed, the same losses).
    pub seed: Option<u64>,
}

/// A node's interface on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceDef {
    pub pos: Pos,
    /// The interface name inside the node (`eth0`, `eth1`, ...).
    pub name: String,
    pub network: String,
    /// The switch it attaches to (the network's, or one of a VXLAN's).
    pub switch: String,
    pub port: PortKind,
    /// IPv4 address (given or allocated from the network's subnet).
    pub address: Option<Cidr>,
    /// IPv6 address (given or allocated from the network's `ipv6`).
    pub ipv6: Option<Cidr>,
    pub mac: [u8; 6],
    pub mtu: Option<u32>,
    pub impair: Option<Impair>,
    /// The switch end: the veth's host-side name, the TAP's name and the
    /// switch port's name (at most 15 characters, unique per lab).
    pub link: String,
}

impl InterfaceDef {
    pub fn addresses(&self) -> impl Iterator<Item = Cidr> + '_ {
        self.address.iter().chain(self.ipv6.iter()).copied()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDef {
    pub pos: Pos,
    pub to: Cidr,
    pub via: IpAddr,
}

/// A node: a network namespace with interfaces on networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDef {
    pub name: String,
    pub pos: Pos,
    /// Its namespace: `<lab>-<node>`.
    pub netns: String,
    pub interfaces: Vec<InterfaceDef>,
    pub routes: Vec<RouteDef>,
    pub sysctls: Vec<(String, String)>,
    /// Shell commands run once inside the node after it is wired.
    pub exec: Vec<String>,
    /// More names the node answers to in the embedded DNS (besides its own).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// A container node: Docker runs this image (with no network of its
    /// own) and the lab wires the container's namespace like any other.
    #[serde(default)]
    pub image: Option<String>,
    /// A container node's command (default: the image's).
    #[serde(default)]
    pub cmd: Option<String>,
}

/// A trunk between two bridge domains (on one switch or two).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrunkDef {
    pub name: String,
    pub pos: Pos,
    /// `(switch, domain, link name)` for both ends.
    pub ends: [(String, String, String); 2],
    /// Allowed VLANs; empty means all.
    pub vlans: Vec<u16>,
    pub native: Option<u16>,
    pub port: PortKind,
}

impl TrunkDef {
    /// The API's `allowed` list: `all` or `10,20`.
    pub fn allowed(&self) -> String {
        if self.vlans.is_empty() {
            "all".into()
        } else {
            self.vlans
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Want {
    Reach,
    Isolate,
}

/// One expectation: `from` pings `to`'s address `addr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub from: String,
    pub to: String,
    pub addr: IpAddr,
    pub want: Want,
}

/// A port of a service: `port` of the VIPs to `target` of the backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePortDef {
    pub port: u16,
    pub target: u16,
    pub udp: bool,
}

/// A service of a network (`services:`): VIPs balanced over backends by
/// the switch, or (no VIP) a DNS name answered round robin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDef {
    pub name: String,
    pub pos: Pos,
    pub network: String,
    /// Empty: mode dnsrr.
    pub vips: Vec<IpAddr>,
    pub ports: Vec<ServicePortDef>,
    /// Node names or aliases (names of the network's DNS).
    pub backends: Vec<String>,
    /// The backends' port a TCP health check connects to.
    pub health_check: Option<u16>,
}

/// A validated lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub name: String,
    pub switches: Vec<SwitchDef>,
    pub networks: Vec<NetworkDef>,
    pub nodes: Vec<NodeDef>,
    pub trunks: Vec<TrunkDef>,
    /// The expectation matrix, expanded to one probe per address.
    pub probes: Vec<Probe>,
    /// Services of the lab's networks.
    #[serde(default)]
    pub services: Vec<ServiceDef>,
    /// The etcd cluster the lab runs for its global networks.
    #[serde(default)]
    pub store: Option<StoreDef>,
}

/// `store:`: an etcd cluster the lab starts, one member in each of these
/// nodes' namespaces, listening on the node's first IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreDef {
    pub pos: Pos,
    /// (node, its address the member listens on).
    pub members: Vec<(String, IpAddr)>,
}

/// etcd's client and peer ports in a lab member's namespace.
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;

impl StoreDef {
    /// `etcd://A:2379,B:2379,...`, as `rvswitch daemon --store` takes it.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .members
            .iter()
            .map(|(_, a)| std::net::SocketAddr::new(*a, ETCD_CLIENT_PORT).to_string())
            .collect();
        format!("etcd://{}", hosts.join(","))
    }
}

impl Topology {
    /// The namespace a switch's daemon runs in (`None`: the host's).
    pub fn switch_netns(&self, switch: &str) -> Option<String> {
        let sw = self.switches.iter().find(|s| s.name == switch)?;
        let host = sw.host.as_ref()?;
        self.node(host).map(|n| n.netns.clone())
    }

    /// Whether switch `switch` is a member of the lab's cluster (it carries
    /// a global network).
    pub fn clustered(&self, switch: &str) -> bool {
        self.networks
            .iter()
            .any(|n| n.global && n.switches.iter().any(|s| s == switch))
    }

    /// The VTEP address of a clustered switch (its host node's).
    pub fn vtep_of(&self, switch: &str) -> Option<IpAddr> {
        self.networks
            .iter()
            .filter(|n| n.global)
            .flat_map(|n| &n.vteps)
            .find(|(s, _)| s == switch)
            .map(|(_, a)| *a)
    }

    pub fn network(&self, name: &str) -> Option<&NetworkDef> {
        self.networks.iter().find(|n| n.name == name)
    }

    pub fn node(&self, name: &str) -> Option<&NodeDef> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Bridge domains per switch the lab makes, in first-use order:
    /// `(switch, domain)`.
    /// Whether `net` holds its DNS-only addresses itself: the first
    /// network of its segment (the others share its addresses).
    pub fn dns_host(&self, net: &NetworkDef) -> bool {
        !net.gateway
            && !net.dns_only.is_empty()
            && self
                .networks
                .iter()
                .take_while(|o| o.name != net.name)
                .all(|o| o.gateway || o.dns_only != net.dns_only)
    }

    /// The DNS listeners of each (switch, domain): the DNS-only addresses
    /// of the networks holding them in VLANs other than the domain's
    /// gateway's, by VLAN.
    pub fn dns_listeners(&self) -> Vec<DnsListenerSpec> {
        let specs = self.domain_specs();
        let mut out: Vec<DnsListenerSpec> = Vec::new();
        for d in &specs {
            let Some(g) = &d.gateway else { continue };
            for n in self.networks.iter().filter(|n| {
                n.domain == d.domain && n.switches.contains(&d.switch) && self.dns_host(n)
            }) {
                if n.vlan == g.vid || out.iter().any(|l| l.same_place(d, n.vlan)) {
                    continue;
                }
                out.push(DnsListenerSpec {
                    switch: d.switch.clone(),
                    domain: d.domain.clone(),
                    vid: n.vlan,
                    addresses: n.dns_only.clone(),
                });
            }
        }
        out
    }

    pub fn domains(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        // A global network's domain is made by the daemon with the network.
        for n in self.networks.iter().filter(|n| !n.global) {
            for s in &n.switches {
                let d = (s.clone(), n.domain.clone());
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
        out
    }
}

/// A DNS listener of a lab: resolver addresses of `domain` on `switch` in
/// VLAN `vid` (see [`Topology::dns_listeners`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsListenerSpec {
    pub switch: String,
    pub domain: String,
    pub vid: u16,
    pub addresses: Vec<Cidr>,
}

impl DnsListenerSpec {
    fn same_place(&self, d: &DomainSpec, vid: u16) -> bool {
        self.switch == d.switch && self.domain == d.domain && self.vid == vid
    }
}

/// The namespace of a node.
pub fn netns_name(lab: &str, node: &str) -> String {
    format!("{lab}-{node}")
}

/// FNV-1a over the parts, separated so `("ab","c") != ("a","bc")`.
fn digest(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn base36(mut v: u64, digits: usize) -> String {
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = vec![b'0'; digits];
    for c in s.iter_mut().rev() {
        *c = alphabet[(v % 36) as usize];
        v /= 36;
    }
    String::from_utf8(s).expect("ascii")
}

/// A link name of at most 15 characters for `parts` (lab, owner, index):
/// `lab-owner-index` when it fits (readable), else a prefix of it and a
/// hash of all parts (unique in practice; collisions within a lab are
/// refused by validation, and deploy refuses links it did not make).
pub fn link_name(lab: &str, owner: &str, index: usize) -> String {
    let plain = format!("{lab}-{owner}-{index}");
    if plain.len() <= 15 {
        return plain;
    }
    let hash = base36(digest(&[lab, owner, &index.to_string()]), 5);
    let prefix: String = format!("{lab}-{owner}").chars().take(9).collect();
    format!("{prefix}-{hash}")
}

/// A locally administered unicast MAC derived from the names, stable
/// across deployments.
pub fn derived_mac(lab: &str, node: &str, iface: &str) -> [u8; 6] {
    let h = digest(&[lab, node, iface]).to_be_bytes();
    [0x02, h[0], h[1], h[2], h[3], h[4]]
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
