//! The transmit path: `sendmmsg` bursts, non-blocking, each frame behind a
//! virtio-net header when the socket has them (carrying offload work other
//! ports left, a TAP with offloads: `VnetHdr::from_offload`); every buffer
//! back to the pool.
//!
//! Owns: turning a batch into one or more `sendmmsg` calls and sorting the
//! kernel's refusals into counters. Never: blocking or retrying a refused
//! frame (the switch counts it as dropped).

use std::io::IoSlice;
use std::os::fd::BorrowedFd;

use rvs_switch::buf::Offload;
use rvs_switch::{BATCH_MAX, Batch, PacketPool, TxDone};

use super::stats::AfPacketStats;
use super::sys;
use crate::offload::{self, VNET_HDR_LEGACY_LEN, VnetHdr};

/// What the kernel's refusals said about the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    Up,
    /// `ENETDOWN`: down, perhaps deleted.
    Down,
    /// `ENXIO`/`ENODEV`: the socket's interface is unregistered.
    Gone,
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
    let mut hdrs = [[0u8; VNET_HDR_LEGACY_LEN]; BATCH_MAX];
    let mut keep = [true; BATCH_MAX];
    for i in 0..batch.len() {
        let o = batch.get(i).offload();
        if o == Offload::NONE {
            continue;
        }
        if vnet_hdr {
            // The kernel finishes what the header says; one that does not
            // fit its frame would be refused (EINVAL) anyway.
            match VnetHdr::from_offload(o, pool.data(batch.get(i))) {
                Some(h) => hdrs[i] = h.encode_legacy(),
                None => {
                    keep[i] = false;
                    st.tx_errors += 1;
                }
            }
        } else if o.is_gso() {
            keep[i] = false;
            st.tx_gso_unsupported += 1;
        } else if o.needs_csum()
            && offload::complete_partial(pool.data_mut(batch.get(i)), o).is_err()
        {
            keep[i] = false;
            st.tx_errors += 1;
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
