//! The router's per-batch working arrays, shared by the forward stage
//! (`forward.rs`) and the family trait (`family.rs`) without either
//! depending on the other: the first pass's verdict per frame (`Class`),
//! each family's destinations and next hops (`Lanes`), and the kind of an
//! ICMP error.

use crate::batch::BATCH_MAX;
use crate::counters::DropReason;

use super::NhId;

/// (type, code, rest-of-header) of an ICMP error.
pub(super) type IcmpKind = (u8, u8, u32);

/// What the first pass decided about a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    Drop(DropReason),
    V4,
    V6,
    Arp,
    /// ICMPv6 to a multicast group (neighbor discovery).
    V6Multicast,
    /// To a load-balancer VIP (no route lookup); the services are in
    /// [`Scratch::lb`], in frame order.
    Lb4,
    Lb6,
}

/// One family's share of a batch: the destinations to look up, in frame
/// order, and their next hops.
pub(super) struct Lanes<A> {
    pub(super) dst: [A; BATCH_MAX],
    pub(super) nh: [Option<NhId>; BATCH_MAX],
    /// Destinations filled in by the first pass.
    pub(super) n: usize,
}

impl<A: Copy + Default> Default for Lanes<A> {
    fn default() -> Self {
        Lanes {
            dst: [A::default(); BATCH_MAX],
            nh: [None; BATCH_MAX],
            n: 0,
        }
    }
}

/// Per-batch working arrays, allocated once per router.
pub(super) struct Scratch {
    pub(super) class: [Class; BATCH_MAX],
    pub(super) v4: Lanes<u32>,
    pub(super) v6: Lanes<u128>,
    /// The services of the batch's `Lb4`/`Lb6` frames, and how many.
    pub(super) lb: [u32; BATCH_MAX],
    pub(super) lb_n: usize,
    /// The ingress gateway routes between domains / is an uplink.
    pub(super) in_routing: bool,
    pub(super) in_external: bool,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            class: [Class::V4; BATCH_MAX],
            v4: Lanes::default(),
            v6: Lanes::default(),
            lb: [0; BATCH_MAX],
            lb_n: 0,
            in_routing: false,
            in_external: false,
        }
    }
}
