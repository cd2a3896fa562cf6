//! The lab's switches: each one's daemon, started (in its host node's
//! namespace where it has one) with the options its part of the lab needs,
//! or found answering; and a client to each.
//!
//! Owns: starting and finding the lab's daemons, their command lines.
//! Never: what is configured in them (deploy and reconfigure).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rvs_lab::{SwitchDef, Topology};

use super::host::{daemon_pids, stop_pid};
use super::state::LabState;
use super::{LabError, Paths, err};
use crate::client::Client;

/// The lab's daemons, by switch name.
pub(crate) struct Switches(Vec<(String, Client)>);

impl Switches {
    /// No daemon yet ([`Switches::start`] adds them).
    pub(super) fn none() -> Switches {
        Switches(Vec::new())
    }

    /// Each switch's daemon, started when it does not answer.
    pub(super) fn up(
        topo: &Topology,
        paths: &Paths,
        st: &mut LabState,
    ) -> Result<Switches, LabError> {
        let mut s = Switches(Vec::new());
        s.start(topo, paths, st, |_| true)?;
        Ok(s)
    }

    /// Start (or find) the daemons of the switches `pick` chooses.
    pub(super) fn start(
        &mut self,
        topo: &Topology,
        paths: &Paths,
        st: &mut LabState,
        pick: impl Fn(&SwitchDef) -> bool,
    ) -> Result<(), LabError> {
        for sw in topo.switches.iter().filter(|s| pick(s)) {
            let c = ensure_daemon(paths, topo, sw, st)?;
            self.0.push((sw.name.clone(), c));
        }
        Ok(())
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    pub(super) fn get(&self, name: &str) -> &Client {
        &self
            .0
            .iter()
            .find(|(n, _)| n == name)
            .expect("validated: every switch reference exists")
            .1
    }
}

fn answering(socket: &Path) -> Option<Client> {
    if !socket.exists() {
        return None;
    }
    let c = Client::new(socket).ok()?;
    c.get("/v1/domains")
        .ok()
        .filter(|r| r.status == 200)
        .map(|_| c)
}

pub(super) fn ensure_daemon(
    paths: &Paths,
    topo: &Topology,
    sw: &SwitchDef,
    st: &mut LabState,
) -> Result<Client, LabError> {
    let netns = topo.switch_netns(&sw.name);
    let socket = paths.socket(&sw.name);
    if !st.daemons.contains_key(&sw.name) {
        st.daemons.insert(sw.name.clone(), socket.clone());
        st.save(paths)?;
    }
    if let Some(c) = answering(&socket) {
        return Ok(c);
    }
    // A daemon of ours that does not answer is stuck: replace it.
    for pid in daemon_pids(&socket) {
        stop_pid(pid);
    }
    let store = paths.store(&sw.name);
    for d in [&paths.run, &store] {
        std::fs::create_dir_all(d).map_err(|e| err(format!("create {}: {e}", d.display())))?;
    }
    let logf = paths.log(&format!("switch-{}", sw.name));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&logf)
        .map_err(|e| err(format!("open {}: {e}", logf.display())))?;
    let exe = std::env::current_exe().map_err(|e| err(format!("find rvswitch itself: {e}")))?;
    // A switch hosted by a node runs inside the node's namespace.
    let mut cmd = match &netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.arg("daemon")
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(&store)
        .arg("--workers")
        .arg(sw.workers.to_string())
        .args(daemon_args(topo, sw, paths))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(err)?)
        .stderr(log)
        // Its own process group: Ctrl-C in the terminal that deployed the
        // lab does not stop the lab's switches.
        .process_group(0);
    // The daemon says when it serves (READY=1 on NOTIFY_SOCKET).
    crate::daemon::ready::spawn_ready(&mut cmd, Duration::from_secs(20)).map_err(|e| {
        err(format!(
            "the daemon of switch {}: {e}; its log ({}) ends:\n{}",
            sw.name,
            logf.display(),
            tail(&logf)
        ))
    })?;
    answering(&socket).ok_or_else(|| {
        err(format!(
            "the daemon of switch {} said it was ready but does not answer on {}",
            sw.name,
            socket.display()
        ))
    })
}

fn tail(f: &Path) -> String {
    let s = std::fs::read_to_string(f).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// The daemon options of switch `sw`: a cluster member when it carries a
/// global network (with the CNM driver on a socket of the lab's, and no
/// Docker engine to ask), nothing otherwise.
pub(super) fn daemon_args(topo: &Topology, sw: &SwitchDef, paths: &Paths) -> Vec<String> {
    let (Some(store), Some(vtep)) = (&topo.store, topo.vtep_of(&sw.name)) else {
        return Vec::new();
    };
    if !topo.clustered(&sw.name) {
        return Vec::new();
    }
    let run = |f: String| paths.run.join(f).to_string_lossy().to_string();
    vec![
        "--store".into(),
        store.url(),
        "--vtep".into(),
        vtep.to_string(),
        "--host-name".into(),
        sw.name.clone(),
        "--docker".into(),
        "--docker-socket".into(),
        run(format!("{}-cnm.sock", sw.name)),
        "--docker-engine".into(),
        run("no-docker-engine.sock".into()),
        "--docker-reconcile-secs".into(),
        "0".into(),
    ]
}
