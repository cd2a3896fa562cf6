//! Human output of `rvswitch ctl`: aligned tables for lists, labelled
//! fields for single objects, and `--json` passthrough of the API's JSON.
//!
//! Owns: formatting only. Never: requests (the caller hands in replies).

use serde_json::Value;

use super::CtlError;
use super::template::Format;
use crate::client::Reply;

/// Aligned columns: each as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut s = line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        s.push_str(&line(r.clone()));
    }
    s
}

fn txt(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `access 10`, `trunk 10,20-30 native 1`, `tunnel 100`.
pub fn vlan_text(v: &Value) -> String {
    match v["mode"].as_str() {
        Some("access") => format!("access {}", txt(&v["pvid"])),
        Some("trunk") => {
            let mut s = format!("trunk {}", txt(&v["allowed"]));
            if !v["native"].is_null() {
                s.push_str(&format!(" native {}", txt(&v["native"])));
            }
            s
        }
        Some("tunnel") => format!("tunnel {}", txt(&v["svid"])),
        _ => txt(v),
    }
}

/// A labelled line of a `show` output and how to render it.
type Field<'a> = (&'a str, &'a dyn Fn(&Value) -> String);

pub(super) struct Output {
    pub json: bool,
    /// `-q`: only the name (or id) of each listed thing, one a line.
    pub quiet: bool,
    /// `--format`: each listed thing (or the one shown) through a template.
    pub format: Option<Format>,
}

/// The name a `-q` list prints for one item: its `name`, else its `id`,
/// else its first string field.
fn quiet_name(v: &Value) -> String {
    for k in ["name", "id", "mac", "prefix", "address"] {
        if let Some(s) = v.get(k).filter(|s| !s.is_null()) {
            return txt(s);
        }
    }
    v.as_object()
        .and_then(|o| o.values().find_map(|x| x.as_str().map(str::to_string)))
        .unwrap_or_else(|| txt(v))
}

impl Output {
    /// Whether the reply is printed as data (`--json`, `--format`, `-q`)
    /// rather than through a command's own table.
    fn raw(&self) -> bool {
        self.json || self.quiet || self.format.is_some()
    }

    /// `v` as data: through `--format` (each item of a list, or the one
    /// value), as names with `-q`, else as pretty JSON.
    fn print_value(&self, v: &Value) -> Result<(), CtlError> {
        let items: Vec<&Value> = match v.as_array() {
            Some(a) => a.iter().collect(),
            None => vec![v],
        };
        if let Some(f) = &self.format {
            let mut lines = Vec::with_capacity(items.len());
            for i in items {
                lines.push(f.render(i).map_err(CtlError::Usage)?);
            }
            match &f.table {
                Some(h) => {
                    let hs: Vec<&str> = h.iter().map(String::as_str).collect();
                    let rows: Vec<Vec<String>> = lines
                        .iter()
                        .map(|l| l.split('\t').map(str::to_string).collect())
                        .collect();
                    print!("{}", table(&hs, &rows));
                }
                None => {
                    for l in lines {
                        println!("{l}");
                    }
                }
            }
        } else if self.quiet {
            for i in items {
                println!("{}", quiet_name(i));
            }
        } else {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        }
        Ok(())
    }

    pub(super) fn print_json(&self, r: &Reply) -> Result<(), CtlError> {
        self.print_value(&r.json())
    }

    /// `ctl show`: the whole switch as a tree (like `ovs-vsctl show`):
    /// each domain with its gateway and ports, then the static routes.
    /// With `--json`: `{"domains": [...], "ports": [...], "routes": [...]}`.
    pub(super) fn show(
        &self,
        domains: &Reply,
        ports: &Reply,
        routes: &Reply,
    ) -> Result<(), CtlError> {
        let (d, p, r) = (domains.json(), ports.json(), routes.json());
        if self.raw() {
            let all = serde_json::json!({ "domains": d, "ports": p, "routes": r });
            return self.print_value(&all);
        }
        print!("{}", show_tree(&d, &p, &r));
        Ok(())
    }

    pub(super) fn done(&self, msg: &str) -> Result<(), CtlError> {
        if self.quiet || self.format.is_some() {
            return Ok(());
        }
        if self.json {
            println!("{{}}");
        } else {
            println!("{msg}");
        }
        Ok(())
    }

    pub(super) fn reply_or(&self, r: &Reply, msg: &str) -> Result<(), CtlError> {
        if self.raw() {
            self.print_json(r)
        } else {
            self.done(msg)
        }
    }

    fn list(
        &self,
        r: &Reply,
        headers: &[&str],
        row: impl Fn(&Value) -> Vec<String>,
    ) -> Result<(), CtlError> {
        if self.raw() {
            return self.print_json(r);
        }
        let rows: Vec<_> = r
            .json()
            .as_array()
            .map(|a| a.iter().map(&row).collect())
            .unwrap_or_default();
        print!("{}", table(headers, &rows));
        Ok(())
    }

    fn fields(&self, r: &Reply, keys: &[Field<'_>]) -> Result<(), CtlError> {
        if self.raw() {
            return self.print_json(r);
        }
        let v = r.json();
        let rows: Vec<_> = keys
            .iter()
            .map(|(k, f)| vec![format!("{k}:"), f(&v)])
            .collect();
        for line in table(&["", ""], &rows).lines().skip(1) {
            println!("{line}");
        }
        Ok(())
    }

    pub(super) fn domains(&self, r: &Reply) -> Result<(), CtlError> {
        self.list(
            r,
            &[
                "NAME", "PROTOCOL", "AGING", "MAX-MACS", "WORKER", "FDB", "PORTS",
            ],
            |d| {
                vec![
                    txt(&d["name"]),
                    txt(&d["vlan_protocol"]),
                    txt(&d["aging_secs"]),
                    txt(&d["max_macs"]),
                    txt(&d["worker"]),
                    txt(&d["fdb_entries"]),
                    names(&d["ports"]),
                ]
            },
        )
    }

    pub(super) fn routes(&self, r: &Reply) -> Result<(), CtlError> {
        self.list(r, &["TABLE", "PREFIX", "VIA", "DOMAIN", "KIND"], |v| {
            vec![
                txt(&v["table"]),
                txt(&v["prefix"]),
                txt(&v["via"]),
                txt(&v["domain"]),
                txt(&v["kind"]),
            ]
        })
    }

    pub(super) fn names(&self, r: &Reply) -> Result<(), CtlError> {
        self.list(r, &["NAME", "VLAN", "ADDRESSES"], |v| {
            let addrs = v["addresses"]
                .as_array()
                .map(|a| a.iter().map(txt).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            let vlan = if v["vlan"].is_null() {
                "gateway's".to_string()
            } else {
                txt(&v["vlan"])
            };
            vec![txt(&v["name"]), vlan, addrs]
        })
    }

    pub(super) fn dns_listeners(&self, r: &Reply) -> Result<(), CtlError> {
        self.list(r, &["VLAN", "ADDRESSES"], |v| {
            let addrs = v["addresses"]
                .as_array()
                .map(|a| a.iter().map(txt).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            vec![txt(&v["vid"]), addrs]
        })
    }

    pub(super) fn parents(&self, r: &Reply) -> Result<(), CtlError> {
        self.list(
            r,
            &["PARENT", "VLAN", "TAGGED", "PORT", "KIND", "STATE"],
            |v| {
                vec![
                    txt(&v["parent"]),
                    txt(&v["vlan"]),
                    txt(&v["tagged"]),
                    txt(&v["port"]),
                    txt(&v["kind"]),
                    txt(&v["state"]),
                ]
            },
        )
    }

    pub(super) fn services(&self, r: &Reply) -> Result<(), CtlError> {
        self.list(
            r,
            &["NAME", "MODE", "VIPS", "PORTS", "BACKENDS", "FLOWS"],
            |v| {
                let s = &v["service"];
                let join = |a: &Value, f: &dyn Fn(&Value) -> String| {
                    a.as_array()
                        .map(|a| a.iter().map(f).collect::<Vec<_>>().join(", "))
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "-".into())
                };
                let ports = join(&s["spec"]["ports"], &|p| port_text(p));
                let backends = join(&v["backends"], &|b| backend_text(b));
                vec![
                    txt(&s["name"]),
                    txt(&s["spec"]["mode"]),
                    join(&s["spec"]["vips"], &txt),
                    ports,
                    backends,
                    txt(&v["flows"]),
                ]
            },
        )
    }

    pub(super) fn service(&self, r: &Reply) -> Result<(), CtlError> {
        if self.raw() {
            return self.print_json(r);
        }
        let v = r.json();
        let s = &v["service"];
        println!(
            "service {} in {}  mode {}  flows {}",
            txt(&s["name"]),
            txt(&s["domain"]),
            txt(&s["spec"]["mode"]),
            txt(&v["flows"])
        );
        let list = |a: &Value, f: &dyn Fn(&Value) -> String| {
            a.as_array()
                .map(|a| a.iter().map(f).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        println!("vips: {}", list(&s["spec"]["vips"], &txt));
        println!("ports: {}", list(&s["spec"]["ports"], &port_text));
        println!("backends:");
        for b in v["backends"].as_array().into_iter().flatten() {
            println!("  {}", backend_text(b));
        }
        Ok(())
    }

    pub(super) fn remotes(&self, r: &Reply) -> Result<(), CtlError> {
        if self.raw() {
            return self.print_json(r);
        }
        let v = r.json();
        let list = |a: &Value| -> String {
            a.as_array()
                .map(|a| a.iter().map(txt).collect::<Vec<_>>().join(", "))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "-".into())
        };
        println!("port {}  vni {}", txt(&v["port"]), txt(&v["vni"]));
        println!("flood list: {}", list(&v["flood"]));
        if let Some(n) = v["neighbors"].as_array().filter(|n| !n.is_empty()) {
            println!(
                "ARP/ND answered locally for {} addresses ({} ARP, {} ND suppressed)",
                n.len(),
                txt(&v["stats"]["arp_suppressed"]),
                txt(&v["stats"]["nd_suppressed"])
            );
        }
        let rows: Vec<Vec<String>> = v["entries"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        let kind = if e["static"] == Value::Bool(true) {
                            "static".to_string()
                        } else {
                            format!("learned {}s", txt(&e["age_secs"]))
                        };
                        vec![txt(&e["mac"]), txt(&e["remote"]), kind]
                    })
                    .collect()
            })
            .unwrap_or_default();
        print!("{}", table(&["MAC", "REMOTE VTEP", "KIND"], &rows));
        Ok(())
    }

    pub(super) fn stp(&self, r: &Reply) -> Result<(), CtlError> {
        if self.raw() {
            return self.print_json(r);
        }
        let v = r.json();
        println!(
            "bridge {}  root {}",
            txt(&v["bridge_id"]),
            txt(&v["root_id"])
        );
        println!(
            "root port {}  root path cost {}  topology changes {}",
            txt(&v["root_port"]),
            txt(&v["root_path_cost"]),
            txt(&v["topology_changes"])
        );
        let rows: Vec<Vec<String>> = v["ports"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        vec![
                            txt(&p["port"]),
                            txt(&p["role"]),
                            txt(&p["state"]),
                            txt(&p["edge"]),
                            txt(&p["path_cost"]),
                            if p["rstp"] == Value::Bool(true) {
                                "rstp"
                            } else {
                                "stp"
                            }
                            .into(),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        print!(
            "{}",
            table(&["PORT", "ROLE", "STATE", "EDGE", "COST", "MODE"], &rows)
        );
        Ok(())
    }

    /// `ctl cluster`: this host's membership, then every member.
    pub(super) fn cluster(&self, r: &Reply) -> Result<(), CtlError> {
        if self.raw() {
            return self.print_json(r);
        }
        let v = r.json();
        println!(
            "store: {}\nhost: {} (VTEP {})\nlease: {} (TTL {} s)\nrevision: {} (resyncs {})",
            txt(&v["store"]),
            txt(&v["host"]),
            txt(&v["vtep"]),
            txt(&v["lease"]),
            txt(&v["ttl_secs"]),
            txt(&v["revision"]),
            txt(&v["resyncs"])
        );
        let rows: Vec<Vec<String>> = v["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| {
                        let this = if m["self"].as_bool() == Some(true) {
                            "*"
                        } else {
                            ""
                        };
                        vec![
                            format!("{}{this}", txt(&m["host"])),
                            txt(&m["vtep"]),
                            txt(&m["lease"]),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        print!("{}", table(&["MEMBER", "VTEP", "LEASE"], &rows));
        Ok(())
    }

    pub(super) fn cnm_networks(&self, r: &Reply) -> Result<(), CtlError> {
        self.list(
            r,
            &[
                "ID",
                "NAME",
                "SCOPE",
                "KIND",
                "SUBNETS",
                "INTERNAL",
                "ROUTING",
                "DOMAIN",
                "ENDPOINTS",
            ],
            |n| {
                let kind = match n["kind"]["type"].as_str() {
                    Some("vlan") => format!("vlan {}", txt(&n["kind"]["vid"])),
                    Some("vxlan") => format!("vxlan {}", txt(&n["kind"]["vni"])),
                    Some(k) => k.to_string(),
                    None => txt(&n["kind"]),
                };
                let subnets: Vec<String> = n["subnets"]
                    .as_array()
                    .map(|a| a.iter().map(|s| txt(&s["pool"])).collect())
                    .unwrap_or_default();
                vec![
                    txt(&n["id"]).chars().take(12).collect(),
                    txt(&n["name"]),
                    n["options"]["rvswitch.scope"]
                        .as_str()
                        .unwrap_or("local")
                        .to_string(),
                    kind,
                    subnets.join(" "),
                    txt(&n["internal"]),
                    txt(&n["routing"]),
                    txt(&n["domain"]),
                    txt(&n["endpoints"]),
                ]
            },
        )
    }

    pub(super) fn cnm_endpoints(&self, r: &Reply) -> Result<(), CtlError> {
        self.list(
            r,
            &[
                "ID",
                "NETWORK",
                "MAC",
                "IPV4",
                "IPV6",
                "PORT",
                "SANDBOX",
                "PUBLISHED",
            ],
            |e| {
                vec![
                    txt(&e["id"]).chars().take(12).collect(),
                    txt(&e["network_id"]).chars().take(12).collect(),
                    txt(&e["mac"]),
                    txt(&e["ipv4"]),
                    txt(&e["ipv6"]),
                    txt(&e["ifaces"]["port"]),
                    txt(&e["sandbox"]),
                    published(&e["published"]),
                ]
            },
        )
    }

    pub(super) fn cnm_sandboxes(&self, r: &Reply) -> Result<(), CtlError> {
        self.list(r, &["SANDBOX", "ENDPOINTS", "ROUTES"], |s| {
            let ids = |v: &Value| -> String {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| txt(x).chars().take(12).collect::<String>())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default()
            };
            vec![
                txt(&s["key"]),
                ids(&s["endpoints"]),
                s["routes"].as_array().map_or(0, |a| a.len()).to_string(),
            ]
        })
    }

    pub(super) fn neighbors(&self, r: &Reply) -> Result<(), CtlError> {
        self.list(r, &["DOMAIN", "ADDRESS", "MAC", "STATE", "PENDING"], |v| {
            vec![
                txt(&v["domain"]),
                txt(&v["ip"]),
                txt(&v["mac"]),
                txt(&v["state"]),
                txt(&v["pending"]),
            ]
        })
    }

    pub(super) fn domain(&self, r: &Reply) -> Result<(), CtlError> {
        self.fields(
            r,
            &[
                ("name", &|v| txt(&v["name"])),
                ("vlan protocol", &|v| txt(&v["vlan_protocol"])),
                ("aging secs", &|v| txt(&v["aging_secs"])),
                ("max macs", &|v| txt(&v["max_macs"])),
                ("worker", &|v| txt(&v["worker"])),
                ("fdb entries", &|v| txt(&v["fdb_entries"])),
                ("gateway", &|v| gateway_text(&v["gateway"])),
                ("ports", &|v| names(&v["ports"])),
            ],
        )
    }

    pub(super) fn ports(&self, r: &Reply) -> Result<(), CtlError> {
        self.list(
            r,
            &[
                "NAME", "KIND", "IFACE", "DOMAIN", "VLAN", "LEARN", "ENABLED", "STATE", "LEARNED",
                "ERROR",
            ],
            |p| {
                vec![
                    txt(&p["name"]),
                    txt(&p["kind"]),
                    txt(&p["iface"]),
                    txt(&p["domain"]),
                    vlan_text(&p["vlan"]),
                    txt(&p["learning"]),
                    txt(&p["enabled"]),
                    txt(&p["state"]),
                    txt(&p["learned"]),
                    txt(&p["error"]),
                ]
            },
        )
    }

    pub(super) fn port(&self, r: &Reply) -> Result<(), CtlError> {
        self.fields(
            r,
            &[
                ("name", &|v| txt(&v["name"])),
                ("kind", &|v| txt(&v["kind"])),
                ("iface", &|v| {
                    format!("{} queue {}", txt(&v["iface"]), txt(&v["queue"]))
                }),
                ("domain", &|v| txt(&v["domain"])),
                ("vlan", &|v| vlan_text(&v["vlan"])),
                ("learning", &|v| txt(&v["learning"])),
                ("enabled", &|v| txt(&v["enabled"])),
                ("mac limit", &|v| txt(&v["mac_limit"])),
                ("storm control", &|v| match &v["storm_control"] {
                    Value::Null => "off".into(),
                    s => format!("{} pps, burst {}", txt(&s["pps"]), txt(&s["burst"])),
                }),
                ("worker", &|v| txt(&v["worker"])),
                ("state", &|v| txt(&v["state"])),
                ("error", &|v| txt(&v["error"])),
                ("learned", &|v| txt(&v["learned"])),
            ],
        )
    }

    pub(super) fn fdb(&self, r: &Reply) -> Result<(), CtlError> {
        self.list(r, &["VID", "MAC", "PORT", "TYPE", "AGE"], |e| {
            let stat = e["static"].as_bool() == Some(true);
            vec![
                txt(&e["vid"]),
                txt(&e["mac"]),
                txt(&e["port"]),
                if stat {
                    "static"
                } else if e["damped"].as_bool() == Some(true) {
                    "damped"
                } else {
                    "learned"
                }
                .into(),
                if stat {
                    "-".into()
                } else {
                    txt(&e["age_secs"])
                },
            ]
        })
    }

    pub(super) fn stats(&self, r: &Reply) -> Result<(), CtlError> {
        if self.raw() {
            return self.print_json(r);
        }
        let v = r.json();
        let empty = Vec::new();
        let ports = v["ports"].as_array().unwrap_or(&empty);
        let rows: Vec<_> = ports
            .iter()
            .map(|p| {
                let drops: u64 = p["drops"]
                    .as_object()
                    .map_or(0, |d| d.values().filter_map(Value::as_u64).sum());
                vec![
                    txt(&p["name"]),
                    txt(&p["rx_packets"]),
                    txt(&p["rx_bytes"]),
                    txt(&p["tx_packets"]),
                    txt(&p["tx_bytes"]),
                    drops.to_string(),
                    txt(&p["learned"]),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "PORT", "RX-PKTS", "RX-BYTES", "TX-PKTS", "TX-BYTES", "DROPS", "LEARNED"
                ],
                &rows
            )
        );
        let drops: Vec<_> = ports
            .iter()
            .flat_map(|p| {
                nonzero(&p["drops"])
                    .into_iter()
                    .map(move |(k, n)| vec![txt(&p["name"]), k, n])
            })
            .collect();
        if !drops.is_empty() {
            print!("\n{}", table(&["PORT", "DROP REASON", "COUNT"], &drops));
        }
        let stages: Vec<_> = nonzero(&v["stages"])
            .into_iter()
            .map(|(k, n)| vec![k, n])
            .collect();
        if !stages.is_empty() {
            print!("\n{}", table(&["STAGE COUNTER", "COUNT"], &stages));
        }
        Ok(())
    }

    pub(super) fn port_stats(&self, r: &Reply) -> Result<(), CtlError> {
        if self.raw() {
            return self.print_json(r);
        }
        let p = r.json();
        let mut rows: Vec<_> = [
            "rx_packets",
            "rx_bytes",
            "tx_packets",
            "tx_bytes",
            "learned",
        ]
        .iter()
        .map(|k| vec![k.to_string(), txt(&p[*k])])
        .collect();
        rows.extend(
            nonzero(&p["drops"])
                .into_iter()
                .map(|(k, n)| vec![format!("drop {k}"), n]),
        );
        print!("{}", table(&["COUNTER", "VALUE"], &rows));
        Ok(())
    }

    pub(super) fn trace(&self, r: &Reply) -> Result<(), CtlError> {
        if self.raw() {
            return self.print_json(r);
        }
        let v = r.json();
        let recs = v.as_array().cloned().unwrap_or_default();
        if recs.is_empty() {
            println!("no packets traced");
        }
        for t in recs {
            println!(
                "packet {} from {} ({} bytes, worker {}): {}",
                txt(&t["seq"]),
                txt(&t["in_port"]),
                txt(&t["len"]),
                txt(&t["worker"]),
                txt(&t["head_hex"])
            );
            for s in t["steps"].as_array().cloned().unwrap_or_default() {
                println!("  {:<10} {}", txt(&s["stage"]), txt(&s["verdict"]));
            }
        }
        Ok(())
    }
}

impl Output {
    /// `trace inject`: the frame, each stage's verdict, then what would be
    /// sent (as `ofproto/trace` ends with its datapath actions).
    pub(super) fn trace_inject(&self, r: &Reply) -> Result<(), CtlError> {
        if self.raw() {
            return self.print_json(r);
        }
        let v = r.json();
        println!(
            "frame from {} ({} bytes, worker {}): {}",
            txt(&v["in_port"]),
            txt(&v["len"]),
            txt(&v["worker"]),
            txt(&v["frame"])
        );
        for s in v["steps"].as_array().cloned().unwrap_or_default() {
            println!("  {:<10} {}", txt(&s["stage"]), txt(&s["verdict"]));
        }
        let sent = v["sent"].as_array().cloned().unwrap_or_default();
        if sent.is_empty() {
            println!("would send nothing (dry run)");
        } else {
            println!(
                "would send {} frame(s) (dry run, nothing sent):",
                sent.len()
            );
        }
        for s in sent {
            println!(
                "  {:<10} {:>5} bytes  {}",
                txt(&s["port"]),
                txt(&s["len"]),
                txt(&s["frame"])
            );
        }
        Ok(())
    }
}

fn gateway_text(g: &Value) -> String {
    if g.is_null() {
        return "none (internal)".into();
    }
    let addrs: Vec<String> = g["addresses"]
        .as_array()
        .map(|a| a.iter().map(txt).collect())
        .unwrap_or_default();
    let mut s = format!(
        "{} vlan {} table {}",
        addrs.join(" "),
        txt(&g["vid"]),
        txt(&g["table"])
    );
    if let Some(m) = g["mac"].as_str() {
        s += &format!(" mac {m}");
    }
    if g["routing"] == Value::Bool(false) {
        s += " (routing off)";
    }
    s
}

fn names(v: &Value) -> String {
    let n: Vec<String> = v
        .as_array()
        .map(|a| a.iter().map(txt).collect())
        .unwrap_or_default();
    if n.is_empty() {
        "-".into()
    } else {
        n.join(",")
    }
}

fn nonzero(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                .map(|(k, n)| (k.clone(), txt(n)))
                .collect()
        })
        .unwrap_or_default()
}

/// The text of `ctl show`.
pub fn show_tree(domains: &Value, ports: &Value, routes: &Value) -> String {
    let empty = Vec::new();
    let ports = ports.as_array().unwrap_or(&empty);
    let mut s = String::new();
    for d in domains.as_array().unwrap_or(&empty) {
        let name = txt(&d["name"]);
        s.push_str(&format!(
            "domain {name} (worker {}, {} FDB entries{})\n",
            txt(&d["worker"]),
            txt(&d["fdb_entries"]),
            if d["stp"].is_object() { ", RSTP" } else { "" }
        ));
        let g = &d["gateway"];
        if g.is_object() {
            let addrs: Vec<String> = g["addresses"]
                .as_array()
                .map(|a| a.iter().map(txt).collect())
                .unwrap_or_default();
            let mac = if g["mac"].is_string() {
                format!(" mac {}", txt(&g["mac"]))
            } else {
                String::new()
            };
            let isolated = if g["routing"] == Value::Bool(false) {
                " (isolated)"
            } else {
                ""
            };
            s.push_str(&format!(
                "    gateway {} vlan {}{mac}{isolated}\n",
                addrs.join(" "),
                txt(&g["vid"]),
            ));
        }
        for p in ports.iter().filter(|p| p["domain"] == d["name"]) {
            let mut line = format!("    port {} {}", txt(&p["name"]), txt(&p["kind"]));
            if p["iface"].is_string() {
                line.push_str(&format!(" iface {}", txt(&p["iface"])));
            }
            line.push_str(&format!(" {} {}", vlan_text(&p["vlan"]), txt(&p["state"])));
            if p["error"].is_string() {
                line.push_str(&format!(": {}", txt(&p["error"])));
            }
            s.push_str(&line);
            s.push('\n');
        }
    }
    let statics: Vec<&Value> = routes
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter(|r| r["kind"] == "static")
        .collect();
    if !statics.is_empty() {
        s.push_str("routes\n");
        for r in statics {
            s.push_str(&format!(
                "    table {} {} via {} domain {}\n",
                txt(&r["table"]),
                txt(&r["prefix"]),
                txt(&r["via"]),
                txt(&r["domain"])
            ));
        }
    }
    s
}

/// `80/tcp`, `80:8080/tcp`.
fn port_text(p: &Value) -> String {
    let t = p["target_port"].as_u64();
    match t {
        Some(t) => format!("{}:{t}/{}", txt(&p["port"]), txt(&p["protocol"])),
        None => format!("{}/{}", txt(&p["port"]), txt(&p["protocol"])),
    }
}

/// `web1 10.0.0.5 up`, `gone (no address)`.
fn backend_text(b: &Value) -> String {
    let addr = b["address"].as_str().unwrap_or("(no address)");
    let name = txt(&b["backend"]);
    let state = match b["up"].as_bool() {
        Some(true) => " up",
        Some(false) => " down",
        None => "",
    };
    if name == addr {
        format!("{addr}{state}")
    } else {
        format!("{name} {addr}{state}")
    }
}

/// An endpoint's published ports as `docker ps` shows them:
/// `[HOSTIP:]HOSTPORT->PORT/PROTO`, comma-separated.
fn published(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|b| {
                    let proto = match b["proto"].as_u64() {
                        Some(17) => "udp".to_string(),
                        Some(6) => "tcp".to_string(),
                        p => format!("proto{}", p.unwrap_or(0)),
                    };
                    let ip = match &b["host_ip"] {
                        Value::String(ip) if ip.contains(':') => format!("[{ip}]:"),
                        Value::String(ip) => format!("{ip}:"),
                        _ => String::new(),
                    };
                    format!("{ip}{}->{}/{proto}", b["host_port"], b["port"])
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["wide-cell".into(), "x".into()],
                vec!["b".into(), "y".into()],
            ],
        );
        assert_eq!(t, "A          LONGER\nwide-cell  x\nb          y\n");
    }

    #[test]
    fn vlan_text_reads_each_mode() {
        assert_eq!(vlan_text(&json!({"mode":"access","pvid":10})), "access 10");
        assert_eq!(
            vlan_text(&json!({"mode":"trunk","allowed":"10-20","native":1})),
            "trunk 10-20 native 1"
        );
        assert_eq!(vlan_text(&json!({"mode":"tunnel","svid":7})), "tunnel 7");
    }
}
