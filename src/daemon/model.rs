//! The control API's data, now in [`crate::api`] (one module of request,
//! response and record types shared by the daemon and its clients); this
//! path re-exports it for the daemon's own modules.

pub use crate::api::*;

/// One VIP of a service as the load balancer gets it, its domain by name
/// (what `Control` last gave the data plane; `services.rs` derives it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbService {
    pub domain: String,
    pub vip: std::net::IpAddr,
    pub ports: Vec<rvs_switch::lb::ServicePort>,
    pub backends: Vec<std::net::IpAddr>,
    pub health: Option<rvs_switch::lb::HealthCheck>,
}
