//! MAC addresses: parsing, printing, and the classes the bridge cares about.
//! Owns no state; never allocates.

use std::fmt;
use std::str::FromStr;

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    pub const fn new(b: [u8; 6]) -> Self {
        MacAddr(b)
    }

    /// Group (multicast or broadcast) address: the I/G bit is set.
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    #[inline]
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    #[inline]
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// A valid station (source) address: unicast and not all zeros.
    #[inline]
    pub fn is_valid_source(&self) -> bool {
        !self.is_multicast() && !self.is_zero()
    }

    /// The 802.1D reserved link-local group addresses 01:80:C2:00:00:00..=0F
    /// (STP BPDUs, LACP, LLDP, 802.1X, pause). A bridge never forwards them.
    #[inline]
    pub fn is_reserved_link_local(&self) -> bool {
        self.0[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && self.0[5] & 0xf0 == 0
    }

    /// The address packed into the low 48 bits of a u64 (network byte order).
    #[inline]
    /// A locally administered unicast address derived from `name` (FNV-1a),
    /// so an object gets the same MAC on every start without storing it.
    /// `tag` is the second byte, to keep kinds of objects apart.
    pub fn derived(tag: u8, name: &str) -> MacAddr {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        let b = h.to_be_bytes();
        MacAddr([0x02, tag, b[0], b[1], b[2], b[3]])
    }

    pub const fn to_u64(self) -> u64 {
        // One load and a byte swap, where shifting byte by byte is six
        // loads.
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    #[inline]
    pub const fn from_u64(v: u64) -> Self {
        MacAddr([
            (v >> 40) as u8,
            (v >> 32) as u8,
            (v >> 24) as u8,
            (v >> 16) as u8,
            (v >> 8) as u8,
            v as u8,
        ])
    }

    /// A locally administered unicast address derived from `seed` (for tests,
    /// generated endpoints and benches).
    pub const fn local(seed: u64) -> Self {
        let mut m = Self::from_u64(seed & 0xffff_ffff_ffff);
        m.0[0] = (m.0[0] & 0xfc) | 0x02;
        m
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error for a string that is not `xx:xx:xx:xx:xx:xx` (or `-` separated).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets like 02:42:ac:11:00:02")]
pub struct ParseMacError(pub String);

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for o in out.iter_mut() {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty() || p.len() > 2 {
                return Err(err());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print_round_trip() {
        let m: MacAddr = "02:42:AC:11:00:02".parse().unwrap();
        assert_eq!(m.0, [0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
        assert_eq!(m.to_string(), "02:42:ac:11:00:02");
        assert_eq!("02-42-ac-11-00-02".parse::<MacAddr>().unwrap(), m);
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "zz:42:ac:11:00:02",
            "002:42:ac:11:00:02",
        ] {
            assert!(s.parse::<MacAddr>().is_err(), "{s} parsed");
        }
    }

    #[test]
    fn classes() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::BROADCAST.is_valid_source());
        assert!(!MacAddr::ZERO.is_valid_source());
        assert!(MacAddr::local(7).is_valid_source());
        let stp: MacAddr = "01:80:c2:00:00:00".parse().unwrap();
        let lldp: MacAddr = "01:80:c2:00:00:0e".parse().unwrap();
        let not: MacAddr = "01:80:c2:00:00:10".parse().unwrap();
        assert!(stp.is_reserved_link_local() && lldp.is_reserved_link_local());
        assert!(!not.is_reserved_link_local());
    }

    #[test]
    fn u64_round_trip() {
        let m = MacAddr([1, 2, 3, 4, 5, 6]);
        assert_eq!(m.to_u64(), 0x0102_0304_0506);
        assert_eq!(MacAddr::from_u64(m.to_u64()), m);
    }
}
