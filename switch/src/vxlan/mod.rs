//! VXLAN (RFC 7348) building blocks for a batch pipeline: pushing and
//! pulling the 8-byte VXLAN header in headroom (the UDP-socket underlay,
//! where the kernel writes the outer IP/UDP), the full outer
//! Ethernet/IPv4|IPv6/UDP/VXLAN encapsulation for a raw underlay
//! ([`outer`]), the per-VNI table of remote VTEPs ([`table`]), the inner
//! flow hash that gives the UDP source port its ECMP entropy, and the
//! XDP-style metadata a VTEP port leaves in front of a decapsulated frame.
//!
//! Owns: header bytes, the encapsulation arithmetic (lengths, checksums,
//! MTU), and the remote-VTEP state. Never: syscalls, reading a clock (callers
//! pass `now`), allocation on the per-batch path, copying a payload (every
//! header goes into headroom).

pub mod outer;
pub mod table;

use std::net::{IpAddr, Ipv6Addr};

use crate::batch::{BATCH_MAX, Batch};
use crate::buf::{PacketPool, PktBuf};
use crate::counters::{DropReason, StageCounter, StageCounters};
use crate::wire::ethernet::EtherType;
use crate::wire::vxlan::FLAG_I;
pub use crate::wire::vxlan::{HEADER_LEN, UDP_PORT, Vni, header};
pub use outer::{OuterDecap, OuterEncap, UnderlayError, UnderlayParams, decap_outer};
pub use table::{Destination, RemoteEntryInfo, VniConfig, VtepTable, VtepTableError};

/// Bytes an IPv4 encapsulation adds on the wire: outer Ethernet (14) +
/// IPv4 (20) + UDP (8) + VXLAN (8).
pub const OVERHEAD_V4: usize = 50;
/// Bytes an IPv6 encapsulation adds: outer Ethernet (14) + IPv6 (40) + UDP
/// (8) + VXLAN (8).
pub const OVERHEAD_V6: usize = 70;
/// RFC 7348 §5's recommended source port range (dynamic/private ports).
pub const SRC_PORTS_RFC: (u16, u16) = (49152, 65535);

/// Largest inner frame (inner MAC header included, FCS excluded) that fits
/// an underlay whose IP MTU is `underlay_mtu`: the outer IP packet is the
/// inner frame plus 36 (IPv4) or 56 (IPv6) bytes. Equivalently, the
/// overlay's IP MTU is `underlay_mtu - 50` (`- 70`), see [`overlay_mtu`].
#[inline]
pub const fn max_inner_frame(underlay_mtu: usize, v6: bool) -> usize {
    let l3_overhead = if v6 { OVERHEAD_V6 } else { OVERHEAD_V4 } - 14;
    underlay_mtu.saturating_sub(l3_overhead)
}

/// The IP MTU an overlay interface should have over `underlay_mtu` (what
/// Linux gives a `vxlan` device: 1450 over a 1500 underlay for IPv4).
#[inline]
pub const fn overlay_mtu(underlay_mtu: usize, v6: bool) -> usize {
    underlay_mtu.saturating_sub(if v6 { OVERHEAD_V6 } else { OVERHEAD_V4 })
}

/// Drop and stage counters of the VXLAN stages (a VTEP port or the
/// pipeline's encap/decap stages own one each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanCounters {
    pub drops: [u64; DropReason::COUNT],
    pub stages: StageCounters,
}

impl Default for VxlanCounters {
    fn default() -> Self {
        VxlanCounters {
            drops: [0; DropReason::COUNT],
            stages: StageCounters::default(),
        }
    }
}

impl VxlanCounters {
    #[inline]
    pub fn drop(&mut self, r: DropReason) {
        self.drops[r as usize] += 1;
    }
    pub fn drops_by(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }
    pub fn get(&self, c: StageCounter) -> u64 {
        self.stages.get(c)
    }
}

/// Prepend the VXLAN header for `vni` in the headroom (UDP-socket underlay:
/// the datagram is header + inner frame).
#[inline]
pub fn push_header(pool: &mut PacketPool, b: &mut PktBuf, vni: Vni) -> Result<(), DropReason> {
    if b.headroom() < HEADER_LEN {
        return Err(DropReason::NoHeadroom);
    }
    pool.push_front(b, HEADER_LEN);
    pool.data_mut(b)[..HEADER_LEN].copy_from_slice(&header(vni));
    Ok(())
}

/// Check and strip the VXLAN header at the start of `b` (a UDP payload).
/// Returns the VNI; whether it is known is the caller's (or
/// [`decap_batch`]'s) question.
#[inline]
pub fn pull_header(pool: &PacketPool, b: &mut PktBuf) -> Result<Vni, DropReason> {
    let d = pool.data(b);
    // A datagram must carry at least the header and an inner MAC header.
    if d.len() < HEADER_LEN + 14 {
        return Err(DropReason::VxlanTruncated);
    }
    if d[0] & FLAG_I == 0 {
        return Err(DropReason::VxlanNoIFlag);
    }
    let vni = (u32::from_be_bytes([d[3], d[4], d[5], d[6]])) & 0x00ff_ffff;
    pool.pull_front(b, HEADER_LEN);
    Ok(Vni::new(vni).expect("masked to 24 bits"))
}

/// Decapsulate a batch of VXLAN UDP payloads in place: header checked (I
/// flag, VNI known to `table`) and stripped; `vnis[i]` holds the VNI of the
/// packet now at index `i`. Failures are freed and counted. Returns how many
/// were dropped.
pub fn decap_batch(
    pool: &mut PacketPool,
    batch: &mut Batch,
    table: &VtepTable,
    vnis: &mut [Vni; BATCH_MAX],
    c: &mut VxlanCounters,
) -> usize {
    let mut verdict = [Ok(()); BATCH_MAX];
    let mut kept = 0;
    let mut last = None;
    for (i, b) in batch.as_mut_slice().iter_mut().enumerate() {
        verdict[i] = match pull_header(pool, b) {
            Ok(vni) if known_cached(table, vni, &mut last) => {
                vnis[kept] = vni;
                kept += 1;
                Ok(())
            }
            Ok(_) => Err(DropReason::VxlanUnknownVni),
            Err(r) => Err(r),
        };
    }
    let dropped = apply_verdicts(pool, batch, &verdict, c);
    c.stages.add(StageCounter::VxlanDecap, kept as u64);
    dropped
}

/// Encapsulate a batch for the UDP-socket underlay: each frame longer than
/// `max_inner` (see [`max_inner_frame`]) and not a GSO super-frame is
/// dropped and counted; the rest get the VXLAN header for `vni`. GSO
/// super-frames must be segmented by the caller before they are sent.
pub fn encap_batch(
    pool: &mut PacketPool,
    batch: &mut Batch,
    vni: Vni,
    max_inner: usize,
    c: &mut VxlanCounters,
) -> usize {
    let mut verdict = [Ok(()); BATCH_MAX];
    for (i, b) in batch.as_mut_slice().iter_mut().enumerate() {
        verdict[i] = if b.len() > max_inner && !b.offload().is_gso() {
            Err(DropReason::VxlanOversize)
        } else {
            push_header(pool, b, vni)
        };
    }
    let dropped = apply_verdicts(pool, batch, &verdict, c);
    c.stages.add(StageCounter::VxlanEncap, (batch.len()) as u64);
    dropped
}

/// Free and count the packets whose verdict is an error; a batch with none
/// (the common case) is left untouched. Returns how many were dropped.
#[inline]
pub(crate) fn apply_verdicts(
    pool: &mut PacketPool,
    batch: &mut Batch,
    verdict: &[Result<(), DropReason>; BATCH_MAX],
    c: &mut VxlanCounters,
) -> usize {
    if verdict[..batch.len()].iter().all(Result::is_ok) {
        return 0;
    }
    batch.retain(pool, |i, _| match verdict[i] {
        Ok(()) => true,
        Err(r) => {
            c.drop(r);
            false
        }
    })
}

/// Whether `vni` is known, asking `table` only when it differs from the
/// previous packet's (a batch is mostly one VNI).
#[inline(always)]
pub(crate) fn known_cached(table: &VtepTable, vni: Vni, last: &mut Option<(Vni, bool)>) -> bool {
    match *last {
        Some((v, k)) if v == vni => k,
        _ => {
            let k = table.knows(vni);
            *last = Some((vni, k));
            k
        }
    }
}

/// Odd multipliers, one per input word of [`flow_hash`].
const K: [u64; 8] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0xd6e8_feb8_6659_fd93,
    0xff51_afd7_ed55_8ccd,
    0xc4ce_b9fe_1a85_ec53,
    0x8cb9_2ba7_2f3d_8dd7,
    0xa076_1d64_78bd_642f,
];

/// A hash of the inner frame's flow: MAC addresses and EtherType, and for
/// IPv4/IPv6 the addresses, protocol and (TCP/UDP/SCTP, unfragmented) the
/// ports, one VLAN tag looked through. Stable for a flow, spread across
/// flows: the UDP source port is made from it, as Linux's
/// `udp_flow_src_port` does from the skb's flow hash.
///
/// Each input word gets its own multiplier and the products are summed, so
/// the multiplies run in parallel rather than as one dependent chain; one
/// avalanche step at the end mixes high bits into low.
#[inline]
pub fn flow_hash(frame: &[u8]) -> u32 {
    if frame.len() < 14 {
        return 0;
    }
    let rd64 = |at: usize| u64::from_be_bytes(frame[at..at + 8].try_into().unwrap());
    let mut at = 12;
    let mut et = u16::from_be_bytes([frame[12], frame[13]]);
    if et == EtherType::VLAN && frame.len() >= 18 {
        et = u16::from_be_bytes([frame[16], frame[17]]);
        at = 16;
    }
    // Both MACs (bytes 0..12) and the EtherType.
    let mut h =
        rd64(0).wrapping_mul(K[0]) ^ rd64(4).wrapping_mul(K[1]) ^ (et as u64).wrapping_mul(K[2]);
    let l3 = at + 2;
    let (proto, l4) = match et {
        EtherType::IPV4 if frame.len() >= l3 + 20 => {
            let ip = &frame[l3..];
            h = h.wrapping_add(
                u64::from_be_bytes(ip[12..20].try_into().unwrap()).wrapping_mul(K[3]),
            );
            let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
            let ihl = (ip[0] & 0xf) as usize * 4;
            (ip[9], if frag { None } else { Some(l3 + ihl) })
        }
        EtherType::IPV6 if frame.len() >= l3 + 40 => {
            let ip = &frame[l3..];
            for k in 0..4 {
                let w = u64::from_be_bytes(ip[8 + 8 * k..16 + 8 * k].try_into().unwrap());
                h = h.wrapping_add(w.wrapping_mul(K[3 + k]));
            }
            (ip[6], Some(l3 + 40))
        }
        _ => return avalanche(h),
    };
    let mut tail = proto as u64;
    if let (6 | 17 | 132, Some(p)) = (proto, l4)
        && frame.len() >= p + 4
    {
        tail |= (u32::from_be_bytes(frame[p..p + 4].try_into().unwrap()) as u64) << 8;
    }
    avalanche(h.wrapping_add(tail.wrapping_mul(K[7])))
}

#[inline(always)]
fn avalanche(mut x: u64) -> u32 {
    x ^= x >> 32;
    x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    (x >> 32) as u32
}

/// Map a flow hash onto the inclusive port range `(lo, hi)` the way Linux
/// maps it (`((u64)hash * range) >> 32`, plus the low end).
#[inline]
pub fn src_port(hash: u32, range: (u16, u16)) -> u16 {
    let (lo, hi) = if range.0 <= range.1 {
        range
    } else {
        (range.1, range.0)
    };
    let span = (hi - lo) as u64 + 1;
    lo + ((hash as u64 * span) >> 32) as u16
}

/// What a VTEP port knows about a decapsulated frame that its bytes no
/// longer say: its VNI and the remote VTEP it came from.
///
/// It travels XDP-`data_meta` style: the port writes it into the
/// [`RxMeta::LEN`] headroom bytes right before the inner frame (where the
/// VXLAN header was), and the pipeline's first stage reads it before any
/// stage pushes a header there. `PktBuf` stays 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxMeta {
    pub vni: Vni,
    pub remote: IpAddr,
}

const RX_META_MAGIC: u32 = 0x5658_4d31; // "VXM1"

impl RxMeta {
    /// Headroom bytes the metadata occupies.
    pub const LEN: usize = 24;

    /// Write the metadata in front of `b`. Returns false (and writes
    /// nothing) if the headroom is smaller than [`RxMeta::LEN`].
    #[inline]
    pub fn write(&self, pool: &mut PacketPool, b: &mut PktBuf) -> bool {
        if b.headroom() < Self::LEN {
            return false;
        }
        pool.push_front(b, Self::LEN);
        let d = pool.data_mut(b);
        d[0..4].copy_from_slice(&RX_META_MAGIC.to_be_bytes());
        d[4..8].copy_from_slice(&self.vni.get().to_be_bytes());
        let v6 = match self.remote {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        };
        d[8..24].copy_from_slice(&v6.octets());
        pool.pull_front(b, Self::LEN);
        true
    }

    /// Read the metadata a VTEP port left in front of `b`, and clear its
    /// mark so a stale copy is never read twice. `None` if there is none.
    #[inline]
    pub fn take(pool: &mut PacketPool, b: &mut PktBuf) -> Option<RxMeta> {
        if b.headroom() < Self::LEN {
            return None;
        }
        pool.push_front(b, Self::LEN);
        let d = pool.data_mut(b);
        let m = if d[0..4] == RX_META_MAGIC.to_be_bytes() {
            let vni = Vni::new(u32::from_be_bytes(d[4..8].try_into().unwrap()) & 0xff_ffff);
            let a = Ipv6Addr::from(<[u8; 16]>::try_from(&d[8..24]).unwrap());
            let remote = a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4);
            d[0..4].fill(0);
            vni.map(|vni| RxMeta { vni, remote })
        } else {
            None
        };
        pool.pull_front(b, Self::LEN);
        m
    }
}

#[cfg(test)]
mod tests;
