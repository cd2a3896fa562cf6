//! Hosts sharing networks through etcd: `rvswitch daemon --store
//! etcd://H1:P1,H2:P2,…`.
//!
//! Owns: this host's membership (its name and VTEP under a lease the
//! daemon keeps alive), the cluster-wide records of global networks (VNI,
//! subnet) and their addresses (each allocated with an etcd transaction),
//! this host's endpoints of global networks as published under its lease,
//! and a watched copy of everything the other hosts publish.
//! Never: the switch. Remote endpoints reach the data plane as one more
//! input to the one change path: [`sync`] states the remotes each global
//! network's VTEP port should have and calls [`Control::set_remotes`]
//! (validate, next desired state, commit, reconcile, store), as the API
//! would.
//!
//! # Keys (under `/rvswitch/`)
//! - `live/members/<host>` → [`MemberRecord`], under the host's lease.
//! - `networks/<name>` → [`NetworkRecord`]; `vni/<vni>` → name, and
//!   `subnets/<cidr>` → name, each created with the network in one
//!   transaction (create-if-absent), so a VNI or subnet has one owner.
//! - `ipam/<name>/<ip>` → [`AddressRecord`], created if absent, with
//!   `ipam-owners/<name>/<host>/<endpoint id>` → the address in the same
//!   transaction (the claim's reverse key).
//! - `live/endpoints/<name>/<host>/<endpoint id>` → [`EndpointRecord`],
//!   under the publishing host's lease: a dead host's entries go with it.
//!
//! Hosts read and watch only `live/`: what they need to forward, not the
//! records of networks and addresses.
//!
//! The etcd client runs on a runtime of its own (two threads), so calls
//! from the Docker driver's blocking threads wait on it without touching
//! the API's runtime.

mod sync;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use rvs_cnm::model::{Endpoint, Network, NetworkKind, Subnet};
use rvs_cnm::prefix::Cidr;
use rvs_switch::MacAddr;
use serde::{Deserialize, Serialize};

pub use sync::sync;

/// Every key lives under this prefix.
const PREFIX: &str = "/rvswitch/";
/// Leased keys (members, endpoints): what every host reads and watches.
const LIVE: &str = "/rvswitch/live/";
/// The end of the `LIVE` range ('/' + 1).
const LIVE_END: &str = "/rvswitch/live0";
/// Global networks without a subnet get a /24 out of this range.
const SUBNET_RANGE: (u8, u8) = (10, 200);
/// VNIs the cluster allocates (a wanted one may be anything 1-16777215).
const VNI_BASE: u32 = 100_000;
const VNI_SPAN: u32 = 1 << 20;

/// `rvswitch daemon` options for joining a cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Join the cluster whose state lives in this etcd cluster:
    /// `etcd://HOST:PORT[,HOST:PORT…]`. Without it everything is local.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Seconds this host's lease lives without a keep-alive: a host that
    /// dies leaves the cluster (its endpoints with it) this long after.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=300))]
    pub store_ttl: u64,
    /// This host's name in the cluster (default: the kernel's host name).
    #[arg(long)]
    pub host_name: Option<String>,
    /// This host's VTEP (underlay) address; global networks send and
    /// receive VXLAN on it. Required with --store.
    #[arg(long, value_name = "ADDR")]
    pub vtep: Option<IpAddr>,
    /// Authenticate to etcd as this user (etcd's `auth enable`); the
    /// password is read from --store-password-file.
    #[arg(long, value_name = "NAME", requires = "store_password_file")]
    pub store_user: Option<String>,
    /// File holding the --store-user's password (one line), so it is not
    /// on the command line.
    #[arg(long, value_name = "PATH", requires = "store_user")]
    pub store_password_file: Option<std::path::PathBuf>,
    /// With `etcds://`: the CA certificate (PEM) the etcd members' server
    /// certificates are checked against (etcd's `--trusted-ca-file` side;
    /// `etcdctl --cacert`).
    #[arg(long, value_name = "PATH")]
    pub store_ca: Option<std::path::PathBuf>,
    /// With `etcds://`: this host's client certificate (PEM), for members
    /// run with `--client-cert-auth` (`etcdctl --cert`).
    #[arg(long, value_name = "PATH", requires = "store_key")]
    pub store_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM; `etcdctl --key`).
    #[arg(long, value_name = "PATH", requires = "store_cert")]
    pub store_key: Option<std::path::PathBuf>,
    /// Keys per read when the cluster's view is read whole (at start and
    /// after a lost watch). Hidden: the tests make it small to read in
    /// many pages.
    #[arg(long, hide = true, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..))]
    pub store_read_page: i64,
}

/// Local only, as without the flags.
impl Default for ClusterArgs {
    fn default() -> ClusterArgs {
        ClusterArgs {
            store: None,
            store_ttl: 10,
            host_name: None,
            vtep: None,
            store_user: None,
            store_password_file: None,
            store_ca: None,
            store_cert: None,
            store_key: None,
            store_read_page: 1000,
        }
    }
}

/// `members/<host>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub host: String,
    pub vtep: IpAddr,
    /// Seconds since the epoch when it joined.
    pub joined: u64,
}

/// `networks/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub name: String,
    pub vni: u32,
    pub subnets: Vec<Subnet>,
    /// The host that created it first.
    pub created_by: String,
}

/// `ipam/<name>/<ip>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRecord {
    pub host: String,
    pub endpoint: String,
}

/// `endpoints/<name>/<host>/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub network: String,
    pub host: String,
    pub id: String,
    pub mac: MacAddr,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    pub vni: u32,
    pub vtep: IpAddr,
    /// The endpoint's DNS names in its network (container name, aliases,
    /// names given through the API), which every host's DNS answers on the
    /// network with the endpoint's addresses. Absent in records of older
    /// hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// DNS names one endpoint publishes, at most (a record stays small).
pub const NAMES_PER_ENDPOINT: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("--store {0:?}: expected etcd://HOST:PORT[,HOST:PORT...] (etcds:// for TLS)")]
    Url(String),
    #[error(
        "--store etcds://... (TLS) needs --store-ca: the CA that signed the members' certificates"
    )]
    NeedCa,
    #[error("--store-ca/--store-cert/--store-key are for TLS: write the store as etcds://...")]
    TlsWithoutEtcds,
    #[error("{0} {1}: {2}")]
    TlsFile(&'static str, String, std::io::Error),
    #[error("--store needs --vtep ADDR: this host's underlay address for global networks")]
    NoVtep,
    #[error("--host-name {0:?}: expected 1-64 letters, digits, '-', '_' or '.'")]
    HostName(String),
    #[error("cluster store: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error(
        "the cluster store (etcd) is unavailable: no quorum, or no member reachable ({0}); \
         nothing was changed"
    )]
    Unavailable(String),
    #[error("cluster store: {0}")]
    Failed(String),
    #[error("{0}")]
    Conflict(String),
    /// The request cannot be a global network's (say what to change).
    #[error("{0}")]
    Invalid(String),
    /// Every VNI or subnet a global network could take is taken.
    #[error("{0}")]
    Exhausted(String),
    /// Other hosts' claims kept winning: nothing changed, and the same
    /// call may succeed later.
    #[error("{0}; nothing was changed, try again")]
    Contended(String),
    /// A record in the store is not what this version writes.
    #[error("cluster store: {0}")]
    Corrupt(String),
    #[error("--store-password-file {0}: {1}")]
    Password(String, std::io::Error),
    #[error("cannot start the cluster client's runtime: {0}")]
    Runtime(std::io::Error),
}

/// The other hosts' state as watched, and what was last seen.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub members: BTreeMap<String, (MemberRecord, i64)>,
    /// By key.
    pub endpoints: BTreeMap<String, EndpointRecord>,
    /// The store's revision in the last response seen.
    pub revision: i64,
    /// Times the watch was made again from a fresh read (a lost watch).
    pub resyncs: u64,
}

/// `GET /v1/cluster`: this host's membership and the members it sees.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Cluster)]
pub struct ClusterView {
    /// The etcd endpoints (`etcd://...`).
    pub store: String,
    /// This host's name.
    pub host: String,
    /// This host's VTEP address.
    #[schema(value_type = crate::api::format::IpAddress)]
    pub vtep: IpAddr,
    pub lease: String,
    pub ttl_secs: u64,
    pub revision: i64,
    pub resyncs: u64,
    pub members: Vec<MemberView>,
    /// Endpoints other hosts publish, per global network name.
    pub remote_endpoints: BTreeMap<String, usize>,
}

/// A member of the cluster as this host sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ClusterMember)]
pub struct MemberView {
    pub host: String,
    #[schema(value_type = crate::api::format::IpAddress)]
    pub vtep: IpAddr,
    pub lease: String,
    pub joined: u64,
    #[serde(rename = "self")]
    pub this: bool,
}

/// This host's place in the cluster.
pub struct Cluster {
    rt: tokio::runtime::Runtime,
    client: Client,
    url: String,
    host: String,
    vtep: IpAddr,
    ttl: u64,
    /// Keys per read of the whole view.
    page: i64,
    lease: AtomicI64,
    /// This host's keys (member and endpoints) with their values: put again
    /// under a new lease if the old one is lost.
    published: Mutex<BTreeMap<String, String>>,
    /// Per global network: the offset in its subnet this host tries next
    /// when it allocates (see [`Cluster::claim_address`]).
    cursors: Mutex<BTreeMap<String, u32>>,
    pub(crate) view: Mutex<View>,
    /// Wakes the sync thread (see [`sync`]).
    pub(crate) changed: crossbeam_channel::Sender<()>,
    pub(crate) wake: crossbeam_channel::Receiver<()>,
    closing: AtomicBool,
}

/// The endpoints of `etcd://…` (plain) or `etcds://…` (TLS), and whether
/// they are TLS.
fn endpoints_of(url: &str) -> Result<(Vec<String>, bool), ClusterError> {
    let (rest, tls) = match (url.strip_prefix("etcd://"), url.strip_prefix("etcds://")) {
        (Some(r), _) => (r, false),
        (_, Some(r)) => (r, true),
        _ => return Err(ClusterError::Url(url.into())),
    };
    let hosts: Vec<String> = rest
        .trim_end_matches('/')
        .split(',')
        .map(|h| h.trim().to_string())
        .collect();
    if hosts
        .iter()
        .any(|h| h.is_empty() || !h.contains(':') || h.contains('/'))
    {
        return Err(ClusterError::Url(url.into()));
    }
    let scheme = if tls { "https" } else { "http" };
    Ok((
        hosts
            .into_iter()
            .map(|h| format!("{scheme}://{h}"))
            .collect(),
        tls,
    ))
}

/// The TLS settings of `--store etcds://…`.
fn tls_options(args: &ClusterArgs) -> Result<etcd_client::TlsOptions, ClusterError> {
    let read = |flag: &'static str, p: &std::path::Path| {
        std::fs::read(p).map_err(|e| ClusterError::TlsFile(flag, p.display().to_string(), e))
    };
    let ca = args.store_ca.as_deref().ok_or(ClusterError::NeedCa)?;
    let mut tls = etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(read("--store-ca", ca)?));
    if let (Some(cert), Some(key)) = (&args.store_cert, &args.store_key) {
        tls = tls.identity(etcd_client::Identity::from_pem(
            read("--store-cert", cert)?,
            read("--store-key", key)?,
        ));
    }
    Ok(tls)
}

/// How long an operation is tried again while the store is momentarily out
/// of reach (a member down, a leader election).
const RETRY_FOR: Duration = Duration::from_secs(5);

/// Whether `e` says "try again": the member asked is down or between
/// leaders. A timeout (no quorum for the whole request timeout) is not.
fn transient(e: &ClusterError) -> bool {
    match e {
        ClusterError::Etcd(etcd_client::Error::GRpcStatus(s)) => {
            // A connection that broke mid-request (the member went away)
            // comes as `Unknown` with the transport error as its source.
            let broken =
                std::error::Error::source(s).is_some_and(|e| e.is::<tonic::transport::Error>());
            s.code() == tonic::Code::Unavailable || broken
        }
        ClusterError::Etcd(etcd_client::Error::TransportError(_)) => true,
        _ => false,
    }
}

/// Whether `e` says the store did not answer at all.
fn no_answer(e: &ClusterError) -> bool {
    matches!(
        e,
        ClusterError::Etcd(etcd_client::Error::GRpcStatus(s))
            if matches!(s.code(), tonic::Code::Cancelled | tonic::Code::DeadlineExceeded)
    ) || transient(e)
}

/// Run `op` again while it fails transiently, for up to [`RETRY_FOR`];
/// a store that does not answer is reported as [`ClusterError::Unavailable`].
/// Every operation given is safe to repeat: puts and deletes are
/// idempotent, and a claim that won before its answer was lost finds its
/// own record.
async fn retrying<T, F, Fut>(mut op: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClusterError>>,
{
    let t0 = std::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match op().await {
            Err(e) if transient(&e) && t0.elapsed() < RETRY_FOR => {
                tracing::debug!(error = %e, "cluster store busy; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(e) if no_answer(&e) => return Err(ClusterError::Unavailable(e.to_string())),
            r => return r,
        }
    }
}

fn kernel_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialize")
}

fn key_network(name: &str) -> String {
    format!("{PREFIX}networks/{name}")
}

fn key_address(name: &str, ip: IpAddr) -> String {
    format!("{PREFIX}ipam/{name}/{ip}")
}

fn key_endpoint(name: &str, host: &str, id: &str) -> String {
    format!("{LIVE}endpoints/{name}/{host}/{id}")
}

/// `ipam-owners/<name>/<host>/<endpoint id>` → the address the endpoint
/// holds: created with the address's claim, deleted with its release, so a
/// retried claim finds its own address with one read, and a host finds its
/// own claims without reading the others'.
fn key_owner(name: &str, host: &str, id: &str) -> String {
    format!("{PREFIX}ipam-owners/{name}/{host}/{id}")
}

/// The number of host addresses of an IPv4 subnet (network and broadcast
/// addresses excluded; the gateway counted, see [`host_at`]).
fn host_count(s: &Subnet) -> u32 {
    match (s.pool.addr, s.pool.len) {
        (IpAddr::V4(_), len) if len < 31 => (1u32 << (32 - len)) - 2,
        _ => 0,
    }
}

/// The host address at offset `i` (0-based, below [`host_count`]) of an
/// IPv4 subnet; None for the gateway.
fn host_at(s: &Subnet, i: u32) -> Option<IpAddr> {
    let IpAddr::V4(base) = s.pool.addr else {
        return None;
    };
    let a = IpAddr::V4((u32::from(base) + 1 + i).into());
    (Some(a) != s.gateway).then_some(a)
}

/// Where host `host` starts allocating in a subnet of `count` addresses:
/// spread by a hash of its name, so hosts filling one network at once do
/// not race for the same addresses.
fn first_cursor(host: &str, count: u32) -> u32 {
    let h = host.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    (h % count.max(1) as u64) as u32
}

/// Failed tries in a row after which an allocation reads which addresses
/// are taken (keys only) and jumps to a free one.
const TRIES_BEFORE_SCAN: u32 = 16;

impl Cluster {
    /// Connect, take a lease and register this host. Fails (and the daemon
    /// does not start) when the store cannot be reached.
    pub fn join(args: &ClusterArgs) -> Result<Option<Arc<Cluster>>, ClusterError> {
        let Some(url) = &args.store else {
            return Ok(None);
        };
        let (endpoints, tls) = endpoints_of(url)?;
        let tls = match tls {
            true => Some(tls_options(args)?),
            false if args.store_ca.is_some() || args.store_cert.is_some() => {
                return Err(ClusterError::TlsWithoutEtcds);
            }
            false => None,
        };
        let vtep = args.vtep.ok_or(ClusterError::NoVtep)?;
        let host = args.host_name.clone().unwrap_or_else(kernel_host_name);
        let valid = (1..=64).contains(&host.len())
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            return Err(ClusterError::HostName(host));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rvs-cluster")
            .enable_all()
            .build()
            .map_err(ClusterError::Runtime)?;
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        if let Some(tls) = tls {
            opts = opts.with_tls(tls);
        }
        if let (Some(user), Some(file)) = (&args.store_user, &args.store_password_file) {
            let password = std::fs::read_to_string(file)
                .map_err(|e| ClusterError::Password(file.display().to_string(), e))?;
            opts = opts
                .with_user(
                    user.clone(),
                    password.trim_end_matches(['\r', '\n']).to_string(),
                )
                .with_auto_token_refresh(true);
        }
        let client = rt.block_on(Client::connect(endpoints, Some(opts)))?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        let c = Arc::new(Cluster {
            rt,
            client,
            url: url.clone(),
            host,
            vtep,
            ttl: args.store_ttl,
            page: args.store_read_page,
            lease: AtomicI64::new(0),
            published: Mutex::new(BTreeMap::new()),
            cursors: Mutex::new(BTreeMap::new()),
            view: Mutex::new(View::default()),
            changed: tx,
            wake: rx,
            closing: AtomicBool::new(false),
        });
        let member = MemberRecord {
            host: c.host.clone(),
            vtep,
            joined: now_secs(),
        };
        c.published
            .lock()
            .unwrap()
            .insert(format!("{LIVE}members/{}", c.host), json(&member));
        c.block_on(c.clone().new_lease())?;
        c.block_on(c.clone().read_all())?;
        c.rt.spawn(c.clone().keep_alive());
        c.rt.spawn(c.clone().watch());
        tracing::info!(store = %c.url, host = %c.host, %vtep, ttl = c.ttl, "joined the cluster");
        Ok(Some(c))
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn vtep(&self) -> IpAddr {
        self.vtep
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn kv(&self) -> Client {
        self.client.clone()
    }

    fn notify(&self) {
        let _ = self.changed.try_send(());
    }

    /// Grant a lease and put this host's keys under it.
    async fn new_lease(self: Arc<Self>) -> Result<(), ClusterError> {
        let mut c = self.kv();
        let lease = c.lease_grant(self.ttl as i64, None).await?.id();
        self.lease.store(lease, Ordering::Release);
        let keys: Vec<(String, String)> = self
            .published
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in keys {
            c.put(k, v, Some(PutOptions::new().with_lease(lease)))
                .await?;
        }
        tracing::info!(lease = format!("{lease:x}"), "cluster lease granted");
        Ok(())
    }

    /// Keep the lease alive (three keep-alives per TTL); a lease that
    /// expired anyway (the store was out of reach longer than the TTL) is
    /// replaced and this host's keys are put again.
    async fn keep_alive(self: Arc<Self>) {
        let every = Duration::from_millis(self.ttl * 1000 / 3);
        while !self.closing.load(Ordering::Acquire) {
            let lease = self.lease.load(Ordering::Acquire);
            let r: Result<(), ClusterError> = async {
                let (mut keeper, mut stream) = self.kv().lease_keep_alive(lease).await?;
                loop {
                    keeper.keep_alive().await?;
                    match stream.message().await? {
                        Some(r) if r.ttl() > 0 => {}
                        _ => {
                            tracing::warn!("cluster lease expired: taking a new one");
                            self.clone().new_lease().await?;
                            return Ok(());
                        }
                    }
                    tokio::time::sleep(every).await;
                    if self.closing.load(Ordering::Acquire) {
                        return Ok(());
                    }
                }
            }
            .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "cluster lease keep-alive failed; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// Read every member and endpoint, in pages (`--store-read-page`
    /// keys) at one revision; the view becomes exactly that.
    async fn read_all(self: Arc<Self>) -> Result<i64, ClusterError> {
        let mut c = self.kv();
        let mut v = View::default();
        let mut from = LIVE.as_bytes().to_vec();
        let mut rev = 0;
        loop {
            let mut opts = GetOptions::new().with_range(LIVE_END).with_limit(self.page);
            if rev != 0 {
                opts = opts.with_revision(rev);
            }
            let r = c.get(from.clone(), Some(opts)).await?;
            if rev == 0 {
                rev = r.header().map(|h| h.revision()).unwrap_or(0);
            }
            for kv in r.kvs() {
                apply_put(&mut v, kv.key(), kv.value(), kv.lease());
            }
            match r.kvs().last() {
                Some(last) if r.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        {
            let mut view = self.view.lock().unwrap();
            v.resyncs = view.resyncs;
            v.revision = rev;
            *view = v;
        }
        self.notify();
        Ok(rev)
    }

    /// Watch everything from the revision read; a watch that breaks (the
    /// member went away, the revision was compacted) is made again from a
    /// fresh read, so nothing is missed.
    async fn watch(self: Arc<Self>) {
        let mut from = self.view.lock().unwrap().revision + 1;
        while !self.closing.load(Ordering::Acquire) {
            let r: Result<(), ClusterError> = async {
                let opts = WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(from)
                    .with_progress_notify();
                let mut stream = self.kv().watch(LIVE, Some(opts)).await?;
                while let Some(resp) = stream.message().await? {
                    if resp.canceled() || resp.compact_revision() > 0 {
                        return Err(ClusterError::Failed(format!(
                            "watch canceled: {}",
                            resp.cancel_reason()
                        )));
                    }
                    let mut v = self.view.lock().unwrap();
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        match ev.event_type() {
                            EventType::Put => apply_put(&mut v, kv.key(), kv.value(), kv.lease()),
                            EventType::Delete => apply_delete(&mut v, kv.key()),
                        }
                    }
                    if let Some(h) = resp.header() {
                        v.revision = v.revision.max(h.revision());
                    }
                    drop(v);
                    self.notify();
                }
                Err(ClusterError::Failed("watch stream ended".into()))
            }
            .await;
            if self.closing.load(Ordering::Acquire) {
                return;
            }
            if let Err(e) = r {
                tracing::warn!(error = %e, "cluster watch lost; reading everything again");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.view.lock().unwrap().resyncs += 1;
            match self.clone().read_all().await {
                Ok(rev) => from = rev + 1,
                Err(e) => tracing::warn!(error = %e, "cluster resync failed; trying again"),
            }
        }
    }

    /// Leave: revoke the lease, so this host's keys go now, not after the
    /// TTL.
    pub fn leave(&self) {
        self.closing.store(true, Ordering::Release);
        let lease = self.lease.load(Ordering::Acquire);
        let mut c = self.kv();
        let r = self.block_on(async move {
            tokio::time::timeout(Duration::from_secs(2), c.lease_revoke(lease)).await
        });
        match r {
            Ok(Ok(_)) => tracing::info!("left the cluster"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not revoke the cluster lease"),
            Err(_) => tracing::warn!("revoking the cluster lease timed out"),
        }
    }

    pub fn view(&self) -> ClusterView {
        let v = self.view.lock().unwrap();
        let mut remote: BTreeMap<String, usize> = BTreeMap::new();
        for e in v.endpoints.values().filter(|e| e.host != self.host) {
            *remote.entry(e.network.clone()).or_default() += 1;
        }
        ClusterView {
            store: self.url.clone(),
            host: self.host.clone(),
            vtep: self.vtep,
            lease: format!("{:x}", self.lease.load(Ordering::Acquire)),
            ttl_secs: self.ttl,
            revision: v.revision,
            resyncs: v.resyncs,
            members: v
                .members
                .values()
                .map(|(m, lease)| MemberView {
                    host: m.host.clone(),
                    vtep: m.vtep,
                    lease: format!("{lease:x}"),
                    joined: m.joined,
                    this: m.host == self.host,
                })
                .collect(),
            remote_endpoints: remote,
        }
    }

    // ---- global networks ----------------------------------------------------

    /// Fill in a global network's VNI and subnets from its record, creating
    /// the record (and claiming VNI and subnet) when this host is the first.
    pub fn resolve_network(&self, n: &mut Network) -> Result<(), ClusterError> {
        let NetworkKind::Vxlan { vni: wanted } = n.kind else {
            return Err(ClusterError::Invalid(format!(
                "global network {} is not a VXLAN network",
                n.name
            )));
        };
        let v4: Vec<Subnet> = n
            .subnets
            .iter()
            .filter(|s| s.pool.addr.is_ipv4())
            .cloned()
            .collect();
        let rec = self.block_on(retrying(|| {
            self.network_record(&n.name, wanted, v4.clone())
        }))?;
        if wanted != 0 && wanted != rec.vni {
            return Err(ClusterError::Conflict(format!(
                "global network {} has VNI {} (created by {}), not {wanted}",
                rec.name, rec.vni, rec.created_by
            )));
        }
        if !v4.is_empty()
            && v4
                .iter()
                .map(|s| s.pool)
                .ne(rec.subnets.iter().map(|s| s.pool))
        {
            return Err(ClusterError::Conflict(format!(
                "global network {} has subnet {} (created by {}); create it with that subnet \
                 or none",
                rec.name,
                rec.subnets
                    .iter()
                    .map(|s| s.pool.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                rec.created_by
            )));
        }
        n.kind = NetworkKind::Vxlan { vni: rec.vni };
        n.subnets.retain(|s| !s.pool.addr.is_ipv4());
        let mut subnets = rec.subnets;
        subnets.append(&mut n.subnets);
        n.subnets = subnets;
        n.options
            .insert("rvswitch.vtep_local".into(), self.vtep.to_string());
        Ok(())
    }

    /// The record of global network `name`, created if absent.
    async fn network_record(
        &self,
        name: &str,
        wanted: u32,
        given: Vec<Subnet>,
    ) -> Result<NetworkRecord, ClusterError> {
        let mut c = self.kv();
        let key = key_network(name);
        let seed = name
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
        for attempt in 0u32..64 {
            if let Some(kv) = c.get(key.as_str(), None).await?.kvs().first() {
                return serde_json::from_slice(kv.value())
                    .map_err(|e| ClusterError::Corrupt(format!("record {key}: {e}")));
            }
            let vni = match wanted {
                0 => VNI_BASE + (seed.wrapping_add(attempt.wrapping_mul(7919)) % VNI_SPAN),
                v => v,
            };
            let subnets = match given.is_empty() {
                false => given.clone(),
                true => {
                    let i = (seed.wrapping_add(attempt.wrapping_mul(104_729))) % 256;
                    let pool = Cidr::parse_prefix(&format!(
                        "{}.{}.{i}.0/24",
                        SUBNET_RANGE.0, SUBNET_RANGE.1
                    ))
                    .expect("a valid prefix");
                    let gw = format!("{}.{}.{i}.1", SUBNET_RANGE.0, SUBNET_RANGE.1);
                    vec![Subnet {
                        pool,
                        gateway: Some(gw.parse().expect("an address")),
                        address_space: "GlobalDefault".into(),
                    }]
                }
            };
            let rec = NetworkRecord {
                name: name.into(),
                vni,
                subnets: subnets.clone(),
                created_by: self.host.clone(),
            };
            let vni_key = format!("{PREFIX}vni/{vni}");
            let mut when = vec![
                Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
                Compare::create_revision(vni_key.as_str(), CompareOp::Equal, 0),
            ];
            let mut then = vec![
                TxnOp::put(key.as_str(), json(&rec), None),
                TxnOp::put(vni_key.as_str(), name, None),
            ];
            for s in &subnets {
                let k = format!("{PREFIX}subnets/{}", s.pool.to_string().replace('/', "_"));
                when.push(Compare::create_revision(k.as_str(), CompareOp::Equal, 0));
                then.push(TxnOp::put(k.as_str(), name, None));
            }
            let r = c.txn(Txn::new().when(when).and_then(then)).await?;
            if r.succeeded() {
                tracing::info!(network = name, vni, "created global network");
                return Ok(rec);
            }
            // Someone else made it meanwhile (read at the top of the next
            // round), or the VNI or subnet is another network's: a wanted
            // one is refused, an allocated one is tried again elsewhere.
            if !c.get(key.as_str(), None).await?.kvs().is_empty() {
                continue;
            }
            if wanted != 0
                && let Some(kv) = c.get(vni_key.as_str(), None).await?.kvs().first()
            {
                return Err(ClusterError::Conflict(format!(
                    "VNI {vni} belongs to global network {}",
                    String::from_utf8_lossy(kv.value())
                )));
            }
            if !given.is_empty() && !self.subnets_free(&mut c, &given).await? {
                return Err(ClusterError::Conflict(format!(
                    "subnet {} belongs to another global network",
                    given[0].pool
                )));
            }
        }
        Err(ClusterError::Exhausted(format!(
            "no free VNI or subnet found for global network {name}"
        )))
    }

    async fn subnets_free(&self, c: &mut Client, subnets: &[Subnet]) -> Result<bool, ClusterError> {
        for s in subnets {
            let k = format!("{PREFIX}subnets/{}", s.pool.to_string().replace('/', "_"));
            if !c.get(k, None).await?.kvs().is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Claim `want` for endpoint `id` of global network `n`, or allocate
    /// the first free host address of its IPv4 subnet; each with a
    /// create-if-absent transaction.
    pub fn claim_address(
        &self,
        n: &Network,
        id: &str,
        want: Option<Cidr>,
    ) -> Result<Option<Cidr>, ClusterError> {
        let Some(subnet) = n.subnets.iter().find(|s| s.pool.addr.is_ipv4()) else {
            return Ok(want);
        };
        let rec = json(&AddressRecord {
            host: self.host.clone(),
            endpoint: id.into(),
        });
        self.block_on(retrying(|| {
            self.claim_once(&n.name, subnet, id, want, &rec)
        }))
    }

    /// One try of [`Cluster::claim_address`].
    async fn claim_once(
        &self,
        name: &str,
        subnet: &Subnet,
        id: &str,
        want: Option<Cidr>,
        rec: &str,
    ) -> Result<Option<Cidr>, ClusterError> {
        let mut c = self.kv();
        let owner = key_owner(name, &self.host, id);
        let cidr = |addr| Cidr {
            addr,
            len: subnet.pool.len,
        };
        if let Some(w) = want {
            let k = key_address(name, w.addr);
            let txn = Txn::new()
                .when([Compare::create_revision(k.as_str(), CompareOp::Equal, 0)])
                .and_then([
                    TxnOp::put(k.as_str(), rec, None),
                    TxnOp::put(owner.as_str(), w.addr.to_string(), None),
                ])
                .or_else([TxnOp::get(k.as_str(), None)]);
            let r = c.txn(txn).await?;
            if r.succeeded() {
                return Ok(Some(w));
            }
            let holder = r.op_responses().into_iter().find_map(|o| match o {
                TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
                _ => None,
            });
            let holder: Option<AddressRecord> =
                holder.and_then(|h| serde_json::from_slice(&h).ok());
            return match holder {
                Some(h) if h.endpoint == id => Ok(Some(w)),
                Some(h) => Err(ClusterError::Conflict(format!(
                    "address {} of global network {name} is held by endpoint {} on host {}",
                    w.addr, h.endpoint, h.host
                ))),
                // Released between the claim and the read: a race lost.
                None => Err(ClusterError::Contended(format!(
                    "address {} of global network {name}: claim refused",
                    w.addr
                ))),
            };
        }
        // Allocate. An address this endpoint already won (a try whose
        // answer was lost) is its owner key's: one read.
        let held = |v: &[u8]| std::str::from_utf8(v).ok()?.parse::<IpAddr>().ok();
        if let Some(ip) = c
            .get(owner.as_str(), None)
            .await?
            .kvs()
            .first()
            .and_then(|kv| held(kv.value()))
        {
            return Ok(Some(cidr(ip)));
        }
        // Then create-if-absent tries from this host's cursor, one address
        // each (both keys in one transaction); after a run of failures, one
        // keys-only read of the network's claims finds a free address to go
        // on from. Each try costs one small transaction, not a read of
        // every claim: O(1) per allocation while the subnet has room.
        let count = host_count(subnet);
        let no_free = || {
            ClusterError::Conflict(format!(
                "global network {name}: subnet {} has no free address",
                subnet.pool
            ))
        };
        if count == 0 {
            return Err(no_free());
        }
        let mut misses = 0;
        let mut scans = 0;
        loop {
            if misses >= TRIES_BEFORE_SCAN {
                if scans == 3 {
                    return Err(ClusterError::Contended(format!(
                        "global network {name}: no address won after {scans} reads of the \
                         claims"
                    )));
                }
                scans += 1;
                misses = 0;
                let prefix = format!("{PREFIX}ipam/{name}/");
                let r = c
                    .get(
                        prefix.as_str(),
                        Some(GetOptions::new().with_prefix().with_keys_only()),
                    )
                    .await?;
                let taken: std::collections::HashSet<IpAddr> = r
                    .kvs()
                    .iter()
                    .filter_map(|kv| {
                        std::str::from_utf8(kv.key())
                            .ok()?
                            .strip_prefix(&prefix)?
                            .parse()
                            .ok()
                    })
                    .collect();
                let from = self.cursor(name, count, None);
                let free = (0..count)
                    .map(|k| (from + k) % count)
                    .find(|i| host_at(subnet, *i).is_some_and(|a| !taken.contains(&a)))
                    .ok_or_else(no_free)?;
                self.cursor(name, count, Some(free));
            }
            let i = self.cursor(name, count, None);
            let Some(ip) = host_at(subnet, i) else {
                misses += 1;
                continue;
            };
            let k = key_address(name, ip);
            let txn = Txn::new()
                .when([
                    Compare::create_revision(k.as_str(), CompareOp::Equal, 0),
                    Compare::create_revision(owner.as_str(), CompareOp::Equal, 0),
                ])
                .and_then([
                    TxnOp::put(k.as_str(), rec, None),
                    TxnOp::put(owner.as_str(), ip.to_string(), None),
                ])
                .or_else([TxnOp::get(owner.as_str(), None)]);
            let r = c.txn(txn).await?;
            if r.succeeded() {
                return Ok(Some(cidr(ip)));
            }
            // Another call for this endpoint won meanwhile: its address.
            let mine = r.op_responses().into_iter().find_map(|o| match o {
                TxnOpResponse::Get(g) => g.kvs().first().and_then(|kv| held(kv.value())),
                _ => None,
            });
            if let Some(ip) = mine {
                return Ok(Some(cidr(ip)));
            }
            misses += 1;
        }
    }

    /// The offset this host tries next in global network `name` (a subnet
    /// of `count` addresses), moving the cursor on past it; with `set`,
    /// the cursor is put there first.
    fn cursor(&self, name: &str, count: u32, set: Option<u32>) -> u32 {
        let mut cursors = self.cursors.lock().unwrap();
        let c = cursors
            .entry(name.to_string())
            .or_insert_with(|| first_cursor(&self.host, count));
        if let Some(s) = set {
            *c = s;
            return s;
        }
        let i = *c % count;
        *c = (i + 1) % count;
        i
    }

    /// Give an address back, if endpoint `id` holds it.
    pub fn release_address(&self, n: &Network, id: &str, addr: IpAddr) -> Result<(), ClusterError> {
        let k = key_address(&n.name, addr);
        let owner = key_owner(&n.name, &self.host, id);
        let rec = json(&AddressRecord {
            host: self.host.clone(),
            endpoint: id.into(),
        });
        self.block_on(retrying(|| async {
            let txn = Txn::new()
                .when([Compare::value(k.as_str(), CompareOp::Equal, rec.as_str())])
                .and_then([
                    TxnOp::delete(k.as_str(), None),
                    TxnOp::delete(owner.as_str(), None),
                ]);
            self.kv().txn(txn).await?;
            Ok(())
        }))
    }

    /// The key and record of endpoint `e` of global network `n` with DNS
    /// names `names`; None for a network that is not VXLAN.
    fn endpoint_record(
        &self,
        n: &Network,
        e: &Endpoint,
        names: Vec<String>,
    ) -> Option<(String, String)> {
        let NetworkKind::Vxlan { vni } = n.kind else {
            return None;
        };
        let k = key_endpoint(&n.name, &self.host, &e.id);
        let v = json(&EndpointRecord {
            network: n.name.clone(),
            host: self.host.clone(),
            id: e.id.clone(),
            mac: e.mac,
            ipv4: e.ipv4.map(|c| c.addr),
            ipv6: e.ipv6.map(|c| c.addr),
            vni,
            vtep: self.vtep,
            names,
        });
        Some((k, v))
    }

    /// Publish endpoint `e` of global network `n` under this host's lease
    /// (without names: [`Cluster::publish_names`] adds them once the
    /// network's names table has them).
    pub fn publish(&self, n: &Network, e: &Endpoint) -> Result<(), ClusterError> {
        let Some((k, v)) = self.endpoint_record(n, e, Vec::new()) else {
            return Ok(());
        };
        self.published.lock().unwrap().insert(k.clone(), v.clone());
        self.block_on(retrying(|| async {
            let lease = self.lease.load(Ordering::Acquire);
            self.kv()
                .put(
                    k.as_str(),
                    v.as_str(),
                    Some(PutOptions::new().with_lease(lease)),
                )
                .await?;
            Ok(())
        }))
    }

    /// Give published endpoint `e` of global network `n` the DNS names
    /// `names`, when they changed. An endpoint not published (not yet, or
    /// withdrawn meanwhile) is left alone, in the store too: the put
    /// happens only while its key exists.
    pub(crate) fn publish_names(
        &self,
        n: &Network,
        e: &Endpoint,
        names: Vec<String>,
    ) -> Result<bool, ClusterError> {
        let Some((k, v)) = self.endpoint_record(n, e, names) else {
            return Ok(false);
        };
        let old = {
            let mut p = self.published.lock().unwrap();
            match p.get_mut(&k) {
                Some(have) if *have != v => std::mem::replace(have, v.clone()),
                _ => return Ok(false),
            }
        };
        let r = self.block_on(retrying(|| async {
            let lease = self.lease.load(Ordering::Acquire);
            let txn = Txn::new()
                .when([Compare::version(k.as_str(), CompareOp::Greater, 0)])
                .and_then([TxnOp::put(
                    k.as_str(),
                    v.as_str(),
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            self.kv().txn(txn).await?;
            Ok(())
        }));
        if r.is_err() {
            // Not put: the next pass tries again.
            if let Some(have) = self.published.lock().unwrap().get_mut(&k)
                && *have == v
            {
                *have = old;
            }
        }
        r.map(|()| true)
    }

    /// This host's keys that no stored endpoint (`stored`: endpoint ids)
    /// holds: the owner keys of its address claims in the global networks
    /// `networks` (with their modification revision; [`Cluster::forget`]
    /// takes the claim along) and published endpoints (revision 0). Left
    /// by a Docker call whose unit of work did not commit, or by a daemon
    /// killed inside one. With `legacy`, also the claims themselves, read
    /// from every claim of the networks (values included): claims made
    /// before owner keys existed have none; this read is O(the network's
    /// endpoints), the others O(this host's).
    pub(crate) fn unheld(
        &self,
        networks: &[String],
        stored: &std::collections::BTreeSet<String>,
        legacy: bool,
    ) -> Result<Vec<(String, i64)>, ClusterError> {
        let mut out: Vec<(String, i64)> = self
            .published
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{LIVE}endpoints/")))
            .filter(|(_, v)| {
                serde_json::from_str::<EndpointRecord>(v).is_ok_and(|r| !stored.contains(&r.id))
            })
            .map(|(k, _)| (k.clone(), 0))
            .collect();
        for name in networks.iter().filter(|_| legacy) {
            let prefix = format!("{PREFIX}ipam/{name}/");
            let r = self.block_on(retrying(|| async {
                Ok(self
                    .kv()
                    .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
                    .await?)
            }))?;
            for kv in r.kvs() {
                let Ok(a) = serde_json::from_slice::<AddressRecord>(kv.value()) else {
                    continue;
                };
                if a.host == self.host && !stored.contains(&a.endpoint) {
                    out.push((
                        String::from_utf8_lossy(kv.key()).into_owned(),
                        kv.mod_revision(),
                    ));
                }
            }
        }
        for name in networks {
            let owners = format!("{PREFIX}ipam-owners/{name}/{}/", self.host);
            let r = self.block_on(retrying(|| async {
                Ok(self
                    .kv()
                    .get(owners.as_str(), Some(GetOptions::new().with_prefix()))
                    .await?)
            }))?;
            for kv in r.kvs() {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                if key
                    .strip_prefix(&owners)
                    .is_some_and(|id| !stored.contains(id))
                {
                    out.push((key, kv.mod_revision()));
                }
            }
        }
        Ok(out)
    }

    /// Delete `key` (from [`Cluster::unheld`]) if it is still as it was.
    /// An owner key's claim goes with it, if the claim is still the
    /// owner's.
    pub(crate) fn forget(&self, key: &str, revision: i64) -> Result<(), ClusterError> {
        if revision == 0 {
            self.published.lock().unwrap().remove(key);
        }
        self.block_on(retrying(|| async {
            let txn = match revision {
                0 => Txn::new().and_then([TxnOp::delete(key, None)]),
                rev => Txn::new()
                    .when([Compare::mod_revision(key, CompareOp::Equal, rev)])
                    .and_then([TxnOp::get(key, None), TxnOp::delete(key, None)]),
            };
            let r = self.kv().txn(txn).await?;
            // ipam-owners/<name>/<host>/<id> → the address of the claim.
            let owner = key
                .strip_prefix(&format!("{PREFIX}ipam-owners/"))
                .and_then(|rest| {
                    let mut parts = rest.splitn(3, '/');
                    Some((parts.next()?, parts.next()?, parts.next()?))
                });
            let held = r.op_responses().into_iter().find_map(|o| match o {
                TxnOpResponse::Get(g) => g
                    .kvs()
                    .first()
                    .and_then(|kv| std::str::from_utf8(kv.value()).ok()?.parse::<IpAddr>().ok()),
                _ => None,
            });
            if let (Some((name, host, id)), Some(ip)) = (owner, held) {
                let k = key_address(name, ip);
                let rec = json(&AddressRecord {
                    host: host.into(),
                    endpoint: id.into(),
                });
                let txn = Txn::new()
                    .when([Compare::value(k.as_str(), CompareOp::Equal, rec.as_str())])
                    .and_then([TxnOp::delete(k.as_str(), None)]);
                self.kv().txn(txn).await?;
            }
            Ok(())
        }))
    }

    pub(crate) fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl)
    }

    /// Withdraw endpoint `e` of global network `n`.
    pub fn withdraw(&self, n: &Network, e: &Endpoint) -> Result<(), ClusterError> {
        let k = key_endpoint(&n.name, &self.host, &e.id);
        self.published.lock().unwrap().remove(&k);
        self.block_on(retrying(|| async {
            self.kv().delete(k.as_str(), None).await?;
            Ok(())
        }))
    }
}

/// What a key under the prefix means for the view.
fn apply_put(v: &mut View, key: &[u8], value: &[u8], lease: i64) {
    let key = String::from_utf8_lossy(key);
    let Some(rest) = key.strip_prefix(LIVE) else {
        return;
    };
    if let Some(host) = rest.strip_prefix("members/") {
        match serde_json::from_slice::<MemberRecord>(value) {
            Ok(m) => {
                v.members.insert(host.to_string(), (m, lease));
            }
            Err(e) => tracing::warn!(%key, error = %e, "unreadable member record"),
        }
    } else if rest.starts_with("endpoints/") {
        match serde_json::from_slice::<EndpointRecord>(value) {
            Ok(r) => {
                v.endpoints.insert(key.into_owned(), r);
            }
            Err(e) => tracing::warn!(%key, error = %e, "unreadable endpoint record"),
        }
    }
}

fn apply_delete(v: &mut View, key: &[u8]) {
    let key = String::from_utf8_lossy(key);
    let Some(rest) = key.strip_prefix(LIVE) else {
        return;
    };
    if let Some(host) = rest.strip_prefix("members/") {
        v.members.remove(host);
    } else if rest.starts_with("endpoints/") {
        v.endpoints.remove(key.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_etcd_members() {
        assert_eq!(
            endpoints_of("etcd://10.0.0.1:2379,h2:2379").unwrap(),
            (
                vec!["http://10.0.0.1:2379".to_string(), "http://h2:2379".into()],
                false
            )
        );
        assert_eq!(
            endpoints_of("etcds://h1:2379").unwrap(),
            (vec!["https://h1:2379".to_string()], true)
        );
        for bad in [
            "http://h:1",
            "etcds://",
            "etcd://",
            "etcd://h",
            "etcd://h:1,,h:2",
            "etcd://h:1/x",
        ] {
            assert!(endpoints_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_skip_network_broadcast_and_gateway() {
        let s = Subnet {
            pool: Cidr::parse_prefix("10.1.2.0/29").unwrap(),
            gateway: Some("10.1.2.1".parse().unwrap()),
            address_space: String::new(),
        };
        assert_eq!(host_count(&s), 6);
        let h: Vec<Option<String>> = (0..6)
            .map(|i| host_at(&s, i).map(|a| a.to_string()))
            .collect();
        assert_eq!(
            h,
            [
                None,
                Some("10.1.2.2".into()),
                Some("10.1.2.3".into()),
                Some("10.1.2.4".into()),
                Some("10.1.2.5".into()),
                Some("10.1.2.6".into())
            ]
        );
        for len in [31, 32] {
            let s = Subnet {
                pool: Cidr::parse_prefix(&format!("10.1.2.0/{len}")).unwrap(),
                gateway: None,
                address_space: String::new(),
            };
            assert_eq!(host_count(&s), 0, "/{len}");
        }
    }

    #[test]
    fn hosts_start_allocating_at_different_offsets() {
        let starts: std::collections::BTreeSet<u32> = ["ha", "hb", "hc", "hd"]
            .iter()
            .map(|h| first_cursor(h, 65534))
            .collect();
        assert_eq!(starts.len(), 4, "{starts:?}");
        assert!(starts.iter().all(|s| *s < 65534));
        assert_eq!(first_cursor("ha", 65534), first_cursor("ha", 65534));
        assert_eq!(first_cursor("ha", 0), 0);
    }

    #[test]
    fn the_view_follows_puts_and_deletes() {
        let mut v = View::default();
        let m = json(&MemberRecord {
            host: "a".into(),
            vtep: "10.0.0.1".parse().unwrap(),
            joined: 1,
        });
        apply_put(&mut v, b"/rvswitch/live/members/a", m.as_bytes(), 7);
        assert_eq!(v.members["a"].1, 7);
        let e = EndpointRecord {
            network: "n".into(),
            host: "a".into(),
            id: "e1".into(),
            mac: MacAddr::local(1),
            ipv4: None,
            ipv6: None,
            vni: 5,
            vtep: "10.0.0.1".parse().unwrap(),
            names: vec!["web".into()],
        };
        let k = b"/rvswitch/live/endpoints/n/a/e1";
        apply_put(&mut v, k, json(&e).as_bytes(), 7);
        apply_put(&mut v, b"/rvswitch/live/endpoints/n/a/bad", b"{", 7);
        assert_eq!(v.endpoints.len(), 1);
        apply_delete(&mut v, k);
        apply_delete(&mut v, b"/rvswitch/live/members/a");
        assert!(v.endpoints.is_empty() && v.members.is_empty());
    }
}
