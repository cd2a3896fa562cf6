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
use crate::core::{Domain, GwFast, PortSlot, Switch};
use crate::counters::{DropReason, StageCounter, StageCounters};
use crate::fdb::{Learned, fdb_key};
use crate::mac::MacAddr;
use crate::port::PortId;
use crate::scratch::{Action, FloodKind, Meta, Scratch};
use crate::trace::Tracer;
use crate::vlan::{Egress, Ingress, VlanMode};
use crate::wire::ethernet::EtherType;
use crate::wire::vlan::TAG_LEN;

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
    c: &mut BatchCounts,
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
            c.pop += 1;
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
            c.push += 1;
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
    // A GSO super-frame is the egress back end's to segment (TAP passes it
    // on or cuts it, AF_PACKET hands it to the kernel, AF_XDP cuts it).
    if b.len() > os.max_frame && !b.offload().is_gso() {
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
    ///
    /// Two passes over the batch. Pass 1 parses and classifies every frame,
    /// hashes its source and destination keys and prefetches their FDB
    /// buckets; pass 2 learns, looks up, edits and queues. By the time pass 2
    /// probes the table, the lines pass 1 asked for are (mostly) in cache.
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
            router,
            now_s,
            now_ms,
            ..
        } = self;
        let (now_s, now_ms) = (*now_s, *now_ms);
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
        let domain_id = ps.cfg.domain;
        let domain = domains[domain_id.0 as usize]
            .as_mut()
            .expect("a port's domain exists");
        let fdb = &mut domain.fdb;
        let tpid = domain.cfg.vlan_protocol.tpid();
        let learning = ps.cfg.learning && ps.stp_learn;
        let forwarding = ps.stp_fwd;
        let stp_on = domain.stp.is_some();
        let mut bpdus = false;
        // The gateway's MAC, or a value no parsed destination can equal.
        let gw = domain.gw.unwrap_or(GwFast {
            mac: u64::MAX,
            vid: 0,
        });

        scratch.traced = 0;
        if tracer.is_armed() {
            start_trace(tracer, scratch, pool, batch, in_port);
        }

        // Pass 1: parse, classify, hash, prefetch. (`i % BATCH_MAX` is free
        // and lets the compiler drop the bounds checks on the scratch arrays.)
        // Consecutive frames of one flow share their keys: hash those once.
        let mode = &ps.cfg.vlan;
        let security = ps.cfg.security.as_ref();
        let (mut src_key, mut src_hash, mut dst_key, mut dst_hash) = (0u64, 0u64, 0u64, 0u64);
        for i in 0..n {
            let i = i % BATCH_MAX;
            scratch.action[i] = match parse_classify(pool.data(batch.get(i)), tpid, mode) {
                Ok(m)
                    if let Some(sec) = security
                        && let Err(r) = sec.check(
                            m.src,
                            pool.data(batch.get(i)),
                            if m.tagged { 14 + TAG_LEN } else { 14 },
                        ) =>
                {
                    Action::Drop(r)
                }
                Ok(m) => {
                    scratch.meta[i] = m;
                    if learning {
                        let k = fdb_key(m.vid, m.src);
                        if k != src_key {
                            (src_key, src_hash) = (k, fdb.prefetch_key(k));
                        }
                        scratch.src_hash[i] = src_hash;
                    }
                    if m.dst & MULTICAST_BIT != 0 {
                        Action::Flood(if m.dst == BROADCAST {
                            FloodKind::Broadcast
                        } else {
                            FloodKind::Multicast
                        })
                    } else {
                        let k = fdb_key(m.vid, m.dst);
                        if k != dst_key {
                            (dst_key, dst_hash) = (k, fdb.prefetch_key(k));
                        }
                        scratch.dst_hash[i] = dst_hash;
                        Action::Continue
                    }
                }
                Err(DropReason::LinkLocal)
                    if stp_on && crate::stp::is_bpdu_frame(pool.data(batch.get(i))) =>
                {
                    Action::Bpdu
                }
                Err(r) => Action::Drop(r),
            };
            if scratch.traced & (1 << i) != 0 {
                trace_parse(tracer, scratch, i);
            }
        }

        // Pass 2: learn, look up, storm-control, edit, queue.
        let mut c = BatchCounts::default();
        let (mut learned_key, mut looked_key, mut looked_up) = (0u64, 0u64, None);
        scratch.touched.clear();
        for (i, mut b) in batch.drain().enumerate() {
            let i = i % BATCH_MAX;
            let traced = scratch.traced & (1 << i) != 0;
            let m = scratch.meta[i];
            let mut action = scratch.action[i];
            if action == Action::Bpdu {
                let stp = domain.stp.as_mut().expect("stp_on");
                if stp.rx_bpdu(in_port, pool.data(&b), now_ms).is_err() {
                    drop_at(ports, pool, b, in_port, DropReason::StpBadBpdu);
                } else {
                    pool.free(b);
                }
                bpdus = true;
                continue;
            }
            if !matches!(action, Action::Drop(_)) {
                if m.tagged {
                    c.tagged += 1;
                    c.priority_tagged += (m.tci & 0xfff == 0) as u32;
                }
                if learning {
                    // Every frame of a batch comes from one port, so a source
                    // already learned or refreshed in this batch is a refresh.
                    let key = fdb_key(m.vid, m.src);
                    let r = if key == learned_key {
                        Learned::Refreshed
                    } else {
                        let r = fdb.learn_hashed(key, scratch.src_hash[i], in_port, now_s);
                        learned_key = match r {
                            Learned::Refreshed | Learned::New | Learned::Moved { .. } => key,
                            _ => 0,
                        };
                        r
                    };
                    if r == Learned::Refreshed {
                        c.refreshed += 1;
                    } else {
                        stages.inc(learn_counter(r));
                    }
                    if traced {
                        tracer.step(scratch.trace_ids[i], "learn", format!("{r:?}"));
                    }
                }
                if !forwarding {
                    action = Action::Drop(DropReason::StpDiscarding);
                }
                if action == Action::Continue && m.dst == gw.mac {
                    action = if m.vid == gw.vid {
                        Action::Route
                    } else {
                        Action::Drop(DropReason::L3NotForGateway)
                    };
                }
                if action == Action::Continue {
                    // The previous frame's answer holds for the same
                    // destination: only this frame's own source could have
                    // changed it, and a frame to itself is not cached.
                    let key = fdb_key(m.vid, m.dst);
                    let own = key == fdb_key(m.vid, m.src);
                    if key != looked_key || own {
                        looked_up = fdb.lookup_hashed(key, scratch.dst_hash[i], now_s);
                        looked_key = if own { 0 } else { key };
                    }
                    action = match looked_up {
                        Some(p) if p == in_port => Action::Drop(DropReason::Filtered),
                        Some(p) => Action::Unicast(p),
                        None => Action::Flood(FloodKind::Unknown),
                    };
                }
                if let Action::Flood(kind) = action {
                    if gw.mac != u64::MAX
                        && kind != FloodKind::Unknown
                        && m.vid == gw.vid
                        && router.wants(domain_id, pool.data(&b))
                    {
                        copy_to_router(pool, &mut scratch.l3_in, &b, &m, tpid, &mut c);
                    }
                    stages.inc(match kind {
                        FloodKind::Broadcast => StageCounter::FwdBroadcast,
                        FloodKind::Multicast => StageCounter::FwdMulticast,
                        FloodKind::Unknown => StageCounter::FwdUnknownUnicast,
                    });
                    let ps = ports[in_port.index()]
                        .as_mut()
                        .expect("ingress port exists");
                    if let Some(bucket) = ps.storm.as_mut()
                        && !bucket.admit(now_ms)
                    {
                        action = Action::Drop(DropReason::StormControl);
                    }
                }
                if traced {
                    trace_forward(tracer, scratch.trace_ids[i], action);
                }
            }
            match action {
                Action::Continue | Action::Bpdu => {
                    unreachable!("every packet has a verdict after lookup; BPDUs are taken above")
                }
                Action::Drop(r) => drop_at(ports, pool, b, in_port, r),
                Action::Route => {
                    match egress_edit(pool, &mut b, &m, Egress::Untagged, tpid, &mut c) {
                        Ok(()) => {
                            if let Err(b) = scratch.l3_in.push(b) {
                                drop_at(ports, pool, b, in_port, DropReason::PoolExhausted);
                            }
                        }
                        Err(r) => drop_at(ports, pool, b, in_port, r),
                    }
                }
                Action::Unicast(out) => {
                    c.known_unicast += 1;
                    let egress = match ports.get(out.index()).and_then(Option::as_ref) {
                        Some(os) if os.cfg.enabled && os.stp_fwd => os.cfg.vlan.egress(m.vid),
                        _ => Egress::NotMember,
                    };
                    let r = egress_edit(pool, &mut b, &m, egress, tpid, &mut c);
                    if traced {
                        let v = match r {
                            Ok(()) => format!("port {out}: {egress:?}"),
                            Err(r) => format!("port {out}: drop: {r}"),
                        };
                        tracer.step(scratch.trace_ids[i], "output", v);
                    }
                    match r {
                        Ok(()) => enqueue(ports, pool, &mut scratch.touched, out, b, now_ms),
                        Err(r) => drop_at(ports, pool, b, in_port, r),
                    }
                }
                Action::Flood(_) => flood(
                    ports,
                    pool,
                    &domain.members,
                    scratch,
                    tracer,
                    FloodJob {
                        in_port,
                        i,
                        traced,
                        tpid,
                        now_ms,
                    },
                    b,
                    &m,
                    &mut c,
                ),
            }
        }
        c.add_to(stages);
        if bpdus {
            stp_service(ports, pool, domain, now_ms);
        }

        // The L3 stage: route what went to the gateway, then send what the
        // router produced through the L2 output of its egress domain.
        if !scratch.l3_in.is_empty() {
            router.process(
                pool,
                domain_id,
                &mut scratch.l3_in,
                now_ms,
                &mut scratch.l3_out,
            );
            l3_output(ports, pool, domains, scratch, tracer, now_s, now_ms);
        }

        // Transmit what the batch produced.
        for &p in scratch.touched.iter() {
            if let Some(os) = ports[p.index()].as_mut()
                && !os.txq.is_empty()
            {
                flush_port(os, pool, now_ms);
            }
        }
    }
}

/// Per-batch tallies of the per-packet counters, added to the stage
/// counters once per batch.
#[derive(Default)]
pub(crate) struct BatchCounts {
    tagged: u32,
    priority_tagged: u32,
    refreshed: u32,
    known_unicast: u32,
    copies: u32,
    push: u32,
    pop: u32,
}

impl BatchCounts {
    fn add_to(&self, s: &mut StageCounters) {
        s.add(
            StageCounter::ParseTagged,
            (self.tagged - self.priority_tagged) as u64,
        );
        s.add(
            StageCounter::ParsePriorityTagged,
            self.priority_tagged as u64,
        );
        s.add(StageCounter::LearnRefresh, self.refreshed as u64);
        s.add(StageCounter::FwdKnownUnicast, self.known_unicast as u64);
        s.add(StageCounter::FloodCopies, self.copies as u64);
        s.add(StageCounter::EgressTagPush, self.push as u64);
        s.add(StageCounter::EgressTagPop, self.pop as u64);
    }
}

fn learn_counter(r: Learned) -> StageCounter {
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

#[inline]
fn drop_at(
    ports: &mut [Option<PortSlot>],
    pool: &mut PacketPool,
    b: PktBuf,
    at: PortId,
    r: DropReason,
) {
    // `at` is `ROUTER_PORT` for frames the router sent: nobody to charge.
    if let Some(s) = ports.get_mut(at.index()).and_then(Option::as_mut) {
        s.counters.drop(r);
    }
    pool.free(b);
}

/// What `flood` needs to know about the packet besides the packet.
struct FloodJob {
    in_port: PortId,
    i: usize,
    traced: bool,
    tpid: u16,
    now_ms: u64,
}

/// Copy a frame to every other member port of its VLAN, editing the tag per
/// port; the original goes to the last one.
#[allow(clippy::too_many_arguments)]
fn flood(
    ports: &mut [Option<PortSlot>],
    pool: &mut PacketPool,
    members: &[PortId],
    scratch: &mut Scratch,
    tracer: &mut Tracer,
    job: FloodJob,
    mut b: PktBuf,
    m: &Meta,
    c: &mut BatchCounts,
) {
    scratch.targets.clear();
    for &p in members {
        if p == job.in_port {
            continue;
        }
        let Some(os) = ports[p.index()].as_ref() else {
            continue;
        };
        if !os.cfg.enabled || !os.stp_fwd {
            continue;
        }
        let e = os.cfg.vlan.egress(m.vid);
        if e != Egress::NotMember {
            scratch.targets.push((p, e));
        }
    }
    if job.traced {
        let list: Vec<String> = scratch
            .targets
            .iter()
            .map(|(p, e)| format!("{p}:{e:?}"))
            .collect();
        let v = if list.is_empty() {
            "drop: flood set empty".into()
        } else {
            format!("flood to ports [{}]", list.join(", "))
        };
        tracer.step(scratch.trace_ids[job.i], "output", v);
    }
    let Some(&(last, last_e)) = scratch.targets.last() else {
        drop_at(ports, pool, b, job.in_port, DropReason::FloodEmpty);
        return;
    };
    for t in 0..scratch.targets.len() - 1 {
        let (p, e) = scratch.targets[t];
        let Some(mut copy) = pool.duplicate(&b) else {
            if let Some(s) = ports.get_mut(job.in_port.index()).and_then(Option::as_mut) {
                s.counters.drop(DropReason::PoolExhausted);
            }
            continue;
        };
        c.copies += 1;
        match egress_edit(pool, &mut copy, m, e, job.tpid, c) {
            Ok(()) => enqueue(ports, pool, &mut scratch.touched, p, copy, job.now_ms),
            Err(r) => drop_at(ports, pool, copy, job.in_port, r),
        }
    }
    match egress_edit(pool, &mut b, m, last_e, job.tpid, c) {
        Ok(()) => enqueue(ports, pool, &mut scratch.touched, last, b, job.now_ms),
        Err(r) => drop_at(ports, pool, b, job.in_port, r),
    }
}

#[cold]
fn trace_parse(tracer: &mut Tracer, scratch: &Scratch, i: usize) {
    let v = match scratch.action[i] {
        Action::Drop(r) => format!("drop: {r}"),
        _ => {
            let m = &scratch.meta[i];
            let tag = if m.tagged {
                format!(" (tagged, pcp {})", m.tci >> 13)
            } else {
                " (untagged)".into()
            };
            format!(
                "dst {} src {} vlan {}{}",
                mac(m.dst),
                mac(m.src),
                m.vid,
                tag
            )
        }
    };
    tracer.step(scratch.trace_ids[i], "parse", v);
}

#[cold]
fn trace_forward(tracer: &mut Tracer, id: u64, action: Action) {
    let v = match action {
        Action::Unicast(p) => format!("known unicast -> port {p}"),
        Action::Flood(kind) => format!("flood ({kind:?})"),
        Action::Drop(r) => format!("drop: {r}"),
        Action::Route => "to the gateway: L3".into(),
        Action::Bpdu => "BPDU to the spanning tree".into(),
        Action::Continue => "continue".into(),
    };
    tracer.step(id, "forward", v);
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

/// The ingress "port" of frames the router sends: no port has this id, so
/// flooding excludes nothing and drops are charged to no port.
const ROUTER_PORT: PortId = PortId(u16::MAX);

/// Give the router an untagged copy of a flooded frame it wants (ARP
/// broadcast, IPv6 multicast for neighbor discovery).
#[cold]
fn copy_to_router(
    pool: &mut PacketPool,
    l3_in: &mut Batch,
    b: &PktBuf,
    m: &Meta,
    tpid: u16,
    c: &mut BatchCounts,
) {
    let Some(mut copy) = pool.duplicate(b) else {
        return;
    };
    match egress_edit(pool, &mut copy, m, Egress::Untagged, tpid, c) {
        Ok(()) => {
            if let Err(copy) = l3_in.push(copy) {
                pool.free(copy);
            }
        }
        Err(_) => pool.free(copy),
    }
}

/// Send every frame in `scratch.l3_out` (routed packets, ARP/ND, ICMP from
/// the gateway) into its egress domain: FDB lookup without learning, VLAN
/// edit, queue; unknown and multicast destinations flood the VLAN. The
/// caller flushes `scratch.touched`.
pub(crate) fn l3_output(
    ports: &mut [Option<PortSlot>],
    pool: &mut PacketPool,
    domains: &mut [Option<Domain>],
    scratch: &mut Scratch,
    tracer: &mut Tracer,
    now_s: u32,
    now_ms: u64,
) {
    let mut out = std::mem::take(&mut scratch.l3_out.frames);
    let mut c = BatchCounts::default();
    for f in out.drain(..) {
        let Some(d) = domains
            .get_mut(f.domain.0 as usize)
            .and_then(Option::as_mut)
        else {
            pool.free(f.buf);
            continue;
        };
        let data = pool.data(&f.buf);
        if data.len() < 14 {
            pool.free(f.buf);
            continue;
        }
        let dst = u64::from_be_bytes(data[0..8].try_into().unwrap()) >> 16;
        let src = u64::from_be_bytes(data[4..12].try_into().unwrap()) & 0xffff_ffff_ffff;
        let m = Meta {
            dst,
            src,
            vid: f.vid,
            tci: 0,
            tagged: false,
        };
        let tpid = d.cfg.vlan_protocol.tpid();
        let known = if dst & MULTICAST_BIT != 0 {
            None
        } else {
            d.fdb.lookup(fdb_key(f.vid, dst), now_s)
        };
        match known {
            Some(out) => {
                let mut b = f.buf;
                let egress = match ports.get(out.index()).and_then(Option::as_ref) {
                    Some(os) if os.cfg.enabled && os.stp_fwd => os.cfg.vlan.egress(f.vid),
                    _ => Egress::NotMember,
                };
                match egress_edit(pool, &mut b, &m, egress, tpid, &mut c) {
                    Ok(()) => enqueue(ports, pool, &mut scratch.touched, out, b, now_ms),
                    // Counted on the port it was routed to (disabled, not
                    // forwarding, or no longer a member of the VLAN).
                    Err(r) => drop_at(ports, pool, b, out, r),
                }
            }
            None => flood(
                ports,
                pool,
                &d.members,
                scratch,
                tracer,
                FloodJob {
                    in_port: ROUTER_PORT,
                    i: 0,
                    traced: false,
                    tpid,
                    now_ms,
                },
                f.buf,
                &m,
                &mut c,
            ),
        }
    }
    scratch.l3_out.frames = out;
}

/// Router housekeeping (neighbor retransmits and timeouts) and the output
/// of what it produced. Called from `Switch::poll` every ~100 ms.
pub(crate) fn l3_tick(sw: &mut Switch) {
    let Switch {
        pool,
        ports,
        domains,
        scratch,
        router,
        tracer,
        now_s,
        now_ms,
        ..
    } = sw;
    router.tick(pool, *now_ms, &mut scratch.l3_out);
    if scratch.l3_out.is_empty() {
        return;
    }
    scratch.touched.clear();
    l3_output(ports, pool, domains, scratch, tracer, *now_s, *now_ms);
    flush_touched(ports, pool, &scratch.touched, *now_ms);
}

fn flush_touched(
    ports: &mut [Option<PortSlot>],
    pool: &mut PacketPool,
    touched: &[PortId],
    now_ms: u64,
) {
    for &p in touched {
        if let Some(os) = ports[p.index()].as_mut()
            && !os.txq.is_empty()
        {
            flush_port(os, pool, now_ms);
        }
    }
}

/// Send the router's pending output now (after a control change such as a
/// static neighbor that released held packets).
pub(crate) fn l3_flush_out(sw: &mut Switch) {
    let Switch {
        pool,
        ports,
        domains,
        scratch,
        tracer,
        now_s,
        now_ms,
        ..
    } = sw;
    if scratch.l3_out.is_empty() {
        return;
    }
    scratch.touched.clear();
    l3_output(ports, pool, domains, scratch, tracer, *now_s, *now_ms);
    flush_touched(ports, pool, &scratch.touched, *now_ms);
}

/// Send the BPDUs a domain's RSTP wants sent, apply its FDB flushes, and
/// copy its port states into the port slots the fast path reads.
pub(crate) fn stp_service(
    ports: &mut [Option<PortSlot>],
    pool: &mut PacketPool,
    d: &mut Domain,
    now_ms: u64,
) {
    let Some(stp) = d.stp.as_mut() else {
        return;
    };
    let mut tx = std::mem::take(&mut d.stp_tx);
    stp.drain_tx(&mut tx);
    for (p, f) in tx.drain(..) {
        let Some(ps) = ports.get_mut(p.index()).and_then(Option::as_mut) else {
            continue;
        };
        if !ps.cfg.enabled || ps.gone {
            continue;
        }
        let Some(b) = pool.alloc_from(&f) else {
            ps.counters.drop(DropReason::PoolExhausted);
            continue;
        };
        if let Err(b) = ps.txq.push(b) {
            flush_port(ps, pool, now_ms);
            ps.txq.push(b).expect("empty after flush");
        }
        flush_port(ps, pool, now_ms);
    }
    d.stp_tx = tx;
    let mut flush = std::mem::take(&mut d.stp_flush);
    stp.drain_flush(&mut flush);
    for r in flush.drain(..) {
        d.fdb.flush(crate::fdb::FlushFilter {
            port: Some(r.port),
            vid: None,
            include_static: false,
        });
    }
    d.stp_flush = flush;
    for &p in &d.members {
        if let Some(ps) = ports.get_mut(p.index()).and_then(Option::as_mut) {
            ps.stp_learn = stp.learning(p);
            ps.stp_fwd = stp.forwarding(p);
        }
    }
}
