//! What the gateway itself answers and originates: ARP replies and NAs for
//! its addresses, echo replies, ICMP/ICMPv6 errors (rate limited, built in
//! place in front of the offending packet, in its headroom), ARP requests
//! and NSs for unresolved neighbors, and the release of held packets.
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
use crate::wire::icmp::{self, IcmpPacket};
use crate::wire::icmpv6::{self, Icmpv6Packet};
use crate::wire::ipv4::{Ipv4Packet, Protocol};
use crate::wire::ipv6::Ipv6Packet;

use super::neigh::{Hold, NeighKey, PENDING_MAX};
use super::{Gateway, L3Out, Router};

const ETH: usize = ethernet::HEADER_LEN;

/// (type, code, rest-of-header) of an ICMP error.
pub(super) type IcmpKind = (u8, u8, u32);

/// The gateway's IPv4 address to speak to `peer` from: one whose subnet
/// holds `peer`, else the first.
fn src_v4(g: &Gateway, peer: u32) -> Option<u32> {
    let on_link = g.ipv4.iter().find(|(a, l)| {
        let m = u32::MAX.checked_shl(32 - (*l).min(32) as u32).unwrap_or(0);
        u32::from(*a) & m == peer & m
    });
    on_link.or(g.ipv4.first()).map(|(a, _)| u32::from(*a))
}

fn src_v6(g: &Gateway, peer: u128) -> Option<[u8; 16]> {
    let on_link = g.ipv6.iter().find(|(a, l)| {
        let m = u128::MAX
            .checked_shl(128 - (*l).min(128) as u32)
            .unwrap_or(0);
        u128::from(*a) & m == peer & m
    });
    on_link.or(g.ipv6.first()).map(|(a, _)| a.octets())
}

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

    /// Send an ARP request or NS for `k` out of its domain's gateway.
    pub(super) fn solicit(
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
        let src4 = src_v4(&g.cfg, k.ip as u32);
        let src6 = src_v6(&g.cfg, k.ip);
        let Some(mut b) = pool.alloc() else {
            self.counters.drops[DropReason::PoolExhausted as usize] += 1;
            return;
        };
        let frame = pool.tail_room_mut(&b);
        let (n, counter) = if k.v6 {
            let n = src6.map(|s| icmpv6::write_solicit(frame, mac, &s, &k.ip.to_be_bytes()));
            (n, StageCounter::L3NdSolicits)
        } else {
            let n = src4.map(|s| arp::write_request(frame, mac, s.into(), (k.ip as u32).into()));
            (n, StageCounter::L3ArpRequests)
        };
        match n {
            Some(Ok(n)) => {
                pool.set_len(&mut b, n);
                self.counters.stages.inc(counter);
                out.push(k.domain, vid, b);
            }
            _ => pool.free(b),
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
        let for_us = g.cfg.ipv4.iter().any(|(ip, _)| *ip == tpa);
        if sha.is_valid_source() && !spa.is_unspecified() {
            let k = NeighKey::v4(in_d, spa.into());
            let held = self.neigh.confirm(k, sha, now_ms, for_us);
            self.release(pool, k, sha, held, out);
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

    /// IPv4 to one of the gateway's addresses: echo, else port unreachable
    /// for UDP, else dropped.
    pub(super) fn local_v4(
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
        let ip = Ipv4Packet::new_unchecked(&pool.data(&buf)[ETH..]);
        match ip.protocol() {
            Protocol::ICMP => {
                let ok = IcmpPacket::new_checked(ip.payload())
                    .is_ok_and(|m| m.verify_checksum() && m.msg_type() == icmp::TYPE_ECHO_REQUEST);
                if ok && let Ok(n) = icmp::echo_reply_in_place(pool.data_mut(&buf), mac) {
                    pool.set_len(&mut buf, n);
                    self.counters.stages.inc(StageCounter::L3EchoReplies);
                    return out.push(in_d, vid, buf);
                }
                self.drop_pkt(pool, buf, DropReason::L3LocalUnsupported)
            }
            Protocol::UDP => {
                let e = (icmp::TYPE_DEST_UNREACHABLE, icmp::CODE_PORT_UNREACHABLE, 0);
                let r = DropReason::L3LocalUnsupported;
                self.icmp4_error(pool, in_d, buf, e, r, now_ms, out)
            }
            _ => self.drop_pkt(pool, buf, DropReason::L3LocalUnsupported),
        }
    }

    /// ICMPv6 to the gateway or to a multicast group: NS for our address →
    /// NA, NA → neighbor update, echo → reply; UDP → port unreachable.
    pub(super) fn local_v6(
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
        let data = pool.data(&buf);
        let ip = Ipv6Packet::new_unchecked(&data[ETH..]);
        let (src, dst, hops) = (ip.src_bytes(), ip.dst_bytes(), ip.hop_limit());
        if ip.next_header() == Protocol::UDP && dst[0] != 0xff {
            let e = (
                icmpv6::TYPE_DEST_UNREACHABLE,
                icmpv6::CODE_PORT_UNREACHABLE,
                0,
            );
            let r = DropReason::L3LocalUnsupported;
            return self.icmp6_error(pool, in_d, buf, e, r, now_ms, out);
        }
        let msg = match Icmpv6Packet::new_checked(ip.payload()) {
            Ok(m) if ip.next_header() == Protocol::ICMPV6 && m.verify_checksum(&src, &dst) => m,
            _ => return self.drop_pkt(pool, buf, DropReason::L3LocalUnsupported),
        };
        let nd = hops == icmpv6::ND_HOP_LIMIT && msg.code() == 0;
        let src_ok = src != [0; 16] && src[0] != 0xff;
        match msg.msg_type() {
            icmpv6::TYPE_NEIGHBOR_SOLICIT if nd => {
                let Some(target) = msg.nd_target() else {
                    return self.drop_pkt(pool, buf, DropReason::L3Malformed);
                };
                let for_us = g.cfg.ipv6.iter().any(|(a, _)| a.octets() == target);
                let peer_mac = msg.nd_lladdr();
                let eth_src = MacAddr(data[6..12].try_into().unwrap());
                if let (true, Some(m)) = (src_ok, peer_mac) {
                    let k = NeighKey::v6(in_d, u128::from_be_bytes(src));
                    let held = self.neigh.confirm(k, m, now_ms, for_us);
                    self.release(pool, k, m, held, out);
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
            icmpv6::TYPE_NEIGHBOR_ADVERT if nd => {
                if let (Some(t), Some(m)) = (msg.nd_target(), msg.nd_lladdr()) {
                    let k = NeighKey::v6(in_d, u128::from_be_bytes(t));
                    let held = self.neigh.confirm(k, m, now_ms, false);
                    self.release(pool, k, m, held, out);
                }
                self.counters.stages.inc(StageCounter::L3NeighConsumed);
                pool.free(buf);
            }
            icmpv6::TYPE_ECHO_REQUEST if dst[0] != 0xff => {
                match icmpv6::echo_reply_in_place(pool.data_mut(&buf), mac) {
                    Ok(n) => {
                        pool.set_len(&mut buf, n);
                        self.counters.stages.inc(StageCounter::L3EchoReplies);
                        out.push(in_d, vid, buf);
                    }
                    Err(_) => self.drop_pkt(pool, buf, DropReason::L3Malformed),
                }
            }
            _ => self.drop_pkt(pool, buf, DropReason::L3LocalUnsupported),
        }
    }

    /// Drop `buf` (counted as `reason`) and, within the rate limit, send
    /// the ICMP error `kind` back to its source, built in place.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn icmp4_error(
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
        let ip = Ipv4Packet::new_unchecked(&f[ETH..]);
        let s = ip.src_u32();
        // RFC 1812 §4.3.2.7: never about errors, non-first fragments, or
        // packets from non-unicast sources.
        let quoted_error = ip.protocol() == Protocol::ICMP
            && ip.payload().first().is_some_and(|t| icmp::is_error(*t));
        let eligible = !quoted_error
            && ip.frag_offset() == 0
            && s >> 24 != 0
            && s >> 28 != 0xe
            && s != u32::MAX
            && buf.headroom() >= icmp::ERROR_OVERHEAD - ETH;
        let total = ip.total_len() as usize;
        let eth_dst = MacAddr(f[6..12].try_into().unwrap());
        let g = self
            .gw_state(in_d)
            .map(|g| (g.cfg.mac, g.cfg.vid, src_v4(&g.cfg, s)));
        let Some((mac, vid, Some(gw_ip))) = g.filter(|_| eligible) else {
            return pool.free(buf);
        };
        if !self.icmp_bucket.admit(now_ms) {
            self.counters.stages.inc(StageCounter::L3IcmpRateLimited);
            return pool.free(buf);
        }
        pool.set_len(&mut buf, ETH + total.min(icmp::ERROR_QUOTE_MAX));
        pool.push_front(&mut buf, icmp::ERROR_OVERHEAD - ETH);
        let a = icmp::ErrorAddrs {
            eth_dst,
            eth_src: mac,
            ip_src: gw_ip,
            ip_dst: s,
        };
        match icmp::write_error(pool.data_mut(&buf), a, kind.0, kind.1, kind.2) {
            Ok(_) => {
                self.counters.stages.inc(StageCounter::L3IcmpErrors);
                out.push(in_d, vid, buf);
            }
            Err(_) => pool.free(buf),
        }
    }

    /// As [`Self::icmp4_error`] for IPv6 (RFC 4443 §2.4).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn icmp6_error(
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
        let ip = Ipv6Packet::new_unchecked(&f[ETH..]);
        let s = ip.src_bytes();
        let quoted_error = ip.next_header() == Protocol::ICMPV6
            && ip.payload().first().is_some_and(|t| icmpv6::is_error(*t));
        let eligible = !quoted_error
            && s != [0; 16]
            && s[0] != 0xff
            && buf.headroom() >= icmpv6::ERROR_OVERHEAD - ETH;
        let total = ip.total_len();
        let eth_dst = MacAddr(f[6..12].try_into().unwrap());
        let peer = u128::from_be_bytes(s);
        let g = self
            .gw_state(in_d)
            .map(|g| (g.cfg.mac, g.cfg.vid, src_v6(&g.cfg, peer)));
        let Some((mac, vid, Some(gw_ip))) = g.filter(|_| eligible) else {
            return pool.free(buf);
        };
        if !self.icmp_bucket.admit(now_ms) {
            self.counters.stages.inc(StageCounter::L3IcmpRateLimited);
            return pool.free(buf);
        }
        pool.set_len(&mut buf, ETH + total.min(icmpv6::ERROR_QUOTE_MAX));
        pool.push_front(&mut buf, icmpv6::ERROR_OVERHEAD - ETH);
        let a = icmpv6::ErrorAddrs {
            eth_dst,
            eth_src: mac,
            ip_src: gw_ip,
            ip_dst: s,
        };
        match icmpv6::write_error(pool.data_mut(&buf), &a, kind.0, kind.1, kind.2) {
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
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn source_address_prefers_the_peers_subnet() {
        let g = Gateway::new(DomainId(1), MacAddr::local(1))
            .with_ipv4(Ipv4Addr::new(10, 0, 0, 1), 24)
            .with_ipv4(Ipv4Addr::new(10, 1, 0, 1), 16)
            .with_ipv6("2001:db8::1".parse().unwrap(), 64)
            .with_ipv6("2001:db8:1::1".parse().unwrap(), 64);
        assert_eq!(src_v4(&g, 0x0a01_0505), Some(0x0a01_0001));
        assert_eq!(src_v4(&g, 0x0b00_0001), Some(0x0a00_0001));
        let p: Ipv6Addr = "2001:db8:1::99".parse().unwrap();
        let want: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        assert_eq!(src_v6(&g, u128::from(p)), Some(want.octets()));
        let none = Gateway::new(DomainId(1), MacAddr::local(1));
        assert_eq!(src_v4(&none, 1), None);
    }
}
