//! The L2 pipeline over one received batch:
//!
//! ```text
//! parse+classify -> learn -> lookup -> output (egress VLAN edit, flood copies) -> tx
//! ```
//!
//! Each stage is a loop over the batch with its own counters; per-packet
//! state lives in fixed arrays (`Scratch`), so the fast path never allocates,
//! locks or makes a syscall. A dropped packet is marked, skipped by later
//! stages, and freed (and counted by reason) in the output stage.

use crate::batch::{BATCH_MAX, Batch};
use crate::buf::{PacketPool, PktBuf};
use crate::capture::Direction;
use crate::counters::{DropReason, StageCounter, StageCounters};
use crate::fdb::{Learned, fdb_key};
use crate::mac::MacAddr;
use crate::port::PortId;
use crate::switch::{PortSlot, Switch};
use crate::trace::Tracer;
use crate::vlan::{Egress, Ingress, VlanMode};
use crate::wire::ethernet::EtherType;
use crate::wire::vlan::TAG_LEN;

/// What happens to a packet, decided stage by stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Continue,
    Drop(DropReason),
    Unicast(PortId),
    Flood(FloodKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FloodKind {
    Broadcast,
    Multicast,
    Unknown,
}

/// What parsing learned about a packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Destination and source MAC in the low 48 bits.
    dst: u64,
    src: u64,
    /// The VLAN the frame was classified into.
    vid: u16,
    /// TCI of the frame's domain tag (priority bits to preserve), 0 if none.
    tci: u16,
    /// The frame carries the domain's tag at offset 12.
    tagged: bool,
}

/// Per-batch working arrays, allocated once per switch.
pub(crate) struct Scratch {
    meta: [Meta; BATCH_MAX],
    action: [Action; BATCH_MAX],
    keys: [u64; BATCH_MAX],
    key_idx: [u8; BATCH_MAX],
    found: [Option<PortId>; BATCH_MAX],
    trace_ids: [u64; BATCH_MAX],
    /// Bit i set: packet i is traced.
    traced: u64,
    /// Ports whose tx queue holds frames.
    touched: Vec<PortId>,
    /// Flood targets of the current packet.
    targets: Vec<(PortId, Egress)>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            meta: [Meta::default(); BATCH_MAX],
            action: [Action::Continue; BATCH_MAX],
            keys: [0; BATCH_MAX],
            key_idx: [0; BATCH_MAX],
            found: [None; BATCH_MAX],
            trace_ids: [0; BATCH_MAX],
            traced: 0,
            touched: Vec::with_capacity(64),
            targets: Vec::with_capacity(64),
        }
    }
}

#[inline(always)]
fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

#[inline(always)]
fn is_vlan_tpid(t: u16) -> bool {
    t == EtherType::VLAN || t == EtherType::QINQ || t == EtherType::QINQ_LEGACY
}

const MULTICAST_BIT: u64 = 1 << 40;
const BROADCAST: u64 = 0xffff_ffff_ffff;
const LINK_LOCAL_MASK: u64 = 0xffff_ffff_fff0;
const LINK_LOCAL: u64 = 0x0180_c200_0000;

/// Parse the MAC header and the domain's tag, validate, classify into a VLAN.
#[inline(always)]
fn parse_classify(d: &[u8], tpid: u16, mode: &VlanMode) -> Result<Meta, DropReason> {
    if d.len() < 14 {
        return Err(DropReason::Runt);
    }
    let dst = u64::from_be_bytes(d[0..8].try_into().unwrap()) >> 16;
    let src = u64::from_be_bytes(d[4..12].try_into().unwrap()) & 0xffff_ffff_ffff;
    let mut m = Meta {
        dst,
        src,
        vid: 0,
        tci: 0,
        tagged: false,
    };
    let et = be16(d, 12);
    let mut tag_vid = None;
    if et == tpid && !mode.tags_are_payload() {
        if d.len() < 14 + TAG_LEN {
            return Err(DropReason::TruncatedTag);
        }
        let tci = be16(d, 14);
        if tci & 0xfff == 0xfff {
            return Err(DropReason::ReservedVid);
        }
        if is_vlan_tpid(be16(d, 16)) {
            // QinQ: the inner tag is payload to us, but it must be whole and
            // must not be followed by yet another tag.
            if d.len() < 14 + 2 * TAG_LEN {
                return Err(DropReason::TruncatedTag);
            }
            if is_vlan_tpid(be16(d, 20)) {
                return Err(DropReason::TooManyTags);
            }
        }
        m.tci = tci;
        m.tagged = true;
        tag_vid = Some(tci & 0xfff);
    }
    if src & MULTICAST_BIT != 0 || src == 0 {
        return Err(DropReason::InvalidSource);
    }
    if dst & LINK_LOCAL_MASK == LINK_LOCAL {
        return Err(DropReason::LinkLocal);
    }
    match mode.classify(tag_vid) {
        Ingress::Vid(v) => m.vid = v,
        Ingress::TaggedOnAccess => return Err(DropReason::TaggedOnAccess),
        Ingress::NotAllowed => return Err(DropReason::VlanNotAllowed),
        Ingress::UntaggedNoNative => return Err(DropReason::UntaggedNoNative),
    }
    Ok(m)
}

/// Make the frame's tagging match what the egress port wants.
#[inline(always)]
fn egress_edit(
    pool: &mut PacketPool,
    b: &mut PktBuf,
    m: &Meta,
    e: Egress,
    tpid: u16,
    stages: &mut StageCounters,
) -> Result<(), DropReason> {
    match (m.tagged, e) {
        (false, Egress::Untagged) => {}
        (true, Egress::Tagged) => {
            if m.tci & 0xfff != m.vid {
                // Priority-tagged (VID 0) frame leaving tagged: fill in the VID.
                let tci = (m.tci & 0xf000) | m.vid;
                pool.data_mut(b)[14..16].copy_from_slice(&tci.to_be_bytes());
            }
        }
        (true, Egress::Untagged) => {
            pool.data_mut(b).copy_within(0..12, TAG_LEN);
            pool.pull_front(b, TAG_LEN);
            stages.inc(StageCounter::EgressTagPop);
        }
        (false, Egress::Tagged) => {
            if b.headroom() < TAG_LEN {
                return Err(DropReason::NoHeadroom);
            }
            pool.push_front(b, TAG_LEN);
            let d = pool.data_mut(b);
            d.copy_within(TAG_LEN..TAG_LEN + 12, 0);
            d[12..14].copy_from_slice(&tpid.to_be_bytes());
            let tci = (m.tci & 0xf000) | m.vid;
            d[14..16].copy_from_slice(&tci.to_be_bytes());
            stages.inc(StageCounter::EgressTagPush);
        }
        (_, Egress::NotMember) => return Err(DropReason::NoEgressMember),
    }
    Ok(())
}

/// Queue a frame on a port's transmit batch, sending the batch if it fills.
#[inline(always)]
fn enqueue(
    ports: &mut [Option<PortSlot>],
    pool: &mut PacketPool,
    touched: &mut Vec<PortId>,
    out: PortId,
    b: PktBuf,
    now_ms: u64,
) {
    let os = ports[out.index()]
        .as_mut()
        .expect("caller checked the port");
    if b.len() > os.max_frame {
        os.counters.drop(DropReason::Oversize);
        pool.free(b);
        return;
    }
    if os.txq.is_empty() {
        touched.push(out);
    }
    if let Err(b) = os.txq.push(b) {
        flush_port(os, pool, now_ms);
        os.txq.push(b).expect("empty after flush");
    }
}

#[inline]
fn flush_port(os: &mut PortSlot, pool: &mut PacketPool, now_ms: u64) {
    if let Some(cap) = os.capture.as_mut() {
        for b in os.txq.iter() {
            cap.record(now_ms, Direction::Tx, pool.data(b));
        }
    }
    let done = os.port.tx_burst(pool, &mut os.txq);
    os.counters.tx_packets += done.packets as u64;
    os.counters.tx_bytes += done.bytes as u64;
    os.counters.drops[DropReason::TxFull as usize] += done.dropped as u64;
}

fn mac(v: u64) -> MacAddr {
    MacAddr::from_u64(v)
}

impl Switch {
    /// Run one batch received on `in_port` through the pipeline. Every packet
    /// leaves `batch`: transmitted, queued on a port, or dropped and counted.
    pub fn process(&mut self, in_port: PortId, batch: &mut Batch) {
        let n = batch.len();
        if n == 0 {
            return;
        }
        let Switch {
            pool,
            ports,
            domains,
            stages,
            tracer,
            scratch,
            now_s,
            now_ms,
            ..
        } = self;
        let now_s = *now_s;
        let now_ms = *now_ms;
        let Some(ps) = ports.get_mut(in_port.index()).and_then(Option::as_mut) else {
            batch.free_all(pool);
            return;
        };
        let mut bytes = 0u64;
        for b in batch.iter() {
            bytes += b.len() as u64;
        }
        ps.counters.rx_packets += n as u64;
        ps.counters.rx_bytes += bytes;
        if let Some(cap) = ps.capture.as_mut() {
            for b in batch.iter() {
                cap.record(now_ms, Direction::Rx, pool.data(b));
            }
        }
        if !ps.cfg.enabled {
            ps.counters.drops[DropReason::PortDisabled as usize] += n as u64;
            batch.free_all(pool);
            return;
        }
        let domain = domains[ps.cfg.domain.0 as usize]
            .as_mut()
            .expect("a port's domain exists");
        let tpid = domain.cfg.vlan_protocol.tpid();

        // Trace: pick the packets to follow (one branch when disarmed).
        scratch.traced = 0;
        if tracer.is_armed() {
            start_trace(tracer, scratch, pool, batch, in_port);
        }

        // Stage 1: parse and classify.
        let mode = &ps.cfg.vlan;
        for i in 0..n {
            let d = pool.data(batch.get(i));
            match parse_classify(d, tpid, mode) {
                Ok(m) => {
                    scratch.meta[i] = m;
                    scratch.action[i] = Action::Continue;
                    if m.tagged {
                        stages.inc(if m.tci & 0xfff == 0 {
                            StageCounter::ParsePriorityTagged
                        } else {
                            StageCounter::ParseTagged
                        });
                    }
                }
                Err(r) => scratch.action[i] = Action::Drop(r),
            }
            if scratch.traced & (1 << i) != 0 {
                let v = match scratch.action[i] {
                    Action::Drop(r) => format!("drop: {r}"),
                    _ => {
                        let m = &scratch.meta[i];
                        format!(
                            "dst {} src {} vlan {}{}",
                            mac(m.dst),
                            mac(m.src),
                            m.vid,
                            if m.tagged {
                                format!(" (tagged, pcp {})", m.tci >> 13)
                            } else {
                                " (untagged)".into()
                            }
                        )
                    }
                };
                tracer.step(scratch.trace_ids[i], "parse", v);
            }
        }

        // Stage 2: learn.
        if ps.cfg.learning {
            for i in 0..n {
                if scratch.action[i] != Action::Continue {
                    continue;
                }
                let m = &scratch.meta[i];
                let r = domain.fdb.learn(fdb_key(m.vid, m.src), in_port, now_s);
                stages.inc(match r {
                    Learned::Refreshed => StageCounter::LearnRefresh,
                    Learned::New => StageCounter::LearnNew,
                    Learned::Moved { .. } => StageCounter::LearnMove,
                    Learned::MoveDamped => StageCounter::LearnMoveDamped,
                    Learned::LimitPort => StageCounter::LearnLimitPort,
                    Learned::LimitDomain => StageCounter::LearnLimitDomain,
                    Learned::StaticConflict => StageCounter::LearnStaticConflict,
                });
                if scratch.traced & (1 << i) != 0 {
                    tracer.step(scratch.trace_ids[i], "learn", format!("{r:?}"));
                }
            }
        }

        // Stage 3: lookup (unicast destinations in one batched probe).
        let mut k = 0;
        for i in 0..n {
            if scratch.action[i] != Action::Continue {
                continue;
            }
            let m = &scratch.meta[i];
            if m.dst & MULTICAST_BIT != 0 {
                scratch.action[i] = Action::Flood(if m.dst == BROADCAST {
                    FloodKind::Broadcast
                } else {
                    FloodKind::Multicast
                });
            } else {
                scratch.keys[k] = fdb_key(m.vid, m.dst);
                scratch.key_idx[k] = i as u8;
                k += 1;
            }
        }
        domain
            .fdb
            .lookup_batch(&scratch.keys[..k], now_s, &mut scratch.found[..k]);
        for j in 0..k {
            let i = scratch.key_idx[j] as usize;
            scratch.action[i] = match scratch.found[j] {
                Some(p) if p == in_port => Action::Drop(DropReason::Filtered),
                Some(p) => Action::Unicast(p),
                None => Action::Flood(FloodKind::Unknown),
            };
        }
        for i in 0..n {
            match scratch.action[i] {
                Action::Unicast(_) => stages.inc(StageCounter::FwdKnownUnicast),
                Action::Flood(kind) => {
                    stages.inc(match kind {
                        FloodKind::Broadcast => StageCounter::FwdBroadcast,
                        FloodKind::Multicast => StageCounter::FwdMulticast,
                        FloodKind::Unknown => StageCounter::FwdUnknownUnicast,
                    });
                    if let Some(bucket) = ps.storm.as_mut() {
                        if !bucket.admit(now_ms) {
                            scratch.action[i] = Action::Drop(DropReason::StormControl);
                        }
                    }
                }
                _ => {}
            }
            if scratch.traced & (1 << i) != 0
                && !matches!(scratch.action[i], Action::Drop(_) if i >= n)
            {
                let v = match scratch.action[i] {
                    Action::Unicast(p) => format!("known unicast -> port {p}"),
                    Action::Flood(kind) => format!("flood ({kind:?})"),
                    Action::Drop(r) => format!("drop: {r}"),
                    Action::Continue => "continue".into(),
                };
                tracer.step(scratch.trace_ids[i], "forward", v);
            }
        }

        // Stage 4: output. The ingress slot is re-borrowed per packet because
        // flooding needs the whole port table.
        let members = &domain.members;
        scratch.touched.clear();
        for (i, mut b) in batch.drain().enumerate() {
            let traced = scratch.traced & (1 << i) != 0;
            let m = scratch.meta[i];
            let drop = |ports: &mut [Option<PortSlot>],
                        pool: &mut PacketPool,
                        b: PktBuf,
                        at: PortId,
                        r: DropReason| {
                if let Some(s) = ports[at.index()].as_mut() {
                    s.counters.drop(r);
                }
                pool.free(b);
            };
            match scratch.action[i] {
                Action::Continue => unreachable!("every packet has a verdict after lookup"),
                Action::Drop(r) => drop(ports, pool, b, in_port, r),
                Action::Unicast(out) => {
                    let egress = match ports.get(out.index()).and_then(Option::as_ref) {
                        Some(os) if os.cfg.enabled => os.cfg.vlan.egress(m.vid),
                        _ => Egress::NotMember,
                    };
                    match egress_edit(pool, &mut b, &m, egress, tpid, stages) {
                        Ok(()) => {
                            if traced {
                                tracer.step(
                                    scratch.trace_ids[i],
                                    "output",
                                    format!("port {out}: {egress:?}"),
                                );
                            }
                            enqueue(ports, pool, &mut scratch.touched, out, b, now_ms)
                        }
                        Err(r) => {
                            if traced {
                                tracer.step(
                                    scratch.trace_ids[i],
                                    "output",
                                    format!("port {out}: drop: {r}"),
                                );
                            }
                            drop(ports, pool, b, in_port, r)
                        }
                    }
                }
                Action::Flood(_) => {
                    scratch.targets.clear();
                    for &p in members {
                        if p == in_port {
                            continue;
                        }
                        let Some(os) = ports[p.index()].as_ref() else {
                            continue;
                        };
                        if !os.cfg.enabled {
                            continue;
                        }
                        let e = os.cfg.vlan.egress(m.vid);
                        if e != Egress::NotMember {
                            scratch.targets.push((p, e));
                        }
                    }
                    let Some(&(last, last_e)) = scratch.targets.last() else {
                        if traced {
                            tracer.step(
                                scratch.trace_ids[i],
                                "output",
                                "drop: flood set empty".into(),
                            );
                        }
                        drop(ports, pool, b, in_port, DropReason::FloodEmpty);
                        continue;
                    };
                    let copies = scratch.targets.len() - 1;
                    for t in 0..copies {
                        let (p, e) = scratch.targets[t];
                        let Some(mut c) = pool.duplicate(&b) else {
                            if let Some(s) = ports[in_port.index()].as_mut() {
                                s.counters.drop(DropReason::PoolExhausted);
                            }
                            continue;
                        };
                        stages.inc(StageCounter::FloodCopies);
                        match egress_edit(pool, &mut c, &m, e, tpid, stages) {
                            Ok(()) => enqueue(ports, pool, &mut scratch.touched, p, c, now_ms),
                            Err(r) => drop(ports, pool, c, p, r),
                        }
                    }
                    if traced {
                        let list: Vec<String> = scratch
                            .targets
                            .iter()
                            .map(|(p, e)| format!("{p}:{e:?}"))
                            .collect();
                        tracer.step(
                            scratch.trace_ids[i],
                            "output",
                            format!("flood to ports [{}]", list.join(", ")),
                        );
                    }
                    match egress_edit(pool, &mut b, &m, last_e, tpid, stages) {
                        Ok(()) => enqueue(ports, pool, &mut scratch.touched, last, b, now_ms),
                        Err(r) => drop(ports, pool, b, last, r),
                    }
                }
            }
        }

        // Transmit what the batch produced.
        for &p in scratch.touched.iter() {
            if let Some(os) = ports[p.index()].as_mut() {
                if !os.txq.is_empty() {
                    flush_port(os, pool, now_ms);
                }
            }
        }
    }
}

#[cold]
fn start_trace(
    tracer: &mut Tracer,
    scratch: &mut Scratch,
    pool: &PacketPool,
    batch: &Batch,
    in_port: PortId,
) {
    for (i, b) in batch.iter().enumerate() {
        if tracer.want(in_port) {
            scratch.traced |= 1 << i;
            scratch.trace_ids[i] = tracer.begin(in_port, pool.data(b));
        }
    }
}
