use super::*;

const QUICK: &str = "\
name: qs
networks:
  lan: {subnet: 10.99.0.0/24, ipv6: fd00:99::/64}
nodes:
  a:
    interfaces:
      - {network: lan, address: 10.99.0.5/24}
  b:
    interfaces:
      - {network: lan}
expect:
  reach: all
";

fn ok(text: &str) -> Topology {
    match parse("t.yml", text) {
        Ok(t) => t,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

/// The single error of `text`, checked to be on `line` and to mention `has`.
#[track_caller]
fn bad(text: &str, line: usize, has: &str) -> LabError {
    let errs = parse("t.yml", text).expect_err("expected an error").0;
    let e = errs
        .iter()
        .find(|e| e.pos.line == line && e.to_string().contains(has))
        .unwrap_or_else(|| panic!("no error on line {line} with {has:?}: {errs:#?}"));
    assert!(e.to_string().starts_with(&format!("t.yml:{line}:")), "{e}");
    e.clone()
}

fn edit(from: &str, to: &str) -> String {
    assert!(QUICK.contains(from), "{from}");
    QUICK.replacen(from, to, 1)
}

#[test]
fn quickstart_parses_with_defaults_and_allocation() {
    let t = ok(QUICK);
    assert_eq!(t.name, "qs");
    assert_eq!(t.switches.len(), 1);
    assert_eq!(t.switches[0].name, "sw");
    let lan = t.network("lan").unwrap();
    assert_eq!((lan.domain.as_str(), lan.vlan), ("lan", 1));
    let a = t.node("a").unwrap();
    assert_eq!(a.netns, "qs-a");
    assert_eq!(a.interfaces[0].name, "eth0");
    assert_eq!(a.interfaces[0].link, "qs-a-0");
    assert_eq!(a.interfaces[0].port, PortKind::Tap, "the default");
    assert_eq!(a.interfaces[0].address.unwrap().to_string(), "10.99.0.5/24");
    assert_eq!(a.interfaces[0].ipv6.unwrap().to_string(), "fd00:99::1/64");
    // b gets the lowest free address, skipping a's.
    let b = t.node("b").unwrap();
    assert_eq!(b.interfaces[0].address.unwrap().to_string(), "10.99.0.1/24");
    assert_eq!(b.interfaces[0].ipv6.unwrap().to_string(), "fd00:99::2/64");
    // reach: all -> both directions over v4 and v6.
    assert_eq!(t.probes.len(), 4);
    assert!(t.probes.iter().all(|p| p.want == Want::Reach));
    // Parsing is deterministic (a redeploy computes the same lab).
    assert_eq!(ok(QUICK), t);
}

#[test]
fn long_names_get_short_unique_link_names() {
    let l1 = link_name("labwithlongname", "node_number_one", 0);
    let l2 = link_name("labwithlongname", "node_number_one", 1);
    let l3 = link_name("labwithlongname", "node_number_two", 0);
    for l in [&l1, &l2, &l3] {
        assert!(l.len() <= 15, "{l}");
    }
    assert!(l1 != l2 && l1 != l3 && l2 != l3);
    assert_eq!(link_name("q", "a", 3), "q-a-3");
}

#[test]
fn syntax_error_names_its_line() {
    bad("name: x\nnetworks: {lan: {}\nnodes: {}\n", 3, "YAML syntax");
}

#[test]
fn unknown_field_names_line_and_field() {
    let e = bad(
        &edit("  a:\n", "  a:\n    colour: red\n"),
        6,
        "unknown field",
    );
    assert_eq!(e.field, "nodes.a.colour");
    assert_eq!(e.pos.col, 5);
    bad(
        &edit("{network: lan}", "{network: lan, adress: 10.99.0.9}"),
        10,
        "expected one of: network, name, address",
    );
    bad(&format!("{QUICK}extra: 1\n"), 13, "extra: unknown field");
}

#[test]
fn duplicate_name_names_the_second_definition() {
    let text = edit("  b:\n", "  a:\n    interfaces: [{network: lan}]\n  b:\n");
    bad(&text, 8, "duplicate name `a` (first defined on line 5)");
}

#[test]
fn address_outside_subnet() {
    let e = bad(
        &edit("10.99.0.5/24", "10.98.0.5/24"),
        7,
        "10.98.0.5 is outside the subnet 10.99.0.0/24 of network lan",
    );
    assert_eq!(e.field, "nodes.a.interfaces[0].address");
}

#[test]
fn address_problems() {
    bad(
        &edit("10.99.0.5/24", "10.99.0.5/16"),
        7,
        "prefix length /16 differs",
    );
    bad(&edit("10.99.0.5/24", "10.99.0.0"), 7, "network address");
    bad(&edit("10.99.0.5/24", "10.99.0.255"), 7, "broadcast address");
    bad(&edit("10.99.0.5/24", "fd00:99::5"), 7, "use `ipv6`");
    bad(&edit("10.99.0.5/24", "ten"), 7, "bad address");
    bad(
        &edit("{network: lan}", "{network: lan, address: 10.99.0.5}"),
        10,
        "already used by a.eth0 (line 7)",
    );
    bad(&edit("10.99.0.0/24", "10.99.0.1/24"), 3, "host bits");
}

#[test]
fn dangling_references() {
    bad(
        &edit("{network: lan}", "{network: wan}"),
        10,
        "no network named \"wan\"",
    );
    bad(
        &edit("  reach: all\n", "  reach: [[a, c]]\n"),
        12,
        "no node named \"c\"",
    );
    bad(
        &edit("  lan: {", "  lan: {switch: core, "),
        3,
        "no switch named \"core\"",
    );
    bad(
        &format!("{QUICK}trunks:\n  t: {{endpoints: [lan, nowhere]}}\n"),
        14,
        "no network uses domain \"nowhere\"",
    );
}

#[test]
fn bad_vlan_id() {
    let e = bad(
        &edit("  lan: {", "  lan: {vlan: 4095, "),
        3,
        "bad VLAN id \"4095\"",
    );
    assert_eq!(e.field, "networks.lan.vlan");
    bad(
        &edit("  lan: {", "  lan: {vlan: zero, "),
        3,
        "expected a number in 1..4094",
    );
}

#[test]
fn missing_required_field() {
    bad("name: x\nnodes: {}\n", 1, "networks: missing (required)");
    bad(
        &edit("      - {network: lan}\n", "      - {address: 10.99.0.7}\n"),
        10,
        "network: missing",
    );
}

#[test]
fn wrong_types() {
    bad(
        &edit(
            "  a:\n    interfaces:\n",
            "  a:\n    interfaces: 3\n    x:\n",
        ),
        6,
        "expected a list",
    );
    bad(
        "name: [x]\nnetworks: {}\nnodes: {}\n",
        1,
        "expected a string",
    );
    bad("- a\n- b\n", 1, "must be a mapping");
}

#[test]
fn bad_names_and_values() {
    bad(&edit("name: qs", "name: my-lab"), 1, "bad lab name");
    bad(&edit("  a:\n", "  \"a b\":\n"), 5, "bad node name");
    bad(
        &edit("  lan: {", "  lan: {kind: mesh, "),
        3,
        "unknown network kind",
    );
    bad(
        &edit("{network: lan}", "{network: lan, port: vhost}"),
        10,
        "unknown port kind",
    );
    bad(
        &edit(
            "{network: lan}",
            "{network: lan, mac: \"01:00:00:00:00:01\"}",
        ),
        10,
        "not a unicast MAC",
    );
    bad(
        &edit("  b:\n", "  b:\n    sysctls: {kernel.panic: 1}\n"),
        9,
        "only net.* sysctls",
    );
}

#[test]
fn same_segment_and_overlapping_subnets() {
    let text = edit(
        "nodes:\n",
        "  lan2: {domain: lan, subnet: 10.99.0.0/16}\nnodes:\n",
    );
    bad(&text, 4, "same segment as network lan");
    bad(&text, 4, "overlaps 10.99.0.0/24");
}

#[test]
fn networks_sharing_a_subnet_share_the_pool() {
    let t = ok(&edit(
        "nodes:\n",
        "  other: {vlan: 20, domain: lan, subnet: 10.99.0.0/24}\nnodes:\n  c: {interfaces: [{network: other}]}\n",
    ));
    let c = t.node("c").unwrap();
    // a has .5 (explicit), c comes first in file order after it: .1
    assert_eq!(c.interfaces[0].address.unwrap().to_string(), "10.99.0.1/24");
    let b = t.node("b").unwrap();
    assert_eq!(b.interfaces[0].address.unwrap().to_string(), "10.99.0.2/24");
}

#[test]
fn routes_need_an_on_link_gateway() {
    bad(
        &edit(
            "  b:\n",
            "  b:\n    routes: [{to: default, via: 10.1.0.1}]\n",
        ),
        9,
        "gateway 10.1.0.1 is not on a subnet",
    );
    bad(
        &edit(
            "  b:\n",
            "  b:\n    routes: [{to: 10.0.0.0/8, via: \"fd00:99::1\"}]\n",
        ),
        9,
        "different IP families",
    );
    let t = ok(&edit(
        "  b:\n",
        "  b:\n    routes: [{to: default, via: 10.99.0.5}]\n",
    ));
    assert_eq!(t.node("b").unwrap().routes[0].to.to_string(), "0.0.0.0/0");
}

#[test]
fn trunk_loops_are_refused_without_rstp() {
    let base = "\
name: ring
networks:
  a: {subnet: 10.1.0.0/24}
  b: {subnet: 10.2.0.0/24}
nodes:
  x: {interfaces: [{network: a}]}
trunks:
  t1: {endpoints: [a, b]}
  t2: {endpoints: [b, a]}
";
    bad(base, 9, "closes a loop");
    let with_rstp = format!("switches:\n  sw: {{rstp: true}}\n{base}");
    let t = ok(&with_rstp);
    assert!(t.switches[0].rstp, "the loop is accepted with RSTP on");
}

#[test]
fn switch_routes_need_a_next_hop_on_a_gateway_network() {
    let base = "\
name: r
switches:
  sw:
    routes: [{to: 10.3.0.0/24, via: 10.2.0.254}]
networks:
  right: {subnet: 10.2.0.0/24, gateway: true}
nodes:
  b: {interfaces: [{network: right}]}
";
    let t = ok(base);
    assert_eq!(t.switches[0].routes[0].network, "right");
    bad(
        &base.replace("gateway: true", "gateway: false"),
        4,
        "next hop 10.2.0.254 is not on a network with `gateway: true`",
    );
    bad(
        &base.replace(
            "nodes:",
            "  other: {domain: right, vlan: 5, subnet: 10.9.0.0/24, gateway: true}\nnodes:",
        ),
        7,
        "domain right already has a gateway (network right)",
    );
}

#[test]
fn impairments_are_checked() {
    let with = |imp: &str| {
        edit(
            "{network: lan}",
            &format!("{{network: lan, impair: {imp}}}"),
        )
    };
    let t = ok(&with(
        "{delay: 10ms, jitter: 2ms, loss: 0.5%, duplicate: 1%, rate: 1gbit, seed: 7}",
    ));
    let i = t.node("b").unwrap().interfaces[0].impair.clone().unwrap();
    assert_eq!(
        (i.loss_bp, i.dup_bp, i.rate_kbit, i.seed),
        (Some(50), Some(100), Some(1_000_000), Some(7))
    );
    bad(
        &with("{delay: 1ms, jitter: 2ms}"),
        10,
        "jitter is larger than delay",
    );
    bad(&with("{delay: 2min}"), 10, "bad duration");
    bad(&with("{loss: 200%}"), 10, "bad percentage");
    bad(&with("{rate: fast}"), 10, "bad rate");
    bad(&with("{lag: 1ms}"), 10, "impair.lag: unknown field");
}

#[test]
fn expectations_expand_and_contradictions_are_refused() {
    let t = ok(&edit(
        "  reach: all\n",
        "  reach: [[a, b]]\n  isolate: []\n",
    ));
    assert_eq!(t.probes.len(), 4);
    bad(
        &edit("  reach: all\n", "  reach: [[a, b]]\n  isolate: [[b, a]]\n"),
        13,
        "contradicts",
    );
    bad(
        &edit("  reach: all\n", "  reach: [[a, a]]\n"),
        12,
        "paired with itself",
    );
    bad(
        &edit("  reach: all\n", "  reach: [[a]]\n"),
        12,
        "expected a pair",
    );
}

#[test]
fn overlays_get_their_tunnel_endpoints_from_the_host_nodes() {
    let t = ok("\
name: f
switches:
  core: {}
  s1: {host: h1}
  s2: {host: h2}
networks:
  wan: {switch: core, subnet: 192.168.0.0/24, gateway: true}
  tenant: {kind: vxlan, vni: 5001, switches: [s1, s2], subnet: 10.5.0.0/24}
nodes:
  h1: {interfaces: [{network: wan, impair: {delay: 20ms, loss: 1%, rate: 10mbit}}]}
  h2: {interfaces: [{network: wan}]}
  a: {interfaces: [{network: tenant, switch: s2}]}
");
    // The gateway takes .1, the nodes the next ones.
    let h1 = t.node("h1").unwrap();
    assert_eq!(
        h1.interfaces[0].address.unwrap().to_string(),
        "192.168.0.2/24"
    );
    let imp = h1.interfaces[0].impair.clone().unwrap();
    assert_eq!(
        (imp.delay_ms, imp.loss_bp, imp.rate_kbit),
        (Some(20), Some(100), Some(10_000))
    );
    let tenant = t.network("tenant").unwrap();
    let vteps: Vec<String> = tenant
        .vteps
        .iter()
        .map(|(s, a)| format!("{s}={a}"))
        .collect();
    assert_eq!(vteps, ["s1=192.168.0.2", "s2=192.168.0.3"]);
    assert_eq!(t.switch_netns("s2").as_deref(), Some("f-h2"));
    assert_eq!(t.switch_netns("core"), None);
    assert_eq!(t.node("a").unwrap().interfaces[0].switch, "s2");
    bad(
        "name: f\nnetworks:\n  t: {kind: vxlan, vni: 5, switches: [sw]}\nnodes: {}\n",
        3,
        "switch sw has no `host`",
    );
    bad(
        "name: f\nswitches:\n  s: {host: h}\nnetworks:\n  t: {kind: vxlan, vni: 5, switches: [s]}\nnodes:\n  h: {interfaces: [{network: t}]}\n",
        5,
        "node h (host of switch s) has no address",
    );
    bad(
        "name: f\nnetworks:\n  t: {kind: vxlan, switches: [sw]}\nnodes: {}\n",
        3,
        "vni: missing",
    );
    bad(
        "name: f\nnetworks:\n  t: {vni: 5}\nnodes: {}\n",
        3,
        "`vni` is for kind vxlan",
    );
    bad(
        "name: f\nswitches:\n  s: {host: nobody}\nnetworks: {}\nnodes: {}\n",
        3,
        "no node named \"nobody\"",
    );
}

#[test]
fn several_errors_are_reported_together_in_line_order() {
    let text = edit("10.99.0.5/24", "10.98.0.5/24").replace("{network: lan}", "{network: x}");
    let errs = parse("t.yml", &text).unwrap_err().0;
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!((errs[0].pos.line, errs[1].pos.line), (7, 10));
}

#[test]
fn graphs_name_every_node_and_network() {
    let t = ok(QUICK);
    let dot = to_dot(&t);
    assert!(dot.starts_with("graph \"qs\" {"), "{dot}");
    assert!(dot.contains("\"node:a\" -- \"net:lan\""), "{dot}");
    let mm = to_mermaid(&t);
    assert!(
        mm.contains("node_a ---|\"eth0<br/>10.99.0.5/24<br/>fd00:99::1/64\"| net_lan"),
        "{mm}"
    );
}

/// `lab deploy --reconfigure`'s planner: a lab before and after.
mod reconfigure {
    use super::*;

    const BEFORE: &str = "\
name: rc
networks:
  lan: {subnet: 10.1.0.0/24}
  side: {subnet: 10.2.0.0/24}
nodes:
  a:
    interfaces: [{network: lan, address: 10.1.0.1/24}]
  b:
    interfaces:
      - {network: lan, address: 10.1.0.2/24}
      - {network: side}
  d:
    interfaces:
      - {network: lan, address: 10.1.0.4/24}
      - {network: side}
";

    /// Adds node c, link a.eth1 and network extra; removes node d, link
    /// b.eth1 and network side. a.eth0 and b.eth0 stay as they are.
    const AFTER: &str = "\
name: rc
networks:
  lan: {subnet: 10.1.0.0/24}
  extra: {subnet: 10.3.0.0/24}
nodes:
  a:
    interfaces:
      - {network: lan, address: 10.1.0.1/24}
      - {network: extra}
  b:
    interfaces: [{network: lan, address: 10.1.0.2/24}]
  c:
    interfaces:
      - {network: lan, address: 10.1.0.3/24}
      - {network: extra}
";

    fn lines(p: &Plan) -> Vec<String> {
        p.steps.iter().map(|s| s.to_string()).collect()
    }

    /// Apply every step's record update to `old`.
    fn recorded(old: &Topology, p: &Plan) -> Topology {
        let mut rec = old.clone();
        for s in &p.steps {
            s.record(&mut rec);
        }
        rec
    }

    #[test]
    fn adds_and_removes_only_what_changed_in_order() {
        let (old, new) = (ok(BEFORE), ok(AFTER));
        let p = plan(&old, &new).expect("plannable");
        let got = lines(&p);
        let want = [
            "- node d (namespace rc-d)",
            "- link b.eth1 (port rc-b-1 on network side)",
            "- network side (domain side on switch sw goes)",
            "+ domain extra on switch sw",
            "+ network extra (domain extra vlan 1 10.3.0.0/24)",
            "+ node c (namespace rc-c, on lan, extra)",
            "+ link a.eth1 (port rc-a-1 on network extra, 10.3.0.1/24)",
        ];
        assert_eq!(got, want, "plan:\n{p}");
        // What stays is in no step: a.eth0, b.eth0, network lan.
        for s in &got {
            assert!(!s.contains("eth0") && !s.contains("network lan"), "{s}");
        }
    }

    #[test]
    fn the_record_after_every_step_is_the_new_deployment() {
        let (old, new) = (ok(BEFORE), ok(AFTER));
        let p = plan(&old, &new).unwrap();
        assert!(same_deployment(&recorded(&old, &p), &new));
        // ... and half-way, the rest is planned again and nothing more.
        for cut in 0..p.steps.len() {
            let half = recorded(
                &old,
                &Plan {
                    steps: p.steps[..cut].to_vec(),
                },
            );
            let rest = plan(&half, &new).unwrap();
            let rest = lines(&rest);
            for s in &rest {
                assert!(lines(&p).contains(s), "cut {cut}: unplanned step {s}");
            }
            assert!(
                same_deployment(&recorded(&half, &plan(&half, &new).unwrap()), &new),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn the_same_file_and_moved_lines_plan_nothing() {
        let old = ok(BEFORE);
        assert!(plan(&old, &old).unwrap().is_empty());
        // The nodes in another order and a comment: other lines, same lab.
        let moved = BEFORE.replace(
            "  a:\n    interfaces: [{network: lan, address: 10.1.0.1/24}]\n",
            "",
        ) + "  # moved\n  a:\n    interfaces: [{network: lan, address: 10.1.0.1/24}]\n";
        let moved = ok(&moved);
        assert_ne!(moved.node("a").unwrap().pos, old.node("a").unwrap().pos);
        assert!(plan(&old, &moved).unwrap().is_empty());
    }

    #[test]
    fn an_address_or_route_change_is_made_in_place() {
        let old = ok(BEFORE);
        let new = ok(&BEFORE.replace(
            "10.1.0.1/24}]",
            "10.1.0.9/24}]\n    routes: [{to: 10.9.0.0/16, via: 10.1.0.2}]",
        ));
        let got = lines(&plan(&old, &new).unwrap());
        assert_eq!(
            got,
            [
                "~ interface a.eth0: addresses 10.1.0.1/24 -> 10.1.0.9/24",
                "~ node a: +route 10.9.0.0/16 via 10.1.0.2",
            ]
        );
    }

    #[test]
    fn a_network_moved_to_another_vlan_remakes_its_ports() {
        let old = ok(BEFORE);
        let new = ok(&BEFORE.replace(
            "side: {subnet: 10.2.0.0/24}",
            "side: {subnet: 10.2.0.0/24, domain: lan, vlan: 20}",
        ));
        let got = lines(&plan(&old, &new).unwrap());
        assert_eq!(
            got,
            [
                "- link b.eth1 (port rc-b-1 on network side)",
                "- link d.eth1 (port rc-d-1 on network side)",
                "~ network side: was (domain side vlan 1 10.2.0.0/24) (domain side on switch sw goes)",
                // Two networks in domain lan now: lan's DNS-only gateway
                // stays, side gets a DNS listener in VLAN 20 (made with
                // the names, after the steps).
                "~ network side: now (domain lan vlan 20 10.2.0.0/24)",
                "+ link b.eth1 (port rc-b-1 on network side, 10.2.0.1/24)",
                "+ link d.eth1 (port rc-d-1 on network side, 10.2.0.2/24)",
            ]
        );
    }

    #[test]
    fn a_gateway_turned_on_patches_the_domain_and_nothing_else() {
        let old = ok(BEFORE);
        let new = ok(&BEFORE.replace(
            "side: {subnet: 10.2.0.0/24}",
            "side: {subnet: 10.2.0.0/24, gateway: true}",
        ));
        let p = plan(&old, &new).unwrap();
        let got = lines(&p);
        // The gateway takes the subnet's first address: the nodes' allocated
        // addresses move up by one, in place.
        assert_eq!(
            got,
            [
                "~ network side: was (domain side vlan 1 10.2.0.0/24)",
                "~ domain side on switch sw: gateway 10.2.0.1/24, rstp off",
                "~ network side: now (domain side vlan 1 10.2.0.0/24 gateway)",
                "~ interface b.eth1: addresses 10.2.0.1/24 -> 10.2.0.2/24",
                "~ interface d.eth1: addresses 10.2.0.2/24 -> 10.2.0.3/24",
            ],
            "plan:\n{p}"
        );
        let Step::RemoveNetwork { vxlan, domains, .. } = &p.steps[0] else {
            panic!("{p}")
        };
        assert!(vxlan.is_empty() && domains.is_empty(), "the domain stays");
    }

    #[test]
    fn switch_changes_are_refused_with_a_reason() {
        let old = ok(BEFORE);
        let new = ok(&BEFORE.replace("name: rc\n", "name: rc\nswitches:\n  sw: {workers: 2}\n"));
        let why = plan(&old, &new).unwrap_err();
        assert!(why[0].contains("switches changed"), "{why:?}");
    }
}

/// Where a node finds the embedded DNS: the gateway of a routed network;
/// on a network without one, the highest address the nodes left free
/// (held by a gateway that does not route, in a table of its own, or by
/// a DNS listener when the network shares its bridge domain with other
/// VLANs).
#[test]
fn dns_addresses_per_network() {
    let t = ok(QUICK);
    let lan = t.network("lan").unwrap();
    let dns: Vec<String> = lan.dns_addrs().iter().map(|c| c.to_string()).collect();
    assert_eq!(dns, ["10.99.0.254/24", "fd00:99::ffff:ffff:ffff:ffff/64"]);
    let g = t.domain_specs()[0]
        .gateway
        .clone()
        .expect("a DNS-only gateway");
    assert!(!g.routing);
    assert!(g.table >= crate::diff::DNS_TABLE_BASE);
    // A node holding .254 moves the DNS down, never the node.
    let t = ok(&edit("address: 10.99.0.5/24", "address: 10.99.0.254/24"));
    assert_eq!(
        t.network("lan").unwrap().dns_only[0].to_string(),
        "10.99.0.253/24"
    );
    // With a gateway: the gateway's addresses, and it routes.
    let t = ok(&edit(
        "ipv6: fd00:99::/64}",
        "ipv6: fd00:99::/64, gateway: true}",
    ));
    let lan = t.network("lan").unwrap();
    assert!(lan.dns_only.is_empty());
    assert_eq!(lan.dns_addrs(), lan.gateway_addrs());
    assert!(t.domain_specs()[0].gateway.as_ref().unwrap().routing);
    // Two VLANs in one domain: the first VLAN's DNS-only address is the
    // domain's gateway, the other VLAN's a DNS listener beside it.
    let two = "\
name: v
networks:
  red: {domain: west, vlan: 10, subnet: 10.10.0.0/24}
  blue: {domain: west, vlan: 20, subnet: 10.10.0.0/24}
nodes:
  r: {interfaces: [{network: red}]}
  b: {interfaces: [{network: blue}]}
";
    let t = ok(two);
    let dns = |n: &str| t.network(n).unwrap().dns_addrs()[0].to_string();
    assert_eq!(
        (dns("red"), dns("blue")),
        ("10.10.0.254/24".into(), "10.10.0.253/24".into())
    );
    let g = t.domain_specs()[0]
        .gateway
        .clone()
        .expect("a DNS-only gateway");
    assert_eq!((g.vid, g.routing), (10, false));
    let l = t.dns_listeners();
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!((l[0].domain.as_str(), l[0].vid), ("west", 20));
    assert_eq!(l[0].addresses[0].to_string(), "10.10.0.253/24");
    // One VLAN over two domains joined by a trunk is one segment: east's
    // networks use west's addresses, and east makes no DNS of its own.
    let trunked = format!(
        "{}  red-east: {{domain: east, vlan: 10, subnet: 10.10.0.0/24}}\n  blue-east: {{domain: east, vlan: 20, subnet: 10.10.0.0/24}}\n",
        two.split("nodes:").next().unwrap()
    ) + "nodes:\n  r: {interfaces: [{network: red}]}\n  r2: {interfaces: [{network: red-east}]}\n  b2: {interfaces: [{network: blue-east}]}\ntrunks:\n  core: {endpoints: [west, east], vlans: [10, 20]}\n";
    let t = ok(&trunked);
    let dns = |n: &str| t.network(n).unwrap().dns_addrs()[0].to_string();
    assert_eq!(dns("red-east"), dns("red"));
    assert_eq!(dns("blue-east"), dns("blue"));
    assert!(t.dns_host(t.network("red").unwrap()));
    assert!(!t.dns_host(t.network("red-east").unwrap()));
    let east = t
        .domain_specs()
        .into_iter()
        .find(|d| d.domain == "east")
        .unwrap();
    assert!(
        east.gateway.is_none(),
        "two gateways would answer ARP for one address"
    );
    assert!(t.dns_listeners().iter().all(|l| l.domain == "west"));
}

#[test]
fn aliases_are_dns_names() {
    let t = ok(&edit("  b:\n", "  b:\n    aliases: [web, db.internal]\n"));
    assert_eq!(t.node("b").unwrap().aliases, ["web", "db.internal"]);
    bad(
        &edit("  b:\n", "  b:\n    aliases: [\"bad name\"]\n"),
        9,
        "invalid DNS name",
    );
    bad(
        &edit("  b:\n", "  b:\n    aliases: [web, web]\n"),
        9,
        "given twice",
    );
}

const CLUSTER: &str = "\
name: cl
store: {members: [e1]}
switches:
  core: {}
  s1: {host: h1}
  s2: {host: h2}
networks:
  under: {switch: core, subnet: 192.168.7.0/24}
  g: {scope: global, switches: [s1, s2], subnet: 10.7.0.0/24}
nodes:
  e1: {interfaces: [{network: under}]}
  h1: {interfaces: [{network: under}]}
  h2: {interfaces: [{network: under}]}
  a: {interfaces: [{network: g, switch: s1}]}
  b: {interfaces: [{network: g, switch: s2}]}
";

#[test]
fn a_store_and_a_global_network_parse_into_members_vteps_and_no_lab_domain() {
    let t = ok(CLUSTER);
    let store = t.store.clone().expect("a store");
    assert_eq!(
        store.members,
        [("e1".to_string(), "192.168.7.1".parse().unwrap())]
    );
    assert_eq!(store.url(), "etcd://192.168.7.1:2379");
    let g = t.network("g").unwrap();
    assert!(g.global && g.kind == NetKind::Vxlan && g.vni.is_none());
    assert!(g.vxlan_ports().is_empty(), "the daemon makes its VTEP");
    assert!(g.dns_only.is_empty());
    assert!(t.clustered("s1") && t.clustered("s2") && !t.clustered("core"));
    assert_eq!(t.vtep_of("s2"), Some("192.168.7.3".parse().unwrap()));
    // The lab makes the underlay's domain only.
    assert_eq!(t.domains(), [("core".to_string(), "under".to_string())]);
    // Reconfigure does not change a lab with a store.
    let mut t2 = t.clone();
    t2.nodes.pop();
    assert!(plan(&t, &t2).unwrap_err()[0].contains("destroy and deploy"));
    bad(
        &CLUSTER.replace("members: [e1]", "members: [nope]"),
        2,
        "no node named",
    );
    bad(
        &CLUSTER.replace("switch: s2}", "switch: s2, port: afxdp}"),
        15,
        "the TAP the daemon's CNM driver makes",
    );
}

const PARENTS: &str = "\
name: up
networks:
  v10: {subnet: 10.98.10.0/24, parent: eth9.10, domain: wan}
  v20: {subnet: 10.98.20.0/24, parent: eth9.20, domain: wan}
  flat: {subnet: 10.98.0.0/24, parent: eth9, domain: wan, vlan: 5}
nodes:
  a: {interfaces: [{network: v10}, {network: v20}, {network: flat}]}
";

#[test]
fn parents_put_networks_in_their_vlan_on_a_host_nic() {
    let t = ok(PARENTS);
    let v10 = t.network("v10").unwrap();
    assert_eq!(v10.parent, Some("eth9.10".parse().unwrap()));
    assert_eq!(v10.vlan, 10, "the parent's VID is the network's VLAN");
    let flat = t.network("flat").unwrap();
    assert_eq!((flat.vlan, flat.parent.as_ref().unwrap().vid), (5, None));
    // The LAN's addresses are not the lab's to take for a DNS server.
    assert!(t.networks.iter().all(|n| n.dns_only.is_empty()));
    let back: Topology = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
    assert_eq!(back, t);
}

#[test]
fn bad_parents_name_their_line() {
    let p = |from: &str, to: &str| PARENTS.replacen(from, to, 1);
    bad(&p("eth9.10,", "eth9.4095,"), 3, "outside 1..4094");
    bad(&p("eth9.10,", "a/b,"), 3, "not an interface name");
    bad(
        &p("parent: eth9.10,", "parent: eth9.10, vlan: 11,"),
        3,
        "does not translate",
    );
    bad(
        &p("eth9.20, domain: wan", "eth9.20, domain: wan2"),
        4,
        "share a bridge domain",
    );
    bad(&p("eth9.20,", "eth9.10,"), 4, "already carries VLAN 10");
    bad(&p("vlan: 5", "vlan: 20"), 5, "already carries VLAN 20");
}

#[test]
fn services_name_a_vip_ports_and_backends_on_their_network() {
    let routed = edit(
        "lan: {subnet: 10.99.0.0/24, ipv6: fd00:99::/64}",
        "lan: {subnet: 10.99.0.0/24, ipv6: fd00:99::/64, gateway: true}",
    );
    let with = |svc: &str| format!("{routed}services:\n{svc}");
    let t = ok(&with(
        "  web: {network: lan, vip: [10.99.0.100, \"fd00:99::100\"], ports: [80/tcp, \"53:5353/udp\"], backends: [a, b], health_check: 80}\n  pool: {network: lan, backends: [a]}\n",
    ));
    let web = &t.services[0];
    assert_eq!(web.name, "web");
    assert_eq!(web.vips.len(), 2);
    assert_eq!(
        web.ports,
        [
            ServicePortDef {
                port: 80,
                target: 80,
                udp: false
            },
            ServicePortDef {
                port: 53,
                target: 5353,
                udp: true
            },
        ]
    );
    assert_eq!(
        (web.backends.as_slice(), web.health_check),
        (&["a".to_string(), "b".to_string()][..], Some(80))
    );
    assert!(t.services[1].vips.is_empty(), "no VIP: DNS round robin");
    // Errors: each on the service's line (14), with its reason.
    for (svc, has) in [
        (
            "  web: {network: nope, backends: [a]}\n",
            "no network named",
        ),
        (
            "  web: {network: lan, vip: 10.98.0.1, ports: [80/tcp], backends: [a]}\n",
            "not in a subnet",
        ),
        (
            "  web: {network: lan, vip: 10.99.0.100, backends: [a]}\n",
            "both vip and ports",
        ),
        (
            "  web: {network: lan, vip: 10.99.0.100, ports: [80/sctp], backends: [a]}\n",
            "not PORT/PROTO",
        ),
        (
            "  web: {network: lan, backends: [zz]}\n",
            "no node or alias",
        ),
        ("  web: {network: lan, backends: [a, a]}\n", "given twice"),
        (
            "  web: {network: lan, backends: [a], health_check: 80}\n",
            "only a service with a VIP",
        ),
        (
            "  web: {network: lan, backends: [a], weight: 2}\n",
            "unknown field",
        ),
    ] {
        bad(&with(svc), 14, has);
    }
    // Without a gateway the VIP has nobody to answer for it.
    bad(
        &format!(
            "{QUICK}services:\n  web: {{network: lan, vip: 10.99.0.100, ports: [80/tcp], backends: [a]}}\n"
        ),
        14,
        "with a gateway",
    );
}
