//! rvswitch as a managed Docker plugin, against the real dockerd:
//! `scripts/docker-plugin build` builds the static binary (dev profile,
//! into target/<host triple>/debug/: the first run builds the tree once
//! more), packs it alone into a plugin tarball — no shared libraries —
//! and creates the plugin; `docker plugin enable`, a network with the
//! plugin as its driver, two containers pinging each other, `disable` and
//! `rm`; then the plugin again from the tarball alone (`scripts/docker-plugin
//! install`, no registry).
//!
//! Needs root, a running dockerd and the image `rvs-busybox:latest`
//! (`scripts/docker-image`); without them the test prints SKIP (and fails
//! under RVS_TEST_STRICT=1, as in CI). Containers, network and plugin are
//! removed in `Drop`, even when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rvs_drivers::testutil::unique;
use serde_json::Value;

mod common;
use common::BIN;

const IMAGE: &str = "rvs-busybox:latest";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
}

#[track_caller]
fn docker_ok(args: &[&str]) -> String {
    let o = docker(args);
    assert!(
        o.status.success(),
        "docker {args:?} failed: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout).trim().to_string()
}

fn script(args: &[&str]) -> Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/docker-plugin"))
        .args(args)
        .output()
        .unwrap()
}

/// What the test made in Docker, removed on drop (containers, then the
/// network, then the plugin).
struct Made {
    plugin: String,
    network: String,
    containers: Vec<String>,
    dir: PathBuf,
}

impl Drop for Made {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = docker(&["plugin", "inspect", &self.plugin]);
            eprintln!("--- plugin ---\n{}", text(&logs.stdout));
        }
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        let _ = docker(&["network", "rm", &self.network]);
        let _ = docker(&["plugin", "disable", "-f", &self.plugin]);
        let _ = docker(&["plugin", "rm", "-f", &self.plugin]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn plugin_state(name: &str) -> Option<Value> {
    let o = docker(&["plugin", "inspect", name]);
    if !o.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    Some(v[0].clone())
}

/// Unpack `tarball` into `into` and check its rootfs: one ELF file, the
/// binary, with no program interpreter and no shared library needed; no
/// shared library anywhere.
fn assert_rootfs_is_static(tarball: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let o = Command::new("tar")
        .arg("-C")
        .arg(into)
        .arg("-xzf")
        .arg(tarball)
        .output()
        .unwrap();
    assert!(o.status.success(), "tar: {}", text(&o.stderr));
    let mut elf = Vec::new();
    let mut stack = vec![into.join("rootfs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(p);
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !(name.ends_with(".so") || name.contains(".so.")),
                "a shared library in the rootfs: {}",
                p.display()
            );
            if t.is_file() {
                use std::io::Read;
                let mut head = [0u8; 4];
                let f = std::fs::File::open(&p).and_then(|mut f| f.read_exact(&mut head));
                if f.is_ok() && head == *b"\x7fELF" {
                    elf.push(p);
                }
            }
        }
    }
    let bin = into.join("rootfs/bin/rvswitch");
    assert_eq!(
        elf,
        std::slice::from_ref(&bin),
        "the binary is the rootfs's only ELF file"
    );
    let readelf = |flag: &str| {
        let o = Command::new("readelf")
            .args([flag, "-W"])
            .arg(&bin)
            .output()
            .unwrap();
        assert!(o.status.success(), "readelf: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let program = readelf("-l");
    assert!(!program.contains("program interpreter"), "{program}");
    let dynamic = readelf("-d");
    assert!(!dynamic.contains("(NEEDED)"), "{dynamic}");
}

#[test]
fn managed_plugin_runs_containers_and_installs_offline() {
    if !common::docker_or_skip("managed_plugin_runs_containers_and_installs_offline") {
        return;
    }
    let name = unique("rvsmp");
    let full = format!("{name}:latest");
    let dir = std::env::temp_dir().join(unique("rvsmp"));
    std::fs::create_dir_all(&dir).unwrap();
    let tarball = dir.join("plugin.tar.gz");
    let mut made = Made {
        plugin: full.clone(),
        network: unique("rvmpn"),
        containers: Vec::new(),
        dir: dir.clone(),
    };

    // A dynamically linked binary is refused, and nothing is created.
    let o = script(&[
        "build",
        "--name",
        &name,
        "--bin",
        BIN,
        "--out",
        tarball.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "the dynamic {BIN} was packed");
    assert!(
        text(&o.stderr).contains("linked dynamically"),
        "{}",
        text(&o.stderr)
    );
    assert!(plugin_state(&full).is_none());

    let o = script(&[
        "build",
        "--name",
        &name,
        "--profile",
        "dev",
        "--out",
        tarball.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "build: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_rootfs_is_static(&tarball, &dir.join("unpacked"));
    let p = plugin_state(&full).expect("the plugin was created");
    assert_eq!(p["Enabled"], false);
    // The engine shows each as a string or as its parts.
    let types: Vec<String> = p["Config"]["Interface"]["Types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| match t.as_str() {
            Some(s) => s.to_string(),
            None => format!(
                "{}.{}/{}",
                t["Prefix"].as_str().unwrap_or_default(),
                t["Capability"].as_str().unwrap_or_default(),
                t["Version"].as_str().unwrap_or_default()
            ),
        })
        .collect();
    assert_eq!(types, ["docker.networkdriver/1.0", "docker.ipamdriver/1.0"]);

    docker_ok(&["plugin", "enable", &full]);
    docker_ok(&[
        "network",
        "create",
        "-d",
        &full,
        "--ipam-driver",
        &full,
        "--subnet",
        "10.247.0.0/24",
        &made.network,
    ]);
    let driver = docker_ok(&["network", "inspect", "-f", "{{.Driver}}", &made.network]);
    let net_id = docker_ok(&["network", "inspect", "-f", "{{.Id}}", &made.network]);
    assert_eq!(driver, full);
    for _ in 0..2 {
        let c = unique("rvmpc");
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &c,
            "--network",
            &made.network,
            IMAGE,
            "sleep",
            "600",
        ]);
        made.containers.push(c);
    }
    let ip_of = |c: &str| {
        docker_ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            c,
        ])
    };
    let (a, b) = (made.containers[0].clone(), made.containers[1].clone());
    let ip_b = ip_of(&b);
    assert!(ip_b.starts_with("10.247.0."), "{ip_b}");
    let ping = docker(&["exec", &a, "ping", "-c", "3", "-W", "2", &ip_b]);
    assert!(ping.status.success(), "ping: {}", text(&ping.stdout));
    assert!(
        docker(&["exec", &b, "ping", "-c", "1", "-W", "2", &ip_of(&a)])
            .status
            .success()
    );

    // The plugin's control API, propagated to the host (its path is too
    // long for a socket address: connect from inside the directory).
    let id = p["Id"].as_str().unwrap();
    let propagated = format!("/var/lib/docker/plugins/{id}/propagated-mount");
    let o = Command::new(BIN)
        .current_dir(&propagated)
        .args(["ctl", "--socket", "rvswitch.sock", "--json", "network"])
        .output()
        .unwrap();
    assert!(o.status.success(), "ctl: {}", text(&o.stderr));
    let nets: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        nets.as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == net_id.as_str() && n["endpoints"] == 2),
        "{nets}"
    );

    // Its state outlives the plugin's process: after a forced disable and
    // enable with the containers running, it finds their TAPs in their
    // namespaces again.
    docker_ok(&["plugin", "disable", "-f", &full]);
    docker_ok(&["plugin", "enable", &full]);
    let ping = docker(&["exec", &a, "ping", "-c", "3", "-W", "2", &ip_b]);
    assert!(
        ping.status.success(),
        "ping after the plugin's restart: {}",
        text(&ping.stdout)
    );

    for c in std::mem::take(&mut made.containers) {
        docker_ok(&["rm", "-f", &c]);
    }
    docker_ok(&["network", "rm", &made.network]);
    docker_ok(&["plugin", "disable", &full]);
    assert_eq!(plugin_state(&full).unwrap()["Enabled"], false);
    docker_ok(&["plugin", "rm", &full]);
    assert!(plugin_state(&full).is_none());

    // Offline: the plugin again from the tarball alone.
    let o = script(&["install", tarball.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "install: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    docker_ok(&["plugin", "enable", &full]);
    let p = plugin_state(&full).unwrap();
    assert_eq!(p["Enabled"], true);
    let socket = format!(
        "/run/docker/plugins/{}/rvswitch.sock",
        p["Id"].as_str().unwrap()
    );
    assert!(Path::new(&socket).exists(), "no driver socket {socket}");
    docker_ok(&["plugin", "disable", &full]);
    docker_ok(&["plugin", "rm", &full]);
}
