//! The router: one gateway interface per bridge domain (its MAC, IPv4 and
//! IPv6 addresses), IPv4/IPv6 LPM route tables per VRF-like table id
//! (connected routes derived from gateway subnets, static routes), the
//! neighbor table, and the ICMP error rate limit. The pipeline hands it
//! batches of frames addressed to a gateway ([`Router::wants`] says which);
//! it returns routed frames and the frames it originates (ARP/ND, echo
//! replies, ICMP errors, the DNS service's answers) in an [`L3Out`] for
//! the L2 output stage; DNS queries to a gateway leave through the punt
//! sink (`punt.rs`).
//!
//! What differs between IPv4 and IPv6 is the `family::Family` trait; the
//! paths over it are written once and monomorphised per family.
//!
//! Frames in and out are untagged Ethernet: the L2 input stage has popped
//! the domain's VLAN tag and the output stage pushes the `vid` of each
//! [`L3Frame`].
//!
//! Owns: gateways, route tables, next hops, neighbors, L3 counters. Never:
//! I/O, locks, allocation per forwarded packet (`L3Out` and the scratch
//! arrays are reused; new neighbor entries may grow their map).

pub(crate) mod dry;
mod family;
mod forward;
mod lanes;
mod lb;
pub(crate) use lb::LbFast;
pub mod listen;
mod local;
pub mod lpm4;
pub mod lpm6;
pub mod neigh;
pub mod punt;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashMap;

use crate::buf::{PacketPool, PktBuf};
use crate::config::DomainId;
use crate::counters::{DropReason, StageCounters};
use crate::mac::MacAddr;
use crate::ratelimit::TokenBucket;

use family::{Family, V4, V6};

pub use family::Lpm;
pub use listen::{DnsListener, ListenerError};
pub use lpm4::Lpm4;
pub use lpm6::Lpm6;
pub use neigh::{NeighConfig, NeighKey, NeighState, Neighbor, NeighborTable};
pub use punt::{IpReply, PuntSink, Punted, ReplyError, Transport, UdpReply};

/// Index of a next hop in the router's next-hop table.
pub type NhId = u32;
/// A VRF-like route table: gateways in the same table route between each
/// other; different tables are isolated.
pub type TableId = u16;

/// Next hop 0 is the router itself (host routes of gateway addresses).
const NH_LOCAL: NhId = 0;

/// Why a route table refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LpmError {
    #[error("prefix length {0} out of range")]
    PrefixLen(u8),
    #[error("next-hop index {0} too large")]
    NextHop(NhId),
    #[error("route table out of second-level groups")]
    Full,
}

/// Why a router configuration change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    #[error("domain {0} already has a gateway")]
    GatewayExists(DomainId),
    #[error("domain {0} has no gateway")]
    NoGateway(DomainId),
    #[error("gateway MAC {0} is not a unicast address")]
    BadMac(MacAddr),
    #[error("route {0}/{1} already exists in table {2}")]
    RouteExists(IpAddr, u8, TableId),
    #[error("no route {0}/{1} in table {2}")]
    NoSuchRoute(IpAddr, u8, TableId),
    #[error("next hop address {0} does not match the route's family")]
    FamilyMismatch(IpAddr),
    #[error("route table {table}: {err}")]
    Lpm { table: TableId, err: LpmError },
}

/// Where a route sends packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// The router itself (installed for gateway addresses).
    Local,
    /// The destination is on the link of `domain`'s gateway.
    Connected { domain: DomainId },
    /// Via a router at `gateway`, reached through `domain`.
    Via { gateway: IpAddr, domain: DomainId },
}

/// A gateway (router interface) in one bridge domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub domain: DomainId,
    /// VLAN the gateway's frames carry inside the domain.
    pub vid: u16,
    pub mac: MacAddr,
    /// Addresses with their subnet prefix lengths (each adds a connected route).
    pub ipv4: Vec<(Ipv4Addr, u8)>,
    pub ipv6: Vec<(Ipv6Addr, u8)>,
    /// Largest IP packet sent out of this gateway.
    pub mtu: u16,
    pub table: TableId,
    /// Route between this domain and other domains; when off the gateway
    /// still answers ARP/ND/ping and routes between its own subnets.
    pub routing: bool,
    /// An uplink: every domain of the table may route to and from this one,
    /// whatever its `routing` (how isolated networks reach the outside).
    pub external: bool,
}

impl Gateway {
    /// A routing gateway in table 0, VLAN 1, MTU 1500, no addresses yet.
    pub fn new(domain: DomainId, mac: MacAddr) -> Self {
        Gateway {
            domain,
            vid: 1,
            mac,
            ipv4: Vec::new(),
            ipv6: Vec::new(),
            mtu: 1500,
            table: 0,
            routing: true,
            external: false,
        }
    }
    pub fn with_ipv4(mut self, a: Ipv4Addr, len: u8) -> Self {
        self.ipv4.push((a, len));
        self
    }
    pub fn with_ipv6(mut self, a: Ipv6Addr, len: u8) -> Self {
        self.ipv6.push((a, len));
        self
    }
}

/// Router-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterConfig {
    /// ICMP errors per second (all kinds, both families) and burst.
    pub icmp_pps: u64,
    pub icmp_burst: u64,
    /// ARP requests / NS per second and burst (new neighbors and retransmits).
    pub solicit_pps: u64,
    pub solicit_burst: u64,
    pub neigh: NeighConfig,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            icmp_pps: 1000,
            icmp_burst: 50,
            solicit_pps: 1000,
            solicit_burst: 100,
            neigh: NeighConfig::default(),
        }
    }
}

/// A frame for the L2 output stage: send `buf` into `domain` on VLAN `vid`.
#[derive(Debug, PartialEq, Eq)]
pub struct L3Frame {
    pub domain: DomainId,
    pub vid: u16,
    pub buf: PktBuf,
}

/// Frames the router hands back; reuse one across batches so its storage is
/// allocated once.
#[derive(Debug)]
pub struct L3Out {
    pub frames: Vec<L3Frame>,
}

impl Default for L3Out {
    fn default() -> Self {
        L3Out {
            frames: Vec::with_capacity(4 * crate::batch::BATCH_MAX),
        }
    }
}

impl L3Out {
    #[inline]
    fn push(&mut self, domain: DomainId, vid: u16, buf: PktBuf) {
        self.frames.push(L3Frame { domain, vid, buf });
    }
    pub fn len(&self) -> usize {
        self.frames.len()
    }
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
    /// Give every frame back to the pool.
    pub fn free_all(&mut self, pool: &mut PacketPool) {
        self.frames.drain(..).for_each(|f| pool.free(f.buf));
    }
}

/// L3 counters: drops by reason and what the stage counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L3Counters {
    pub drops: [u64; DropReason::COUNT],
    pub stages: StageCounters,
}

impl Default for L3Counters {
    fn default() -> Self {
        L3Counters {
            drops: [0; DropReason::COUNT],
            stages: StageCounters::default(),
        }
    }
}

impl L3Counters {
    pub fn drops_by(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }
}

/// A gateway as the fast path reads it.
#[derive(Debug)]
struct GwState {
    cfg: Gateway,
    /// Index into `Router::tables`.
    table: usize,
}

#[derive(Debug, Default)]
struct Tables {
    id: TableId,
    v4: Lpm4,
    v6: Lpm6,
}

#[derive(Debug)]
struct NhSlot {
    nh: NextHop,
    refs: u32,
    /// For a resolved `Via` next hop: the rewrite the fast path applies.
    adj: Option<Adjacency>,
}

/// Everything the fast path needs to send a packet to a resolved `Via`
/// next hop (a VPP-style adjacency), valid while `epoch` is the router's.
#[derive(Debug, Clone, Copy)]
struct Adjacency {
    epoch: u64,
    dst: MacAddr,
    src: MacAddr,
    domain: DomainId,
    vid: u16,
    mtu: u16,
    /// The egress gateway routes between domains.
    routing: bool,
    /// The egress gateway is an uplink.
    external: bool,
}

/// Gateways, routes, neighbors and the per-batch L3 stage.
pub struct Router {
    gw: Vec<Option<GwState>>,
    tables: Vec<Tables>,
    nh: Vec<NhSlot>,
    nh_index: HashMap<NextHop, NhId>,
    nh_free: Vec<NhId>,
    neigh: NeighborTable,
    icmp_bucket: TokenBucket,
    solicit_bucket: TokenBucket,
    counters: L3Counters,
    scratch: lanes::Scratch,
    solicit_keys: Vec<NeighKey>,
    /// Held packets whose neighbor never answered, reused by `tick`.
    unresolved: Vec<neigh::Unresolved>,
    /// Bumped by every gateway change; with the neighbor generation it
    /// dates adjacencies.
    cfg_epoch: u64,
    /// Where DNS queries to a gateway go (`punt.rs`), when anywhere.
    punt: Option<punt::PuntSink>,
    /// DNS listeners by domain index (`listen.rs`).
    listeners: Vec<Vec<listen::DnsListener>>,
    /// Services with a VIP (`crate::lb`, glue in `lb.rs`).
    lb: crate::lb::Lb,
    /// Health probes due, reused by `tick`.
    lb_probes: Vec<crate::lb::Probe>,
    /// A dry run is under way (`dry.rs`): change no state, note instead.
    dry: bool,
    dry_notes: Vec<String>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("gateways", &self.gw.iter().flatten().count())
            .field("tables", &self.tables.len())
            .field("next_hops", &(self.nh.len() - self.nh_free.len()))
            .field("neighbors", &self.neigh.len())
            .field("dns_punt", &self.punt.is_some())
            .finish()
    }
}

impl Router {
    pub fn new(cfg: RouterConfig, now_ms: u64) -> Self {
        Router {
            gw: Vec::new(),
            tables: Vec::new(),
            nh: vec![NhSlot {
                nh: NextHop::Local,
                refs: u32::MAX,
                adj: None,
            }],
            nh_index: HashMap::from([(NextHop::Local, NH_LOCAL)]),
            nh_free: Vec::new(),
            neigh: NeighborTable::new(cfg.neigh),
            icmp_bucket: TokenBucket::new(cfg.icmp_pps, cfg.icmp_burst, now_ms),
            solicit_bucket: TokenBucket::new(cfg.solicit_pps, cfg.solicit_burst, now_ms),
            counters: L3Counters::default(),
            scratch: lanes::Scratch::default(),
            solicit_keys: Vec::with_capacity(64),
            unresolved: Vec::with_capacity(64),
            cfg_epoch: 0,
            punt: None,
            listeners: Vec::new(),
            lb: crate::lb::Lb::default(),
            lb_probes: Vec::new(),
            dry: false,
            dry_notes: Vec::new(),
        }
    }

    /// Changes whenever a gateway or a neighbor changes.
    #[inline(always)]
    fn epoch(&self) -> u64 {
        self.cfg_epoch + self.neigh.generation()
    }

    pub fn counters(&self) -> &L3Counters {
        &self.counters
    }
    pub fn neighbors(&self) -> &NeighborTable {
        &self.neigh
    }
    pub fn gateway(&self, d: DomainId) -> Option<&Gateway> {
        self.gw_state(d).map(|g| &g.cfg)
    }

    #[inline]
    fn gw_state(&self, d: DomainId) -> Option<&GwState> {
        self.gw.get(d.0 as usize).and_then(|g| g.as_ref())
    }

    fn table_index(&mut self, id: TableId) -> usize {
        if let Some(i) = self.tables.iter().position(|t| t.id == id) {
            return i;
        }
        self.tables.push(Tables {
            id,
            ..Default::default()
        });
        self.tables.len() - 1
    }

    fn nh_ref(&mut self, nh: NextHop) -> NhId {
        if let Some(&id) = self.nh_index.get(&nh) {
            let s = &mut self.nh[id as usize];
            s.refs = s.refs.saturating_add(1);
            return id;
        }
        let slot = NhSlot {
            nh,
            refs: 1,
            adj: None,
        };
        let id = match self.nh_free.pop() {
            Some(id) => {
                self.nh[id as usize] = slot;
                id
            }
            None => {
                self.nh.push(slot);
                (self.nh.len() - 1) as NhId
            }
        };
        self.nh_index.insert(nh, id);
        id
    }

    fn nh_unref(&mut self, id: NhId) {
        if id == NH_LOCAL {
            return;
        }
        let s = &mut self.nh[id as usize];
        s.refs -= 1;
        if s.refs == 0 {
            self.nh_index.remove(&s.nh);
            self.nh_free.push(id);
        }
    }

    /// Add a route to table `table`.
    pub fn add_route(
        &mut self,
        table: TableId,
        prefix: IpAddr,
        len: u8,
        nh: NextHop,
    ) -> Result<(), RouterError> {
        match prefix {
            IpAddr::V4(_) => self.add_route_as::<V4>(table, prefix, len, nh),
            IpAddr::V6(_) => self.add_route_as::<V6>(table, prefix, len, nh),
        }
    }

    fn add_route_as<F: Family>(
        &mut self,
        table: TableId,
        prefix: IpAddr,
        len: u8,
        nh: NextHop,
    ) -> Result<(), RouterError> {
        if let NextHop::Via { gateway, .. } = nh
            && F::from_ip(gateway).is_none()
        {
            return Err(RouterError::FamilyMismatch(gateway));
        }
        if len > F::MAX_LEN {
            let err = LpmError::PrefixLen(len);
            return Err(RouterError::Lpm { table, err });
        }
        let a = F::from_ip(prefix).expect("the caller matched the family");
        let t = self.table_index(table);
        if F::lpm(&self.tables[t]).get(a, len).is_some() {
            return Err(RouterError::RouteExists(prefix, len, table));
        }
        let id = self.nh_ref(nh);
        let r = F::lpm_mut(&mut self.tables[t]).insert(a, len, id);
        r.map(|_| ()).map_err(|err| {
            self.nh_unref(id);
            RouterError::Lpm { table, err }
        })
    }

    /// Remove a route from table `table`.
    pub fn remove_route(
        &mut self,
        table: TableId,
        prefix: IpAddr,
        len: u8,
    ) -> Result<NextHop, RouterError> {
        let t = self.tables.iter().position(|t| t.id == table);
        let id = t.and_then(|t| match prefix {
            IpAddr::V4(a) => Self::unroute::<V4>(&mut self.tables[t], a.into(), len),
            IpAddr::V6(a) => Self::unroute::<V6>(&mut self.tables[t], a.into(), len),
        });
        let id = id.ok_or(RouterError::NoSuchRoute(prefix, len, table))?;
        let nh = self.nh[id as usize].nh;
        self.nh_unref(id);
        Ok(nh)
    }

    fn unroute<F: Family>(t: &mut Tables, a: F::Addr, len: u8) -> Option<NhId> {
        (len <= F::MAX_LEN)
            .then(|| F::lpm_mut(t).remove(a, len))
            .flatten()
    }

    /// Look a destination up in a table (control plane and tests).
    pub fn route(&self, table: TableId, dst: IpAddr) -> Option<NextHop> {
        let t = self.tables.iter().find(|t| t.id == table)?;
        let id = match dst {
            IpAddr::V4(a) => V4::lpm(t).lookup(a.into()),
            IpAddr::V6(a) => V6::lpm(t).lookup(a.into()),
        }?;
        Some(self.nh[id as usize].nh)
    }

    /// Give `gw.domain` a gateway: its addresses become local host routes
    /// and its subnets connected routes in `gw.table`. A domain without a
    /// gateway is internal: the router drops whatever it is handed there.
    pub fn add_gateway(&mut self, gw: Gateway) -> Result<(), RouterError> {
        let d = gw.domain;
        if self.gw_state(d).is_some() {
            return Err(RouterError::GatewayExists(d));
        }
        if !gw.mac.is_valid_source() {
            return Err(RouterError::BadMac(gw.mac));
        }
        if let Some(l) = too_long::<V4>(&gw).or_else(|| too_long::<V6>(&gw)) {
            let err = LpmError::PrefixLen(l);
            return Err(RouterError::Lpm {
                table: gw.table,
                err,
            });
        }
        let mut added: Vec<(IpAddr, u8)> = Vec::new();
        let routes = gateway_routes::<V4>(&gw)
            .chain(gateway_routes::<V6>(&gw))
            .collect::<Vec<_>>();
        for (p, l, nh) in routes {
            if nh == NextHop::Local && self.route(gw.table, p) == Some(NextHop::Local) {
                continue; // the same address on two gateways of one table
            }
            if nh != NextHop::Local && (l == 32 && p.is_ipv4() || l == 128) {
                continue; // a host-length "subnet" is just the local route
            }
            if let Err(e) = self.add_route(gw.table, p, l, nh) {
                for (p, l) in added {
                    let _ = self.remove_route(gw.table, p, l);
                }
                return Err(e);
            }
            added.push((p, l));
        }
        let table = self.table_index(gw.table);
        let i = d.0 as usize;
        if self.gw.len() <= i {
            self.gw.resize_with(i + 1, || None);
        }
        self.gw[i] = Some(GwState { cfg: gw, table });
        self.cfg_epoch += 1;
        Ok(())
    }

    /// Remove a domain's gateway, its connected and local routes, and its
    /// neighbors (freeing packets they held). Static routes via the domain
    /// stay and drop traffic until removed.
    pub fn remove_gateway(
        &mut self,
        pool: &mut PacketPool,
        d: DomainId,
    ) -> Result<Gateway, RouterError> {
        let g = self
            .gw
            .get_mut(d.0 as usize)
            .and_then(|g| g.take())
            .ok_or(RouterError::NoGateway(d))?;
        let t = g.cfg.table;
        let routes = gateway_routes::<V4>(&g.cfg).chain(gateway_routes::<V6>(&g.cfg));
        for (p, l, _) in routes.collect::<Vec<_>>() {
            let _ = self.remove_route(t, p, l);
        }
        self.neigh.flush_domain(pool, d);
        self.cfg_epoch += 1;
        Ok(g.cfg)
    }

    /// Turn routing between `d` and other domains on or off.
    pub fn set_routing(&mut self, d: DomainId, on: bool) -> Result<(), RouterError> {
        let g = self
            .gw
            .get_mut(d.0 as usize)
            .and_then(|g| g.as_mut())
            .ok_or(RouterError::NoGateway(d))?;
        g.cfg.routing = on;
        self.cfg_epoch += 1;
        Ok(())
    }

    /// A configured neighbor that never ages (also how benches pre-resolve).
    pub fn add_static_neighbor(
        &mut self,
        pool: &mut PacketPool,
        d: DomainId,
        ip: IpAddr,
        mac: MacAddr,
        out: &mut L3Out,
    ) {
        let k = match ip {
            IpAddr::V4(a) => NeighKey::v4(d, a.into()),
            IpAddr::V6(a) => NeighKey::v6(d, a.into()),
        };
        let held = self.neigh.add_permanent(k, mac);
        self.release(pool, k, mac, held, out);
    }

    /// Advance neighbor timers: retransmit ARP/NS for unresolved neighbors
    /// (into `out`), drop the packets held for neighbors that never answered
    /// (counted as `neigh_unresolved`) answering each sender with ICMP host
    /// unreachable (ICMPv6 address unreachable) within the ICMP rate limit,
    /// as RFC 1812 §4.3.3.1 and RFC 4443 §3.1 ask; age the rest. Call every
    /// ~100 ms.
    pub fn tick(&mut self, pool: &mut PacketPool, now_ms: u64, out: &mut L3Out) {
        let mut keys = std::mem::take(&mut self.solicit_keys);
        let mut unresolved = std::mem::take(&mut self.unresolved);
        keys.clear();
        unresolved.clear();
        let r = self.neigh.tick(now_ms, &mut keys, &mut unresolved);
        self.counters.stages.add(
            crate::counters::StageCounter::NeighExpired,
            (r.expired + r.failed) as u64,
        );
        for k in &keys {
            self.solicit(pool, *k, now_ms, out);
        }
        for (k, from, buf) in unresolved.drain(..) {
            let r = DropReason::NeighUnresolved;
            if k.v6 {
                self.icmp_error::<V6>(pool, from, buf, V6::NEIGH_UNREACHABLE, r, now_ms, out);
            } else {
                self.icmp_error::<V4>(pool, from, buf, V4::NEIGH_UNREACHABLE, r, now_ms, out);
            }
        }
        self.solicit_keys = keys;
        self.unresolved = unresolved;
        // Load balancer: health probes and idle flows (`lb.rs`).
        self.lb_tick(pool, now_ms, out);
    }
}

/// The first subnet length of the gateway's `F` addresses that `F` does not
/// have.
fn too_long<F: Family>(g: &Gateway) -> Option<u8> {
    F::addrs(g).map(|(_, l)| l).find(|&l| l > F::MAX_LEN)
}

/// The routes a gateway's addresses of family `F` make: a local host route
/// per address and a connected route per subnet (same order as the
/// addresses).
fn gateway_routes<F: Family>(g: &Gateway) -> impl Iterator<Item = (IpAddr, u8, NextHop)> + '_ {
    let d = g.domain;
    F::addrs(g).flat_map(move |(a, l)| {
        [
            (F::to_ip(a), F::MAX_LEN, NextHop::Local),
            (F::to_ip(F::mask(a, l)), l, NextHop::Connected { domain: d }),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prefix longer than its family allows is refused with the length,
    /// and leaves the table as it was (IPv4 used to take /33 as /32).
    #[test]
    fn over_long_prefixes_are_refused_and_change_nothing() {
        let mut r = Router::new(RouterConfig::default(), 0);
        let d = DomainId(1);
        r.add_gateway(Gateway::new(d, MacAddr::local(1)).with_ipv4(Ipv4Addr::new(10, 0, 0, 1), 24))
            .unwrap();
        let nh = NextHop::Connected { domain: d };
        for (p, len) in [
            (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 33),
            (IpAddr::V6("2001:db8::1".parse().unwrap()), 129),
        ] {
            let err = LpmError::PrefixLen(len);
            assert_eq!(
                r.add_route(0, p, len, nh),
                Err(RouterError::Lpm { table: 0, err })
            );
            assert_eq!(r.route(0, p), None, "{p}/{len} not installed");
            assert_eq!(
                r.remove_route(0, p, len),
                Err(RouterError::NoSuchRoute(p, len, 0))
            );
        }
        let host = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        r.add_route(0, host, 32, nh).unwrap();
        assert_eq!(
            r.remove_route(0, host, 33),
            Err(RouterError::NoSuchRoute(host, 33, 0))
        );
        assert_eq!(r.route(0, host), Some(nh), "the /32 is still there");
    }
}
