//! The CNM layer's persistent state: networks, endpoints and IPAM pools
//! (with their allocations) in one redb file (`<state-dir>/cnm.redb`).
//!
//! Owns: the file, its tables, the JSON encoding of records, and
//! [`reconcile`] — what the store holds that the engine no longer has.
//! Every [`Store::apply`] is one transaction committed with redb's default
//! immediate durability (fsync before it returns), so the driver commits
//! before it answers and an acknowledged call survives `kill -9`. Never:
//! validation (callers store what they validated) or data plane work.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ipam::PoolRecord;
use crate::model::{Endpoint, Network};

/// Network id → JSON [`Network`].
const NETWORKS: TableDefinition<&str, &str> = TableDefinition::new("cnm_networks");
/// Endpoint id → JSON [`Endpoint`].
const ENDPOINTS: TableDefinition<&str, &str> = TableDefinition::new("cnm_endpoints");
/// Pool id → JSON [`PoolRecord`].
const POOLS: TableDefinition<&str, &str> = TableDefinition::new("cnm_pools");

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "cnm.redb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("CNM store {path}: {op}: {cause}")]
    Db {
        path: String,
        op: &'static str,
        cause: Box<redb::Error>,
    },
    #[error("CNM store {path}: create directory: {cause}")]
    Dir {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("CNM store {path}: record {key:?} in table {table} is unreadable: {reason}")]
    Corrupt {
        path: String,
        table: &'static str,
        key: String,
        reason: String,
    },
}

/// One change; a slice of them commits atomically.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    PutNetwork(Network),
    /// Removes the network only; delete its endpoints explicitly.
    DeleteNetwork(String),
    PutEndpoint(Endpoint),
    DeleteEndpoint(String),
    PutPool(PoolRecord),
    DeletePool(String),
}

/// Everything stored, in id order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    pub networks: Vec<Network>,
    pub endpoints: Vec<Endpoint>,
    pub pools: Vec<PoolRecord>,
}

pub struct Store {
    db: Database,
    /// For messages: the file, or `memory`.
    label: String,
    /// Test hook: every write fails while set (proves the rollbacks).
    #[cfg(test)]
    pub(crate) fail_writes: std::sync::atomic::AtomicBool,
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
        let label = path.display().to_string();
        let db = Database::create(&path).map_err(|e| StoreError::Db {
            path: label.clone(),
            op: "open",
            cause: Box::new(e.into()),
        })?;
        Store::init(db, label)
    }

    /// A store that lives and dies with the process (tests, dry runs).
    pub fn in_memory() -> Result<Store, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::Db {
                path: "memory".into(),
                op: "open",
                cause: Box::new(e.into()),
            })?;
        Store::init(db, "memory".into())
    }

    fn init(db: Database, label: String) -> Result<Store, StoreError> {
        let s = Store {
            db,
            label,
            #[cfg(test)]
            fail_writes: Default::default(),
        };
        // Create the tables so readers never meet a missing one.
        s.apply(&[])?;
        Ok(s)
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    fn db_err(&self, op: &'static str) -> impl FnOnce(redb::Error) -> StoreError + '_ {
        move |e| StoreError::Db {
            path: self.label.clone(),
            op,
            cause: Box::new(e),
        }
    }

    /// Commit `changes` in one durable transaction.
    pub fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let run = || -> Result<(), redb::Error> {
            #[cfg(test)]
            if self.fail_writes.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(std::io::Error::other("injected write failure").into());
            }
            let tx = self.db.begin_write()?;
            {
                let mut nets = tx.open_table(NETWORKS)?;
                let mut eps = tx.open_table(ENDPOINTS)?;
                let mut pools = tx.open_table(POOLS)?;
                for c in changes {
                    match c {
                        Change::PutNetwork(n) => {
                            nets.insert(n.id.as_str(), json(n).as_str())?;
                        }
                        Change::DeleteNetwork(id) => {
                            nets.remove(id.as_str())?;
                        }
                        Change::PutEndpoint(e) => {
                            eps.insert(e.id.as_str(), json(e).as_str())?;
                        }
                        Change::DeleteEndpoint(id) => {
                            eps.remove(id.as_str())?;
                        }
                        Change::PutPool(p) => {
                            pools.insert(p.id.as_str(), json(p).as_str())?;
                        }
                        Change::DeletePool(id) => {
                            pools.remove(id.as_str())?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(())
        };
        run().map_err(self.db_err("commit"))
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
                    path: self.label.clone(),
                    table: name,
                    key,
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Everything stored.
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            networks: self.read_all(NETWORKS, "networks")?,
            endpoints: self.read_all(ENDPOINTS, "endpoints")?,
            pools: self.read_all(POOLS, "pools")?,
        })
    }
}

/// What the store holds that the engine no longer has.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Orphans {
    /// Networks the engine has forgotten (their endpoints are listed too).
    pub networks: Vec<String>,
    /// Endpoints of forgotten networks, or that the engine no longer lists.
    pub endpoints: Vec<String>,
    /// Pools that no surviving network uses.
    pub pools: Vec<String>,
}

impl Orphans {
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.endpoints.is_empty() && self.pools.is_empty()
    }
}

/// Compare the store with the engine's view after a restart. Docker deletes
/// networks even while the driver's socket is down (without calling
/// DeleteNetwork), so whatever is here and not there must be freed.
///
/// `engine_networks`: ids of the engine's networks using this driver.
/// `engine_endpoints`: ids of the endpoints the engine still has on them,
/// when known (`None` keeps every endpoint of a surviving network).
/// A pool survives when a surviving network has a subnet with its prefix
/// in its address space.
pub fn reconcile(
    snap: &Snapshot,
    engine_networks: &[String],
    engine_endpoints: Option<&[String]>,
) -> Orphans {
    let alive: BTreeSet<&str> = engine_networks.iter().map(String::as_str).collect();
    let eps_alive: Option<BTreeSet<&str>> =
        engine_endpoints.map(|e| e.iter().map(String::as_str).collect());
    let mut o = Orphans::default();
    for n in &snap.networks {
        if !alive.contains(n.id.as_str()) {
            o.networks.push(n.id.clone());
        }
    }
    for e in &snap.endpoints {
        let net_gone = !alive.contains(e.network_id.as_str());
        let ep_gone = eps_alive
            .as_ref()
            .is_some_and(|s| !s.contains(e.id.as_str()));
        if net_gone || ep_gone {
            o.endpoints.push(e.id.clone());
        }
    }
    for p in &snap.pools {
        let used = snap.networks.iter().any(|n| {
            alive.contains(n.id.as_str())
                && n.subnets
                    .iter()
                    .any(|s| s.pool == p.prefix && s.address_space == p.space)
        });
        if !used {
            o.pools.push(p.id.clone());
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::{AddressKind, Ipam, IpamConfig};
    use crate::model::{DEFAULT_MTU, NetworkKind, PortType, Subnet, derive_ifaces, derive_mac};

    pub(crate) struct TempDir(pub PathBuf);
    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            let n = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let p = std::env::temp_dir().join(format!("rvs-cnm-{tag}-{}-{n}", std::process::id()));
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn net(id: &str, pool: &str, space: &str) -> Network {
        Network {
            id: id.into(),
            name: id.into(),
            kind: NetworkKind::Bridge,
            subnets: vec![Subnet {
                pool: pool.parse().unwrap(),
                gateway: None,
                address_space: space.into(),
            }],
            internal: false,
            enable_ipv6: false,
            mtu: DEFAULT_MTU,
            port_type: PortType::Tap,
            port_security: true,
            routing: true,
            options: Default::default(),
            labels: Default::default(),
        }
    }

    fn ep(id: &str, net: &str) -> Endpoint {
        Endpoint {
            id: id.into(),
            network_id: net.into(),
            mac: derive_mac(id, 0),
            ipv4: None,
            ipv6: None,
            ifaces: derive_ifaces(id, 0),
            sandbox: None,
            published: Vec::new(),
        }
    }

    #[test]
    fn everything_survives_reopen() {
        let dir = TempDir::new("store");
        let mut ipam = Ipam::new(IpamConfig::default());
        let id = ipam
            .request_pool(
                "rvs-local",
                Some("10.1.0.0/24".parse().unwrap()),
                None,
                false,
            )
            .unwrap()
            .id
            .clone();
        ipam.request_address(&id, None, AddressKind::Gateway)
            .unwrap();
        let pool = ipam.pool(&id).unwrap().record();
        {
            let s = Store::open(&dir.0).unwrap();
            assert_eq!(s.load().unwrap(), Snapshot::default());
            s.apply(&[
                Change::PutNetwork(net("n1", "10.1.0.0/24", "rvs-local")),
                Change::PutEndpoint(ep("e1", "n1")),
                Change::PutPool(pool.clone()),
            ])
            .unwrap();
        }
        let s = Store::open(&dir.0).unwrap();
        let snap = s.load().unwrap();
        assert_eq!(snap.networks, vec![net("n1", "10.1.0.0/24", "rvs-local")]);
        assert_eq!(snap.endpoints, vec![ep("e1", "n1")]);
        assert_eq!(snap.pools, vec![pool]);
        s.apply(&[
            Change::DeleteEndpoint("e1".into()),
            Change::DeleteNetwork("n1".into()),
            Change::DeletePool(id),
        ])
        .unwrap();
        assert_eq!(s.load().unwrap(), Snapshot::default());
    }

    #[test]
    fn a_failed_commit_changes_nothing() {
        let s = Store::in_memory().unwrap();
        s.apply(&[Change::PutNetwork(net("n1", "10.1.0.0/24", "x"))])
            .unwrap();
        s.fail_writes
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let e = s.apply(&[Change::DeleteNetwork("n1".into())]).unwrap_err();
        assert!(e.to_string().contains("injected"), "{e}");
        assert_eq!(s.load().unwrap().networks.len(), 1);
    }

    #[test]
    fn reconcile_finds_what_the_engine_forgot() {
        let snap = Snapshot {
            networks: vec![
                net("keep", "10.1.0.0/24", "rvs-local"),
                net("gone", "10.2.0.0/24", "rvs-local"),
            ],
            endpoints: vec![
                ep("e-keep", "keep"),
                ep("e-stale", "keep"),
                ep("e-gone", "gone"),
            ],
            pools: vec![
                PoolRecord {
                    id: "rvs-local/10.1.0.0/24".into(),
                    space: "rvs-local".into(),
                    prefix: "10.1.0.0/24".parse().unwrap(),
                    range: None,
                    gateway: None,
                    allocated: vec![],
                },
                PoolRecord {
                    id: "rvs-local/10.2.0.0/24".into(),
                    space: "rvs-local".into(),
                    prefix: "10.2.0.0/24".parse().unwrap(),
                    range: None,
                    gateway: None,
                    allocated: vec![],
                },
            ],
        };
        let o = reconcile(&snap, &["keep".into()], None);
        assert_eq!(o.networks, vec!["gone".to_string()]);
        assert_eq!(o.endpoints, vec!["e-gone".to_string()]);
        assert_eq!(o.pools, vec!["rvs-local/10.2.0.0/24".to_string()]);
        let o = reconcile(&snap, &["keep".into()], Some(&["e-keep".into()]));
        assert_eq!(
            o.endpoints,
            vec!["e-stale".to_string(), "e-gone".to_string()]
        );
        let all = reconcile(&snap, &["keep".into(), "gone".into()], None);
        assert!(all.is_empty());
    }
}
