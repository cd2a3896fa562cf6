//! Views of the Docker driver's CNM objects (networks, endpoints,
//! sandboxes) for the API and `rvswitch ctl network|endpoint|sandbox`, with
//! the switch objects behind each (bridge domain, port); networks and
//! endpoints made through the API itself (`POST /v1/cnm/networks`, for
//! the lab tool and scripts), which go through the same driver calls as
//! Docker's, so a `scope: global` network is exactly Docker's
//! `-o rvswitch.scope=global`; and the CNI attachments' calls, handed to
//! [`crate::cni::service`].
//!
//! Owns: the shapes of those views, the API → driver request mapping.
//! Never: changing what Docker made (its objects change when Docker asks;
//! the API may remove only networks it made, marked with [`API_LABEL`]).

use std::sync::Arc;

use rvs_cnm::docker::options::{self, ENABLE_IPV6, GENERIC, INTERNAL, NAME, SCOPE};
use rvs_cnm::docker::wire::{CreateNetworkRequest, IpamData};
use rvs_cnm::docker::{DriverError, NewEndpoint};
use rvs_cnm::prefix::{Cidr, from_u128};
use rvs_cnm::{FabricError, Network};
use serde_json::{Value, json};

use super::control::{Control, ControlError};
use crate::api::{
    CnmJoinView, CreateCnmEndpoint, CreateCnmNetwork, JoinCnmEndpoint, PublishProtocol, Scope,
};
use crate::cni::service::{Service, ServiceError};
use crate::cni::{AttachRequest, Attachment};
use crate::fabric::network_domain;

/// Label (key and value) of the networks made through the API: the
/// reconcile with the Docker engine keeps them, and only they can be
/// deleted through the API.
pub const API_LABEL: (&str, &str) = ("rvswitch.made-by", "api");

/// Whether network `n` was made through the API.
pub fn made_by_api(n: &Network) -> bool {
    n.labels.get(API_LABEL.0).map(String::as_str) == Some(API_LABEL.1)
}

fn driver_error(e: DriverError) -> ControlError {
    match e {
        DriverError::Request(_)
        | DriverError::Options(_)
        | DriverError::Model(_)
        | DriverError::Ipam(_)
        | DriverError::Fabric(FabricError::Unsupported(_)) => {
            ControlError::BadRequest(e.to_string())
        }
        DriverError::UnknownNetwork(_) | DriverError::UnknownEndpoint { .. } => {
            ControlError::NotFound(e.to_string())
        }
        // The cluster refusing (another subnet or VNI, an address another
        // host holds) or the data plane refusing.
        DriverError::Fabric(FabricError::Failed { .. }) | DriverError::Conflict(_) => {
            ControlError::Conflict(e.to_string())
        }
        // The cluster's store not answering (no quorum, no member
        // reachable): nothing changed, the same call may succeed later.
        DriverError::Fabric(FabricError::Unavailable { .. }) => {
            ControlError::Unavailable(e.to_string())
        }
        // The store answered with an error of its own (credentials,
        // permissions): this host's setup, not the request.
        DriverError::Fabric(FabricError::Store { .. }) => ControlError::Backend(e.to_string()),
        DriverError::Store(_) => ControlError::Internal(e.to_string()),
    }
}

fn cidr(what: &str, s: &str, prefix: bool) -> Result<Cidr> {
    let c = if prefix {
        Cidr::parse_prefix(s)
    } else {
        Cidr::parse_addr(s)
    };
    c.map_err(|e| ControlError::BadRequest(format!("{what} {s:?}: {e}")))
}

type Result<T, E = ControlError> = std::result::Result<T, E>;

impl From<ServiceError> for ControlError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::BadRequest(m) => ControlError::BadRequest(m),
            ServiceError::NotFound(m) => ControlError::NotFound(m),
            ServiceError::Conflict(m) => ControlError::Conflict(m),
            ServiceError::Internal(m) => ControlError::Internal(m),
        }
    }
}

impl Control {
    /// Called once when the daemon serves Docker.
    pub fn set_cnm(&self, d: Arc<rvs_cnm::docker::Driver>) {
        let _ = self.cnm.set(d);
    }

    /// The CNI attachments' service: set at start, `None` at shutdown.
    pub fn set_cni(&self, s: Option<Arc<Service>>) {
        *self.cni.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// The CNI attachments' service.
    fn cni(&self) -> Result<Arc<Service>> {
        self.cni
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| ControlError::Internal("the CNI service is not running".into()))
    }

    pub fn cni_attachments(&self) -> Result<Vec<Attachment>> {
        Ok(self.cni()?.list()?)
    }

    pub fn cni_attachment(&self, id: &str) -> Result<Attachment> {
        Ok(self.cni()?.get(id)?)
    }

    pub fn cni_attach(&self, req: AttachRequest) -> Result<Attachment> {
        Ok(self.cni()?.attach(req)?)
    }

    pub fn cni_detach(&self, id: &str) -> Result<()> {
        Ok(self.cni()?.detach(id)?)
    }

    fn driver(&self) -> Result<&rvs_cnm::docker::Driver> {
        self.cnm.get().map(|d| d.as_ref()).ok_or_else(|| {
            ControlError::NotFound(
                "no CNM objects: this daemon does not serve Docker (start it with --docker)".into(),
            )
        })
    }

    /// Whether the daemon serves Docker (has a CNM driver): checked before
    /// a request body is read, so every `/v1/cnm/` route without one says
    /// the same thing.
    pub fn require_cnm(&self) -> Result<()> {
        self.driver().map(drop)
    }

    pub fn cnm_networks(&self) -> Result<Value> {
        let snap = self.driver()?.snapshot();
        Ok(Value::Array(
            snap.networks
                .iter()
                .map(|n| {
                    let mut v = serde_json::to_value(n).expect("serializes");
                    v["domain"] = json!(network_domain(n));
                    v["endpoints"] = json!(
                        snap.endpoints
                            .iter()
                            .filter(|e| e.network_id == n.id)
                            .count()
                    );
                    v
                })
                .collect(),
        ))
    }

    pub fn cnm_endpoints(&self) -> Result<Value> {
        let snap = self.driver()?.snapshot();
        Ok(json!(snap.endpoints))
    }

    pub fn cnm_sandboxes(&self) -> Result<Value> {
        Ok(json!(self.driver()?.sandboxes()))
    }

    /// The view of CNM network `id` (as listed).
    fn cnm_network(&self, id: &str) -> Result<Value> {
        self.cnm_networks()?
            .as_array()
            .and_then(|a| a.iter().find(|n| n["id"] == id).cloned())
            .ok_or_else(|| ControlError::NotFound(format!("no network {id}")))
    }

    /// Make a network through the driver as Docker's CreateNetwork would.
    pub fn create_cnm_network(&self, req: CreateCnmNetwork) -> Result<Value> {
        crate::spec::check_name("network", &req.name).map_err(ControlError::BadRequest)?;
        let d = self.driver()?;
        let global = req.scope == Scope::Global;
        let mut generic = serde_json::Map::new();
        if global {
            generic.insert(SCOPE.into(), json!("global"));
            generic.insert(NAME.into(), json!(req.name));
        }
        match req.vni {
            Some(v) if global => {
                generic.insert("rvswitch.vni".into(), json!(v));
            }
            Some(_) => {
                return Err(ControlError::BadRequest(
                    "vni is for global networks; a local VXLAN segment is a vxlan port \
                     (POST /v1/ports)"
                        .into(),
                ));
            }
            None => {}
        }
        // Docker's IPAM gives a network that routes a gateway: the first
        // address of its subnet.
        let ipam = |s: &Option<String>| -> Result<Vec<IpamData>> {
            s.iter()
                .map(|p| {
                    let pool = cidr("subnet", p, true)?;
                    let gateway = match req.internal {
                        true => String::new(),
                        false => {
                            let (lo, _) = pool.range();
                            let gw = from_u128(pool.addr, lo + 1);
                            format!("{gw}/{}", pool.len)
                        }
                    };
                    Ok(IpamData {
                        pool: pool.to_string(),
                        gateway,
                        ..IpamData::default()
                    })
                })
                .collect()
        };
        let mut opts = serde_json::Map::new();
        opts.insert(GENERIC.into(), Value::Object(generic));
        opts.insert(INTERNAL.into(), json!(req.internal));
        opts.insert(ENABLE_IPV6.into(), json!(req.ipv6_subnet.is_some()));
        let wire = CreateNetworkRequest {
            network_id: req.name.clone(),
            options: opts.into_iter().collect(),
            ipv4_data: ipam(&req.subnet)?,
            ipv6_data: ipam(&req.ipv6_subnet)?,
        };
        let mut n = options::network_from_request(&wire)
            .map_err(|e| ControlError::BadRequest(e.to_string()))?;
        n.name = req.name.clone();
        // A name longer than 12 characters gets a bridge domain of its own
        // (not `dk-<first 12>`, which another name may share), unless the
        // network was stored before such names existed: it keeps its
        // domain, and asking for it again is asking for the same network.
        let legacy = d
            .network(&req.name)
            .is_some_and(|old| !old.options.contains_key(crate::fabric::DOMAIN_OPTION));
        let domain = crate::fabric::api_domain_name(&req.name);
        if !legacy && domain != crate::fabric::domain_name(&req.name) {
            n.options
                .insert(crate::fabric::DOMAIN_OPTION.into(), domain);
        }
        n.labels
            .insert(API_LABEL.0.to_string(), API_LABEL.1.to_string());
        if let Some(old) = d.network(&req.name)
            && !made_by_api(&old)
        {
            return Err(ControlError::Conflict(format!(
                "network {} was made by Docker",
                req.name
            )));
        }
        d.create_network(n).map_err(driver_error)?;
        self.cnm_network(&req.name)
    }

    /// Delete a network made through the API, with its endpoints.
    pub fn delete_cnm_network(&self, name: &str) -> Result<()> {
        let d = self.driver()?;
        match d.network(name) {
            None => Err(ControlError::NotFound(format!("no network {name}"))),
            Some(n) if !made_by_api(&n) => Err(ControlError::Conflict(format!(
                "network {name} was made by Docker: remove it with docker network rm"
            ))),
            Some(_) => d.delete_network(name).map_err(driver_error),
        }
    }

    fn api_network(&self, name: &str) -> Result<Network> {
        match self.driver()?.network(name) {
            Some(n) if made_by_api(&n) => Ok(n),
            Some(_) => Err(ControlError::Conflict(format!(
                "network {name} was made by Docker: its endpoints are Docker's"
            ))),
            None => Err(ControlError::NotFound(format!("no network {name}"))),
        }
    }

    /// Make an endpoint on an API network (Docker's CreateEndpoint).
    pub fn create_cnm_endpoint(&self, net: &str, req: CreateCnmEndpoint) -> Result<Value> {
        crate::spec::check_name("endpoint", &req.id).map_err(ControlError::BadRequest)?;
        let n = self.api_network(net)?;
        if let Some(m) = req.mac.filter(|m| !m.is_valid_source()) {
            return Err(ControlError::BadRequest(format!(
                "{m} is not a unicast station address"
            )));
        }
        let addr = |s: &Option<String>| s.as_deref().map(|a| cidr("address", a, false)).transpose();
        let mut bindings = Vec::new();
        for p in &req.ports {
            if p.port == 0 {
                return Err(ControlError::BadRequest(
                    "ports: port 0 is not an endpoint's port".into(),
                ));
            }
            bindings.push(rvs_cnm::model::PortBinding {
                proto: match p.protocol {
                    PublishProtocol::Tcp => 6,
                    PublishProtocol::Udp => 17,
                },
                host_ip: p.host_ip,
                host_port: p.host_port,
                port: p.port,
            });
        }
        let d = self.driver()?;
        let e = d
            .create_endpoint(NewEndpoint {
                id: req.id,
                network_id: n.id.clone(),
                mac: req.mac,
                ipv4: addr(&req.address)?,
                ipv6: addr(&req.address_ipv6)?,
            })
            .map_err(driver_error)?;
        if bindings.is_empty() {
            return Ok(json!(e));
        }
        if e.ipv4.is_none() {
            let _ = d.delete_endpoint(&n.id, &e.id);
            return Err(ControlError::BadRequest(
                "ports: published ports forward to the endpoint's IPv4 address, and it has none"
                    .into(),
            ));
        }
        // All or nothing: an endpoint whose ports cannot be published is
        // not made.
        match d.publish(&n.id, &e.id, bindings) {
            Ok(e) => Ok(json!(e)),
            Err(err) => {
                if let Err(x) = d.delete_endpoint(&n.id, &e.id) {
                    tracing::error!(error = %x, endpoint = %e.id, "remove the endpoint whose ports were refused");
                }
                Err(driver_error(err))
            }
        }
    }

    /// Make endpoint `ep`'s interface for a namespace (Docker's Join).
    pub fn join_cnm_endpoint(
        &self,
        net: &str,
        ep: &str,
        req: JoinCnmEndpoint,
    ) -> Result<CnmJoinView> {
        let n = self.api_network(net)?;
        if !req.sandbox.starts_with('/') {
            return Err(ControlError::BadRequest(format!(
                "sandbox {:?} is not a namespace path",
                req.sandbox
            )));
        }
        let j = self
            .driver()?
            .join(&n.id, ep, &req.sandbox)
            .map_err(driver_error)?;
        Ok(CnmJoinView {
            interface: j.sandbox_iface,
            gateway: j.gateway4,
            gateway_ipv6: j.gateway6,
        })
    }

    /// Delete an endpoint of an API network (Leave, then DeleteEndpoint).
    pub fn delete_cnm_endpoint(&self, net: &str, ep: &str) -> Result<()> {
        let n = self.api_network(net)?;
        let d = self.driver()?;
        d.endpoint(&n.id, ep).map_err(driver_error)?;
        d.leave(&n.id, ep).map_err(driver_error)?;
        d.delete_endpoint(&n.id, ep).map_err(driver_error)
    }
}
