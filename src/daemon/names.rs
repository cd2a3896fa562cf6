//! The control plane's operations on the embedded DNS's names: a name of
//! a network (bridge domain, and a VLAN of it: each VLAN of a domain is its
//! own name scope) and its addresses, stored like every other piece of
//! desired state and reconciled; the reconcile's last step hands the whole
//! table to the DNS service ([`Control::publish_names`]). Also the DNS
//! listeners: resolver addresses in a domain's VLANs other than its
//! gateway's (`rvs_switch::router::listen`).
//!
//! Owns: the checks on a name and its key. Never: DNS packets (that is
//! `crate::dns` and `rvs-dns`).

use std::collections::HashMap;

use super::apply::L3_WORKER;
use super::control::{Control, ControlError, State, not_found_domain};
use super::model::*;
use crate::worker::Target;

type Result<T, E = ControlError> = std::result::Result<T, E>;

pub use rvs_dns::NameService;

impl Control {
    /// The names of `domain`, by name.
    pub fn list_names(&self, domain: &str) -> Result<Vec<NameRecord>> {
        let st = self.lock();
        if !st.domains.contains_key(domain) {
            return Err(not_found_domain(domain));
        }
        Ok(st
            .names
            .values()
            .filter(|n| n.domain == domain)
            .cloned()
            .collect())
    }

    /// Give `name` the addresses of `spec` in `domain` (replacing what it
    /// had); stored. A VLAN that is the gateway's is stored as none (the
    /// default scope), so one name has one record there.
    pub fn set_name(&self, domain: &str, name: &str, spec: NameSpec) -> Result<NameRecord> {
        spec.validate(name).map_err(ControlError::BadRequest)?;
        let mut addresses = spec.addresses;
        addresses.dedup();
        self.change(|st| {
            if !st.domains.contains_key(domain) {
                return Err(not_found_domain(domain));
            }
            let vlan = spec.vlan.filter(|v| *v != gateway_vid(st, domain));
            let rec = NameRecord {
                domain: domain.to_string(),
                name: rvs_dns::normalize(name),
                addresses,
                vlan,
            };
            let mut next = st.desired();
            next.names.insert(rec.key(), rec.clone());
            self.commit(st, next)?;
            Ok(rec)
        })
    }

    /// Remove `name` of `domain` in the gateway's VLAN.
    pub fn delete_name(&self, domain: &str, name: &str) -> Result<()> {
        self.delete_name_in(domain, name, NameQuery::default())
    }

    /// Remove `name` of `domain` in the VLAN `q` names.
    pub fn delete_name_in(&self, domain: &str, name: &str, q: NameQuery) -> Result<()> {
        if let Some(v) = q.vlan
            && !(1..=4094).contains(&v)
        {
            return Err(ControlError::BadRequest(format!(
                "VLAN {v} out of range 1..=4094"
            )));
        }
        self.change(|st| {
            if !st.domains.contains_key(domain) {
                return Err(not_found_domain(domain));
            }
            // The record as given first (a name stored with a VLAN that
            // became the gateway's later), else as `set_name` stores it.
            let exact = name_key_in(domain, q.vlan, name);
            let vlan = q.vlan.filter(|v| *v != gateway_vid(st, domain));
            let key = if st.names.contains_key(&exact) {
                exact
            } else {
                name_key_in(domain, vlan, name)
            };
            if !st.names.contains_key(&key) {
                let in_vlan = vlan.map(|v| format!(" in VLAN {v}")).unwrap_or_default();
                return Err(ControlError::NotFound(format!(
                    "no name {name}{in_vlan} in bridge domain {domain}"
                )));
            }
            let mut next = st.desired();
            next.names.remove(&key);
            self.commit(st, next)
        })
    }

    /// The DNS listeners of `domain`, by VLAN.
    pub fn list_dns_listeners(&self, domain: &str) -> Result<Vec<DnsListenerRecord>> {
        let st = self.lock();
        if !st.domains.contains_key(domain) {
            return Err(not_found_domain(domain));
        }
        let mut v: Vec<DnsListenerRecord> = st
            .dns
            .values()
            .filter(|l| l.domain == domain)
            .cloned()
            .collect();
        v.sort_by_key(|l| l.vid);
        Ok(v)
    }

    /// Give `domain` resolver addresses in VLAN `vid` (replacing what it
    /// had there); stored. Refused: a VLAN out of range or the gateway's
    /// own, an address of the gateway (400), a domain without a gateway
    /// (409).
    pub fn set_dns_listener(
        &self,
        domain: &str,
        vid: &str,
        spec: DnsListenerSpec,
    ) -> Result<DnsListenerRecord> {
        let vid = parse_vid(vid)?;
        spec.validate().map_err(ControlError::BadRequest)?;
        let mut addresses = spec.addresses;
        addresses.sort();
        addresses.dedup();
        self.change(|st| {
            let d = st
                .domains
                .get(domain)
                .ok_or_else(|| not_found_domain(domain))?;
            let Some(g) = &d.gateway else {
                return Err(ControlError::Conflict(format!(
                    "bridge domain {domain} has no gateway: a DNS listener answers with \
                     the gateway's MAC; give the domain a gateway first"
                )));
            };
            if g.vid == vid {
                return Err(ControlError::BadRequest(format!(
                    "VLAN {vid} is the gateway's own: its addresses answer DNS there already"
                )));
            }
            if let Some((a, _)) = g
                .addresses
                .iter()
                .filter_map(|a| parse_cidr(a).ok())
                .find(|(a, _)| addresses.contains(a))
            {
                return Err(ControlError::BadRequest(format!(
                    "{a} is the gateway's address; a DNS listener needs addresses of its own"
                )));
            }
            let rec = DnsListenerRecord {
                domain: domain.to_string(),
                vid,
                addresses,
            };
            let mut next = st.desired();
            next.dns.insert(rec.key(), rec.clone());
            self.commit(st, next)?;
            Ok(rec)
        })
    }

    pub fn delete_dns_listener(&self, domain: &str, vid: &str) -> Result<()> {
        let vid = parse_vid(vid)?;
        self.change(|st| {
            if !st.domains.contains_key(domain) {
                return Err(not_found_domain(domain));
            }
            let key = format!("{domain}/{vid}");
            if !st.dns.contains_key(&key) {
                return Err(ControlError::NotFound(format!(
                    "bridge domain {domain} has no DNS listener in VLAN {vid}"
                )));
            }
            let mut next = st.desired();
            next.dns.remove(&key);
            self.commit(st, next)
        })
    }

    /// Hand the names of `st` to the DNS service (when it runs), each under
    /// the data plane's id of its domain. Domains with a gateway live on
    /// the L3 worker, so that worker knows every id a query can come from.
    pub(super) fn publish_names(&self, st: &State) {
        let Some(dns) = self.dns.get() else {
            return;
        };
        let ids = self.dp.call(Target::Worker(L3_WORKER), |sw| {
            sw.domains()
                .into_iter()
                .map(|d| (d.cfg.name, d.id.0))
                .collect::<HashMap<String, u16>>()
        });
        let ids = match ids {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot read domain ids; DNS names not updated");
                return;
            }
        };
        let mut zone = rvs_dns::Zone::new();
        for n in st.names.values() {
            if let Some(id) = ids.get(&n.domain) {
                let vid = n.vlan.unwrap_or_else(|| gateway_vid(st, &n.domain));
                zone.insert(rvs_dns::net_id(*id, vid), &n.name, &n.addresses);
            }
        }
        for (domain, names) in self.remote_names.lock().unwrap().iter() {
            // Other hosts' names of a global network: its gateway's VLAN.
            if let Some(id) = ids.get(domain) {
                let net = rvs_dns::net_id(*id, gateway_vid(st, domain));
                for (name, addrs) in names {
                    zone.insert(net, name, addrs);
                }
            }
        }
        for (domain, id) in &ids {
            let net = rvs_dns::net_id(*id, gateway_vid(st, domain));
            Self::service_names(st, domain, net, &mut zone);
        }
        dns.set_zone(zone);
    }

    /// Start answering with `dns` (once; later calls are ignored).
    pub fn set_dns(&self, dns: std::sync::Arc<dyn NameService>) {
        if self.dns.set(dns).is_ok() {
            let st = self.lock();
            self.publish_names(&st);
        }
    }

    /// Send a DNS answer into its domain from worker 0 without waiting.
    pub fn post_dns_reply(&self, r: rvs_switch::router::UdpReply) -> bool {
        let failed = self.dns.get().map(|d| d.reply_failures());
        self.dp
            .post(Target::Worker(L3_WORKER), move |sw| {
                if sw.send_udp_reply(&r).is_err()
                    && let Some(f) = failed
                {
                    f.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .is_ok()
    }

    /// Send a TCP segment of the DNS service into its domain from worker 0
    /// without waiting.
    pub fn post_dns_ip_reply(&self, r: rvs_switch::router::IpReply) -> bool {
        let failed = self.dns.get().map(|d| d.reply_failures());
        self.dp
            .post(Target::Worker(L3_WORKER), move |sw| {
                if sw.send_ip_reply(&r).is_err()
                    && let Some(f) = failed
                {
                    f.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .is_ok()
    }

    /// Install (or remove) the punt sink of DNS queries on worker 0.
    pub fn set_dns_punt(&self, sink: Option<rvs_switch::router::PuntSink>) -> Result<()> {
        Ok(self
            .dp
            .call(Target::Worker(L3_WORKER), move |sw| sw.set_dns_punt(sink))?)
    }
}

/// The VLAN of `domain`'s gateway (1 when it has none): the scope of its
/// names that name no VLAN.
fn gateway_vid(st: &State, domain: &str) -> u16 {
    st.domains
        .get(domain)
        .and_then(|d| d.gateway.as_ref())
        .map_or(1, |g| g.vid)
}

/// A VLAN id of a path: 1 to 4094.
fn parse_vid(s: &str) -> Result<u16> {
    s.parse::<u16>()
        .ok()
        .filter(|v| (1..=4094).contains(v))
        .ok_or_else(|| ControlError::BadRequest(format!("VLAN {s:?} is not a VLAN id (1..=4094)")))
}
