//! The driver's state machine: networks, endpoints and joins, kept in
//! memory, committed to the [`Store`] before any call is acknowledged, and
//! pushed to the data plane through a [`Fabric`].
//!
//! Owns: idempotence (Docker repeats calls whose answer it lost; a repeat
//! with the same arguments gets the same answer and no second fabric call),
//! conflicts (same id, different arguments), the order "fabric, then
//! store, undo the fabric if the store fails", MAC and interface-name
//! choice, and restart (load, [`Driver::replay`], [`Driver::reconcile`]).
//! Never: wire formats (see `docker::mod`) or kernel work (the fabric's).
//! Every method blocks (fsync, fabric): call it from a blocking thread.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use rvs_switch::MacAddr;

use crate::fabric::{Fabric, FabricError};
use crate::ipam::{Ipam, IpamConfig, IpamError};
use crate::model::{
    Dns, Endpoint, ModelError, Network, NetworkKind, PortType, Route, Sandbox, derive_ifaces,
    derive_mac, validate_id,
};
use crate::prefix::Cidr;
use crate::store::{Change, Orphans, Snapshot, Store, StoreError, reconcile};

use super::options::OptionError;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The request itself is unusable (malformed JSON, bad field).
    #[error("{0}")]
    Request(String),
    #[error(transparent)]
    Options(#[from] OptionError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("rvswitch data plane: {0}")]
    Fabric(#[from] FabricError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "network {0} is not known to rvswitch (created with another driver, or removed while rvswitch was down)"
    )]
    UnknownNetwork(String),
    #[error("endpoint {ep} is not known on network {net}")]
    UnknownEndpoint { net: String, ep: String },
    #[error("{0}")]
    Conflict(String),
}

/// CreateEndpoint's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    pub id: String,
    pub network_id: String,
    /// The engine's MAC, if the user set one.
    pub mac: Option<MacAddr>,
    pub ipv4: Option<Cidr>,
    pub ipv6: Option<Cidr>,
}

/// What Join tells the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinInfo {
    /// The interface the engine moves into the sandbox.
    pub sandbox_iface: String,
    pub gateway4: Option<IpAddr>,
    pub gateway6: Option<IpAddr>,
    pub routes: Vec<Route>,
    /// This endpoint must not become the sandbox's default gateway, and the
    /// engine must not add `docker_gwbridge` for it (internal networks, or
    /// no IPv4 gateway).
    pub disable_gateway_service: bool,
}

pub(crate) struct State {
    pub networks: BTreeMap<String, Network>,
    pub endpoints: BTreeMap<String, Endpoint>,
    pub ipam: Ipam,
}

pub struct Driver {
    fabric: Arc<dyn Fabric>,
    store: Store,
    ipam_config: IpamConfig,
    state: Mutex<State>,
}

fn state_of(snap: Snapshot, ipam: IpamConfig) -> State {
    State {
        networks: snap
            .networks
            .into_iter()
            .map(|n| (n.id.clone(), n))
            .collect(),
        endpoints: snap
            .endpoints
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect(),
        ipam: Ipam::from_records(ipam, &snap.pools),
    }
}

impl Driver {
    /// Load everything from `store`. The data plane is not touched: call
    /// [`Driver::replay`] when the fabric starts empty (a daemon restart).
    pub fn open(
        store: Store,
        fabric: Arc<dyn Fabric>,
        ipam: IpamConfig,
    ) -> Result<Driver, DriverError> {
        let snap = store.load()?;
        let state = state_of(snap, ipam.clone());
        Ok(Driver {
            fabric,
            store,
            ipam_config: ipam,
            state: Mutex::new(state),
        })
    }

    /// Run one driver call as one unit of work on the state store: the
    /// CNM records it changes and the switch objects the fabric changes
    /// for it commit in ONE transaction when it succeeds. When it fails
    /// (or the commit does), nothing of it is stored, and memory and data
    /// plane are brought back to the stored state.
    pub fn atomically<R>(
        &self,
        f: impl FnOnce(&Driver) -> Result<R, DriverError>,
    ) -> Result<R, DriverError> {
        let r = self.store.unit(|| f(self));
        if r.is_err() {
            self.resync();
        }
        r
    }

    /// Memory and data plane back to what the store holds.
    fn resync(&self) {
        let endpoints = match self.store.load() {
            Ok(snap) => {
                let endpoints = snap.endpoints.clone();
                let mut st = self.lock();
                let stale = st.networks.values().cloned().collect::<Vec<_>>() != snap.networks
                    || st.endpoints.values().cloned().collect::<Vec<_>>() != snap.endpoints
                    || st.ipam.pools().map(|p| p.record()).collect::<Vec<_>>() != snap.pools;
                if stale {
                    tracing::info!("CNM state back to what is stored");
                    *st = state_of(snap, self.ipam_config.clone());
                }
                endpoints
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the CNM state back");
                return;
            }
        };
        self.fabric.resync(&endpoints);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Everything in memory (equal to what the store holds).
    pub fn snapshot(&self) -> Snapshot {
        let st = self.lock();
        Snapshot {
            networks: st.networks.values().cloned().collect(),
            endpoints: st.endpoints.values().cloned().collect(),
            pools: st.ipam.pools().map(|p| p.record()).collect(),
        }
    }

    pub fn network(&self, id: &str) -> Option<Network> {
        self.lock().networks.get(id).cloned()
    }

    /// The endpoint `ep` of network `net`.
    pub fn endpoint(&self, net: &str, ep: &str) -> Result<Endpoint, DriverError> {
        let st = self.lock();
        if !st.networks.contains_key(net) {
            return Err(DriverError::UnknownNetwork(net.into()));
        }
        found(&st, net, ep).cloned()
    }

    /// Sandboxes as seen from the joined endpoints (ordered by endpoint id).
    pub fn sandboxes(&self) -> Vec<Sandbox> {
        let st = self.lock();
        let mut by_key: BTreeMap<String, Sandbox> = BTreeMap::new();
        for e in st.endpoints.values() {
            let Some(key) = &e.sandbox else { continue };
            let sb = by_key.entry(key.clone()).or_insert_with(|| Sandbox {
                key: key.clone(),
                endpoints: Vec::new(),
                routes: Vec::new(),
                dns: Dns::default(),
            });
            sb.endpoints.push(e.id.clone());
            if let Some(n) = st.networks.get(&e.network_id) {
                sb.routes.extend(join_info(n, e).routes);
            }
        }
        by_key.into_values().collect()
    }

    /// Re-create every network, endpoint and join in a fabric that starts
    /// empty. Returns what failed (the rest is in place).
    pub fn replay(&self) -> Vec<(String, FabricError)> {
        let st = self.lock();
        let mut failed = Vec::new();
        for n in st.networks.values() {
            if let Err(e) = self.fabric.create_network(n) {
                failed.push((format!("network {}", n.id), e));
            }
        }
        for e in st.endpoints.values() {
            let Some(n) = st.networks.get(&e.network_id) else {
                continue;
            };
            let r = self
                .fabric
                .create_endpoint(n, e)
                .and_then(|_| match &e.sandbox {
                    Some(key) => self.fabric.join(n, e, key),
                    None => Ok(()),
                })
                .and_then(|_| self.fabric.publish(n, e).map(drop));
            if let Err(err) = r {
                failed.push((format!("endpoint {}", e.id), err));
            }
        }
        failed
    }

    /// Free what the engine no longer has (see [`crate::store::reconcile`]):
    /// endpoints, networks and pools, from the fabric and the store.
    pub fn reconcile(
        &self,
        engine_networks: &[String],
        engine_endpoints: Option<&[String]>,
    ) -> Result<Orphans, DriverError> {
        let orphans = reconcile(&self.snapshot(), engine_networks, engine_endpoints);
        self.atomically(|d| d.remove_orphans(orphans))
    }

    /// Remove exactly these orphans (those still here), with the endpoints
    /// of the networks removed, from the fabric and the store.
    pub fn remove_orphans(&self, mut orphans: Orphans) -> Result<Orphans, DriverError> {
        let mut st = self.lock();
        orphans.networks.retain(|id| st.networks.contains_key(id));
        orphans.endpoints.retain(|id| st.endpoints.contains_key(id));
        for e in st.endpoints.values() {
            if orphans.networks.contains(&e.network_id) && !orphans.endpoints.contains(&e.id) {
                orphans.endpoints.push(e.id.clone());
            }
        }
        orphans
            .pools
            .retain(|id| st.ipam.pools().any(|p| p.record().id == *id));
        let mut changes = Vec::new();
        for id in &orphans.endpoints {
            if let Some(e) = st.endpoints.get(id)
                && let Some(n) = st.networks.get(&e.network_id)
            {
                self.fabric.delete_endpoint(n, e)?;
            }
            changes.push(Change::DeleteEndpoint(id.clone()));
        }
        for id in &orphans.networks {
            if let Some(n) = st.networks.get(id) {
                self.fabric.delete_network(n)?;
            }
            changes.push(Change::DeleteNetwork(id.clone()));
        }
        changes.extend(orphans.pools.iter().cloned().map(Change::DeletePool));
        self.store.apply(&changes)?;
        for id in &orphans.endpoints {
            st.endpoints.remove(id);
        }
        for id in &orphans.networks {
            st.networks.remove(id);
        }
        for id in &orphans.pools {
            st.ipam.release_pool(id);
        }
        Ok(orphans)
    }

    pub fn create_network(&self, mut n: Network) -> Result<(), DriverError> {
        // A global network's VNI and subnet are the cluster's.
        self.fabric.resolve_network(&mut n)?;
        n.validate()?;
        let mut st = self.lock();
        if let Some(old) = st.networks.get(&n.id) {
            if *old == n {
                return Ok(());
            }
            return Err(DriverError::Conflict(format!(
                "network {} already exists with other settings; remove it first",
                n.id
            )));
        }
        // Networks on a host NIC are segments of that NIC's LAN: one per
        // parent interface and VLAN (untagged counts as one), whatever
        // the other networks use.
        let parent = super::options::parent_of(&n);
        if let Some(p) = &parent
            && let Some(o) = st
                .networks
                .values()
                .find(|o| super::options::parent_of(o).as_ref() == Some(p))
        {
            return Err(DriverError::Conflict(format!(
                "network {} is already on parent {p}; each VLAN of a host interface \
                 carries one rvswitch network",
                o.id
            )));
        }
        let clash = st.networks.values().find(|o| match (o.kind, n.kind) {
            _ if parent.is_some() || super::options::parent_of(o).is_some() => false,
            (NetworkKind::Vlan { vid: a }, NetworkKind::Vlan { vid: b }) => a == b,
            (NetworkKind::Vxlan { vni: a }, NetworkKind::Vxlan { vni: b }) => a == b,
            _ => false,
        });
        if let Some(o) = clash {
            return Err(DriverError::Conflict(format!(
                "network {} already uses {}; each rvswitch network needs its own segment",
                o.id,
                match o.kind {
                    NetworkKind::Vlan { vid } => format!("VLAN {vid}"),
                    NetworkKind::Vxlan { vni } => format!("VNI {vni}"),
                    NetworkKind::Bridge => unreachable!("bridges never clash"),
                }
            )));
        }
        self.fabric.create_network(&n)?;
        if let Err(e) = self.store.apply(&[Change::PutNetwork(n.clone())]) {
            undo("delete network", self.fabric.delete_network(&n));
            return Err(e.into());
        }
        st.networks.insert(n.id.clone(), n);
        Ok(())
    }

    /// Delete a network and whatever endpoints are left on it. Unknown
    /// networks are already deleted: success.
    pub fn delete_network(&self, id: &str) -> Result<(), DriverError> {
        let mut st = self.lock();
        let Some(n) = st.networks.get(id).cloned() else {
            return Ok(());
        };
        let left: Vec<Endpoint> = st
            .endpoints
            .values()
            .filter(|e| e.network_id == id)
            .cloned()
            .collect();
        let mut changes = Vec::new();
        for e in &left {
            self.fabric.delete_endpoint(&n, e)?;
            changes.push(Change::DeleteEndpoint(e.id.clone()));
        }
        self.fabric.delete_network(&n)?;
        changes.push(Change::DeleteNetwork(id.into()));
        self.store.apply(&changes)?;
        for e in &left {
            st.endpoints.remove(&e.id);
        }
        st.networks.remove(id);
        Ok(())
    }

    /// Create an endpoint; returns it (with the MAC chosen when the engine
    /// gave none).
    pub fn create_endpoint(&self, req: NewEndpoint) -> Result<Endpoint, DriverError> {
        validate_id("endpoint", &req.id)?;
        let mut st = self.lock();
        let n = st
            .networks
            .get(&req.network_id)
            .cloned()
            .ok_or_else(|| DriverError::UnknownNetwork(req.network_id.clone()))?;
        if let Some(old) = st.endpoints.get(&req.id) {
            // On a global network the address may be the cluster's choice.
            let global = super::options::is_global(&n) && req.ipv4.is_none();
            let same = old.network_id == req.network_id
                && (old.ipv4 == req.ipv4 || global)
                && old.ipv6 == req.ipv6
                && req.mac.is_none_or(|m| m == old.mac);
            if same {
                return Ok(old.clone());
            }
            return Err(DriverError::Conflict(format!(
                "endpoint {} already exists on network {} with other settings",
                req.id, old.network_id
            )));
        }
        for o in st.endpoints.values().filter(|o| o.network_id == n.id) {
            for (mine, theirs) in [(req.ipv4, o.ipv4), (req.ipv6, o.ipv6)] {
                if let Some(a) = mine
                    && theirs.map(|t| t.addr) == Some(a.addr)
                {
                    return Err(DriverError::Conflict(format!(
                        "address {} is already used by endpoint {} on network {}",
                        a.addr, o.id, n.id
                    )));
                }
            }
            if req.mac == Some(o.mac) {
                return Err(DriverError::Conflict(format!(
                    "MAC {} is already used by endpoint {} on network {}",
                    o.mac, o.id, n.id
                )));
            }
        }
        let mac = match req.mac {
            Some(m) => m,
            None => (0..)
                .map(|salt| derive_mac(&req.id, salt))
                .find(|m| st.endpoints.values().all(|o| o.mac != *m))
                .expect("a free MAC among 2^32 candidates"),
        };
        // Names live in the host namespace until the engine moves the
        // sandbox end: none may repeat another endpoint's.
        let taken: std::collections::BTreeSet<&str> = st
            .endpoints
            .values()
            .flat_map(|o| {
                [
                    Some(&o.ifaces.sandbox),
                    Some(&o.ifaces.port),
                    o.ifaces.host.as_ref(),
                ]
            })
            .flatten()
            .map(String::as_str)
            .collect();
        let ifaces = (0..)
            .map(|salt| {
                let mut f = derive_ifaces(&req.id, salt);
                if n.port_type == PortType::Tap {
                    // The TAP itself moves into the sandbox.
                    f.host = None;
                }
                f
            })
            .find(|f| {
                [Some(&f.sandbox), Some(&f.port), f.host.as_ref()]
                    .into_iter()
                    .flatten()
                    .all(|name| !taken.contains(name.as_str()))
            })
            .expect("a free name among 2^32 candidates");
        // Claimed last: nothing above gives it back.
        let ipv4 = self.fabric.claim_address(&n, &req.id, req.ipv4)?;
        let give_back = |what: &str| {
            if let Some(a) = ipv4 {
                tracing::debug!(endpoint = %req.id, "{what}: address {a} given back");
                self.fabric.release_address(&n, &req.id, a);
            }
        };
        if let Some(a) = ipv4
            && req.ipv4.is_none()
            && let Some(o) = st
                .endpoints
                .values()
                .find(|o| o.network_id == n.id && o.ipv4.map(|t| t.addr) == Some(a.addr))
        {
            give_back("local clash");
            return Err(DriverError::Conflict(format!(
                "the cluster gave address {} that endpoint {} holds here; its record was lost",
                a.addr, o.id
            )));
        }
        let mut e = Endpoint {
            id: req.id.clone(),
            network_id: n.id.clone(),
            mac,
            ipv4,
            ipv6: req.ipv6,
            ifaces,
            sandbox: None,
            published: Vec::new(),
        };
        if let Err(err) = e.validate(&n) {
            give_back("invalid endpoint");
            return Err(err.into());
        }
        let plumbing = match self.fabric.create_endpoint(&n, &e) {
            Ok(p) => p,
            Err(err) => {
                give_back("no plumbing");
                return Err(err.into());
            }
        };
        e.ifaces = plumbing.ifaces;
        if let Err(err) = e.validate(&n).map_err(DriverError::from).and_then(|_| {
            self.store
                .apply(&[Change::PutEndpoint(e.clone())])
                .map_err(Into::into)
        }) {
            undo("delete endpoint", self.fabric.delete_endpoint(&n, &e));
            return Err(err);
        }
        st.endpoints.insert(e.id.clone(), e.clone());
        Ok(e)
    }

    /// Unknown endpoints are already deleted: success.
    pub fn delete_endpoint(&self, net: &str, ep: &str) -> Result<(), DriverError> {
        let mut st = self.lock();
        let Some(e) = st
            .endpoints
            .get(ep)
            .filter(|e| e.network_id == net)
            .cloned()
        else {
            return Ok(());
        };
        if let Some(n) = st.networks.get(net) {
            if !e.published.is_empty() {
                let mut none = e.clone();
                none.published.clear();
                self.fabric.publish(n, &none)?;
            }
            self.fabric.delete_endpoint(n, &e)?;
        }
        self.store.apply(&[Change::DeleteEndpoint(ep.into())])?;
        st.endpoints.remove(ep);
        Ok(())
    }

    pub fn join(&self, net: &str, ep: &str, sandbox_key: &str) -> Result<JoinInfo, DriverError> {
        Sandbox {
            key: sandbox_key.into(),
            endpoints: vec![ep.into()],
            routes: Vec::new(),
            dns: Dns::default(),
        }
        .validate()?;
        let mut st = self.lock();
        let (n, mut e) = network_and_endpoint(&st, net, ep)?;
        match &e.sandbox {
            Some(k) if k == sandbox_key => return Ok(join_info(&n, &e)),
            Some(k) => {
                return Err(DriverError::Conflict(format!(
                    "endpoint {ep} is already joined to sandbox {k}; leave it first"
                )));
            }
            None => {}
        }
        self.fabric.join(&n, &e, sandbox_key)?;
        e.sandbox = Some(sandbox_key.into());
        if let Err(err) = self.store.apply(&[Change::PutEndpoint(e.clone())]) {
            undo("leave", self.fabric.leave(&n, &e));
            return Err(err.into());
        }
        let info = join_info(&n, &e);
        st.endpoints.insert(e.id.clone(), e);
        Ok(info)
    }

    /// Publish the endpoint's ports on the host (Docker's
    /// ProgramExternalConnectivity); an empty list unpublishes (Revoke).
    /// Stored with the endpoint as published (a host port of 0 replaced by
    /// the free port taken), so a restart publishes the same ports again.
    /// Returns the endpoint.
    pub fn publish(
        &self,
        net: &str,
        ep: &str,
        bindings: Vec<crate::model::PortBinding>,
    ) -> Result<Endpoint, DriverError> {
        let mut st = self.lock();
        let (n, mut e) = network_and_endpoint(&st, net, ep)?;
        if e.published == bindings {
            return Ok(e);
        }
        let old = std::mem::replace(&mut e.published, bindings);
        e.published = self.fabric.publish(&n, &e)?;
        if let Err(err) = self.store.apply(&[Change::PutEndpoint(e.clone())]) {
            let mut back = e.clone();
            back.published = old;
            undo(
                "publish the old ports",
                self.fabric.publish(&n, &back).map(drop),
            );
            return Err(err.into());
        }
        st.endpoints.insert(e.id.clone(), e.clone());
        Ok(e)
    }

    /// Leaving twice, or leaving what is unknown, succeeds.
    pub fn leave(&self, net: &str, ep: &str) -> Result<(), DriverError> {
        let mut st = self.lock();
        let Some(mut e) = st
            .endpoints
            .get(ep)
            .filter(|e| e.network_id == net && e.sandbox.is_some())
            .cloned()
        else {
            return Ok(());
        };
        if let Some(n) = st.networks.get(net) {
            self.fabric.leave(n, &e)?;
        }
        e.sandbox = None;
        self.store.apply(&[Change::PutEndpoint(e.clone())])?;
        st.endpoints.insert(e.id.clone(), e);
        Ok(())
    }

    /// IPAM: the local and global address space names.
    pub fn address_spaces(&self) -> (String, String) {
        let st = self.lock();
        let c = st.ipam.config();
        (c.local_space.clone(), c.global_space.clone())
    }

    pub(crate) fn commit_pool(
        &self,
        st: &mut State,
        before: Option<crate::ipam::Pool>,
        id: &str,
    ) -> Result<(), DriverError> {
        let change = match st.ipam.pool(id) {
            Some(p) => Change::PutPool(p.record()),
            None => Change::DeletePool(id.into()),
        };
        if let Err(e) = self.store.apply(&[change]) {
            match before {
                Some(p) => st.ipam.restore(p),
                None => {
                    st.ipam.release_pool(id);
                }
            }
            return Err(e.into());
        }
        Ok(())
    }
}

/// The periodic reconcile with the engine, in two strikes: what the engine
/// does not list is removed only if the previous round's answer lacked it
/// too. Between Docker calling the driver and the engine listing the
/// result (an endpoint exists here before the engine shows its container)
/// an object looks orphaned for a moment; two rounds a minute apart do not
/// mistake that for an orphan.
#[derive(Debug, Default)]
pub struct Sweeper {
    suspects: Orphans,
}

impl Sweeper {
    /// One round against the engine's current lists; returns what was
    /// removed.
    pub fn round(
        &mut self,
        d: &Driver,
        engine_networks: &[String],
        engine_endpoints: &[String],
    ) -> Result<Orphans, DriverError> {
        let now = reconcile(&d.snapshot(), engine_networks, Some(engine_endpoints));
        let both = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|x| b.contains(x)).cloned().collect()
        };
        let confirmed = Orphans {
            networks: both(&now.networks, &self.suspects.networks),
            endpoints: both(&now.endpoints, &self.suspects.endpoints),
            pools: both(&now.pools, &self.suspects.pools),
        };
        self.suspects = now;
        if confirmed == Orphans::default() {
            return Ok(confirmed);
        }
        d.atomically(|d| d.remove_orphans(confirmed))
    }
}

/// Copies of network `net` and its endpoint `ep`.
fn network_and_endpoint(
    st: &State,
    net: &str,
    ep: &str,
) -> Result<(Network, Endpoint), DriverError> {
    let n = st
        .networks
        .get(net)
        .cloned()
        .ok_or_else(|| DriverError::UnknownNetwork(net.into()))?;
    Ok((n, found(st, net, ep)?.clone()))
}

fn found<'a>(st: &'a State, net: &str, ep: &str) -> Result<&'a Endpoint, DriverError> {
    st.endpoints
        .get(ep)
        .filter(|e| e.network_id == net)
        .ok_or_else(|| DriverError::UnknownEndpoint {
            net: net.into(),
            ep: ep.into(),
        })
}

/// Gateways for the endpoint's families; internal networks give none (the
/// engine makes the first endpoint with a gateway the sandbox's default
/// route and its external-connectivity endpoint). An internal network has
/// no gateway in the switch either (`--internal` means no gateway, as with
/// Docker's bridge driver), so it gets no routes to other networks.
fn join_info(n: &Network, e: &Endpoint) -> JoinInfo {
    let gw_of = |a: Option<Cidr>| a.and_then(|a| n.subnet_of(a.addr)).and_then(|s| s.gateway);
    let (gw4, gw6) = (gw_of(e.ipv4), gw_of(e.ipv6));
    let routes: Vec<Route> = Vec::new();
    JoinInfo {
        sandbox_iface: e.ifaces.sandbox.clone(),
        gateway4: gw4.filter(|_| !n.internal),
        gateway6: gw6.filter(|_| !n.internal),
        routes,
        // Without this, libnetwork attaches a sandbox whose endpoints
        // give no IPv4 gateway to `docker_gwbridge` (needDefaultGW; IPv6
        // gateways do not count there).
        disable_gateway_service: n.internal || gw4.is_none(),
    }
}

fn undo(what: &str, r: Result<(), FabricError>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "undo after failed commit: {what}");
    }
}
