//! Batches: the unit every stage works on (VPP/DPDK style vectors). A batch
//! owns up to [`BATCH_MAX`] packet descriptors; nothing in a batch allocates.

use arrayvec::ArrayVec;

use crate::buf::{PacketPool, PktBuf};

/// Largest batch any stage handles.
pub const BATCH_MAX: usize = 64;
/// Default burst size used by ports and workers.
pub const BATCH_DEFAULT: usize = 32;

/// A vector of packets with a burst limit (32 or 64 by default).
#[derive(Debug)]
pub struct Batch {
    bufs: ArrayVec<PktBuf, BATCH_MAX>,
    limit: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new(BATCH_DEFAULT)
    }
}

impl Batch {
    /// An empty batch that accepts at most `limit` (1..=64) packets.
    pub fn new(limit: usize) -> Self {
        assert!(
            (1..=BATCH_MAX).contains(&limit),
            "batch limit {limit} outside 1..=64"
        );
        Batch {
            bufs: ArrayVec::new(),
            limit,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.bufs.len()
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }
    #[inline]
    pub fn limit(&self) -> usize {
        self.limit
    }
    /// Free slots before the burst limit.
    #[inline]
    pub fn room(&self) -> usize {
        self.limit - self.bufs.len()
    }
    #[inline]
    pub fn is_full(&self) -> bool {
        self.bufs.len() >= self.limit
    }

    /// Append a packet; gives it back if the batch is full.
    #[inline]
    pub fn push(&mut self, b: PktBuf) -> Result<(), PktBuf> {
        if self.is_full() {
            return Err(b);
        }
        self.bufs.push(b);
        Ok(())
    }

    #[inline]
    pub fn get(&self, i: usize) -> &PktBuf {
        &self.bufs[i]
    }
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> &mut PktBuf {
        &mut self.bufs[i]
    }
    #[inline]
    pub fn iter(&self) -> std::slice::Iter<'_, PktBuf> {
        self.bufs.iter()
    }
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [PktBuf] {
        &mut self.bufs
    }

    /// Move every packet out, in order.
    #[inline]
    pub fn drain(&mut self) -> arrayvec::Drain<'_, PktBuf, BATCH_MAX> {
        self.bufs.drain(..)
    }

    /// Exchange the packets of the two batches (each keeps its limit):
    /// moving a whole batch at once, where draining one into the other
    /// packet by packet costs a capacity check each. The caller checks the
    /// packets fit `other`'s limit.
    #[inline]
    pub fn swap_packets(&mut self, other: &mut Batch) {
        debug_assert!(self.len() <= other.limit && other.len() <= self.limit);
        std::mem::swap(&mut self.bufs, &mut other.bufs);
    }

    /// Move the first `n` packets, in order, to the end of `dst` when it
    /// has room for them all (true); otherwise nothing moves (false).
    #[inline]
    pub fn move_front(&mut self, n: usize, dst: &mut Batch) -> bool {
        if n > self.bufs.len() || n > dst.room() {
            return false;
        }
        for b in self.bufs.drain(..n) {
            dst.bufs.push(b);
        }
        true
    }

    /// Move the first `k` packets out, in order; the rest move to the
    /// front.
    #[inline]
    pub fn drain_front(&mut self, k: usize) -> arrayvec::Drain<'_, PktBuf, BATCH_MAX> {
        self.bufs.drain(..k)
    }

    /// Keep the packets for which `keep(index, buf)` is true, in order; the
    /// others are returned to `pool`. Returns how many were dropped.
    #[inline]
    pub fn retain(
        &mut self,
        pool: &mut PacketPool,
        mut keep: impl FnMut(usize, &PktBuf) -> bool,
    ) -> usize {
        let mut out = ArrayVec::<PktBuf, BATCH_MAX>::new();
        let mut dropped = 0;
        for (i, b) in self.bufs.drain(..).enumerate() {
            if keep(i, &b) {
                out.push(b);
            } else {
                pool.free(b);
                dropped += 1;
            }
        }
        self.bufs = out;
        dropped
    }

    /// Return every packet to the pool.
    pub fn free_all(&mut self, pool: &mut PacketPool) {
        for b in self.bufs.drain(..) {
            pool.free(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_respects_limit() {
        let mut pool = PacketPool::with_frames(8);
        let mut b = Batch::new(2);
        b.push(pool.alloc().unwrap()).unwrap();
        b.push(pool.alloc().unwrap()).unwrap();
        let back = b.push(pool.alloc().unwrap()).unwrap_err();
        pool.free(back);
        assert_eq!(b.len(), 2);
        b.free_all(&mut pool);
        assert_eq!(pool.available(), 8);
    }

    #[test]
    fn retain_keeps_order_and_frees_the_rest() {
        let mut pool = PacketPool::with_frames(8);
        let mut b = Batch::new(8);
        for i in 0..5u8 {
            b.push(pool.alloc_from(&[i]).unwrap()).unwrap();
        }
        assert_eq!(b.retain(&mut pool, |i, _| i % 2 == 0), 2);
        let kept: Vec<u8> = b.iter().map(|x| pool.data(x)[0]).collect();
        assert_eq!(kept, vec![0, 2, 4]);
        assert_eq!(pool.available(), 5);
        b.free_all(&mut pool);
    }

    #[test]
    #[should_panic(expected = "outside 1..=64")]
    fn limit_is_bounded() {
        let _ = Batch::new(65);
    }
}
