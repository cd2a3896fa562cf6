//! The control plane's operations on bridge domains, ports and static FDB
//! entries: validate, apply to the data plane, persist, answer.
//!
//! Owns: the in-memory mirror of the store (what exists, which port back
//! ends failed to open), the order of every change and its rollback. Never:
//! HTTP (that is `api.rs`) or packet work (that is the workers').
//!
//! # Order of a change
//! Every change is a new desired state ([`Desired`]) handed to
//! [`Control::commit`] (`reconcile.rs`): the data plane is reconciled to it
//! first, and the difference is stored second, in one transaction. The
//! data plane step is the one that fails for ordinary reasons (a back end
//! will not open, an interface is missing), and it fails before anything
//! is persisted; then, or if the store write fails, the same reconcile
//! brings the data plane back to the state before the change, and the
//! client gets the error. Start-up is the same reconcile, from nothing to
//! the stored state.
//!
//! Every operation runs under the store's writer lock and then this
//! mirror's mutex, so checks and changes do not interleave (a Docker
//! driver call holds the writer lock for its whole unit of work). A
//! request is validated completely against the mirror first; a bad one
//! changes nothing. The answer is sent only after the store committed
//! (durably), or, inside a driver call, after the call's unit committed.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rvs_switch::MacAddr;

pub use super::error::{ControlError, switch_error};
pub(super) use super::error::{not_found_domain, not_found_port};
use super::model::*;
use super::store::Store;
use crate::spec::{OpenError, PortFactory, PortSpec};
use crate::worker::{Dataplane, Target};

type Result<T, E = ControlError> = std::result::Result<T, E>;

/// A stored port and whether its back end is attached.
#[derive(Debug, Clone)]
pub(super) struct PortState {
    pub rec: PortRecord,
    /// Why the back end could not be opened (the port is stored but absent
    /// from the data plane).
    pub error: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub domains: BTreeMap<String, DomainRecord>,
    pub ports: BTreeMap<String, PortState>,
    /// Static entries by key (`domain/vid/mac`).
    pub statics: BTreeMap<String, StaticRecord>,
    /// Static routes by key (`table/prefix`).
    pub routes: BTreeMap<String, RouteRecord>,
    /// Names of the embedded DNS by key (`domain/name`).
    pub names: BTreeMap<String, NameRecord>,
    /// Services by key (`domain/name`).
    pub services: BTreeMap<String, ServiceRecord>,
    /// DNS listeners by key (`domain/vid`), as the data plane holds them.
    pub dns: BTreeMap<String, super::model::DnsListenerRecord>,
    /// The services the data plane was last given (`services.rs`).
    pub lb: Vec<super::model::LbService>,
}

impl State {
    /// Refuse (409) a new gateway of `domain` that would leave the next hop
    /// of a static route through it off every subnet.
    fn next_hops_stay_on_link(&self, domain: &str, g: &GatewaySpec) -> Result<()> {
        for r in self.routes.values().filter(|r| r.domain == domain) {
            if let Some(via) = r.via
                && let Err(e) = super::apply::check_next_hop(domain, g, via)
            {
                return Err(ControlError::Conflict(format!(
                    "static route {} would break: {e}; remove it first",
                    r.key()
                )));
            }
        }
        Ok(())
    }

    /// Refuse (409) a gateway of `domain` (or none) that its DNS listeners
    /// cannot stand beside: they answer with the gateway's MAC, in VLANs
    /// other than its own, on addresses other than its own.
    fn dns_listeners_fit(&self, domain: &str, g: Option<&GatewaySpec>) -> Result<()> {
        for l in self.dns.values().filter(|l| l.domain == domain) {
            let why = match g {
                None => Some("it needs a gateway".to_string()),
                Some(g) if g.vid == l.vid => Some(format!("VLAN {} would be the gateway's", l.vid)),
                Some(g) => g
                    .addresses
                    .iter()
                    .filter_map(|a| parse_cidr(a).ok())
                    .find(|(a, _)| l.addresses.contains(a))
                    .map(|(a, _)| format!("{a} would be the gateway's address")),
            };
            if let Some(why) = why {
                return Err(ControlError::Conflict(format!(
                    "DNS listener {} would break: {why}; remove it first",
                    l.key()
                )));
            }
        }
        Ok(())
    }

    /// Refuse (409) a port on an interface another stored port already
    /// holds: AF_XDP takes the interface's XDP hook, and two AF_PACKET
    /// sockets (or one beside AF_XDP) would each see and send the same
    /// traffic, so one interface carries at most one port. Stored ports whose
    /// back end failed count too: they take the interface back on restart.
    fn iface_free(&self, spec: &PortSpec) -> Result<()> {
        let Some(iface) = &spec.iface else {
            return Ok(());
        };
        match self
            .ports
            .values()
            .find(|p| p.rec.spec.iface.as_ref() == Some(iface))
        {
            Some(p) => Err(ControlError::Conflict(format!(
                "interface {iface} is held by port {} ({}); one interface carries one port",
                p.rec.spec.name, p.rec.spec.kind
            ))),
            None => Ok(()),
        }
    }

    /// Refuse (409) while static routes go through `domain`.
    fn no_routes_through(&self, domain: &str, when: &str) -> Result<()> {
        let via: Vec<String> = self
            .routes
            .values()
            .filter(|r| r.domain == domain)
            .map(|r| r.key())
            .collect();
        if via.is_empty() {
            return Ok(());
        }
        Err(ControlError::Conflict(format!(
            "static route(s) {} go through bridge domain {domain}; remove them {when}",
            via.join(", ")
        )))
    }
}

/// The daemon's control plane.
pub struct Control {
    pub(super) state: Mutex<State>,
    pub(super) dp: Dataplane,
    pub(super) store: Store,
    factory: PortFactory,
    /// Ports with a capture running.
    pub(super) captures: Mutex<HashSet<String>>,
    /// Set when the daemon begins to stop: running captures end cleanly.
    pub(super) closing: Arc<AtomicBool>,
    /// The Docker driver's CNM state, when the daemon serves Docker.
    pub(super) cnm: std::sync::OnceLock<Arc<rvs_cnm::docker::Driver>>,
    /// The CNI plugin's attachments (`/v1/cni/attachments`). Taken out
    /// at shutdown: the service holds the control (through its fabric),
    /// and the cycle would keep the state store open.
    pub(super) cni: Mutex<Option<Arc<crate::cni::service::Service>>>,
    /// The cluster this host joined (`--store`), for `GET /v1/cluster`.
    pub(super) cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// The embedded DNS, when it runs: it gets every change of the names.
    pub(super) dns: std::sync::OnceLock<Arc<dyn rvs_dns::NameService>>,
    /// Names other hosts of the cluster publish, per bridge domain: fed to
    /// the DNS with the domain's own names, never stored (the cluster's
    /// watch states them again after a restart).
    pub(super) remote_names: Mutex<RemoteNames>,
}

/// Bridge domain → name → addresses.
pub type RemoteNames = BTreeMap<String, BTreeMap<String, Vec<std::net::IpAddr>>>;

impl Control {
    /// Take over the workers and the store and reconcile the data plane to
    /// the stored state: domains (in name order), ports, routes, static
    /// entries. A port whose back end fails to open stays stored and is
    /// listed with its error.
    pub fn start(dp: Dataplane, store: Store, factory: PortFactory) -> Result<Control> {
        let want = store.load()?;
        let c = Control {
            state: Mutex::new(State::default()),
            dp,
            store,
            factory,
            captures: Mutex::new(HashSet::new()),
            cnm: std::sync::OnceLock::new(),
            cni: Mutex::new(None),
            cluster: std::sync::OnceLock::new(),
            dns: std::sync::OnceLock::new(),
            remote_names: Mutex::new(RemoteNames::new()),
            closing: Arc::new(AtomicBool::new(false)),
        };
        {
            let mut st = c.lock();
            c.apply_stored(&mut st, &want)?;
        }
        Ok(c)
    }

    /// Run a change: under the store's writer lock (taken first, so a
    /// Docker driver call's unit of work and a plain operation never wait
    /// on each other in opposite orders), then the mirror's lock.
    pub(super) fn change<R>(&self, f: impl FnOnce(&mut State) -> Result<R>) -> Result<R> {
        self.store.db().exclusive(|| f(&mut self.lock()))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("control state lock")
    }

    /// The daemon is stopping: running captures finish their pcap streams
    /// (so clients keep a complete file) instead of being cut off.
    pub fn begin_shutdown(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Called once when the daemon joined a cluster.
    pub fn set_cluster(&self, c: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(c);
    }

    /// This host's view of its cluster; 404 outside one.
    pub fn cluster_view(&self) -> Result<crate::cluster::ClusterView> {
        self.cluster.get().map(|c| c.view()).ok_or_else(|| {
            ControlError::NotFound(
                "this daemon is not in a cluster (start it with --store etcd://...)".into(),
            )
        })
    }

    /// Whether every worker runs a call (none is stuck): the watchdog's test.
    pub fn workers_answer(&self) -> bool {
        self.dp.call_all(|_| ()).is_ok()
    }

    /// Stop the workers: every port closes, the store stays as it is.
    pub fn shutdown(&self) {
        self.dp.shutdown();
    }

    // ---- helpers on the data plane ------------------------------------------

    /// Open a port's back end on its domain's worker and add it to the switch.
    pub(super) fn attach(&self, rec: &PortRecord) -> Result<()> {
        let factory = self.factory.clone();
        let spec = rec.spec.clone();
        let settings = rec.config.clone();
        let domain = settings.domain.clone();
        self.dp.call(Target::Domain(&domain), move |sw| {
            let did = sw
                .domain_id(&settings.domain)
                .ok_or_else(|| not_found_domain(&settings.domain))?;
            let cfg = settings.to_config(did).map_err(ControlError::BadRequest)?;
            let port = factory(&spec, sw.pool_mut()).map_err(|e| match e {
                OpenError::Config(m) => ControlError::BadRequest(m),
                OpenError::NoSuchInterface(m) => ControlError::NotFound(m),
                OpenError::Busy(m) => ControlError::Conflict(m),
                OpenError::Failed(m) => ControlError::Backend(m),
            })?;
            if port.name() != spec.name {
                return Err(ControlError::Internal(format!(
                    "the back end opened for port {} calls itself {}",
                    spec.name,
                    port.name()
                )));
            }
            sw.add_port(port, cfg).map_err(switch_error)?;
            Ok(())
        })?
    }

    /// Remove a port from the switch; its back end is dropped (closed) on
    /// the worker, before that worker's pool could ever go away.
    pub(super) fn detach(&self, name: &str, domain: &str) -> Result<()> {
        let name = name.to_string();
        self.dp.call(Target::Domain(domain), move |sw| {
            let id = sw.port_id(&name).ok_or_else(|| not_found_port(&name))?;
            sw.remove_port(id).map(drop).map_err(switch_error)
        })?
    }

    pub(super) fn set_port_config(&self, name: &str, settings: &PortSettings) -> Result<()> {
        let name = name.to_string();
        let settings = settings.clone();
        let domain = settings.domain.clone();
        self.dp.call(Target::Domain(&domain), move |sw| {
            let id = sw.port_id(&name).ok_or_else(|| not_found_port(&name))?;
            let did = sw
                .domain_id(&settings.domain)
                .ok_or_else(|| not_found_domain(&settings.domain))?;
            let cfg = settings.to_config(did).map_err(ControlError::BadRequest)?;
            sw.set_port_config(id, cfg).map_err(switch_error)
        })?
    }

    pub(super) fn install_static(&self, s: &StaticRecord) -> Result<()> {
        let s = s.clone();
        let domain = s.domain.clone();
        self.dp.call(Target::Domain(&domain), move |sw| {
            let did = sw
                .domain_id(&s.domain)
                .ok_or_else(|| not_found_domain(&s.domain))?;
            let pid = sw.port_id(&s.port).ok_or_else(|| not_found_port(&s.port))?;
            sw.add_static(did, s.vid, s.mac, pid).map_err(switch_error)
        })?
    }

    pub(super) fn remove_entry(&self, domain: &str, vid: u16, mac: MacAddr) -> Result<bool> {
        let d = domain.to_string();
        self.dp.call(Target::Domain(domain), move |sw| {
            let did = sw.domain_id(&d).ok_or_else(|| not_found_domain(&d))?;
            sw.remove_fdb_entry(did, vid, mac).map_err(switch_error)
        })?
    }

    // ---- bridge domains -------------------------------------------------------

    pub fn list_domains(&self) -> Result<Vec<DomainView>> {
        let st = self.lock();
        let sizes: BTreeMap<String, usize> = self
            .dp
            .call_all(|sw| {
                sw.domains()
                    .into_iter()
                    .map(|d| (d.cfg.name, d.fdb_entries))
                    .collect::<Vec<_>>()
            })?
            .into_iter()
            .flatten()
            .collect();
        // Ports by domain in one pass (not one pass per domain).
        let mut members: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for p in st.ports.values() {
            members
                .entry(p.rec.config.domain.as_str())
                .or_default()
                .push(p.rec.spec.name.clone());
        }
        Ok(st
            .domains
            .values()
            .map(|d| DomainView {
                record: d.clone(),
                worker: self.dp.worker_of(&d.name).unwrap_or(0),
                ports: members.remove(d.name.as_str()).unwrap_or_default(),
                fdb_entries: sizes.get(&d.name).copied().unwrap_or(0),
            })
            .collect())
    }

    /// One domain, asking only its own worker (not every worker about
    /// every domain, as the list does).
    pub fn get_domain(&self, name: &str) -> Result<DomainView> {
        let st = self.lock();
        let d = st.domains.get(name).ok_or_else(|| not_found_domain(name))?;
        let n = name.to_string();
        let fdb_entries = self
            .dp
            .call(Target::Domain(name), move |sw| {
                sw.domain_id(&n)
                    .and_then(|id| sw.fdb_len(id).ok())
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        Ok(DomainView {
            record: d.clone(),
            worker: self.dp.worker_of(name).unwrap_or(0),
            ports: st
                .ports
                .values()
                .filter(|p| p.rec.config.domain == name)
                .map(|p| p.rec.spec.name.clone())
                .collect(),
            fdb_entries,
        })
    }

    pub fn create_domain(&self, rec: DomainRecord) -> Result<DomainView> {
        rec.validate().map_err(ControlError::BadRequest)?;
        self.change(|st| {
            if st.domains.contains_key(&rec.name) {
                return Err(ControlError::Conflict(format!(
                    "a bridge domain named {:?} already exists",
                    rec.name
                )));
            }
            let mut next = st.desired();
            next.domains.insert(rec.name.clone(), rec.clone());
            self.commit(st, next)
        })?;
        self.get_domain(&rec.name)
    }

    pub fn patch_domain(&self, name: &str, patch: DomainPatch) -> Result<DomainView> {
        self.change(|st| {
            let old = st
                .domains
                .get(name)
                .ok_or_else(|| not_found_domain(name))?
                .clone();
            let new = patch.apply(&old);
            new.validate().map_err(ControlError::BadRequest)?;
            self.check_gateway_placement(&new)?;
            st.dns_listeners_fit(name, new.gateway.as_ref())?;
            match &new.gateway {
                None if old.gateway.is_some() => {
                    st.no_routes_through(name, "before its gateway")?
                }
                Some(g) => st.next_hops_stay_on_link(name, g)?,
                None => {}
            }
            let mut next = st.desired();
            next.domains.insert(name.to_string(), new);
            self.commit(st, next)
        })?;
        self.get_domain(name)
    }

    pub fn delete_domain(&self, name: &str) -> Result<()> {
        self.change(|st| {
            if !st.domains.contains_key(name) {
                return Err(not_found_domain(name));
            }
            let users: Vec<&str> = st
                .ports
                .values()
                .filter(|p| p.rec.config.domain == name)
                .map(|p| p.rec.spec.name.as_str())
                .collect();
            if !users.is_empty() {
                return Err(ControlError::Conflict(format!(
                    "bridge domain {name} is in use by port(s) {}; remove them first",
                    users.join(", ")
                )));
            }
            st.no_routes_through(name, "first")?;
            let mut next = st.desired();
            next.domains.remove(name);
            next.statics.retain(|_, s| s.domain != name);
            next.names.retain(|_, n| n.domain != name);
            next.services.retain(|_, s| s.domain != name);
            next.dns.retain(|_, l| l.domain != name);
            self.commit(st, next)
        })
    }

    // ---- ports ------------------------------------------------------------------

    pub fn list_ports(&self) -> Result<Vec<PortView>> {
        let st = self.lock();
        let live: BTreeMap<String, (u32, Option<String>)> = self
            .dp
            .call_all(|sw| {
                sw.ports()
                    .into_iter()
                    .map(|p| (p.name, (p.learned, p.last_error)))
                    .collect::<Vec<_>>()
            })?
            .into_iter()
            .flatten()
            .collect();
        Ok(st
            .ports
            .values()
            .map(|p| self.port_view(p, live.get(&p.rec.spec.name).cloned()))
            .collect())
    }

    fn port_view(&self, p: &PortState, live: Option<(u32, Option<String>)>) -> PortView {
        let (learned, last_error) = live.unwrap_or_default();
        PortView {
            spec: p.rec.spec.clone(),
            config: p.rec.config.clone(),
            worker: self.dp.worker_of(&p.rec.config.domain),
            state: if p.error.is_none() { "up" } else { "failed" }.into(),
            error: p.error.clone(),
            learned,
            last_error,
        }
    }

    /// One port, asking only its own worker.
    pub fn get_port(&self, name: &str) -> Result<PortView> {
        let st = self.lock();
        let p = st.ports.get(name).ok_or_else(|| not_found_port(name))?;
        let live = if p.error.is_none() {
            let n = name.to_string();
            self.dp
                .call(Target::Domain(&p.rec.config.domain), move |sw| {
                    sw.port_id(&n)
                        .and_then(|id| sw.port_info(id).ok())
                        .map(|i| (i.learned, i.last_error))
                })
                .ok()
                .flatten()
        } else {
            None
        };
        Ok(self.port_view(p, live))
    }

    pub fn create_port(&self, req: CreatePort) -> Result<PortView> {
        let rec = req.into_record().map_err(ControlError::BadRequest)?;
        let name = rec.spec.name.clone();
        self.change(|st| {
            if st.ports.contains_key(&name) {
                return Err(ControlError::Conflict(format!(
                    "a port named {name:?} already exists"
                )));
            }
            if !st.domains.contains_key(&rec.config.domain) {
                return Err(not_found_domain(&rec.config.domain));
            }
            st.iface_free(&rec.spec)?;
            let mut next = st.desired();
            next.ports.insert(name.clone(), rec);
            self.commit(st, next)
        })?;
        self.get_port(&name)
    }

    pub fn patch_port(&self, name: &str, patch: PortPatch) -> Result<PortView> {
        self.change(|st| {
            let old = st.ports.get(name).ok_or_else(|| not_found_port(name))?;
            let new = patch
                .apply(&old.rec.config)
                .map_err(ControlError::BadRequest)?;
            if !st.domains.contains_key(&new.domain) {
                return Err(not_found_domain(&new.domain));
            }
            let moved = new.domain != old.rec.config.domain;
            if moved
                && self.dp.worker_of(&new.domain) != self.dp.worker_of(&old.rec.config.domain)
            {
                return Err(ControlError::Conflict(format!(
                    "bridge domain {} lives on another worker than {}; delete port {name} and create it again",
                    new.domain, old.rec.config.domain
                )));
            }
            let mut next = st.desired();
            // Moving to another domain flushes the port's static entries in
            // the switch: they leave the desired state with it.
            if moved {
                let keys: Vec<String> = next.statics_of(name).cloned().collect();
                for k in keys {
                    next.statics.remove(&k);
                }
            }
            next.ports.get_mut(name).expect("looked up above").config = new;
            self.commit(st, next)
        })?;
        self.get_port(name)
    }

    /// Set (or, with `None`, remove) one back-end option in a port's stored
    /// spec, for the next time the back end is opened (a restart); the open
    /// back end is not touched. For facts learned after creation, such as
    /// the sandbox a TAP was moved into.
    pub fn remember_port_option(
        &self,
        name: &str,
        key: &str,
        value: Option<serde_json::Value>,
    ) -> Result<()> {
        self.change(|st| {
            let mut next = st.desired();
            let rec = next
                .ports
                .get_mut(name)
                .ok_or_else(|| not_found_port(name))?;
            match value {
                Some(v) => rec.spec.options.insert(key.to_string(), v),
                None => rec.spec.options.remove(key),
            };
            self.commit(st, next)
        })
    }

    pub fn delete_port(&self, name: &str) -> Result<()> {
        self.change(|st| {
            if !st.ports.contains_key(name) {
                return Err(not_found_port(name));
            }
            let mut next = st.desired();
            next.ports.remove(name);
            let keys: Vec<String> = next.statics_of(name).cloned().collect();
            for k in keys {
                next.statics.remove(&k);
            }
            self.commit(st, next)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::testutil::TempDir;

    fn control(dir: &TempDir) -> Control {
        let store = Store::open(&dir.0).unwrap();
        let dp = Dataplane::start(1).unwrap();
        Control::start(dp, store, crate::spec::memory_port_factory()).unwrap()
    }

    fn port(name: &str, pvid: u16) -> CreatePort {
        serde_json::from_value(serde_json::json!({
            "name": name, "kind": "tap", "domain": "bd0", "vlan": {"mode": "access", "pvid": pvid}
        }))
        .unwrap()
    }

    /// What the data plane holds: domain names, (port, config) pairs, FDB size.
    fn dataplane(c: &Control) -> (Vec<String>, Vec<(String, rvs_switch::PortConfig)>, usize) {
        c.dp.call(Target::Worker(0), |sw| {
            let doms = sw.domains();
            (
                doms.iter().map(|d| d.cfg.name.clone()).collect(),
                sw.ports().into_iter().map(|p| (p.name, p.cfg)).collect(),
                doms.iter().map(|d| d.fdb_entries).sum(),
            )
        })
        .unwrap()
    }

    #[test]
    fn a_failed_store_write_rolls_the_data_plane_back() {
        let dir = TempDir::new("rollback");
        let c = control(&dir);
        let bd0 = DomainRecord {
            name: "bd0".into(),
            aging_secs: 300,
            max_macs: 0,
            vlan_protocol: Default::default(),
            gateway: None,
            stp: None,
        };
        c.create_domain(bd0.clone()).unwrap();
        c.create_port(port("p1", 10)).unwrap();
        let before = dataplane(&c);
        c.store.db().inject_write_failures(true);
        let internal =
            |r: Result<()>| assert!(matches!(r, Err(ControlError::Internal(_))), "{r:?}");
        internal(
            c.create_domain(DomainRecord {
                name: "bd1".into(),
                ..bd0.clone()
            })
            .map(drop),
        );
        internal(c.create_port(port("p2", 10)).map(drop));
        let patch: PortPatch =
            serde_json::from_str(r#"{"vlan":{"mode":"access","pvid":20}}"#).unwrap();
        internal(c.patch_port("p1", patch).map(drop));
        let dpatch = DomainPatch {
            aging_secs: Some(60),
            ..Default::default()
        };
        internal(c.patch_domain("bd0", dpatch).map(drop));
        let entry = StaticEntry {
            vid: 10,
            mac: MacAddr::local(1),
            port: "p1".into(),
        };
        internal(c.add_static("bd0", entry));
        internal(c.delete_port("p1"));
        assert_eq!(dataplane(&c), before, "every refused change was undone");
        assert_eq!(c.get_domain("bd0").unwrap().record, bd0);
        c.store.db().inject_write_failures(false);
        c.shutdown();
        drop(c);
        // Store and data plane agree after a restart too.
        let c = control(&dir);
        assert_eq!(dataplane(&c), before);
        c.shutdown();
    }

    #[test]
    fn bad_requests_change_nothing() {
        let dir = TempDir::new("badreq");
        let c = control(&dir);
        let bd0: DomainRecord = serde_json::from_str(r#"{"name":"bd0"}"#).unwrap();
        c.create_domain(bd0).unwrap();
        c.create_port(port("p1", 10)).unwrap();
        let before = (dataplane(&c), c.store.load().unwrap());
        assert!(matches!(
            c.create_port(port("p2", 4095)),
            Err(ControlError::BadRequest(_))
        ));
        assert!(matches!(
            c.create_port(port("p1", 10)),
            Err(ControlError::Conflict(_))
        ));
        let e = StaticEntry {
            vid: 20,
            mac: MacAddr::local(1),
            port: "p1".into(),
        };
        assert!(matches!(
            c.add_static("bd0", e),
            Err(ControlError::BadRequest(_))
        ));
        assert!(matches!(
            c.delete_domain("bd0"),
            Err(ControlError::Conflict(_))
        ));
        assert!(matches!(
            c.delete_fdb_entry("bd0", "10", "nope"),
            Err(ControlError::BadRequest(_))
        ));
        assert_eq!((dataplane(&c), c.store.load().unwrap()), before);
        c.shutdown();
    }
}
