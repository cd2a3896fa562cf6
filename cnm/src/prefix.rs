//! IP prefixes (`10.1.2.0/24`, `fd00::/64`) and interface addresses
//! (`10.1.2.5/24`): parsing, printing and the arithmetic IPAM needs.
//!
//! Owns: the textual forms Docker uses (CIDR with host bits, as in
//! `Gateway: "10.231.0.1/24"`, or without). Addresses are handled as `u128`
//! offsets so one allocator serves IPv4 and IPv6. Never: allocation policy.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address with a prefix length. As a *prefix* (a subnet, a pool) the
/// host bits are zero; as an *interface address* they are not
/// ([`Cidr::network`] gives the subnet).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("invalid address {0:?}: expected an IPv4 or IPv6 address")]
    Addr(String),
    #[error("invalid prefix {0:?}: expected ADDRESS/LENGTH like 10.1.0.0/24 or fd00::/64")]
    Syntax(String),
    #[error("invalid prefix {text:?}: length {len} is longer than {max} bits")]
    Length { text: String, len: u32, max: u8 },
    #[error("prefix {text:?} has host bits set (did you mean {network}?)")]
    HostBits { text: String, network: Cidr },
}

impl Cidr {
    pub fn new(addr: IpAddr, len: u8) -> Option<Cidr> {
        (len <= max_len(addr)).then_some(Cidr { addr, len })
    }

    /// Parse `ADDR/LEN` (host bits allowed: an interface address).
    pub fn parse_addr(s: &str) -> Result<Cidr, CidrError> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| CidrError::Syntax(s.into()))?;
        let addr: IpAddr = a.parse().map_err(|_| CidrError::Syntax(s.into()))?;
        let len: u32 = l.parse().map_err(|_| CidrError::Syntax(s.into()))?;
        let max = max_len(addr);
        if len > u32::from(max) {
            return Err(CidrError::Length {
                text: s.into(),
                len,
                max,
            });
        }
        Ok(Cidr {
            addr,
            len: len as u8,
        })
    }

    /// Parse `ADDR/LEN` as a prefix: host bits must be zero.
    pub fn parse_prefix(s: &str) -> Result<Cidr, CidrError> {
        let c = Cidr::parse_addr(s)?;
        if c.network() != c {
            return Err(CidrError::HostBits {
                text: s.into(),
                network: c.network(),
            });
        }
        Ok(c)
    }

    pub fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Address bits of the family (32 or 128).
    pub fn bits(&self) -> u8 {
        max_len(self.addr)
    }

    /// The subnet this address lies in (host bits cleared).
    pub fn network(&self) -> Cidr {
        Cidr {
            addr: from_u128(self.addr, to_u128(self.addr) & self.mask()),
            len: self.len,
        }
    }

    fn mask(&self) -> u128 {
        let host = u32::from(self.bits() - self.len);
        let full = if self.is_v4() {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        if host >= 128 {
            0
        } else {
            full & !((1u128 << host) - 1)
        }
    }

    /// First and last address of the subnet, as integers.
    pub fn range(&self) -> (u128, u128) {
        let lo = to_u128(self.addr) & self.mask();
        let host = u32::from(self.bits() - self.len);
        let span = if host >= 128 {
            u128::MAX
        } else {
            (1u128 << host) - 1
        };
        (lo, lo | span)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.is_v4() {
            return false;
        }
        let (lo, hi) = self.range();
        (lo..=hi).contains(&to_u128(ip))
    }

    /// Whether two prefixes share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        if self.is_v4() != other.is_v4() {
            return false;
        }
        let (a, b) = self.range();
        let (c, d) = other.range();
        a <= d && c <= b
    }

    /// The same address with another length (e.g. a gateway in its subnet).
    pub fn with_addr(&self, addr: IpAddr) -> Cidr {
        Cidr {
            addr,
            len: self.len,
        }
    }

    /// The `index`-th sub-prefix of length `len` inside this one.
    pub fn subnet(&self, len: u8, index: u128) -> Option<Cidr> {
        if len < self.len || len > self.bits() {
            return None;
        }
        let shift = u32::from(self.bits() - len);
        let count_bits = u32::from(len - self.len);
        if count_bits < 128 && index >> count_bits != 0 {
            return None;
        }
        let base = self.range().0;
        let off = if shift >= 128 { 0 } else { index << shift };
        Some(Cidr {
            addr: from_u128(self.addr, base | off),
            len,
        })
    }
}

pub fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// An integer back to an address of the same family as `like`.
pub fn from_u128(like: IpAddr, v: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// A bare address, also accepting `ADDR/LEN` (the length is dropped):
/// Docker sends bare addresses in most places, CIDR in a few.
pub fn parse_ip_lenient(s: &str) -> Result<IpAddr, CidrError> {
    let bare = s.split_once('/').map_or(s, |(a, _)| a);
    bare.parse().map_err(|_| CidrError::Addr(s.into()))
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    /// Parses an interface address (host bits allowed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cidr::parse_addr(s)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_both_families() {
        assert_eq!(c("10.231.0.1/24").to_string(), "10.231.0.1/24");
        assert_eq!(c("10.231.0.1/24").network(), c("10.231.0.0/24"));
        assert_eq!(c("fd00:233::1/64").network(), c("fd00:233::/64"));
        assert_eq!(c("0.0.0.0/0").range(), (0, u128::from(u32::MAX)));
        assert_eq!(c("::/0").range(), (0, u128::MAX));
        assert!(Cidr::parse_prefix("10.1.2.3/24").is_err());
        assert!(Cidr::parse_addr("10.1.2.3/33").is_err());
        assert!(Cidr::parse_addr("10.1.2.3").is_err());
        assert!(Cidr::parse_addr("nope/8").is_err());
        let e = Cidr::parse_prefix("10.1.2.3/24").unwrap_err().to_string();
        assert!(e.contains("did you mean 10.1.2.0/24"), "{e}");
    }

    #[test]
    fn containment_overlap_and_subnets() {
        let p = c("172.16.0.0/12");
        assert!(p.contains("172.31.255.255".parse().unwrap()));
        assert!(!p.contains("172.32.0.0".parse().unwrap()));
        assert!(!p.contains("::1".parse().unwrap()));
        assert!(p.overlaps(&c("172.20.0.0/16")));
        assert!(!p.overlaps(&c("192.168.0.0/16")));
        assert!(!p.overlaps(&c("::/0")));
        assert_eq!(p.subnet(16, 1), Some(c("172.17.0.0/16")));
        assert_eq!(p.subnet(16, 16), None);
        assert_eq!(c("fd00::/48").subnet(64, 2), Some(c("fd00:0:0:2::/64")));
        assert_eq!(
            parse_ip_lenient("10.0.0.1/24").unwrap().to_string(),
            "10.0.0.1"
        );
    }
}
