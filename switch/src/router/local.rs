//! What the gateway itself answers and originates: ARP replies and NAs for
//! its addresses, echo replies, ICMP/ICMPv6 errors (rate limited, built in
//! place in front of the offending packet, in its headroom), ARP requests
//! and NSs for unresolved neighbors, and the release of held packets.
//! Echo, port unreachable, errors and solicitations are written once,
//! generic over the IP family; ARP and neighbor discovery are the two
//! families' own protocols.
//!
//! Owns: the slow path of the L3 stage. Never: I/O; a frame it originates
//! comes from the pool, never from the heap.

use arrayvec::ArrayVec;

use crate::buf::{PacketPool, PktBuf};
use crate::config::DomainId;
use crate::counters::{DropReason, StageCounter};
use crate::mac::MacAddr;
use crate::wire::arp::{self, ArpPacket};
use crate::wire::ethernet;
use crate::wire::icmpv6::{self, Icmpv6Packet};
use crate::wire::ipv4::Protocol;
use crate::wire::ipv6::Ipv6Packet;

use super::family::{Family, V4, V6, source};
use super::neigh::{Hold, NeighKey, PENDING_MAX};
use super::{L3Out, Router};

const ETH: usize = ethernet::HEADER_LEN;

use super::lanes::IcmpKind;

impl Router {
    /// Hold a packet received in `from` for an unresolved neighbor; solicit
    /// if it is new.
    pub(super) fn hold(
        &mut self,
        pool: &mut PacketPool,
        key: NeighKey,
        buf: PktBuf,
        from: DomainId,
        now_ms: u64,
        out: &mut L3Out,
    ) {
        if self.dry {
            return self.dry_hold(pool, key, buf, now_ms, out);
        }
        match self.neigh.hold(key, buf, from, now_ms) {
            Hold::Held { solicit } => {
                self.counters.stages.inc(StageCounter::NeighHeld);
                if solicit {
                    self.solicit(pool, key, now_ms, out);
                }
            }
            Hold::QueueFull(b) => self.drop_pkt(pool, b, DropReason::NeighPendingFull),
            Hold::TableFull(b) => self.drop_pkt(pool, b, DropReason::NeighTableFull),
        }
    }

    /// [`Self::hold`] in a dry run: the neighbor table keeps no entry and
    /// no packet; the solicitation a real run would send is shown.
    #[cold]
    #[inline(never)]
    fn dry_hold(
        &mut self,
        pool: &mut PacketPool,
        key: NeighKey,
        buf: PktBuf,
        now_ms: u64,
        out: &mut L3Out,
    ) {
        let ip = super::dry::ip_of(&key);
        let pending = self.neigh.get(&key).is_some();
        self.dry_note(format!(
            "neighbor {ip} in domain {} unresolved: packet would be held{}",
            key.domain,
            if pending {
                " (already soliciting)"
            } else {
                ", solicited"
            }
        ));
        pool.free(buf);
        if !pending {
            self.solicit(pool, key, now_ms, out);
        }
    }

    /// Send an ARP request or NS for `k` out of its domain's gateway.
    pub(super) fn solicit(
        &mut self,
        pool: &mut PacketPool,
        k: NeighKey,
        now_ms: u64,
        out: &mut L3Out,
    ) {
        if k.v6 {
            self.solicit_as::<V6>(pool, k, now_ms, out)
        } else {
            self.solicit_as::<V4>(pool, k, now_ms, out)
        }
    }

    fn solicit_as<F: Family>(
        &mut self,
        pool: &mut PacketPool,
        k: NeighKey,
        now_ms: u64,
        out: &mut L3Out,
    ) {
        if !self.solicit_bucket.admit(now_ms) {
            self.counters.stages.inc(StageCounter::L3SolicitRateLimited);
            return;
        }
        let Some(g) = self.gw_state(k.domain) else {
            return;
        };
        let (mac, vid) = (g.cfg.mac, g.cfg.vid);
        let target = F::from_key(k.ip);
        let Some(src) = source::<F>(&g.cfg, target) else {
            return;
        };
        let Some(mut b) = pool.alloc() else {
            self.counters.drops[DropReason::PoolExhausted as usize] += 1;
            return;
        };
        match F::write_solicit(pool.tail_room_mut(&b), mac, src, target) {
            Ok(n) => {
                pool.set_len(&mut b, n);
                self.counters.stages.inc(F::SOLICITS);
                out.push(k.domain, vid, b);
            }
            Err(_) => pool.free(b),
        }
    }

    /// Send packets that waited for `k`, now known at `mac`.
    pub(super) fn release(
        &mut self,
        pool: &mut PacketPool,
        k: NeighKey,
        mac: MacAddr,
        held: ArrayVec<PktBuf, PENDING_MAX>,
        out: &mut L3Out,
    ) {
        let g = self.gw_state(k.domain).map(|g| (g.cfg.mac, g.cfg.vid));
        for b in held {
            let Some((gw_mac, vid)) = g else {
                self.drop_pkt(pool, b, DropReason::L3NoGateway);
                continue;
            };
            let f = pool.data_mut(&b);
            f[0..6].copy_from_slice(&mac.0);
            f[6..12].copy_from_slice(&gw_mac.0);
            self.counters.stages.inc(StageCounter::NeighReleased);
            self.counters.stages.inc(StageCounter::L3Forwarded);
            out.push(k.domain, vid, b);
        }
    }

    /// `k` is at `mac` (an ARP or ND message said so): update the neighbor
    /// and send what waited for it; in a dry run, only say so. Out of line:
    /// the routed path that `process` inlines carries no part of it.
    #[inline(never)]
    fn confirm(
        &mut self,
        pool: &mut PacketPool,
        k: NeighKey,
        mac: MacAddr,
        now_ms: u64,
        create: bool,
        out: &mut L3Out,
    ) {
        if self.dry {
            return self.dry_learn(super::dry::ip_of(&k), mac);
        }
        let held = self.neigh.confirm(k, mac, now_ms, create);
        self.release(pool, k, mac, held, out);
    }

    /// ARP in `in_d`: learn the sender, answer requests for our addresses.
    pub(super) fn handle_arp(
        &mut self,
        pool: &mut PacketPool,
        in_d: DomainId,
        mut buf: PktBuf,
        now_ms: u64,
        out: &mut L3Out,
    ) {
        let Ok(a) = ArpPacket::new_checked(&pool.data(&buf)[ETH..]) else {
            return self.drop_pkt(pool, buf, DropReason::L3Malformed);
        };
        let (op, sha, spa, tpa) = (a.operation(), a.sender_mac(), a.sender_ip(), a.target_ip());
        let Some(g) = self.gw_state(in_d) else {
            return self.drop_pkt(pool, buf, DropReason::L3NoGateway);
        };
        let (mac, vid) = (g.cfg.mac, g.cfg.vid);
        let for_us = g.cfg.ipv4.iter().any(|(ip, _)| *ip == tpa)
            || self.is_vip(in_d, false, u32::from(tpa) as u128);
        if sha.is_valid_source() && !spa.is_unspecified() {
            let k = NeighKey::v4(in_d, spa.into());
            self.confirm(pool, k, sha, now_ms, for_us, out);
        }
        if op == arp::OP_REQUEST && for_us && sha.is_valid_source() {
            pool.set_len(&mut buf, arp::FRAME_LEN);
            if arp::write_reply(pool.data_mut(&buf), mac, tpa, sha, spa).is_ok() {
                self.counters.stages.inc(StageCounter::L3ArpReplies);
                return out.push(in_d, vid, buf);
            }
        }
        self.counters.stages.inc(StageCounter::L3NeighConsumed);
        pool.free(buf);
    }

    /// An IP packet to one of the gateway's addresses, or ICMPv6 to a
    /// multicast group: echo → reply, DNS (UDP or TCP) to the domain's own gateway →
    /// the punt sink (`punt.rs`), other UDP → port unreachable, neighbor
    /// discovery (IPv6), anything else dropped.
    pub(super) fn local<F: Family>(
        &mut self,
        pool: &mut PacketPool,
        in_d: DomainId,
        mut buf: PktBuf,
        now_ms: u64,
        out: &mut L3Out,
    ) {
        let Some(g) = self.gw_state(in_d) else {
            return self.drop_pkt(pool, buf, DropReason::L3NoGateway);
        };
        let (mac, vid) = (g.cfg.mac, g.cfg.vid);
        let ip = &pool.data(&buf)[ETH..];
        let unicast = !F::is_multicast(F::dst(ip));
        if F::protocol(ip) == Protocol::TCP && unicast && self.wants_punt::<F>(in_d, ip) {
            return self.punt(pool, in_d, vid, buf);
        }
        if F::protocol(ip) == Protocol::UDP && unicast {
            if self.wants_punt::<F>(in_d, ip) {
                return self.punt(pool, in_d, vid, buf);
            }
            let r = DropReason::L3LocalUnsupported;
            return self.icmp_error::<F>(pool, in_d, buf, F::PORT_UNREACHABLE, r, now_ms, out);
        }
        match F::icmp_header(ip) {
            Some((t, _)) if t == F::ECHO_REQUEST && unicast => {
                match F::echo_reply_in_place(pool.data_mut(&buf), mac) {
                    Ok(n) => {
                        pool.set_len(&mut buf, n);
                        self.counters.stages.inc(StageCounter::L3EchoReplies);
                        out.push(in_d, vid, buf);
                    }
                    Err(_) => self.drop_pkt(pool, buf, DropReason::L3Malformed),
                }
            }
            Some((t, 0)) if F::V6 && F::ttl(ip) == icmpv6::ND_HOP_LIMIT => {
                self.neighbor_discovery(pool, in_d, buf, t, now_ms, out)
            }
            _ => self.drop_pkt(pool, buf, DropReason::L3LocalUnsupported),
        }
    }

    /// An ICMPv6 message of type `t` that may be neighbor discovery (hop
    /// limit 255, code 0, checksum checked): NS for our address → NA, NS
    /// and NA → neighbor update.
    fn neighbor_discovery(
        &mut self,
        pool: &mut PacketPool,
        in_d: DomainId,
        mut buf: PktBuf,
        t: u8,
        now_ms: u64,
        out: &mut L3Out,
    ) {
        let Some(g) = self.gw_state(in_d) else {
            return self.drop_pkt(pool, buf, DropReason::L3NoGateway);
        };
        let (mac, vid) = (g.cfg.mac, g.cfg.vid);
        let data = pool.data(&buf);
        let ip = Ipv6Packet::new_unchecked(&data[ETH..]);
        let src = ip.src_bytes();
        let msg = Icmpv6Packet::new_unchecked(ip.payload());
        let src_ok = src != [0; 16] && src[0] != 0xff;
        match t {
            icmpv6::TYPE_NEIGHBOR_SOLICIT => {
                let Some(target) = msg.nd_target() else {
                    return self.drop_pkt(pool, buf, DropReason::L3Malformed);
                };
                let for_us = g.cfg.ipv6.iter().any(|(a, _)| a.octets() == target)
                    || self.is_vip(in_d, true, u128::from_be_bytes(target));
                let peer_mac = msg.nd_lladdr();
                let eth_src = MacAddr(data[6..12].try_into().unwrap());
                if let (true, Some(m)) = (src_ok, peer_mac) {
                    let k = NeighKey::v6(in_d, u128::from_be_bytes(src));
                    self.confirm(pool, k, m, now_ms, for_us, out);
                }
                if for_us && src_ok {
                    let to = peer_mac.unwrap_or(eth_src);
                    pool.set_len(&mut buf, icmpv6::ND_FRAME_LEN);
                    let f = pool.data_mut(&buf);
                    if icmpv6::write_advert(f, mac, &target, to, &src).is_ok() {
                        self.counters.stages.inc(StageCounter::L3NdAdverts);
                        return out.push(in_d, vid, buf);
                    }
                }
                self.counters.stages.inc(StageCounter::L3NeighConsumed);
                pool.free(buf);
            }
            icmpv6::TYPE_NEIGHBOR_ADVERT => {
                if let (Some(t), Some(m)) = (msg.nd_target(), msg.nd_lladdr()) {
                    let k = NeighKey::v6(in_d, u128::from_be_bytes(t));
                    self.confirm(pool, k, m, now_ms, false, out);
                }
                self.counters.stages.inc(StageCounter::L3NeighConsumed);
                pool.free(buf);
            }
            _ => self.drop_pkt(pool, buf, DropReason::L3LocalUnsupported),
        }
    }

    /// Drop `buf` (counted as `reason`) and, within the rate limit, send
    /// the ICMP error `kind` back to its source, built in place in front of
    /// the packet (RFC 1812 §4.3.2, RFC 4443 §2.4).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn icmp_error<F: Family>(
        &mut self,
        pool: &mut PacketPool,
        in_d: DomainId,
        mut buf: PktBuf,
        kind: IcmpKind,
        reason: DropReason,
        now_ms: u64,
        out: &mut L3Out,
    ) {
        self.counters.drops[reason as usize] += 1;
        let f = pool.data(&buf);
        let ip = &f[ETH..];
        let eligible = F::error_allowed(ip) && buf.headroom() >= F::ERROR_OVERHEAD - ETH;
        let (s, total) = (F::src(ip), F::total_len(ip));
        let eth_dst = MacAddr(f[6..12].try_into().unwrap());
        let g = self
            .gw_state(in_d)
            .map(|g| (g.cfg.mac, g.cfg.vid, source::<F>(&g.cfg, s)));
        let Some((mac, vid, Some(gw_ip))) = g.filter(|_| eligible) else {
            return pool.free(buf);
        };
        if !self.icmp_bucket.admit(now_ms) {
            self.counters.stages.inc(StageCounter::L3IcmpRateLimited);
            return pool.free(buf);
        }
        pool.set_len(&mut buf, ETH + total.min(F::ERROR_QUOTE_MAX));
        pool.push_front(&mut buf, F::ERROR_OVERHEAD - ETH);
        match F::write_error(pool.data_mut(&buf), (eth_dst, mac), gw_ip, s, kind) {
            Ok(_) => {
                self.counters.stages.inc(StageCounter::L3IcmpErrors);
                out.push(in_d, vid, buf);
            }
            Err(_) => pool.free(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Gateway;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn source_address_prefers_the_peers_subnet() {
        let g = Gateway::new(DomainId(1), MacAddr::local(1))
            .with_ipv4(Ipv4Addr::new(10, 0, 0, 1), 24)
            .with_ipv4(Ipv4Addr::new(10, 1, 0, 1), 16)
            .with_ipv6("2001:db8::1".parse().unwrap(), 64)
            .with_ipv6("2001:db8:1::1".parse().unwrap(), 64);
        assert_eq!(source::<V4>(&g, 0x0a01_0505), Some(0x0a01_0001));
        assert_eq!(source::<V4>(&g, 0x0b00_0001), Some(0x0a00_0001));
        let p: Ipv6Addr = "2001:db8:1::99".parse().unwrap();
        let want: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        assert_eq!(source::<V6>(&g, u128::from(p)), Some(u128::from(want)));
        let none = Gateway::new(DomainId(1), MacAddr::local(1));
        assert_eq!(source::<V4>(&none, 1), None);
    }
}
