//! The switch a worker owns: its packet pool, ports, bridge domains (each
//! with its FDB), counters and tracer. Control operations are methods called
//! between batches; the per-batch pipeline is in `pipeline/`, one file per node.
//!
//! Owns: all data plane state of one worker. Never: syscalls (ports do their
//! own I/O behind the `Port` trait), blocking, reading the wall clock (the
//! worker sets `now`).

use crate::batch::{BATCH_DEFAULT, Batch};
use crate::buf::PacketPool;
use crate::config::{DomainConfig, DomainId, PortConfig};
pub use crate::core::Switch;
use crate::core::{Domain, GwFast, PortSlot};
use crate::counters::{PortCounters, StageCounters};
use crate::fdb::{Fdb, FdbEntryInfo, FlushFilter};
use crate::mac::MacAddr;
use crate::port::{Port, PortError, PortId};
use crate::ratelimit::TokenBucket;
use crate::router::{Gateway, L3Out, NextHop, Router, RouterConfig, RouterError, TableId};
use crate::stp::Stp;
use crate::trace::Tracer;
use crate::vlan::{Egress, VlanError, check_vid};

/// Why a control operation was refused. Nothing changed when one is returned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SwitchError {
    #[error("no port {0}")]
    UnknownPort(String),
    #[error("no bridge domain {0}")]
    UnknownDomain(String),
    #[error("a {kind} named {name:?} already exists")]
    Duplicate { kind: &'static str, name: String },
    #[error("name {0:?} is not usable: 1 to 64 characters of letters, digits, '-', '_', '.'")]
    BadName(String),
    #[error(transparent)]
    Vlan(#[from] VlanError),
    #[error("port {port} is not a member of VLAN {vid}")]
    NotVlanMember { port: String, vid: u16 },
    #[error("port {port} belongs to bridge domain {port_domain}, not {domain}")]
    WrongDomain {
        port: String,
        port_domain: String,
        domain: String,
    },
    #[error("bridge domain {domain} still has {ports} port(s); remove them first")]
    DomainInUse { domain: String, ports: usize },
    #[error("the switch is full: at most {0} ports")]
    TooManyPorts(usize),
    #[error("the switch is full: at most {0} bridge domains")]
    TooManyDomains(usize),
    #[error("{0} is not a unicast station address")]
    NotStationMac(MacAddr),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error("{0}")]
    Stp(String),
    #[error(transparent)]
    Lb(#[from] crate::lb::LbError),
    #[error(transparent)]
    Listener(#[from] crate::router::ListenerError),
}

/// A port as the control plane sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub id: PortId,
    pub name: String,
    /// The back end reported its link gone.
    pub gone: bool,
    pub cfg: PortConfig,
    pub counters: PortCounters,
    pub learned: u32,
    pub last_error: Option<String>,
}

/// A bridge domain as the control plane sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInfo {
    pub id: DomainId,
    pub cfg: DomainConfig,
    pub ports: Vec<PortId>,
    pub fdb_entries: usize,
}

/// Buckets of each FDB examined per aging step (a bucket holds 4 entries).
const AGE_BUDGET: usize = 64;
/// Aging steps run at most once per this many milliseconds of switch time,
/// so a busy worker does not pay for the sweep on every burst. With 64
/// buckets a millisecond, a full pass over a million-entry table takes about
/// 4 s, far inside the 300 s ageing time.
const AGE_EVERY_MS: u64 = 1;

/// How often the router's neighbor timers run (switch time).
const ROUTER_TICK_MS: u64 = 100;

/// Whether `name` is usable for a port or bridge domain (1 to 64 of letters,
/// digits, `-`, `_`, `.`).
pub fn check_name(name: &str) -> Result<(), SwitchError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(SwitchError::BadName(name.to_string()))
    }
}

impl Switch {
    /// A switch over `pool` receiving bursts of 32.
    pub fn new(pool: PacketPool) -> Self {
        Self::with_burst(pool, BATCH_DEFAULT)
    }

    /// A switch receiving bursts of `burst` (1..=64) frames per port.
    pub fn with_burst(pool: PacketPool, burst: usize) -> Self {
        Switch {
            pool,
            ports: Vec::new(),
            domains: Vec::new(),
            stages: StageCounters::default(),
            tracer: Tracer::default(),
            now_ms: 0,
            now_s: 0,
            scratch: crate::scratch::Scratch::default(),
            router: Router::new(RouterConfig::default(), 0),
            rx: Some(Box::new(Batch::new(burst))),
            l3_ticked_ms: 0,
            burst,
            aged_at_ms: 0,
        }
    }

    pub fn burst(&self) -> usize {
        self.burst
    }

    /// Advance the switch's clock (milliseconds on any monotonic scale).
    #[inline]
    pub fn set_now_ms(&mut self, ms: u64) {
        self.now_ms = ms;
        self.now_s = (ms / 1000) as u32;
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn pool(&self) -> &PacketPool {
        &self.pool
    }

    pub fn pool_mut(&mut self) -> &mut PacketPool {
        &mut self.pool
    }

    // ---- bridge domains -------------------------------------------------

    pub fn add_domain(&mut self, cfg: DomainConfig) -> Result<DomainId, SwitchError> {
        check_name(&cfg.name)?;
        if self.domain_id(&cfg.name).is_some() {
            return Err(SwitchError::Duplicate {
                kind: "bridge domain",
                name: cfg.name,
            });
        }
        let slot = self
            .domains
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.domains.len());
        if slot > u16::MAX as usize {
            return Err(SwitchError::TooManyDomains(u16::MAX as usize + 1));
        }
        if let Some(s) = &cfg.stp {
            s.validate().map_err(|e| SwitchError::Stp(e.to_string()))?;
        }
        let stp = cfg
            .stp
            .map(|s| Stp::new(MacAddr::derived(0x73, &cfg.name), s, self.now_ms));
        let d = Domain {
            fdb: Fdb::new(cfg.fdb),
            cfg,
            members: Vec::new(),
            gw: None,
            stp,
            stp_ports: Vec::new(),
            stp_tx: Vec::new(),
            stp_flush: Vec::new(),
        };
        if slot == self.domains.len() {
            self.domains.push(Some(d));
        } else {
            self.domains[slot] = Some(d);
        }
        Ok(DomainId(slot as u16))
    }

    pub fn domain_id(&self, name: &str) -> Option<DomainId> {
        self.domains
            .iter()
            .position(|d| d.as_ref().is_some_and(|d| d.cfg.name == name))
            .map(|i| DomainId(i as u16))
    }

    fn domain(&self, id: DomainId) -> Result<&Domain, SwitchError> {
        self.domains
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| SwitchError::UnknownDomain(id.to_string()))
    }

    fn domain_mut(&mut self, id: DomainId) -> Result<&mut Domain, SwitchError> {
        self.domains
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| SwitchError::UnknownDomain(id.to_string()))
    }

    /// Change a domain's FDB settings (aging, limits, damping) in place.
    pub fn set_domain_config(
        &mut self,
        id: DomainId,
        cfg: DomainConfig,
    ) -> Result<(), SwitchError> {
        check_name(&cfg.name)?;
        if self.domain_id(&cfg.name).is_some_and(|other| other != id) {
            return Err(SwitchError::Duplicate {
                kind: "bridge domain",
                name: cfg.name,
            });
        }
        if let Some(s) = &cfg.stp {
            s.validate().map_err(|e| SwitchError::Stp(e.to_string()))?;
        }
        let now = self.now_ms;
        let d = self.domain_mut(id)?;
        d.fdb.set_config(cfg.fdb);
        match (&mut d.stp, cfg.stp) {
            (Some(s), Some(c)) => s.set_config(c, now),
            (None, Some(c)) => {
                d.stp = Some(Stp::new(MacAddr::derived(0x73, &cfg.name), c, now));
                d.stp_ports.clear();
            }
            (_, None) => {
                d.stp = None;
                d.stp_ports.clear();
            }
        }
        d.cfg = cfg;
        self.stp_sync(id);
        Ok(())
    }

    pub fn remove_domain(&mut self, id: DomainId) -> Result<DomainConfig, SwitchError> {
        let d = self.domain(id)?;
        if !d.members.is_empty() {
            return Err(SwitchError::DomainInUse {
                domain: d.cfg.name.clone(),
                ports: d.members.len(),
            });
        }
        if d.gw.is_some() {
            let _ = self.router.remove_gateway(&mut self.pool, id);
        }
        // A domain made later under this id starts without listeners.
        self.router.clear_dns_listeners(id);
        Ok(self.domains[id.0 as usize].take().expect("checked").cfg)
    }

    // ---- the router --------------------------------------------------------

    /// Give `gw.domain` a gateway (replacing the one it has): its addresses
    /// answer ARP/ND and ping, frames to its MAC in its VLAN are routed,
    /// and its subnets become connected routes of its table.
    pub fn set_gateway(&mut self, gw: Gateway) -> Result<(), SwitchError> {
        let id = gw.domain;
        let vid = check_vid(gw.vid as u32)?;
        let old = self.domain(id)?.gw.is_some();
        let previous = if old {
            Some(self.router.remove_gateway(&mut self.pool, id)?)
        } else {
            None
        };
        let fast = GwFast {
            mac: gw.mac.to_u64(),
            vid,
            listens: !self.router.dns_listeners(id).is_empty(),
        };
        if let Err(e) = self.router.add_gateway(gw) {
            if let Some(p) = previous {
                self.router
                    .add_gateway(p)
                    .expect("the gateway that was just removed fits again");
            }
            return Err(e.into());
        }
        self.domain_mut(id)?.gw = Some(fast);
        Ok(())
    }

    /// Remove a domain's gateway: the domain becomes internal (L2 only).
    pub fn remove_gateway(&mut self, id: DomainId) -> Result<Gateway, SwitchError> {
        self.domain(id)?;
        let g = self.router.remove_gateway(&mut self.pool, id)?;
        self.domain_mut(id)?.gw = None;
        Ok(g)
    }

    pub fn add_route(
        &mut self,
        table: TableId,
        prefix: std::net::IpAddr,
        len: u8,
        nh: NextHop,
    ) -> Result<(), SwitchError> {
        if let NextHop::Connected { domain } | NextHop::Via { domain, .. } = nh {
            self.domain(domain)?;
        }
        Ok(self.router.add_route(table, prefix, len, nh)?)
    }

    pub fn remove_route(
        &mut self,
        table: TableId,
        prefix: std::net::IpAddr,
        len: u8,
    ) -> Result<NextHop, SwitchError> {
        Ok(self.router.remove_route(table, prefix, len)?)
    }

    /// A permanent neighbor (an address that never needs ARP/ND); packets
    /// held for it are sent now.
    pub fn add_static_neighbor(
        &mut self,
        domain: DomainId,
        ip: std::net::IpAddr,
        mac: MacAddr,
    ) -> Result<(), SwitchError> {
        self.domain(domain)?;
        let mut out = std::mem::take(&mut self.scratch.l3_out);
        self.router
            .add_static_neighbor(&mut self.pool, domain, ip, mac, &mut out);
        self.scratch.l3_out = out;
        crate::pipeline::l3_flush_out(self);
        Ok(())
    }

    /// Add or replace the DNS listener of `l.domain` in VLAN `l.vid` (see
    /// `router::listen`): its addresses answer ARP/ND, ping and DNS there
    /// with the gateway's MAC. The domain needs a gateway, in another VLAN.
    pub fn set_dns_listener(&mut self, l: crate::router::DnsListener) -> Result<(), SwitchError> {
        let id = l.domain;
        self.domain(id)?;
        self.router.set_dns_listener(l)?;
        self.sync_listens(id)
    }

    /// Remove the DNS listener of `domain` in `vid`.
    pub fn remove_dns_listener(
        &mut self,
        domain: DomainId,
        vid: u16,
    ) -> Result<crate::router::DnsListener, SwitchError> {
        self.domain(domain)?;
        let l = self.router.remove_dns_listener(domain, vid)?;
        self.sync_listens(domain)?;
        Ok(l)
    }

    fn sync_listens(&mut self, id: DomainId) -> Result<(), SwitchError> {
        let listens = !self.router.dns_listeners(id).is_empty();
        if let Some(g) = self.domain_mut(id)?.gw.as_mut() {
            g.listens = listens;
        }
        Ok(())
    }

    /// Send DNS queries to gateway addresses to `sink` (see
    /// `router::punt`); `None` stops punting.
    pub fn set_dns_punt(&mut self, sink: Option<crate::router::PuntSink>) {
        self.router.set_dns_punt(sink);
    }

    /// Send an answer of the DNS service into its domain, from the gateway.
    pub fn send_udp_reply(
        &mut self,
        r: &crate::router::UdpReply,
    ) -> Result<(), crate::router::ReplyError> {
        let mut out = std::mem::take(&mut self.scratch.l3_out);
        let res = self.router.write_udp_reply(&mut self.pool, r, &mut out);
        self.scratch.l3_out = out;
        crate::pipeline::l3_flush_out(self);
        res
    }

    /// Send a TCP segment of the DNS service into its domain, from the
    /// gateway (see `Router::write_ip_reply`).
    pub fn send_ip_reply(
        &mut self,
        r: &crate::router::IpReply,
    ) -> Result<(), crate::router::ReplyError> {
        let mut out = std::mem::take(&mut self.scratch.l3_out);
        let res = self.router.write_ip_reply(&mut self.pool, r, &mut out);
        self.scratch.l3_out = out;
        crate::pipeline::l3_flush_out(self);
        res
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    // ---- the load balancer ---------------------------------------------------

    /// Replace the services with a VIP (`crate::lb`): each in a domain that
    /// exists; all refused, changing nothing, when one is invalid.
    pub fn set_services(&mut self, services: Vec<crate::lb::Service>) -> Result<(), SwitchError> {
        for s in &services {
            self.domain(s.domain)?;
        }
        let now = self.now_ms;
        Ok(self.router.set_services(services, now)?)
    }

    /// Every service's backends (with their health) and flows.
    pub fn services(&self) -> Vec<crate::lb::ServiceStatus> {
        self.router.services()
    }

    // ---- spanning tree -------------------------------------------------------

    /// The domain's RSTP state (bridge, root, port roles and states), if it
    /// runs RSTP.
    pub fn stp_info(&self, id: DomainId) -> Result<Option<crate::stp::StpInfo>, SwitchError> {
        Ok(self.domain(id)?.stp.as_ref().map(|s| s.info()))
    }

    /// Make the domain's RSTP ports match its member ports (added, removed,
    /// settings, link up/down), then send what it wants sent.
    pub(crate) fn stp_sync(&mut self, id: DomainId) {
        let now = self.now_ms;
        let Switch {
            ports,
            domains,
            pool,
            ..
        } = self;
        let Some(d) = domains.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(stp) = d.stp.as_mut() else {
            for &p in &d.members {
                if let Some(ps) = ports[p.index()].as_mut() {
                    ps.stp_learn = true;
                    ps.stp_fwd = true;
                }
            }
            return;
        };
        let want: Vec<(PortId, crate::stp::StpPortConfig, bool)> = d
            .members
            .iter()
            .filter_map(|&p| {
                let ps = ports[p.index()].as_ref()?;
                Some((p, ps.cfg.stp, ps.cfg.enabled && !ps.gone))
            })
            .collect();
        for &(p, _, _) in &d.stp_ports {
            if !want.iter().any(|w| w.0 == p) {
                stp.remove_port(p);
            }
        }
        for &(p, c, up) in &want {
            match d.stp_ports.iter().find(|x| x.0 == p) {
                None => {
                    stp.add_port(p, c, now);
                    if !up {
                        stp.set_port_enabled(p, false, now);
                    }
                }
                Some(&(_, oc, oup)) => {
                    if oc != c {
                        stp.set_port_config(p, c, now);
                    }
                    if oup != up {
                        stp.set_port_enabled(p, up, now);
                    }
                }
            }
        }
        d.stp_ports = want;
        crate::pipeline::stp_service(ports, pool, d, now);
    }

    /// Frames the router made outside a batch (tests, benches): sent now.
    pub fn router_output(&mut self, out: &mut L3Out) {
        self.scratch.l3_out.frames.append(&mut out.frames);
        crate::pipeline::l3_flush_out(self);
    }

    pub fn domains(&self) -> Vec<DomainInfo> {
        self.domains
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                d.as_ref().map(|d| DomainInfo {
                    id: DomainId(i as u16),
                    cfg: d.cfg.clone(),
                    ports: d.members.clone(),
                    fdb_entries: d.fdb.len(),
                })
            })
            .collect()
    }

    // ---- ports ----------------------------------------------------------

    /// Attach a port back end with its configuration.
    pub fn add_port(
        &mut self,
        port: Box<dyn Port>,
        cfg: PortConfig,
    ) -> Result<PortId, SwitchError> {
        let name = port.name().to_string();
        check_name(&name)?;
        if self.port_id(&name).is_some() {
            return Err(SwitchError::Duplicate { kind: "port", name });
        }
        cfg.vlan.validate()?;
        self.domain(cfg.domain)?;
        let slot = self
            .ports
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.ports.len());
        if slot > PortId::MAX as usize {
            return Err(SwitchError::TooManyPorts(PortId::MAX as usize + 1));
        }
        let id = PortId(slot as u16);
        let max_frame = port.max_frame();
        let storm = cfg
            .storm_control
            .map(|s| TokenBucket::new(s.pps, s.burst, self.now_ms));
        let domain = cfg.domain;
        let mac_limit = cfg.mac_limit;
        let ps = PortSlot {
            port,
            cfg,
            counters: PortCounters::default(),
            txq: Batch::new(crate::batch::BATCH_MAX),
            storm,
            max_frame,
            last_error: None,
            capture: None,
            gone: false,
            stp_learn: true,
            stp_fwd: true,
        };
        if slot == self.ports.len() {
            self.ports.push(Some(ps));
        } else {
            self.ports[slot] = Some(ps);
        }
        let d = self.domain_mut(domain).expect("checked");
        d.members.push(id);
        d.fdb.set_port_limit(id, mac_limit);
        self.stp_sync(domain);
        Ok(id)
    }

    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.ports
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.port.name() == name))
            .map(|i| PortId(i as u16))
    }

    pub(crate) fn slot(&self, id: PortId) -> Result<&PortSlot, SwitchError> {
        self.ports
            .get(id.index())
            .and_then(Option::as_ref)
            .ok_or_else(|| SwitchError::UnknownPort(id.to_string()))
    }

    /// Detach a port: its FDB entries (static ones too) go, its queued frames
    /// are freed, and the back end is handed back to the caller to close.
    pub fn remove_port(&mut self, id: PortId) -> Result<Box<dyn Port>, SwitchError> {
        self.slot(id)?;
        let mut ps = self.ports[id.index()].take().expect("checked");
        ps.txq.free_all(&mut self.pool);
        ps.port.detach(&mut self.pool);
        let d = self
            .domain_mut(ps.cfg.domain)
            .expect("a port's domain exists");
        d.members.retain(|p| *p != id);
        d.fdb.flush(FlushFilter {
            port: Some(id),
            vid: None,
            include_static: true,
        });
        d.fdb.set_port_limit(id, 0);
        let domain = ps.cfg.domain;
        self.stp_sync(domain);
        Ok(ps.port)
    }

    /// Replace a port's configuration. Entries learned under the old VLAN
    /// setup are flushed (they may no longer be reachable).
    pub fn set_port_config(&mut self, id: PortId, cfg: PortConfig) -> Result<(), SwitchError> {
        cfg.vlan.validate()?;
        self.domain(cfg.domain)?;
        let old = self.slot(id)?.cfg.clone();
        if old.domain != cfg.domain {
            let d = self.domain_mut(old.domain)?;
            d.members.retain(|p| *p != id);
            d.fdb.flush(FlushFilter {
                port: Some(id),
                vid: None,
                include_static: true,
            });
            d.fdb.set_port_limit(id, 0);
            self.domain_mut(cfg.domain)?.members.push(id);
        } else if old.vlan != cfg.vlan || (old.learning && !cfg.learning) {
            self.domain_mut(cfg.domain)?.fdb.flush(FlushFilter {
                port: Some(id),
                vid: None,
                include_static: false,
            });
        }
        self.domain_mut(cfg.domain)?
            .fdb
            .set_port_limit(id, cfg.mac_limit);
        let now = self.now_ms;
        let ps = self.ports[id.index()].as_mut().expect("checked");
        ps.storm = cfg
            .storm_control
            .map(|s| TokenBucket::new(s.pps, s.burst, now));
        ps.cfg = cfg;
        let (old_domain, new_domain) = (old.domain, ps.cfg.domain);
        self.stp_sync(old_domain);
        if new_domain != old_domain {
            self.stp_sync(new_domain);
        }
        Ok(())
    }

    pub fn port_info(&self, id: PortId) -> Result<PortInfo, SwitchError> {
        let ps = self.slot(id)?;
        let learned = self
            .domain(ps.cfg.domain)
            .map(|d| d.fdb.port_len(id))
            .unwrap_or(0);
        Ok(PortInfo {
            id,
            name: ps.port.name().to_string(),
            gone: ps.gone,
            cfg: ps.cfg.clone(),
            counters: ps.counters.clone(),
            learned,
            last_error: ps.last_error.clone(),
        })
    }

    /// Frames a port's back end lost beneath the switch, by reason (see
    /// [`Port::backend_drops`]). Apart from [`Switch::port_info`] because
    /// back ends may ask the kernel (a system call), which only the
    /// counters view needs.
    pub fn port_backend_drops(&self, id: PortId) -> Vec<(&'static str, u64)> {
        self.slot(id)
            .map(|ps| ps.port.backend_drops())
            .unwrap_or_default()
    }

    pub fn ports(&self) -> Vec<PortInfo> {
        (0..self.ports.len())
            .filter_map(|i| self.port_info(PortId(i as u16)).ok())
            .collect()
    }

    /// The back end of a port (drivers use this to reach their own state).
    pub fn port_backend_mut(&mut self, id: PortId) -> Result<&mut dyn Port, SwitchError> {
        match self.ports.get_mut(id.index()).and_then(Option::as_mut) {
            Some(ps) => Ok(ps.port.as_mut()),
            None => Err(SwitchError::UnknownPort(id.to_string())),
        }
    }

    /// The soonest any port asked to be called again (see
    /// [`Port::wake_after`]).
    pub fn wake_after(&self) -> Option<std::time::Duration> {
        self.ports
            .iter()
            .flatten()
            .filter_map(|p| p.port.wake_after())
            .min()
    }

    /// File descriptors to wait on when idle: (port, fd).
    pub fn poll_fds(&self) -> Vec<(PortId, i32)> {
        self.ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.as_ref()
                    .and_then(|p| p.port.poll_fd())
                    .map(|fd| (PortId(i as u16), fd))
            })
            .collect()
    }

    // ---- forwarding database --------------------------------------------

    /// Install a static entry: `mac` in VLAN `vid` of `domain` lives on `port`.
    pub fn add_static(
        &mut self,
        domain: DomainId,
        vid: u16,
        mac: MacAddr,
        port: PortId,
    ) -> Result<(), SwitchError> {
        let vid = check_vid(vid as u32)?;
        if !mac.is_valid_source() {
            return Err(SwitchError::NotStationMac(mac));
        }
        let dname = self.domain(domain)?.cfg.name.clone();
        let ps = self.slot(port)?;
        let pname = ps.port.name().to_string();
        if ps.cfg.domain != domain {
            let pd = self.domain(ps.cfg.domain)?.cfg.name.clone();
            return Err(SwitchError::WrongDomain {
                port: pname,
                port_domain: pd,
                domain: dname,
            });
        }
        if ps.cfg.vlan.egress(vid) == Egress::NotMember {
            return Err(SwitchError::NotVlanMember { port: pname, vid });
        }
        self.domain_mut(domain)?.fdb.add_static(vid, mac, port);
        Ok(())
    }

    /// Remove one entry. Returns whether it existed.
    pub fn remove_fdb_entry(
        &mut self,
        domain: DomainId,
        vid: u16,
        mac: MacAddr,
    ) -> Result<bool, SwitchError> {
        Ok(self.domain_mut(domain)?.fdb.remove(vid, mac))
    }

    pub fn flush_fdb(
        &mut self,
        domain: DomainId,
        filter: FlushFilter,
    ) -> Result<usize, SwitchError> {
        Ok(self.domain_mut(domain)?.fdb.flush(filter))
    }

    /// How many entries the FDB of `domain` holds.
    pub fn fdb_len(&self, domain: DomainId) -> Result<usize, SwitchError> {
        Ok(self.domain(domain)?.fdb.len())
    }

    pub fn fdb_entries(&self, domain: DomainId) -> Result<Vec<FdbEntryInfo>, SwitchError> {
        Ok(self.domain(domain)?.fdb.entries(self.now_s))
    }

    /// Where `mac` in `vid` is known to live.
    pub fn fdb_lookup(
        &self,
        domain: DomainId,
        vid: u16,
        mac: MacAddr,
    ) -> Result<Option<PortId>, SwitchError> {
        Ok(self
            .domain(domain)?
            .fdb
            .lookup(crate::fdb::fdb_key(vid, mac.to_u64()), self.now_s))
    }

    /// Direct access to a domain's table (benches pre-load it).
    pub fn fdb_mut(&mut self, domain: DomainId) -> Result<&mut Fdb, SwitchError> {
        Ok(&mut self.domain_mut(domain)?.fdb)
    }

    // ---- counters, capture and trace ---------------------------------------

    /// Start (or with `None` stop) copying a port's received and transmitted
    /// frames to a capture sink.
    pub fn set_capture(
        &mut self,
        id: PortId,
        capture: Option<crate::capture::Capture>,
    ) -> Result<(), SwitchError> {
        self.slot(id)?;
        self.ports[id.index()].as_mut().expect("checked").capture = capture;
        Ok(())
    }

    pub fn stage_counters(&self) -> &StageCounters {
        &self.stages
    }

    pub fn tracer(&mut self) -> &mut Tracer {
        &mut self.tracer
    }

    // ---- the loop --------------------------------------------------------

    /// One pass over every port: receive a burst, run it through the
    /// pipeline, transmit. Then a bounded aging step. Returns how many frames
    /// were received (0 means the worker may consider going idle).
    pub fn poll(&mut self) -> usize {
        let mut total = 0;
        let mut rx = self.rx.take().expect("poll is not reentrant");
        for i in 0..self.ports.len() {
            let Some(ps) = self.ports[i].as_mut() else {
                continue;
            };
            if ps.gone {
                continue;
            }
            match ps.port.rx_burst(&mut self.pool, &mut rx) {
                Ok(0) => continue,
                Ok(n) => total += n,
                Err(e) => {
                    record_port_error(ps, e);
                    if rx.is_empty() {
                        continue;
                    }
                }
            }
            self.process(PortId(i as u16), &mut rx);
        }
        self.rx = Some(rx);
        if self.now_ms.wrapping_sub(self.l3_ticked_ms) >= ROUTER_TICK_MS {
            self.l3_ticked_ms = self.now_ms;
            crate::pipeline::l3_tick(self);
            for i in 0..self.domains.len() {
                let now = self.now_ms;
                if let Some(s) = self.domains[i].as_mut().and_then(|d| d.stp.as_mut()) {
                    s.tick(now);
                    self.stp_sync(DomainId(i as u16));
                }
            }
        }
        if total == 0 || self.now_ms.wrapping_sub(self.aged_at_ms) >= AGE_EVERY_MS {
            self.aged_at_ms = self.now_ms;
            self.age(AGE_BUDGET);
        }
        total
    }

    /// Run the aging sweep on every domain with `budget` buckets each.
    /// Returns entries expired.
    pub fn age(&mut self, budget: usize) -> usize {
        let now = self.now_s;
        let mut n = 0;
        for d in self.domains.iter_mut().flatten() {
            n += d.fdb.age_step(now, budget);
        }
        self.stages
            .add(crate::counters::StageCounter::AgeExpired, n as u64);
        n
    }

    /// Let every back end do its idle-time housekeeping.
    pub fn maintain(&mut self) {
        for ps in self.ports.iter_mut().flatten() {
            ps.port.maintain(&mut self.pool);
        }
    }
}

#[cold]
fn record_port_error(ps: &mut PortSlot, e: PortError) {
    // A vanished link stops being polled (the control plane removes or
    // re-attaches it); other errors are kept once, not re-formatted per poll.
    if matches!(e, PortError::Gone(_)) {
        ps.gone = true;
    }
    let msg = e.to_string();
    if ps.last_error.as_deref() != Some(&msg) {
        ps.last_error = Some(msg);
    }
}
