//! The real port back ends behind the daemon's [`PortFactory`]: TAP, AF_XDP
//! and AF_PACKET from `rvs-drivers`, chosen by the spec's kind, with the
//! spec's options applied and rejected when unknown.
//!
//! Owns: the mapping from a `PortSpec` to a driver call, and the per-worker
//! AF_XDP UMEM. Never: packet processing.

use std::cell::RefCell;
use std::sync::Arc;

use rvs_drivers::afpacket::{AfPacketConfig, AfPacketPort};
use rvs_drivers::afxdp::{AfXdpConfig, AfXdpPort, Umem, XdpModePreference, ZeroCopy};
use rvs_drivers::tap::{TapOffload, TapOptions, TapPort};
use rvs_switch::PacketPool;
use rvs_switch::batch::Batch;
use rvs_switch::port::{Port, PortError, TxDone};
use serde_json::Value;

use crate::spec::{PortFactory, PortKind, PortSpec};

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

fn open(spec: &PortSpec, pool: &mut PacketPool) -> Result<Box<dyn Port>, String> {
    let port: Box<dyn Port> = match spec.kind {
        PortKind::Tap => Box::new(open_tap(spec, pool)?),
        PortKind::Afxdp => Box::new(open_afxdp(spec, pool)?),
        PortKind::Afpacket => Box::new(open_afpacket(spec)?),
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

fn open_tap(spec: &PortSpec, pool: &PacketPool) -> Result<TapPort, String> {
    let mut o = Opts::new(spec);
    let mut t = TapOptions::for_pool(&spec.name, pool);
    if let Some(m) = o.u32("mtu")? {
        t = t.mtu(m);
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
                return Err(format!(
                    "option offload must be none, csum or tso, not {other:?}"
                ));
            }
        });
    }
    o.finish()?;
    TapPort::create(&t, pool).map_err(|e| e.to_string())
}

fn open_afxdp(spec: &PortSpec, pool: &mut PacketPool) -> Result<AfXdpPort, String> {
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
                ));
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
                ));
            }
        };
    }
    if let Some(b) = o.bool("disable_tx_checksum")? {
        cfg.disable_tx_checksum = b;
    }
    o.finish()?;
    let umem = UMEM.with(|u| -> Result<Umem, String> {
        let mut u = u.borrow_mut();
        match u.as_ref() {
            Some(umem) if umem.is_pool(pool) => Ok(umem.clone()),
            _ => {
                let umem = Umem::new(pool, cfg.ring_size).map_err(|e| e.to_string())?;
                *u = Some(umem.clone());
                Ok(umem)
            }
        }
    })?;
    AfXdpPort::open(&umem, pool, iface, &cfg).map_err(|e| e.to_string())
}

fn open_afpacket(spec: &PortSpec) -> Result<AfPacketPort, String> {
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
    AfPacketPort::attach_with(iface, &cfg).map_err(|e| e.to_string())
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
        let e = open(
            &spec(r#"{"name":"t0","kind":"tap","options":{"mtuu":9000}}"#),
            &mut pool,
        )
        .err()
        .unwrap();
        assert!(e.contains("unknown option(s) mtuu"), "{e}");
        let e = open(
            &spec(r#"{"name":"t0","kind":"tap","options":{"mtu":"big"}}"#),
            &mut pool,
        )
        .err()
        .unwrap();
        assert!(e.contains("mtu must be a non-negative integer"), "{e}");
        let e = open(
            &spec(r#"{"name":"x","kind":"afxdp","iface":"lo","options":{"xdp_mode":"fast"}}"#),
            &mut pool,
        )
        .err()
        .unwrap();
        assert!(e.contains("xdp_mode must be"), "{e}");
        let e = open(
            &spec(r#"{"name":"t0","kind":"tap","options":{"offload":"tso"}}"#),
            &mut pool,
        )
        .err()
        .unwrap();
        assert!(e.contains("large frames"), "{e}");
    }
}
