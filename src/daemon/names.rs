//! The control plane's operations on the embedded DNS's names: a name of
//! a network (bridge domain) and its addresses, stored like every other
//! piece of desired state and reconciled; the reconcile's last step hands
//! the whole table to the DNS service ([`Control::publish_names`]).
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
    /// had); stored.
    pub fn set_name(&self, domain: &str, name: &str, spec: NameSpec) -> Result<NameRecord> {
        spec.validate(name).map_err(ControlError::BadRequest)?;
        let mut addresses = spec.addresses;
        addresses.dedup();
        let rec = NameRecord {
            domain: domain.to_string(),
            name: rvs_dns::normalize(name),
            addresses,
        };
        self.change(|st| {
            if !st.domains.contains_key(domain) {
                return Err(not_found_domain(domain));
            }
            let mut next = st.desired();
            next.names.insert(rec.key(), rec.clone());
            self.commit(st, next)?;
            Ok(rec)
        })
    }

    pub fn delete_name(&self, domain: &str, name: &str) -> Result<()> {
        self.change(|st| {
            if !st.domains.contains_key(domain) {
                return Err(not_found_domain(domain));
            }
            let key = name_key(domain, name);
            if !st.names.contains_key(&key) {
                return Err(ControlError::NotFound(format!(
                    "no name {name} in bridge domain {domain}"
                )));
            }
            let mut next = st.desired();
            next.names.remove(&key);
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
                let vid = gateway_vid(st, &n.domain);
                zone.insert(rvs_dns::net_id(*id, vid), &n.name, &n.addresses);
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
