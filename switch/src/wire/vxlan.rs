//! VXLAN header view (RFC 7348 §5): 8 bytes between the outer UDP header and
//! the inner Ethernet frame.
//!
//! ```text
//!  0               1               2               3
//! |R|R|R|R|I|R|R|R|            Reserved (24 bits)                 |
//! |              VNI (24 bits)                    | Reserved (8)  |
//! ```
//!
//! Owns: the header layout and the receive-side validity rule. Never:
//! allocation, I/O, VNI policy (which VNIs are known is the VTEP table's).

use super::{Field, WireError};

mod field {
    use super::Field;
    pub const FLAGS: usize = 0;
    pub const VNI: Field = 4..7;
    pub const PAYLOAD: usize = 8;
}

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// IANA-assigned UDP destination port (RFC 7348 §5).
pub const UDP_PORT: u16 = 4789;
/// The I flag: the VNI field is valid. RFC 7348 requires it set.
pub const FLAG_I: u8 = 0x08;
/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = 0x00ff_ffff;

/// A VXLAN Network Identifier (24 bits).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Vni(u32);

impl Vni {
    /// `None` if `v` does not fit 24 bits.
    pub const fn new(v: u32) -> Option<Vni> {
        if v <= VNI_MAX { Some(Vni(v)) } else { None }
    }
    #[inline]
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for Vni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The 8 header bytes for `vni` with only the I flag set, as Linux sends.
#[inline]
pub const fn header(vni: Vni) -> [u8; HEADER_LEN] {
    let v = vni.0;
    [FLAG_I, 0, 0, 0, (v >> 16) as u8, (v >> 8) as u8, v as u8, 0]
}

/// A view of a VXLAN header and the inner frame after it.
#[derive(Debug, Clone)]
pub struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanHeader { buffer }
    }

    /// Check the buffer holds the header and the I flag is set (RFC 7348 §5:
    /// "MUST be set to 1 for a valid VNI"). Reserved bits are ignored on
    /// receive, as the RFC asks (and as Linux does without extensions).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::FLAGS] & FLAG_I == 0 {
            return Err(WireError::Malformed);
        }
        Ok(Self::new_unchecked(buffer))
    }

    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    #[inline]
    pub fn vni(&self) -> Vni {
        let b = &self.buffer.as_ref()[field::VNI];
        Vni(((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32)
    }

    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanHeader<T> {
    /// Write a whole header: I flag, `vni`, zero reserved fields.
    #[inline]
    pub fn write(&mut self, vni: Vni) {
        self.buffer.as_mut()[..HEADER_LEN].copy_from_slice(&header(vni));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vni_is_24_bits() {
        assert_eq!(Vni::new(VNI_MAX).unwrap().get(), 0xff_ffff);
        assert!(Vni::new(VNI_MAX + 1).is_none());
    }

    #[test]
    fn header_round_trip() {
        let vni = Vni::new(0x12_3456).unwrap();
        let mut b = [0xffu8; 10];
        VxlanHeader::new_unchecked(&mut b[..]).write(vni);
        assert_eq!(&b[..8], &[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        let v = VxlanHeader::new_checked(&b[..]).unwrap();
        assert_eq!(v.vni(), vni);
        assert_eq!(v.flags(), FLAG_I);
        assert_eq!(v.payload(), &[0xff, 0xff]);
    }

    #[test]
    fn missing_i_flag_and_short_input_are_errors() {
        let no_i = [0x00, 0, 0, 0, 0, 0, 42, 0];
        assert_eq!(
            VxlanHeader::new_checked(&no_i[..]).unwrap_err(),
            WireError::Malformed
        );
        for n in 0..HEADER_LEN {
            assert_eq!(
                VxlanHeader::new_checked(&header(Vni(1))[..n]).unwrap_err(),
                WireError::Truncated
            );
        }
        // Reserved bits set are ignored on receive.
        let reserved = [0xff, 0xff, 0xff, 0xff, 0, 0, 42, 0xff];
        assert_eq!(
            VxlanHeader::new_checked(&reserved[..]).unwrap().vni().get(),
            42
        );
    }
}
