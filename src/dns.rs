//! The embedded DNS service of the daemon: takes the queries the data plane
//! punts (UDP and TCP to port 53 of a gateway address,
//! `rvs_switch::router::punt`; TCP in [`tcp`]),
//! answers a network's own names from the current [`rvs_dns::Zone`], asks
//! the host's resolvers for everything else, and posts each answer back to
//! worker 0, which sends it from the gateway.
//!
//! Owns: the punt queue's receiving end, the upstream sockets (a fresh UDP
//! socket per upstream query, so its source port is random; TCP when the
//! answer was truncated), the cache and the counters. Never: blocking a
//! worker (the queue is bounded and the worker only `try_send`s), DNS
//! parsing (that is `rvs-dns`, over hickory-proto).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rvs_dns::{Cache, Outcome, Pending, Reject, Transport, UpstreamReply, Zone};
use rvs_switch::router::{Punted, UdpReply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc};

use crate::daemon::control::Control;
use crate::daemon::names::NameService;

mod tcp;

pub use tcp::{IDLE as TCP_IDLE, MAX_CONNECTIONS as TCP_MAX_CONNECTIONS};

/// The port the gateways answer on.
const DNS_PORT: u16 = rvs_switch::router::punt::DNS_PORT;

/// Queries waiting for the DNS task, and TCP segments waiting for the
/// TCP task (each its own queue); beyond this the worker drops them
/// (`dns_punt_full`).
pub const QUEUE: usize = 1024;
/// Forwarded queries in flight at once; more wait in the queue.
pub const IN_FLIGHT: usize = 256;
/// Cached upstream answers.
pub const CACHE_ENTRIES: usize = 4096;
/// The resolver configuration read at start when no upstream is given.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// `rvswitch daemon` options of the embedded DNS.
#[derive(Debug, Clone, clap::Args)]
pub struct DnsArgs {
    /// Do not answer DNS on gateway addresses (queries to port 53 of a
    /// gateway then get ICMP port unreachable).
    #[arg(long)]
    pub no_dns: bool,
    /// Resolver for names that are not a network's own (repeatable;
    /// ADDRESS or ADDRESS:PORT). Default: the nameservers of
    /// /etc/resolv.conf at start.
    #[arg(long = "dns-upstream", value_name = "ADDRESS", value_parser = parse_upstream)]
    pub upstream: Vec<SocketAddr>,
    /// Seconds to wait for each upstream resolver.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=30))]
    pub dns_timeout_secs: u64,
}

impl Default for DnsArgs {
    fn default() -> Self {
        DnsArgs {
            no_dns: false,
            upstream: Vec::new(),
            dns_timeout_secs: 2,
        }
    }
}

fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("{s:?} is not an address or address:port"))
}

/// What the DNS service counted (shown in `stats` as `dns_*`).
#[derive(Debug, Default)]
pub struct Counters {
    pub queries: AtomicU64,
    pub answered_local: AtomicU64,
    pub cache_hits: AtomicU64,
    pub forwarded: AtomicU64,
    pub upstream_failures: AtomicU64,
    pub malformed: AtomicU64,
    pub ignored: AtomicU64,
    pub reply_failures: Arc<AtomicU64>,
    /// TCP connections accepted.
    pub tcp_connections: AtomicU64,
    /// Queries received over TCP (counted in `queries` too).
    pub tcp_queries: AtomicU64,
    /// Connections refused: every socket of the network was busy.
    pub tcp_refused: AtomicU64,
    /// Connections closed for being idle.
    pub tcp_idle_closed: AtomicU64,
    /// Connections reset for a length prefix no DNS message has.
    pub tcp_malformed: AtomicU64,
    /// Segments dropped: to a network's ninth gateway address, or to a
    /// client whose MAC is unknown.
    pub tcp_dropped: AtomicU64,
}

/// The service's state shared with the control plane.
pub struct Dns {
    zone: RwLock<Arc<Zone>>,
    cache: Mutex<Cache>,
    pub counters: Counters,
    upstream: Vec<SocketAddr>,
    timeout: Duration,
}

impl NameService for Dns {
    /// Replace the names (the control plane's reconcile calls this).
    fn set_zone(&self, z: Zone) {
        *self.zone.write().expect("zone lock") = Arc::new(z);
    }

    fn reply_failures(&self) -> Arc<AtomicU64> {
        self.counters.reply_failures.clone()
    }

    /// The counters by their `stats` names.
    fn counter_values(&self) -> Vec<(&'static str, u64)> {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("dns_queries", g(&c.queries)),
            ("dns_answered_local", g(&c.answered_local)),
            ("dns_cache_hits", g(&c.cache_hits)),
            ("dns_forwarded", g(&c.forwarded)),
            ("dns_upstream_failures", g(&c.upstream_failures)),
            ("dns_malformed", g(&c.malformed)),
            ("dns_ignored", g(&c.ignored)),
            ("dns_reply_failures", g(&c.reply_failures)),
            ("dns_tcp_connections", g(&c.tcp_connections)),
            ("dns_tcp_queries", g(&c.tcp_queries)),
            ("dns_tcp_refused", g(&c.tcp_refused)),
            ("dns_tcp_idle_closed", g(&c.tcp_idle_closed)),
            ("dns_tcp_malformed", g(&c.tcp_malformed)),
            ("dns_tcp_dropped", g(&c.tcp_dropped)),
        ]
    }
}

impl Dns {
    fn zone(&self) -> Arc<Zone> {
        self.zone.read().expect("zone lock").clone()
    }

    pub fn upstream(&self) -> &[SocketAddr] {
        &self.upstream
    }
}

/// Start the service on the current Tokio runtime: install the punt sink
/// on worker 0 and give `control` the names' receiver. `None` when
/// `--no-dns`.
pub fn start(control: Arc<Control>, args: &DnsArgs) -> Option<Arc<Dns>> {
    if args.no_dns {
        return None;
    }
    let upstream = if args.upstream.is_empty() {
        let text = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
        rvs_dns::resolv_conf_servers(&text)
    } else {
        args.upstream.clone()
    };
    if upstream.is_empty() {
        tracing::warn!(
            "no upstream resolver (none in {RESOLV_CONF}, no --dns-upstream): \
             only the networks' own names are answered"
        );
    }
    let dns = Arc::new(Dns {
        zone: RwLock::new(Arc::new(Zone::new())),
        cache: Mutex::new(Cache::new(CACHE_ENTRIES)),
        counters: Counters::default(),
        upstream,
        timeout: Duration::from_secs(args.dns_timeout_secs),
    });
    let (tx, rx) = mpsc::channel::<Punted>(QUEUE);
    let (tcp_tx, tcp_rx) = mpsc::channel::<Punted>(QUEUE);
    let sink: rvs_switch::router::PuntSink = Box::new(move |p| {
        let q = match p.transport {
            rvs_switch::router::Transport::Udp => &tx,
            rvs_switch::router::Transport::Tcp => &tcp_tx,
        };
        q.try_send(p).map_err(|e| match e {
            mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
        })
    });
    if let Err(e) = control.set_dns_punt(Some(sink)) {
        tracing::error!(error = %e, "cannot install the DNS punt path; DNS is off");
        return None;
    }
    control.set_dns(dns.clone());
    tracing::info!(upstream = ?dns.upstream, "embedded DNS answering on gateway addresses (UDP and TCP)");
    tokio::spawn(serve(control.clone(), dns.clone(), rx));
    tokio::spawn(tcp::serve(control, dns.clone(), tcp_rx));
    Some(dns)
}

/// What became of one query.
enum Step {
    /// Answer with these bytes now.
    Now(Vec<u8>),
    /// Ask the upstream resolvers ([`forward_answer`]).
    Forward(Pending),
    /// Dropped (malformed, or not a query), counted.
    Dropped,
}

/// Take one query of name scope `net` (domain and VLAN) that came over `t`: answered from the
/// network's names or the cache, forwarded, or dropped; counted.
fn step(dns: &Dns, net: rvs_dns::NetId, bytes: &[u8], t: Transport) -> Step {
    let c = &dns.counters;
    c.queries.fetch_add(1, Ordering::Relaxed);
    let zone = dns.zone();
    let out = {
        let mut cache = dns.cache.lock().expect("cache lock");
        rvs_dns::handle(&zone, net, bytes, t, &mut cache, Instant::now())
    };
    match out {
        Outcome::Answer(bytes) => {
            c.answered_local.fetch_add(1, Ordering::Relaxed);
            Step::Now(bytes)
        }
        Outcome::Cached(bytes) => {
            c.cache_hits.fetch_add(1, Ordering::Relaxed);
            Step::Now(bytes)
        }
        Outcome::Forward(pending) => {
            c.forwarded.fetch_add(1, Ordering::Relaxed);
            Step::Forward(pending)
        }
        Outcome::Malformed => {
            c.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(len = bytes.len(), ?t, "malformed DNS query dropped");
            Step::Dropped
        }
        Outcome::Ignored => {
            c.ignored.fetch_add(1, Ordering::Relaxed);
            Step::Dropped
        }
    }
}

/// The client's answer to a forwarded query: the upstream's (cached), or
/// SERVFAIL when none answered.
async fn forward_answer(dns: &Dns, pending: &Pending) -> Vec<u8> {
    match forward(dns, pending).await {
        Some(r) => {
            dns.cache
                .lock()
                .expect("cache lock")
                .put(pending, &r, Instant::now());
            pending.answer(&r)
        }
        None => {
            dns.counters
                .upstream_failures
                .fetch_add(1, Ordering::Relaxed);
            pending.servfail()
        }
    }
}

async fn serve(control: Arc<Control>, dns: Arc<Dns>, mut rx: mpsc::Receiver<Punted>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(p) = rx.recv().await {
        match step(
            &dns,
            rvs_dns::net_id(p.domain.0, p.vid),
            &p.payload,
            Transport::Udp,
        ) {
            Step::Now(bytes) => send(&control, &p, bytes),
            Step::Forward(pending) => {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (control, dns) = (control.clone(), dns.clone());
                tokio::spawn(async move {
                    let bytes = forward_answer(&dns, &pending).await;
                    send(&control, &p, bytes);
                    drop(permit);
                });
            }
            Step::Dropped => {}
        }
    }
}

fn send(control: &Control, p: &Punted, payload: Vec<u8>) {
    control.post_dns_reply(UdpReply {
        domain: p.domain,
        vid: p.vid,
        client_mac: p.client_mac,
        client: p.client,
        server: p.server,
        payload,
    });
}

/// Ask each upstream in turn (UDP, then TCP if truncated) until one
/// answers within the timeout.
async fn forward(dns: &Dns, p: &Pending) -> Option<UpstreamReply> {
    for up in &dns.upstream {
        let id = rvs_dns::random_id();
        let r = tokio::time::timeout(dns.timeout, ask_udp(*up, p, id)).await;
        match r {
            Ok(Ok(r)) => return Some(r),
            Ok(Err(Some(Reject::Truncated))) => {
                let id = rvs_dns::random_id();
                if let Ok(Some(r)) = tokio::time::timeout(dns.timeout, ask_tcp(*up, p, id)).await {
                    return Some(r);
                }
            }
            Ok(Err(_)) | Err(_) => {
                tracing::debug!(upstream = %up, name = %p.name(), "upstream resolver did not answer");
            }
        }
    }
    None
}

/// One UDP exchange: `Err(Some(Truncated))` asks for TCP, `Err(None)` is an
/// I/O failure. Replies with another id or question are skipped.
async fn ask_udp(up: SocketAddr, p: &Pending, id: u16) -> Result<UpstreamReply, Option<Reject>> {
    let bind: SocketAddr = if up.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(bind).await.map_err(|_| None)?;
    s.connect(up).await.map_err(|_| None)?;
    s.send(&p.upstream_query(id)).await.map_err(|_| None)?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = s.recv(&mut buf).await.map_err(|_| None)?;
        match p.check_upstream(id, &buf[..n], true) {
            Ok(r) => return Ok(r),
            Err(Reject::Truncated) => return Err(Some(Reject::Truncated)),
            Err(_) => continue,
        }
    }
}

async fn ask_tcp(up: SocketAddr, p: &Pending, id: u16) -> Option<UpstreamReply> {
    let mut s = TcpStream::connect(up).await.ok()?;
    let q = p.upstream_query(id);
    let mut msg = Vec::with_capacity(q.len() + 2);
    msg.extend_from_slice(&(q.len() as u16).to_be_bytes());
    msg.extend_from_slice(&q);
    s.write_all(&msg).await.ok()?;
    let len = s.read_u16().await.ok()? as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await.ok()?;
    p.check_upstream(id, &buf, false).ok()
}
