//! Read-only views of the data plane for operators: counters, packet trace
//! and packet capture.
//!
//! Owns: turning worker-local ids into names and merging what several
//! workers report. Never: changing configuration or the store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rvs_switch::capture::{Capture, CapturedFrame};
use rvs_switch::{DropReason, StageCounter, StageCounters};

use super::control::{Control, ControlError, switch_error};
use super::model::*;
use crate::pcap;
use crate::worker::Target;

type Result<T, E = ControlError> = std::result::Result<T, E>;

/// Frames a capture buffers between the worker and the HTTP stream; beyond
/// it copies are dropped (never the packets themselves).
const CAPTURE_DEPTH: usize = 4096;

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A running capture: the frames arrive on `rx`; end it with
/// [`Control::stop_capture`].
pub struct CaptureSession {
    pub port: String,
    worker: usize,
    epoch_unix_ms: u64,
    rx: Receiver<CapturedFrame>,
    /// Most frames to write, if bounded.
    pub count: Option<u64>,
    pub deadline: Instant,
    written: u64,
    /// The daemon is stopping.
    closing: Arc<AtomicBool>,
}

impl CaptureSession {
    /// The next pcap record, or `None` when the capture is over (count or
    /// time reached, or the port went away).
    pub fn next_record(&mut self) -> Option<Vec<u8>> {
        if self.count.is_some_and(|c| self.written >= c) || self.closing.load(Ordering::Acquire) {
            return None;
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        // Wake at least every 200 ms so a gone client is noticed soon.
        match self.rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(f) => {
                self.written += 1;
                let mut out = Vec::with_capacity(16 + f.data.len());
                pcap::record(self.epoch_unix_ms + f.ts_ms, f.orig_len, &f.data, &mut out);
                Some(out)
            }
            // A quiet interval: an empty record, so the caller can check
            // its client is still there.
            Err(RecvTimeoutError::Timeout) => Some(Vec::new()),
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }
}

fn stages_map(s: &StageCounters) -> BTreeMap<String, u64> {
    StageCounter::ALL
        .iter()
        .map(|c| (c.id().to_string(), s.get(*c)))
        .collect()
}

impl Control {
    /// A domain's spanning tree: bridge, root, and each port's role and
    /// state, ports by name.
    pub fn stp(&self, domain: &str) -> Result<serde_json::Value> {
        let st = self.lock();
        // An unknown name has no worker either: answer 404 here rather than
        // the worker lookup's internal error.
        if !st.domains.contains_key(domain) {
            return Err(super::control::not_found_domain(domain));
        }
        let d = domain.to_string();
        let v = self.dp.call(Target::Domain(domain), move |sw| {
            let id = sw
                .domain_id(&d)
                .ok_or_else(|| super::control::not_found_domain(&d))?;
            let info = sw.stp_info(id).map_err(super::control::switch_error)?;
            let Some(info) = info else {
                return Err(ControlError::Conflict(format!(
                    "bridge domain {d} does not run spanning tree (set \"stp\": {{}})"
                )));
            };
            let names: BTreeMap<u16, String> =
                sw.ports().into_iter().map(|p| (p.id.0, p.name)).collect();
            let mut v = serde_json::to_value(&info).expect("serializes");
            let name = |x: &serde_json::Value| {
                x.as_u64()
                    .and_then(|n| names.get(&(n as u16)))
                    .map_or(x.clone(), |n| serde_json::Value::String(n.clone()))
            };
            v["root_port"] = name(&v["root_port"]);
            if let Some(ports) = v["ports"].as_array_mut() {
                for p in ports {
                    p["port"] = name(&p["port"]);
                }
            }
            Ok(v)
        })??;
        Ok(v)
    }

    /// Counters of every attached port and of the pipeline stages.
    pub fn stats(&self) -> Result<Stats> {
        let _st = self.lock();
        let per_worker = self.dp.call_all(|sw| {
            let ports: Vec<PortStats> = sw
                .ports()
                .into_iter()
                .map(|p| PortStats {
                    name: p.name,
                    rx_packets: p.counters.rx_packets,
                    rx_bytes: p.counters.rx_bytes,
                    tx_packets: p.counters.tx_packets,
                    tx_bytes: p.counters.tx_bytes,
                    // The switch's reasons, then the back end's own
                    // (frames lost before the switch saw them).
                    drops: DropReason::ALL
                        .iter()
                        .map(|r| (r.id().to_string(), p.counters.drops_by(*r)))
                        .chain(
                            sw.port_backend_drops(p.id)
                                .into_iter()
                                .map(|(k, n)| (k.to_string(), n)),
                        )
                        .collect(),
                    learned: p.learned,
                })
                .collect();
            (
                ports,
                sw.stage_counters().clone(),
                sw.router().counters().clone(),
            )
        })?;
        let mut ports = Vec::new();
        let mut stages = stages_map(&StageCounters::default());
        let mut l3_drops: BTreeMap<String, u64> = BTreeMap::new();
        for (p, s, l3) in per_worker {
            ports.extend(p);
            for (k, v) in stages_map(&s).into_iter().chain(stages_map(&l3.stages)) {
                *stages.entry(k).or_default() += v;
            }
            for r in DropReason::ALL {
                let n = l3.drops_by(*r);
                if n > 0 {
                    *l3_drops.entry(r.id().to_string()).or_default() += n;
                }
            }
        }
        if let Some(dns) = self.dns.get() {
            for (k, v) in dns.counter_values() {
                stages.insert(k.to_string(), v);
            }
        }
        ports.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Stats {
            ports,
            stages,
            l3_drops,
        })
    }

    /// Counters of one port (zeros for a stored port whose back end failed).
    pub fn port_stats(&self, name: &str) -> Result<PortStats> {
        if !self.lock().ports.contains_key(name) {
            return Err(ControlError::NotFound(format!("no port {name}")));
        }
        let found = self.stats()?.ports.into_iter().find(|p| p.name == name);
        Ok(found.unwrap_or_else(|| PortStats {
            name: name.to_string(),
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            drops: DropReason::ALL
                .iter()
                .map(|r| (r.id().to_string(), 0))
                .collect(),
            learned: 0,
        }))
    }

    /// Arm the tracer for the next `count` packets (from `port` only, if
    /// given). Earlier records are discarded. Without a port every worker
    /// traces up to `count` packets of its own.
    pub fn arm_trace(&self, req: TraceRequest) -> Result<()> {
        if req.count == 0 || req.count > TRACE_MAX {
            return Err(ControlError::BadRequest(format!(
                "count {} is outside 1..={TRACE_MAX}",
                req.count
            )));
        }
        let st = self.lock();
        let target = match &req.port {
            Some(p) => {
                let ps = st
                    .ports
                    .get(p)
                    .ok_or_else(|| ControlError::NotFound(format!("no port {p}")))?;
                if let Some(e) = &ps.error {
                    return Err(ControlError::Conflict(format!(
                        "port {p} is not attached: {e}"
                    )));
                }
                Some((
                    self.dp.worker_of(&ps.rec.config.domain).unwrap_or(0),
                    p.clone(),
                ))
            }
            None => None,
        };
        self.dp.call_all(|sw| {
            sw.tracer().disarm();
            sw.tracer().take();
        })?;
        let count = req.count;
        match target {
            Some((w, port)) => self.dp.call(Target::Worker(w), move |sw| {
                let id = sw
                    .port_id(&port)
                    .ok_or_else(|| ControlError::NotFound(format!("no port {port}")))?;
                sw.tracer().arm(count, Some(id));
                Ok(())
            })?,
            None => {
                self.dp.call_all(move |sw| sw.tracer().arm(count, None))?;
                Ok(())
            }
        }
    }

    /// The trace records so far, oldest first per worker.
    pub fn trace(&self) -> Result<Vec<TraceView>> {
        let _st = self.lock();
        let per_worker = self.dp.call_all(|sw| {
            let recs: Vec<_> = sw.tracer().records().cloned().collect();
            recs.into_iter()
                .map(|r| TraceView {
                    worker: 0,
                    seq: r.seq,
                    in_port: sw
                        .port_info(r.in_port)
                        .map_or_else(|_| r.in_port.to_string(), |p| p.name),
                    len: r.len,
                    head_hex: r.head_hex,
                    steps: step_views(r.steps),
                })
                .collect::<Vec<_>>()
        })?;
        Ok(per_worker
            .into_iter()
            .enumerate()
            .flat_map(|(w, v)| v.into_iter().map(move |t| TraceView { worker: w, ..t }))
            .collect())
    }

    /// Push one frame through the pipeline of the worker that owns `port`,
    /// as if it arrived there, and report each stage's verdict and what
    /// would be sent. Nothing is sent, learned or counted.
    pub fn inject_trace(&self, req: TraceInjectRequest) -> Result<TraceInjectView> {
        let frame = parse_hex(&req.frame).map_err(ControlError::BadRequest)?;
        let st = self.lock();
        let ps = st
            .ports
            .get(&req.port)
            .ok_or_else(|| ControlError::NotFound(format!("no port {}", req.port)))?;
        if let Some(e) = &ps.error {
            return Err(ControlError::Conflict(format!(
                "port {} is not attached: {e}",
                req.port
            )));
        }
        let w = self.dp.worker_of(&ps.rec.config.domain).unwrap_or(0);
        let (port, vlan) = (req.port.clone(), req.vlan);
        let r = self.dp.call(Target::Worker(w), move |sw| {
            let id = sw
                .port_id(&port)
                .ok_or_else(|| ControlError::NotFound(format!("no port {port}")))?;
            let r = sw.inject_dry(id, &frame, vlan).map_err(|e| match e {
                rvs_switch::trace::InjectError::NoPort(_) => {
                    ControlError::NotFound(format!("no port {port}"))
                }
                e => ControlError::BadRequest(e.to_string()),
            })?;
            let name =
                |p: rvs_switch::PortId| sw.port_info(p).map_or_else(|_| p.to_string(), |i| i.name);
            Ok::<_, ControlError>(TraceInjectView {
                worker: w,
                in_port: name(r.in_port),
                len: r.frame.len(),
                frame: to_hex(&r.frame),
                steps: step_views(r.steps),
                sent: r
                    .sent
                    .iter()
                    .map(|s| TraceSentView {
                        port: name(s.port),
                        len: s.frame.len(),
                        frame: to_hex(&s.frame),
                    })
                    .collect(),
            })
        })??;
        Ok(r)
    }

    /// Start copying a port's frames; one capture per port at a time.
    pub fn start_capture(&self, port: &str, q: &CaptureQuery) -> Result<CaptureSession> {
        let (count, secs) = q.limits().map_err(ControlError::BadRequest)?;
        let st = self.lock();
        let ps = st
            .ports
            .get(port)
            .ok_or_else(|| ControlError::NotFound(format!("no port {port}")))?;
        if let Some(e) = &ps.error {
            return Err(ControlError::Conflict(format!(
                "port {port} is not attached: {e}"
            )));
        }
        let worker = self.dp.worker_of(&ps.rec.config.domain).unwrap_or(0);
        let mut caps = self.captures.lock().expect("captures lock");
        if caps.contains(port) {
            return Err(ControlError::Conflict(format!(
                "a capture is already running on port {port}"
            )));
        }
        let (cap, rx) = Capture::new(CAPTURE_DEPTH, pcap::SNAPLEN as usize);
        let name = port.to_string();
        self.dp.call(Target::Worker(worker), move |sw| {
            let id = sw
                .port_id(&name)
                .ok_or_else(|| ControlError::NotFound(format!("no port {name}")))?;
            sw.set_capture(id, Some(cap)).map_err(switch_error)
        })??;
        caps.insert(port.to_string());
        Ok(CaptureSession {
            port: port.to_string(),
            worker,
            epoch_unix_ms: self.dp.epoch_unix_ms(worker),
            rx,
            count,
            deadline: Instant::now() + Duration::from_secs(secs),
            written: 0,
            closing: self.closing.clone(),
        })
    }

    /// End a capture (also when the client went away).
    pub fn stop_capture(&self, s: CaptureSession) {
        let name = s.port.clone();
        let _ = self.dp.call(Target::Worker(s.worker), move |sw| {
            if let Some(id) = sw.port_id(&name) {
                let _ = sw.set_capture(id, None);
            }
        });
        self.captures.lock().expect("captures lock").remove(&s.port);
    }
}

/// A traced frame's steps as the API shows them.
fn step_views(steps: Vec<rvs_switch::trace::TraceStep>) -> Vec<TraceStepView> {
    steps
        .into_iter()
        .map(|s| TraceStepView {
            stage: s.stage.to_string(),
            verdict: s.verdict,
        })
        .collect()
}
