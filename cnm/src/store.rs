//! The CNM layer's persistent state: networks, endpoints and IPAM pools
//! (with their allocations), as three tables of the daemon's one state
//! store (`rvs_store`, `<state-dir>/rvswitch.redb`).
//!
//! Owns: the tables, the CNM changes, and [`reconcile`] — what the store
//! holds that the engine no longer has. Every [`Store::apply`] is one
//! durable transaction — or, inside a unit of work ([`Store::unit`]), part
//! of the unit's one transaction, so a driver call commits its CNM records
//! together with the switch ports behind them before it answers, and an
//! acknowledged call survives `kill -9`. Never: validation (callers store
//! what they validated) or data plane work.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

pub use rvs_store::StoreError;
use rvs_store::{Batch, Db, Table};

use crate::ipam::PoolRecord;
use crate::model::{Endpoint, Network};

/// Network id → [`Network`].
pub const NETWORKS: Table<Network> = Table::new("cnm_networks");
/// Endpoint id → [`Endpoint`].
pub const ENDPOINTS: Table<Endpoint> = Table::new("cnm_endpoints");
/// Pool id → [`PoolRecord`].
pub const POOLS: Table<PoolRecord> = Table::new("cnm_pools");

/// The CNM tables, for a migration from [`LEGACY_FILE`].
pub const TABLES: [&str; 3] = [NETWORKS.name(), ENDPOINTS.name(), POOLS.name()];

/// The three tables one [`Store`] keeps its networks, endpoints and pools
/// in.
pub struct Tables {
    pub networks: Table<Network>,
    pub endpoints: Table<Endpoint>,
    pub pools: Table<PoolRecord>,
}

/// The Docker driver's tables.
pub const DOCKER_TABLES: Tables = Tables {
    networks: NETWORKS,
    endpoints: ENDPOINTS,
    pools: POOLS,
};

/// The CNI plugin's tables (`rvswitch cni`): a driver of their own, so the
/// Docker driver's reconcile with the engine never sees (and never removes)
/// what a CNI runtime attached.
pub const CNI_TABLES: Tables = Tables {
    networks: Table::new("cni_networks"),
    endpoints: Table::new("cni_endpoints"),
    pools: Table::new("cni_pools"),
};

/// Where the CNM state lived before it joined the one state store
/// (commits up to ebaa2ca, 2026-12-06); the daemon imports it once.
pub const LEGACY_FILE: &str = "cnm.redb";

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

/// The CNM tables of a state store.
#[derive(Clone)]
pub struct Store {
    db: Arc<Db>,
    tables: &'static Tables,
}

impl Store {
    /// The Docker driver's CNM tables of `db` (shared with the switch's
    /// tables).
    pub fn new(db: Arc<Db>) -> Store {
        Store {
            db,
            tables: &DOCKER_TABLES,
        }
    }

    /// Another set of tables of `db` (see [`CNI_TABLES`]).
    pub fn with_tables(db: Arc<Db>, tables: &'static Tables) -> Store {
        Store { db, tables }
    }

    /// Open (or create) the state store of directory `dir`. For tools and
    /// tests that read a stopped daemon's state.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Ok(Store::new(Arc::new(Db::open_dir(dir)?)))
    }

    /// A store that lives and dies with the process (tests, dry runs).
    pub fn in_memory() -> Result<Store, StoreError> {
        Ok(Store::new(Arc::new(Db::in_memory()?)))
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    pub fn label(&self) -> &str {
        self.db.label()
    }

    /// Commit `changes` in one durable transaction (or add them to this
    /// thread's unit of work).
    pub fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut b = Batch::new();
        let t = self.tables;
        for c in changes {
            match c {
                Change::PutNetwork(n) => b.put(&t.networks, &n.id, n),
                Change::DeleteNetwork(id) => b.delete(&t.networks, id),
                Change::PutEndpoint(e) => b.put(&t.endpoints, &e.id, e),
                Change::DeleteEndpoint(id) => b.delete(&t.endpoints, id),
                Change::PutPool(p) => b.put(&t.pools, &p.id, p),
                Change::DeletePool(id) => b.delete(&t.pools, id),
            };
        }
        self.db.commit(b)
    }

    /// Run `f` as one unit of work on the state store (see
    /// [`rvs_store::Db::unit`]).
    pub fn unit<R, E: From<StoreError>>(&self, f: impl FnOnce() -> Result<R, E>) -> Result<R, E> {
        self.db.unit(f)
    }

    /// Everything stored.
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        let t = self.tables;
        Ok(Snapshot {
            networks: self.db.values(&t.networks)?,
            endpoints: self.db.values(&t.endpoints)?,
            pools: self.db.values(&t.pools)?,
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
    use std::path::PathBuf;

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
        s.db().inject_write_failures(true);
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
