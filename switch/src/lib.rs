//! rvswitch data plane: packet buffers and batches, header parsing, the
//! 802.1D learning bridge with 802.1Q VLANs, counters and packet trace.
//!
//! This crate does no kernel I/O: ports are a trait ([`port::Port`]), and the
//! only implementation here is the in-memory port for tests and benches.
//! Real back ends (TAP, AF_XDP, AF_PACKET) live in `rvs-drivers`.

pub mod batch;
pub mod buf;
pub mod capture;
pub mod config;
mod core;
pub mod counters;
pub mod fdb;
pub mod lb;
pub mod mac;
pub mod memport;
mod pipeline;
pub mod port;
pub mod ratelimit;
pub mod router;
mod scratch;
pub mod stp;
pub mod switch;
pub mod trace;
pub mod vlan;
pub mod vxlan;
pub mod wire;

pub use batch::{BATCH_DEFAULT, BATCH_MAX, Batch};
pub use buf::{PacketPool, PktBuf};
pub use config::{DomainConfig, DomainId, PortConfig, PortSecurity, StormControl};
pub use counters::{DropReason, PortCounters, StageCounter, StageCounters};
pub use fdb::{Fdb, FdbConfig, FdbEntryInfo, FlushFilter, MoveDamping};
pub use mac::MacAddr;
pub use memport::{MemoryPort, MemoryPortHandle};
pub use port::{Port, PortError, PortId, TxDone};
pub use switch::{DomainInfo, PortInfo, Switch, SwitchError};
pub use trace::{TraceRecord, TraceStep, Tracer};
pub use vlan::{VlanMode, VlanProtocol, VlanSet};
