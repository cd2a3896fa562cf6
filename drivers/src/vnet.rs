//! The virtio-net header (`virtio_net_hdr_v1`, 12 bytes) that TAP and
//! packet sockets with vnet headers put in front of every frame, and its
//! translation to and from the offload state a packet carries through the
//! switch ([`Offload`], with an L3-relative `csum_start`).
//!
//! Owns: the header's byte layout. Never: I/O.

use rvs_switch::buf::Offload;

use crate::gso;

/// Size of `virtio_net_hdr_v1` (the mergeable-rx-buffers layout).
pub const VNET_HDR_LEN: usize = 12;

/// The virtio-net header (`virtio_net_hdr_v1`), host byte order as tun
/// uses it without TUNSETVNETLE/BE.
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

    pub fn encode(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// The packet's offload state, `csum_start` made L3-relative. `None`
    /// when the header points outside the frame.
    pub fn to_offload(&self, frame: &[u8]) -> Option<Offload> {
        let mut o = Offload {
            flags: self.flags & (Offload::NEEDS_CSUM | Offload::DATA_VALID),
            gso_type: self.gso_type,
            gso_size: self.gso_size,
            csum_start: 0,
            csum_offset: 0,
        };
        if o.needs_csum() {
            let l2 = gso::l2_len(frame)?;
            let start = self.csum_start as usize;
            if start < l2 || start + self.csum_offset as usize + 2 > frame.len() {
                return None;
            }
            o.csum_start = (start - l2) as u16;
            o.csum_offset = self.csum_offset;
        }
        if o.is_gso() && (o.gso_size == 0 || !o.needs_csum()) {
            return None;
        }
        Some(o)
    }

    /// The header to send `frame` with, its offload state passed through.
    pub fn from_offload(o: Offload, frame: &[u8]) -> Option<VnetHdr> {
        let mut h = VnetHdr {
            flags: o.flags & Offload::NEEDS_CSUM,
            gso_type: o.gso_type,
            gso_size: o.gso_size,
            ..VnetHdr::default()
        };
        if o.needs_csum() {
            let start = gso::l2_len(frame)? + o.csum_start as usize;
            if start + o.csum_offset as usize + 2 > frame.len() {
                return None;
            }
            h.csum_start = start as u16;
            h.csum_offset = o.csum_offset;
            h.hdr_len = (start + o.csum_offset as usize + 2) as u16;
        }
        if o.is_gso() {
            h.hdr_len = gso::tcp_headers_len(frame)? as u16;
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnet_header_round_trips_and_csum_start_becomes_l3_relative() {
        let mut frame = vec![0u8; 14 + 20 + 20 + 10];
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        frame[14] = 0x45;
        frame[14 + 9] = 6;
        frame[14 + 20 + 12] = 5 << 4;
        let h = VnetHdr {
            flags: Offload::NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::parse(&h.encode()), h);
        let o = h.to_offload(&frame).unwrap();
        assert_eq!((o.csum_start, o.csum_offset, o.gso_size), (20, 16, 1448));
        // After a VLAN push the frame is 4 bytes longer in front.
        let mut tagged = frame[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0, 0, 10]);
        tagged.extend_from_slice(&frame[12..]);
        let back = VnetHdr::from_offload(o, &tagged).unwrap();
        assert_eq!((back.csum_start, back.csum_offset), (38, 16));
        assert_eq!(back.hdr_len, 58);
        assert_eq!(back.gso_type, Offload::GSO_TCPV4);
    }

    #[test]
    fn nonsense_headers_are_refused() {
        let frame = vec![0u8; 60];
        let past_end = VnetHdr {
            flags: Offload::NEEDS_CSUM,
            csum_start: 58,
            csum_offset: 16,
            ..VnetHdr::default()
        };
        assert!(past_end.to_offload(&frame).is_none());
        let gso_without_csum = VnetHdr {
            gso_type: Offload::GSO_TCPV4,
            gso_size: 1000,
            ..VnetHdr::default()
        };
        assert!(gso_without_csum.to_offload(&frame).is_none());
        assert_eq!(VnetHdr::default().to_offload(&frame), Some(Offload::NONE));
    }
}
