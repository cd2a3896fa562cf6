//! The VTEP port: a VXLAN (RFC 7348) tunnel endpoint whose underlay is a
//! kernel UDP socket bound to (local address, port 4789 by default), usable
//! as an ordinary switch port for the bridge domain that carries its VNI.
//!
//! Receive: `recvmmsg` straight into pool frames; each datagram's VXLAN
//! header is checked (I flag, VNI known) and stripped in place, the inner
//! source MAC is learned against the sender's address (flood-and-learn), and
//! the VNI and remote VTEP are left in the headroom as an
//! [`rvs_switch::vxlan::RxMeta`] for a pipeline that wants them. The domain
//! FDB learns the station on this port as on any other.
//!
//! Transmit: the VXLAN header goes into the headroom (no payload copy); the
//! destination comes from the port's [`VtepTable`]: a learned or static
//! remote MAC goes to its VTEP, everything else (broadcast, multicast,
//! unknown unicast) is head-end replicated to the flood list (and the
//! multicast group) as several `sendmmsg` messages over the same bytes.
//! ARP requests and Neighbor Solicitations for an address the control plane
//! has given the port (a remote endpoint's, with its MAC) are not
//! replicated at all: the port answers them itself and hands the answer to
//! the switch at its next receive burst, as if the remote had sent it
//! (ARP/ND suppression, `suppress.rs`).
//! TCP super-frames from TAP ports are segmented (`gso.rs`) into headers in
//! a scratch arena plus slices of the super-frame; partial checksums are
//! completed. Frames that would exceed the underlay MTU are dropped and
//! counted. With `tx_sockets > 0` the port sends from that many extra
//! sockets on kernel-chosen ports, picked by the inner flow hash, which
//! gives ECMP its entropy (the kernel writes the outer headers, so the
//! source port is the only knob); with 0 it sends from the bound port.
//!
//! Owns: its sockets, the VTEP table of its VNI, its counters. Never:
//! blocking, touching frames of other VNIs, configuring links or routes.

mod suppress;
mod sys;
mod tx;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rvs_switch::fdb::{FdbConfig, Learned};
use rvs_switch::mac::MacAddr;
use rvs_switch::vxlan::{self, RemoteEntryInfo, RxMeta, Vni, VniConfig, VtepTable, VtepTableError};
use rvs_switch::{BATCH_MAX, Batch, DropReason, PacketPool, PktBuf, Port, PortError, TxDone};

use crate::offload::MAX_HEADERS;
use tx::{IovAt, Msg};

/// Transmit sockets a port opens by default: four source ports, so ECMP in
/// the underlay has four paths to spread a VTEP pair's flows over.
pub const DEFAULT_TX_SOCKETS: usize = 4;

/// How a VTEP port is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VtepConfig {
    /// The port's name in the switch.
    pub name: String,
    /// Local underlay address the socket binds to (the outer source).
    pub local: IpAddr,
    /// UDP port, 4789 by default (also the destination port of every send).
    pub port: u16,
    /// The VNI of the bridge domain this port is a member of.
    pub vni: Vni,
    /// Remote VTEPs for head-end replication.
    pub flood: Vec<IpAddr>,
    /// Underlay multicast group for BUM traffic (the port joins it; the
    /// socket then binds to the wildcard address to receive it).
    pub group: Option<IpAddr>,
    /// Interface index the group is joined on (0: the kernel's choice).
    pub group_ifindex: u32,
    /// Outer TTL / hop limit; `None` keeps the kernel's (64).
    pub ttl: Option<u8>,
    /// Outer TOS / traffic class.
    pub tos: u8,
    /// Outer don't-fragment (path MTU discovery "do"); clear lets the kernel
    /// fragment the outer packet.
    pub df: bool,
    /// IP MTU of the underlay path; inner frames longer than it allows
    /// (see [`vxlan::max_inner_frame`]) are dropped and counted.
    pub underlay_mtu: usize,
    /// Aging and limits of learned remote MACs.
    pub remote_fdb: FdbConfig,
    /// Extra transmit sockets for source-port entropy (0: send from `port`).
    pub tx_sockets: usize,
    /// Remote endpoints' addresses (IPv4 and IPv6) and MACs: ARP requests
    /// and Neighbor Solicitations for them are answered by the port instead
    /// of being flooded (ARP/ND suppression, see `vtep/suppress.rs`).
    pub neighbors: Vec<(IpAddr, MacAddr)>,
}

impl VtepConfig {
    /// Port 4789, no flood list, kernel TTL, DF clear, 1500-byte underlay,
    /// four transmit sockets for source-port entropy.
    pub fn new(name: &str, local: IpAddr, vni: Vni) -> Self {
        VtepConfig {
            name: name.to_string(),
            local,
            port: vxlan::UDP_PORT,
            vni,
            flood: Vec::new(),
            group: None,
            group_ifindex: 0,
            ttl: None,
            tos: 0,
            df: false,
            underlay_mtu: 1500,
            remote_fdb: FdbConfig::default(),
            tx_sockets: DEFAULT_TX_SOCKETS,
            neighbors: Vec::new(),
        }
    }
}

/// Why a VTEP port could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VtepError {
    #[error("VTEP {name}: {step} failed: {source}")]
    Socket {
        name: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("VTEP {name}: {source}")]
    Table {
        name: String,
        #[source]
        source: VtepTableError,
    },
    #[error("VTEP {name}: {reason}")]
    Config { name: String, reason: String },
}

macro_rules! vtep_counters {
    ($($(#[$m:meta])* $f:ident,)*) => {
        /// Live counters of one VTEP port, shared with [`VtepHandle`].
        #[derive(Debug, Default)]
        pub struct VtepCounters { $($(#[$m])* pub $f: AtomicU64,)* }
        /// A copy of [`VtepCounters`].
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
        pub struct VtepStats { $($(#[$m])* pub $f: u64,)* }
        impl VtepCounters {
            pub fn snapshot(&self) -> VtepStats {
                VtepStats { $($f: self.$f.load(Ordering::Relaxed),)* }
            }
            fn add(&self, s: &VtepStats) {
                $(if s.$f != 0 { self.$f.fetch_add(s.$f, Ordering::Relaxed); })*
            }
        }
    };
}

vtep_counters! {
    /// Datagrams decapsulated and handed to the switch.
    rx_decap,
    /// Datagrams dropped: I flag clear / VNI unknown / too short or truncated.
    rx_no_i_flag,
    rx_unknown_vni,
    rx_truncated,
    /// Bursts cut short because the pool had no frame.
    rx_no_buffer,
    /// Remote MACs learned, moved to another VTEP, or not learned (limits).
    learn_new,
    learn_move,
    learn_limit,
    /// Remote MACs aged out.
    age_expired,
    /// Datagrams the kernel took, and head-end copies among them beyond the first.
    tx_datagrams,
    tx_replicas,
    /// Frames dropped: over the underlay MTU / nowhere to send / offload not doable.
    tx_oversize,
    tx_no_remote,
    tx_bad_offload,
    /// Super-frames segmented, and partial checksums completed.
    tx_gso_segmented,
    tx_csum_completed,
    /// Datagrams the kernel refused (socket buffer full, no route, ...).
    tx_errors,
    /// ARP requests / Neighbor Solicitations for a known remote endpoint
    /// answered by the port instead of being replicated to the underlay.
    arp_suppressed,
    nd_suppressed,
}

/// A control-plane request, applied by the port at its next receive burst.
#[derive(Debug)]
enum Command {
    AddStatic(MacAddr, IpAddr),
    Remove(MacAddr),
    AddFlood(IpAddr),
    RemoveFlood(IpAddr),
    AddNeighbor(IpAddr, MacAddr),
    RemoveNeighbor(IpAddr),
    Entries(mpsc::Sender<Vec<RemoteEntryInfo>>),
}

/// The control plane's handle on a port that lives inside a switch: static
/// remote entries, the flood list, the learned entries and the counters.
#[derive(Debug, Clone)]
pub struct VtepHandle {
    tx: mpsc::Sender<Command>,
    counters: Arc<VtepCounters>,
    vni: Vni,
}

impl VtepHandle {
    /// Queue a static remote entry (applied at the port's next poll).
    pub fn add_static(&self, mac: MacAddr, remote: IpAddr) {
        let _ = self.tx.send(Command::AddStatic(mac, remote));
    }
    pub fn remove(&self, mac: MacAddr) {
        let _ = self.tx.send(Command::Remove(mac));
    }
    pub fn add_flood(&self, remote: IpAddr) {
        let _ = self.tx.send(Command::AddFlood(remote));
    }
    pub fn remove_flood(&self, remote: IpAddr) {
        let _ = self.tx.send(Command::RemoveFlood(remote));
    }
    /// Answer ARP/ND for `ip` with `mac` (a remote endpoint's address).
    pub fn add_neighbor(&self, ip: IpAddr, mac: MacAddr) {
        let _ = self.tx.send(Command::AddNeighbor(ip, mac));
    }
    pub fn remove_neighbor(&self, ip: IpAddr) {
        let _ = self.tx.send(Command::RemoveNeighbor(ip));
    }
    /// The remote entries, as the port sees them at its next poll (`None`
    /// if the port is not polled within `wait`).
    pub fn entries(&self, wait: Duration) -> Option<Vec<RemoteEntryInfo>> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(Command::Entries(tx)).ok()?;
        rx.recv_timeout(wait).ok()
    }
    pub fn stats(&self) -> VtepStats {
        self.counters.snapshot()
    }
    pub fn vni(&self) -> Vni {
        self.vni
    }
}

/// A VTEP port; give it to `Switch::add_port` as a member of the domain
/// whose VNI it carries.
/// The receive socket of one (network namespace, bind address, UDP port),
/// shared by the VTEP ports of every VNI on it — the kernel delivers all
/// VNIs to the one socket bound to 4789, as it does for its own `vxlan`
/// devices. A port that receives a datagram of another member's VNI parks
/// it in that member's stash; the member takes it at its next `rx_burst`.
/// All members live on one worker thread (they share its packet pool).
struct SharedRx {
    sock: OwnedFd,
    key: RxKey,
    thread: std::thread::ThreadId,
    stash: Mutex<HashMap<Vni, VecDeque<(PktBuf, IpAddr)>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RxKey {
    netns: u64,
    bind: SocketAddr,
}

/// Datagrams parked for one VNI at most; more are dropped and counted.
const STASH_MAX: usize = 256;

/// Live shared receive sockets (weak: the last member closes the socket).
static SHARED_RX: Mutex<Vec<Weak<SharedRx>>> = Mutex::new(Vec::new());

fn current_netns() -> u64 {
    crate::netns::netns_inode(std::path::Path::new("/proc/thread-self/ns/net")).unwrap_or(0)
}

impl SharedRx {
    /// Join the socket for `bind` in this namespace for `vni`, opening it if
    /// nobody has.
    fn join(cfg: &VtepConfig, bind: SocketAddr) -> Result<Arc<SharedRx>, VtepError> {
        let key = RxKey {
            netns: current_netns(),
            bind,
        };
        let mut all = SHARED_RX.lock().expect("vtep registry lock");
        all.retain(|w| w.strong_count() > 0);
        let found = all.iter().filter_map(Weak::upgrade).find(|s| s.key == key);
        let bad = |reason: String| VtepError::Config {
            name: cfg.name.clone(),
            reason,
        };
        let shared = match found {
            Some(s) => {
                if s.thread != std::thread::current().id() {
                    return Err(bad(format!(
                        "the VTEP socket {bind} is served by another worker; put every \
                         VXLAN bridge domain on one worker"
                    )));
                }
                if s.stash.lock().expect("stash lock").contains_key(&cfg.vni) {
                    return Err(bad(format!(
                        "VNI {} already has a VTEP port on {bind}",
                        cfg.vni.get()
                    )));
                }
                s
            }
            None => {
                let s = Arc::new(SharedRx {
                    sock: sys::udp_socket(cfg, bind)?,
                    key,
                    thread: std::thread::current().id(),
                    stash: Mutex::new(HashMap::new()),
                });
                all.push(Arc::downgrade(&s));
                s
            }
        };
        if let Some(g) = cfg.group {
            sys::setup_group(&shared.sock, cfg, g, true)?;
        }
        shared
            .stash
            .lock()
            .expect("stash lock")
            .insert(cfg.vni, VecDeque::new());
        Ok(shared)
    }
}

pub struct VtepPort {
    name: String,
    rx: Arc<SharedRx>,
    tx_socks: Vec<OwnedFd>,
    port: u16,
    vni: Vni,
    max_inner: usize,
    table: VtepTable,
    counters: Arc<VtepCounters>,
    commands: mpsc::Receiver<Command>,
    handle: VtepHandle,
    born: Instant,
    aged_at: u32,
    // Transmit scratch, reused across bursts (see tx.rs).
    arena: Vec<[u8; vxlan::HEADER_LEN + MAX_HEADERS]>,
    spec: Vec<(IovAt, usize)>,
    iov: Vec<libc::iovec>,
    dsts: Vec<sys::SockAddr>,
    msgs: Vec<Msg>,
    sorted: Vec<Msg>,
    segs: Vec<(usize, usize, *const u8, usize)>,
    /// Remote endpoints' addresses → MAC, for ARP/ND suppression.
    neighbors: HashMap<IpAddr, MacAddr>,
    /// Answers written on the transmit path, handed to the switch at the
    /// next receive burst, with the VTEP the answering MAC lives behind.
    answers: VecDeque<(PktBuf, IpAddr)>,
}

/// Answers waiting for a receive burst at most; beyond, requests flood.
const ANSWERS_MAX: usize = 256;

// SAFETY: the raw pointers in the transmit scratch vectors (`iovec`,
// `IovAt::Pool`, segment payloads) are only meaningful during one
// `tx_burst` call and are rebuilt before each use; between calls they are
// never dereferenced, so moving the port to another thread is sound.
unsafe impl Send for VtepPort {}

impl VtepPort {
    /// Open the sockets (in the calling thread's network namespace) and set
    /// up the table for `cfg.vni`.
    pub fn open(cfg: &VtepConfig) -> Result<VtepPort, VtepError> {
        let name = cfg.name.clone();
        let bad = |reason: String| VtepError::Config {
            name: name.clone(),
            reason,
        };
        if cfg.local.is_unspecified() || cfg.local.is_multicast() {
            return Err(bad(format!("local address {} is not unicast", cfg.local)));
        }
        let v6 = cfg.local.is_ipv6();
        if cfg
            .flood
            .iter()
            .chain(&cfg.group)
            .any(|r| r.is_ipv6() != v6)
        {
            return Err(bad("flood list or group mixes address families".into()));
        }
        let max_inner = vxlan::max_inner_frame(cfg.underlay_mtu, v6);
        if max_inner < 64 || cfg.tx_sockets > 64 {
            return Err(bad(format!(
                "underlay MTU {} / {} tx sockets out of range",
                cfg.underlay_mtu, cfg.tx_sockets
            )));
        }
        // Receiving a group needs the wildcard bind; unicast stays on `local`.
        let bind_ip = match (cfg.group, v6) {
            (None, _) => cfg.local,
            (Some(_), false) => IpAddr::from([0u8; 4]),
            (Some(_), true) => IpAddr::from([0u8; 16]),
        };
        let rx = SharedRx::join(cfg, SocketAddr::new(bind_ip, cfg.port))?;
        let tx_socks = (0..cfg.tx_sockets)
            .map(|_| sys::udp_socket(cfg, SocketAddr::new(cfg.local, 0)))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(g) = cfg.group {
            for s in &tx_socks {
                sys::setup_group(s, cfg, g, false)?;
            }
        }
        let mut table = VtepTable::new();
        let vcfg = VniConfig {
            fdb: cfg.remote_fdb,
            flood: cfg.flood.clone(),
            group: cfg.group,
        };
        table
            .add_vni(cfg.vni, vcfg)
            .map_err(|source| VtepError::Table {
                name: name.clone(),
                source,
            })?;
        let (tx, commands) = mpsc::channel();
        let counters = Arc::new(VtepCounters::default());
        Ok(VtepPort {
            name,
            rx,
            tx_socks,
            port: cfg.port,
            vni: cfg.vni,
            max_inner,
            table,
            handle: VtepHandle {
                tx,
                counters: counters.clone(),
                vni: cfg.vni,
            },
            counters,
            commands,
            born: Instant::now(),
            aged_at: 0,
            arena: Vec::new(),
            spec: Vec::new(),
            iov: Vec::new(),
            dsts: Vec::new(),
            msgs: Vec::new(),
            sorted: Vec::new(),
            segs: Vec::new(),
            neighbors: cfg.neighbors.iter().copied().collect(),
            answers: VecDeque::new(),
        })
    }

    /// The control plane's handle (static entries, flood list, counters).
    pub fn handle(&self) -> VtepHandle {
        self.handle.clone()
    }

    /// The port's table, for callers that hold the port itself.
    pub fn table_mut(&mut self) -> &mut VtepTable {
        &mut self.table
    }

    /// The address the receive socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::local_addr(&self.rx.sock)
    }

    /// The source addresses the port sends from (the bound one alone when
    /// it has no extra transmit sockets).
    pub fn tx_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        if self.tx_socks.is_empty() {
            return Ok(vec![self.local_addr()?]);
        }
        self.tx_socks.iter().map(sys::local_addr).collect()
    }

    /// Hand one decapsulated frame of this VNI to the switch: learn its
    /// source against the remote VTEP, leave the metadata in the headroom.
    fn deliver(
        &mut self,
        pool: &mut PacketPool,
        batch: &mut Batch,
        mut b: PktBuf,
        remote: IpAddr,
        now: u32,
        st: &mut VtepStats,
    ) {
        let src = MacAddr(pool.data(&b)[6..12].try_into().unwrap());
        match self.table.learn(self.vni, src, remote, now) {
            Some(Learned::New) => st.learn_new += 1,
            Some(Learned::Moved { .. }) => st.learn_move += 1,
            Some(Learned::LimitPort | Learned::LimitDomain) => st.learn_limit += 1,
            _ => {}
        }
        RxMeta {
            vni: self.vni,
            remote,
        }
        .write(pool, &mut b);
        st.rx_decap += 1;
        batch.push(b).expect("at most batch.room() frames");
    }

    fn now_s(&self) -> u32 {
        self.born.elapsed().as_secs() as u32
    }

    /// Apply queued control-plane commands and, once a second, an aging step.
    fn apply_commands(&mut self) {
        let now = self.now_s();
        let vni = self.vni;
        while let Ok(c) = self.commands.try_recv() {
            // A refused command (bad address, table full) changes nothing;
            // the handle API is fire-and-forget, `entries` shows the result.
            let _ = match c {
                Command::AddStatic(m, r) => self.table.add_static(vni, m, r),
                Command::Remove(m) => self.table.remove(vni, m).map(drop),
                Command::AddFlood(r) => self.table.add_flood(vni, r),
                Command::RemoveFlood(r) => self.table.remove_flood(vni, r).map(drop),
                Command::AddNeighbor(ip, m) => {
                    self.neighbors.insert(ip, m);
                    Ok(())
                }
                Command::RemoveNeighbor(ip) => {
                    self.neighbors.remove(&ip);
                    Ok(())
                }
                Command::Entries(reply) => {
                    let _ = reply.send(self.table.entries(vni, now));
                    Ok(())
                }
            };
        }
        if now != self.aged_at {
            self.aged_at = now;
            let n = self.table.age_step(now, 256) as u64;
            if n > 0 {
                self.counters.age_expired.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

impl Port for VtepPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> Result<usize, PortError> {
        self.apply_commands();
        let mut st = VtepStats::default();
        let now = self.now_s();
        let mut pushed = 0;
        let rx = self.rx.clone();
        // Answers to suppressed requests, as if the remote had sent them.
        while !batch.is_full()
            && let Some((mut b, remote)) = self.answers.pop_front()
        {
            RxMeta {
                vni: self.vni,
                remote,
            }
            .write(pool, &mut b);
            batch.push(b).expect("not full");
            pushed += 1;
        }
        // Datagrams another member received for this VNI first.
        {
            let mut stash = rx.stash.lock().expect("stash lock");
            let mine = stash.get_mut(&self.vni).expect("registered at open");
            while !batch.is_full()
                && let Some((b, remote)) = mine.pop_front()
            {
                self.deliver(pool, batch, b, remote, now, &mut st);
                pushed += 1;
            }
        }
        let mut bufs: [Option<PktBuf>; BATCH_MAX] = std::array::from_fn(|_| None);
        let mut iov = [sys::iovec(std::ptr::null(), 0); BATCH_MAX];
        let mut k = 0;
        while k < batch.room().min(BATCH_MAX) {
            let Some(b) = pool.alloc() else {
                st.rx_no_buffer += 1;
                break;
            };
            let room = pool.tail_room_mut(&b);
            iov[k] = sys::iovec(room.as_mut_ptr(), room.len());
            bufs[k] = Some(b);
            k += 1;
        }
        let mut lens = [None; BATCH_MAX];
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut names: [libc::sockaddr_storage; BATCH_MAX] = unsafe { std::mem::zeroed() };
        let got = match k {
            0 => Ok(0),
            _ => sys::recv_batch(&rx.sock, &mut iov[..k], &mut lens, &mut names),
        };
        let mut others = None;
        for (i, slot) in bufs.iter_mut().take(k).enumerate() {
            let mut b = slot.take().expect("filled above");
            let arrived = matches!(got, Ok(n) if i < n);
            let from = sys::socket_addr(&names[i]).map(|a| a.ip());
            let (Some(len), Some(remote), true) = (lens[i], from, arrived) else {
                st.rx_truncated += u64::from(arrived);
                pool.free(b);
                continue;
            };
            pool.set_len(&mut b, len);
            let vni = match vxlan::pull_header(pool, &mut b) {
                Ok(v) if v == self.vni => v,
                Ok(v) => {
                    // Another member's VNI (or nobody's).
                    let stash = others.get_or_insert_with(|| rx.stash.lock().expect("stash lock"));
                    match stash.get_mut(&v) {
                        Some(q) if q.len() < STASH_MAX => q.push_back((b, remote)),
                        Some(_) => {
                            st.rx_no_buffer += 1;
                            pool.free(b);
                        }
                        None => {
                            st.rx_unknown_vni += 1;
                            pool.free(b);
                        }
                    }
                    continue;
                }
                r => {
                    match r {
                        Ok(_) => st.rx_unknown_vni += 1,
                        Err(DropReason::VxlanNoIFlag) => st.rx_no_i_flag += 1,
                        Err(_) => st.rx_truncated += 1,
                    }
                    pool.free(b);
                    continue;
                }
            };
            debug_assert_eq!(vni, self.vni);
            self.deliver(pool, batch, b, remote, now, &mut st);
            pushed += 1;
        }
        drop(others);
        self.counters.add(&st);
        match got {
            Err(e)
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Err(PortError::Io {
                    port: self.name.clone(),
                    op: "recvmmsg",
                    source: e,
                })
            }
            _ => Ok(pushed),
        }
    }

    fn tx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> TxDone {
        self.transmit(pool, batch)
    }

    fn poll_fd(&self) -> Option<i32> {
        Some(self.rx.sock.as_raw_fd())
    }

    /// The largest inner frame the underlay MTU allows: the switch drops
    /// longer ones as oversize before they get here (GSO super-frames pass
    /// and are segmented here).
    fn max_frame(&self) -> usize {
        self.max_inner
    }

    fn maintain(&mut self, _pool: &mut PacketPool) {
        self.apply_commands();
    }

    /// Answers to suppressed requests are due at once.
    fn wake_after(&self) -> Option<Duration> {
        (!self.answers.is_empty()).then_some(Duration::ZERO)
    }

    fn detach(&mut self, pool: &mut PacketPool) {
        self.answers.drain(..).for_each(|(b, _)| pool.free(b));
        let mut stash = self.rx.stash.lock().expect("stash lock");
        if let Some(q) = stash.remove(&self.vni) {
            q.into_iter().for_each(|(b, _)| pool.free(b));
        }
    }
}

impl Drop for VtepPort {
    fn drop(&mut self) {
        // Not detached (the switch went away with its pool): just stop
        // parking datagrams for this VNI.
        if let Ok(mut stash) = self.rx.stash.lock()
            && let Some(q) = stash.remove(&self.vni)
        {
            std::mem::forget(q);
        }
        std::mem::forget(std::mem::take(&mut self.answers));
    }
}

#[cfg(test)]
mod tests;
