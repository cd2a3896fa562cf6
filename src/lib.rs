//! rvswitch's daemon and operator CLI as a library: the binary (`main.rs`)
//! only parses arguments and calls in here, so tests can run a daemon
//! in-process.
//!
//! Owns: worker threads around the data plane ([`worker`]), the control API
//! and its persistent store ([`daemon`]), the HTTP client and the `ctl`
//! commands ([`client`], [`ctl`]). Never: packet processing (that is
//! `rvs-switch`) or kernel port plumbing (that is `rvs-drivers`).

pub mod api;
pub mod backends;
pub mod client;
pub mod cluster;
pub mod cni;
pub mod ctl;
pub mod daemon;
pub mod dns;
pub mod docker;
pub mod fabric;
pub mod lab;
pub mod pcap;
pub mod publish;
pub mod spec;
pub mod worker;

pub use spec::{PortFactory, PortKind, PortSpec};
pub use worker::{Dataplane, WorkerError};
