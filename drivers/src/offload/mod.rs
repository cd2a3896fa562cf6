//! Offload work the port back ends share: the virtio-net header that TAP
//! and packet sockets put in front of a frame ([`vnet`]), completing a
//! partial (CHECKSUM_PARTIAL) L4 checksum ([`csum`]) and cutting a TCP or
//! UDP GSO super-frame into wire-sized segments ([`gso`]), the way the
//! kernel's `skb_checksum_help`, `tcp_gso_segment` and `__udp_gso_segment`
//! would. TAP, AF_PACKET, AF_XDP and the VXLAN VTEP all call this one
//! module; none keeps its own copy of the header layout, the checksum
//! arithmetic or the segment fix-ups.
//!
//! Who calls what:
//! - TAP receive: [`VnetHdr::to_offload`]; transmit: [`VnetHdr::from_offload`]
//!   for what the kernel takes, [`GsoPlan::segment`] (header block + payload
//!   slice, for `writev`) and [`complete_partial`] for what it does not.
//! - AF_PACKET receive: [`GsoPlan::from_vnet`] and [`GsoPlan::fix_segment`]
//!   (each segment copied and fixed in place), [`complete_csum`]; transmit:
//!   [`VnetHdr::from_offload`], or [`complete_partial`] without vnet headers.
//! - AF_XDP transmit: [`finish_in_software`] (segments in pool frames).
//! - VXLAN VTEP transmit: [`complete_partial`] and [`GsoPlan::segment`].
//!
//! Owns: the header layout, the checksum and the segment fix-ups over plain
//! byte slices. Never: syscalls, panics on malformed frames (every offset
//! is checked when a plan is made; bad input is an [`OffloadError`] the
//! caller counts and drops), IPv6 extension headers beyond what
//! `csum_start` skips.

pub mod csum;
pub mod gso;
pub mod vnet;

#[cfg(test)]
mod tests;

use rvs_switch::buf::Offload;
use rvs_switch::{PacketPool, PktBuf};

pub use csum::{complete_csum, csum_add, csum_finish, csum_fold, l2_len};
pub use gso::{CsumMode, GsoPlan, MAX_HEADERS, Segment};
pub use vnet::{VNET_HDR_LEGACY_LEN, VNET_HDR_LEN, VnetHdr};

/// Why a frame's offload work could not be done (the frame is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("checksum field at {start}+{offset} lies outside a {len}-byte frame")]
    CsumRange {
        start: usize,
        offset: usize,
        len: usize,
    },
    #[error("GSO type {0:#04x} is not supported (UFO fragmentation or unknown)")]
    UnsupportedGso(u8),
    #[error("GSO super-frame headers do not parse: {0}")]
    BadHeaders(&'static str),
}

/// Complete the partial checksum a packet's offload state describes
/// (`csum_start` counted from the L3 header, as the switch keeps it).
pub fn complete_partial(frame: &mut [u8], o: Offload) -> Result<(), OffloadError> {
    let l2 = l2_len(frame).ok_or(OffloadError::BadHeaders("no L3 header"))?;
    complete_csum(frame, l2 + o.csum_start as usize, o.csum_offset as usize)
}

/// What [`finish_in_software`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Nothing to do: the packet is complete as it is.
    AsIs,
    /// Its partial checksum was completed in place.
    Checksummed,
    /// It was cut into this many segments (the original frame was freed).
    Segmented(usize),
}

/// Why [`finish_in_software`] dropped a packet (it was freed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfinished {
    /// Offload metadata that does not match the frame, or a GSO type that
    /// cannot be segmented.
    BadOffload,
    /// No free frame for a segment.
    NoBuffer,
    /// A segment would not fit the egress even so.
    TooBig,
}

/// For an egress that takes no offloads (AF_XDP, a plain packet socket):
/// turn a packet carrying GSO or partial-checksum metadata into complete
/// frames of at most `max_len` bytes, handed to `emit` in order, each from
/// the pool's small frames. Complete packets pass through untouched. Off
/// the common path: a super-frame is copied out once, since its segments
/// are written into frames of the same pool.
pub fn finish_in_software(
    pool: &mut PacketPool,
    mut b: PktBuf,
    max_len: usize,
    mut emit: impl FnMut(&mut PacketPool, PktBuf),
) -> Result<Finished, Unfinished> {
    let o = b.offload();
    if o.is_gso() {
        let frame = pool.data(&b).to_vec();
        pool.free(b);
        let plan = GsoPlan::from_offload(&frame, o).map_err(|_| Unfinished::BadOffload)?;
        if (0..plan.segments()).any(|i| plan.segment_len(i) > max_len) {
            return Err(Unfinished::TooBig);
        }
        let mut segs = Vec::with_capacity(plan.segments());
        for i in 0..plan.segments() {
            let Some(mut seg) = pool.alloc() else {
                for s in segs {
                    pool.free(s);
                }
                return Err(Unfinished::NoBuffer);
            };
            let len = plan.segment_len(i);
            let hl = plan.hdr_len();
            let room = &mut pool.tail_room_mut(&seg)[..len];
            room[..hl].copy_from_slice(&frame[..hl]);
            room[hl..].copy_from_slice(&frame[plan.payload_range(i)]);
            plan.fix_segment(room, i);
            pool.set_len(&mut seg, len);
            segs.push(seg);
        }
        let n = segs.len();
        for s in segs {
            emit(pool, s);
        }
        Ok(Finished::Segmented(n))
    } else if o.needs_csum() {
        if complete_partial(pool.data_mut(&b), o).is_err() {
            pool.free(b);
            return Err(Unfinished::BadOffload);
        }
        b.set_offload(Offload::NONE);
        emit(pool, b);
        Ok(Finished::Checksummed)
    } else {
        emit(pool, b);
        Ok(Finished::AsIs)
    }
}
