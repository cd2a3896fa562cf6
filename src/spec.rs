//! What the control plane says about a port's back end ([`PortSpec`]) and
//! the factory that turns a spec into a live [`Port`] ([`PortFactory`]).
//!
//! Owns: the spec's shape and its validation. Never: opening back ends
//! itself — the factory (wired in `main.rs` to `rvs-drivers`) does that, on
//! the worker thread that will own the port.

use std::collections::BTreeMap;
use std::sync::Arc;

use rvs_switch::{MemoryPort, PacketPool, Port};
use serde::{Deserialize, Serialize};

/// Which back end carries a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    /// A TAP device the switch creates (or finds again: option `persist`);
    /// its netdev name is `iface`, else the port name.
    Tap,
    /// AF_XDP on queue `queue` of an existing interface `iface`.
    Afxdp,
    /// AF_PACKET on an existing interface `iface` (the fallback).
    Afpacket,
    /// A VXLAN tunnel endpoint over a UDP socket (options: local, vni, ...).
    Vxlan,
}

impl std::fmt::Display for PortKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PortKind::Tap => "tap",
            PortKind::Afxdp => "afxdp",
            PortKind::Afpacket => "afpacket",
            PortKind::Vxlan => "vxlan",
        })
    }
}

/// How to open a port's back end. Stored as given; replayed on restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// The port's name in the switch (and the netdev name for `tap`).
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    pub kind: PortKind,
    /// The interface to attach to (`afxdp`, `afpacket`); for `tap`, the
    /// TAP device's name when it is not the port name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    /// Queue of `iface` to bind (`afxdp`).
    #[serde(default)]
    pub queue: u32,
    /// Back-end specific knobs (ring sizes, zero-copy, offloads), passed to
    /// the factory untouched.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub options: BTreeMap<String, serde_json::Value>,
}

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

fn is_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= IFNAME_MAX
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':')
}

/// Port and bridge domain names: what the switch accepts (1 to 64 of letters,
/// digits, `-`, `_`, `.`), checked here so a bad name is a 400 before any
/// state is touched.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    // The switch's own rule, so the API and the data plane cannot disagree.
    if rvs_switch::switch::check_name(name).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "{what} name {name:?} is not usable: 1 to 64 characters of letters, digits, '-', '_', '.'"
        ))
    }
}

impl PortSpec {
    /// Check the spec is self-consistent (names, iface per kind).
    pub fn validate(&self) -> Result<(), String> {
        check_name("port", &self.name)?;
        match (self.kind, &self.iface) {
            (PortKind::Tap, None) => {
                if self.name.len() > IFNAME_MAX {
                    return Err(format!(
                        "tap port name {:?} is longer than {IFNAME_MAX} characters (a netdev name)",
                        self.name
                    ));
                }
            }
            (PortKind::Tap, Some(i)) if !is_ifname(i) => {
                return Err(format!("iface {i:?} is not a valid interface name"));
            }
            // The TAP device's own name, when it differs from the port's.
            (PortKind::Tap, Some(_)) => {}
            (PortKind::Vxlan, None) => {}
            (PortKind::Vxlan, Some(_)) => {
                return Err(
                    "vxlan ports take no iface: the underlay is a UDP socket on option local"
                        .into(),
                );
            }
            (kind, None) => return Err(format!("{kind} ports need an iface")),
            (_, Some(i)) if !is_ifname(i) => {
                return Err(format!("iface {i:?} is not a valid interface name"));
            }
            (_, Some(_)) => {}
        }
        if self.kind != PortKind::Afxdp && self.queue != 0 {
            return Err(format!("{} ports take no queue", self.kind));
        }
        Ok(())
    }
}

/// Opens a port back end for a spec. Runs on the worker thread that will own
/// the port, inside the command closure, so AF_XDP can register the worker's
/// pool as its UMEM. The returned port's `name()` must equal `spec.name`.
/// Errors are operator-readable ("attach afxdp eth1 queue 0: bind failed: …").
pub type PortFactory =
    Arc<dyn Fn(&PortSpec, &mut PacketPool) -> Result<Box<dyn Port>, OpenError> + Send + Sync>;

/// Why a port back end did not open. The first three are the request's
/// fault and change nothing: its options are wrong (HTTP 400), the
/// interface it names does not exist (404), or what it asks for is held by
/// something else (409). Only `Failed` is the system's (HTTP 500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    NoSuchInterface(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Failed(String),
}

/// Option checks produce plain strings: they are configuration errors.
impl From<String> for OpenError {
    fn from(s: String) -> Self {
        OpenError::Config(s)
    }
}

impl From<&str> for OpenError {
    fn from(s: &str) -> Self {
        OpenError::Config(s.to_string())
    }
}

/// A factory of in-memory ports, whatever the spec's kind. **For tests only**
/// (the daemon's hidden `--test-memory-ports` flag): the ports carry no
/// traffic from outside the process. A spec with option `"test_fail"` set to
/// a string fails with that message, so tests can see failed back ends.
pub fn memory_port_factory() -> PortFactory {
    Arc::new(|spec: &PortSpec, _pool: &mut PacketPool| {
        if let Some(msg) = spec.options.get("test_fail").and_then(|v| v.as_str()) {
            return Err(OpenError::Failed(format!(
                "open {} port {}: {msg}",
                spec.kind, spec.name
            )));
        }
        let (port, _handle) = MemoryPort::sink(&spec.name);
        Ok(Box::new(port) as Box<dyn Port>)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<PortSpec, String> {
        let s: PortSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        s.validate()?;
        Ok(s)
    }

    #[test]
    fn accepts_each_kind() {
        assert!(spec(r#"{"name":"tap0","kind":"tap"}"#).is_ok());
        let s = spec(r#"{"name":"x","kind":"afxdp","iface":"eth1","queue":3}"#).unwrap();
        assert_eq!(s.queue, 3);
        assert!(spec(r#"{"name":"y","kind":"afpacket","iface":"veth-a"}"#).is_ok());
        // A TAP may name its device apart from the port.
        let t = spec(r#"{"name":"ep-1","kind":"tap","iface":"rvc1"}"#).unwrap();
        assert_eq!(t.iface.as_deref(), Some("rvc1"));
    }

    #[test]
    fn rejects_inconsistent_specs() {
        for bad in [
            r#"{"name":"tap0","kind":"tap","bogus":1}"#,
            r#"{"name":"tap0","kind":"vhost"}"#,
            r#"{"name":"a-very-long-tap-name","kind":"tap"}"#,
            r#"{"name":"t","kind":"tap","iface":"eth/0"}"#,
            r#"{"name":"x","kind":"afxdp"}"#,
            r#"{"name":"x","kind":"afxdp","iface":"eth/0"}"#,
            r#"{"name":"x","kind":"afpacket","iface":"eth0","queue":2}"#,
            r#"{"name":"bad name","kind":"tap"}"#,
            r#"{"name":"","kind":"tap"}"#,
        ] {
            assert!(spec(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn round_trips_through_json() {
        let s = spec(
            r#"{"name":"x","kind":"afxdp","iface":"eth1","queue":1,"options":{"zerocopy":true}}"#,
        )
        .unwrap();
        let back: PortSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
