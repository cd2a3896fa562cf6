//! What differs between IPv4 and IPv6 routing, as one trait: the address
//! type and its route table ([`Lpm`]), the header view (validation, TTL /
//! hop limit, length, source), the ICMP flavour (error kinds, the error
//! and solicitation writers) and the gateway's addresses. The router's
//! forward, local-delivery and ICMP-error paths are written once, generic
//! over `F: Family`, and monomorphised for [`V4`] and [`V6`]: every trait
//! call is static and inlined, there is no `dyn` on the packet path.
//!
//! Parsing stays in `wire::` (the `Ipv4Packet` / `Ipv6Packet` views); the
//! implementations here only pick which view and which constants.
//!
//! Owns: the per-family constants and glue. Never: state.

use std::fmt::Debug;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::counters::{DropReason, StageCounter};
use crate::mac::MacAddr;
use crate::wire::ipv4::{Ipv4Packet, Protocol};
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::{WireError, arp, icmp, icmpv6};

use super::lanes::{Class, IcmpKind, Lanes, Scratch};
use super::{Gateway, LpmError, NhId, Tables};

/// A longest-prefix-match route table of one family: prefixes of
/// `Addr` to next-hop indices. [`super::Lpm4`] (DIR-24-8) and
/// [`super::Lpm6`] (multibit trie) implement it.
pub trait Lpm: Default + Debug {
    type Addr: Copy;
    /// The next hop of exactly this prefix.
    fn get(&self, addr: Self::Addr, len: u8) -> Option<NhId>;
    /// Add or replace `addr/len → nh`; returns the next hop it replaced.
    fn insert(&mut self, addr: Self::Addr, len: u8, nh: NhId) -> Result<Option<NhId>, LpmError>;
    /// Remove `addr/len`; returns its next hop.
    fn remove(&mut self, addr: Self::Addr, len: u8) -> Option<NhId>;
    /// Longest-prefix match.
    fn lookup(&self, addr: Self::Addr) -> Option<NhId>;
    /// Look up a batch, loads overlapped.
    fn lookup_batch(&self, addrs: &[Self::Addr], out: &mut [Option<NhId>]);
}

/// One IP family as the router sees it. `ip` arguments are the frame from
/// the IP header on; `frame` arguments start at the Ethernet header.
pub(super) trait Family: Sized + 'static {
    /// The address as an integer (`u32`, `u128`), the route tables' key.
    type Addr: Copy + Eq + Hash + Debug + Default;
    type Lpm: Lpm<Addr = Self::Addr>;

    const V6: bool;
    /// Longest prefix length.
    const MAX_LEN: u8;
    /// What `classify` calls a routable packet of this family.
    const CLASS: Class;
    const ICMP_PROTO: u8;
    const ECHO_REQUEST: u8;
    /// Headers an error puts in front of the quoted packet, and how much of
    /// the packet it quotes.
    const ERROR_OVERHEAD: usize;
    const ERROR_QUOTE_MAX: usize;
    const NO_ROUTE: IcmpKind;
    const TTL_EXCEEDED: IcmpKind;
    const PORT_UNREACHABLE: IcmpKind;
    /// For packets whose neighbor never answered.
    const NEIGH_UNREACHABLE: IcmpKind;
    /// Counts the solicitations (ARP requests, NSs).
    const SOLICITS: StageCounter;

    fn from_ip(a: IpAddr) -> Option<Self::Addr>;
    fn to_ip(a: Self::Addr) -> IpAddr;
    /// The address as a neighbor-table key (IPv4 in the low 32 bits).
    fn to_key(a: Self::Addr) -> u128;
    fn from_key(k: u128) -> Self::Addr;
    /// `a` with all but its first `len` bits cleared.
    fn mask(a: Self::Addr, len: u8) -> Self::Addr;
    fn is_multicast(a: Self::Addr) -> bool;
    /// The gateway's addresses of this family, with their prefix lengths.
    fn addrs(g: &Gateway) -> impl Iterator<Item = (Self::Addr, u8)> + '_;
    fn lpm(t: &Tables) -> &Self::Lpm;
    fn lpm_mut(t: &mut Tables) -> &mut Self::Lpm;
    fn lanes(s: &Scratch) -> &Lanes<Self::Addr>;
    fn lanes_mut(s: &mut Scratch) -> &mut Lanes<Self::Addr>;

    /// First-pass validation of a packet in a frame addressed to the
    /// gateway MAC (`to_gw`) or not: the destination to look up, or what
    /// else to do with it.
    fn check(ip: &[u8], to_gw: bool) -> Result<Self::Addr, Class>;
    fn ttl(ip: &[u8]) -> u8;
    /// Header and payload length.
    fn total_len(ip: &[u8]) -> usize;
    /// Decrement the TTL (with the IPv4 checksum update) from `ttl`.
    fn decrement_ttl(ip: &mut [u8], ttl: u8);
    fn src(ip: &[u8]) -> Self::Addr;
    fn dst(ip: &[u8]) -> Self::Addr;
    /// Protocol / next header.
    fn protocol(ip: &[u8]) -> u8;
    /// Larger than the egress `mtu`: the ICMP error to send, or the drop
    /// reason when none is due (IPv4 without DF: fragmentation is not
    /// supported).
    fn too_big(ip: &[u8], mtu: u16) -> Result<IcmpKind, DropReason>;
    /// Whether an error may be sent about this packet (RFC 1812 §4.3.2.7,
    /// RFC 4443 §2.4): not about an ICMP error, nor a non-first fragment,
    /// nor from a source that is not unicast.
    fn error_allowed(ip: &[u8]) -> bool;
    /// (type, code) of a well-formed ICMP message with a valid checksum.
    fn icmp_header(ip: &[u8]) -> Option<(u8, u8)>;
    fn echo_reply_in_place(frame: &mut [u8], mac: MacAddr) -> Result<usize, WireError>;
    /// Write the Ethernet, IP and ICMP headers of an error in front of the
    /// quoted packet (see `wire::icmp::write_error`).
    fn write_error(
        frame: &mut [u8],
        eth: (MacAddr, MacAddr),
        src: Self::Addr,
        dst: Self::Addr,
        kind: IcmpKind,
    ) -> Result<usize, WireError>;
    /// Write an ARP request / NS for `target` from `src`.
    fn write_solicit(
        frame: &mut [u8],
        mac: MacAddr,
        src: Self::Addr,
        target: Self::Addr,
    ) -> Result<usize, WireError>;
}

/// IPv4.
pub(super) enum V4 {}

/// IPv6.
pub(super) enum V6 {}

impl Family for V4 {
    type Addr = u32;
    type Lpm = super::Lpm4;

    const V6: bool = false;
    const MAX_LEN: u8 = 32;
    const CLASS: Class = Class::V4;
    const ICMP_PROTO: u8 = Protocol::ICMP;
    const ECHO_REQUEST: u8 = icmp::TYPE_ECHO_REQUEST;
    const ERROR_OVERHEAD: usize = icmp::ERROR_OVERHEAD;
    const ERROR_QUOTE_MAX: usize = icmp::ERROR_QUOTE_MAX;
    const NO_ROUTE: IcmpKind = (icmp::TYPE_DEST_UNREACHABLE, icmp::CODE_NET_UNREACHABLE, 0);
    const TTL_EXCEEDED: IcmpKind = (icmp::TYPE_TIME_EXCEEDED, icmp::CODE_TTL_EXCEEDED, 0);
    const PORT_UNREACHABLE: IcmpKind =
        (icmp::TYPE_DEST_UNREACHABLE, icmp::CODE_PORT_UNREACHABLE, 0);
    const NEIGH_UNREACHABLE: IcmpKind =
        (icmp::TYPE_DEST_UNREACHABLE, icmp::CODE_HOST_UNREACHABLE, 0);
    const SOLICITS: StageCounter = StageCounter::L3ArpRequests;

    #[inline(always)]
    fn from_ip(a: IpAddr) -> Option<u32> {
        match a {
            IpAddr::V4(a) => Some(a.into()),
            IpAddr::V6(_) => None,
        }
    }
    fn to_ip(a: u32) -> IpAddr {
        IpAddr::V4(a.into())
    }
    #[inline(always)]
    fn to_key(a: u32) -> u128 {
        a as u128
    }
    fn from_key(k: u128) -> u32 {
        k as u32
    }
    fn mask(a: u32, len: u8) -> u32 {
        a & u32::MAX.checked_shl(32 - len.min(32) as u32).unwrap_or(0)
    }
    fn is_multicast(a: u32) -> bool {
        a >> 28 == 0xe
    }
    fn addrs(g: &Gateway) -> impl Iterator<Item = (u32, u8)> + '_ {
        g.ipv4.iter().map(|&(a, l)| (u32::from(a), l))
    }
    #[inline(always)]
    fn lpm(t: &Tables) -> &super::Lpm4 {
        &t.v4
    }
    fn lpm_mut(t: &mut Tables) -> &mut super::Lpm4 {
        &mut t.v4
    }
    #[inline(always)]
    fn lanes(s: &Scratch) -> &Lanes<u32> {
        &s.v4
    }
    #[inline(always)]
    fn lanes_mut(s: &mut Scratch) -> &mut Lanes<u32> {
        &mut s.v4
    }

    #[inline(always)]
    fn check(ip: &[u8], to_gw: bool) -> Result<u32, Class> {
        if !to_gw {
            return Err(Class::Drop(DropReason::L3NotForGateway));
        }
        let Ok(ip) = Ipv4Packet::new_checked(ip) else {
            return Err(Class::Drop(DropReason::L3Malformed));
        };
        if !ip.verify_checksum() {
            return Err(Class::Drop(DropReason::L3BadChecksum));
        }
        let d = ip.dst_u32();
        if !crate::wire::ipv4::routed(d) {
            return Err(Class::Drop(DropReason::L3NotRoutable));
        }
        Ok(d)
    }
    #[inline(always)]
    fn ttl(ip: &[u8]) -> u8 {
        Ipv4Packet::new_unchecked(ip).ttl()
    }
    #[inline(always)]
    fn total_len(ip: &[u8]) -> usize {
        Ipv4Packet::new_unchecked(ip).total_len() as usize
    }
    #[inline(always)]
    fn decrement_ttl(ip: &mut [u8], _ttl: u8) {
        Ipv4Packet::new_unchecked(ip).decrement_ttl()
    }
    #[inline(always)]
    fn src(ip: &[u8]) -> u32 {
        Ipv4Packet::new_unchecked(ip).src_u32()
    }
    #[inline(always)]
    fn dst(ip: &[u8]) -> u32 {
        Ipv4Packet::new_unchecked(ip).dst_u32()
    }
    #[inline(always)]
    fn protocol(ip: &[u8]) -> u8 {
        Ipv4Packet::new_unchecked(ip).protocol()
    }
    #[inline]
    fn too_big(ip: &[u8], mtu: u16) -> Result<IcmpKind, DropReason> {
        if !Ipv4Packet::new_unchecked(ip).dont_frag() {
            return Err(DropReason::L3FragUnsupported);
        }
        let (t, c) = (icmp::TYPE_DEST_UNREACHABLE, icmp::CODE_FRAG_NEEDED);
        Ok((t, c, mtu as u32))
    }
    fn error_allowed(ip: &[u8]) -> bool {
        let ip = Ipv4Packet::new_unchecked(ip);
        let s = ip.src_u32();
        let quoted_error = ip.protocol() == Self::ICMP_PROTO
            && ip.payload().first().is_some_and(|t| icmp::is_error(*t));
        !quoted_error && ip.frag_offset() == 0 && s >> 24 != 0 && s >> 28 != 0xe && s != u32::MAX
    }
    fn icmp_header(ip: &[u8]) -> Option<(u8, u8)> {
        let ip = Ipv4Packet::new_unchecked(ip);
        if ip.protocol() != Self::ICMP_PROTO {
            return None;
        }
        let m = icmp::IcmpPacket::new_checked(ip.payload()).ok()?;
        m.verify_checksum().then(|| (m.msg_type(), m.code()))
    }
    fn echo_reply_in_place(frame: &mut [u8], mac: MacAddr) -> Result<usize, WireError> {
        icmp::echo_reply_in_place(frame, mac)
    }
    fn write_error(
        frame: &mut [u8],
        (eth_dst, eth_src): (MacAddr, MacAddr),
        src: u32,
        dst: u32,
        kind: IcmpKind,
    ) -> Result<usize, WireError> {
        let a = icmp::ErrorAddrs {
            eth_dst,
            eth_src,
            ip_src: src,
            ip_dst: dst,
        };
        icmp::write_error(frame, a, kind.0, kind.1, kind.2)
    }
    fn write_solicit(
        frame: &mut [u8],
        mac: MacAddr,
        src: u32,
        target: u32,
    ) -> Result<usize, WireError> {
        arp::write_request(frame, mac, Ipv4Addr::from(src), Ipv4Addr::from(target))
    }
}

impl Family for V6 {
    type Addr = u128;
    type Lpm = super::Lpm6;

    const V6: bool = true;
    const MAX_LEN: u8 = 128;
    const CLASS: Class = Class::V6;
    const ICMP_PROTO: u8 = Protocol::ICMPV6;
    const ECHO_REQUEST: u8 = icmpv6::TYPE_ECHO_REQUEST;
    const ERROR_OVERHEAD: usize = icmpv6::ERROR_OVERHEAD;
    const ERROR_QUOTE_MAX: usize = icmpv6::ERROR_QUOTE_MAX;
    const NO_ROUTE: IcmpKind = (icmpv6::TYPE_DEST_UNREACHABLE, icmpv6::CODE_NO_ROUTE, 0);
    const TTL_EXCEEDED: IcmpKind = (icmpv6::TYPE_TIME_EXCEEDED, icmpv6::CODE_HOP_LIMIT, 0);
    const PORT_UNREACHABLE: IcmpKind = (
        icmpv6::TYPE_DEST_UNREACHABLE,
        icmpv6::CODE_PORT_UNREACHABLE,
        0,
    );
    const NEIGH_UNREACHABLE: IcmpKind = (
        icmpv6::TYPE_DEST_UNREACHABLE,
        icmpv6::CODE_ADDR_UNREACHABLE,
        0,
    );
    const SOLICITS: StageCounter = StageCounter::L3NdSolicits;

    #[inline(always)]
    fn from_ip(a: IpAddr) -> Option<u128> {
        match a {
            IpAddr::V6(a) => Some(a.into()),
            IpAddr::V4(_) => None,
        }
    }
    fn to_ip(a: u128) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(a))
    }
    #[inline(always)]
    fn to_key(a: u128) -> u128 {
        a
    }
    fn from_key(k: u128) -> u128 {
        k
    }
    fn mask(a: u128, len: u8) -> u128 {
        a & u128::MAX
            .checked_shl(128 - len.min(128) as u32)
            .unwrap_or(0)
    }
    fn is_multicast(a: u128) -> bool {
        a >> 120 == 0xff
    }
    fn addrs(g: &Gateway) -> impl Iterator<Item = (u128, u8)> + '_ {
        g.ipv6.iter().map(|&(a, l)| (u128::from(a), l))
    }
    #[inline(always)]
    fn lpm(t: &Tables) -> &super::Lpm6 {
        &t.v6
    }
    fn lpm_mut(t: &mut Tables) -> &mut super::Lpm6 {
        &mut t.v6
    }
    #[inline(always)]
    fn lanes(s: &Scratch) -> &Lanes<u128> {
        &s.v6
    }
    #[inline(always)]
    fn lanes_mut(s: &mut Scratch) -> &mut Lanes<u128> {
        &mut s.v6
    }

    #[inline(always)]
    fn check(ip: &[u8], to_gw: bool) -> Result<u128, Class> {
        let Ok(ip) = Ipv6Packet::new_checked(ip) else {
            return Err(Class::Drop(DropReason::L3Malformed));
        };
        let d = u128::from_be_bytes(ip.dst_bytes());
        if d >> 120 == 0xff {
            if ip.next_header() == Protocol::ICMPV6 {
                return Err(Class::V6Multicast);
            }
            return Err(Class::Drop(DropReason::L3NotRoutable));
        }
        if !to_gw {
            return Err(Class::Drop(DropReason::L3NotForGateway));
        }
        if !crate::wire::ipv6::routed_unicast(d) {
            return Err(Class::Drop(DropReason::L3NotRoutable));
        }
        Ok(d)
    }
    #[inline(always)]
    fn ttl(ip: &[u8]) -> u8 {
        Ipv6Packet::new_unchecked(ip).hop_limit()
    }
    #[inline(always)]
    fn total_len(ip: &[u8]) -> usize {
        Ipv6Packet::new_unchecked(ip).total_len()
    }
    #[inline(always)]
    fn decrement_ttl(ip: &mut [u8], ttl: u8) {
        Ipv6Packet::new_unchecked(ip).set_hop_limit(ttl - 1)
    }
    #[inline(always)]
    fn src(ip: &[u8]) -> u128 {
        u128::from_be_bytes(Ipv6Packet::new_unchecked(ip).src_bytes())
    }
    #[inline(always)]
    fn dst(ip: &[u8]) -> u128 {
        u128::from_be_bytes(Ipv6Packet::new_unchecked(ip).dst_bytes())
    }
    #[inline(always)]
    fn protocol(ip: &[u8]) -> u8 {
        Ipv6Packet::new_unchecked(ip).next_header()
    }
    #[inline]
    fn too_big(_ip: &[u8], mtu: u16) -> Result<IcmpKind, DropReason> {
        Ok((icmpv6::TYPE_PACKET_TOO_BIG, 0, mtu as u32))
    }
    fn error_allowed(ip: &[u8]) -> bool {
        let ip = Ipv6Packet::new_unchecked(ip);
        let s = ip.src_bytes();
        let quoted_error = ip.next_header() == Self::ICMP_PROTO
            && ip.payload().first().is_some_and(|t| icmpv6::is_error(*t));
        !quoted_error && s != [0; 16] && s[0] != 0xff
    }
    fn icmp_header(ip: &[u8]) -> Option<(u8, u8)> {
        let ip = Ipv6Packet::new_unchecked(ip);
        if ip.next_header() != Self::ICMP_PROTO {
            return None;
        }
        let m = icmpv6::Icmpv6Packet::new_checked(ip.payload()).ok()?;
        let ok = m.verify_checksum(&ip.src_bytes(), &ip.dst_bytes());
        ok.then(|| (m.msg_type(), m.code()))
    }
    fn echo_reply_in_place(frame: &mut [u8], mac: MacAddr) -> Result<usize, WireError> {
        icmpv6::echo_reply_in_place(frame, mac)
    }
    fn write_error(
        frame: &mut [u8],
        (eth_dst, eth_src): (MacAddr, MacAddr),
        src: u128,
        dst: u128,
        kind: IcmpKind,
    ) -> Result<usize, WireError> {
        let a = icmpv6::ErrorAddrs {
            eth_dst,
            eth_src,
            ip_src: src.to_be_bytes(),
            ip_dst: dst.to_be_bytes(),
        };
        icmpv6::write_error(frame, &a, kind.0, kind.1, kind.2)
    }
    fn write_solicit(
        frame: &mut [u8],
        mac: MacAddr,
        src: u128,
        target: u128,
    ) -> Result<usize, WireError> {
        icmpv6::write_solicit(frame, mac, &src.to_be_bytes(), &target.to_be_bytes())
    }
}

/// The gateway's address to speak to `peer` from: one whose subnet holds
/// `peer`, else the first.
pub(super) fn source<F: Family>(g: &Gateway, peer: F::Addr) -> Option<F::Addr> {
    let mut first = None;
    for (a, l) in F::addrs(g) {
        if F::mask(a, l) == F::mask(peer, l) {
            return Some(a);
        }
        first.get_or_insert(a);
    }
    first
}
