//! The control plane's operations on services: a name of a network with
//! VIPs balanced over backends by the switch (`rvs_switch::lb`), or, in
//! mode `dnsrr`, a DNS name answered round robin with the backends'
//! addresses. Services are desired state like every other table (stored,
//! changed only through [`Control::commit`]); the reconcile's last step
//! resolves each backend (an address, or a name of the network's DNS) and
//! hands the whole set to the load balancer on the L3 worker
//! ([`Control::apply_services`]), so a backend whose name goes (its
//! endpoint left) leaves the service in the same change.
//!
//! Owns: the checks on a service, backend resolution. Never: packets.

use std::net::IpAddr;

use rvs_switch::lb;

use super::apply::L3_WORKER;
use super::control::{Control, ControlError, State, not_found_domain};
use super::model::*;
use crate::worker::Target;

type Result<T, E = ControlError> = std::result::Result<T, E>;

/// The addresses backend `b` of a service of `domain` has now: itself when
/// it is an address, else its name's addresses in the network (none once
/// the name is gone).
pub(super) fn resolve(st: &State, domain: &str, b: &str) -> Vec<IpAddr> {
    if let Ok(a) = b.parse::<IpAddr>() {
        return vec![a];
    }
    st.names
        .get(&name_key(domain, b))
        .map(|n| n.addresses.clone())
        .unwrap_or_default()
}

/// The load balancer's services for the services of `st` (mode `vip`).
fn lb_services(st: &State) -> Vec<LbService> {
    let mut out = Vec::new();
    for s in st.services.values() {
        if s.spec.mode != ServiceMode::Vip {
            continue;
        }
        let health = s.spec.health_check.map(|h| lb::HealthCheck {
            port: s.spec.check_port().unwrap_or(1),
            interval_ms: h.interval_ms,
            timeout_ms: h.timeout_ms,
        });
        let ports: Vec<lb::ServicePort> = s
            .spec
            .ports
            .iter()
            .map(|p| lb::ServicePort {
                proto: p.protocol.number(),
                port: p.port,
                target: p.target(),
            })
            .collect();
        for vip in &s.spec.vips {
            let mut backends: Vec<IpAddr> = Vec::new();
            for b in &s.spec.backends {
                for a in resolve(st, &s.domain, b) {
                    if a.is_ipv4() == vip.is_ipv4() && !backends.contains(&a) {
                        backends.push(a);
                    }
                }
            }
            backends.truncate(lb::BACKENDS_MAX);
            out.push(LbService {
                domain: s.domain.clone(),
                vip: *vip,
                ports: ports.clone(),
                backends,
                health,
            });
        }
    }
    out
}

impl Control {
    /// The services of `domain`, with what the switch does with them.
    pub fn list_services(&self, domain: &str) -> Result<Vec<ServiceView>> {
        let st = self.lock();
        if !st.domains.contains_key(domain) {
            return Err(not_found_domain(domain));
        }
        let recs: Vec<ServiceRecord> = st
            .services
            .values()
            .filter(|s| s.domain == domain)
            .cloned()
            .collect();
        let status = self.lb_status(domain)?;
        Ok(recs.into_iter().map(|r| view(&st, r, &status)).collect())
    }

    pub fn get_service(&self, domain: &str, name: &str) -> Result<ServiceView> {
        let st = self.lock();
        if !st.domains.contains_key(domain) {
            return Err(not_found_domain(domain));
        }
        let rec = st
            .services
            .get(&name_key(domain, name))
            .cloned()
            .ok_or_else(|| not_found_service(domain, name))?;
        let status = self.lb_status(domain)?;
        Ok(view(&st, rec, &status))
    }

    /// Add or replace service `name` of `domain`; stored.
    pub fn set_service(&self, domain: &str, name: &str, spec: ServiceSpec) -> Result<ServiceView> {
        spec.validate(name).map_err(ControlError::BadRequest)?;
        let rec = ServiceRecord {
            domain: domain.to_string(),
            name: rvs_dns::normalize(name),
            spec,
        };
        self.change(|st| {
            let Some(d) = st.domains.get(domain) else {
                return Err(not_found_domain(domain));
            };
            if rec.spec.mode == ServiceMode::Vip {
                let Some(g) = &d.gateway else {
                    return Err(ControlError::Conflict(format!(
                        "bridge domain {domain} has no gateway: a VIP is answered by the gateway; add one first"
                    )));
                };
                for vip in &rec.spec.vips {
                    let gw = g.addresses.iter().any(|a| {
                        a.split('/').next().and_then(|a| a.parse::<IpAddr>().ok()) == Some(*vip)
                    });
                    if gw {
                        return Err(ControlError::Conflict(format!(
                            "{vip} is an address of the gateway of {domain}"
                        )));
                    }
                    let taken = st.services.values().find(|o| {
                        o.domain == domain && o.name != rec.name && o.spec.vips.contains(vip)
                    });
                    if let Some(o) = taken {
                        return Err(ControlError::Conflict(format!(
                            "VIP {vip} belongs to service {} of {domain}",
                            o.name
                        )));
                    }
                }
            }
            let mut next = st.desired();
            next.services.insert(rec.key(), rec.clone());
            self.commit(st, next)?;
            Ok(())
        })?;
        self.get_service(domain, name)
    }

    pub fn delete_service(&self, domain: &str, name: &str) -> Result<()> {
        self.change(|st| {
            if !st.domains.contains_key(domain) {
                return Err(not_found_domain(domain));
            }
            let key = name_key(domain, name);
            if !st.services.contains_key(&key) {
                return Err(not_found_service(domain, name));
            }
            let mut next = st.desired();
            next.services.remove(&key);
            self.commit(st, next)
        })
    }

    /// Give the load balancer the services of `st` (reconcile step 9).
    pub(super) fn apply_services(&self, st: &mut State) -> Result<()> {
        let want = lb_services(st);
        // Unchanged (the usual case: a change elsewhere): nothing to tell
        // the worker. A domain's id changes only when it is deleted and
        // added again, and deleting it deletes its services.
        if want == st.lb {
            return Ok(());
        }
        let list = want.clone();
        self.dp.call(Target::Worker(L3_WORKER), move |sw| {
            let mut services = Vec::with_capacity(list.len());
            for s in list {
                let id = sw
                    .domain_id(&s.domain)
                    .ok_or_else(|| not_found_domain(&s.domain))?;
                services.push(lb::Service {
                    domain: id,
                    vip: s.vip,
                    ports: s.ports,
                    backends: s.backends,
                    health: s.health,
                });
            }
            sw.set_services(services)
                .map_err(super::error::switch_error)
        })??;
        st.lb = want;
        Ok(())
    }

    /// The load balancer's view of the services of `domain`.
    fn lb_status(&self, domain: &str) -> Result<Vec<lb::ServiceStatus>> {
        let d = domain.to_string();
        Ok(self.dp.call(Target::Worker(L3_WORKER), move |sw| {
            let Some(id) = sw.domain_id(&d) else {
                return Vec::new();
            };
            sw.services()
                .into_iter()
                .filter(|s| s.domain == id)
                .collect()
        })?)
    }

    /// Add the names of the services of `domain` to `zone` (DNS), in its
    /// scope `id` (the gateway's VLAN): a vip
    /// service's name answers its VIPs, a dnsrr service's its backends'
    /// addresses, round robin.
    pub(super) fn service_names(
        st: &State,
        domain: &str,
        id: rvs_dns::NetId,
        zone: &mut rvs_dns::Zone,
    ) {
        for s in st.services.values().filter(|s| s.domain == domain) {
            match s.spec.mode {
                ServiceMode::Vip => zone.insert(id, &s.name, &s.spec.vips),
                ServiceMode::Dnsrr => {
                    let mut addrs: Vec<IpAddr> = Vec::new();
                    for b in &s.spec.backends {
                        for a in resolve(st, &s.domain, b) {
                            if !addrs.contains(&a) {
                                addrs.push(a);
                            }
                        }
                    }
                    if !addrs.is_empty() {
                        zone.insert_round_robin(id, &s.name, &addrs);
                    }
                }
            }
        }
    }
}

fn not_found_service(domain: &str, name: &str) -> ControlError {
    ControlError::NotFound(format!("no service {name} in bridge domain {domain}"))
}

/// The view of `rec`: each backend's address(es) now (of its VIPs'
/// families) and, for a vip service, whether the load balancer sends it
/// new flows.
fn view(st: &State, rec: ServiceRecord, status: &[lb::ServiceStatus]) -> ServiceView {
    let mine: Vec<&lb::ServiceStatus> = status
        .iter()
        .filter(|s| rec.spec.mode == ServiceMode::Vip && rec.spec.vips.contains(&s.vip))
        .collect();
    let mut backends = Vec::new();
    let vip = rec.spec.mode == ServiceMode::Vip;
    let served = |a: &IpAddr| !vip || rec.spec.vips.iter().any(|v| v.is_ipv4() == a.is_ipv4());
    for b in &rec.spec.backends {
        let mut addrs = resolve(st, &rec.domain, b);
        // A vip service uses only the addresses of its VIPs' families.
        addrs.retain(served);
        if addrs.is_empty() {
            backends.push(BackendView {
                backend: b.clone(),
                address: None,
                up: None,
            });
        }
        for a in addrs {
            let up = mine
                .iter()
                .flat_map(|s| &s.backends)
                .find(|x| x.addr == a)
                .map(|x| x.up);
            backends.push(BackendView {
                backend: b.clone(),
                address: Some(a),
                up,
            });
        }
    }
    let flows = mine.iter().map(|s| s.flows as u64).sum();
    ServiceView {
        service: rec,
        backends,
        flows,
    }
}
