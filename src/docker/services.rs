//! Services declared by Docker container labels: a container started with
//!
//! ```text
//! docker run -l rvswitch.service=web -l rvswitch.service.port=80 ...
//! ```
//!
//! is a backend of service `web` on each rvswitch network it is on. The
//! labels (read from the engine's API with the containers' names, see
//! `names_loop`; a remote driver is given no labels):
//!
//! - `rvswitch.service=NAME`: the service (a DNS name of the network).
//! - `rvswitch.service.port=PORT[:TARGET][/tcp|/udp],...`: the ports the
//!   VIP offers, each going to the backends' TARGET (default PORT), TCP
//!   unless `/udp`. Needed unless the mode is `dnsrr`.
//! - `rvswitch.service.vip=ADDR[,ADDR]`: the VIP (one per family); without
//!   it the service gets a free IPv4 address from the top of the network's
//!   subnet (kept while the service lives).
//! - `rvswitch.service.mode=vip|dnsrr`: as `ctl service add --mode`.
//!
//! The backends are the addresses of the labelled containers on the
//! network, so they follow container start, stop and removal; the service
//! goes with the last of them. Services made through the API are never
//! touched (a label naming one is ignored, with a warning); such a
//! service is marked with [`SERVICE_ORIGIN_DOCKER_LABEL`].
//!
//! Owns: the labels' syntax, the label services of each network. Never:
//! the services' data plane (that is `Control::set_service`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use rvs_cnm::prefix::from_u128;
use serde_json::Value;

use crate::api::{
    Protocol, SERVICE_ORIGIN_DOCKER_LABEL, ServiceMode, ServicePortSpec, ServiceSpec,
};
use crate::daemon::control::Control;

pub const LABEL: &str = "rvswitch.service";
pub const LABEL_PORT: &str = "rvswitch.service.port";
pub const LABEL_VIP: &str = "rvswitch.service.vip";
pub const LABEL_MODE: &str = "rvswitch.service.mode";

/// What one container's labels declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// Normalized (lower case).
    pub name: String,
    pub mode: ServiceMode,
    pub ports: Vec<ServicePortSpec>,
    pub vips: Vec<IpAddr>,
}

/// `PORT[:TARGET][/PROTO]`.
fn parse_port(s: &str) -> Result<ServicePortSpec, String> {
    let (ports, proto) = match s.rsplit_once('/') {
        Some((p, "tcp")) => (p, Protocol::Tcp),
        Some((p, "udp")) => (p, Protocol::Udp),
        Some((_, other)) => return Err(format!("{s:?}: protocol {other:?} is not tcp or udp")),
        None => (s, Protocol::Tcp),
    };
    let num = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{s:?}: {p:?} is not a port (1 to 65535)"))
    };
    let (port, target) = match ports.split_once(':') {
        Some((p, t)) => (num(p)?, num(t)?),
        None => (num(ports)?, num(ports)?),
    };
    Ok(ServicePortSpec {
        port,
        protocol: proto,
        target_port: (target != port).then_some(target),
    })
}

/// The service a container's labels declare: None without
/// `rvswitch.service`, else the declaration or what is wrong with it.
pub fn declared(labels: &Value) -> Option<Result<Declared, String>> {
    let get = |k: &str| labels.get(k).and_then(Value::as_str).map(str::trim);
    let name = get(LABEL)?;
    Some((|| {
        rvs_dns::check_name(name).map_err(|e| format!("{LABEL}={name:?}: {e}"))?;
        let mode = match get(LABEL_MODE) {
            None | Some("vip") => ServiceMode::Vip,
            Some("dnsrr") => ServiceMode::Dnsrr,
            Some(m) => return Err(format!("{LABEL_MODE}={m:?}: the modes are vip and dnsrr")),
        };
        let list = |k: &str| -> Vec<&str> {
            get(k)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let ports = list(LABEL_PORT)
            .into_iter()
            .map(parse_port)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{LABEL_PORT}: {e}"))?;
        let vips = list(LABEL_VIP)
            .into_iter()
            .map(|v| {
                v.parse::<IpAddr>()
                    .map_err(|_| format!("{LABEL_VIP}: {v:?} is not an address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if mode == ServiceMode::Vip && ports.is_empty() {
            return Err(format!(
                "{LABEL}={name}: a vip service needs its ports ({LABEL_PORT}=80/tcp)"
            ));
        }
        Ok(Declared {
            name: rvs_dns::normalize(name),
            mode,
            ports,
            vips,
        })
    })())
}

/// The label services of one network: by name, the declaration (of the
/// first container, by id, that declares it) and its backends' addresses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Wanted(pub BTreeMap<String, (Declared, Vec<IpAddr>)>);

impl Wanted {
    /// Container `who` (on the network with `addrs`) declares `d`.
    pub fn add(&mut self, who: &str, d: Declared, addrs: &[IpAddr]) {
        let (first, backends) = self
            .0
            .entry(d.name.clone())
            .or_insert_with(|| (d.clone(), Vec::new()));
        if *first != d {
            tracing::warn!(
                container = %who,
                service = %d.name,
                "its service labels differ from another backend's: the first container's (by id) are used"
            );
        }
        for a in addrs {
            if !backends.contains(a) {
                backends.push(*a);
            }
        }
    }
}

/// A free IPv4 address for a VIP: from the top of `subnets`' IPv4 ones
/// down, skipping the network and broadcast addresses and `used`. The
/// engine's own IPAM hands out addresses from the bottom.
fn free_vip(subnets: &[rvs_cnm::model::Subnet], used: &[IpAddr]) -> Option<IpAddr> {
    for s in subnets.iter().filter(|s| s.pool.is_v4()) {
        let (lo, hi) = s.pool.range();
        let mut a = hi.checked_sub(1)?;
        while a > lo {
            let ip = from_u128(s.pool.addr, a);
            if !used.contains(&ip) && Some(ip) != s.gateway {
                return Some(ip);
            }
            a -= 1;
        }
    }
    None
}

/// Make the label services of `domain` (network `n`, whose endpoints are
/// `endpoints`) exactly `want`. Failures are logged; the next round tries
/// again.
pub fn sync(
    control: &Control,
    domain: &str,
    n: &rvs_cnm::Network,
    endpoints: &[rvs_cnm::Endpoint],
    want: &Wanted,
) {
    let have = match control.list_services(domain) {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(%domain, error = %e, "label services not synced");
            return;
        }
    };
    let ours = |spec: &ServiceSpec| spec.origin.as_deref() == Some(SERVICE_ORIGIN_DOCKER_LABEL);
    for h in &have {
        let s = &h.service;
        if ours(&s.spec)
            && !want.0.contains_key(&s.name)
            && let Err(e) = control.delete_service(domain, &s.name)
        {
            tracing::warn!(%domain, service = %s.name, error = %e, "label service not removed");
        }
    }
    // Addresses a new VIP must not take.
    let mut used: Vec<IpAddr> = endpoints
        .iter()
        .filter(|e| e.network_id == n.id)
        .flat_map(|e| [e.ipv4, e.ipv6])
        .flatten()
        .map(|c| c.addr)
        .collect();
    used.extend(
        have.iter()
            .flat_map(|h| h.service.spec.vips.iter().copied()),
    );
    for (name, (d, addrs)) in &want.0 {
        let old = have.iter().find(|h| &h.service.name == name);
        if let Some(o) = old.filter(|o| !ours(&o.service.spec)) {
            tracing::warn!(
                %domain,
                service = %o.service.name,
                "a service of that name was made through the API: the containers' labels are ignored"
            );
            continue;
        }
        let vips = match d.mode {
            ServiceMode::Dnsrr => Vec::new(),
            ServiceMode::Vip if !d.vips.is_empty() => d.vips.clone(),
            ServiceMode::Vip => match old.map(|o| &o.service.spec.vips) {
                Some(v) if !v.is_empty() => v.clone(),
                _ => match free_vip(&n.subnets, &used) {
                    Some(v) => {
                        used.push(v);
                        vec![v]
                    }
                    None => {
                        tracing::warn!(%domain, service = %name, "no free address in the network's subnet for a VIP");
                        continue;
                    }
                },
            },
        };
        let mut backends: Vec<IpAddr> = addrs.clone();
        backends.sort();
        let spec = ServiceSpec {
            mode: d.mode,
            vips,
            ports: d.ports.clone(),
            backends: backends.iter().map(IpAddr::to_string).collect(),
            health_check: None,
            origin: Some(SERVICE_ORIGIN_DOCKER_LABEL.into()),
        };
        if old.is_some_and(|o| o.service.spec == spec) {
            continue;
        }
        match control.set_service(domain, name, spec) {
            Ok(_) => {
                tracing::info!(%domain, service = %name, backends = backends.len(), "label service set")
            }
            Err(e) => tracing::warn!(%domain, service = %name, error = %e, "label service not set"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The address `by` after the first of `c`.
    fn nth(c: &str, by: u128) -> IpAddr {
        let c = rvs_cnm::prefix::Cidr::parse_addr(c).unwrap();
        from_u128(c.addr, rvs_cnm::prefix::to_u128(c.addr) + by)
    }

    #[test]
    fn labels_declare_a_service() {
        assert!(declared(&json!({"other": "x"})).is_none());
        let d = declared(&json!({
            "rvswitch.service": "Web",
            "rvswitch.service.port": "80, 8443:443/tcp,53/udp",
            "rvswitch.service.vip": "10.0.0.100",
        }))
        .unwrap()
        .unwrap();
        assert_eq!(d.name, "web");
        assert_eq!(d.mode, ServiceMode::Vip);
        assert_eq!(d.vips, ["10.0.0.100".parse::<IpAddr>().unwrap()]);
        let p: Vec<(u16, u16, Protocol)> = d
            .ports
            .iter()
            .map(|p| (p.port, p.target(), p.protocol))
            .collect();
        assert_eq!(
            p,
            [
                (80, 80, Protocol::Tcp),
                (8443, 443, Protocol::Tcp),
                (53, 53, Protocol::Udp)
            ]
        );
        let rr = declared(&json!({"rvswitch.service": "db", "rvswitch.service.mode": "dnsrr"}))
            .unwrap()
            .unwrap();
        assert_eq!(rr.mode, ServiceMode::Dnsrr);
        for (labels, why) in [
            (json!({"rvswitch.service": "web"}), "needs its ports"),
            (
                json!({"rvswitch.service": "web", "rvswitch.service.port": "80/sctp"}),
                "not tcp or udp",
            ),
            (
                json!({"rvswitch.service": "web", "rvswitch.service.port": "0"}),
                "not a port",
            ),
            (
                json!({"rvswitch.service": "web", "rvswitch.service.port": "80", "rvswitch.service.vip": "nope"}),
                "not an address",
            ),
            (
                json!({"rvswitch.service": "web", "rvswitch.service.mode": "ipvs"}),
                "modes are",
            ),
            (json!({"rvswitch.service": "-bad-"}), "rvswitch.service="),
        ] {
            let e = declared(&labels).unwrap().unwrap_err();
            assert!(e.contains(why), "{labels}: {e}");
        }
    }

    #[test]
    fn vips_come_from_the_top_of_the_subnet() {
        let subnet = rvs_cnm::model::Subnet {
            pool: rvs_cnm::prefix::Cidr::parse_prefix("10.5.0.0/24").unwrap(),
            gateway: Some(nth("10.5.0.0/24", 1)),
            address_space: String::new(),
        };
        let top = nth("10.5.0.0/24", 254);
        assert_eq!(free_vip(std::slice::from_ref(&subnet), &[]), Some(top));
        assert_eq!(
            free_vip(std::slice::from_ref(&subnet), &[top]),
            Some(nth("10.5.0.0/24", 253))
        );
        let tiny = rvs_cnm::model::Subnet {
            pool: rvs_cnm::prefix::Cidr::parse_prefix("10.6.0.0/30").unwrap(),
            gateway: Some(nth("10.6.0.0/30", 1)),
            address_space: String::new(),
        };
        assert_eq!(
            free_vip(std::slice::from_ref(&tiny), &[nth("10.6.0.0/30", 2)]),
            None
        );
    }
}
