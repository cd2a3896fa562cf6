//! ARP packet view (RFC 826), Ethernet/IPv4 only, and builders for whole
//! request/reply frames written into a caller's buffer.
//!
//! Owns: ARP offsets and validation. Never: allocation, I/O, panics on a
//! view built with `new_checked`.

use std::net::Ipv4Addr;

use super::ethernet::{self, EtherType};
use super::{Field, WireError, read_u16, write_u16};
use crate::mac::MacAddr;

mod field {
    use super::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// Length of a whole ARP frame (unpadded; the NIC pads to 60).
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + PACKET_LEN;

pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

/// A view of an ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Check the length and that this is Ethernet (1) / IPv4 (0x0800).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if read_u16(b, field::HTYPE.start) != 1
            || read_u16(b, field::PTYPE.start) != EtherType::IPV4
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(WireError::Malformed);
        }
        Ok(p)
    }

    #[inline]
    pub fn operation(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OPER.start)
    }
    #[inline]
    pub fn sender_mac(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[field::SHA].try_into().unwrap())
    }
    #[inline]
    pub fn sender_ip(&self) -> Ipv4Addr {
        let b: [u8; 4] = self.buffer.as_ref()[field::SPA].try_into().unwrap();
        Ipv4Addr::from(b)
    }
    #[inline]
    pub fn target_mac(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[field::THA].try_into().unwrap())
    }
    #[inline]
    pub fn target_ip(&self) -> Ipv4Addr {
        let b: [u8; 4] = self.buffer.as_ref()[field::TPA].try_into().unwrap();
        Ipv4Addr::from(b)
    }
}

/// Write an ARP packet body into `b[..28]`.
fn write_packet(b: &mut [u8], op: u16, sha: MacAddr, spa: Ipv4Addr, tha: MacAddr, tpa: Ipv4Addr) {
    write_u16(b, field::HTYPE.start, 1);
    write_u16(b, field::PTYPE.start, EtherType::IPV4);
    b[field::HLEN] = 6;
    b[field::PLEN] = 4;
    write_u16(b, field::OPER.start, op);
    b[field::SHA].copy_from_slice(&sha.0);
    b[field::SPA].copy_from_slice(&spa.octets());
    b[field::THA].copy_from_slice(&tha.0);
    b[field::TPA].copy_from_slice(&tpa.octets());
}

fn write_eth(f: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) {
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    write_u16(f, 12, ethertype);
}

/// Write a broadcast who-has request for `target` into `frame`; returns the
/// frame length, or `Truncated` if `frame` is shorter than [`FRAME_LEN`].
pub fn write_request(
    frame: &mut [u8],
    our_mac: MacAddr,
    our_ip: Ipv4Addr,
    target: Ipv4Addr,
) -> Result<usize, WireError> {
    if frame.len() < FRAME_LEN {
        return Err(WireError::Truncated);
    }
    write_eth(frame, MacAddr::BROADCAST, our_mac, EtherType::ARP);
    write_packet(
        &mut frame[ethernet::HEADER_LEN..],
        OP_REQUEST,
        our_mac,
        our_ip,
        MacAddr::ZERO,
        target,
    );
    Ok(FRAME_LEN)
}

/// Write a unicast is-at reply from (`our_mac`, `our_ip`) to (`to_mac`,
/// `to_ip`) into `frame`; returns the frame length.
pub fn write_reply(
    frame: &mut [u8],
    our_mac: MacAddr,
    our_ip: Ipv4Addr,
    to_mac: MacAddr,
    to_ip: Ipv4Addr,
) -> Result<usize, WireError> {
    if frame.len() < FRAME_LEN {
        return Err(WireError::Truncated);
    }
    write_eth(frame, to_mac, our_mac, EtherType::ARP);
    write_packet(
        &mut frame[ethernet::HEADER_LEN..],
        OP_REPLY,
        our_mac,
        our_ip,
        to_mac,
        to_ip,
    );
    Ok(FRAME_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let mut f = [0u8; 64];
        let n = write_request(
            &mut f,
            MacAddr::local(1),
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 9),
        )
        .unwrap();
        assert_eq!(n, 42);
        assert_eq!(&f[..6], &[0xff; 6]);
        let p = ArpPacket::new_checked(&f[14..n]).unwrap();
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sender_mac(), MacAddr::local(1));
        assert_eq!(p.sender_ip(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.target_mac(), MacAddr::ZERO);
        assert_eq!(p.target_ip(), Ipv4Addr::new(10, 0, 0, 9));
    }

    #[test]
    fn short_or_foreign_is_an_error() {
        let mut f = [0u8; 42];
        write_reply(
            &mut f,
            MacAddr::local(1),
            Ipv4Addr::LOCALHOST,
            MacAddr::local(2),
            Ipv4Addr::LOCALHOST,
        )
        .unwrap();
        for n in 0..PACKET_LEN {
            assert_eq!(
                ArpPacket::new_checked(&f[14..14 + n]).unwrap_err(),
                WireError::Truncated
            );
        }
        f[14 + 5] = 16;
        assert_eq!(
            ArpPacket::new_checked(&f[14..]).unwrap_err(),
            WireError::Malformed
        );
        assert_eq!(
            write_request(
                &mut [0u8; 41],
                MacAddr::ZERO,
                Ipv4Addr::LOCALHOST,
                Ipv4Addr::LOCALHOST
            ),
            Err(WireError::Truncated)
        );
    }
}
