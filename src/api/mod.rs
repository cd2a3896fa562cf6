//! The control API's types: what clients send (requests, patches, query
//! strings), what they get back (views, errors) and what the daemon stores
//! (records), with their validation. One module shared by the daemon's
//! handlers, `rvswitch ctl`, the lab tool, the Docker fabric and the tests,
//! so a client cannot build a body the daemon does not understand.
//!
//! Every type the API speaks derives `utoipa::ToSchema`: the OpenAPI
//! document (`GET /v1/openapi.json`, built in `crate::daemon::api`) is
//! generated from these definitions, their doc comments and the
//! constraints written on their fields, so it cannot drift from them.
//! String formats that other crates parse (MACs, addresses, VLAN lists)
//! are described by the schemas in [`format`].
//!
//! Owns: shapes and the checks that make a request "bad input" (400).
//! Never: touching the store or the data plane. Every request type denies
//! unknown fields, so a typo is an error, not a silently ignored setting.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rvs_switch::fdb::{DEFAULT_MAX_ENTRIES, DEFAULT_PORT_MAX_ENTRIES, FdbConfig};
use rvs_switch::router::Gateway;
use rvs_switch::stp::{StpConfig, StpPortConfig};
use rvs_switch::vlan::check_vid;
use rvs_switch::{
    DomainConfig, DomainId, MacAddr, PortConfig, PortSecurity, StormControl, VlanMode,
    VlanProtocol, VlanSet,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::spec::check_name;
pub use crate::spec::{PortKind, PortSpec};

pub mod format;
mod parent;
pub use parent::{ParentRequest, ParentView};

use format::{
    Cidr, IpAddress, MacAddress, PortSecuritySchema, StationMac, StpConfigSchema,
    StpPortConfigSchema, VlanList, VlanProtocolSchema,
};

fn yes() -> bool {
    true
}

/// The domain MAC limit unless one is given.
fn default_max_macs() -> u32 {
    DEFAULT_MAX_ENTRIES
}

/// The port MAC limit unless one is given.
fn default_mac_limit() -> u32 {
    DEFAULT_PORT_MAX_ENTRIES
}

/// 0 in a MAC limit means the default (records stored before the defaults
/// existed hold 0, which then meant "no limit").
fn or_default(limit: u32, default: u32) -> u32 {
    if limit == 0 { default } else { limit }
}

fn default_aging() -> u32 {
    rvs_switch::fdb::DEFAULT_AGING_SECS
}

/// Longest aging time 802.1D allows (Table 7-5).
pub const AGING_MAX: u32 = 1_000_000;
/// Shortest non-zero aging time 802.1D allows.
pub const AGING_MIN: u32 = 10;

/// An error answer: every 4xx and 5xx has this body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong, for a person to read.
    pub error: String,
}

/// A bridge domain as stored and as created (`POST /v1/domains`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainRecord {
    /// 1 to 64 letters, digits, '-', '_', '.'.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "bd0")]
    pub name: String,
    /// Seconds before an unrefreshed learned entry expires: 10..1000000, or
    /// 0 to disable aging.
    #[serde(default = "default_aging")]
    #[schema(default = 300, maximum = 1_000_000)]
    pub aging_secs: u32,
    /// Most learned entries in the domain (default 16384, see
    /// `rvs_switch::fdb::DEFAULT_MAX_ENTRIES`); 0 also means the default.
    /// There is no unlimited: a MAC flood would take all memory.
    #[serde(default = "default_max_macs")]
    #[schema(default = 16384)]
    pub max_macs: u32,
    #[serde(default)]
    #[schema(value_type = VlanProtocolSchema)]
    pub vlan_protocol: VlanProtocol,
    /// The domain's router interface; none makes the domain internal (L2
    /// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySpec>,
    /// Run RSTP on the domain's ports (`{}` for the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<StpConfigSchema>)]
    pub stp: Option<StpConfig>,
}

impl DomainRecord {
    /// A domain with default aging and no limits, gateway or tags.
    pub fn named(name: &str) -> Self {
        DomainRecord {
            name: name.to_string(),
            aging_secs: default_aging(),
            max_macs: default_max_macs(),
            vlan_protocol: VlanProtocol::default(),
            gateway: None,
            stp: None,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        check_name("bridge domain", &self.name)?;
        if let Some(g) = &self.gateway {
            g.to_gateway(&self.name, DomainId(0))?;
        }
        if let Some(s) = &self.stp {
            s.validate().map_err(|e| e.to_string())?;
        }
        if self.aging_secs != 0 && !(AGING_MIN..=AGING_MAX).contains(&self.aging_secs) {
            return Err(format!(
                "aging_secs {} is outside {AGING_MIN}..={AGING_MAX} (or 0 to disable aging)",
                self.aging_secs
            ));
        }
        Ok(())
    }

    pub fn to_config(&self) -> DomainConfig {
        DomainConfig {
            name: self.name.clone(),
            fdb: FdbConfig {
                aging_secs: self.aging_secs,
                max_entries: or_default(self.max_macs, DEFAULT_MAX_ENTRIES),
                ..FdbConfig::default()
            },
            vlan_protocol: self.vlan_protocol,
            stp: self.stp,
        }
    }
}

/// `PATCH /v1/domains/{name}`: fields left out keep their value;
/// `"gateway": null` removes the gateway, `"stp": null` turns RSTP off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainPatch {
    /// Seconds before an unrefreshed learned entry expires: 10..1000000,
    /// or 0 to disable aging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 1_000_000)]
    pub aging_secs: Option<u32>,
    /// Most learned entries in the domain; 0 means the default (16384).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_macs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<VlanProtocolSchema>)]
    pub vlan_protocol: Option<VlanProtocol>,
    /// The new gateway (replacing the one the domain has); `null` removes
    /// it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "double_option"
    )]
    #[schema(value_type = Option<GatewaySpec>)]
    pub gateway: Option<Option<GatewaySpec>>,
    /// RSTP settings (`{}` for the defaults); `null` turns RSTP off.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "double_option"
    )]
    #[schema(value_type = Option<StpConfigSchema>)]
    pub stp: Option<Option<StpConfig>>,
}

impl DomainPatch {
    pub fn apply(&self, r: &DomainRecord) -> DomainRecord {
        DomainRecord {
            name: r.name.clone(),
            aging_secs: self.aging_secs.unwrap_or(r.aging_secs),
            max_macs: self.max_macs.unwrap_or(r.max_macs),
            vlan_protocol: self.vlan_protocol.unwrap_or(r.vlan_protocol),
            gateway: self.gateway.clone().unwrap_or_else(|| r.gateway.clone()),
            stp: self.stp.unwrap_or(r.stp),
        }
    }
}

fn one() -> u16 {
    1
}

/// A bridge domain's gateway (router interface): answers ARP/ND and ping
/// for its addresses and routes frames sent to its MAC. `{"addresses":
/// ["10.0.1.1/24", "fd00:1::1/64"]}` plus optional MAC (derived from the
/// domain name when absent, so it is stable across restarts), VLAN, MTU,
/// route table and whether it routes to other domains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Gateway)]
pub struct GatewaySpec {
    /// The gateway's MAC (default: derived from the domain name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<StationMac>)]
    pub mac: Option<MacAddr>,
    /// Unicast addresses with their subnet length (at least one); each
    /// subnet becomes a connected route.
    #[serde(default)]
    #[schema(value_type = Vec<Cidr>, required = true, min_items = 1)]
    pub addresses: Vec<String>,
    /// The VLAN of the domain the gateway lives in.
    #[serde(default = "one")]
    #[schema(default = 1, minimum = 1, maximum = 4094)]
    pub vid: u16,
    /// Largest IP packet routed out of this gateway (default 1500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 68, maximum = 9216)]
    pub mtu: Option<u16>,
    /// Route table (VRF-like): gateways in one table route to each other.
    #[serde(default)]
    #[schema(default = 0)]
    pub table: u16,
    /// Route between this domain and the others of its table; off: answer
    /// ARP/ND/ping only.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub routing: bool,
    /// An uplink: every domain of the table routes to and from it, even
    /// those with routing off (how isolated networks reach the outside).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schema(default = false)]
    pub external: bool,
}

/// Parse `addr/len` (IPv4 or IPv6).
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not ADDRESS/LENGTH"))?;
    let a: IpAddr = a
        .parse()
        .map_err(|_| format!("{a:?} in {s:?} is not an IP address"))?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    let l: u8 = l
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| format!("prefix length in {s:?} must be 0..={max}"))?;
    Ok((a, l))
}

impl GatewaySpec {
    /// A routing gateway with these addresses and the defaults.
    pub fn with_addresses(addresses: Vec<String>) -> Self {
        GatewaySpec {
            mac: None,
            addresses,
            vid: one(),
            mtu: None,
            table: 0,
            routing: true,
            external: false,
        }
    }

    /// The switch's gateway for domain `id` named `domain`, validated.
    pub fn to_gateway(&self, domain: &str, id: DomainId) -> Result<Gateway, String> {
        let mac = self.mac.unwrap_or_else(|| MacAddr::derived(0x72, domain));
        if !mac.is_valid_source() {
            return Err(format!("gateway MAC {mac} is not a unicast address"));
        }
        let vid = check_vid(self.vid as u32).map_err(|e| format!("gateway: {e}"))?;
        let mut g = Gateway::new(id, mac);
        g.vid = vid;
        g.table = self.table;
        g.routing = self.routing;
        g.external = self.external;
        g.mtu = self.mtu.unwrap_or(1500);
        if !(68..=9216).contains(&g.mtu) {
            return Err(format!("gateway MTU {} is outside 68..=9216", g.mtu));
        }
        if self.addresses.is_empty() {
            return Err("a gateway needs at least one address (ADDRESS/LENGTH)".into());
        }
        for a in &self.addresses {
            let (ip, len) = parse_cidr(a).map_err(|e| format!("gateway address {e}"))?;
            let bad = ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_loopback()
                || matches!(ip, IpAddr::V4(v) if v.is_broadcast());
            if bad {
                return Err(format!("gateway address {a} is not a unicast address"));
            }
            match ip {
                IpAddr::V4(v) => g.ipv4.push((v, len)),
                IpAddr::V6(v) => g.ipv6.push((v, len)),
            }
        }
        Ok(g)
    }
}

/// A static route as requested and stored (`POST /v1/routes`): to
/// `prefix` via the router at `via`, reached through bridge domain
/// `domain` (which must have a gateway); without `via` the prefix is on
/// `domain`'s link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Route)]
pub struct RouteRecord {
    /// Route table (see the gateway's `table`).
    #[serde(default)]
    #[schema(default = 0)]
    pub table: u16,
    /// The destination network; its host bits must be zero.
    #[schema(value_type = Cidr)]
    pub prefix: String,
    /// The next-hop router, of the prefix's family; none: the prefix is
    /// on `domain`'s link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<IpAddress>)]
    pub via: Option<IpAddr>,
    /// The bridge domain the next hop is in (it must have a gateway).
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub domain: String,
}

impl RouteRecord {
    /// (network address, length), validated; host bits must be zero.
    pub fn parsed(&self) -> Result<(IpAddr, u8), String> {
        let (a, l) = parse_cidr(&self.prefix)?;
        let host_bits = match a {
            IpAddr::V4(v) => u32::from(v) & u32::MAX.checked_shr(l as u32).unwrap_or(0) != 0,
            IpAddr::V6(v) => u128::from(v) & u128::MAX.checked_shr(l as u32).unwrap_or(0) != 0,
        };
        if host_bits {
            return Err(format!(
                "prefix {} has host bits set (did you mean the network address?)",
                self.prefix
            ));
        }
        if let Some(v) = self.via {
            if v.is_ipv4() != a.is_ipv4() {
                return Err(format!(
                    "next hop {v} is not of the same family as {}",
                    self.prefix
                ));
            }
            if v.is_unspecified() || v.is_multicast() {
                return Err(format!("next hop {v} is not a unicast address"));
            }
        }
        check_name("bridge domain", &self.domain)?;
        Ok((a, l))
    }

    /// The store key: `table/prefix`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.table, self.prefix)
    }
}

/// Where a listed route comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    /// A gateway's subnet.
    Connected,
    /// Added with `POST /v1/routes`.
    Static,
}

/// A route as listed: static ones from the store, connected ones from
/// the gateways.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouteView {
    pub table: u16,
    #[schema(value_type = Cidr)]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<IpAddress>)]
    pub via: Option<IpAddr>,
    pub domain: String,
    /// "connected" (a gateway's subnet) or "static".
    #[schema(value_type = RouteKind)]
    pub kind: String,
}

/// The state of a neighbor entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NeighborState {
    /// Resolution in progress (packets wait in `pending`).
    Incomplete,
    Reachable,
    Stale,
    /// Configured, never expires.
    Permanent,
}

/// A neighbor (ARP/ND entry) of a gateway.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Neighbor)]
pub struct NeighborView {
    pub domain: String,
    #[schema(value_type = IpAddress)]
    pub ip: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<MacAddress>)]
    pub mac: Option<MacAddr>,
    /// One of incomplete, reachable, stale, permanent.
    #[schema(value_type = NeighborState)]
    pub state: String,
    /// Packets waiting for resolution.
    pub pending: usize,
}

/// A port's VLAN membership: `{"mode": "access", "pvid": 10}`,
/// `{"mode": "trunk", "allowed": "10,20-30", "native": 1}` or `{"mode":
/// "tunnel", "svid": 100}`.
// The trunk's 512-byte VLAN bitmap makes the variants unequal, as in the
// switch's own `VlanMode`; these live in control-plane records, not per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
#[schema(as = Vlan)]
pub enum VlanSpec {
    /// Untagged in VLAN `pvid`.
    Access {
        #[schema(minimum = 1, maximum = 4094)]
        pvid: u16,
    },
    /// Tagged in the `allowed` VLANs; frames of VLAN `native` go untagged.
    Trunk {
        #[serde(default)]
        #[schema(value_type = VlanList)]
        allowed: VlanSet,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(minimum = 1, maximum = 4094)]
        native: Option<u16>,
    },
    /// An 802.1ad customer port: every frame goes into service VLAN
    /// `svid`.
    Tunnel {
        #[schema(minimum = 1, maximum = 4094)]
        svid: u16,
    },
}

impl Default for VlanSpec {
    fn default() -> Self {
        VlanSpec::Access { pvid: 1 }
    }
}

impl VlanSpec {
    pub fn to_mode(&self) -> Result<VlanMode, String> {
        let m = match self {
            VlanSpec::Access { pvid } => VlanMode::Access { pvid: *pvid },
            VlanSpec::Trunk { allowed, native } => VlanMode::Trunk {
                allowed: allowed.clone(),
                native: *native,
            },
            VlanSpec::Tunnel { svid } => VlanMode::Tunnel { svid: *svid },
        };
        m.validate().map_err(|e| e.to_string())?;
        Ok(m)
    }
}

/// Storm control: a token bucket on the flooded frames (broadcast,
/// multicast, unknown unicast) a port receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = StormControl)]
pub struct StormSpec {
    /// Flooded frames admitted per second.
    #[schema(minimum = 1)]
    pub pps: u64,
    /// Burst in frames.
    #[schema(minimum = 1)]
    pub burst: u64,
}

/// How a port takes part in its bridge domain, with the domain by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortSettings {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub domain: String,
    #[serde(default)]
    pub vlan: VlanSpec,
    /// Learn source addresses on this port.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub learning: bool,
    /// Administratively up.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub enabled: bool,
    /// Most addresses learned on this port (default 8192, see
    /// `rvs_switch::fdb::DEFAULT_PORT_MAX_ENTRIES`); 0 also means the
    /// default.
    #[serde(default = "default_mac_limit")]
    #[schema(default = 8192)]
    pub mac_limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_control: Option<StormSpec>,
    /// Spanning tree settings (edge, cost, priority), used when the
    /// domain runs RSTP.
    #[serde(default, skip_serializing_if = "is_default_stp")]
    #[schema(value_type = StpPortConfigSchema)]
    pub stp: StpPortConfig,
    /// Port security: the one station (MAC, and addresses if given) that
    /// may send from this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PortSecuritySchema>)]
    pub security: Option<PortSecurity>,
}

fn is_default_stp(s: &StpPortConfig) -> bool {
    *s == StpPortConfig::default()
}

impl PortSettings {
    pub fn validate(&self) -> Result<(), String> {
        check_name("bridge domain", &self.domain)?;
        self.vlan.to_mode()?;
        self.stp.validate().map_err(|e| e.to_string())?;
        if let Some(sec) = &self.security
            && !sec.mac.is_valid_source()
        {
            return Err(format!(
                "port security MAC {} is not a unicast station address",
                sec.mac
            ));
        }
        if let Some(s) = self.storm_control
            && (s.pps == 0 || s.burst == 0)
        {
            return Err("storm_control needs pps and burst above 0".into());
        }
        Ok(())
    }

    /// The switch's config, with the domain resolved to its id on the worker.
    pub fn to_config(&self, domain: DomainId) -> Result<PortConfig, String> {
        Ok(PortConfig {
            domain,
            vlan: self.vlan.to_mode()?,
            learning: self.learning,
            enabled: self.enabled,
            mac_limit: or_default(self.mac_limit, DEFAULT_PORT_MAX_ENTRIES),
            storm_control: self.storm_control.map(|s| StormControl {
                pps: s.pps,
                burst: s.burst,
            }),
            stp: self.stp,
            security: self.security.clone(),
        })
    }
}

/// A port as stored: how to open it and how it is configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRecord {
    pub spec: PortSpec,
    pub config: PortSettings,
}

/// `POST /v1/ports`: the back end and the settings in one flat object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PortCreate)]
pub struct CreatePort {
    /// The port's name in the switch; for kind tap without `iface` also
    /// the TAP device's name (then at most 15 characters).
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "p1")]
    pub name: String,
    pub kind: PortKind,
    /// The interface to attach to (required for afxdp and afpacket); for
    /// tap, the TAP device's name when it is not the port name; none for
    /// vxlan. A Linux interface name: 1 to 15 printable characters
    /// without '/' and ':'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[!-.0-9;-~]{1,15}$")]
    pub iface: Option<String>,
    /// Queue of `iface` to bind (afxdp only; others take 0).
    #[serde(default)]
    #[schema(default = 0)]
    pub queue: u32,
    /// Back-end specific options (ring sizes, zero-copy, offloads; for
    /// vxlan: `local`, `vni`, `remotes`, ...), passed to the back end.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub options: BTreeMap<String, serde_json::Value>,
    /// The bridge domain to join.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub domain: String,
    #[serde(default)]
    pub vlan: VlanSpec,
    /// Learn source addresses on this port.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub learning: bool,
    /// Administratively up.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub enabled: bool,
    /// Most addresses learned on the port; 0 also means the default.
    #[serde(default = "default_mac_limit")]
    #[schema(default = 8192)]
    pub mac_limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_control: Option<StormSpec>,
    #[serde(default, skip_serializing_if = "is_default_stp")]
    #[schema(value_type = StpPortConfigSchema)]
    pub stp: StpPortConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PortSecuritySchema>)]
    pub security: Option<PortSecurity>,
}

impl CreatePort {
    /// A port `name` of `kind` in `domain` with every other setting at
    /// its default (an access port of VLAN 1, learning, enabled).
    pub fn new(name: &str, kind: PortKind, domain: &str) -> Self {
        CreatePort {
            name: name.to_string(),
            kind,
            iface: None,
            queue: 0,
            options: BTreeMap::new(),
            domain: domain.to_string(),
            vlan: VlanSpec::default(),
            learning: true,
            enabled: true,
            mac_limit: default_mac_limit(),
            storm_control: None,
            stp: StpPortConfig::default(),
            security: None,
        }
    }

    /// Split into the stored record, validated.
    pub fn into_record(self) -> Result<PortRecord, String> {
        let r = PortRecord {
            spec: PortSpec {
                name: self.name,
                kind: self.kind,
                iface: self.iface,
                queue: self.queue,
                options: self.options,
            },
            config: PortSettings {
                domain: self.domain,
                vlan: self.vlan,
                learning: self.learning,
                enabled: self.enabled,
                mac_limit: self.mac_limit,
                storm_control: self.storm_control,
                stp: self.stp,
                security: self.security,
            },
        };
        r.spec.validate()?;
        r.config.validate()?;
        Ok(r)
    }
}

/// Deserialize a field that may be absent (keep), `null` (clear) or a value.
fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /v1/ports/{name}`: fields left out keep their value;
/// `"storm_control": null` turns storm control off, `"security": null`
/// port security.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortPatch {
    /// Move to another bridge domain (of the same worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<VlanSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Most addresses learned on the port; 0 means the default (8192).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_limit: Option<u32>,
    /// `null` turns storm control off.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "double_option"
    )]
    #[schema(value_type = Option<StormSpec>)]
    pub storm_control: Option<Option<StormSpec>>,
    /// The port's spanning tree settings, as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<StpPortConfigSchema>)]
    pub stp: Option<StpPortConfig>,
    /// `null` turns port security off.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "double_option"
    )]
    #[schema(value_type = Option<PortSecuritySchema>)]
    pub security: Option<Option<PortSecurity>>,
}

impl PortPatch {
    pub fn apply(&self, s: &PortSettings) -> Result<PortSettings, String> {
        let n = PortSettings {
            domain: self.domain.clone().unwrap_or_else(|| s.domain.clone()),
            vlan: self.vlan.clone().unwrap_or_else(|| s.vlan.clone()),
            learning: self.learning.unwrap_or(s.learning),
            enabled: self.enabled.unwrap_or(s.enabled),
            mac_limit: self.mac_limit.unwrap_or(s.mac_limit),
            storm_control: self.storm_control.unwrap_or(s.storm_control),
            stp: self.stp.unwrap_or(s.stp),
            security: self.security.clone().unwrap_or_else(|| s.security.clone()),
        };
        n.validate()?;
        Ok(n)
    }
}

/// A static FDB entry (`POST /v1/domains/{name}/fdb`): frames to `mac`
/// in VLAN `vid` go out of `port`; added or replaced, and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticEntry {
    #[schema(minimum = 1, maximum = 4094)]
    pub vid: u16,
    #[schema(value_type = StationMac)]
    pub mac: MacAddr,
    /// A port of the domain.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub port: String,
}

impl StaticEntry {
    pub fn validate(&self) -> Result<(), String> {
        check_vid(self.vid as u32).map_err(|e| e.to_string())?;
        if !self.mac.is_valid_source() {
            return Err(format!("{} is not a unicast station address", self.mac));
        }
        check_name("port", &self.port)
    }
}

/// A static entry as stored: the entry and its domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticRecord {
    pub domain: String,
    pub vid: u16,
    pub mac: MacAddr,
    pub port: String,
}

impl StaticRecord {
    pub fn new(domain: &str, e: &StaticEntry) -> Self {
        StaticRecord {
            domain: domain.to_string(),
            vid: e.vid,
            mac: e.mac,
            port: e.port.clone(),
        }
    }
}

/// Most addresses one name may have (the embedded DNS answers them all
/// over TCP; over UDP such an answer is truncated and the client retries
/// over TCP).
pub const NAME_ADDRESSES_MAX: usize = rvs_dns::MAX_ADDRS;

/// `PUT /v1/domains/{name}/names/{host}`: the addresses a name has in the
/// network's embedded DNS (on its gateway addresses, port 53); replaced
/// when the name exists, and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameSpec {
    /// 1 to 128 unicast addresses (IPv4 answers A queries, IPv6 AAAA).
    #[schema(value_type = Vec<IpAddress>, min_items = 1, max_items = 128)]
    pub addresses: Vec<IpAddr>,
    /// The VLAN of the domain whose resolver answers the name: the
    /// gateway's (the default), or one with a DNS listener
    /// (`/v1/domains/{name}/dns/{vid}`). Each VLAN of a domain is its own
    /// name scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 4094)]
    pub vlan: Option<u16>,
}

impl NameSpec {
    pub fn validate(&self, name: &str) -> Result<(), String> {
        rvs_dns::check_name(name)?;
        if self.addresses.is_empty() || self.addresses.len() > NAME_ADDRESSES_MAX {
            return Err(format!(
                "a name has 1 to {NAME_ADDRESSES_MAX} addresses, not {}",
                self.addresses.len()
            ));
        }
        if let Some(a) = self.addresses.iter().find(|a| !unicast_endpoint(**a)) {
            return Err(format!("{a} is not a unicast endpoint address"));
        }
        if let Some(v) = self.vlan {
            check_vlan(v)?;
        }
        Ok(())
    }
}

fn unicast_endpoint(a: IpAddr) -> bool {
    !(a.is_unspecified()
        || a.is_multicast()
        || a.is_loopback()
        || matches!(a, IpAddr::V4(v) if v.is_broadcast()))
}

fn check_vlan(v: u16) -> Result<(), String> {
    if (1..=4094).contains(&v) {
        Ok(())
    } else {
        Err(format!("VLAN {v} out of range 1..=4094"))
    }
}

/// A name of a network's embedded DNS, as stored and listed (the name in
/// lower case, without a trailing dot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameRecord {
    pub domain: String,
    pub name: String,
    #[schema(value_type = Vec<IpAddress>)]
    pub addresses: Vec<IpAddr>,
    /// The VLAN whose resolver answers it; absent: the gateway's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 4094)]
    pub vlan: Option<u16>,
}

impl NameRecord {
    /// The store key: `domain/name`, or `domain/vid/name` for a name of
    /// VLAN `vid`.
    pub fn key(&self) -> String {
        name_key_in(&self.domain, self.vlan, &self.name)
    }
}

/// The key of name `name` of `domain` (names cannot contain '/').
pub fn name_key(domain: &str, name: &str) -> String {
    format!("{domain}/{}", rvs_dns::normalize(name))
}

/// The key of name `name` of `domain` in `vlan` (`None`: the gateway's).
pub fn name_key_in(domain: &str, vlan: Option<u16>, name: &str) -> String {
    match vlan {
        None => name_key(domain, name),
        Some(v) => format!("{domain}/{v}/{}", rvs_dns::normalize(name)),
    }
}

/// `DELETE /v1/domains/{name}/names/{host}`: which VLAN's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NameQuery {
    /// The VLAN the name was given (default: the gateway's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 4094)]
    pub vlan: Option<u16>,
}

/// Most addresses one DNS listener answers on.
pub const DNS_LISTENER_ADDRESSES_MAX: usize = 8;

/// `PUT /v1/domains/{name}/dns/{vid}`: resolver addresses of a bridge
/// domain in one of its VLANs other than the gateway's. They answer ARP/ND,
/// ping and DNS there with the gateway's MAC (and nothing else: they never
/// route), from the names given that VLAN. Stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsListenerSpec {
    /// 1 to 8 unicast addresses, none of them the gateway's.
    #[schema(value_type = Vec<IpAddress>, min_items = 1, max_items = 8)]
    pub addresses: Vec<IpAddr>,
}

impl DnsListenerSpec {
    pub fn validate(&self) -> Result<(), String> {
        let n = self.addresses.len();
        if n == 0 || n > DNS_LISTENER_ADDRESSES_MAX {
            return Err(format!(
                "a DNS listener has 1 to {DNS_LISTENER_ADDRESSES_MAX} addresses, not {n}"
            ));
        }
        if let Some(a) = self.addresses.iter().find(|a| !unicast_endpoint(**a)) {
            return Err(format!("{a} is not a unicast address"));
        }
        if let Some(a) = self
            .addresses
            .iter()
            .find(|a| matches!(a, IpAddr::V6(v) if v.is_unicast_link_local()))
        {
            return Err(format!(
                "{a} is link-local: give the listener a global or unique local address"
            ));
        }
        Ok(())
    }
}

/// A DNS listener as stored and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsListenerRecord {
    pub domain: String,
    #[schema(minimum = 1, maximum = 4094)]
    pub vid: u16,
    #[schema(value_type = Vec<IpAddress>)]
    pub addresses: Vec<IpAddr>,
}

impl DnsListenerRecord {
    /// The store key: `domain/vid`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.domain, self.vid)
    }

    /// The listener as the switch takes it, in domain `id`.
    pub fn to_listener(&self, id: rvs_switch::DomainId) -> rvs_switch::router::DnsListener {
        let mut l = rvs_switch::router::DnsListener::new(id, self.vid);
        for a in &self.addresses {
            match a {
                IpAddr::V4(v) => l.ipv4.push(*v),
                IpAddr::V6(v) => l.ipv6.push(*v),
            }
        }
        l
    }
}

/// Most backends one service may name.
pub const SERVICE_BACKENDS_MAX: usize = 256;
/// Most ports one service may offer.
pub const SERVICE_PORTS_MAX: usize = 64;

/// Transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

/// A port a service offers on its VIPs, and the backends' port it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServicePortSpec {
    /// 1 to 65535.
    pub port: u16,
    pub protocol: Protocol,
    /// The backends' port (default: `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u16>,
}

impl ServicePortSpec {
    pub fn target(&self) -> u16 {
        self.target_port.unwrap_or(self.port)
    }
}

/// How a service is reached: through its VIPs (balanced by the switch),
/// or by DNS round robin over the backends' addresses (Docker's `dnsrr`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    #[default]
    Vip,
    Dnsrr,
}

fn default_check_interval() -> u32 {
    1000
}
fn default_check_timeout() -> u32 {
    2500
}

/// A TCP health check of every backend: a SYN from the VIP every
/// `interval_ms`; a backend that has not answered with a SYN-ACK for
/// `timeout_ms` gets no new flows until it answers again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// The backends' port to connect to (default: the first port's target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// 100 to 60000 ms (default 1000).
    #[serde(default = "default_check_interval")]
    pub interval_ms: u32,
    /// More than the interval, at most 600000 ms (default 2500).
    #[serde(default = "default_check_timeout")]
    pub timeout_ms: u32,
}

/// `PUT /v1/domains/{name}/services/{service}`: a service of the network
/// (added or replaced; stored). Its name resolves in the network's DNS to
/// its VIPs (mode `vip`) or to its backends' addresses (mode `dnsrr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    #[serde(default)]
    pub mode: ServiceMode,
    /// Mode `vip`: one or two addresses (at most one IPv4, one IPv6) that
    /// the gateway answers for and balances; none in mode `dnsrr`.
    #[serde(default)]
    #[schema(value_type = Vec<IpAddress>, max_items = 2)]
    pub vips: Vec<IpAddr>,
    /// Mode `vip`: 1 to 64 ports.
    #[serde(default)]
    pub ports: Vec<ServicePortSpec>,
    /// 1 to 256 backends: names of the network's DNS (an endpoint's name;
    /// its addresses, and it leaves when the name goes) or addresses.
    pub backends: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
    /// Who keeps the service in line: `docker-label` for one declared by
    /// Docker containers' `rvswitch.service` labels (the daemon changes
    /// its backends as those containers come and go, and removes it with
    /// the last of them); none for one made through the API, which the
    /// daemon never changes. Setting a service without it takes it over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// [`ServiceSpec::origin`] of services declared by Docker labels.
pub const SERVICE_ORIGIN_DOCKER_LABEL: &str = "docker-label";

impl ServiceSpec {
    pub fn validate(&self, name: &str) -> Result<(), String> {
        rvs_dns::check_name(name)?;
        if let Some(o) = self
            .origin
            .as_deref()
            .filter(|o| *o != SERVICE_ORIGIN_DOCKER_LABEL)
        {
            return Err(format!(
                "origin {o:?}: the only origin is {SERVICE_ORIGIN_DOCKER_LABEL:?} (or none)"
            ));
        }
        if self.backends.is_empty() || self.backends.len() > SERVICE_BACKENDS_MAX {
            return Err(format!(
                "a service has 1 to {SERVICE_BACKENDS_MAX} backends, not {}",
                self.backends.len()
            ));
        }
        for (i, b) in self.backends.iter().enumerate() {
            match b.parse::<IpAddr>() {
                Ok(a) if a.is_unspecified() || a.is_multicast() || a.is_loopback() => {
                    return Err(format!("backend {a} is not a unicast address"));
                }
                Ok(_) => {}
                Err(_) => rvs_dns::check_name(b)
                    .map_err(|e| format!("backend {b:?} is neither an address nor a name: {e}"))?,
            }
            if self.backends[..i].contains(b) {
                return Err(format!("backend {b} is given twice"));
            }
        }
        match self.mode {
            ServiceMode::Dnsrr => {
                if !self.vips.is_empty() || !self.ports.is_empty() || self.health_check.is_some() {
                    return Err(
                        "a dnsrr service has no VIPs, ports or health check: clients reach the backends directly"
                            .into(),
                    );
                }
                return Ok(());
            }
            ServiceMode::Vip => {}
        }
        let v4 = self.vips.iter().filter(|a| a.is_ipv4()).count();
        if self.vips.is_empty() || v4 > 1 || self.vips.len() - v4 > 1 {
            return Err("a vip service has one or two VIPs, at most one of each family".into());
        }
        if let Some(a) = self
            .vips
            .iter()
            .find(|a| !rvs_switch::lb::routed_unicast(**a))
        {
            return Err(format!(
                "VIP {a} is not a unicast address the gateway routes to"
            ));
        }
        if self.ports.is_empty() || self.ports.len() > SERVICE_PORTS_MAX {
            return Err(format!(
                "a vip service has 1 to {SERVICE_PORTS_MAX} ports, not {}",
                self.ports.len()
            ));
        }
        for (i, p) in self.ports.iter().enumerate() {
            if p.port == 0 || p.target() == 0 {
                return Err("port 0 is not a service port".into());
            }
            let dup = self.ports[..i]
                .iter()
                .any(|q| q.port == p.port && q.protocol == p.protocol);
            if dup {
                return Err(
                    format!("port {}/{:?} is given twice", p.port, p.protocol).to_lowercase()
                );
            }
        }
        if let Some(h) = self.health_check {
            if !(100..=60_000).contains(&h.interval_ms) {
                return Err("health_check.interval_ms is 100 to 60000".into());
            }
            if h.timeout_ms <= h.interval_ms || h.timeout_ms > 600_000 {
                return Err(
                    "health_check.timeout_ms is more than the interval and at most 600000".into(),
                );
            }
            if h.port == Some(0) {
                return Err("health_check.port 0 is not a port".into());
            }
        }
        Ok(())
    }

    /// The port the health check connects to.
    pub fn check_port(&self) -> Option<u16> {
        let h = self.health_check?;
        h.port.or_else(|| self.ports.first().map(|p| p.target()))
    }
}

/// A service of a network, as stored (the name in lower case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRecord {
    pub domain: String,
    pub name: String,
    pub spec: ServiceSpec,
}

impl ServiceRecord {
    /// The store key: `domain/name`.
    pub fn key(&self) -> String {
        name_key(&self.domain, &self.name)
    }
}

/// A backend of a service as the switch uses it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackendView {
    /// As the service names it.
    pub backend: String,
    /// Its address now (none while the name has no address).
    #[schema(value_type = Option<IpAddress>)]
    pub address: Option<IpAddr>,
    /// Receives new flows (false: its health check fails); absent in mode
    /// `dnsrr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<bool>,
}

/// `GET /v1/domains/{name}/services/{service}`: the stored service and
/// what the switch does with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceView {
    pub service: ServiceRecord,
    /// One row per backend address (a name with two addresses gives two).
    pub backends: Vec<BackendView>,
    /// Flows in the switch's flow table for this service.
    pub flows: u64,
}

/// `DELETE /v1/domains/{name}/fdb?port=P&vid=V`: flush learned entries
/// (all of them, or only those of a port and/or VLAN).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FlushQuery {
    /// Only the entries learned on this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Only the entries of this VLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 4094)]
    pub vid: Option<u16>,
}

/// The answer to a flush: how many learned entries went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Flushed {
    pub flushed: usize,
}

/// `POST /v1/trace`: record the pipeline's verdicts for the next `count`
/// packets (of `port` only, if given); `GET /v1/trace` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TraceArm)]
pub struct TraceRequest {
    #[schema(minimum = 1, maximum = 10_000)]
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

/// Most packets one trace may arm for.
pub const TRACE_MAX: u32 = 10_000;

/// `POST /v1/trace/inject`: push one frame through the pipeline as if it
/// arrived on `port` and report each stage's verdict, sending nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TraceInject)]
pub struct TraceInjectRequest {
    /// The ingress port's name.
    pub port: String,
    /// The Ethernet frame from the destination MAC on, in hex (two digits a
    /// byte; spaces, colons and dashes between bytes are ignored).
    #[schema(example = "ffffffffffff0200000000010806")]
    pub frame: String,
    /// Add an 802.1Q tag of this VLAN (the domain's TPID) in front of the
    /// EtherType, as if the frame arrived tagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 4094)]
    pub vlan: Option<u16>,
}

/// Parse hex bytes, ignoring whitespace, `:` and `-` between them (how
/// tcpdump -xx, Wireshark and `ip link` print frames). Plain std: the
/// `hex` crate would still need the separators stripped first, for the
/// one loop below.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !(b.is_ascii_whitespace() || *b == b':' || *b == b'-'))
        .collect();
    if let Some(p) = digits.iter().position(|b| !b.is_ascii_hexdigit()) {
        return Err(format!(
            "frame is not hex: {:?} at digit {}",
            digits[p] as char,
            p + 1
        ));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "frame has an odd number of hex digits ({})",
            digits.len()
        ));
    }
    Ok(digits
        .chunks(2)
        .map(|d| {
            let hi = (d[0] as char).to_digit(16).expect("checked hex");
            let lo = (d[1] as char).to_digit(16).expect("checked hex");
            (hi * 16 + lo) as u8
        })
        .collect())
}

/// `GET /v1/ports/{name}/capture?count=N&seconds=S`: stop after `count`
/// frames or `seconds` (default 10 when neither is given; with only a
/// count, at most a day).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CaptureQuery {
    /// Stop after this many frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 86400)]
    pub seconds: Option<u64>,
}

/// Capture length when neither a count nor a duration is given.
pub const CAPTURE_DEFAULT_SECS: u64 = 10;
/// Longest capture.
pub const CAPTURE_MAX_SECS: u64 = 24 * 3600;

impl CaptureQuery {
    /// (most frames, seconds) after defaults and checks.
    pub fn limits(&self) -> Result<(Option<u64>, u64), String> {
        if self.count == Some(0) || self.seconds == Some(0) {
            return Err("count and seconds must be above 0".into());
        }
        let secs = match (self.count, self.seconds) {
            (_, Some(s)) if s > CAPTURE_MAX_SECS => {
                return Err(format!("seconds {s} is above {CAPTURE_MAX_SECS}"));
            }
            (_, Some(s)) => s,
            (Some(_), None) => CAPTURE_MAX_SECS,
            (None, None) => CAPTURE_DEFAULT_SECS,
        };
        Ok((self.count, secs))
    }
}

/// `POST /v1/ports/{name}/remotes`: add `remote` to the flood list, or
/// with `mac`, a static entry sending that MAC to `remote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RemoteAdd)]
pub struct AddRemote {
    /// The remote VTEP's address (not this port's own `local`).
    #[schema(value_type = IpAddress)]
    pub remote: IpAddr,
    /// With a MAC: a static entry sending it to `remote`; without:
    /// `remote` joins the flood list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<MacAddress>)]
    pub mac: Option<MacAddr>,
}

/// Where a network lives: on this host only, or on every host of the
/// cluster that creates it (`rvswitch daemon --store etcd://…`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Local,
    /// Stored in etcd by name: every host creating the same name gets the
    /// same VNI and subnet, and addresses come from the cluster.
    Global,
}

/// `POST /v1/cnm/networks`: a network made by the daemon's CNM driver
/// itself (what `docker network create -d rvswitch` makes, for clients
/// that are not Docker: the lab tool, scripts). `scope: global` is
/// Docker's `-o rvswitch.scope=global -o rvswitch.name=NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CnmNetworkCreate)]
pub struct CreateCnmNetwork {
    /// The network's id on this host and, for a global network, its name
    /// in the cluster: 1 to 64 letters, digits, '-', '_', '.'. Its bridge
    /// domain is `dk-` and the first 12 characters.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "blue")]
    pub name: String,
    #[serde(default)]
    pub scope: Scope,
    /// IPv4 subnet (`--subnet`); a global network without one gets the
    /// cluster's (a /24 of 10.200.0.0/16), with one it must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Cidr>)]
    pub subnet: Option<String>,
    /// IPv6 subnet (`--ipv6 --subnet`); endpoints' IPv6 addresses are
    /// given by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Cidr>)]
    pub ipv6_subnet: Option<String>,
    /// VXLAN network identifier (`-o rvswitch.vni`); a global network
    /// without one gets the cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 16_777_215)]
    pub vni: Option<u32>,
    /// No gateway, no route out (`--internal`; what global networks need
    /// for now).
    #[serde(default)]
    pub internal: bool,
}

/// `POST /v1/cnm/networks/{name}/endpoints`: an endpoint (a TAP port in
/// the network's domain), as Docker's CreateEndpoint makes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CnmEndpointCreate)]
pub struct CreateCnmEndpoint {
    /// 1 to 64 letters, digits, '-', '_', '.'.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "web1")]
    pub id: String,
    /// IPv4 address with its prefix length; none: the cluster's next free
    /// one on a global network, no IPv4 on a local one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Cidr>)]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Cidr>)]
    pub address_ipv6: Option<String>,
    /// None: one derived from the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<StationMac>)]
    pub mac: Option<MacAddr>,
    /// Ports published on the host to the endpoint's IPv4 address (as
    /// `docker run -p`); the endpoint in the answer lists them under
    /// `published`, with the host port taken where 0 was asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PublishPort>,
}

/// A published port: `host_ip`:`host_port` on the host forwards to the
/// endpoint's `port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishPort {
    /// The endpoint's port.
    #[schema(minimum = 1, maximum = 65535, example = 80)]
    pub port: u16,
    /// The host's port; 0 (the default): a free one, reported back.
    #[serde(default)]
    #[schema(maximum = 65535, example = 8080)]
    pub host_port: u16,
    /// `tcp` (the default) or `udp`.
    #[serde(default)]
    pub protocol: PublishProtocol,
    /// None: every address, IPv4 and IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "127.0.0.1")]
    pub host_ip: Option<std::net::IpAddr>,
}

/// The transport protocol of a published port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PublishProtocol {
    #[default]
    Tcp,
    Udp,
}

/// `POST /v1/cnm/networks/{name}/endpoints/{id}/join`: make the
/// endpoint's interface for a network namespace (Docker's Join). The
/// caller moves the interface into the namespace and sets its addresses,
/// as the engine does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CnmJoin)]
pub struct JoinCnmEndpoint {
    /// The namespace's path (`/var/run/netns/NAME`).
    #[schema(example = "/var/run/netns/web1")]
    pub sandbox: String,
}

/// What a join made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = CnmJoined)]
pub struct CnmJoinView {
    /// The interface (in the daemon's namespace) to move into the sandbox.
    pub interface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<IpAddress>)]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<IpAddress>)]
    pub gateway_ipv6: Option<IpAddr>,
}

/// A VXLAN port's remotes as stored and as the port sees them.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Remotes)]
pub struct RemotesView {
    pub port: String,
    /// The port's VNI (option `vni`).
    #[schema(value_type = Option<u32>)]
    pub vni: serde_json::Value,
    /// Head-end replication list.
    #[schema(value_type = Vec<IpAddress>)]
    pub flood: Vec<IpAddr>,
    /// Configured MAC → remote VTEP, as `[MAC, remote]` pairs.
    #[serde(rename = "static")]
    #[schema(value_type = Vec<Vec<String>>)]
    pub statics: Vec<(MacAddr, IpAddr)>,
    /// Remote endpoints' addresses the port answers ARP requests and
    /// Neighbor Solicitations for itself (ARP/ND suppression), as
    /// `[address, MAC]` pairs; set by the cluster's endpoint registry.
    #[schema(value_type = Vec<Vec<String>>)]
    pub neighbors: Vec<(IpAddr, MacAddr)>,
    /// The port's remote table (learned and static), if it is running.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub entries: Option<serde_json::Value>,
    /// The port's counters, if it is running.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, u64>>)]
    pub stats: Option<serde_json::Value>,
}

// ---- views ---------------------------------------------------------------

/// A bridge domain as listed: its settings and where it lives.
// Serialize only: the flattened record denies unknown fields.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Domain)]
pub struct DomainView {
    #[serde(flatten)]
    pub record: DomainRecord,
    /// The worker thread that owns the domain and its ports.
    pub worker: usize,
    /// The domain's ports by name.
    pub ports: Vec<String>,
    /// Entries in the domain's FDB (learned and static).
    pub fdb_entries: usize,
}

/// Whether a port's back end is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    Up,
    /// It could not be opened (`error` says why); the port stays stored.
    Failed,
}

/// A port as listed: its back end, its settings and its state.
// Serialize only: the flattened spec denies unknown fields.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Port)]
pub struct PortView {
    #[serde(flatten)]
    pub spec: PortSpec,
    #[serde(flatten)]
    pub config: PortSettings,
    /// The worker thread that owns the port (none while it is not
    /// attached).
    pub worker: Option<usize>,
    /// "up" when the back end is attached, "failed" when it could not be
    /// opened (then `error` says why; the port stays stored).
    #[schema(value_type = PortState)]
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Addresses learned on the port.
    pub learned: u32,
    /// The back end's last rx error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// An FDB entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = FdbEntry)]
pub struct FdbEntryView {
    pub vid: u16,
    #[schema(value_type = MacAddress)]
    pub mac: MacAddr,
    pub port: String,
    /// Added with `POST /v1/domains/{name}/fdb` (never ages).
    #[serde(rename = "static")]
    pub is_static: bool,
    pub age_secs: u32,
    /// The address moves between ports too often and is held back.
    pub damped: bool,
}

/// A port's counters.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PortStats {
    pub name: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Drops by reason id (every reason, zeros included).
    pub drops: BTreeMap<String, u64>,
    pub learned: u32,
}

/// `GET`/`PUT /v1/log`: the daemon's log filter, in `RUST_LOG` syntax: a
/// level (`debug`) or directives (`info,rvswitch::daemon=debug`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogFilter {
    #[schema(example = "info,rvswitch::daemon=debug", min_length = 1)]
    pub filter: String,
}

/// Every port's counters and the pipeline's.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    pub ports: Vec<PortStats>,
    /// Pipeline stage counters by id, summed over workers (the router's
    /// included).
    pub stages: BTreeMap<String, u64>,
    /// Packets the router dropped, by reason id (non-zero ones).
    #[serde(default)]
    pub l3_drops: BTreeMap<String, u64>,
}

/// One traced packet: where it came in and each stage's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = TraceRecord)]
pub struct TraceView {
    pub worker: usize,
    pub seq: u64,
    pub in_port: String,
    pub len: usize,
    /// The packet's first bytes in hex.
    pub head_hex: String,
    pub steps: Vec<TraceStepView>,
}

/// What one injected frame would do (`POST /v1/trace/inject`); nothing
/// was sent, learned or counted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = TraceInjectResult)]
pub struct TraceInjectView {
    /// The worker that owns the port (and ran the frame).
    pub worker: usize,
    pub in_port: String,
    pub len: usize,
    /// The frame as it entered, in hex (with the tag asked for).
    pub frame: String,
    /// Each stage's verdict, in pipeline order.
    pub steps: Vec<TraceStepView>,
    /// Every frame a real run would transmit, in order.
    pub sent: Vec<TraceSentView>,
}

/// A frame a real run would transmit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = TraceSent)]
pub struct TraceSentView {
    pub port: String,
    pub len: usize,
    /// The exact bytes, in hex (after tag edits and, when routed, the MAC
    /// rewrite and TTL).
    pub frame: String,
}

/// A pipeline stage and what it decided.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = TraceStep)]
pub struct TraceStepView {
    pub stage: String,
    pub verdict: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_frames_take_the_usual_separators_and_refuse_the_rest() {
        let want = vec![0xff, 0x02, 0x0a, 0xbc];
        for s in [
            "ff020abc",
            "FF 02 0A BC",
            "ff:02:0a:bc",
            "ff-02-0a-bc\n",
            "ff02 0abc",
        ] {
            assert_eq!(parse_hex(s).as_ref(), Ok(&want), "{s:?}");
        }
        assert!(parse_hex("ff0").unwrap_err().contains("odd number"));
        assert!(
            parse_hex("ff0g")
                .unwrap_err()
                .contains("not hex: 'g' at digit 4")
        );
        assert!(parse_hex("0x00").unwrap_err().contains("not hex"));
        assert_eq!(parse_hex(""), Ok(vec![]));
    }

    fn port(json: &str) -> Result<PortRecord, String> {
        serde_json::from_str::<CreatePort>(json)
            .map_err(|e| e.to_string())?
            .into_record()
    }

    #[test]
    fn port_requests_are_validated() {
        let r = port(r#"{"name":"p1","kind":"tap","domain":"bd0","vlan":{"mode":"trunk","allowed":"10,20-30","native":1}}"#).unwrap();
        assert!(matches!(
            r.config.vlan,
            VlanSpec::Trunk {
                native: Some(1),
                ..
            }
        ));
        assert!(r.config.learning && r.config.enabled);
        for (bad, why) in [
            (
                r#"{"name":"p1","kind":"tap","domain":"bd0","vlan":{"mode":"access","pvid":4095}}"#,
                "4095",
            ),
            (
                r#"{"name":"p1","kind":"tap","domain":"bd0","vlan":{"mode":"access","pvid":0}}"#,
                "outside",
            ),
            (
                r#"{"name":"p1","kind":"tap","domain":"bd0","vlan":{"mode":"trunk","allowed":"1-5000"}}"#,
                "5000",
            ),
            (
                r#"{"name":"p1","kind":"tap","domain":"bd0","vlan":{"mode":"access","pvid":5,"x":1}}"#,
                "unknown field",
            ),
            (
                r#"{"name":"p1","kind":"tap","domain":"bd0","colour":"red"}"#,
                "unknown field",
            ),
            (
                r#"{"name":"p1","kind":"tap","domain":"bd0","storm_control":{"pps":0,"burst":1}}"#,
                "storm",
            ),
            (r#"{"name":"p1","kind":"tap"}"#, "domain"),
        ] {
            let e = port(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn patches_merge_and_clear() {
        let r = port(
            r#"{"name":"p1","kind":"tap","domain":"bd0","storm_control":{"pps":10,"burst":5}}"#,
        )
        .unwrap();
        let keep: PortPatch = serde_json::from_str(r#"{"mac_limit":7}"#).unwrap();
        let n = keep.apply(&r.config).unwrap();
        assert_eq!(n.mac_limit, 7);
        assert_eq!(n.storm_control, r.config.storm_control);
        let clear: PortPatch = serde_json::from_str(r#"{"storm_control":null}"#).unwrap();
        assert_eq!(clear.apply(&r.config).unwrap().storm_control, None);
        let bad: PortPatch =
            serde_json::from_str(r#"{"vlan":{"mode":"tunnel","svid":9999}}"#).unwrap();
        assert!(bad.apply(&r.config).is_err());
        assert!(serde_json::from_str::<PortPatch>(r#"{"name":"x"}"#).is_err());
    }

    #[test]
    fn domains_and_statics_are_validated() {
        let d: DomainRecord =
            serde_json::from_str(r#"{"name":"bd0","vlan_protocol":"802.1ad"}"#).unwrap();
        assert_eq!(d.aging_secs, 300);
        assert_eq!(d.vlan_protocol, VlanProtocol::Dot1Ad);
        d.validate().unwrap();
        assert!(
            serde_json::from_str::<DomainRecord>(r#"{"name":"bd0","vlan_protocol":"qinq"}"#)
                .is_err()
        );
        let short = DomainRecord {
            aging_secs: 3,
            ..d.clone()
        };
        assert!(short.validate().is_err());
        let e = serde_json::from_str::<StaticEntry>(
            r#"{"vid":1,"mac":"02:00:00:00:00:zz","port":"p"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid MAC"), "{e}");
        let s: StaticEntry =
            serde_json::from_str(r#"{"vid":4095,"mac":"02:00:00:00:00:01","port":"p"}"#).unwrap();
        assert!(s.validate().is_err());
        let m: StaticEntry =
            serde_json::from_str(r#"{"vid":1,"mac":"01:00:5e:00:00:01","port":"p"}"#).unwrap();
        assert!(m.validate().is_err(), "multicast is not a station");
    }

    #[test]
    fn capture_limits() {
        let q = |c, s| {
            CaptureQuery {
                count: c,
                seconds: s,
            }
            .limits()
        };
        assert_eq!(q(None, None).unwrap(), (None, CAPTURE_DEFAULT_SECS));
        assert_eq!(q(Some(5), None).unwrap(), (Some(5), CAPTURE_MAX_SECS));
        assert_eq!(q(Some(5), Some(2)).unwrap(), (Some(5), 2));
        assert!(q(Some(0), None).is_err());
        assert!(q(None, Some(CAPTURE_MAX_SECS + 1)).is_err());
    }
}
