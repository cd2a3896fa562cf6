//! `rvswitch quickstart`: the smallest real lab. Starts a daemon in this
//! process, creates a bridge domain and two TAP ports through its API,
//! moves each TAP into its own network namespace as `eth0`, checks that the
//! hosts reach each other, prints the check grid and the switch's counters,
//! and (unless `--once`) keeps the lab up until Ctrl-C, then removes every
//! namespace, port and file it made.
//!
//! Owns: the quickstart lab's lifecycle. Never: anything outside the names
//! it creates (`rvs-qs-*`), which it refuses to reuse if they already exist.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hyper::Method;
use rvs_drivers::netlink::Netlink;
use rvs_drivers::netns;
use serde_json::json;

use crate::client::Client;
use crate::daemon::{self, DaemonArgs};

#[derive(Debug, clap::Args)]
pub struct QuickstartArgs {
    /// Tear the lab down right after the checks instead of waiting for Ctrl-C.
    #[arg(long)]
    pub once: bool,
    /// Control socket of the lab's daemon (use it with `rvswitch ctl --socket`).
    #[arg(long, default_value = "/run/rvswitch/quickstart.sock")]
    pub socket: PathBuf,
}

/// Why the quickstart could not run.
#[derive(Debug, thiserror::Error)]
#[error("quickstart: {0}")]
pub struct QuickstartError(String);

fn err(what: impl std::fmt::Display) -> QuickstartError {
    QuickstartError(what.to_string())
}

const DOMAIN: &str = "quickstart";
const HOSTS: [(&str, &str, &str); 2] = [
    ("rvs-qs-a", "qsa0", "10.99.0.1"),
    ("rvs-qs-b", "qsb0", "10.99.0.2"),
];

/// Everything the lab made, removed on drop (also when a step fails).
struct Lab {
    namespaces: Vec<String>,
    state_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    daemon: Option<std::thread::JoinHandle<Result<(), daemon::DaemonError>>>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.drain(..) {
            let _ = netns::delete_named(&ns);
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.daemon.take() {
            let _ = d.join();
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn api(
    c: &Client,
    method: Method,
    path: &str,
    body: serde_json::Value,
) -> Result<(), QuickstartError> {
    let r = c.request(method, path, Some(&body)).map_err(err)?;
    if r.status >= 400 {
        return Err(err(format!("{path}: {}", r.error_message())));
    }
    Ok(())
}

fn wait_ready(socket: &Path) -> Result<Client, QuickstartError> {
    let t = Instant::now();
    loop {
        if let Ok(c) = Client::new(socket)
            && c.get("/v1/domains").is_ok_and(|r| r.status == 200)
        {
            return Ok(c);
        }
        if t.elapsed() > Duration::from_secs(10) {
            return Err(err(format!(
                "the daemon did not answer on {}",
                socket.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `from` gets an echo reply from `to` within `within`.
fn reaches(from: &str, to: &str, within: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        let ok = Command::new("ip")
            .args(["netns", "exec", from, "ping", "-c", "1", "-W", "1", to])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return true;
        }
    }
    false
}

pub fn run(args: &QuickstartArgs) -> Result<(), QuickstartError> {
    if !rvs_drivers::testutil::is_root() {
        return Err(err(
            "needs root: it creates network namespaces and TAP devices (run it with sudo)",
        ));
    }
    for (ns, _, _) in HOSTS {
        if netns::netns_path(ns).exists() {
            return Err(err(format!(
                "namespace {ns} exists: a quickstart lab is already up (stop it, or `ip netns del {ns}`)"
            )));
        }
    }
    let state_dir =
        std::env::temp_dir().join(format!("rvswitch-quickstart-{}", std::process::id()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let dargs = DaemonArgs {
        socket: args.socket.clone(),
        state_dir: state_dir.clone(),
        workers: 1,
        test_memory_ports: false,
        docker: Default::default(),
    };
    let daemon = std::thread::Builder::new()
        .name("rvs-quickstart-daemon".into())
        .spawn(move || {
            daemon::run(&dargs, crate::backends::driver_factory(), async move {
                let _ = stop_rx.await;
            })
        })
        .map_err(err)?;
    let mut lab = Lab {
        namespaces: Vec::new(),
        state_dir,
        stop: Some(stop_tx),
        daemon: Some(daemon),
    };
    let c = wait_ready(&args.socket)?;

    println!("rvswitch quickstart: one bridge domain, two hosts on TAP ports");
    api(&c, Method::POST, "/v1/domains", json!({ "name": DOMAIN }))?;
    let nl = Netlink::new().map_err(err)?;
    for (ns, port, addr) in HOSTS {
        api(
            &c,
            Method::POST,
            "/v1/ports",
            json!({ "name": port, "kind": "tap", "domain": DOMAIN, "vlan": { "mode": "access", "pvid": 1 } }),
        )?;
        netns::create_named(ns).map_err(err)?;
        lab.namespaces.push(ns.to_string());
        nl.move_to_netns(port, ns).map_err(err)?;
        let ip: IpAddr = addr.parse().expect("constant address");
        Netlink::in_netns(ns, move |nl| {
            nl.rename(port, "eth0")?;
            nl.add_address("eth0", ip, 24)?;
            nl.set_up("eth0")?;
            nl.set_up("lo")
        })
        .map_err(err)?;
        println!("  host {ns}: eth0 {addr}/24 on switch port {port}");
    }

    println!("\ncheck (ping from row to column):");
    print!("{:<10}", "");
    for (ns, _, _) in HOSTS {
        print!("{ns:<10}");
    }
    println!();
    let mut failed = 0;
    for (from, _, _) in HOSTS {
        print!("{from:<10}");
        for (to, _, addr) in HOSTS {
            let cell = if from == to {
                "-"
            } else if reaches(from, addr, Duration::from_secs(5)) {
                "ok"
            } else {
                failed += 1;
                "FAIL"
            };
            print!("{cell:<10}");
        }
        println!();
    }

    let stats = c.get("/v1/stats").map_err(err)?.json();
    println!("\nswitch ports:");
    println!(
        "{:<8} {:>10} {:>10} {:>8}",
        "port", "rx_pkts", "tx_pkts", "drops"
    );
    for p in stats["ports"].as_array().into_iter().flatten() {
        let drops: u64 = p["drops"]
            .as_object()
            .map_or(0, |d| d.values().filter_map(|v| v.as_u64()).sum());
        println!(
            "{:<8} {:>10} {:>10} {:>8}",
            p["name"].as_str().unwrap_or("?"),
            p["rx_packets"].as_u64().unwrap_or(0),
            p["tx_packets"].as_u64().unwrap_or(0),
            drops
        );
    }
    if failed > 0 {
        return Err(err(format!("{failed} check(s) failed")));
    }
    println!("\nall checks passed");
    if !args.once {
        println!(
            "\nThe lab is up. Try:\n  ip netns exec rvs-qs-a ping 10.99.0.2\n  rvswitch ctl --socket {} stats\n  rvswitch ctl --socket {} fdb show {DOMAIN}\nCtrl-C tears it down.",
            args.socket.display(),
            args.socket.display()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(err)?;
        rt.block_on(daemon::termination_signal());
        println!("tearing down");
    }
    drop(lab);
    Ok(())
}
