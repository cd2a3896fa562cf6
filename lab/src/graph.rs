//! The lab as a picture: Graphviz DOT and Mermaid text. Nodes are ellipses,
//! networks boxes (domain, VLAN, subnets), an interface is an edge labelled
//! with its name and addresses, a trunk a dashed edge between the networks
//! whose VLAN it carries. The DOT avoids clusters so that the pure-Rust
//! renderer the CLI uses for SVG (layout-rs) draws it as Graphviz would.

use std::fmt::Write;

use super::{NetworkDef, Topology, TrunkDef};

fn dot_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn net_label(n: &NetworkDef, several_switches: bool) -> Vec<String> {
    let mut l = vec![n.name.clone()];
    let mut where_ = String::new();
    if several_switches {
        let _ = write!(where_, "{} ", n.switches.join("+"));
    }
    let _ = write!(where_, "domain {} vlan {}", n.domain, n.vlan);
    if let Some(v) = n.vni {
        let _ = write!(where_, " vni {v}");
    }
    l.push(where_);
    for s in [n.subnet, n.ipv6].into_iter().flatten() {
        l.push(s.to_string());
    }
    for g in n.gateway_addrs() {
        l.push(format!("gateway {}", g.addr));
    }
    l
}

/// Pairs of networks a trunk joins: same VLAN, carried by the trunk, one
/// on each end's domain.
fn trunk_pairs<'t>(t: &TrunkDef, topo: &'t Topology) -> Vec<(&'t NetworkDef, &'t NetworkDef)> {
    let on = |end: usize| {
        topo.networks
            .iter()
            .filter(move |n| n.domain == t.ends[end].1 && n.switches.contains(&t.ends[end].0))
    };
    let carries = |v: u16| t.vlans.is_empty() || t.vlans.contains(&v) || t.native == Some(v);
    let mut out = Vec::new();
    for a in on(0) {
        for b in on(1) {
            if a.vlan == b.vlan && carries(a.vlan) {
                out.push((a, b));
            }
        }
    }
    out
}

/// VXLAN tunnel endpoints: (host node, network, label), drawn as dashed
/// edges from the node whose address the endpoint uses.
fn vteps(topo: &Topology) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for n in &topo.networks {
        for (sw, addr) in &n.vteps {
            if let Some(host) = topo
                .switches
                .iter()
                .find(|s| &s.name == sw)
                .and_then(|s| s.host.clone())
            {
                out.push((host, n.name.clone(), format!("switch {sw} vtep {addr}")));
            }
        }
    }
    out
}

/// Graphviz DOT (undirected).
pub fn to_dot(topo: &Topology) -> String {
    let several = topo.switches.len() > 1;
    let mut o = String::new();
    let _ = writeln!(o, "graph {} {{", dot_str(&topo.name));
    let _ = writeln!(o, "  rankdir=LR;");
    for n in &topo.networks {
        let _ = writeln!(
            o,
            "  {} [shape=box, label={}];",
            dot_str(&format!("net:{}", n.name)),
            dot_str(&net_label(n, several).join("\n"))
        );
    }
    for n in &topo.nodes {
        let _ = writeln!(
            o,
            "  {} [shape=ellipse, label={}];",
            dot_str(&format!("node:{}", n.name)),
            dot_str(&n.name)
        );
    }
    for n in &topo.nodes {
        for i in &n.interfaces {
            let mut label = vec![format!("{} ({})", i.name, i.port.as_str())];
            label.extend(i.addresses().map(|a| a.to_string()));
            let _ = writeln!(
                o,
                "  {} -- {} [label={}];",
                dot_str(&format!("node:{}", n.name)),
                dot_str(&format!("net:{}", i.network)),
                dot_str(&label.join("\n"))
            );
        }
    }
    for (node, net, label) in vteps(topo) {
        let _ = writeln!(
            o,
            "  {} -- {} [style=dashed, label={}];",
            dot_str(&format!("node:{node}")),
            dot_str(&format!("net:{net}")),
            dot_str(&label)
        );
    }
    for t in &topo.trunks {
        for (a, b) in trunk_pairs(t, topo) {
            let _ = writeln!(
                o,
                "  {} -- {} [style=dashed, label={}];",
                dot_str(&format!("net:{}", a.name)),
                dot_str(&format!("net:{}", b.name)),
                dot_str(&format!("trunk {}", t.name))
            );
        }
    }
    o.push_str("}\n");
    o
}

fn mm_id(prefix: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}_{clean}")
}

fn mm_text(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// Mermaid flowchart (renders in GitHub/GitLab markdown).
pub fn to_mermaid(topo: &Topology) -> String {
    let several = topo.switches.len() > 1;
    let mut o = String::from("flowchart LR\n");
    for n in &topo.networks {
        let _ = writeln!(
            o,
            "  {}[\"{}\"]",
            mm_id("net", &n.name),
            mm_text(&net_label(n, several).join("<br/>"))
        );
    }
    for n in &topo.nodes {
        let _ = writeln!(
            o,
            "  {}([\"{}\"])",
            mm_id("node", &n.name),
            mm_text(&n.name)
        );
    }
    for n in &topo.nodes {
        for i in &n.interfaces {
            let mut label = vec![i.name.clone()];
            label.extend(i.addresses().map(|a| a.to_string()));
            let _ = writeln!(
                o,
                "  {} ---|\"{}\"| {}",
                mm_id("node", &n.name),
                mm_text(&label.join("<br/>")),
                mm_id("net", &i.network)
            );
        }
    }
    for (node, net, label) in vteps(topo) {
        let _ = writeln!(
            o,
            "  {} -.-|\"{}\"| {}",
            mm_id("node", &node),
            mm_text(&label),
            mm_id("net", &net)
        );
    }
    for t in &topo.trunks {
        for (a, b) in trunk_pairs(t, topo) {
            let _ = writeln!(
                o,
                "  {} -.-|\"trunk {}\"| {}",
                mm_id("net", &a.name),
                mm_text(&t.name),
                mm_id("net", &b.name)
            );
        }
    }
    o
}
