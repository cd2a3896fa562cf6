//! The Docker remote network + IPAM driver protocol (legacy plugin API v1)
//! as an axum [`Router`]: `POST /Plugin.Activate`, `/NetworkDriver.*`,
//! `/IpamDriver.*`.
//!
//! Owns: routing, body parsing (the engine sends no `Content-Type`, and an
//! empty body for calls without arguments, so bodies are read as bytes, not
//! with axum's `Json`), translation between wire types and the [`Driver`],
//! and the error convention: every failure is HTTP 200 with
//! `{"Err": "<reason>", "Error": "<reason>"}` (the IPAM client reads the
//! second, see [`wire::ErrResponse`]), which the engine shows as `remote: <reason>`
//! (moby's plugin client also reads `Err` from non-200 answers, but then
//! prefixes its own text). Unknown methods get 404, which the engine reads
//! as "not implemented" (optional calls such as GwAllocCheck). Never:
//! state of its own, or blocking the async runtime: each call runs on the
//! blocking pool (fsync, fabric).

pub mod driver;
#[cfg(test)]
mod driver_tests;
mod ipam_driver;
pub mod options;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use driver::{Driver, DriverError, JoinInfo, NewEndpoint, Sweeper};

use crate::ipam::AddressKind;
use crate::prefix::{Cidr, parse_ip_lenient};
use wire::*;

/// The media type of plugin API v1 answers.
pub const MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1+json";
/// `RequestAddress` option marking the gateway request.
pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
pub const GATEWAY_ADDRESS: &str = "com.docker.network.gateway";
/// The prefix the engine gives the interface in the sandbox (`eth0`, `eth1`…).
pub const DST_PREFIX: &str = "eth";
/// EndpointOperInfo key for the MAC (as Docker's bridge driver reports it).
pub const OPER_MAC: &str = "com.docker.network.endpoint.macaddress";

type Shared = Arc<Driver>;

fn answer<T: Serialize>(v: &T) -> Response {
    let body = serde_json::to_vec(v).expect("responses serialize");
    (StatusCode::OK, [(header::CONTENT_TYPE, MEDIA_TYPE)], body).into_response()
}

fn failure(method: &str, msg: String) -> Response {
    tracing::warn!(method, error = %msg, "plugin call failed");
    answer(&ErrResponse::new(msg))
}

/// A route for `method` whose body is `Req` and whose work is `f`.
fn op<Req, Resp>(
    method: &'static str,
    f: fn(&Driver, Req) -> Result<Resp, DriverError>,
) -> MethodRouter<Shared>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    post(move |State(d): State<Shared>, body: Bytes| async move {
        let req: Req = match parse(method, &body) {
            Ok(r) => r,
            Err(msg) => return failure(method, msg),
        };
        tracing::debug!(method, "plugin call");
        match tokio::task::spawn_blocking(move || d.atomically(|d| f(d, req))).await {
            Ok(Ok(resp)) => answer(&resp),
            Ok(Err(e)) => failure(method, e.to_string()),
            Err(e) => failure(method, format!("rvswitch: {method} failed internally: {e}")),
        }
    })
}

fn parse<Req: DeserializeOwned>(method: &str, body: &[u8]) -> Result<Req, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("malformed {method} request: the body is empty"));
    }
    serde_json::from_slice(body).map_err(|e| format!("malformed {method} request: {e}"))
}

/// A route for a call without arguments (the body is ignored).
fn fixed<Resp: Serialize + Send + 'static>(f: fn(&Driver) -> Resp) -> MethodRouter<Shared> {
    post(move |State(d): State<Shared>| async move { answer(&f(&d)) })
}

/// Where the engine looks for a legacy plugin named `rvswitch`.
pub const DEFAULT_PLUGIN_SOCKET: &str = "/run/docker/plugins/rvswitch.sock";

/// Serve the plugin protocol on an already bound Unix socket (the daemon
/// binds it, as for its API socket) until `shutdown` resolves.
pub async fn serve<F>(
    listener: tokio::net::UnixListener,
    driver: Shared,
    shutdown: F,
) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, router(driver))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Every route of the plugin protocol.
pub fn router(driver: Shared) -> Router {
    Router::new()
        .route("/Plugin.Activate", fixed(activate))
        .route("/NetworkDriver.GetCapabilities", fixed(capabilities))
        .route(
            "/NetworkDriver.CreateNetwork",
            op("NetworkDriver.CreateNetwork", create_network),
        )
        .route(
            "/NetworkDriver.DeleteNetwork",
            op("NetworkDriver.DeleteNetwork", delete_network),
        )
        .route(
            "/NetworkDriver.AllocateNetwork",
            op("NetworkDriver.AllocateNetwork", allocate_network),
        )
        .route(
            "/NetworkDriver.FreeNetwork",
            op("NetworkDriver.FreeNetwork", free_network),
        )
        .route(
            "/NetworkDriver.CreateEndpoint",
            op("NetworkDriver.CreateEndpoint", create_endpoint),
        )
        .route(
            "/NetworkDriver.EndpointOperInfo",
            op("NetworkDriver.EndpointOperInfo", oper_info),
        )
        .route(
            "/NetworkDriver.DeleteEndpoint",
            op("NetworkDriver.DeleteEndpoint", delete_endpoint),
        )
        .route("/NetworkDriver.Join", op("NetworkDriver.Join", join))
        .route("/NetworkDriver.Leave", op("NetworkDriver.Leave", leave))
        .route(
            "/NetworkDriver.DiscoverNew",
            op("NetworkDriver.DiscoverNew", discover),
        )
        .route(
            "/NetworkDriver.DiscoverDelete",
            op("NetworkDriver.DiscoverDelete", discover),
        )
        .route(
            "/NetworkDriver.ProgramExternalConnectivity",
            op(
                "NetworkDriver.ProgramExternalConnectivity",
                program_external,
            ),
        )
        .route(
            "/NetworkDriver.RevokeExternalConnectivity",
            op("NetworkDriver.RevokeExternalConnectivity", revoke_external),
        )
        .route("/IpamDriver.GetCapabilities", fixed(ipam_capabilities))
        .route("/IpamDriver.GetDefaultAddressSpaces", fixed(address_spaces))
        .route(
            "/IpamDriver.RequestPool",
            op("IpamDriver.RequestPool", request_pool),
        )
        .route(
            "/IpamDriver.ReleasePool",
            op("IpamDriver.ReleasePool", release_pool),
        )
        .route(
            "/IpamDriver.RequestAddress",
            op("IpamDriver.RequestAddress", request_address),
        )
        .route(
            "/IpamDriver.ReleaseAddress",
            op("IpamDriver.ReleaseAddress", release_address),
        )
        .fallback(not_implemented)
        .with_state(driver)
}

async fn not_implemented(uri: Uri) -> Response {
    let body = ErrResponse::new(format!(
        "rvswitch does not implement {}",
        uri.path().trim_start_matches('/')
    ));
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, MEDIA_TYPE)],
        serde_json::to_vec(&body).expect("serializes"),
    )
        .into_response()
}

fn activate(_: &Driver) -> ActivateResponse {
    ActivateResponse {
        implements: vec!["NetworkDriver", "IpamDriver"],
    }
}

fn capabilities(_: &Driver) -> CapabilitiesResponse {
    CapabilitiesResponse {
        scope: "local",
        connectivity_scope: "local",
    }
}

fn ipam_capabilities(_: &Driver) -> IpamCapabilitiesResponse {
    IpamCapabilitiesResponse {
        requires_mac_address: false,
        requires_request_replay: false,
    }
}

fn address_spaces(d: &Driver) -> AddressSpacesResponse {
    let (local, global) = d.address_spaces();
    AddressSpacesResponse { local, global }
}

fn create_network(d: &Driver, r: CreateNetworkRequest) -> Result<Empty, DriverError> {
    let n = options::network_from_request(&r)?;
    d.create_network(n)?;
    Ok(Empty {})
}

fn delete_network(d: &Driver, r: NetworkRequest) -> Result<Empty, DriverError> {
    d.delete_network(&r.network_id)?;
    Ok(Empty {})
}

/// Swarm only (we are local scope): check the options, keep nothing.
fn allocate_network(
    _: &Driver,
    r: AllocateNetworkRequest,
) -> Result<AllocateNetworkResponse, DriverError> {
    let generic: wire::Options = r
        .options
        .iter()
        .filter(|(k, _)| k.starts_with("rvswitch."))
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let req = CreateNetworkRequest {
        network_id: r.network_id,
        options: [(
            options::GENERIC.to_string(),
            Value::Object(generic.into_iter().collect()),
        )]
        .into(),
        ipv4_data: r.ipv4_data,
        ipv6_data: r.ipv6_data,
    };
    options::network_from_request(&req)?;
    Ok(AllocateNetworkResponse {
        options: Default::default(),
    })
}

fn free_network(_: &Driver, _: NetworkRequest) -> Result<Empty, DriverError> {
    Ok(Empty {})
}

fn cidr_field(field: &str, s: &str) -> Result<Option<Cidr>, DriverError> {
    if s.is_empty() {
        return Ok(None);
    }
    Cidr::parse_addr(s)
        .map(Some)
        .map_err(|e| DriverError::Request(format!("{field}: {e}")))
}

fn create_endpoint(
    d: &Driver,
    r: CreateEndpointRequest,
) -> Result<CreateEndpointResponse, DriverError> {
    let i = &r.interface;
    let mac = if i.mac_address.is_empty() {
        None
    } else {
        Some(
            i.mac_address
                .parse()
                .map_err(|e| DriverError::Request(format!("Interface.MacAddress: {e}")))?,
        )
    };
    let e = d.create_endpoint(NewEndpoint {
        id: r.endpoint_id,
        network_id: r.network_id,
        mac,
        ipv4: cidr_field("Interface.Address", &i.address)?,
        ipv6: cidr_field("Interface.AddressIPv6", &i.address_ipv6)?,
    })?;
    // Only what the engine had not set (the MAC; a global network's
    // address, which the cluster allocates): it refuses changes.
    let address = match (i.address.is_empty(), e.ipv4) {
        (true, Some(a)) => a.to_string(),
        _ => String::new(),
    };
    Ok(CreateEndpointResponse {
        interface: (mac.is_none() || !address.is_empty()).then(|| EndpointInterface {
            mac_address: if mac.is_none() {
                e.mac.to_string()
            } else {
                String::new()
            },
            address,
            ..Default::default()
        }),
    })
}

/// Cheap: memory only.
fn oper_info(d: &Driver, r: EndpointRequest) -> Result<EndpointOperInfoResponse, DriverError> {
    let e = d.endpoint(&r.network_id, &r.endpoint_id)?;
    let mut value = std::collections::BTreeMap::new();
    value.insert(OPER_MAC.to_string(), Value::String(e.mac.to_string()));
    value.insert(
        "rvswitch.port".to_string(),
        Value::String(e.ifaces.port.clone()),
    );
    if let Some(h) = &e.ifaces.host {
        value.insert("rvswitch.host_iface".to_string(), Value::String(h.clone()));
    }
    Ok(EndpointOperInfoResponse { value })
}

fn delete_endpoint(d: &Driver, r: EndpointRequest) -> Result<Empty, DriverError> {
    d.delete_endpoint(&r.network_id, &r.endpoint_id)?;
    Ok(Empty {})
}

fn join(d: &Driver, r: JoinRequest) -> Result<JoinResponse, DriverError> {
    let j = d.join(&r.network_id, &r.endpoint_id, &r.sandbox_key)?;
    let ip = |a: Option<std::net::IpAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    Ok(JoinResponse {
        interface_name: InterfaceName {
            src_name: j.sandbox_iface,
            dst_prefix: DST_PREFIX.into(),
        },
        gateway: ip(j.gateway4),
        gateway_ipv6: ip(j.gateway6),
        static_routes: j
            .routes
            .iter()
            .map(|r| StaticRoute {
                destination: r.destination.to_string(),
                route_type: if r.via.is_some() { 0 } else { 1 },
                next_hop: ip(r.via),
            })
            .collect(),
        disable_gateway_service: j.disable_gateway_service,
    })
}

fn leave(d: &Driver, r: EndpointRequest) -> Result<Empty, DriverError> {
    d.leave(&r.network_id, &r.endpoint_id)?;
    Ok(Empty {})
}

/// Local scope: node discovery has nothing to tell us.
fn discover(_: &Driver, _: DiscoveryNotification) -> Result<Empty, DriverError> {
    Ok(Empty {})
}

/// Why `-p CONTAINER` and `-p LOW-HIGH:CONTAINER` are refused.
pub const NO_ENGINE_CHOSEN_PORT: &str = "rvswitch publishes a fixed host port per container port \
     (-p HOST:CONTAINER, or ranges of equal length -p 8080-8082:80-82): the engine does not \
     take back a host port a network plugin chose (it reads a remote driver's \
     com.docker.network.portmap as its in-process type only), so `docker port` could never \
     show it";

/// `docker run -p`: the port map Docker computed
/// (`com.docker.network.portmap`: Proto, IP, Port, HostIP, HostPort,
/// HostPortEnd) becomes the endpoint's published ports.
fn program_external(d: &Driver, r: ExternalConnectivityRequest) -> Result<Empty, DriverError> {
    let mut bindings = Vec::new();
    if let Some(Value::Array(map)) = r.options.get("com.docker.network.portmap") {
        for m in map {
            let bad = |why: &str| DriverError::Request(format!("port map entry {m}: {why}"));
            let num = |k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
            let proto = u8::try_from(num("Proto")).map_err(|_| bad("bad Proto"))?;
            let port = u16::try_from(num("Port")).map_err(|_| bad("bad Port"))?;
            let host_port = u16::try_from(num("HostPort")).map_err(|_| bad("bad HostPort"))?;
            let end = u16::try_from(num("HostPortEnd")).map_err(|_| bad("bad HostPortEnd"))?;
            if port == 0 {
                return Err(bad("no container port"));
            }
            // The engine takes a remote driver's port map as it sent it:
            // what EndpointOperInfo reports under com.docker.network.portmap
            // arrives decoded from JSON, and the engine's reader
            // (getEndpointPortMapInfo in moby's daemon/) only accepts its
            // own in-process type there, so a port chosen here would never
            // reach `docker port` or `docker inspect` (checked against
            // dockerd 20.10.24: with the port map in EndpointOperInfo, the
            // container's NetworkSettings.Ports stays empty).
            if host_port == 0 || (end != 0 && end != host_port) {
                return Err(bad(NO_ENGINE_CHOSEN_PORT));
            }
            let host_ip = match m.get("HostIP").and_then(Value::as_str) {
                None | Some("") => None,
                Some(s) => Some(s.parse().map_err(|_| bad("bad HostIP"))?),
            };
            bindings.push(crate::model::PortBinding {
                proto,
                host_ip,
                host_port,
                port,
            });
        }
    }
    d.publish(&r.network_id, &r.endpoint_id, bindings)?;
    Ok(Empty {})
}

/// Unpublish; an unknown endpoint has nothing published.
fn revoke_external(d: &Driver, r: EndpointRequest) -> Result<Empty, DriverError> {
    match d.publish(&r.network_id, &r.endpoint_id, Vec::new()) {
        Ok(_) | Err(DriverError::UnknownNetwork(_) | DriverError::UnknownEndpoint { .. }) => {
            Ok(Empty {})
        }
        Err(e) => Err(e),
    }
}

fn request_pool(d: &Driver, r: RequestPoolRequest) -> Result<RequestPoolResponse, DriverError> {
    let prefix = |field: &str, s: &str| -> Result<Option<Cidr>, DriverError> {
        if s.is_empty() {
            return Ok(None);
        }
        Cidr::parse_prefix(s)
            .map(Some)
            .map_err(|e| DriverError::Request(format!("{field}: {e}")))
    };
    let (id, pool) = d.request_pool(
        &r.address_space,
        prefix("Pool", &r.pool)?,
        prefix("SubPool", &r.sub_pool)?,
        r.v6,
    )?;
    Ok(RequestPoolResponse {
        pool_id: id,
        pool: pool.to_string(),
        data: Default::default(),
    })
}

fn release_pool(d: &Driver, r: ReleasePoolRequest) -> Result<Empty, DriverError> {
    d.release_pool(&r.pool_id)?;
    Ok(Empty {})
}

fn request_address(
    d: &Driver,
    r: RequestAddressRequest,
) -> Result<RequestAddressResponse, DriverError> {
    let want = if r.address.is_empty() {
        None
    } else {
        Some(
            parse_ip_lenient(&r.address)
                .map_err(|e| DriverError::Request(format!("Address: {e}")))?,
        )
    };
    let kind = match r.options.get(REQUEST_ADDRESS_TYPE).map(String::as_str) {
        Some(GATEWAY_ADDRESS) => AddressKind::Gateway,
        _ => AddressKind::Host,
    };
    let a = d.request_address(&r.pool_id, want, kind)?;
    Ok(RequestAddressResponse {
        address: a.to_string(),
        data: Default::default(),
    })
}

fn release_address(d: &Driver, r: ReleaseAddressRequest) -> Result<Empty, DriverError> {
    let ip =
        parse_ip_lenient(&r.address).map_err(|e| DriverError::Request(format!("Address: {e}")))?;
    d.release_address(&r.pool_id, ip)?;
    Ok(Empty {})
}
