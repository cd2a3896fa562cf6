//! Link impairments on a switch port: delay, jitter, loss, duplication and a
//! rate limit, applied to the frames the switch sends out of the port (the
//! direction `netem` on the port's egress would shape). This kernel has no
//! `netem`, and a switch-side impairment works on any kernel and any port
//! kind. A seeded generator makes a run repeat exactly.
//!
//! Frames wait in a FIFO with their release time (jitter never reorders,
//! as `netem` with a rate); the port releases due frames whenever the
//! worker calls it (`tx_burst`, `rx_burst`, `maintain`) and tells the
//! worker, through [`Port::wake_after`], when the next one is due so an idle
//! worker wakes for it.
//!
//! Owns: the held frames and the generator. Never: changing frames.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rvs_switch::{Batch, PacketPool, PktBuf, Port, PortError, TxDone};

/// What to do to a port's egress.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Impairment {
    /// Fixed one-way delay.
    pub delay_ms: u32,
    /// Each frame's delay varies uniformly by up to ± this.
    pub jitter_ms: u32,
    /// Percent of frames dropped (0..=100).
    pub loss_pct: f64,
    /// Percent of frames sent twice (0..=100).
    pub dup_pct: f64,
    /// Egress rate in kbit/s (0: unlimited); frames over it queue, and
    /// frames that would wait longer than a second are dropped.
    pub rate_kbps: u64,
    /// Seed of the generator (the same seed repeats the same losses).
    pub seed: u64,
}

impl Impairment {
    pub fn validate(&self) -> Result<(), String> {
        for (what, p) in [("loss_pct", self.loss_pct), ("dup_pct", self.dup_pct)] {
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("impairment {what} {p} is outside 0..=100"));
            }
        }
        if self.jitter_ms > self.delay_ms {
            return Err(format!(
                "impairment jitter_ms {} exceeds delay_ms {} (delays cannot go negative)",
                self.jitter_ms, self.delay_ms
            ));
        }
        if self.delay_ms > 60_000 {
            return Err(format!(
                "impairment delay_ms {} exceeds 60000",
                self.delay_ms
            ));
        }
        Ok(())
    }
}

/// Counters of one impaired port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImpairStats {
    pub lost: u64,
    pub duplicated: u64,
    pub delayed: u64,
    /// Dropped because the rate queue was over a second long or the hold
    /// queue was full.
    pub overflow: u64,
}

/// Most frames held at once; beyond it frames are dropped.
const HOLD_MAX: usize = 16_384;
/// Longest a frame may queue behind the rate limit.
const RATE_QUEUE_MAX: Duration = Duration::from_secs(1);

/// A port whose egress is impaired.
pub struct Impaired {
    inner: Box<dyn Port>,
    cfg: Impairment,
    rng: fastrand::Rng,
    held: VecDeque<(Instant, PktBuf)>,
    /// When the rate limiter's queue drains (frames leave back to back).
    rate_free_at: Instant,
    out: Batch,
    stats: ImpairStats,
}

impl Impaired {
    pub fn new(inner: Box<dyn Port>, cfg: Impairment) -> Result<Impaired, String> {
        cfg.validate()?;
        Ok(Impaired {
            inner,
            rng: fastrand::Rng::with_seed(cfg.seed),
            cfg,
            held: VecDeque::new(),
            rate_free_at: Instant::now(),
            out: Batch::new(rvs_switch::BATCH_MAX),
            stats: ImpairStats::default(),
        })
    }

    pub fn stats(&self) -> ImpairStats {
        self.stats
    }

    fn hit(&mut self, pct: f64) -> bool {
        pct > 0.0 && self.rng.f64() * 100.0 < pct
    }

    /// When `b` may leave, or `None` to drop it.
    fn release_time(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let c = self.cfg;
        let mut d = c.delay_ms as i64;
        if c.jitter_ms > 0 {
            d += self.rng.i64(-(c.jitter_ms as i64)..=c.jitter_ms as i64);
        }
        let mut at = now + Duration::from_millis(d.max(0) as u64);
        // Wire time in ns: preamble, FCS and gap count, as on a wire.
        let bits = (len as u64 + 24) * 8;
        if let Some(ns) = (bits * 1_000_000).checked_div(c.rate_kbps) {
            let start = self.rate_free_at.max(now);
            if start.duration_since(now) > RATE_QUEUE_MAX {
                return None;
            }
            let tx = Duration::from_nanos(ns);
            self.rate_free_at = start + tx;
            at = at.max(self.rate_free_at);
        }
        // No reordering: never before the frame ahead.
        if let Some((last, _)) = self.held.back() {
            at = at.max(*last);
        }
        Some(at)
    }

    fn hold(&mut self, pool: &mut PacketPool, b: PktBuf, now: Instant) {
        if self.held.len() >= HOLD_MAX {
            self.stats.overflow += 1;
            pool.free(b);
            return;
        }
        match self.release_time(now, b.len()) {
            Some(at) => {
                self.stats.delayed += u64::from(at > now);
                self.held.push_back((at, b));
            }
            None => {
                self.stats.overflow += 1;
                pool.free(b);
            }
        }
    }

    /// Send every held frame that is due. Returns what the inner port did.
    fn release(&mut self, pool: &mut PacketPool) -> TxDone {
        let now = Instant::now();
        let mut done = TxDone::default();
        while self.held.front().is_some_and(|(at, _)| *at <= now) {
            while !self.out.is_full()
                && let Some((at, _)) = self.held.front()
                && *at <= now
            {
                let (_, b) = self.held.pop_front().expect("front exists");
                self.out.push(b).expect("not full");
            }
            let d = self.inner.tx_burst(pool, &mut self.out);
            done.packets += d.packets;
            done.bytes += d.bytes;
            done.dropped += d.dropped;
        }
        done
    }
}

impl Port for Impaired {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn rx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> Result<usize, PortError> {
        if !self.held.is_empty() {
            self.release(pool);
        }
        self.inner.rx_burst(pool, batch)
    }

    /// Frames the switch hands over are impaired and held; what is due goes
    /// out now. The counts returned are those of this call's releases.
    fn tx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> TxDone {
        let now = Instant::now();
        for b in batch.drain() {
            // Impairment losses are what the operator asked for, not the
            // back end's failures: counted here, not as tx drops.
            if self.hit(self.cfg.loss_pct) {
                self.stats.lost += 1;
                pool.free(b);
                continue;
            }
            if self.hit(self.cfg.dup_pct)
                && let Some(copy) = pool.duplicate(&b)
            {
                self.stats.duplicated += 1;
                self.hold(pool, copy, now);
            }
            self.hold(pool, b, now);
        }
        self.release(pool)
    }

    fn poll_fd(&self) -> Option<i32> {
        self.inner.poll_fd()
    }

    fn max_frame(&self) -> usize {
        self.inner.max_frame()
    }

    fn maintain(&mut self, pool: &mut PacketPool) {
        self.release(pool);
        self.inner.maintain(pool);
    }

    fn wake_after(&self) -> Option<Duration> {
        let inner = self.inner.wake_after();
        let mine = self
            .held
            .front()
            .map(|(at, _)| at.saturating_duration_since(Instant::now()));
        match (inner, mine) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn backend_drops(&self) -> Vec<(&'static str, u64)> {
        self.inner.backend_drops()
    }

    fn detach(&mut self, pool: &mut PacketPool) {
        self.held.drain(..).for_each(|(_, b)| pool.free(b));
        self.out.free_all(pool);
        self.inner.detach(pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_switch::MemoryPort;

    fn frames(pool: &mut PacketPool, n: usize) -> Batch {
        let mut b = Batch::new(64);
        for i in 0..n {
            let mut f = vec![0u8; 100];
            f[0] = i as u8;
            b.push(pool.alloc_from(&f).unwrap()).unwrap();
        }
        b
    }

    fn impaired(cfg: Impairment) -> (Impaired, rvs_switch::MemoryPortHandle) {
        let (p, h) = MemoryPort::new("m0");
        (Impaired::new(Box::new(p), cfg).unwrap(), h)
    }

    #[test]
    fn delay_holds_frames_until_due_and_tells_the_worker_when() {
        let mut pool = PacketPool::with_frames(256);
        let free0 = pool.available();
        let (mut p, h) = impaired(Impairment {
            delay_ms: 30,
            ..Default::default()
        });
        let mut b = frames(&mut pool, 5);
        p.tx_burst(&mut pool, &mut b);
        assert!(h.take_tx().is_empty(), "held");
        let w = p.wake_after().unwrap();
        assert!(
            w > Duration::from_millis(20) && w <= Duration::from_millis(30),
            "{w:?}"
        );
        std::thread::sleep(Duration::from_millis(35));
        p.maintain(&mut pool);
        let out = h.take_tx();
        assert_eq!(out.len(), 5);
        assert_eq!(
            out.iter().map(|f| f[0]).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(p.wake_after(), None);
        assert_eq!(pool.available(), free0);
    }

    #[test]
    fn loss_and_duplication_follow_the_seed() {
        let run = |seed: u64| {
            let mut pool = PacketPool::with_frames(4096);
            let (mut p, h) = impaired(Impairment {
                loss_pct: 30.0,
                dup_pct: 10.0,
                seed,
                ..Default::default()
            });
            let mut sent = Vec::new();
            for _ in 0..20 {
                let mut b = frames(&mut pool, 50);
                p.tx_burst(&mut pool, &mut b);
                sent.extend(h.take_tx().into_iter().map(|f| f[0]));
            }
            (sent, p.stats())
        };
        let (a, sa) = run(7);
        let (b, _) = run(7);
        let (c, _) = run(8);
        assert_eq!(a, b, "same seed, same frames");
        assert_ne!(a, c, "another seed, other losses");
        // 1000 frames: about 300 lost, about 70 duplicated.
        assert!((200..400).contains(&sa.lost), "{sa:?}");
        assert!((30..120).contains(&sa.duplicated), "{sa:?}");
        assert_eq!(a.len() as u64, 1000 - sa.lost + sa.duplicated);
    }

    #[test]
    fn rate_limit_spaces_frames_and_drops_beyond_a_second_of_queue() {
        let mut pool = PacketPool::with_frames(4096);
        // 100 kbit/s: a 100-byte frame (+24) takes ~9.9 ms on the wire.
        let (mut p, h) = impaired(Impairment {
            rate_kbps: 100,
            ..Default::default()
        });
        let mut b = frames(&mut pool, 10);
        p.tx_burst(&mut pool, &mut b);
        let first = h.take_tx().len();
        assert!(first <= 1, "{first} left at once");
        std::thread::sleep(Duration::from_millis(60));
        p.maintain(&mut pool);
        let more = h.take_tx().len();
        assert!((3..=8).contains(&more), "{more} after 60 ms");
        // 2 s worth of frames at once: the tail beyond 1 s is dropped.
        for _ in 0..4 {
            let mut b = frames(&mut pool, 50);
            p.tx_burst(&mut pool, &mut b);
        }
        assert!(p.stats().overflow > 50, "{:?}", p.stats());
        p.detach(&mut pool);
        assert_eq!(pool.available(), 4096, "detach gave every frame back");
    }

    #[test]
    fn bad_settings_are_refused() {
        for cfg in [
            Impairment {
                loss_pct: 101.0,
                ..Default::default()
            },
            Impairment {
                delay_ms: 5,
                jitter_ms: 10,
                ..Default::default()
            },
        ] {
            let (p, _) = MemoryPort::new("m");
            assert!(Impaired::new(Box::new(p), cfg).is_err());
        }
    }
}
