//! The Container Network Model layer of rvswitch (see docs/architecture.md):
//! networks, endpoints and sandboxes ([`model`]), address management
//! ([`ipam`]), their persistence ([`store`]) and the Docker remote network +
//! IPAM driver ([`docker`]).
//!
//! Owns: the CNM state and its rules. Never: data plane work — everything
//! that touches ports, bridge domains or the kernel goes through the
//! [`fabric::Fabric`] trait, which the daemon implements.
//!
//! Daemon wiring (`rvswitch daemon --docker`, see the root crate's
//! `src/docker.rs`): `Store::open(state_dir)` → `Driver::open(store,
//! fabric, IpamConfig)` → drop endpoints whose veth is gone →
//! [`Driver::reconcile`] with the engine's networks/endpoints for the
//! driver (the engine removes networks while we are down) →
//! [`Driver::replay`] → bind the plugin socket and [`docker::serve`].

pub mod docker;
pub mod fabric;
pub mod ipam;
pub mod model;
pub mod parent;
pub mod prefix;
pub mod store;

pub use docker::{Driver, DriverError, router};
pub use fabric::{EndpointPlumbing, Fabric, FabricError};
pub use ipam::{Ipam, IpamConfig, IpamError};
pub use model::{Endpoint, Network, NetworkKind, PortType, Sandbox, Subnet};
pub use parent::Parent;
pub use prefix::Cidr;
pub use store::{Orphans, Snapshot, Store, StoreError, reconcile};
