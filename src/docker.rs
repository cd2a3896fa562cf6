//! `rvswitch daemon --docker`: the Docker remote network + IPAM driver
//! (`rvs-cnm`'s router) served on a plugin socket next to the control API,
//! over the daemon's own switch ([`SwitchFabric`]).
//!
//! Owns: loading the CNM tables of the state store, bringing them back
//! in line with the switch and the kernel at start (endpoints whose
//! interface is gone are removed, the rest are made again where missing), and the
//! plugin socket's life (bound 0600, removed on shutdown), and the
//! containers' names and aliases in the embedded DNS (read from the engine's
//! API, see [`names_loop`]). Docker names the
//! driver after the socket's file stem: `/run/docker/plugins/rvswitch.sock`
//! is `docker network create -d rvswitch`. Never: the protocol (that is
//! `rvs_cnm::docker`) or data plane work (the fabric's).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rvs_cnm::docker::Driver;
use rvs_cnm::{IpamConfig, Store};
use rvs_drivers::netlink::Netlink;

use crate::daemon::control::Control;
use crate::daemon::error::DaemonError;
use crate::fabric::SwitchFabric;

pub mod services;

/// `rvswitch daemon` options of the Docker driver.
#[derive(Debug, Clone, clap::Args)]
pub struct DockerArgs {
    /// Also serve the Docker remote network and IPAM driver
    /// (`docker network create -d rvswitch`).
    #[arg(long)]
    pub docker: bool,
    /// The plugin socket; Docker calls the driver by its file stem.
    #[arg(long, default_value = rvs_cnm::docker::DEFAULT_PLUGIN_SOCKET)]
    pub docker_socket: PathBuf,
    /// The Docker engine's API socket, asked at start which networks and
    /// endpoints still exist (Docker removes them while the driver is down).
    #[arg(long, default_value = DEFAULT_ENGINE_SOCKET)]
    pub docker_engine: PathBuf,
    /// Seconds between reconciles with the engine while running (objects
    /// missing from two answers in a row are freed); 0: only at start.
    #[arg(long, default_value_t = 60)]
    pub docker_reconcile_secs: u64,
    /// The driver's name as the engine knows it, when it is not the
    /// socket's file stem: a managed plugin (`docker plugin create NAME`)
    /// is called `NAME:TAG` (see scripts/docker-plugin).
    #[arg(long)]
    pub docker_name: Option<String>,
}

impl DockerArgs {
    /// The driver's name as the engine knows it.
    pub fn name(&self) -> String {
        self.docker_name
            .clone()
            .unwrap_or_else(|| driver_name(&self.docker_socket))
    }
}

/// How long the start waits for the Docker engine's answer.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where dockerd serves its API unless told otherwise.
pub const DEFAULT_ENGINE_SOCKET: &str = "/var/run/docker.sock";

impl Default for DockerArgs {
    fn default() -> Self {
        DockerArgs {
            docker: false,
            docker_socket: rvs_cnm::docker::DEFAULT_PLUGIN_SOCKET.into(),
            docker_engine: DEFAULT_ENGINE_SOCKET.into(),
            docker_reconcile_secs: 60,
            docker_name: None,
        }
    }
}

/// How long Docker calls in flight may take to finish once shutdown begins.
const GRACE: Duration = Duration::from_secs(3);

fn err(what: impl std::fmt::Display) -> DaemonError {
    DaemonError::Docker(what.to_string())
}

/// The driver name Docker uses for a plugin socket path.
pub fn driver_name(socket: &Path) -> String {
    socket
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The Docker driver, loaded and in line with the switch, not yet serving.
pub struct Plugin {
    socket: PathBuf,
    /// The driver's name as the engine knows it.
    name: String,
    driver: Arc<Driver>,
    engine: PathBuf,
    every: Duration,
    control: Arc<Control>,
}

impl Plugin {
    /// The driver, for the control API's read-only CNM views.
    pub fn driver(&self) -> Arc<Driver> {
        self.driver.clone()
    }

    /// Load the CNM tables of the state store and make the switch match
    /// them.
    pub fn open(
        args: &DockerArgs,
        store: Store,
        control: Arc<Control>,
        cluster: Option<Arc<crate::cluster::Cluster>>,
    ) -> Result<Plugin, DaemonError> {
        let socket = args.docker_socket.clone();
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Err(err(format!(
                "plugin socket {}: another driver is answering on it",
                socket.display()
            )));
        }
        let name = args.name();
        if name.is_empty() {
            return Err(err(format!(
                "plugin socket {}: Docker names the driver after the file stem, and it is empty",
                socket.display()
            )));
        }
        let uplink = crate::fabric::Uplink::for_driver(&name);
        let fabric = Arc::new(
            SwitchFabric::with_uplink(control.clone(), uplink)
                .owned_by(&name)
                .with_cluster(cluster),
        );
        let driver = Driver::open(store, fabric.clone(), IpamConfig::default()).map_err(err)?;
        prune_lost_endpoints(&driver)?;
        // A call the daemon died in may have made links it never committed.
        fabric
            .sweep_leftovers(&driver.snapshot().endpoints)
            .map_err(err)?;
        reconcile_with_engine(&driver, &name, &args.docker_engine);
        for (what, e) in driver.replay() {
            tracing::error!(%what, error = %e, "could not restore in the switch");
        }
        Ok(Plugin {
            socket,
            name,
            driver: Arc::new(driver),
            engine: args.docker_engine.clone(),
            every: Duration::from_secs(args.docker_reconcile_secs),
            control,
        })
    }

    /// Bind the plugin socket and serve on the current runtime until
    /// [`Serving::stop`].
    pub fn serve(&self) -> Result<Serving, DaemonError> {
        let listener = crate::daemon::files::bind_socket(&self.socket)?;
        tracing::info!(
            socket = %self.socket.display(),
            driver = %self.name,
            "Docker network driver listening"
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rvs_cnm::docker::serve(
            listener,
            self.driver.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        let sweep_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sweeper = (!self.every.is_zero()).then(|| {
            let (d, stop) = (self.driver.clone(), sweep_stop.clone());
            let (name, engine, every) = (self.name.clone(), self.engine.clone(), self.every);
            std::thread::spawn(move || sweep(&d, &name, &engine, every, &stop))
        });
        let namer = {
            let (d, c, engine, stop) = (
                self.driver.clone(),
                self.control.clone(),
                self.engine.clone(),
                sweep_stop.clone(),
            );
            std::thread::Builder::new()
                .name("rvs-docker-names".into())
                .spawn(move || names_loop(&d, &c, &engine, &stop))
                .ok()
        };
        Ok(Serving {
            stop,
            task,
            socket: self.socket.clone(),
            sweep_stop,
            sweeper,
            namer,
        })
    }
}

/// Reconcile with the engine every `every` until `stop` (see
/// [`rvs_cnm::docker::Sweeper`]: two strikes before anything goes).
fn sweep(
    d: &Driver,
    name: &str,
    engine: &Path,
    every: Duration,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    let mut sweeper = rvs_cnm::docker::Sweeper::default();
    let step = Duration::from_millis(100);
    loop {
        let mut waited = Duration::ZERO;
        while waited < every {
            if stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(step);
            waited += step;
        }
        // Nothing of ours: nothing to ask.
        let snap = d.snapshot();
        if snap.networks.is_empty() && snap.pools.is_empty() {
            continue;
        }
        match ask_engine(engine, name).map(|a| with_api_objects(d, a)) {
            Ok((networks, endpoints)) => log_removed(sweeper.round(d, &networks, &endpoints)),
            Err(e) => tracing::debug!(error = %e, "Docker engine not reachable; sweep skipped"),
        }
    }
}

/// The plugin server running.
pub struct Serving {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    socket: PathBuf,
    sweep_stop: Arc<std::sync::atomic::AtomicBool>,
    sweeper: Option<std::thread::JoinHandle<()>>,
    namer: Option<std::thread::JoinHandle<()>>,
}

impl Serving {
    /// Stop accepting calls, let those in flight finish (for a while) and
    /// remove the socket, so Docker sees the driver gone at once.
    pub async fn stop(self) {
        self.sweep_stop
            .store(true, std::sync::atomic::Ordering::Release);
        for t in [self.sweeper, self.namer].into_iter().flatten() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        let _ = std::fs::remove_file(&self.socket);
        let _ = self.stop.send(());
        match tokio::time::timeout(GRACE, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "Docker driver server failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "Docker driver server task failed"),
            Err(_) => tracing::warn!("Docker driver calls still in flight after the grace period"),
        }
    }
}

/// Endpoints whose interface is gone lost their container while the daemon
/// was down (the namespace went, and the veth pair or the TAP with it):
/// Docker's Leave/DeleteEndpoint could not reach us then, so forget them
/// now, port included, before replay would build them again.
fn prune_lost_endpoints(driver: &Driver) -> Result<(), DaemonError> {
    let nl = Netlink::new().map_err(err)?;
    for e in driver.snapshot().endpoints {
        let (iface, present) = match &e.ifaces.host {
            Some(host) => (host, nl.find_link(host).map_err(err)?.is_some()),
            // A TAP: in our namespace under its own name, or in the
            // sandbox it joined, as long as that sandbox exists.
            None => (
                &e.ifaces.sandbox,
                nl.find_link(&e.ifaces.sandbox).map_err(err)?.is_some()
                    || e.sandbox.as_ref().is_some_and(|k| Path::new(k).exists()),
            ),
        };
        if present {
            continue;
        }
        tracing::info!(
            endpoint = %e.id,
            %iface,
            "endpoint's interface is gone (its container went while rvswitch was down): removing it"
        );
        if let Err(x) = driver.atomically(|d| d.delete_endpoint(&e.network_id, &e.id)) {
            tracing::error!(endpoint = %e.id, error = %x, "could not remove a lost endpoint");
        }
    }
    Ok(())
}

/// The networks of driver `driver` the engine has, and their endpoints.
fn engine_state(engine: &Path, driver: &str) -> Result<(Vec<String>, Vec<String>), String> {
    use crate::client::{Client, ClientError};
    let text = |e: ClientError| match e {
        ClientError::Connect { source, .. } => format!("connect: {source}"),
        other => other.to_string(),
    };
    let client = Client::new(engine).map_err(text)?;
    let get = |path: &str| -> Result<serde_json::Value, String> {
        let r = client.get(path).and_then(|r| r.ok()).map_err(text)?;
        serde_json::from_slice(&r.body).map_err(|e| format!("GET {path}: {e}"))
    };
    let filter = serde_json::json!({ "driver": { driver: true } }).to_string();
    let query = serde_urlencoded::to_string([("filters", filter)]).map_err(|e| e.to_string())?;
    let list = get(&format!("/v1.41/networks?{query}"))?;
    let mut networks = Vec::new();
    let mut endpoints = Vec::new();
    for n in list.as_array().ok_or("the network list is not an array")? {
        // The filter matches on a substring of the driver name: check it.
        if n["Driver"].as_str() != Some(driver) {
            continue;
        }
        let id = n["Id"].as_str().ok_or("a network without an Id")?;
        let full = get(&format!("/v1.41/networks/{id}"))?;
        if let Some(cs) = full["Containers"].as_object() {
            endpoints.extend(
                cs.values()
                    .filter_map(|c| c["EndpointID"].as_str())
                    .map(str::to_string),
            );
        }
        networks.push(id.to_string());
    }
    Ok((networks, endpoints))
}

/// The engine's networks of driver `name` and their endpoints, or why it
/// did not answer within [`ENGINE_TIMEOUT`]: dockerd may itself be
/// waiting for this driver, so nobody may hang on it.
fn ask_engine(engine: &Path, name: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (path, driver_name) = (engine.to_path_buf(), name.to_string());
    std::thread::spawn(move || {
        let _ = tx.send(engine_state(&path, &driver_name));
    });
    rx.recv_timeout(ENGINE_TIMEOUT)
        .unwrap_or_else(|_| Err(format!("no answer within {ENGINE_TIMEOUT:?}")))
}

/// The engine's networks and endpoints plus those made through the
/// daemon's API (`POST /v1/cnm/networks`): the engine never knew them, so
/// they are not orphans.
fn with_api_objects(
    d: &Driver,
    (mut nets, mut eps): (Vec<String>, Vec<String>),
) -> (Vec<String>, Vec<String>) {
    let snap = d.snapshot();
    for n in snap
        .networks
        .iter()
        .filter(|n| crate::daemon::cnm::made_by_api(n))
    {
        nets.push(n.id.clone());
        eps.extend(
            snap.endpoints
                .iter()
                .filter(|e| e.network_id == n.id)
                .map(|e| e.id.clone()),
        );
    }
    (nets, eps)
}

/// Log what a reconcile removed (or why it failed).
fn log_removed(r: Result<rvs_cnm::Orphans, rvs_cnm::DriverError>) {
    match r {
        Ok(o) if o == rvs_cnm::Orphans::default() => {}
        Ok(o) => tracing::info!(
            networks = ?o.networks,
            endpoints = ?o.endpoints,
            pools = ?o.pools,
            "removed what the Docker engine no longer has"
        ),
        Err(e) => tracing::error!(error = %e, "reconciling with the Docker engine failed"),
    }
}

/// Docker removes networks and endpoints even while the driver is down
/// (after retrying for a while): ask the engine what it still has and free
/// the rest. Without an answer nothing is removed.
fn reconcile_with_engine(driver: &Driver, name: &str, engine: &Path) {
    if driver.snapshot().networks.is_empty() {
        return;
    }
    match ask_engine(engine, name).map(|a| with_api_objects(driver, a)) {
        Ok((networks, endpoints)) => log_removed(driver.reconcile(&networks, Some(&endpoints))),
        Err(e) => tracing::warn!(
            engine = %engine.display(),
            error = %e,
            "cannot ask the Docker engine which networks still exist; \
             networks removed while rvswitch was down are kept"
        ),
    }
}

/// How often container names are read from the engine after the driver's
/// endpoints changed, and for how long; otherwise every [`NAMES_IDLE`].
const NAMES_BUSY: Duration = Duration::from_secs(1);
const NAMES_BUSY_FOR: Duration = Duration::from_secs(15);
const NAMES_IDLE: Duration = Duration::from_secs(30);

/// Names of the embedded DNS for Docker's containers. The engine passes a
/// remote driver neither the container's name nor its `--network-alias`es
/// (CreateEndpoint and Join carry ids, addresses and options only), so they
/// are read from the engine's API: after the driver's endpoints change
/// (Join, Leave) every second for a while, since the engine lists a
/// container on the network only once its connect is done; then every
/// 30 s. Each network's bridge domain gets exactly the names of the
/// containers the engine lists on it.
fn names_loop(d: &Driver, control: &Control, engine: &Path, stop: &std::sync::atomic::AtomicBool) {
    use std::sync::atomic::Ordering;
    use std::time::Instant;
    let mut seen: Vec<(String, Option<String>)> = Vec::new();
    let mut busy_until = Instant::now();
    let mut next = Instant::now();
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
        let snap = d.snapshot();
        let now: Vec<(String, Option<String>)> = snap
            .endpoints
            .iter()
            .map(|e| (e.id.clone(), e.sandbox.clone()))
            .collect();
        let t = Instant::now();
        if now != seen {
            seen = now;
            busy_until = t + NAMES_BUSY_FOR;
            next = t;
        }
        if t < next || snap.networks.is_empty() {
            continue;
        }
        next = t + if t < busy_until {
            NAMES_BUSY
        } else {
            NAMES_IDLE
        };
        // Networks on a host NIC have no gateway, so no DNS (and share
        // one domain per NIC, whose names no one network owns).
        let ids: Vec<String> = snap
            .networks
            .iter()
            .filter(|n| rvs_cnm::docker::options::parent_of(n).is_none())
            .map(|n| n.id.clone())
            .collect();
        match ask(engine, move |e| engine_names(e, &ids)) {
            Ok(want) => {
                for (net, names, label_services) in want {
                    let domain = crate::fabric::domain_name(&net);
                    sync_names(control, &domain, &names);
                    if let Some(n) = snap.networks.iter().find(|n| n.id == net) {
                        services::sync(control, &domain, n, &snap.endpoints, &label_services);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "Docker engine not reachable; names not read"),
        }
    }
}

/// `f` on the engine socket in a thread of its own, answered within
/// [`ENGINE_TIMEOUT`] or not at all (the engine may be waiting for us).
fn ask<T: Send + 'static>(
    engine: &Path,
    f: impl FnOnce(&Path) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = engine.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(f(&path));
    });
    rx.recv_timeout(ENGINE_TIMEOUT)
        .unwrap_or_else(|_| Err(format!("no answer within {ENGINE_TIMEOUT:?}")))
}

type Names = std::collections::BTreeMap<String, Vec<std::net::IpAddr>>;

/// For each of `networks` the engine knows: its containers' names and
/// aliases with their addresses on it, and the services their labels
/// declare (see [`services`]).
fn engine_names(
    engine: &Path,
    networks: &[String],
) -> Result<Vec<(String, Names, services::Wanted)>, String> {
    use crate::client::Client;
    let client = Client::new(engine).map_err(|e| e.to_string())?;
    let get = |path: &str| -> Result<serde_json::Value, String> {
        let r = client
            .get(path)
            .and_then(|r| r.ok())
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&r.body).map_err(|e| format!("GET {path}: {e}"))
    };
    let mut out = Vec::new();
    for id in networks {
        let Ok(n) = get(&format!("/v1.41/networks/{id}")) else {
            continue;
        };
        let net_name = n["Name"].as_str().unwrap_or_default().to_string();
        let mut names = Names::new();
        let mut wanted = services::Wanted::default();
        for (cid, c) in n["Containers"].as_object().into_iter().flatten() {
            let addrs: Vec<std::net::IpAddr> = ["IPv4Address", "IPv6Address"]
                .iter()
                .filter_map(|k| c[*k].as_str())
                .filter_map(|a| a.split('/').next()?.parse().ok())
                .collect();
            if addrs.is_empty() {
                continue;
            }
            let mut all: Vec<String> = c["Name"].as_str().map(str::to_string).into_iter().collect();
            if let Ok(ci) = get(&format!("/v1.41/containers/{cid}/json")) {
                let who = c["Name"].as_str().unwrap_or(cid);
                match services::declared(&ci["Config"]["Labels"]) {
                    Some(Ok(d)) => wanted.add(who, d, &addrs),
                    Some(Err(e)) => {
                        tracing::warn!(container = %who, error = %e, "service labels ignored")
                    }
                    None => {}
                }
                let aliases = &ci["NetworkSettings"]["Networks"][&net_name]["Aliases"];
                all.extend(
                    aliases
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a.as_str().map(str::to_string)),
                );
            }
            for name in all {
                if rvs_dns::check_name(&name).is_err() {
                    continue;
                }
                let e = names.entry(rvs_dns::normalize(&name)).or_default();
                for a in &addrs {
                    if !e.contains(a) && e.len() < crate::api::NAME_ADDRESSES_MAX {
                        e.push(*a);
                    }
                }
            }
        }
        out.push((id.clone(), names, wanted));
    }
    Ok(out)
}

/// Make `domain`'s names exactly `want` (a failure is logged; the next
/// round tries again).
fn sync_names(control: &Control, domain: &str, want: &Names) {
    let have = match control.list_names(domain) {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(%domain, error = %e, "names not synced");
            return;
        }
    };
    for h in &have {
        if !want.contains_key(&h.name)
            && let Err(e) = control.delete_name(domain, &h.name)
        {
            tracing::warn!(%domain, name = %h.name, error = %e, "container name not removed");
        }
    }
    for (name, addrs) in want {
        if have
            .iter()
            .any(|h| &h.name == name && &h.addresses == addrs)
        {
            continue;
        }
        let spec = crate::api::NameSpec {
            addresses: addrs.clone(),
            vlan: None,
        };
        if let Err(e) = control.set_name(domain, name, spec) {
            tracing::warn!(%domain, %name, error = %e, "container name not set");
        }
    }
}
