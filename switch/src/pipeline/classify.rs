//! The `classify` node: parse each frame's MAC header and the domain's tag,
//! validate it, classify it into a VLAN, apply port security, and hash and
//! prefetch the FDB buckets the `lookup` and `learn` nodes will probe.

use super::Ctx;
use crate::batch::{BATCH_MAX, Batch};
use crate::counters::DropReason;
use crate::fdb::fdb_key;
use crate::mac::MacAddr;
use crate::scratch::{Action, FloodKind, Meta};
use crate::trace::Tracer;
use crate::vlan::{Ingress, VlanMode};
use crate::wire::ethernet::{EtherType, HEADER_LEN};
use crate::wire::vlan::TAG_LEN;
use crate::wire::{EthernetFrame, VlanTag};

pub(crate) const MULTICAST_BIT: u64 = 1 << 40;
pub(crate) const BROADCAST: u64 = 0xffff_ffff_ffff;
const LINK_LOCAL_MASK: u64 = 0xffff_ffff_fff0;
const LINK_LOCAL: u64 = 0x0180_c200_0000;

#[inline(always)]
pub(super) fn is_vlan_tpid(t: u16) -> bool {
    t == EtherType::VLAN || t == EtherType::QINQ || t == EtherType::QINQ_LEGACY
}

/// Destination and source MAC of a frame of at least 14 bytes, each in the
/// low 48 bits of a u64 (two loads instead of twelve).
#[inline(always)]
pub(crate) fn macs(d: &[u8]) -> (u64, u64) {
    let dst = u64::from_be_bytes(d[0..8].try_into().unwrap()) >> 16;
    let src = u64::from_be_bytes(d[4..12].try_into().unwrap()) & 0xffff_ffff_ffff;
    (dst, src)
}

/// Parse the MAC header and the domain's tag, validate, classify into a VLAN.
#[inline(always)]
pub(crate) fn parse_classify(d: &[u8], tpid: u16, mode: &VlanMode) -> Result<Meta, DropReason> {
    if d.len() < HEADER_LEN {
        return Err(DropReason::Runt);
    }
    let (dst, src) = macs(d);
    let mut m = Meta {
        dst,
        src,
        vid: 0,
        tci: 0,
        tagged: false,
    };
    let et = EthernetFrame::new_unchecked(d).ethertype();
    let mut tag_vid = None;
    if et == tpid && !mode.tags_are_payload() {
        if d.len() < HEADER_LEN + TAG_LEN {
            return Err(DropReason::TruncatedTag);
        }
        let tag = VlanTag::new_unchecked(&d[HEADER_LEN..]);
        let tci = tag.tci().0;
        if tci & 0xfff == 0xfff {
            return Err(DropReason::ReservedVid);
        }
        if is_vlan_tpid(tag.inner_ethertype()) {
            // QinQ: the inner tag is payload to us, but it must be whole and
            // must not be followed by yet another tag.
            if d.len() < HEADER_LEN + 2 * TAG_LEN {
                return Err(DropReason::TruncatedTag);
            }
            if is_vlan_tpid(VlanTag::new_unchecked(&d[HEADER_LEN + TAG_LEN..]).inner_ethertype()) {
                return Err(DropReason::TooManyTags);
            }
        }
        m.tci = tci;
        m.tagged = true;
        tag_vid = Some(tci & 0xfff);
    }
    if src & MULTICAST_BIT != 0 || src == 0 {
        return Err(DropReason::InvalidSource);
    }
    if dst & LINK_LOCAL_MASK == LINK_LOCAL {
        return Err(DropReason::LinkLocal);
    }
    match mode.classify(tag_vid) {
        Ingress::Vid(v) => m.vid = v,
        Ingress::TaggedOnAccess => return Err(DropReason::TaggedOnAccess),
        Ingress::NotAllowed => return Err(DropReason::VlanNotAllowed),
        Ingress::UntaggedNoNative => return Err(DropReason::UntaggedNoNative),
    }
    Ok(m)
}

/// Run the node over the batch. Returns whether it holds BPDUs for the
/// `stp` node.
#[inline(never)]
pub(super) fn node(cx: &mut Ctx, batch: &Batch) -> bool {
    let ps = cx.ports[cx.in_port.index()]
        .as_ref()
        .expect("ingress port exists");
    let learning = ps.cfg.learning && ps.stp_learn;
    let mode = &ps.cfg.vlan;
    let security = ps.cfg.security.as_ref();
    let stp_on = cx.domain.stp.is_some();
    let fdb = &cx.domain.fdb;
    let (pool, scratch) = (&*cx.pool, &mut *cx.scratch);
    let mut bpdus = false;
    // Consecutive frames of one flow share their keys: hash those once.
    // (`i % BATCH_MAX` is free and lets the compiler drop the bounds checks
    // on the scratch arrays.)
    let (mut src_key, mut src_hash, mut dst_key, mut dst_hash) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..batch.len() {
        let i = i % BATCH_MAX;
        let d = pool.data(batch.get(i));
        scratch.action[i] = match parse_classify(d, cx.tpid, mode) {
            Ok(m)
                if let Some(sec) = security
                    && let Err(r) = sec.check(
                        m.src,
                        d,
                        if m.tagged {
                            HEADER_LEN + TAG_LEN
                        } else {
                            HEADER_LEN
                        },
                    ) =>
            {
                Action::Drop(r)
            }
            Ok(m) => {
                scratch.meta[i] = m;
                if m.tagged {
                    cx.c.tagged += 1;
                    cx.c.priority_tagged += (m.tci & 0xfff == 0) as u32;
                }
                if learning {
                    let k = fdb_key(m.vid, m.src);
                    if k != src_key {
                        (src_key, src_hash) = (k, fdb.prefetch_key(k));
                    }
                    scratch.src_hash[i] = src_hash;
                }
                if m.dst & MULTICAST_BIT != 0 {
                    Action::Flood(if m.dst == BROADCAST {
                        FloodKind::Broadcast
                    } else {
                        FloodKind::Multicast
                    })
                } else {
                    let k = fdb_key(m.vid, m.dst);
                    if k != dst_key {
                        (dst_key, dst_hash) = (k, fdb.prefetch_key(k));
                    }
                    scratch.dst_hash[i] = dst_hash;
                    Action::Continue
                }
            }
            Err(DropReason::LinkLocal) if stp_on && crate::stp::is_bpdu_frame(d) => {
                bpdus = true;
                Action::Bpdu
            }
            Err(r) => Action::Drop(r),
        };
        if scratch.traced & (1 << i) != 0 {
            trace(cx.tracer, scratch, i);
        }
    }
    bpdus
}

#[cold]
fn trace(tracer: &mut Tracer, scratch: &crate::scratch::Scratch, i: usize) {
    let v = match scratch.action[i] {
        Action::Drop(r) => format!("drop: {r}"),
        _ => {
            let m = &scratch.meta[i];
            let tag = if m.tagged {
                format!(" (tagged, pcp {})", m.tci >> 13)
            } else {
                " (untagged)".into()
            };
            format!(
                "dst {} src {} vlan {}{}",
                MacAddr::from_u64(m.dst),
                MacAddr::from_u64(m.src),
                m.vid,
                tag
            )
        }
    };
    tracer.step(scratch.trace_ids[i], "parse", v);
}
