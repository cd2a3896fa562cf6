//! The port abstraction: something that receives and transmits batches.
//! Back ends (TAP, AF_XDP, AF_PACKET, VXLAN underlay) live in `rvs-drivers`;
//! this crate ships only the in-memory port used by tests and benches.

use std::fmt;

use crate::batch::Batch;
use crate::buf::PacketPool;

/// A port's number inside one switch. Small and dense: it indexes arrays.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct PortId(pub u16);

impl PortId {
    /// Highest port number a switch hands out (the FDB stores ports in 12 bits
    /// so an entry fits in 16 bytes).
    pub const MAX: u16 = 4095;

    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a port could not receive or transmit.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("port {port}: {op} failed: {source}")]
    Io {
        port: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("port {0}: link is gone")]
    Gone(String),
}

/// What a transmit burst did with the batch it was handed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxDone {
    /// Frames accepted by the back end.
    pub packets: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Frames the back end could not take (ring full, link down); freed.
    pub dropped: usize,
}

/// A switch port back end.
///
/// Contract: `rx_burst` appends at most `batch.room()` packets taken from
/// `pool`; `tx_burst` takes every packet out of `batch` and returns each
/// frame to `pool` once the back end is done with it (at once for copying
/// back ends, on completion for zero-copy ones). Neither blocks.
pub trait Port: Send {
    /// The name operators know the port by (the netdev name for kernel ports).
    fn name(&self) -> &str;

    /// Receive a burst. Returns how many packets were appended.
    fn rx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> Result<usize, PortError>;

    /// Transmit a burst, emptying `batch`.
    fn tx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> TxDone;

    /// A file descriptor that becomes readable when `rx_burst` has work, for
    /// the worker's idle-time epoll. `None` for ports that are never idle-woken.
    fn poll_fd(&self) -> Option<i32> {
        None
    }

    /// Largest frame (MAC header included, FCS excluded) the port transmits.
    fn max_frame(&self) -> usize {
        u16::MAX as usize
    }

    /// Called by the worker when it goes idle and when it wakes, so zero-copy
    /// back ends can refill rings or reap completions outside the hot path.
    fn maintain(&mut self, _pool: &mut PacketPool) {}

    /// The port is leaving the switch: give back any pool frames it holds
    /// beyond its batches (the switch calls this before dropping it).
    fn detach(&mut self, _pool: &mut PacketPool) {}

    /// Frames lost beneath the switch, before it ever saw them (a kernel
    /// ring that overflowed, a fill ring that ran dry, ...), by reason, as
    /// totals since the port was opened. Reported beside the switch's own
    /// drop counters; frames the back end refused on transmit are counted
    /// by the switch already (`TxDone::dropped`) and are not repeated here.
    fn backend_drops(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// How soon the port needs a call even if its fd stays quiet (it holds
    /// frames due then, e.g. a delayed link): an idle worker sleeps no
    /// longer than this.
    fn wake_after(&self) -> Option<std::time::Duration> {
        None
    }
}
