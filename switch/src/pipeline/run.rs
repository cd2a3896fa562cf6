//! The `run` node: a fast path for a batch whose frames all share one
//! header except for the source MAC (one flow, or one destination from many
//! stations) — the common case of a busy port.
//!
//! It replaces `classify`, `lookup` and `learn` (and, for known unicast and
//! plain floods, `forward` and `egress`) with work done once per batch:
//! one parse and VLAN classification, one destination lookup, one egress
//! decision; per frame only the source check, learning, the tag edit and the
//! queueing remain. Features the port or domain does not use cost nothing
//! per frame: port security, tracing and STP discarding send the batch down
//! the general path instead, decided once. A run to the gateway (in its
//! VLAN) is learned once and handed to the router whole.
//!
//! The result is exactly what the general path gives: the bytes
//! `parse_classify` reads — the MACs, the EtherType and, for a tagged frame
//! 0, its tag and inner EtherType (and a second tag's) — are equal but for
//! the source, so each frame would parse the same; no frame's source is the
//! destination, so learning cannot change the lookup. What follows the
//! parsed header (IPv4 length and id, ports, payload) may differ: a TCP or
//! UDP stream is a run.

use super::Ctx;
use super::classify::{BROADCAST, MULTICAST_BIT, parse_classify};
use super::egress::{Out, egress_edit, enqueue, unicast_egress};
use super::{drop_at, forward};
use crate::batch::{BATCH_MAX, Batch};
use crate::counters::{DropReason, StageCounter};
use crate::fdb::{Learned, fdb_key};
use crate::port::PortId;
use crate::scratch::{Action, FloodKind, Meta};
use crate::vlan::Egress;
use crate::wire::vlan::TAG_LEN;

/// Bytes read as three words to compare headers: up to a second tag's
/// inner EtherType, all `parse_classify` may read (frames shorter than this
/// take the general path).
const RUN_HEADER: usize = 24;
/// In the first 8 bytes (big-endian): the destination MAC.
const W0_DST: u64 = !0xffff;
/// In bytes 8..16: the rest of the source MAC.
const W1_SRC: u64 = 0xffff_ffff_0000_0000;
/// In bytes 8..16: the EtherType (or TPID), bytes 12..14.
const W1_ETYPE: u64 = 0xffff_0000;
/// In bytes 8..16: the TPID and the TCI after the source, bytes 12..16.
const W1_TAG: u64 = 0xffff_ffff;
/// In bytes 16..24: the inner EtherType after one tag, bytes 16..18.
const W2_INNER: u64 = 0xffff << 48;
/// In bytes 16..24: a second tag and its inner EtherType, bytes 16..22.
const W2_QINQ: u64 = !0xffff;

#[inline(always)]
fn words(d: &[u8]) -> (u64, u64, u64) {
    (
        u64::from_be_bytes(d[0..8].try_into().unwrap()),
        u64::from_be_bytes(d[8..16].try_into().unwrap()),
        u64::from_be_bytes(d[16..24].try_into().unwrap()),
    )
}

/// Take the batch if it is a run. Returns false, having changed nothing,
/// when it is not: the general path takes it.
#[inline(never)]
pub(super) fn node(cx: &mut Ctx, batch: &mut Batch) -> bool {
    let n = batch.len();
    let ps = cx.ports[cx.in_port.index()]
        .as_ref()
        .expect("ingress port exists");
    if ps.cfg.security.is_some() || !ps.stp_fwd || cx.scratch.traced != 0 {
        return false;
    }
    let learning = ps.cfg.learning && ps.stp_learn;
    let d0 = cx.pool.data(batch.get(0));
    if d0.len() < RUN_HEADER {
        return false;
    }
    let Ok(mut m) = parse_classify(d0, cx.tpid, &ps.cfg.vlan) else {
        return false;
    };
    // To the gateway: routed as a run when in the gateway's VLAN (the
    // general path drops it otherwise, with its reason).
    let to_gw = m.dst == cx.gw.mac;
    if to_gw && m.vid != cx.gw.vid {
        return false;
    }
    let (r0, r1, r2) = words(d0);
    // Which of bytes 12..24 the parse read for frame 0 (and so would read,
    // equal, for every frame whose bytes those are).
    let (m1, m2) = if !m.tagged {
        (W1_ETYPE, 0)
    } else if super::classify::is_vlan_tpid((r2 >> 48) as u16) {
        (W1_TAG, W2_QINQ)
    } else {
        (W1_TAG, W2_INNER)
    };
    // Frame 0's words as masked: a frame compares with one AND each.
    let (same1, k_same1, k1, k2) = (W1_SRC | m1, r1 & (W1_SRC | m1), r1 & m1, r2 & m2);
    let dst_key = fdb_key(m.vid, m.dst);
    let fdb = &cx.domain.fdb;
    let s = &mut *cx.scratch;
    // Frame 0's source (parse_classify checked it is a station).
    let key0 = fdb_key(m.vid, m.src);
    if key0 == dst_key {
        // A frame to itself: learning changes the lookup.
        return false;
    }
    let hash0 = if learning { fdb.prefetch_key(key0) } else { 0 };
    let (mut prev_key, mut prev_hash) = (key0, hash0);
    // Whether any frame's source differs from frame 0's.
    let mut mixed = false;
    for i in 0..n {
        let i = i % BATCH_MAX;
        let d = cx.pool.data(batch.get(i));
        if d.len() < RUN_HEADER {
            return false;
        }
        let (w0, w1, w2) = words(d);
        if w0 == r0 && w1 & same1 == k_same1 && w2 & m2 == k2 {
            // Frame 0's header: one flow, nothing to work out.
            s.src_key[i] = key0;
            s.src_hash[i] = hash0;
            continue;
        }
        let src = (w0 & 0xffff) << 32 | w1 >> 32;
        if (w0 ^ r0) & W0_DST != 0
            || w1 & m1 != k1
            || w2 & m2 != k2
            || src & MULTICAST_BIT != 0
            || src == 0
        {
            return false;
        }
        let key = fdb_key(m.vid, src);
        if key == dst_key {
            return false;
        }
        if learning && key != prev_key {
            (prev_key, prev_hash) = (key, fdb.prefetch_key(key));
        }
        mixed = true;
        s.src_key[i] = key;
        s.src_hash[i] = prev_hash;
    }

    // Committed: from here on the batch is this node's.
    if m.tagged {
        cx.c.tagged += n as u32;
        if m.tci & 0xfff == 0 {
            cx.c.priority_tagged += n as u32;
        }
    }
    if to_gw {
        if learning {
            learn(cx, n, mixed);
        }
        to_router(cx, batch, &m);
        return true;
    }
    let kind = if m.dst & MULTICAST_BIT != 0 {
        Some(if m.dst == BROADCAST {
            FloodKind::Broadcast
        } else {
            FloodKind::Multicast
        })
    } else {
        None
    };
    // No source of the run is the destination: the table as the batch
    // found it answers for every frame.
    let found = match kind {
        None => fdb.lookup(dst_key, cx.now_s),
        Some(_) => None,
    };
    if learning {
        learn(cx, n, mixed);
    }
    let in_port = cx.in_port;
    let action = match (kind, found) {
        (Some(k), _) => Action::Flood(k),
        (None, None) => Action::Flood(FloodKind::Unknown),
        (None, Some(p)) if p == in_port => Action::Drop(DropReason::Filtered),
        (None, Some(p)) => Action::Unicast(p),
    };
    match action {
        Action::Unicast(out) => unicast(cx, batch, &m, out),
        Action::Flood(k) if plain_flood(cx, &m, k) => flood(cx, batch, &m, k),
        _ => {
            // Rare verdicts keep the general nodes.
            for i in 0..n {
                let i = i % BATCH_MAX;
                m.src = cx.scratch.src_key[i] & 0xffff_ffff_ffff;
                cx.scratch.meta[i] = m;
                cx.scratch.found[i] = found;
                cx.scratch.action[i] = match action {
                    Action::Flood(_) => action,
                    _ => Action::Continue,
                };
            }
            forward::node(cx, batch);
            super::egress::node(cx, batch);
        }
    }
    true
}

/// Learn every source of the run, as the `learn` node does.
#[inline(always)]
fn learn(cx: &mut Ctx, n: usize, mixed: bool) {
    let s = &*cx.scratch;
    let fdb = &mut cx.domain.fdb;
    let (in_port, now_s) = (cx.in_port, cx.now_s);
    let mut learned_key = 0u64;
    let mut refreshed = 0u32;
    let mut first = 0;
    if !mixed {
        // One source: one learn; the rest refresh what it learned.
        let r = fdb.learn_hashed(s.src_key[0], s.src_hash[0], in_port, now_s);
        if matches!(r, Learned::Refreshed | Learned::New | Learned::Moved { .. }) {
            if r == Learned::Refreshed {
                refreshed += 1;
            } else {
                cx.stages.inc(super::learn::counter(r));
            }
            cx.c.refreshed += refreshed + n as u32 - 1;
            return;
        }
        // Not learned (a limit, a damped move): every frame tries again,
        // as in the `learn` node.
        cx.stages.inc(super::learn::counter(r));
        first = 1;
    }
    for i in first..n {
        let i = i % BATCH_MAX;
        let key = s.src_key[i];
        if key == learned_key {
            refreshed += 1;
            continue;
        }
        let r = fdb.learn_hashed(key, s.src_hash[i], in_port, now_s);
        if r == Learned::Refreshed {
            refreshed += 1;
            learned_key = key;
        } else {
            learned_key = match r {
                Learned::New | Learned::Moved { .. } => key,
                _ => 0,
            };
            cx.stages.inc(super::learn::counter(r));
        }
    }
    cx.c.refreshed += refreshed;
}

/// Every frame of the run to the router, untagged (as `egress` hands
/// `Action::Route` frames over); the L3 node takes them after the batch.
#[inline(always)]
fn to_router(cx: &mut Ctx, batch: &mut Batch, m: &Meta) {
    let Ctx {
        pool,
        ports,
        scratch,
        c,
        in_port,
        ..
    } = cx;
    if !m.tagged && scratch.l3_in.is_empty() && batch.len() <= scratch.l3_in.limit() {
        // The whole batch as it is (the router's input is empty).
        scratch.l3_in.swap_packets(batch);
        return;
    }
    for mut b in batch.drain() {
        if m.tagged {
            super::egress::move_macs(pool.data_mut(&b), 0, TAG_LEN);
            pool.pull_front(&mut b, TAG_LEN);
            c.pop += 1;
        }
        if let Err(b) = scratch.l3_in.push(b) {
            drop_at(ports, pool, b, *in_port, DropReason::PoolExhausted);
        }
    }
}

/// Every frame to one known port, with one tag edit. (The same work as
/// [`Sender`], written out: through `Sender`'s fields it costs about 10
/// instructions a frame more, and this is the hottest loop there is.)
#[inline(always)]
fn unicast(cx: &mut Ctx, batch: &mut Batch, m: &Meta, out: PortId) {
    let Ctx {
        pool,
        ports,
        scratch,
        c,
        in_port,
        tpid,
        now_ms,
        ..
    } = cx;
    let (in_port, tpid, now_ms) = (*in_port, *tpid, *now_ms);
    let n = batch.len();
    c.known_unicast += n as u32;
    let edit = match (m.tagged, unicast_egress(ports, out, m.vid)) {
        (false, Egress::Untagged) => Edit::None,
        (true, Egress::Tagged) if m.tci & 0xfff == m.vid => Edit::None,
        (true, Egress::Tagged) => Edit::SetTci((m.tci & 0xf000) | m.vid),
        (true, Egress::Untagged) => Edit::Pop,
        (false, Egress::Tagged) => Edit::Push((m.tci & 0xf000) | m.vid),
        (_, Egress::NotMember) => {
            for b in batch.drain() {
                drop_at(ports, pool, b, in_port, DropReason::NoEgressMember);
            }
            return;
        }
    };
    let os = ports[out.index()]
        .as_mut()
        .expect("unicast_egress checked the port");
    let max = os.max_frame;
    // Memory ports and most kernel ports take any u16 length: no check.
    let check_len = max < u16::MAX as usize;
    if os.txq.is_empty() {
        scratch.touched.push(out);
    }
    let (mut no_headroom, mut oversize, mut edited) = (0u64, 0u64, 0u32);
    for mut b in batch.drain() {
        match edit {
            Edit::None => {}
            Edit::SetTci(tci) => {
                pool.data_mut(&b)[14..16].copy_from_slice(&tci.to_be_bytes());
            }
            Edit::Pop => {
                super::egress::move_macs(pool.data_mut(&b), 0, TAG_LEN);
                pool.pull_front(&mut b, TAG_LEN);
                edited += 1;
            }
            Edit::Push(tci) => {
                if b.headroom() < TAG_LEN {
                    no_headroom += 1;
                    pool.free(b);
                    continue;
                }
                pool.push_front(&mut b, TAG_LEN);
                let d = pool.data_mut(&b);
                super::egress::move_macs(d, TAG_LEN, 0);
                d[12..14].copy_from_slice(&tpid.to_be_bytes());
                d[14..16].copy_from_slice(&tci.to_be_bytes());
                edited += 1;
            }
        }
        // A GSO super-frame is the egress back end's to segment.
        if check_len && b.len() > max && !b.offload().is_gso() {
            oversize += 1;
            pool.free(b);
            continue;
        }
        if let Err(b) = os.txq.push(b) {
            os.flush(pool, now_ms);
            os.txq.push(b).expect("empty after flush");
        }
    }
    os.counters.drops[DropReason::Oversize as usize] += oversize;
    match edit {
        Edit::Pop => c.pop += edited,
        Edit::Push(_) => c.push += edited,
        _ => {}
    }
    if no_headroom != 0 {
        ports[in_port.index()]
            .as_mut()
            .expect("ingress port exists")
            .counters
            .drops[DropReason::NoHeadroom as usize] += no_headroom;
    }
}

/// The one tag edit every frame of a run gets on one port.
#[derive(Clone, Copy)]
enum Edit {
    None,
    /// Fill in the VID of a priority-tagged frame.
    SetTci(u16),
    Pop,
    Push(u16),
}

/// Queues a run's frames on one egress port: the tag edit, the length
/// check and the port worked out once; drops counted in bulk.
struct Sender {
    out: PortId,
    edit: Edit,
    tpid: u16,
    /// The port's frame limit, where it has one below 65535.
    check_len: Option<usize>,
    no_headroom: u64,
    oversize: u64,
    edited: u32,
}

impl Sender {
    /// `None` when `out` does not take the run's VLAN (`e` NotMember).
    #[inline(always)]
    fn with_egress(
        ports: &[Option<crate::core::PortSlot>],
        touched: &mut Vec<PortId>,
        out: PortId,
        m: &Meta,
        e: Egress,
        tpid: u16,
    ) -> Option<Sender> {
        let edit = match (m.tagged, e) {
            (false, Egress::Untagged) => Edit::None,
            (true, Egress::Tagged) if m.tci & 0xfff == m.vid => Edit::None,
            (true, Egress::Tagged) => Edit::SetTci((m.tci & 0xf000) | m.vid),
            (true, Egress::Untagged) => Edit::Pop,
            (false, Egress::Tagged) => Edit::Push((m.tci & 0xf000) | m.vid),
            (_, Egress::NotMember) => return None,
        };
        let os = ports[out.index()].as_ref().expect("a member port");
        if os.txq.is_empty() {
            touched.push(out);
        }
        // Memory ports and most kernel ports take any u16 length: no check.
        let check_len = (os.max_frame < u16::MAX as usize).then_some(os.max_frame);
        Some(Sender {
            out,
            edit,
            tpid,
            check_len,
            no_headroom: 0,
            oversize: 0,
            edited: 0,
        })
    }

    /// Edit `b` and queue it on `os` (the port `out`), sending the queue
    /// when full.
    #[inline(always)]
    fn send(
        &mut self,
        os: &mut crate::core::PortSlot,
        pool: &mut crate::buf::PacketPool,
        mut b: crate::buf::PktBuf,
        now_ms: u64,
    ) {
        match self.edit {
            Edit::None => {}
            Edit::SetTci(tci) => {
                pool.data_mut(&b)[14..16].copy_from_slice(&tci.to_be_bytes());
            }
            Edit::Pop => {
                super::egress::move_macs(pool.data_mut(&b), 0, TAG_LEN);
                pool.pull_front(&mut b, TAG_LEN);
                self.edited += 1;
            }
            Edit::Push(tci) => {
                if b.headroom() < TAG_LEN {
                    self.no_headroom += 1;
                    pool.free(b);
                    return;
                }
                pool.push_front(&mut b, TAG_LEN);
                let d = pool.data_mut(&b);
                super::egress::move_macs(d, TAG_LEN, 0);
                d[12..14].copy_from_slice(&self.tpid.to_be_bytes());
                d[14..16].copy_from_slice(&tci.to_be_bytes());
                self.edited += 1;
            }
        }
        // A GSO super-frame is the egress back end's to segment.
        if let Some(max) = self.check_len
            && b.len() > max
            && !b.offload().is_gso()
        {
            self.oversize += 1;
            pool.free(b);
            return;
        }
        if let Err(b) = os.txq.push(b) {
            os.flush(pool, now_ms);
            os.txq.push(b).expect("empty after flush");
        }
    }

    /// Add what the run counted to the counters.
    fn finish(
        self,
        ports: &mut [Option<crate::core::PortSlot>],
        c: &mut super::BatchCounts,
        in_port: PortId,
    ) {
        ports[self.out.index()]
            .as_mut()
            .expect("a member port")
            .counters
            .drops[DropReason::Oversize as usize] += self.oversize;
        match self.edit {
            Edit::Pop => c.pop += self.edited,
            Edit::Push(_) => c.push += self.edited,
            _ => {}
        }
        if self.no_headroom != 0
            && let Some(ps) = ports.get_mut(in_port.index()).and_then(Option::as_mut)
        {
            ps.counters.drops[DropReason::NoHeadroom as usize] += self.no_headroom;
        }
    }
}

/// Whether a flood of the run needs none of the per-frame work of the
/// general path: no storm control on the port, no copy for the gateway.
#[inline(always)]
fn plain_flood(cx: &Ctx, m: &Meta, kind: FloodKind) -> bool {
    let storm = cx.ports[cx.in_port.index()]
        .as_ref()
        .is_some_and(|p| p.storm.is_some());
    let router = cx.gw.mac != u64::MAX
        && kind != FloodKind::Unknown
        && (m.vid == cx.gw.vid || cx.gw.listens);
    !storm && !router
}

/// Flood every frame of the run to one target set, worked out once.
#[inline(always)]
fn flood(cx: &mut Ctx, batch: &mut Batch, m: &Meta, kind: FloodKind) {
    let n = batch.len();
    cx.stages.add(
        match kind {
            FloodKind::Broadcast => StageCounter::FwdBroadcast,
            FloodKind::Multicast => StageCounter::FwdMulticast,
            FloodKind::Unknown => StageCounter::FwdUnknownUnicast,
        },
        n as u64,
    );
    let (in_port, tpid, now_ms) = (cx.in_port, cx.tpid, cx.now_ms);
    let Ctx {
        pool,
        ports,
        scratch,
        tracer,
        domain,
        c,
        ..
    } = cx;
    let o = Out {
        ports,
        pool,
        scratch,
        tracer,
        c,
    };
    super::egress::flood_targets(o.ports, o.scratch, &domain.members, in_port, m.vid);
    let Some(&(last, last_e)) = o.scratch.targets.last() else {
        o.ports[in_port.index()]
            .as_mut()
            .expect("ingress port exists")
            .counters
            .drops[DropReason::FloodEmpty as usize] += n as u64;
        batch.free_all(o.pool);
        return;
    };
    let copies = o.scratch.targets.len() - 1;
    if o.pool.available() >= n * copies {
        // No copy can fail for want of a buffer, so port by port gives
        // each port the same frames as frame by frame: one port's
        // queue, tag edit and checks at a time.
        for t in 0..copies {
            let (p, e) = o.scratch.targets[t];
            let Some(mut tx) = Sender::with_egress(o.ports, &mut o.scratch.touched, p, m, e, tpid)
            else {
                unreachable!("flood targets are members");
            };
            let os = o.ports[p.index()].as_mut().expect("a member port");
            for b in batch.iter() {
                let copy = o.pool.duplicate(b).expect("enough buffers checked");
                tx.send(os, o.pool, copy, now_ms);
            }
            o.c.copies += n as u32;
            tx.finish(o.ports, o.c, in_port);
        }
        let Some(mut tx) =
            Sender::with_egress(o.ports, &mut o.scratch.touched, last, m, last_e, tpid)
        else {
            unreachable!("flood targets are members");
        };
        let os = o.ports[last.index()].as_mut().expect("a member port");
        for b in batch.drain() {
            tx.send(os, o.pool, b, now_ms);
        }
        tx.finish(o.ports, o.c, in_port);
        return;
    }
    for mut b in batch.drain() {
        for t in 0..copies {
            let (p, e) = o.scratch.targets[t];
            let Some(mut copy) = o.pool.duplicate(&b) else {
                o.ports[in_port.index()]
                    .as_mut()
                    .expect("ingress port exists")
                    .counters
                    .drop(DropReason::PoolExhausted);
                continue;
            };
            o.c.copies += 1;
            match egress_edit(o.pool, &mut copy, m, e, tpid, o.c) {
                Ok(()) => enqueue(o.ports, o.pool, &mut o.scratch.touched, p, copy, now_ms),
                Err(r) => drop_at(o.ports, o.pool, copy, in_port, r),
            }
        }
        match egress_edit(o.pool, &mut b, m, last_e, tpid, o.c) {
            Ok(()) => enqueue(o.ports, o.pool, &mut o.scratch.touched, last, b, now_ms),
            Err(r) => drop_at(o.ports, o.pool, b, in_port, r),
        }
    }
}
