//! The `egress` node: each frame's VLAN edit for its egress port, flood
//! copies, queueing on the egress ports' transmit batches (sent when full,
//! and by the pipeline at the end of the batch), frames to the gateway into
//! the L3 node's input, and every drop counted and freed.

use super::{BatchCounts, Ctx, drop_at};
use crate::batch::{BATCH_MAX, Batch};
use crate::buf::{PacketPool, PktBuf};
use crate::core::PortSlot;
use crate::counters::DropReason;
use crate::port::PortId;
use crate::scratch::{Action, Meta, Scratch};
use crate::trace::Tracer;
use crate::vlan::Egress;
use crate::wire::vlan::TAG_LEN;

/// Move the 12 address bytes at `from` to `to` (a tag push or pop): through
/// a 12-byte local, inlined, where `copy_within` of a run-time range is a
/// call to libc's `memmove`.
#[inline(always)]
pub(crate) fn move_macs(d: &mut [u8], from: usize, to: usize) {
    let macs: [u8; 12] = d[from..from + 12].try_into().unwrap();
    d[to..to + 12].copy_from_slice(&macs);
}

/// Make the frame's tagging match what the egress port wants.
#[inline(always)]
pub(crate) fn egress_edit(
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
            move_macs(pool.data_mut(b), 0, TAG_LEN);
            pool.pull_front(b, TAG_LEN);
            c.pop += 1;
        }
        (false, Egress::Tagged) => {
            if b.headroom() < TAG_LEN {
                return Err(DropReason::NoHeadroom);
            }
            pool.push_front(b, TAG_LEN);
            let d = pool.data_mut(b);
            move_macs(d, TAG_LEN, 0);
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
pub(crate) fn enqueue(
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
        os.flush(pool, now_ms);
        os.txq.push(b).expect("empty after flush");
    }
}

/// [`enqueue`] of the first `n` frames of `batch`, all to port `out`,
/// when one move does it: the frames all fit the port's frame size and
/// its transmit batch has room for them. Otherwise nothing moves (false).
#[inline(always)]
pub(crate) fn enqueue_front(
    ports: &mut [Option<PortSlot>],
    touched: &mut Vec<PortId>,
    out: PortId,
    batch: &mut Batch,
    n: usize,
) -> bool {
    let os = ports[out.index()]
        .as_mut()
        .expect("caller checked the port");
    let Some(front) = batch.iter().as_slice().get(..n) else {
        return false;
    };
    let fit = front
        .iter()
        .fold(true, |ok, b| ok & (b.len() <= os.max_frame));
    let was_empty = os.txq.is_empty();
    if !fit || !batch.move_front(n, &mut os.txq) {
        return false;
    }
    if was_empty {
        touched.push(out);
    }
    true
}

/// How a known-unicast frame of VLAN `vid` leaves port `out`.
#[inline(always)]
pub(crate) fn unicast_egress(ports: &[Option<PortSlot>], out: PortId, vid: u16) -> Egress {
    match ports.get(out.index()).and_then(Option::as_ref) {
        Some(os) if os.cfg.enabled && os.stp_fwd => os.cfg.vlan.egress(vid),
        _ => Egress::NotMember,
    }
}

/// Run the node: every frame leaves `batch`.
#[inline(never)]
pub(super) fn node(cx: &mut Ctx, batch: &mut Batch) {
    let in_port = cx.in_port;
    let (tpid, now_ms, gw_vid) = (cx.tpid, cx.now_ms, cx.gw.vid);
    let Ctx {
        pool,
        ports,
        scratch,
        tracer,
        domain,
        c,
        ..
    } = cx;
    let (pool, ports, scratch, tracer) = (&mut **pool, &mut **ports, &mut **scratch, &mut **tracer);
    for (i, mut b) in batch.drain().enumerate() {
        let i = i % BATCH_MAX;
        let traced = scratch.traced & (1 << i) != 0;
        let m = scratch.meta[i];
        if scratch.to_router & (1 << i) != 0 {
            copy_to_router(pool, scratch, &b, &m, gw_vid, tpid, c);
        }
        match scratch.action[i] {
            Action::Continue => {
                unreachable!("every packet has a verdict after forward")
            }
            Action::Bpdu => pool.free(b),
            Action::Drop(r) => drop_at(ports, pool, b, in_port, r),
            Action::Route => match egress_edit(pool, &mut b, &m, Egress::Untagged, tpid, c) {
                Ok(()) => {
                    if let Err(b) = scratch.l3_in.push(b) {
                        drop_at(ports, pool, b, in_port, DropReason::PoolExhausted);
                    }
                }
                Err(r) => drop_at(ports, pool, b, in_port, r),
            },
            Action::Listen => match egress_edit(pool, &mut b, &m, Egress::Untagged, tpid, c) {
                Ok(()) => {
                    if let Err(b) = to_listener(scratch, b, m.vid) {
                        drop_at(ports, pool, b, in_port, DropReason::PoolExhausted);
                    }
                }
                Err(r) => drop_at(ports, pool, b, in_port, r),
            },
            Action::Unicast(out) => {
                let egress = unicast_egress(ports, out, m.vid);
                let r = egress_edit(pool, &mut b, &m, egress, tpid, c);
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
                &mut Out {
                    ports,
                    pool,
                    scratch,
                    tracer,
                    c,
                },
                &domain.members,
                FloodJob {
                    in_port,
                    i,
                    traced,
                    tpid,
                    now_ms,
                },
                b,
                &m,
            ),
        }
    }
}

/// Hand an untagged copy of a flooded frame to the L3 stage: the routed
/// batch when it came in the gateway's VLAN, else the DNS listeners'.
#[inline(always)]
fn to_l3(scratch: &mut Scratch, b: PktBuf, vid: u16, gw_vid: u16) -> Result<(), PktBuf> {
    if vid == gw_vid {
        scratch.l3_in.push(b)
    } else {
        to_listener(scratch, b, vid)
    }
}

#[cold]
fn to_listener(scratch: &mut Scratch, b: PktBuf, vid: u16) -> Result<(), PktBuf> {
    if scratch.listen_in.len() >= BATCH_MAX {
        return Err(b);
    }
    scratch.listen_in.push((vid, b));
    Ok(())
}

/// Give the router an untagged copy of a flooded frame it wants (ARP
/// broadcast, IPv6 multicast for neighbor discovery).
#[cold]
fn copy_to_router(
    pool: &mut PacketPool,
    scratch: &mut Scratch,
    b: &PktBuf,
    m: &Meta,
    gw_vid: u16,
    tpid: u16,
    c: &mut BatchCounts,
) {
    let Some(mut copy) = pool.duplicate(b) else {
        return;
    };
    match egress_edit(pool, &mut copy, m, Egress::Untagged, tpid, c) {
        Ok(()) => {
            if let Err(copy) = to_l3(scratch, copy, m.vid, gw_vid) {
                pool.free(copy);
            }
        }
        Err(_) => pool.free(copy),
    }
}

/// What `flood` writes to (the `egress` node's and the L3 output's state).
pub(crate) struct Out<'a> {
    pub(crate) ports: &'a mut [Option<PortSlot>],
    pub(crate) pool: &'a mut PacketPool,
    pub(crate) scratch: &'a mut Scratch,
    pub(crate) tracer: &'a mut Tracer,
    pub(crate) c: &'a mut BatchCounts,
}

/// What `flood` needs to know about the packet besides the packet.
pub(crate) struct FloodJob {
    pub(crate) in_port: PortId,
    pub(crate) i: usize,
    pub(crate) traced: bool,
    pub(crate) tpid: u16,
    pub(crate) now_ms: u64,
}

/// Put in `scratch.targets` every member port but `in_port` that
/// forwards VLAN `vid`, with its egress tagging.
#[inline]
pub(crate) fn flood_targets(
    ports: &[Option<PortSlot>],
    scratch: &mut Scratch,
    members: &[PortId],
    in_port: PortId,
    vid: u16,
) {
    scratch.targets.clear();
    for &p in members {
        if p == in_port {
            continue;
        }
        let Some(os) = ports[p.index()].as_ref() else {
            continue;
        };
        if !os.cfg.enabled || !os.stp_fwd {
            continue;
        }
        let e = os.cfg.vlan.egress(vid);
        if e != Egress::NotMember {
            scratch.targets.push((p, e));
        }
    }
}

/// Copy a frame to every other member port of its VLAN, editing the tag per
/// port; the original goes to the last one.
pub(crate) fn flood(o: &mut Out, members: &[PortId], job: FloodJob, mut b: PktBuf, m: &Meta) {
    let Out {
        ports,
        pool,
        scratch,
        tracer,
        c,
    } = o;
    flood_targets(ports, scratch, members, job.in_port, m.vid);
    if job.traced {
        trace_flood(tracer, scratch, job.i);
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
fn trace_flood(tracer: &mut Tracer, scratch: &Scratch, i: usize) {
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
    tracer.step(scratch.trace_ids[i], "output", v);
}
