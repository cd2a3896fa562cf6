//! Container nodes (`image:`, containerlab's `kind: linux`): the real
//! Docker engine runs the image with no network of its own
//! (`--network none`), and the container's network namespace is attached
//! as `/run/netns/<lab>-<node>` (`ip netns attach`), so everything that
//! wires a namespace node — veths, TAPs, addresses, routes, sysctls — wires
//! a container the same way. Its commands (`exec:`, `lab exec`) run inside
//! the container (`docker exec`), with the image's tools.
//!
//! Owns: the container's lifecycle (run, attach, remove). Never: its
//! interfaces (deploy's, as for any node).

use std::net::IpAddr;
use std::process::{Command, Output};

use rvs_lab::NodeDef;

use super::{LabError, LabState, Paths, err};

/// The container's name: the node's namespace name (`<lab>-<node>`), which
/// is unique on the machine; it also carries the label `rvswitch.lab=<lab>`.
pub fn name(node: &NodeDef) -> &str {
    &node.netns
}

fn docker(args: &[&str]) -> Result<Output, LabError> {
    Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| err(format!("run docker (is docker.io installed?): {e}")))
}

fn fail(what: &str, o: &Output) -> LabError {
    err(format!(
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr).trim()
    ))
}

/// The container's main process, when it runs.
fn running_pid(name: &str) -> Option<u32> {
    let o = docker(&["inspect", "-f", "{{.State.Running}} {{.State.Pid}}", name]).ok()?;
    let out = String::from_utf8_lossy(&o.stdout);
    let (running, pid) = out.trim().split_once(' ')?;
    (o.status.success() && running == "true")
        .then(|| pid.parse().ok())
        .flatten()
        .filter(|p| *p > 0)
}

/// Run (or start again) the node's container and attach its namespace
/// under the node's name. Recorded in the lab state before it is made.
pub fn ensure(
    node: &NodeDef,
    lab: &str,
    dns: &[IpAddr],
    paths: &Paths,
    st: &mut LabState,
) -> Result<(), LabError> {
    let image = node.image.as_deref().expect("a container node");
    let cname = name(node);
    if !st.containers.iter().any(|c| c == cname) {
        st.containers.push(cname.to_string());
        st.save(paths)?;
    }
    let pid = match running_pid(cname) {
        Some(p) => p,
        None => {
            let exists = docker(&["inspect", "-f", "{{.Id}}", cname])?
                .status
                .success();
            if exists {
                let o = docker(&["start", cname])?;
                if !o.status.success() {
                    return Err(fail(
                        &format!("node {}: docker start {cname}", node.name),
                        &o,
                    ));
                }
            } else {
                let label = format!("rvswitch.lab={lab}");
                let mut args: Vec<String> = [
                    "run",
                    "-d",
                    "--name",
                    cname,
                    "--hostname",
                    &node.name,
                    "--network",
                    "none",
                    "--label",
                    &label,
                    // Its exec commands configure its interfaces (as
                    // containerlab's linux nodes may).
                    "--cap-add",
                    "NET_ADMIN",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                for d in dns {
                    args.push("--dns".into());
                    args.push(d.to_string());
                }
                args.push(image.to_string());
                if let Some(cmd) = &node.cmd {
                    // As containerlab splits `cmd:` (shell words, no shell).
                    let words = shlex::split(cmd).ok_or_else(|| {
                        err(format!(
                            "node {}: cmd {cmd:?}: unbalanced quotes",
                            node.name
                        ))
                    })?;
                    args.extend(words);
                }
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                let o = docker(&refs)?;
                if !o.status.success() {
                    return Err(fail(&format!("node {}: docker run {image}", node.name), &o));
                }
            }
            running_pid(cname).ok_or_else(|| {
                let logs = docker(&["logs", "--tail", "5", cname])
                    .map(|o| {
                        String::from_utf8_lossy(&o.stdout).to_string()
                            + &String::from_utf8_lossy(&o.stderr)
                    })
                    .unwrap_or_default();
                err(format!(
                    "node {}: container {cname} of {image} is not running (does the image have a long-running command? give one with `cmd:`); its last output: {}",
                    node.name,
                    logs.trim()
                ))
            })?
        }
    };
    let ns = &node.netns;
    let path = rvs_drivers::netns::netns_path(ns);
    if path.exists() {
        // Attached before: the same container (its pid's namespace)?
        let same = rvs_drivers::netns::netns_inode(&path).ok()
            == rvs_drivers::netns::netns_inode(std::path::Path::new(&format!(
                "/proc/{pid}/ns/net"
            )))
            .ok();
        if same {
            return Ok(());
        }
        // A stale attachment (the container was restarted): attach again.
        rvs_drivers::netns::delete_named(ns).map_err(err)?;
    }
    if !st.namespaces.iter().any(|n| n == ns) {
        st.record_netns(paths, ns)?;
    }
    let o = Command::new("ip")
        .args(["netns", "attach", ns, &pid.to_string()])
        .output()
        .map_err(|e| err(format!("run ip netns attach (is iproute2 installed?): {e}")))?;
    if !o.status.success() {
        return Err(fail(
            &format!("node {}: ip netns attach {ns} {pid}", node.name),
            &o,
        ));
    }
    Ok(())
}

/// Remove a node's container (gone already is fine).
pub fn remove(cname: &str) -> Result<(), String> {
    let o = Command::new("docker")
        .args(["rm", "-f", cname])
        .output()
        .map_err(|e| format!("run docker rm -f {cname}: {e}"))?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    if o.status.success() || stderr.contains("No such container") {
        Ok(())
    } else {
        Err(format!("docker rm -f {cname}: {}", stderr.trim()))
    }
}

/// `docker exec` into the node's container, running `cmd` with the image's
/// tools (`-i` keeps stdin, as `lab exec` passes it on).
pub fn exec_command(node: &NodeDef, cmd: &[String]) -> Command {
    let mut c = Command::new("docker");
    c.args(["exec", "-i", name(node)]).args(cmd);
    c
}
