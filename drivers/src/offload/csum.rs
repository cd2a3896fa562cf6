//! The Internet checksum as offloads need it: completing a partial L4
//! checksum (and SCTP's CRC32c), plus finding the L3 header behind up to two
//! VLAN tags. The ones' complement arithmetic itself is the switch crate's
//! (`rvs_switch::wire::udp`, one copy for the whole project).
//!
//! Owns: checksum completion. Never: I/O, allocation.

use super::OffloadError;

pub use rvs_switch::wire::udp::{csum_add, csum_fold};

pub(crate) const ETH_P_IPV4: u16 = 0x0800;
pub(crate) const ETH_P_IPV6: u16 = 0x86dd;
pub(crate) const IPPROTO_TCP: u8 = 6;
pub(crate) const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;

/// Fold a sum from [`csum_add`] to 16 bits and complement it: the value
/// for a checksum field.
#[inline]
pub fn csum_finish(acc: u64) -> u16 {
    !csum_fold(acc)
}

/// Offset of the L3 header and its EtherType, skipping up to two VLAN tags
/// (802.1Q, 802.1ad and the old 0x9100 QinQ type).
pub(crate) fn l3_offset(frame: &[u8]) -> Option<(usize, u16)> {
    let mut off = 12;
    for _ in 0..3 {
        let et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
        match et {
            0x8100 | 0x88a8 | 0x9100 => off += 4,
            _ => return Some((off + 2, et)),
        }
    }
    None
}

/// Length of the Ethernet header including up to two VLAN tags: where the
/// L3 header starts. `None` for a frame too short to say.
#[inline]
pub fn l2_len(frame: &[u8]) -> Option<usize> {
    l3_offset(frame).map(|(l3, _)| l3)
}

/// The L4 protocol number of an IPv4 or IPv6 frame (no extension headers).
fn l4_proto(frame: &[u8]) -> Option<u8> {
    let (l3, et) = l3_offset(frame)?;
    match et {
        ETH_P_IPV4 => frame.get(l3 + 9).copied(),
        ETH_P_IPV6 => frame.get(l3 + 6).copied(),
        _ => None,
    }
}

/// CRC32c (Castagnoli), as SCTP uses it; bitwise, for the rare SCTP frame.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Complete a partial checksum in place: the field at `start + offset`
/// holds the pseudo-header sum; summing from `start` to the end of the frame
/// and complementing gives the final value, as the kernel's
/// `skb_checksum_help` does (a zero result is sent as 0xffff, which UDP
/// requires). SCTP (CRC32c, field at offset 8) is recomputed from scratch.
pub fn complete_csum(frame: &mut [u8], start: usize, offset: usize) -> Result<(), OffloadError> {
    let field = start + offset;
    let range_err = OffloadError::CsumRange {
        start,
        offset,
        len: frame.len(),
    };
    if offset == 8 && l4_proto(frame) == Some(IPPROTO_SCTP) {
        if field + 4 > frame.len() {
            return Err(range_err);
        }
        frame[field..field + 4].fill(0);
        let crc = crc32c(&frame[start..]);
        frame[field..field + 4].copy_from_slice(&crc.to_le_bytes());
        return Ok(());
    }
    if field + 2 > frame.len() {
        return Err(range_err);
    }
    let c = match csum_finish(csum_add(0, &frame[start..])) {
        0 => 0xffff,
        c => c,
    };
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}
