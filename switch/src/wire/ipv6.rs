//! IPv6 fixed header view (RFC 8200). Extension headers are not walked: the
//! router forwards on the fixed header and answers only packets whose next
//! header is ICMPv6.
//!
//! Owns: offsets of the fixed header, its validation. Never: allocation,
//! I/O, panics on a view built with `new_checked`.

use std::net::Ipv6Addr;

use super::{Field, WireError, read_u16, write_u16};

mod field {
    use super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SOURCE: Field = 8..24;
    pub const DESTINATION: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// The IPv6 minimum link MTU: ICMPv6 errors never exceed it.
pub const MIN_MTU: usize = 1280;

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Check version 6 and that the payload length fits the buffer (which
    /// may be longer: Ethernet padding).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Self::new_unchecked(buffer);
        if p.version() != 6 {
            return Err(WireError::Malformed);
        }
        if p.buffer.as_ref().len() < HEADER_LEN + p.payload_len() as usize {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }
    #[inline]
    pub fn flow_label(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]])
    }
    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN.start)
    }
    /// Header plus payload length.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    #[inline]
    pub fn src_bytes(&self) -> [u8; 16] {
        self.buffer.as_ref()[field::SOURCE].try_into().unwrap()
    }
    #[inline]
    pub fn dst_bytes(&self) -> [u8; 16] {
        self.buffer.as_ref()[field::DESTINATION].try_into().unwrap()
    }
    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src_bytes())
    }
    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst_bytes())
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::PAYLOAD_LEN.start, v);
    }
    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = v;
    }
    #[inline]
    pub fn set_src(&mut self, a: &[u8; 16]) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(a);
    }
    #[inline]
    pub fn set_dst(&mut self, a: &[u8; 16]) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(a);
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let t = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..t]
    }
}

/// Write a fixed header (traffic class and flow label 0) into `b[..40]`.
/// Panics if `b` is shorter than 40 bytes (builders size their buffers).
pub fn write_header(
    b: &mut [u8],
    payload_len: u16,
    next_header: u8,
    hop_limit: u8,
    src: &[u8; 16],
    dst: &[u8; 16],
) {
    b[field::VER_TC_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
    write_u16(b, field::PAYLOAD_LEN.start, payload_len);
    b[field::NEXT_HEADER] = next_header;
    b[field::HOP_LIMIT] = hop_limit;
    b[field::SOURCE].copy_from_slice(src);
    b[field::DESTINATION].copy_from_slice(dst);
}

/// Whether the router routes to unicast destination `d` (multicast is
/// the router's to tell apart first): not link-local (fe80::/10),
/// unspecified or loopback.
#[inline(always)]
pub fn routed_unicast(d: u128) -> bool {
    !(d >> 118 == 0x3fa || d <= 1)
}

/// The solicited-node multicast address of `a` (ff02::1:ffXX:XXXX).
pub fn solicited_node(a: &[u8; 16]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = 0xff;
    m[1] = 0x02;
    m[11] = 0x01;
    m[12] = 0xff;
    m[13..].copy_from_slice(&a[13..]);
    m
}

/// The Ethernet multicast MAC of an IPv6 multicast address (33:33 + low 32 bits).
pub fn multicast_mac(a: &[u8; 16]) -> [u8; 6] {
    [0x33, 0x33, a[12], a[13], a[14], a[15]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(payload: usize) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_LEN + payload];
        let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets();
        let dst = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2).octets();
        write_header(&mut v, payload as u16, 58, 64, &src, &dst);
        v
    }

    #[test]
    fn parses() {
        let v = pkt(8);
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), 58);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.dst(), Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2));
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0);
    }

    #[test]
    fn short_or_bad_input_is_an_error() {
        let v = pkt(8);
        for n in 0..v.len() {
            assert!(Ipv6Packet::new_checked(&v[..n]).is_err());
        }
        let mut bad = v.clone();
        bad[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
    }

    #[test]
    fn solicited_node_address() {
        let a = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0x1234, 0x5678).octets();
        let m = solicited_node(&a);
        assert_eq!(
            Ipv6Addr::from(m),
            "ff02::1:ff34:5678".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(multicast_mac(&m), [0x33, 0x33, 0xff, 0x34, 0x56, 0x78]);
    }
}
