//! Finishing what a veth peer left to "hardware". With `PACKET_VNET_HDR` the
//! kernel puts a virtio-net header in front of every received frame saying
//! whether its L4 checksum is only partial (`NEEDS_CSUM`) and whether it is
//! a GSO super-frame (up to 64 KiB of TCP or UDP payload under one set of
//! headers). The AF_PACKET receive path hands the switch only wire-ready
//! frames, so it completes checksums and cuts super-frames into segments
//! here, in software, the way the kernel's `skb_checksum_help` and
//! `tcp_gso_segment` / `__udp_gso_segment` would.
//!
//! Owns: virtio-net header layout, checksum arithmetic and segment header
//! fix-ups over plain byte slices. Never: syscalls, allocation, panics on
//! malformed frames (every offset read is checked; bad input is an
//! [`OffloadError`] the caller counts and drops).

use std::ops::Range;

/// Size of `struct virtio_net_hdr` (the legacy header packet sockets use).
pub const VNET_HDR_LEN: usize = 10;

/// `struct virtio_net_hdr`, host byte order (packet sockets use the legacy,
/// native-endian layout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub const F_NEEDS_CSUM: u8 = 1;
    pub const GSO_NONE: u8 = 0;
    pub const GSO_TCPV4: u8 = 1;
    pub const GSO_UDP: u8 = 3;
    pub const GSO_TCPV6: u8 = 4;
    pub const GSO_UDP_L4: u8 = 5;
    pub const GSO_ECN: u8 = 0x80;

    pub fn parse(b: &[u8; VNET_HDR_LEN]) -> VnetHdr {
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        }
    }

    pub fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    #[inline]
    pub fn needs_csum(&self) -> bool {
        self.flags & Self::F_NEEDS_CSUM != 0
    }

    #[inline]
    pub fn is_gso(&self) -> bool {
        self.gso_type & !Self::GSO_ECN != Self::GSO_NONE
    }
}

/// Why a frame's offload work could not be done (the frame is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("checksum field at {start}+{offset} lies outside a {len}-byte frame")]
    CsumRange {
        start: usize,
        offset: usize,
        len: usize,
    },
    #[error("GSO type {0:#04x} is not supported (UFO fragmentation or unknown)")]
    UnsupportedGso(u8),
    #[error("GSO super-frame headers do not parse: {0}")]
    BadHeaders(&'static str),
}

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

/// Offset of the L3 header and its EtherType, skipping up to two VLAN tags.
pub fn l3_offset(frame: &[u8]) -> Option<(usize, u16)> {
    let mut off = 12;
    for _ in 0..3 {
        let et = be16(frame, off)?;
        match et {
            0x8100 | 0x88a8 | 0x9100 => off += 4,
            _ => return Some((off + 2, et)),
        }
    }
    None
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

pub use crate::gso::csum_add;
use crate::gso::csum_fold;

/// Fold a sum to 16 bits and complement it: the value for a checksum field.
pub fn csum_finish(acc: u64) -> u16 {
    !csum_fold(acc)
}

/// CRC32c (Castagnoli), as SCTP uses it; bitwise, for the rare SCTP frame.
fn crc32c(data: &[u8]) -> u32 {
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

/// Complete a partial checksum (`NEEDS_CSUM`): the field at
/// `start + offset` holds the pseudo-header sum; summing from `start` to the
/// end of the frame and complementing gives the final value. SCTP (CRC32c,
/// field at offset 8) is recomputed from scratch.
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
    let mut c = csum_finish(csum_add(0, &frame[start..]));
    if c == 0 {
        c = 0xffff;
    }
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
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
}

impl GsoPlan {
    /// Plan the segmentation of `frame`, a super-frame described by `h`.
    pub fn new(frame: &[u8], h: &VnetHdr) -> Result<GsoPlan, OffloadError> {
        let base = h.gso_type & !VnetHdr::GSO_ECN;
        let tcp = match base {
            VnetHdr::GSO_TCPV4 | VnetHdr::GSO_TCPV6 => true,
            VnetHdr::GSO_UDP_L4 => false,
            // UFO: IP fragmentation, long removed from Linux senders.
            VnetHdr::GSO_UDP => return Err(OffloadError::UnsupportedGso(base)),
            other => return Err(OffloadError::UnsupportedGso(other)),
        };
        let (l3, et) = l3_offset(frame).ok_or(OffloadError::BadHeaders("no L3 header"))?;
        let v4 = match et {
            ETH_P_IPV4 => true,
            ETH_P_IPV6 => false,
            _ => return Err(OffloadError::BadHeaders("not IPv4 or IPv6")),
        };
        if (base == VnetHdr::GSO_TCPV4 && !v4) || (base == VnetHdr::GSO_TCPV6 && v4) {
            return Err(OffloadError::BadHeaders("GSO type and IP version disagree"));
        }
        let min_l3 = if v4 { 20 } else { 40 };
        let l4 = h.csum_start as usize;
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
            ((off >> 4) as usize) * 4
        } else {
            8
        };
        if l4_len < 8 {
            return Err(OffloadError::BadHeaders("TCP data offset below 20 bytes"));
        }
        let hdr_len = l4 + l4_len;
        if hdr_len > frame.len() {
            return Err(OffloadError::BadHeaders("headers run past the frame"));
        }
        let mss = h.gso_size as usize;
        if mss == 0 {
            return Err(OffloadError::BadHeaders("GSO size 0"));
        }
        let payload = frame.len() - hdr_len;
        Ok(GsoPlan {
            l3,
            l4,
            hdr_len,
            mss,
            payload,
            segs: payload.div_ceil(mss).max(1),
            v4,
            tcp,
        })
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

    /// Bytes of headers every segment repeats.
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
    /// headers followed by `payload_range(i)`. Sets IP length (and IPv4 ID
    /// and header checksum), TCP sequence number and flags or UDP length,
    /// and a complete L4 checksum.
    pub fn fix_segment(&self, seg: &mut [u8], i: usize) {
        debug_assert_eq!(seg.len(), self.segment_len(i));
        let len = seg.len();
        let (l3, l4) = (self.l3, self.l4);
        let last = i + 1 == self.segs;
        if self.v4 {
            put16(seg, l3 + 2, (len - l3) as u16);
            let id = get16(seg, l3 + 4).wrapping_add(i as u16);
            put16(seg, l3 + 4, id);
            put16(seg, l3 + 10, 0);
            let ihl = ((seg[l3] & 0x0f) as usize) * 4;
            let c = csum_finish(csum_add(0, &seg[l3..l3 + ihl]));
            put16(seg, l3 + 10, c);
        } else {
            put16(seg, l3 + 4, (len - l3 - 40) as u16);
        }
        let l4_len = (len - l4) as u32;
        let (proto, field) = if self.tcp {
            let seq = u32::from_be_bytes([seg[l4 + 4], seg[l4 + 5], seg[l4 + 6], seg[l4 + 7]])
                .wrapping_add((i * self.mss) as u32);
            seg[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
            const FIN: u8 = 0x01;
            const PSH: u8 = 0x08;
            const CWR: u8 = 0x80;
            if !last {
                seg[l4 + 13] &= !(FIN | PSH);
            }
            if i > 0 {
                seg[l4 + 13] &= !CWR;
            }
            (IPPROTO_TCP, l4 + 16)
        } else {
            put16(seg, l4 + 4, l4_len as u16);
            (IPPROTO_UDP, l4 + 6)
        };
        put16(seg, field, 0);
        let mut acc = if self.v4 {
            csum_add(0, &seg[l3 + 12..l3 + 20])
        } else {
            csum_add(0, &seg[l3 + 8..l3 + 40])
        };
        acc += proto as u64 + l4_len as u64;
        let mut c = csum_finish(csum_add(acc, &seg[l4..]));
        if !self.tcp && c == 0 {
            c = 0xffff;
        }
        put16(seg, field, c);
    }
}

fn get16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn put16(d: &mut [u8], at: usize, v: u16) {
    d[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 + TCP (20-byte header) + payload, checksums left as
    /// a sender with offload would: IP header complete, TCP field holding
    /// the pseudo-header sum only.
    fn tcp4_frame(payload: &[u8], flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
        let ip = 14;
        f[ip] = 0x45;
        put16(&mut f, ip + 2, (20 + 20 + payload.len()) as u16);
        put16(&mut f, ip + 4, 0x1234);
        f[ip + 8] = 64;
        f[ip + 9] = IPPROTO_TCP;
        f[ip + 12..ip + 16].copy_from_slice(&[10, 0, 0, 1]);
        f[ip + 16..ip + 20].copy_from_slice(&[10, 0, 0, 2]);
        let c = csum_finish(csum_add(0, &f[ip..ip + 20]));
        put16(&mut f, ip + 10, c);
        let t = 34;
        put16(&mut f, t, 5555);
        put16(&mut f, t + 2, 80);
        f[t + 4..t + 8].copy_from_slice(&1000u32.to_be_bytes());
        f[t + 12] = 5 << 4;
        f[t + 13] = flags;
        f.extend_from_slice(payload);
        let tcp_len = (20 + payload.len()) as u64;
        let pseudo = csum_add(0, &f[ip + 12..ip + 20]) + IPPROTO_TCP as u64 + tcp_len;
        // Partial: the non-complemented folded pseudo-header sum.
        let partial = !csum_finish(pseudo);
        put16(&mut f, t + 16, partial);
        f
    }

    /// Whether a frame's IPv4 header and TCP/UDP checksum verify.
    fn verifies(f: &[u8]) -> bool {
        let (l3, _) = l3_offset(f).unwrap();
        let ihl = ((f[l3] & 0xf) as usize) * 4;
        if csum_finish(csum_add(0, &f[l3..l3 + ihl])) != 0 {
            return false;
        }
        let l4 = l3 + ihl;
        let pseudo = csum_add(0, &f[l3 + 12..l3 + 20]) + f[l3 + 9] as u64 + (f.len() - l4) as u64;
        csum_finish(csum_add(pseudo, &f[l4..])) == 0
    }

    #[test]
    fn vnet_header_round_trips() {
        let h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4 | VnetHdr::GSO_ECN,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::parse(&h.to_bytes()), h);
        assert!(h.is_gso() && h.needs_csum());
        assert!(!VnetHdr::default().is_gso());
    }

    #[test]
    fn known_checksum_vector() {
        // RFC 1071 example words.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(csum_finish(csum_add(0, &d)), !0xddf2);
        // Odd length pads with a zero byte.
        assert_eq!(csum_add(0, &[0xab]), 0xab00);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn partial_checksum_is_completed() {
        let mut f = tcp4_frame(b"hello, switch", 0x18);
        assert!(!verifies(&f), "partial checksum must not verify yet");
        complete_csum(&mut f, 34, 16).unwrap();
        assert!(verifies(&f));
        let mut short = f[..40].to_vec();
        assert!(matches!(
            complete_csum(&mut short, 34, 16),
            Err(OffloadError::CsumRange { .. })
        ));
    }

    #[test]
    fn tcp4_super_frame_is_cut_into_valid_segments() {
        let payload: Vec<u8> = (0..3500u32).map(|i| (i * 7) as u8).collect();
        // PSH|FIN|CWR|ACK on the super-frame.
        let f = tcp4_frame(&payload, 0x80 | 0x10 | 0x08 | 0x01);
        let h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let plan = GsoPlan::new(&f, &h).unwrap();
        assert_eq!(plan.segments(), 3);
        let mut joined = Vec::new();
        for i in 0..3 {
            let mut seg = f[..plan.hdr_len()].to_vec();
            seg.extend_from_slice(&f[plan.payload_range(i)]);
            assert_eq!(seg.len(), plan.segment_len(i));
            plan.fix_segment(&mut seg, i);
            assert!(verifies(&seg), "segment {i} checksums");
            assert_eq!(get16(&seg, 16) as usize, seg.len() - 14, "IP total length");
            assert_eq!(get16(&seg, 18), 0x1234 + i as u16, "IP id");
            let seq = u32::from_be_bytes(seg[38..42].try_into().unwrap());
            assert_eq!(seq, 1000 + (i * 1448) as u32);
            let flags = seg[47];
            assert_eq!(flags & 0x80 != 0, i == 0, "CWR on the first only");
            assert_eq!(flags & 0x09 != 0, i == 2, "PSH/FIN on the last only");
            assert!(flags & 0x10 != 0, "ACK on all");
            joined.extend_from_slice(&seg[54..]);
        }
        assert_eq!(joined, payload);
    }

    #[test]
    fn gso_plan_refuses_bad_input() {
        let f = tcp4_frame(&[0; 100], 0x10);
        let mut h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_UDP,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        assert_eq!(
            GsoPlan::new(&f, &h),
            Err(OffloadError::UnsupportedGso(VnetHdr::GSO_UDP))
        );
        h.gso_type = VnetHdr::GSO_TCPV6;
        assert!(matches!(
            GsoPlan::new(&f, &h),
            Err(OffloadError::BadHeaders(_))
        ));
        h.gso_type = VnetHdr::GSO_TCPV4;
        h.csum_start = 20;
        assert!(GsoPlan::new(&f, &h).is_err());
        h.csum_start = 34;
        assert!(GsoPlan::new(&f[..40], &h).is_err(), "truncated TCP header");
        h.gso_size = 0;
        assert!(GsoPlan::new(&f, &h).is_err());
    }

    #[test]
    fn shifted_plan_matches_a_tagged_frame() {
        let payload = vec![0x5a; 3000];
        let f = tcp4_frame(&payload, 0x10);
        let h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1400,
            csum_start: 34,
            csum_offset: 16,
        };
        let plan = GsoPlan::new(&f, &h).unwrap().shifted(4);
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        tagged.extend_from_slice(&f[12..]);
        for i in 0..plan.segments() {
            let mut seg = tagged[..plan.hdr_len()].to_vec();
            seg.extend_from_slice(&tagged[plan.payload_range(i)]);
            plan.fix_segment(&mut seg, i);
            assert!(verifies(&seg));
        }
    }

    #[test]
    fn udp6_super_frame_is_cut_into_datagrams() {
        let payload: Vec<u8> = (0..2500u32).map(|i| (i * 3) as u8).collect();
        let mut f = vec![0u8; 14 + 40 + 8];
        f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        f[14] = 0x60;
        put16(&mut f, 18, (8 + payload.len()) as u16);
        f[20] = IPPROTO_UDP;
        f[21] = 64;
        f[22..38].copy_from_slice(&[0xfd, 0, 0, 0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f[38..54].copy_from_slice(&[0xfd, 0, 0, 0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        put16(&mut f, 54, 4000);
        put16(&mut f, 56, 5000);
        put16(&mut f, 58, (8 + payload.len()) as u16);
        f.extend_from_slice(&payload);
        let h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_UDP_L4,
            hdr_len: 62,
            gso_size: 1000,
            csum_start: 54,
            csum_offset: 6,
        };
        let plan = GsoPlan::new(&f, &h).unwrap();
        assert_eq!(plan.segments(), 3);
        let mut joined = Vec::new();
        for i in 0..3 {
            let mut seg = f[..plan.hdr_len()].to_vec();
            seg.extend_from_slice(&f[plan.payload_range(i)]);
            plan.fix_segment(&mut seg, i);
            let ulen = seg.len() - 54;
            assert_eq!(get16(&seg, 18) as usize, ulen, "IPv6 payload length");
            assert_eq!(get16(&seg, 58) as usize, ulen, "UDP length");
            let pseudo = csum_add(0, &seg[22..54]) + IPPROTO_UDP as u64 + ulen as u64;
            assert_eq!(csum_finish(csum_add(pseudo, &seg[54..])), 0, "segment {i}");
            joined.extend_from_slice(&seg[62..]);
        }
        assert_eq!(joined, payload);
    }
}
