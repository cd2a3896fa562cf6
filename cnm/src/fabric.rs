//! The boundary between the CNM layer and the data plane: the [`Fabric`]
//! trait the driver calls, and an in-memory implementation for tests.
//!
//! Owns: the contract (what each call must do, idempotence). Never: an
//! implementation that touches the kernel or the switch — the daemon
//! implements [`Fabric`] with bridge domains, veth pairs + AF_XDP (or TAP)
//! ports, port security and the gateway.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::model::{Endpoint, EndpointIfaces, Network};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FabricError {
    /// The network asks for something this switch cannot do (yet, or with
    /// its current configuration). The text says what to change.
    #[error("{0}")]
    Unsupported(String),
    /// An operation failed: what was attempted, on what, and why.
    #[error("{action}: {reason}")]
    Failed { action: String, reason: String },
    /// A store the operation needs (the cluster's etcd) did not answer in
    /// time: nothing was changed, and the same call may succeed later.
    #[error("{action}: {reason}")]
    Unavailable { action: String, reason: String },
    /// That store answered with an error of its own (a refused credential,
    /// a permission): nothing was changed, and the fault is the store's or
    /// this host's setup, not the request.
    #[error("{action}: {reason}")]
    Store { action: String, reason: String },
}

/// What the fabric built for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPlumbing {
    /// Final names; `ifaces.sandbox` is the interface Docker must move
    /// into the sandbox (Join's `SrcName`). Usually the names proposed in
    /// the [`Endpoint`] passed in.
    pub ifaces: EndpointIfaces,
}

/// The data plane as the CNM layer sees it.
///
/// Every method must be idempotent: creating what exists with the same
/// configuration succeeds, deleting what is absent succeeds. The driver
/// calls the fabric *before* it commits to the store and undoes the call if
/// the commit fails, and after a crash it may repeat a call whose effect
/// the fabric already has. Calls are made from blocking threads, one at a
/// time (the driver holds its state lock across them).
pub trait Fabric: Send + Sync {
    /// Create the network's bridge domain (VLAN / VNI), its gateway and
    /// routing as configured.
    fn create_network(&self, n: &Network) -> Result<(), FabricError>;
    /// Remove the network; its endpoints were deleted before.
    fn delete_network(&self, n: &Network) -> Result<(), FabricError>;
    /// Create the endpoint's port and interfaces (names proposed in
    /// `e.ifaces`), with port security binding `e.mac` / addresses if the
    /// network asks for it. The sandbox interface must exist, carrying
    /// `e.mac` and the network's MTU, when this returns.
    fn create_endpoint(&self, n: &Network, e: &Endpoint) -> Result<EndpointPlumbing, FabricError>;
    /// Remove the endpoint's port and interfaces (wherever the sandbox
    /// interface is now; it may already be gone with its namespace).
    fn delete_endpoint(&self, n: &Network, e: &Endpoint) -> Result<(), FabricError>;
    /// The endpoint is about to enter `sandbox_key` (a netns path); Docker
    /// moves and renames the interface itself after Join returns.
    fn join(&self, n: &Network, e: &Endpoint, sandbox_key: &str) -> Result<(), FabricError>;
    /// The endpoint left its sandbox.
    fn leave(&self, n: &Network, e: &Endpoint) -> Result<(), FabricError>;
    /// Bring the data plane back to the stored state after a driver call
    /// whose unit of work did not commit (see `Driver::atomically`);
    /// `endpoints` are the stored ones.
    fn resync(&self, _endpoints: &[Endpoint]) {}
    /// A global network (shared by the hosts of a cluster, see
    /// `docker::options::is_global`) gets its cluster-wide settings here —
    /// its VNI and subnets — before it is validated and stored. The default
    /// leaves every network as it is and refuses global ones.
    fn resolve_network(&self, n: &mut Network) -> Result<(), FabricError> {
        if crate::docker::options::is_global(n) {
            return Err(FabricError::Unsupported(
                "global networks need a cluster (rvswitch daemon --store etcd://...)".into(),
            ));
        }
        Ok(())
    }
    /// The address of endpoint `id` on network `n`: `want` as it is for a
    /// local network; on a global one claimed cluster-wide, or allocated
    /// there when `want` is None.
    fn claim_address(
        &self,
        _n: &Network,
        _id: &str,
        want: Option<crate::prefix::Cidr>,
    ) -> Result<Option<crate::prefix::Cidr>, FabricError> {
        Ok(want)
    }
    /// Give back what [`Fabric::claim_address`] claimed for an endpoint
    /// that was then not made.
    fn release_address(&self, _n: &Network, _id: &str, _addr: crate::prefix::Cidr) {}
    /// Publish `e.published` on the host (replacing what was published for
    /// it); an empty list unpublishes. The default publishes nothing and
    /// refuses bindings, so a fabric without it says so.
    /// Returns the bindings as published: a host port of 0 (any free port)
    /// replaced by the port taken.
    fn publish(
        &self,
        _n: &Network,
        e: &Endpoint,
    ) -> Result<Vec<crate::model::PortBinding>, FabricError> {
        if e.published.is_empty() {
            Ok(Vec::new())
        } else {
            Err(FabricError::Unsupported(
                "this fabric cannot publish ports".into(),
            ))
        }
    }
}

/// One call seen by [`MemoryFabric`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FabricCall {
    CreateNetwork(String),
    DeleteNetwork(String),
    CreateEndpoint(String),
    DeleteEndpoint(String),
    Join(String, String),
    Leave(String),
    /// Endpoint id, host ports published.
    Publish(String, Vec<u16>),
}

#[derive(Debug, Default)]
struct MemoryState {
    calls: Vec<FabricCall>,
    networks: BTreeSet<String>,
    endpoints: BTreeMap<String, String>,
    joined: BTreeMap<String, String>,
    published: BTreeMap<String, Vec<u16>>,
    fail_next: Option<&'static str>,
}

/// FOR TESTS ONLY: a fabric that remembers what exists and every call, and
/// can be told to fail the next call of one kind. Never used by the daemon.
#[derive(Debug, Default)]
pub struct MemoryFabric {
    state: Mutex<MemoryState>,
}

impl MemoryFabric {
    pub fn new() -> MemoryFabric {
        MemoryFabric::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FabricCall> {
        self.lock().calls.clone()
    }

    pub fn networks(&self) -> Vec<String> {
        self.lock().networks.iter().cloned().collect()
    }

    /// Endpoint id → network id.
    pub fn endpoints(&self) -> BTreeMap<String, String> {
        self.lock().endpoints.clone()
    }

    /// Endpoint id → sandbox key.
    pub fn joined(&self) -> BTreeMap<String, String> {
        self.lock().joined.clone()
    }

    /// Endpoint id → host ports published.
    pub fn published(&self) -> BTreeMap<String, Vec<u16>> {
        self.lock().published.clone()
    }

    /// Make the next call named `op` ("create_network", "create_endpoint",
    /// "join", …) fail.
    pub fn fail_next(&self, op: &'static str) {
        self.lock().fail_next = Some(op);
    }

    fn enter(
        &self,
        op: &'static str,
        call: FabricCall,
    ) -> Result<std::sync::MutexGuard<'_, MemoryState>, FabricError> {
        let mut s = self.lock();
        s.calls.push(call);
        if s.fail_next == Some(op) {
            s.fail_next = None;
            return Err(FabricError::Failed {
                action: op.into(),
                reason: "injected failure".into(),
            });
        }
        Ok(s)
    }
}

impl Fabric for MemoryFabric {
    fn create_network(&self, n: &Network) -> Result<(), FabricError> {
        let mut s = self.enter("create_network", FabricCall::CreateNetwork(n.id.clone()))?;
        s.networks.insert(n.id.clone());
        Ok(())
    }

    fn delete_network(&self, n: &Network) -> Result<(), FabricError> {
        let mut s = self.enter("delete_network", FabricCall::DeleteNetwork(n.id.clone()))?;
        s.networks.remove(&n.id);
        Ok(())
    }

    fn create_endpoint(&self, n: &Network, e: &Endpoint) -> Result<EndpointPlumbing, FabricError> {
        let mut s = self.enter("create_endpoint", FabricCall::CreateEndpoint(e.id.clone()))?;
        if !s.networks.contains(&n.id) {
            return Err(FabricError::Failed {
                action: format!("create endpoint {}", e.id),
                reason: format!("network {} does not exist in the fabric", n.id),
            });
        }
        s.endpoints.insert(e.id.clone(), n.id.clone());
        Ok(EndpointPlumbing {
            ifaces: e.ifaces.clone(),
        })
    }

    /// Host port 0 takes 49152 + the binding's index, as a stand-in for
    /// a free port.
    fn publish(
        &self,
        _n: &Network,
        e: &Endpoint,
    ) -> Result<Vec<crate::model::PortBinding>, FabricError> {
        let published: Vec<crate::model::PortBinding> = e
            .published
            .iter()
            .enumerate()
            .map(|(i, b)| crate::model::PortBinding {
                host_port: match b.host_port {
                    0 => 49152 + i as u16,
                    p => p,
                },
                ..b.clone()
            })
            .collect();
        let ports: Vec<u16> = published.iter().map(|b| b.host_port).collect();
        let mut s = self.enter("publish", FabricCall::Publish(e.id.clone(), ports.clone()))?;
        if ports.is_empty() {
            s.published.remove(&e.id);
        } else {
            s.published.insert(e.id.clone(), ports);
        }
        Ok(published)
    }

    fn delete_endpoint(&self, _n: &Network, e: &Endpoint) -> Result<(), FabricError> {
        let mut s = self.enter("delete_endpoint", FabricCall::DeleteEndpoint(e.id.clone()))?;
        s.endpoints.remove(&e.id);
        s.joined.remove(&e.id);
        Ok(())
    }

    fn join(&self, _n: &Network, e: &Endpoint, sandbox_key: &str) -> Result<(), FabricError> {
        let mut s = self.enter("join", FabricCall::Join(e.id.clone(), sandbox_key.into()))?;
        s.joined.insert(e.id.clone(), sandbox_key.into());
        Ok(())
    }

    fn leave(&self, _n: &Network, e: &Endpoint) -> Result<(), FabricError> {
        let mut s = self.enter("leave", FabricCall::Leave(e.id.clone()))?;
        s.joined.remove(&e.id);
        Ok(())
    }
}
