//! Typed, zero-copy views over the headers the switch touches, one file per
//! protocol (after smoltcp's `wire`): offsets are named once in a `field`
//! module, `new_checked` validates lengths at the edge of the fast path and
//! the accessors inside it never panic on a checked view.
//!
//! Nothing here allocates or does I/O.

pub mod arp;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod udp;
pub mod vlan;
pub mod vxlan;

pub use ethernet::{EtherType, EthernetFrame};
pub use udp::UdpPacket;
pub use vlan::{Tci, VlanTag};
pub use vxlan::{Vni, VxlanHeader};

/// Why a header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer ends before the header does.
    #[error("truncated header")]
    Truncated,
    /// A field holds a value the protocol forbids.
    #[error("malformed header")]
    Malformed,
}

pub type Field = core::ops::Range<usize>;

#[inline]
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
