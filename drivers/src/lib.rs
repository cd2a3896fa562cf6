//! Port back ends and OS plumbing for rvswitch: TAP, AF_XDP, AF_PACKET,
//! netlink and namespaces. All `unsafe` in the project lives here, each block
//! with a `// SAFETY:` note.

pub mod testutil;
