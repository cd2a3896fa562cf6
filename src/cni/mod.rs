//! CNI: rvswitch as a plugin of the Container Network Interface (spec
//! 1.1), for runtimes that speak CNI instead of Docker's CNM.
//!
//! Two halves:
//! - [`plugin`]: the executable a runtime runs (`rvswitch cni`, or the
//!   binary installed as `/opt/cni/bin/rvswitch`): the verbs ADD, DEL,
//!   CHECK, STATUS, GC and VERSION, read from `CNI_*` environment variables
//!   and the network configuration on stdin, answered on stdout in the
//!   spec's result or error JSON. Addresses come from a delegated IPAM
//!   plugin (any on `CNI_PATH`, such as `host-local`) or from rvswitch's
//!   own IPAM (`"ipam": {"type": "rvswitch", "subnet": ...}`).
//! - [`service`]: the daemon's side, `POST/GET/DELETE /v1/cni/attachments`:
//!   an attachment is a CNM endpoint of the daemon's CNI driver
//!   (`rvs_cnm::Driver` over the same [`crate::fabric::SwitchFabric`] the
//!   Docker driver uses, in tables of its own), moved into the container's
//!   namespace, so it is desired state: stored, made again after a
//!   restart, removed with the namespace.
//!
//! This module holds what both halves share: the API's request and answer
//! shapes and the attachment key.
//!
//! Owns: the CNI front end. Never: the endpoint plumbing itself (the
//! fabric's) or CNM rules (`rvs_cnm`'s).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod plugin;
pub mod service;
pub mod spec;

/// How an attachment's interface is attached to the switch (the Docker
/// driver's `rvswitch.endpoint`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointType {
    /// A TAP with vnet headers moved into the container (the fastest).
    #[default]
    Tap,
    /// A veth pair, the host end attached by AF_XDP.
    Afxdp,
    /// A veth pair, the host end attached by AF_PACKET.
    Afpacket,
}

impl From<EndpointType> for rvs_cnm::PortType {
    fn from(t: EndpointType) -> Self {
        match t {
            EndpointType::Tap => rvs_cnm::PortType::Tap,
            EndpointType::Afxdp => rvs_cnm::PortType::Afxdp,
            EndpointType::Afpacket => rvs_cnm::PortType::Afpacket,
        }
    }
}

/// The rvswitch network an attachment joins, as the CNI network
/// configuration describes it. The first attachment creates it; every
/// later one must describe it the same way (409 otherwise); the last
/// attachment's removal removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CniNetwork {
    /// The CNI network name (`name` of the configuration).
    pub name: String,
    #[serde(default)]
    pub endpoint: EndpointType,
    /// Put the network's ports in access mode on this VLAN.
    #[serde(default)]
    pub vlan: Option<u16>,
    /// The interfaces' MTU (default 1500).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The switch routes for the network on each subnet's gateway address
    /// (and reaches the host through its uplink), like the reference
    /// `bridge` plugin's `isGateway`.
    #[serde(default)]
    pub is_gateway: bool,
    /// The network's subnets, each with its gateway address.
    #[serde(default)]
    pub subnets: Vec<CniSubnet>,
}

/// One subnet of a [`CniNetwork`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CniSubnet {
    /// `10.22.0.0/24`.
    pub subnet: String,
    #[serde(default)]
    pub gateway: Option<String>,
}

/// An interface address (`10.22.0.5/24`) and its gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CniAddress {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// A route in the container (`dst` a prefix; `gw` absent: on link).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CniRoute {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

/// `POST /v1/cni/attachments`: attach container `container_id`'s
/// interface `ifname` in namespace `netns` to `network`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    pub network: CniNetwork,
    pub container_id: String,
    pub ifname: String,
    /// The namespace's path (`CNI_NETNS`).
    pub netns: String,
    /// Addresses a delegated IPAM plugin chose (at most one IPv4 and one
    /// IPv6). Empty: rvswitch's IPAM picks one in each subnet.
    #[serde(default)]
    pub addresses: Vec<CniAddress>,
    /// Routes to add in the container through this interface.
    #[serde(default)]
    pub routes: Vec<CniRoute>,
    /// The interface's MAC (default: derived from the attachment).
    #[serde(default)]
    pub mac: Option<String>,
}

/// An attachment as stored and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    /// The key (see [`attachment_id`]), also the CNM endpoint's id.
    pub id: String,
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub mac: String,
    pub mtu: u32,
    pub addresses: Vec<CniAddress>,
    pub routes: Vec<CniRoute>,
    /// The switch port behind it.
    pub port: String,
    pub endpoint: EndpointType,
    /// Whether rvswitch's IPAM gave the addresses (and takes them back).
    pub rvswitch_ipam: bool,
}

/// The key of the attachment of (network, container, interface): the
/// CNI spec's attachment identity. Also the CNM endpoint id, so its
/// interface and port names follow from it.
pub fn attachment_id(network: &str, container_id: &str, ifname: &str) -> String {
    let h = rvs_cnm::model::stable_hash(&[
        network.as_bytes(),
        b"\0",
        container_id.as_bytes(),
        b"\0",
        ifname.as_bytes(),
    ]);
    format!("cni-{h:016x}")
}

/// The CNM network id of CNI network `name` (its bridge domain is
/// `dk-cni-<8 hex>`).
pub fn network_id(name: &str) -> String {
    let h = rvs_cnm::model::stable_hash(&[b"cni-network\0", name.as_bytes()]);
    format!("cni-{:08x}{:08x}", h as u32, (h >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        let a = attachment_id("net", "c1", "eth0");
        assert_eq!(a, attachment_id("net", "c1", "eth0"));
        assert_ne!(a, attachment_id("net", "c1", "eth1"));
        assert_ne!(a, attachment_id("net", "c2", "eth0"));
        // No ambiguity from joining the parts.
        assert_ne!(
            attachment_id("ne", "tc1", "eth0"),
            attachment_id("net", "c1", "eth0")
        );
        rvs_cnm::model::validate_id("endpoint", &a).unwrap();
        let n = network_id("mynet");
        rvs_cnm::model::validate_id("network", &n).unwrap();
        assert_ne!(
            crate::fabric::domain_name(&n),
            crate::fabric::domain_name(&network_id("othernet"))
        );
        crate::spec::check_name("bridge domain", &crate::fabric::domain_name(&n)).unwrap();
    }
}
