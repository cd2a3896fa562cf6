//! The virtio-net header a TAP (`IFF_VNET_HDR`) or a packet socket
//! (`PACKET_VNET_HDR`) puts in front of every frame, and its translation to
//! and from the offload state a packet carries through the switch
//! ([`Offload`], with an L3-relative `csum_start` so a VLAN push or pop on
//! the way does not break it).
//!
//! Two sizes of the same layout: TAP uses `virtio_net_hdr_v1` (12 bytes, the
//! mergeable-rx-buffers layout, `num_buffers` last and unused here); packet
//! sockets use the legacy `virtio_net_hdr` (its first 10 bytes). Both in
//! host byte order (tun without TUNSETVNETLE/BE, packet sockets always).
//!
//! Owns: the header's byte layout. Never: I/O.

use rvs_switch::buf::Offload;

use super::csum::l2_len;
use super::gso::GsoPlan;

/// Size of `virtio_net_hdr_v1`, as a TAP reads and writes it.
pub const VNET_HDR_LEN: usize = 12;

/// Size of the legacy `virtio_net_hdr`, as a packet socket reads and writes
/// it.
pub const VNET_HDR_LEGACY_LEN: usize = 10;

/// The virtio-net header (the fields both sizes share).
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
    pub const F_NEEDS_CSUM: u8 = Offload::NEEDS_CSUM;
    pub const GSO_NONE: u8 = Offload::GSO_NONE;
    pub const GSO_TCPV4: u8 = Offload::GSO_TCPV4;
    pub const GSO_UDP: u8 = Offload::GSO_UDP;
    pub const GSO_TCPV6: u8 = Offload::GSO_TCPV6;
    pub const GSO_UDP_L4: u8 = Offload::GSO_UDP_L4;
    pub const GSO_ECN: u8 = Offload::GSO_ECN;

    /// Parse a header of either size (`N` is 10 or 12; the rest is unused).
    pub fn parse<const N: usize>(b: &[u8; N]) -> VnetHdr {
        const { assert!(N >= VNET_HDR_LEGACY_LEN) };
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

    /// The legacy 10-byte header (packet sockets).
    pub fn encode_legacy(&self) -> [u8; VNET_HDR_LEGACY_LEN] {
        let mut b = [0u8; VNET_HDR_LEGACY_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// The 12-byte `virtio_net_hdr_v1` (TAP), `num_buffers` zero.
    pub fn encode(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[..VNET_HDR_LEGACY_LEN].copy_from_slice(&self.encode_legacy());
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
            let l2 = l2_len(frame)?;
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

    /// The header to send `frame` with, its offload state passed through
    /// for the kernel to finish: `csum_start` counted from the frame start,
    /// `hdr_len` the headers every segment repeats (GSO) or the end of the
    /// checksum field. `None` when the state does not fit the frame.
    pub fn from_offload(o: Offload, frame: &[u8]) -> Option<VnetHdr> {
        let mut h = VnetHdr {
            flags: o.flags & Offload::NEEDS_CSUM,
            gso_type: o.gso_type,
            gso_size: o.gso_size,
            ..VnetHdr::default()
        };
        if o.needs_csum() {
            let start = l2_len(frame)? + o.csum_start as usize;
            if start + o.csum_offset as usize + 2 > frame.len() {
                return None;
            }
            h.csum_start = start as u16;
            h.csum_offset = o.csum_offset;
            h.hdr_len = (start + o.csum_offset as usize + 2) as u16;
        }
        if o.is_gso() {
            h.hdr_len = GsoPlan::from_offload(frame, o).ok()?.hdr_len() as u16;
        }
        Some(h)
    }
}

impl GsoPlan {
    /// The plan for a super-frame a virtio-net header describes
    /// (`csum_start` counted from the frame start). Here rather than in
    /// `gso.rs` so that segmentation does not depend on the header format.
    pub fn from_vnet(frame: &[u8], h: &VnetHdr) -> Result<GsoPlan, super::OffloadError> {
        GsoPlan::new(frame, h.gso_type, h.gso_size, h.csum_start as usize)
    }
}
