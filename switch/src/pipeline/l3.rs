//! The `l3` node's output: what the router produced (routed packets,
//! ARP/ND, ICMP from the gateway) through the L2 output of its egress
//! domain. The router itself (`crate::router`) runs between `egress` and the
//! final transmit; `egress` feeds it.

use super::classify::{MULTICAST_BIT, macs};
use super::egress::{FloodJob, Out, egress_edit, enqueue, flood, unicast_egress};
use super::{BatchCounts, drop_at, flush_touched};
use crate::buf::PacketPool;
use crate::config::DomainId;
use crate::core::{Domain, PortSlot, Switch};
use crate::counters::StageCounters;
use crate::fdb::fdb_key;
use crate::port::PortId;
use crate::scratch::{Meta, Scratch};
use crate::trace::Tracer;

/// The ingress "port" of frames the router sends: no port has this id, so
/// flooding excludes nothing and drops are charged to no port.
const ROUTER_PORT: PortId = PortId(u16::MAX);

/// Destinations remembered per [`output`] call.
const MEMO: usize = 8;

/// Send every frame in `scratch.l3_out` into its egress domain: FDB lookup
/// without learning, VLAN edit, queue; unknown and multicast destinations
/// flood the VLAN. The caller flushes `scratch.touched`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn output(
    ports: &mut [Option<PortSlot>],
    pool: &mut PacketPool,
    domains: &mut [Option<Domain>],
    scratch: &mut Scratch,
    tracer: &mut Tracer,
    stages: &mut StageCounters,
    now_s: u32,
    now_ms: u64,
) {
    let mut out = std::mem::take(&mut scratch.l3_out.frames);
    let mut c = BatchCounts::default();
    // The lookups of this call, by the destination's low bits: the router's
    // output goes to few stations (next hops, a service's backends), and
    // no FDB changes while it is sent (no learning here), so an answer
    // stays right for the whole call.
    let mut memo: [Option<(DomainId, u64, Option<PortId>)>; MEMO] = [None; MEMO];
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
        let (dst, src) = macs(data);
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
            let key = fdb_key(f.vid, dst);
            let slot = &mut memo[(dst as usize) % MEMO];
            match *slot {
                Some((dom, k, p)) if dom == f.domain && k == key => p,
                _ => {
                    let p = d.fdb.lookup(key, now_s);
                    *slot = Some((f.domain, key, p));
                    p
                }
            }
        };
        match known {
            Some(out) => {
                let mut b = f.buf;
                let egress = unicast_egress(ports, out, f.vid);
                match egress_edit(pool, &mut b, &m, egress, tpid, &mut c) {
                    Ok(()) => enqueue(ports, pool, &mut scratch.touched, out, b, now_ms),
                    // Counted on the port it was routed to (disabled, not
                    // forwarding, or no longer a member of the VLAN).
                    Err(r) => drop_at(ports, pool, b, out, r),
                }
            }
            None => flood(
                &mut Out {
                    ports,
                    pool,
                    scratch,
                    tracer,
                    c: &mut c,
                },
                &d.members,
                FloodJob {
                    in_port: ROUTER_PORT,
                    i: 0,
                    traced: false,
                    tpid,
                    now_ms,
                },
                f.buf,
                &m,
            ),
        }
    }
    scratch.l3_out.frames = out;
    c.add_to(stages);
}

/// Answer the frames for the domain's DNS listeners (the router's
/// `listen`); the caller sends `scratch.l3_out`.
#[cold]
pub(crate) fn listen(
    router: &mut crate::router::Router,
    pool: &mut PacketPool,
    domain: DomainId,
    scratch: &mut Scratch,
) {
    router.listen(pool, domain, &mut scratch.listen_in, &mut scratch.l3_out);
}

/// Router housekeeping (neighbor retransmits and timeouts) and the output
/// of what it produced. Called from `Switch::poll` every ~100 ms.
pub(crate) fn l3_tick(sw: &mut Switch) {
    let Switch {
        pool,
        scratch,
        router,
        now_ms,
        ..
    } = sw;
    router.tick(pool, *now_ms, &mut scratch.l3_out);
    l3_flush_out(sw);
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
        stages,
        now_s,
        now_ms,
        ..
    } = sw;
    if scratch.l3_out.is_empty() {
        return;
    }
    scratch.touched.clear();
    output(
        ports, pool, domains, scratch, tracer, stages, *now_s, *now_ms,
    );
    flush_touched(ports, pool, &scratch.touched, *now_ms);
}
