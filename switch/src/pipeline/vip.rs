//! The `vip` node: packets of established IPv4 flows to a service VIP,
//! balanced in one loop before the router sees the batch.
//!
//! The general way such a packet goes is long: the router classifies and
//! checks it, finds the VIP's service, hands it to the load balancer
//! (`crate::lb`), which parses it again, finds the flow, rewrites it and
//! returns the backend, whose MAC the router resolves, and the L3 output
//! looks the MAC up in the FDB and queues it. For a packet of an
//! established flow whose every decision is cached in the flow (its live
//! backend, its checksum deltas, its backend's MAC under the neighbor
//! table's generation) all of that is known: this node checks what the
//! router checks, probes the flow once, rewrites, and queues the packet
//! on the port the backend's MAC is behind (looked up once per backend
//! and batch).
//!
//! The result is exactly the general path's (`switch/tests/vip_fast_path.rs`
//! and the `vip` fuzz target compare both, byte by byte and counter by
//! counter): the node takes the batch's packets in order up to the first it
//! cannot take, and leaves that one and all after it to the router, so no
//! flow's packets are reordered. It does not run for traced batches or dry
//! runs.

use super::classify::MULTICAST_BIT;
use super::egress::{egress_edit, enqueue, enqueue_front};
use super::l3::OutMemo;
use super::{BatchCounts, drop_at};
use crate::batch::{BATCH_MAX, Batch};
use crate::buf::PacketPool;
use crate::config::DomainId;
use crate::core::{Domain, PortSlot};
use crate::counters::StageCounters;
use crate::port::PortId;
use crate::router::LbFast;
use crate::router::Router;
use crate::scratch::{Meta, Scratch};
use crate::vlan::Egress;
use crate::wire::ethernet::EtherType;

/// Take the packets of established VIP flows at the head of
/// `scratch.l3_in` (received in `domain_id`); the router takes the rest.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn node(
    router: &mut Router,
    ports: &mut [Option<PortSlot>],
    pool: &mut PacketPool,
    domains: &[Option<Domain>],
    domain_id: DomainId,
    scratch: &mut Scratch,
    stages: &mut StageCounters,
    now_s: u32,
    now_ms: u64,
) {
    let Some(mut fc) = router.lb_fast(domain_id) else {
        return;
    };
    let Some(d) = domains.get(domain_id.0 as usize).and_then(Option::as_ref) else {
        return;
    };
    let tpid = d.cfg.vlan_protocol.tpid();
    let batch = &mut scratch.l3_in;
    let mut out = [(PortId(0), Egress::NotMember); BATCH_MAX];
    // One loop per family, chosen by the first packet: a packet of the
    // other family ends the run as any other the node leaves does.
    let v6 = pool
        .data(batch.get(0))
        .get(12..14)
        .is_some_and(|t| t == EtherType::IPV6.to_be_bytes());
    let take = if v6 { take::<true> } else { take::<false> };
    let k = take(
        router, &mut fc, ports, pool, d, domain_id, batch, &mut out, now_s, now_ms,
    );
    if k == 0 {
        return;
    }
    let vid = fc.vid;
    router.lb_forwarded(k);
    // The L3 output's edit and queueing (`l3::output`), frame by frame.
    let mut c = BatchCounts::default();
    // `egress_edit` reads the tag fields only.
    let m = Meta {
        dst: 0,
        src: 0,
        vid,
        tci: 0,
        tagged: false,
    };
    let mut i = 0;
    while i < k {
        // A run of frames to one port, leaving it alike: untagged in,
        // untagged out (`egress_edit` has nothing to do), it moves to the
        // port's transmit batch at once when it can.
        let (p, egress) = out[i];
        let j = i + out[i..k].iter().take_while(|&&o| o == (p, egress)).count();
        if egress != Egress::Untagged
            || !enqueue_front(ports, &mut scratch.touched, p, batch, j - i)
        {
            for mut b in batch.drain_front(j - i) {
                match egress_edit(pool, &mut b, &m, egress, tpid, &mut c) {
                    Ok(()) => enqueue(ports, pool, &mut scratch.touched, p, b, now_ms),
                    Err(r) => drop_at(ports, pool, b, p, r),
                }
            }
        }
        i = j;
    }
    c.add_to(stages);
}

/// The node's probe, rewrite and output decision for the packets of one
/// family (IPv6 when `V6`) at the head of `batch`: how many it took, their
/// output in `out`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn take<const V6: bool>(
    router: &mut Router,
    fc: &mut LbFast,
    ports: &[Option<PortSlot>],
    pool: &mut PacketPool,
    d: &Domain,
    domain_id: DomainId,
    batch: &Batch,
    out: &mut [(PortId, Egress); BATCH_MAX],
    now_s: u32,
    now_ms: u64,
) -> usize {
    // One FDB lookup per backend MAC and batch.
    let mut memo = OutMemo::new();
    let mut k = 0;
    let vid = fc.vid;
    while k < batch.len() {
        let b = batch.get(k);
        let partial = b.offload().needs_csum();
        let f = pool.data_mut(b);
        let Some(hit) = router.lb_established::<V6>(fc, f) else {
            break;
        };
        // What the L3 output would do with the backend's MAC: a known
        // unicast destination, or the general path (a flood, say).
        if hit.flow.mac & MULTICAST_BIT != 0 {
            break;
        }
        let Some(o) = memo.get(ports, d, domain_id, vid, hit.flow.mac, now_s) else {
            break;
        };
        out[k % BATCH_MAX] = o;
        router.lb_forward(fc, &hit, f, partial, now_ms);
        k += 1;
    }
    k
}
