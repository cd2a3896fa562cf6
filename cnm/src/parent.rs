//! A network's parent: the host NIC whose LAN the network is bridged to,
//! untagged (`eth0`) or in one 802.1Q VLAN (`eth0.10`), as Docker's
//! macvlan and ipvlan drivers spell it (`-o parent=eth0.10`).
//!
//! Owns: the spelling and its checks (an interface name, a VID 1..4094).
//! Never: whether the interface exists or is free — that is the daemon's,
//! which looks at the kernel.
//!
//! Unlike macvlan, `eth0.10` never names a kernel VLAN device: the switch
//! pushes and pops the tag itself on one trunk port over `eth0`. The text
//! after the last `.` is a VID when it is all digits (`eth0.10`); otherwise
//! the whole text is the interface (`br.lan`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest Linux interface name (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// `IFACE` or `IFACE.VID`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Parent {
    /// The host interface (the NIC).
    pub iface: String,
    /// The VLAN on the wire; none: untagged.
    pub vid: Option<u16>,
}

/// Why a parent's text is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParentError {
    #[error(
        "parent {0:?}: {1:?} is not an interface name (1 to 15 printable characters \
         without '/', ':' or spaces)"
    )]
    Iface(String, String),
    #[error("parent {0:?}: VLAN id {1} is outside 1..4094")]
    Vid(String, String),
    #[error("parent {0:?}: the loopback cannot carry a network")]
    Loopback(String),
}

/// Whether `s` can name a Linux interface.
pub fn is_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= IFNAME_MAX
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':')
}

impl FromStr for Parent {
    type Err = ParentError;

    fn from_str(s: &str) -> Result<Parent, ParentError> {
        let t = s.trim();
        let (iface, vid) = match t.rsplit_once('.') {
            Some((i, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                let n = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=4094).contains(n))
                    .ok_or_else(|| ParentError::Vid(s.into(), v.into()))?;
                (i, Some(n as u16))
            }
            _ => (t, None),
        };
        if !is_ifname(iface) {
            return Err(ParentError::Iface(s.into(), iface.into()));
        }
        if iface == "lo" {
            return Err(ParentError::Loopback(s.into()));
        }
        Ok(Parent {
            iface: iface.to_string(),
            vid,
        })
    }
}

impl fmt::Display for Parent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vid {
            Some(v) => write!(f, "{}.{v}", self.iface),
            None => f.write_str(&self.iface),
        }
    }
}

impl TryFrom<String> for Parent {
    type Error = ParentError;
    fn try_from(s: String) -> Result<Parent, ParentError> {
        s.parse()
    }
}

impl From<Parent> for String {
    fn from(p: Parent) -> String {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iface_and_vid() {
        let p: Parent = "eth0.10".parse().unwrap();
        assert_eq!((p.iface.as_str(), p.vid), ("eth0", Some(10)));
        assert_eq!(p.to_string(), "eth0.10");
        let p: Parent = "eth0".parse().unwrap();
        assert_eq!((p.iface.as_str(), p.vid), ("eth0", None));
        // A dot followed by other text is part of the name.
        let p: Parent = "br.lan".parse().unwrap();
        assert_eq!((p.iface.as_str(), p.vid), ("br.lan", None));
        let p: Parent = "a.b.4094".parse().unwrap();
        assert_eq!((p.iface.as_str(), p.vid), ("a.b", Some(4094)));
        let back: Parent = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn bad_parents_say_why() {
        for (bad, says) in [
            ("eth0.0", "outside 1..4094"),
            ("eth0.4095", "outside 1..4094"),
            ("eth0.99999999999", "outside 1..4094"),
            ("", "not an interface name"),
            (".10", "not an interface name"),
            ("a/b", "not an interface name"),
            ("averyveryverylongname", "not an interface name"),
            ("lo", "loopback"),
            ("lo.5", "loopback"),
        ] {
            let e = bad.parse::<Parent>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(serde_json::from_str::<Parent>("\"eth0.5000\"").is_err());
    }
}
