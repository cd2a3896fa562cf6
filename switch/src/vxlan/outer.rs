//! The whole encapsulation for a raw underlay (AF_XDP, AF_PACKET on a NIC):
//! outer Ethernet + IPv4 or IPv6 + UDP + VXLAN written into headroom from a
//! prebuilt template, byte for byte what the Linux `vxlan` device sends
//! (golden-tested against its capture in `tests/vxlan.rs`), and the matching
//! receive-side check and strip.
//!
//! Per packet the encap copies the template and fills four things: the IP
//! length (and for IPv4 the ID and the header checksum, incrementally from a
//! precomputed sum), the UDP source port (from the inner flow hash), the UDP
//! length, and, when enabled, the UDP checksum over the datagram.
//!
//! Owns: template construction and the outer-header arithmetic. Never:
//! routing or neighbour resolution (the caller gives both MAC addresses),
//! fragmentation (DF or not, an oversize frame is dropped), completing an
//! inner frame's offloads (the caller does that before encapsulating).

use std::net::IpAddr;

use super::{
    RxMeta, VtepTable, VxlanCounters, apply_verdicts, flow_hash, known_cached, max_inner_frame,
    src_port,
};
use crate::batch::{BATCH_MAX, Batch};
use crate::buf::{PacketPool, PktBuf};
use crate::counters::{DropReason, StageCounter};
use crate::mac::MacAddr;
use crate::wire::ethernet::EtherType;
use crate::wire::udp::{self, csum_add, csum_fold, pseudo_header_sum};
use crate::wire::vxlan::{self, FLAG_I, Vni};

/// Where the outer headers of an encapsulation go, and how they look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnderlayParams {
    pub src_mac: MacAddr,
    /// The next hop's MAC address on the underlay.
    pub dst_mac: MacAddr,
    /// Local VTEP address.
    pub src: IpAddr,
    /// Remote VTEP address (same family as `src`).
    pub dst: IpAddr,
    /// UDP destination port (4789 by default).
    pub dst_port: u16,
    /// Inclusive range the per-flow UDP source port is drawn from.
    pub src_ports: (u16, u16),
    /// IPv4 TTL / IPv6 hop limit (Linux's "ttl auto" is the route's, 64).
    pub ttl: u8,
    /// IPv4 TOS / IPv6 traffic class.
    pub tos: u8,
    /// Set IPv4 don't-fragment (IPv6 never fragments in transit).
    pub df: bool,
    /// IPv6 flow label (20 bits; 0 as Linux sends by default).
    pub flow_label: u32,
    /// Compute the UDP checksum. Linux 6.18 does by default for IPv4
    /// (`udpcsum`) and IPv6 (`noudp6zerocsumtx`); RFC 7348 allows zero over
    /// IPv4. Off, IPv4 sends 0; IPv6 with it off sends 0 (RFC 6935).
    pub udp_csum: bool,
}

impl UnderlayParams {
    /// Parameters with the Linux `vxlan` defaults: port 4789, TTL 64, TOS 0,
    /// DF clear, flow label 0, UDP checksum on, source ports 49152..=65535.
    pub fn new(src_mac: MacAddr, dst_mac: MacAddr, src: IpAddr, dst: IpAddr) -> Self {
        UnderlayParams {
            src_mac,
            dst_mac,
            src,
            dst,
            dst_port: vxlan::UDP_PORT,
            src_ports: super::SRC_PORTS_RFC,
            ttl: 64,
            tos: 0,
            df: false,
            flow_label: 0,
            udp_csum: true,
        }
    }
}

/// Why an encapsulation could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnderlayError {
    #[error("underlay source {src} and destination {dst} are not of one address family")]
    MixedFamilies { src: IpAddr, dst: IpAddr },
    #[error("IPv6 flow label {0:#x} does not fit 20 bits")]
    FlowLabel(u32),
    #[error("TTL 0 would be dropped by the first hop")]
    ZeroTtl,
}

use super::{OVERHEAD_V4, OVERHEAD_V6};

const MAX_OUTER: usize = OVERHEAD_V6;

/// A prebuilt outer header for one (underlay path, VNI) and its running
/// IPv4 ID. Build once per remote VTEP; encapsulate batches with it.
#[derive(Debug, Clone)]
pub struct OuterEncap {
    tmpl: [u8; MAX_OUTER],
    /// Bytes of `tmpl` in use: 50 (IPv4) or 70 (IPv6).
    len: usize,
    /// Offset of the UDP header (34 or 54).
    udp_at: usize,
    v6: bool,
    udp_csum: bool,
    src_ports: (u16, u16),
    /// IPv4 header sum with length, ID and checksum zero.
    ip_sum: u64,
    /// Pseudo-header sum without the UDP length.
    pseudo: u64,
    /// `pseudo` plus the UDP destination port and the VXLAN header: the part
    /// of the UDP checksum that is the same for every packet.
    udp_base: u64,
    next_id: u16,
}

impl OuterEncap {
    pub fn new(p: &UnderlayParams, vni: Vni) -> Result<OuterEncap, UnderlayError> {
        if p.ttl == 0 {
            return Err(UnderlayError::ZeroTtl);
        }
        let mut t = [0u8; MAX_OUTER];
        t[0..6].copy_from_slice(&p.dst_mac.0);
        t[6..12].copy_from_slice(&p.src_mac.0);
        let (v6, udp_at, ip_sum, pseudo) = match (p.src, p.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                t[12..14].copy_from_slice(&EtherType::IPV4.to_be_bytes());
                let ip = &mut t[14..34];
                ip[0] = 0x45;
                ip[1] = p.tos;
                if p.df {
                    ip[6] = 0x40;
                }
                ip[8] = p.ttl;
                ip[9] = udp::PROTOCOL;
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                let sum = csum_add(0, ip);
                (
                    false,
                    34,
                    sum,
                    pseudo_header_sum(&s.octets(), &d.octets(), 0),
                )
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                if p.flow_label > 0xf_ffff {
                    return Err(UnderlayError::FlowLabel(p.flow_label));
                }
                t[12..14].copy_from_slice(&EtherType::IPV6.to_be_bytes());
                let ip = &mut t[14..54];
                let vtf = (6u32 << 28) | ((p.tos as u32) << 20) | p.flow_label;
                ip[0..4].copy_from_slice(&vtf.to_be_bytes());
                ip[6] = udp::PROTOCOL;
                ip[7] = p.ttl;
                ip[8..24].copy_from_slice(&s.octets());
                ip[24..40].copy_from_slice(&d.octets());
                (true, 54, 0, pseudo_header_sum(&s.octets(), &d.octets(), 0))
            }
            (src, dst) => return Err(UnderlayError::MixedFamilies { src, dst }),
        };
        t[udp_at + 2..udp_at + 4].copy_from_slice(&p.dst_port.to_be_bytes());
        t[udp_at + 8..udp_at + 16].copy_from_slice(&vxlan::header(vni));
        Ok(OuterEncap {
            tmpl: t,
            len: udp_at + 16,
            udp_at,
            v6,
            udp_csum: p.udp_csum,
            src_ports: p.src_ports,
            ip_sum,
            pseudo,
            udp_base: 0,
            next_id: 0,
        }
        .with_udp_base())
    }

    fn with_udp_base(mut self) -> Self {
        let u = self.udp_at;
        let dport = u16::from_be_bytes([self.tmpl[u + 2], self.tmpl[u + 3]]);
        self.udp_base = csum_add(self.pseudo + dport as u64, &self.tmpl[u + 8..u + 16]);
        self
    }

    /// Bytes the encapsulation adds (50 or 70).
    pub fn overhead(&self) -> usize {
        self.len
    }

    pub fn is_ipv6(&self) -> bool {
        self.v6
    }

    /// Change the VNI the template carries.
    pub fn set_vni(&mut self, vni: Vni) {
        let at = self.udp_at + 8;
        self.tmpl[at..at + 8].copy_from_slice(&vxlan::header(vni));
        *self = self.clone().with_udp_base();
    }

    /// The IPv4 ID the next packet gets (then +1 per packet, as Linux's
    /// per-destination ident does).
    pub fn set_next_id(&mut self, id: u16) {
        self.next_id = id;
    }

    /// Encapsulate `b` with UDP source port `sport`. Fails (changing
    /// nothing) when the headroom is too small.
    #[inline]
    pub fn encap_with_port(
        &mut self,
        pool: &mut PacketPool,
        b: &mut PktBuf,
        sport: u16,
    ) -> Result<(), DropReason> {
        let n = self.len;
        if b.headroom() < n {
            return Err(DropReason::NoHeadroom);
        }
        let inner = b.len();
        pool.push_front(b, n);
        let d = pool.data_mut(b);
        // Constant lengths: inline moves instead of a memmove call.
        if self.v6 {
            d[..OVERHEAD_V6].copy_from_slice(&self.tmpl[..OVERHEAD_V6]);
        } else {
            d[..OVERHEAD_V4].copy_from_slice(&self.tmpl[..OVERHEAD_V4]);
        }
        let u = self.udp_at;
        let udp_len = (inner + 16) as u16;
        if self.v6 {
            d[18..20].copy_from_slice(&udp_len.to_be_bytes());
        } else {
            let tot = udp_len + 20;
            let id = self.next_id;
            self.next_id = id.wrapping_add(1);
            d[16..18].copy_from_slice(&tot.to_be_bytes());
            d[18..20].copy_from_slice(&id.to_be_bytes());
            let c = !csum_fold(self.ip_sum + tot as u64 + id as u64);
            d[24..26].copy_from_slice(&c.to_be_bytes());
        }
        d[u..u + 2].copy_from_slice(&sport.to_be_bytes());
        d[u + 4..u + 6].copy_from_slice(&udp_len.to_be_bytes());
        if self.udp_csum {
            // Summed from the values, not read back from the header just
            // written (narrow stores then wide loads stall store forwarding):
            // constant part, length twice (pseudo-header and UDP header),
            // source port, then the untouched inner frame.
            let sum = self.udp_base + 2 * udp_len as u64 + sport as u64;
            let c = match !csum_fold(csum_add(sum, &d[n..])) {
                0 => 0xffff,
                c => c,
            };
            d[u + 6..u + 8].copy_from_slice(&c.to_be_bytes());
        }
        Ok(())
    }

    /// Encapsulate `b` with a source port hashed from its inner flow.
    #[inline]
    pub fn encap(&mut self, pool: &mut PacketPool, b: &mut PktBuf) -> Result<(), DropReason> {
        let sport = src_port(flow_hash(pool.data(b)), self.src_ports);
        self.encap_with_port(pool, b, sport)
    }

    /// Encapsulate a batch for an underlay with IP MTU `underlay_mtu`: frames
    /// that would exceed it are dropped and counted (so are GSO super-frames,
    /// which must be segmented before this stage). Returns how many dropped.
    pub fn encap_batch(
        &mut self,
        pool: &mut PacketPool,
        batch: &mut Batch,
        underlay_mtu: usize,
        c: &mut VxlanCounters,
    ) -> usize {
        let max = max_inner_frame(underlay_mtu, self.v6);
        let mut verdict = [Ok(()); BATCH_MAX];
        let mut sports = [0u16; BATCH_MAX];
        for (i, b) in batch.iter().enumerate() {
            sports[i] = src_port(flow_hash(pool.data(b)), self.src_ports);
        }
        for (i, b) in batch.as_mut_slice().iter_mut().enumerate() {
            verdict[i] = if b.len() > max || b.offload().is_gso() {
                Err(DropReason::VxlanOversize)
            } else {
                self.encap_with_port(pool, b, sports[i])
            };
        }
        let dropped = apply_verdicts(pool, batch, &verdict, c);
        c.stages.add(StageCounter::VxlanEncap, batch.len() as u64);
        dropped
    }
}

/// The receive side of a raw underlay: which frames are VXLAN to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OuterDecap {
    /// Local VTEP address: outer destination must match.
    pub local: IpAddr,
    /// UDP destination port (4789 by default).
    pub port: u16,
}

/// Check the outer headers of the underlay frame in `b` and strip them:
/// Ethernet (untagged), IPv4 (valid header checksum, no fragment) or IPv6
/// (UDP as the next header), UDP to `d.port` at `d.local`, VXLAN with the
/// I flag and a VNI `table` knows. Link padding after the UDP datagram is
/// trimmed. Returns the VNI and the remote VTEP (outer source address).
/// The outer UDP checksum is not verified (NIC offload territory; the inner
/// frame carries its own checksums).
#[inline]
pub fn decap_outer(
    pool: &PacketPool,
    b: &mut PktBuf,
    d: &OuterDecap,
    table: &VtepTable,
) -> Result<RxMeta, DropReason> {
    decap_outer_with(pool, b, d, |vni| table.knows(vni))
}

#[inline(always)]
fn decap_outer_with(
    pool: &PacketPool,
    b: &mut PktBuf,
    d: &OuterDecap,
    mut known: impl FnMut(Vni) -> bool,
) -> Result<RxMeta, DropReason> {
    let f = pool.data(b);
    if f.len() < 14 + 20 + 8 + 8 + 14 {
        return Err(DropReason::VxlanTruncated);
    }
    let et = u16::from_be_bytes([f[12], f[13]]);
    let (udp_at, remote, dst_ok) = match et {
        EtherType::IPV4 => {
            let ip = &f[14..];
            let ihl = (ip[0] & 0xf) as usize * 4;
            if ip[0] >> 4 != 4 || ihl < 20 {
                return Err(DropReason::VxlanNotForUs);
            }
            if f.len() < 14 + ihl + 16 + 14 {
                return Err(DropReason::VxlanTruncated);
            }
            let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
            if ip[9] != udp::PROTOCOL || frag || csum_fold(csum_add(0, &ip[..ihl])) != 0xffff {
                return Err(DropReason::VxlanNotForUs);
            }
            let src: [u8; 4] = ip[12..16].try_into().unwrap();
            let dst: [u8; 4] = ip[16..20].try_into().unwrap();
            let ok = d.local == IpAddr::from(dst);
            (14 + ihl, IpAddr::from(src), ok)
        }
        EtherType::IPV6 => {
            if f.len() < 14 + 40 + 16 + 14 {
                return Err(DropReason::VxlanTruncated);
            }
            let ip = &f[14..];
            if ip[0] >> 4 != 6 || ip[6] != udp::PROTOCOL {
                return Err(DropReason::VxlanNotForUs);
            }
            let src: [u8; 16] = ip[8..24].try_into().unwrap();
            let dst: [u8; 16] = ip[24..40].try_into().unwrap();
            let ok = d.local == IpAddr::from(dst);
            (54, IpAddr::from(src), ok)
        }
        _ => return Err(DropReason::VxlanNotForUs),
    };
    let u = &f[udp_at..];
    if !dst_ok || u16::from_be_bytes([u[2], u[3]]) != d.port {
        return Err(DropReason::VxlanNotForUs);
    }
    let udp_len = u16::from_be_bytes([u[4], u[5]]) as usize;
    if udp_len < 16 + 14 || udp_len > u.len() {
        return Err(DropReason::VxlanTruncated);
    }
    if u[8] & FLAG_I == 0 {
        return Err(DropReason::VxlanNoIFlag);
    }
    let vni = Vni::new(u32::from_be_bytes([0, u[12], u[13], u[14]])).expect("24 bits");
    if !known(vni) {
        return Err(DropReason::VxlanUnknownVni);
    }
    let frame_len = udp_len - 16;
    pool.pull_front(b, udp_at + 16);
    pool.set_len(b, frame_len);
    Ok(RxMeta { vni, remote })
}

impl OuterDecap {
    /// Decapsulate a batch in place; `meta[i]` describes the packet now at
    /// index `i`. Failures are freed and counted. Returns how many dropped.
    pub fn decap_batch(
        &self,
        pool: &mut PacketPool,
        batch: &mut Batch,
        table: &VtepTable,
        meta: &mut [Option<RxMeta>; BATCH_MAX],
        c: &mut VxlanCounters,
    ) -> usize {
        let mut verdict = [Ok(()); BATCH_MAX];
        let mut kept = 0;
        let mut last = None;
        for (i, b) in batch.as_mut_slice().iter_mut().enumerate() {
            let known = |vni| known_cached(table, vni, &mut last);
            verdict[i] = decap_outer_with(pool, b, self, known).map(|m| {
                meta[kept] = Some(m);
                kept += 1;
            });
        }
        let dropped = apply_verdicts(pool, batch, &verdict, c);
        c.stages.add(StageCounter::VxlanDecap, kept as u64);
        dropped
    }
}
