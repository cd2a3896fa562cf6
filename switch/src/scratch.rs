//! The pipeline's per-batch working memory: what each stage decided about
//! each packet (`Action`), what parsing found (`Meta`), and the arrays that
//! hold them (`Scratch`), allocated once per switch. Its own file so that
//! the switch's state (`core.rs`) can hold it without depending on the
//! pipeline's code.

use crate::batch::{BATCH_MAX, Batch};
use crate::counters::DropReason;
use crate::port::PortId;
use crate::router::L3Out;
use crate::vlan::Egress;

/// What happens to a packet, decided stage by stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Continue,
    Drop(DropReason),
    Unicast(PortId),
    Flood(FloodKind),
    /// Addressed to the domain's gateway: the L3 stage takes it.
    Route,
    /// Addressed to the gateway MAC in the VLAN of one of the domain's DNS
    /// listeners: the listener stage (`router::listen`) takes it.
    Listen,
    /// A BPDU for the domain's spanning tree.
    Bpdu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FloodKind {
    Broadcast,
    Multicast,
    Unknown,
}

/// What parsing learned about a packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Destination and source MAC in the low 48 bits.
    pub(crate) dst: u64,
    pub(crate) src: u64,
    /// The VLAN the frame was classified into.
    pub(crate) vid: u16,
    /// TCI of the frame's domain tag (priority bits to preserve), 0 if none.
    pub(crate) tci: u16,
    /// The frame carries the domain's tag at offset 12.
    pub(crate) tagged: bool,
}

/// Per-batch working arrays, allocated once per switch.
pub(crate) struct Scratch {
    pub(crate) meta: [Meta; BATCH_MAX],
    pub(crate) action: [Action; BATCH_MAX],
    pub(crate) src_hash: [u64; BATCH_MAX],
    /// FDB key of each frame's source (the `run` node).
    pub(crate) src_key: [u64; BATCH_MAX],
    pub(crate) dst_hash: [u64; BATCH_MAX],
    /// What `lookup` found for each unicast destination (corrected by
    /// `learn` where the batch's own learning moved it).
    pub(crate) found: [Option<PortId>; BATCH_MAX],
    /// One bit per destination hash `lookup` probed (a 64-bit filter), so
    /// `learn` checks a learned source against them only on a hit.
    pub(crate) dst_filter: u64,
    /// Bit i set: frame i is flooded and the router gets a copy too.
    pub(crate) to_router: u64,
    pub(crate) trace_ids: [u64; BATCH_MAX],
    /// Bit i set: packet i is traced.
    pub(crate) traced: u64,
    /// The batch is one injected frame (`Switch::inject_dry`): nodes record
    /// their verdict and change no state (see `pipeline/dry.rs`). Tested
    /// once per batch by the nodes that would change state.
    pub(crate) dry: bool,
    /// Ports whose tx queue holds frames.
    pub(crate) touched: Vec<PortId>,
    /// Flood targets of the current packet.
    pub(crate) targets: Vec<(PortId, Egress)>,
    /// Frames for the L3 stage (to the gateway MAC, or copies of
    /// broadcast ARP / IPv6 multicast the gateway must see).
    pub(crate) l3_in: Batch,
    /// Frames for the domain's DNS listeners, untagged, with the VLAN they
    /// came in (`router::listen`); at most `BATCH_MAX`.
    pub(crate) listen_in: Vec<(u16, crate::buf::PktBuf)>,
    /// What the router hands back for the L2 output stage.
    pub(crate) l3_out: L3Out,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            meta: [Meta::default(); BATCH_MAX],
            action: [Action::Continue; BATCH_MAX],
            src_hash: [0; BATCH_MAX],
            src_key: [0; BATCH_MAX],
            dst_hash: [0; BATCH_MAX],
            found: [None; BATCH_MAX],
            dst_filter: 0,
            to_router: 0,
            trace_ids: [0; BATCH_MAX],
            traced: 0,
            dry: false,
            touched: Vec::with_capacity(64),
            targets: Vec::with_capacity(64),
            l3_in: Batch::new(BATCH_MAX),
            listen_in: Vec::with_capacity(BATCH_MAX),
            l3_out: L3Out::default(),
        }
    }
}
