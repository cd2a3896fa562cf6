//! Port back ends and OS plumbing for rvswitch: TAP, AF_XDP, AF_PACKET,
//! netlink and namespaces. All `unsafe` in the project lives here, each block
//! with a `// SAFETY:` note.

pub mod afpacket;
pub mod afxdp;
pub mod ethtool;
pub mod impair;
pub mod netlink;
pub mod netns;
pub mod offload;
pub mod sched;
pub mod sigpipe;
pub mod tap;
pub mod testutil;
pub mod vtep;
