//! The router's side of the load balancer (`crate::lb`): the hook that
//! hands packets to a VIP to it and carries out its verdict (MAC rewrite,
//! neighbor resolution of the backend, or the gateway's own handling),
//! and the health probes it asks for on every tick.
//!
//! Owns: the glue between `Router` and `Lb`. Never: balancing decisions.

use crate::buf::{PacketPool, PktBuf};
use crate::config::DomainId;
use crate::counters::{DropReason, StageCounter};
use crate::lb::{Established, LbError, Probe, Service, ServiceStatus, Verdict, nat};
use crate::mac::MacAddr;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::{ipv4, ipv6};

use super::family::{Family, V4, V6};
use super::neigh::NeighKey;
use super::{L3Out, Router};

const ETH: usize = ethernet::HEADER_LEN;

/// What the load balancer's fast path (`pipeline/vip.rs`) holds for one
/// batch into a domain with VIPs: fixed for the batch (no control change
/// runs during one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LbFast {
    domain: DomainId,
    gw_mac: MacAddr,
    /// The gateway's VLAN: the backends' output VLAN.
    pub(crate) vid: u16,
    /// The neighbor table's generation, under which flows cache MACs.
    generation: u64,
    /// The batch's last VIP port.
    vip: Option<VipPort>,
}

/// A packet the fast path can take (see [`Router::lb_established`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastHit {
    /// The flow; its `mac` is the backend's.
    pub(crate) flow: Established,
    v6: bool,
    proto: u8,
    flags: u8,
}

/// A VIP's port: its service and the backends' port.
#[derive(Debug, Clone, Copy)]
struct VipPort {
    /// Of the family `fc` serves.
    dst: u128,
    svc: u32,
    proto: u8,
    port: u16,
    target: u16,
}

impl Router {
    /// Replace the load balancer's services (see [`crate::lb::Lb::set`]).
    pub fn set_services(&mut self, s: Vec<Service>, now_ms: u64) -> Result<(), LbError> {
        self.lb.set(s, now_ms)
    }

    /// Every service's backends (with their health) and flows.
    pub fn services(&self) -> Vec<ServiceStatus> {
        self.lb.status()
    }

    /// The service whose VIP `dst` is, when `in_d` has VIPs (the fast
    /// path's test: one load while no VIP is configured in `in_d`).
    #[inline(always)]
    pub(super) fn lb_service<F: Family>(&self, in_d: DomainId, dst: F::Addr) -> Option<u32> {
        if !self.lb.serves(in_d) {
            return None;
        }
        self.lb.vip(in_d, F::V6, F::to_key(dst))
    }

    /// The load balancer's fast path into domain `d` (`pipeline/vip.rs`):
    /// `None` when `d` has no VIP or no gateway, or in a dry run.
    #[inline]
    pub(crate) fn lb_fast(&self, d: DomainId) -> Option<LbFast> {
        if !self.lb.serves(d) || self.dry {
            return None;
        }
        let g = self.gw_state(d)?;
        Some(LbFast {
            domain: d,
            gw_mac: g.cfg.mac,
            vid: g.cfg.vid,
            generation: self.neigh.generation(),
            vip: None,
        })
    }

    /// The fast path's probe of `frame`, received in `fc.domain` and
    /// untagged: an IPv4 (IPv6 when `V6`) packet of an established flow to
    /// a VIP that the general path (`process`, `lb_packet`) would send to
    /// the backend MAC the flow caches (`FastHit::flow`). Changes nothing;
    /// `None`: the general path decides. One `fc` serves one family.
    #[inline(always)]
    pub(crate) fn lb_established<const V6: bool>(
        &self,
        fc: &mut LbFast,
        frame: &[u8],
    ) -> Option<FastHit> {
        // What `process` checks of it before its class is `Lb4` / `Lb6`.
        let ether = if V6 { EtherType::IPV6 } else { EtherType::IPV4 };
        if frame.len() < ETH
            || frame[..6] != fc.gw_mac.0
            || crate::wire::read_u16(frame, 12) != ether
        {
            return None;
        }
        let f = if V6 {
            nat::parse_v6_plain(&frame[ETH..])?
        } else {
            nat::parse_v4_plain(&frame[ETH..])?
        };
        // The rest of `V4::check` / `V6::check` (a routable destination)
        // holds for every VIP (`lb::routed_unicast`).
        let (svc, target) = match fc.vip {
            Some(v) if v.dst == f.dst && v.port == f.dport && v.proto == f.proto => {
                (v.svc, v.target)
            }
            _ => {
                let svc = if V6 {
                    self.lb_service::<V6>(fc.domain, f.dst)?
                } else {
                    self.lb_service::<V4>(fc.domain, f.dst as u32)?
                };
                let target = self.lb.target(svc, f.proto, f.dport)?;
                fc.vip = Some(VipPort {
                    dst: f.dst,
                    svc,
                    proto: f.proto,
                    port: f.dport,
                    target,
                });
                (svc, target)
            }
        };
        let flow = self.lb.established(svc, target, &f, fc.generation)?;
        Some(FastHit {
            flow,
            v6: V6,
            proto: f.proto,
            flags: f.flags,
        })
    }

    /// Send the packet in `frame` of `hit` (from [`Router::lb_established`],
    /// nothing changed since) to its backend: the load balancer's rewrite
    /// and the MACs, as `lb_packet` would.
    #[inline(always)]
    pub(crate) fn lb_forward(
        &mut self,
        fc: &LbFast,
        hit: &FastHit,
        frame: &mut [u8],
        partial: bool,
        now_ms: u64,
    ) {
        // What the rewrite reads of the parse: fixed for plain packets.
        let f = nat::Flow {
            v6: hit.v6,
            proto: hit.proto,
            src: 0,
            dst: 0,
            sport: 0,
            dport: 0,
            flags: hit.flags,
            l4: if hit.v6 { 40 } else { 20 },
        };
        let client = MacAddr(frame[6..12].try_into().expect("6 bytes"));
        let ip = &mut frame[ETH..];
        self.lb.forward(&hit.flow, ip, &f, client, partial, now_ms);
        frame[0..6].copy_from_slice(&hit.flow.mac.to_be_bytes()[2..]);
        frame[6..12].copy_from_slice(&fc.gw_mac.0);
    }

    /// Count `n` packets the fast path sent to backends.
    #[inline]
    pub(crate) fn lb_forwarded(&mut self, n: usize) {
        let s = &mut self.counters.stages;
        s.add(StageCounter::LbToBackend, n as u64);
        s.add(StageCounter::LbFastPath, n as u64);
    }

    /// Whether `ip` is a VIP of `d` (ARP and ND answer for it).
    pub(super) fn is_vip(&self, d: DomainId, v6: bool, ip: u128) -> bool {
        self.lb.is_vip(d, v6, ip)
    }

    /// A packet to the VIP of service `svc`, received in `in_d`.
    pub(super) fn lb_packet<F: Family>(
        &mut self,
        pool: &mut PacketPool,
        in_d: DomainId,
        buf: PktBuf,
        svc: u32,
        now_ms: u64,
        out: &mut L3Out,
    ) {
        let Some(g) = self.gw_state(in_d) else {
            return self.drop_pkt(pool, buf, DropReason::L3NoGateway);
        };
        let (gw_mac, vid) = (g.cfg.mac, g.cfg.vid);
        let partial = buf.offload().needs_csum();
        let f = pool.data_mut(&buf);
        let mac = MacAddr(f[6..12].try_into().expect("6 bytes"));
        let (v, new) = self.lb.packet(svc, &mut f[ETH..], mac, partial, now_ms);
        if new {
            self.counters.stages.inc(StageCounter::LbNewFlows);
            // A dry run's new flow was not kept (`Lb::dry`); tested only
            // here, off the path of packets of known flows.
            if self.dry {
                self.dry_lb(in_d, F::V6, svc, v);
            }
        }
        match v {
            Verdict::ToBackend(ip) => {
                let key = NeighKey {
                    domain: in_d,
                    v6: F::V6,
                    ip,
                };
                self.counters.stages.inc(StageCounter::LbToBackend);
                // The flow keeps its backend's MAC while the neighbor
                // table does not change.
                let generation = self.neigh.generation();
                let mac = self.lb.cached_mac(generation).or_else(|| {
                    let m = self.neigh.resolve(&key)?;
                    self.lb.cache_mac(m, generation);
                    Some(m)
                });
                match mac {
                    Some(m) => {
                        f[0..6].copy_from_slice(&m.0);
                        f[6..12].copy_from_slice(&gw_mac.0);
                        out.push(in_d, vid, buf);
                    }
                    None => self.hold(pool, key, buf, in_d, now_ms, out),
                }
            }
            Verdict::ToClient(m) => {
                f[0..6].copy_from_slice(&m.0);
                f[6..12].copy_from_slice(&gw_mac.0);
                self.counters.stages.inc(StageCounter::LbToClient);
                out.push(in_d, vid, buf);
            }
            Verdict::Local => self.local::<F>(pool, in_d, buf, now_ms, out),
            Verdict::Drop(r) => self.drop_pkt(pool, buf, r),
            Verdict::Probe { reset } => {
                self.counters.stages.inc(StageCounter::LbProbeAnswers);
                if reset {
                    self.probe_reset(pool, in_d, buf, gw_mac, vid, out);
                } else {
                    pool.free(buf);
                }
            }
        }
    }

    /// Answer a probe's SYN-ACK (in `buf`) with a RST, in place, so the
    /// backend forgets the half-open connection at once.
    fn probe_reset(
        &mut self,
        pool: &mut PacketPool,
        d: DomainId,
        mut buf: PktBuf,
        gw_mac: MacAddr,
        vid: u16,
        out: &mut L3Out,
    ) {
        let f = pool.tail_room_mut(&buf);
        let Some(fl) = nat::parse(&f[ETH..]) else {
            return pool.free(buf);
        };
        let (_, ack) = nat::tcp_seq_ack(&f[ETH..], &fl);
        let peer = MacAddr(f[6..12].try_into().expect("6 bytes"));
        let len = write_tcp_frame(
            f,
            (peer, gw_mac),
            fl.v6,
            (fl.dst, fl.src),
            (fl.dport, fl.sport),
            ack,
            nat::RST,
        );
        pool.set_len(&mut buf, len);
        buf.set_offload(crate::buf::Offload::NONE);
        out.push(d, vid, buf);
    }

    /// Send the health probes that are due, and expire idle flows.
    pub(super) fn lb_tick(&mut self, pool: &mut PacketPool, now_ms: u64, out: &mut L3Out) {
        if self.lb.is_empty() && self.lb.flows() == 0 {
            return;
        }
        let mut probes = std::mem::take(&mut self.lb_probes);
        probes.clear();
        let expired = self.lb.tick(now_ms, &mut probes);
        self.counters
            .stages
            .add(StageCounter::LbExpiredFlows, expired as u64);
        for p in &probes {
            self.send_probe(pool, p, now_ms, out);
        }
        self.lb_probes = probes;
    }

    fn send_probe(&mut self, pool: &mut PacketPool, p: &Probe, now_ms: u64, out: &mut L3Out) {
        let Some(g) = self.gw_state(p.domain) else {
            return;
        };
        let (gw_mac, vid) = (g.cfg.mac, g.cfg.vid);
        let Some(mut b) = pool.alloc() else {
            self.counters.drops[DropReason::PoolExhausted as usize] += 1;
            return;
        };
        let key = NeighKey {
            domain: p.domain,
            v6: p.v6,
            ip: p.backend,
        };
        let mac = self.neigh.resolve(&key);
        let f = pool.tail_room_mut(&b);
        let len = write_tcp_frame(
            f,
            (mac.unwrap_or(MacAddr([0; 6])), gw_mac),
            p.v6,
            (p.vip, p.backend),
            (p.sport, p.dport),
            p.seq,
            nat::SYN,
        );
        pool.set_len(&mut b, len);
        self.counters.stages.inc(StageCounter::LbProbes);
        match mac {
            Some(_) => out.push(p.domain, vid, b),
            None => self.hold(pool, key, b, p.domain, now_ms, out),
        }
    }
}

/// Write an Ethernet + IP + TCP (no payload) frame into `f`; returns its
/// length. `eth` is (destination, source), `addrs` and `ports` (source,
/// destination).
fn write_tcp_frame(
    f: &mut [u8],
    eth: (MacAddr, MacAddr),
    v6: bool,
    addrs: (u128, u128),
    ports: (u16, u16),
    seq: u32,
    flags: u8,
) -> usize {
    f[0..6].copy_from_slice(&eth.0.0);
    f[6..12].copy_from_slice(&eth.1.0);
    let ip_len = if v6 {
        f[12..14].copy_from_slice(&EtherType::IPV6.to_be_bytes());
        let (s, d) = (addrs.0.to_be_bytes(), addrs.1.to_be_bytes());
        ipv6::write_header(&mut f[ETH..], 20, nat::TCP, 64, &s, &d);
        ipv6::HEADER_LEN
    } else {
        f[12..14].copy_from_slice(&EtherType::IPV4.to_be_bytes());
        let (s, d) = (addrs.0 as u32, addrs.1 as u32);
        ipv4::write_header(&mut f[ETH..], 40, 64, nat::TCP, s, d);
        ipv4::HEADER_LEN
    };
    let t = &mut f[ETH + ip_len..ETH + ip_len + 20];
    nat::write_tcp(t, v6, addrs.0, addrs.1, ports, seq, 0, flags);
    ETH + ip_len + 20
}
