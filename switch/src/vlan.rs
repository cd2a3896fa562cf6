//! 802.1Q port VLAN modes: how a port classifies received frames into a VLAN
//! and how it tags frames it sends. Pure functions over small values; the
//! pipeline calls them per packet.

use std::fmt;
use std::str::FromStr;

use crate::wire::ethernet::EtherType;
use crate::wire::vlan::VID_MAX;

/// The tag a bridge domain switches on: customer VLANs (802.1Q, TPID 0x8100)
/// or service VLANs (802.1ad provider bridge, TPID 0x88a8, QinQ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VlanProtocol {
    #[default]
    #[serde(rename = "802.1q")]
    Dot1Q,
    #[serde(rename = "802.1ad")]
    Dot1Ad,
}

impl VlanProtocol {
    #[inline]
    pub const fn tpid(self) -> u16 {
        match self {
            VlanProtocol::Dot1Q => EtherType::VLAN,
            VlanProtocol::Dot1Ad => EtherType::QINQ,
        }
    }
}

/// A set of VLAN ids (1..=4094) as a 4096-bit map.
#[derive(Clone, PartialEq, Eq)]
pub struct VlanSet([u64; 64]);

impl Default for VlanSet {
    fn default() -> Self {
        VlanSet([0; 64])
    }
}

impl VlanSet {
    pub fn new() -> Self {
        Self::default()
    }
    /// Every usable VLAN, 1..=4094.
    pub fn all() -> Self {
        let mut s = Self::new();
        for v in 1..=VID_MAX {
            s.insert(v);
        }
        s
    }
    #[inline]
    pub fn contains(&self, vid: u16) -> bool {
        let v = vid as usize & 0xfff;
        self.0[v >> 6] & (1 << (v & 63)) != 0
    }
    pub fn insert(&mut self, vid: u16) {
        let v = vid as usize & 0xfff;
        self.0[v >> 6] |= 1 << (v & 63);
    }
    pub fn remove(&mut self, vid: u16) {
        let v = vid as usize & 0xfff;
        self.0[v >> 6] &= !(1 << (v & 63));
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (1..=VID_MAX).filter(|v| self.contains(*v))
    }
}

/// Error for a VLAN list such as `10,20-30` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VlanError {
    #[error("VLAN id {0} is outside 1..=4094")]
    OutOfRange(u32),
    #[error("invalid VLAN list {0:?}: expected ids and ranges like \"10,20-30\"")]
    Syntax(String),
}

/// Check a VLAN id is usable (1..=4094).
pub fn check_vid(vid: u32) -> Result<u16, VlanError> {
    if (1..=VID_MAX as u32).contains(&vid) {
        Ok(vid as u16)
    } else {
        Err(VlanError::OutOfRange(vid))
    }
}

impl FromStr for VlanSet {
    type Err = VlanError;
    /// `all`, or a comma list of ids and `a-b` ranges.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") {
            return Ok(Self::all());
        }
        let mut set = Self::new();
        if s.is_empty() {
            return Ok(set);
        }
        let num = |p: &str| {
            p.trim()
                .parse::<u32>()
                .map_err(|_| VlanError::Syntax(s.to_string()))
        };
        for part in s.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (check_vid(num(a)?)?, check_vid(num(b)?)?);
                    if a > b {
                        return Err(VlanError::Syntax(s.to_string()));
                    }
                    for v in a..=b {
                        set.insert(v);
                    }
                }
                None => set.insert(check_vid(num(part)?)?),
            }
        }
        Ok(set)
    }
}

impl fmt::Display for VlanSet {
    /// Compact ranges: `1-4094`, `10,20-30`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut it = self.iter().peekable();
        while let Some(a) = it.next() {
            let mut b = a;
            while it.peek() == Some(&(b + 1)) {
                b = it.next().unwrap();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if a == b {
                write!(f, "{a}")?
            } else {
                write!(f, "{a}-{b}")?
            }
        }
        Ok(())
    }
}

impl fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VlanSet({self})")
    }
}

impl serde::Serialize for VlanSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for VlanSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a port takes part in VLANs.
///
/// The trunk's bitmap makes this 520 bytes; it exists once per port in the
/// configuration and is read in place on the fast path, where a `Box` would
/// add a pointer chase per frame for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum VlanMode {
    /// Untagged member of one VLAN; tagged frames are dropped.
    Access { pvid: u16 },
    /// Tagged member of `allowed`; untagged frames belong to `native`, which
    /// is sent untagged (and is implicitly allowed).
    Trunk {
        allowed: VlanSet,
        native: Option<u16>,
    },
    /// 802.1ad customer port ("dot1q-tunnel"): every frame, tagged or not,
    /// enters service VLAN `svid`, its own tags carried as payload.
    Tunnel { svid: u16 },
}

impl Default for VlanMode {
    fn default() -> Self {
        VlanMode::Access { pvid: 1 }
    }
}

/// Result of ingress classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// The frame belongs to this VLAN.
    Vid(u16),
    TaggedOnAccess,
    NotAllowed,
    UntaggedNoNative,
}

/// How a frame leaves a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// The port is not a member of the VLAN.
    NotMember,
    Untagged,
    Tagged,
}

impl VlanMode {
    /// Check ids are in range.
    pub fn validate(&self) -> Result<(), VlanError> {
        match self {
            VlanMode::Access { pvid } => check_vid(*pvid as u32).map(|_| ()),
            VlanMode::Trunk { native, .. } => {
                native.map_or(Ok(()), |n| check_vid(n as u32).map(|_| ()))
            }
            VlanMode::Tunnel { svid } => check_vid(*svid as u32).map(|_| ()),
        }
    }

    /// Classify a received frame. `tag_vid` is the VID of the frame's outer
    /// tag when its TPID is the domain's (Some(0) for priority tagged).
    #[inline]
    pub fn classify(&self, tag_vid: Option<u16>) -> Ingress {
        match (self, tag_vid) {
            (VlanMode::Access { pvid }, None | Some(0)) => Ingress::Vid(*pvid),
            (VlanMode::Access { .. }, Some(_)) => Ingress::TaggedOnAccess,
            (VlanMode::Trunk { native, .. }, None | Some(0)) => match native {
                Some(n) => Ingress::Vid(*n),
                None => Ingress::UntaggedNoNative,
            },
            (VlanMode::Trunk { allowed, native }, Some(v)) => {
                if allowed.contains(v) || *native == Some(v) {
                    Ingress::Vid(v)
                } else {
                    Ingress::NotAllowed
                }
            }
            (VlanMode::Tunnel { svid }, _) => Ingress::Vid(*svid),
        }
    }

    /// Whether tunnel semantics apply: the frame's own tags are payload.
    #[inline]
    pub fn tags_are_payload(&self) -> bool {
        matches!(self, VlanMode::Tunnel { .. })
    }

    /// How a frame of VLAN `vid` leaves this port.
    #[inline]
    pub fn egress(&self, vid: u16) -> Egress {
        match self {
            VlanMode::Access { pvid } | VlanMode::Tunnel { svid: pvid } => {
                if *pvid == vid {
                    Egress::Untagged
                } else {
                    Egress::NotMember
                }
            }
            VlanMode::Trunk { allowed, native } => {
                if *native == Some(vid) {
                    Egress::Untagged
                } else if allowed.contains(vid) {
                    Egress::Tagged
                } else {
                    Egress::NotMember
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(list: &str, native: Option<u16>) -> VlanMode {
        VlanMode::Trunk {
            allowed: list.parse().unwrap(),
            native,
        }
    }

    #[test]
    fn vlan_set_parse_and_print() {
        let s: VlanSet = "10, 20-23,4094".parse().unwrap();
        assert!(s.contains(10) && s.contains(22) && s.contains(4094));
        assert!(!s.contains(11) && !s.contains(0));
        assert_eq!(s.to_string(), "10,20-23,4094");
        assert_eq!(VlanSet::all().to_string(), "1-4094");
        assert_eq!("".parse::<VlanSet>().unwrap(), VlanSet::new());
    }

    #[test]
    fn vlan_set_rejects_bad_lists() {
        assert_eq!(
            "0".parse::<VlanSet>().unwrap_err(),
            VlanError::OutOfRange(0)
        );
        assert_eq!(
            "4095".parse::<VlanSet>().unwrap_err(),
            VlanError::OutOfRange(4095)
        );
        assert!(matches!(
            "30-20".parse::<VlanSet>(),
            Err(VlanError::Syntax(_))
        ));
        assert!(matches!(
            "ten".parse::<VlanSet>(),
            Err(VlanError::Syntax(_))
        ));
        assert!(matches!(
            "1,,2".parse::<VlanSet>(),
            Err(VlanError::Syntax(_))
        ));
    }

    #[test]
    fn access_port_classification() {
        let a = VlanMode::Access { pvid: 10 };
        assert_eq!(a.classify(None), Ingress::Vid(10));
        assert_eq!(
            a.classify(Some(0)),
            Ingress::Vid(10),
            "priority tagged is untagged"
        );
        assert_eq!(
            a.classify(Some(10)),
            Ingress::TaggedOnAccess,
            "even its own VLAN"
        );
        assert_eq!(a.egress(10), Egress::Untagged);
        assert_eq!(a.egress(20), Egress::NotMember);
    }

    #[test]
    fn trunk_classification() {
        let t = trunk("10,20", Some(1));
        assert_eq!(t.classify(Some(10)), Ingress::Vid(10));
        assert_eq!(t.classify(Some(30)), Ingress::NotAllowed);
        assert_eq!(t.classify(None), Ingress::Vid(1));
        assert_eq!(t.classify(Some(0)), Ingress::Vid(1));
        assert_eq!(
            t.classify(Some(1)),
            Ingress::Vid(1),
            "native is implicitly allowed tagged"
        );
        assert_eq!(t.egress(10), Egress::Tagged);
        assert_eq!(t.egress(1), Egress::Untagged);
        assert_eq!(t.egress(30), Egress::NotMember);
        let no_native = trunk("10", None);
        assert_eq!(no_native.classify(None), Ingress::UntaggedNoNative);
    }

    #[test]
    fn tunnel_port_takes_everything_into_its_service_vlan() {
        let t = VlanMode::Tunnel { svid: 100 };
        assert_eq!(t.classify(None), Ingress::Vid(100));
        assert_eq!(t.classify(Some(7)), Ingress::Vid(100));
        assert_eq!(t.egress(100), Egress::Untagged);
        assert!(t.tags_are_payload());
    }

    #[test]
    fn validation() {
        assert!(VlanMode::Access { pvid: 0 }.validate().is_err());
        assert!(VlanMode::Access { pvid: 4095 }.validate().is_err());
        assert!(trunk("1-5", Some(4095)).validate().is_err());
        assert!(trunk("1-5", None).validate().is_ok());
    }

    #[test]
    fn serde_shape() {
        let t = trunk("10,20-22", Some(1));
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(j, r#"{"mode":"trunk","allowed":"10,20-22","native":1}"#);
        assert_eq!(serde_json::from_str::<VlanMode>(&j).unwrap(), t);
        let bad = r#"{"mode":"trunk","allowed":"10,5000","native":null}"#;
        assert!(
            serde_json::from_str::<VlanMode>(bad)
                .unwrap_err()
                .to_string()
                .contains("4094")
        );
    }
}
