//! The Container Network Model: [`Network`], [`Endpoint`], [`Sandbox`] and
//! their validation.
//!
//! Owns: what a valid network/endpoint/sandbox is, with errors that say
//! which field is wrong and what would be accepted, and the deterministic
//! names and MACs derived from endpoint ids. Never: I/O, allocation of
//! addresses (see `ipam`), or knowledge of any front end's wire format
//! (Docker's options are translated in `docker::options`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use rvs_switch::MacAddr;
use serde::{Deserialize, Serialize};

use crate::prefix::Cidr;

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;
/// MTU when nobody asked for one.
pub const DEFAULT_MTU: u32 = 1500;

/// How a network's frames are kept apart from other networks' in the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum NetworkKind {
    /// A bridge domain of its own.
    Bridge,
    /// An 802.1Q VLAN (1..=4094).
    Vlan { vid: u16 },
    /// A VXLAN segment (VNI 1..=16777215).
    Vxlan { vni: u32 },
}

/// The switch port type behind an endpoint (Docker's
/// `-o rvswitch.endpoint=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortType {
    /// A persistent TAP with vnet headers; the TAP itself moves into the
    /// sandbox and is found there again after a restart. TCP super-frames
    /// (TSO) cross the switch whole: the fastest endpoint, and the default.
    #[default]
    Tap,
    /// A veth pair: the host end is attached by AF_XDP, the peer moves.
    Afxdp,
    /// A veth pair: the host end is attached by AF_PACKET, the peer moves.
    Afpacket,
}

impl PortType {
    pub fn as_str(self) -> &'static str {
        match self {
            PortType::Tap => "tap",
            PortType::Afxdp => "afxdp",
            PortType::Afpacket => "afpacket",
        }
    }
}

/// One subnet of a network with its gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// The subnet (host bits zero).
    pub pool: Cidr,
    /// The gateway the switch answers for, if any.
    pub gateway: Option<IpAddr>,
    /// The IPAM address space the pool came from (Docker's `AddressSpace`).
    #[serde(default)]
    pub address_space: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub kind: NetworkKind,
    pub subnets: Vec<Subnet>,
    /// No route out: no default gateway handed to sandboxes.
    pub internal: bool,
    pub enable_ipv6: bool,
    pub mtu: u32,
    pub port_type: PortType,
    /// Source MAC/IP of each port bound to its endpoint.
    pub port_security: bool,
    /// Whether the gateway routes to the other networks that allow it.
    pub routing: bool,
    /// Driver options not interpreted by rvswitch, kept for the operator.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The names of the plumbing behind an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointIfaces {
    /// The switch port's name.
    pub port: String,
    /// The host-side interface (veth end attached to the switch), if any.
    pub host: Option<String>,
    /// The interface that moves into the sandbox (Docker's `SrcName`).
    pub sandbox: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub network_id: String,
    pub mac: MacAddr,
    pub ipv4: Option<Cidr>,
    pub ipv6: Option<Cidr>,
    pub ifaces: EndpointIfaces,
    /// The sandbox (netns path) it has joined, if any.
    pub sandbox: Option<String>,
    /// Ports published on the host (`docker run -p`), as Docker gave them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<PortBinding>,
}

/// One published port: host `host_ip`:`host_port` forwards to the
/// endpoint's `port` (Docker's `com.docker.network.portmap` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// IP protocol number: 6 TCP, 17 UDP.
    pub proto: u8,
    /// Host address to listen on; none: every address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub port: u16,
}

/// A route inside a sandbox. `via: None` is on-link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub destination: Cidr,
    pub via: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    pub servers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// A container's network stack: a network namespace and what is in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// The netns path, e.g. `/var/run/docker/netns/4745c8135549`.
    pub key: String,
    /// Endpoint ids joined, in join order (their index names `eth<N>`).
    pub endpoints: Vec<String>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("invalid {what} id {id:?}: use 1-128 characters from [A-Za-z0-9_.-]")]
    Id { what: &'static str, id: String },
    #[error("network {net}: VLAN id {vid} is out of range (1-4094)")]
    VlanRange { net: String, vid: u32 },
    #[error("network {net}: VNI {vni} is out of range (1-16777215)")]
    VniRange { net: String, vni: u32 },
    #[error("network {net}: MTU {mtu} is out of range ({min}-{max})")]
    Mtu {
        net: String,
        mtu: u32,
        min: u32,
        max: u32,
    },
    #[error("network {net}: subnet {pool} has host bits set (use {network})")]
    SubnetHostBits {
        net: String,
        pool: Cidr,
        network: Cidr,
    },
    #[error("network {net}: subnets {a} and {b} overlap")]
    SubnetOverlap { net: String, a: Cidr, b: Cidr },
    #[error("network {net}: gateway {gateway} is not a usable address of subnet {pool}")]
    Gateway {
        net: String,
        gateway: IpAddr,
        pool: Cidr,
    },
    #[error("network {net}: IPv6 subnet {pool} given but IPv6 is not enabled (--ipv6)")]
    V6Disabled { net: String, pool: Cidr },
    #[error("endpoint {ep}: MAC {mac} is not a unicast station address")]
    Mac { ep: String, mac: MacAddr },
    #[error("endpoint {ep}: address {addr} is not in any subnet of network {net}")]
    AddressOutside { ep: String, addr: Cidr, net: String },
    #[error("endpoint {ep}: address {addr} is the gateway of network {net}")]
    AddressIsGateway { ep: String, addr: Cidr, net: String },
    #[error("endpoint {ep}: {family} address {addr} given in the wrong field")]
    Family {
        ep: String,
        family: &'static str,
        addr: Cidr,
    },
    #[error("endpoint {ep}: interface name {name:?} is empty or longer than 15 bytes")]
    IfName { ep: String, name: String },
    #[error("sandbox {key:?}: the key must be an absolute netns path")]
    SandboxKey { key: String },
    #[error("sandbox {key}: route to {dst}: next hop {via} is of another family")]
    RouteFamily { key: String, dst: Cidr, via: IpAddr },
}

/// Docker ids are 64 hex characters; lab and API ids are names.
pub fn validate_id(what: &'static str, id: &str) -> Result<(), ModelError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ModelError::Id {
            what,
            id: id.into(),
        })
    }
}

/// Whether `ip` may be given to a host (or gateway) in `pool`: IPv4 excludes
/// the network and broadcast addresses (except in /31 and /32), IPv6 the
/// subnet-router anycast address (except in /127 and /128).
pub fn usable_in(pool: &Cidr, ip: IpAddr) -> bool {
    if !pool.contains(ip) {
        return false;
    }
    let (lo, hi) = pool.range();
    let v = crate::prefix::to_u128(ip);
    let host_bits = pool.bits() - pool.len;
    match (pool.is_v4(), host_bits) {
        (_, 0) => true,
        (true, 1) => true,
        (true, _) => v != lo && v != hi,
        (false, 1) => true,
        (false, _) => v != lo,
    }
}

impl Network {
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_id("network", &self.id)?;
        let net = || self.id.clone();
        match self.kind {
            NetworkKind::Bridge => {}
            NetworkKind::Vlan { vid } if (1..=4094).contains(&vid) => {}
            NetworkKind::Vlan { vid } => {
                return Err(ModelError::VlanRange {
                    net: net(),
                    vid: vid.into(),
                });
            }
            NetworkKind::Vxlan { vni } if (1..=0xff_ffff).contains(&vni) => {}
            NetworkKind::Vxlan { vni } => return Err(ModelError::VniRange { net: net(), vni }),
        }
        let has_v6 = self.subnets.iter().any(|s| !s.pool.is_v4());
        let min = if has_v6 { 1280 } else { 68 };
        if !(min..=65535).contains(&self.mtu) {
            return Err(ModelError::Mtu {
                net: net(),
                mtu: self.mtu,
                min,
                max: 65535,
            });
        }
        for (i, s) in self.subnets.iter().enumerate() {
            if s.pool.network() != s.pool {
                return Err(ModelError::SubnetHostBits {
                    net: net(),
                    pool: s.pool,
                    network: s.pool.network(),
                });
            }
            if !s.pool.is_v4() && !self.enable_ipv6 {
                return Err(ModelError::V6Disabled {
                    net: net(),
                    pool: s.pool,
                });
            }
            if let Some(gw) = s.gateway
                && !usable_in(&s.pool, gw)
            {
                return Err(ModelError::Gateway {
                    net: net(),
                    gateway: gw,
                    pool: s.pool,
                });
            }
            if let Some(o) = self.subnets[..i].iter().find(|o| o.pool.overlaps(&s.pool)) {
                return Err(ModelError::SubnetOverlap {
                    net: net(),
                    a: o.pool,
                    b: s.pool,
                });
            }
        }
        Ok(())
    }

    /// The subnet holding `ip`, if any.
    pub fn subnet_of(&self, ip: IpAddr) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.pool.contains(ip))
    }

    /// The first gateway of the family (`v4`), if any.
    pub fn gateway(&self, v4: bool) -> Option<IpAddr> {
        self.subnets
            .iter()
            .filter(|s| s.pool.is_v4() == v4)
            .find_map(|s| s.gateway)
    }
}

impl Endpoint {
    /// Checks the endpoint on its own and against its network.
    pub fn validate(&self, net: &Network) -> Result<(), ModelError> {
        validate_id("endpoint", &self.id)?;
        let ep = || self.id.clone();
        if !self.mac.is_valid_source() {
            return Err(ModelError::Mac {
                ep: ep(),
                mac: self.mac,
            });
        }
        for (addr, v4, family) in [(self.ipv4, true, "IPv6"), (self.ipv6, false, "IPv4")] {
            let Some(addr) = addr else { continue };
            if addr.is_v4() != v4 {
                return Err(ModelError::Family {
                    ep: ep(),
                    family,
                    addr,
                });
            }
            let Some(s) = net.subnet_of(addr.addr) else {
                return Err(ModelError::AddressOutside {
                    ep: ep(),
                    addr,
                    net: net.id.clone(),
                });
            };
            if s.gateway == Some(addr.addr) {
                return Err(ModelError::AddressIsGateway {
                    ep: ep(),
                    addr,
                    net: net.id.clone(),
                });
            }
            if !usable_in(&s.pool, addr.addr) {
                return Err(ModelError::AddressOutside {
                    ep: ep(),
                    addr,
                    net: net.id.clone(),
                });
            }
        }
        let names = [Some(&self.ifaces.sandbox), self.ifaces.host.as_ref()];
        for name in names.into_iter().flatten() {
            if name.is_empty() || name.len() > IFNAME_MAX || name.contains(['/', ' ']) {
                return Err(ModelError::IfName {
                    ep: ep(),
                    name: name.clone(),
                });
            }
        }
        Ok(())
    }
}

impl Sandbox {
    pub fn validate(&self) -> Result<(), ModelError> {
        if !self.key.starts_with('/') {
            return Err(ModelError::SandboxKey {
                key: self.key.clone(),
            });
        }
        for r in &self.routes {
            if let Some(via) = r.via
                && via.is_ipv4() != r.destination.is_v4()
            {
                return Err(ModelError::RouteFamily {
                    key: self.key.clone(),
                    dst: r.destination,
                    via,
                });
            }
        }
        Ok(())
    }
}

/// FNV-1a: a hash that stays the same across Rust releases and restarts.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A locally administered unicast MAC derived from an endpoint id; `salt`
/// picks another one when the first collides.
pub fn derive_mac(endpoint_id: &str, salt: u32) -> MacAddr {
    MacAddr::local(stable_hash(&[endpoint_id.as_bytes(), &salt.to_be_bytes()]))
}

/// Interface and port names for an endpoint: `rvh<tag>` (host side),
/// `rvc<tag>` (moves into the sandbox), port `ep-<tag>`; `<tag>` is 8 hex
/// digits from the id (its prefix for Docker's hex ids, so operators can
/// match them), or from a hash when `salt` > 0 or the id is not hex.
pub fn derive_ifaces(endpoint_id: &str, salt: u32) -> EndpointIfaces {
    let hex = endpoint_id.len() >= 8
        && endpoint_id[..8]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let tag = if hex && salt == 0 {
        endpoint_id[..8].to_string()
    } else {
        let h = stable_hash(&[endpoint_id.as_bytes(), &salt.to_be_bytes()]);
        format!("{:08x}", h as u32)
    };
    EndpointIfaces {
        port: format!("ep-{tag}"),
        host: Some(format!("rvh{tag}")),
        sandbox: format!("rvc{tag}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn net() -> Network {
        Network {
            id: "n1".into(),
            name: "n1".into(),
            kind: NetworkKind::Vlan { vid: 10 },
            subnets: vec![Subnet {
                pool: "10.0.0.0/24".parse().unwrap(),
                gateway: Some("10.0.0.1".parse().unwrap()),
                address_space: "LocalDefault".into(),
            }],
            internal: false,
            enable_ipv6: false,
            mtu: DEFAULT_MTU,
            port_type: PortType::Tap,
            port_security: true,
            routing: true,
            options: Default::default(),
            labels: Default::default(),
        }
    }

    fn ep(addr: &str) -> Endpoint {
        Endpoint {
            id: "e1".into(),
            network_id: "n1".into(),
            mac: derive_mac("e1", 0),
            ipv4: Some(addr.parse().unwrap()),
            ipv6: None,
            ifaces: derive_ifaces("e1", 0),
            sandbox: None,
            published: Vec::new(),
        }
    }

    #[test]
    fn network_validation_names_the_problem() {
        net().validate().unwrap();
        let mut n = net();
        n.kind = NetworkKind::Vlan { vid: 4095 };
        assert!(n.validate().unwrap_err().to_string().contains("1-4094"));
        let mut n = net();
        n.kind = NetworkKind::Vxlan { vni: 0 };
        assert!(matches!(n.validate(), Err(ModelError::VniRange { .. })));
        let mut n = net();
        n.subnets[0].gateway = Some("10.0.0.255".parse().unwrap());
        assert!(matches!(n.validate(), Err(ModelError::Gateway { .. })));
        let mut n = net();
        n.subnets.push(n.subnets[0].clone());
        assert!(matches!(
            n.validate(),
            Err(ModelError::SubnetOverlap { .. })
        ));
        let mut n = net();
        n.subnets.push(Subnet {
            pool: "fd00::/64".parse().unwrap(),
            gateway: None,
            address_space: String::new(),
        });
        assert!(matches!(n.validate(), Err(ModelError::V6Disabled { .. })));
        n.enable_ipv6 = true;
        n.validate().unwrap();
        n.mtu = 1000;
        assert!(n.validate().unwrap_err().to_string().contains("1280-65535"));
        let mut n = net();
        n.id = "bad id".into();
        assert!(matches!(n.validate(), Err(ModelError::Id { .. })));
    }

    #[test]
    fn endpoint_validation() {
        let n = net();
        ep("10.0.0.2/24").validate(&n).unwrap();
        assert!(matches!(
            ep("10.0.1.2/24").validate(&n),
            Err(ModelError::AddressOutside { .. })
        ));
        assert!(matches!(
            ep("10.0.0.1/24").validate(&n),
            Err(ModelError::AddressIsGateway { .. })
        ));
        assert!(ep("10.0.0.0/24").validate(&n).is_err());
        let mut e = ep("10.0.0.2/24");
        e.mac = MacAddr::BROADCAST;
        assert!(matches!(e.validate(&n), Err(ModelError::Mac { .. })));
        let mut e = ep("10.0.0.2/24");
        e.ifaces.sandbox = "a-name-far-too-long".into();
        assert!(matches!(e.validate(&n), Err(ModelError::IfName { .. })));
    }

    #[test]
    fn usable_addresses_per_family() {
        let p: Cidr = "10.0.0.0/30".parse().unwrap();
        let ok: Vec<bool> = (0..4)
            .map(|i| usable_in(&p, format!("10.0.0.{i}").parse().unwrap()))
            .collect();
        assert_eq!(ok, [false, true, true, false]);
        let p31: Cidr = "10.0.0.0/31".parse().unwrap();
        assert!(usable_in(&p31, "10.0.0.0".parse().unwrap()));
        let p6: Cidr = "fd00::/64".parse().unwrap();
        assert!(!usable_in(&p6, "fd00::".parse().unwrap()));
        assert!(usable_in(&p6, "fd00::ffff:ffff:ffff:ffff".parse().unwrap()));
    }

    #[test]
    fn derived_names_and_macs_are_stable_and_valid() {
        let id = "4f8681699f08413143c9f545ce3fd1c157e554f92792a1e85ad9a59767648509";
        let a = derive_ifaces(id, 0);
        assert_eq!(a.sandbox, "rvc4f868169");
        assert_eq!(a.host.as_deref(), Some("rvh4f868169"));
        assert_ne!(derive_ifaces(id, 1), a);
        assert!(derive_ifaces("lab-node-a", 0).sandbox.len() <= IFNAME_MAX);
        let m = derive_mac(id, 0);
        assert_eq!(m, derive_mac(id, 0));
        assert_ne!(m, derive_mac(id, 1));
        assert!(m.is_valid_source() && m.0[0] & 0x02 == 0x02);
    }

    #[test]
    fn sandbox_validation() {
        let mut s = Sandbox {
            key: "/var/run/docker/netns/4745c8135549".into(),
            endpoints: vec!["e1".into()],
            routes: vec![Route {
                destination: "0.0.0.0/0".parse().unwrap(),
                via: Some("10.0.0.1".parse().unwrap()),
            }],
            dns: Dns::default(),
        };
        s.validate().unwrap();
        s.routes[0].via = Some("fd00::1".parse().unwrap());
        assert!(matches!(s.validate(), Err(ModelError::RouteFamily { .. })));
        s.key = "netns".into();
        assert!(matches!(s.validate(), Err(ModelError::SandboxKey { .. })));
    }
}
