//! `lab deploy --reconfigure`: apply only the difference between the
//! topology a lab's state records as deployed and a new file (the plan is
//! `rvs_lab::plan`, a pure function). Each step is applied, then recorded
//! (the state's `deployed` topology updated with `Step::record`), so a
//! failure half-way leaves a record of what is really there and the next
//! `--reconfigure` plans and applies only the rest. What the plan does not
//! name — every namespace, link and port of what stays — is not touched.

use std::path::Path;

use hyper::Method;
use rvs_drivers::netlink::{Netlink, Route};
use rvs_drivers::netns;
use rvs_lab::{InterfaceDef, NodeDef, Plan, PortKind, Step, Topology, TrunkDef};

use super::deploy::{
    domain_body, ensure, ensure_interface, ensure_netns, ensure_node, ensure_switch_route,
    ensure_trunk, ensure_vxlan_port, preflight, run_exec,
};
use super::host::{configure_inside, kill_in_netns, nl_err, on};
use super::state::{LabState, digest};
use super::switches::Switches;
use super::{LabError, Paths, err};
use crate::api::DomainPatch;
use crate::client::Client;

/// The recorded deployment of lab `new.name`, and the plan from it to `new`.
fn load_plan(new: &Topology, paths: &Paths) -> Result<(LabState, Topology, Plan), LabError> {
    let st =
        LabState::load(paths)?.ok_or_else(|| err(format!("lab {} is not deployed", new.name)))?;
    let Some(old) = st.deployed.clone() else {
        return Err(err(format!(
            "lab {}: its state does not record what was deployed (a deploy that never completed, or one by an older rvswitch): `rvswitch lab deploy {}` (the file it was deployed from) completes and records it, then --reconfigure can follow (no changes made)",
            new.name,
            st.file.display()
        )));
    };
    let plan = rvs_lab::plan(&old, new).map_err(|why| {
        err(format!(
            "lab {}: --reconfigure cannot make this change:\n  {}\n(no changes made)",
            new.name,
            why.join("\n  ")
        ))
    })?;
    Ok((st, old, plan))
}

fn counts(plan: &Plan) -> String {
    let (mut add, mut remove, mut change) = (0, 0, 0);
    for s in &plan.steps {
        match s {
            Step::RemoveTrunk(_)
            | Step::RemoveNode(_)
            | Step::RemoveInterface { .. }
            | Step::RemoveSwitchRoute { .. }
            | Step::RemoveNetwork {
                replaced: false, ..
            } => remove += 1,
            // Counted once, as the change its AddNetwork is.
            Step::RemoveNetwork { replaced: true, .. } => {}
            Step::Domain { old: Some(_), .. }
            | Step::AddNetwork { replaces: true, .. }
            | Step::ChangeInterface { .. }
            | Step::ChangeNode { .. } => change += 1,
            _ => add += 1,
        }
    }
    format!("{add} to add, {remove} to remove, {change} to change")
}

/// Print the plan from the deployed lab to `new`, touching nothing.
pub fn dry_run(new: &Topology) -> Result<(), LabError> {
    let paths = Paths::of(&new.name);
    let (_, _, plan) = load_plan(new, &paths)?;
    if plan.is_empty() {
        println!("lab {}: no changes (dry run)", new.name);
    } else {
        print!("{plan}");
        println!(
            "lab {}: {} (dry run: nothing done)",
            new.name,
            counts(&plan)
        );
    }
    Ok(())
}

/// Apply the difference; a lab that is not deployed is deployed.
pub fn reconfigure(new: &Topology, file: &Path) -> Result<(), LabError> {
    let paths = Paths::of(&new.name);
    if LabState::load(&paths)?.is_none() {
        return super::deploy(new, file);
    }
    let text =
        std::fs::read_to_string(file).map_err(|e| err(format!("read {}: {e}", file.display())))?;
    let (mut st, old, plan) = load_plan(new, &paths)?;
    let nl = Netlink::new().map_err(nl_err)?;
    preflight(new, &st, &nl)?;
    if !plan.is_empty() {
        print!("{plan}");
    }
    let apply_all = |st: &mut LabState| -> Result<(), LabError> {
        st.complete = false;
        st.save(&paths)?;
        // Switches do not change (the plan refuses it): the same daemons.
        let switches = Switches::up(new, &paths, st)?;
        for step in &plan.steps {
            apply(step, &old, new, &paths, st, &nl, &switches)
                .map_err(|e| err(format!("{step}: {e}")))?;
            let mut rec = st.deployed.take().unwrap_or_else(|| old.clone());
            step.record(&mut rec);
            st.deployed = Some(rec);
            st.save(&paths)?;
        }
        super::dns::ensure_names(new, |sw| switches.get(sw))?;
        super::services::ensure_services(new, |sw| switches.get(sw))?;
        super::dns::ensure_resolv_confs(new)?;
        for node in &new.nodes {
            run_exec(node, &paths, st)?;
        }
        st.deployed = Some(new.clone());
        st.digest = digest(&text);
        st.file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        st.complete = true;
        st.save(&paths)
    };
    apply_all(&mut st).map_err(|e| {
        err(format!(
            "{e}\nlab {}: reconfigure stopped; the lab state records what was applied: `rvswitch lab deploy --reconfigure {}` again finishes it",
            new.name,
            file.display()
        ))
    })?;
    if plan.is_empty() {
        println!("lab {}: no changes", new.name);
    } else {
        println!(
            "lab {}: reconfigured ({})",
            new.name,
            counts(&plan).replace(" to ", " ")
        );
    }
    Ok(())
}

/// DELETE a switch object; one that is not there is fine.
fn delete(c: &Client, path: &str) -> Result<(), LabError> {
    let r = c
        .request(Method::DELETE, path, None)
        .map_err(|e| err(format!("DELETE {path}: {e}")))?;
    match r.status {
        200..=299 | 404 => Ok(()),
        s => Err(err(format!(
            "DELETE {path}: HTTP {s}: {}",
            r.error_message()
        ))),
    }
}

fn forget_link(st: &mut LabState, paths: &Paths, link: &str) -> Result<(), LabError> {
    st.links.retain(|l| l != link);
    st.save(paths)
}

/// An interface's switch port, then its link: the veth's switch end (its
/// peer in the node goes with it) or the TAP inside the node.
fn remove_interface(
    topo: &Topology,
    node: &NodeDef,
    i: &InterfaceDef,
    paths: &Paths,
    st: &mut LabState,
    nl: &Netlink,
    switches: &Switches,
) -> Result<(), LabError> {
    delete(switches.get(&i.switch), &format!("/v1/ports/{}", i.link))?;
    let sw_ns = topo.switch_netns(&i.switch);
    if on(sw_ns.as_deref(), nl, |n| n.find_link(&i.link))?.is_some() {
        on(sw_ns.as_deref(), nl, |n| n.delete_link(&i.link))?;
    }
    if i.port == PortKind::Tap && netns::netns_path(&node.netns).exists() {
        Netlink::in_netns(&node.netns, |n| match n.find_link(&i.name)? {
            Some(_) => n.delete_link(&i.name),
            None => Ok(()),
        })
        .map_err(nl_err)?;
    }
    forget_link(st, paths, &i.link)
}

fn remove_trunk(
    topo: &Topology,
    t: &TrunkDef,
    paths: &Paths,
    st: &mut LabState,
    nl: &Netlink,
    switches: &Switches,
) -> Result<(), LabError> {
    for (sw, _, link) in &t.ends {
        delete(switches.get(sw), &format!("/v1/ports/{link}"))?;
    }
    for (sw, _, link) in &t.ends {
        let ns = topo.switch_netns(sw);
        // The first end's deletion takes its peer along.
        if on(ns.as_deref(), nl, |n| n.find_link(link))?.is_some() {
            on(ns.as_deref(), nl, |n| n.delete_link(link))?;
        }
        forget_link(st, paths, link)?;
    }
    Ok(())
}

fn node_routes(node: &NodeDef) -> Vec<Route> {
    node.routes
        .iter()
        .map(|r| Route {
            dst: r.to.addr,
            prefix: r.to.len,
            via: Some(r.via),
            dev: None,
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn apply(
    step: &Step,
    old: &Topology,
    new: &Topology,
    paths: &Paths,
    st: &mut LabState,
    nl: &Netlink,
    switches: &Switches,
) -> Result<(), LabError> {
    match step {
        Step::RemoveTrunk(t) => remove_trunk(old, t, paths, st, nl, switches),
        Step::RemoveNode(node) => {
            if node.image.is_some() {
                super::container::remove(super::container::name(node)).map_err(err)?;
                st.containers.retain(|c| c != super::container::name(node));
            }
            kill_in_netns(&node.netns);
            for i in &node.interfaces {
                remove_interface(old, node, i, paths, st, nl, switches)?;
            }
            super::dns::remove_netns_etc(&node.netns);
            if netns::netns_path(&node.netns).exists() {
                netns::delete_named(&node.netns).map_err(err)?;
            }
            st.namespaces.retain(|n| n != &node.netns);
            st.exec_done.retain(|n| n != &node.name);
            st.save(paths)
        }
        Step::RemoveInterface { node, iface } => {
            let n = old
                .node(node)
                .ok_or_else(|| err(format!("no node {node} in the record")))?;
            remove_interface(old, n, iface, paths, st, nl, switches)
        }
        Step::RemoveSwitchRoute { switch, route } => delete(
            switches.get(switch),
            &format!("/v1/routes/0/{}/{}", route.to.addr, route.to.len),
        ),
        Step::RemoveNetwork {
            net,
            vxlan,
            domains,
            ..
        } => {
            // Off its NIC first: the uplink port holds the domain.
            if let Some(p) = &net.parent {
                for sw in &net.switches {
                    delete(
                        switches.get(sw),
                        &format!("/v1/domains/{}/parents/{p}", net.domain),
                    )?;
                }
            }
            for p in vxlan {
                delete(switches.get(&p.switch), &format!("/v1/ports/{}", p.name))?;
            }
            for (sw, d) in domains {
                // A domain that goes takes every parent of it along (other
                // networks of it may be removed by later steps).
                let c = switches.get(sw);
                let path = format!("/v1/domains/{d}/parents");
                if let Ok(r) = c.get(&path)
                    && r.status == 200
                {
                    for v in r.json().as_array().into_iter().flatten() {
                        let p = v["parent"].as_str().unwrap_or_default();
                        delete(c, &format!("{path}/{p}"))?;
                    }
                }
                delete(c, &format!("/v1/domains/{d}"))?;
            }
            Ok(())
        }
        Step::Domain { old: None, new: d } => ensure(
            switches.get(&d.switch),
            &format!("/v1/domains/{}", d.domain),
            "/v1/domains",
            domain_body(d),
        )
        .map(|_| ()),
        Step::Domain {
            old: Some(o),
            new: d,
        } => {
            // Only what changed: RSTP set again would restart it.
            let body = domain_body(d);
            let mut patch = DomainPatch::default();
            if o.gateway != d.gateway {
                // The domain's DNS listeners stand beside its gateway: they
                // go first (a new gateway may take one's VLAN), and the
                // names step makes the wanted ones again.
                let c = switches.get(&d.switch);
                let path = format!("/v1/domains/{}/dns", d.domain);
                if let Ok(r) = c.get(&path).and_then(|r| r.ok()) {
                    for v in r.json().as_array().into_iter().flatten() {
                        delete(c, &format!("{path}/{}", v["vid"]))?;
                    }
                }
                patch.gateway = Some(body.gateway);
            }
            if o.stp != d.stp {
                patch.stp = Some(body.stp);
            }
            let path = format!("/v1/domains/{}", d.domain);
            switches
                .get(&d.switch)
                .patch(&path, &patch)
                .and_then(|r| r.ok())
                .map(|_| ())
                .map_err(|e| err(format!("PATCH {path} {patch:?}: {e}")))
        }
        Step::AddNetwork { net, .. } => {
            for p in net.vxlan_ports() {
                ensure_vxlan_port(&p, switches)?;
            }
            super::deploy::ensure_parent(net, switches)
        }
        Step::AddSwitchRoute { switch, route } => {
            let c = switches.get(switch);
            let have = c
                .get("/v1/routes")
                .and_then(|r| r.ok())
                .map_err(|e| err(format!("switch {switch}: list routes: {e}")))?
                .json();
            ensure_switch_route(new, switch, route, c, &have)
        }
        Step::AddNode(node) => {
            ensure_netns(new, node, paths, st)?;
            ensure_node(new, node, paths, st, nl, switches)
        }
        Step::AddInterface { node, iface } => {
            let n = new.node(node).expect("planned from this topology");
            ensure_interface(new, n, iface, paths, st, nl, switches)
        }
        Step::ChangeInterface {
            node,
            old: oi,
            new: ni,
        } => {
            let n = new.node(node).expect("planned from this topology");
            let gone: Vec<_> = oi
                .addresses()
                .filter(|a| !ni.addresses().any(|b| b == *a))
                .collect();
            Netlink::in_netns(&n.netns, |h| {
                let have = h.addresses(&ni.name)?;
                for a in &gone {
                    if have.contains(&(a.addr, a.len)) {
                        h.del_address(&ni.name, a.addr, a.len)?;
                    }
                }
                Ok(())
            })
            .map_err(nl_err)?;
            if ni.mtu != oi.mtu
                && ni.port != PortKind::Tap
                && let Some(m) = ni.mtu
            {
                let sw_ns = new.switch_netns(&ni.switch);
                on(sw_ns.as_deref(), nl, |h| h.set_mtu(&ni.link, m))?;
            }
            configure_inside(n, ni)
        }
        Step::ChangeNode { old: on_, new: nn } => {
            let keep = node_routes(nn);
            let gone: Vec<Route> = node_routes(on_)
                .into_iter()
                .filter(|r| {
                    !keep
                        .iter()
                        .any(|k| k.dst == r.dst && k.prefix == r.prefix && k.via == r.via)
                })
                .collect();
            Netlink::in_netns(&nn.netns, |h| {
                for r in &gone {
                    match h.del_route(r) {
                        // ESRCH / ENOENT: already gone.
                        Err(e) if matches!(e.errno(), Some(3) | Some(2)) => {}
                        other => other?,
                    }
                }
                Ok(())
            })
            .map_err(|e| err(format!("node {}: {e}", nn.name)))?;
            super::deploy::ensure_node_settings(nn)
        }
        Step::AddTrunk(t) => ensure_trunk(new, t, paths, st, nl, switches),
    }
}
