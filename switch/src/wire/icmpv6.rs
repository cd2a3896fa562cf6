//! ICMPv6 view (RFC 4443) with Neighbor Discovery messages (RFC 4861) and
//! whole-frame builders for what a gateway sends: echo replies (in place),
//! neighbor solicitations and advertisements with a link-layer address
//! option, and errors (time exceeded, destination unreachable, packet too
//! big) quoting as much of the offending packet as fits in 1280 bytes.
//!
//! Owns: ICMPv6 offsets and checksums (pseudo-header included). Never:
//! allocation, I/O, panics on short input.

use super::ethernet::{self, EtherType};
use super::ipv4::{Protocol, checksum};
use super::ipv6::{self, Ipv6Packet};
use super::{Field, WireError, read_u16, write_u16};
use crate::mac::MacAddr;

mod field {
    use super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST: Field = 4..8;
    /// NS/NA target address.
    pub const TARGET: Field = 8..24;
    /// First ND option after NS/NA.
    pub const ND_OPTIONS: usize = 24;
}

pub const HEADER_LEN: usize = 8;
/// NS/NA body without options.
pub const ND_LEN: usize = 24;
/// A source/target link-layer address option for Ethernet.
pub const LLADDR_OPT_LEN: usize = 8;
/// Length of the NS/NA frames this module writes.
pub const ND_FRAME_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + ND_LEN + LLADDR_OPT_LEN;
/// Bytes in front of the quoted packet in an error frame.
pub const ERROR_OVERHEAD: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + HEADER_LEN;
/// Most bytes of the offending packet an error quotes (1280 − 40 − 8).
pub const ERROR_QUOTE_MAX: usize = ipv6::MIN_MTU - ipv6::HEADER_LEN - HEADER_LEN;
pub const DEFAULT_HOP_LIMIT: u8 = 64;
/// Hop limit of every ND message (RFC 4861 §7.1).
pub const ND_HOP_LIMIT: u8 = 255;

pub const TYPE_DEST_UNREACHABLE: u8 = 1;
pub const TYPE_PACKET_TOO_BIG: u8 = 2;
pub const TYPE_TIME_EXCEEDED: u8 = 3;
pub const TYPE_ECHO_REQUEST: u8 = 128;
pub const TYPE_ECHO_REPLY: u8 = 129;
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;

pub const CODE_NO_ROUTE: u8 = 0;
pub const CODE_ADDR_UNREACHABLE: u8 = 3;
pub const CODE_PORT_UNREACHABLE: u8 = 4;
pub const CODE_HOP_LIMIT: u8 = 0;

pub const OPT_SOURCE_LLADDR: u8 = 1;
pub const OPT_TARGET_LLADDR: u8 = 2;

/// NA flags (high bits of the first reserved byte).
pub const NA_ROUTER: u8 = 0x80;
pub const NA_SOLICITED: u8 = 0x40;
pub const NA_OVERRIDE: u8 = 0x20;

/// A view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
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
    /// The 32-bit rest of header (MTU of packet too big, NA flags).
    #[inline]
    pub fn rest(&self) -> u32 {
        u32::from_be_bytes(self.buffer.as_ref()[field::REST].try_into().unwrap())
    }
    /// Target address of an NS/NA; `None` if the message is too short.
    pub fn nd_target(&self) -> Option<[u8; 16]> {
        self.buffer.as_ref().get(field::TARGET)?.try_into().ok()
    }
    /// The link-layer address in the first source/target link-layer option
    /// of an NS/NA, if there is a well-formed one.
    pub fn nd_lladdr(&self) -> Option<MacAddr> {
        let mut opts = self.buffer.as_ref().get(field::ND_OPTIONS..)?;
        while opts.len() >= 2 {
            let len = opts[1] as usize * 8;
            if len == 0 || len > opts.len() {
                return None;
            }
            if matches!(opts[0], OPT_SOURCE_LLADDR | OPT_TARGET_LLADDR) && len >= 8 {
                return Some(MacAddr(opts[2..8].try_into().unwrap()));
            }
            opts = &opts[len..];
        }
        None
    }
    /// Whether the checksum verifies against the pseudo-header.
    pub fn verify_checksum(&self, src: &[u8; 16], dst: &[u8; 16]) -> bool {
        let b = self.buffer.as_ref();
        let acc = checksum::pseudo_v6(src, dst, Protocol::ICMPV6, b.len() as u32);
        checksum::fold(checksum::sum(b, acc)) == 0xffff
    }
}

/// Fill the checksum of the ICMPv6 message `msg` (field zeroed first).
pub fn fill_checksum(msg: &mut [u8], src: &[u8; 16], dst: &[u8; 16]) {
    write_u16(msg, field::CHECKSUM.start, 0);
    let acc = checksum::pseudo_v6(src, dst, Protocol::ICMPV6, msg.len() as u32);
    let c = !checksum::fold(checksum::sum(msg, acc));
    write_u16(msg, field::CHECKSUM.start, c);
}

/// Whether a type is an error (types below 128, RFC 4443 §2.1).
pub fn is_error(t: u8) -> bool {
    t < 128
}

/// Turn a whole Ethernet frame holding an ICMPv6 echo request into the
/// reply in place; returns the new frame length.
pub fn echo_reply_in_place(frame: &mut [u8], our_mac: MacAddr) -> Result<usize, WireError> {
    if frame.len() < ethernet::HEADER_LEN || read_u16(frame, 12) != EtherType::IPV6 {
        return Err(WireError::Malformed);
    }
    let (eth, rest) = frame.split_at_mut(ethernet::HEADER_LEN);
    let mut ip = Ipv6Packet::new_checked(&mut *rest)?;
    let total = ip.total_len();
    if ip.next_header() != Protocol::ICMPV6 || total < ipv6::HEADER_LEN + HEADER_LEN {
        return Err(WireError::Malformed);
    }
    let (src, dst) = (ip.src_bytes(), ip.dst_bytes());
    ip.set_src(&dst);
    ip.set_dst(&src);
    ip.set_hop_limit(DEFAULT_HOP_LIMIT);
    let msg = &mut rest[ipv6::HEADER_LEN..total];
    if msg[field::TYPE] != TYPE_ECHO_REQUEST || msg[field::CODE] != 0 {
        return Err(WireError::Malformed);
    }
    msg[field::TYPE] = TYPE_ECHO_REPLY;
    // The pseudo-header sum does not change when src and dst swap.
    let c = checksum::update16(
        read_u16(msg, field::CHECKSUM.start),
        (TYPE_ECHO_REQUEST as u16) << 8,
        (TYPE_ECHO_REPLY as u16) << 8,
    );
    write_u16(msg, field::CHECKSUM.start, c);
    let peer: [u8; 6] = eth[6..12].try_into().unwrap();
    eth[0..6].copy_from_slice(&peer);
    eth[6..12].copy_from_slice(&our_mac.0);
    Ok(ethernet::HEADER_LEN + total)
}

fn write_eth(f: &mut [u8], dst: [u8; 6], src: MacAddr) {
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src.0);
    write_u16(f, 12, EtherType::IPV6);
}

/// Write an NS/NA frame: `nd_type` 135 or 136, `flags` the NA flags byte.
#[allow(clippy::too_many_arguments)]
fn write_nd(
    frame: &mut [u8],
    eth_dst: [u8; 6],
    our_mac: MacAddr,
    ip_src: &[u8; 16],
    ip_dst: &[u8; 16],
    nd_type: u8,
    flags: u8,
    target: &[u8; 16],
    opt: u8,
) -> Result<usize, WireError> {
    if frame.len() < ND_FRAME_LEN {
        return Err(WireError::Truncated);
    }
    let frame = &mut frame[..ND_FRAME_LEN];
    write_eth(frame, eth_dst, our_mac);
    let ip = &mut frame[ethernet::HEADER_LEN..];
    let plen = (ND_LEN + LLADDR_OPT_LEN) as u16;
    ipv6::write_header(ip, plen, Protocol::ICMPV6, ND_HOP_LIMIT, ip_src, ip_dst);
    let msg = &mut ip[ipv6::HEADER_LEN..];
    msg[field::TYPE] = nd_type;
    msg[field::CODE] = 0;
    msg[field::REST].copy_from_slice(&[flags, 0, 0, 0]);
    msg[field::TARGET].copy_from_slice(target);
    let o = field::ND_OPTIONS;
    msg[o] = opt;
    msg[o + 1] = 1;
    msg[o + 2..o + 8].copy_from_slice(&our_mac.0);
    fill_checksum(msg, ip_src, ip_dst);
    Ok(ND_FRAME_LEN)
}

/// Write a multicast neighbor solicitation for `target` (to its
/// solicited-node group) with our source link-layer address.
pub fn write_solicit(
    frame: &mut [u8],
    our_mac: MacAddr,
    our_ip: &[u8; 16],
    target: &[u8; 16],
) -> Result<usize, WireError> {
    let group = ipv6::solicited_node(target);
    let mac = ipv6::multicast_mac(&group);
    write_nd(
        frame,
        mac,
        our_mac,
        our_ip,
        &group,
        TYPE_NEIGHBOR_SOLICIT,
        0,
        target,
        OPT_SOURCE_LLADDR,
    )
}

/// Write a solicited neighbor advertisement for our address `our_ip` to
/// (`to_mac`, `to_ip`), router and override flags set, with the target
/// link-layer address option.
pub fn write_advert(
    frame: &mut [u8],
    our_mac: MacAddr,
    our_ip: &[u8; 16],
    to_mac: MacAddr,
    to_ip: &[u8; 16],
) -> Result<usize, WireError> {
    write_nd(
        frame,
        to_mac.0,
        our_mac,
        our_ip,
        to_ip,
        TYPE_NEIGHBOR_ADVERT,
        NA_ROUTER | NA_SOLICITED | NA_OVERRIDE,
        our_ip,
        OPT_TARGET_LLADDR,
    )
}

/// Addresses of an ICMPv6 error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorAddrs {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    pub ip_src: [u8; 16],
    pub ip_dst: [u8; 16],
}

/// Write the headers of an error in front of the quoted packet already at
/// `frame[ERROR_OVERHEAD..]` (at most [`ERROR_QUOTE_MAX`] bytes); `rest` is
/// the MTU for packet too big, else 0.
pub fn write_error(
    frame: &mut [u8],
    a: &ErrorAddrs,
    msg_type: u8,
    code: u8,
    rest: u32,
) -> Result<usize, WireError> {
    if frame.len() < ERROR_OVERHEAD + ipv6::HEADER_LEN {
        return Err(WireError::Truncated);
    }
    if frame.len() - ERROR_OVERHEAD > ERROR_QUOTE_MAX {
        return Err(WireError::Malformed);
    }
    write_eth(frame, a.eth_dst.0, a.eth_src);
    let n = frame.len();
    let ip = &mut frame[ethernet::HEADER_LEN..];
    let plen = (n - ethernet::HEADER_LEN - ipv6::HEADER_LEN) as u16;
    ipv6::write_header(
        ip,
        plen,
        Protocol::ICMPV6,
        DEFAULT_HOP_LIMIT,
        &a.ip_src,
        &a.ip_dst,
    );
    let msg = &mut ip[ipv6::HEADER_LEN..];
    msg[field::TYPE] = msg_type;
    msg[field::CODE] = code;
    msg[field::REST].copy_from_slice(&rest.to_be_bytes());
    fill_checksum(msg, &a.ip_src, &a.ip_dst);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    const GW: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42);

    #[test]
    fn solicit_and_advert_parse_back() {
        let mut f = [0u8; 100];
        let n = write_solicit(&mut f, MacAddr::local(1), &GW.octets(), &HOST.octets()).unwrap();
        assert_eq!(n, 86);
        assert_eq!(&f[..6], &[0x33, 0x33, 0xff, 0, 0, 0x42]);
        let ip = Ipv6Packet::new_checked(&f[14..n]).unwrap();
        assert_eq!(ip.hop_limit(), 255);
        let m = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum(&ip.src_bytes(), &ip.dst_bytes()));
        assert_eq!(m.msg_type(), TYPE_NEIGHBOR_SOLICIT);
        assert_eq!(m.nd_target(), Some(HOST.octets()));
        assert_eq!(m.nd_lladdr(), Some(MacAddr::local(1)));

        let n = write_advert(
            &mut f,
            MacAddr::local(1),
            &GW.octets(),
            MacAddr::local(2),
            &HOST.octets(),
        )
        .unwrap();
        let ip = Ipv6Packet::new_checked(&f[14..n]).unwrap();
        let m = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum(&GW.octets(), &HOST.octets()));
        assert_eq!(m.rest() >> 24, 0xe0);
        assert_eq!(m.nd_target(), Some(GW.octets()));
    }

    #[test]
    fn malformed_options_are_ignored_not_panicked_on() {
        let mut msg = [0u8; 40];
        msg[0] = TYPE_NEIGHBOR_SOLICIT;
        msg[24] = 1;
        msg[25] = 0; // zero-length option
        assert_eq!(Icmpv6Packet::new_unchecked(&msg[..]).nd_lladdr(), None);
        msg[25] = 3; // longer than the message
        assert_eq!(Icmpv6Packet::new_unchecked(&msg[..]).nd_lladdr(), None);
        assert_eq!(Icmpv6Packet::new_unchecked(&msg[..20]).nd_target(), None);
        assert!(Icmpv6Packet::new_checked(&msg[..7]).is_err());
        assert!(write_solicit(&mut [0u8; 85], MacAddr::ZERO, &[0; 16], &[0; 16]).is_err());
    }

    #[test]
    fn echo_reply_keeps_a_valid_checksum() {
        let mut f = vec![0u8; 14 + 40 + 12];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        ipv6::write_header(&mut f[14..], 12, 58, 64, &HOST.octets(), &GW.octets());
        f[54] = TYPE_ECHO_REQUEST;
        f[62..66].copy_from_slice(b"ping");
        fill_checksum(&mut f[54..], &HOST.octets(), &GW.octets());
        let n = echo_reply_in_place(&mut f, MacAddr::local(1)).unwrap();
        let ip = Ipv6Packet::new_checked(&f[14..n]).unwrap();
        assert_eq!(ip.dst(), HOST);
        let m = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(m.msg_type(), TYPE_ECHO_REPLY);
        assert!(m.verify_checksum(&GW.octets(), &HOST.octets()));
        for k in 0..f.len() {
            let _ = echo_reply_in_place(&mut f.clone()[..k], MacAddr::ZERO);
        }
    }
}
