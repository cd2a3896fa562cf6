//! `lab inspect`, `lab exec` and `lab check`.

use std::collections::BTreeMap;
use std::process::Command;

use rvs_lab::{Probe, Topology, Want, format_mac};
use serde_json::json;

use super::{LabError, Paths, err};
use crate::client::Client;

/// Aligned columns, each as wide as its widest cell.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let all = std::iter::once(headers.iter().map(|h| h.to_string()).collect::<Vec<_>>())
        .chain(rows.iter().cloned());
    for r in all {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Port states from the daemons (`None`: no daemon answered).
type PortStates = BTreeMap<String, String>;

fn port_states(topo: &Topology) -> Option<PortStates> {
    let paths = Paths::of(&topo.name);
    let mut out = BTreeMap::new();
    let mut any = false;
    for sw in &topo.switches {
        let sock = paths.socket(&sw.name);
        if !sock.exists() {
            continue;
        }
        let Ok(c) = Client::new(&sock) else { continue };
        let Ok(r) = c.get("/v1/ports") else { continue };
        if r.status != 200 {
            continue;
        }
        any = true;
        for p in r.json().as_array().into_iter().flatten() {
            if let Some(name) = p["name"].as_str() {
                let mut state = p["state"].as_str().unwrap_or("?").to_string();
                if let Some(e) = p["error"].as_str().or(p["last_error"].as_str()) {
                    state = format!("{state} ({e})");
                }
                out.insert(name.to_string(), state);
            }
        }
    }
    any.then_some(out)
}

/// The node/interface table; `states` adds each switch port's state.
pub fn print_table(topo: &Topology, states: Option<&PortStates>) {
    let several = topo.switches.len() > 1;
    let mut rows = Vec::new();
    for n in &topo.nodes {
        for i in &n.interfaces {
            let net = topo.network(&i.network).expect("validated");
            let addrs: Vec<String> = i.addresses().map(|a| a.to_string()).collect();
            // A global network's port is the CNM driver's, made for the
            // endpoint named after the link.
            let mut port = match net.global {
                true => format!("endpoint {} (tap)", i.link),
                false => format!("{} ({})", i.link, i.port.as_str()),
            };
            if several {
                port = format!("{}/{port}", i.switch);
            }
            let network = match net.global {
                true => format!(
                    "{} (global, {})",
                    net.name,
                    crate::fabric::api_domain_name(&net.name)
                ),
                false => format!("{} ({} vlan {})", net.name, net.domain, net.vlan),
            };
            let mut row = vec![
                n.name.clone(),
                n.netns.clone(),
                i.name.clone(),
                if addrs.is_empty() {
                    "-".into()
                } else {
                    addrs.join(" ")
                },
                format_mac(&i.mac),
                port,
                network,
            ];
            if let Some(s) = states {
                let state = match net.global {
                    true => "-".to_string(),
                    false => s.get(&i.link).cloned().unwrap_or_else(|| "missing".into()),
                };
                row.push(state);
            }
            rows.push(row);
        }
    }
    let mut headers = vec![
        "NODE",
        "NAMESPACE",
        "IFACE",
        "ADDRESSES",
        "MAC",
        "SWITCH PORT",
        "NETWORK",
    ];
    if states.is_some() {
        headers.push("PORT STATE");
    }
    print!("{}", table(&headers, &rows));
    let gateways: Vec<Vec<String>> = topo
        .networks
        .iter()
        .filter(|n| n.gateway)
        .map(|n| {
            let addrs: Vec<String> = n.gateway_addrs().iter().map(|a| a.to_string()).collect();
            vec![
                n.name.clone(),
                n.switches.join(","),
                n.domain.clone(),
                addrs.join(" "),
            ]
        })
        .collect();
    if !gateways.is_empty() {
        println!();
        print!(
            "{}",
            table(&["GATEWAY ON", "SWITCH", "DOMAIN", "ADDRESSES"], &gateways)
        );
    }
    let routes: Vec<Vec<String>> = topo
        .switches
        .iter()
        .flat_map(|s| {
            s.routes.iter().map(|r| {
                vec![
                    s.name.clone(),
                    r.to.to_string(),
                    r.via.to_string(),
                    r.network.clone(),
                ]
            })
        })
        .collect();
    if !routes.is_empty() {
        println!();
        print!(
            "{}",
            table(&["SWITCH", "ROUTE TO", "VIA", "NETWORK"], &routes)
        );
    }
    if !topo.trunks.is_empty() {
        let rows: Vec<Vec<String>> = topo
            .trunks
            .iter()
            .map(|t| {
                let end = |e: &(String, String, String)| format!("{}:{} ({})", e.0, e.1, e.2);
                vec![
                    t.name.clone(),
                    end(&t.ends[0]),
                    end(&t.ends[1]),
                    t.allowed(),
                    t.native.map_or("-".into(), |v| v.to_string()),
                ]
            })
            .collect();
        println!();
        print!(
            "{}",
            table(&["TRUNK", "END A", "END B", "VLANS", "NATIVE"], &rows)
        );
    }
}

pub fn inspect(topo: &Topology, as_json: bool) -> Result<(), LabError> {
    let states = port_states(topo);
    if as_json {
        let nodes: Vec<_> = topo
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "name": n.name,
                    "netns": n.netns,
                    "interfaces": n.interfaces.iter().map(|i| json!({
                        "name": i.name,
                        "network": i.network,
                        "switch": i.switch,
                        "port": i.link,
                        "kind": i.port.as_str(),
                        "addresses": i.addresses().map(|a| a.to_string()).collect::<Vec<_>>(),
                        "mac": format_mac(&i.mac),
                        "port_state": states.as_ref().and_then(|s| s.get(&i.link)),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let paths = Paths::of(&topo.name);
        let sockets: BTreeMap<&str, String> = topo
            .switches
            .iter()
            .map(|s| (s.name.as_str(), paths.socket(&s.name).display().to_string()))
            .collect();
        let v = json!({ "lab": topo.name, "deployed": states.is_some(), "switches": sockets, "nodes": nodes });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    let paths = Paths::of(&topo.name);
    match &states {
        Some(_) => println!("lab {}: deployed", topo.name),
        None => println!("lab {}: not deployed (no daemon answers)", topo.name),
    }
    for s in &topo.switches {
        println!(
            "switch {}: rvswitch ctl --socket {}",
            s.name,
            paths.socket(&s.name).display()
        );
    }
    println!();
    print_table(topo, states.as_ref());
    Ok(())
}

pub fn exec(topo: &Topology, node: &str, cmd: &[String]) -> Result<i32, LabError> {
    let Some(n) = topo.node(node) else {
        let names: Vec<&str> = topo.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(err(format!(
            "lab {} has no node {node:?} (nodes: {})",
            topo.name,
            names.join(", ")
        )));
    };
    if !rvs_drivers::netns::netns_path(&n.netns).exists() {
        return Err(err(format!(
            "node {node}: namespace {} does not exist (is lab {} deployed?)",
            n.netns, topo.name
        )));
    }
    let st = if n.image.is_some() {
        super::container::exec_command(n, cmd)
            .status()
            .map_err(|e| err(format!("run docker exec (is docker.io installed?): {e}")))?
    } else {
        Command::new("ip")
            .args(["netns", "exec", &n.netns])
            .args(cmd)
            .status()
            .map_err(|e| err(format!("run ip netns exec (is iproute2 installed?): {e}")))?
    };
    Ok(st.code().unwrap_or(1))
}

/// One ping from inside `ns`.
fn ping(ns: &str, addr: &str) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-c", "1", "-W", "1", "-q", addr,
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Run one probe: a reach gets five tries (the first may pay for ARP/ND
/// and learning), an isolation one.
fn run_probe(topo: &Topology, p: &Probe) -> bool {
    let ns = &topo.node(&p.from).expect("validated").netns;
    let addr = p.addr.to_string();
    match p.want {
        Want::Reach => (0..5).any(|_| ping(ns, &addr)),
        Want::Isolate => !ping(ns, &addr),
    }
}

pub fn check(topo: &Topology) -> Result<i32, LabError> {
    if topo.probes.is_empty() {
        println!(
            "lab {}: no expectations (add `expect:` to the file)",
            topo.name
        );
        return Ok(0);
    }
    for n in &topo.nodes {
        if !rvs_drivers::netns::netns_path(&n.netns).exists() {
            return Err(err(format!(
                "lab {} is not deployed (namespace {} is missing): run `rvswitch lab deploy` first",
                topo.name, n.netns
            )));
        }
    }
    // In parallel, a bounded number at a time.
    let mut results = vec![false; topo.probes.len()];
    const PARALLEL: usize = 16;
    for (chunk_i, chunk) in topo.probes.chunks(PARALLEL).enumerate() {
        let got: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = chunk
                .iter()
                .map(|p| s.spawn(move || run_probe(topo, p)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(false)).collect()
        });
        results[chunk_i * PARALLEL..chunk_i * PARALLEL + got.len()].copy_from_slice(&got);
    }
    // Grid: row pings column. ok / FAIL for reach, iso / LEAK for isolate.
    let names: Vec<&str> = topo.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut rows = Vec::new();
    for from in &names {
        let mut row = vec![from.to_string()];
        for to in &names {
            let mut cell: Vec<&str> = Vec::new();
            for (p, ok) in topo.probes.iter().zip(&results) {
                if p.from != *from || p.to != *to {
                    continue;
                }
                let c = match (p.want, ok) {
                    (Want::Reach, true) => "ok",
                    (Want::Reach, false) => "FAIL",
                    (Want::Isolate, true) => "iso",
                    (Want::Isolate, false) => "LEAK",
                };
                if !cell.contains(&c) {
                    cell.push(c);
                }
            }
            row.push(if cell.is_empty() {
                "-".into()
            } else {
                cell.join("/")
            });
        }
        rows.push(row);
    }
    let mut headers = vec!["from \\ to"];
    headers.extend(names.iter().copied());
    println!(
        "lab {}: ping from row to column (ok: reached as expected, iso: isolated as expected)",
        topo.name
    );
    print!("{}", table(&headers, &rows));
    let failed: Vec<&Probe> = topo
        .probes
        .iter()
        .zip(&results)
        .filter(|(_, ok)| !**ok)
        .map(|(p, _)| p)
        .collect();
    for p in &failed {
        match p.want {
            Want::Reach => println!("FAIL {} -> {} ({}): no reply", p.from, p.to, p.addr),
            Want::Isolate => println!(
                "LEAK {} -> {} ({}): replied, but they should be isolated",
                p.from, p.to, p.addr
            ),
        }
    }
    let reach = topo.probes.iter().filter(|p| p.want == Want::Reach).count();
    println!(
        "{} of {} checks passed ({} reach, {} isolate; v4 and v6 where both ends have addresses)",
        topo.probes.len() - failed.len(),
        topo.probes.len(),
        reach,
        topo.probes.len() - reach
    );
    Ok(if failed.is_empty() { 0 } else { 1 })
}
