//! The `stp` node: BPDUs the `classify` node found go to the domain's
//! spanning tree; and the service that applies what RSTP decided (BPDUs to
//! send, FDB flushes, port states for the fast path).

use super::Ctx;
use crate::batch::{BATCH_MAX, Batch};
use crate::buf::PacketPool;
use crate::core::{Domain, PortSlot};
use crate::counters::DropReason;
use crate::scratch::Action;

/// Hand every BPDU of the batch to RSTP. Each stays in the batch marked
/// [`Action::Bpdu`] (consumed: `egress` frees it) or, if RSTP refused it,
/// [`Action::Drop`].
#[inline(never)]
pub(super) fn node(cx: &mut Ctx, batch: &Batch) {
    if cx.scratch.dry {
        return super::dry::stp(cx, batch);
    }
    let stp = cx.domain.stp.as_mut().expect("BPDUs only where STP runs");
    for i in 0..batch.len() {
        let i = i % BATCH_MAX;
        if cx.scratch.action[i] == Action::Bpdu
            && stp
                .rx_bpdu(cx.in_port, cx.pool.data(batch.get(i)), cx.now_ms)
                .is_err()
        {
            cx.scratch.action[i] = Action::Drop(DropReason::StpBadBpdu);
        }
    }
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
            ps.flush(pool, now_ms);
            ps.txq.push(b).expect("empty after flush");
        }
        ps.flush(pool, now_ms);
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
