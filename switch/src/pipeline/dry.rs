//! Dry runs: one injected frame through the ordinary nodes
//! (`Switch::inject_dry`, like Open vSwitch's `ofproto/trace`).
//!
//! The frame is traced into a tracer of its own and takes the general
//! path (a traced batch never takes `run`). The rule for nodes: a node that
//! changes state tests `scratch.dry` once per batch and, in a dry run,
//! records what it would do instead — `learn` does not learn, `stp` hands
//! no BPDU to RSTP, the router neither learns neighbors, holds packets,
//! punts DNS queries nor keeps load-balancer flows. Counters, storm-control
//! and ICMP buckets are saved before and put back after (tallies, not
//! decisions). Nothing is transmitted: the frames stay in the transmit
//! queues, and `collect` takes them with their exact bytes.

use super::Ctx;
use crate::batch::{BATCH_MAX, Batch};
use crate::buf::PacketPool;
use crate::config::DomainId;
use crate::core::{Domain, PortSlot, Switch};
use crate::counters::{PortCounters, StageCounters};
use crate::fdb::fdb_key;
use crate::mac::MacAddr;
use crate::port::PortId;
use crate::ratelimit::TokenBucket;
use crate::router::Router;
use crate::scratch::{Action, Scratch};
use crate::trace::{DryRun, DrySend, InjectError, Tracer};
use crate::vlan::VlanMode;
use crate::wire::vlan::TAG_LEN;

/// Add a step to the dry run's record (the last one begun).
#[cold]
pub(super) fn note(tracer: &mut Tracer, stage: &'static str, verdict: String) {
    tracer.note(stage, verdict);
}

fn mode_text(m: &VlanMode) -> String {
    match m {
        VlanMode::Access { pvid } => format!("access vlan {pvid}"),
        VlanMode::Trunk { allowed, native } => match native {
            Some(n) => format!("trunk vlans {allowed} native {n}"),
            None => format!("trunk vlans {allowed}"),
        },
        VlanMode::Tunnel { svid } => format!("tunnel svlan {svid}"),
    }
}

/// Mark the batch's one frame traced (its record was begun by
/// `inject_dry`) and say how the port classifies.
#[cold]
pub(super) fn start(cx: &mut Ctx, batch: &Batch) {
    debug_assert_eq!(batch.len(), 1, "a dry run is one frame");
    cx.scratch.traced = 1;
    cx.scratch.trace_ids[0] = cx.tracer.last_handle();
    let ps = cx.ports[cx.in_port.index()]
        .as_ref()
        .expect("ingress port exists");
    let v = format!(
        "port {} ({}) {}, domain {}",
        ps.port.name(),
        cx.in_port,
        mode_text(&ps.cfg.vlan),
        cx.domain.cfg.name
    );
    note(cx.tracer, "classify", v);
}

/// `stp` in a dry run: the BPDU is not given to RSTP.
#[cold]
pub(super) fn stp(cx: &mut Ctx, batch: &Batch) {
    for i in 0..batch.len() {
        if cx.scratch.action[i % BATCH_MAX] == Action::Bpdu {
            let v = "BPDU for the spanning tree (dry run: not applied)".into();
            note(cx.tracer, "stp", v);
        }
    }
}

/// What `lookup` found for the frame, with the entry's kind and age.
#[cold]
pub(super) fn lookup(cx: &mut Ctx, n: usize) {
    for i in 0..n {
        let i = i % BATCH_MAX;
        if cx.scratch.action[i] != Action::Continue {
            continue;
        }
        let m = cx.scratch.meta[i];
        let dst = MacAddr::from_u64(m.dst);
        let v = if m.dst == cx.gw.mac {
            format!("dst {dst} is the gateway")
        } else {
            match cx.domain.fdb.entry(fdb_key(m.vid, m.dst), cx.now_s) {
                Some(e) if e.is_static => {
                    format!("dst {dst} vlan {} \u{2192} port {} (static)", m.vid, e.port)
                }
                Some(e) => format!(
                    "dst {dst} vlan {} \u{2192} port {} (learned, age {}s)",
                    m.vid, e.port, e.age_secs
                ),
                None => format!("dst {dst} vlan {}: unknown", m.vid),
            }
        };
        note(cx.tracer, "lookup", v);
    }
}

/// Before the router runs: the route the frame for the gateway matches.
#[cold]
pub(super) fn before_l3(
    router: &Router,
    pool: &PacketPool,
    domains: &[Option<Domain>],
    domain: DomainId,
    scratch: &Scratch,
    tracer: &mut Tracer,
) {
    let name = |d: DomainId| domain_name(domains, d);
    for b in scratch.l3_in.iter() {
        if let Some(v) = router.explain(domain, pool.data(b), &name) {
            tracer.note("l3", v);
        }
    }
}

/// After the router ran: what it would have done besides forwarding, and
/// what it hands the L2 output.
#[cold]
pub(super) fn after_l3(
    router: &mut Router,
    pool: &PacketPool,
    domains: &[Option<Domain>],
    scratch: &Scratch,
    tracer: &mut Tracer,
) {
    for v in router.take_dry_notes() {
        tracer.note("l3", v);
    }
    for f in &scratch.l3_out.frames {
        let d = pool.data(&f.buf);
        let v = if d.len() >= 12 {
            let (dst, src) = super::classify::macs(d);
            format!(
                "out to domain {} vlan {}: dst {} src {}, {} bytes",
                domain_name(domains, f.domain),
                f.vid,
                MacAddr::from_u64(dst),
                MacAddr::from_u64(src),
                d.len()
            )
        } else {
            format!(
                "out to domain {} vlan {}",
                domain_name(domains, f.domain),
                f.vid
            )
        };
        tracer.note("l3", v);
    }
}

fn domain_name(domains: &[Option<Domain>], d: DomainId) -> String {
    domains
        .get(d.0 as usize)
        .and_then(Option::as_ref)
        .map_or_else(|| d.to_string(), |x| x.cfg.name.clone())
}

/// What a dry run changes in passing and gets back.
struct Saved {
    ports: Vec<Option<(PortCounters, Option<TokenBucket>)>>,
    stages: StageCounters,
    router: crate::router::dry::DrySaved,
}

impl Switch {
    /// Push `frame` through the pipeline as if it arrived on `in_port`
    /// (with an 802.1Q tag of `vlan` added when given) and report each
    /// stage's verdict and the frames it would send, without sending them:
    /// the FDB, the neighbor table, spanning tree, load-balancer flows,
    /// counters and the live tracer are left as they were.
    pub fn inject_dry(
        &mut self,
        in_port: PortId,
        frame: &[u8],
        vlan: Option<u16>,
    ) -> Result<DryRun, InjectError> {
        let ps = self
            .ports
            .get(in_port.index())
            .and_then(Option::as_ref)
            .ok_or(InjectError::NoPort(in_port))?;
        if frame.len() < crate::wire::ethernet::HEADER_LEN {
            return Err(InjectError::Runt(frame.len()));
        }
        let mut bytes = frame.to_vec();
        if let Some(v) = vlan {
            if v == 0 || v > 4094 {
                return Err(InjectError::BadVlan(v));
            }
            let tpid = self.domains[ps.cfg.domain.0 as usize]
                .as_ref()
                .expect("a port's domain exists")
                .cfg
                .vlan_protocol
                .tpid();
            let mut tag = [0u8; TAG_LEN];
            tag[..2].copy_from_slice(&tpid.to_be_bytes());
            tag[2..].copy_from_slice(&v.to_be_bytes());
            bytes.splice(12..12, tag);
        }
        let max = self.pool.max_packet();
        if bytes.len() > max {
            return Err(InjectError::TooLong(bytes.len(), max));
        }
        // Frames already queued are real traffic: send them now, so the
        // queues hold only what the dry run adds.
        for p in 0..self.ports.len() {
            if let Some(ps) = self.ports[p].as_mut()
                && !ps.txq.is_empty()
            {
                ps.flush(&mut self.pool, self.now_ms);
            }
        }
        let b = self
            .pool
            .alloc_from(&bytes)
            .ok_or(InjectError::PoolExhausted)?;
        let saved = Saved {
            ports: self
                .ports
                .iter()
                .map(|p| p.as_ref().map(|p| (p.counters.clone(), p.storm.clone())))
                .collect(),
            stages: self.stages.clone(),
            router: self.router.dry_save(),
        };
        let live = std::mem::take(&mut self.tracer);
        self.tracer.begin(in_port, &bytes);
        self.router.set_dry(true);
        let mut batch = Batch::new(1);
        batch.push(b).expect("room for one");
        self.run_batch(in_port, &mut batch, true);
        self.router.set_dry(false);
        self.scratch.dry = false;
        self.scratch.traced = 0;
        let sent = collect(&mut self.ports, &mut self.pool, &self.scratch.touched);
        let mut rec = std::mem::replace(&mut self.tracer, live)
            .take()
            .pop()
            .expect("the dry run's record");
        for (p, s) in self.ports.iter_mut().zip(saved.ports) {
            if let (Some(p), Some((c, storm))) = (p.as_mut(), s) {
                p.counters = c;
                p.storm = storm;
            }
        }
        self.stages = saved.stages;
        self.router.dry_restore(saved.router);
        for s in &sent {
            rec.steps.push(crate::trace::TraceStep {
                stage: "egress",
                verdict: self.egress_text(s),
            });
        }
        if sent.is_empty() {
            rec.steps.push(crate::trace::TraceStep {
                stage: "egress",
                verdict: "nothing would be sent".into(),
            });
        }
        Ok(DryRun {
            in_port,
            frame: bytes,
            steps: rec.steps,
            sent,
        })
    }

    /// "port NAME (ID) tagged vlan V pcp P, N bytes", from the bytes sent.
    fn egress_text(&self, s: &DrySend) -> String {
        let ps = self.ports[s.port.index()].as_ref().expect("a port sent it");
        let tpid = self.domains[ps.cfg.domain.0 as usize]
            .as_ref()
            .map_or(crate::wire::ethernet::EtherType::VLAN, |d| {
                d.cfg.vlan_protocol.tpid()
            });
        let f = &s.frame;
        let tag = if f.len() >= 16 && u16::from_be_bytes([f[12], f[13]]) == tpid {
            let tci = u16::from_be_bytes([f[14], f[15]]);
            format!("tagged vlan {} pcp {}", tci & 0xfff, tci >> 13)
        } else {
            "untagged".into()
        };
        let name = ps.port.name();
        format!("port {name} ({}) {tag}, {} bytes", s.port, f.len())
    }
}

/// Take what the dry run queued on each touched port, in order.
fn collect(
    ports: &mut [Option<PortSlot>],
    pool: &mut PacketPool,
    touched: &[PortId],
) -> Vec<DrySend> {
    let mut sent = Vec::new();
    for &p in touched {
        let Some(ps) = ports.get_mut(p.index()).and_then(Option::as_mut) else {
            continue;
        };
        for b in ps.txq.drain() {
            sent.push(DrySend {
                port: p,
                frame: pool.data(&b).to_vec(),
            });
            pool.free(b);
        }
    }
    sent
}
