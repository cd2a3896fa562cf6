//! The CNI specification's JSON shapes (SPEC.md, version 1.1.0): the
//! network configuration a plugin reads, the result it prints, the error
//! object and its well-known codes.
//!
//! Owns: those shapes and version negotiation. Never: doing anything.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The versions this plugin speaks. CHECK needs 0.4.0 or later; STATUS
/// and GC need 1.1.0.
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest version (VERSION's answer without a configuration).
pub const LATEST: &str = "1.1.0";

/// Parse `x.y.z` for comparison.
pub fn version(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    let r = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(r)
}

/// Whether `v` is at least `min`.
pub fn at_least(v: &str, min: &str) -> bool {
    matches!((version(v), version(min)), (Some(a), Some(b)) if a >= b)
}

/// Well-known error codes (SPEC.md, "Error").
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content.
    pub const DECODE_FAILURE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// The plugin is not available (cannot serve ADD).
    pub const NOT_AVAILABLE: u32 = 50;
    /// rvswitch's own: the daemon refused or failed the request.
    pub const DAEMON: u32 = 100;
    /// rvswitch's own: CHECK found the attachment differs from what it
    /// should be.
    pub const CHECK_FAILED: u32 = 101;
}

/// The error object a failing plugin prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniError {
    /// Plugins of older versions leave it out of their errors.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            cni_version: LATEST.into(),
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn details(mut self, d: impl std::fmt::Display) -> CniError {
        self.details = d.to_string();
        self
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CNI error {}: {}", self.code, self.msg)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        Ok(())
    }
}

/// The `ipam` section: its `type` names the plugin; the rest is that
/// plugin's.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct IpamConf {
    #[serde(rename = "type")]
    pub kind: String,
    /// rvswitch IPAM: the subnet (or several, see `ranges`).
    #[serde(default)]
    pub subnet: Option<String>,
    /// rvswitch IPAM: the gateway address of `subnet`.
    #[serde(default)]
    pub gateway: Option<String>,
    /// rvswitch IPAM: routes for the container.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// A network configuration (one plugin's object of a list, with `name`
/// and `cniVersion` filled in by the runtime). Fields rvswitch does not
/// know are left to the plugins it delegates to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NetConf {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The daemon's API socket (default /run/rvswitch/rvswitch.sock).
    #[serde(default)]
    pub socket: Option<String>,
    /// `tap` (default), `afxdp` or `afpacket`.
    #[serde(default)]
    pub endpoint: super::EndpointType,
    #[serde(default)]
    pub vlan: Option<u16>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default, rename = "isGateway")]
    pub is_gateway: bool,
    /// Also make the gateway the container's default route.
    #[serde(default, rename = "isDefaultGateway")]
    pub is_default_gateway: bool,
    #[serde(default)]
    pub ipam: Option<IpamConf>,
    #[serde(default, rename = "prevResult")]
    pub prev_result: Option<Value>,
    /// GC: the attachments the runtime still has.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<ValidAttachment>>,
}

/// One entry of `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// A result's interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// A result's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// 0.3.x and 0.4.0 only: "4" or "6".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A result's route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

/// A plugin's result (ADD's output, the `prevResult` of the next).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub dns: Value,
}

impl CniResult {
    /// The same result in version `v`'s shape (0.3.x/0.4.0 carry each
    /// address's family in `version`; 1.x does not).
    pub fn in_version(mut self, v: &str) -> CniResult {
        let old = !at_least(v, "1.0.0");
        if !at_least(v, "1.1.0") {
            // `mtu` of an interface is new in 1.1.0.
            self.interfaces.iter_mut().for_each(|i| i.mtu = None);
        }
        for ip in &mut self.ips {
            ip.version = old.then(|| if ip.address.contains(':') { "6" } else { "4" }.to_string());
        }
        self.cni_version = v.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(at_least("1.1.0", "1.0.0"));
        assert!(at_least("0.10.0", "0.4.0"));
        assert!(!at_least("0.3.1", "0.4.0"));
        assert!(!at_least("1.x", "0.1.0"));
        assert_eq!(version("1.0"), None);
    }

    #[test]
    fn old_results_carry_the_family() {
        let r = CniResult {
            ips: vec![
                IpConfig {
                    version: None,
                    address: "10.0.0.2/24".into(),
                    gateway: None,
                    interface: Some(0),
                },
                IpConfig {
                    version: Some("6".into()),
                    address: "fd00::2/64".into(),
                    gateway: None,
                    interface: Some(0),
                },
            ],
            ..Default::default()
        };
        let old = r.clone().in_version("0.4.0");
        assert_eq!(old.ips[0].version.as_deref(), Some("4"));
        assert_eq!(old.ips[1].version.as_deref(), Some("6"));
        let new = old.in_version("1.1.0");
        assert!(new.ips.iter().all(|i| i.version.is_none()));
        let text = serde_json::to_string(&new).unwrap();
        assert!(!text.contains("version\""), "{text}");
        assert!(text.contains("\"cniVersion\":\"1.1.0\""), "{text}");
    }
}
