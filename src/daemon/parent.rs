//! The control plane's operations on parents: VLANs of a bridge domain
//! bridged to a host NIC's LAN (Docker's `rvswitch.parent`, the lab's
//! `parent:`, `POST /v1/domains/{name}/parents`).
//!
//! One interface carries one **uplink port** (`up-<iface>`, AF_PACKET or
//! AF_XDP): a trunk whose allowed VLANs are the tagged parents
//! (`eth0.10`) and whose native VLAN is the untagged one (`eth0`). The
//! port record *is* the desired state of the parent: attaching a VLAN
//! makes the port (the first) or adds the VLAN to its trunk; detaching
//! takes it off, and the last one takes the port away. Every change is a
//! new [`Desired`](super::store::Desired) committed through
//! [`Control::commit`], so a restart (or the undo of a failed change)
//! brings the uplink back by the one reconcile path, like any port.
//!
//! Owns: the checks (the interface exists in the daemon's namespace, is
//! not enslaved to a bridge or bond nor held by another port, each VLAN
//! of an interface is carried once, every VLAN of one interface is in one
//! bridge domain). Never: packet work (the switch's trunk pushes and pops
//! the tags).

use rvs_cnm::Parent;
use rvs_switch::VlanSet;

use super::control::{Control, ControlError, PortState, State, not_found_domain};
use super::model::{CreatePort, ParentRequest, ParentView, PortKind, VlanSpec};

type Result<T, E = ControlError> = std::result::Result<T, E>;

/// The uplink port of host interface `iface`: `up-<iface>`, or, for an
/// interface whose name has characters a port name cannot take,
/// `up-x<hex of the name>`.
pub fn uplink_port_name(iface: &str) -> String {
    let plain = format!("up-{iface}");
    if crate::spec::check_name("port", &plain).is_ok() {
        plain
    } else {
        let hex: String = iface.bytes().map(|b| format!("{b:02x}")).collect();
        format!("up-x{hex}")
    }
}

/// The VLANs an uplink port carries: (tagged, native).
fn trunk(p: &PortState) -> Option<(VlanSet, Option<u16>)> {
    match &p.rec.config.vlan {
        VlanSpec::Trunk { allowed, native } => Some((allowed.clone(), *native)),
        _ => None,
    }
}

/// Whether `p` is the uplink port of its interface.
fn is_uplink(p: &PortState) -> bool {
    let s = &p.rec.spec;
    matches!(s.kind, PortKind::Afpacket | PortKind::Afxdp)
        && s.iface
            .as_deref()
            .is_some_and(|i| s.name == uplink_port_name(i))
        && trunk(p).is_some()
}

fn parse(text: &str) -> Result<Parent> {
    text.parse()
        .map_err(|e: rvs_cnm::parent::ParentError| ControlError::BadRequest(e.to_string()))
}

/// The interface must exist in the daemon's network namespace and be
/// nobody's slave (a bridge or bond port hands its frames to its master,
/// not to a packet socket).
fn check_kernel(p: &Parent) -> Result<()> {
    use rvs_drivers::netlink::Netlink;
    let internal = |e: rvs_drivers::netlink::NetlinkError| ControlError::Internal(e.to_string());
    let nl = Netlink::new().map_err(internal)?;
    let link = nl.find_link(&p.iface).map_err(internal)?.ok_or_else(|| {
        ControlError::NotFound(format!(
            "parent {p}: no interface {} in the daemon's network namespace",
            p.iface
        ))
    })?;
    if let Some(m) = link.master {
        let master = nl
            .links()
            .ok()
            .and_then(|ls| ls.into_iter().find(|l| l.index == m))
            .map_or_else(|| format!("index {m}"), |l| l.name);
        return Err(ControlError::Conflict(format!(
            "parent {p}: {} is enslaved to {master}; take it out first \
             (ip link set {} nomaster)",
            p.iface, p.iface
        )));
    }
    Ok(())
}

fn view(domain: &str, p: &PortState, parent: Parent, vlan: u16) -> ParentView {
    ParentView {
        parent: parent.to_string(),
        domain: domain.to_string(),
        vlan,
        tagged: parent.vid.is_some(),
        port: p.rec.spec.name.clone(),
        kind: p.rec.spec.kind,
        state: if p.error.is_none() { "up" } else { "failed" }.into(),
        error: p.error.clone(),
    }
}

/// Every parent of `domain`, by interface then VLAN.
fn parents_of(st: &State, domain: &str) -> Vec<ParentView> {
    let mut out = Vec::new();
    for p in st.ports.values() {
        if p.rec.config.domain != domain || !is_uplink(p) {
            continue;
        }
        let iface = p.rec.spec.iface.clone().unwrap_or_default();
        let (allowed, native) = trunk(p).expect("an uplink is a trunk");
        if let Some(n) = native {
            let parent = Parent {
                iface: iface.clone(),
                vid: None,
            };
            out.push(view(domain, p, parent, n));
        }
        for v in allowed.iter() {
            let parent = Parent {
                iface: iface.clone(),
                vid: Some(v),
            };
            out.push(view(domain, p, parent, v));
        }
    }
    out
}

impl Control {
    /// The parents of bridge domain `domain`.
    pub fn list_parents(&self, domain: &str) -> Result<Vec<ParentView>> {
        let st = self.lock();
        if !st.domains.contains_key(domain) {
            return Err(not_found_domain(domain));
        }
        Ok(parents_of(&st, domain))
    }

    /// Bridge a VLAN of `domain` to the parent's interface (see the module
    /// docs). Refused, changing nothing: a bad parent or VLAN (400), a
    /// missing domain or interface (404), an interface enslaved or held by
    /// another port, in another domain's use, or a VLAN it carries already
    /// (409).
    pub fn attach_parent(&self, domain: &str, req: ParentRequest) -> Result<ParentView> {
        let parent = parse(&req.parent)?;
        let vlan = match (parent.vid, req.vlan) {
            (Some(v), None) => v,
            (Some(v), Some(w)) if v == w => v,
            (Some(v), Some(w)) => {
                return Err(ControlError::BadRequest(format!(
                    "parent {parent} carries the domain's VLAN {v}, not {w}: the switch \
                     does not translate VLAN ids"
                )));
            }
            (None, w) => {
                let w = w.unwrap_or(1);
                rvs_switch::vlan::check_vid(w as u32)
                    .map_err(|e| ControlError::BadRequest(format!("vlan: {e}")))?;
                w
            }
        };
        if let Some(k) = req.kind
            && !matches!(k, PortKind::Afpacket | PortKind::Afxdp)
        {
            return Err(ControlError::BadRequest(format!(
                "an uplink port is afpacket or afxdp, not {k}"
            )));
        }
        let name = uplink_port_name(&parent.iface);
        self.change(|st| {
            if !st.domains.contains_key(domain) {
                return Err(not_found_domain(domain));
            }
            check_kernel(&parent)?;
            let holder = st
                .ports
                .values()
                .find(|p| p.rec.spec.iface.as_deref() == Some(parent.iface.as_str()))
                .or_else(|| st.ports.get(&name));
            let mut next = st.desired();
            match holder {
                Some(p) if !is_uplink(p) || p.rec.spec.name != name => {
                    return Err(ControlError::Conflict(format!(
                        "parent {parent}: interface {} is held by port {} ({}); one \
                         interface carries one port",
                        parent.iface, p.rec.spec.name, p.rec.spec.kind
                    )));
                }
                Some(p) if p.rec.config.domain != domain => {
                    return Err(ControlError::Conflict(format!(
                        "parent {parent}: {} is the uplink of bridge domain {}; every VLAN of \
                         one interface is in one bridge domain",
                        parent.iface, p.rec.config.domain
                    )));
                }
                Some(p) if req.kind.is_some_and(|k| k != p.rec.spec.kind) => {
                    return Err(ControlError::Conflict(format!(
                        "parent {parent}: the uplink port {name} of {} is {}, not {}",
                        parent.iface,
                        p.rec.spec.kind,
                        req.kind.expect("checked")
                    )));
                }
                Some(p) => {
                    let (mut allowed, mut native) = trunk(p).expect("an uplink is a trunk");
                    let taken = match parent.vid {
                        Some(v) => allowed.contains(v) || native == Some(v),
                        None => native.is_some() || allowed.contains(vlan),
                    };
                    if taken {
                        let what = match native {
                            Some(n) if parent.vid.is_none() || parent.vid == Some(n) => {
                                format!("carries VLAN {n} untagged")
                            }
                            _ => format!("carries VLAN {vlan} tagged"),
                        };
                        return Err(ControlError::Conflict(format!(
                            "parent {parent}: {} already {what}; each VLAN of an interface \
                             carries one network",
                            parent.iface
                        )));
                    }
                    match parent.vid {
                        Some(v) => allowed.insert(v),
                        None => native = Some(vlan),
                    }
                    next.ports.get_mut(&name).expect("held").config.vlan =
                        VlanSpec::Trunk { allowed, native };
                }
                None => {
                    let mut allowed = VlanSet::new();
                    let native = match parent.vid {
                        Some(v) => {
                            allowed.insert(v);
                            None
                        }
                        None => Some(vlan),
                    };
                    let mut req2 =
                        CreatePort::new(&name, req.kind.unwrap_or(PortKind::Afpacket), domain);
                    req2.iface = Some(parent.iface.clone());
                    req2.vlan = VlanSpec::Trunk { allowed, native };
                    let rec = req2.into_record().map_err(ControlError::BadRequest)?;
                    next.ports.insert(name.clone(), rec);
                }
            }
            self.commit(st, next)?;
            let p = st.ports.get(&name).expect("committed");
            Ok(view(domain, p, parent.clone(), vlan))
        })
    }

    /// Take `parent` off `domain`; the last VLAN of an interface takes its
    /// uplink port (and the port's static entries) with it.
    pub fn detach_parent(&self, domain: &str, parent: &str) -> Result<()> {
        let parent = parse(parent)?;
        let name = uplink_port_name(&parent.iface);
        self.change(|st| {
            if !st.domains.contains_key(domain) {
                return Err(not_found_domain(domain));
            }
            let missing =
                || ControlError::NotFound(format!("bridge domain {domain} has no parent {parent}"));
            let p = st
                .ports
                .get(&name)
                .filter(|p| is_uplink(p) && p.rec.config.domain == domain)
                .ok_or_else(missing)?;
            let (mut allowed, mut native) = trunk(p).expect("an uplink is a trunk");
            match parent.vid {
                Some(v) if allowed.contains(v) => allowed.remove(v),
                None if native.is_some() => native = None,
                _ => return Err(missing()),
            }
            let mut next = st.desired();
            if allowed.is_empty() && native.is_none() {
                next.ports.remove(&name);
                let keys: Vec<String> = next.statics_of(&name).cloned().collect();
                for k in keys {
                    next.statics.remove(&k);
                }
            } else {
                next.ports.get_mut(&name).expect("held").config.vlan =
                    VlanSpec::Trunk { allowed, native };
            }
            self.commit(st, next)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::store::Store;
    use crate::daemon::testutil::TempDir;
    use crate::worker::Dataplane;
    use rvs_drivers::testutil::{Link, root_or_skip};

    fn control(dir: &TempDir) -> Control {
        let store = Store::open(&dir.0).unwrap();
        let dp = Dataplane::start(1).unwrap();
        Control::start(dp, store, crate::spec::memory_port_factory()).unwrap()
    }

    /// The uplink port's VLANs as stored: (allowed, native), or None
    /// without a port.
    fn uplink(c: &Control, iface: &str) -> Option<(String, Option<u16>)> {
        let want = c.store.load().unwrap();
        want.ports
            .get(&uplink_port_name(iface))
            .map(|p| match &p.config.vlan {
                VlanSpec::Trunk { allowed, native } => (allowed.to_string(), *native),
                other => panic!("not a trunk: {other:?}"),
            })
    }

    /// Attach and detach are commits of the desired state: what they store
    /// is what a restart brings back, a failed store write changes nothing,
    /// and the last VLAN takes the port away.
    #[test]
    fn the_uplink_port_is_the_stored_state_of_the_parents() {
        if !root_or_skip("the_uplink_port_is_the_stored_state_of_the_parents") {
            return;
        }
        let (nic, _) = Link::veth("nic", None);
        let n = nic.name.as_str();
        let dir = TempDir::new("parents");
        let c = control(&dir);
        c.create_domain(serde_json::from_str(r#"{"name":"wan"}"#).unwrap())
            .unwrap();
        let add = |p: &str| c.attach_parent("wan", ParentRequest::new(p));
        let v = add(&format!("{n}.10")).unwrap();
        assert_eq!((v.vlan, v.tagged, v.state.as_str()), (10, true, "up"));
        assert_eq!(uplink(&c, n), Some(("10".into(), None)));
        let mut req = ParentRequest::new(n);
        req.vlan = Some(7);
        c.attach_parent("wan", req).unwrap();
        assert_eq!(uplink(&c, n), Some(("10".into(), Some(7))));
        for bad in [format!("{n}.10"), format!("{n}.7"), n.to_string()] {
            assert!(matches!(add(&bad), Err(ControlError::Conflict(_))), "{bad}");
        }
        c.store.db().inject_write_failures(true);
        assert!(matches!(
            add(&format!("{n}.20")),
            Err(ControlError::Internal(_))
        ));
        c.store.db().inject_write_failures(false);
        assert_eq!(uplink(&c, n), Some(("10".into(), Some(7))));
        assert_eq!(
            c.list_parents("wan").unwrap().len(),
            2,
            "nothing half-added"
        );
        c.shutdown();
        drop(c);

        let c = control(&dir);
        let names: Vec<String> = c
            .list_parents("wan")
            .unwrap()
            .into_iter()
            .map(|v| v.parent)
            .collect();
        assert_eq!(
            names,
            [n.to_string(), format!("{n}.10")],
            "back after a restart"
        );
        assert!(matches!(
            c.detach_parent("wan", &format!("{n}.20")),
            Err(ControlError::NotFound(_))
        ));
        c.detach_parent("wan", &format!("{n}.10")).unwrap();
        assert_eq!(uplink(&c, n), Some((String::new(), Some(7))));
        c.detach_parent("wan", n).unwrap();
        assert_eq!(uplink(&c, n), None, "the last VLAN took the port");
        c.delete_domain("wan").unwrap();
        c.shutdown();
    }

    #[test]
    fn uplink_names_are_port_names() {
        assert_eq!(uplink_port_name("eth0"), "up-eth0");
        assert_eq!(uplink_port_name("veth.x-1"), "up-veth.x-1");
        let odd = uplink_port_name("a@b");
        assert_eq!(odd, "up-x614062");
        crate::spec::check_name("port", &odd).unwrap();
    }
}
