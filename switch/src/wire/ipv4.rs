//! IPv4 header view (RFC 791) and the Internet checksum (RFC 1071) with its
//! incremental update (RFC 1624).
//!
//! Owns: offsets of the IPv4 header, header validation, checksum arithmetic.
//! Never: allocation, I/O, panics on a view built with `new_checked`.

use std::net::Ipv4Addr;

use super::{Field, WireError, read_u16, write_u16};

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLAGS_FRAG: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SOURCE: Field = 12..16;
    pub const DESTINATION: Field = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Offset of the TTL byte (for callers that patch raw frames).
pub const TTL_OFFSET: usize = field::TTL;

/// IP protocol numbers the router knows by name.
pub struct Protocol;
impl Protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;

/// Internet checksum arithmetic.
pub mod checksum {
    /// Add `data` as big-endian 16-bit words to `acc` (odd tail zero-padded).
    /// Sums 32-bit words into 64 bits (the one's-complement sum is the same
    /// modulo 0xffff) and returns a value below 0x20000 so callers can keep
    /// adding small terms.
    #[inline]
    pub fn sum(data: &[u8], acc: u32) -> u32 {
        let mut s = acc as u64;
        let mut words = data.chunks_exact(4);
        for w in &mut words {
            s += u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as u64;
        }
        let r = words.remainder();
        let mut i = 0;
        while i + 1 < r.len() {
            s += u16::from_be_bytes([r[i], r[i + 1]]) as u64;
            i += 2;
        }
        if i < r.len() {
            s += (r[i] as u64) << 8;
        }
        s = (s & 0xffff_ffff) + (s >> 32);
        s = (s & 0xffff_ffff) + (s >> 32);
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        s as u32
    }

    /// Fold a 32-bit sum to 16 bits with end-around carry. (A loop: most
    /// sums need no step; see [`fold2`].)
    #[inline]
    pub fn fold(mut acc: u32) -> u16 {
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    /// [`fold`] in two fixed steps, without a branch (the first leaves at
    /// most 0x1fffe, the second at most 0xffff): cheaper where sums usually
    /// carry (the load balancer's updates, three terms or more), dearer
    /// where they usually do not (fold in the routed cases' TTL update cost
    /// 8–13 instructions a frame more this way).
    #[inline]
    pub fn fold2(acc: u32) -> u16 {
        let acc = (acc & 0xffff) + (acc >> 16);
        ((acc & 0xffff) + (acc >> 16)) as u16
    }

    /// The checksum field value for `data` (one's complement of the sum).
    #[inline]
    pub fn compute(data: &[u8]) -> u16 {
        !fold(sum(data, 0))
    }

    /// RFC 1624 eqn. 3: the checksum after one 16-bit word of the covered
    /// data changed from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
    #[inline]
    pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
        !fold((!hc) as u32 + (!old) as u32 + new as u32)
    }

    /// As [`update16`] for a 32-bit field (an IPv4 address).
    #[inline]
    pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
        let hc = update16(hc, (old >> 16) as u16, (new >> 16) as u16);
        update16(hc, old as u16, new as u16)
    }

    /// Sum of the IPv4 pseudo-header (for UDP/TCP checksums).
    pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
        let acc = sum(&src, 0);
        let acc = sum(&dst, acc);
        acc + proto as u32 + len as u32
    }

    /// Sum of the IPv6 pseudo-header (RFC 8200 §8.1).
    pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: u32) -> u32 {
        let acc = sum(src, 0);
        let acc = sum(dst, acc);
        acc + (len >> 16) + (len & 0xffff) + next_header as u32
    }
}

/// A view of an IPv4 packet (header first, then payload).
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Check version 4, IHL ≥ 5, header and total length inside the buffer.
    /// The buffer may be longer than the total length (Ethernet padding).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Self::new_unchecked(buffer);
        if p.version() != 4 || p.header_len() < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        let total = p.total_len() as usize;
        if total < p.header_len() {
            return Err(WireError::Malformed);
        }
        if p.buffer.as_ref().len() < total {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TOTAL_LEN.start)
    }
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }
    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAG.start) & FLAG_DF != 0
    }
    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAG.start) & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLAGS_FRAG.start) & 0x1fff) << 3
    }
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
    #[inline]
    pub fn src_u32(&self) -> u32 {
        u32::from_be_bytes(self.buffer.as_ref()[field::SOURCE].try_into().unwrap())
    }
    #[inline]
    pub fn dst_u32(&self) -> u32 {
        u32::from_be_bytes(self.buffer.as_ref()[field::DESTINATION].try_into().unwrap())
    }
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src_u32())
    }
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst_u32())
    }
    /// Whether the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let h = &self.buffer.as_ref()[..self.header_len()];
        checksum::fold(checksum::sum(h, 0)) == 0xffff
    }
    /// Bytes after the header up to the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }
    #[inline]
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&a.octets());
    }
    #[inline]
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&a.octets());
    }
    /// Recompute the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let n = self.header_len();
        let c = checksum::compute(&self.buffer.as_ref()[..n]);
        self.set_checksum(c);
    }
    /// TTL − 1 with the RFC 1624 incremental checksum update. The caller has
    /// checked TTL > 1.
    #[inline(always)]
    pub fn decrement_ttl(&mut self) {
        let b = self.buffer.as_mut();
        let old = u16::from_be_bytes([b[field::TTL], b[field::PROTOCOL]]);
        b[field::TTL] = b[field::TTL].wrapping_sub(1);
        let new = u16::from_be_bytes([b[field::TTL], b[field::PROTOCOL]]);
        let c = checksum::update16(read_u16(b, field::CHECKSUM.start), old, new);
        write_u16(b, field::CHECKSUM.start, c);
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[h..t]
    }
}

/// Whether the router routes to destination `d`: not multicast, limited
/// broadcast or "this network" (0.0.0.0/8).
#[inline(always)]
pub fn routed(d: u32) -> bool {
    !(d >> 28 == 0xe || d == u32::MAX || d >> 24 == 0)
}

/// Write a 20-byte header without options into `b[..20]` with its checksum.
/// Panics if `b` is shorter than 20 bytes (builders size their buffers).
pub fn write_header(b: &mut [u8], total_len: u16, ttl: u8, proto: u8, src: u32, dst: u32) {
    b[field::VER_IHL] = 0x45;
    b[field::DSCP_ECN] = 0;
    write_u16(b, field::TOTAL_LEN.start, total_len);
    write_u16(b, field::IDENT.start, 0);
    write_u16(b, field::FLAGS_FRAG.start, FLAG_DF);
    b[field::TTL] = ttl;
    b[field::PROTOCOL] = proto;
    write_u16(b, field::CHECKSUM.start, 0);
    b[field::SOURCE].copy_from_slice(&src.to_be_bytes());
    b[field::DESTINATION].copy_from_slice(&dst.to_be_bytes());
    let c = checksum::compute(&b[..HEADER_LEN]);
    write_u16(b, field::CHECKSUM.start, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_folds_give_the_end_around_carry_sum_of_every_u32() {
        let edges = [
            0,
            1,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0x1_ffff,
            0xffff_0000,
            u32::MAX,
        ];
        let spread = (0..1u64 << 20).map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32);
        for a in edges.into_iter().chain(spread) {
            // Modulo 0xffff, with 0xffff standing for 0 but for a zero sum.
            let want = match a as u64 % 0xffff {
                0 if a != 0 => 0xffff,
                r => r as u16,
            };
            assert_eq!(checksum::fold(a), want, "{a:#x}");
            assert_eq!(checksum::fold2(a), want, "{a:#x}");
        }
    }

    // RFC 1071 §3 example header, checksum 0xb861.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn pkt() -> Vec<u8> {
        let mut v = HDR.to_vec();
        v.resize(0x73, 0);
        v
    }

    #[test]
    fn parses_and_verifies() {
        let v = pkt();
        let p = Ipv4Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), Protocol::UDP);
        assert!(p.dont_frag());
        assert_eq!(p.src(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 0x73 - 20);
    }

    #[test]
    fn short_or_bad_input_is_an_error() {
        let v = pkt();
        for n in 0..0x73 {
            assert!(Ipv4Packet::new_checked(&v[..n]).is_err(), "len {n}");
        }
        let mut bad = v.clone();
        bad[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
        bad[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
    }

    #[test]
    fn incremental_ttl_matches_full_recompute() {
        for ttl in 2..=255u8 {
            let mut v = pkt();
            v[8] = ttl;
            let mut p = Ipv4Packet::new_unchecked(&mut v[..]);
            p.fill_checksum();
            p.decrement_ttl();
            let inc = p.checksum();
            p.fill_checksum();
            assert_eq!(inc, p.checksum(), "ttl {ttl}");
            assert!(p.verify_checksum());
        }
    }

    #[test]
    fn update32_matches_recompute() {
        let mut v = pkt();
        let mut p = Ipv4Packet::new_unchecked(&mut v[..]);
        let old = p.dst_u32();
        let c = checksum::update32(p.checksum(), old, 0x0a00_0001);
        p.set_dst(Ipv4Addr::new(10, 0, 0, 1));
        p.set_checksum(c);
        assert!(p.verify_checksum());
    }

    #[test]
    fn odd_length_sum_pads() {
        assert_eq!(checksum::sum(&[1, 2, 3], 0), 0x0102 + 0x0300);
        assert_eq!(checksum::sum(&[1, 2, 3, 4, 5], 0), 0x0102 + 0x0304 + 0x0500);
    }

    #[test]
    fn word_sum_matches_a_16_bit_reference() {
        let mut x = 0x1234_5678u32;
        for len in 0..200 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let mut r: u32 = 0xfffe;
            for c in data.chunks(2) {
                r += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
            }
            assert_eq!(
                checksum::fold(checksum::sum(&data, 0xfffe)),
                checksum::fold(r)
            );
            assert!(checksum::sum(&data, u32::MAX) < 0x20000);
        }
    }
}
