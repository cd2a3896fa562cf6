//! Data plane steps on one switch, run on its worker: a domain with its
//! gateway, a gateway replaced, a route installed; and the checks a route's
//! next hop must pass. The control plane (`control.rs`, `l3.rs`) and the
//! reconcile (`reconcile.rs`) both use them; they use nothing of either.
//!
//! Owns: the meaning of a stored record on a `Switch`. Never: state, the
//! store, or which worker runs what (callers send these to the worker).

use std::net::IpAddr;

use rvs_switch::router::NextHop;
use rvs_switch::{DomainId, Switch};

use super::error::{ControlError, not_found_domain, switch_error};
use super::model::{DomainRecord, GatewaySpec, RouteRecord, parse_cidr};

type Result<T, E = ControlError> = std::result::Result<T, E>;

/// The worker that holds every gateway, route and neighbor (one router per
/// worker, and gateways of one table must share a router).
pub const L3_WORKER: usize = 0;

/// Put `g` on domain `id` of `sw` (replacing its gateway), or remove the
/// gateway when `g` is `None`.
pub fn apply_gateway(
    sw: &mut Switch,
    id: DomainId,
    name: &str,
    g: Option<&GatewaySpec>,
) -> Result<()> {
    match g {
        Some(spec) => {
            let gw = spec
                .to_gateway(name, id)
                .map_err(ControlError::BadRequest)?;
            sw.set_gateway(gw).map_err(switch_error)
        }
        None if sw.router().gateway(id).is_some() => {
            sw.remove_gateway(id).map(drop).map_err(switch_error)
        }
        None => Ok(()),
    }
}

/// The next hop a stored route means on this switch.
fn next_hop(sw: &Switch, r: &RouteRecord) -> Result<NextHop> {
    let domain = sw
        .domain_id(&r.domain)
        .ok_or_else(|| not_found_domain(&r.domain))?;
    Ok(match r.via {
        Some(gateway) => NextHop::Via { gateway, domain },
        None => NextHop::Connected { domain },
    })
}

pub fn install_route(sw: &mut Switch, r: &RouteRecord) -> Result<()> {
    let (prefix, len) = r.parsed().map_err(ControlError::BadRequest)?;
    let nh = next_hop(sw, r)?;
    sw.add_route(r.table, prefix, len, nh).map_err(switch_error)
}

pub fn network_of(a: IpAddr, len: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let m = u32::MAX.checked_shl(32 - len as u32).unwrap_or(0);
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let m = u128::MAX.checked_shl(128 - len as u32).unwrap_or(0);
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

/// Refuse a next hop the gateway of `domain` could never resolve: ARP and
/// ND only reach the gateway's own subnets, so a `via` outside all of them
/// would hold every packet until the neighbor times out. The gateway's own
/// address is no next hop either.
pub fn check_next_hop(domain: &str, g: &GatewaySpec, via: IpAddr) -> Result<(), String> {
    let mut subnets = Vec::new();
    for a in &g.addresses {
        let Ok((ip, len)) = parse_cidr(a) else {
            continue;
        };
        if ip.is_ipv4() != via.is_ipv4() {
            continue;
        }
        if ip == via {
            return Err(format!(
                "next hop {via} is the gateway's own address on bridge domain {domain}"
            ));
        }
        let net = network_of(ip, len);
        if net == network_of(via, len) {
            return Ok(());
        }
        subnets.push(format!("{net}/{len}"));
    }
    let on = if subnets.is_empty() {
        "it has no address of that family".to_string()
    } else {
        format!("its subnets are {}", subnets.join(", "))
    };
    Err(format!(
        "next hop {via} is not on a subnet of bridge domain {domain}'s gateway ({on}), \
         so it could never be resolved"
    ))
}

/// Add a stored domain to a switch with its gateway, all or nothing.
pub fn add_domain(sw: &mut rvs_switch::Switch, rec: &DomainRecord) -> Result<()> {
    let id = sw.add_domain(rec.to_config()).map_err(switch_error)?;
    if let Err(e) = apply_gateway(sw, id, &rec.name, rec.gateway.as_ref()) {
        let _ = sw.remove_domain(id);
        return Err(e);
    }
    Ok(())
}
