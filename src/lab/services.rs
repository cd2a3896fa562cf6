//! A lab's `services:` on its switches: for each (switch, bridge domain)
//! of the lab, the services of the networks there are made exactly what
//! the lab file says (added, replaced when changed, the others deleted),
//! after the names (a service's backends are nodes' names or aliases).
//!
//! Owns: the lab → API mapping of a service. Never: packets.

use std::collections::{BTreeMap, BTreeSet};

use rvs_lab::{ServiceDef, Topology};

use super::{LabError, err};
use crate::api::{
    HealthCheckSpec, Protocol, ServiceMode, ServicePortSpec, ServiceSpec, ServiceView,
};
use crate::client::Client;

/// The API's spec of a lab service.
pub fn spec_of(s: &ServiceDef) -> ServiceSpec {
    let vip = !s.vips.is_empty();
    ServiceSpec {
        mode: if vip {
            ServiceMode::Vip
        } else {
            ServiceMode::Dnsrr
        },
        vips: s.vips.clone(),
        ports: s
            .ports
            .iter()
            .map(|p| ServicePortSpec {
                port: p.port,
                protocol: if p.udp { Protocol::Udp } else { Protocol::Tcp },
                target_port: (p.target != p.port).then_some(p.target),
            })
            .collect(),
        backends: s.backends.clone(),
        health_check: s.health_check.map(|port| HealthCheckSpec {
            port: Some(port),
            interval_ms: 1000,
            timeout_ms: 2500,
        }),
        origin: None,
    }
}

/// Make every (switch, domain) of the lab hold exactly its services.
pub fn ensure_services<'a>(
    topo: &Topology,
    switch: impl Fn(&str) -> &'a Client,
) -> Result<(), LabError> {
    // (switch, domain) → service name → spec.
    let mut want: BTreeMap<(String, String), BTreeMap<String, ServiceSpec>> = BTreeMap::new();
    // A global network's domain is the daemon's own (made by its CNM
    // driver, not the lab's): no services there (a service needs a
    // gateway, which global networks have not).
    for net in topo.networks.iter().filter(|n| !n.global) {
        for sw in &net.switches {
            want.entry((sw.clone(), net.domain.clone())).or_default();
        }
    }
    for s in &topo.services {
        let Some(net) = topo.network(&s.network).filter(|n| !n.global) else {
            continue;
        };
        for sw in &net.switches {
            want.entry((sw.clone(), net.domain.clone()))
                .or_default()
                .insert(rvs_dns::normalize(&s.name), spec_of(s));
        }
    }
    for ((sw, domain), services) in &want {
        let c = switch(sw);
        let base = format!("/v1/domains/{domain}/services");
        let r = c.get(&base).and_then(|r| r.ok()).map_err(err)?;
        let have: Vec<ServiceView> =
            serde_json::from_slice(&r.body).map_err(|e| err(format!("GET {base}: {e}")))?;
        let names: BTreeSet<&String> = services.keys().collect();
        for h in &have {
            if !names.contains(&h.service.name) {
                c.delete(&format!("{base}/{}", h.service.name))
                    .and_then(|r| r.ok())
                    .map_err(err)?;
            }
        }
        for (name, spec) in services {
            if have
                .iter()
                .any(|h| &h.service.name == name && &h.service.spec == spec)
            {
                continue;
            }
            c.send(hyper::Method::PUT, &format!("{base}/{name}"), spec)
                .and_then(|r| r.ok())
                .map_err(|e| err(format!("service {name} in {domain} on switch {sw}: {e}")))?;
        }
    }
    Ok(())
}
