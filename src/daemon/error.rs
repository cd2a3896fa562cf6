//! The control plane's error: what class of refusal an operation met, so
//! the API can answer with the right status.
//!
//! Owns: the classes and the mapping of data plane, store and worker errors
//! onto them. Never: HTTP types (the API maps classes to statuses).

use rvs_switch::SwitchError;
use rvs_switch::router::RouterError;

use std::path::PathBuf;

use super::store::StoreError;
use crate::worker::WorkerError;

/// Why a control operation was refused; nothing changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The request is malformed or out of range (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// A named port, bridge domain or entry does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what exists (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// A store the operation needs (the cluster's etcd) is out of reach or
    /// did not answer in time; nothing changed, try again later (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// A port back end could not be opened (HTTP 500).
    #[error("{0}")]
    Backend(String),
    /// The store or a worker failed (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        ControlError::Internal(e.to_string())
    }
}

impl From<WorkerError> for ControlError {
    fn from(e: WorkerError) -> Self {
        match e {
            // A domain no worker holds is one that does not exist (any more:
            // removed while the request waited for the lock).
            WorkerError::UnplacedDomain(d) => not_found_domain(&d),
            e => ControlError::Internal(e.to_string()),
        }
    }
}

/// Map the switch's refusals onto API classes.
pub fn switch_error(e: SwitchError) -> ControlError {
    let msg = e.to_string();
    match e {
        SwitchError::UnknownPort(_) | SwitchError::UnknownDomain(_) => ControlError::NotFound(msg),
        SwitchError::Duplicate { .. }
        | SwitchError::DomainInUse { .. }
        | SwitchError::WrongDomain { .. }
        | SwitchError::TooManyPorts(_)
        | SwitchError::TooManyDomains(_)
        | SwitchError::Lb(rvs_switch::lb::LbError::TooManyServices(_)) => {
            ControlError::Conflict(msg)
        }
        SwitchError::BadName(_)
        | SwitchError::Vlan(_)
        | SwitchError::NotVlanMember { .. }
        | SwitchError::NotStationMac(_)
        | SwitchError::Stp(_)
        | SwitchError::Lb(_) => ControlError::BadRequest(msg),
        SwitchError::Listener(l) => match l {
            rvs_switch::router::ListenerError::NoGateway(_)
            | rvs_switch::router::ListenerError::NoSuchListener(..) => ControlError::NotFound(msg),
            rvs_switch::router::ListenerError::Full(_) => ControlError::Conflict(msg),
            _ => ControlError::BadRequest(msg),
        },
        SwitchError::Router(r) => match r {
            RouterError::GatewayExists(_)
            | RouterError::RouteExists(..)
            | RouterError::Lpm { .. } => ControlError::Conflict(msg),
            RouterError::NoGateway(_) | RouterError::NoSuchRoute(..) => ControlError::NotFound(msg),
            RouterError::BadMac(_) | RouterError::FamilyMismatch(_) => {
                ControlError::BadRequest(msg)
            }
        },
    }
}

pub(super) fn not_found_domain(name: &str) -> ControlError {
    ControlError::NotFound(format!("no bridge domain {name}"))
}

pub(super) fn not_found_port(name: &str) -> ControlError {
    ControlError::NotFound(format!("no port {name}"))
}

/// Why the daemon could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Worker(#[from] crate::worker::WorkerError),
    #[error("replay stored state: {0}")]
    Replay(ControlError),
    #[error("control socket {path}: {what}: {cause}")]
    Socket {
        path: PathBuf,
        what: &'static str,
        cause: std::io::Error,
    },
    #[error("control socket {0}: another daemon is answering on it")]
    InUse(PathBuf),
    #[error("control socket {path}: {why}")]
    Unsafe { path: PathBuf, why: String },
    #[error("state directory {path}: {what}: {cause}")]
    StateDir {
        path: PathBuf,
        what: &'static str,
        cause: std::io::Error,
    },
    #[error("async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Cluster(String),
    #[error("Docker driver: {0}")]
    Docker(String),
    #[error("CNI attachments: {0}")]
    Cni(String),
    #[error("--metrics-listen {0}: {1}")]
    MetricsListen(std::net::SocketAddr, std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_no_worker_holds_is_not_found_not_an_internal_error() {
        let e: ControlError = WorkerError::UnplacedDomain("bd9".into()).into();
        assert!(
            matches!(&e, ControlError::NotFound(m) if m.contains("bd9")),
            "{e:?}"
        );
        let e: ControlError = WorkerError::NoSuchWorker(7).into();
        assert!(matches!(e, ControlError::Internal(_)), "{e:?}");
    }

    #[test]
    fn a_full_load_balancer_is_a_conflict_a_bad_service_a_bad_request() {
        use rvs_switch::lb::LbError;
        let e = switch_error(SwitchError::Lb(LbError::TooManyServices(65537)));
        assert!(
            matches!(&e, ControlError::Conflict(m) if m.contains("65536")),
            "{e:?}"
        );
        let vip = "10.0.0.100".parse().unwrap();
        let e = switch_error(SwitchError::Lb(LbError::NoPorts(vip)));
        assert!(matches!(e, ControlError::BadRequest(_)), "{e:?}");
    }
}
