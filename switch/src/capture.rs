//! Packet capture tap: a port with a capture set copies each frame it
//! receives (before any processing) and transmits (after egress edits) into a
//! bounded channel; the control plane turns them into pcap. A full channel
//! drops the copy (counted), never the packet, and never blocks the worker.

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::batch::Batch;
use crate::buf::PacketPool;

/// Direction of a captured frame relative to the switch port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Rx,
    Tx,
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    /// The switch clock when it was seen, in milliseconds.
    pub ts_ms: u64,
    pub dir: Direction,
    /// The frame length on the wire (`data` may be cut at the snap length).
    pub orig_len: usize,
    pub data: Vec<u8>,
}

/// The worker's side of a capture.
#[derive(Debug, Clone)]
pub struct Capture {
    tx: Sender<CapturedFrame>,
    /// Capture at most this many bytes of each frame.
    snaplen: usize,
    lost: u64,
}

impl Capture {
    /// A capture with room for `depth` frames; returns the reader's end.
    pub fn new(depth: usize, snaplen: usize) -> (Capture, Receiver<CapturedFrame>) {
        let (tx, rx) = crossbeam_channel::bounded(depth);
        (
            Capture {
                tx,
                snaplen: snaplen.max(64),
                lost: 0,
            },
            rx,
        )
    }

    /// Copies dropped so far because the reader was slow.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Copy a batch the port received.
    #[inline]
    pub(crate) fn record_rx(&mut self, pool: &PacketPool, batch: &Batch, ts_ms: u64) {
        for b in batch.iter() {
            self.record(ts_ms, Direction::Rx, pool.data(b));
        }
    }

    /// Copy a batch the port is about to transmit.
    #[inline]
    pub(crate) fn record_tx(&mut self, pool: &PacketPool, batch: &Batch, ts_ms: u64) {
        for b in batch.iter() {
            self.record(ts_ms, Direction::Tx, pool.data(b));
        }
    }

    #[inline]
    fn record(&mut self, ts_ms: u64, dir: Direction, frame: &[u8]) {
        let n = frame.len().min(self.snaplen);
        match self.tx.try_send(CapturedFrame {
            ts_ms,
            dir,
            orig_len: frame.len(),
            data: frame[..n].to_vec(),
        }) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => self.lost += 1,
        }
    }
}
