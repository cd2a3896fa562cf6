//! The transmit path: `sendmmsg` bursts, non-blocking, each frame behind a
//! virtio-net header when the socket has them (carrying offload work other
//! ports left, see [`tx_vnet_hdr`]); every buffer back to the pool.
//!
//! Owns: turning a batch into one or more `sendmmsg` calls and sorting the
//! kernel's refusals into counters. Never: blocking or retrying a refused
//! frame (the switch counts it as dropped).

use std::io::IoSlice;
use std::os::fd::BorrowedFd;

use rvs_switch::buf::Offload;
use rvs_switch::{BATCH_MAX, Batch, PacketPool, TxDone};

use super::offload::{VNET_HDR_LEN, VnetHdr, complete_csum, l3_offset};
use super::stats::AfPacketStats;
use super::sys;

/// What the kernel's refusals said about the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    Up,
    /// `ENETDOWN`: down, perhaps deleted.
    Down,
    /// `ENXIO`/`ENODEV`: the socket's interface is unregistered.
    Gone,
}

/// The virtio-net header telling the kernel what a frame from another port
/// (a TAP with offloads) still needs: `None` when it needs nothing.
pub(super) fn tx_vnet_hdr(data: &[u8], o: Offload) -> Option<VnetHdr> {
    if !o.needs_csum() && !o.is_gso() {
        return None;
    }
    // The switch counts csum_start from the L3 header; the kernel from the
    // frame start.
    let l2 = l3_offset(data).map_or(14, |(l3, _)| l3);
    let csum_start = l2 + o.csum_start as usize;
    Some(VnetHdr {
        flags: o.flags & Offload::NEEDS_CSUM,
        gso_type: o.gso_type,
        hdr_len: (csum_start + o.csum_offset as usize + 2) as u16,
        gso_size: o.gso_size,
        csum_start: csum_start as u16,
        csum_offset: o.csum_offset,
    })
}

/// Send every frame in `batch` (emptying it) on the packet socket `fd`.
pub(super) fn transmit(
    fd: BorrowedFd<'_>,
    vnet_hdr: bool,
    pool: &mut PacketPool,
    batch: &mut Batch,
    st: &mut AfPacketStats,
) -> (TxDone, Link) {
    let mut done = TxDone::default();
    let mut link = Link::Up;
    if batch.is_empty() {
        return (done, link);
    }
    let mut hdrs = [[0u8; VNET_HDR_LEN]; BATCH_MAX];
    let mut keep = [true; BATCH_MAX];
    for i in 0..batch.len() {
        let o = batch.get(i).offload();
        if o == Offload::NONE {
            continue;
        }
        if vnet_hdr {
            if let Some(h) = tx_vnet_hdr(pool.data(batch.get(i)), o) {
                hdrs[i] = h.to_bytes();
            }
        } else if o.is_gso() {
            keep[i] = false;
            st.tx_gso_unsupported += 1;
        } else if o.needs_csum() {
            let d = pool.data_mut(batch.get(i));
            let start = l3_offset(d).map_or(14, |(l3, _)| l3) + o.csum_start as usize;
            if complete_csum(d, start, o.csum_offset as usize).is_err() {
                keep[i] = false;
                st.tx_errors += 1;
            }
        }
    }
    // Drop what cannot go, keeping the headers lined up with what stays.
    let mut w = 0;
    done.dropped += batch.retain(pool, |i, _| {
        if keep[i] {
            hdrs[w] = hdrs[i];
            w += 1;
        }
        keep[i]
    });

    let n = batch.len();
    let iovs = if vnet_hdr { 2 } else { 1 };
    {
        let pool: &PacketPool = pool;
        let frames: [[IoSlice<'_>; 2]; BATCH_MAX] = std::array::from_fn(|i| {
            if i < n {
                [
                    IoSlice::new(&hdrs[i]),
                    IoSlice::new(pool.data(batch.get(i))),
                ]
            } else {
                [IoSlice::new(&[]), IoSlice::new(&[])]
            }
        });
        let mut i = 0;
        while i < n {
            match sys::send_frames(fd, &frames[i..n], iovs) {
                Ok(k) if k > 0 => {
                    for j in i..i + k {
                        done.packets += 1;
                        done.bytes += batch.get(j).len();
                    }
                    i += k;
                }
                Ok(_) => {
                    st.tx_would_block += (n - i) as u64;
                    done.dropped += n - i;
                    break;
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::ENOBUFS) => {
                        st.tx_would_block += (n - i) as u64;
                        done.dropped += n - i;
                        break;
                    }
                    Some(errno @ (libc::ENETDOWN | libc::ENXIO | libc::ENODEV)) => {
                        link = if errno == libc::ENETDOWN {
                            Link::Down
                        } else {
                            Link::Gone
                        };
                        st.tx_link_down += (n - i) as u64;
                        done.dropped += n - i;
                        break;
                    }
                    _ => {
                        // This one frame is bad (EMSGSIZE, EINVAL): skip
                        // it, send the rest.
                        st.tx_errors += 1;
                        done.dropped += 1;
                        i += 1;
                    }
                },
            }
        }
    }
    batch.free_all(pool);
    (done, link)
}
