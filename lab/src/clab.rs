//! containerlab topologies (`topology: {nodes, links}`) read as lab files.
//!
//! A containerlab file is rewritten into this crate's own format and then
//! validated like any lab file; every line written remembers the line of
//! the containerlab node or link it came from, so an error names the line
//! of the file the user wrote. The subset (docs/operations.md, "containerlab
//! topologies"):
//! - `kind: linux` nodes become lab nodes — with `image:` (from the node,
//!   `kinds.linux` or `defaults`) a container run by Docker, without one a
//!   namespace; `cmd:` (from the same places) and `exec:` carry over;
//! - `kind: bridge` (and `ovs-bridge`) nodes become rvswitch networks: the
//!   switch is the bridge, so containerlab's host bridge is not needed;
//! - each link between two linux nodes becomes a two-member network
//!   `link<N>`; a link to a bridge puts the node's interface on it. The
//!   interface names (`eth1`) are kept inside the nodes.
//! - `mgmt:`, `prefix:` and the management fields of nodes are accepted
//!   and ignored (nodes get no management network); anything else is an
//!   error naming its line.
//!
//! Hand-written because it is a mapping between two formats (no crate knows
//! either).

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{LoaderOptions, Node};

use super::{LabError, LabErrors, Pos};

/// Whether `text` is a containerlab topology (a top-level `topology:`).
pub fn is_containerlab(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("topology:"))
}

/// Node fields rvswitch carries over or deliberately ignores.
const NODE_KEYS: &[&str] = &["kind", "image", "cmd", "exec"];
const IGNORED_NODE_KEYS: &[&str] = &[
    "mgmt-ipv4",
    "mgmt-ipv6",
    "labels",
    "group",
    "startup-delay",
    "network-mode",
];

struct Out {
    lines: Vec<String>,
    /// The source line of each line in `lines`.
    from: Vec<usize>,
}

impl Out {
    fn push(&mut self, line: impl Into<String>, src: usize) {
        self.lines.push(line.into());
        self.from.push(src);
    }
}

fn line_of(n: &Node) -> usize {
    n.span().start().map(|m| m.line()).unwrap_or(1).max(1)
}

fn key_line(k: &marked_yaml::types::MarkedScalarNode) -> usize {
    k.span().start().map(|m| m.line()).unwrap_or(1).max(1)
}

/// A YAML double-quoted string (JSON's quoting is valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The rewritten text and, per line of it, the containerlab line; `None`
/// when the text is not loadable YAML (the lab parser reports that, with
/// its position).
pub fn translate(file: &str, text: &str) -> Result<Option<(String, Vec<usize>)>, LabErrors> {
    let mut errs: Vec<LabError> = Vec::new();
    let mut err = |line: usize, field: &str, msg: String| {
        errs.push(LabError {
            file: file.to_string(),
            pos: Pos { line, col: 1 },
            field: field.to_string(),
            message: msg,
        })
    };
    let opts = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .toplevel_mapping();
    let Ok(root) = marked_yaml::parse_yaml_with_options(0, text, opts) else {
        return Ok(None);
    };
    let top = root.as_mapping().expect("toplevel_mapping");
    for (k, _) in top.iter() {
        if !["name", "prefix", "mgmt", "topology"].contains(&k.as_str()) {
            err(
                key_line(k),
                k.as_str(),
                "not part of the containerlab subset rvswitch reads (name, topology; prefix and mgmt are ignored)".into(),
            );
        }
    }
    let name = match top.get_scalar("name") {
        Some(n) => n.as_str().to_string(),
        None => {
            err(1, "name", "a containerlab topology needs `name:`".into());
            String::new()
        }
    };
    let empty = MarkedMappingNode::new_empty(marked_yaml::Span::new_blank());
    let topo = top.get_mapping("topology").unwrap_or(&empty);
    for (k, _) in topo.iter() {
        if !["nodes", "links", "defaults", "kinds"].contains(&k.as_str()) {
            err(
                key_line(k),
                &format!("topology.{}", k.as_str()),
                "not part of the containerlab subset rvswitch reads (nodes, links, defaults, kinds)".into(),
            );
        }
    }
    let defaults = topo.get_mapping("defaults");
    let kinds = topo.get_mapping("kinds");
    let nodes = topo.get_mapping("nodes").unwrap_or(&empty);

    struct ClabNode {
        name: String,
        line: usize,
        bridge: bool,
        image: Option<String>,
        cmd: Option<String>,
        exec: Vec<(String, usize)>,
        ifaces: Vec<(String, String, usize)>, // (name, network, line)
    }
    let mut all: Vec<ClabNode> = Vec::new();
    for (k, v) in nodes.iter() {
        let path = format!("topology.nodes.{}", k.as_str());
        let line = key_line(k);
        let m = v.as_mapping();
        if let Some(m) = m {
            for (f, _) in m.iter() {
                if !NODE_KEYS.contains(&f.as_str()) && !IGNORED_NODE_KEYS.contains(&f.as_str()) {
                    err(
                        key_line(f),
                        &format!("{path}.{}", f.as_str()),
                        format!(
                            "not part of the containerlab subset rvswitch reads (node fields: {})",
                            NODE_KEYS.join(", ")
                        ),
                    );
                }
            }
        }
        let field = |f: &str| -> Option<String> {
            m.and_then(|m| m.get_scalar(f))
                .map(|s| s.as_str().to_string())
        };
        let kind = field("kind").or_else(|| {
            defaults
                .and_then(|d| d.get_scalar("kind"))
                .map(|s| s.as_str().to_string())
        });
        let Some(kind) = kind else {
            err(
                line,
                &path,
                "no `kind:` (and no `topology.defaults.kind`)".into(),
            );
            continue;
        };
        let bridge = match kind.as_str() {
            "linux" => false,
            "bridge" | "ovs-bridge" => true,
            other => {
                let at = m
                    .and_then(|m| m.get_node("kind"))
                    .map(line_of)
                    .unwrap_or(line);
                err(
                    at,
                    &format!("{path}.kind"),
                    format!(
                        "kind {other:?}: rvswitch runs `linux` nodes and `bridge`/`ovs-bridge` nodes (as its own networks)"
                    ),
                );
                continue;
            }
        };
        let image = field("image")
            .or_else(|| {
                kinds
                    .and_then(|k| k.get_mapping(&kind))
                    .and_then(|k| k.get_scalar("image"))
                    .map(|s| s.as_str().to_string())
            })
            .or_else(|| {
                defaults
                    .and_then(|d| d.get_scalar("image"))
                    .map(|s| s.as_str().to_string())
            });
        let mut exec = Vec::new();
        if let Some(e) = m.and_then(|m| m.get_node("exec")) {
            match e.as_sequence() {
                Some(s) => {
                    for c in s.iter() {
                        match c.as_scalar() {
                            Some(c) => exec.push((c.as_str().to_string(), line_of(e))),
                            None => err(
                                line_of(e),
                                &format!("{path}.exec"),
                                "a list of commands".into(),
                            ),
                        }
                    }
                }
                None => err(
                    line_of(e),
                    &format!("{path}.exec"),
                    "a list of commands".into(),
                ),
            }
        }
        all.push(ClabNode {
            name: k.as_str().to_string(),
            line,
            bridge,
            image: if bridge { None } else { image },
            cmd: if bridge {
                None
            } else {
                field("cmd")
                    .or_else(|| {
                        kinds
                            .and_then(|k| k.get_mapping(&kind))
                            .and_then(|k| k.get_scalar("cmd"))
                            .map(|s| s.as_str().to_string())
                    })
                    .or_else(|| {
                        defaults
                            .and_then(|d| d.get_scalar("cmd"))
                            .map(|s| s.as_str().to_string())
                    })
            },
            exec,
            ifaces: Vec::new(),
        });
    }

    let mut link_nets: Vec<(String, usize)> = Vec::new();
    if let Some(links) = topo.get_node("links") {
        let Some(seq) = links.as_sequence() else {
            err(line_of(links), "topology.links", "a list of links".into());
            return Err(LabErrors(errs));
        };
        for (i, l) in seq.iter().enumerate() {
            let path = format!("topology.links[{i}]");
            let line = line_of(l);
            let eps = l
                .as_mapping()
                .and_then(|m| m.get_sequence("endpoints"))
                .map(|s| {
                    s.iter()
                        .filter_map(|e| e.as_scalar().map(|x| x.as_str().to_string()))
                        .collect::<Vec<_>>()
                });
            let Some(eps) = eps.filter(|e| e.len() == 2) else {
                err(
                    line,
                    &path,
                    "a link is `endpoints: [\"node:iface\", \"node:iface\"]`".into(),
                );
                continue;
            };
            let mut ends = Vec::new();
            for e in &eps {
                match e.split_once(':') {
                    Some((n, i)) if !n.is_empty() && !i.is_empty() => {
                        match all.iter().position(|x| x.name == n) {
                            Some(k) => ends.push((k, i.to_string())),
                            None => err(line, &path, format!("endpoint {e:?}: no node {n:?}")),
                        }
                    }
                    _ => err(
                        line,
                        &path,
                        format!("endpoint {e:?} is not `node:interface`"),
                    ),
                }
            }
            if ends.len() != 2 {
                continue;
            }
            let (a, b) = (&ends[0], &ends[1]);
            let net = match (all[a.0].bridge, all[b.0].bridge) {
                (true, true) => {
                    err(line, &path, "a link between two bridges: rvswitch joins bridges with trunks (lab `trunks:`)".into());
                    continue;
                }
                (true, false) => all[a.0].name.clone(),
                (false, true) => all[b.0].name.clone(),
                (false, false) => {
                    let n = format!("link{}", i + 1);
                    link_nets.push((n.clone(), line));
                    n
                }
            };
            for (k, ifname) in [a, b] {
                if !all[*k].bridge {
                    all[*k].ifaces.push((ifname.clone(), net.clone(), line));
                }
            }
        }
    }
    if !errs.is_empty() {
        return Err(LabErrors(errs));
    }

    let mut out = Out {
        lines: Vec::new(),
        from: Vec::new(),
    };
    out.push(format!("# {file} (containerlab), as rvswitch reads it"), 1);
    out.push(format!("name: {}", q(&name)), 1);
    out.push("networks:", 1);
    for n in all.iter().filter(|n| n.bridge) {
        out.push(format!("  {}: {{}}", q(&n.name)), n.line);
    }
    for (n, line) in &link_nets {
        out.push(format!("  {}: {{}}", q(n)), *line);
    }
    out.push("nodes:", 1);
    for n in all.iter().filter(|n| !n.bridge) {
        out.push(format!("  {}:", q(&n.name)), n.line);
        if let Some(i) = &n.image {
            out.push(format!("    image: {}", q(i)), n.line);
        }
        if let Some(c) = &n.cmd {
            out.push(format!("    cmd: {}", q(c)), n.line);
        }
        out.push("    interfaces:", n.line);
        for (ifname, net, line) in &n.ifaces {
            out.push(
                format!("      - {{network: {}, name: {}}}", q(net), q(ifname)),
                *line,
            );
        }
        if n.ifaces.is_empty() {
            // A node with no links is still a node (an empty list).
            let last = out.lines.len() - 1;
            out.lines[last] = "    interfaces: []".into();
        }
        if !n.exec.is_empty() {
            out.push("    exec:", n.line);
            for (c, line) in &n.exec {
                out.push(format!("      - {}", q(c)), *line);
            }
        }
    }
    let mut text = out.lines.join("\n");
    text.push('\n');
    Ok(Some((text, out.from)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAB: &str = r#"name: srl
mgmt:
  network: custom
topology:
  defaults:
    kind: linux
  kinds:
    linux:
      image: alpine:3
  nodes:
    a:
      exec:
        - ip addr add 10.0.0.1/24 dev eth1
    b:
      kind: linux
      image: busybox
      cmd: sleep infinity
    c: {}
    br1:
      kind: bridge
  links:
    - endpoints: ["a:eth1", "b:eth1"]
    - endpoints: ["a:eth2", "br1:p1"]
    - endpoints: ["c:eth1", "br1:p2"]
"#;

    #[test]
    fn links_become_networks_and_bridges_become_the_switch() {
        let (text, from) = translate("t.clab.yml", CLAB).unwrap().unwrap();
        assert_eq!(text.lines().count(), from.len());
        let topo = crate::parse("t.clab.yml", &text).unwrap();
        let net_of = |node: &str, ifname: &str| {
            let n = topo.node(node).unwrap();
            n.interfaces
                .iter()
                .find(|i| i.name == ifname)
                .map(|i| i.network.clone())
                .unwrap()
        };
        assert_eq!(net_of("a", "eth1"), "link1");
        assert_eq!(net_of("b", "eth1"), "link1");
        assert_eq!(net_of("a", "eth2"), "br1");
        assert_eq!(net_of("c", "eth1"), "br1");
        assert!(
            topo.node("br1").is_none(),
            "a bridge is a network, not a node"
        );
        assert_eq!(topo.node("a").unwrap().image.as_deref(), Some("alpine:3"));
        assert_eq!(topo.node("b").unwrap().image.as_deref(), Some("busybox"));
        assert_eq!(
            topo.node("b").unwrap().cmd.as_deref(),
            Some("sleep infinity")
        );
        assert_eq!(
            topo.node("a").unwrap().exec,
            ["ip addr add 10.0.0.1/24 dev eth1"]
        );
    }

    /// Found by the lab_yaml fuzz target: a `topology:` line in text that
    /// is not loadable YAML gave an error on line 0.
    #[test]
    fn yaml_that_does_not_load_is_reported_on_its_line() {
        let text =
            "name: q\nnodes:\n  a:\n    interfaces:\ntopology:      - {network: lan}\n  b: {}\n";
        assert!(is_containerlab(text));
        let e = crate::parse("t.yml", text).unwrap_err();
        let lines = text.lines().count() + 1;
        for x in &e.0 {
            assert!((1..=lines).contains(&x.pos.line), "{e}");
        }
    }

    #[test]
    fn errors_name_the_containerlab_line() {
        let bad = CLAB.replace(
            "    - endpoints: [\"c:eth1\", \"br1:p2\"]",
            "    - endpoints: [\"d:eth1\", \"br1:p2\"]",
        );
        let e = crate::parse("t.clab.yml", &bad).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].pos.line, 24, "{e}");
        assert!(e.0[0].message.contains("no node \"d\""), "{e}");
        let bad = CLAB.replace("      kind: bridge", "      kind: srl");
        let e = crate::parse("t.clab.yml", &bad).unwrap_err();
        assert_eq!(e.0[0].pos.line, 20, "{e}");
        // A duplicate interface: found by the lab validation of the
        // rewritten file, reported on the containerlab link's line.
        let bad = CLAB.replace("[\"a:eth2\", \"br1:p1\"]", "[\"a:eth1\", \"br1:p1\"]");
        let e = crate::parse("t.clab.yml", &bad).unwrap_err();
        assert!(
            e.0.iter()
                .any(|x| x.pos.line == 23 && x.message.contains("duplicate interface")),
            "{e}"
        );
    }
}
