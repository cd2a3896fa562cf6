//! `rvswitch lab`, driven as an operator drives it: the real binary deploys
//! the examples (renamed to a unique lab name, so test runs and labs of the
//! same machine do not meet), checks them, inspects, draws and destroys
//! them, and the kernel is asked directly (`ip netns`, `ip -o link`,
//! `/proc`) whether anything was left behind. Root only: without root the
//! deploying tests print SKIP (and fail under RVS_TEST_STRICT=1).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rvs_drivers::testutil::{root_or_skip, unique};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_rvswitch");

fn example(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn rvs(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A lab file under a unique name, destroyed (and the file removed) on
/// drop, also when the test fails half-way.
struct Lab {
    name: String,
    file: PathBuf,
}

impl Lab {
    /// `yaml` with its `name:` line replaced by a unique name.
    fn new(yaml: &str) -> Lab {
        let name = unique("lt").replace('-', "_");
        let body: Vec<String> = yaml
            .lines()
            .map(|l| {
                if l.starts_with("name:") {
                    format!("name: {name}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        let file = std::env::temp_dir().join(format!("{name}.yml"));
        std::fs::write(&file, body.join("\n") + "\n").unwrap();
        Lab { name, file }
    }

    fn f(&self) -> &str {
        self.file.to_str().unwrap()
    }

    /// Replace the file with another version, under the lab's name.
    fn rewrite(&self, yaml: &str) {
        let body: Vec<String> = yaml
            .lines()
            .map(|l| {
                if l.starts_with("name:") {
                    format!("name: {}", self.name)
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(&self.file, body.join("\n") + "\n").unwrap();
    }

    /// `rvswitch ctl --json ARGS` on switch `sw` of the lab.
    fn ctl(&self, sw: &str, args: &[&str]) -> serde_json::Value {
        let sock = format!("/run/rvswitch/lab/{}/{sw}.sock", self.name);
        common::ctl_json(Path::new(&sock), args)
    }

    /// The names of the objects a `ctl --json ... list` returns, sorted.
    fn names(&self, sw: &str, args: &[&str]) -> Vec<String> {
        let v = self.ctl(sw, args);
        let mut n: Vec<String> = v
            .as_array()
            .unwrap_or_else(|| panic!("{args:?}: {v}"))
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    }

    #[track_caller]
    fn ok(&self, cmd: &str, extra: &[&str]) -> String {
        let mut args = vec!["lab", cmd, self.f()];
        args.extend_from_slice(extra);
        let o = rvs(&args);
        assert!(o.status.success(), "rvswitch lab {cmd}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Destroy the lab and assert nothing of it is left.
    #[track_caller]
    fn destroy_clean(&self) {
        self.ok("destroy", &[]);
        let left = self.leftovers();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    /// Names the kernel still has that belong to this lab.
    fn leftovers(&self) -> Vec<String> {
        let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
        let mut out: Vec<String> = String::from_utf8_lossy(&ns.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&links.stdout).lines())
            .filter(|l| l.contains(&format!("{}-", self.name)))
            .map(str::to_string)
            .collect();
        // Processes: the lab's daemons name their socket in the command line.
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
                && String::from_utf8_lossy(&cmd).contains(&format!("/lab/{}/", self.name))
            {
                out.push(format!("process {}", String::from_utf8_lossy(&cmd)));
            }
        }
        // Per-namespace /etc files (the nodes' resolv.conf).
        if let Ok(d) = std::fs::read_dir("/etc/netns") {
            for e in d.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(&format!("{}-", self.name)) {
                    out.push(format!("/etc/netns/{n}"));
                }
            }
        }
        for d in [
            format!("/run/rvswitch/lab/{}", self.name),
            format!("/var/lib/rvswitch/lab/{}", self.name),
        ] {
            if Path::new(&d).exists() {
                out.push(d);
            }
        }
        out
    }
}

impl Lab {
    /// `lab exec FILE from -- ping -c1 to`: `to` by its node name, through
    /// the embedded DNS of `from`'s network (its resolv.conf).
    #[track_caller]
    fn ping_by_name(&self, from: &str, to: &str) {
        let o = rvs(&[
            "lab",
            "exec",
            self.f(),
            from,
            "--",
            "ping",
            "-c1",
            "-W2",
            to,
        ]);
        assert!(o.status.success(), "{from}: ping {to}: {}", text(&o));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = rvs(&["lab", "destroy", "--lab", &self.name]);
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Host-side link name → ifindex, for the lab's links.
/// "index: name" of every link of the lab's nodes (loopback aside), in
/// the host and in each node's namespace: a link made again gets a new
/// index.
fn link_indexes(lab: &str) -> Vec<String> {
    let prefix = format!("{lab}-");
    let lines = |args: &[&str]| -> Vec<String> {
        let o = Command::new("ip").args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.split('@').next().unwrap().to_string())
            .collect()
    };
    let mut v: Vec<String> = lines(&["-o", "link"])
        .into_iter()
        .filter(|l| l.contains(&prefix))
        .collect();
    for ns in lines(&["netns", "list"]) {
        let ns = ns.split_whitespace().next().unwrap_or("").to_string();
        if !ns.starts_with(&prefix) {
            continue;
        }
        v.extend(
            lines(&["-n", &ns, "-o", "link"])
                .into_iter()
                .filter(|l| !l.contains(" lo:"))
                .map(|l| format!("{ns} {l}")),
        );
    }
    v.sort();
    v
}

fn processes_named(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
        })
        .count()
}

#[test]
fn quickstart_deploys_checks_redeploys_unchanged_and_destroys_everything() {
    if !root_or_skip("quickstart_deploys_checks_redeploys_unchanged_and_destroys_everything") {
        return;
    }
    // A start-up command that leaves a process behind in node a: destroy
    // must end it (it would keep the namespace alive).
    let marker = format!("sleep 7{}", std::process::id());
    let yaml = example("quickstart.yml").replace(
        "      - {network: lan, address: 10.99.0.1/24}",
        &format!("      - {{network: lan, address: 10.99.0.1/24}}\n    exec: [\"{marker} &\"]"),
    );
    let lab = Lab::new(&yaml);
    let out = lab.ok("deploy", &[]);
    assert!(out.contains(&format!("{}-a", lab.name)), "{out}");
    assert_eq!(processes_named(&marker), 1, "the exec command runs once");
    let before = link_indexes(&lab.name);
    assert_eq!(before.len(), 2, "{before:?}");

    // Idempotent: nothing is re-made, the command does not run again.
    lab.ok("deploy", &[]);
    assert_eq!(link_indexes(&lab.name), before, "links were re-made");
    assert_eq!(processes_named(&marker), 1, "exec ran twice");

    let grid = lab.ok("check", &[]);
    assert!(grid.contains("4 of 4 checks passed"), "{grid}");
    let row_a = grid.lines().find(|l| l.starts_with("a ")).expect("row a");
    assert!(row_a.contains("ok") && !row_a.contains("FAIL"), "{grid}");

    let table = lab.ok("inspect", &[]);
    assert!(table.contains("PORT STATE"), "{table}");
    for want in ["10.99.0.1/24", "fd00:99::2/64", "(tap)", "up"] {
        assert!(table.contains(want), "{want} missing:\n{table}");
    }
    let list = text(&rvs(&["lab", "list"]));
    let mine = list
        .lines()
        .find(|l| l.starts_with(&lab.name))
        .unwrap_or_default()
        .to_string();
    assert!(
        mine.contains("deployed") && mine.contains("1/1 answering"),
        "{list}"
    );
    let json: serde_json::Value = serde_json::from_str(&lab.ok("inspect", &["--json"])).unwrap();
    assert_eq!(json["deployed"], true, "{json}");

    let o = rvs(&[
        "lab",
        "exec",
        lab.f(),
        "b",
        "--",
        "ip",
        "-br",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("10.99.0.2/24"), "{}", text(&o));
    let o = rvs(&["lab", "exec", lab.f(), "b", "--", "false"]);
    assert_eq!(o.status.code(), Some(1), "exec passes the exit status on");
    // Nodes find each other by name: each node's resolver is the embedded
    // DNS of its network (no gateway here: a DNS-only address).
    let conf = std::fs::read_to_string(format!("/etc/netns/{}-a/resolv.conf", lab.name))
        .expect("a's resolv.conf");
    assert!(conf.contains("nameserver 10.99.0.254"), "{conf}");
    lab.ping_by_name("a", "b");
    lab.ping_by_name("b", "a");

    lab.destroy_clean();
    assert_eq!(processes_named(&marker), 0, "node process left running");
    // Destroying again is fine.
    lab.ok("destroy", &[]);
}

#[test]
fn vlans_lab_passes_both_halves_of_its_expectations() {
    if !root_or_skip("vlans_lab_passes_both_halves_of_its_expectations") {
        return;
    }
    let lab = Lab::new(&example("vlans.yml"));
    lab.ok("deploy", &[]);
    let grid = lab.ok("check", &[]);
    assert!(grid.contains("18 of 18 checks passed"), "{grid}");
    assert!(grid.contains("iso") && grid.contains("ok"), "{grid}");
    let table = lab.ok("inspect", &[]);
    assert!(table.contains("TRUNK"), "{table}");
    // DNS in a domain that carries two VLANs: each VLAN has its own
    // resolver (red's is west's DNS-only gateway, blue's a DNS listener
    // beside it; east's nodes reach them over the trunk) and its own names.
    let conf = |node: &str| {
        std::fs::read_to_string(format!("/etc/netns/{}-{node}/resolv.conf", lab.name))
            .unwrap_or_else(|e| panic!("{node}'s resolv.conf: {e}"))
    };
    let (red, blue) = (conf("r1"), conf("b1"));
    assert!(red.contains("nameserver 10.10.0.254"), "{red}");
    assert!(blue.contains("nameserver 10.10.0.253"), "{blue}");
    assert_eq!(conf("r2"), red.replace("r1", "r2"), "one resolver per VLAN");
    assert_eq!(
        conf("b2"),
        blue.replace("b1", "b2"),
        "one resolver per VLAN"
    );
    lab.ping_by_name("r1", "r3");
    lab.ping_by_name("r2", "r1");
    lab.ping_by_name("b1", "b2");
    lab.ping_by_name("b2", "b1");
    for (from, other) in [("r1", "b1"), ("b1", "r1"), ("r2", "b2")] {
        let o = rvs(&["lab", "exec", lab.f(), from, "--", "getent", "hosts", other]);
        assert!(
            !o.status.success(),
            "{from} resolved {other} of the other VLAN: {}",
            text(&o)
        );
    }
    lab.destroy_clean();
}

/// `--reconfigure` of a domain carrying two VLANs whose routed gateway
/// moves into the VLAN of its DNS listener: the listener gives way, the
/// other VLAN gets one, and each VLAN still resolves its own names.
#[test]
fn vlans_lab_reconfigured_with_a_gateway_moves_its_dns_listener() {
    if !root_or_skip("vlans_lab_reconfigured_with_a_gateway_moves_its_dns_listener") {
        return;
    }
    let before = example("vlans.yml");
    let lab = Lab::new(&before);
    lab.ok("deploy", &[]);
    lab.ping_by_name("b1", "b2");
    lab.rewrite(&before.replace(
        "blue-west: {domain: west, vlan: 20, subnet: 10.10.0.0/24}",
        "blue-west: {domain: west, vlan: 20, subnet: 10.10.0.0/24, gateway: true}",
    ));
    lab.ok("deploy", &["--reconfigure"]);
    let conf = |node: &str| {
        std::fs::read_to_string(format!("/etc/netns/{}-{node}/resolv.conf", lab.name))
            .unwrap_or_else(|e| panic!("{node}'s resolv.conf: {e}"))
    };
    assert!(
        conf("b1").contains("nameserver 10.10.0.1"),
        "{}",
        conf("b1")
    );
    lab.ping_by_name("b1", "b2");
    lab.ping_by_name("r1", "r3");
    lab.ping_by_name("r2", "r1");
    let o = rvs(&["lab", "exec", lab.f(), "r1", "--", "getent", "hosts", "b1"]);
    assert!(!o.status.success(), "r1 resolved blue's b1: {}", text(&o));
    lab.destroy_clean();
}

#[test]
fn routed_lab_reaches_across_the_switch_gateways_and_a_node_router() {
    if !root_or_skip("routed_lab_reaches_across_the_switch_gateways_and_a_node_router") {
        return;
    }
    let lab = Lab::new(&example("routed.yml"));
    lab.ok("deploy", &[]);
    let grid = lab.ok("check", &[]);
    assert!(grid.contains("12 of 12 checks passed"), "{grid}");
    // Names are per network: b and r share `right`, r and c share `back`
    // (a network without a gateway); a's network has nobody else.
    lab.ping_by_name("b", "r");
    lab.ping_by_name("c", "r");
    let o = rvs(&["lab", "exec", lab.f(), "a", "--", "getent", "hosts", "c"]);
    assert!(!o.status.success(), "c is not on a's network: {}", text(&o));
    // Redeploying adds no second route or gateway.
    lab.ok("deploy", &[]);
    lab.destroy_clean();
}

#[test]
fn impaired_lab_delays_the_frames_toward_the_client() {
    if !root_or_skip("impaired_lab_delays_the_frames_toward_the_client") {
        return;
    }
    let lab = Lab::new(&example("impaired.yml"));
    lab.ok("deploy", &[]);
    let grid = lab.ok("check", &[]);
    assert!(grid.contains("2 of 2 checks passed"), "{grid}");
    lab.ping_by_name("client", "server");
    // The example delays by 40 ms +- 5 ms: no reply can come sooner (a
    // lower bound, not a speed).
    let o = rvs(&[
        "lab",
        "exec",
        lab.f(),
        "client",
        "--",
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-q",
        "10.70.0.2",
    ]);
    let t = text(&o);
    let min: f64 = t
        .split("rtt min/avg/max/mdev = ")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no rtt in {t}"));
    assert!(
        min >= 34.0,
        "replies came back in {min} ms despite a 40 +- 5 ms delay"
    );
    lab.destroy_clean();
}

#[test]
fn overlay_lab_carries_two_isolated_vxlan_networks_between_switches_in_nodes() {
    if !root_or_skip("overlay_lab_carries_two_isolated_vxlan_networks_between_switches_in_nodes") {
        return;
    }
    let lab = Lab::new(&example("overlay.yml"));
    lab.ok("deploy", &[]);
    let grid = lab.ok("check", &[]);
    assert!(grid.contains("10 of 10 checks passed"), "{grid}");
    // s1 runs inside node h1's namespace, with a tunnel endpoint per VNI.
    let sock = format!("/run/rvswitch/lab/{}/s1.sock", lab.name);
    let ports = rvs(&["ctl", "--socket", &sock, "port", "list"]);
    let t = text(&ports);
    assert!(t.contains("vxlan5001") && t.contains("vxlan5002"), "{t}");
    // Across the overlay by name: each switch answers for the network.
    lab.ping_by_name("b1", "b2");
    lab.ping_by_name("r2", "r1");
    lab.ping_by_name("h1", "h2");
    lab.ok("deploy", &[]);
    lab.destroy_clean();
}

#[test]
fn a_broken_expectation_fails_the_check_with_status_1() {
    if !root_or_skip("a_broken_expectation_fails_the_check_with_status_1") {
        return;
    }
    // a and b share a network, so "isolate" is wrong and must be reported.
    let yaml = example("quickstart.yml").replace("  reach: all", "  isolate: [[a, b]]");
    let lab = Lab::new(&yaml);
    lab.ok("deploy", &[]);
    let o = rvs(&["lab", "check", lab.f()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("LEAK a -> b (10.99.0.2)"), "{}", text(&o));
}

#[test]
fn redeploy_heals_a_crashed_switch_and_a_deleted_node_and_destroy_still_cleans_up() {
    if !root_or_skip(
        "redeploy_heals_a_crashed_switch_and_a_deleted_node_and_destroy_still_cleans_up",
    ) {
        return;
    }
    let lab = Lab::new(&example("quickstart.yml"));
    lab.ok("deploy", &[]);
    let sock = format!("/run/rvswitch/lab/{}/sw.sock", lab.name);
    let pid = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&sock))
        })
        .map(|e| e.file_name().into_string().unwrap())
        .expect("the lab's daemon runs");
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    lab.ok("deploy", &[]);
    let grid = lab.ok("check", &[]);
    assert!(grid.contains("4 of 4 checks passed"), "{grid}");
    // A node deleted by hand (its veth goes with it) is made again, and
    // its switch port attached to the new veth.
    let ns_b = format!("{}-b", lab.name);
    assert!(
        Command::new("ip")
            .args(["netns", "del", &ns_b])
            .status()
            .unwrap()
            .success()
    );
    lab.ok("deploy", &[]);
    let grid = lab.ok("check", &[]);
    assert!(grid.contains("4 of 4 checks passed"), "{grid}");
    lab.destroy_clean();
}

#[test]
fn graphs_render_and_the_svg_is_xml() {
    let lab = Lab::new(&example("vlans.yml"));
    let svg = lab.ok("graph", &["--format", "svg"]);
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(svg.contains("red-west"), "network names are drawn");
    let dot = lab.ok("graph", &["--format", "dot"]);
    assert!(dot.contains("style=dashed"), "the trunk is drawn: {dot}");
    let mm = lab.ok("graph", &["--format", "mermaid"]);
    assert!(mm.starts_with("flowchart LR"), "{mm}");
}

#[test]
fn bad_files_deploy_nothing_and_name_the_line() {
    // Line 12 (b's address) is outside the subnet, line 13 names a network
    // that does not exist: both are reported, nothing is made.
    let yaml = example("quickstart.yml")
        .replace("address: 10.99.0.2/24", "address: 10.98.0.2/24")
        .replace("reach: all", "reach: [[a, c]]");
    let lab = Lab::new(&yaml);
    let o = rvs(&["lab", "deploy", lab.f()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    let line_of = |needle: &str| {
        yaml.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap()
    };
    assert!(
        t.contains(&format!("{}:{}:", lab.f(), line_of("10.98.0.2")))
            && t.contains("outside the subnet 10.99.0.0/24"),
        "{t}"
    );
    assert!(
        t.contains(&format!("{}:{}:", lab.f(), line_of("[[a, c]]")))
            && t.contains("no node named \"c\""),
        "{t}"
    );
    assert!(t.contains("no changes made"), "{t}");
    assert!(lab.leftovers().is_empty(), "{:?}", lab.leftovers());
}

#[test]
fn every_example_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "yml") {
            let o = rvs(&["lab", "graph", p.to_str().unwrap()]);
            assert!(o.status.success(), "{}: {}", p.display(), text(&o));
            n += 1;
        }
    }
    assert!(n >= 6, "examples found: {n}");
}

#[test]
fn the_readme_main_command_deploys_checks_and_with_once_destroys() {
    if !root_or_skip("the_readme_main_command_deploys_checks_and_with_once_destroys") {
        return;
    }
    // It uses the example's own name: leave a quickstart lab someone has up alone.
    if Path::new("/var/lib/rvswitch/lab/quickstart").exists() {
        eprintln!("SKIP: a quickstart lab is deployed on this machine");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/quickstart");
    let o = Command::new(script)
        .arg("--once")
        .env("RVSWITCH_BIN", BIN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("4 of 4 checks passed"), "{t}");
    assert!(t.contains("lab quickstart: destroyed"), "{t}");
    assert!(!Path::new("/run/netns/quickstart-a").exists());
}

#[test]
fn ring_lab_runs_rstp_blocks_one_trunk_and_reaches_every_node() {
    if !root_or_skip("ring_lab_runs_rstp_blocks_one_trunk_and_reaches_every_node") {
        return;
    }
    let lab = Lab::new(&example("ring.yml"));
    lab.ok("deploy", &[]);
    let sock = format!("/run/rvswitch/lab/{}/sw.sock", lab.name);
    // The tree converges with exactly one trunk end blocked.
    let blocked = || -> usize {
        ["d1", "d2", "d3"]
            .iter()
            .map(|d| {
                let o = rvs(&["ctl", "--socket", &sock, "--json", "stp", d]);
                assert!(o.status.success(), "{}", text(&o));
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                v["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["role"] == "alternate" && p["state"] == "discarding")
                    .count()
            })
            .sum()
    };
    let t = std::time::Instant::now();
    while blocked() != 1 && t.elapsed() < std::time::Duration::from_secs(40) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(blocked(), 1, "one alternate port");
    let grid = lab.ok("check", &[]);
    assert!(grid.contains("checks passed"), "{grid}");
    lab.ping_by_name("x", "z");
    lab.destroy_clean();
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `true` exits before rvswitch writes: the write meets a closed pipe.
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/routed.yml");
    for _ in 0..3 {
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{} lab validate {} | true",
                env!("CARGO_BIN_EXE_rvswitch"),
                file.display()
            ))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{err}");
    }
}

const RECONF_BEFORE: &str = "\
name: x
networks:
  lan: {subnet: 10.71.0.0/24}
  side: {subnet: 10.72.0.0/24}
nodes:
  a:
    interfaces: [{network: lan, address: 10.71.0.1/24}]
  b:
    interfaces:
      - {network: lan, address: 10.71.0.2/24}
      - {network: side}
  d:
    interfaces:
      - {network: lan, address: 10.71.0.4/24}
      - {network: side}
";

/// Node c, link a.eth1 and network extra come; node d, link b.eth1 and
/// network side go; a.eth0 and b.eth0 stay as they are.
const RECONF_AFTER: &str = "\
name: x
networks:
  lan: {subnet: 10.71.0.0/24}
  extra: {subnet: 10.73.0.0/24}
nodes:
  a:
    interfaces:
      - {network: lan, address: 10.71.0.1/24}
      - {network: extra, address: 10.73.0.1/24}
  b:
    interfaces: [{network: lan, address: 10.71.0.2/24}]
  c:
    interfaces:
      - {network: lan, address: 10.71.0.3/24}
      - {network: extra, address: 10.73.0.3/24}
expect:
  reach: all
";

/// `ping`'s summary: (transmitted, received).
fn ping_summary(out: &str) -> (u32, u32) {
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary in:\n{out}"));
    let num = |word: &str| -> u32 {
        let before = line.split(word).next().unwrap();
        before
            .trim_end()
            .rsplit([' ', ','])
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{line}"))
    };
    (num(" packets transmitted"), num(" received"))
}

#[test]
fn reconfigure_adds_and_removes_a_node_a_link_and_a_network_without_a_lost_ping() {
    if !root_or_skip("reconfigure_adds_and_removes_a_node_a_link_and_a_network_without_a_lost_ping")
    {
        return;
    }
    let lab = Lab::new(RECONF_BEFORE);
    lab.ok("deploy", &[]);
    let ns = |n: &str| format!("{}-{n}", lab.name);
    // a.eth0 and b.eth0 (both ends: the node's and the switch's), with
    // their interface indexes: a link made again gets a new index.
    let kept_links = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .filter(|l| {
                [ns("a"), ns("b")]
                    .iter()
                    .any(|n| l.starts_with(&format!("{n} ")) && l.contains(" eth0:"))
                    || l.contains(&format!("{}:", ns("a-0")))
                    || l.contains(&format!("{}:", ns("b-0")))
            })
            .collect()
    };
    let before = kept_links(link_indexes(&lab.name));
    assert!(before.len() >= 2, "{before:?}");
    assert_eq!(lab.names("sw", &["domain", "list"]), ["lan", "side"]);

    // The changed file is refused without --reconfigure, naming it.
    lab.rewrite(RECONF_AFTER);
    let o = rvs(&["lab", "deploy", lab.f()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--reconfigure"), "{}", text(&o));
    assert!(!text(&o).contains("half-way"), "{}", text(&o));

    // --dry-run prints the plan and changes nothing.
    let plan = lab.ok("deploy", &["--reconfigure", "--dry-run"]);
    for want in [
        "- node d",
        "- link b.eth1",
        "- network side",
        "+ node c",
        "+ link a.eth1",
        "+ network extra",
    ] {
        assert!(plan.contains(want), "{want} missing:\n{plan}");
    }
    assert!(netns_exists(&ns("d")) && !netns_exists(&ns("c")), "{plan}");

    // A bad file changes nothing and names its line.
    lab.rewrite(&RECONF_AFTER.replace("network: extra, address: 10.73.0.3/24", "network: nowhere"));
    let o = rvs(&["lab", "deploy", lab.f(), "--reconfigure"]);
    assert!(!o.status.success());
    let line = RECONF_AFTER
        .lines()
        .position(|l| l.contains("10.73.0.3/24"))
        .unwrap()
        + 1;
    assert!(
        text(&o).contains(&format!("{}:{line}:", lab.f())) && text(&o).contains("nowhere"),
        "{}",
        text(&o)
    );
    assert!(netns_exists(&ns("d")) && !netns_exists(&ns("c")));

    // A ping between two nodes that stay runs through the whole change.
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns("a"),
            "ping",
            "-i",
            "0.05",
            "-W",
            "1",
            "10.71.0.2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Pinger(Option<std::process::Child>);
    impl Drop for Pinger {
        fn drop(&mut self) {
            if let Some(c) = &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut ping = Pinger(Some(ping));
    // Running before the change: the first replies are in.
    std::thread::sleep(std::time::Duration::from_millis(500));

    lab.rewrite(RECONF_AFTER);
    let out = lab.ok("deploy", &["--reconfigure"]);
    std::thread::sleep(std::time::Duration::from_millis(500));

    // SIGINT: ping prints its summary and exits.
    let child = ping.0.take().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    let (sent, got) = ping_summary(&String::from_utf8_lossy(&o.stdout));
    assert!(sent >= 15, "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(
        got, sent,
        "the ping lost replies during the reconfigure\n{out}"
    );
    assert!(
        out.contains("reconfigured (4 add, 3 remove, 0 change)"),
        "{out}"
    );

    // What stayed was not made again.
    assert_eq!(kept_links(link_indexes(&lab.name)), before);
    // What went is gone: namespace, switch ports, domain.
    assert!(!netns_exists(&ns("d")));
    let ports = lab.names("sw", &["port", "list"]);
    for gone in [ns("d-0"), ns("d-1"), ns("b-1")] {
        assert!(!ports.contains(&gone), "{gone} left: {ports:?}");
    }
    for came in [ns("a-1"), ns("c-0"), ns("c-1")] {
        assert!(ports.contains(&came), "{came} missing: {ports:?}");
    }
    assert_eq!(lab.names("sw", &["domain", "list"]), ["extra", "lan"]);
    // The new node reaches its peers on both networks (expect: reach all).
    let grid = lab.ok("check", &[]);
    assert!(!grid.contains("FAIL"), "{grid}");
    for (from, to) in [("c", "10.71.0.2"), ("c", "10.73.0.1")] {
        let o = Command::new("ip")
            .args(["netns", "exec", &ns(from), "ping", "-c", "1", "-W", "2", to])
            .output()
            .unwrap();
        assert!(o.status.success(), "{from} -> {to}: {}", text(&o));
    }
    // The file is now the deployed one: deploy and --reconfigure are no-ops.
    lab.ok("deploy", &[]);
    assert!(lab.ok("deploy", &["--reconfigure"]).contains("no changes"));
    lab.destroy_clean();
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

#[test]
fn a_reconfigure_stopped_half_way_is_recorded_as_far_as_it_went_and_finished_by_the_next() {
    if !root_or_skip(
        "a_reconfigure_stopped_half_way_is_recorded_as_far_as_it_went_and_finished_by_the_next",
    ) {
        return;
    }
    let lab = Lab::new(RECONF_BEFORE);
    lab.ok("deploy", &[]);
    let ns = |n: &str| format!("{}-{n}", lab.name);
    // Node c's sysctl does not exist: the reconfigure stops at "+ node c",
    // after node d, link b.eth1 and network side went.
    let bad = RECONF_AFTER.replace(
        "  c:\n",
        "  c:\n    sysctls: {net.ipv4.no_such_knob_here: \"1\"}\n",
    );
    lab.rewrite(&bad);
    let o = rvs(&["lab", "deploy", lab.f(), "--reconfigure"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("+ node c") && text(&o).contains("again finishes it"),
        "{}",
        text(&o)
    );
    assert!(!netns_exists(&ns("d")));
    // Plain deploy does not mistake the half-changed lab for either file.
    let o = rvs(&["lab", "deploy", lab.f()]);
    assert!(
        !o.status.success() && text(&o).contains("--reconfigure"),
        "{}",
        text(&o)
    );

    // The next run plans only what was not applied.
    lab.rewrite(RECONF_AFTER);
    let plan = lab.ok("deploy", &["--reconfigure", "--dry-run"]);
    assert!(
        plan.contains("+ node c") && plan.contains("+ link a.eth1"),
        "{plan}"
    );
    for done in [
        "- node d",
        "- link b.eth1",
        "- network side",
        "+ network extra",
    ] {
        assert!(!plan.contains(done), "{done} planned again:\n{plan}");
    }
    lab.ok("deploy", &["--reconfigure"]);
    let grid = lab.ok("check", &[]);
    assert!(!grid.contains("FAIL"), "{grid}");
    assert_eq!(lab.names("sw", &["domain", "list"]), ["extra", "lan"]);
    lab.destroy_clean();
}

/// A containerlab topology (`examples/containers.clab.yml`) deploys
/// unchanged, found with `-t`: its linux nodes are containers of the real
/// Docker engine wired through rvswitch, a link and a bridge are separate
/// networks (same subnet, no reach across), `exec:` ran inside the
/// containers, and destroy removes the containers with the rest.
#[test]
fn a_containerlab_topology_deploys_containers_wired_through_the_switch() {
    if !common::docker_or_skip(
        "a_containerlab_topology_deploys_containers_wired_through_the_switch",
    ) {
        return;
    }
    let lab = Lab::new(&example("containers.clab.yml"));
    let o = rvs(&["lab", "deploy", "-t", lab.f()]);
    assert!(o.status.success(), "deploy: {}", text(&o));
    assert!(text(&o).contains("[3/3] node c3 wired"), "{}", text(&o));
    let containers = || {
        let o = Command::new("docker")
            .args(["ps", "-a", "--format", "{{.Names}} {{.State}}"])
            .args(["--filter", &format!("label=rvswitch.lab={}", lab.name)])
            .output()
            .unwrap();
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        containers(),
        ["c1", "c2", "c3"].map(|n| format!("{}-{n} running", lab.name))
    );
    let ping = |from: &str, to: &str| {
        rvs(&[
            "lab",
            "exec",
            "-t",
            lab.f(),
            from,
            "--",
            "ping",
            "-c1",
            "-W2",
            to,
        ])
        .status
        .success()
    };
    assert!(ping("c1", "192.168.7.2"), "c1 to c2 over link1");
    assert!(ping("c1", "192.168.8.3"), "c1 to c3 over the bridge");
    assert!(
        !ping("c2", "192.168.7.3"),
        "link1 and br1 are separate networks"
    );
    // `exec:` ran in the container: busybox's hostname is the node's name.
    let o = rvs(&["lab", "exec", "-t", lab.f(), "c2", "--", "hostname"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "c2");
    let o = rvs(&["lab", "destroy", "-t", lab.f()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        containers().is_empty(),
        "containers left: {:?}",
        containers()
    );
    assert!(lab.leftovers().is_empty(), "{:?}", lab.leftovers());
}

#[test]
fn cluster_lab_runs_its_etcd_and_global_networks_across_three_switch_hosts() {
    let test = "cluster_lab_runs_its_etcd_and_global_networks_across_three_switch_hosts";
    let etcd = if Path::new("/usr/bin/etcd").exists() {
        Ok(())
    } else {
        Err("needs /usr/bin/etcd (apt-get install etcd-server)".to_string())
    };
    if !root_or_skip(test) || !common::run_or_skip(test, etcd) {
        return;
    }
    let lab = Lab::new(&example("cluster.yml"));
    lab.ok("deploy", &[]);
    let grid = lab.ok("check", &[]);
    assert!(grid.contains("14 of 14 checks passed"), "{grid}");
    // The lab started three etcd members, one per member namespace.
    let token = format!("rvswitch-lab-{}", lab.name);
    assert_eq!(processes_named(&token), 3, "etcd members running");
    // Every switch host is a member of the cluster, and each global
    // network is one network: one VNI on every switch (red's as given).
    let members: Vec<String> = lab.ctl("s1", &["cluster"])["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(members, ["s1", "s2", "s3"]);
    let vni = |sw: &str, net: &str| {
        lab.ctl(sw, &["network"])
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == net)
            .map(|n| n["kind"]["vni"].as_u64().unwrap())
            .unwrap_or_else(|| panic!("{sw} has no network {net}"))
    };
    let blue = vni("s1", "blue");
    assert_eq!((vni("s2", "blue"), vni("s3", "blue")), (blue, blue));
    assert_eq!((vni("s1", "red"), vni("s3", "red")), (6002, 6002));
    // Nobody listed remotes: s1 learned s2's and s3's endpoints from the
    // registry (and answers ARP for them).
    let r = lab.ctl("s1", &["remote", "list", "vx-blue"]);
    assert_eq!(r["static"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["neighbors"].as_array().unwrap().len(), 2, "{r}");
    // A second deploy finds it all in place.
    lab.ok("deploy", &[]);
    let grid = lab.ok("check", &[]);
    assert!(grid.contains("14 of 14 checks passed"), "{grid}");
    lab.destroy_clean();
    assert_eq!(processes_named(&token), 0, "etcd members stopped");
}

#[test]
fn a_global_network_needs_a_store_and_the_store_an_odd_number_of_members() {
    let cluster = example("cluster.yml");
    let cases = [
        (
            cluster.replace("store:\n  members: [e1, e2, e3]\n", ""),
            "needs the lab's `store:`",
        ),
        (
            cluster.replace("members: [e1, e2, e3]", "members: [e1, e2]"),
            "odd number",
        ),
        (
            cluster.replace("members: [e1, e2, e3]", "members: [e1, b1, e3]"),
            "is on a global network",
        ),
        (
            cluster.replace(
                "subnet: 10.60.2.0/24",
                "subnet: 10.60.2.0/24, gateway: true",
            ),
            "not for global networks",
        ),
        (
            cluster.replace("scope: global            #", "scope: galactic #"),
            "expected local or global",
        ),
    ];
    for (yaml, why) in cases {
        let lab = Lab::new(&yaml);
        let o = rvs(&["lab", "validate", lab.f()]);
        assert_eq!(o.status.code(), Some(1), "{why}: {}", text(&o));
        assert!(text(&o).contains(why), "{why}: {}", text(&o));
    }
}

/// `parent:` on a lab network: its nodes reach a host NIC's LAN in the
/// parent's VLAN (a veth stands for the NIC, see `common::lan`), and the
/// uplink port goes when the network leaves the lab (`--reconfigure`).
#[test]
fn a_network_with_a_parent_reaches_the_nics_lan() {
    if !root_or_skip("a_network_with_a_parent_reaches_the_nics_lan") {
        return;
    }
    let mut lan = common::lan::Lan::new();
    lan.vlan_host(10, "10.97.10.100/24");
    lan.ns.ip(&["addr", "add", "10.97.0.100/24", "dev", "eth0"]);
    let yaml = |with_lan: bool| {
        let mut y = String::from("name: x\nnetworks:\n  other: {subnet: 10.97.1.0/24}\n");
        if with_lan {
            y += &format!(
                "  v10: {{subnet: 10.97.10.0/24, parent: {}, domain: wan}}\n  \
                 flat: {{subnet: 10.97.0.0/24, parent: {}, domain: wan}}\n",
                lan.parent(Some(10)),
                lan.parent(None)
            );
        }
        y += "nodes:\n  a:\n    interfaces:\n      - {network: other}\n";
        if with_lan {
            y += "      - {network: v10, address: 10.97.10.1/24}\n      \
                  - {network: flat, address: 10.97.0.1/24}\n";
        }
        y
    };
    let lab = Lab::new(&yaml(true));
    lab.ok("deploy", &[]);
    let ping = |addr: &str| {
        let o = rvs(&[
            "lab",
            "exec",
            lab.f(),
            "a",
            "--",
            "ping",
            "-c1",
            "-W2",
            addr,
        ]);
        o.status.success()
    };
    assert!(
        ping("10.97.10.100"),
        "node a reaches the LAN's host on VLAN 10"
    );
    assert!(ping("10.97.0.100"), "and the untagged LAN");
    let parents = lab.ctl("sw", &["parent", "list", "wan"]);
    assert_eq!(parents.as_array().unwrap().len(), 2, "{parents}");
    // Deploying again changes nothing; taking the networks out takes the
    // uplink away.
    lab.ok("deploy", &[]);
    lab.rewrite(&yaml(false));
    lab.ok("deploy", &["--reconfigure"]);
    let up = format!("up-{}", lan.nic.name);
    assert!(!lab.names("sw", &["port", "list"]).contains(&up));
    lab.destroy_clean();
}

/// `services:` of a lab: the VIP resolves by the service's name on the
/// nodes, TCP to it reaches every backend (servers started in the nodes
/// with `lab exec`), the health check sees who listens, and a dnsrr name
/// answers its backends.
#[test]
fn services_lab_balances_its_vip_over_the_nodes_that_listen() {
    if !root_or_skip("services_lab_balances_its_vip_over_the_nodes_that_listen") {
        return;
    }
    let lab = Lab::new(&example("services.yml"));
    lab.ok("deploy", &[]);
    let o = rvs(&[
        "lab",
        "exec",
        lab.f(),
        "client",
        "--",
        "getent",
        "ahostsv4",
        "web",
    ]);
    assert!(
        text(&o).contains("10.5.0.100"),
        "web is its VIP: {}",
        text(&o)
    );
    let o = rvs(&[
        "lab",
        "exec",
        lab.f(),
        "client",
        "--",
        "getent",
        "ahostsv4",
        "pool",
    ]);
    assert!(
        text(&o).contains("10.5.0.") && !text(&o).contains("10.5.0.100"),
        "{}",
        text(&o)
    );
    // Servers in web1 and web3 only: web2 stays down for the check.
    let mut servers: Vec<std::process::Child> = ["web1", "web3"]
        .iter()
        .map(|n| {
            Command::new(BIN)
                .args(["lab", "exec", lab.f(), n, "--", "socat"])
                .arg("TCP6-LISTEN:8080,fork,reuseaddr")
                .arg(format!("SYSTEM:echo {n}"))
                .spawn()
                .unwrap()
        })
        .collect();
    let up = || -> Vec<(String, bool)> {
        let v = lab.ctl("sw", &["service", "show", "lan", "web"]);
        v["backends"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["address"].as_str().is_some_and(|a| !a.contains(':')))
            .map(|b| (b["backend"].as_str().unwrap().to_string(), b["up"] == true))
            .collect()
    };
    let t = std::time::Instant::now();
    while up()
        != [
            ("web1".into(), true),
            ("web2".into(), false),
            ("www3".into(), true),
        ]
        && t.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let state = up();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..20 {
        let o = rvs(&[
            "lab",
            "exec",
            lab.f(),
            "client",
            "--",
            "socat",
            "-T",
            "2",
            "-u",
            "TCP:web:80",
            "-",
        ]);
        *seen.entry(text(&o).trim().to_string()).or_insert(0) += 1;
    }
    for s in &mut servers {
        let _ = s.kill();
        let _ = s.wait();
    }
    assert_eq!(
        state,
        [
            ("web1".into(), true),
            ("web2".into(), false),
            ("www3".into(), true)
        ]
    );
    let keys: Vec<&String> = seen.keys().collect();
    assert_eq!(keys, ["web1", "web3"], "answers through the VIP: {seen:?}");
    lab.destroy_clean();
}
