//! From the watched view to the switch: the remotes each global network's
//! VTEP port should have (flood list, static MACs, and the endpoints'
//! addresses it answers ARP/ND for: ARP/ND suppression), stated through [`Control::set_remotes`] (the
//! same validate → desired state → commit → reconcile → store path as an
//! API call). Level-triggered: every pass computes the whole lists from
//! the view, so a missed or repeated wake-up changes nothing, and a pass
//! that failed (a port not made yet) is made good by the next.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rvs_cnm::docker::Driver;
use rvs_cnm::docker::options::is_global;
use rvs_cnm::model::{Endpoint, Network};
use rvs_switch::MacAddr;

use super::{Cluster, NAMES_PER_ENDPOINT};
use crate::daemon::{Control, ControlError, RemoteNames};

/// Passes also run this often without a wake-up.
const PERIOD: Duration = Duration::from_secs(2);

/// One network's remotes: VTEPs to flood to, MAC → VTEP entries, and the
/// endpoints' addresses → MAC the VTEP port answers ARP/ND for.
#[derive(Debug, Clone, Default)]
struct Wanted {
    flood: BTreeSet<IpAddr>,
    statics: BTreeMap<MacAddr, IpAddr>,
    neighbors: BTreeMap<IpAddr, MacAddr>,
}

/// The other hosts' endpoints per global network name.
fn wanted(c: &Cluster) -> BTreeMap<String, Wanted> {
    let v = c.view.lock().unwrap();
    let mut out: BTreeMap<String, Wanted> = BTreeMap::new();
    for e in v.endpoints.values().filter(|e| e.host != c.host) {
        let w = out.entry(e.network.clone()).or_default();
        w.flood.insert(e.vtep);
        w.statics.entry(e.mac).or_insert(e.vtep);
        for ip in e.ipv4.iter().chain(&e.ipv6) {
            w.neighbors.entry(*ip).or_insert(e.mac);
        }
    }
    out
}

/// The DNS names the other hosts' endpoints publish, per global network
/// name: name → the endpoints' addresses.
fn remote_names(c: &Cluster) -> BTreeMap<String, BTreeMap<String, Vec<IpAddr>>> {
    let v = c.view.lock().unwrap();
    let mut out: BTreeMap<String, BTreeMap<String, Vec<IpAddr>>> = BTreeMap::new();
    for e in v.endpoints.values().filter(|e| e.host != c.host) {
        for name in e.names.iter().take(NAMES_PER_ENDPOINT) {
            if rvs_dns::check_name(name).is_err() {
                continue;
            }
            let addrs = out
                .entry(e.network.clone())
                .or_default()
                .entry(rvs_dns::normalize(name))
                .or_default();
            for ip in e.ipv4.iter().chain(&e.ipv6) {
                if !addrs.contains(ip) {
                    addrs.push(*ip);
                }
            }
        }
    }
    out
}

/// The names of this host's endpoints of global network `n` (those of its
/// bridge domain's names table that answer one of the endpoint's
/// addresses: container names and aliases from the engine, names given
/// through the API) into their published records.
fn publish_local_names(c: &Cluster, control: &Control, n: &Network, endpoints: &[&Endpoint]) {
    let domain = crate::fabric::network_domain(n);
    let Ok(table) = control.list_names(&domain) else {
        return;
    };
    for e in endpoints {
        let mine: Vec<IpAddr> = e.ipv4.iter().chain(&e.ipv6).map(|a| a.addr).collect();
        let names: BTreeSet<String> = table
            .iter()
            .filter(|r| r.addresses.iter().any(|a| mine.contains(a)))
            .map(|r| r.name.clone())
            .take(NAMES_PER_ENDPOINT)
            .collect();
        if let Err(err) = c.publish_names(n, e, names.into_iter().collect()) {
            tracing::debug!(network = %n.name, endpoint = %e.id, error = %err, "names not published");
        }
    }
}

/// One pass: every local global network's VTEP port gets the remotes the
/// cluster says, its bridge domain's DNS the names the other hosts
/// publish, and this host's endpoints' records their names.
pub fn sync(c: &Cluster, control: &Control, driver: &Driver) {
    let want = wanted(c);
    let snap = driver.snapshot();
    let mut remote = remote_names(c);
    let mut dns = RemoteNames::new();
    for n in snap.networks.iter().filter(|n| is_global(n)) {
        if let Some(names) = remote.remove(&n.name) {
            dns.insert(crate::fabric::network_domain(n), names);
        }
        let mine: Vec<&Endpoint> = snap
            .endpoints
            .iter()
            .filter(|e| e.network_id == n.id)
            .collect();
        publish_local_names(c, control, n, &mine);
    }
    control.set_remote_names(dns);
    for n in snap.networks.iter().filter(|n| is_global(n)) {
        let port = crate::fabric::vtep_port_name(n);
        let w = want.get(&n.name).cloned().unwrap_or_default();
        let flood: Vec<IpAddr> = w.flood.into_iter().collect();
        let statics: Vec<(MacAddr, IpAddr)> = w.statics.into_iter().collect();
        let neighbors: Vec<(IpAddr, MacAddr)> = w.neighbors.into_iter().collect();
        match control.set_remotes(&port, &flood, &statics, &neighbors) {
            Ok(()) => {}
            Err(ControlError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(network = %n.name, %port, error = %e, "remote endpoints not applied")
            }
        }
    }
}

/// Gives back what this host holds in the store for endpoints it never
/// stored (a Docker call whose unit of work failed after its address was
/// claimed, a daemon killed inside one): a key is forgotten once it has been
/// seen unheld, unchanged, for three lease TTLs, so a call still in flight
/// (claimed, not yet committed) keeps what it claimed.
#[derive(Default)]
struct Sweeper {
    /// Key → (revision, first seen unheld).
    suspects: BTreeMap<String, (i64, std::time::Instant)>,
    last: Option<std::time::Instant>,
    /// Whether claims are still read whole (see [`Cluster::unheld`]): from
    /// the start until a read finds none of this host's claims unheld, so
    /// claims made before owner keys existed are given back too.
    whole_done: bool,
}

impl Sweeper {
    fn pass(&mut self, c: &Cluster, driver: &Driver) {
        let now = std::time::Instant::now();
        if self.last.is_some_and(|t| now - t < c.ttl()) {
            return;
        }
        self.last = Some(now);
        let snap = driver.snapshot();
        let stored: BTreeSet<String> = snap.endpoints.iter().map(|e| e.id.clone()).collect();
        let names: Vec<String> = snap
            .networks
            .iter()
            .filter(|n| is_global(n))
            .map(|n| n.name.clone())
            .collect();
        let legacy = !self.whole_done;
        let unheld = match c.unheld(&names, &stored, legacy) {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "cluster sweep skipped");
                return;
            }
        };
        let claims = format!("{}ipam/", super::PREFIX);
        if legacy && !names.is_empty() && !unheld.iter().any(|(k, _)| k.starts_with(&claims)) {
            self.whole_done = true;
        }
        let seen: BTreeSet<&String> = unheld.iter().map(|(k, _)| k).collect();
        self.suspects.retain(|k, _| seen.contains(k));
        for (key, rev) in unheld {
            let e = self.suspects.entry(key.clone()).or_insert((rev, now));
            if e.0 != rev {
                *e = (rev, now);
            } else if now - e.1 >= c.ttl() * 3 {
                tracing::info!(%key, "giving back what no stored endpoint holds");
                match c.forget(&key, rev) {
                    Ok(()) => {
                        self.suspects.remove(&key);
                    }
                    Err(e) => tracing::warn!(%key, error = %e, "not given back"),
                }
            }
        }
    }
}

impl Cluster {
    /// Run [`sync`] on a thread of its own whenever the view changes (and
    /// every [`PERIOD`]) until [`Cluster::leave`].
    pub fn start_sync(self: &Arc<Self>, control: Arc<Control>, driver: Arc<Driver>) {
        let c = self.clone();
        let spawned = std::thread::Builder::new()
            .name("rvs-cluster-sync".into())
            .spawn(move || {
                let mut sweeper = Sweeper::default();
                while !c.closing.load(Ordering::Acquire) {
                    sync(&c, &control, &driver);
                    sweeper.pass(&c, &driver);
                    let _ = c.wake.recv_timeout(PERIOD);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the cluster sync thread");
        }
    }
}
