//! The control plane's operations on a bridge domain's forwarding
//! database: listing, static entries (stored), deleting and flushing.
//!
//! Owns: FDB requests' checks and their order (see `control.rs` for the
//! rules). Never: learned entries in the store — only static ones persist.

use rvs_switch::MacAddr;
use rvs_switch::fdb::FlushFilter;
use rvs_switch::vlan::check_vid;

use super::control::{
    Control, ControlError, PortState, State, not_found_domain, not_found_port, switch_error,
};
use super::model::*;
use super::store::static_key;
use crate::worker::Target;

type Result<T, E = ControlError> = std::result::Result<T, E>;

impl Control {
    pub(super) fn attached_port<'a>(st: &'a State, name: &str) -> Result<&'a PortState> {
        let p = st.ports.get(name).ok_or_else(|| not_found_port(name))?;
        match &p.error {
            None => Ok(p),
            Some(e) => Err(ControlError::Conflict(format!(
                "port {name} is not attached: {e}"
            ))),
        }
    }

    pub fn list_fdb(&self, domain: &str) -> Result<Vec<FdbEntryView>> {
        let st = self.lock();
        if !st.domains.contains_key(domain) {
            return Err(not_found_domain(domain));
        }
        let d = domain.to_string();
        self.dp.call(Target::Domain(domain), move |sw| {
            let did = sw.domain_id(&d).ok_or_else(|| not_found_domain(&d))?;
            let entries = sw.fdb_entries(did).map_err(switch_error)?;
            Ok(entries
                .into_iter()
                .map(|e| FdbEntryView {
                    vid: e.vid,
                    mac: e.mac,
                    port: sw
                        .port_info(e.port)
                        .map_or_else(|_| e.port.to_string(), |p| p.name),
                    is_static: e.is_static,
                    age_secs: e.age_secs,
                    damped: e.damped,
                })
                .collect())
        })?
    }

    pub fn add_static(&self, domain: &str, e: StaticEntry) -> Result<()> {
        e.validate().map_err(ControlError::BadRequest)?;
        self.change(|st| {
            if !st.domains.contains_key(domain) {
                return Err(not_found_domain(domain));
            }
            let p = Self::attached_port(st, &e.port)?;
            if p.rec.config.domain != domain {
                return Err(ControlError::Conflict(format!(
                    "port {} belongs to bridge domain {}, not {domain}",
                    e.port, p.rec.config.domain
                )));
            }
            let rec = StaticRecord::new(domain, &e);
            let mut next = st.desired();
            next.statics.insert(static_key(domain, e.vid, e.mac), rec);
            self.commit(st, next)
        })
    }

    /// Delete one entry, static or learned.
    pub fn delete_fdb_entry(&self, domain: &str, vid: &str, mac: &str) -> Result<()> {
        let vid = vid
            .parse::<u32>()
            .map_err(|_| ControlError::BadRequest(format!("invalid VLAN id {vid:?}")))
            .and_then(|v| check_vid(v).map_err(|e| ControlError::BadRequest(e.to_string())))?;
        let mac: MacAddr = mac
            .parse()
            .map_err(|e: rvs_switch::mac::ParseMacError| ControlError::BadRequest(e.to_string()))?;
        self.change(|st| {
            if !st.domains.contains_key(domain) {
                return Err(not_found_domain(domain));
            }
            let key = static_key(domain, vid, mac);
            if st.statics.contains_key(&key) {
                let mut next = st.desired();
                next.statics.remove(&key);
                return self.commit(st, next);
            }
            // A learned entry: not configuration, nothing to store.
            if self.remove_entry(domain, vid, mac)? {
                return Ok(());
            }
            Err(ControlError::NotFound(format!(
                "no FDB entry for {mac} in VLAN {vid} of bridge domain {domain}"
            )))
        })
    }

    /// Flush learned entries (static ones stay), optionally of one port or
    /// VLAN. Returns how many went.
    pub fn flush_fdb(&self, domain: &str, q: FlushQuery) -> Result<usize> {
        if let Some(v) = q.vid {
            check_vid(v as u32).map_err(|e| ControlError::BadRequest(e.to_string()))?;
        }
        let st = self.lock();
        if !st.domains.contains_key(domain) {
            return Err(not_found_domain(domain));
        }
        if let Some(p) = &q.port {
            let ps = Self::attached_port(&st, p)?;
            if ps.rec.config.domain != domain {
                return Err(ControlError::Conflict(format!(
                    "port {p} belongs to bridge domain {}, not {domain}",
                    ps.rec.config.domain
                )));
            }
        }
        let d = domain.to_string();
        self.dp.call(Target::Domain(domain), move |sw| {
            let did = sw.domain_id(&d).ok_or_else(|| not_found_domain(&d))?;
            let port = match &q.port {
                Some(p) => Some(sw.port_id(p).ok_or_else(|| not_found_port(p))?),
                None => None,
            };
            sw.flush_fdb(
                did,
                FlushFilter {
                    port,
                    vid: q.vid,
                    include_static: false,
                },
            )
            .map_err(switch_error)
        })?
    }
}
