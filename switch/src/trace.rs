//! Packet tracing (like VPP's `trace add` / OVS `ofproto/trace`): the operator
//! arms the tracer for the next N packets (optionally only from one port),
//! and each pipeline stage records its verdict for those packets.
//!
//! Cost when disarmed: one branch per batch plus one test of a bitmask per
//! packet per stage. Records allocate, but only for traced packets.

use std::collections::VecDeque;

use crate::port::PortId;

/// Most finished records kept; older ones are dropped first.
pub const TRACE_KEEP: usize = 256;

/// One stage's verdict on a traced packet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TraceStep {
    pub stage: &'static str,
    pub verdict: String,
}

/// Everything recorded about one packet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TraceRecord {
    /// Sequence number across the tracer's life.
    pub seq: u64,
    pub in_port: PortId,
    pub len: usize,
    /// The first bytes of the frame as received, hex.
    pub head_hex: String,
    pub steps: Vec<TraceStep>,
}

impl std::fmt::Display for TraceRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "packet {} from port {} ({} bytes): {}",
            self.seq, self.in_port, self.len, self.head_hex
        )?;
        for s in &self.steps {
            writeln!(f, "  {:<10} {}", s.stage, s.verdict)?;
        }
        Ok(())
    }
}

/// Why [`crate::Switch::inject_dry`] refused a frame (nothing ran).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    #[error("no port {0}")]
    NoPort(PortId),
    #[error("frame of {0} bytes is shorter than an Ethernet header (14 bytes)")]
    Runt(usize),
    #[error("frame of {0} bytes is longer than a packet buffer ({1} bytes)")]
    TooLong(usize, usize),
    #[error("vlan {0} is outside 1..=4094")]
    BadVlan(u16),
    #[error("no free packet buffer")]
    PoolExhausted,
}

/// A frame a dry run would have transmitted: the port and the exact bytes
/// (after every tag edit and, for routed frames, the MAC rewrite and TTL).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DrySend {
    pub port: PortId,
    pub frame: Vec<u8>,
}

/// What one injected frame would do (`Switch::inject_dry`): each stage's
/// verdict, in pipeline order, and what would have been sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DryRun {
    pub in_port: PortId,
    /// The frame as it entered (with the tag the caller asked for).
    pub frame: Vec<u8>,
    pub steps: Vec<TraceStep>,
    /// In the order a real run would have queued them.
    pub sent: Vec<DrySend>,
}

/// The tracer state owned by the pipeline.
#[derive(Debug, Default)]
pub struct Tracer {
    remaining: u32,
    port: Option<PortId>,
    seq: u64,
    records: VecDeque<TraceRecord>,
}

impl Tracer {
    /// Trace the next `count` packets, only those received on `port` if given.
    pub fn arm(&mut self, count: u32, port: Option<PortId>) {
        self.remaining = count;
        self.port = port;
    }

    pub fn disarm(&mut self) {
        self.remaining = 0;
    }

    #[inline]
    pub fn is_armed(&self) -> bool {
        self.remaining > 0
    }

    /// Whether a packet from `port` should be traced; consumes one count.
    #[inline]
    pub(crate) fn want(&mut self, port: PortId) -> bool {
        if self.remaining == 0 || self.port.is_some_and(|p| p != port) {
            return false;
        }
        self.remaining -= 1;
        true
    }

    /// Start a record; returns its handle (sequence number) for [`Tracer::step`].
    pub(crate) fn begin(&mut self, in_port: PortId, frame: &[u8]) -> u64 {
        if self.records.len() == TRACE_KEEP {
            self.records.pop_front();
        }
        let n = frame.len().min(64);
        let head_hex = frame[..n].iter().map(|b| format!("{b:02x}")).collect();
        self.seq += 1;
        self.records.push_back(TraceRecord {
            seq: self.seq,
            in_port,
            len: frame.len(),
            head_hex,
            steps: Vec::new(),
        });
        self.seq
    }

    /// Append a stage verdict to the record `handle` from [`Tracer::begin`]
    /// (ignored if that record was already pushed out of the history).
    pub(crate) fn step(&mut self, handle: u64, stage: &'static str, verdict: String) {
        let Some(first) = self.records.front().map(|r| r.seq) else {
            return;
        };
        if let Some(r) = handle
            .checked_sub(first)
            .and_then(|i| self.records.get_mut(i as usize))
        {
            r.steps.push(TraceStep { stage, verdict });
        }
    }

    /// The handle of the record begun last.
    pub(crate) fn last_handle(&self) -> u64 {
        self.seq
    }

    /// Append a stage verdict to the record begun last.
    pub(crate) fn note(&mut self, stage: &'static str, verdict: String) {
        self.step(self.seq, stage, verdict);
    }

    /// Take the finished records.
    pub fn take(&mut self) -> Vec<TraceRecord> {
        self.records.drain(..).collect()
    }

    /// Look at the records without taking them.
    pub fn records(&self) -> impl Iterator<Item = &TraceRecord> {
        self.records.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_for_a_count_and_a_port() {
        let mut t = Tracer::default();
        assert!(!t.want(PortId(1)));
        t.arm(2, Some(PortId(1)));
        assert!(!t.want(PortId(2)), "other ports are not traced");
        assert!(t.want(PortId(1)));
        assert!(t.want(PortId(1)));
        assert!(!t.want(PortId(1)), "count used up");
        assert!(!t.is_armed());
    }

    #[test]
    fn keeps_a_bounded_history() {
        let mut t = Tracer::default();
        for _ in 0..TRACE_KEEP + 5 {
            let h = t.begin(PortId(0), &[0xab; 100]);
            t.step(h, "parse", "ok".into());
        }
        let r = t.take();
        assert_eq!(r.len(), TRACE_KEEP);
        assert_eq!(r[0].seq, 6);
        assert_eq!(r[0].head_hex.len(), 128);
        assert!(r[0].to_string().contains("parse"));
    }
}
