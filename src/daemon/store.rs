//! The switch's desired state — bridge domains, ports (spec + settings),
//! static FDB entries, routes, DNS names, DNS listeners and services — as seven tables of the daemon's one state
//! store (`rvs_store`, `<state-dir>/rvswitch.redb`, shared with the CNM
//! layer's tables), and [`Desired`], the same state in memory.
//!
//! Owns: the tables, their keys, and the batch that turns one desired
//! state into another ([`Desired::diff`]). Never: validation (callers store
//! only what they validated) or talking to the data plane (that is
//! `reconcile.rs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use rvs_store::StoreError;
use rvs_store::{Batch, Db, Table};

use super::model::{
    DnsListenerRecord, DomainRecord, NameRecord, PortRecord, RouteRecord, ServiceRecord,
    StaticRecord,
};

/// Name → [`DomainRecord`].
pub const DOMAINS: Table<DomainRecord> = Table::new("domains");
/// Name → [`PortRecord`].
pub const PORTS: Table<PortRecord> = Table::new("ports");
/// `domain/vid/mac` → [`StaticRecord`] (names cannot contain '/').
pub const STATICS: Table<StaticRecord> = Table::new("statics");
/// `table/prefix` → [`RouteRecord`].
pub const ROUTES: Table<RouteRecord> = Table::new("routes");
/// `domain/name` → [`NameRecord`] (the embedded DNS's names).
pub const NAMES: Table<NameRecord> = Table::new("names");
/// `domain/vid` → [`DnsListenerRecord`] (resolver addresses in a
/// domain's VLANs other than its gateway's).
pub const DNS_LISTENERS: Table<DnsListenerRecord> = Table::new("dns_listeners");
/// `domain/name` → [`ServiceRecord`] (services with a VIP or DNS round robin).
pub const SERVICES: Table<ServiceRecord> = Table::new("services");

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = rvs_store::STATE_FILE;

/// The key of a static entry.
pub fn static_key(domain: &str, vid: u16, mac: rvs_switch::MacAddr) -> String {
    format!("{domain}/{vid}/{mac}")
}

/// What the switch must hold: every configured object, by key.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Desired {
    pub domains: BTreeMap<String, DomainRecord>,
    pub ports: BTreeMap<String, PortRecord>,
    /// By [`static_key`].
    pub statics: BTreeMap<String, StaticRecord>,
    /// By [`RouteRecord::key`].
    pub routes: BTreeMap<String, RouteRecord>,
    /// By [`NameRecord::key`].
    pub names: BTreeMap<String, NameRecord>,
    /// By [`ServiceRecord::key`].
    pub services: BTreeMap<String, ServiceRecord>,
    /// By [`DnsListenerRecord::key`].
    pub dns: BTreeMap<String, DnsListenerRecord>,
}

/// Put into `b` the changes that turn `from` into `to` in `t`.
fn diff_table<V: PartialEq + serde::Serialize>(
    b: &mut Batch,
    t: &Table<V>,
    from: &BTreeMap<String, V>,
    to: &BTreeMap<String, V>,
) {
    for k in from.keys().filter(|k| !to.contains_key(*k)) {
        b.delete(t, k);
    }
    for (k, v) in to {
        if from.get(k) != Some(v) {
            b.put(t, k, v);
        }
    }
}

impl Desired {
    /// The batch that turns the stored `self` into `to`.
    pub fn diff(&self, to: &Desired) -> Batch {
        let mut b = Batch::new();
        diff_table(&mut b, &DOMAINS, &self.domains, &to.domains);
        diff_table(&mut b, &PORTS, &self.ports, &to.ports);
        diff_table(&mut b, &STATICS, &self.statics, &to.statics);
        diff_table(&mut b, &ROUTES, &self.routes, &to.routes);
        diff_table(&mut b, &NAMES, &self.names, &to.names);
        diff_table(&mut b, &SERVICES, &self.services, &to.services);
        diff_table(&mut b, &DNS_LISTENERS, &self.dns, &to.dns);
        b
    }

    /// The static entries on port `name`, by key.
    pub fn statics_of<'a>(&'a self, port: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.statics
            .iter()
            .filter(move |(_, s)| s.port == port)
            .map(|(k, _)| k)
    }
}

/// Open the state directory's one store, importing what older layouts kept
/// elsewhere: up to commit ebaa2ca (2026-12-06) the CNM tables lived in
/// `cnm.redb`. They are copied in one transaction, then the old file is
/// renamed `cnm.redb.migrated` (kept, never deleted). A crash between the
/// two copies the same records again at the next start.
pub fn open_state(dir: &Path) -> Result<Arc<Db>, StoreError> {
    let db = Db::open_dir(dir)?;
    let legacy = dir.join(rvs_cnm::store::LEGACY_FILE);
    if legacy.is_file() {
        let n = db.import(&legacy, &rvs_cnm::store::TABLES)?;
        let to = dir.join(format!("{}.migrated", rvs_cnm::store::LEGACY_FILE));
        std::fs::rename(&legacy, &to).map_err(|cause| StoreError::File {
            path: legacy.clone(),
            op: "rename after migration",
            cause,
        })?;
        tracing::info!(records = n, from = %legacy.display(), "CNM state moved into the one state store");
    }
    Ok(Arc::new(db))
}

/// The switch's tables of a state store.
#[derive(Clone)]
pub struct Store {
    db: Arc<Db>,
}

impl Store {
    pub fn new(db: Arc<Db>) -> Store {
        Store { db }
    }

    /// Open (or create) the state store of directory `dir` on its own (the
    /// daemon opens it once and shares it; see `daemon::open_state`).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Ok(Store::new(Arc::new(Db::open_dir(dir)?)))
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    pub fn label(&self) -> &str {
        self.db.label()
    }

    /// Everything stored.
    pub fn load(&self) -> Result<Desired, StoreError> {
        Ok(Desired {
            domains: self.db.read_all(&DOMAINS)?.into_iter().collect(),
            ports: self.db.read_all(&PORTS)?.into_iter().collect(),
            statics: self.db.read_all(&STATICS)?.into_iter().collect(),
            routes: self.db.read_all(&ROUTES)?.into_iter().collect(),
            names: self.db.read_all(&NAMES)?.into_iter().collect(),
            services: self.db.read_all(&SERVICES)?.into_iter().collect(),
            dns: self.db.read_all(&DNS_LISTENERS)?.into_iter().collect(),
        })
    }

    /// Commit `b` (or add it to this thread's unit of work).
    pub fn commit(&self, b: Batch) -> Result<(), StoreError> {
        self.db.commit(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::model::{PortSettings, VlanSpec};
    use crate::daemon::testutil::TempDir;
    use crate::spec::{PortKind, PortSpec};

    fn port(name: &str, domain: &str) -> PortRecord {
        PortRecord {
            spec: PortSpec {
                name: name.into(),
                kind: PortKind::Tap,
                iface: None,
                queue: 0,
                options: Default::default(),
            },
            config: PortSettings {
                domain: domain.into(),
                vlan: VlanSpec::Access { pvid: 10 },
                learning: true,
                enabled: false,
                mac_limit: 3,
                storm_control: None,
                stp: Default::default(),
                security: None,
            },
        }
    }

    fn stat(domain: &str, port: &str, seed: u64) -> StaticRecord {
        StaticRecord {
            domain: domain.into(),
            vid: 10,
            mac: rvs_switch::MacAddr::local(seed),
            port: port.into(),
        }
    }

    #[test]
    fn a_diff_committed_survives_reopen_and_only_changes_what_differs() {
        let dir = TempDir::new("store");
        let d = DomainRecord {
            name: "bd0".into(),
            aging_secs: 60,
            max_macs: 100,
            vlan_protocol: rvs_switch::VlanProtocol::Dot1Ad,
            gateway: None,
            stp: None,
        };
        let mut want = Desired::default();
        want.domains.insert("bd0".into(), d.clone());
        for p in ["p1", "p2"] {
            want.ports.insert(p.into(), port(p, "bd0"));
        }
        for (p, seed) in [("p1", 1), ("p2", 2)] {
            let s = stat("bd0", p, seed);
            want.statics.insert(static_key(&s.domain, s.vid, s.mac), s);
        }
        {
            let s = Store::open(&dir.0).unwrap();
            assert_eq!(s.load().unwrap(), Desired::default());
            let b = Desired::default().diff(&want);
            assert_eq!(b.len(), 5);
            s.commit(b).unwrap();
        }
        let s = Store::open(&dir.0).unwrap();
        let got = s.load().unwrap();
        assert_eq!(got, want);
        assert!(got.diff(&want).is_empty());
        // Port p1 goes with its static entry: two deletions, nothing else.
        let mut next = want.clone();
        next.ports.remove("p1");
        let keys: Vec<String> = want.statics_of("p1").cloned().collect();
        keys.iter().for_each(|k| drop(next.statics.remove(k)));
        let b = want.diff(&next);
        assert_eq!(b.len(), 2);
        s.commit(b).unwrap();
        assert_eq!(s.load().unwrap(), next);
    }
}
