//! Configuration of bridge domains and ports, as the control plane states it.
//! Plain data with validation; the switch applies it between batches.

use crate::fdb::FdbConfig;
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
        }
    }

    pub fn with_vlan(mut self, vlan: VlanMode) -> Self {
        self.vlan = vlan;
        self
    }
}
