//! The receive path: `recvmmsg` bursts from the socket into receive slots,
//! each frame copied into a pool buffer (putting back a VLAN tag the kernel
//! took out, finishing offload work the vnet header asks for).
//!
//! Owns: the receive slots and the frames held in them between bursts.
//! Never: blocking; a full batch or an empty pool leaves the frame for the
//! next burst.

use std::io;
use std::os::fd::BorrowedFd;

use rvs_switch::{Batch, PacketPool, PktBuf};

use super::frame::{self, RxFrame};
use super::stats::AfPacketStats;
use super::sys::{self, CTRL_LEN, RECV_MAX, Received};
use crate::offload::{GsoPlan, VNET_HDR_LEGACY_LEN, VnetHdr, complete_csum};

/// Frames received from the kernel and not yet all delivered.
#[derive(Debug)]
pub(super) struct RxSlots {
    /// Bytes per slot: the vnet header (if any) and the longest frame.
    slot: usize,
    /// `RECV_MAX` slots. Zeroed on allocation, so pages a large frame never
    /// reached are never made resident.
    data: Vec<u8>,
    ctrl: Vec<u8>,
    got: [Received; RECV_MAX],
    /// Messages in `got`, and the next one to deliver.
    have: usize,
    next: usize,
    /// Segments of the current super-frame already delivered.
    seg: usize,
}

impl RxSlots {
    /// Slots for frames of up to `max_frame` bytes.
    pub(super) fn new(max_frame: usize, vnet_hdr: bool) -> RxSlots {
        let slot = max_frame + if vnet_hdr { VNET_HDR_LEGACY_LEN } else { 0 };
        RxSlots {
            slot,
            data: vec![0; slot * RECV_MAX],
            ctrl: vec![0; CTRL_LEN * RECV_MAX],
            got: [Received::default(); RECV_MAX],
            have: 0,
            next: 0,
            seg: 0,
        }
    }

    fn frame(&self, i: usize, vnet_hdr: bool) -> Option<RxFrame<'_>> {
        let r = self.got[i];
        let buf = &self.data[i * self.slot..][..r.len];
        let ctrl = &self.ctrl[i * CTRL_LEN..][..r.ctrl_len];
        frame::parse(buf, r.truncated, ctrl, vnet_hdr)
    }

    /// Deliver held frames until none is left (`true`) or the batch or
    /// pool runs out (`false`).
    fn deliver_held(
        &mut self,
        vnet_hdr: bool,
        pool: &mut PacketPool,
        batch: &mut Batch,
        st: &mut AfPacketStats,
    ) -> bool {
        while self.next < self.have {
            let mut seg = self.seg;
            let step = match self.frame(self.next, vnet_hdr) {
                None => {
                    // Shorter than its own vnet header: nothing to trust.
                    st.rx_offload_errors += 1;
                    Step::Done
                }
                Some(f) => {
                    if seg == 0 {
                        st.rx_frames += 1;
                    }
                    let step = deliver(&f, pool, batch, &mut seg, st);
                    if matches!(step, Step::Stalled) && seg == 0 {
                        // Counted again when retried.
                        st.rx_frames -= 1;
                    }
                    step
                }
            };
            match step {
                Step::Stalled => {
                    self.seg = seg;
                    return false;
                }
                Step::Done => {
                    self.seg = 0;
                    self.next += 1;
                }
            }
        }
        true
    }
}

/// What delivering one received frame came to.
pub(super) enum Step {
    /// The frame is handled (delivered or counted and dropped).
    Done,
    /// The batch is full or the pool empty: try the same frame next burst.
    Stalled,
}

/// Receive into `batch` until it is full, the pool runs dry or the socket
/// has no more frames. Counts into `st`; an error is the socket's.
pub(super) fn receive(
    fd: BorrowedFd<'_>,
    slots: &mut RxSlots,
    vnet_hdr: bool,
    pool: &mut PacketPool,
    batch: &mut Batch,
    st: &mut AfPacketStats,
) -> io::Result<()> {
    loop {
        if !slots.deliver_held(vnet_hdr, pool, batch, st) || batch.is_full() {
            return Ok(());
        }
        let want = batch.room().min(RECV_MAX);
        let RxSlots {
            slot,
            data,
            ctrl,
            got,
            ..
        } = slots;
        let n = sys::recv_frames(fd, data, *slot, ctrl, &mut got[..want])?;
        slots.have = n;
        slots.next = 0;
        if n < want {
            // The queue is drained: deliver and stop without another call.
            slots.deliver_held(vnet_hdr, pool, batch, st);
            return Ok(());
        }
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
        let plan = match GsoPlan::from_vnet(f.data, &h) {
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
