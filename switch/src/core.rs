//! The switch's state: one worker's ports, domains, pool, counters and
//! router (`Switch`), and the per-port and per-domain slots. The control
//! methods (`switch.rs`) and the pipeline (`pipeline/`) both work on it;
//! it depends on neither.

use crate::batch::Batch;
use crate::buf::PacketPool;
use crate::config::{DomainConfig, PortConfig};
use crate::counters::{PortCounters, StageCounters};
use crate::fdb::Fdb;
use crate::port::{Port, PortId};
use crate::ratelimit::TokenBucket;
use crate::router::Router;
use crate::stp::Stp;
use crate::trace::Tracer;

pub(crate) struct PortSlot {
    pub port: Box<dyn Port>,
    pub capture: Option<crate::capture::Capture>,
    pub cfg: PortConfig,
    pub counters: PortCounters,
    pub txq: Batch,
    pub storm: Option<TokenBucket>,
    pub max_frame: usize,
    pub last_error: Option<String>,
    /// The back end reported its link gone: no more receive calls.
    pub gone: bool,
    /// Spanning tree lets the port learn / forward (always, without STP).
    pub stp_learn: bool,
    pub stp_fwd: bool,
}

pub(crate) struct Domain {
    pub cfg: DomainConfig,
    pub fdb: Fdb,
    pub members: Vec<PortId>,
    /// The gateway as the L2 stage needs it: frames to `mac` in `vid` go
    /// to the router.
    pub gw: Option<GwFast>,
    /// RSTP, when the domain runs it, and the port settings it was given.
    pub stp: Option<Stp>,
    pub stp_ports: Vec<(PortId, crate::stp::StpPortConfig, bool)>,
    /// Reused buffers for what the spanning tree hands out.
    pub stp_tx: Vec<(PortId, Vec<u8>)>,
    pub stp_flush: Vec<crate::stp::FlushRequest>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct GwFast {
    /// MAC in the low 48 bits, as the pipeline's parsed addresses.
    pub mac: u64,
    pub vid: u16,
    /// The domain has DNS listeners (in VLANs other than `vid`).
    pub listens: bool,
}

/// One worker's switch.
pub struct Switch {
    // Field order is drop order: ports (which may have registered the pool's
    // memory with the kernel) close before the pool is freed.
    pub(crate) ports: Vec<Option<PortSlot>>,
    pub(crate) pool: PacketPool,
    pub(crate) domains: Vec<Option<Domain>>,
    pub(crate) stages: StageCounters,
    pub(crate) tracer: Tracer,
    pub(crate) now_ms: u64,
    pub(crate) now_s: u32,
    pub(crate) scratch: crate::scratch::Scratch,
    pub(crate) router: Router,
    /// The receive batch, boxed so that `poll` moves a pointer, not the
    /// 1 KiB batch, out of the switch and back on every call.
    pub(crate) rx: Option<Box<Batch>>,
    pub(crate) l3_ticked_ms: u64,
    pub(crate) burst: usize,
    pub(crate) aged_at_ms: u64,
}
