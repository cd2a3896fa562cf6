//! IEEE 802.1Q / 802.1ad VLAN tag view: a TPID (read by the caller as the
//! preceding EtherType) followed by the 16-bit TCI and the next EtherType.

use super::{Field, WireError, read_u16, write_u16};

mod field {
    use super::Field;
    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
}

/// Bytes a tag occupies in the frame (TPID + TCI).
pub const TAG_LEN: usize = 4;
/// Highest usable VLAN id; 0 means "priority tagged", 4095 is reserved.
pub const VID_MAX: u16 = 4094;

/// Tag Control Information: PCP (3 bits), DEI (1 bit), VID (12 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Tci(pub u16);

impl Tci {
    #[inline]
    pub const fn new(pcp: u8, dei: bool, vid: u16) -> Self {
        Tci(((pcp as u16 & 7) << 13) | ((dei as u16) << 12) | (vid & 0x0fff))
    }
    #[inline]
    pub const fn vid(self) -> u16 {
        self.0 & 0x0fff
    }
    #[inline]
    pub const fn pcp(self) -> u8 {
        (self.0 >> 13) as u8
    }
    #[inline]
    pub const fn dei(self) -> bool {
        self.0 & 0x1000 != 0
    }
    /// Same priority and drop-eligibility, another VLAN.
    #[inline]
    pub const fn with_vid(self, vid: u16) -> Self {
        Tci((self.0 & 0xf000) | (vid & 0x0fff))
    }
}

/// A view of the four bytes after a TPID: TCI and the encapsulated EtherType.
#[derive(Debug, Clone)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    /// Check the buffer holds TCI + EtherType and the VID is not the reserved 4095.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < field::ETHERTYPE.end {
            return Err(WireError::Truncated);
        }
        let t = Self::new_unchecked(buffer);
        if t.tci().vid() == 0x0fff {
            return Err(WireError::Malformed);
        }
        Ok(t)
    }

    #[inline]
    pub fn tci(&self) -> Tci {
        Tci(read_u16(self.buffer.as_ref(), field::TCI.start))
    }

    #[inline]
    pub fn inner_ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    #[inline]
    pub fn set_tci(&mut self, tci: Tci) {
        write_u16(self.buffer.as_mut(), field::TCI.start, tci.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tci_fields() {
        let t = Tci::new(5, true, 100);
        assert_eq!((t.pcp(), t.dei(), t.vid()), (5, true, 100));
        assert_eq!(t.0, 0xb064);
        let u = t.with_vid(4094);
        assert_eq!((u.pcp(), u.dei(), u.vid()), (5, true, 4094));
    }

    #[test]
    fn checked_view() {
        let b = [0x20, 0x0a, 0x08, 0x00];
        let v = VlanTag::new_checked(&b[..]).unwrap();
        assert_eq!(v.tci().vid(), 10);
        assert_eq!(v.tci().pcp(), 1);
        assert_eq!(v.inner_ethertype(), 0x0800);
        assert_eq!(
            VlanTag::new_checked(&b[..3]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            VlanTag::new_checked(&[0x0f, 0xff, 8, 0][..]).unwrap_err(),
            WireError::Malformed
        );
    }
}
