//! The L3 stage over one batch: classify and validate every frame, look
//! the IPv4 and IPv6 destinations of the whole batch up in one go (so the
//! table loads overlap), then route each packet: TTL/hop limit, egress
//! MTU, decrement with the incremental checksum, neighbor, MAC rewrite.
//! Anything addressed to the gateway itself goes to `local.rs`. Each step
//! is written once, generic over the IP family (`family.rs`).
//!
//! Owns: the forwarding decisions. Never: allocation or I/O per packet.

use crate::batch::Batch;
use crate::buf::{PacketPool, PktBuf};
use crate::config::DomainId;
use crate::counters::{DropReason, StageCounter};
use crate::mac::MacAddr;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::read_u16;

use super::family::{Family, Lpm, V4, V6};
use super::neigh::NeighKey;
use super::{Adjacency, L3Out, NH_LOCAL, NextHop, NhId, Router};
use crate::lb::Lb;

const ETH: usize = ethernet::HEADER_LEN;

/// What forwarding needs of the egress gateway.
#[derive(Debug, Clone, Copy)]
struct Egress {
    mac: MacAddr,
    vid: u16,
    mtu: u16,
    routing: bool,
    external: bool,
}

use super::lanes::{Class, Scratch};

/// Classify one frame; a routable packet's destination goes into its
/// family's lanes, one to a service VIP (`vips`: the load balancer, when
/// the domain has VIPs) is classed for the balancer and needs no lookup.
#[inline(always)]
fn classify(f: &[u8], gw_mac: MacAddr, s: &mut Scratch, vips: Option<(&Lb, DomainId)>) -> Class {
    if f.len() < ETH {
        return Class::Drop(DropReason::Runt);
    }
    let to_gw = <[u8; 6]>::try_from(&f[..6]).is_ok_and(|d| d == gw_mac.0);
    match read_u16(f, 12) {
        EtherType::IPV4 => lane::<V4>(&f[ETH..], to_gw, s, vips),
        EtherType::IPV6 => lane::<V6>(&f[ETH..], to_gw, s, vips),
        EtherType::ARP => Class::Arp,
        _ => Class::Drop(DropReason::L3NotRoutable),
    }
}

#[inline(always)]
fn lane<F: Family>(
    ip: &[u8],
    to_gw: bool,
    s: &mut Scratch,
    vips: Option<(&Lb, DomainId)>,
) -> Class {
    match F::check(ip, to_gw) {
        Ok(d) => {
            if let Some((lb, dom)) = vips
                && let Some(svc) = lb.vip(dom, F::V6, F::to_key(d))
            {
                s.lb[s.lb_n] = svc;
                s.lb_n += 1;
                return if F::V6 { Class::Lb6 } else { Class::Lb4 };
            }
            let l = F::lanes_mut(s);
            l.dst[l.n] = d;
            l.n += 1;
            F::CLASS
        }
        Err(c) => c,
    }
}

/// Whether `frame` is unicast to `mac`, a broadcast ARP or IPv6
/// multicast (see [`Router::wants`]).
pub(super) fn wanted(mac: MacAddr, frame: &[u8], tagged: bool) -> bool {
    let et = if tagged { ETH + 2 } else { ETH - 2 };
    if frame.len() < et + 2 {
        return false;
    }
    frame[..6] == mac.0
        || (frame[..6] == [0xff; 6] && read_u16(frame, et) == EtherType::ARP)
        || (frame[..2] == [0x33, 0x33] && read_u16(frame, et) == EtherType::IPV6)
}

impl Router {
    #[inline]
    pub(super) fn drop_pkt(&mut self, pool: &mut PacketPool, buf: PktBuf, r: DropReason) {
        self.counters.drops[r as usize] += 1;
        pool.free(buf);
    }

    /// Whether the L3 stage should see `frame` received in `domain`: unicast
    /// to the gateway MAC, a broadcast ARP, or IPv6 multicast (ND). The L2
    /// stage still floods broadcasts and multicasts normally; the router
    /// gets a copy. `tagged`: the frame still carries the domain's VLAN
    /// tag (its EtherType is 4 bytes further on).
    pub fn wants(&self, domain: DomainId, frame: &[u8], tagged: bool) -> bool {
        let Some(g) = self.gw_state(domain) else {
            return false;
        };
        wanted(g.cfg.mac, frame, tagged)
    }

    /// Route one batch received in `in_domain`. Every frame leaves `batch`:
    /// routed or answered into `out`, held for a neighbor, or dropped and
    /// counted.
    pub fn process(
        &mut self,
        pool: &mut PacketPool,
        in_domain: DomainId,
        batch: &mut Batch,
        now_ms: u64,
        out: &mut L3Out,
    ) {
        let Some(gw) = self.gw_state(in_domain) else {
            self.counters.drops[DropReason::L3NoGateway as usize] += batch.len() as u64;
            batch.free_all(pool);
            return;
        };
        let (gw_mac, t, routing) = (gw.cfg.mac, gw.table, gw.cfg.routing);
        let external = gw.cfg.external;
        let s = &mut self.scratch;
        s.in_routing = routing;
        s.in_external = external;
        s.v4.n = 0;
        s.v6.n = 0;
        s.lb_n = 0;
        let vips = self.lb.serves(in_domain).then_some((&self.lb, in_domain));
        for (i, b) in batch.iter().enumerate() {
            s.class[i] = classify(pool.data(b), gw_mac, s, vips);
        }
        self.lookup_lanes::<V4>(t);
        self.lookup_lanes::<V6>(t);
        let (mut k4, mut k6, mut kl) = (0, 0, 0);
        for (i, buf) in batch.drain().enumerate() {
            match self.scratch.class[i] {
                Class::V4 => {
                    self.forward_lane::<V4>(pool, in_domain, buf, k4, now_ms, out);
                    k4 += 1;
                }
                Class::V6 => {
                    self.forward_lane::<V6>(pool, in_domain, buf, k6, now_ms, out);
                    k6 += 1;
                }
                Class::Lb4 | Class::Lb6 => {
                    let svc = self.scratch.lb[kl];
                    kl += 1;
                    if self.scratch.class[i] == Class::Lb4 {
                        self.lb_packet::<V4>(pool, in_domain, buf, svc, now_ms, out)
                    } else {
                        self.lb_packet::<V6>(pool, in_domain, buf, svc, now_ms, out)
                    }
                }
                Class::Arp => self.handle_arp(pool, in_domain, buf, now_ms, out),
                Class::V6Multicast => self.local::<V6>(pool, in_domain, buf, now_ms, out),
                Class::Drop(r) => self.drop_pkt(pool, buf, r),
            }
        }
    }

    /// Look the destinations of one family's lanes up in table `t`.
    #[inline(always)]
    fn lookup_lanes<F: Family>(&mut self, t: usize) {
        let l = F::lanes_mut(&mut self.scratch);
        if l.n > 0 {
            F::lpm(&self.tables[t]).lookup_batch(&l.dst[..l.n], &mut l.nh[..l.n]);
        }
    }

    /// Forward the packet of lane `k`.
    #[inline(always)]
    fn forward_lane<F: Family>(
        &mut self,
        pool: &mut PacketPool,
        in_d: DomainId,
        buf: PktBuf,
        k: usize,
        now_ms: u64,
        out: &mut L3Out,
    ) {
        let l = F::lanes(&self.scratch);
        let (nh, dst) = (l.nh[k], l.dst[k]);
        self.forward::<F>(pool, in_d, buf, nh, dst, now_ms, out);
    }

    /// The egress of next hop `id` for destination `dst`: (domain,
    /// neighbor key), `None` for a next hop of the wrong family.
    #[inline]
    fn egress<F: Family>(&self, id: NhId, dst: F::Addr) -> Option<(DomainId, NeighKey)> {
        let (d, ip) = match self.nh[id as usize].nh {
            NextHop::Connected { domain } => (domain, dst),
            NextHop::Via { gateway, domain } => (domain, F::from_ip(gateway)?),
            NextHop::Local => return None,
        };
        let key = NeighKey {
            domain: d,
            v6: F::V6,
            ip: F::to_key(ip),
        };
        Some((d, key))
    }

    /// Check the egress gateway and the inter-domain policy; returns its
    /// MAC, VLAN and MTU.
    #[inline(always)]
    fn egress_gateway(&self, in_d: DomainId, eg: DomainId) -> Result<Egress, DropReason> {
        let e = self.gw_state(eg).ok_or(DropReason::L3NoGateway)?;
        if eg != in_d {
            let i = self.gw_state(in_d).ok_or(DropReason::L3NoGateway)?;
            let routed = i.cfg.routing && e.cfg.routing;
            if !(routed || i.cfg.external || e.cfg.external) {
                return Err(DropReason::L3RoutingDisabled);
            }
        }
        Ok(Egress {
            mac: e.cfg.mac,
            vid: e.cfg.vid,
            mtu: e.cfg.mtu,
            routing: e.cfg.routing,
            external: e.cfg.external,
        })
    }

    /// Route one packet to `dst` whose next hop is `nh`: TTL / hop limit,
    /// egress MTU, decrement, neighbor, MAC rewrite; to the gateway itself
    /// it goes to local delivery, and what cannot be routed gets its ICMP
    /// error.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn forward<F: Family>(
        &mut self,
        pool: &mut PacketPool,
        in_d: DomainId,
        mut buf: PktBuf,
        nh: Option<NhId>,
        dst: F::Addr,
        now_ms: u64,
        out: &mut L3Out,
    ) {
        // ---- load-balancer hook (`crate::lb`, glue in `lb.rs`): a packet
        // to a service VIP of its own domain is balanced, not routed.
        if let Some(svc) = self.lb_service::<F>(in_d, dst) {
            return self.lb_packet::<F>(pool, in_d, buf, svc, now_ms, out);
        }
        // ---- end of the load-balancer hook.
        let Some(id) = nh else {
            let r = DropReason::L3NoRoute;
            return self.icmp_error::<F>(pool, in_d, buf, F::NO_ROUTE, r, now_ms, out);
        };
        if id == NH_LOCAL {
            return self.local::<F>(pool, in_d, buf, now_ms, out);
        }
        let ip = &pool.data(&buf)[ETH..];
        let (ttl, total) = (F::ttl(ip), F::total_len(ip));
        if ttl <= 1 {
            let r = DropReason::L3TtlExceeded;
            return self.icmp_error::<F>(pool, in_d, buf, F::TTL_EXCEEDED, r, now_ms, out);
        }
        if let Some(a) = self.adjacency(id, in_d)
            && (total <= a.mtu as usize || buf.offload().is_gso())
        {
            if buf.len() != ETH + total {
                pool.set_len(&mut buf, ETH + total);
            }
            let f = pool.data_mut(&buf);
            F::decrement_ttl(&mut f[ETH..], ttl);
            return self.emit(f, buf, &a, out);
        }
        self.forward_slow::<F>(pool, in_d, buf, id, dst, (ttl, total), now_ms, out)
    }

    /// [`Self::forward`] without a current adjacency: egress policy, MTU,
    /// neighbor resolution (which builds the adjacency).
    #[allow(clippy::too_many_arguments)]
    fn forward_slow<F: Family>(
        &mut self,
        pool: &mut PacketPool,
        in_d: DomainId,
        mut buf: PktBuf,
        id: NhId,
        dst: F::Addr,
        (ttl, total): (u8, usize),
        now_ms: u64,
        out: &mut L3Out,
    ) {
        let Some((eg, key)) = self.egress::<F>(id, dst) else {
            return self.drop_pkt(pool, buf, DropReason::L3NoRoute);
        };
        let e = match self.egress_gateway(in_d, eg) {
            Ok(x) => x,
            Err(r) => return self.drop_pkt(pool, buf, r),
        };
        let (gw_mac, vid, mtu) = (e.mac, e.vid, e.mtu);
        // A GSO super-frame is segmented to `gso_size` at the egress.
        if total > mtu as usize && !buf.offload().is_gso() {
            return match F::too_big(&pool.data(&buf)[ETH..], mtu) {
                Ok(kind) => {
                    let r = DropReason::L3FragNeeded;
                    self.icmp_error::<F>(pool, in_d, buf, kind, r, now_ms, out)
                }
                Err(r) => self.drop_pkt(pool, buf, r),
            };
        }
        if buf.len() != ETH + total {
            pool.set_len(&mut buf, ETH + total);
        }
        let mac = self.resolve(id, &key, eg, e);
        let f = pool.data_mut(&buf);
        F::decrement_ttl(&mut f[ETH..], ttl);
        match mac {
            Some(mac) => {
                f[0..6].copy_from_slice(&mac.0);
                f[6..12].copy_from_slice(&gw_mac.0);
                self.counters.stages.inc(StageCounter::L3Forwarded);
                out.push(key.domain, vid, buf);
            }
            None => self.hold(pool, key, buf, in_d, now_ms, out),
        }
    }

    /// The adjacency of next hop `id`, if it is a resolved `Via` whose
    /// rewrite is current and that `in_d` may route to.
    #[inline(always)]
    fn adjacency(&self, id: NhId, in_d: DomainId) -> Option<Adjacency> {
        let a = self.nh[id as usize].adj?;
        let s = &self.scratch;
        let allowed =
            a.domain == in_d || (s.in_routing && a.routing) || s.in_external || a.external;
        (a.epoch == self.epoch() && allowed).then_some(a)
    }

    /// Rewrite the MACs of `f` (the frame of `buf`) and hand it out.
    #[inline(always)]
    fn emit(&mut self, f: &mut [u8], buf: PktBuf, a: &Adjacency, out: &mut L3Out) {
        f[0..6].copy_from_slice(&a.dst.0);
        f[6..12].copy_from_slice(&a.src.0);
        self.counters.stages.inc(StageCounter::L3Forwarded);
        out.push(a.domain, a.vid, buf);
    }

    /// The neighbor's MAC (slow path); a resolved `Via` next hop gets an
    /// adjacency built from it and `egress` (gateway MAC, domain, VLAN,
    /// MTU, routing).
    fn resolve(
        &mut self,
        id: NhId,
        key: &NeighKey,
        domain: DomainId,
        e: Egress,
    ) -> Option<MacAddr> {
        let mac = self.neigh.resolve(key);
        let epoch = self.epoch();
        let slot = &mut self.nh[id as usize];
        if let (Some(m), NextHop::Via { .. }) = (mac, slot.nh) {
            slot.adj = Some(Adjacency {
                epoch,
                dst: m,
                src: e.mac,
                domain,
                vid: e.vid,
                mtu: e.mtu,
                routing: e.routing,
                external: e.external,
            });
        }
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::Offload;
    use crate::router::{Gateway, RouterConfig};
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn gso_super_frames_are_not_held_to_the_mtu() {
        let mut pool = PacketPool::with_large(8, 2048, 256, 1).unwrap();
        let mut r = Router::new(RouterConfig::default(), 0);
        let (d1, d2) = (DomainId(1), DomainId(2));
        let g1 = MacAddr::local(1);
        r.add_gateway(Gateway::new(d1, g1).with_ipv4(Ipv4Addr::new(10, 0, 1, 1), 24))
            .unwrap();
        r.add_gateway(
            Gateway::new(d2, MacAddr::local(2)).with_ipv4(Ipv4Addr::new(10, 0, 2, 1), 24),
        )
        .unwrap();
        let mut out = L3Out::default();
        let nb = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 9));
        r.add_static_neighbor(&mut pool, d2, nb, MacAddr::local(9), &mut out);
        let mut f = vec![0u8; 14 + 9000];
        f[..6].copy_from_slice(&g1.0);
        f[12..14].copy_from_slice(&[8, 0]);
        crate::wire::ipv4::write_header(&mut f[14..], 9000, 64, 6, 0x0a00_010a, 0x0a00_0209);
        for (gso, want_out) in [(true, 1), (false, 1)] {
            let mut b = pool.alloc_from(&f).unwrap();
            if gso {
                b.set_offload(Offload {
                    gso_type: Offload::GSO_TCPV4,
                    gso_size: 1448,
                    ..Offload::NONE
                });
            }
            let mut batch = Batch::new(1);
            batch.push(b).unwrap();
            r.process(&mut pool, d1, &mut batch, 0, &mut out);
            assert_eq!(out.len(), want_out);
            let o = out.frames.pop().unwrap();
            // Forwarded to D2 as a whole, or frag-needed back to D1.
            assert_eq!(o.domain, if gso { d2 } else { d1 });
            pool.free(o.buf);
        }
    }
}
