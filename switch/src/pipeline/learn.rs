//! The `learn` node: learn or refresh each frame's source on the ingress
//! port.
//!
//! It runs after `lookup`, which probed the table as the batch found it.
//! Where this batch's own learning puts a station that a later frame of the
//! batch is addressed to, that frame's lookup is corrected to the ingress
//! port: every frame sees the table as if the frames before it, and its own
//! source, had been learned first.

use super::Ctx;
use crate::batch::BATCH_MAX;
use crate::counters::StageCounter;
use crate::fdb::{Learned, fdb_key};
use crate::mac::MacAddr;
use crate::port::PortId;
use crate::scratch::{Action, Scratch};

/// The bit of a 64-bit filter that FDB hash `h` sets (`lookup` builds one
/// over the destinations it probed).
#[inline(always)]
pub(super) fn filter_bit(h: u64) -> u64 {
    1 << (h >> 58)
}

#[inline(never)]
pub(super) fn node(cx: &mut Ctx, n: usize) {
    if cx.scratch.dry {
        return dry(cx, n);
    }
    let in_port = cx.in_port;
    let ps = cx.ports[in_port.index()]
        .as_ref()
        .expect("ingress port exists");
    if !(ps.cfg.learning && ps.stp_learn) {
        return;
    }
    let s = &mut *cx.scratch;
    let fdb = &mut cx.domain.fdb;
    let dst_filter = s.dst_filter;
    // Every frame of a batch comes from one port, so a source already
    // learned or refreshed in this batch is a refresh.
    let mut learned_key = 0u64;
    for i in 0..n {
        let i = i % BATCH_MAX;
        if matches!(s.action[i], Action::Drop(_) | Action::Bpdu) {
            continue;
        }
        let m = s.meta[i];
        let key = fdb_key(m.vid, m.src);
        let r = if key == learned_key {
            Learned::Refreshed
        } else {
            let h = s.src_hash[i];
            let r = fdb.learn_hashed(key, h, in_port, cx.now_s);
            learned_key = match r {
                Learned::Refreshed | Learned::New | Learned::Moved { .. } => key,
                _ => 0,
            };
            if learned_key != 0 && dst_filter & filter_bit(h) != 0 {
                now_on_ingress(s, i, n, key, in_port);
            }
            r
        };
        if r == Learned::Refreshed {
            cx.c.refreshed += 1;
        } else {
            cx.stages.inc(counter(r));
        }
        if s.traced & (1 << i) != 0 {
            cx.tracer.step(s.trace_ids[i], "learn", format!("{r:?}"));
        }
    }
}

/// `key` now lives on the ingress port: frames `from..n` addressed to it
/// find it there.
#[cold]
fn now_on_ingress(s: &mut Scratch, from: usize, n: usize, key: u64, in_port: PortId) {
    for k in from..n {
        let k = k % BATCH_MAX;
        let m = &s.meta[k];
        if s.action[k] == Action::Continue && fdb_key(m.vid, m.dst) == key {
            s.found[k] = Some(in_port);
        }
    }
}

/// `learn` in a dry run: what learning the source would do, without doing
/// it. A frame to its own source sees the table as learning would leave it
/// (as `learn` corrects it), so the verdict matches a real run.
#[cold]
fn dry(cx: &mut Ctx, n: usize) {
    let in_port = cx.in_port;
    let ps = cx.ports[in_port.index()]
        .as_ref()
        .expect("ingress port exists");
    let on = ps.cfg.learning && ps.stp_learn;
    let s: &mut Scratch = cx.scratch;
    for i in 0..n {
        let i = i % BATCH_MAX;
        if matches!(s.action[i], Action::Drop(_) | Action::Bpdu) {
            continue;
        }
        let m = s.meta[i];
        let src = MacAddr::from_u64(m.src);
        if !on {
            let v = format!("src {src}: learning off on this port");
            cx.tracer.note("learn", v);
            continue;
        }
        let key = fdb_key(m.vid, m.src);
        let fdb = &cx.domain.fdb;
        let r = fdb.learn_verdict(key, in_port, cx.now_s);
        if matches!(r, Learned::Refreshed | Learned::New | Learned::Moved { .. })
            && s.dst_filter & filter_bit(fdb.hash(key)) != 0
        {
            now_on_ingress(s, i, n, key, in_port);
        }
        let v = format!(
            "src {src} vlan {} on port {in_port}: {r:?} (dry run: not learned)",
            m.vid
        );
        cx.tracer.note("learn", v);
    }
}

pub(super) fn counter(r: Learned) -> StageCounter {
    match r {
        Learned::Refreshed => StageCounter::LearnRefresh,
        Learned::New => StageCounter::LearnNew,
        Learned::Moved { .. } => StageCounter::LearnMove,
        Learned::MoveDamped => StageCounter::LearnMoveDamped,
        Learned::LimitPort => StageCounter::LearnLimitPort,
        Learned::LimitDomain => StageCounter::LearnLimitDomain,
        Learned::StaticConflict => StageCounter::LearnStaticConflict,
    }
}
