//! The TPACKET_V3 receive ring: a region shared with the kernel, cut into
//! blocks the kernel fills with frames and hands over by setting
//! `TP_STATUS_USER` in the block header; user space hands a block back by
//! writing `TP_STATUS_KERNEL`.
//!
//! Owns: the mapping and the only `unsafe` about it (map, unmap, the status
//! word's atomic access, a byte view of a block while user space owns it).
//! Parsing a block ([`Block`], [`RxFrame`]) is safe code over that view and
//! checks every offset the kernel wrote against the block's bounds. Never:
//! socket options or packet processing.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::offload::VNET_HDR_LEN;

/// `TP_STATUS_*` bits used here (uapi `linux/if_packet.h`).
pub(super) const TP_STATUS_KERNEL: u32 = 0;
pub(super) const TP_STATUS_USER: u32 = 1 << 0;
pub(super) const TP_STATUS_LOSING: u32 = 1 << 2;
pub(super) const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
pub(super) const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// Offsets in `struct tpacket_block_desc` (version, offset_to_priv, then
/// `struct tpacket_hdr_v1`).
const BLK_STATUS: usize = 8;
const BLK_NUM_PKTS: usize = 12;
const BLK_FIRST_PKT: usize = 16;
/// Offsets in `struct tpacket3_hdr`.
const TP_NEXT_OFFSET: usize = 0;
const TP_SNAPLEN: usize = 12;
const TP_LEN: usize = 16;
const TP_STATUS: usize = 20;
const TP_MAC: usize = 24;
const TP_VLAN_TCI: usize = 32;
const TP_VLAN_TPID: usize = 36;
const TP3_HDR_LEN: usize = 48;

/// The mapped ring.
pub(super) struct RxRing {
    base: NonNull<u8>,
    block_size: usize,
    blocks: usize,
}

// SAFETY: the ring is plain memory shared with the kernel, reachable only
// through this struct; nothing in it is tied to the thread that mapped it,
// and every access goes through `&self`/`&mut self` of the one owner.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Map the ring a `PACKET_RX_RING` setsockopt on `fd` just created.
    pub(super) fn map(fd: BorrowedFd<'_>, block_size: usize, blocks: usize) -> io::Result<RxRing> {
        let len = block_size * blocks;
        // SAFETY: a fresh shared mapping chosen by the kernel (addr NULL)
        // overlaps no Rust object; the fd is a packet socket with an rx ring
        // of exactly `len` bytes (the ring's pages are kernel memory, never
        // swapped, so no MAP_LOCKED), and failure is reported as MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RxRing {
            base: NonNull::new(p.cast()).expect("mmap success is never NULL"),
            block_size,
            blocks,
        })
    }

    pub(super) fn blocks(&self) -> usize {
        self.blocks
    }

    fn status_word(&self, i: usize) -> &AtomicU32 {
        assert!(i < self.blocks);
        // SAFETY: block `i` starts inside the mapping (i < blocks) at a
        // page-aligned offset, so `+ 8` is 4-byte aligned and in bounds; the
        // mapping lives as long as `self`. The kernel writes this word with
        // release semantics (smp_wmb before the store) and reads it with
        // acquire semantics, so treating it as an atomic is the intended
        // protocol.
        unsafe {
            AtomicU32::from_ptr(
                self.base
                    .as_ptr()
                    .add(i * self.block_size + BLK_STATUS)
                    .cast(),
            )
        }
    }

    /// Block `i` if the kernel has handed it to user space.
    pub(super) fn user_block(&self, i: usize) -> Option<Block<'_>> {
        let status = self.status_word(i).load(Ordering::Acquire);
        if status & TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the acquire load saw TP_STATUS_USER, so the kernel has
        // finished writing block `i` and will not write it again until
        // `release(i)` stores TP_STATUS_KERNEL; `release` takes `&mut self`,
        // so it cannot run while this shared view is alive. The range is
        // inside the mapping.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(i * self.block_size), self.block_size)
        };
        Some(Block { bytes, status })
    }

    /// Hand block `i` back to the kernel.
    pub(super) fn release(&mut self, i: usize) {
        self.status_word(i)
            .store(TP_STATUS_KERNEL, Ordering::Release);
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region `map` created; no `Block` can
        // outlive `self`, so nothing refers to it afterwards.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.block_size * self.blocks);
        }
    }
}

fn rd32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn rd16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// A block user space owns, as bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Block<'a> {
    bytes: &'a [u8],
    status: u32,
}

/// One received frame in a block.
#[derive(Debug, Clone, Copy)]
pub(super) struct RxFrame<'a> {
    /// Frame bytes from the MAC header on (`tp_snaplen` of them).
    pub data: &'a [u8],
    /// Length of the frame on the wire (`tp_len`); above `data.len()` when
    /// the block had no room for all of it.
    pub wire_len: usize,
    /// An 802.1Q tag the kernel took out of the frame (`(tpid, tci)`).
    pub vlan: Option<(u16, u16)>,
    /// The virtio-net header in front of the MAC header, when enabled.
    pub vnet: Option<[u8; VNET_HDR_LEN]>,
    /// Offset of the next frame from this one; 0 for the last.
    pub next_offset: usize,
}

impl<'a> Block<'a> {
    /// A view over bytes laid out as a block (tests build these by hand).
    #[cfg(test)]
    pub(super) fn from_bytes(bytes: &'a [u8]) -> Option<Block<'a>> {
        Some(Block {
            status: rd32(bytes, BLK_STATUS)?,
            bytes,
        })
    }

    /// The kernel dropped frames while this block was being filled.
    pub(super) fn losing(&self) -> bool {
        self.status & TP_STATUS_LOSING != 0
    }

    pub(super) fn num_frames(&self) -> u32 {
        rd32(self.bytes, BLK_NUM_PKTS).unwrap_or(0)
    }

    pub(super) fn first_offset(&self) -> usize {
        rd32(self.bytes, BLK_FIRST_PKT).unwrap_or(0) as usize
    }

    /// The frame whose `tpacket3_hdr` is at `off`; `None` if any part of it
    /// would lie outside the block.
    pub(super) fn frame_at(&self, off: usize, with_vnet: bool) -> Option<RxFrame<'a>> {
        let b = self.bytes;
        if off < BLK_FIRST_PKT || off.checked_add(TP3_HDR_LEN)? > b.len() {
            return None;
        }
        let snaplen = rd32(b, off + TP_SNAPLEN)? as usize;
        let wire_len = rd32(b, off + TP_LEN)? as usize;
        let status = rd32(b, off + TP_STATUS)?;
        let mac = rd16(b, off + TP_MAC)? as usize;
        let start = off + mac;
        let data = b.get(start..start.checked_add(snaplen)?)?;
        let vlan = if status & TP_STATUS_VLAN_VALID != 0 {
            let tci = rd32(b, off + TP_VLAN_TCI)? as u16;
            let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                rd16(b, off + TP_VLAN_TPID)?
            } else {
                0x8100
            };
            Some((tpid, tci))
        } else {
            None
        };
        let vnet = if with_vnet {
            if mac < TP3_HDR_LEN + VNET_HDR_LEN {
                return None;
            }
            Some(b.get(start - VNET_HDR_LEN..start)?.try_into().ok()?)
        } else {
            None
        };
        Some(RxFrame {
            data,
            wire_len,
            vlan,
            vnet,
            next_offset: rd32(b, off + TP_NEXT_OFFSET)? as usize,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A frame for [`build_block`]: bytes stored, wire length, VLAN tag
    /// taken out `(tpid, tci)`, virtio-net header.
    pub(crate) type TestFrame<'a> = (
        &'a [u8],
        u32,
        Option<(u16, u16)>,
        Option<[u8; VNET_HDR_LEN]>,
    );

    /// Lay out a block the way the kernel does: header, then frames each
    /// with a `tpacket3_hdr`, an optional vnet header and the frame.
    pub(crate) fn build_block(size: usize, status: u32, frames: &[TestFrame<'_>]) -> Vec<u8> {
        let mut b = vec![0u8; size];
        let put32 =
            |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        put32(&mut b, BLK_STATUS, status);
        put32(&mut b, BLK_NUM_PKTS, frames.len() as u32);
        let first = 48;
        put32(&mut b, BLK_FIRST_PKT, first as u32);
        let mut off = first;
        for (n, (data, wire_len, vlan, vnet)) in frames.iter().enumerate() {
            let mac = 80; // TPACKET_ALIGN(48 + 16) + room for a vnet header
            let next = (mac + data.len()).next_multiple_of(16);
            put32(
                &mut b,
                off + TP_NEXT_OFFSET,
                if n + 1 == frames.len() {
                    0
                } else {
                    next as u32
                },
            );
            put32(&mut b, off + TP_SNAPLEN, data.len() as u32);
            put32(&mut b, off + TP_LEN, *wire_len);
            let mut st = TP_STATUS_USER;
            if let Some((tpid, tci)) = vlan {
                st |= TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID;
                put32(&mut b, off + TP_VLAN_TCI, *tci as u32);
                b[off + TP_VLAN_TPID..off + TP_VLAN_TPID + 2].copy_from_slice(&tpid.to_ne_bytes());
            }
            put32(&mut b, off + TP_STATUS, st);
            b[off + TP_MAC..off + TP_MAC + 2].copy_from_slice(&(mac as u16).to_ne_bytes());
            if let Some(v) = vnet {
                b[off + mac - VNET_HDR_LEN..off + mac].copy_from_slice(v);
            }
            b[off + mac..off + mac + data.len()].copy_from_slice(data);
            off += next;
        }
        b
    }

    #[test]
    fn frames_are_walked_with_their_metadata() {
        let a = [1u8; 60];
        let c = [2u8; 100];
        let v = [9u8; VNET_HDR_LEN];
        let raw = build_block(
            4096,
            TP_STATUS_USER | TP_STATUS_LOSING,
            &[
                (&a, 60, None, Some(v)),
                (&c, 1500, Some((0x88a8, 7)), Some(v)),
            ],
        );
        let blk = Block::from_bytes(&raw).unwrap();
        assert!(blk.losing());
        assert_eq!(blk.num_frames(), 2);
        let f0 = blk.frame_at(blk.first_offset(), true).unwrap();
        assert_eq!(f0.data, &a);
        assert_eq!(f0.wire_len, 60);
        assert_eq!(f0.vlan, None);
        assert_eq!(f0.vnet, Some(v));
        let f1 = blk
            .frame_at(blk.first_offset() + f0.next_offset, true)
            .unwrap();
        assert_eq!(f1.data, &c);
        assert_eq!(f1.wire_len, 1500, "truncated: snaplen 100 of 1500");
        assert_eq!(f1.vlan, Some((0x88a8, 7)));
        assert_eq!(f1.next_offset, 0);
    }

    #[test]
    fn offsets_outside_the_block_are_refused() {
        let a = [1u8; 60];
        let mut raw = build_block(512, TP_STATUS_USER, &[(&a, 60, None, None)]);
        let blk = Block::from_bytes(&raw).unwrap();
        assert!(blk.frame_at(4000, false).is_none());
        assert!(blk.frame_at(0, false).is_none());
        // A snaplen running past the end.
        raw[48 + TP_SNAPLEN..48 + TP_SNAPLEN + 4].copy_from_slice(&10_000u32.to_ne_bytes());
        let blk = Block::from_bytes(&raw).unwrap();
        assert!(blk.frame_at(48, false).is_none());
    }
}
