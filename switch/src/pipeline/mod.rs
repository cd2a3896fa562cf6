//! The L2 pipeline over one received batch, as a graph of nodes (VPP
//! style): each node is one loop over the whole batch, reads and writes the
//! per-packet arrays in [`Scratch`], and keeps its own counters.
//!
//! ```text
//!       +-> run (one flow: everything once per batch) ---------------+
//!       |                                                            |
//! rx ---+-> classify -+-> lookup -> learn -> forward -> egress ------+-> tx
//!                     |                         |          |             |
//!                     +-> stp (BPDUs to RSTP)   +-> vip <--+ ------------+
//!                                                    |   (to the gateway)
//!                                                    +-> l3 (the rest)
//!                                                         |
//!                                                         +-> egress of the routed-to domain
//! ```
//!
//! - `run`: a batch whose frames all share their header but (at most) the
//!   source takes this node alone; anything it does not handle once per
//!   batch sends the batch on to the general nodes below.
//! - `classify`: parse the MAC header and the domain's tag, validate,
//!   classify into a VLAN, check port security, hash the source and
//!   destination FDB keys and prefetch their buckets.
//! - `stp`: hand BPDUs to the domain's spanning tree.
//! - `lookup`: probe the FDB for every unicast destination (the table as
//!   the batch found it).
//! - `learn`: learn or refresh every source; a destination the batch itself
//!   just learned on the ingress port is corrected to that port, so each
//!   frame sees the table exactly as if frames went through one by one.
//! - `forward`: the verdict per frame (known unicast, flood, to the
//!   gateway, filtered, STP discarding) and storm control.
//! - `egress`: VLAN edit, flood copies, queue on the egress ports, count and
//!   free drops.
//! - `vip`: packets of established IPv4 flows to a load-balancer VIP,
//!   from the head of the batch to the gateway: rewritten and queued on
//!   the backend's port in one loop.
//! - `l3`: the router, then the L2 output of what it produced.
//!
//! Per-packet state lives in fixed arrays, so the fast path never allocates,
//! locks or makes a syscall. A dropped packet is marked, skipped by later
//! nodes, and freed (and counted by reason) in `egress`.

mod classify;
mod dry;
mod egress;
mod forward;
mod l3;
mod learn;
mod run;
mod stp;
mod vip;

use crate::batch::Batch;
use crate::buf::PacketPool;
use crate::core::{Domain, GwFast, PortSlot, Switch};
use crate::counters::{DropReason, StageCounter, StageCounters};
use crate::port::PortId;
use crate::router::Router;
use crate::scratch::Scratch;
use crate::trace::Tracer;

pub(crate) use l3::{l3_flush_out, l3_tick};
pub(crate) use stp::stp_service;

/// What every node of one batch works with: the switch's state, borrowed
/// field by field, and what is fixed for the batch.
pub(crate) struct Ctx<'a> {
    pub(crate) pool: &'a mut PacketPool,
    pub(crate) ports: &'a mut [Option<PortSlot>],
    pub(crate) scratch: &'a mut Scratch,
    pub(crate) tracer: &'a mut Tracer,
    pub(crate) stages: &'a mut StageCounters,
    /// The ingress port's bridge domain.
    pub(crate) domain: &'a mut Domain,
    pub(crate) router: &'a Router,
    /// Per-batch tallies, added to `stages` once at the end.
    pub(crate) c: BatchCounts,
    pub(crate) in_port: PortId,
    pub(crate) domain_id: crate::config::DomainId,
    pub(crate) tpid: u16,
    /// The gateway's MAC and VLAN, or a MAC no parsed destination equals.
    pub(crate) gw: GwFast,
    pub(crate) now_s: u32,
    pub(crate) now_ms: u64,
}

impl Switch {
    /// Run one batch received on `in_port` through the pipeline. Every packet
    /// leaves `batch`: transmitted, queued on a port, or dropped and counted.
    pub fn process(&mut self, in_port: PortId, batch: &mut Batch) {
        self.run_batch(in_port, batch, false);
    }

    /// The pipeline over one batch. `dry` (a constant at each call site, so
    /// `process` carries none of its branches) is a dry run of one injected
    /// frame: traced, not counted, not learned, not transmitted (the frames
    /// stay in the transmit queues for `dry::collect`).
    #[inline(always)]
    pub(crate) fn run_batch(&mut self, in_port: PortId, batch: &mut Batch, dry: bool) {
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
        if !dry {
            ps.count_rx(pool, batch, now_ms);
        }
        if !ps.cfg.enabled {
            if dry {
                dry::note(tracer, "port", format!("port {in_port} is disabled: drop"));
            }
            ps.counters.drops[DropReason::PortDisabled as usize] += n as u64;
            batch.free_all(pool);
            return;
        }
        let domain_id = ps.cfg.domain;
        let domain = domains[domain_id.0 as usize]
            .as_mut()
            .expect("a port's domain exists");
        let tpid = domain.cfg.vlan_protocol.tpid();
        let gw = domain.gw.unwrap_or(GwFast {
            mac: u64::MAX,
            vid: 0,
            listens: false,
        });
        let mut cx = Ctx {
            pool,
            ports,
            scratch,
            tracer,
            stages,
            domain,
            router,
            c: BatchCounts::default(),
            in_port,
            domain_id,
            tpid,
            gw,
            now_s,
            now_ms,
        };
        cx.scratch.traced = 0;
        cx.scratch.dry = dry;
        if dry {
            dry::start(&mut cx, batch);
        } else if cx.tracer.is_armed() {
            start_trace(&mut cx, batch);
        }
        cx.scratch.touched.clear();

        let mut bpdus = false;
        if !run::node(&mut cx, batch) {
            bpdus = classify::node(&mut cx, batch);
            if bpdus {
                stp::node(&mut cx, batch);
            }
            forward::lookup_node(&mut cx, n);
            learn::node(&mut cx, n);
            forward::node(&mut cx, batch);
            egress::node(&mut cx, batch);
        }
        let c = std::mem::take(&mut cx.c);
        c.add_to(cx.stages);
        // A dry run's BPDU never reached RSTP: nothing to apply.
        if bpdus && !dry {
            stp_service(cx.ports, cx.pool, cx.domain, now_ms);
        }

        // The L3 node: route what went to the gateway, then send what the
        // router produced through the L2 output of its egress domain.
        // Frames for the DNS listeners (rare) are answered first, and go
        // out with the routed ones.
        let listen = !scratch.listen_in.is_empty();
        if listen {
            l3::listen(router, pool, domain_id, scratch);
        }
        if !scratch.l3_in.is_empty() || listen {
            // Established flows to a VIP first, when nothing is traced
            // (their steps are the general path's to note).
            if !dry && scratch.traced == 0 && !scratch.l3_in.is_empty() {
                vip::node(
                    router, ports, pool, domains, domain_id, scratch, stages, now_s, now_ms,
                );
            }
            if !scratch.l3_in.is_empty() {
                if dry {
                    dry::before_l3(router, pool, domains, domain_id, scratch, tracer);
                }
                router.process(
                    pool,
                    domain_id,
                    &mut scratch.l3_in,
                    now_ms,
                    &mut scratch.l3_out,
                );
                if dry {
                    dry::after_l3(router, pool, domains, scratch, tracer);
                }
            }
            l3::output(ports, pool, domains, scratch, tracer, stages, now_s, now_ms);
        }

        // Transmit what the batch produced (a dry run's caller takes the
        // queues instead).
        if !dry {
            flush_touched(ports, pool, &scratch.touched, now_ms);
        }
    }
}

impl PortSlot {
    /// Count a received batch on the port (and copy it to the port's capture).
    #[inline]
    fn count_rx(&mut self, pool: &PacketPool, batch: &Batch, now_ms: u64) {
        let mut bytes = 0u64;
        for b in batch.iter() {
            bytes += b.len() as u64;
        }
        self.counters.rx_packets += batch.len() as u64;
        self.counters.rx_bytes += bytes;
        if let Some(cap) = self.capture.as_mut() {
            cap.record_rx(pool, batch, now_ms);
        }
    }

    /// Send the port's transmit queue (copying it to the capture first).
    #[inline]
    pub(crate) fn flush(&mut self, pool: &mut PacketPool, now_ms: u64) {
        if let Some(cap) = self.capture.as_mut() {
            cap.record_tx(pool, &self.txq, now_ms);
        }
        let done = self.port.tx_burst(pool, &mut self.txq);
        self.counters.tx_packets += done.packets as u64;
        self.counters.tx_bytes += done.bytes as u64;
        self.counters.drops[DropReason::TxFull as usize] += done.dropped as u64;
    }
}

/// Send every touched port's transmit queue.
pub(crate) fn flush_touched(
    ports: &mut [Option<PortSlot>],
    pool: &mut PacketPool,
    touched: &[PortId],
    now_ms: u64,
) {
    for &p in touched {
        if let Some(os) = ports[p.index()].as_mut()
            && !os.txq.is_empty()
        {
            os.flush(pool, now_ms);
        }
    }
}

/// Per-batch tallies of the per-packet counters, added to the stage
/// counters once per batch. Each field belongs to one node.
#[derive(Default)]
pub(crate) struct BatchCounts {
    /// classify
    tagged: u32,
    priority_tagged: u32,
    /// learn
    refreshed: u32,
    /// forward
    known_unicast: u32,
    /// egress
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

/// Count a drop on port `at` (if it exists) and free the frame.
#[inline]
pub(crate) fn drop_at(
    ports: &mut [Option<PortSlot>],
    pool: &mut PacketPool,
    b: crate::buf::PktBuf,
    at: PortId,
    r: DropReason,
) {
    // `at` is `ROUTER_PORT` for frames the router sent: nobody to charge.
    if let Some(s) = ports.get_mut(at.index()).and_then(Option::as_mut) {
        s.counters.drop(r);
    }
    pool.free(b);
}

#[cold]
fn start_trace(cx: &mut Ctx, batch: &Batch) {
    for (i, b) in batch.iter().enumerate() {
        if cx.tracer.want(cx.in_port) {
            cx.scratch.traced |= 1 << i;
            cx.scratch.trace_ids[i] = cx.tracer.begin(cx.in_port, cx.pool.data(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::counters::{DropReason, StageCounter};
    use crate::memport::{MemoryPort, MemoryPortHandle};
    use crate::{DomainConfig, MacAddr, PacketPool, PortConfig, Switch};

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);
    const C: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xc]);

    fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
        crate::wire::ethernet::build(dst, src, 0x0800, &[0u8; 46])
    }

    fn three_ports() -> (Switch, Vec<MemoryPortHandle>) {
        let mut sw = Switch::new(PacketPool::with_frames(256));
        let d = sw.add_domain(DomainConfig::new("d")).unwrap();
        let mut hs = Vec::new();
        for i in 0..3 {
            let (p, h) = MemoryPort::new(&format!("p{i}"));
            sw.add_port(Box::new(p), PortConfig::access(d, 1)).unwrap();
            hs.push(h);
        }
        (sw, hs)
    }

    /// A frame is forwarded on the table as the frames before it in its
    /// batch left it, not as later frames of the batch leave it: the batch
    /// is learned in one node and looked up in another, and this is where
    /// the two could disagree.
    #[test]
    fn each_frame_sees_only_the_learning_of_frames_before_it() {
        let (mut sw, hs) = three_ports();
        // C lives on port 2.
        hs[2].inject(frame(MacAddr::BROADCAST, C));
        sw.poll();
        for h in &hs {
            h.take_tx();
        }
        // One batch on port 0: A->B (B unknown: flooded), A->C (known on
        // port 2), then B and C speak from port 0 (B new, C moved), then
        // A->B and A->C again (now on the ingress port: filtered).
        for f in [
            frame(B, A),
            frame(C, A),
            frame(A, B),
            frame(A, C),
            frame(B, A),
            frame(C, A),
        ] {
            hs[0].inject(f);
        }
        sw.poll();
        let to1 = hs[1].take_tx();
        let to2 = hs[2].take_tx();
        assert_eq!(to1, vec![frame(B, A)], "only the flood of the first A->B");
        assert_eq!(to2, vec![frame(B, A), frame(C, A)]);
        let p0 = sw.ports()[0].counters.clone();
        assert_eq!(p0.drops[DropReason::Filtered as usize], 4);
        let s = sw.stage_counters();
        assert_eq!(s.get(StageCounter::LearnMove), 1);
        assert_eq!(s.get(StageCounter::FwdUnknownUnicast), 1);
    }

    fn tagged(dst: MacAddr, src: MacAddr, tci: u16) -> Vec<u8> {
        let f = frame(dst, src);
        let mut t = f[..12].to_vec();
        t.extend_from_slice(&[0x81, 0x00]);
        t.extend_from_slice(&tci.to_be_bytes());
        t.extend_from_slice(&f[12..]);
        t
    }

    /// `f` with the 16 bytes after its header at `at` set from `i` (a
    /// stream's frames differ there: lengths, ids, ports).
    fn varied(mut f: Vec<u8>, at: usize, i: u64) -> Vec<u8> {
        for (k, b) in f[at..at + 16].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(k as u8);
        }
        f
    }

    /// A double-tagged frame: outer `tci`, inner `inner` (802.1Q both).
    fn qinq(dst: MacAddr, src: MacAddr, tci: u16, inner: u16) -> Vec<u8> {
        let t = tagged(dst, src, tci);
        let mut q = t[..16].to_vec();
        q.extend_from_slice(&[0x81, 0x00]);
        q.extend_from_slice(&inner.to_be_bytes());
        q.extend_from_slice(&t[16..]);
        q
    }

    /// p0 trunk (10, 20, native 1), p1 access 10 (at most 3 learned
    /// stations), p2 access 1, p3 trunk (10, 20); B static on p1 in VLAN 10
    /// and on p2 in VLAN 1.
    fn mixed(storm: bool) -> (Switch, Vec<MemoryPortHandle>) {
        use crate::vlan::VlanMode;
        let mut sw = Switch::new(PacketPool::with_frames(1024));
        let d = sw.add_domain(DomainConfig::new("d")).unwrap();
        let trunk = |native| VlanMode::Trunk {
            allowed: "10,20".parse().unwrap(),
            native,
        };
        let mut hs = Vec::new();
        for (i, mode) in [
            trunk(Some(1)),
            VlanMode::Access { pvid: 10 },
            VlanMode::Access { pvid: 1 },
            trunk(None),
        ]
        .into_iter()
        .enumerate()
        {
            let (p, h) = MemoryPort::new(&format!("p{i}"));
            let mut cfg = PortConfig::access(d, 1).with_vlan(mode);
            if storm && i == 0 {
                cfg.storm_control = Some(crate::StormControl { pps: 1, burst: 3 });
            }
            if i == 1 {
                cfg.mac_limit = 3;
            }
            sw.add_port(Box::new(p), cfg).unwrap();
            hs.push(h);
        }
        sw.add_static(d, 10, B, crate::PortId(1)).unwrap();
        sw.add_static(d, 1, B, crate::PortId(2)).unwrap();
        let gw = crate::router::Gateway {
            vid: 10,
            ..crate::router::Gateway::new(d, G)
        };
        sw.set_gateway(gw.with_ipv4(std::net::Ipv4Addr::new(10, 0, 0, 1), 24))
            .unwrap();
        (sw, hs)
    }

    const G: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x99]);

    /// An ICMP echo request from 10.0.0.2 to the gateway 10.0.0.1, id `i`.
    fn ping_gw(src: MacAddr, i: u64) -> Vec<u8> {
        use crate::wire::ipv4::{checksum, write_header};
        let mut f = vec![0u8; 14 + 20 + 8 + 4];
        f[0..6].copy_from_slice(&G.0);
        f[6..12].copy_from_slice(&src.0);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        write_header(&mut f[14..], 32, 64, 1, 0x0a00_0002, 0x0a00_0001);
        let icmp = &mut f[34..];
        icmp[0] = 8;
        icmp[4..8].copy_from_slice(&[0x12, 0x34, 0, i as u8]);
        icmp[8..].copy_from_slice(b"ping");
        let c = checksum::compute(icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        f
    }

    /// `f` with an 802.1Q tag `tci` after the MACs.
    fn tag(f: Vec<u8>, tci: u16) -> Vec<u8> {
        let mut t = f[..12].to_vec();
        t.extend_from_slice(&[0x81, 0x00]);
        t.extend_from_slice(&tci.to_be_bytes());
        t.extend_from_slice(&f[12..]);
        t
    }

    /// Batches of one flow (or one destination from many sources) take the
    /// `run` fast path unless the tracer is armed; both paths must leave
    /// the same frames on the same ports and the same counters.
    /// A routed frame's tag edit is counted like a switched one's: the
    /// gateway's echo reply to a station behind the trunk leaves tagged.
    #[test]
    fn routed_frames_count_their_tag_edits() {
        let (mut sw, hs) = mixed(false);
        hs[0].inject(tag(ping_gw(A, 1), 10));
        sw.poll();
        let sent = hs[0].take_tx();
        assert_eq!(sent.len(), 1, "the reply, back through the trunk");
        assert_eq!(sent[0][12..16], [0x81, 0x00, 0x00, 10], "tagged VLAN 10");
        assert_eq!(sw.stage_counters().get(StageCounter::EgressTagPush), 1);
        assert_eq!(sw.stage_counters().get(StageCounter::EgressTagPop), 1);
    }

    #[test]
    fn the_run_fast_path_matches_the_general_path() {
        let s = |i: u64| MacAddr::local(0x100 + i);
        let batches: Vec<(usize, Vec<Vec<u8>>)> = vec![
            (0, (0..8).map(|_| frame(B, A)).collect()),
            (0, (0..8).map(|_| tagged(B, A, 10)).collect()),
            (0, (0..8).map(|_| tagged(B, A, 0x6000)).collect()),
            (0, (0..8).map(|_| tagged(B, A, 0x2000 | 20)).collect()),
            (
                3,
                (0..8).map(|_| tagged(MacAddr::BROADCAST, C, 10)).collect(),
            ),
            (0, (0..8).map(|i| frame(B, s(i % 3))).collect()),
            (1, (0..8).map(|i| frame(s(i), A)).collect()),
            (1, (0..8).map(|_| frame(B, s(50))).collect()),
            (1, (0..8).map(|i| frame(B, s(60 + i % 2))).collect()),
            (1, (0..8).map(|_| frame(B, s(70))).collect()),
            (0, (0..8).map(|_| frame(A, C)).collect()),
            (
                2,
                (0..8)
                    .map(|_| frame(MacAddr([0x33, 0x33, 0, 0, 0, 1]), C))
                    .collect(),
            ),
            (0, (0..8).map(|_| frame(C, s(1))).collect()),
            (0, (0..8).map(|_| frame(s(2), s(1))).collect()),
            (0, (0..4).map(|_| frame(A, A)).collect()),
            (1, (0..8).map(|_| frame(MacAddr::BROADCAST, B)).collect()),
            (
                0,
                (0..8)
                    .map(|i| frame(B, if i == 5 { MacAddr::ZERO } else { A }))
                    .collect(),
            ),
            (
                0,
                (0..8)
                    .map(|i| frame(if i < 4 { B } else { C }, A))
                    .collect(),
            ),
            (0, vec![frame(B, A)[..20].to_vec(); 4]),
            // To the gateway (VLAN 10): pings from one and from several
            // stations, tagged on the trunk and untagged on the access
            // port; in another VLAN (dropped: not for the gateway); a
            // frame to the gateway that is not IP.
            (0, (0..8).map(|i| tag(ping_gw(A, i), 10)).collect()),
            (1, (0..8).map(|i| ping_gw(s(90 + i % 3), i)).collect()),
            (0, (0..8).map(|i| tag(ping_gw(A, i), 0x2000 | 10)).collect()),
            (0, (0..8).map(|i| tag(ping_gw(A, i), 20)).collect()),
            (2, (0..8).map(|i| ping_gw(C, i)).collect()),
            (1, (0..8).map(|_| frame(G, A)).collect()),
            // Streams: what follows the parsed header differs per frame
            // (an IPv4 id, a length), untagged, tagged, double-tagged, and
            // a batch whose EtherTypes or inner tags differ.
            (0, (0..8).map(|i| varied(frame(B, A), 14, i)).collect()),
            (0, (0..8).map(|i| varied(tagged(B, A, 10), 18, i)).collect()),
            (
                0,
                (0..8).map(|i| varied(qinq(B, A, 20, 30), 22, i)).collect(),
            ),
            (
                1,
                (0..8)
                    .map(|i| varied(frame(B, s(80 + i % 2)), 14, i))
                    .collect(),
            ),
            (
                0,
                (0..8)
                    .map(|i| {
                        let mut f = frame(B, A);
                        if i == 6 {
                            f[12..14].copy_from_slice(&[0x86, 0xdd]);
                        }
                        varied(f, 14, i)
                    })
                    .collect(),
            ),
            (
                0,
                (0..8)
                    .map(|i| {
                        let mut f = tagged(B, A, 10);
                        if i == 3 {
                            f[16..18].copy_from_slice(&[0x81, 0x00]);
                        }
                        varied(f, 18, i)
                    })
                    .collect(),
            ),
        ];
        for storm in [false, true] {
            let (mut fast, fh) = mixed(storm);
            let (mut slow, sh) = mixed(storm);
            slow.tracer().arm(u32::MAX, None);
            for (k, (port, frames)) in batches.iter().enumerate() {
                for f in frames {
                    fh[*port].inject(f.clone());
                    sh[*port].inject(f.clone());
                }
                fast.poll();
                slow.poll();
                for (a, b) in fh.iter().zip(&sh) {
                    assert_eq!(a.take_tx(), b.take_tx(), "batch {k}, storm {storm}");
                }
                let counters = |sw: &Switch| {
                    sw.ports()
                        .into_iter()
                        .map(|p| (p.counters, p.learned))
                        .collect::<Vec<_>>()
                };
                assert_eq!(counters(&fast), counters(&slow), "batch {k}");
                assert_eq!(
                    fast.stage_counters().0,
                    slow.stage_counters().0,
                    "batch {k}"
                );
            }
            assert_eq!(fast.pool().available(), 1024);
            // The gateway answered the three batches of pings in its VLAN
            // (those in VLANs 20 and 1 are not for it).
            let l3 = fast.router().counters();
            assert_eq!(l3.stages.get(StageCounter::L3EchoReplies), 24);
        }
    }
}
