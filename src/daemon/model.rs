//! The control API's data: what is stored (records), what clients send
//! (requests, patches) and what they get back (views), with validation.
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

use crate::spec::{PortKind, PortSpec, check_name};

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

/// A bridge domain as stored and as created (`POST /v1/domains`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainRecord {
    pub name: String,
    /// Seconds before an unrefreshed learned entry expires; 0 disables aging.
    #[serde(default = "default_aging")]
    pub aging_secs: u32,
    /// Most learned entries in the domain (default 16384, see
    /// `rvs_switch::fdb::DEFAULT_MAX_ENTRIES`); 0 also means the default.
    /// There is no unlimited: a MAC flood would take all memory.
    #[serde(default = "default_max_macs")]
    pub max_macs: u32,
    #[serde(default)]
    pub vlan_protocol: VlanProtocol,
    /// The domain's router interface; none makes the domain internal (L2
    /// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySpec>,
    /// Run RSTP on the domain's ports (`{}` for the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
/// `"gateway": null` removes the gateway.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainPatch {
    pub aging_secs: Option<u32>,
    pub max_macs: Option<u32>,
    pub vlan_protocol: Option<VlanProtocol>,
    #[serde(default, deserialize_with = "double_option")]
    pub gateway: Option<Option<GatewaySpec>>,
    /// `null` turns RSTP off.
    #[serde(default, deserialize_with = "double_option")]
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

/// A bridge domain's gateway (router interface) as the API states it:
/// `{"addresses": ["10.0.1.1/24", "fd00:1::1/64"]}` plus optional MAC
/// (derived from the domain name when absent, so it is stable across
/// restarts), VLAN, MTU, route table and whether it routes to other
/// domains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Addresses with their subnet length; each subnet becomes a connected
    /// route.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The VLAN of the domain the gateway lives in.
    #[serde(default = "one")]
    pub vid: u16,
    /// Largest IP packet routed out of this gateway (default 1500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// Route table (VRF-like): gateways in one table route to each other.
    #[serde(default)]
    pub table: u16,
    /// Route between this domain and the others of its table.
    #[serde(default = "yes")]
    pub routing: bool,
    /// An uplink: every domain of the table routes to and from it, even
    /// those with routing off (how isolated networks reach the outside).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRecord {
    #[serde(default)]
    pub table: u16,
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
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

/// A route as listed: static ones from the store, connected ones from
/// the gateways.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteView {
    pub table: u16,
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    pub domain: String,
    /// "connected" or "static".
    pub kind: String,
}

/// A neighbor (ARP/ND entry) of a gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NeighborView {
    pub domain: String,
    pub ip: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    pub state: String,
    /// Packets waiting for resolution.
    pub pending: usize,
}

/// A port's VLAN membership as the API states it (`{"mode": "access", "pvid": 10}`,
/// `{"mode": "trunk", "allowed": "10,20-30", "native": 1}`, `{"mode": "tunnel", "svid": 100}`).
// The trunk's 512-byte VLAN bitmap makes the variants unequal, as in the
// switch's own `VlanMode`; these live in control-plane records, not per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum VlanSpec {
    Access {
        pvid: u16,
    },
    Trunk {
        #[serde(default)]
        allowed: VlanSet,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        native: Option<u16>,
    },
    Tunnel {
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

/// Storm control as the API states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StormSpec {
    /// Flooded frames admitted per second.
    pub pps: u64,
    /// Burst in frames.
    pub burst: u64,
}

/// How a port takes part in its bridge domain, with the domain by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSettings {
    pub domain: String,
    #[serde(default)]
    pub vlan: VlanSpec,
    #[serde(default = "yes")]
    pub learning: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Most addresses learned on this port (default 8192, see
    /// `rvs_switch::fdb::DEFAULT_PORT_MAX_ENTRIES`); 0 also means the
    /// default.
    #[serde(default = "default_mac_limit")]
    pub mac_limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_control: Option<StormSpec>,
    /// Spanning tree settings (edge, cost, priority), used when the
    /// domain runs RSTP.
    #[serde(default, skip_serializing_if = "is_default_stp")]
    pub stp: StpPortConfig,
    /// Port security: the one station (MAC, and addresses if given) that
    /// may send from this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// `POST /v1/ports`: the spec and the settings in one flat object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePort {
    pub name: String,
    pub kind: PortKind,
    #[serde(default)]
    pub iface: Option<String>,
    #[serde(default)]
    pub queue: u32,
    #[serde(default)]
    pub options: BTreeMap<String, serde_json::Value>,
    pub domain: String,
    #[serde(default)]
    pub vlan: VlanSpec,
    #[serde(default = "yes")]
    pub learning: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_mac_limit")]
    pub mac_limit: u32,
    #[serde(default)]
    pub storm_control: Option<StormSpec>,
    #[serde(default)]
    pub stp: StpPortConfig,
    #[serde(default)]
    pub security: Option<PortSecurity>,
}

impl CreatePort {
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
/// `"storm_control": null` turns storm control off.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortPatch {
    pub domain: Option<String>,
    pub vlan: Option<VlanSpec>,
    pub learning: Option<bool>,
    pub enabled: Option<bool>,
    pub mac_limit: Option<u32>,
    #[serde(default, deserialize_with = "double_option")]
    pub storm_control: Option<Option<StormSpec>>,
    pub stp: Option<StpPortConfig>,
    /// `null` turns port security off.
    #[serde(default, deserialize_with = "double_option")]
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

/// A static FDB entry as requested (`POST /v1/domains/{name}/fdb`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticEntry {
    pub vid: u16,
    pub mac: MacAddr,
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

/// `DELETE /v1/domains/{name}/fdb?port=P&vid=V`: flush learned entries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlushQuery {
    pub port: Option<String>,
    pub vid: Option<u16>,
}

/// `POST /v1/trace`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRequest {
    pub count: u32,
    #[serde(default)]
    pub port: Option<String>,
}

/// Most packets one trace may arm for.
pub const TRACE_MAX: u32 = 10_000;

/// `GET /v1/ports/{name}/capture?count=N&seconds=S`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureQuery {
    pub count: Option<u64>,
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

// ---- views ---------------------------------------------------------------

/// Serialize only: the flattened record denies unknown fields.
#[derive(Debug, Clone, Serialize)]
pub struct DomainView {
    #[serde(flatten)]
    pub record: DomainRecord,
    /// The worker thread that owns the domain and its ports.
    pub worker: usize,
    pub ports: Vec<String>,
    pub fdb_entries: usize,
}

/// Serialize only: the flattened spec denies unknown fields.
#[derive(Debug, Clone, Serialize)]
pub struct PortView {
    #[serde(flatten)]
    pub spec: PortSpec,
    #[serde(flatten)]
    pub config: PortSettings,
    pub worker: Option<usize>,
    /// "up" when the back end is attached, "failed" when it could not be
    /// opened (then `error` says why; the port stays stored).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub learned: u32,
    /// The back end's last rx error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FdbEntryView {
    pub vid: u16,
    pub mac: MacAddr,
    pub port: String,
    #[serde(rename = "static")]
    pub is_static: bool,
    pub age_secs: u32,
    pub damped: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    pub ports: Vec<PortStats>,
    /// Pipeline stage counters by id, summed over workers (the router's
    /// included).
    pub stages: BTreeMap<String, u64>,
    /// Packets the router dropped, by reason id (non-zero ones).
    #[serde(default)]
    pub l3_drops: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceView {
    pub worker: usize,
    pub seq: u64,
    pub in_port: String,
    pub len: usize,
    pub head_hex: String,
    pub steps: Vec<TraceStepView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceStepView {
    pub stage: String,
    pub verdict: String,
}

#[cfg(test)]
mod tests {
    use super::*;

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
