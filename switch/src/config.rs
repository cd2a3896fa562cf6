//! Configuration of bridge domains and ports, as the control plane states it.
//! Plain data with validation; the switch applies it between batches.

use std::net::IpAddr;

use crate::counters::DropReason;
use crate::fdb::FdbConfig;
use crate::mac::MacAddr;
use crate::stp::{StpConfig, StpPortConfig};
use crate::vlan::{VlanMode, VlanProtocol};

/// A bridge domain's number inside one switch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct DomainId(pub u16);

impl std::fmt::Display for DomainId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A bridge domain: one 802.1Q bridge with its own FDB and VLAN space,
/// isolated from every other domain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DomainConfig {
    pub name: String,
    #[serde(default)]
    pub fdb: FdbConfig,
    #[serde(default)]
    pub vlan_protocol: VlanProtocol,
    /// Run RSTP on the domain's ports (none: no spanning tree; BPDUs are
    /// dropped as link-local frames).
    #[serde(default)]
    pub stp: Option<StpConfig>,
}

impl DomainConfig {
    pub fn new(name: &str) -> Self {
        DomainConfig {
            name: name.to_string(),
            fdb: FdbConfig::default(),
            vlan_protocol: VlanProtocol::Dot1Q,
            stp: None,
        }
    }
}

/// Broadcast, multicast and unknown-unicast rate limit on a port's ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StormControl {
    /// Flooded frames admitted per second.
    pub pps: u64,
    /// Burst size in frames.
    pub burst: u64,
}

/// How a port takes part in its bridge domain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortConfig {
    pub domain: DomainId,
    #[serde(default)]
    pub vlan: VlanMode,
    /// Learn source addresses seen on this port.
    #[serde(default = "yes")]
    pub learning: bool,
    /// Administratively up.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Most addresses learned on this port; 0 means no limit.
    #[serde(default)]
    pub mac_limit: u32,
    #[serde(default)]
    pub storm_control: Option<StormControl>,
    /// The port's spanning tree settings (used when its domain runs RSTP).
    #[serde(default)]
    pub stp: StpPortConfig,
    /// Port security: only this station may send from the port.
    #[serde(default)]
    pub security: Option<PortSecurity>,
}

/// The station a port belongs to (a container's endpoint): frames from
/// another source MAC are dropped, and when `ips` is not empty so are IPv4,
/// ARP and IPv6 packets from other addresses (IPv6 link-local and the
/// unspecified address, which neighbor discovery needs, are allowed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSecurity {
    pub mac: MacAddr,
    #[serde(default)]
    pub ips: Vec<IpAddr>,
}

impl PortSecurity {
    /// Whether `frame` (source MAC `src`, L3 header at `l3`) may enter.
    pub(crate) fn check(&self, src: u64, frame: &[u8], l3: usize) -> Result<(), DropReason> {
        if src != self.mac.to_u64() {
            return Err(DropReason::PortSecurityMac);
        }
        if self.ips.is_empty() || frame.len() < l3 {
            return Ok(());
        }
        let et = u16::from_be_bytes([frame[l3 - 2], frame[l3 - 1]]);
        let d = &frame[l3..];
        let ip = match et {
            0x0800 if d.len() >= 20 => IpAddr::from(<[u8; 4]>::try_from(&d[12..16]).unwrap()),
            0x0806 if d.len() >= 28 => IpAddr::from(<[u8; 4]>::try_from(&d[14..18]).unwrap()),
            0x86dd if d.len() >= 40 => {
                let a = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&d[8..24]).unwrap());
                if a.is_unspecified() || a.segments()[0] & 0xffc0 == 0xfe80 {
                    return Ok(());
                }
                IpAddr::V6(a)
            }
            0x0800 | 0x0806 | 0x86dd => return Err(DropReason::PortSecurityIp),
            _ => return Ok(()),
        };
        // An ARP probe / DHCP-style source 0.0.0.0 announces nothing.
        if self.ips.contains(&ip) || ip == IpAddr::from([0u8; 4]) {
            Ok(())
        } else {
            Err(DropReason::PortSecurityIp)
        }
    }
}

fn yes() -> bool {
    true
}

impl PortConfig {
    /// An access port in VLAN 1 of `domain`, learning, up.
    pub fn access(domain: DomainId, pvid: u16) -> Self {
        PortConfig {
            domain,
            vlan: VlanMode::Access { pvid },
            learning: true,
            enabled: true,
            mac_limit: 0,
            storm_control: None,
            stp: StpPortConfig::default(),
            security: None,
        }
    }

    pub fn with_vlan(mut self, vlan: VlanMode) -> Self {
        self.vlan = vlan;
        self
    }
}
