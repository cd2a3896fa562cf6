//! The control plane's VXLAN operations: the flood list and static remote
//! entries of a `vxlan` port, changed while it runs (a control plane such
//! as the CNM layer or a lab programs them) and kept in the port's stored
//! options, so a restart opens the port with them.
//!
//! Owns: the remote lists' validation and persistence. Never: packet work
//! (the port applies changes at its next poll through its handle).

use std::net::IpAddr;
use std::time::Duration;

use rvs_switch::MacAddr;
use serde_json::{Value, json};

use super::control::{Control, ControlError, State, not_found_port};
use crate::backends::{vtep_handle, vxlan_remotes};
use crate::spec::{PortKind, PortSpec};

type Result<T, E = ControlError> = std::result::Result<T, E>;

pub use crate::api::{AddRemote, RemotesView};

fn vxlan_spec<'a>(spec: &'a PortSpec, name: &str) -> Result<&'a PortSpec> {
    if spec.kind != PortKind::Vxlan {
        return Err(ControlError::Conflict(format!(
            "port {name} is a {} port; remotes belong to vxlan ports",
            spec.kind
        )));
    }
    Ok(spec)
}

fn set_remotes(spec: &mut PortSpec, flood: &[IpAddr], statics: &[(MacAddr, IpAddr)]) {
    if flood.is_empty() {
        spec.options.remove("remotes");
    } else {
        spec.options.insert(
            "remotes".into(),
            json!(flood.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
        );
    }
    if statics.is_empty() {
        spec.options.remove("static");
    } else {
        let m: serde_json::Map<String, Value> = statics
            .iter()
            .map(|(m, r)| (m.to_string(), json!(r.to_string())))
            .collect();
        spec.options.insert("static".into(), Value::Object(m));
    }
}

impl Control {
    /// Store port `name` with these remotes; the running port's handle to
    /// apply them with, if the port is attached.
    fn store_remotes(
        &self,
        st: &mut State,
        name: &str,
        flood: &[IpAddr],
        statics: &[(MacAddr, IpAddr)],
    ) -> Result<Option<rvs_drivers::vtep::VtepHandle>> {
        let p = st.ports.get_mut(name).ok_or_else(|| not_found_port(name))?;
        let mut rec = p.rec.clone();
        set_remotes(&mut rec.spec, flood, statics);
        self.store.put_port(&rec, false)?;
        p.rec = rec;
        Ok(vtep_handle(name).filter(|_| p.error.is_none()))
    }

    pub fn remotes(&self, name: &str) -> Result<RemotesView> {
        let st = self.lock();
        let p = st.ports.get(name).ok_or_else(|| not_found_port(name))?;
        let spec = vxlan_spec(&p.rec.spec, name)?;
        let (flood, statics) = vxlan_remotes(spec).map_err(ControlError::Internal)?;
        let handle = vtep_handle(name).filter(|_| p.error.is_none());
        let entries = handle
            .as_ref()
            .and_then(|h| h.entries(Duration::from_millis(500)))
            .map(|e| json!(e));
        let stats = handle.map(|h| json!(h.stats()));
        Ok(RemotesView {
            port: name.to_string(),
            vni: spec.options.get("vni").cloned().unwrap_or(Value::Null),
            flood,
            statics,
            entries,
            stats,
        })
    }

    pub fn add_remote(&self, name: &str, req: AddRemote) -> Result<RemotesView> {
        {
            let mut st = self.lock();
            let p = st.ports.get(name).ok_or_else(|| not_found_port(name))?;
            let spec = vxlan_spec(&p.rec.spec, name)?;
            let (mut flood, mut statics) = vxlan_remotes(spec).map_err(ControlError::Internal)?;
            let local = spec.options.get("local").and_then(Value::as_str);
            if local.and_then(|l| l.parse::<IpAddr>().ok()) == Some(req.remote) {
                return Err(ControlError::BadRequest(format!(
                    "{} is this VTEP's own address",
                    req.remote
                )));
            }
            if req.remote.is_unspecified() {
                return Err(ControlError::BadRequest(format!(
                    "{} is not a VTEP address",
                    req.remote
                )));
            }
            match req.mac {
                Some(mac) if !mac.is_valid_source() => {
                    return Err(ControlError::BadRequest(format!(
                        "{mac} is not a unicast station address"
                    )));
                }
                Some(mac) => {
                    statics.retain(|(m, _)| *m != mac);
                    statics.push((mac, req.remote));
                }
                None if flood.contains(&req.remote) => {}
                None => flood.push(req.remote),
            }
            if let Some(h) = self.store_remotes(&mut st, name, &flood, &statics)? {
                match req.mac {
                    Some(mac) => h.add_static(mac, req.remote),
                    None => h.add_flood(req.remote),
                }
            }
        }
        self.remotes(name)
    }

    /// Forget `remote`: off the flood list, and every static entry to it.
    pub fn delete_remote(&self, name: &str, remote: IpAddr) -> Result<()> {
        let mut st = self.lock();
        let p = st.ports.get(name).ok_or_else(|| not_found_port(name))?;
        let spec = vxlan_spec(&p.rec.spec, name)?;
        let (mut flood, mut statics) = vxlan_remotes(spec).map_err(ControlError::Internal)?;
        let gone: Vec<MacAddr> = statics
            .iter()
            .filter(|(_, r)| *r == remote)
            .map(|(m, _)| *m)
            .collect();
        let was_flood = flood.contains(&remote);
        if gone.is_empty() && !was_flood {
            return Err(ControlError::NotFound(format!(
                "port {name} has no remote {remote}"
            )));
        }
        flood.retain(|r| *r != remote);
        statics.retain(|(_, r)| *r != remote);
        if let Some(h) = self.store_remotes(&mut st, name, &flood, &statics)? {
            if was_flood {
                h.remove_flood(remote);
            }
            gone.into_iter().for_each(|m| h.remove(m));
        }
        Ok(())
    }
}
