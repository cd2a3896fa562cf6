//! Counters of one TAP port: what happened to offloads and why frames were
//! dropped. Atomics, shared with the test or operator that holds the handle
//! while the port itself lives inside a switch; added once per burst.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! tap_counters {
    ($($(#[$m:meta])* $f:ident,)*) => {
        /// Live counters of one TAP port, shared with whoever holds
        /// [`TapPort::counters`] (the port moves into the switch).
        #[derive(Debug, Default)]
        pub struct TapCounters { $($(#[$m])* pub $f: AtomicU64,)* }

        /// A copy of [`TapCounters`].
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct TapStats { $($(#[$m])* pub $f: u64,)* }

        impl TapCounters {
            pub fn snapshot(&self) -> TapStats {
                TapStats { $($f: self.$f.load(Ordering::Relaxed),)* }
            }
            pub(super) fn add(&self, s: &TapStats) {
                $(if s.$f != 0 { self.$f.fetch_add(s.$f, Ordering::Relaxed); })*
            }
        }
    };
}

tap_counters! {
    /// Super-frames received (vnet header with a GSO type).
    rx_gso,
    /// Frames received with a partial checksum.
    rx_csum_partial,
    /// Frames dropped because their vnet header made no sense.
    rx_bad_vnet_hdr,
    /// Bursts cut short because the pool had no frame to read into.
    rx_no_buffer,
    /// Super-frames written as one frame (egress offload).
    tx_gso_passthrough,
    /// Super-frames segmented in software, and the segments written.
    tx_gso_segmented,
    tx_segments,
    /// Partial checksums completed in software.
    tx_csum_completed,
    /// Frames longer than MTU + L2 header and tags without GSO: dropped.
    tx_oversize,
    /// Frames whose offload state could not be honoured: dropped.
    tx_bad_offload,
    /// Writes refused with EAGAIN (queue full): dropped.
    tx_eagain,
    /// Other write errors: dropped.
    tx_errors,
}

/// Longest frames seen, next to the counters.
#[derive(Debug, Default)]
pub struct TapMax {
    pub rx_frame: AtomicU64,
    pub tx_frame: AtomicU64,
}

impl TapMax {
    /// Raise `a` to `v` if `v` is larger.
    pub(super) fn raise(a: &AtomicU64, v: u64) {
        if v > a.load(Ordering::Relaxed) {
            a.fetch_max(v, Ordering::Relaxed);
        }
    }
}
