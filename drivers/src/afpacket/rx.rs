//! The receive path: walk the ring's blocks and frames, copy each frame
//! into a pool buffer (putting back a VLAN tag the kernel took out,
//! finishing offload work the vnet header asks for), hand blocks back.
//!
//! Owns: the position in the ring between bursts. Never: syscalls or
//! blocking; a full batch or an empty pool leaves the frame for next time.

use rvs_switch::{Batch, PacketPool, PktBuf};

use super::offload::{GsoPlan, VnetHdr, complete_csum};
use super::ring::{RxFrame, RxRing};
use super::stats::AfPacketStats;

/// Where the receive path stands in the ring.
#[derive(Debug, Default)]
pub(super) struct Cursor {
    /// Block being walked (or waited for).
    block: usize,
    /// The block is ours and `left`/`off` describe it.
    open: bool,
    /// Frames left in it, and the offset of the next one.
    left: u32,
    off: usize,
    /// Segments of the current super-frame already delivered.
    seg: usize,
}

/// What delivering one ring frame came to.
pub(super) enum Step {
    /// The frame is handled (delivered or counted and dropped).
    Done,
    /// The batch is full or the pool empty: try the same frame next burst.
    Stalled,
}

/// Receive into `batch` until it is full, the pool runs dry or the kernel
/// has handed over no more blocks. Counts into `st`.
pub(super) fn receive(
    ring: &mut RxRing,
    c: &mut Cursor,
    vnet_hdr: bool,
    pool: &mut PacketPool,
    batch: &mut Batch,
    st: &mut AfPacketStats,
) {
    let blocks = ring.blocks();
    while !batch.is_full() {
        let Some(blk) = ring.user_block(c.block) else {
            break;
        };
        if !c.open {
            c.open = true;
            c.left = blk.num_frames();
            c.off = blk.first_offset();
            c.seg = 0;
            if blk.losing() {
                st.rx_losing_blocks += 1;
            }
        }
        let mut stalled = false;
        while c.left > 0 {
            let Some(f) = blk.frame_at(c.off, vnet_hdr) else {
                // A frame header outside the block: the rest of the
                // block cannot be trusted.
                st.rx_offload_errors += 1;
                c.left = 0;
                break;
            };
            if c.seg == 0 {
                st.rx_frames += 1;
            }
            match deliver(&f, pool, batch, &mut c.seg, st) {
                Step::Stalled => {
                    // Counted again when retried.
                    if c.seg == 0 {
                        st.rx_frames -= 1;
                    }
                    stalled = true;
                    break;
                }
                Step::Done => {
                    c.seg = 0;
                    c.left -= 1;
                    if f.next_offset == 0 {
                        c.left = 0;
                    }
                    c.off += f.next_offset;
                }
            }
        }
        if stalled {
            break;
        }
        ring.release(c.block);
        c.open = false;
        c.block = (c.block + 1) % blocks;
    }
}

/// A buffer for a `len`-byte packet: small if it fits, large otherwise.
enum Alloc {
    Buf(PktBuf),
    /// The pool is out of the right kind of buffer for now.
    Empty,
    /// No buffer in this pool could ever hold it.
    TooLong,
}

fn alloc_len(pool: &mut PacketPool, len: usize) -> Alloc {
    let b = if len <= pool.max_packet() {
        pool.alloc()
    } else if len <= pool.max_large_packet().min(u16::MAX as usize) {
        pool.alloc_large()
    } else {
        return Alloc::TooLong;
    };
    b.map_or(Alloc::Empty, Alloc::Buf)
}

/// Copy `src` into `dst`, putting `tag` (a VLAN tag the kernel took out of
/// the frame) back after the MAC addresses. Returns bytes written.
fn copy_with_tag(dst: &mut [u8], src: &[u8], tag: Option<[u8; 4]>) -> usize {
    match tag {
        None => {
            dst[..src.len()].copy_from_slice(src);
            src.len()
        }
        Some(t) => {
            dst[..12].copy_from_slice(&src[..12]);
            dst[12..16].copy_from_slice(&t);
            dst[16..16 + src.len() - 12].copy_from_slice(&src[12..]);
            src.len() + 4
        }
    }
}

/// Turn one ring frame into packets on `batch`: copied whole, checksum
/// completed, or cut into segments (resuming at `*seg`).
pub(super) fn deliver(
    f: &RxFrame<'_>,
    pool: &mut PacketPool,
    batch: &mut Batch,
    seg: &mut usize,
    st: &mut AfPacketStats,
) -> Step {
    if f.data.len() < f.wire_len {
        st.rx_truncated += 1;
        return Step::Done;
    }
    let tag = match f.vlan {
        Some(_) if f.data.len() < 12 => {
            st.rx_offload_errors += 1;
            return Step::Done;
        }
        Some((tpid, tci)) => {
            let mut t = [0u8; 4];
            t[..2].copy_from_slice(&tpid.to_be_bytes());
            t[2..].copy_from_slice(&tci.to_be_bytes());
            Some(t)
        }
        None => None,
    };
    let shift = if tag.is_some() { 4 } else { 0 };
    let h = f.vnet.map(|v| VnetHdr::parse(&v)).unwrap_or_default();

    if h.is_gso() {
        let plan = match GsoPlan::new(f.data, &h) {
            Ok(p) => p,
            Err(_) => {
                st.rx_offload_errors += 1;
                return Step::Done;
            }
        };
        let out = plan.shifted(shift);
        while *seg < plan.segments() {
            if batch.is_full() {
                return Step::Stalled;
            }
            let len = out.segment_len(*seg);
            let mut b = match alloc_len(pool, len) {
                Alloc::Buf(b) => b,
                Alloc::Empty => return Step::Stalled,
                Alloc::TooLong => {
                    st.rx_oversize += 1;
                    return Step::Done;
                }
            };
            let room = pool.tail_room_mut(&b);
            let hl = copy_with_tag(room, &f.data[..plan.hdr_len()], tag);
            room[hl..len].copy_from_slice(&f.data[plan.payload_range(*seg)]);
            out.fix_segment(&mut room[..len], *seg);
            pool.set_len(&mut b, len);
            batch.push(b).expect("checked room");
            *seg += 1;
            st.rx_gso_segments += 1;
        }
        st.rx_gso_frames += 1;
        return Step::Done;
    }

    if batch.is_full() {
        return Step::Stalled;
    }
    let len = f.data.len() + shift;
    let mut b = match alloc_len(pool, len) {
        Alloc::Buf(b) => b,
        Alloc::Empty => return Step::Stalled,
        Alloc::TooLong => {
            st.rx_oversize += 1;
            return Step::Done;
        }
    };
    let room = pool.tail_room_mut(&b);
    copy_with_tag(room, f.data, tag);
    if h.needs_csum() {
        let start = h.csum_start as usize + shift;
        if complete_csum(&mut room[..len], start, h.csum_offset as usize).is_err() {
            st.rx_offload_errors += 1;
            pool.free(b);
            return Step::Done;
        }
        st.rx_csum_completed += 1;
    }
    pool.set_len(&mut b, len);
    batch.push(b).expect("checked room");
    Step::Done
}
