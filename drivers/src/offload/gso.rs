//! Segmentation of a GSO super-frame (TCP over IPv4/IPv6, or UDP with
//! `GSO_UDP_L4`) into frames of at most `gso_size` payload bytes, as the
//! kernel's `tcp_gso_segment` / `__udp_gso_segment` would. One plan, two ways
//! to use it:
//!
//! - [`GsoPlan::segment`]: per segment a rebuilt header block (on the
//!   stack) and a payload slice of the super-frame, so a driver can `writev`
//!   or `sendmmsg` them without copying the payload (TAP, VXLAN VTEP);
//! - [`GsoPlan::fix_segment`]: the caller copies headers and payload into a
//!   buffer of its own and the plan fixes them up there (AF_PACKET receive,
//!   AF_XDP transmit).
//!
//! Per segment: IPv4 total length, ID (+1 each) and header checksum, or
//! IPv6 payload length; TCP sequence number, FIN and PSH only on the last
//! segment, CWR only on the first, or UDP length; the L4 checksum complete
//! or, with [`CsumMode::Partial`], left partial for the egress.
//!
//! Owns: the segment header fix-ups. Never: I/O, allocation, panics on
//! malformed frames (every offset is checked when the plan is made).

use std::ops::Range;

use rvs_switch::buf::Offload;

use super::OffloadError;
use super::csum::{
    ETH_P_IPV4, ETH_P_IPV6, IPPROTO_TCP, IPPROTO_UDP, csum_add, csum_finish, csum_fold, l2_len,
    l3_offset,
};

/// Largest header block [`GsoPlan::segment`] rebuilds: two VLAN tags, IPv6,
/// TCP with options.
pub const MAX_HEADERS: usize = 14 + 8 + 40 + 60;

/// How segments get their L4 checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsumMode {
    /// Compute it in software: segments leave complete.
    Full,
    /// Store the pseudo-header sum and let the egress finish it
    /// (CHECKSUM_PARTIAL); each [`Segment`] says where.
    Partial,
}

/// One segment: headers rebuilt for it, then its slice of the payload.
#[derive(Debug)]
pub struct Segment<'a> {
    pub headers: &'a [u8],
    pub payload: &'a [u8],
    /// With [`CsumMode::Partial`]: (csum_start, csum_offset) from the start
    /// of the frame, for the egress's offload header.
    pub partial_csum: Option<(u16, u16)>,
}

/// How to cut one super-frame: where its headers are and how big each
/// segment's payload is. Offsets are into the frame the plan was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsoPlan {
    l3: usize,
    l4: usize,
    hdr_len: usize,
    mss: usize,
    payload: usize,
    segs: usize,
    v4: bool,
    tcp: bool,
    /// What every segment starts from, read once from the super-frame:
    /// TCP sequence number and flags, IPv4 ID, the IPv4 header's sum with
    /// total length, ID and checksum taken as zero, and the pseudo-header
    /// sum without the L4 length.
    seq0: u32,
    flags0: u8,
    id0: u16,
    ip_base: u64,
    pseudo_base: u64,
}

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

fn get16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn put16(d: &mut [u8], at: usize, v: u16) {
    d[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

impl GsoPlan {
    /// Plan the segmentation of `frame`, a super-frame of `gso_type`
    /// (virtio / [`Offload`] numbering) cut at `gso_size` payload bytes,
    /// its L4 header at byte `l4` (the vnet header's `csum_start`).
    pub fn new(
        frame: &[u8],
        gso_type: u8,
        gso_size: u16,
        l4: usize,
    ) -> Result<GsoPlan, OffloadError> {
        let base = gso_type & !Offload::GSO_ECN;
        let tcp = match base {
            Offload::GSO_TCPV4 | Offload::GSO_TCPV6 => true,
            Offload::GSO_UDP_L4 => false,
            // UFO: IP fragmentation, long removed from Linux senders.
            other => return Err(OffloadError::UnsupportedGso(other)),
        };
        let (l3, et) = l3_offset(frame).ok_or(OffloadError::BadHeaders("no L3 header"))?;
        let v4 = match et {
            ETH_P_IPV4 => true,
            ETH_P_IPV6 => false,
            _ => return Err(OffloadError::BadHeaders("not IPv4 or IPv6")),
        };
        if (base == Offload::GSO_TCPV4 && !v4) || (base == Offload::GSO_TCPV6 && v4) {
            return Err(OffloadError::BadHeaders("GSO type and IP version disagree"));
        }
        let min_l3 = if v4 {
            let ihl = frame
                .get(l3)
                .map(|b| ((b & 0x0f) as usize) * 4)
                .ok_or(OffloadError::BadHeaders("IPv4 header truncated"))?;
            if ihl < 20 {
                return Err(OffloadError::BadHeaders("IPv4 header length below 20"));
            }
            ihl
        } else {
            40
        };
        if l4 < l3 + min_l3 {
            return Err(OffloadError::BadHeaders(
                "L4 header starts inside the IP header",
            ));
        }
        let proto = if v4 {
            frame.get(l3 + 9).copied()
        } else {
            frame.get(l3 + 6).copied()
        };
        let want = if tcp { IPPROTO_TCP } else { IPPROTO_UDP };
        // IPv6 extension headers put another number here; the checksum
        // start still finds the L4 header, so only IPv4 is held to it.
        if v4 && proto != Some(want) {
            return Err(OffloadError::BadHeaders(
                "IP protocol does not match GSO type",
            ));
        }
        let l4_len = if tcp {
            let off = *frame
                .get(l4 + 12)
                .ok_or(OffloadError::BadHeaders("TCP header truncated"))?;
            let n = ((off >> 4) as usize) * 4;
            if n < 20 {
                return Err(OffloadError::BadHeaders("TCP data offset below 20 bytes"));
            }
            n
        } else {
            8
        };
        let hdr_len = l4 + l4_len;
        if hdr_len > frame.len() {
            return Err(OffloadError::BadHeaders("headers run past the frame"));
        }
        let mss = gso_size as usize;
        if mss == 0 {
            return Err(OffloadError::BadHeaders("GSO size 0"));
        }
        let payload = frame.len() - hdr_len;
        let (seq0, flags0) = if tcp {
            (
                u32::from_be_bytes(frame[l4 + 4..l4 + 8].try_into().expect("4 bytes")),
                frame[l4 + 13],
            )
        } else {
            (0, 0)
        };
        let (id0, ip_base, addrs) = if v4 {
            let mut ip = [0u8; 60];
            let ip = &mut ip[..min_l3];
            ip.copy_from_slice(&frame[l3..l3 + min_l3]);
            let id0 = get16(ip, 4);
            ip[2..6].fill(0);
            ip[10..12].fill(0);
            (id0, csum_add(0, ip), &frame[l3 + 12..l3 + 20])
        } else {
            (0, 0, &frame[l3 + 8..l3 + 40])
        };
        Ok(GsoPlan {
            l3,
            l4,
            hdr_len,
            mss,
            payload,
            segs: payload.div_ceil(mss).max(1),
            v4,
            tcp,
            seq0,
            flags0,
            id0,
            ip_base,
            pseudo_base: csum_add(0, addrs) + want as u64,
        })
    }

    /// The plan for a packet's offload state (`csum_start` counted from the
    /// L3 header, as the switch keeps it; GSO always has a partial checksum).
    pub fn from_offload(frame: &[u8], o: Offload) -> Result<GsoPlan, OffloadError> {
        if !o.needs_csum() {
            return Err(OffloadError::BadHeaders("GSO without a partial checksum"));
        }
        let l2 = l2_len(frame).ok_or(OffloadError::BadHeaders("no L3 header"))?;
        GsoPlan::new(frame, o.gso_type, o.gso_size, l2 + o.csum_start as usize)
    }

    /// The same plan for the frame with `n` bytes inserted before the L3
    /// header (a VLAN tag put back).
    pub fn shifted(mut self, n: usize) -> GsoPlan {
        self.l3 += n;
        self.l4 += n;
        self.hdr_len += n;
        self
    }

    pub fn segments(&self) -> usize {
        self.segs
    }

    /// Bytes of headers every segment repeats (the virtio `hdr_len`).
    pub fn hdr_len(&self) -> usize {
        self.hdr_len
    }

    /// Where segment `i`'s payload lies in the planned frame.
    pub fn payload_range(&self, i: usize) -> Range<usize> {
        let start = self.hdr_len + i * self.mss;
        let end = (start + self.mss).min(self.hdr_len + self.payload);
        start..end
    }

    /// Length of segment `i` (headers plus payload).
    pub fn segment_len(&self, i: usize) -> usize {
        self.hdr_len + self.payload_range(i).len()
    }

    /// Fix up segment `i` in place: its bytes are the planned frame's
    /// headers followed by `payload_range(i)`; its L4 checksum is completed.
    pub fn fix_segment(&self, seg: &mut [u8], i: usize) {
        debug_assert_eq!(seg.len(), self.segment_len(i));
        let (h, payload) = seg.split_at_mut(self.hdr_len);
        self.fix_headers(h, payload, i, CsumMode::Full);
    }

    /// Fix up the header block `h` (a copy of the planned frame's headers)
    /// for segment `i`, whose payload is `payload`. Returns where the
    /// partial checksum is with [`CsumMode::Partial`].
    #[inline]
    fn fix_headers(
        &self,
        h: &mut [u8],
        payload: &[u8],
        i: usize,
        mode: CsumMode,
    ) -> Option<(u16, u16)> {
        let len = h.len() + payload.len();
        let (l3, l4) = (self.l3, self.l4);
        if self.v4 {
            let tot = (len - l3) as u16;
            let id = self.id0.wrapping_add(i as u16);
            put16(h, l3 + 2, tot);
            put16(h, l3 + 4, id);
            put16(
                h,
                l3 + 10,
                csum_finish(self.ip_base + tot as u64 + id as u64),
            );
        } else {
            put16(h, l3 + 4, (len - l3 - 40) as u16);
        }
        let l4_len = len - l4;
        let field = if self.tcp {
            let seq = self.seq0.wrapping_add((i * self.mss) as u32);
            h[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
            let mut flags = self.flags0;
            if i + 1 < self.segs {
                flags &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                flags &= !TCP_CWR;
            }
            h[l4 + 13] = flags;
            l4 + 16
        } else {
            put16(h, l4 + 4, l4_len as u16);
            l4 + 6
        };
        let pseudo = self.pseudo_base + l4_len as u64;
        match mode {
            CsumMode::Full => {
                put16(h, field, 0);
                // The L4 header has an even length, so the two sums join.
                let c = csum_finish(csum_add(csum_add(pseudo, &h[l4..]), payload));
                put16(h, field, if !self.tcp && c == 0 { 0xffff } else { c });
                None
            }
            CsumMode::Partial => {
                put16(h, field, csum_fold(pseudo));
                Some((l4 as u16, (field - l4) as u16))
            }
        }
    }

    /// Cut `frame` (the frame the plan was made for) and hand each segment
    /// to `emit`, in order, as a rebuilt header block and a payload slice.
    /// Stops at the first error `emit` returns. Returns how many segments
    /// were emitted, or why the frame cannot be cut this way.
    pub fn segment<E>(
        &self,
        frame: &[u8],
        mode: CsumMode,
        mut emit: impl FnMut(Segment<'_>) -> Result<(), E>,
    ) -> Result<Result<usize, E>, OffloadError> {
        if self.hdr_len > MAX_HEADERS {
            return Err(OffloadError::BadHeaders("headers too long to rebuild"));
        }
        if frame.len() != self.hdr_len + self.payload {
            return Err(OffloadError::BadHeaders(
                "not the frame the plan was made for",
            ));
        }
        let mut hdr = [0u8; MAX_HEADERS];
        let h = &mut hdr[..self.hdr_len];
        for i in 0..self.segs {
            h.copy_from_slice(&frame[..self.hdr_len]);
            let payload = &frame[self.payload_range(i)];
            let partial_csum = self.fix_headers(h, payload, i, mode);
            if let Err(e) = emit(Segment {
                headers: h,
                payload,
                partial_csum,
            }) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(self.segs))
    }
}
