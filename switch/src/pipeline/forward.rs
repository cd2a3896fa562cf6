//! The `lookup` and `forward` nodes.
//!
//! `lookup` probes the FDB for each unicast destination, on the table as
//! the batch found it (the `learn` node that follows corrects what its own
//! learning changes). `forward` turns each frame's lookup into a verdict:
//! known unicast, flood (broadcast, multicast, unknown unicast), to the
//! gateway, filtered, or STP discarding; it applies storm control to floods
//! and marks flooded frames the router must also see.

use super::Ctx;
use crate::batch::{BATCH_MAX, Batch};
use crate::counters::{DropReason, StageCounter};
use crate::fdb::fdb_key;
use crate::scratch::{Action, FloodKind};
use crate::trace::Tracer;

/// Probe the FDB for every frame still `Continue` (a unicast destination
/// that is not the gateway). Consecutive frames to one destination share
/// one probe.
#[inline(never)]
pub(super) fn lookup_node(cx: &mut Ctx, n: usize) {
    let s = &mut *cx.scratch;
    let fdb = &cx.domain.fdb;
    let (mut looked_key, mut looked_up) = (0u64, None);
    let mut filter = 0u64;
    for i in 0..n {
        let i = i % BATCH_MAX;
        if s.action[i] != Action::Continue || s.meta[i].dst == cx.gw.mac {
            continue;
        }
        let m = &s.meta[i];
        let key = fdb_key(m.vid, m.dst);
        if key != looked_key {
            looked_up = fdb.lookup_hashed(key, s.dst_hash[i], cx.now_s);
            looked_key = key;
        }
        s.found[i] = looked_up;
        filter |= super::learn::filter_bit(s.dst_hash[i]);
    }
    s.dst_filter = filter;
    if s.dry {
        super::dry::lookup(cx, n);
    }
}

/// Decide each frame's verdict.
#[inline(never)]
pub(super) fn node(cx: &mut Ctx, batch: &Batch) {
    let in_port = cx.in_port;
    let forwarding = cx.ports[in_port.index()]
        .as_ref()
        .expect("ingress port exists")
        .stp_fwd;
    let gw = cx.gw;
    let s = &mut *cx.scratch;
    s.to_router = 0;
    for i in 0..batch.len() {
        let i = i % BATCH_MAX;
        let mut action = s.action[i];
        if matches!(action, Action::Drop(_) | Action::Bpdu) {
            continue;
        }
        let m = s.meta[i];
        if !forwarding {
            action = Action::Drop(DropReason::StpDiscarding);
        }
        if action == Action::Continue && m.dst == gw.mac {
            action = if m.vid == gw.vid {
                Action::Route
            } else if gw.listens && listens(cx.router, cx.domain_id, m.vid) {
                Action::Listen
            } else {
                Action::Drop(DropReason::L3NotForGateway)
            };
        }
        if action == Action::Continue {
            action = match s.found[i] {
                Some(p) if p == in_port => Action::Drop(DropReason::Filtered),
                Some(p) => {
                    cx.c.known_unicast += 1;
                    Action::Unicast(p)
                }
                None => Action::Flood(FloodKind::Unknown),
            };
        }
        if let Action::Flood(kind) = action {
            if gw.mac != u64::MAX && kind != FloodKind::Unknown {
                let f = cx.pool.data(batch.get(i));
                let wants = if m.vid == gw.vid {
                    cx.router.wants(cx.domain_id, f, m.tagged)
                } else {
                    gw.listens && cx.router.wants_listen(cx.domain_id, m.vid, f, m.tagged)
                };
                if wants {
                    s.to_router |= 1 << i;
                }
            }
            cx.stages.inc(match kind {
                FloodKind::Broadcast => StageCounter::FwdBroadcast,
                FloodKind::Multicast => StageCounter::FwdMulticast,
                FloodKind::Unknown => StageCounter::FwdUnknownUnicast,
            });
            let ps = cx.ports[in_port.index()]
                .as_mut()
                .expect("ingress port exists");
            if let Some(bucket) = ps.storm.as_mut()
                && !bucket.admit(cx.now_ms)
            {
                action = Action::Drop(DropReason::StormControl);
            }
        }
        s.action[i] = action;
        if s.traced & (1 << i) != 0 {
            trace(cx.tracer, s.trace_ids[i], action);
        }
    }
}

/// Whether the domain has a DNS listener in `vid` (frames to the gateway
/// MAC outside its VLAN: the slow path).
#[cold]
fn listens(router: &crate::router::Router, d: crate::config::DomainId, vid: u16) -> bool {
    router.dns_listener(d, vid).is_some()
}

#[cold]
fn trace(tracer: &mut Tracer, id: u64, action: Action) {
    let v = match action {
        Action::Unicast(p) => format!("known unicast -> port {p}"),
        Action::Flood(kind) => format!("flood ({kind:?})"),
        Action::Drop(r) => format!("drop: {r}"),
        Action::Route => "to the gateway: L3".into(),
        Action::Listen => "to the gateway MAC: a DNS listener of this VLAN".into(),
        Action::Bpdu => "BPDU to the spanning tree".into(),
        Action::Continue => "continue".into(),
    };
    tracer.step(id, "forward", v);
}
