//! DNS listeners: resolver addresses of a domain in VLANs other than its
//! gateway's (a bridge domain carrying several VLANs has one gateway, in
//! one VLAN). A listener `(vid, addresses)` is answered with the gateway's
//! MAC, only in its VLAN: ARP and neighbor solicitations for its
//! addresses, echo requests, and UDP/TCP to port 53 (punted to the DNS
//! service with the VLAN, so the service answers with that VLAN's names).
//! Nothing else: a listener never routes, so its VLAN reaches no other
//! network through it, and it learns no neighbors (the neighbor table is
//! the gateway's).
//!
//! The L2 stage hands the router listener frames apart from the routed
//! batch (`Scratch::listen_in`, each with its VLAN), so routing itself does
//! not change; this is the slow path. A listener whose VLAN the gateway
//! takes later (`Switch::set_gateway` does not check) is shadowed: the
//! gateway's VLAN always goes to the gateway (the daemon refuses that
//! change while the listener exists). Listeners go with their domain.
//!
//! Owns: the listeners and what they answer. Never: I/O, routing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::buf::{PacketPool, PktBuf};
use crate::config::DomainId;
use crate::counters::{DropReason, StageCounter};
use crate::mac::MacAddr;
use crate::wire::arp::{self, ArpPacket};
use crate::wire::ethernet::{self, EtherType};
use crate::wire::icmpv6::{self, Icmpv6Packet};
use crate::wire::ipv4::Protocol;
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::read_u16;

use super::family::{Family, V4, V6};
use super::lanes::Class;
use super::punt::DNS_PORT;
use super::{L3Out, Router};

const ETH: usize = ethernet::HEADER_LEN;

/// The most listeners a domain has (one per VLAN it carries at most; a
/// bound keeps the per-frame search short).
pub const LISTENERS_MAX: usize = 64;

/// Resolver addresses of `domain` in VLAN `vid` (not the gateway's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsListener {
    pub domain: DomainId,
    pub vid: u16,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
}

impl DnsListener {
    pub fn new(domain: DomainId, vid: u16) -> Self {
        DnsListener {
            domain,
            vid,
            ipv4: Vec::new(),
            ipv6: Vec::new(),
        }
    }
    /// Whether `a` is one of the listener's addresses.
    pub fn has(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(a) => self.ipv4.contains(&a),
            IpAddr::V6(a) => self.ipv6.contains(&a),
        }
    }
    fn has_key<F: Family>(&self, a: F::Addr) -> bool {
        let k = F::to_key(a);
        if F::V6 {
            self.ipv6.iter().any(|x| u128::from(*x) == k)
        } else {
            self.ipv4.iter().any(|x| u32::from(*x) as u128 == k)
        }
    }
}

/// Why a listener change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerError {
    #[error("domain {0} has no gateway (a DNS listener answers with its MAC)")]
    NoGateway(DomainId),
    #[error("VLAN {0} is the gateway's own: its addresses already answer DNS there")]
    GatewayVlan(u16),
    #[error("VLAN {0} out of range 1..=4094")]
    BadVlan(u16),
    #[error("a DNS listener needs at least one address")]
    NoAddress,
    #[error("{0} is not a unicast address")]
    BadAddress(IpAddr),
    #[error("domain {0} already has {LISTENERS_MAX} DNS listeners")]
    Full(DomainId),
    #[error("domain {0} has no DNS listener in VLAN {1}")]
    NoSuchListener(DomainId, u16),
}

fn unicast(a: IpAddr) -> bool {
    !(a.is_unspecified()
        || a.is_multicast()
        || a.is_loopback()
        || matches!(a, IpAddr::V4(v) if v.is_broadcast()))
}

impl Router {
    /// Add or replace the listener of `l.domain` in `l.vid`.
    pub fn set_dns_listener(&mut self, l: DnsListener) -> Result<(), ListenerError> {
        let g = self
            .gw_state(l.domain)
            .ok_or(ListenerError::NoGateway(l.domain))?;
        if l.vid == 0 || l.vid > 4094 {
            return Err(ListenerError::BadVlan(l.vid));
        }
        if l.vid == g.cfg.vid {
            return Err(ListenerError::GatewayVlan(l.vid));
        }
        if l.ipv4.is_empty() && l.ipv6.is_empty() {
            return Err(ListenerError::NoAddress);
        }
        let all = l.ipv4.iter().map(|&a| IpAddr::V4(a));
        if let Some(a) = all
            .chain(l.ipv6.iter().map(|&a| IpAddr::V6(a)))
            .find(|&a| !unicast(a))
        {
            return Err(ListenerError::BadAddress(a));
        }
        let i = l.domain.0 as usize;
        if self.listeners.len() <= i {
            self.listeners.resize_with(i + 1, Vec::new);
        }
        let v = &mut self.listeners[i];
        match v.iter().position(|x| x.vid == l.vid) {
            Some(i) => v[i] = l,
            None if v.len() >= LISTENERS_MAX => return Err(ListenerError::Full(l.domain)),
            None => v.push(l),
        }
        Ok(())
    }

    /// Remove the listener of `d` in `vid`.
    pub fn remove_dns_listener(
        &mut self,
        d: DomainId,
        vid: u16,
    ) -> Result<DnsListener, ListenerError> {
        let v = self
            .listeners
            .get_mut(d.0 as usize)
            .ok_or(ListenerError::NoSuchListener(d, vid))?;
        let i = v
            .iter()
            .position(|x| x.vid == vid)
            .ok_or(ListenerError::NoSuchListener(d, vid))?;
        Ok(v.swap_remove(i))
    }

    /// Remove every listener of `d` (the domain goes).
    pub fn clear_dns_listeners(&mut self, d: DomainId) {
        if let Some(v) = self.listeners.get_mut(d.0 as usize) {
            v.clear();
        }
    }

    /// The listeners of `d`.
    pub fn dns_listeners(&self, d: DomainId) -> &[DnsListener] {
        self.listeners.get(d.0 as usize).map_or(&[], Vec::as_slice)
    }

    /// The listener of `d` in `vid`.
    pub fn dns_listener(&self, d: DomainId, vid: u16) -> Option<&DnsListener> {
        self.dns_listeners(d).iter().find(|l| l.vid == vid)
    }

    /// Whether the listener stage should see `frame`, received in `d` on
    /// VLAN `vid` (not the gateway's): unicast to the gateway MAC, a
    /// broadcast ARP, or IPv6 multicast (ND), when `d` listens in `vid`
    /// (`tagged` as for [`Router::wants`]).
    pub fn wants_listen(&self, d: DomainId, vid: u16, frame: &[u8], tagged: bool) -> bool {
        let (Some(g), Some(_)) = (self.gw_state(d), self.dns_listener(d, vid)) else {
            return false;
        };
        super::forward::wanted(g.cfg.mac, frame, tagged)
    }

    /// Answer the frames (untagged, each with its VLAN) received in `d`
    /// for its listeners. Every frame leaves `frames`: answered into
    /// `out`, punted, or dropped and counted.
    pub fn listen(
        &mut self,
        pool: &mut PacketPool,
        d: DomainId,
        frames: &mut Vec<(u16, PktBuf)>,
        out: &mut L3Out,
    ) {
        for (vid, buf) in frames.drain(..) {
            let Some(mac) = self.gw_state(d).map(|g| g.cfg.mac) else {
                self.drop_pkt(pool, buf, DropReason::L3NoGateway);
                continue;
            };
            if self.dns_listener(d, vid).is_none() {
                self.drop_pkt(pool, buf, DropReason::L3NotForGateway);
                continue;
            }
            let f = pool.data(&buf);
            if f.len() < ETH {
                self.drop_pkt(pool, buf, DropReason::Runt);
                continue;
            }
            let to_gw = f[..6] == mac.0;
            match read_u16(f, 12) {
                EtherType::ARP => self.listen_arp(pool, d, vid, mac, buf, out),
                EtherType::IPV4 => self.listen_ip::<V4>(pool, d, vid, mac, to_gw, buf, out),
                EtherType::IPV6 => self.listen_ip::<V6>(pool, d, vid, mac, to_gw, buf, out),
                _ => self.drop_pkt(pool, buf, DropReason::L3NotRoutable),
            }
        }
    }

    fn listen_arp(
        &mut self,
        pool: &mut PacketPool,
        d: DomainId,
        vid: u16,
        mac: MacAddr,
        mut buf: PktBuf,
        out: &mut L3Out,
    ) {
        let Ok(a) = ArpPacket::new_checked(&pool.data(&buf)[ETH..]) else {
            return self.drop_pkt(pool, buf, DropReason::L3Malformed);
        };
        let (op, sha, spa, tpa) = (a.operation(), a.sender_mac(), a.sender_ip(), a.target_ip());
        let ours = self
            .dns_listener(d, vid)
            .is_some_and(|l| l.ipv4.contains(&tpa));
        if op == arp::OP_REQUEST && ours && sha.is_valid_source() {
            pool.set_len(&mut buf, arp::FRAME_LEN);
            if arp::write_reply(pool.data_mut(&buf), mac, tpa, sha, spa).is_ok() {
                self.counters.stages.inc(StageCounter::L3ArpReplies);
                return out.push(d, vid, buf);
            }
        }
        self.counters.stages.inc(StageCounter::L3NeighConsumed);
        pool.free(buf);
    }

    /// An IP packet in a listener's VLAN: to one of its addresses (echo,
    /// DNS), or ND; anything else is dropped (a listener never routes).
    #[allow(clippy::too_many_arguments)]
    fn listen_ip<F: Family>(
        &mut self,
        pool: &mut PacketPool,
        d: DomainId,
        vid: u16,
        mac: MacAddr,
        to_gw: bool,
        mut buf: PktBuf,
        out: &mut L3Out,
    ) {
        let ip = &pool.data(&buf)[ETH..];
        let dst = match F::check(ip, to_gw) {
            Ok(dst) => Some(dst),
            Err(Class::V6Multicast) => None,
            Err(Class::Drop(r)) => return self.drop_pkt(pool, buf, r),
            Err(_) => return self.drop_pkt(pool, buf, DropReason::L3NotRoutable),
        };
        let ours =
            dst.is_some_and(|a| self.dns_listener(d, vid).is_some_and(|l| l.has_key::<F>(a)));
        let icmp = F::icmp_header(ip);
        if F::V6
            && let Some((t, 0)) = icmp
            && F::ttl(ip) == icmpv6::ND_HOP_LIMIT
            && (dst.is_none() || ours)
        {
            return self.listen_nd(pool, d, vid, mac, buf, t, out);
        }
        if !ours {
            return self.drop_pkt(pool, buf, DropReason::L3NotForGateway);
        }
        let proto = F::protocol(ip);
        if (proto == Protocol::TCP || proto == Protocol::UDP)
            && self.punt.is_some()
            && super::punt::dport_of(ip) == Some(DNS_PORT)
        {
            return self.punt(pool, d, vid, buf);
        }
        match icmp {
            Some((t, _)) if t == F::ECHO_REQUEST => {
                match F::echo_reply_in_place(pool.data_mut(&buf), mac) {
                    Ok(n) => {
                        pool.set_len(&mut buf, n);
                        self.counters.stages.inc(StageCounter::L3EchoReplies);
                        out.push(d, vid, buf);
                    }
                    Err(_) => self.drop_pkt(pool, buf, DropReason::L3Malformed),
                }
            }
            _ => self.drop_pkt(pool, buf, DropReason::L3LocalUnsupported),
        }
    }

    /// Neighbor discovery in a listener's VLAN: an NS for one of its
    /// addresses gets an NA with the gateway's MAC; everything else is
    /// consumed (no neighbor is learnt here).
    #[allow(clippy::too_many_arguments)]
    fn listen_nd(
        &mut self,
        pool: &mut PacketPool,
        d: DomainId,
        vid: u16,
        mac: MacAddr,
        mut buf: PktBuf,
        t: u8,
        out: &mut L3Out,
    ) {
        let data = pool.data(&buf);
        let ip = Ipv6Packet::new_unchecked(&data[ETH..]);
        let src = ip.src_bytes();
        let msg = Icmpv6Packet::new_unchecked(ip.payload());
        let src_ok = src != [0; 16] && src[0] != 0xff;
        if t == icmpv6::TYPE_NEIGHBOR_SOLICIT
            && src_ok
            && let Some(target) = msg.nd_target()
            && self
                .dns_listener(d, vid)
                .is_some_and(|l| l.ipv6.contains(&Ipv6Addr::from(target)))
        {
            let eth_src = MacAddr(data[6..12].try_into().expect("6 bytes"));
            let to = msg.nd_lladdr().unwrap_or(eth_src);
            pool.set_len(&mut buf, icmpv6::ND_FRAME_LEN);
            if icmpv6::write_advert(pool.data_mut(&buf), mac, &target, to, &src).is_ok() {
                self.counters.stages.inc(StageCounter::L3NdAdverts);
                return out.push(d, vid, buf);
            }
        }
        self.counters.stages.inc(StageCounter::L3NeighConsumed);
        pool.free(buf);
    }
}
