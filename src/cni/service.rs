//! The daemon's side of CNI: attachments (`/v1/cni/attachments`) as CNM
//! endpoints of a driver of their own.
//!
//! An attachment is made like a Docker endpoint, by the same code: the
//! CNI driver (`rvs_cnm::Driver` over the tables `cni_*` of the state
//! store) creates the network (bridge domain `dk-cni-…`) and the endpoint
//! (TAP or veth, switch port `ep-…`) through [`SwitchFabric`], and joins
//! it to the namespace. What Docker does itself after Join — moving the
//! interface into the namespace, renaming it, addresses and routes — is
//! done here. The attachment record (container, interface name, addresses)
//! commits in the same unit of work as the endpoint, so a failed ADD
//! leaves nothing, and an acknowledged one is made again after a restart.
//!
//! Owns: attachment records, the CNI network's description to CNM, and the
//! interface inside the namespace. Never: the plumbing (the fabric's) or
//! the plugin protocol ([`super::plugin`]).

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rvs_cnm::docker::{Driver, DriverError, NewEndpoint};
use rvs_cnm::ipam::AddressKind;
use rvs_cnm::model::{DEFAULT_MTU, Network, NetworkKind, Subnet};
use rvs_cnm::prefix::Cidr;
use rvs_cnm::{IpamConfig, Store};
use rvs_drivers::netlink::{Netlink, Route};
use rvs_store::{Batch, Db, Table};

use super::{
    AttachRequest, Attachment, CniAddress, CniNetwork, CniRoute, attachment_id, network_id,
};
use crate::fabric::SwitchFabric;

/// Attachment id → [`Attachment`].
const ATTACHMENTS: Table<Attachment> = Table::new("cni_attachments");

/// Why an attachment call was refused (the API maps each class onto its
/// status); nothing changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

impl From<rvs_store::StoreError> for ServiceError {
    fn from(e: rvs_store::StoreError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<DriverError> for ServiceError {
    fn from(e: DriverError) -> Self {
        let msg = e.to_string();
        match e {
            DriverError::Request(_)
            | DriverError::Options(_)
            | DriverError::Model(_)
            | DriverError::Ipam(_) => ServiceError::BadRequest(msg),
            DriverError::Conflict(_) => ServiceError::Conflict(msg),
            DriverError::UnknownNetwork(_) | DriverError::UnknownEndpoint { .. } => {
                ServiceError::NotFound(msg)
            }
            DriverError::Fabric(_) | DriverError::Store(_) => ServiceError::Internal(msg),
        }
    }
}

type Result<T, E = ServiceError> = std::result::Result<T, E>;

fn bad(what: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest(what.into())
}

/// The owner mark of the CNI links of the daemon with state directory
/// `state_dir` (see [`SwitchFabric::owned_by`]): each daemon removes at
/// start only the links of its own that no attachment holds.
pub fn owner(state_dir: &Path) -> String {
    let dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let tag = rvs_cnm::model::stable_hash(&[dir.as_os_str().as_encoded_bytes()]) as u32;
    format!("cni-{tag:08x}")
}

/// The daemon's CNI attachments.
pub struct Service {
    driver: Arc<Driver>,
    db: Arc<Db>,
    /// One ADD or DEL at a time: each is several driver calls.
    busy: Mutex<()>,
}

/// CNI's rule for container ids: letters, digits, `_ . -`, starting with a
/// letter or digit.
fn check_container_id(id: &str) -> Result<()> {
    let ok = id.len() <= 256
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "container id {id:?}: letters, digits, '_', '.' and '-' only, starting with a letter or digit"
        )))
    }
}

/// Linux's rule for interface names.
fn check_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "interface name {name:?}: 1 to 15 bytes without '/', ':' or spaces"
        )))
    }
}

/// CNI's rule for network names (the same as for container ids).
fn check_network_name(name: &str) -> Result<()> {
    check_container_id(name).map_err(|_| {
        bad(format!(
            "network name {name:?}: letters, digits, '_', '.' and '-' only, starting with a letter or digit"
        ))
    })
}

fn parse_cidr(what: &str, s: &str) -> Result<Cidr> {
    s.parse()
        .map_err(|e| bad(format!("{what} {s:?}: {e} (want ADDRESS/LEN)")))
}

fn parse_ip(what: &str, s: &str) -> Result<IpAddr> {
    s.parse()
        .map_err(|e| bad(format!("{what} {s:?}: {e} (want an IP address)")))
}

/// The CNM network for a CNI network description.
fn network_of(c: &CniNetwork) -> Result<Network> {
    check_network_name(&c.name)?;
    let mut subnets = Vec::new();
    for s in &c.subnets {
        let pool = parse_cidr("subnet", &s.subnet)?;
        let gateway = s
            .gateway
            .as_deref()
            .map(|g| parse_ip("gateway", g))
            .transpose()?;
        subnets.push(Subnet {
            pool,
            gateway,
            // rvswitch IPAM's pools are in the driver's local space.
            address_space: IpamConfig::default().local_space,
        });
    }
    Ok(Network {
        id: network_id(&c.name),
        name: c.name.clone(),
        kind: match c.vlan {
            Some(vid) => NetworkKind::Vlan { vid },
            None => NetworkKind::Bridge,
        },
        enable_ipv6: subnets.iter().any(|s| !s.pool.is_v4()),
        subnets,
        // Without `isGateway` the switch has no gateway on the network
        // (and the network needs no uplink to the host).
        internal: !c.is_gateway,
        mtu: c.mtu.unwrap_or(DEFAULT_MTU),
        port_type: c.endpoint.into(),
        port_security: true,
        routing: false,
        options: Default::default(),
        labels: [("rvswitch.cni".to_string(), "true".to_string())].into(),
    })
}

impl Service {
    /// Load the CNI driver's state from `db`, forget attachments whose
    /// namespace went while the daemon was down, and make the rest again
    /// in the switch through `fabric` (the daemon's, with the Docker
    /// driver's uplink and this daemon's [`owner`] mark).
    pub fn open(db: Arc<Db>, fabric: Arc<SwitchFabric>) -> Result<Service> {
        let store = Store::with_tables(db.clone(), &rvs_cnm::store::CNI_TABLES);
        let driver = Driver::open(store, fabric.clone(), IpamConfig::default())
            .map_err(|e| ServiceError::Internal(format!("CNI state: {e}")))?;
        let s = Service {
            driver: Arc::new(driver),
            db,
            busy: Mutex::new(()),
        };
        for a in s.list()? {
            if !Path::new(&a.netns).exists() {
                tracing::info!(container = %a.container_id, ifname = %a.ifname, netns = %a.netns,
                    "CNI attachment's namespace is gone (its container went while rvswitch was down): removing it");
                if let Err(e) = s.detach(&a.id) {
                    tracing::error!(attachment = %a.id, error = %e, "could not remove a lost CNI attachment");
                }
            }
        }
        let endpoints = s.driver.snapshot().endpoints;
        if !endpoints.is_empty() {
            if let Err(e) = fabric.sweep_leftovers(&endpoints) {
                tracing::error!(error = %e, "links of CNI calls that never committed not removed");
            }
            for (what, e) in s.driver.replay() {
                tracing::error!(%what, error = %e, "CNI attachment could not be restored in the switch");
            }
        }
        Ok(s)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every attachment (in id order).
    pub fn list(&self) -> Result<Vec<Attachment>> {
        Ok(self.db.values(&ATTACHMENTS)?)
    }

    pub fn get(&self, id: &str) -> Result<Attachment> {
        self.list()?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| ServiceError::NotFound(format!("no CNI attachment {id}")))
    }

    /// ADD: make the attachment, or return it when it exists as asked.
    pub fn attach(&self, req: AttachRequest) -> Result<Attachment> {
        check_container_id(&req.container_id)?;
        check_ifname(&req.ifname)?;
        let n = network_of(&req.network)?;
        if !req.netns.starts_with('/') || !is_netns(&req.netns) {
            return Err(bad(format!(
                "network namespace {:?} does not exist (want the path of one, such as /var/run/netns/NAME)",
                req.netns
            )));
        }
        let mac = req
            .mac
            .as_deref()
            .map(|m| {
                m.parse::<rvs_switch::MacAddr>()
                    .map_err(|e| bad(format!("MAC {m:?}: {e}")))
            })
            .transpose()?;
        let mut given: Vec<(Cidr, Option<IpAddr>)> = Vec::new();
        for a in &req.addresses {
            let c = parse_cidr("address", &a.address)?;
            let gw = a
                .gateway
                .as_deref()
                .map(|g| parse_ip("gateway", g))
                .transpose()?;
            given.push((c, gw));
        }
        if given.iter().filter(|(c, _)| c.is_v4()).count() > 1
            || given.iter().filter(|(c, _)| !c.is_v4()).count() > 1
        {
            return Err(bad(
                "at most one IPv4 and one IPv6 address per interface".to_string()
            ));
        }
        for (c, _) in &given {
            if n.subnet_of(c.addr).is_none() {
                return Err(bad(format!(
                    "address {c} is in none of network {}'s subnets",
                    n.name
                )));
            }
        }
        let mut routes = Vec::new();
        for r in &req.routes {
            let dst = parse_cidr("route destination", &r.dst)?;
            let gw =
                r.gw.as_deref()
                    .map(|g| parse_ip("route gateway", g))
                    .transpose()?;
            routes.push((dst, gw, r.clone()));
        }
        let id = attachment_id(&req.network.name, &req.container_id, &req.ifname);
        let _busy = self.lock();
        if let Some(old) = self.list()?.into_iter().find(|a| a.id == id) {
            if old.netns == req.netns {
                return Ok(old);
            }
            return Err(ServiceError::Conflict(format!(
                "container {} already has interface {} on network {} in namespace {}; DEL it first",
                req.container_id, req.ifname, req.network.name, old.netns
            )));
        }
        self.driver
            .atomically(|d| {
                d.create_network(n.clone())?;
                // No addresses given: rvswitch's IPAM picks one in each
                // subnet (no subnet either: an interface without addresses).
                let rvswitch_ipam = given.is_empty() && !n.subnets.is_empty();
                if rvswitch_ipam {
                    for s in &n.subnets {
                        let pool = pool_of(d, s)?;
                        let a = d.request_address(&pool, None, AddressKind::Host)?;
                        given.push((a, s.gateway));
                    }
                }
                let pick = |v4: bool| given.iter().find(|(c, _)| c.is_v4() == v4).map(|g| g.0);
                let e = d.create_endpoint(NewEndpoint {
                    id: id.clone(),
                    network_id: n.id.clone(),
                    mac,
                    ipv4: pick(true),
                    ipv6: pick(false),
                })?;
                let addrs: Vec<Cidr> = given.iter().map(|g| g.0).collect();
                let rts: Vec<(Cidr, Option<IpAddr>)> =
                    routes.iter().map(|(d, g, _)| (*d, *g)).collect();
                plumb(&e.ifaces.sandbox, &req, n.mtu, &addrs, &rts)
                    .map_err(|x| DriverError::Request(format!("namespace {}: {x}", req.netns)))?;
                d.join(&n.id, &id, &req.netns)?;
                let a = Attachment {
                    id: id.clone(),
                    network: n.name.clone(),
                    container_id: req.container_id.clone(),
                    ifname: req.ifname.clone(),
                    netns: req.netns.clone(),
                    mac: e.mac.to_string(),
                    mtu: n.mtu,
                    addresses: given
                        .iter()
                        .map(|(c, gw)| CniAddress {
                            address: c.to_string(),
                            gateway: gw.map(|g| g.to_string()),
                        })
                        .collect(),
                    routes: routes
                        .iter()
                        .map(|(_, _, r)| r.clone())
                        .collect::<Vec<CniRoute>>(),
                    port: e.ifaces.port.clone(),
                    endpoint: req.network.endpoint,
                    rvswitch_ipam,
                };
                let mut b = Batch::new();
                b.put(&ATTACHMENTS, &a.id, &a);
                self.db.commit(b)?;
                Ok(a)
            })
            .map_err(ServiceError::from)
    }

    /// DEL: remove the attachment (gone already: success), and its network
    /// with the last one.
    pub fn detach(&self, id: &str) -> Result<()> {
        let _busy = self.lock();
        let Some(a) = self.list()?.into_iter().find(|a| a.id == id) else {
            return Ok(());
        };
        let net = network_id(&a.network);
        self.driver
            .atomically(|d| {
                d.leave(&net, id)?;
                d.delete_endpoint(&net, id)?;
                let snap = d.snapshot();
                let n = d.network(&net);
                if a.rvswitch_ipam
                    && let Some(n) = &n
                {
                    for addr in &a.addresses {
                        let Ok(c) = addr.address.parse::<Cidr>() else {
                            continue;
                        };
                        if let Some(s) = n.subnet_of(c.addr)
                            && let Some(p) = snap.pools.iter().find(|p| p.prefix == s.pool)
                        {
                            d.release_address(&p.id, c.addr)?;
                        }
                    }
                }
                if let Some(n) = n
                    && !snap.endpoints.iter().any(|e| e.network_id == net)
                {
                    d.delete_network(&net)?;
                    for s in &n.subnets {
                        let pools = d.snapshot().pools;
                        if let Some(p) = pools.iter().find(|p| p.prefix == s.pool) {
                            d.release_pool(&p.id)?;
                        }
                    }
                }
                let mut b = Batch::new();
                b.delete(&ATTACHMENTS, id);
                self.db.commit(b)?;
                Ok(())
            })
            .map_err(ServiceError::from)
    }
}

/// Whether `path` is a network namespace (a file of the kernel's nsfs,
/// such as /var/run/netns/NAME or /proc/PID/ns/net), not just any file.
fn is_netns(path: &str) -> bool {
    use nix::sys::statfs::{NSFS_MAGIC, statfs};
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// The pool of rvswitch IPAM for subnet `s` (made with the gateway
/// reserved, the first time).
fn pool_of(d: &Driver, s: &Subnet) -> Result<String, DriverError> {
    if let Some(p) = d.snapshot().pools.iter().find(|p| p.prefix == s.pool) {
        return Ok(p.id.clone());
    }
    let space = d.address_spaces().0;
    let (id, _) = d.request_pool(&space, Some(s.pool), None, !s.pool.is_v4())?;
    if let Some(g) = s.gateway {
        d.request_address(&id, Some(g), AddressKind::Gateway)?;
    }
    Ok(id)
}

/// Move `dev` into the request's namespace as its `ifname`, with its
/// addresses and routes, up.
fn plumb(
    dev: &str,
    req: &AttachRequest,
    mtu: u32,
    addrs: &[Cidr],
    routes: &[(Cidr, Option<IpAddr>)],
) -> Result<(), String> {
    let nl = Netlink::new().map_err(|e| e.to_string())?;
    nl.move_to_netns(dev, &req.netns)
        .map_err(|e| e.to_string())?;
    let ifname = req.ifname.clone();
    Netlink::in_netns(&req.netns, |n| {
        n.rename(dev, &ifname)?;
        n.set_mtu(&ifname, mtu)?;
        for a in addrs {
            n.add_address(&ifname, a.addr, a.len)?;
        }
        n.set_up(&ifname)?;
        for (dst, gw) in routes {
            n.add_route(&Route {
                dst: dst.network().addr,
                prefix: dst.len,
                via: *gw,
                dev: Some(ifname.clone()),
            })?;
        }
        Ok(())
    })
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec() {
        check_container_id("abc-1.2_3").unwrap();
        assert!(check_container_id("-x").is_err());
        assert!(check_container_id("a/b").is_err());
        assert!(check_container_id("").is_err());
        check_ifname("eth0").unwrap();
        assert!(check_ifname("a-very-long-interface").is_err());
        assert!(check_ifname("..").is_err());
        assert!(check_ifname("e th").is_err());
    }

    #[test]
    fn a_cni_network_is_a_cnm_network() {
        let c = CniNetwork {
            name: "n1".into(),
            endpoint: super::super::EndpointType::Afpacket,
            vlan: Some(7),
            mtu: None,
            is_gateway: false,
            subnets: vec![super::super::CniSubnet {
                subnet: "10.9.0.0/24".into(),
                gateway: Some("10.9.0.1".into()),
            }],
        };
        let n = network_of(&c).unwrap();
        n.validate().unwrap();
        assert_eq!(n.kind, NetworkKind::Vlan { vid: 7 });
        assert!(n.internal, "no gateway in the switch without isGateway");
        assert_eq!(n.mtu, DEFAULT_MTU);
        let mut bad_subnet = c.clone();
        bad_subnet.subnets[0].subnet = "10.9.0.0".into();
        assert!(matches!(
            network_of(&bad_subnet),
            Err(ServiceError::BadRequest(_))
        ));
        let mut bad_name = c;
        bad_name.name = "a b".into();
        assert!(matches!(
            network_of(&bad_name),
            Err(ServiceError::BadRequest(_))
        ));
    }
}
