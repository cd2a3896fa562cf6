//! Topology file → validated [`Topology`]: a walk over marked-yaml's
//! position-carrying tree (rather than serde), so that every check — a
//! field's type, an unknown field, a dangling reference, an address outside
//! its subnet — reports the line and column of the node it is about, and so
//! that all problems of a file are reported at once.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoadError, LoaderOptions, Node, Span};

use super::*;
use rvs_cnm::prefix::{from_u128, to_u128};

/// Read and validate a topology file.
pub fn parse_file(path: &Path) -> Result<Topology, LabErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        LabErrors(vec![LabError {
            file: file.clone(),
            pos: Pos { line: 0, col: 0 },
            field: String::new(),
            message: format!("cannot read it: {e}"),
        }])
    })?;
    parse(&file, &text)
}

/// Validate a topology given as text; `file` names it in errors. A
/// containerlab topology is rewritten first (`clab.rs`), and errors found
/// in the rewritten text are put back on the lines they came from.
pub fn parse(file: &str, text: &str) -> Result<Topology, LabErrors> {
    if !super::clab::is_containerlab(text) {
        return parse_lab(file, text);
    }
    let Some((lab, from)) = super::clab::translate(file, text)? else {
        // Not loadable YAML: the lab parser says where.
        return parse_lab(file, text);
    };
    parse_lab(file, &lab).map_err(|mut e| {
        for x in &mut e.0 {
            x.pos = Pos {
                line: x
                    .pos
                    .line
                    .checked_sub(1)
                    .and_then(|i| from.get(i))
                    .copied()
                    .unwrap_or(1),
                col: 1,
            };
        }
        e
    })
}

fn parse_lab(file: &str, text: &str) -> Result<Topology, LabErrors> {
    let mut p = P {
        file,
        errs: Vec::new(),
    };
    let opts = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .toplevel_mapping();
    let root = match marked_yaml::parse_yaml_with_options(0, text, opts) {
        Ok(r) => r,
        Err(e) => {
            load_error(&mut p, e);
            return Err(LabErrors(p.errs));
        }
    };
    let topo = p.topology(&root);
    if p.errs.is_empty() {
        Ok(topo.expect("no errors means a topology"))
    } else {
        p.errs.sort_by_key(|e| (e.pos.line, e.pos.col));
        Err(LabErrors(p.errs))
    }
}

fn mark_pos(m: &marked_yaml::Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.column(),
    }
}

fn span_pos(s: &Span) -> Pos {
    s.start().map(mark_pos).unwrap_or_default()
}

fn npos(n: &Node) -> Pos {
    span_pos(n.span())
}

fn load_error(p: &mut P, e: LoadError) {
    let (pos, msg) = match &e {
        LoadError::TopLevelMustBeMapping(m) => (
            mark_pos(m),
            "the file must be a mapping (name:, networks:, nodes:, ...)".to_string(),
        ),
        LoadError::TopLevelMustBeSequence(m) => (mark_pos(m), e.to_string()),
        LoadError::UnexpectedAnchor(m) => (
            mark_pos(m),
            "YAML anchors and aliases are not supported in lab files".to_string(),
        ),
        LoadError::MappingKeyMustBeScalar(m) => (mark_pos(m), "keys must be plain names".into()),
        LoadError::UnexpectedTag(m) => (mark_pos(m), "YAML tags are not supported".into()),
        LoadError::ScanError(m, s) => (mark_pos(m), format!("YAML syntax: {}", s.info())),
        LoadError::DuplicateKey(d) => (
            span_pos(d.key.span()),
            format!(
                "duplicate name `{}` (first defined on line {})",
                d.key.as_str(),
                span_pos(d.prev_key.span()).line
            ),
        ),
    };
    p.err(pos, "", msg);
}

struct P<'a> {
    file: &'a str,
    errs: Vec<LabError>,
}

/// A mapping's entries after the unknown-field check (a YAML null reads as
/// an empty mapping, so `sw:` and `sw: {}` mean the same).
struct Fields<'n> {
    map: Option<&'n MarkedMappingNode>,
    pos: Pos,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.map.and_then(|m| m.get_node(key))
    }
}

fn is_null(n: &Node) -> bool {
    matches!(n, Node::Scalar(s) if s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"))
}

fn kind_of(n: &Node) -> &'static str {
    match n {
        Node::Scalar(_) => "a scalar",
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Whether `s` is a valid lab name (it prefixes namespace and link names).
pub fn lab_name_ok(s: &str) -> bool {
    name_ok(s, 20, false)
}

/// `[A-Za-z0-9][A-Za-z0-9_-]*`, at most `max` characters.
fn name_ok(s: &str, max: usize, dash: bool) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || (dash && c == '-'))
}

impl P<'_> {
    fn err(&mut self, pos: Pos, field: &str, message: impl Into<String>) {
        self.errs.push(LabError {
            file: self.file.to_string(),
            pos,
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn fields<'n>(&mut self, n: &'n Node, path: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        if is_null(n) {
            return Some(Fields {
                map: None,
                pos: npos(n),
            });
        }
        let Some(m) = n.as_mapping() else {
            self.err(
                npos(n),
                path,
                format!("expected a mapping, found {}", kind_of(n)),
            );
            return None;
        };
        for (k, _) in m.iter() {
            if !allowed.contains(&k.as_str()) {
                self.err(
                    span_pos(k.span()),
                    &join(path, k.as_str()),
                    format!("unknown field, expected one of: {}", allowed.join(", ")),
                );
            }
        }
        Some(Fields {
            map: Some(m),
            pos: npos(n),
        })
    }

    fn required<'n>(&mut self, f: &Fields<'n>, key: &str, path: &str) -> Option<&'n Node> {
        let n = f.get(key);
        if n.is_none() {
            self.err(f.pos, &join(path, key), "missing (required)");
        }
        n
    }

    fn string(&mut self, n: &Node, path: &str) -> Option<String> {
        match n {
            Node::Scalar(s) if !is_null(n) => Some(s.as_str().to_string()),
            _ => {
                self.err(
                    npos(n),
                    path,
                    format!("expected a string, found {}", kind_of(n)),
                );
                None
            }
        }
    }

    fn int(&mut self, n: &Node, path: &str, lo: u64, hi: u64, what: &str) -> Option<u64> {
        let s = self.string(n, path)?;
        match s.parse::<u64>() {
            Ok(v) if (lo..=hi).contains(&v) => Some(v),
            _ => {
                self.err(
                    npos(n),
                    path,
                    format!("bad {what} {s:?}: expected a number in {lo}..{hi}"),
                );
                None
            }
        }
    }

    fn vlan(&mut self, n: &Node, path: &str) -> Option<u16> {
        self.int(n, path, 1, 4094, "VLAN id").map(|v| v as u16)
    }

    fn boolean(&mut self, n: &Node, path: &str) -> Option<bool> {
        match n.as_scalar().and_then(|s| s.as_bool()) {
            Some(b) => Some(b),
            None => {
                self.err(npos(n), path, "expected true or false");
                None
            }
        }
    }

    fn name(&mut self, k: &MarkedScalarNode, path: &str, what: &str) -> Option<String> {
        let s = k.as_str();
        if name_ok(s, 32, true) {
            Some(s.to_string())
        } else {
            self.err(
                span_pos(k.span()),
                path,
                format!("bad {what} name {s:?}: letters, digits, '_' and '-', starting with a letter or digit, at most 32"),
            );
            None
        }
    }

    fn prefix(&mut self, n: &Node, path: &str, v4: bool) -> Option<Cidr> {
        let s = self.string(n, path)?;
        match Cidr::parse_prefix(&s) {
            Ok(c) if c.is_v4() == v4 => Some(c),
            Ok(_) => {
                self.err(
                    npos(n),
                    path,
                    format!("{s} is not an {} prefix", if v4 { "IPv4" } else { "IPv6" }),
                );
                None
            }
            Err(e) => {
                self.err(npos(n), path, e.to_string());
                None
            }
        }
    }

    fn list<'n>(&mut self, n: &'n Node, path: &str) -> Option<&'n [Node]> {
        if is_null(n) {
            return Some(&[]);
        }
        match n.as_sequence() {
            Some(s) => Some(s.as_slice()),
            None => {
                self.err(
                    npos(n),
                    path,
                    format!("expected a list, found {}", kind_of(n)),
                );
                None
            }
        }
    }

    fn topology(&mut self, root: &Node) -> Option<Topology> {
        let top = self.fields(
            root,
            "",
            &[
                "name", "switches", "networks", "nodes", "trunks", "expect", "store", "services",
            ],
        )?;
        let name = self.required(&top, "name", "").and_then(|n| {
            let s = self.string(n, "name")?;
            if lab_name_ok(&s) {
                Some(s)
            } else {
                self.err(npos(n), "name", format!("bad lab name {s:?}: letters, digits and '_', starting with a letter or digit, at most 20 (it prefixes namespace and link names)"));
                None
            }
        });
        let lab = name.clone().unwrap_or_default();
        let switches = self.switches(top.get("switches"));
        let mut switches = switches;
        let networks = match self.required(&top, "networks", "") {
            Some(n) => self.networks(n, &switches),
            None => Vec::new(),
        };
        self.switch_routes(&mut switches, &networks);
        let mut nodes = match self.required(&top, "nodes", "") {
            Some(n) => self.nodes(n, &lab, &networks),
            None => Vec::new(),
        };
        for s in &switches {
            if let Some(h) = &s.host
                && !nodes.iter().any(|n| &n.name == h)
            {
                self.err(
                    s.pos,
                    &format!("switches.{}.host", s.name),
                    format!("no node named {h:?}"),
                );
            }
        }
        let mut networks = networks;
        self.addresses(&mut nodes, &mut networks);
        self.vteps(&mut networks, &switches, &nodes);
        for n in &nodes {
            self.routes_on_link(n);
        }
        let trunks = match top.get("trunks") {
            Some(t) => self.trunks(t, &lab, &switches, &networks),
            None => Vec::new(),
        };
        self.loops(&switches, &trunks);
        self.link_names(&nodes, &trunks);
        let probes = match top.get("expect") {
            Some(e) => self.expect(e, &nodes, &networks),
            None => Vec::new(),
        };
        let store = top
            .get("store")
            .and_then(|x| self.store(x, &nodes, &networks));
        if store.is_none()
            && let Some(g) = networks.iter().find(|n| n.global)
        {
            self.err(
                g.pos,
                &format!("networks.{}.scope", g.name),
                "a global network needs the lab's `store:` (the etcd members it runs)",
            );
        }
        let services = match top.get("services") {
            Some(s) => self.services(s, &networks, &nodes),
            None => Vec::new(),
        };
        Some(Topology {
            name: name?,
            switches,
            networks,
            nodes,
            trunks,
            probes,
            store,
            services,
        })
    }

    /// `store: {members: [n1, n2, n3]}`: nodes (on no global network)
    /// whose first IPv4 address an etcd member listens on.
    fn store(&mut self, n: &Node, nodes: &[NodeDef], networks: &[NetworkDef]) -> Option<StoreDef> {
        let f = self.fields(n, "store", &["members"])?;
        let pos = f.pos;
        let l = self.required(&f, "members", "store")?;
        let mut members = Vec::new();
        for (i, item) in self
            .list(l, "store.members")
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let p = format!("store.members[{i}]");
            let Some(name) = self.string(item, &p) else {
                continue;
            };
            let Some(node) = nodes.iter().find(|x| x.name == name) else {
                self.err(npos(item), &p, format!("no node named {name:?}"));
                continue;
            };
            if members.iter().any(|(m, _)| *m == name) {
                self.err(npos(item), &p, format!("{name} is listed twice"));
                continue;
            }
            let on_global = node
                .interfaces
                .iter()
                .any(|i| networks.iter().any(|x| x.global && x.name == i.network));
            if on_global {
                self.err(
                    npos(item),
                    &p,
                    format!("{name} is on a global network: a member must be reachable before the cluster is"),
                );
                continue;
            }
            let addr = node
                .interfaces
                .iter()
                .filter_map(|i| i.address)
                .map(|c| c.addr)
                .next();
            match addr {
                Some(a) => members.push((name, a)),
                None => self.err(
                    npos(item),
                    &p,
                    format!("node {name} has no IPv4 address for its etcd member to listen on"),
                ),
            }
        }
        if members.len() % 2 == 0 {
            self.err(
                pos,
                "store.members",
                format!(
                    "{} members: etcd needs an odd number (1, 3, 5) to keep a quorum",
                    members.len()
                ),
            );
        }
        Some(StoreDef { pos, members })
    }

    fn switches(&mut self, n: Option<&Node>) -> Vec<SwitchDef> {
        let Some(n) = n else {
            return vec![SwitchDef {
                name: "sw".into(),
                pos: Pos::default(),
                host: None,
                rstp: false,
                workers: 1,
                routes: Vec::new(),
            }];
        };
        let mut out = Vec::new();
        for (k, v) in self.named(n, "switches") {
            let path = format!("switches.{}", k.as_str());
            let Some(name) = self.name(k, &path, "switch") else {
                continue;
            };
            let Some(f) = self.fields(v, &path, &["host", "rstp", "workers", "routes"]) else {
                continue;
            };
            let host = f
                .get("host")
                .and_then(|h| self.string(h, &join(&path, "host")));
            let rstp = f
                .get("rstp")
                .and_then(|r| self.boolean(r, &join(&path, "rstp")))
                .unwrap_or(false);
            let workers = f
                .get("workers")
                .and_then(|w| self.int(w, &join(&path, "workers"), 1, 64, "worker count"))
                .unwrap_or(1) as u16;
            let routes = match f.get("routes") {
                Some(r) => self
                    .routes(r, &join(&path, "routes"))
                    .into_iter()
                    .map(|r| SwitchRoute {
                        pos: r.pos,
                        to: r.to,
                        via: r.via,
                        network: String::new(),
                    })
                    .collect(),
                None => Vec::new(),
            };
            out.push(SwitchDef {
                name,
                pos: span_pos(k.span()),
                host,
                rstp,
                workers,
                routes,
            });
        }
        if out.is_empty() {
            self.err(
                npos(n),
                "switches",
                "no switches: leave the field out for the default switch `sw`",
            );
        }
        out
    }

    /// Entries of a name → definition mapping.
    fn named<'n>(&mut self, n: &'n Node, path: &str) -> Vec<(&'n MarkedScalarNode, &'n Node)> {
        if is_null(n) {
            return Vec::new();
        }
        match n.as_mapping() {
            Some(m) => m.iter().collect(),
            None => {
                self.err(
                    npos(n),
                    path,
                    format!("expected a mapping of names, found {}", kind_of(n)),
                );
                Vec::new()
            }
        }
    }

    /// The switch a field names, or the only switch when it is left out.
    fn switch_ref(
        &mut self,
        n: Option<&Node>,
        path: &str,
        at: Pos,
        switches: &[SwitchDef],
    ) -> Option<String> {
        match n {
            Some(n) => {
                let s = self.string(n, path)?;
                if switches.iter().any(|w| w.name == s) {
                    Some(s)
                } else {
                    self.err(npos(n), path, format!("no switch named {s:?}"));
                    None
                }
            }
            None if switches.len() == 1 => Some(switches[0].name.clone()),
            None => {
                self.err(at, path, "missing: the lab has several switches, say which");
                None
            }
        }
    }

    /// Each switch of a VXLAN network runs in a node (`host`) whose first
    /// address (IPv4 if it has one) is the switch's tunnel endpoint.
    fn vteps(&mut self, networks: &mut [NetworkDef], switches: &[SwitchDef], nodes: &[NodeDef]) {
        for net in networks.iter_mut().filter(|n| n.kind == NetKind::Vxlan) {
            let mut vteps = Vec::new();
            for sw in &net.switches {
                let Some(host) = switches
                    .iter()
                    .find(|s| &s.name == sw)
                    .and_then(|s| s.host.clone())
                else {
                    self.err(
                        net.pos,
                        &format!("networks.{}.switches", net.name),
                        format!("switch {sw} has no `host`: a VXLAN tunnel endpoint runs in a node and uses its address"),
                    );
                    continue;
                };
                let Some(node) = nodes.iter().find(|n| n.name == host) else {
                    continue; // reported at the switch
                };
                let addrs: Vec<IpAddr> = node
                    .interfaces
                    .iter()
                    .flat_map(|i| i.addresses())
                    .map(|c| c.addr)
                    .collect();
                match addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()) {
                    Some(a) => vteps.push((sw.clone(), *a)),
                    None => self.err(
                        net.pos,
                        &format!("networks.{}.switches", net.name),
                        format!("node {host} (host of switch {sw}) has no address to be a VXLAN tunnel endpoint"),
                    ),
                }
            }
            if vteps
                .iter()
                .any(|(_, a)| a.is_ipv4() != vteps[0].1.is_ipv4())
            {
                self.err(
                    net.pos,
                    &format!("networks.{}.switches", net.name),
                    "its tunnel endpoints mix IPv4 and IPv6 addresses",
                );
            }
            net.vteps = vteps;
        }
    }

    /// A switch route's next hop must be on one of its gateway networks.
    fn switch_routes(&mut self, switches: &mut [SwitchDef], networks: &[NetworkDef]) {
        for sw in switches.iter_mut() {
            let name = sw.name.clone();
            for r in sw.routes.iter_mut() {
                let on = networks.iter().find(|n| {
                    n.gateway
                        && n.switches.contains(&name)
                        && [n.subnet, n.ipv6]
                            .iter()
                            .flatten()
                            .any(|s| s.contains(r.via))
                });
                match on {
                    Some(n) => r.network = n.name.clone(),
                    None => self.err(
                        r.pos,
                        &format!("switches.{name}.routes"),
                        format!(
                            "next hop {} is not on a network with `gateway: true` on switch {name}",
                            r.via
                        ),
                    ),
                }
            }
        }
    }

    fn networks(&mut self, n: &Node, switches: &[SwitchDef]) -> Vec<NetworkDef> {
        const FIELDS: &[&str] = &[
            "kind", "switch", "switches", "domain", "vlan", "subnet", "ipv6", "mtu", "gateway",
            "vni", "scope", "parent",
        ];
        let mut out: Vec<NetworkDef> = Vec::new();
        for (k, v) in self.named(n, "networks") {
            let path = format!("networks.{}", k.as_str());
            let Some(name) = self.name(k, &path, "network") else {
                continue;
            };
            let pos = span_pos(k.span());
            let Some(f) = self.fields(v, &path, FIELDS) else {
                continue;
            };
            let global = match f.get("scope") {
                None => false,
                Some(x) => match self.string(x, &join(&path, "scope")).as_deref() {
                    Some("local") => false,
                    Some("global") => true,
                    Some(other) => {
                        self.err(
                            npos(x),
                            &join(&path, "scope"),
                            format!("unknown scope {other:?}: expected local or global"),
                        );
                        continue;
                    }
                    None => continue,
                },
            };
            let kind = match f.get("kind") {
                // A global network is a VXLAN network.
                None if global => NetKind::Vxlan,
                None => NetKind::Bridge,
                Some(kn) => match self.string(kn, &join(&path, "kind")).as_deref() {
                    Some("bridge") => NetKind::Bridge,
                    Some("vxlan") => NetKind::Vxlan,
                    Some(other) => {
                        self.err(
                            npos(kn),
                            &join(&path, "kind"),
                            format!("unknown network kind {other:?}: expected bridge or vxlan"),
                        );
                        continue;
                    }
                    None => continue,
                },
            };
            let switches_of = match kind {
                NetKind::Bridge => {
                    if let Some(s) = f.get("switches") {
                        self.err(
                            npos(s),
                            &join(&path, "switches"),
                            "a bridge network lives on one switch: use `switch`",
                        );
                    }
                    self.switch_ref(f.get("switch"), &join(&path, "switch"), pos, switches)
                        .map(|s| vec![s])
                        .unwrap_or_default()
                }
                NetKind::Vxlan => {
                    if let Some(s) = f.get("switch") {
                        self.err(
                            npos(s),
                            &join(&path, "switch"),
                            "a vxlan network spans switches: use `switches: [a, b]`",
                        );
                    }
                    let mut v = Vec::new();
                    match f.get("switches") {
                        Some(l) => {
                            let p = join(&path, "switches");
                            for item in self.list(l, &p).unwrap_or(&[]) {
                                if let Some(s) = self.switch_ref(Some(item), &p, pos, switches) {
                                    v.push(s);
                                }
                            }
                        }
                        None => self.err(
                            pos,
                            &join(&path, "switches"),
                            "missing (required for kind vxlan)",
                        ),
                    }
                    v
                }
            };
            let vni = f
                .get("vni")
                .and_then(|x| self.int(x, &join(&path, "vni"), 1, 16_777_215, "VNI"))
                .map(|v| v as u32);
            if global {
                if kind != NetKind::Vxlan {
                    self.err(
                        pos,
                        &join(&path, "kind"),
                        "a global network is a vxlan network",
                    );
                }
                for k in ["domain", "vlan", "gateway"] {
                    if let Some(x) = f.get(k) {
                        self.err(
                            npos(x),
                            &join(&path, k),
                            format!("`{k}` is not for global networks (their domain is the daemon's, and they have no gateway yet)"),
                        );
                    }
                }
                if f.get("subnet").is_none() {
                    self.err(
                        pos,
                        &join(&path, "subnet"),
                        "missing (required for scope global: the lab gives the nodes their addresses)",
                    );
                }
            }
            if kind == NetKind::Vxlan && !global && vni.is_none() && f.get("vni").is_none() {
                self.err(
                    pos,
                    &join(&path, "vni"),
                    "missing (required for kind vxlan)",
                );
            }
            if kind == NetKind::Bridge && f.get("vni").is_some() {
                self.err(
                    npos(f.get("vni").unwrap()),
                    &join(&path, "vni"),
                    "`vni` is for kind vxlan",
                );
            }
            let domain = match f.get("domain") {
                Some(d) => match self.string(d, &join(&path, "domain")) {
                    Some(s)
                        if !s.is_empty()
                            && s.len() <= 64
                            && s.chars()
                                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) =>
                    {
                        s
                    }
                    Some(s) => {
                        self.err(npos(d), &join(&path, "domain"), format!("bad domain name {s:?}: letters, digits, '.', '_' and '-', at most 64"));
                        continue;
                    }
                    None => continue,
                },
                None => name.clone(),
            };
            let parent = match f.get("parent") {
                Some(x) => match self.string(x, &join(&path, "parent")) {
                    Some(t) => match t.parse::<rvs_cnm::Parent>() {
                        Ok(p) => Some((p, npos(x))),
                        Err(e) => {
                            self.err(npos(x), &join(&path, "parent"), e.to_string());
                            continue;
                        }
                    },
                    None => continue,
                },
                None => None,
            };
            let vlan = match f.get("vlan") {
                Some(x) => match self.vlan(x, &join(&path, "vlan")) {
                    Some(v) => {
                        if let Some((p, _)) = &parent
                            && p.vid.is_some_and(|vid| vid != v)
                        {
                            self.err(
                                npos(x),
                                &join(&path, "vlan"),
                                format!(
                                    "parent {p} carries VLAN {}: the switch does not translate \
                                     VLAN ids (leave `vlan` out)",
                                    p.vid.unwrap_or(0)
                                ),
                            );
                        }
                        v
                    }
                    None => continue,
                },
                // `parent: eth0.10` puts the network in VLAN 10.
                None => parent.as_ref().and_then(|(p, _)| p.vid).unwrap_or(1),
            };
            if let Some((p, at)) = &parent
                && kind == NetKind::Vxlan
            {
                self.err(
                    *at,
                    &join(&path, "parent"),
                    format!("parent {p}: a vxlan network cannot also be bridged to a host NIC"),
                );
            }
            let subnet = f
                .get("subnet")
                .and_then(|x| self.prefix(x, &join(&path, "subnet"), true));
            let ipv6 = f
                .get("ipv6")
                .and_then(|x| self.prefix(x, &join(&path, "ipv6"), false));
            let mtu = f
                .get("mtu")
                .and_then(|x| self.int(x, &join(&path, "mtu"), 68, 65535, "MTU"))
                .map(|v| v as u32);
            let gateway = f
                .get("gateway")
                .and_then(|x| self.boolean(x, &join(&path, "gateway")))
                .unwrap_or(false);
            if gateway && subnet.is_none() && ipv6.is_none() {
                self.err(
                    pos,
                    &join(&path, "gateway"),
                    "a gateway needs a `subnet` or `ipv6`",
                );
            }
            if gateway && mtu.is_some_and(|m| m > 9216) {
                self.err(
                    pos,
                    &join(&path, "mtu"),
                    "a gateway routes packets of at most 9216 bytes: lower the MTU",
                );
            }
            for other in &out {
                if let (Some((p, at)), Some(o)) = (&parent, &other.parent)
                    && p.iface == o.iface
                    && other.switches.iter().any(|s| switches_of.contains(s))
                {
                    // One uplink port per interface: one domain, and each
                    // VLAN on the wire once (untagged is the native VLAN).
                    let wire = |q: &rvs_cnm::Parent, v: u16| q.vid.unwrap_or(v);
                    if other.domain != domain {
                        self.err(
                            *at,
                            &join(&path, "parent"),
                            format!(
                                "{} is network {}'s parent in domain {}: networks on one \
                                 interface share a bridge domain (set `domain: {}`)",
                                p.iface, other.name, other.domain, other.domain
                            ),
                        );
                    } else if (p.vid.is_none() && o.vid.is_none())
                        || wire(p, vlan) == wire(o, other.vlan)
                    {
                        self.err(
                            *at,
                            &join(&path, "parent"),
                            format!(
                                "{} already carries VLAN {} for network {}",
                                p.iface,
                                wire(o, other.vlan),
                                other.name
                            ),
                        );
                    }
                }
                if vni.is_some() && other.vni == vni {
                    self.err(
                        pos,
                        &join(&path, "vni"),
                        format!(
                            "VNI {} is network {}'s already",
                            vni.unwrap_or(0),
                            other.name
                        ),
                    );
                }
                if gateway
                    && other.gateway
                    && other.domain == domain
                    && other.switches.iter().any(|s| switches_of.contains(s))
                {
                    self.err(
                        pos,
                        &join(&path, "gateway"),
                        format!(
                            "domain {domain} already has a gateway (network {}): one per domain",
                            other.name
                        ),
                    );
                }
                if other.domain == domain
                    && other.vlan == vlan
                    && other.switches.iter().any(|s| switches_of.contains(s))
                {
                    self.err(
                        pos,
                        &path,
                        format!(
                            "same segment as network {} (domain {domain}, VLAN {vlan}): give it another `vlan` or `domain`",
                            other.name
                        ),
                    );
                }
                for (mine, theirs) in [(subnet, other.subnet), (ipv6, other.ipv6)] {
                    if let (Some(a), Some(b)) = (mine, theirs)
                        && a.overlaps(&b)
                        && a != b
                    {
                        self.err(
                            pos,
                            &path,
                            format!("subnet {a} overlaps {b} of network {}: use the same subnet (they then share one address pool) or disjoint ones", other.name),
                        );
                    }
                }
            }
            out.push(NetworkDef {
                name,
                pos,
                kind,
                switches: switches_of,
                domain,
                vlan,
                subnet,
                ipv6,
                mtu,
                gateway,
                vni,
                vteps: Vec::new(),
                dns_only: Vec::new(),
                global,
                parent: parent.map(|(p, _)| p),
            });
        }
        out
    }

    /// `services:`: name → network, vip (one address or a list, at most
    /// one per family; none: DNS round robin), ports (`80/tcp`,
    /// `53:5353/udp`), backends (names of nodes or their aliases on that
    /// network), health_check (a port).
    fn services(
        &mut self,
        n: &Node,
        networks: &[NetworkDef],
        nodes: &[NodeDef],
    ) -> Vec<ServiceDef> {
        let mut out: Vec<ServiceDef> = Vec::new();
        for (k, v) in self.named(n, "services") {
            let path = format!("services.{}", k.as_str());
            let name = k.as_str().to_string();
            if let Err(e) = rvs_dns::check_name(&name) {
                self.err(span_pos(k.span()), &path, e);
                continue;
            }
            let Some(f) = self.fields(
                v,
                &path,
                &["network", "vip", "ports", "backends", "health_check"],
            ) else {
                continue;
            };
            let network = self
                .required(&f, "network", &path)
                .and_then(|x| self.string(x, &join(&path, "network")));
            let net = network
                .as_deref()
                .and_then(|nw| networks.iter().find(|x| x.name == nw));
            if let (Some(nw), None) = (&network, net) {
                self.err(
                    f.pos,
                    &join(&path, "network"),
                    format!("no network named {nw:?}"),
                );
            }
            let mut vips: Vec<IpAddr> = Vec::new();
            if let Some(x) = f.get("vip") {
                let vp = join(&path, "vip");
                let items: Vec<&Node> = match x.as_sequence() {
                    Some(_) => self.list(x, &vp).unwrap_or(&[]).iter().collect(),
                    None => vec![x],
                };
                for item in items {
                    let Some(s) = self.string(item, &vp) else {
                        continue;
                    };
                    match s.parse::<IpAddr>() {
                        Ok(a) if vips.iter().any(|b| b.is_ipv4() == a.is_ipv4()) => {
                            self.err(npos(item), &vp, "at most one VIP of each family");
                        }
                        Ok(a) => vips.push(a),
                        Err(_) => self.err(npos(item), &vp, format!("{s:?} is not an address")),
                    }
                }
            }
            if let Some(net) = net {
                for a in &vips {
                    let inside = match (a, net.subnet, net.ipv6) {
                        (IpAddr::V4(_), Some(c), _) | (IpAddr::V6(_), _, Some(c)) => c.contains(*a),
                        _ => false,
                    };
                    if !inside || !net.gateway {
                        self.err(
                            f.pos,
                            &join(&path, "vip"),
                            format!(
                                "VIP {a} is not in a subnet of network {} with a gateway",
                                net.name
                            ),
                        );
                    }
                }
            }
            let mut ports = Vec::new();
            if let Some(x) = f.get("ports") {
                let pp = join(&path, "ports");
                for (i, item) in self.list(x, &pp).unwrap_or(&[]).iter().enumerate() {
                    let ip = format!("{pp}[{i}]");
                    let Some(s) = self.string(item, &ip) else {
                        continue;
                    };
                    match service_port(&s) {
                        Some(p) => ports.push(p),
                        None => self.err(
                            npos(item),
                            &ip,
                            format!("{s:?} is not PORT/PROTO or PORT:TARGET/PROTO (tcp or udp)"),
                        ),
                    }
                }
            }
            if vips.is_empty() != ports.is_empty() {
                self.err(
                    f.pos,
                    &path,
                    "a service has both vip and ports (balanced), or neither (DNS round robin)",
                );
            }
            let mut backends: Vec<String> = Vec::new();
            if let Some(x) = self.required(&f, "backends", &path) {
                let bp = join(&path, "backends");
                for (i, item) in self.list(x, &bp).unwrap_or(&[]).iter().enumerate() {
                    let ip = format!("{bp}[{i}]");
                    let Some(s) = self.string(item, &ip) else {
                        continue;
                    };
                    let on_net = |nd: &NodeDef| {
                        (nd.name == s || nd.aliases.contains(&s))
                            && nd
                                .interfaces
                                .iter()
                                .any(|i| Some(&i.network) == network.as_ref())
                    };
                    if !nodes.iter().any(on_net) {
                        self.err(
                            npos(item),
                            &ip,
                            format!("no node or alias {s:?} on the service's network"),
                        );
                    } else if backends.contains(&s) {
                        self.err(npos(item), &ip, format!("backend {s:?} is given twice"));
                    } else {
                        backends.push(s);
                    }
                }
                if backends.is_empty() {
                    self.err(npos(x), &bp, "a service needs at least one backend");
                }
            }
            let health_check = f.get("health_check").and_then(|x| {
                self.int(x, &join(&path, "health_check"), 1, 65535, "port")
                    .map(|p| p as u16)
            });
            if health_check.is_some() && vips.is_empty() {
                self.err(
                    f.pos,
                    &join(&path, "health_check"),
                    "only a service with a VIP is checked",
                );
            }
            if let Some(prev) = out
                .iter()
                .find(|s| Some(&s.network) == network.as_ref() && s.name == name)
            {
                self.err(
                    span_pos(k.span()),
                    &path,
                    format!("service {} is given twice (line {})", name, prev.pos.line),
                );
                continue;
            }
            let Some(network) = network else { continue };
            out.push(ServiceDef {
                name,
                pos: span_pos(k.span()),
                network,
                vips,
                ports,
                backends,
                health_check,
            });
        }
        out
    }

    fn nodes(&mut self, n: &Node, lab: &str, networks: &[NetworkDef]) -> Vec<NodeDef> {
        let mut out = Vec::new();
        for (k, v) in self.named(n, "nodes") {
            let path = format!("nodes.{}", k.as_str());
            let Some(name) = self.name(k, &path, "node") else {
                continue;
            };
            let Some(f) = self.fields(
                v,
                &path,
                &[
                    "interfaces",
                    "routes",
                    "sysctls",
                    "exec",
                    "aliases",
                    "image",
                    "cmd",
                ],
            ) else {
                continue;
            };
            let mut interfaces: Vec<InterfaceDef> = Vec::new();
            if let Some(l) = self.required(&f, "interfaces", &path) {
                let ipath = join(&path, "interfaces");
                for (i, item) in self.list(l, &ipath).unwrap_or(&[]).iter().enumerate() {
                    let p = format!("{ipath}[{i}]");
                    if let Some(iface) = self.interface(item, &p, i, lab, &name, networks) {
                        if let Some(prev) = interfaces.iter().find(|x| x.name == iface.name) {
                            self.err(
                                iface.pos,
                                &join(&p, "name"),
                                format!(
                                    "duplicate interface name {} (first on line {})",
                                    iface.name, prev.pos.line
                                ),
                            );
                        }
                        interfaces.push(iface);
                    }
                }
            }
            let routes = match f.get("routes") {
                Some(r) => self.routes(r, &join(&path, "routes")),
                None => Vec::new(),
            };
            let mut sysctls = Vec::new();
            if let Some(s) = f.get("sysctls") {
                let sp = join(&path, "sysctls");
                for (k, v) in self.named(s, &sp) {
                    let key = k.as_str();
                    let kp = format!("{sp}.{key}");
                    let ok = key.starts_with("net.")
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                        && !key.contains("..");
                    if !ok {
                        self.err(
                            span_pos(k.span()),
                            &kp,
                            "only net.* sysctls are per namespace (like net.ipv4.ip_forward)",
                        );
                        continue;
                    }
                    if let Some(val) = self.string(v, &kp) {
                        sysctls.push((key.to_string(), val));
                    }
                }
            }
            let mut exec = Vec::new();
            if let Some(e) = f.get("exec") {
                let ep = join(&path, "exec");
                for (i, c) in self.list(e, &ep).unwrap_or(&[]).iter().enumerate() {
                    if let Some(s) = self.string(c, &format!("{ep}[{i}]")) {
                        exec.push(s);
                    }
                }
            }
            let mut aliases: Vec<String> = Vec::new();
            if let Some(a) = f.get("aliases") {
                let ap = join(&path, "aliases");
                for (i, x) in self.list(a, &ap).unwrap_or(&[]).iter().enumerate() {
                    let xp = format!("{ap}[{i}]");
                    let Some(s) = self.string(x, &xp) else {
                        continue;
                    };
                    if let Err(e) = rvs_dns::check_name(&s) {
                        self.err(npos(x), &xp, e);
                    } else if aliases.contains(&s) || s == name {
                        self.err(npos(x), &xp, format!("alias {s:?} is given twice"));
                    } else {
                        aliases.push(s);
                    }
                }
            }
            let image = f.get("image").and_then(|x| {
                let ip = join(&path, "image");
                let s = self.string(x, &ip)?;
                if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    self.err(npos(x), &ip, format!("bad image reference {s:?}"));
                    return None;
                }
                Some(s)
            });
            let cmd = f.get("cmd").and_then(|x| {
                let cp = join(&path, "cmd");
                let s = self.string(x, &cp)?;
                if image.is_none() {
                    self.err(
                        npos(x),
                        &cp,
                        "`cmd` is a container node's command: it needs `image`",
                    );
                }
                Some(s)
            });
            out.push(NodeDef {
                netns: netns_name(lab, &name),
                name,
                pos: span_pos(k.span()),
                interfaces,
                routes,
                sysctls,
                exec,
                aliases,
                image,
                cmd,
            });
        }
        out
    }

    fn interface(
        &mut self,
        n: &Node,
        path: &str,
        index: usize,
        lab: &str,
        node: &str,
        networks: &[NetworkDef],
    ) -> Option<InterfaceDef> {
        const FIELDS: &[&str] = &[
            "network", "name", "address", "ipv6", "mac", "mtu", "port", "switch", "impair",
        ];
        let f = self.fields(n, path, FIELDS)?;
        let pos = f.pos;
        let netn = self.required(&f, "network", path)?;
        let netname = self.string(netn, &join(path, "network"))?;
        let Some(net) = networks.iter().find(|x| x.name == netname) else {
            self.err(
                npos(netn),
                &join(path, "network"),
                format!("no network named {netname:?}"),
            );
            return None;
        };
        let name = match f.get("name") {
            Some(x) => {
                let s = self.string(x, &join(path, "name"))?;
                let ok = !s.is_empty()
                    && s.len() <= 15
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if !ok {
                    self.err(
                        npos(x),
                        &join(path, "name"),
                        format!(
                            "bad interface name {s:?}: at most 15 letters, digits, '.', '_' or '-'"
                        ),
                    );
                    return None;
                }
                s
            }
            None => format!("eth{index}"),
        };
        let switch = match f.get("switch") {
            Some(x) => {
                let s = self.string(x, &join(path, "switch"))?;
                if !net.switches.contains(&s) {
                    self.err(
                        npos(x),
                        &join(path, "switch"),
                        format!(
                            "network {} is not on a switch named {s:?} (it is on {})",
                            net.name,
                            net.switches.join(", ")
                        ),
                    );
                    return None;
                }
                s
            }
            None => net.switches.first()?.clone(),
        };
        let port = match f.get("port") {
            // The fastest endpoint (TSO super-frames cross the switch whole);
            // see docs/benchmarks.md, "Docker and lab endpoints".
            None => PortKind::Tap,
            Some(x) => match self.string(x, &join(path, "port"))?.as_str() {
                "afxdp" => PortKind::Afxdp,
                "afpacket" => PortKind::Afpacket,
                "tap" => PortKind::Tap,
                other => {
                    self.err(
                        npos(x),
                        &join(path, "port"),
                        format!("unknown port kind {other:?}: expected afxdp, afpacket or tap"),
                    );
                    return None;
                }
            },
        };
        if net.global
            && port != PortKind::Tap
            && let Some(x) = f.get("port")
        {
            self.err(
                npos(x),
                &join(path, "port"),
                "an interface on a global network is the TAP the daemon's CNM driver makes",
            );
            return None;
        }
        let address = match f.get("address") {
            Some(x) => Some(self.iface_addr(x, &join(path, "address"), net, true)?),
            None => None,
        };
        let ipv6 = match f.get("ipv6") {
            Some(x) => Some(self.iface_addr(x, &join(path, "ipv6"), net, false)?),
            None => None,
        };
        let mac = match f.get("mac") {
            Some(x) => {
                let s = self.string(x, &join(path, "mac"))?;
                match parse_mac(&s) {
                    Some(m) if m[0] & 1 == 0 && m != [0; 6] => m,
                    Some(_) => {
                        self.err(
                            npos(x),
                            &join(path, "mac"),
                            format!("{s} is not a unicast MAC"),
                        );
                        return None;
                    }
                    None => {
                        self.err(
                            npos(x),
                            &join(path, "mac"),
                            format!("bad MAC {s:?}: expected six hex bytes like 02:00:00:00:00:01"),
                        );
                        return None;
                    }
                }
            }
            None => derived_mac(lab, node, &name),
        };
        let mtu = match f.get("mtu") {
            Some(x) => Some(self.int(x, &join(path, "mtu"), 68, 65535, "MTU")? as u32),
            None => net.mtu,
        };
        let impair = match f.get("impair") {
            Some(x) => Some(self.impair(x, &join(path, "impair"))?),
            None => None,
        };
        Some(InterfaceDef {
            pos,
            link: link_name(lab, node, index),
            name,
            network: net.name.clone(),
            switch,
            port,
            address,
            ipv6,
            mac,
            mtu,
            impair,
        })
    }

    /// An interface address: `A` or `A/LEN`, of the field's family, inside
    /// the network's subnet when it has one (and then with its length).
    fn iface_addr(&mut self, n: &Node, path: &str, net: &NetworkDef, v4: bool) -> Option<Cidr> {
        let s = self.string(n, path)?;
        let fam = if v4 { "IPv4" } else { "IPv6" };
        let subnet = if v4 { net.subnet } else { net.ipv6 };
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s.as_str(), None),
        };
        let Ok(ip) = a.parse::<IpAddr>() else {
            self.err(
                npos(n),
                path,
                format!(
                    "bad address {s:?}: expected an {fam} address like {}",
                    if v4 { "10.0.0.1/24" } else { "fd00::1/64" }
                ),
            );
            return None;
        };
        if ip.is_ipv4() != v4 {
            let hint = if v4 {
                "use `ipv6` for IPv6 addresses"
            } else {
                "use `address` for IPv4 addresses"
            };
            self.err(
                npos(n),
                path,
                format!("{s} is not an {fam} address ({hint})"),
            );
            return None;
        }
        let len = match (len, subnet) {
            (Some(l), _) => match l.parse::<u8>() {
                Ok(l) if l <= rvs_cnm::prefix::max_len(ip) => l,
                _ => {
                    self.err(npos(n), path, format!("bad prefix length in {s:?}"));
                    return None;
                }
            },
            (None, Some(sub)) => sub.len,
            (None, None) => {
                self.err(
                    npos(n),
                    path,
                    format!(
                        "{s} needs a prefix length: network {} has no subnet to take it from",
                        net.name
                    ),
                );
                return None;
            }
        };
        let c = Cidr { addr: ip, len };
        if let Some(sub) = subnet {
            if !sub.contains(ip) {
                self.err(
                    npos(n),
                    path,
                    format!("{ip} is outside the subnet {sub} of network {}", net.name),
                );
                return None;
            }
            if len != sub.len {
                self.err(
                    npos(n),
                    path,
                    format!(
                        "{s}: prefix length /{len} differs from the subnet {sub} of network {}",
                        net.name
                    ),
                );
                return None;
            }
            let (lo, hi) = sub.range();
            let v = to_u128(ip);
            if v == lo || (v4 && v == hi && sub.len < 31) {
                let what = if v == lo { "network" } else { "broadcast" };
                self.err(
                    npos(n),
                    path,
                    format!("{ip} is the {what} address of {sub}"),
                );
                return None;
            }
            if net.gateway_addrs().iter().any(|g| g.addr == ip) {
                self.err(
                    npos(n),
                    path,
                    format!("{ip} is the gateway address of network {}", net.name),
                );
                return None;
            }
        }
        Some(c)
    }

    fn impair(&mut self, n: &Node, path: &str) -> Option<Impair> {
        let f = self.fields(
            n,
            path,
            &["delay", "jitter", "loss", "duplicate", "rate", "seed"],
        )?;
        let mut out = Impair::default();
        let ms = |s: &str| -> Option<u32> {
            if let Some(v) = s.strip_suffix("ms") {
                v.trim().parse().ok()
            } else if let Some(v) = s.strip_suffix('s') {
                v.trim()
                    .parse::<u32>()
                    .ok()
                    .and_then(|v| v.checked_mul(1000))
            } else {
                None
            }
        };
        for key in ["delay", "jitter"] {
            if let Some(x) = f.get(key) {
                let p = join(path, key);
                let s = self.string(x, &p)?;
                match ms(&s).filter(|v| *v <= 60_000) {
                    Some(v) if key == "delay" => out.delay_ms = Some(v),
                    Some(v) => out.jitter_ms = Some(v),
                    None => {
                        self.err(
                            npos(x),
                            &p,
                            format!("bad duration {s:?}: expected like 20ms or 1s, at most 60s"),
                        );
                        return None;
                    }
                }
            }
        }
        if out.jitter_ms.unwrap_or(0) > out.delay_ms.unwrap_or(0) {
            self.err(
                f.pos,
                &join(path, "jitter"),
                "jitter is larger than delay (delays cannot go negative)",
            );
            return None;
        }
        for key in ["loss", "duplicate"] {
            if let Some(x) = f.get(key) {
                let p = join(path, key);
                let s = self.string(x, &p)?;
                let v = s
                    .strip_suffix('%')
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|v| (0.0..=100.0).contains(v));
                match v {
                    Some(v) if key == "loss" => out.loss_bp = Some((v * 100.0).round() as u32),
                    Some(v) => out.dup_bp = Some((v * 100.0).round() as u32),
                    None => {
                        self.err(
                            npos(x),
                            &p,
                            format!("bad percentage {s:?}: expected like 1% or 0.5%"),
                        );
                        return None;
                    }
                }
            }
        }
        if let Some(x) = f.get("rate") {
            let p = join(path, "rate");
            let s = self.string(x, &p)?;
            let v = [("kbit", 1u64), ("mbit", 1000), ("gbit", 1_000_000)]
                .iter()
                .find_map(|(suf, mul)| {
                    s.strip_suffix(suf)
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|v| v * mul)
                })
                .filter(|v| *v > 0);
            match v {
                Some(v) => out.rate_kbit = Some(v),
                None => {
                    self.err(
                        npos(x),
                        &p,
                        format!("bad rate {s:?}: expected like 10mbit, 512kbit or 1gbit"),
                    );
                    return None;
                }
            }
        }
        if let Some(x) = f.get("seed") {
            out.seed = Some(self.int(x, &join(path, "seed"), 0, u64::MAX, "seed")?);
        }
        Some(out)
    }

    fn routes(&mut self, n: &Node, path: &str) -> Vec<RouteDef> {
        let mut out = Vec::new();
        for (i, item) in self.list(n, path).unwrap_or(&[]).iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(f) = self.fields(item, &p, &["to", "via"]) else {
                continue;
            };
            let (Some(to_n), Some(via_n)) =
                (self.required(&f, "to", &p), self.required(&f, "via", &p))
            else {
                continue;
            };
            let (Some(to), Some(via)) = (
                self.string(to_n, &join(&p, "to")),
                self.string(via_n, &join(&p, "via")),
            ) else {
                continue;
            };
            let Ok(via) = via.parse::<IpAddr>() else {
                self.err(
                    npos(via_n),
                    &join(&p, "via"),
                    format!("bad gateway address {via:?}"),
                );
                continue;
            };
            let to = if to == "default" {
                Cidr::new(
                    match via {
                        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                    },
                    0,
                )
                .expect("0 is a valid length")
            } else {
                match Cidr::parse_prefix(&to) {
                    Ok(c) => c,
                    Err(e) => {
                        self.err(npos(to_n), &join(&p, "to"), format!("{e} (or `default`)"));
                        continue;
                    }
                }
            };
            if to.is_v4() != via.is_ipv4() {
                self.err(
                    npos(via_n),
                    &join(&p, "via"),
                    format!("gateway {via} and destination {to} are of different IP families"),
                );
                continue;
            }
            out.push(RouteDef {
                pos: npos(via_n),
                to,
                via,
            });
        }
        out
    }

    /// A route's gateway must be on a subnet of one of the node's interfaces.
    fn routes_on_link(&mut self, node: &NodeDef) {
        for r in &node.routes {
            let on_link = node
                .interfaces
                .iter()
                .flat_map(|i| i.addresses())
                .any(|a| a.network().contains(r.via));
            if !on_link {
                self.err(
                    r.pos,
                    &format!("nodes.{}.routes", node.name),
                    format!(
                        "gateway {} is not on a subnet of any of the node's interfaces",
                        r.via
                    ),
                );
            }
        }
    }

    /// Check explicit addresses for duplicates (per subnet pool), then give
    /// every interface without one the lowest free address of its subnet;
    /// last, each network without a gateway that has its bridge domain to
    /// itself gets the highest free address of each subnet for its DNS.
    fn addresses(&mut self, nodes: &mut [NodeDef], networks: &mut [NetworkDef]) {
        // pool (subnet) -> used host offsets -> who
        let mut used: HashMap<Cidr, BTreeMap<u128, (String, Pos)>> = HashMap::new();
        for net in networks.iter() {
            for g in net.gateway_addrs() {
                used.entry(g.network()).or_default().insert(
                    to_u128(g.addr),
                    (format!("the gateway of network {}", net.name), net.pos),
                );
            }
        }
        for node in nodes.iter() {
            for (i, iface) in node.interfaces.iter().enumerate() {
                for (field, a) in [("address", iface.address), ("ipv6", iface.ipv6)] {
                    let Some(a) = a else { continue };
                    let pool = used.entry(a.network()).or_default();
                    let who = format!("{}.{}", node.name, iface.name);
                    if let Some((prev, at)) = pool.get(&to_u128(a.addr)) {
                        let (prev, line) = (prev.clone(), at.line);
                        self.err(
                            iface.pos,
                            &format!("nodes.{}.interfaces[{i}].{field}", node.name),
                            format!("address {} is already used by {prev} (line {line})", a.addr),
                        );
                    } else {
                        pool.insert(to_u128(a.addr), (who, iface.pos));
                    }
                }
            }
        }
        for node in nodes.iter_mut() {
            for iface in node.interfaces.iter_mut() {
                let Some(net) = networks.iter().find(|n| n.name == iface.network) else {
                    continue;
                };
                for (v4, sub) in [(true, net.subnet), (false, net.ipv6)] {
                    let Some(sub) = sub else { continue };
                    let slot = if v4 {
                        &mut iface.address
                    } else {
                        &mut iface.ipv6
                    };
                    if slot.is_some() {
                        continue;
                    }
                    let pool = used.entry(sub).or_default();
                    let (lo, hi) = sub.range();
                    let last = if v4 && sub.len < 31 { hi - 1 } else { hi };
                    let first = if sub.len < 31 || !v4 { lo + 1 } else { lo };
                    let free = (first..=last.min(first.saturating_add(1 << 20)))
                        .find(|v| !pool.contains_key(v));
                    match free {
                        Some(v) => {
                            pool.insert(v, (format!("{}.{}", node.name, iface.name), iface.pos));
                            *slot = Some(Cidr {
                                addr: from_u128(sub.addr, v),
                                len: sub.len,
                            });
                        }
                        None => self.err(
                            iface.pos,
                            &format!("nodes.{}.interfaces", node.name),
                            format!("no free address left in {sub} of network {}", net.name),
                        ),
                    }
                }
            }
        }
        for i in 0..networks.len() {
            let net = &networks[i];
            let shared = networks.iter().enumerate().any(|(j, o)| {
                j != i
                    && o.domain == net.domain
                    && o.switches.iter().any(|s| net.switches.contains(s))
            });
            // A global network's domain is the daemon's (its DNS too); a
            // network on a host NIC takes no address of the LAN's.
            if net.gateway || net.global || net.parent.is_some() {
                continue;
            }
            if shared {
                // A domain carrying several VLANs: each VLAN gets its own
                // resolver address (a DNS listener beside the domain's one
                // gateway), except the VLAN of a routed gateway, whose
                // addresses serve it. One VLAN of one subnet spread over
                // domains joined by trunks is one segment: its first network
                // takes the address, the others share it.
                let routed_here = networks.iter().any(|o| {
                    o.gateway
                        && o.domain == net.domain
                        && o.vlan == net.vlan
                        && o.switches.iter().any(|s| net.switches.contains(s))
                });
                if routed_here {
                    continue;
                }
                let first = networks[..i].iter().find(|o| {
                    !o.gateway
                        && o.vlan == net.vlan
                        && o.subnet == net.subnet
                        && o.ipv6 == net.ipv6
                        && !o.dns_only.is_empty()
                });
                if let Some(o) = first {
                    networks[i].dns_only = o.dns_only.clone();
                    continue;
                }
            }
            let net = &networks[i];
            let mut dns = Vec::new();
            for (v4, sub) in [(true, net.subnet), (false, net.ipv6)] {
                let Some(sub) = sub else { continue };
                let pool = used.entry(sub).or_default();
                let (lo, hi) = sub.range();
                let last = if v4 && sub.len < 31 { hi - 1 } else { hi };
                let first = if sub.len < 31 || !v4 { lo + 1 } else { lo };
                // The top of the pool, where allocation (lowest first) ends.
                let free = (last.saturating_sub(1 << 10).max(first)..=last)
                    .rev()
                    .find(|v| !pool.contains_key(v));
                if let Some(v) = free {
                    pool.insert(v, (format!("the DNS of network {}", net.name), net.pos));
                    dns.push(Cidr {
                        addr: from_u128(sub.addr, v),
                        len: sub.len,
                    });
                }
            }
            networks[i].dns_only = dns;
        }
    }

    fn trunks(
        &mut self,
        n: &Node,
        lab: &str,
        switches: &[SwitchDef],
        networks: &[NetworkDef],
    ) -> Vec<TrunkDef> {
        let mut out = Vec::new();
        for (k, v) in self.named(n, "trunks") {
            let path = format!("trunks.{}", k.as_str());
            let Some(name) = self.name(k, &path, "trunk") else {
                continue;
            };
            let pos = span_pos(k.span());
            let Some(f) = self.fields(v, &path, &["endpoints", "vlans", "native", "port"]) else {
                continue;
            };
            let Some(eps) = self.required(&f, "endpoints", &path) else {
                continue;
            };
            let ep_path = join(&path, "endpoints");
            let items = self.list(eps, &ep_path).unwrap_or(&[]);
            if items.len() != 2 {
                self.err(
                    npos(eps),
                    &ep_path,
                    format!(
                        "expected two endpoints ([switch:]domain), found {}",
                        items.len()
                    ),
                );
                continue;
            }
            let mut ends = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let Some(s) = self.string(item, &ep_path) else {
                    continue;
                };
                let (sw, dom) = match s.split_once(':') {
                    Some((a, b)) => (Some(a.to_string()), b.to_string()),
                    None => (None, s.clone()),
                };
                let sw = match sw {
                    Some(sw) if switches.iter().any(|w| w.name == sw) => sw,
                    Some(sw) => {
                        self.err(npos(item), &ep_path, format!("no switch named {sw:?}"));
                        continue;
                    }
                    None if switches.len() == 1 => switches[0].name.clone(),
                    None => {
                        self.err(
                            npos(item),
                            &ep_path,
                            format!("{s:?}: the lab has several switches, write switch:domain"),
                        );
                        continue;
                    }
                };
                if !networks
                    .iter()
                    .any(|n| n.domain == dom && n.switches.contains(&sw))
                {
                    self.err(
                        npos(item),
                        &ep_path,
                        format!("no network uses domain {dom:?} on switch {sw}"),
                    );
                    continue;
                }
                ends.push((sw, dom, link_name(lab, &name, i)));
            }
            if ends.len() != 2 {
                continue;
            }
            if ends[0].0 == ends[1].0 && ends[0].1 == ends[1].1 {
                self.err(npos(eps), &ep_path, "both ends are the same domain");
                continue;
            }
            let mut vlans = Vec::new();
            if let Some(vn) = f.get("vlans") {
                let vp = join(&path, "vlans");
                let all = vn.as_scalar().is_some_and(|s| s.as_str() == "all");
                if !all {
                    for item in self.list(vn, &vp).unwrap_or(&[]) {
                        if let Some(v) = self.vlan(item, &vp) {
                            vlans.push(v);
                        }
                    }
                }
            }
            let native = f
                .get("native")
                .and_then(|x| self.vlan(x, &join(&path, "native")));
            let port = match f.get("port") {
                None => PortKind::Afxdp,
                Some(x) => match self.string(x, &join(&path, "port")).as_deref() {
                    Some("afxdp") => PortKind::Afxdp,
                    Some("afpacket") => PortKind::Afpacket,
                    Some(other) => {
                        self.err(
                            npos(x),
                            &join(&path, "port"),
                            format!(
                                "unknown trunk port kind {other:?}: expected afxdp or afpacket"
                            ),
                        );
                        continue;
                    }
                    None => continue,
                },
            };
            let [a, b]: [(String, String, String); 2] = ends.try_into().expect("two ends");
            out.push(TrunkDef {
                name,
                pos,
                ends: [a, b],
                vlans,
                native,
                port,
            });
        }
        out
    }

    /// Trunks that close a loop between domains flood frames forever
    /// without a spanning tree: refused unless the switches run RSTP.
    fn loops(&mut self, switches: &[SwitchDef], trunks: &[TrunkDef]) {
        let mut parent: HashMap<(String, String), (String, String)> = HashMap::new();
        fn find(
            p: &mut HashMap<(String, String), (String, String)>,
            x: &(String, String),
        ) -> (String, String) {
            let mut cur = x.clone();
            while let Some(up) = p.get(&cur).cloned() {
                if up == cur {
                    break;
                }
                cur = up;
            }
            cur
        }
        for t in trunks {
            let a = (t.ends[0].0.clone(), t.ends[0].1.clone());
            let b = (t.ends[1].0.clone(), t.ends[1].1.clone());
            let (ra, rb) = (find(&mut parent, &a), find(&mut parent, &b));
            if ra == rb {
                let rstp = switches
                    .iter()
                    .filter(|s| s.name == a.0 || s.name == b.0)
                    .all(|s| s.rstp);
                if !rstp {
                    self.err(
                        t.pos,
                        &format!("trunks.{}", t.name),
                        "this trunk closes a loop between domains: set `rstp: true` on the switches (or remove a trunk)",
                    );
                }
            } else {
                parent.insert(ra, rb);
            }
        }
    }

    fn link_names(&mut self, nodes: &[NodeDef], trunks: &[TrunkDef]) {
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut check = |p: &mut Self, link: &str, who: String, pos: Pos| {
            if let Some(prev) = seen.get(link) {
                p.err(
                    pos,
                    "",
                    format!("{who} and {prev} would both use link name {link}: rename one"),
                );
            } else {
                seen.insert(link.to_string(), who);
            }
        };
        for n in nodes {
            for i in &n.interfaces {
                check(self, &i.link, format!("{}.{}", n.name, i.name), i.pos);
            }
        }
        for t in trunks {
            for e in &t.ends {
                check(self, &e.2, format!("trunk {}", t.name), t.pos);
            }
        }
    }

    fn expect(&mut self, n: &Node, nodes: &[NodeDef], networks: &[NetworkDef]) -> Vec<Probe> {
        let Some(f) = self.fields(n, "expect", &["reach", "isolate"]) else {
            return Vec::new();
        };
        let mut probes: Vec<Probe> = Vec::new();
        for (key, want) in [("reach", Want::Reach), ("isolate", Want::Isolate)] {
            let Some(v) = f.get(key) else { continue };
            let path = join("expect", key);
            if want == Want::Reach && v.as_scalar().is_some_and(|s| s.as_str() == "all") {
                for net in networks {
                    self.network_probes(net, nodes, &mut probes);
                }
                continue;
            }
            for (i, item) in self.list(v, &path).unwrap_or(&[]).iter().enumerate() {
                let p = format!("{path}[{i}]");
                if let Some(m) = item.as_mapping() {
                    if want == Want::Isolate {
                        self.err(npos(item), &p, "expected a pair [a, b]");
                        continue;
                    }
                    let _ = m;
                    let Some(f) = self.fields(item, &p, &["network"]) else {
                        continue;
                    };
                    let Some(nn) = self.required(&f, "network", &p) else {
                        continue;
                    };
                    let Some(name) = self.string(nn, &join(&p, "network")) else {
                        continue;
                    };
                    match networks.iter().find(|x| x.name == name) {
                        Some(net) => self.network_probes(net, nodes, &mut probes),
                        None => self.err(
                            npos(nn),
                            &join(&p, "network"),
                            format!("no network named {name:?}"),
                        ),
                    }
                    continue;
                }
                let Some(pair) = self.list(item, &p) else {
                    continue;
                };
                if pair.len() != 2 {
                    self.err(
                        npos(item),
                        &p,
                        format!("expected a pair [a, b], found {} names", pair.len()),
                    );
                    continue;
                }
                let mut ends = Vec::new();
                for x in pair {
                    let Some(s) = self.string(x, &p) else {
                        continue;
                    };
                    match nodes.iter().find(|n| n.name == s) {
                        Some(node) => ends.push(node),
                        None => self.err(npos(x), &p, format!("no node named {s:?}")),
                    }
                }
                if ends.len() != 2 {
                    continue;
                }
                if ends[0].name == ends[1].name {
                    self.err(npos(item), &p, "a node paired with itself");
                    continue;
                }
                for (a, b) in [(ends[0], ends[1]), (ends[1], ends[0])] {
                    let targets = if want == Want::Reach {
                        targets(a, b, None)
                    } else {
                        targets(a, b, Some(&[]))
                    };
                    if targets.is_empty() {
                        self.err(npos(item), &p, format!("{} has no address that {} could ping (it needs an address of the same IP family)", b.name, a.name));
                        continue;
                    }
                    for addr in targets {
                        let probe = Probe {
                            from: a.name.clone(),
                            to: b.name.clone(),
                            addr,
                            want,
                        };
                        if let Some(clash) = probes.iter().find(|q| {
                            q.from == probe.from && q.addr == probe.addr && q.want != want
                        }) {
                            self.err(
                                npos(item),
                                &p,
                                format!(
                                    "contradicts the other expectation for {} -> {} ({})",
                                    clash.from, clash.to, clash.addr
                                ),
                            );
                        } else if !probes.contains(&probe) {
                            probes.push(probe);
                        }
                    }
                }
            }
        }
        probes
    }

    fn network_probes(&mut self, net: &NetworkDef, nodes: &[NodeDef], probes: &mut Vec<Probe>) {
        let on: Vec<&NodeDef> = nodes
            .iter()
            .filter(|n| n.interfaces.iter().any(|i| i.network == net.name))
            .collect();
        for a in &on {
            for b in &on {
                if a.name == b.name {
                    continue;
                }
                for addr in targets(a, b, Some(std::slice::from_ref(&net.name))) {
                    let probe = Probe {
                        from: a.name.clone(),
                        to: b.name.clone(),
                        addr,
                        want: Want::Reach,
                    };
                    if !probes.contains(&probe) {
                        probes.push(probe);
                    }
                }
            }
        }
    }
}

/// The addresses of `b` that `a` should ping: on `only` networks if given
/// (empty: every network), else on the networks they share, or all of
/// `b`'s if they share none; only families `a` has an address of.
fn targets(a: &NodeDef, b: &NodeDef, only: Option<&[String]>) -> Vec<IpAddr> {
    let a_v4 = a.interfaces.iter().any(|i| i.address.is_some());
    let a_v6 = a.interfaces.iter().any(|i| i.ipv6.is_some());
    let shared: Vec<String> = b
        .interfaces
        .iter()
        .filter(|bi| a.interfaces.iter().any(|ai| ai.network == bi.network))
        .map(|bi| bi.network.clone())
        .collect();
    let nets: Vec<String> = match only {
        Some(o) if !o.is_empty() => o.to_vec(),
        Some(_) => Vec::new(),
        None => shared,
    };
    b.interfaces
        .iter()
        .filter(|i| nets.is_empty() || nets.contains(&i.network))
        .flat_map(|i| i.addresses())
        .map(|c| c.addr)
        .filter(|ip| if ip.is_ipv4() { a_v4 } else { a_v6 })
        .collect()
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (o, p) in m.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

/// `80/tcp`, `53:5353/udp`.
fn service_port(s: &str) -> Option<ServicePortDef> {
    let (ports, proto) = s.split_once('/')?;
    let udp = match proto {
        "tcp" => false,
        "udp" => true,
        _ => return None,
    };
    let (p, t) = ports.split_once(':').unwrap_or((ports, ports));
    let port: u16 = p.parse().ok().filter(|&x| x != 0)?;
    let target: u16 = t.parse().ok().filter(|&x| x != 0)?;
    Some(ServicePortDef { port, target, udp })
}
