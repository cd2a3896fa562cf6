//! BPDU wire format (802.1D-2004 clause 9): bridge and port identifiers,
//! the Configuration, TCN and RST BPDUs, the LLC/802.3 framing around them,
//! and validation per 9.3.4.
//!
//! Owns: BPDU offsets, flag bits, encoding of times in 1/256 s. Never: state,
//! I/O, panics on any input (decoding checks every length first).

use std::fmt;

use crate::mac::MacAddr;
use crate::wire::Field;

/// The Bridge Group Address every BPDU is sent to.
pub const BRIDGE_GROUP: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x00]);
/// LLC header of a BPDU: DSAP 0x42, SSAP 0x42, UI (0x03).
pub const LLC: [u8; 3] = [0x42, 0x42, 0x03];

/// Ethernet header (14) + LLC (3): where the BPDU starts in a frame.
pub const BPDU_OFFSET: usize = 17;
/// Frames are padded to the Ethernet minimum (without FCS).
pub const MIN_FRAME_LEN: usize = 60;

/// BPDU lengths (9.3.4).
pub const CONFIG_LEN: usize = 35;
pub const TCN_LEN: usize = 4;
pub const RST_LEN: usize = 36;

/// BPDU Type octet values.
pub const TYPE_CONFIG: u8 = 0x00;
pub const TYPE_RST: u8 = 0x02;
pub const TYPE_TCN: u8 = 0x80;

/// Flag bits (9.3.1, 9.3.3): bit 1 is the least significant.
pub mod flags {
    /// Topology Change (bit 1).
    pub const TC: u8 = 0x01;
    /// Proposal (bit 2, RST only).
    pub const PROPOSAL: u8 = 0x02;
    /// Port Role (bits 3-4, RST only).
    pub const ROLE_MASK: u8 = 0x0c;
    pub const ROLE_UNKNOWN: u8 = 0x00;
    pub const ROLE_ALT_BACKUP: u8 = 0x04;
    pub const ROLE_ROOT: u8 = 0x08;
    pub const ROLE_DESIGNATED: u8 = 0x0c;
    /// Learning (bit 5, RST only).
    pub const LEARNING: u8 = 0x10;
    /// Forwarding (bit 6, RST only).
    pub const FORWARDING: u8 = 0x20;
    /// Agreement (bit 7, RST only).
    pub const AGREEMENT: u8 = 0x40;
    /// Topology Change Acknowledgment (bit 8, Configuration BPDUs only).
    pub const TCA: u8 = 0x80;
}

/// Offsets inside the BPDU (after the LLC header), 9.3.
mod field {
    use super::Field;
    pub const PROTOCOL_ID: Field = 0..2;
    pub const VERSION: usize = 2;
    pub const TYPE: usize = 3;
    pub const FLAGS: usize = 4;
    pub const ROOT_ID: Field = 5..13;
    pub const ROOT_PATH_COST: Field = 13..17;
    pub const BRIDGE_ID: Field = 17..25;
    pub const PORT_ID: Field = 25..27;
    pub const MESSAGE_AGE: Field = 27..29;
    pub const MAX_AGE: Field = 29..31;
    pub const HELLO_TIME: Field = 31..33;
    pub const FORWARD_DELAY: Field = 33..35;
    pub const VERSION1_LEN: usize = 35;
}

/// Why a frame is not a BPDU this bridge will process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BpduError {
    #[error("frame too short for a BPDU")]
    TooShort,
    #[error("destination is not the Bridge Group Address")]
    NotBridgeGroup,
    #[error("not an 802.3/LLC frame with DSAP/SSAP 0x42")]
    NotLlc,
    #[error("protocol identifier is not 0")]
    BadProtocol,
    #[error("unknown BPDU type {0:#04x}")]
    UnknownType(u8),
    #[error("message age is not less than max age")]
    MessageAgeExceeded,
    #[error("BPDU sent by this very port (looped back)")]
    Loopback,
    #[error("port is not part of the spanning tree")]
    UnknownPort,
}

/// A bridge identifier (9.2.5): 4-bit priority, 12-bit system ID extension,
/// 48-bit MAC. Compared as one number; lower is better.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BridgeId(pub u64);

impl BridgeId {
    /// `priority` keeps its top 4 bits (a multiple of 4096); the system ID
    /// extension is 0 (one spanning tree per bridge domain).
    pub const fn new(priority: u16, mac: MacAddr) -> Self {
        BridgeId((((priority & 0xf000) as u64) << 48) | mac.to_u64())
    }
    /// Priority and system ID extension (the first two octets).
    pub const fn priority(self) -> u16 {
        (self.0 >> 48) as u16
    }
    pub const fn mac(self) -> MacAddr {
        MacAddr::from_u64(self.0)
    }
    fn read(b: &[u8]) -> Self {
        BridgeId(u64::from_be_bytes(b[..8].try_into().unwrap()))
    }
}

impl fmt::Display for BridgeId {
    /// `8000.001122334455`, the form `brctl`/`mstpctl` print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.mac().0;
        write!(
            f,
            "{:04x}.{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            self.priority(),
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5]
        )
    }
}

impl fmt::Debug for BridgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for BridgeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A port identifier (9.2.7): 4-bit priority (the port priority's top
/// nibble) and 12-bit port number.
pub const fn port_identifier(priority: u8, number: u16) -> u16 {
    (((priority & 0xf0) as u16) << 8) | (number & 0x0fff)
}

/// The timer values a BPDU carries, in milliseconds (1/256 s on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Times {
    pub message_age: u32,
    pub max_age: u32,
    pub hello: u32,
    pub forward_delay: u32,
}

/// The kind of a decoded BPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BpduKind {
    Config,
    Tcn,
    Rst,
}

/// A decoded BPDU. For TCNs only `kind` and `version` mean anything; for
/// Configuration BPDUs only the TC and TCA flags are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bpdu {
    pub kind: BpduKind,
    /// Protocol Version Identifier as received (0 STP, 2 RSTP, 3 MSTP…).
    pub version: u8,
    pub flags: u8,
    pub root: BridgeId,
    pub root_path_cost: u32,
    pub bridge: BridgeId,
    pub port: u16,
    pub times: Times,
}

impl Bpdu {
    /// A TCN BPDU.
    pub const fn tcn() -> Self {
        Bpdu {
            kind: BpduKind::Tcn,
            version: 0,
            flags: 0,
            root: BridgeId(0),
            root_path_cost: 0,
            bridge: BridgeId(0),
            port: 0,
            times: Times {
                message_age: 0,
                max_age: 0,
                hello: 0,
                forward_delay: 0,
            },
        }
    }

    /// Length of the BPDU itself (without LLC).
    pub const fn wire_len(&self) -> usize {
        match self.kind {
            BpduKind::Config => CONFIG_LEN,
            BpduKind::Tcn => TCN_LEN,
            BpduKind::Rst => RST_LEN,
        }
    }

    /// Decode a BPDU (the octets after the LLC header), validating per
    /// 802.1D-2004 9.3.4.
    pub fn decode(b: &[u8]) -> Result<Self, BpduError> {
        if b.len() < TCN_LEN {
            return Err(BpduError::TooShort);
        }
        if b[field::PROTOCOL_ID] != [0, 0] {
            return Err(BpduError::BadProtocol);
        }
        let version = b[field::VERSION];
        let kind = match b[field::TYPE] {
            TYPE_TCN => {
                return Ok(Bpdu {
                    version,
                    ..Bpdu::tcn()
                });
            }
            TYPE_CONFIG if b.len() < CONFIG_LEN => return Err(BpduError::TooShort),
            TYPE_CONFIG => BpduKind::Config,
            // 9.3.4 c): RST BPDUs need version ≥ 2; later versions (MSTP)
            // are read as RST for compatibility.
            TYPE_RST if version >= 2 && b.len() < RST_LEN => return Err(BpduError::TooShort),
            TYPE_RST if version >= 2 => BpduKind::Rst,
            t => return Err(BpduError::UnknownType(t)),
        };
        let time = |f: Field| ticks_to_ms(u16::from_be_bytes([b[f.start], b[f.start + 1]]));
        let times = Times {
            message_age: time(field::MESSAGE_AGE),
            max_age: time(field::MAX_AGE),
            hello: time(field::HELLO_TIME),
            forward_delay: time(field::FORWARD_DELAY),
        };
        let mut flags = b[field::FLAGS];
        if kind == BpduKind::Config {
            // 9.3.4 a): a Configuration BPDU whose age reached max age is
            // not processed.
            if times.message_age >= times.max_age {
                return Err(BpduError::MessageAgeExceeded);
            }
            flags &= flags::TC | flags::TCA;
        }
        Ok(Bpdu {
            kind,
            version,
            flags,
            root: BridgeId::read(&b[field::ROOT_ID]),
            root_path_cost: u32::from_be_bytes(b[field::ROOT_PATH_COST].try_into().unwrap()),
            bridge: BridgeId::read(&b[field::BRIDGE_ID]),
            port: u16::from_be_bytes(b[field::PORT_ID].try_into().unwrap()),
            times,
        })
    }

    /// Decode a whole Ethernet frame: Bridge Group destination, 802.3
    /// length (not an EtherType), LLC 42 42 03, then the BPDU. Padding
    /// beyond the 802.3 length is ignored.
    pub fn decode_frame(frame: &[u8]) -> Result<Self, BpduError> {
        if frame.len() < BPDU_OFFSET {
            return Err(BpduError::TooShort);
        }
        if frame[0..6] != BRIDGE_GROUP.0 {
            return Err(BpduError::NotBridgeGroup);
        }
        let len = u16::from_be_bytes([frame[12], frame[13]]) as usize;
        if len >= 0x0600 || len < LLC.len() || frame[14..17] != LLC {
            return Err(BpduError::NotLlc);
        }
        let end = 14 + len;
        if end > frame.len() {
            return Err(BpduError::TooShort);
        }
        Self::decode(&frame[BPDU_OFFSET..end])
    }

    /// Append the BPDU (without LLC) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.wire_len(), 0);
        let b = &mut out[start..];
        // Protocol identifier 0x0000 is already there.
        b[field::VERSION] = match self.kind {
            BpduKind::Rst => 2,
            _ => 0,
        };
        b[field::TYPE] = match self.kind {
            BpduKind::Config => TYPE_CONFIG,
            BpduKind::Tcn => TYPE_TCN,
            BpduKind::Rst => TYPE_RST,
        };
        if self.kind == BpduKind::Tcn {
            return;
        }
        b[field::FLAGS] = self.flags;
        b[field::ROOT_ID].copy_from_slice(&self.root.0.to_be_bytes());
        b[field::ROOT_PATH_COST].copy_from_slice(&self.root_path_cost.to_be_bytes());
        b[field::BRIDGE_ID].copy_from_slice(&self.bridge.0.to_be_bytes());
        b[field::PORT_ID].copy_from_slice(&self.port.to_be_bytes());
        let mut put = |f: Field, ms: u32| b[f].copy_from_slice(&ms_to_ticks(ms).to_be_bytes());
        put(field::MESSAGE_AGE, self.times.message_age);
        put(field::MAX_AGE, self.times.max_age);
        put(field::HELLO_TIME, self.times.hello);
        put(field::FORWARD_DELAY, self.times.forward_delay);
        if self.kind == BpduKind::Rst {
            b[field::VERSION1_LEN] = 0;
        }
    }

    /// A whole Ethernet frame carrying this BPDU from `src`, padded to 60
    /// octets.
    pub fn encode_frame(&self, src: MacAddr) -> Vec<u8> {
        let mut v = Vec::with_capacity(MIN_FRAME_LEN);
        v.extend_from_slice(&BRIDGE_GROUP.0);
        v.extend_from_slice(&src.0);
        v.extend_from_slice(&((LLC.len() + self.wire_len()) as u16).to_be_bytes());
        v.extend_from_slice(&LLC);
        self.encode(&mut v);
        if v.len() < MIN_FRAME_LEN {
            v.resize(MIN_FRAME_LEN, 0);
        }
        v
    }
}

/// The pipeline's cheap test for frames to divert to [`crate::stp::Stp::rx_bpdu`]:
/// Bridge Group destination, an 802.3 length (not an EtherType) and LLC
/// DSAP/SSAP 0x42. Untagged only: BPDUs are never VLAN-tagged.
#[inline]
pub fn is_bpdu_frame(frame: &[u8]) -> bool {
    frame.len() >= BPDU_OFFSET
        && frame[0..6] == BRIDGE_GROUP.0
        && u16::from_be_bytes([frame[12], frame[13]]) < 0x0600
        && frame[14] == LLC[0]
        && frame[15] == LLC[1]
}

/// Milliseconds to the wire's 1/256 s units (rounded, saturating).
pub const fn ms_to_ticks(ms: u32) -> u16 {
    let t = (ms as u64 * 256 + 500) / 1000;
    if t > u16::MAX as u64 {
        u16::MAX
    } else {
        t as u16
    }
}

/// The wire's 1/256 s units to milliseconds (rounded).
pub const fn ticks_to_ms(t: u16) -> u32 {
    (t as u32 * 1000 + 128) / 256
}
