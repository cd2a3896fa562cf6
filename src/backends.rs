//! The real port back ends behind the daemon's [`PortFactory`]: TAP, AF_XDP
//! and AF_PACKET from `rvs-drivers`, chosen by the spec's kind, with the
//! spec's options applied and rejected when unknown.
//!
//! Owns: the mapping from a `PortSpec` to a driver call, and the per-worker
//! AF_XDP UMEM. Never: packet processing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use rvs_drivers::afpacket::{AfPacketConfig, AfPacketError, AfPacketPort};
use rvs_drivers::afxdp::{AfXdpConfig, AfXdpError, AfXdpPort, Umem, XdpModePreference, ZeroCopy};
use rvs_drivers::impair::{Impaired, Impairment};
use rvs_drivers::tap::{TapError, TapOffload, TapOptions, TapPort};
use rvs_drivers::vtep::{VtepConfig, VtepHandle, VtepPort};
use rvs_switch::MacAddr;
use rvs_switch::PacketPool;
use rvs_switch::batch::Batch;
use rvs_switch::port::{Port, PortError, TxDone};
use rvs_switch::vxlan::Vni;
use serde_json::Value;

use crate::spec::{OpenError, PortFactory, PortKind, PortSpec};

thread_local! {
    /// The AF_XDP UMEM of the worker this thread runs: the factory is called
    /// on the worker thread that will own the port, and every AF_XDP port of
    /// one worker shares one UMEM (its pool) so forwarding moves descriptors.
    /// It lives as long as the worker thread; the pool's region token keeps
    /// the pool from freeing memory under the kernel should the order of
    /// teardown ever differ.
    static UMEM: RefCell<Option<Umem>> = const { RefCell::new(None) };
}

/// The factory the daemon uses outside tests.
pub fn driver_factory() -> PortFactory {
    Arc::new(|spec: &PortSpec, pool: &mut PacketPool| open(spec, pool))
}

fn open(spec: &PortSpec, pool: &mut PacketPool) -> Result<Box<dyn Port>, OpenError> {
    // `impair` is the wrapper's option, whatever the back end.
    if let Some(v) = spec.options.get("impair") {
        let cfg: Impairment =
            serde_json::from_value(v.clone()).map_err(|e| format!("option impair: {e}"))?;
        cfg.validate()?;
        let mut inner = spec.clone();
        inner.options.remove("impair");
        let port = open(&inner, pool)?;
        return Ok(Box::new(Impaired::new(port, cfg)?));
    }
    let port: Box<dyn Port> = match spec.kind {
        PortKind::Tap => Box::new(open_tap(spec, pool)?),
        PortKind::Afxdp => Box::new(open_afxdp(spec, pool)?),
        PortKind::Afpacket => Box::new(open_afpacket(spec)?),
        PortKind::Vxlan => Box::new(open_vxlan(spec)?),
    };
    if port.name() == spec.name {
        Ok(port)
    } else {
        Ok(Box::new(Renamed {
            name: spec.name.clone(),
            inner: port,
        }))
    }
}

struct Opts<'a> {
    spec: &'a PortSpec,
    used: Vec<&'static str>,
}

impl<'a> Opts<'a> {
    fn new(spec: &'a PortSpec) -> Self {
        Opts {
            spec,
            used: Vec::new(),
        }
    }
    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.spec.options.get(key)
    }
    fn u32(&mut self, key: &'static str) -> Result<Option<u32>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| format!("option {key} must be a non-negative integer, not {v}")),
        }
    }
    fn bool(&mut self, key: &'static str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| format!("option {key} must be true or false, not {v}")),
        }
    }
    fn str(&mut self, key: &'static str) -> Result<Option<&'a str>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| format!("option {key} must be a string, not {v}")),
        }
    }
    /// Refuse options nobody asked for (a typo must not be silently ignored).
    fn finish(self) -> Result<(), String> {
        let unknown: Vec<&str> = self
            .spec
            .options
            .keys()
            .map(String::as_str)
            .filter(|k| !self.used.contains(k))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} port {}: unknown option(s) {}; known: {}",
                self.spec.kind,
                self.spec.name,
                unknown.join(", "),
                self.used.join(", ")
            ))
        }
    }
}

fn open_tap(spec: &PortSpec, pool: &PacketPool) -> Result<TapPort, OpenError> {
    let mut o = Opts::new(spec);
    let device = spec.iface.as_deref().unwrap_or(&spec.name);
    let mut t = TapOptions::for_pool(device, pool);
    if let Some(p) = o.bool("persist")? {
        t = t.persist(p);
    }
    let ns = o.str("netns")?.map(str::to_string);
    let ifname = o.str("netns_ifname")?.map(str::to_string);
    if ifname.is_some() && ns.is_none() {
        return Err("option netns_ifname needs option netns".into());
    }
    t = t.netns(ns, ifname);
    if let Some(m) = o.str("mac")? {
        let mac: MacAddr = m
            .parse()
            .map_err(|_| format!("option mac must be a MAC address, not {m:?}"))?;
        t = t.mac(Some(mac.0));
    }
    if let Some(m) = o.u32("mtu")? {
        t = t.mtu(m);
    }
    if let Some(a) = o.str("alias")? {
        if a.len() > 255 {
            return Err("option alias is at most 255 bytes".into());
        }
        t = t.alias(Some(a.to_string()));
    }
    if let Some(mq) = o.bool("multi_queue")? {
        t = t.multi_queue(mq);
    }
    if let Some(off) = o.str("offload")? {
        t = t.offload(match off {
            "none" => TapOffload::None,
            "csum" => TapOffload::Csum,
            "tso" if pool.large_capacity() > 0 => TapOffload::Tso,
            "tso" => return Err("offload tso needs a pool with large frames".into()),
            other => {
                return Err(
                    format!("option offload must be none, csum or tso, not {other:?}").into(),
                );
            }
        });
    }
    o.finish()?;
    TapPort::create(&t, pool).map_err(|e| match e {
        TapError::Config { .. } => OpenError::Config(e.to_string()),
        e => driver_error(None, &e),
    })
}

/// The loopback interface cannot carry a port: a frame the switch sends on
/// it comes straight back in, so every flood would loop through the switch.
/// Known by name (`lo`) or by its IFF_LOOPBACK flag in sysfs, should it
/// have been renamed.
fn not_loopback(spec: &PortSpec, iface: &str) -> Result<(), OpenError> {
    const IFF_LOOPBACK: u32 = 0x8;
    let flagged = std::fs::read_to_string(format!("/sys/class/net/{iface}/flags"))
        .ok()
        .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|f| f & IFF_LOOPBACK != 0);
    if iface == "lo" || flagged {
        return Err(OpenError::Config(format!(
            "{} port {}: {iface} is the loopback interface, which cannot carry a \
             switch port (what the switch sends on it comes straight back)",
            spec.kind, spec.name
        )));
    }
    Ok(())
}

fn open_afxdp(spec: &PortSpec, pool: &mut PacketPool) -> Result<AfXdpPort, OpenError> {
    let iface = spec.iface.as_deref().ok_or("afxdp ports need an iface")?;
    let mut o = Opts::new(spec);
    let mut cfg = AfXdpConfig {
        queue: spec.queue,
        ..AfXdpConfig::default()
    };
    if let Some(m) = o.str("xdp_mode")? {
        cfg.xdp_mode = match m {
            "auto" => XdpModePreference::Auto,
            "native" => XdpModePreference::Native,
            "generic" => XdpModePreference::Generic,
            other => {
                return Err(format!(
                    "option xdp_mode must be auto, native or generic, not {other:?}"
                )
                .into());
            }
        };
    }
    if let Some(z) = o.str("zero_copy")? {
        cfg.zero_copy = match z {
            "auto" => ZeroCopy::Auto,
            "never" => ZeroCopy::Never,
            "require" => ZeroCopy::Require,
            other => {
                return Err(format!(
                    "option zero_copy must be auto, never or require, not {other:?}"
                )
                .into());
            }
        };
    }
    if let Some(b) = o.bool("disable_tx_checksum")? {
        cfg.disable_tx_checksum = b;
    }
    o.finish()?;
    not_loopback(spec, iface)?;
    let umem = UMEM.with(|u| -> Result<Umem, OpenError> {
        let mut u = u.borrow_mut();
        match u.as_ref() {
            Some(umem) if umem.is_pool(pool) => Ok(umem.clone()),
            _ => {
                let umem =
                    Umem::new(pool, cfg.ring_size).map_err(|e| OpenError::Failed(e.to_string()))?;
                *u = Some(umem.clone());
                Ok(umem)
            }
        }
    })?;
    AfXdpPort::open(&umem, pool, iface, &cfg).map_err(|e| match e {
        AfXdpError::Config { .. } => OpenError::Config(e.to_string()),
        e => driver_error(Some(iface), &e),
    })
}

/// Control handles of the open VXLAN ports, by port name: the control
/// plane changes flood lists and static remote entries through them while
/// the port runs on its worker.
static VTEP_HANDLES: Mutex<Option<HashMap<String, VtepHandle>>> = Mutex::new(None);

/// The control handle of VXLAN port `name`, if one is open.
pub fn vtep_handle(name: &str) -> Option<VtepHandle> {
    VTEP_HANDLES
        .lock()
        .expect("vtep handles lock")
        .as_ref()
        .and_then(|m| m.get(name).cloned())
}

/// What a VXLAN port's options say about its remotes: the flood list
/// (`"remotes": ["192.0.2.2"]`) and static remote MACs
/// (`"static": {"02:00:00:00:00:01": "192.0.2.2"}`).
pub type Remotes = (Vec<IpAddr>, Vec<(MacAddr, IpAddr)>);

pub fn vxlan_remotes(spec: &PortSpec) -> Result<Remotes, String> {
    let ip = |v: &Value, what: &str| -> Result<IpAddr, String> {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("option {what}: {v} is not an IP address"))
    };
    let flood = match spec.options.get("remotes") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| ip(v, "remotes"))
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(format!(
                "option remotes must be a list of addresses, not {v}"
            ));
        }
    };
    let statics = match spec.options.get("static") {
        None => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(mac, r)| {
                let mac: MacAddr = mac
                    .parse()
                    .map_err(|_| format!("option static: {mac:?} is not a MAC address"))?;
                if !mac.is_valid_source() {
                    return Err(format!("option static: {mac} is not a unicast address"));
                }
                Ok((mac, ip(r, "static")?))
            })
            .collect::<Result<_, String>>()?,
        Some(v) => {
            return Err(format!(
                "option static must map MAC addresses to remote VTEPs, not {v}"
            ));
        }
    };
    Ok((flood, statics))
}

/// The remote endpoints a VXLAN port answers ARP requests and Neighbor
/// Solicitations for instead of flooding them (ARP/ND suppression):
/// `"neighbors": {"10.0.0.2": "02:00:00:00:00:0b", "fd00::2": "..."}`.
pub fn vxlan_neighbors(spec: &PortSpec) -> Result<Vec<(IpAddr, MacAddr)>, String> {
    match spec.options.get("neighbors") {
        None => Ok(Vec::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(ip, mac)| {
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| format!("option neighbors: {ip:?} is not an IP address"))?;
                let mac: MacAddr = mac
                    .as_str()
                    .and_then(|m| m.parse().ok())
                    .filter(MacAddr::is_valid_source)
                    .ok_or_else(|| {
                        format!("option neighbors: {mac} is not a unicast MAC address")
                    })?;
                Ok((ip, mac))
            })
            .collect(),
        Some(v) => Err(format!(
            "option neighbors must map IP addresses to MAC addresses, not {v}"
        )),
    }
}

fn open_vxlan(spec: &PortSpec) -> Result<VtepPort, OpenError> {
    let mut o = Opts::new(spec);
    let local: IpAddr = o
        .str("local")?
        .ok_or("vxlan ports need option local (the underlay address to bind)")?
        .parse()
        .map_err(|_| "option local must be an IP address".to_string())?;
    let vni = o
        .u32("vni")?
        .ok_or("vxlan ports need option vni (1..16777215)")?;
    let vni = Vni::new(vni)
        .filter(|v| v.get() > 0)
        .ok_or_else(|| format!("option vni {vni} is outside 1..16777215"))?;
    let mut cfg = VtepConfig::new(&spec.name, local, vni);
    o.get("remotes");
    o.get("static");
    o.get("neighbors");
    let (flood, statics) = vxlan_remotes(spec)?;
    cfg.flood = flood;
    cfg.neighbors = vxlan_neighbors(spec)?;
    if let Some(p) = o.u32("udp_port")? {
        cfg.port = u16::try_from(p)
            .ok()
            .filter(|p| *p > 0)
            .ok_or("option udp_port must be 1..65535")?;
    }
    if let Some(g) = o.str("group")? {
        cfg.group = Some(
            g.parse()
                .map_err(|_| "option group must be an IP address".to_string())?,
        );
    }
    if let Some(t) = o.u32("ttl")? {
        cfg.ttl = Some(
            u8::try_from(t)
                .ok()
                .filter(|t| *t > 0)
                .ok_or("option ttl must be 1..255")?,
        );
    }
    if let Some(t) = o.u32("tos")? {
        cfg.tos = u8::try_from(t).map_err(|_| "option tos must be 0..255".to_string())?;
    }
    if let Some(df) = o.bool("df")? {
        cfg.df = df;
    }
    if let Some(m) = o.u32("underlay_mtu")? {
        cfg.underlay_mtu = m as usize;
    }
    if let Some(n) = o.u32("tx_sockets")? {
        cfg.tx_sockets = n as usize;
    }
    if let Some(a) = o.u32("remote_aging_secs")? {
        cfg.remote_fdb.aging_secs = a;
    }
    o.finish()?;
    let mut port = VtepPort::open(&cfg).map_err(|e| OpenError::Failed(e.to_string()))?;
    for (mac, remote) in statics {
        port.table_mut()
            .add_static(vni, mac, remote)
            .map_err(|e| format!("vxlan port {}: static {mac}: {e}", spec.name))?;
    }
    VTEP_HANDLES
        .lock()
        .expect("vtep handles lock")
        .get_or_insert_with(HashMap::new)
        .insert(spec.name.clone(), port.handle());
    Ok(port)
}

fn open_afpacket(spec: &PortSpec) -> Result<AfPacketPort, OpenError> {
    let iface = spec
        .iface
        .as_deref()
        .ok_or("afpacket ports need an iface")?;
    let mut o = Opts::new(spec);
    let mut cfg = AfPacketConfig::default();
    if let Some(v) = o.bool("vnet_hdr")? {
        cfg.vnet_hdr = v;
    }
    if let Some(v) = o.bool("qdisc_bypass")? {
        cfg.qdisc_bypass = v;
    }
    o.finish()?;
    not_loopback(spec, iface)?;
    AfPacketPort::attach_with(iface, &cfg).map_err(|e| match e {
        AfPacketError::Config { .. } => OpenError::Config(e.to_string()),
        e => driver_error(Some(iface), &e),
    })
}

/// Sort a driver's failure by whose fault it is, from the errno at the
/// bottom of its chain: an interface that does not exist (ENODEV, ENXIO) is
/// the request's (404), as is one another program or socket already holds
/// (EBUSY, 409); anything else is the system's (500). The driver's own
/// message, which names the interface and the step, is kept.
fn driver_error(iface: Option<&str>, e: &(dyn std::error::Error + 'static)) -> OpenError {
    let mut errno = None;
    let mut cur = Some(e);
    while let Some(x) = cur {
        if let Some(n) = x
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            errno = Some(Errno::from_raw(n));
            break;
        }
        cur = x.source();
    }
    let msg = e.to_string();
    match (errno, iface) {
        (Some(Errno::ENODEV | Errno::ENXIO), Some(i)) => {
            OpenError::NoSuchInterface(format!("interface {i} does not exist ({msg})"))
        }
        (Some(Errno::EBUSY), Some(i)) => OpenError::Busy(format!(
            "interface {i} is in use by another program or socket ({msg})"
        )),
        (Some(Errno::EBUSY), None) => OpenError::Busy(msg),
        _ => OpenError::Failed(msg),
    }
}

/// A back end known to the switch by another name than its interface's
/// (an AF_XDP or AF_PACKET port named after the endpoint, not the veth).
struct Renamed {
    name: String,
    inner: Box<dyn Port>,
}

impl Port for Renamed {
    fn name(&self) -> &str {
        &self.name
    }
    fn rx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> Result<usize, PortError> {
        self.inner.rx_burst(pool, batch)
    }
    fn tx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> TxDone {
        self.inner.tx_burst(pool, batch)
    }
    fn poll_fd(&self) -> Option<i32> {
        self.inner.poll_fd()
    }
    fn max_frame(&self) -> usize {
        self.inner.max_frame()
    }
    fn maintain(&mut self, pool: &mut PacketPool) {
        self.inner.maintain(pool)
    }
    fn detach(&mut self, pool: &mut PacketPool) {
        self.inner.detach(pool)
    }
    fn wake_after(&self) -> Option<std::time::Duration> {
        self.inner.wake_after()
    }
    fn backend_drops(&self) -> Vec<(&'static str, u64)> {
        self.inner.backend_drops()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> PortSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn unknown_and_mistyped_options_are_refused_before_anything_opens() {
        let mut pool = PacketPool::with_frames(64);
        for (json, needle) in [
            (
                r#"{"name":"t0","kind":"tap","options":{"mtuu":9000}}"#,
                "unknown option(s) mtuu",
            ),
            (
                r#"{"name":"t0","kind":"tap","options":{"mtu":"big"}}"#,
                "mtu must be a non-negative integer",
            ),
            (
                r#"{"name":"x","kind":"afxdp","iface":"lo","options":{"xdp_mode":"fast"}}"#,
                "xdp_mode must be",
            ),
            (
                r#"{"name":"t0","kind":"tap","options":{"offload":"tso"}}"#,
                "large frames",
            ),
            (
                r#"{"name":"x","kind":"afpacket","iface":"lo"}"#,
                "loopback interface",
            ),
            (
                r#"{"name":"x","kind":"afxdp","iface":"lo"}"#,
                "loopback interface",
            ),
            (
                r#"{"name":"t0","kind":"tap","options":{"impair":{"delay":5}}}"#,
                "option impair: unknown field `delay`",
            ),
            (
                r#"{"name":"t0","kind":"tap","options":{"impair":{"loss_pct":200}}}"#,
                "outside 0..=100",
            ),
            (
                r#"{"name":"v0","kind":"vxlan","options":{"vni":5}}"#,
                "need option local",
            ),
            (
                r#"{"name":"v0","kind":"vxlan","options":{"local":"127.0.0.1","vni":0}}"#,
                "outside 1..16777215",
            ),
            (
                r#"{"name":"v0","kind":"vxlan","options":{"local":"127.0.0.1","vni":5,"remotes":"x"}}"#,
                "must be a list",
            ),
        ] {
            let e = open(&spec(json), &mut pool).err().unwrap();
            assert!(matches!(e, OpenError::Config(_)), "{json}: {e:?}");
            let e = e.to_string();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }
}
