//! Counters of an AF_PACKET port: what the kernel reports through
//! `PACKET_STATISTICS` and what the port itself saw (truncated frames,
//! offload work, refused transmissions). Relaxed atomics behind an `Arc`, so
//! a handle can read them while a switch owns the port.
//!
//! Owns: the counter set. Never: syscalls (the port feeds kernel numbers in).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! stats {
    ($($(#[$m:meta])* $f:ident,)*) => {
        /// Counters of one AF_PACKET port, beyond the switch's own port
        /// counters. The `kernel_*` ones come from `PACKET_STATISTICS` and
        /// are as fresh as the last [`AfPacketPort::statistics`] call or
        /// `maintain` pass.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct AfPacketStats { $($(#[$m])* pub $f: u64,)* }

        #[derive(Debug, Default)]
        pub(super) struct SharedStats { $($f: AtomicU64,)* }

        impl SharedStats {
            pub(super) fn add(&self, d: &AfPacketStats) {
                $(if d.$f != 0 { self.$f.fetch_add(d.$f, Ordering::Relaxed); })*
            }
            pub(super) fn snapshot(&self) -> AfPacketStats {
                AfPacketStats { $($f: self.$f.load(Ordering::Relaxed),)* }
            }
        }
    };
}

stats! {
    /// Frames the kernel handled for this socket: queued or dropped
    /// (`tp_packets`, which counts both).
    kernel_packets,
    /// Frames the kernel dropped because the receive queue was full
    /// ([`AfPacketConfig::rcvbuf`](super::AfPacketConfig::rcvbuf)).
    kernel_drops,
    /// Frames received from the socket (before segmentation).
    rx_frames,
    /// Frames longer than [`AfPacketConfig::max_rx_frame`](super::AfPacketConfig::max_rx_frame), which arrived
    /// cut short (dropped).
    rx_truncated,
    /// Frames too long for any pool buffer (dropped).
    rx_oversize,
    /// Frames dropped because their offload metadata could not be
    /// honoured, or because they were shorter than their vnet header.
    rx_offload_errors,
    /// Partial checksums completed in software.
    rx_csum_completed,
    /// GSO super-frames received, and the segments cut from them.
    rx_gso_frames,
    rx_gso_segments,
    /// Frames refused because the socket buffer was full.
    tx_would_block,
    /// Frames refused because the link is down or gone.
    tx_link_down,
    /// Frames refused for another reason (too long, bad offload metadata).
    tx_errors,
    /// Super-frames dropped because the socket has no vnet header to pass
    /// them to the kernel with.
    tx_gso_unsupported,
}

/// A read-only view of a port's counters that stays valid while the port
/// is owned by a switch.
#[derive(Debug, Clone)]
pub struct AfPacketStatsHandle(pub(super) Arc<SharedStats>);

impl AfPacketStatsHandle {
    pub fn snapshot(&self) -> AfPacketStats {
        self.0.snapshot()
    }
}
