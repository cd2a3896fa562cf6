//! AF_XDP port back end: a switch port over an existing interface queue (the
//! host end of a veth, or a NIC queue) whose frames live in the switch's
//! packet pool, registered with the kernel as a UMEM shared by all AF_XDP
//! ports of a worker. Forwarding between two such ports moves a descriptor,
//! never bytes.
//!
//! - [`Umem`] (umem.rs): the registration and socket set-up.
//! - [`AfXdpPort`] (port.rs): the rings behind the `Port` trait.
//! - prog.rs: the XSKMAP and the hand-assembled redirect program, attached
//!   in driver mode where the driver has it, else generic (SKB) mode.
//! - `crate::ethtool`: transmit checksum offload and MTU ioctls (the veth
//!   quirk), shared with the rest of the crate and re-exported here.
//!
//! Owns: sockets, rings, the XDP attachment of the interfaces it was given.
//! Never: creates or deletes interfaces, blocks, or lets a frame of the pool
//! leave the pool's accounting without being on a kernel ring.

mod port;
mod prog;
mod umem;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

// The daemon, the lab tool and tests reach the ethtool layer through this
// module too; there is one implementation, `crate::ethtool`.
pub use crate::ethtool::{
    mtu, set_tx_checksum, set_tx_checksum_in_netns, tx_checksum, tx_checksum_in_netns,
};
pub use port::AfXdpPort;
pub use umem::Umem;

/// What went wrong, with what was being attempted.
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    #[error("attach AF_XDP to {ifname} queue {queue}: {what}: {source}")]
    Socket {
        ifname: String,
        queue: u32,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("attach the XDP redirect program to {ifname}: {what}: {source}{}", verifier(.log))]
    Program {
        ifname: String,
        what: &'static str,
        #[source]
        source: io::Error,
        log: String,
    },
    #[error("{what} on {ifname}: {source}")]
    Ethtool {
        ifname: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("attach AF_XDP to {ifname}: {reason}")]
    Config { ifname: String, reason: String },
}

impl From<crate::ethtool::EthtoolError> for AfXdpError {
    fn from(e: crate::ethtool::EthtoolError) -> AfXdpError {
        AfXdpError::Ethtool {
            ifname: e.ifname,
            what: e.op,
            source: e.source,
        }
    }
}

fn verifier(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(" (verifier: {log})")
    }
}

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the generic receive path, on an skb (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

/// Which XDP modes to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpModePreference {
    /// Driver mode, falling back to generic.
    #[default]
    Auto,
    Native,
    Generic,
}

/// Whether the socket may, must or must not use zero-copy. Only the socket
/// that anchors the UMEM chooses; sockets sharing it inherit its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroCopy {
    /// Zero-copy where the driver supports it, else copy mode.
    #[default]
    Auto,
    Never,
    Require,
}

/// How to open a port.
#[derive(Debug, Clone)]
pub struct AfXdpConfig {
    /// Interface queue to serve.
    pub queue: u32,
    /// Entries of the rx and tx rings (a power of two).
    pub ring_size: u32,
    /// Frames the fill ring is kept topped up to (at least a batch).
    pub fill_frames: u32,
    /// Frames the fill ring never takes from the pool (for floods, other ports).
    pub pool_reserve: usize,
    pub xdp_mode: XdpModePreference,
    pub zero_copy: ZeroCopy,
    /// Turn off transmit checksum offload on the interface (the veth quirk).
    pub disable_tx_checksum: bool,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            queue: 0,
            ring_size: 2048,
            fill_frames: 1024,
            pool_reserve: 2 * rvs_switch::BATCH_MAX,
            xdp_mode: XdpModePreference::Auto,
            zero_copy: ZeroCopy::Auto,
            disable_tx_checksum: true,
        }
    }
}

/// What the port ended up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfXdpInfo {
    pub ifname: String,
    pub ifindex: u32,
    pub queue: u32,
    pub xdp_mode: XdpMode,
    pub zero_copy: bool,
    /// This port's socket anchors the UMEM (registered it) rather than sharing.
    pub umem_anchor: bool,
    /// Transmit checksum offload was on and the port turned it off.
    pub tx_checksum_turned_off: bool,
    pub max_frame: usize,
}

/// The port's own counters, readable from any thread.
#[derive(Debug, Default)]
pub struct AfXdpStats {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Rx descriptors that named no frame of the pool (never expected).
    pub rx_bad_desc: AtomicU64,
    /// Frames put on the tx ring.
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Of those, frames that were already UMEM frames: the descriptor moved.
    pub tx_moved: AtomicU64,
    /// Of those, large-class frames copied into a small frame first.
    pub tx_copied: AtomicU64,
    /// Large frames dropped: longer than a UMEM frame or the MTU.
    pub tx_drop_too_big: AtomicU64,
    pub tx_drop_bad_offload: AtomicU64,
    pub tx_segments: AtomicU64,
    /// Frames dropped because the tx ring (or the pool, for copies) was full.
    pub tx_drop_full: AtomicU64,
    /// `sendto` wake-ups and those that failed with something other than
    /// EAGAIN/EBUSY/ENOBUFS.
    pub tx_kicks: AtomicU64,
    pub tx_kick_errors: AtomicU64,
    /// Frames returned by the completion ring to the pool.
    pub completed: AtomicU64,
    pub fill_posted: AtomicU64,
    /// Refills cut short because the pool was down to its reserve.
    pub fill_starved: AtomicU64,
}

/// A plain copy of [`AfXdpStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AfXdpCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_bad_desc: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_moved: u64,
    pub tx_copied: u64,
    pub tx_drop_too_big: u64,
    pub tx_drop_bad_offload: u64,
    pub tx_segments: u64,
    pub tx_drop_full: u64,
    pub tx_kicks: u64,
    pub tx_kick_errors: u64,
    pub completed: u64,
    pub fill_posted: u64,
    pub fill_starved: u64,
}

impl AfXdpStats {
    #[inline]
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        if n != 0 {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> AfXdpCounters {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AfXdpCounters {
            rx_packets: g(&self.rx_packets),
            rx_bytes: g(&self.rx_bytes),
            rx_bad_desc: g(&self.rx_bad_desc),
            tx_packets: g(&self.tx_packets),
            tx_bytes: g(&self.tx_bytes),
            tx_moved: g(&self.tx_moved),
            tx_copied: g(&self.tx_copied),
            tx_drop_too_big: g(&self.tx_drop_too_big),
            tx_drop_bad_offload: g(&self.tx_drop_bad_offload),
            tx_segments: g(&self.tx_segments),
            tx_drop_full: g(&self.tx_drop_full),
            tx_kicks: g(&self.tx_kicks),
            tx_kick_errors: g(&self.tx_kick_errors),
            completed: g(&self.completed),
            fill_posted: g(&self.fill_posted),
            fill_starved: g(&self.fill_starved),
        }
    }
}
