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
use crate::vlan::Egress;

/// The ingress "port" of frames the router sends: no port has this id, so
/// flooding excludes nothing and drops are charged to no port.
const ROUTER_PORT: PortId = PortId(u16::MAX);

/// Destinations an [`OutMemo`] remembers.
const MEMO: usize = 8;

/// Where the router's output to a unicast MAC goes, remembered for one
/// [`output`] call or one batch of the `vip` node: the port the FDB has it
/// behind and how a frame of its VLAN leaves that port (`None`: unknown,
/// so flooded). The router's output goes to few stations (next hops, a
/// service's backends), and while it is sent nothing learns and no port
/// changes, so an answer stays right that long. Slots by the MAC's low
/// bits.
pub(super) struct OutMemo {
    slots: [MemoSlot; MEMO],
}

/// (FDB key, domain, answer); an empty slot's key is `u64::MAX`, which no
/// FDB key is (a VID has 12 bits).
type MemoSlot = (u64, DomainId, Option<(PortId, Egress)>);

impl OutMemo {
    pub(super) fn new() -> Self {
        OutMemo {
            slots: [(u64::MAX, DomainId(0), None); MEMO],
        }
    }

    /// The answer for unicast MAC `dst` (as [`MacAddr::to_u64`]) in VLAN
    /// `vid` of domain `d` (`id`).
    ///
    /// [`MacAddr::to_u64`]: crate::MacAddr::to_u64
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn get(
        &mut self,
        ports: &[Option<PortSlot>],
        d: &Domain,
        id: DomainId,
        vid: u16,
        dst: u64,
        now_s: u32,
    ) -> Option<(PortId, Egress)> {
        let key = fdb_key(vid, dst);
        let slot = &mut self.slots[dst as usize % MEMO];
        if slot.0 != key || slot.1 != id {
            let v = d
                .fdb
                .lookup(key, now_s)
                .map(|p| (p, unicast_egress(ports, p, vid)));
            *slot = (key, id, v);
        }
        slot.2
    }
}

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
    let mut memo = OutMemo::new();
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
            memo.get(ports, d, f.domain, f.vid, dst, now_s)
        };
        match known {
            Some((out, egress)) => {
                let mut b = f.buf;
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
