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
use crate::backends::{vtep_handle, vxlan_neighbors, vxlan_remotes};
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

fn set_neighbors(spec: &mut PortSpec, neighbors: &[(IpAddr, MacAddr)]) {
    if neighbors.is_empty() {
        spec.options.remove("neighbors");
    } else {
        let m: serde_json::Map<String, Value> = neighbors
            .iter()
            .map(|(ip, m)| (ip.to_string(), json!(m.to_string())))
            .collect();
        spec.options.insert("neighbors".into(), Value::Object(m));
    }
}

impl Control {
    /// Make these the remotes of port `name` (and, when given, the
    /// neighbors it answers ARP/ND for): stored, and given to the running
    /// port (the reconcile applies the difference).
    fn store_remotes(
        &self,
        st: &mut State,
        name: &str,
        flood: &[IpAddr],
        statics: &[(MacAddr, IpAddr)],
        neighbors: Option<&[(IpAddr, MacAddr)]>,
    ) -> Result<()> {
        let mut next = st.desired();
        let rec = next
            .ports
            .get_mut(name)
            .ok_or_else(|| not_found_port(name))?;
        set_remotes(&mut rec.spec, flood, statics);
        if let Some(n) = neighbors {
            set_neighbors(&mut rec.spec, n);
        }
        self.commit(st, next)
    }

    pub fn remotes(&self, name: &str) -> Result<RemotesView> {
        let st = self.lock();
        let p = st.ports.get(name).ok_or_else(|| not_found_port(name))?;
        let spec = vxlan_spec(&p.rec.spec, name)?;
        let (flood, statics) = vxlan_remotes(spec).map_err(ControlError::Internal)?;
        let neighbors = vxlan_neighbors(spec).map_err(ControlError::Internal)?;
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
            neighbors,
            entries,
            stats,
        })
    }

    pub fn add_remote(&self, name: &str, req: AddRemote) -> Result<RemotesView> {
        {
            let _w = self.store.db().exclusive_guard();
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
            self.store_remotes(&mut st, name, &flood, &statics, None)?;
        }
        self.remotes(name)
    }

    /// Make `names` (bridge domain → name → addresses) the names other
    /// hosts of the cluster give the domains' DNS, next to each domain's own
    /// (a name in both answers the addresses of both). Not stored: the
    /// cluster states them again after a restart. Unchanged names change
    /// nothing.
    pub fn set_remote_names(&self, names: super::control::RemoteNames) {
        {
            let mut have = self.remote_names.lock().unwrap();
            if *have == names {
                return;
            }
            *have = names;
        }
        let st = self.lock();
        self.publish_names(&st);
    }

    /// Make `flood`, `statics` and `neighbors` the whole remote lists of
    /// port `name` (a control plane that owns them, such as the cluster's
    /// endpoint registry, states what it wants; the reconcile gives the
    /// running port the difference). `neighbors` are the remote endpoints'
    /// addresses the port answers ARP/ND for itself (ARP/ND suppression).
    /// Unchanged lists change nothing.
    pub fn set_remotes(
        &self,
        name: &str,
        flood: &[IpAddr],
        statics: &[(MacAddr, IpAddr)],
        neighbors: &[(IpAddr, MacAddr)],
    ) -> Result<()> {
        let _w = self.store.db().exclusive_guard();
        let mut st = self.lock();
        let p = st.ports.get(name).ok_or_else(|| not_found_port(name))?;
        let spec = vxlan_spec(&p.rec.spec, name)?;
        let local = spec
            .options
            .get("local")
            .and_then(Value::as_str)
            .and_then(|l| l.parse::<IpAddr>().ok());
        for r in flood.iter().chain(statics.iter().map(|(_, r)| r)) {
            if Some(*r) == local || r.is_unspecified() {
                return Err(ControlError::BadRequest(format!(
                    "{r} is not a remote VTEP of port {name}"
                )));
            }
        }
        if let Some(m) = statics
            .iter()
            .map(|(m, _)| m)
            .chain(neighbors.iter().map(|(_, m)| m))
            .find(|m| !m.is_valid_source())
        {
            return Err(ControlError::BadRequest(format!(
                "{m} is not a unicast station address"
            )));
        }
        if let Some((ip, _)) = neighbors
            .iter()
            .find(|(ip, _)| ip.is_unspecified() || ip.is_multicast())
        {
            return Err(ControlError::BadRequest(format!(
                "{ip} is not an endpoint address"
            )));
        }
        let norm = |f: &[IpAddr], s: &[(MacAddr, IpAddr)], n: &[(IpAddr, MacAddr)]| {
            let mut f = f.to_vec();
            f.sort();
            f.dedup();
            let mut s: Vec<(String, IpAddr)> = s.iter().map(|(m, r)| (m.to_string(), *r)).collect();
            s.sort();
            let n: std::collections::BTreeMap<IpAddr, String> =
                n.iter().map(|(ip, m)| (*ip, m.to_string())).collect();
            (f, s, n)
        };
        let (of, os) = vxlan_remotes(spec).map_err(ControlError::Internal)?;
        let on = vxlan_neighbors(spec).map_err(ControlError::Internal)?;
        if norm(&of, &os, &on) == norm(flood, statics, neighbors) {
            return Ok(());
        }
        self.store_remotes(&mut st, name, flood, statics, Some(neighbors))
    }

    /// Forget `remote`: off the flood list, and every static entry to it.
    pub fn delete_remote(&self, name: &str, remote: IpAddr) -> Result<()> {
        let _w = self.store.db().exclusive_guard();
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
        self.store_remotes(&mut st, name, &flood, &statics, None)
    }
}

/// Give a running vxlan port the remotes its spec gained or lost (called by
/// the reconcile for an attached port whose spec changed).
pub(super) fn apply_remote_changes(name: &str, old: &PortSpec, new: &PortSpec) {
    if new.kind != PortKind::Vxlan {
        return;
    }
    let (Ok((of, os)), Ok((nf, ns))) = (vxlan_remotes(old), vxlan_remotes(new)) else {
        return;
    };
    let (Ok(on), Ok(nn)) = (vxlan_neighbors(old), vxlan_neighbors(new)) else {
        return;
    };
    if (&of, &os, &on) == (&nf, &ns, &nn) {
        return;
    }
    let Some(h) = vtep_handle(name) else { return };
    for (ip, _) in on.iter().filter(|(ip, _)| !nn.iter().any(|(i, _)| i == ip)) {
        h.remove_neighbor(*ip);
    }
    for (ip, m) in nn.iter().filter(|e| !on.contains(e)) {
        h.add_neighbor(*ip, *m);
    }
    for r in of.iter().filter(|r| !nf.contains(r)) {
        h.remove_flood(*r);
    }
    for r in nf.iter().filter(|r| !of.contains(r)) {
        h.add_flood(*r);
    }
    for (m, r) in &os {
        if !ns.iter().any(|(m2, _)| m2 == m) {
            h.remove(*m);
        } else if !ns.contains(&(*m, *r)) {
            // Moved to another remote: added again below.
            h.remove(*m);
        }
    }
    for (m, r) in ns.iter().filter(|e| !os.contains(e)) {
        h.add_static(*m, *r);
    }
}
