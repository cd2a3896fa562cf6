//! `POST /v1/domains/{name}/parents`: a VLAN of a bridge domain bridged to
//! a host NIC's LAN through the NIC's uplink port (see
//! `crate::daemon::parent`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::PortKind;

/// Bridge a VLAN of the domain to a host interface: `{"parent":
/// "eth0.10"}` carries the domain's VLAN 10 tagged 10 on eth0; `{"parent":
/// "eth0", "vlan": 5}` carries its VLAN 5 untagged (the uplink's native
/// VLAN). The switch pushes and pops the tags; it does not translate
/// VLAN ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentRequest {
    /// `IFACE` (untagged) or `IFACE.VID` (VID 1..4094).
    #[schema(example = "eth0.10")]
    pub parent: String,
    /// The uplink port's back end: afpacket (the default) or afxdp. Every
    /// VLAN of one interface shares its uplink port, so it must match the
    /// port there is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<PortKind>,
    /// The domain's VLAN for an untagged parent (default 1); for
    /// `IFACE.VID` it can only be VID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 4094)]
    pub vlan: Option<u16>,
}

impl ParentRequest {
    pub fn new(parent: &str) -> ParentRequest {
        ParentRequest {
            parent: parent.to_string(),
            kind: None,
            vlan: None,
        }
    }
}

/// A VLAN of a domain on a host interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Parent)]
pub struct ParentView {
    /// `IFACE` or `IFACE.VID`, as requested.
    pub parent: String,
    pub domain: String,
    /// The domain's VLAN carried.
    pub vlan: u16,
    /// Whether it is tagged on the wire.
    pub tagged: bool,
    /// The uplink port (one per interface, a trunk of every VLAN on it).
    pub port: String,
    pub kind: PortKind,
    /// "up", or "failed" when the uplink's back end did not open (the
    /// interface is gone: it is tried again at the next start).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
