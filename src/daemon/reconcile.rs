//! The one reconcile path: make the data plane hold a [`Desired`] state.
//!
//! Every change to the switch goes through [`Control::reconcile`]: start-up
//! (from nothing to what is stored), each API operation (from what the data
//! plane holds to the operation's new desired state, then the store commit),
//! the undo of an operation that failed half-way (back to the state before
//! it), the resync after a Docker driver call whose unit of work did not
//! commit (back to what is stored), and the Docker engine sweep (whose
//! removals are operations too).
//!
//! Owns: the order of the steps and which difference needs which data plane
//! call. Never: validation (callers validated the desired state) or the
//! store (the caller commits).
//!
//! # Order
//! Removals first, from the leaves up (static entries, routes, ports,
//! whose back ends close), then domains are added or changed, ports are
//! changed or added, domains removed, and routes and static entries added
//! last, so every object finds what it refers to (DNS listeners go before
//! their domain's gateway changes and come after it); the DNS names go to the
//! DNS service at the end (they refer to domains only by name), and the
//! services to the load balancer after them (their backends are names). A port is
//! re-opened only when what identifies its back end changed (kind,
//! interface, queue) or it moves to a domain on another worker; other
//! back-end options are read when a back end opens, except a vxlan port's
//! remotes, which a running port takes at once.
//!
//! # Modes
//! [`Mode::Strict`] stops at the first failure and returns it; the state
//! left behind is exactly what was applied, so reconciling back to the
//! previous desired state undoes it. [`Mode::Tolerant`] logs what fails and
//! goes on (start-up and undo): a port whose back end does not open is kept
//! with its error, as the store keeps it.

use super::apply::{L3_WORKER, add_domain, apply_gateway, install_route};
use super::control::{Control, ControlError, PortState, State, not_found_domain};
use super::model::{DnsListenerRecord, DomainRecord, PortRecord, RouteRecord, StaticRecord};
use super::store::Desired;
use crate::worker::Target;

type Result<T, E = ControlError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Strict,
    Tolerant,
}

impl State {
    /// What the data plane has been brought to, as a desired state.
    pub(super) fn desired(&self) -> Desired {
        Desired {
            domains: self.domains.clone(),
            ports: self
                .ports
                .iter()
                .map(|(k, p)| (k.clone(), p.rec.clone()))
                .collect(),
            statics: self.statics.clone(),
            routes: self.routes.clone(),
            names: self.names.clone(),
            services: self.services.clone(),
            dns: self.dns.clone(),
        }
    }
}

/// Whether going from `old` to `new` needs the back end closed and opened.
fn reopen(c: &Control, old: &PortRecord, new: &PortRecord) -> bool {
    let (a, b) = (&old.spec, &new.spec);
    a.kind != b.kind
        || a.iface != b.iface
        || a.queue != b.queue
        || (old.config.domain != new.config.domain
            && c.dp.worker_of(&old.config.domain) != c.dp.worker_of(&new.config.domain))
}

impl Control {
    /// Bring the data plane from what `st` records to `to` (see the module
    /// docs); `st` records each step as it is applied.
    pub(super) fn reconcile(&self, st: &mut State, to: &Desired, mode: Mode) -> Result<()> {
        // Strict: stop at the first failure. Tolerant: log it and go on.
        let failed = |what: String, e: ControlError| -> Result<()> {
            match mode {
                Mode::Strict => Err(e),
                Mode::Tolerant => {
                    tracing::warn!(%what, error = %e, "not applied to the data plane");
                    Ok(())
                }
            }
        };

        // 1. Static entries gone or changed.
        let gone: Vec<(String, StaticRecord)> = st
            .statics
            .iter()
            .filter(|(k, s)| to.statics.get(*k) != Some(*s))
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        for (k, s) in gone {
            if st.ports.get(&s.port).is_some_and(|p| p.error.is_none())
                && let Err(e) = self.remove_entry(&s.domain, s.vid, s.mac)
                && !matches!(e, ControlError::NotFound(_))
            {
                failed(format!("remove static entry {k}"), e)?;
                continue;
            }
            st.statics.remove(&k);
        }

        // 2. Routes gone or changed.
        let gone: Vec<(String, RouteRecord)> = st
            .routes
            .iter()
            .filter(|(k, r)| to.routes.get(*k) != Some(*r))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        for (k, r) in gone {
            if let Err(e) = self.uninstall_route(&r) {
                failed(format!("remove route {k}"), e)?;
                continue;
            }
            st.routes.remove(&k);
        }

        // 2b. DNS listeners gone or changed (before their domain's gateway
        // changes or the domain goes).
        let gone: Vec<(String, DnsListenerRecord)> = st
            .dns
            .iter()
            .filter(|(k, l)| to.dns.get(*k) != Some(*l))
            .map(|(k, l)| (k.clone(), l.clone()))
            .collect();
        for (k, l) in gone {
            if let Err(e) = self.uninstall_dns_listener(&l) {
                failed(format!("remove DNS listener {k}"), e)?;
                continue;
            }
            st.dns.remove(&k);
        }

        // 3. Ports gone, or whose back end must be opened again.
        let gone: Vec<(String, PortState)> = st
            .ports
            .iter()
            .filter(|(k, p)| to.ports.get(*k).is_none_or(|n| reopen(self, &p.rec, n)))
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        for (name, p) in gone {
            if p.error.is_none()
                && let Err(e) = self.detach(&name, &p.rec.config.domain)
                && !matches!(e, ControlError::NotFound(_))
            {
                failed(format!("remove port {name}"), e)?;
                continue;
            }
            st.ports.remove(&name);
        }

        // 4. Domains added or changed.
        for (name, d) in &to.domains {
            match st.domains.get(name) {
                Some(old) if old == d => {}
                Some(old) => {
                    let old = old.clone();
                    match self.change_domain(d) {
                        Ok(()) => {
                            st.domains.insert(name.clone(), d.clone());
                        }
                        Err(e) => {
                            // Put the old settings back before going on.
                            let _ = self.change_domain(&old);
                            failed(format!("change bridge domain {name}"), e)?;
                        }
                    }
                }
                None => {
                    self.place_domain(d);
                    let rec = d.clone();
                    let added = self
                        .dp
                        .call(Target::Domain(name), move |sw| add_domain(sw, &rec))
                        .map_err(ControlError::from)
                        .and_then(|r| r);
                    match added {
                        Ok(()) => {
                            st.domains.insert(name.clone(), d.clone());
                        }
                        Err(e) if mode == Mode::Tolerant => {
                            // Kept as stored: its ports will fail to attach
                            // and say why.
                            tracing::error!(domain = %name, error = %e, "bridge domain refused by the switch");
                            st.domains.insert(name.clone(), d.clone());
                        }
                        Err(e) => {
                            self.dp.release_domain(name);
                            return Err(e);
                        }
                    }
                }
            }
        }

        // 5. Ports changed or added.
        for (name, p) in &to.ports {
            match st.ports.get(name).cloned() {
                Some(old) if old.rec == *p => {}
                Some(old) => {
                    if old.error.is_none() {
                        if old.rec.config != p.config
                            && let Err(e) = self.set_port_config(name, &p.config)
                        {
                            failed(format!("change port {name}"), e)?;
                            continue;
                        }
                        super::overlay::apply_remote_changes(name, &old.rec.spec, &p.spec);
                    }
                    st.ports.insert(
                        name.clone(),
                        PortState {
                            rec: p.clone(),
                            error: old.error,
                        },
                    );
                }
                None => {
                    let error = if !st.domains.contains_key(&p.config.domain) {
                        Some(not_found_domain(&p.config.domain))
                    } else {
                        self.attach(p).err()
                    };
                    match error {
                        None => {
                            st.ports.insert(
                                name.clone(),
                                PortState {
                                    rec: p.clone(),
                                    error: None,
                                },
                            );
                        }
                        Some(e) if mode == Mode::Tolerant => {
                            tracing::warn!(port = %name, error = %e, "port back end did not open; kept in the store");
                            st.ports.insert(
                                name.clone(),
                                PortState {
                                    rec: p.clone(),
                                    error: Some(e.to_string()),
                                },
                            );
                        }
                        Some(e) => return Err(e),
                    }
                }
            }
        }

        // 6. Domains gone.
        let gone: Vec<String> = st
            .domains
            .keys()
            .filter(|k| !to.domains.contains_key(*k))
            .cloned()
            .collect();
        for name in gone {
            let n = name.clone();
            let removed = self
                .dp
                .call(Target::Domain(&name), move |sw| match sw.domain_id(&n) {
                    Some(id) => sw
                        .remove_domain(id)
                        .map(drop)
                        .map_err(super::error::switch_error),
                    // Refused at start-up: nothing to remove.
                    None => Ok(()),
                })
                .map_err(ControlError::from)
                .and_then(|r| r);
            if let Err(e) = removed {
                failed(format!("remove bridge domain {name}"), e)?;
                continue;
            }
            self.dp.release_domain(&name);
            st.domains.remove(&name);
        }

        // 7. Routes, then static entries, added.
        for (k, r) in &to.routes {
            if st.routes.contains_key(k) {
                continue;
            }
            let rec = r.clone();
            let r2 = self
                .dp
                .call(Target::Worker(L3_WORKER), move |sw| install_route(sw, &rec))
                .map_err(ControlError::from)
                .and_then(|r| r);
            match r2 {
                Ok(()) => {
                    st.routes.insert(k.clone(), r.clone());
                }
                Err(e) if mode == Mode::Tolerant => {
                    tracing::warn!(route = %k, error = %e, "stored route not installed");
                    st.routes.insert(k.clone(), r.clone());
                }
                Err(e) => return Err(e),
            }
        }
        for (k, s) in &to.statics {
            if st.statics.contains_key(k) {
                continue;
            }
            let attached = st.ports.get(&s.port).is_some_and(|p| p.error.is_none());
            if attached && let Err(e) = self.install_static(s) {
                failed(format!("add static entry {k}"), e)?;
            }
            st.statics.insert(k.clone(), s.clone());
        }

        // 7b. DNS listeners added or changed (their domain and its gateway
        // are there now).
        for (k, l) in &to.dns {
            if st.dns.contains_key(k) {
                continue;
            }
            match self.install_dns_listener(l) {
                Ok(()) => {
                    st.dns.insert(k.clone(), l.clone());
                }
                Err(e) if mode == Mode::Tolerant => {
                    tracing::warn!(listener = %k, error = %e, "stored DNS listener not installed");
                    st.dns.insert(k.clone(), l.clone());
                }
                Err(e) => return Err(e),
            }
        }

        // 8. Names: nothing in the data plane; the DNS service gets the
        // whole table (with the domains' ids as they are now).
        st.names = to.names.clone();
        st.services = to.services.clone();
        self.publish_names(st);

        // 9. Services: the load balancer's VIPs, with the backends the
        // names resolve to now (a backend whose name went has left).
        if let Err(e) = self.apply_services(st) {
            failed("set the load balancer's services".into(), e)?;
        }
        Ok(())
    }

    /// Apply a changed domain's settings and gateway.
    fn change_domain(&self, rec: &DomainRecord) -> Result<()> {
        let cfg = rec.to_config();
        let n = rec.name.clone();
        let gw = rec.gateway.clone();
        self.dp.call(Target::Domain(&rec.name), move |sw| {
            let id = sw.domain_id(&n).ok_or_else(|| not_found_domain(&n))?;
            sw.set_domain_config(id, cfg)
                .map_err(super::error::switch_error)?;
            apply_gateway(sw, id, &n, gw.as_ref())
        })?
    }

    fn install_dns_listener(&self, l: &DnsListenerRecord) -> Result<()> {
        let (l, d) = (l.clone(), l.domain.clone());
        self.dp.call(Target::Domain(&d), move |sw| {
            let id = sw
                .domain_id(&l.domain)
                .ok_or_else(|| not_found_domain(&l.domain))?;
            sw.set_dns_listener(l.to_listener(id))
                .map_err(super::error::switch_error)
        })?
    }

    fn uninstall_dns_listener(&self, l: &DnsListenerRecord) -> Result<()> {
        let (l, d) = (l.clone(), l.domain.clone());
        self.dp.call(Target::Domain(&d), move |sw| {
            // The domain gone, or the listener never installed (refused at
            // start-up): nothing to remove.
            let Some(id) = sw.domain_id(&l.domain) else {
                return Ok(());
            };
            match sw.remove_dns_listener(id, l.vid) {
                Ok(_)
                | Err(rvs_switch::SwitchError::Listener(
                    rvs_switch::router::ListenerError::NoSuchListener(..),
                )) => Ok(()),
                Err(e) => Err(super::error::switch_error(e)),
            }
        })?
    }

    fn uninstall_route(&self, r: &RouteRecord) -> Result<()> {
        let r = r.clone();
        self.dp.call(Target::Worker(L3_WORKER), move |sw| {
            let (p, l) = r.parsed().map_err(ControlError::BadRequest)?;
            match sw.remove_route(r.table, p, l) {
                Ok(_) => Ok(()),
                // Never installed (refused at start-up): nothing to remove.
                Err(rvs_switch::SwitchError::Router(
                    rvs_switch::router::RouterError::NoSuchRoute(..),
                )) => Ok(()),
                Err(e) => Err(super::error::switch_error(e)),
            }
        })?
    }

    /// Bring an empty data plane to the stored state `want` (start-up): what
    /// fails is logged and kept as stored (a port with its error).
    pub(super) fn apply_stored(&self, st: &mut State, want: &Desired) -> Result<()> {
        self.reconcile(st, want, Mode::Tolerant)
    }

    /// Make the data plane and memory hold what is stored again (after a
    /// unit of work that did not commit). Returns the first thing that
    /// could not be applied, if any (the rest is applied).
    pub fn resync(&self) -> Result<()> {
        self.store.db().exclusive(|| {
            let want = self.store.load()?;
            let mut st = self.lock();
            if st.desired() == want {
                return Ok(());
            }
            tracing::info!("bringing the data plane back to the stored state");
            self.reconcile(&mut st, &want, Mode::Tolerant)
        })
    }

    /// Commit `next` as the new desired state: reconcile the data plane to
    /// it, then store the difference, all or nothing. On any failure the
    /// data plane is brought back to what `st` held before.
    pub(super) fn commit(&self, st: &mut State, next: Desired) -> Result<()> {
        let prev = st.desired();
        let batch = prev.diff(&next);
        if batch.is_empty() {
            return Ok(());
        }
        let undo = |st: &mut State| {
            if let Err(e) = self.reconcile(st, &prev, Mode::Tolerant) {
                tracing::error!(error = %e, "undoing a failed change left the data plane different from the store; the next start applies the store");
            }
        };
        if let Err(e) = self.reconcile(st, &next, Mode::Strict) {
            undo(st);
            return Err(e);
        }
        if let Err(e) = self.store.commit(batch) {
            undo(st);
            return Err(e.into());
        }
        Ok(())
    }
}
