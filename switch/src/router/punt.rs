//! The punt path: UDP and TCP to port 53 of a gateway address leave the
//! data plane for the daemon's DNS service, and the service's answers come
//! back from the gateway (its MAC and the address the query went to): UDP
//! answers as a payload the router frames ([`UdpReply`]), TCP segments as
//! whole IP packets the service's TCP stack wrote ([`IpReply`]), each
//! checked to come from one of the domain's gateway addresses (or, in a
//! DNS listener's VLAN, from one of the listener's: `listen.rs`). Queries
//! and answers carry the VLAN they were asked in.
//!
//! The worker never waits for the service: a punted query is handed to a
//! [`PuntSink`], which takes it or refuses it at once (a bounded queue that
//! is full); a refused query is dropped and counted as
//! `DropReason::DnsPuntFull`. Answers are built from the pool by
//! [`Router::write_udp_reply`] and sent like any frame the router makes.
//!
//! Owns: which packets are punted and the frame of an answer. Never: DNS
//! itself (the payload is opaque here), I/O, blocking.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::buf::{PacketPool, PktBuf};
use crate::config::DomainId;
use crate::counters::{DropReason, StageCounter};
use crate::mac::MacAddr;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::ipv4::{self, Ipv4Packet, Protocol};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::udp;

use super::family::Family;
use super::{L3Out, Router};

/// The port the gateway answers on.
pub const DNS_PORT: u16 = 53;

/// How a punted query came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `payload` is the UDP payload (one DNS message).
    Udp,
    /// `payload` is the whole IP packet of a TCP segment (header on), for
    /// the service's TCP stack.
    Tcp,
}

/// A query punted from the data plane: who asked (MAC, address, port), in
/// which bridge domain, to which gateway address, and its bytes (see
/// [`Transport`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Punted {
    pub domain: DomainId,
    /// The VLAN it was asked in: the gateway's, or a DNS listener's.
    pub vid: u16,
    pub client_mac: MacAddr,
    pub client: SocketAddr,
    /// The gateway address the query was sent to (the answer's source).
    pub server: IpAddr,
    pub transport: Transport,
    pub payload: Vec<u8>,
}

/// An IP packet to send into `domain` from the gateway to `client_mac`:
/// its source must be one of the gateway's addresses (the DNS service's
/// TCP segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpReply {
    pub domain: DomainId,
    /// The VLAN the query came in (the `vid` of its [`Punted`]).
    pub vid: u16,
    pub client_mac: MacAddr,
    pub packet: Vec<u8>,
}

/// An answer to send back into `domain`, from the gateway's `server`
/// address and port 53 to `client` at `client_mac`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpReply {
    pub domain: DomainId,
    /// The VLAN the query came in (the `vid` of its [`Punted`]).
    pub vid: u16,
    pub client_mac: MacAddr,
    pub client: SocketAddr,
    pub server: IpAddr,
    pub payload: Vec<u8>,
}

/// Where punted queries go: returns the query back when it cannot take it
/// now (its queue is full or its reader gone). Must never block.
pub type PuntSink = Box<dyn FnMut(Punted) -> Result<(), Punted> + Send>;

/// Why an answer could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("domain {0} has no gateway")]
    NoGateway(DomainId),
    #[error("{0} is not an address of the gateway of domain {1}")]
    NotGatewayAddress(IpAddr, DomainId),
    #[error("{0} is not an address of the DNS listener of domain {1} in VLAN {2}")]
    NotListenerAddress(IpAddr, DomainId, u16),
    #[error("the answer's addresses are of different families")]
    FamilyMismatch,
    #[error("not a whole IPv4 or IPv6 packet")]
    NotIp,
    #[error("answer of {0} bytes does not fit a frame")]
    TooLong(usize),
    #[error("no free buffer")]
    NoBuffer,
}

impl Router {
    /// Send UDP and TCP to port 53 of the gateway's own addresses to
    /// `sink` (`None`: the gateway answers UDP with port unreachable and
    /// drops TCP, as before).
    pub fn set_dns_punt(&mut self, sink: Option<PuntSink>) {
        self.punt = sink;
    }

    /// Whether this UDP or TCP packet (`ip` from the IP header on,
    /// received in `in_d`) is for the DNS service: a sink is installed, the
    /// destination port is 53 and the destination is the domain's own
    /// gateway (a query to another network's gateway is not answered with
    /// this network's names).
    pub(super) fn wants_punt<F: Family>(&self, in_d: DomainId, ip: &[u8]) -> bool {
        if self.punt.is_none() {
            return false;
        }
        let Some(g) = self.gw_state(in_d) else {
            return false;
        };
        let dst = F::dst(ip);
        let ours = F::addrs(&g.cfg).any(|(a, _)| a == dst);
        ours && l4_of(ip).is_some_and(|(_, dport, _)| dport == DNS_PORT)
    }

    /// Hand the query in `buf` to the sink; the buffer goes back to the pool
    /// either way.
    pub(super) fn punt(&mut self, pool: &mut PacketPool, in_d: DomainId, vid: u16, buf: PktBuf) {
        let f = pool.data(&buf);
        let ip = &f[ethernet::HEADER_LEN..];
        let (Some((sport, _, l4)), Some((src, dst))) = (l4_of(ip), addrs_of(ip)) else {
            return self.drop_pkt(pool, buf, DropReason::L3Malformed);
        };
        let offload = buf.offload();
        let (transport, payload) = match l4 {
            L4::Udp(payload) => (Transport::Udp, payload.to_vec()),
            // A TCP super-frame (GSO) is more than a DNS client sends at
            // the MSS the service offers.
            L4::Tcp(_) if offload.is_gso() => {
                return self.drop_pkt(pool, buf, DropReason::L3Malformed);
            }
            L4::Tcp(packet) => {
                let mut packet = packet.to_vec();
                // From a TAP with checksum offload the checksum is only the
                // pseudo-header's: the service's TCP stack checks it whole.
                if offload.needs_csum() && !complete_csum(&mut packet, offload) {
                    return self.drop_pkt(pool, buf, DropReason::L3Malformed);
                }
                (Transport::Tcp, packet)
            }
        };
        let p = Punted {
            domain: in_d,
            vid,
            client_mac: MacAddr(f[6..12].try_into().expect("6 bytes")),
            client: SocketAddr::new(src, sport),
            server: dst,
            transport,
            payload,
        };
        pool.free(buf);
        if self.dry {
            return self.dry_punt(&p);
        }
        let Some(sink) = self.punt.as_mut() else {
            self.counters.drops[DropReason::DnsPuntFull as usize] += 1;
            return;
        };
        match sink(p) {
            Ok(()) => self.counters.stages.inc(StageCounter::DnsPunted),
            Err(_) => self.counters.drops[DropReason::DnsPuntFull as usize] += 1,
        }
    }

    /// Build the frame of `r` and queue it in `out` for its domain.
    pub fn write_udp_reply(
        &mut self,
        pool: &mut PacketPool,
        r: &UdpReply,
        out: &mut L3Out,
    ) -> Result<(), ReplyError> {
        let (mac, vid, mtu) = self.reply_source(r.domain, r.vid, r.server)?;
        let ip_len = match r.server {
            IpAddr::V4(_) => ipv4::HEADER_LEN,
            IpAddr::V6(_) => ipv6::HEADER_LEN,
        };
        let len = ethernet::HEADER_LEN + ip_len + udp::HEADER_LEN + r.payload.len();
        let mut b = pool.alloc().ok_or(ReplyError::NoBuffer)?;
        if pool.tail_room_mut(&b).len() < len || len > ethernet::HEADER_LEN + mtu {
            pool.free(b);
            return Err(ReplyError::TooLong(r.payload.len()));
        }
        let f = &mut pool.tail_room_mut(&b)[..len];
        let written = write_reply_frame(f, mac, r);
        if let Err(e) = written {
            pool.free(b);
            return Err(e);
        }
        pool.set_len(&mut b, len);
        self.counters.stages.inc(StageCounter::DnsReplies);
        out.push(r.domain, vid, b);
        Ok(())
    }
}

impl Router {
    /// Frame the IP packet of `r` from the gateway of its domain and queue
    /// it in `out`; refused unless it is a whole IPv4 or IPv6 packet whose
    /// source is one of the gateway's addresses and that fits its MTU.
    pub fn write_ip_reply(
        &mut self,
        pool: &mut PacketPool,
        r: &IpReply,
        out: &mut L3Out,
    ) -> Result<(), ReplyError> {
        let ip = r.packet.as_slice();
        let (src, whole, ethertype) = match ip.first().map(|b| b >> 4) {
            Some(4) => {
                let p = Ipv4Packet::new_checked(ip).map_err(|_| ReplyError::NotIp)?;
                let whole =
                    p.header_len() >= ipv4::HEADER_LEN && p.total_len() as usize == ip.len();
                (IpAddr::V4(p.src()), whole, EtherType::IPV4)
            }
            Some(6) => {
                let p = Ipv6Packet::new_checked(ip).map_err(|_| ReplyError::NotIp)?;
                let whole = ipv6::HEADER_LEN + p.payload_len() as usize == ip.len();
                (
                    IpAddr::V6(Ipv6Addr::from(p.src_bytes())),
                    whole,
                    EtherType::IPV6,
                )
            }
            _ => return Err(ReplyError::NotIp),
        };
        if !whole {
            return Err(ReplyError::NotIp);
        }
        let (mac, vid, mtu) = self.reply_source(r.domain, r.vid, src)?;
        let len = ethernet::HEADER_LEN + ip.len();
        let mut b = pool.alloc().ok_or(ReplyError::NoBuffer)?;
        if pool.tail_room_mut(&b).len() < len || ip.len() > mtu {
            pool.free(b);
            return Err(ReplyError::TooLong(ip.len()));
        }
        let f = &mut pool.tail_room_mut(&b)[..len];
        f[0..6].copy_from_slice(&r.client_mac.0);
        f[6..12].copy_from_slice(&mac.0);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f[ethernet::HEADER_LEN..].copy_from_slice(ip);
        pool.set_len(&mut b, len);
        self.counters.stages.inc(StageCounter::DnsReplies);
        out.push(r.domain, vid, b);
        Ok(())
    }
}

impl Router {
    /// The MAC, VLAN and MTU an answer from `server` leaves `d` with in
    /// VLAN `vid`: `server` must be an address of the gateway when `vid`
    /// is the gateway's, else of the domain's DNS listener in `vid`.
    fn reply_source(
        &self,
        d: DomainId,
        vid: u16,
        server: IpAddr,
    ) -> Result<(MacAddr, u16, usize), ReplyError> {
        let g = self.gw_state(d).ok_or(ReplyError::NoGateway(d))?;
        if vid == g.cfg.vid {
            let ours = match server {
                IpAddr::V4(a) => g.cfg.ipv4.iter().any(|(x, _)| *x == a),
                IpAddr::V6(a) => g.cfg.ipv6.iter().any(|(x, _)| *x == a),
            };
            if !ours {
                return Err(ReplyError::NotGatewayAddress(server, d));
            }
        } else if !self.dns_listener(d, vid).is_some_and(|l| l.has(server)) {
            return Err(ReplyError::NotListenerAddress(server, d, vid));
        }
        Ok((g.cfg.mac, vid, g.cfg.mtu as usize))
    }
}

/// The destination port of the whole UDP datagram or TCP segment in `ip`.
pub(super) fn dport_of(ip: &[u8]) -> Option<u16> {
    l4_of(ip).map(|(_, dport, _)| dport)
}

/// Fill `f` (exactly the frame's length) with the answer `r` from `mac`.
fn write_reply_frame(f: &mut [u8], mac: MacAddr, r: &UdpReply) -> Result<(), ReplyError> {
    const ETH: usize = ethernet::HEADER_LEN;
    f[0..6].copy_from_slice(&r.client_mac.0);
    f[6..12].copy_from_slice(&mac.0);
    let udp_len = udp::HEADER_LEN + r.payload.len();
    let (pseudo, l4) = match (r.server, r.client.ip()) {
        (IpAddr::V4(s), IpAddr::V4(c)) => {
            f[12..14].copy_from_slice(&EtherType::IPV4.to_be_bytes());
            let total = (ipv4::HEADER_LEN + udp_len) as u16;
            ipv4::write_header(&mut f[ETH..], total, 64, udp::PROTOCOL, s.into(), c.into());
            let p = udp::pseudo_header_sum(&s.octets(), &c.octets(), udp_len);
            (p, ETH + ipv4::HEADER_LEN)
        }
        (IpAddr::V6(s), IpAddr::V6(c)) => {
            f[12..14].copy_from_slice(&EtherType::IPV6.to_be_bytes());
            let (so, co) = (s.octets(), c.octets());
            ipv6::write_header(&mut f[ETH..], udp_len as u16, udp::PROTOCOL, 64, &so, &co);
            let p = udp::pseudo_header_sum(&so, &co, udp_len);
            (p, ETH + ipv6::HEADER_LEN)
        }
        _ => return Err(ReplyError::FamilyMismatch),
    };
    let u = &mut f[l4..];
    u[0..2].copy_from_slice(&DNS_PORT.to_be_bytes());
    u[2..4].copy_from_slice(&r.client.port().to_be_bytes());
    u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    u[6..8].copy_from_slice(&[0, 0]);
    u[8..].copy_from_slice(&r.payload);
    let c = udp::checksum(pseudo, u);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Complete the partial L4 checksum of the IP packet `ip` as `o` says
/// (`csum_start` counts from the IP header); false when it points outside.
fn complete_csum(ip: &mut [u8], o: crate::buf::Offload) -> bool {
    let (start, field) = (
        o.csum_start as usize,
        (o.csum_start + o.csum_offset) as usize,
    );
    if start > ip.len() || field + 2 > ip.len() {
        return false;
    }
    let c = !udp::csum_fold(udp::csum_add(0, &ip[start..]));
    ip[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// What [`l4_of`] found.
enum L4<'a> {
    /// The UDP payload.
    Udp(&'a [u8]),
    /// The whole IP packet (header on, trailing padding off).
    Tcp(&'a [u8]),
}

/// The smallest TCP header.
const TCP_HEADER_LEN: usize = 20;

/// (source port, destination port, what is punted) of the UDP datagram or
/// TCP segment in the IP packet `ip`, when it is whole: no fragment, the
/// length within the packet and at least a header. IPv6 extension headers
/// are not walked. A TCP segment's checksum and options are for the DNS
/// service's TCP stack to check.
fn l4_of(ip: &[u8]) -> Option<(u16, u16, L4<'_>)> {
    let (proto, hl, end) = match ip.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(ip).ok()?;
            if p.more_frags() || p.frag_offset() != 0 {
                return None;
            }
            (p.protocol(), p.header_len(), p.total_len() as usize)
        }
        6 => {
            let p = Ipv6Packet::new_checked(ip).ok()?;
            let end = ipv6::HEADER_LEN + p.payload_len() as usize;
            (p.next_header(), ipv6::HEADER_LEN, end)
        }
        _ => return None,
    };
    let payload = ip.get(hl..end)?;
    if proto == Protocol::TCP {
        let t = payload.get(..TCP_HEADER_LEN)?;
        let sport = u16::from_be_bytes([t[0], t[1]]);
        let dport = u16::from_be_bytes([t[2], t[3]]);
        return Some((sport, dport, L4::Tcp(&ip[..end])));
    }
    if proto != udp::PROTOCOL {
        return None;
    }
    let u = udp::UdpPacket::new_checked(payload).ok()?;
    let len = u.len() as usize;
    if len < udp::HEADER_LEN || len > payload.len() {
        return None;
    }
    Some((
        u.src_port(),
        u.dst_port(),
        L4::Udp(&payload[udp::HEADER_LEN..len]),
    ))
}

fn addrs_of(ip: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match ip.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(ip).ok()?;
            Some((p.src().into(), p.dst().into()))
        }
        6 => {
            let p = Ipv6Packet::new_checked(ip).ok()?;
            let s = Ipv6Addr::from(p.src_bytes());
            let d = Ipv6Addr::from(p.dst_bytes());
            Some((s.into(), d.into()))
        }
        _ => None,
    }
}
