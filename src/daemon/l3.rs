//! The control plane's routing operations: gateways of bridge domains
//! (applied with the domain, see `control.rs`), static routes, neighbors.
//!
//! Owns: where routed state lives and the checks a route must pass. Every
//! domain with a gateway lives on worker 0 (one router per worker, and
//! gateways of one table must share a router to route between them), so
//! routes and neighbors are worker 0's. Never: HTTP or packet work.

use std::net::IpAddr;

use rvs_switch::DomainId;
use rvs_switch::router::NeighState;

use super::apply::{L3_WORKER, check_next_hop, network_of};
use super::control::{Control, ControlError, not_found_domain};
use super::model::{DomainRecord, NeighborView, RouteRecord, RouteView, parse_cidr};
use crate::worker::Target;

type Result<T, E = ControlError> = std::result::Result<T, E>;

impl Control {
    /// Where a new domain goes: gateways all live on the L3 worker.
    pub(super) fn place_domain(&self, rec: &DomainRecord) {
        if rec.gateway.is_some() {
            self.dp.pin_domain(&rec.name, L3_WORKER);
        } else {
            self.dp.assign_domain(&rec.name);
        }
    }

    /// A domain may get a gateway only where the router is.
    pub(super) fn check_gateway_placement(&self, rec: &DomainRecord) -> Result<()> {
        let w = self.dp.worker_of(&rec.name).unwrap_or(L3_WORKER);
        if rec.gateway.is_some() && w != L3_WORKER {
            return Err(ControlError::Conflict(format!(
                "bridge domain {} lives on worker {w} and gateways live on worker \
                 {L3_WORKER}: delete the domain and create it again with its gateway",
                rec.name
            )));
        }
        Ok(())
    }

    pub fn list_routes(&self) -> Result<Vec<RouteView>> {
        let st = self.lock();
        let mut out = Vec::new();
        for d in st.domains.values() {
            let Some(g) = &d.gateway else { continue };
            for a in &g.addresses {
                if let Ok((ip, len)) = parse_cidr(a) {
                    out.push(RouteView {
                        table: g.table,
                        prefix: format!("{}/{len}", network_of(ip, len)),
                        via: None,
                        domain: d.name.clone(),
                        kind: "connected".into(),
                    });
                }
            }
        }
        out.extend(st.routes.values().map(|r| RouteView {
            table: r.table,
            prefix: r.prefix.clone(),
            via: r.via,
            domain: r.domain.clone(),
            kind: "static".into(),
        }));
        out.sort_by(|a, b| (a.table, &a.prefix).cmp(&(b.table, &b.prefix)));
        Ok(out)
    }

    pub fn add_route(&self, r: RouteRecord) -> Result<RouteView> {
        r.parsed().map_err(ControlError::BadRequest)?;
        let _w = self.store.db().exclusive_guard();
        let mut st = self.lock();
        let d = st
            .domains
            .get(&r.domain)
            .ok_or_else(|| not_found_domain(&r.domain))?;
        let Some(g) = &d.gateway else {
            return Err(ControlError::Conflict(format!(
                "bridge domain {} has no gateway; a route through it needs one \
                 (to resolve the next hop)",
                r.domain
            )));
        };
        if let Some(via) = r.via {
            check_next_hop(&r.domain, g, via).map_err(ControlError::BadRequest)?;
        }
        if st.routes.contains_key(&r.key()) {
            return Err(ControlError::Conflict(format!(
                "a route to {} already exists in table {}",
                r.prefix, r.table
            )));
        }
        let mut next = st.desired();
        next.routes.insert(r.key(), r.clone());
        self.commit(&mut st, next)?;
        Ok(RouteView {
            table: r.table,
            prefix: r.prefix,
            via: r.via,
            domain: r.domain,
            kind: "static".into(),
        })
    }

    pub fn delete_route(&self, table: u16, prefix: &str) -> Result<()> {
        let key = format!("{table}/{prefix}");
        let _w = self.store.db().exclusive_guard();
        let mut st = self.lock();
        if !st.routes.contains_key(&key) {
            return Err(ControlError::NotFound(format!(
                "no static route {prefix} in table {table}"
            )));
        }
        let mut next = st.desired();
        next.routes.remove(&key);
        self.commit(&mut st, next)
    }

    /// Every gateway's neighbors (ARP/ND entries).
    pub fn neighbors(&self) -> Result<Vec<NeighborView>> {
        let _st = self.lock();
        let mut v = self.dp.call(Target::Worker(L3_WORKER), |sw| {
            let names: Vec<(DomainId, String)> = sw
                .domains()
                .into_iter()
                .map(|d| (d.id, d.cfg.name))
                .collect();
            sw.router()
                .neighbors()
                .iter()
                .map(|(k, n)| {
                    let ip = if k.v6 {
                        IpAddr::V6(k.ip.into())
                    } else {
                        IpAddr::V4((k.ip as u32).into())
                    };
                    let domain = names
                        .iter()
                        .find(|(id, _)| *id == k.domain)
                        .map_or_else(|| k.domain.to_string(), |(_, n)| n.clone());
                    let state = match n.state {
                        NeighState::Incomplete => "incomplete",
                        NeighState::Reachable => "reachable",
                        NeighState::Stale => "stale",
                        NeighState::Permanent => "permanent",
                    };
                    NeighborView {
                        domain,
                        ip,
                        mac: (n.state != NeighState::Incomplete).then_some(n.mac),
                        state: state.into(),
                        pending: n.pending_len(),
                    }
                })
                .collect::<Vec<_>>()
        })?;
        v.sort_by(|a, b| (&a.domain, a.ip).cmp(&(&b.domain, b.ip)));
        Ok(v)
    }
}
