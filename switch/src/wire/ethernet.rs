//! Ethernet II header view (IEEE 802.3 MAC header with an EtherType).

use super::{Field, WireError, read_u16, write_u16};
use crate::mac::MacAddr;

mod field {
    use super::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// Length of the untagged MAC header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Offset of the first EtherType / TPID.
pub const ETHERTYPE_OFFSET: usize = field::ETHERTYPE.start;
/// The shortest frame the switch accepts (a MAC header; the 60-byte minimum
/// is the sender's padding business, and TAP/veth deliver shorter frames).
pub const MIN_FRAME_LEN: usize = HEADER_LEN;

/// EtherTypes and TPIDs the switch knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtherType;

impl EtherType {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    /// IEEE 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ TPID still seen on old gear.
    pub const QINQ_LEGACY: u16 = 0x9100;
    /// Values below this are 802.3 length fields (LLC frames), not EtherTypes.
    pub const MIN_ETHERTYPE: u16 = 0x0600;
}

/// A view of an Ethernet frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wrap without checking; accessors may panic if the buffer is shorter
    /// than [`HEADER_LEN`]. Use inside the fast path after a check.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wrap after checking the buffer holds a whole MAC header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[field::DESTINATION].try_into().unwrap())
    }

    #[inline]
    pub fn src(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[field::SOURCE].try_into().unwrap())
    }

    /// The first EtherType/TPID after the addresses.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&m.0);
    }

    #[inline]
    pub fn set_src(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&m.0);
    }

    #[inline]
    pub fn set_ethertype(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE.start, v);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// Build an untagged frame (test and slow-path helper; allocates).
pub fn build(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.extend_from_slice(&dst.0);
    v.extend_from_slice(&src.0);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields() {
        let f = build(
            MacAddr::BROADCAST,
            MacAddr([2, 0, 0, 0, 0, 1]),
            EtherType::ARP,
            &[9; 28],
        );
        let v = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(v.dst(), MacAddr::BROADCAST);
        assert_eq!(v.src(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(v.ethertype(), EtherType::ARP);
        assert_eq!(v.payload().len(), 28);
    }

    #[test]
    fn truncated_is_an_error_not_a_panic() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&[0u8; 20][..n]).unwrap_err(),
                WireError::Truncated
            );
        }
    }

    #[test]
    fn setters() {
        let mut f = build(MacAddr::ZERO, MacAddr::ZERO, 0, &[]);
        let mut v = EthernetFrame::new_checked(&mut f[..]).unwrap();
        v.set_dst(MacAddr::BROADCAST);
        v.set_src(MacAddr::local(1));
        v.set_ethertype(EtherType::IPV6);
        assert_eq!(&f[..6], &[0xff; 6]);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
    }
}
