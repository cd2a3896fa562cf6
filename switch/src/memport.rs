//! An in-memory port for unit tests, golden-frame tests, fuzzing and benches
//! (never used for real traffic). The test holds a [`MemoryPortHandle`] to
//! inject frames and read what the switch transmitted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::batch::Batch;
use crate::buf::PacketPool;
use crate::port::{Port, PortError, TxDone};

#[derive(Debug, Default)]
struct Queues {
    /// Frames waiting to be received by the switch.
    rx: VecDeque<Vec<u8>>,
    /// Frames the switch sent, when capturing.
    tx: Vec<Vec<u8>>,
    tx_packets: u64,
    tx_bytes: u64,
}

/// Where received frames come from.
#[derive(Debug)]
enum Source {
    /// Frames injected through the handle, each received once.
    Queue,
    /// The same frames over and over (benches): never runs dry.
    Replay { frames: Vec<Vec<u8>>, next: usize },
}

/// The port itself; give it to the switch.
#[derive(Debug)]
pub struct MemoryPort {
    name: String,
    source: Source,
    capture: bool,
    max_frame: usize,
    shared: Arc<Mutex<Queues>>,
}

/// The test's side of a [`MemoryPort`].
#[derive(Debug, Clone)]
pub struct MemoryPortHandle {
    shared: Arc<Mutex<Queues>>,
}

impl MemoryPort {
    /// A port that receives injected frames and captures what it transmits.
    pub fn new(name: &str) -> (MemoryPort, MemoryPortHandle) {
        let shared = Arc::new(Mutex::new(Queues::default()));
        (
            MemoryPort {
                name: name.to_string(),
                source: Source::Queue,
                capture: true,
                max_frame: u16::MAX as usize,
                shared: shared.clone(),
            },
            MemoryPortHandle { shared },
        )
    }

    /// A port that endlessly replays `frames` on receive and counts (but does
    /// not keep) what it transmits. For benches.
    pub fn replay(name: &str, frames: Vec<Vec<u8>>) -> (MemoryPort, MemoryPortHandle) {
        assert!(!frames.is_empty(), "replay needs at least one frame");
        let (mut p, h) = Self::new(name);
        p.source = Source::Replay { frames, next: 0 };
        p.capture = false;
        (p, h)
    }

    /// A port that counts but does not keep transmitted frames.
    pub fn sink(name: &str) -> (MemoryPort, MemoryPortHandle) {
        let (mut p, h) = Self::new(name);
        p.capture = false;
        (p, h)
    }

    /// Refuse to transmit frames longer than `max` bytes (MTU tests).
    pub fn with_max_frame(mut self, max: usize) -> Self {
        self.max_frame = max;
        self
    }
}

impl MemoryPortHandle {
    /// Queue a frame for the switch to receive.
    pub fn inject(&self, frame: impl Into<Vec<u8>>) {
        self.shared.lock().unwrap().rx.push_back(frame.into());
    }

    /// Take every frame the switch transmitted so far.
    pub fn take_tx(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.shared.lock().unwrap().tx)
    }

    /// Frames and bytes transmitted (captured or not).
    pub fn tx_totals(&self) -> (u64, u64) {
        let q = self.shared.lock().unwrap();
        (q.tx_packets, q.tx_bytes)
    }

    /// Frames still waiting to be received.
    pub fn rx_pending(&self) -> usize {
        self.shared.lock().unwrap().rx.len()
    }
}

impl Port for MemoryPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> Result<usize, PortError> {
        let mut n = 0;
        match &mut self.source {
            Source::Queue => {
                let mut q = self.shared.lock().unwrap();
                while !batch.is_full() {
                    let Some(f) = q.rx.front() else { break };
                    let Some(b) = pool.alloc_from(f) else { break };
                    q.rx.pop_front();
                    batch.push(b).expect("checked room");
                    n += 1;
                }
            }
            Source::Replay { frames, next } => {
                while !batch.is_full() {
                    let Some(b) = pool.alloc_from(&frames[*next]) else {
                        break;
                    };
                    *next = if *next + 1 == frames.len() {
                        0
                    } else {
                        *next + 1
                    };
                    batch.push(b).expect("checked room");
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    fn tx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> TxDone {
        let mut done = TxDone::default();
        let mut q = self.shared.lock().unwrap();
        if !self.capture && self.max_frame == u16::MAX as usize {
            // Nothing to keep and nothing too long (a bench's sink): count
            // and free, no per-frame decisions.
            done.packets = batch.len();
            for b in batch.drain() {
                done.bytes += b.len();
                pool.free(b);
            }
        }
        for b in batch.drain() {
            if b.len() > self.max_frame {
                done.dropped += 1;
            } else {
                done.packets += 1;
                done.bytes += b.len();
                if self.capture {
                    q.tx.push(pool.data(&b).to_vec());
                }
            }
            pool.free(b);
        }
        q.tx_packets += done.packets as u64;
        q.tx_bytes += done.bytes as u64;
        done
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inject_receive_transmit_capture() {
        let mut pool = PacketPool::with_frames(8);
        let (mut p, h) = MemoryPort::new("m0");
        h.inject(vec![1u8; 20]);
        h.inject(vec![2u8; 30]);
        let mut b = Batch::new(32);
        assert_eq!(p.rx_burst(&mut pool, &mut b).unwrap(), 2);
        assert_eq!(h.rx_pending(), 0);
        let d = p.tx_burst(&mut pool, &mut b);
        assert_eq!(
            d,
            TxDone {
                packets: 2,
                bytes: 50,
                dropped: 0
            }
        );
        assert_eq!(h.take_tx(), vec![vec![1u8; 20], vec![2u8; 30]]);
        assert_eq!(pool.available(), 8);
    }

    #[test]
    fn replay_never_runs_dry_and_stops_at_pool_exhaustion() {
        let mut pool = PacketPool::with_frames(40);
        let (mut p, _h) = MemoryPort::replay("gen", vec![vec![0u8; 60], vec![1u8; 60]]);
        let mut b = Batch::new(32);
        assert_eq!(p.rx_burst(&mut pool, &mut b).unwrap(), 32);
        let mut b2 = Batch::new(32);
        assert_eq!(p.rx_burst(&mut pool, &mut b2).unwrap(), 8, "pool of 40");
        b.free_all(&mut pool);
        b2.free_all(&mut pool);
    }
}
