//! The load balancer: services with a virtual IP (VIP) in a bridge domain,
//! spread over backends by Maglev consistent hashing of the flow
//! (`maglev.rs`), with the header rewrite in `nat.rs`.
//!
//! Design (see docs/architecture.md, "Load balancing"):
//! - The gateway answers ARP/ND for the VIP with its own MAC, so clients of
//!   the VIP's network send VIP traffic to the router, which hands it here
//!   (the hook in `router/lb.rs`). A VIP serves its own network, as
//!   Docker's VIPs do (and as its name resolves only there).
//! - Client and backends share the L2 network, so a backend's reply would
//!   go straight back to the client and bypass the router. The balancer
//!   therefore rewrites both ends: `client:cport → VIP:port` becomes
//!   `VIP:snat → backend:target`, and the backend's reply `backend:target →
//!   VIP:snat` (sent to the gateway MAC, the VIP's) becomes `VIP:port →
//!   client:cport`. The `snat` port comes from a bounded flow table
//!   ([`FLOWS_MAX`] flows, idle timeouts per protocol), which also keeps a
//!   flow on its backend while that backend is live.
//! - A new flow's backend is `table[hash(5-tuple)]`; when a backend leaves
//!   or fails its health check only the flows on it move (see
//!   `maglev.rs`); flows on other backends stay.
//! - Health checks (optional, per service): every `interval_ms` the gateway
//!   sends a TCP SYN from the VIP (ports [`PROBE_PORT_BASE`]`+i`, above
//!   every flow's port) to each backend's check port; a SYN-ACK marks the
//!   backend up (and is answered with a RST), no SYN-ACK for `timeout_ms`
//!   marks it down.
//!
//! Owns: services, their tables, the flow table, health state. Never: I/O,
//! allocation per packet (the flow slots are allocated with the first
//! service; the flow indexes grow, doubling, with a new flow now and then).

mod index;
pub mod maglev;
pub mod nat;

use std::net::IpAddr;

use hashbrown::HashMap;

use crate::config::DomainId;
use crate::counters::DropReason;
use crate::mac::MacAddr;

use index::Index;
use maglev::{NONE, Table, mix64};

/// Most flows the table holds (all services together).
pub const FLOWS_MAX: usize = 65536;
/// Flows the indexes hold before they first grow.
const INDEX_FIRST: usize = 1024;
/// Most backends of one service.
pub const BACKENDS_MAX: usize = 1000;
/// Services (one per VIP) at most: a flow key holds the service's slot
/// in 16 bits.
pub const SERVICES_MAX: usize = 65536;
/// Source ports of health probes: `PROBE_PORT_BASE + backend index`.
pub const PROBE_PORT_BASE: u16 = 64512;
/// Source ports of balanced flows: `SNAT_FIRST..PROBE_PORT_BASE`.
const SNAT_FIRST: u16 = 1024;
const SNAT_COUNT: u64 = (PROBE_PORT_BASE - SNAT_FIRST) as u64;
/// Ports tried for a new flow before it is refused.
const SNAT_TRIES: u64 = 64;
/// Idle time after which a flow is forgotten.
pub const UDP_IDLE_MS: u64 = 30_000;
pub const TCP_IDLE_MS: u64 = 300_000;
/// ... once a FIN or RST was seen.
pub const TCP_CLOSING_MS: u64 = 10_000;
/// Flow slots the sweep looks at per tick.
const SWEEP_BUDGET: usize = 4096;

/// A port a service offers: `proto` (6 TCP, 17 UDP) `port` on the VIP,
/// sent to `target` on the backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServicePort {
    pub proto: u8,
    pub port: u16,
    pub target: u16,
}

/// A TCP health check of every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    /// The backends' port to connect to.
    pub port: u16,
    pub interval_ms: u32,
    /// Without a SYN-ACK for this long a backend is down.
    pub timeout_ms: u32,
}

/// A service as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub domain: DomainId,
    pub vip: IpAddr,
    pub ports: Vec<ServicePort>,
    /// Of the VIP's family; each at most once.
    pub backends: Vec<IpAddr>,
    pub health: Option<HealthCheck>,
}

/// Why a set of services was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LbError {
    #[error("VIP {0} is given twice in bridge domain {1}")]
    DuplicateVip(IpAddr, DomainId),
    #[error("backend {0} is not of the family of VIP {1}")]
    Family(IpAddr, IpAddr),
    #[error("service {0}: backend {1} is given twice")]
    DuplicateBackend(IpAddr, IpAddr),
    #[error("service {0} has no ports")]
    NoPorts(IpAddr),
    #[error("service {0}: only TCP (6) and UDP (17) ports, not 0, are balanced")]
    BadPort(IpAddr),
    #[error("service {0} has more than {max} backends", max = BACKENDS_MAX)]
    TooManyBackends(IpAddr),
    #[error("VIP {0} is not a unicast address the gateway routes to")]
    BadVip(IpAddr),
    #[error("{0} VIPs to balance; a switch balances at most {max}", max = SERVICES_MAX)]
    TooManyServices(usize),
}

/// A backend as the data plane sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    pub addr: IpAddr,
    /// Receives new flows (always true without a health check).
    pub up: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    pub domain: DomainId,
    pub vip: IpAddr,
    pub backends: Vec<BackendStatus>,
    /// Flows in the flow table.
    pub flows: usize,
}

/// What to do with a packet to a VIP, decided by [`Lb::packet`] (which has
/// already rewritten it where it says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten to a backend: send it to that address (neighbor key) in
    /// the service's domain.
    ToBackend(u128),
    /// A backend's reply, rewritten to the client: send it to this MAC.
    ToClient(MacAddr),
    /// Not TCP/UDP (e.g. an echo request): the gateway's own handling.
    Local,
    /// A health probe's answer: consumed; `reset` asks to answer the
    /// SYN-ACK with a RST.
    Probe {
        reset: bool,
    },
    Drop(DropReason),
}

/// A health probe to send: SYN from the VIP to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub domain: DomainId,
    pub v6: bool,
    pub vip: u128,
    pub backend: u128,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
}

#[derive(Debug)]
struct Svc {
    cfg: Service,
    v6: bool,
    vip: u128,
    addrs: Vec<u128>,
    keys: Vec<u64>,
    up: Vec<bool>,
    last_ok_ms: Vec<u64>,
    table: Table,
    next_probe_ms: u64,
}

impl Svc {
    fn rebuild(&mut self) {
        let m = maglev::size_for(self.addrs.len());
        self.table = Table::build(m, &self.keys, &self.up, Some(&self.table));
    }
}

/// An established flow as [`Lb::established`] found it: its slot, its
/// backend's cached MAC (as [`MacAddr::to_u64`]), the VIP and the
/// backend's address.
#[derive(Debug, Clone, Copy)]
pub struct Established {
    slot: u32,
    pub mac: u64,
    vip: u128,
    to: u128,
}

/// A flow's key: the client's address, and its service, protocol and
/// ports packed in one word (`svc << 40 | proto << 32 | cport << 16 |
/// vport`), so the established path compares three words, not five
/// fields ([`SERVICES_MAX`] keeps `svc` in 16 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FwdKey {
    client: u128,
    rest: u64,
}

impl FwdKey {
    /// The key of packet `f` to service `svc`'s VIP.
    #[inline(always)]
    fn of(svc: u32, f: &nat::Flow) -> FwdKey {
        FwdKey {
            client: f.src,
            rest: (svc as u64) << 40
                | (f.proto as u64) << 32
                | (f.sport as u64) << 16
                | f.dport as u64,
        }
    }

    #[inline(always)]
    fn svc(&self) -> u32 {
        (self.rest >> 40) as u32
    }

    #[inline(always)]
    fn proto(&self) -> u8 {
        (self.rest >> 32) as u8
    }

    #[inline(always)]
    fn cport(&self) -> u16 {
        (self.rest >> 16) as u16
    }

    #[inline(always)]
    fn vport(&self) -> u16 {
        self.rest as u16
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RevKey {
    svc: u32,
    snat: u16,
    proto: u8,
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    key: FwdKey,
    backend: u16,
    target: u16,
    snat: u16,
    client_mac: MacAddr,
    last_ms: u64,
    closing: bool,
    used: bool,
    /// The checksum deltas of both rewrites, valid while `deltas_ok`
    /// (cleared whenever the backend or its port changes).
    deltas: nat::Deltas,
    deltas_ok: bool,
    /// The backend's MAC as the neighbor table gave it at generation
    /// `mac_gen` ([`NO_GEN`]: not cached; cleared with `deltas_ok`).
    mac: u64,
    mac_gen: u64,
}

/// A flow's `mac_gen` with no MAC cached.
const NO_GEN: u64 = u64::MAX;

/// The flow table: slots, and two indexes of slot numbers (`index.rs`)
/// hashed with [`flow_hash`] / [`rev_hash`] under the table's own
/// [`Seed`].
#[derive(Default)]
struct Flows {
    seed: Seed,
    fwd: Index,
    rev: Index,
    slots: Vec<Flow>,
    free: Vec<u32>,
    sweep_at: usize,
}

/// The indexes' hash key, drawn from the OS's randomness per flow table.
/// Clients choose their addresses and ports: under a hash anyone can
/// compute they could pick flows whose index homes collide and make every
/// probe walk one long run. The backend pick and the SNAT port stay on
/// the unkeyed hash ([`pick_hash`]), so a flow keeps its backend and port
/// across restarts and hosts.
#[derive(Debug, Clone, Copy)]
struct Seed(u64);

impl Default for Seed {
    fn default() -> Self {
        use std::hash::BuildHasher;
        Seed(std::hash::RandomState::new().hash_one(0x5eed_u64))
    }
}

impl std::fmt::Debug for Flows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flows").field("len", &self.len()).finish()
    }
}

impl Flows {
    fn reserve(&mut self) {
        if self.slots.capacity() == 0 {
            // The indexes grow with the flows (doubling on a new flow's
            // insert, a few times up to FLOWS_MAX): sized for FLOWS_MAX
            // from the start, 4,096 flows were spread over a table far
            // larger than the L2 cache, and most lookups missed it
            // (`lb/vip_tcp` 12.2 → 13.9 Mpps when sized to the flows).
            self.fwd.reserve(INDEX_FIRST);
            self.rev.reserve(INDEX_FIRST);
            self.slots.reserve_exact(FLOWS_MAX);
            self.free.reserve_exact(FLOWS_MAX);
        }
    }

    #[inline(always)]
    fn find(&self, k: &FwdKey) -> Option<u32> {
        let slots = &self.slots;
        self.fwd
            .find(flow_hash(k, self.seed.0), |i| slots[i as usize].key == *k)
    }

    #[inline(always)]
    fn find_rev(&self, k: &RevKey) -> Option<u32> {
        let slots = &self.slots;
        self.rev.find(rev_hash(k, self.seed.0), |i| {
            slots[i as usize].rev_key() == *k
        })
    }

    fn insert(&mut self, fl: Flow) -> u32 {
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = fl;
                i
            }
            None => {
                self.slots.push(fl);
                (self.slots.len() - 1) as u32
            }
        };
        self.fwd.insert(flow_hash(&fl.key, self.seed.0), i);
        self.rev.insert(rev_hash(&fl.rev_key(), self.seed.0), i);
        i
    }

    fn remove(&mut self, i: u32) {
        let f = self.slots[i as usize];
        if !f.used {
            return;
        }
        self.slots[i as usize].used = false;
        self.fwd.remove(flow_hash(&f.key, self.seed.0), i);
        self.rev.remove(rev_hash(&f.rev_key(), self.seed.0), i);
        self.free.push(i);
    }

    fn len(&self) -> usize {
        self.fwd.len()
    }

    #[cfg(test)]
    fn clear(&mut self) {
        self.fwd.clear();
        self.rev.clear();
        self.slots.clear();
        self.free.clear();
    }
}

impl Flow {
    #[inline(always)]
    fn rev_key(&self) -> RevKey {
        RevKey {
            svc: self.key.svc(),
            snat: self.snat,
            proto: self.key.proto(),
        }
    }
}

/// Services, their Maglev tables, the flow table and health state.
#[derive(Debug, Default)]
pub struct Lb {
    svcs: Vec<Option<Svc>>,
    /// `(domain, v6, vip)` → index into `svcs`.
    vips: HashMap<(DomainId, bool, u128), u32>,
    /// By domain id: whether it has a VIP (the hook's first, cheap test).
    domains: Vec<bool>,
    flows: Flows,
    /// The flow of the last [`Verdict::ToBackend`] (see [`Lb::cached_mac`]).
    last: u32,
    /// A dry run (`Switch::inject_dry`): `packet` decides and rewrites but
    /// keeps no flow and changes no health state.
    pub(crate) dry: bool,
}

/// An address as a neighbor-table key, and its family.
fn key_of(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

/// Whether packets to `vip` can reach the balancer: a unicast address
/// the router routes to (`V4::check` / `V6::check`, whose tests
/// `wire::ipv4::routed` / `wire::ipv6::routed_unicast` are: the `vip`
/// node relies on every VIP passing them), and not loopback.
pub fn routed_unicast(vip: IpAddr) -> bool {
    let routed = match vip {
        IpAddr::V4(a) => crate::wire::ipv4::routed(a.into()),
        IpAddr::V6(a) => !a.is_multicast() && crate::wire::ipv6::routed_unicast(a.into()),
    };
    routed && !vip.is_loopback()
}

fn check(s: &Service) -> Result<(), LbError> {
    let vip = s.vip;
    if !routed_unicast(vip) {
        return Err(LbError::BadVip(vip));
    }
    if s.ports.is_empty() {
        return Err(LbError::NoPorts(vip));
    }
    let bad =
        |p: &ServicePort| !matches!(p.proto, nat::TCP | nat::UDP) || p.port == 0 || p.target == 0;
    if s.ports.iter().any(bad) {
        return Err(LbError::BadPort(vip));
    }
    if s.backends.len() > BACKENDS_MAX {
        return Err(LbError::TooManyBackends(vip));
    }
    for (i, b) in s.backends.iter().enumerate() {
        if b.is_ipv4() != vip.is_ipv4() {
            return Err(LbError::Family(*b, vip));
        }
        if s.backends[..i].contains(b) {
            return Err(LbError::DuplicateBackend(vip, *b));
        }
    }
    Ok(())
}

/// The flow hash: the 5-tuple (not the service), mixed under `seed`.
#[inline(always)]
fn flow_hash(k: &FwdKey, seed: u64) -> u64 {
    let (lo, hi) = (k.client as u64, (k.client >> 64) as u64);
    // An IPv4 client's address is 32 bits: one round mixes it with the
    // protocol and the ports, overlapping the protocol with its last
    // byte. An IPv6 client's takes a round of its own.
    let a = if hi == 0 { lo } else { mix64(lo ^ seed) ^ hi };
    mix64(a.rotate_left(32) ^ (k.rest & 0xff_ffff_ffff) ^ seed)
}

/// The hash of a new flow's backend pick (`Table::lookup`) and SNAT port:
/// [`flow_hash`] unkeyed, the same in every process.
#[inline(always)]
fn pick_hash(k: &FwdKey) -> u64 {
    flow_hash(k, 0)
}

/// The reverse index's hash.
#[inline(always)]
fn rev_hash(k: &RevKey, seed: u64) -> u64 {
    mix64(((k.svc as u64) << 24 | (k.snat as u64) << 8 | k.proto as u64) ^ seed)
}

impl Lb {
    /// Whether any service exists.
    pub fn is_empty(&self) -> bool {
        self.vips.is_empty()
    }

    /// Whether domain `d` has a VIP.
    #[inline(always)]
    pub fn serves(&self, d: DomainId) -> bool {
        self.domains.get(d.0 as usize).copied().unwrap_or(false)
    }

    /// The service of VIP `addr` (a neighbor key) in `d`.
    #[inline(always)]
    pub fn vip(&self, d: DomainId, v6: bool, addr: u128) -> Option<u32> {
        self.vips.get(&(d, v6, addr)).copied()
    }

    /// Replace every service with `services`. A service whose domain and
    /// VIP stay keeps its table (only changed backends move), the health
    /// state of the backends it keeps, and its flows (those whose backend
    /// or port is gone move or go). Refused as a whole (nothing changes)
    /// when one service is invalid.
    pub fn set(&mut self, services: Vec<Service>, now_ms: u64) -> Result<(), LbError> {
        if services.len() > SERVICES_MAX {
            return Err(LbError::TooManyServices(services.len()));
        }
        let mut seen = hashbrown::HashSet::new();
        for s in &services {
            check(s)?;
            let (v6, vip) = key_of(s.vip);
            if !seen.insert((s.domain, v6, vip)) {
                return Err(LbError::DuplicateVip(s.vip, s.domain));
            }
        }
        if !services.is_empty() {
            self.flows.reserve();
        }
        let mut old: Vec<Option<Svc>> = std::mem::take(&mut self.svcs);
        let old_index = std::mem::take(&mut self.vips);
        // Which old slot each new service takes (the same, when it stays).
        let mut placed: Vec<Option<Svc>> = Vec::new();
        let mut fresh: Vec<Service> = Vec::new();
        for s in services {
            let (v6, vip) = key_of(s.vip);
            let Some(&i) = old_index.get(&(s.domain, v6, vip)) else {
                fresh.push(s);
                continue;
            };
            let prev = old[i as usize].take().expect("indexed");
            if placed.len() <= i as usize {
                placed.resize_with(i as usize + 1, || None);
            }
            placed[i as usize] = Some(self.updated(prev, s, now_ms, i));
        }
        // Flows of services that are gone.
        for (i, o) in old.iter().enumerate() {
            if o.is_some() {
                self.drop_flows_of(i as u32);
            }
        }
        for s in fresh {
            let i = placed
                .iter()
                .position(|p| p.is_none())
                .unwrap_or(placed.len());
            if i == placed.len() {
                placed.push(None);
            }
            // A slot freed by a removed service may have left flows: gone.
            self.drop_flows_of(i as u32);
            placed[i] = Some(new_svc(s, now_ms));
        }
        self.svcs = placed;
        self.domains.clear();
        for (i, s) in self.svcs.iter().enumerate() {
            let Some(s) = s else { continue };
            self.vips.insert((s.cfg.domain, s.v6, s.vip), i as u32);
            let d = s.cfg.domain.0 as usize;
            if self.domains.len() <= d {
                self.domains.resize(d + 1, false);
            }
            self.domains[d] = true;
        }
        Ok(())
    }

    /// `prev` (slot `i`) with the configuration `s`: health state and the
    /// table carried over by backend address, flows remapped.
    fn updated(&mut self, prev: Svc, s: Service, now_ms: u64, i: u32) -> Svc {
        let mut n = new_svc(s, now_ms);
        let remap: Vec<u16> = prev
            .addrs
            .iter()
            .map(|a| {
                n.addrs
                    .iter()
                    .position(|b| b == a)
                    .map_or(NONE, |x| x as u16)
            })
            .collect();
        for (j, a) in prev.addrs.iter().enumerate() {
            if let Some(x) = n.addrs.iter().position(|b| b == a) {
                n.up[x] = prev.up[j];
                n.last_ok_ms[x] = prev.last_ok_ms[j];
            }
        }
        n.next_probe_ms = prev.next_probe_ms.min(n.next_probe_ms);
        let m = maglev::size_for(n.addrs.len());
        if prev.table.size() == m as usize {
            let old = Table::from_slots(
                prev.table
                    .slots()
                    .iter()
                    .map(|&b| remap.get(b as usize).copied().unwrap_or(NONE))
                    .collect(),
            );
            n.table = Table::build(m, &n.keys, &n.up, Some(&old));
        }
        for k in 0..self.flows.slots.len() {
            let f = &mut self.flows.slots[k];
            if !f.used || f.key.svc() != i {
                continue;
            }
            let port = n
                .cfg
                .ports
                .iter()
                .find(|p| p.proto == f.key.proto() && p.port == f.key.vport());
            match port {
                Some(p) => {
                    f.backend = remap.get(f.backend as usize).copied().unwrap_or(NONE);
                    f.target = p.target;
                    f.deltas_ok = false;
                }
                None => self.flows.remove(k as u32),
            }
        }
        n
    }

    fn drop_flows_of(&mut self, svc: u32) {
        for k in 0..self.flows.slots.len() {
            let f = &self.flows.slots[k];
            if f.used && f.key.svc() == svc {
                self.flows.remove(k as u32);
            }
        }
    }

    /// Every service's backends and flows.
    pub fn status(&self) -> Vec<ServiceStatus> {
        let mut flows = vec![0usize; self.svcs.len()];
        for f in self.flows.slots.iter().filter(|f| f.used) {
            flows[f.key.svc() as usize] += 1;
        }
        self.svcs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let s = s.as_ref()?;
                Some(ServiceStatus {
                    domain: s.cfg.domain,
                    vip: s.cfg.vip,
                    backends: s
                        .cfg
                        .backends
                        .iter()
                        .zip(&s.up)
                        .map(|(a, u)| BackendStatus { addr: *a, up: *u })
                        .collect(),
                    flows: flows[i],
                })
            })
            .collect()
    }

    /// The backend MAC the flow of the last [`Verdict::ToBackend`] keeps,
    /// if it was cached at neighbor-table generation `generation` (the
    /// table has not changed since, so a lookup would give the same).
    #[inline(always)]
    pub fn cached_mac(&self, generation: u64) -> Option<MacAddr> {
        let f = self.flows.slots.get(self.last as usize)?;
        (f.mac_gen == generation && f.used).then_some(MacAddr::from_u64(f.mac))
    }

    /// Cache `mac`, resolved at `generation`, in the flow of the last
    /// [`Verdict::ToBackend`].
    #[inline(always)]
    pub fn cache_mac(&mut self, mac: MacAddr, generation: u64) {
        if let Some(f) = self.flows.slots.get_mut(self.last as usize) {
            f.mac = mac.to_u64();
            f.mac_gen = generation;
        }
    }

    /// Flows in the table.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Decide about (and rewrite) the IP packet `ip` sent to the VIP of
    /// service `svc` by the station at `mac`; `partial`: its L4 checksum
    /// is left to offload.
    #[inline]
    pub fn packet(
        &mut self,
        svc: u32,
        ip: &mut [u8],
        mac: MacAddr,
        partial: bool,
        now_ms: u64,
    ) -> (Verdict, bool) {
        let Some(f) = nat::parse(ip) else {
            return (Verdict::Local, false);
        };
        let Some(s) = self.svcs.get_mut(svc as usize).and_then(|s| s.as_mut()) else {
            return (Verdict::Drop(DropReason::LbNoPort), false);
        };
        // A health probe's answer (probe ports are above every flow's).
        if f.proto == nat::TCP && f.dport >= PROBE_PORT_BASE {
            let b = (f.dport - PROBE_PORT_BASE) as usize;
            if s.addrs.get(b) == Some(&f.src) {
                let synack = f.flags & (nat::SYN | nat::ACK) == nat::SYN | nat::ACK;
                if synack && !self.dry {
                    s.last_ok_ms[b] = now_ms;
                    if !s.up[b] {
                        s.up[b] = true;
                        s.rebuild();
                    }
                }
                return (Verdict::Probe { reset: synack }, false);
            }
        }
        // To a port of the service: a client's packet (flow ports never
        // equal a service port, so this cannot be a backend's reply).
        let port = s
            .cfg
            .ports
            .iter()
            .find(|p| p.proto == f.proto && p.port == f.dport);
        let Some(port) = port else {
            // A backend's reply to a balanced flow.
            let rk = RevKey {
                svc,
                snat: f.dport,
                proto: f.proto,
            };
            if let Some(i) = self.flows.find_rev(&rk) {
                let mut copy = None;
                let fl = flow_mut(&mut self.flows.slots, i, self.dry, &mut copy);
                let from = s.addrs.get(fl.backend as usize).copied();
                if from == Some(f.src) && fl.target == f.sport {
                    fl.last_ms = now_ms;
                    fl.closing |= f.flags & (nat::FIN | nat::RST) != 0;
                    if !fl.deltas_ok {
                        fl.deltas = deltas_of(s, fl);
                        fl.deltas_ok = true;
                    }
                    let to = (fl.key.client, fl.key.cport());
                    let d = fl.deltas.rev;
                    nat::rewrite_with(ip, &f, partial, (s.vip, fl.key.vport()), to, d);
                    return (Verdict::ToClient(fl.client_mac), false);
                }
            }
            return (Verdict::Drop(DropReason::LbNoPort), false);
        };
        let target = port.target;
        let key = FwdKey::of(svc, &f);
        let closing = f.flags & (nat::FIN | nat::RST) != 0;
        let h = pick_hash(&key);
        if let Some(i) = self.flows.find(&key) {
            let mut copy = None;
            let fl = flow_mut(&mut self.flows.slots, i, self.dry, &mut copy);
            let live = s.up.get(fl.backend as usize).copied().unwrap_or(false);
            if !live {
                // Its backend left or is down: the table picks again.
                let b = s.table.lookup(h);
                if b == NONE {
                    return (Verdict::Drop(DropReason::LbNoBackend), false);
                }
                fl.backend = b;
                fl.deltas_ok = false;
            }
            if fl.target != target {
                fl.target = target;
                fl.deltas_ok = false;
            }
            if !fl.deltas_ok {
                fl.deltas = deltas_of(s, fl);
                fl.deltas_ok = true;
                fl.mac_gen = NO_GEN;
            }
            self.last = i;
            let to = s.addrs[fl.backend as usize];
            to_backend((s.vip, to), fl, ip, &f, mac, partial, now_ms);
            return (Verdict::ToBackend(to), false);
        }
        let b = s.table.lookup(h);
        if b == NONE {
            return (Verdict::Drop(DropReason::LbNoBackend), false);
        }
        if self.flows.len() >= FLOWS_MAX {
            return (Verdict::Drop(DropReason::LbFlowsFull), false);
        }
        let ports = &s.cfg.ports;
        let flows = &self.flows;
        let snat = (0..SNAT_TRIES)
            .map(|t| SNAT_FIRST + ((h >> 20).wrapping_add(t) % SNAT_COUNT) as u16)
            .find(|&p| {
                let k = RevKey {
                    svc,
                    snat: p,
                    proto: f.proto,
                };
                let service_port = ports.iter().any(|x| x.proto == f.proto && x.port == p);
                !service_port && flows.find_rev(&k).is_none()
            });
        let Some(snat) = snat else {
            return (Verdict::Drop(DropReason::LbFlowsFull), false);
        };
        let mut fl = Flow {
            key,
            backend: b,
            target,
            snat,
            client_mac: mac,
            last_ms: now_ms,
            closing,
            used: true,
            deltas: nat::Deltas::default(),
            deltas_ok: true,
            mac: 0,
            mac_gen: NO_GEN,
        };
        fl.deltas = deltas_of(s, &fl);
        if self.dry {
            // Decided and rewritten, but not kept: no flow to cache a MAC in.
            self.last = u32::MAX;
            let d = fl.deltas.fwd;
            let to = s.addrs[b as usize];
            nat::rewrite_with(ip, &f, partial, (s.vip, snat), (to, target), d);
            return (Verdict::ToBackend(to), true);
        }
        self.last = self.flows.insert(fl);
        let to = s.addrs[b as usize];
        nat::rewrite_with(ip, &f, partial, (s.vip, snat), (to, target), fl.deltas.fwd);
        (Verdict::ToBackend(to), true)
    }

    /// The fast path's probe (`pipeline/vip.rs`): the flow of the plain
    /// IPv4 packet `f` (as [`nat::parse_v4_plain`] reads it) to the VIP
    /// of service `svc`, whose port `f.dport` is sent to `target` (see
    /// [`Lb::target`]), when it is established and its every decision is
    /// cached (its backend live, its port's target unchanged, its
    /// checksum deltas worked out, its backend's MAC cached at neighbor
    /// generation `generation`): what [`Lb::forward`] needs to do what
    /// [`Lb::packet`] would. `None`: `packet` decides. Changes nothing.
    #[inline(always)]
    pub fn established(
        &self,
        svc: u32,
        target: u16,
        f: &nat::Flow,
        generation: u64,
    ) -> Option<Established> {
        // A health probe's answer may be on a port above PROBE_PORT_BASE:
        // `packet` tells.
        if f.dport >= PROBE_PORT_BASE && f.proto == nat::TCP || self.dry {
            return None;
        }
        let s = self.svcs.get(svc as usize)?.as_ref()?;
        let key = FwdKey::of(svc, f);
        let i = self.flows.find(&key)?;
        let fl = &self.flows.slots[i as usize];
        let cached = fl.deltas_ok && fl.mac_gen == generation && fl.target == target;
        let live = s.up.get(fl.backend as usize).copied().unwrap_or(false);
        (cached && live).then(|| Established {
            slot: i,
            mac: fl.mac,
            vip: s.vip,
            to: s.addrs[fl.backend as usize],
        })
    }

    /// Forward the packet `ip` of flow `f` (as [`Lb::established`] found
    /// it in `e`, nothing changed since) from the station at `mac` to its
    /// backend, as [`Lb::packet`] would.
    #[inline(always)]
    pub fn forward(
        &mut self,
        e: &Established,
        ip: &mut [u8],
        f: &nat::Flow,
        mac: MacAddr,
        partial: bool,
        now_ms: u64,
    ) {
        let Some(fl) = self.flows.slots.get_mut(e.slot as usize) else {
            return;
        };
        self.last = e.slot;
        to_backend((e.vip, e.to), fl, ip, f, mac, partial, now_ms);
    }

    /// Timers: forget idle flows (a slice of the table per call), mark
    /// backends without an answer for their check's timeout down, and
    /// put the probes due now into `probes`. Returns flows expired.
    pub fn tick(&mut self, now_ms: u64, probes: &mut Vec<Probe>) -> usize {
        let mut expired = 0;
        let n = self.flows.slots.len();
        for _ in 0..SWEEP_BUDGET.min(n) {
            let i = self.flows.sweep_at % n;
            self.flows.sweep_at = i + 1;
            let f = &self.flows.slots[i];
            let idle = match (f.key.proto(), f.closing) {
                (nat::UDP, _) => UDP_IDLE_MS,
                (_, true) => TCP_CLOSING_MS,
                _ => TCP_IDLE_MS,
            };
            if f.used && now_ms.saturating_sub(f.last_ms) > idle {
                self.flows.remove(i as u32);
                expired += 1;
            }
        }
        for s in self.svcs.iter_mut().flatten() {
            let Some(h) = s.cfg.health else { continue };
            let mut changed = false;
            for b in 0..s.addrs.len() {
                let silent = now_ms.saturating_sub(s.last_ok_ms[b]) > h.timeout_ms as u64;
                if s.up[b] && silent {
                    s.up[b] = false;
                    changed = true;
                }
            }
            if changed {
                s.rebuild();
            }
            if now_ms >= s.next_probe_ms {
                s.next_probe_ms = now_ms + h.interval_ms as u64;
                for (b, &addr) in s.addrs.iter().enumerate() {
                    probes.push(Probe {
                        domain: s.cfg.domain,
                        v6: s.v6,
                        vip: s.vip,
                        backend: addr,
                        sport: PROBE_PORT_BASE + b as u16,
                        dport: h.port,
                        seq: mix64(now_ms ^ addr as u64) as u32,
                    });
                }
            }
        }
        expired
    }

    /// The backends' port for packets to port `port` (of protocol `proto`)
    /// of service `svc`'s VIP; `None` when the service offers no such port.
    #[inline]
    pub fn target(&self, svc: u32, proto: u8, port: u16) -> Option<u16> {
        let s = self.svcs.get(svc as usize)?.as_ref()?;
        let p = s
            .cfg
            .ports
            .iter()
            .find(|p| p.proto == proto && p.port == port)?;
        Some(p.target)
    }

    /// Whether `addr` (a neighbor key) is a VIP of `d` (ARP/ND answers).
    pub fn is_vip(&self, d: DomainId, v6: bool, addr: u128) -> bool {
        self.serves(d) && self.vips.contains_key(&(d, v6, addr))
    }
}

/// Flow `i` to update: the slot itself, or in a dry run a copy of it (put
/// in `copy`), so the decision is the same and the table unchanged.
#[inline(always)]
fn flow_mut<'a>(
    slots: &'a mut [Flow],
    i: u32,
    dry: bool,
    copy: &'a mut Option<Flow>,
) -> &'a mut Flow {
    if dry {
        copy.insert(slots[i as usize])
    } else {
        &mut slots[i as usize]
    }
}

/// A packet of established flow `fl` (its backend, at `to`, live; its
/// deltas valid) to VIP `vip` from the station at `mac`: note it, and
/// rewrite `ip` to the backend.
#[inline(always)]
fn to_backend(
    (vip, to): (u128, u128),
    fl: &mut Flow,
    ip: &mut [u8],
    f: &nat::Flow,
    mac: MacAddr,
    partial: bool,
    now_ms: u64,
) {
    fl.last_ms = now_ms;
    fl.closing |= f.flags & (nat::FIN | nat::RST) != 0;
    fl.client_mac = mac;
    let d = fl.deltas.fwd;
    nat::rewrite_with(ip, f, partial, (vip, fl.snat), (to, fl.target), d);
}

/// The checksum deltas of flow `fl` of service `s` (on its backend and
/// port now): client → backend, and the backend's reply back.
fn deltas_of(s: &Svc, fl: &Flow) -> nat::Deltas {
    let (client, vip) = ((fl.key.client, fl.key.cport()), (s.vip, fl.key.vport()));
    let backend = (s.addrs[fl.backend as usize], fl.target);
    let snat = (s.vip, fl.snat);
    nat::Deltas {
        fwd: nat::Delta::of(s.v6, (client, vip), (snat, backend)),
        rev: nat::Delta::of(s.v6, (backend, snat), (vip, client)),
    }
}

fn new_svc(cfg: Service, now_ms: u64) -> Svc {
    let (v6, vip) = key_of(cfg.vip);
    let addrs: Vec<u128> = cfg.backends.iter().map(|a| key_of(*a).1).collect();
    let keys: Vec<u64> = addrs
        .iter()
        .map(|a| mix64(*a as u64 ^ mix64((a >> 64) as u64)))
        .collect();
    let up = vec![true; addrs.len()];
    let m = maglev::size_for(addrs.len());
    let table = Table::build(m, &keys, &up, None);
    Svc {
        v6,
        vip,
        last_ok_ms: vec![now_ms; addrs.len()],
        up,
        keys,
        addrs,
        table,
        next_probe_ms: now_ms,
        cfg,
    }
}

#[cfg(test)]
mod tests;
