//! ICMPv4 view (RFC 792) and whole-frame builders for what a gateway sends:
//! echo replies (rewritten in place from the request) and errors (time
//! exceeded, destination unreachable incl. fragmentation needed with the
//! next-hop MTU of RFC 1191) quoting the offending packet (RFC 1812 §4.3.2.3:
//! as much as fits in 576 bytes).
//!
//! Owns: ICMPv4 offsets, checksums of ICMPv4 messages. Never: allocation,
//! I/O, panics on short input.

use super::ethernet::{self, EtherType};
use super::ipv4::{self, Ipv4Packet, Protocol, checksum};
use super::{Field, WireError, read_u16, write_u16};
use crate::mac::MacAddr;

mod field {
    use super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const SEQ: Field = 6..8;
    /// The 32-bit "rest of header" (unused / next-hop MTU in errors).
    pub const REST: Field = 4..8;
}

/// Length of the ICMP header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;
/// Bytes in front of the quoted packet in an error frame (Ethernet + IPv4 + ICMP).
pub const ERROR_OVERHEAD: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + HEADER_LEN;
/// Most bytes of the offending packet an error quotes (576 − 20 − 8).
pub const ERROR_QUOTE_MAX: usize = 576 - ipv4::HEADER_LEN - HEADER_LEN;
/// TTL of packets the gateway originates.
pub const DEFAULT_TTL: u8 = 64;

pub const TYPE_ECHO_REPLY: u8 = 0;
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
pub const TYPE_ECHO_REQUEST: u8 = 8;
pub const TYPE_TIME_EXCEEDED: u8 = 11;

pub const CODE_NET_UNREACHABLE: u8 = 0;
pub const CODE_HOST_UNREACHABLE: u8 = 1;
pub const CODE_PORT_UNREACHABLE: u8 = 3;
pub const CODE_FRAG_NEEDED: u8 = 4;
pub const CODE_TTL_EXCEEDED: u8 = 0;

/// A view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }
    #[inline]
    pub fn seq(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SEQ.start)
    }
    /// Next-hop MTU of a fragmentation-needed error.
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SEQ.start)
    }
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref(), 0)) == 0xffff
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

/// Whether an ICMP type is an error (errors are never answered with errors,
/// RFC 1122 §3.2.2).
pub fn is_error(t: u8) -> bool {
    !matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
}

/// Turn a whole Ethernet frame holding an ICMP echo request into the echo
/// reply, in place: addresses swapped, type 0, TTL 64, checksums updated.
/// Returns the new frame length (padding cut). `Malformed` if the frame is
/// not an IPv4 echo request.
pub fn echo_reply_in_place(frame: &mut [u8], our_mac: MacAddr) -> Result<usize, WireError> {
    if frame.len() < ethernet::HEADER_LEN || read_u16(frame, 12) != EtherType::IPV4 {
        return Err(WireError::Malformed);
    }
    let (eth, rest) = frame.split_at_mut(ethernet::HEADER_LEN);
    let ip = Ipv4Packet::new_checked(&mut *rest)?;
    let (hl, total) = (ip.header_len(), ip.total_len() as usize);
    if ip.protocol() != Protocol::ICMP || total < hl + HEADER_LEN {
        return Err(WireError::Malformed);
    }
    let (src, dst) = (ip.src_u32(), ip.dst_u32());
    let icmp = &mut rest[hl..total];
    if icmp[field::TYPE] != TYPE_ECHO_REQUEST || icmp[field::CODE] != 0 {
        return Err(WireError::Malformed);
    }
    icmp[field::TYPE] = TYPE_ECHO_REPLY;
    let c = checksum::update16(
        read_u16(icmp, field::CHECKSUM.start),
        (TYPE_ECHO_REQUEST as u16) << 8,
        (TYPE_ECHO_REPLY as u16) << 8,
    );
    write_u16(icmp, field::CHECKSUM.start, c);
    let mut ip = Ipv4Packet::new_unchecked(&mut rest[..hl]);
    ip.set_src(dst.into());
    ip.set_dst(src.into());
    ip.set_ttl(DEFAULT_TTL);
    ip.fill_checksum();
    let peer: [u8; 6] = eth[6..12].try_into().unwrap();
    eth[0..6].copy_from_slice(&peer);
    eth[6..12].copy_from_slice(&our_mac.0);
    Ok(ethernet::HEADER_LEN + total)
}

/// Addresses of an ICMP error: who sends it to whom, at L2 and L3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorAddrs {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    pub ip_src: u32,
    pub ip_dst: u32,
}

/// Write the Ethernet, IPv4 and ICMP headers of an error message into
/// `frame[..ERROR_OVERHEAD]`; the quoted packet is already at
/// `frame[ERROR_OVERHEAD..]` (the caller pushed the headers in front of the
/// offending packet and cut it to at most [`ERROR_QUOTE_MAX`] bytes).
/// `rest` is the 32-bit rest-of-header (next-hop MTU for frag needed).
pub fn write_error(
    frame: &mut [u8],
    a: ErrorAddrs,
    msg_type: u8,
    code: u8,
    rest: u32,
) -> Result<usize, WireError> {
    if frame.len() < ERROR_OVERHEAD + ipv4::HEADER_LEN {
        return Err(WireError::Truncated);
    }
    if frame.len() - ERROR_OVERHEAD > ERROR_QUOTE_MAX {
        return Err(WireError::Malformed);
    }
    frame[0..6].copy_from_slice(&a.eth_dst.0);
    frame[6..12].copy_from_slice(&a.eth_src.0);
    write_u16(frame, 12, EtherType::IPV4);
    let ip_len = frame.len() - ethernet::HEADER_LEN;
    let (_, ip) = frame.split_at_mut(ethernet::HEADER_LEN);
    ipv4::write_header(
        ip,
        ip_len as u16,
        DEFAULT_TTL,
        Protocol::ICMP,
        a.ip_src,
        a.ip_dst,
    );
    let icmp = &mut ip[ipv4::HEADER_LEN..];
    icmp[field::TYPE] = msg_type;
    icmp[field::CODE] = code;
    write_u16(icmp, field::CHECKSUM.start, 0);
    icmp[field::REST].copy_from_slice(&rest.to_be_bytes());
    let c = checksum::compute(icmp);
    write_u16(icmp, field::CHECKSUM.start, c);
    Ok(frame.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn echo_request() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + 4];
        f[0..6].copy_from_slice(&MacAddr::local(1).0);
        f[6..12].copy_from_slice(&MacAddr::local(2).0);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        ipv4::write_header(&mut f[14..], 32, 64, 1, 0x0a000002, 0x0a000001);
        let icmp = &mut f[34..];
        icmp[0] = 8;
        icmp[4..8].copy_from_slice(&[0x12, 0x34, 0, 1]);
        icmp[8..].copy_from_slice(b"ping");
        let c = checksum::compute(icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn echo_reply_swaps_and_checksums() {
        let mut f = echo_request();
        f.extend_from_slice(&[0; 6]); // Ethernet padding
        let n = echo_reply_in_place(&mut f, MacAddr::local(1)).unwrap();
        assert_eq!(n, 46);
        assert_eq!(&f[0..6], &MacAddr::local(2).0);
        let ip = Ipv4Packet::new_checked(&f[14..n]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst(), Ipv4Addr::new(10, 0, 0, 2));
        let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), TYPE_ECHO_REPLY);
        assert_eq!((icmp.ident(), icmp.seq()), (0x1234, 1));
        assert!(icmp.verify_checksum());
    }

    #[test]
    fn echo_reply_rejects_other_frames() {
        let mut f = echo_request();
        f[34] = 0; // already a reply
        assert_eq!(
            echo_reply_in_place(&mut f, MacAddr::ZERO),
            Err(WireError::Malformed)
        );
        for n in 0..46 {
            let mut g = echo_request();
            assert!(echo_reply_in_place(&mut g[..n], MacAddr::ZERO).is_err());
        }
    }

    #[test]
    fn error_headers_and_limits() {
        let a = ErrorAddrs {
            eth_dst: MacAddr::local(2),
            eth_src: MacAddr::local(1),
            ip_src: 0x0a000001,
            ip_dst: 0x0a000002,
        };
        let mut f = vec![0u8; ERROR_OVERHEAD + 28];
        f[ERROR_OVERHEAD] = 0x45;
        let n = write_error(&mut f, a, TYPE_DEST_UNREACHABLE, CODE_FRAG_NEEDED, 1400).unwrap();
        let ip = Ipv4Packet::new_checked(&f[14..n]).unwrap();
        assert!(ip.verify_checksum());
        let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(icmp.next_hop_mtu(), 1400);
        assert!(write_error(&mut f[..50], a, 11, 0, 0).is_err());
        let mut big = vec![0u8; ERROR_OVERHEAD + ERROR_QUOTE_MAX + 1];
        assert!(write_error(&mut big, a, 11, 0, 0).is_err());
        assert!(is_error(11) && is_error(3) && !is_error(8) && !is_error(0));
    }
}
