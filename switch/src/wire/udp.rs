//! UDP header view (RFC 768): ports, length, checksum, and the Internet
//! checksum over the IPv4/IPv6 pseudo-header that VXLAN's outer UDP header
//! needs.
//!
//! Owns: the 8-byte header layout and the ones' complement sum. Never:
//! allocation, I/O, knowledge of what the payload is.

use super::{Field, WireError, read_u16, write_u16};

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    pub const PAYLOAD: usize = 8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Offset of the checksum field inside the header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;
/// IP protocol number of UDP.
pub const PROTOCOL: u8 = 17;

/// A view of a UDP datagram (header and payload).
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Check the buffer holds the header and that the length field neither
    /// undercuts the header nor overruns the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = read_u16(b, field::LENGTH.start) as usize;
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }
    /// Header plus payload bytes, as the length field states.
    #[inline]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() as usize <= HEADER_LEN
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
    /// The payload the length field covers (trailing link padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = (self.len() as usize).clamp(HEADER_LEN, b.len());
        &b[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }
}

/// Ones' complement sum of `data` (big-endian 16-bit words, an odd last
/// byte padded with zero) added to `init`, not folded.
///
/// The loop adds native-endian 64-bit words with end-around carry and swaps
/// the folded result into network order at the end: the ones' complement
/// sum does not depend on byte order (RFC 1071 §2(B)), and eight bytes per
/// add is what makes a 64-byte frame's UDP checksum cheap.
#[inline]
pub fn csum_add(init: u64, data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut carry: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let (s, o) = acc.overflowing_add(u64::from_ne_bytes(c.try_into().unwrap()));
        acc = s;
        carry += o as u64;
    }
    // Fold the native-order accumulator to 16 bits, then into network order.
    let mut native = (acc & 0xffff_ffff) + (acc >> 32) + carry;
    native = (native & 0xffff_ffff) + (native >> 32);
    let mut n16 = native;
    while n16 >> 16 != 0 {
        n16 = (n16 & 0xffff) + (n16 >> 16);
    }
    let mut sum = init + u16::from_be(n16 as u16) as u64;
    let mut rest = chunks.remainder();
    while rest.len() >= 2 {
        sum += u16::from_be_bytes([rest[0], rest[1]]) as u64;
        rest = &rest[2..];
    }
    if let [b] = rest {
        sum += (*b as u64) << 8;
    }
    sum
}

/// Fold a sum from [`csum_add`] to 16 bits (not complemented).
#[inline]
pub fn csum_fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Pseudo-header sum for a UDP datagram of `udp_len` bytes between two IPv4
/// or two IPv6 addresses (`src` and `dst` are 4 or 16 bytes each).
#[inline]
pub fn pseudo_header_sum(src: &[u8], dst: &[u8], udp_len: usize) -> u64 {
    csum_add(csum_add(0, src), dst) + PROTOCOL as u64 + udp_len as u64
}

/// The UDP checksum of `datagram` (header with a zero checksum field, then
/// payload) given its pseudo-header sum. A computed zero goes out as 0xffff
/// (RFC 768: zero means "no checksum").
#[inline]
pub fn checksum(pseudo: u64, datagram: &[u8]) -> u16 {
    match !csum_fold(csum_add(pseudo, datagram)) {
        0 => 0xffff,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_fields() {
        let mut b = [0u8; 12];
        let mut u = UdpPacket::new_unchecked(&mut b[..]);
        u.set_src_port(49152);
        u.set_dst_port(4789);
        u.set_len(12);
        u.set_checksum(0xabcd);
        let u = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            (u.src_port(), u.dst_port(), u.len(), u.checksum()),
            (49152, 4789, 12, 0xabcd)
        );
        assert_eq!(u.payload().len(), 4);
        assert!(!u.is_empty());
    }

    #[test]
    fn bad_lengths_are_errors_not_panics() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                UdpPacket::new_checked(&[0u8; 8][..n]).unwrap_err(),
                WireError::Truncated
            );
        }
        let short_len = [0, 1, 0, 2, 0, 7, 0, 0];
        assert_eq!(
            UdpPacket::new_checked(&short_len[..]).unwrap_err(),
            WireError::Malformed
        );
        let long_len = [0, 1, 0, 2, 0, 9, 0, 0];
        assert_eq!(
            UdpPacket::new_checked(&long_len[..]).unwrap_err(),
            WireError::Truncated
        );
        // Link padding after the datagram is not payload.
        let padded = [0, 1, 0, 2, 0, 9, 0, 0, 0xaa, 0, 0];
        assert_eq!(
            UdpPacket::new_checked(&padded[..]).unwrap().payload(),
            &[0xaa]
        );
    }

    #[test]
    fn fast_sum_equals_the_naive_word_sum() {
        let naive = |init: u64, d: &[u8]| {
            let mut s = init;
            for c in d.chunks(2) {
                s += (c[0] as u64) << 8 | c.get(1).copied().unwrap_or(0) as u64;
            }
            csum_fold(s)
        };
        let mut x: u32 = 0x1234_5678;
        let data: Vec<u8> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for len in 0..data.len() {
            for init in [0u64, 0xffff, 0x1_2345] {
                assert_eq!(
                    csum_fold(csum_add(init, &data[..len])),
                    naive(init, &data[..len]),
                    "len {len}"
                );
            }
        }
        assert_eq!(csum_fold(csum_add(0, &[0xff; 64])), 0xffff);
    }

    #[test]
    fn checksum_matches_rfc1071_example_and_zero_rule() {
        // RFC 1071 §3 example words sum to 0xddf2 (folded).
        let words = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(csum_fold(csum_add(0, &words)), 0xddf2);
        // Odd length: the last byte is the high half of a word.
        assert_eq!(csum_fold(csum_add(0, &[0x12])), 0x1200);
        // A datagram whose sum is 0xffff gets 0xffff, never 0.
        assert_eq!(checksum(0xffff, &[]), 0xffff);
    }
}
