//! ARP/ND suppression: a broadcast ARP request or a multicast Neighbor
//! Solicitation that the switch hands the VTEP port for an address the
//! control plane says a remote endpoint holds is answered here, on the
//! remote's behalf, instead of being head-end replicated to every VTEP of
//! the VNI (what Linux's `vxlan` device does with `proxy`, and EVPN
//! fabrics with their ARP/ND suppression). The answer goes back into the
//! switch as if the remote had sent it over the tunnel.
//!
//! Left to flood, as before: gratuitous ARP and ARP probes (announcements
//! and duplicate-address checks must reach the owner), Duplicate Address
//! Detection (an NS from `::`), NS with extension headers or a bad
//! checksum, tagged frames, and every target the table does not hold.
//!
//! Owns: recognising the requests and writing the answers. Never: I/O,
//! allocation, touching frames it does not answer.

use std::net::IpAddr;

use rvs_switch::mac::MacAddr;
use rvs_switch::wire::{EtherType, arp, ethernet, icmpv6, ipv6};

/// What an answer is for (each kind has its counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked {
    Arp,
    Nd,
}

/// The longest answer written: a Neighbor Advertisement with its target
/// link-layer option (an ARP reply is shorter).
pub(super) const ANSWER_MAX: usize = icmpv6::ND_FRAME_LEN;

/// An answer to a request the table can answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answer {
    pub kind: Asked,
    /// The remote endpoint's MAC (the answer's source).
    pub mac: MacAddr,
    pub frame: [u8; ANSWER_MAX],
    pub len: usize,
}

impl Answer {
    pub fn bytes(&self) -> &[u8] {
        &self.frame[..self.len]
    }
}

/// Cheap first look at a frame on the transmit path: could it be a request
/// [`answer`] handles (group destination, ARP or IPv6, untagged)?
#[inline]
pub(super) fn maybe_request(f: &[u8]) -> bool {
    f.len() >= arp::FRAME_LEN
        && f[0] & 1 == 1
        && matches!(
            u16::from_be_bytes([f[12], f[13]]),
            EtherType::ARP | EtherType::IPV6
        )
}

/// The answer to request `f` if it is one and `lookup` knows its target.
pub(super) fn answer(f: &[u8], lookup: impl Fn(IpAddr) -> Option<MacAddr>) -> Option<Answer> {
    if !maybe_request(f) {
        return None;
    }
    let eth = ethernet::EthernetFrame::new_checked(f).ok()?;
    let asker = eth.src();
    if !asker.is_valid_source() {
        return None;
    }
    let mut out = Answer {
        kind: Asked::Arp,
        mac: MacAddr::ZERO,
        frame: [0; ANSWER_MAX],
        len: 0,
    };
    match eth.ethertype() {
        EtherType::ARP => {
            if eth.dst() != MacAddr::BROADCAST {
                return None;
            }
            let p = arp::ArpPacket::new_checked(eth.payload()).ok()?;
            let (spa, tpa) = (p.sender_ip(), p.target_ip());
            // Probes (sender 0.0.0.0) and announcements (sender = target)
            // are for the owner to hear.
            if p.operation() != arp::OP_REQUEST
                || spa.is_unspecified()
                || spa == tpa
                || tpa.is_unspecified()
                || tpa.is_multicast()
                || tpa.is_broadcast()
            {
                return None;
            }
            let mac = lookup(IpAddr::V4(tpa)).filter(|m| *m != p.sender_mac())?;
            out.len = arp::write_reply(&mut out.frame, mac, tpa, p.sender_mac(), spa).ok()?;
            out.mac = mac;
        }
        EtherType::IPV6 => {
            let ip = ipv6::Ipv6Packet::new_checked(eth.payload()).ok()?;
            let (src, dst) = (ip.src_bytes(), ip.dst_bytes());
            if ip.next_header() != 58
                || ip.hop_limit() != icmpv6::ND_HOP_LIMIT
                || dst[0] != 0xff
                || src == [0; 16]
            {
                return None;
            }
            let msg = &ip.payload()[..ip.payload_len() as usize];
            let m = icmpv6::Icmpv6Packet::new_checked(msg).ok()?;
            if m.msg_type() != icmpv6::TYPE_NEIGHBOR_SOLICIT
                || m.code() != 0
                || msg.len() < icmpv6::ND_LEN
                || !m.verify_checksum(&src, &dst)
            {
                return None;
            }
            let target = m.nd_target()?;
            if target[0] == 0xff {
                return None;
            }
            let mac = lookup(IpAddr::from(target)).filter(|m| *m != asker)?;
            // Answer to the asker's link-layer address option when it has
            // one (RFC 4861 7.2.4), else to the frame's source.
            let to = m
                .nd_lladdr()
                .filter(|m| m.is_valid_source())
                .unwrap_or(asker);
            out.len = icmpv6::write_advert(&mut out.frame, mac, &target, to, &src).ok()?;
            // write_advert speaks for a router; an endpoint is a host:
            // solicited and override only.
            let l3 = ethernet::HEADER_LEN + ipv6::HEADER_LEN;
            let na = &mut out.frame[l3..out.len];
            na[4] = icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE;
            icmpv6::fill_checksum(na, &target, &src);
            out.kind = Asked::Nd;
            out.mac = mac;
        }
        _ => return None,
    }
    Some(out)
}
