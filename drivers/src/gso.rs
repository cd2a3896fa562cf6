//! Software fallbacks for offloads an egress port cannot take: completing a
//! partial (CHECKSUM_PARTIAL) L4 checksum, and segmenting a TCP super-frame
//! (IPv4 or IPv6) into MSS-sized frames, as the kernel's GSO would.
//!
//! Pure functions over byte slices: no syscalls, no allocation. Segments are
//! handed out as (rebuilt headers, payload slice of the super-frame) so a
//! driver can `writev` them without copying the payload. The one exception,
//! [`finish_in_software`], writes segments into pool frames for egresses that
//! take no offload at all (AF_XDP); it is off the common path.
//!
//! Owns: the Internet checksum and TCP segmentation. Never: I/O, IP options
//! other than IPv4 header options, IPv6 extension headers (refused).

use rvs_switch::PacketPool;
use rvs_switch::buf::{Offload, PktBuf};

/// Largest rebuilt header block: two VLAN tags, IPv6, TCP with options.
pub const MAX_HEADERS: usize = 14 + 8 + 40 + 60;

/// Why a frame could not be segmented or checksummed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GsoError {
    #[error("segment frame: truncated {0} header")]
    Truncated(&'static str),
    #[error("segment frame: not TCP over IPv4/IPv6 (ethertype {ethertype:#06x}, protocol {proto})")]
    NotTcp { ethertype: u16, proto: u8 },
    #[error("segment frame: gso_size {0} is not usable")]
    BadMss(u16),
    #[error(
        "complete checksum: csum_start {start} + csum_offset {offset} beyond a {len}-byte frame"
    )]
    BadCsumOffset {
        start: usize,
        offset: usize,
        len: usize,
    },
}

/// How segments get their TCP checksum.
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

// The Internet checksum arithmetic is the switch crate's (one copy for the
// whole project): an unfolded ones' complement sum and its fold.
pub use rvs_switch::wire::udp::{csum_add, csum_fold};

/// Length of the Ethernet header including up to two VLAN tags
/// (802.1Q, 802.1ad, and the old 0x9100 QinQ type).
pub fn l2_len(frame: &[u8]) -> Option<usize> {
    let mut off = 12;
    for _ in 0..3 {
        let t = u16::from_be_bytes(frame.get(off..off + 2)?.try_into().ok()?);
        if matches!(t, 0x8100 | 0x88a8 | 0x9100) {
            off += 4;
        } else {
            return Some(off + 2);
        }
    }
    None
}

/// The ethertype after the VLAN tags.
fn ethertype(frame: &[u8], l2: usize) -> u16 {
    u16::from_be_bytes([frame[l2 - 2], frame[l2 - 1]])
}

/// Finish a partial checksum in place: sum from `start` to the end of the
/// frame (the field already holds the pseudo-header sum) and store the
/// complement at `start + offset`, as the kernel's `skb_checksum_help` does
/// (a zero result is sent as 0xffff, which UDP requires).
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> Result<(), GsoError> {
    if start + offset + 2 > frame.len() {
        return Err(GsoError::BadCsumOffset {
            start,
            offset,
            len: frame.len(),
        });
    }
    let c = !csum_fold(csum_add(0, &frame[start..]));
    let c = if c == 0 { 0xffff } else { c };
    frame[start + offset..start + offset + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Where the headers of a TCP frame are.
#[derive(Debug, Clone, Copy)]
struct TcpLayout {
    l2: usize,
    l3: usize,
    v6: bool,
    l4: usize,
    tcp_len: usize,
}

fn tcp_layout(frame: &[u8]) -> Result<TcpLayout, GsoError> {
    let l2 = l2_len(frame).ok_or(GsoError::Truncated("Ethernet"))?;
    let et = ethertype(frame, l2);
    let ip = frame.get(l2..).ok_or(GsoError::Truncated("IP"))?;
    let (v6, l3, proto) = match et {
        0x0800 => {
            if ip.len() < 20 {
                return Err(GsoError::Truncated("IPv4"));
            }
            let ihl = (ip[0] & 0xf) as usize * 4;
            if ihl < 20 || ip.len() < ihl {
                return Err(GsoError::Truncated("IPv4"));
            }
            (false, ihl, ip[9])
        }
        0x86dd => {
            if ip.len() < 40 {
                return Err(GsoError::Truncated("IPv6"));
            }
            (true, 40, ip[6])
        }
        _ => {
            return Err(GsoError::NotTcp {
                ethertype: et,
                proto: 0,
            });
        }
    };
    if proto != 6 {
        return Err(GsoError::NotTcp {
            ethertype: et,
            proto,
        });
    }
    let tcp = &ip[l3..];
    if tcp.len() < 20 {
        return Err(GsoError::Truncated("TCP"));
    }
    let tcp_len = (tcp[12] >> 4) as usize * 4;
    if tcp_len < 20 || tcp.len() < tcp_len {
        return Err(GsoError::Truncated("TCP"));
    }
    Ok(TcpLayout {
        l2,
        l3,
        v6,
        l4: l2 + l3,
        tcp_len,
    })
}

/// Header length (L2 + L3 + TCP) of a TCP frame, the virtio `hdr_len`.
pub fn tcp_headers_len(frame: &[u8]) -> Option<usize> {
    tcp_layout(frame).ok().map(|t| t.l4 + t.tcp_len)
}

/// Pseudo-header sum for a TCP segment of `l4_len` bytes.
fn pseudo_sum(hdr: &[u8], t: &TcpLayout, l4_len: usize) -> u64 {
    let ip = &hdr[t.l2..];
    if t.v6 {
        let s = csum_add(0, &ip[8..40]);
        s + l4_len as u64 + 6
    } else {
        let s = csum_add(0, &ip[12..20]);
        s + l4_len as u64 + 6
    }
}

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Split a TCP super-frame into segments of at most `mss` payload bytes and
/// hand each to `emit`, in order. Per segment: IPv4 total length, ID (+1
/// each) and header checksum, or IPv6 payload length; TCP sequence number;
/// FIN and PSH only on the last segment, CWR only on the first; TCP checksum
/// per `mode`. Stops at the first error `emit` returns. Returns how many
/// segments were emitted.
pub fn segment_tcp<E>(
    frame: &[u8],
    mss: u16,
    mode: CsumMode,
    mut emit: impl FnMut(Segment<'_>) -> Result<(), E>,
) -> Result<Result<usize, E>, GsoError> {
    if mss == 0 {
        return Err(GsoError::BadMss(mss));
    }
    let t = tcp_layout(frame)?;
    let hlen = t.l4 + t.tcp_len;
    let payload = &frame[hlen..];
    let mut hdr = [0u8; MAX_HEADERS];
    if hlen > MAX_HEADERS {
        return Err(GsoError::Truncated("headers (too long)"));
    }
    let seq0 = u32::from_be_bytes(frame[t.l4 + 4..t.l4 + 8].try_into().unwrap());
    let flags0 = frame[t.l4 + 13];
    let id0 = u16::from_be_bytes([frame[t.l2 + 4], frame[t.l2 + 5]]);
    let nseg = payload.len().div_ceil(mss as usize).max(1);
    for (i, start) in (0..nseg).map(|i| (i, i * mss as usize)) {
        let end = (start + mss as usize).min(payload.len());
        let chunk = &payload[start..end];
        let h = &mut hdr[..hlen];
        h.copy_from_slice(&frame[..hlen]);
        let l4_len = t.tcp_len + chunk.len();
        if t.v6 {
            h[t.l2 + 4..t.l2 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        } else {
            let tot = (t.l3 + l4_len) as u16;
            h[t.l2 + 2..t.l2 + 4].copy_from_slice(&tot.to_be_bytes());
            h[t.l2 + 4..t.l2 + 6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
            h[t.l2 + 10..t.l2 + 12].fill(0);
            let c = !csum_fold(csum_add(0, &h[t.l2..t.l4]));
            h[t.l2 + 10..t.l2 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let seq = seq0.wrapping_add(start as u32);
        h[t.l4 + 4..t.l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = flags0;
        if i + 1 < nseg {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            flags &= !TCP_CWR;
        }
        h[t.l4 + 13] = flags;
        let ps = pseudo_sum(h, &t, l4_len);
        let csum_at = t.l4 + 16;
        let partial_csum = match mode {
            CsumMode::Full => {
                h[csum_at..csum_at + 2].fill(0);
                let s = csum_add(csum_add(ps, &h[t.l4..hlen]), chunk);
                h[csum_at..csum_at + 2].copy_from_slice(&(!csum_fold(s)).to_be_bytes());
                None
            }
            CsumMode::Partial => {
                h[csum_at..csum_at + 2].copy_from_slice(&csum_fold(ps).to_be_bytes());
                Some((t.l4 as u16, 16))
            }
        };
        if let Err(e) = emit(Segment {
            headers: h,
            payload: chunk,
            partial_csum,
        }) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(nseg))
}

#[cfg(test)]
#[path = "gso_tests.rs"]
mod tests;

/// What [`finish_in_software`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Nothing to do: the packet is complete as it is.
    AsIs,
    /// Its partial checksum was completed in place.
    Checksummed,
    /// It was cut into this many segments (the original frame was freed).
    Segmented(usize),
}

/// Why [`finish_in_software`] dropped a packet (it was freed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfinished {
    /// Offload metadata that does not match the frame, or a GSO type that
    /// is not TCP.
    BadOffload,
    /// No free frame for a segment.
    NoBuffer,
    /// A segment would not fit the egress even so.
    TooBig,
}

/// For an egress that takes no offloads (AF_XDP, a plain packet socket):
/// turn a packet carrying GSO or partial-checksum metadata into complete
/// frames of at most `max_len` bytes, handed to `emit` in order, each from
/// the pool's small frames. Complete packets pass through untouched.
pub fn finish_in_software(
    pool: &mut PacketPool,
    mut b: PktBuf,
    max_len: usize,
    mut emit: impl FnMut(&mut PacketPool, PktBuf),
) -> Result<Finished, Unfinished> {
    let o = b.offload();
    if o.is_gso() {
        let base = o.gso_type & !Offload::GSO_ECN;
        if base != Offload::GSO_TCPV4 && base != Offload::GSO_TCPV6 {
            pool.free(b);
            return Err(Unfinished::BadOffload);
        }
        // Copy the frame out: segments are written into frames of the same pool.
        let frame = pool.data(&b).to_vec();
        pool.free(b);
        let mut segs = Vec::new();
        let r = segment_tcp(&frame, o.gso_size, CsumMode::Full, |s| {
            let len = s.headers.len() + s.payload.len();
            if len > max_len {
                return Err(Unfinished::TooBig);
            }
            let mut seg = pool.alloc().ok_or(Unfinished::NoBuffer)?;
            let room = pool.tail_room_mut(&seg);
            room[..s.headers.len()].copy_from_slice(s.headers);
            room[s.headers.len()..len].copy_from_slice(s.payload);
            pool.set_len(&mut seg, len);
            segs.push(seg);
            Ok(())
        });
        let n = segs.len();
        match r {
            Ok(Ok(_)) => {
                for s in segs {
                    emit(pool, s);
                }
                Ok(Finished::Segmented(n))
            }
            Ok(Err(e)) => {
                for s in segs {
                    pool.free(s);
                }
                Err(e)
            }
            Err(_) => {
                for s in segs {
                    pool.free(s);
                }
                Err(Unfinished::BadOffload)
            }
        }
    } else if o.needs_csum() {
        let frame = pool.data_mut(&b);
        let done = l2_len(frame).and_then(|l2| {
            complete_checksum(frame, l2 + o.csum_start as usize, o.csum_offset as usize).ok()
        });
        if done.is_none() {
            pool.free(b);
            return Err(Unfinished::BadOffload);
        }
        b.set_offload(Offload::NONE);
        emit(pool, b);
        Ok(Finished::Checksummed)
    } else {
        emit(pool, b);
        Ok(Finished::AsIs)
    }
}
