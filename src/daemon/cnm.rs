//! Read-only views of the Docker driver's CNM objects (networks, endpoints,
//! sandboxes) for the API and `rvswitch ctl network|endpoint|sandbox`, with
//! the switch objects behind each (bridge domain, port); and the CNI
//! attachments' calls, handed to [`crate::cni::service`].
//!
//! Owns: the shapes of those views. Never: changing Docker's CNM state
//! (Docker owns its objects; the driver changes them when Docker asks).

use std::sync::Arc;

use serde_json::{Value, json};

use super::control::{Control, ControlError};
use crate::cni::service::{Service, ServiceError};
use crate::cni::{AttachRequest, Attachment};
use crate::fabric::domain_name;

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

    pub fn cnm_networks(&self) -> Result<Value> {
        let snap = self.driver()?.snapshot();
        Ok(Value::Array(
            snap.networks
                .iter()
                .map(|n| {
                    let mut v = serde_json::to_value(n).expect("serializes");
                    v["domain"] = json!(domain_name(&n.id));
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
}
