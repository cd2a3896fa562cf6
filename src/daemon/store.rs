//! The daemon's persistent state: bridge domains, ports (spec + settings)
//! and static FDB entries in one redb file (`<state-dir>/rvswitch.redb`).
//!
//! Owns: the file, its tables and the JSON encoding of records. Every write
//! is one transaction committed with redb's default immediate durability
//! (fsync before `commit` returns), so what the API acknowledged survives
//! `kill -9` and power loss. Never: validation (callers store only what
//! they validated) or talking to the data plane.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::model::{DomainRecord, PortRecord, RouteRecord, StaticRecord};

/// Name → JSON `DomainRecord`.
const DOMAINS: TableDefinition<&str, &str> = TableDefinition::new("domains");
/// Name → JSON `PortRecord`.
const PORTS: TableDefinition<&str, &str> = TableDefinition::new("ports");
/// `domain/vid/mac` → JSON `StaticRecord` (names cannot contain '/').
const STATICS: TableDefinition<&str, &str> = TableDefinition::new("statics");

/// `table/prefix` → JSON `RouteRecord`.
const ROUTES: TableDefinition<&str, &str> = TableDefinition::new("routes");

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "rvswitch.redb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // The cause is part of the message (API errors carry only the text),
    // so it is not also exposed as `source`, which would print it twice.
    #[error("state store {path}: {op}: {cause}")]
    Db {
        path: PathBuf,
        op: &'static str,
        cause: Box<redb::Error>,
    },
    #[error("state store {path}: create directory: {cause}")]
    Dir {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("state store {path}: record {key:?} in table {table} is unreadable: {reason}")]
    Corrupt {
        path: PathBuf,
        table: &'static str,
        key: String,
        reason: String,
    },
}

/// Everything stored, as loaded at start.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    pub domains: Vec<DomainRecord>,
    pub ports: Vec<PortRecord>,
    pub statics: Vec<StaticRecord>,
    pub routes: Vec<RouteRecord>,
}

pub struct Store {
    db: Database,
    path: PathBuf,
    /// Test hook: every write fails while set (proves the rollbacks).
    #[cfg(test)]
    pub(crate) fail_writes: std::sync::atomic::AtomicBool,
}

fn static_key(domain: &str, vid: u16, mac: rvs_switch::MacAddr) -> String {
    format!("{domain}/{vid}/{mac}")
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialize")
}

impl Store {
    /// Open (or create) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|cause| StoreError::Dir {
            path: dir.to_path_buf(),
            cause,
        })?;
        let path = dir.join(STATE_FILE);
        let db = Database::create(&path).map_err(|e| StoreError::Db {
            path: path.clone(),
            op: "open",
            cause: Box::new(e.into()),
        })?;
        let s = Store {
            db,
            path,
            #[cfg(test)]
            fail_writes: Default::default(),
        };
        // Create the tables so readers never meet a missing one.
        s.write("create tables", |tx| {
            tx.open_table(DOMAINS)?;
            tx.open_table(PORTS)?;
            tx.open_table(STATICS)?;
            tx.open_table(ROUTES)?;
            Ok(())
        })?;
        Ok(s)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db_err(&self, op: &'static str) -> impl FnOnce(redb::Error) -> StoreError + '_ {
        move |source| StoreError::Db {
            path: self.path.clone(),
            op,
            cause: Box::new(source),
        }
    }

    /// Run `f` in one write transaction and commit it durably.
    fn write<R>(
        &self,
        op: &'static str,
        f: impl FnOnce(&WriteTransaction) -> Result<R, redb::Error>,
    ) -> Result<R, StoreError> {
        let run = || -> Result<R, redb::Error> {
            #[cfg(test)]
            if self.fail_writes.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(std::io::Error::other("injected write failure").into());
            }
            let tx = self.db.begin_write()?;
            let r = f(&tx)?;
            tx.commit()?;
            Ok(r)
        };
        run().map_err(self.db_err(op))
    }

    fn read_all<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &str>,
        name: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let rows = (|| -> Result<Vec<(String, String)>, redb::Error> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(table)?;
            let mut rows = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                rows.push((k.value().to_string(), v.value().to_string()));
            }
            Ok(rows)
        })()
        .map_err(self.db_err("read"))?;
        rows.into_iter()
            .map(|(key, v)| {
                serde_json::from_str(&v).map_err(|e| StoreError::Corrupt {
                    path: self.path.clone(),
                    table: name,
                    key,
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Everything stored, domains and ports in name order.
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            domains: self.read_all(DOMAINS, "domains")?,
            ports: self.read_all(PORTS, "ports")?,
            statics: self.read_all(STATICS, "statics")?,
            routes: self.read_all(ROUTES, "routes")?,
        })
    }

    pub fn put_domain(&self, d: &DomainRecord) -> Result<(), StoreError> {
        self.write("write domain", |tx| {
            tx.open_table(DOMAINS)?
                .insert(d.name.as_str(), json(d).as_str())?;
            Ok(())
        })
    }

    pub fn delete_domain(&self, name: &str) -> Result<(), StoreError> {
        self.write("delete domain", |tx| {
            tx.open_table(DOMAINS)?.remove(name)?;
            Ok(())
        })
    }

    /// Store a port; with `drop_statics`, its static entries go in the same
    /// transaction (the port moved to another domain).
    pub fn put_port(&self, p: &PortRecord, drop_statics: bool) -> Result<(), StoreError> {
        self.write("write port", |tx| {
            tx.open_table(PORTS)?
                .insert(p.spec.name.as_str(), json(p).as_str())?;
            if drop_statics {
                remove_statics_of(tx, &p.spec.name)?;
            }
            Ok(())
        })
    }

    /// Delete a port and its static entries in one transaction.
    pub fn delete_port(&self, name: &str) -> Result<(), StoreError> {
        self.write("delete port", |tx| {
            tx.open_table(PORTS)?.remove(name)?;
            remove_statics_of(tx, name)?;
            Ok(())
        })
    }

    pub fn put_static(&self, s: &StaticRecord) -> Result<(), StoreError> {
        self.write("write static entry", |tx| {
            tx.open_table(STATICS)?.insert(
                static_key(&s.domain, s.vid, s.mac).as_str(),
                json(s).as_str(),
            )?;
            Ok(())
        })
    }

    /// Delete one static entry; returns whether it was stored.
    pub fn delete_static(
        &self,
        domain: &str,
        vid: u16,
        mac: rvs_switch::MacAddr,
    ) -> Result<bool, StoreError> {
        self.write("delete static entry", |tx| {
            let mut t = tx.open_table(STATICS)?;
            let existed = t.remove(static_key(domain, vid, mac).as_str())?.is_some();
            Ok(existed)
        })
    }

    /// The stored static entry for (domain, vid, mac), if any.
    pub fn get_static(
        &self,
        domain: &str,
        vid: u16,
        mac: rvs_switch::MacAddr,
    ) -> Result<Option<StaticRecord>, StoreError> {
        Ok(self
            .read_all::<StaticRecord>(STATICS, "statics")?
            .into_iter()
            .find(|s| s.domain == domain && s.vid == vid && s.mac == mac))
    }

    pub fn put_route(&self, r: &RouteRecord) -> Result<(), StoreError> {
        self.write("write route", |tx| {
            tx.open_table(ROUTES)?
                .insert(r.key().as_str(), json(r).as_str())?;
            Ok(())
        })
    }

    /// Delete a route by its key (`table/prefix`); returns whether it was
    /// stored.
    pub fn delete_route(&self, key: &str) -> Result<bool, StoreError> {
        self.write("delete route", |tx| {
            Ok(tx.open_table(ROUTES)?.remove(key)?.is_some())
        })
    }

    /// The stored static entries on `port`.
    pub fn statics_of(&self, port: &str) -> Result<Vec<StaticRecord>, StoreError> {
        Ok(self
            .read_all::<StaticRecord>(STATICS, "statics")?
            .into_iter()
            .filter(|s| s.port == port)
            .collect())
    }
}

fn remove_statics_of(tx: &WriteTransaction, port: &str) -> Result<(), redb::Error> {
    let mut t = tx.open_table(STATICS)?;
    let mut doomed = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        // An unreadable record is left alone rather than guessed at.
        if serde_json::from_str::<StaticRecord>(v.value()).is_ok_and(|s| s.port == port) {
            doomed.push(k.value().to_string());
        }
    }
    for k in doomed {
        t.remove(k.as_str())?;
    }
    Ok(())
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
    fn round_trip_survives_reopen() {
        let dir = TempDir::new("store");
        let d = DomainRecord {
            name: "bd0".into(),
            aging_secs: 60,
            max_macs: 100,
            vlan_protocol: rvs_switch::VlanProtocol::Dot1Ad,
            gateway: None,
            stp: None,
        };
        {
            let s = Store::open(&dir.0).unwrap();
            assert_eq!(s.load().unwrap(), Snapshot::default());
            s.put_domain(&d).unwrap();
            s.put_port(&port("p1", "bd0"), false).unwrap();
            s.put_port(&port("p2", "bd0"), false).unwrap();
            s.put_static(&stat("bd0", "p1", 1)).unwrap();
            s.put_static(&stat("bd0", "p2", 2)).unwrap();
        }
        let s = Store::open(&dir.0).unwrap();
        let snap = s.load().unwrap();
        assert_eq!(snap.domains, vec![d]);
        assert_eq!(snap.ports, vec![port("p1", "bd0"), port("p2", "bd0")]);
        assert_eq!(snap.statics.len(), 2);
        let one = stat("bd0", "p1", 1);
        assert_eq!(s.get_static("bd0", 10, one.mac).unwrap(), Some(one.clone()));
        assert_eq!(s.statics_of("p1").unwrap(), vec![one.clone()]);
    }

    #[test]
    fn deleting_a_port_takes_its_statics() {
        let dir = TempDir::new("store");
        let s = Store::open(&dir.0).unwrap();
        s.put_port(&port("p1", "bd0"), false).unwrap();
        s.put_port(&port("p2", "bd0"), false).unwrap();
        s.put_static(&stat("bd0", "p1", 1)).unwrap();
        s.put_static(&stat("bd0", "p2", 2)).unwrap();
        s.delete_port("p1").unwrap();
        let snap = s.load().unwrap();
        assert_eq!(snap.ports.len(), 1);
        assert_eq!(snap.statics, vec![stat("bd0", "p2", 2)]);
        // Moving p2 to another domain drops its statics too.
        s.put_port(&port("p2", "bd1"), true).unwrap();
        assert!(s.load().unwrap().statics.is_empty());
        assert!(
            !s.delete_static("bd0", 10, rvs_switch::MacAddr::local(2))
                .unwrap()
        );
        s.delete_domain("nope").unwrap();
    }
}
