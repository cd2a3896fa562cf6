//! Docker's network options → a [`Network`].
//!
//! Owns: the `rvswitch.*` option names under `com.docker.network.generic`
//! (`-o k=v` on `docker network create`), Docker's own flags
//! (`com.docker.network.internal`, `com.docker.network.enable_ipv6`) and the
//! `IPv4Data`/`IPv6Data` subnets. Errors quote the option and say what is
//! accepted. Never: state — the same request always gives the same network.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{DEFAULT_MTU, Network, NetworkKind, PortType, Subnet};
use crate::parent::{Parent, ParentError};
use crate::prefix::{Cidr, parse_ip_lenient};

use super::wire::{CreateNetworkRequest, IpamData, Options};

pub const GENERIC: &str = "com.docker.network.generic";
pub const INTERNAL: &str = "com.docker.network.internal";
pub const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
/// The bridge driver's MTU option, honoured too.
pub const DOCKER_MTU: &str = "com.docker.network.driver.mtu";

/// The `rvswitch.*` options, for error messages.
pub const KNOWN: &[&str] = &[
    "rvswitch.kind",
    "rvswitch.vlan",
    "rvswitch.vni",
    "rvswitch.mtu",
    "rvswitch.endpoint",
    "rvswitch.port_type",
    "rvswitch.port_security",
    "rvswitch.routing",
    "rvswitch.vtep_local",
    "rvswitch.vtep_remotes",
    "rvswitch.vtep_port",
    "rvswitch.scope",
    "rvswitch.name",
    "rvswitch.parent",
    "rvswitch.parent_port",
];

/// `rvswitch.parent=IFACE[.VID]`: the network is bridged to the LAN of host
/// interface IFACE, untagged or in VLAN VID (the switch pushes and pops the
/// tag), as Docker's macvlan driver's `parent`. See [`crate::parent`].
pub const PARENT: &str = "rvswitch.parent";
/// The kind of the parent's uplink port: `afpacket` (the default) or
/// `afxdp`.
pub const PARENT_PORT: &str = "rvswitch.parent_port";

/// The parent of `n`, when it is bridged to a host NIC.
pub fn parent_of(n: &Network) -> Option<Parent> {
    n.options.get(PARENT).and_then(|p| p.parse().ok())
}

/// The uplink port kind of a parent network (`afpacket` unless
/// `rvswitch.parent_port=afxdp`).
pub fn parent_port(n: &Network) -> PortType {
    match n.options.get(PARENT_PORT).map(String::as_str) {
        Some("afxdp") => PortType::Afxdp,
        _ => PortType::Afpacket,
    }
}

/// `rvswitch.scope=global`: the network is shared by the hosts of a
/// cluster (`rvswitch daemon --store etcd://…`), found there by
/// `rvswitch.name`.
pub const SCOPE: &str = "rvswitch.scope";
/// The cluster-wide name of a global network. CreateNetwork carries only
/// the engine's network id, which differs on every host, so the name the
/// hosts share is an option.
pub const NAME: &str = "rvswitch.name";

/// Whether `n` is a global network (its VNI, subnet and addresses come
/// from the cluster's store).
pub fn is_global(n: &Network) -> bool {
    n.options.get(SCOPE).map(String::as_str) == Some("global")
}

/// Default MTU of a VXLAN network: a 1500-byte underlay less 50 bytes of
/// outer Ethernet, IPv4, UDP and VXLAN headers.
pub const VXLAN_MTU: u32 = 1450;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("unknown option {key} (rvswitch knows {})", KNOWN.join(", "))]
    Unknown { key: String },
    #[error("option {key}={value}: expected {expected}")]
    Value {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{field} {value:?}: {reason}")]
    Ipam {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("{0} must be a JSON object")]
    NotAnObject(&'static str),
    #[error("option {PARENT}: {0}")]
    Parent(ParentError),
}

/// An option value as text: `-o` gives strings, API clients may send
/// numbers or booleans.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_bool(key: &str, v: &Value) -> Result<bool, OptionError> {
    match text(v).to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(OptionError::Value {
            key: key.into(),
            value: text(v),
            expected: "true or false",
        }),
    }
}

fn parse_num(
    key: &str,
    v: &Value,
    lo: u32,
    hi: u32,
    expected: &'static str,
) -> Result<u32, OptionError> {
    let t = text(v);
    t.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or(OptionError::Value {
            key: key.into(),
            value: t,
            expected,
        })
}

fn subnets(data: &[IpamData], v4: bool) -> Result<Vec<Subnet>, OptionError> {
    let field = if v4 { "IPv4Data" } else { "IPv6Data" };
    data.iter()
        .map(|d| {
            let pool = Cidr::parse_prefix(&d.pool).map_err(|e| OptionError::Ipam {
                field,
                value: d.pool.clone(),
                reason: e.to_string(),
            })?;
            let gateway = if d.gateway.is_empty() {
                None
            } else {
                Some(parse_ip_lenient(&d.gateway).map_err(|e| OptionError::Ipam {
                    field,
                    value: d.gateway.clone(),
                    reason: e.to_string(),
                })?)
            };
            if pool.is_v4() != v4 {
                return Err(OptionError::Ipam {
                    field,
                    value: d.pool.clone(),
                    reason: "wrong address family".into(),
                });
            }
            Ok(Subnet {
                pool,
                gateway,
                address_space: d.address_space.clone(),
            })
        })
        .collect()
}

/// The network a CreateNetwork request describes (validated separately).
pub fn network_from_request(req: &CreateNetworkRequest) -> Result<Network, OptionError> {
    let mut n = Network {
        id: req.network_id.clone(),
        name: req.network_id.chars().take(12).collect(),
        kind: NetworkKind::Bridge,
        subnets: subnets(&req.ipv4_data, true)?,
        internal: false,
        enable_ipv6: false,
        mtu: DEFAULT_MTU,
        // A persistent TAP moved into the sandbox: TSO super-frames cross
        // the switch whole (docs/benchmarks.md, "Docker endpoints"), and the
        // TAP outlives a daemon restart, found again in the sandbox.
        port_type: PortType::Tap,
        port_security: true,
        // Isolated from other networks by default, like Docker's bridge
        // driver; `-o rvswitch.routing=true` joins the routing networks.
        routing: false,
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
    };
    n.subnets.extend(subnets(&req.ipv6_data, false)?);
    if let Some(v) = req.options.get(INTERNAL) {
        n.internal = parse_bool(INTERNAL, v)?;
    }
    if let Some(v) = req.options.get(ENABLE_IPV6) {
        n.enable_ipv6 = parse_bool(ENABLE_IPV6, v)?;
    }
    let generic = match req.options.get(GENERIC) {
        None | Some(Value::Null) => Options::new(),
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(_) => return Err(OptionError::NotAnObject(GENERIC)),
    };
    apply_generic(&mut n, &generic)?;
    Ok(n)
}

/// Apply `rvswitch.*` options; other keys are kept in `n.options`.
pub fn apply_generic(n: &mut Network, generic: &Options) -> Result<(), OptionError> {
    let mut kind: Option<String> = None;
    let mut vlan: Option<u32> = None;
    let mut vni: Option<u32> = None;
    let mut mtu_set = false;
    let mut global = false;
    let mut name: Option<String> = None;
    let mut parent: Option<Parent> = None;
    for (k, v) in generic {
        match k.as_str() {
            PARENT => parent = Some(text(v).parse().map_err(OptionError::Parent)?),
            PARENT_PORT => {
                let t = text(v).to_ascii_lowercase();
                let kind = match t.as_str() {
                    "afpacket" | "af_packet" => "afpacket",
                    "afxdp" | "af_xdp" => "afxdp",
                    _ => {
                        return Err(OptionError::Value {
                            key: k.clone(),
                            value: text(v),
                            expected: "afpacket or afxdp",
                        });
                    }
                };
                n.options.insert(k.clone(), kind.into());
            }
            SCOPE => {
                global = match text(v).to_ascii_lowercase().as_str() {
                    "global" => true,
                    "local" => false,
                    _ => {
                        return Err(OptionError::Value {
                            key: k.clone(),
                            value: text(v),
                            expected: "local or global",
                        });
                    }
                }
            }
            NAME => {
                let t = text(v);
                let ok = (1..=64).contains(&t.len())
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !ok {
                    return Err(OptionError::Value {
                        key: k.clone(),
                        value: t,
                        expected: "a name of 1-64 letters, digits, '-', '_' or '.'",
                    });
                }
                name = Some(t);
            }
            // The VTEP of a VXLAN network, kept with the network's options.
            "rvswitch.vtep_local" => {
                let t = text(v);
                if t.parse::<std::net::IpAddr>().is_err() {
                    return Err(OptionError::Value {
                        key: k.clone(),
                        value: t,
                        expected: "this host's underlay IP address",
                    });
                }
                n.options.insert(k.clone(), t);
            }
            "rvswitch.vtep_remotes" => {
                let t = text(v);
                if t.split(',')
                    .any(|r| r.trim().parse::<std::net::IpAddr>().is_err())
                {
                    return Err(OptionError::Value {
                        key: k.clone(),
                        value: t,
                        expected: "remote VTEP addresses separated by commas",
                    });
                }
                n.options.insert(k.clone(), t);
            }
            "rvswitch.vtep_port" => {
                let p = parse_num(k, v, 1, 65535, "a UDP port 1-65535")?;
                n.options.insert(k.clone(), p.to_string());
            }
            "rvswitch.kind" => kind = Some(text(v).to_ascii_lowercase()),
            "rvswitch.vlan" => vlan = Some(parse_num(k, v, 1, 4094, "a VLAN id 1-4094")?),
            "rvswitch.vni" => vni = Some(parse_num(k, v, 1, 0xff_ffff, "a VNI 1-16777215")?),
            "rvswitch.mtu" | DOCKER_MTU => {
                n.mtu = parse_num(k, v, 68, 65535, "an MTU 68-65535")?;
                mtu_set = true;
            }
            // `port_type` is the name this option had first.
            "rvswitch.endpoint" | "rvswitch.port_type" => {
                n.port_type = match text(v).to_ascii_lowercase().as_str() {
                    "tap" => PortType::Tap,
                    "afxdp" | "af_xdp" => PortType::Afxdp,
                    "afpacket" | "af_packet" => PortType::Afpacket,
                    _ => {
                        return Err(OptionError::Value {
                            key: k.clone(),
                            value: text(v),
                            expected: "tap, afxdp or afpacket",
                        });
                    }
                }
            }
            "rvswitch.port_security" => n.port_security = parse_bool(k, v)?,
            "rvswitch.routing" => n.routing = parse_bool(k, v)?,
            other if other.starts_with("rvswitch.") => {
                return Err(OptionError::Unknown { key: other.into() });
            }
            other => {
                n.options.insert(other.into(), text(v));
            }
        }
    }
    if let Some(name) = &name {
        n.name = name.clone();
    }
    if let Some(p) = parent {
        return parent_network(n, p, kind, vlan, vni, global);
    }
    if n.options.contains_key(PARENT_PORT) {
        return Err(OptionError::Conflict(format!(
            "{PARENT_PORT} belongs to networks with {PARENT}=<host interface>"
        )));
    }
    if global {
        return global_network(n, kind, vlan, vni, name, mtu_set);
    }
    let kind = kind.unwrap_or_else(|| {
        match (vlan, vni) {
            (Some(_), None) => "vlan",
            (None, Some(_)) => "vxlan",
            _ => "bridge",
        }
        .into()
    });
    n.kind = match (kind.as_str(), vlan, vni) {
        ("bridge", None, None) => NetworkKind::Bridge,
        ("vlan", Some(vid), None) => NetworkKind::Vlan { vid: vid as u16 },
        ("vxlan", None, Some(vni)) => NetworkKind::Vxlan { vni },
        ("vlan", None, _) => {
            return Err(OptionError::Conflict(
                "rvswitch.kind=vlan needs rvswitch.vlan=<1-4094>".into(),
            ));
        }
        ("vxlan", _, None) => {
            return Err(OptionError::Conflict(
                "rvswitch.kind=vxlan needs rvswitch.vni=<1-16777215>".into(),
            ));
        }
        ("bridge" | "vlan" | "vxlan", _, _) => {
            return Err(OptionError::Conflict(format!(
                "rvswitch.kind={kind} does not take {}: give rvswitch.vlan only with kind=vlan \
                 and rvswitch.vni only with kind=vxlan",
                match (vlan, vni) {
                    (Some(_), Some(_)) => "both rvswitch.vlan and rvswitch.vni",
                    (Some(_), None) => "rvswitch.vlan",
                    _ => "rvswitch.vni",
                }
            )));
        }
        _ => {
            return Err(OptionError::Value {
                key: "rvswitch.kind".into(),
                value: kind,
                expected: "bridge, vlan or vxlan",
            });
        }
    };
    let vtep = [
        "rvswitch.vtep_local",
        "rvswitch.vtep_remotes",
        "rvswitch.vtep_port",
    ];
    match n.kind {
        NetworkKind::Vxlan { .. } => {
            if !n.options.contains_key("rvswitch.vtep_local") {
                return Err(OptionError::Conflict(
                    "rvswitch.kind=vxlan needs rvswitch.vtep_local=<this host's underlay \
                     address> (and rvswitch.vtep_remotes=<other hosts' addresses>)"
                        .into(),
                ));
            }
            if !mtu_set {
                n.mtu = VXLAN_MTU;
            }
        }
        _ => {
            if let Some(k) = vtep.iter().find(|k| n.options.contains_key(**k)) {
                return Err(OptionError::Conflict(format!(
                    "{k} belongs to VXLAN networks (rvswitch.kind=vxlan)"
                )));
            }
        }
    }
    Ok(())
}

/// The settings of a network bridged to a host NIC: the VLAN of
/// `parent=IFACE.VID` (untagged: a bridge), no gateway of the switch's
/// (the LAN's router is the gateway, as with macvlan), so neither
/// `--internal` nor routing nor another segment (VLAN, VNI, cluster) goes
/// with it.
fn parent_network(
    n: &mut Network,
    p: Parent,
    kind: Option<String>,
    vlan: Option<u32>,
    vni: Option<u32>,
    global: bool,
) -> Result<(), OptionError> {
    let refuse = |what: &str| {
        Err(OptionError::Conflict(format!(
            "{PARENT}={p} does not go with {what}: the network is the LAN of {} ({}), \
             whose router is its gateway",
            p.iface,
            match p.vid {
                Some(v) => format!("VLAN {v}"),
                None => "untagged".into(),
            }
        )))
    };
    if kind.is_some() || vlan.is_some() || vni.is_some() {
        return refuse("rvswitch.kind, rvswitch.vlan or rvswitch.vni (give the VLAN as IFACE.VID)");
    }
    if global {
        return refuse("rvswitch.scope=global");
    }
    if n.internal {
        return refuse("--internal");
    }
    if n.routing {
        return refuse("rvswitch.routing=true");
    }
    if let Some(k) = [
        "rvswitch.vtep_local",
        "rvswitch.vtep_remotes",
        "rvswitch.vtep_port",
    ]
    .iter()
    .find(|k| n.options.contains_key(**k))
    {
        return refuse(k);
    }
    n.kind = match p.vid {
        Some(vid) => NetworkKind::Vlan { vid },
        None => NetworkKind::Bridge,
    };
    n.options.insert(PARENT.into(), p.to_string());
    Ok(())
}

/// The settings of a global network: a VXLAN network whose VNI is the
/// wanted one (`rvswitch.vni`) or, as 0, one the cluster allocates; its
/// VTEP is the daemon's (`--vtep`), its remotes the cluster's.
fn global_network(
    n: &mut Network,
    kind: Option<String>,
    vlan: Option<u32>,
    vni: Option<u32>,
    name: Option<String>,
    mtu_set: bool,
) -> Result<(), OptionError> {
    if name.is_none() {
        return Err(OptionError::Conflict(format!(
            "{SCOPE}=global needs {NAME}=<the network's name, the same on every host>: \
             Docker does not tell its driver the network's name"
        )));
    }
    if kind.as_deref().is_some_and(|k| k != "vxlan") || vlan.is_some() {
        return Err(OptionError::Conflict(format!(
            "{SCOPE}=global networks are VXLAN networks: rvswitch.kind may only be vxlan, \
             and rvswitch.vlan does not apply"
        )));
    }
    let vtep = [
        "rvswitch.vtep_local",
        "rvswitch.vtep_remotes",
        "rvswitch.vtep_port",
    ];
    if let Some(k) = vtep.iter().find(|k| n.options.contains_key(**k)) {
        return Err(OptionError::Conflict(format!(
            "{k} is not taken by {SCOPE}=global networks: the VTEP is the daemon's \
             (rvswitch daemon --vtep) and the remotes are the cluster's"
        )));
    }
    n.options.insert(SCOPE.into(), "global".into());
    n.kind = NetworkKind::Vxlan {
        vni: vni.unwrap_or(0),
    };
    if !mtu_set {
        n.mtu = VXLAN_MTU;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(options: Value) -> CreateNetworkRequest {
        serde_json::from_value(json!({
            "NetworkID": "abc",
            "Options": options,
            "IPv4Data": [{"AddressSpace": "LocalDefault", "Gateway": "10.231.0.1/24", "Pool": "10.231.0.0/24"}],
            "IPv6Data": []
        }))
        .unwrap()
    }

    #[test]
    fn recorded_vlan_network() {
        let n = network_from_request(&req(json!({
            "com.docker.network.enable_ipv6": false,
            "com.docker.network.generic": {"rvswitch.kind": "vlan", "rvswitch.vlan": "10"}
        })))
        .unwrap();
        assert_eq!(n.kind, NetworkKind::Vlan { vid: 10 });
        assert_eq!(n.subnets[0].gateway, Some("10.231.0.1".parse().unwrap()));
        assert_eq!(n.subnets[0].pool, "10.231.0.0/24".parse().unwrap());
        assert!(
            !n.internal && n.port_security && !n.routing,
            "isolated by default"
        );
        n.validate().unwrap();
    }

    #[test]
    fn global_networks_are_named_vxlan_networks_with_the_cluster_vtep() {
        let g = |o: Value| network_from_request(&req(json!({"com.docker.network.generic": o})));
        let n = g(json!({"rvswitch.scope": "global", "rvswitch.name": "blue"})).unwrap();
        assert!(is_global(&n));
        assert_eq!(n.name, "blue");
        assert_eq!(
            n.kind,
            NetworkKind::Vxlan { vni: 0 },
            "VNI from the cluster"
        );
        assert_eq!(n.mtu, VXLAN_MTU);
        let n = g(json!({"rvswitch.scope": "global", "rvswitch.name": "b", "rvswitch.vni": 7}));
        assert_eq!(n.unwrap().kind, NetworkKind::Vxlan { vni: 7 });
        for (bad, says) in [
            (json!({"rvswitch.scope": "global"}), "rvswitch.name"),
            (
                json!({"rvswitch.scope": "wide", "rvswitch.name": "b"}),
                "local or global",
            ),
            (
                json!({"rvswitch.scope": "global", "rvswitch.name": "a b"}),
                "letters",
            ),
            (
                json!({"rvswitch.scope": "global", "rvswitch.name": "b", "rvswitch.kind": "vlan"}),
                "VXLAN",
            ),
            (
                json!({"rvswitch.scope": "global", "rvswitch.name": "b",
                       "rvswitch.vtep_local": "10.0.0.1"}),
                "--vtep",
            ),
        ] {
            let e = g(bad.clone()).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let local = g(json!({"rvswitch.scope": "local", "rvswitch.name": "x"})).unwrap();
        assert!(!is_global(&local));
        assert_eq!(local.kind, NetworkKind::Bridge);
    }

    #[test]
    fn parent_networks_are_a_vlan_of_a_host_nic() {
        let g = |o: Value| network_from_request(&req(json!({"com.docker.network.generic": o})));
        let n = g(json!({"rvswitch.parent": "eth0.10"})).unwrap();
        assert_eq!(n.kind, NetworkKind::Vlan { vid: 10 });
        assert_eq!(parent_of(&n), Some("eth0.10".parse().unwrap()));
        assert_eq!(parent_port(&n), PortType::Afpacket);
        n.validate().unwrap();
        let n = g(json!({"rvswitch.parent": "eth0", "rvswitch.parent_port": "AF_XDP"})).unwrap();
        assert_eq!(n.kind, NetworkKind::Bridge);
        assert_eq!(parent_port(&n), PortType::Afxdp);
        assert!(parent_of(&g(json!({})).unwrap()).is_none());
        for (bad, says) in [
            (json!({"rvswitch.parent": "eth0.4095"}), "outside 1..4094"),
            (json!({"rvswitch.parent": "eth0.0"}), "outside 1..4094"),
            (json!({"rvswitch.parent": "a/b"}), "not an interface name"),
            (
                json!({"rvswitch.parent": "eth0.10", "rvswitch.vlan": "10"}),
                "IFACE.VID",
            ),
            (
                json!({"rvswitch.parent": "eth0", "rvswitch.kind": "vxlan", "rvswitch.vni": 5}),
                "does not go with",
            ),
            (
                json!({"rvswitch.parent": "eth0", "rvswitch.routing": "true"}),
                "routing",
            ),
            (
                json!({"rvswitch.parent": "eth0", "rvswitch.scope": "global", "rvswitch.name": "x"}),
                "global",
            ),
            (json!({"rvswitch.parent_port": "afxdp"}), "belongs to"),
            (
                json!({"rvswitch.parent": "eth0", "rvswitch.parent_port": "tap"}),
                "afpacket or afxdp",
            ),
        ] {
            let e = g(bad.clone()).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = network_from_request(&req(json!({
            "com.docker.network.internal": true,
            "com.docker.network.generic": {"rvswitch.parent": "eth0.10"}
        })))
        .unwrap_err()
        .to_string();
        assert!(e.contains("--internal"), "{e}");
    }

    #[test]
    fn every_option() {
        let n = network_from_request(&req(json!({
            "com.docker.network.internal": true,
            "com.docker.network.generic": {
                "rvswitch.vni": 5000, "rvswitch.mtu": "1450", "rvswitch.port_type": "afxdp",
                "rvswitch.vtep_local": "192.0.2.1", "rvswitch.vtep_remotes": "192.0.2.2,192.0.2.3",
                "rvswitch.port_security": "false", "rvswitch.routing": "true", "team": "blue"
            }
        })))
        .unwrap();
        assert_eq!(n.kind, NetworkKind::Vxlan { vni: 5000 });
        assert_eq!(n.mtu, 1450);
        assert_eq!(n.port_type, PortType::Afxdp);
        assert!(n.internal && !n.port_security && n.routing);
        assert_eq!(n.options.get("team").map(String::as_str), Some("blue"));
    }

    #[test]
    fn bad_options_say_what_is_accepted() {
        let err = |g: Value| {
            network_from_request(&req(json!({ GENERIC: g })))
                .unwrap_err()
                .to_string()
        };
        assert!(err(json!({"rvswitch.vlan": "5000"})).contains("1-4094"));
        assert!(err(json!({"rvswitch.kind": "vlan"})).contains("needs rvswitch.vlan"));
        assert!(
            err(json!({"rvswitch.kind": "bridge", "rvswitch.vlan": "3"})).contains("does not take")
        );
        assert!(err(json!({"rvswitch.kind": "mesh"})).contains("bridge, vlan or vxlan"));
        assert!(err(json!({"rvswitch.colour": "red"})).contains("rvswitch knows"));
        assert!(err(json!({"rvswitch.port_security": "maybe"})).contains("true or false"));
        assert!(err(json!({"rvswitch.port_type": "dpdk"})).contains("tap, afxdp or afpacket"));
        assert!(err(json!({"rvswitch.endpoint": "dpdk"})).contains("tap, afxdp or afpacket"));
        let e = network_from_request(&req(json!({ GENERIC: "x" }))).unwrap_err();
        assert!(matches!(e, OptionError::NotAnObject(_)));
        let mut r = req(json!({}));
        r.ipv4_data[0].pool = "10.0.0.1/24".into();
        assert!(
            network_from_request(&r)
                .unwrap_err()
                .to_string()
                .contains("host bits")
        );
    }
}
