//! The daemon's [`Fabric`]: what the CNM layer (the Docker driver) asks for,
//! built in this process over [`Control`] and the kernel.
//!
//! - A network is a bridge domain named `dk-<first 12 characters of its id>`
//!   (kind `vlan` puts its ports in access mode on that VLAN; kind `vxlan`
//!   adds a `vxlan` port `vx-<12>` carrying the network's VNI from
//!   `rvswitch.vtep_local` to the `rvswitch.vtep_remotes`: the same network
//!   created on every host with the same VNI spans them),
//!   with the switch's gateway on the network's IPAM gateway addresses
//!   unless the network is `--internal` (see [`gateway`]).
//! - An endpoint is, by default (`rvswitch.endpoint=tap`), a persistent
//!   TAP with vnet headers (`rvc<tag>`, port `ep-<tag>`): it gets the
//!   endpoint's MAC and the network's MTU, Docker moves and renames it into
//!   the container, and TCP super-frames (TSO) cross the switch whole, so
//!   containers talk at kernel speed. The TAP outlives the daemon's file
//!   descriptor (`TUNSETPERSIST`); on Join its sandbox key is stored with
//!   the port, and after a restart the port finds the TAP again inside the
//!   sandbox by its MAC. With `afxdp` or `afpacket` it is a veth pair: the
//!   host end (`rvh<tag>`) is attached to the network's domain as port
//!   `ep-<tag>`, the sandbox end (`rvc<tag>`) moves into the container
//!   (for AF_XDP with transmit checksum offload off: AF_XDP hands frames
//!   over without finishing a partial checksum).
//!
//! Owns: the mapping from networks/endpoints to domains, ports and links,
//! and idempotence (every call checks what exists first). Never: CNM state
//! (the driver's) or the switch's own stored state (`Control`'s).

use std::sync::Arc;

use rvs_cnm::docker::options::{is_global, parent_of, parent_port};
use rvs_cnm::fabric::{EndpointPlumbing, Fabric, FabricError};
use rvs_cnm::model::{Endpoint, Network, NetworkKind, PortType, derive_mac};
use rvs_cnm::prefix::Cidr;
use rvs_drivers::netlink::{Netlink, NetlinkError};
use serde_json::json;

use crate::api::{CreatePort, DomainRecord, GatewaySpec, VlanSpec};
use crate::daemon::control::{Control, ControlError};
use crate::spec::PortKind;
use rvs_switch::PortSecurity;

/// The bridge domain of a network: `dk-` and the first 12 characters of
/// its id (Docker's short id), unless the network says otherwise
/// ([`DOMAIN_OPTION`], see [`network_domain`]).
pub fn domain_name(network_id: &str) -> String {
    format!("dk-{}", network_id.chars().take(12).collect::<String>())
}

/// Network option naming its bridge domain, set by the API for networks
/// whose id (their name) the first 12 characters do not tell apart; not a
/// Docker option (the driver refuses unknown `rvswitch.*` options).
/// Networks stored before it existed have none and keep `dk-<12>`.
pub const DOMAIN_OPTION: &str = "rvswitch.domain";

/// The bridge domain of a network made through the API with name `name`:
/// `dk-<name>` up to 12 characters; a longer name, whose first 12
/// characters other names may share, adds a hash of the whole name,
/// `dk-<first 12>-<8 hex>`, stable across versions and hosts.
pub fn api_domain_name(name: &str) -> String {
    if name.chars().count() <= 12 {
        return domain_name(name);
    }
    let h = rvs_cnm::model::stable_hash(&[b"api-network\0", name.as_bytes()]);
    format!("{}-{:08x}", domain_name(name), h as u32)
}

/// The bridge domain of network `n`: its own (`dk-<id>`), or, for a
/// network on a host NIC (`rvswitch.parent`), the one domain of every
/// network on that NIC, `dk-up-<iface>`, whose uplink port is a trunk of
/// their VLANs (networks on one NIC are kept apart by VLAN, as on the
/// LAN).
pub fn network_domain(n: &Network) -> String {
    match parent_of(n) {
        Some(p) => format!("dk-{}", crate::daemon::parent::uplink_port_name(&p.iface)),
        None => n
            .options
            .get(DOMAIN_OPTION)
            .cloned()
            .unwrap_or_else(|| domain_name(&n.id)),
    }
}

/// The switch's gateway for a network: its subnets' gateway addresses (from
/// IPAM), a MAC derived from the network id, the network's VLAN and MTU,
/// routing to the other routing networks as the network says. Internal
/// networks, networks without a gateway address, and networks on a host
/// NIC (whose gateway is the LAN's router, as with macvlan) get none.
pub fn gateway(n: &Network) -> Option<GatewaySpec> {
    if n.internal || parent_of(n).is_some() {
        return None;
    }
    let addresses: Vec<String> = n
        .subnets
        .iter()
        .filter_map(|s| s.gateway.map(|g| format!("{g}/{}", s.pool.len)))
        .collect();
    if addresses.is_empty() {
        return None;
    }
    Some(GatewaySpec {
        mac: Some(derive_mac(&format!("gateway:{}", n.id), 0)),
        addresses,
        vid: match n.kind {
            NetworkKind::Vlan { vid } => vid,
            _ => 1,
        },
        // The router's limit; larger network MTUs route at most this.
        mtu: Some(n.mtu.min(GATEWAY_MTU_MAX) as u16),
        table: 0,
        routing: n.routing,
        external: false,
    })
}

// ---- external connectivity --------------------------------------------------
//
// The uplink: a veth pair between the host's kernel (`rvsup0`, 169.254.77.1)
// and the switch (`rvsup1`, an AF_PACKET port of bridge domain `dk-uplink`,
// whose gateway 169.254.77.2 is *external*: every network routes to it,
// isolated ones included). The switch's default route points at the host;
// the host routes each network's subnets back through the uplink and
// masquerades what leaves for elsewhere, like Docker's bridge driver.

/// The uplink's bridge domain and port.
pub const UPLINK_DOMAIN: &str = "dk-uplink";
const UPLINK_PORT: &str = "uplink";

/// The uplink of one driver: its two links and transit addresses. The
/// driver `rvswitch` gets `rvsup0`/`rvsup1` and 169.254.77.0/30; another
/// driver name (several daemons on one host) gets its own, from a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    pub host_if: String,
    pub switch_if: String,
    pub host_ip: std::net::Ipv4Addr,
    pub gw_ip: std::net::Ipv4Addr,
}

impl Uplink {
    pub fn for_driver(driver: &str) -> Uplink {
        let (tag, third) = if driver == "rvswitch" {
            ("rvsup".to_string(), 77u8)
        } else {
            let h = derive_mac(&format!("uplink:{driver}"), 0).0;
            (
                format!("rvu{:02x}{:02x}", h[4], h[5]),
                // 169.254.0.0/24 and .255.0/24 are reserved.
                1 + h[3] % 253,
            )
        };
        let base = h4(third);
        Uplink {
            host_if: format!("{tag}0"),
            switch_if: format!("{tag}1"),
            host_ip: std::net::Ipv4Addr::from(base | 1),
            gw_ip: std::net::Ipv4Addr::from(base | 2),
        }
    }
}

/// 169.254.`third`.0 as a number.
const fn h4(third: u8) -> u32 {
    (169 << 24) | (254 << 16) | ((third as u32) << 8)
}

/// `iptables -t nat … POSTROUTING -s SUBNET ! -o UPLINK -j MASQUERADE`:
/// `-C` checks, `-A` adds, `-D` deletes. Best effort: without iptables the
/// host still routes, without address translation.
fn masquerade(op: &str, subnet: &str, uplink: &str) -> bool {
    std::process::Command::new("iptables")
        .args(["-w", "-t", "nat", op, "POSTROUTING", "-s", subnet])
        .args(["!", "-o", uplink, "-j", "MASQUERADE"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Largest MTU the switch's gateway takes.
const GATEWAY_MTU_MAX: u32 = 9216;

/// The CNM layer's view of the switch.
pub struct SwitchFabric {
    control: Arc<Control>,
    uplink: Uplink,
    /// The alias on every link this fabric makes (`rvswitch:<driver>`): a
    /// restart removes links with it that no stored endpoint holds (left
    /// by a call that never committed).
    owner: String,
    publisher: crate::publish::Publisher,
    /// The cluster this host belongs to (`rvswitch daemon --store`): global
    /// networks take their VNI, subnet and addresses from it, and their
    /// endpoints are published there.
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

fn failed(action: impl Into<String>, reason: impl std::fmt::Display) -> FabricError {
    FabricError::Failed {
        action: action.into(),
        reason: reason.to_string(),
    }
}

/// A cluster operation's error: [`FabricError::Unavailable`] when the
/// store did not answer (so the API says 503, not 409),
/// [`FabricError::Store`] when it answered with an error of its own (an
/// authentication or permission error: 500), else [`FabricError::Failed`]
/// (the cluster refused: 409).
fn cluster_failed(action: impl Into<String>, e: crate::cluster::ClusterError) -> FabricError {
    use crate::cluster::ClusterError;
    let (action, reason) = (action.into(), e.to_string());
    match e {
        // Nothing changed; the same call may succeed later (503).
        ClusterError::Unavailable(_) | ClusterError::Contended(_) => {
            FabricError::Unavailable { action, reason }
        }
        // The store's fault or this host's setup, not the request (500).
        ClusterError::Etcd(_) | ClusterError::Corrupt(_) => FabricError::Store { action, reason },
        // The request itself (400).
        ClusterError::Invalid(_) => FabricError::Unsupported(format!("{action}: {reason}")),
        // The cluster's state refuses it: another host's subnet, VNI or
        // address, or none left (409).
        _ => FabricError::Failed { action, reason },
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn netlink(action: &str) -> Result<Netlink, FabricError> {
    Netlink::new().map_err(|e| failed(action, e))
}

/// Whether a link called `name` exists in the daemon's namespace.
fn exists(nl: &Netlink, action: &str, name: &str) -> Result<bool, FabricError> {
    nl.find_link(name)
        .map(|l| l.is_some())
        .map_err(|e| failed(action, e))
}

/// Delete a link if it is (still) there.
fn delete_link(nl: &Netlink, action: &str, name: &str) -> Result<(), FabricError> {
    match nl.delete_link(name) {
        Ok(()) | Err(NetlinkError::NoSuchLink { .. }) => Ok(()),
        Err(e) if !exists(nl, action, name)? => {
            tracing::debug!(link = name, error = %e, "link went away while being deleted");
            Ok(())
        }
        Err(e) => Err(failed(action, e)),
    }
}

/// The VTEP port of a VXLAN network: `vx-` and what follows `dk-` in its
/// domain's name (`vx-<first 12 of the id>`, or the API's hashed name).
pub fn vtep_port_name(n: &Network) -> String {
    let domain = network_domain(n);
    format!("vx-{}", domain.strip_prefix("dk-").unwrap_or(&domain))
}

impl SwitchFabric {
    pub fn new(control: Arc<Control>) -> SwitchFabric {
        Self::with_uplink(control, Uplink::for_driver("rvswitch"))
    }

    pub fn with_uplink(control: Arc<Control>, uplink: Uplink) -> SwitchFabric {
        SwitchFabric {
            control,
            uplink,
            owner: "rvswitch:rvswitch".into(),
            publisher: Default::default(),
            cluster: None,
        }
    }

    /// Take global networks from `cluster`.
    pub fn with_cluster(mut self, cluster: Option<Arc<crate::cluster::Cluster>>) -> SwitchFabric {
        self.cluster = cluster;
        self
    }

    /// The cluster, for a global network (None for a local one).
    fn cluster_of(&self, n: &Network) -> Option<&crate::cluster::Cluster> {
        self.cluster.as_deref().filter(|_| is_global(n))
    }

    /// Mark the links this fabric makes as driver `driver`'s.
    pub fn owned_by(mut self, driver: &str) -> SwitchFabric {
        self.owner = format!("rvswitch:{driver}");
        self
    }

    /// Remove links marked as this fabric's that none of `endpoints` holds
    /// in the daemon's namespace: what a driver call made before the daemon
    /// died (or before its unit of work failed) without committing it.
    /// Returns their names.
    pub fn sweep_leftovers(&self, endpoints: &[Endpoint]) -> Result<Vec<String>, FabricError> {
        let action = "remove links no endpoint holds";
        let nl = netlink(action)?;
        let held: std::collections::BTreeSet<&str> = endpoints
            .iter()
            .flat_map(|e| [Some(&e.ifaces.sandbox), e.ifaces.host.as_ref()])
            .flatten()
            .map(String::as_str)
            .collect();
        let mut gone = Vec::new();
        for l in nl.links().map_err(|e| failed(action, e))? {
            if l.alias.as_deref() == Some(self.owner.as_str()) && !held.contains(l.name.as_str()) {
                tracing::info!(link = %l.name, "removing a link no stored endpoint holds (its call never committed)");
                delete_link(&nl, action, &l.name)?;
                gone.push(l.name);
            }
        }
        Ok(gone)
    }

    /// Make the uplink (links, port, domain, default route) if any of it is
    /// missing.
    fn ensure_uplink(&self, action: &str) -> Result<(), FabricError> {
        let u = &self.uplink;
        let nl = netlink(action)?;
        if !exists(&nl, action, &u.host_if)? {
            delete_link(&nl, action, &u.switch_if)?;
            nl.create_veth(&u.host_if, &u.switch_if)
                .map_err(|e| failed(action, e))?;
        }
        let host = std::net::IpAddr::V4(u.host_ip);
        let has = nl
            .addresses(&u.host_if)
            .map_err(|e| failed(action, e))?
            .contains(&(host, 30));
        if !has {
            nl.add_address(&u.host_if, host, 30)
                .map_err(|e| failed(action, e))?;
        }
        for l in [&u.host_if, &u.switch_if] {
            nl.set_up(l).map_err(|e| failed(action, e))?;
        }
        // Written only when off: in a managed Docker plugin /proc/sys is
        // read-only, and the host (Docker) has usually turned it on.
        const FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
        if std::fs::read_to_string(FORWARD)
            .map(|v| v.trim() != "1")
            .unwrap_or(true)
        {
            std::fs::write(FORWARD, "1\n")
                .map_err(|e| failed(action, format!("enable IPv4 forwarding: {e}")))?;
        }
        match self.control.get_domain(UPLINK_DOMAIN) {
            Ok(_) => {}
            Err(ControlError::NotFound(_)) => {
                let mut rec = DomainRecord::named(UPLINK_DOMAIN);
                rec.gateway = Some(GatewaySpec {
                    mac: Some(derive_mac("uplink", 0)),
                    addresses: vec![format!("{}/30", u.gw_ip)],
                    vid: 1,
                    mtu: None,
                    table: 0,
                    routing: false,
                    external: true,
                });
                self.control
                    .create_domain(rec)
                    .map_err(|e| failed(action, e))?;
            }
            Err(e) => return Err(failed(action, e)),
        }
        match self.control.get_port(UPLINK_PORT) {
            Ok(p) if p.error.is_none() => {}
            other => {
                if other.is_ok() {
                    self.control
                        .delete_port(UPLINK_PORT)
                        .map_err(|e| failed(action, e))?;
                }
                let mut req = CreatePort::new(UPLINK_PORT, PortKind::Afpacket, UPLINK_DOMAIN);
                req.iface = Some(u.switch_if.clone());
                self.control
                    .create_port(req)
                    .map_err(|e| failed(action, e))?;
            }
        }
        let default = crate::daemon::model::RouteRecord {
            table: 0,
            prefix: "0.0.0.0/0".into(),
            via: Some(host),
            domain: UPLINK_DOMAIN.into(),
        };
        match self.control.add_route(default) {
            Ok(_) | Err(ControlError::Conflict(_)) => Ok(()),
            Err(e) => Err(failed(action, e)),
        }
    }

    /// Remove the uplink (route, port, domain, links) once no network but
    /// `except` needs it: nothing of it stays on a host without rvswitch
    /// networks. IPv4 forwarding stays on, as Docker leaves it (other
    /// bridges and containers on the host may rely on it).
    fn drop_uplink_unless_used(&self, action: &str, except: &str) -> Result<(), FabricError> {
        let used = self
            .control
            .list_domains()
            .map_err(|e| failed(action, e))?
            .iter()
            .any(|d| {
                d.record.name != except
                    && d.record.name != UPLINK_DOMAIN
                    && d.record.gateway.as_ref().is_some_and(|g| !g.external)
            });
        if used {
            return Ok(());
        }
        match self.control.delete_route(0, "0.0.0.0/0") {
            Ok(()) | Err(ControlError::NotFound(_)) => {}
            Err(e) => return Err(failed(action, e)),
        }
        match self.control.delete_port(UPLINK_PORT) {
            Ok(()) | Err(ControlError::NotFound(_)) => {}
            Err(e) => return Err(failed(action, e)),
        }
        match self.control.delete_domain(UPLINK_DOMAIN) {
            Ok(()) | Err(ControlError::NotFound(_)) => {}
            Err(e) => return Err(failed(action, e)),
        }
        let nl = netlink(action)?;
        delete_link(&nl, action, &self.uplink.host_if)?;
        delete_link(&nl, action, &self.uplink.switch_if)
    }

    /// The host routes `n`'s IPv4 subnets through the uplink and
    /// masquerades them (or stops, with `add` false).
    fn host_routes(&self, action: &str, n: &Network, add: bool) -> Result<(), FabricError> {
        let u = &self.uplink;
        let nl = netlink(action)?;
        for s in n.subnets.iter().filter(|s| s.pool.addr.is_ipv4()) {
            let r = rvs_drivers::netlink::Route {
                dst: s.pool.addr,
                prefix: s.pool.len,
                via: Some(std::net::IpAddr::V4(u.gw_ip)),
                dev: Some(u.host_if.clone()),
            };
            let subnet = s.pool.to_string();
            if add {
                match nl.add_route(&r) {
                    Ok(()) => {}
                    Err(e) if e.errno() == Some(libc_eexist()) => {}
                    Err(e) => return Err(failed(action, e)),
                }
                if !masquerade("-C", &subnet, &u.host_if) && !masquerade("-A", &subnet, &u.host_if)
                {
                    tracing::warn!(%subnet, "no masquerade rule (iptables missing or refused): the host routes this network without address translation");
                }
            } else {
                let _ = nl.del_route(&r);
                while masquerade("-D", &subnet, &u.host_if) {}
            }
        }
        Ok(())
    }

    /// A VXLAN network's VTEP port in its domain (none for other kinds).
    fn ensure_vtep(&self, action: &str, n: &Network) -> Result<(), FabricError> {
        let NetworkKind::Vxlan { vni } = n.kind else {
            return Ok(());
        };
        let name = vtep_port_name(n);
        match self.control.get_port(&name) {
            Ok(p) if p.error.is_none() => return Ok(()),
            Ok(_) => self
                .control
                .delete_port(&name)
                .map_err(|x| failed(action, x))?,
            Err(ControlError::NotFound(_)) => {}
            Err(x) => return Err(failed(action, x)),
        }
        let local = n
            .options
            .get("rvswitch.vtep_local")
            .ok_or_else(|| failed(action, "rvswitch.vtep_local is not set"))?;
        let remotes: Vec<&str> = n
            .options
            .get("rvswitch.vtep_remotes")
            .map(|r| {
                r.split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut options = json!({ "local": local, "vni": vni, "remotes": remotes });
        if let Some(p) = n.options.get("rvswitch.vtep_port") {
            options["udp_port"] = json!(p.parse::<u16>().unwrap_or(4789));
        }
        // The underlay carries the network's MTU plus 50 bytes of headers.
        options["underlay_mtu"] = json!(n.mtu + 50);
        let mut req = CreatePort::new(&name, PortKind::Vxlan, &network_domain(n));
        req.options = serde_json::from_value(options)
            .map_err(|x| failed(action, format!("VTEP port options: {x}")))?;
        self.control
            .create_port(req)
            .map(drop)
            .map_err(|x| failed(action, x))
    }

    /// Publish an endpoint of a global network to the cluster (the other
    /// hosts program it as a remote).
    fn publish_endpoint(&self, action: &str, n: &Network, e: &Endpoint) -> Result<(), FabricError> {
        match self.cluster_of(n) {
            Some(c) => c.publish(n, e).map_err(|x| cluster_failed(action, x)),
            None => Ok(()),
        }
    }

    /// The sandbox end's settings, applied while it is still in our
    /// namespace (it keeps them when Docker moves it).
    fn configure_sandbox_end(
        nl: &Netlink,
        action: &str,
        n: &Network,
        e: &Endpoint,
    ) -> Result<(), FabricError> {
        let sb = &e.ifaces.sandbox;
        nl.set_mac(sb, e.mac.0).map_err(|x| failed(action, x))?;
        nl.set_mtu(sb, n.mtu).map_err(|x| failed(action, x))?;
        if n.port_type == PortType::Afxdp {
            rvs_drivers::ethtool::set_tx_checksum(sb, false)
                .map_err(|x| failed(action, format!("turn off tx checksum offload: {x}")))?;
        }
        nl.set_up(sb).map_err(|x| failed(action, x))
    }

    /// Create the veth pair if the host end is missing. Returns whether it
    /// was created by this call (and must be removed if a later step fails).
    fn ensure_veth(
        nl: &Netlink,
        action: &str,
        n: &Network,
        e: &Endpoint,
        host: &str,
        owner: &str,
    ) -> Result<bool, FabricError> {
        let sb = &e.ifaces.sandbox;
        let created = if exists(nl, action, host)? {
            // Joined endpoints have their sandbox end in the container,
            // renamed: leave it alone. Only a not yet moved one is checked.
            if exists(nl, action, sb)? {
                Self::configure_sandbox_end(nl, action, n, e)?;
            }
            false
        } else {
            // A sandbox end without its host end is a leftover of something
            // else (a veth always goes with its peer): make room.
            delete_link(nl, action, sb)?;
            nl.create_veth(host, sb).map_err(|x| failed(action, x))?;
            true
        };
        let set = || -> Result<(), FabricError> {
            if created {
                for end in [host, sb.as_str()] {
                    nl.set_alias(end, owner).map_err(|x| failed(action, x))?;
                }
                Self::configure_sandbox_end(nl, action, n, e)?;
            }
            nl.set_mtu(host, n.mtu).map_err(|x| failed(action, x))?;
            nl.set_up(host).map_err(|x| failed(action, x))
        };
        if let Err(err) = set() {
            if created {
                let _ = delete_link(nl, action, host);
            }
            return Err(err);
        }
        Ok(created)
    }

    /// Attach the endpoint's interface (`iface`: the host end of its veth,
    /// or its TAP) as port `e.ifaces.port` of the network's domain, unless
    /// it already is (a port that failed to open is made again).
    fn ensure_port(
        &self,
        action: &str,
        n: &Network,
        e: &Endpoint,
        iface: &str,
    ) -> Result<(), FabricError> {
        let name = &e.ifaces.port;
        let domain = network_domain(n);
        let kind = port_kind(n.port_type);
        match self.control.get_port(name) {
            Ok(p)
                if p.error.is_none()
                    && p.spec.kind == kind
                    && p.spec.iface.as_deref() == Some(iface)
                    && p.config.domain == domain =>
            {
                return Ok(());
            }
            Ok(p) => {
                tracing::info!(port = %name, state = %p.state, "port is not as the endpoint needs: making it again");
                self.control
                    .delete_port(name)
                    .map_err(|x| failed(action, x))?;
            }
            Err(ControlError::NotFound(_)) => {}
            Err(x) => return Err(failed(action, x)),
        }
        let vlan = VlanSpec::Access {
            pvid: match n.kind {
                NetworkKind::Vlan { vid } => vid,
                _ => 1,
            },
        };
        // Port security (on unless `rvswitch.port_security=false`): only
        // the endpoint's MAC and addresses may send from its port.
        let security = n.port_security.then(|| {
            let ips = [e.ipv4, e.ipv6]
                .into_iter()
                .flatten()
                .map(|c| c.addr)
                .collect();
            PortSecurity { mac: e.mac, ips }
        });
        let mut options = std::collections::BTreeMap::new();
        if kind == PortKind::Tap {
            // Persistent, so the container keeps its interface while the
            // daemon restarts; found again in its sandbox (see `join`).
            options.insert("persist".into(), json!(true));
            options.insert("alias".into(), json!(self.owner));
            options.insert("mac".into(), json!(e.mac.to_string()));
            options.insert("mtu".into(), json!(n.mtu));
            if let Some(key) = &e.sandbox {
                options.insert("netns".into(), json!(key));
            }
        }
        let mut req = CreatePort::new(name, kind, &domain);
        req.iface = Some(iface.to_string());
        req.vlan = vlan;
        req.security = security;
        req.options = options;
        self.control
            .create_port(req)
            .map(drop)
            .map_err(|x| failed(action, x))
    }
}

impl SwitchFabric {
    /// A network on a host NIC: the NIC's domain (made with its first
    /// network) and the network's VLAN on the NIC's uplink port, both in
    /// the daemon's desired state (`Control::attach_parent`), so a restart
    /// brings them back by the one reconcile. A replay finds them there.
    fn create_parent_network(&self, n: &Network) -> Result<(), FabricError> {
        let p = parent_of(n).expect("a parent network");
        let domain = network_domain(n);
        let action = format!("put network {} on parent {p}", short(&n.id));
        let made = match self.control.get_domain(&domain) {
            Ok(_) => false,
            Err(ControlError::NotFound(_)) => {
                self.control
                    .create_domain(DomainRecord::named(&domain))
                    .map_err(|e| failed(&action, e))?;
                true
            }
            Err(e) => return Err(failed(&action, e)),
        };
        let have = self
            .control
            .list_parents(&domain)
            .map_err(|e| failed(&action, e))?;
        if have.iter().any(|v| v.parent == p.to_string()) {
            return Ok(());
        }
        let mut req = crate::api::ParentRequest::new(&p.to_string());
        req.kind = Some(port_kind(parent_port(n)));
        if let Err(e) = self.control.attach_parent(&domain, req) {
            if made {
                let _ = self.control.delete_domain(&domain);
            }
            return Err(parent_error(&action, e));
        }
        Ok(())
    }

    /// Take the network's VLAN off its NIC's uplink; the NIC's last
    /// network takes the uplink port and the domain with it.
    fn delete_parent_network(&self, n: &Network) -> Result<(), FabricError> {
        let p = parent_of(n).expect("a parent network");
        let domain = network_domain(n);
        let action = format!("take network {} off parent {p}", short(&n.id));
        match self.control.detach_parent(&domain, &p.to_string()) {
            Ok(()) | Err(ControlError::NotFound(_)) => {}
            Err(e) => return Err(failed(&action, e)),
        }
        match self.control.get_domain(&domain) {
            Ok(d) if d.ports.is_empty() => match self.control.delete_domain(&domain) {
                Ok(()) | Err(ControlError::NotFound(_)) => Ok(()),
                Err(e) => Err(failed(&action, e)),
            },
            Ok(_) | Err(ControlError::NotFound(_)) => Ok(()),
            Err(e) => Err(failed(&action, e)),
        }
    }
}

/// A refused parent is the request's fault (a missing or busy interface,
/// a VLAN taken): Docker shows the reason as it is.
fn parent_error(action: &str, e: ControlError) -> FabricError {
    match e {
        ControlError::BadRequest(m) | ControlError::NotFound(m) | ControlError::Conflict(m) => {
            FabricError::Unsupported(m)
        }
        e => failed(action, e),
    }
}

impl Fabric for SwitchFabric {
    fn resync(&self, endpoints: &[Endpoint]) {
        if let Err(e) = self.control.resync() {
            tracing::error!(error = %e, "the data plane could not be brought back to the stored state everywhere");
        }
        if let Err(e) = self.sweep_leftovers(endpoints) {
            tracing::error!(error = %e, "links left by the failed call were not all removed");
        }
    }

    fn resolve_network(&self, n: &mut Network) -> Result<(), FabricError> {
        if !is_global(n) {
            return Ok(());
        }
        let Some(c) = &self.cluster else {
            return Err(FabricError::Unsupported(
                "rvswitch.scope=global needs a cluster: start the daemon with --store etcd://..."
                    .into(),
            ));
        };
        c.resolve_network(n)
            .map_err(|e| cluster_failed(format!("global network {}", n.name), e))
    }

    fn claim_address(
        &self,
        n: &Network,
        id: &str,
        want: Option<Cidr>,
    ) -> Result<Option<Cidr>, FabricError> {
        match self.cluster_of(n) {
            None => Ok(want),
            Some(c) => c.claim_address(n, id, want).map_err(|e| {
                cluster_failed(
                    format!(
                        "address of endpoint {} on global network {}",
                        short(id),
                        n.name
                    ),
                    e,
                )
            }),
        }
    }

    fn release_address(&self, n: &Network, id: &str, addr: Cidr) {
        if let Some(c) = self.cluster_of(n)
            && let Err(e) = c.release_address(n, id, addr.addr)
        {
            tracing::warn!(network = %n.name, address = %addr.addr, error = %e, "address not given back to the cluster");
        }
    }

    fn create_network(&self, n: &Network) -> Result<(), FabricError> {
        if parent_of(n).is_some() {
            return self.create_parent_network(n);
        }
        let name = network_domain(n);
        let action = format!("create bridge domain {name} for network {}", short(&n.id));
        match self.control.get_domain(&name) {
            Ok(_) => {
                // Made before (a replay at start): the uplink and the host's
                // routes may not have survived a reboot.
                if gateway(n).is_some() {
                    self.ensure_uplink(&action)?;
                    self.host_routes(&action, n, true)?;
                }
                return Ok(());
            }
            Err(ControlError::NotFound(_)) => {}
            Err(e) => return Err(failed(action, e)),
        }
        let mut rec = DomainRecord::named(&name);
        rec.gateway = gateway(n);
        let external = rec.gateway.is_some();
        if external {
            self.ensure_uplink(&action)?;
        }
        self.control
            .create_domain(rec)
            .map(drop)
            .map_err(|e| failed(&action, e))?;
        let rest = self.ensure_vtep(&action, n).and_then(|()| match external {
            true => self.host_routes(&action, n, true),
            false => Ok(()),
        });
        if let Err(e) = rest {
            let _ = self.control.delete_domain(&name);
            return Err(e);
        }
        Ok(())
    }

    fn delete_network(&self, n: &Network) -> Result<(), FabricError> {
        if parent_of(n).is_some() {
            return self.delete_parent_network(n);
        }
        let name = network_domain(n);
        self.host_routes(&format!("delete network {}", short(&n.id)), n, false)?;
        if matches!(n.kind, NetworkKind::Vxlan { .. }) {
            match self.control.delete_port(&vtep_port_name(n)) {
                Ok(()) | Err(ControlError::NotFound(_)) => {}
                Err(e) => {
                    return Err(failed(
                        format!("delete the VTEP port of network {}", short(&n.id)),
                        e,
                    ));
                }
            }
        }
        match self.control.delete_domain(&name) {
            Ok(()) | Err(ControlError::NotFound(_)) => {}
            Err(e) => {
                return Err(failed(
                    format!("delete bridge domain {name} of network {}", short(&n.id)),
                    e,
                ));
            }
        }
        if gateway(n).is_some() {
            self.drop_uplink_unless_used(&format!("delete network {}", short(&n.id)), &name)?;
        }
        Ok(())
    }

    fn create_endpoint(&self, n: &Network, e: &Endpoint) -> Result<EndpointPlumbing, FabricError> {
        let action = format!("create endpoint {}", short(&e.id));
        if self.control.get_domain(&network_domain(n)).is_err() {
            return Err(failed(
                &action,
                format!(
                    "bridge domain {} of network {} does not exist",
                    network_domain(n),
                    short(&n.id)
                ),
            ));
        }
        if n.port_type == PortType::Tap {
            // The switch makes the TAP (or finds it again) itself.
            self.ensure_port(&action, n, e, &e.ifaces.sandbox)?;
            self.publish_endpoint(&action, n, e)?;
            return Ok(EndpointPlumbing {
                ifaces: e.ifaces.clone(),
            });
        }
        let host = e
            .ifaces
            .host
            .as_deref()
            .ok_or_else(|| failed(&action, "the endpoint has no host interface name"))?;
        let nl = netlink(&action)?;
        let created = Self::ensure_veth(&nl, &action, n, e, host, &self.owner)?;
        if let Err(err) = self
            .ensure_port(&action, n, e, host)
            .and_then(|()| self.publish_endpoint(&action, n, e))
        {
            if created {
                let _ = delete_link(&nl, &action, host);
            }
            return Err(err);
        }
        Ok(EndpointPlumbing {
            ifaces: e.ifaces.clone(),
        })
    }

    fn delete_endpoint(&self, n: &Network, e: &Endpoint) -> Result<(), FabricError> {
        let action = format!("delete endpoint {}", short(&e.id));
        if let Some(c) = self.cluster_of(n) {
            c.withdraw(n, e).map_err(|x| cluster_failed(&action, x))?;
            if let Some(a) = e.ipv4 {
                c.release_address(n, &e.id, a.addr)
                    .map_err(|x| cluster_failed(&action, x))?;
            }
        }
        // A TAP port takes its device along when it leaves the switch.
        match self.control.delete_port(&e.ifaces.port) {
            Ok(()) | Err(ControlError::NotFound(_)) => {}
            Err(x) => return Err(failed(&action, x)),
        }
        let nl = netlink(&action)?;
        // Deleting the host end takes the peer along, wherever it is; a
        // sandbox end (or a TAP whose port had failed) back in our
        // namespace is removed too.
        if let Some(host) = &e.ifaces.host {
            delete_link(&nl, &action, host)?;
        }
        delete_link(&nl, &action, &e.ifaces.sandbox)
    }

    /// `docker run -p`: a TCP or UDP proxy per published port on the host
    /// (IPv4 and IPv6), to the container's IPv4 address (reached over the
    /// uplink).
    fn publish(
        &self,
        _n: &Network,
        e: &Endpoint,
    ) -> Result<Vec<rvs_cnm::model::PortBinding>, FabricError> {
        let target = e.ipv4.map(|c| c.addr);
        self.publisher
            .set(&e.id, target, &e.published)
            .map_err(|x| failed(format!("publish ports of endpoint {}", short(&e.id)), x))
    }

    /// Docker moves and renames the sandbox end itself after Join. A TAP
    /// port remembers the sandbox, to find its device there after a restart.
    fn join(&self, n: &Network, e: &Endpoint, sandbox_key: &str) -> Result<(), FabricError> {
        if n.port_type != PortType::Tap {
            return Ok(());
        }
        self.control
            .remember_port_option(&e.ifaces.port, "netns", Some(json!(sandbox_key)))
            .map_err(|x| failed(format!("join endpoint {}", short(&e.id)), x))
    }

    /// Docker moves the sandbox end back to our namespace on Leave; it is
    /// removed with the endpoint.
    fn leave(&self, n: &Network, e: &Endpoint) -> Result<(), FabricError> {
        if n.port_type != PortType::Tap {
            return Ok(());
        }
        match self
            .control
            .remember_port_option(&e.ifaces.port, "netns", None)
        {
            Ok(()) | Err(ControlError::NotFound(_)) => Ok(()),
            Err(x) => Err(failed(format!("leave endpoint {}", short(&e.id)), x)),
        }
    }
}

/// The switch port kind of an endpoint type.
fn port_kind(t: PortType) -> PortKind {
    match t {
        PortType::Tap => PortKind::Tap,
        PortType::Afxdp => PortKind::Afxdp,
        PortType::Afpacket => PortKind::Afpacket,
    }
}

/// EEXIST, without a libc dependency here.
const fn libc_eexist() -> i32 {
    17
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_errors_keep_their_kind() {
        use crate::cluster::ClusterError;
        let kind = |e| match cluster_failed("create", e) {
            FabricError::Unavailable { .. } => "unavailable",
            FabricError::Store { .. } => "store",
            FabricError::Failed { .. } => "failed",
            FabricError::Unsupported(_) => "unsupported",
        };
        assert_eq!(
            kind(ClusterError::Unavailable("no quorum".into())),
            "unavailable"
        );
        let auth = etcd_client::Error::InvalidArgs("authentication failed".into());
        assert_eq!(kind(ClusterError::Etcd(auth)), "store");
        assert_eq!(kind(ClusterError::Conflict("held by b".into())), "failed");
        assert_eq!(kind(ClusterError::Exhausted("no VNI".into())), "failed");
        assert_eq!(kind(ClusterError::Invalid("a VLAN".into())), "unsupported");
        assert_eq!(
            kind(ClusterError::Contended("no win".into())),
            "unavailable"
        );
        assert_eq!(kind(ClusterError::Corrupt("record".into())), "store");
    }
    use rvs_cnm::model::{DEFAULT_MTU, Subnet};

    fn net(internal: bool) -> Network {
        Network {
            id: "4dc7741212d54dcf51f9b8aa00f8c6f8137f8c22b4b7878f9b237540be210f78".into(),
            name: "tn1".into(),
            kind: NetworkKind::Vlan { vid: 10 },
            subnets: vec![
                Subnet {
                    pool: "10.231.0.0/24".parse().unwrap(),
                    gateway: Some("10.231.0.1".parse().unwrap()),
                    address_space: "LocalDefault".into(),
                },
                Subnet {
                    pool: "fd00:231::/64".parse().unwrap(),
                    gateway: Some("fd00:231::1".parse().unwrap()),
                    address_space: "LocalDefault".into(),
                },
            ],
            internal,
            enable_ipv6: true,
            mtu: DEFAULT_MTU,
            port_type: PortType::Afxdp,
            port_security: true,
            routing: false,
            options: Default::default(),
            labels: Default::default(),
        }
    }

    #[test]
    fn domain_names_are_valid_and_short() {
        let n = net(false);
        assert_eq!(domain_name(&n.id), "dk-4dc7741212d5");
        crate::spec::check_name("bridge domain", &domain_name(&n.id)).unwrap();
        assert_eq!(domain_name("lab"), "dk-lab");
    }

    #[test]
    fn api_networks_sharing_twelve_characters_get_their_own_domains() {
        // Up to 12 characters: as before.
        assert_eq!(api_domain_name("lab"), "dk-lab");
        assert_eq!(api_domain_name("abcdefghijkl"), "dk-abcdefghijkl");
        let a = api_domain_name("research-net-a");
        let b = api_domain_name("research-net-b");
        assert_ne!(a, b);
        assert!(a.starts_with("dk-research-net-"), "{a}");
        // Stable: the same name gives the same domain on every host and
        // after a restart.
        assert_eq!(a, api_domain_name("research-net-a"));
        assert_eq!(a.len(), "dk-".len() + 12 + 1 + 8);
        let longest = api_domain_name(&"x".repeat(64));
        crate::spec::check_name("bridge domain", &longest).unwrap();
        // The option wins; a network stored without it keeps dk-<12>.
        let mut n = net(false);
        n.id = "research-net-a".into();
        assert_eq!(network_domain(&n), "dk-research-net");
        assert_eq!(vtep_port_name(&n), "vx-research-net");
        n.options.insert(DOMAIN_OPTION.into(), a.clone());
        assert_eq!(network_domain(&n), a);
        assert_eq!(vtep_port_name(&n), format!("vx-{}", &a[3..]));
        crate::spec::check_name("port", &vtep_port_name(&n)).unwrap();
    }

    #[test]
    fn gateway_follows_the_network() {
        let g = gateway(&net(false)).unwrap();
        assert_eq!(g.addresses, ["10.231.0.1/24", "fd00:231::1/64"]);
        assert_eq!((g.vid, g.routing, g.mtu), (10, false, Some(1500)));
        assert_eq!(gateway(&net(false)).unwrap().mac, g.mac, "stable MAC");
        g.to_gateway("dk-4dc7741212d5", rvs_switch::DomainId(0))
            .unwrap();
        let mut other = net(false);
        other.id = "0f8683afc6f09c7c4c1d58a6898e992b9d880e003db03f7c501e19f000d8938e".into();
        assert_ne!(gateway(&other).unwrap().mac, g.mac);
        assert!(gateway(&net(true)).is_none(), "internal: no gateway");
        let mut bare = net(false);
        bare.subnets.iter_mut().for_each(|s| s.gateway = None);
        assert!(gateway(&bare).is_none());
        let mut jumbo = net(false);
        jumbo.mtu = 65000;
        assert_eq!(gateway(&jumbo).unwrap().mtu, Some(9216));
    }

    #[test]
    fn every_endpoint_type_has_a_port_kind() {
        assert_eq!(port_kind(PortType::Tap), PortKind::Tap);
        assert_eq!(port_kind(PortType::Afxdp), PortKind::Afxdp);
        assert_eq!(port_kind(PortType::Afpacket), PortKind::Afpacket);
    }
}
