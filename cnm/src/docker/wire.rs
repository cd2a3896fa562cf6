//! The Docker plugin protocol's JSON bodies, field for field (Docker's
//! PascalCase names, checked against recorded engine traffic and moby's
//! `libnetwork/drivers/remote/api` and `ipams/remote/api`).
//!
//! Owns: shapes only. Requests tolerate missing and `null` fields (the
//! engine sends `"Options": null`) and ignore unknown ones (newer engines
//! add fields); responses omit what Docker treats as "not set". Never:
//! interpretation of values (see `options` and `driver`).

use std::collections::BTreeMap;

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `null` (or a missing field) becomes the default.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub type Options = BTreeMap<String, Value>;
pub type StringMap = BTreeMap<String, String>;

/// Every failed call: HTTP 200 with this body; the engine shows
/// `remote: <Err>` to the user.
///
/// The message goes under two keys: libnetwork's network driver client
/// reads `Err`, but its IPAM client reads `Error` (Go's `Response{Error
/// string}` without a tag); given only `Err`, a failed RequestAddress
/// reaches the user as "No address returned". Each client ignores the key
/// it does not know.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrResponse {
    #[serde(rename = "Err")]
    pub err: String,
    #[serde(rename = "Error", default)]
    pub error: String,
}

impl ErrResponse {
    pub fn new(msg: String) -> ErrResponse {
        ErrResponse {
            error: msg.clone(),
            err: msg,
        }
    }
}

/// A successful call with nothing to say.
#[derive(Debug, Default, Serialize)]
pub struct Empty {}

#[derive(Debug, Serialize)]
pub struct ActivateResponse {
    #[serde(rename = "Implements")]
    pub implements: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct CapabilitiesResponse {
    #[serde(rename = "Scope")]
    pub scope: &'static str,
    #[serde(rename = "ConnectivityScope")]
    pub connectivity_scope: &'static str,
}

/// One entry of `IPv4Data` / `IPv6Data`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IpamData {
    #[serde(rename = "AddressSpace", default, deserialize_with = "null_default")]
    pub address_space: String,
    #[serde(rename = "Pool", default, deserialize_with = "null_default")]
    pub pool: String,
    #[serde(rename = "Gateway", default, deserialize_with = "null_default")]
    pub gateway: String,
    #[serde(rename = "AuxAddresses", default, deserialize_with = "null_default")]
    pub aux_addresses: StringMap,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateNetworkRequest {
    #[serde(rename = "NetworkID", default, deserialize_with = "null_default")]
    pub network_id: String,
    #[serde(rename = "Options", default, deserialize_with = "null_default")]
    pub options: Options,
    #[serde(rename = "IPv4Data", default, deserialize_with = "null_default")]
    pub ipv4_data: Vec<IpamData>,
    #[serde(rename = "IPv6Data", default, deserialize_with = "null_default")]
    pub ipv6_data: Vec<IpamData>,
}

/// Swarm's manager-side allocation (global-scope drivers only): the options
/// are a flat string map here.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AllocateNetworkRequest {
    #[serde(rename = "NetworkID", default, deserialize_with = "null_default")]
    pub network_id: String,
    #[serde(rename = "Options", default, deserialize_with = "null_default")]
    pub options: StringMap,
    #[serde(rename = "IPv4Data", default, deserialize_with = "null_default")]
    pub ipv4_data: Vec<IpamData>,
    #[serde(rename = "IPv6Data", default, deserialize_with = "null_default")]
    pub ipv6_data: Vec<IpamData>,
}

#[derive(Debug, Serialize)]
pub struct AllocateNetworkResponse {
    #[serde(rename = "Options")]
    pub options: StringMap,
}

/// DeleteNetwork, FreeNetwork.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NetworkRequest {
    #[serde(rename = "NetworkID", default, deserialize_with = "null_default")]
    pub network_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInterface {
    #[serde(
        rename = "Address",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub address: String,
    #[serde(
        rename = "AddressIPv6",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub address_ipv6: String,
    #[serde(
        rename = "MacAddress",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub mac_address: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateEndpointRequest {
    #[serde(rename = "NetworkID", default, deserialize_with = "null_default")]
    pub network_id: String,
    #[serde(rename = "EndpointID", default, deserialize_with = "null_default")]
    pub endpoint_id: String,
    #[serde(rename = "Interface", default, deserialize_with = "null_default")]
    pub interface: EndpointInterface,
    #[serde(rename = "Options", default, deserialize_with = "null_default")]
    pub options: Options,
}

/// Only what the driver chose: the engine refuses a changed address or a
/// MAC when it already had one ("driver modified interface …").
#[derive(Debug, Default, Serialize)]
pub struct CreateEndpointResponse {
    #[serde(rename = "Interface", skip_serializing_if = "Option::is_none")]
    pub interface: Option<EndpointInterface>,
}

/// DeleteEndpoint, EndpointOperInfo, Leave, RevokeExternalConnectivity.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EndpointRequest {
    #[serde(rename = "NetworkID", default, deserialize_with = "null_default")]
    pub network_id: String,
    #[serde(rename = "EndpointID", default, deserialize_with = "null_default")]
    pub endpoint_id: String,
}

#[derive(Debug, Serialize)]
pub struct EndpointOperInfoResponse {
    #[serde(rename = "Value")]
    pub value: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct JoinRequest {
    #[serde(rename = "NetworkID", default, deserialize_with = "null_default")]
    pub network_id: String,
    #[serde(rename = "EndpointID", default, deserialize_with = "null_default")]
    pub endpoint_id: String,
    #[serde(rename = "SandboxKey", default, deserialize_with = "null_default")]
    pub sandbox_key: String,
    #[serde(rename = "Options", default, deserialize_with = "null_default")]
    pub options: Options,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceName {
    #[serde(rename = "SrcName")]
    pub src_name: String,
    #[serde(rename = "DstPrefix")]
    pub dst_prefix: String,
}

/// `RouteType` 0: via `NextHop`; 1: on-link (no next hop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticRoute {
    #[serde(rename = "Destination")]
    pub destination: String,
    #[serde(rename = "RouteType")]
    pub route_type: u8,
    #[serde(rename = "NextHop", skip_serializing_if = "String::is_empty")]
    pub next_hop: String,
}

/// Gateways are bare addresses (the engine parses them with `ParseIP`).
#[derive(Debug, Serialize)]
pub struct JoinResponse {
    #[serde(rename = "InterfaceName")]
    pub interface_name: InterfaceName,
    #[serde(rename = "Gateway", skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "String::is_empty")]
    pub gateway_ipv6: String,
    #[serde(rename = "StaticRoutes", skip_serializing_if = "Vec::is_empty")]
    pub static_routes: Vec<StaticRoute>,
    #[serde(
        rename = "DisableGatewayService",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub disable_gateway_service: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExternalConnectivityRequest {
    #[serde(rename = "NetworkID", default, deserialize_with = "null_default")]
    pub network_id: String,
    #[serde(rename = "EndpointID", default, deserialize_with = "null_default")]
    pub endpoint_id: String,
    #[serde(rename = "Options", default, deserialize_with = "null_default")]
    pub options: Options,
}

/// DiscoverNew / DiscoverDelete (type 1: node discovery).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DiscoveryNotification {
    #[serde(rename = "DiscoveryType", default, deserialize_with = "null_default")]
    pub discovery_type: i64,
    #[serde(rename = "DiscoveryData", default)]
    pub discovery_data: Value,
}

#[derive(Debug, Serialize)]
pub struct IpamCapabilitiesResponse {
    #[serde(rename = "RequiresMACAddress")]
    pub requires_mac_address: bool,
    #[serde(rename = "RequiresRequestReplay")]
    pub requires_request_replay: bool,
}

#[derive(Debug, Serialize)]
pub struct AddressSpacesResponse {
    #[serde(rename = "LocalDefaultAddressSpace")]
    pub local: String,
    #[serde(rename = "GlobalDefaultAddressSpace")]
    pub global: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestPoolRequest {
    #[serde(rename = "AddressSpace", default, deserialize_with = "null_default")]
    pub address_space: String,
    #[serde(rename = "Pool", default, deserialize_with = "null_default")]
    pub pool: String,
    #[serde(rename = "SubPool", default, deserialize_with = "null_default")]
    pub sub_pool: String,
    #[serde(rename = "Options", default, deserialize_with = "null_default")]
    pub options: StringMap,
    #[serde(rename = "V6", default, deserialize_with = "null_default")]
    pub v6: bool,
}

#[derive(Debug, Serialize)]
pub struct RequestPoolResponse {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(rename = "Pool")]
    pub pool: String,
    #[serde(rename = "Data")]
    pub data: StringMap,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReleasePoolRequest {
    #[serde(rename = "PoolID", default, deserialize_with = "null_default")]
    pub pool_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestAddressRequest {
    #[serde(rename = "PoolID", default, deserialize_with = "null_default")]
    pub pool_id: String,
    #[serde(rename = "Address", default, deserialize_with = "null_default")]
    pub address: String,
    #[serde(rename = "Options", default, deserialize_with = "null_default")]
    pub options: StringMap,
}

/// `Address` is CIDR (address/pool length).
#[derive(Debug, Serialize)]
pub struct RequestAddressResponse {
    #[serde(rename = "Address")]
    pub address: String,
    #[serde(rename = "Data")]
    pub data: StringMap,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReleaseAddressRequest {
    #[serde(rename = "PoolID", default, deserialize_with = "null_default")]
    pub pool_id: String,
    #[serde(rename = "Address", default, deserialize_with = "null_default")]
    pub address: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_and_missing_fields_become_defaults() {
        let r: RequestAddressRequest =
            serde_json::from_str(r#"{"PoolID":"p","Address":"","Options":null}"#).unwrap();
        assert!(r.options.is_empty());
        let r: CreateNetworkRequest =
            serde_json::from_str(r#"{"NetworkID":"n","IPv6Data":null,"New":1}"#).unwrap();
        assert_eq!(r.network_id, "n");
        assert!(r.ipv4_data.is_empty() && r.ipv6_data.is_empty());
    }

    #[test]
    fn responses_use_dockers_names_and_omit_unset_fields() {
        let j = JoinResponse {
            interface_name: InterfaceName {
                src_name: "rvc1".into(),
                dst_prefix: "eth".into(),
            },
            gateway: "10.0.0.1".into(),
            gateway_ipv6: String::new(),
            static_routes: vec![],
            disable_gateway_service: false,
        };
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"InterfaceName":{"SrcName":"rvc1","DstPrefix":"eth"},"Gateway":"10.0.0.1"}"#
        );
        let c = CreateEndpointResponse {
            interface: Some(EndpointInterface {
                mac_address: "02:00:00:00:00:01".into(),
                ..Default::default()
            }),
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"Interface":{"MacAddress":"02:00:00:00:00:01"}}"#
        );
        assert_eq!(
            serde_json::to_string(&CreateEndpointResponse::default()).unwrap(),
            "{}"
        );
    }
}
