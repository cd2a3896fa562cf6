//! What lab deploy and destroy do on the machine itself, below any lab
//! concept: netlink calls in a namespace, per-namespace sysctls, an
//! interface's settings inside its node, and the processes a lab leaves
//! (its daemons, whatever runs in its namespaces).
//!
//! Owns: those system calls. Never: what the lab should look like (deploy,
//! reconfigure and the store module decide that).

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rvs_drivers::netlink::{Netlink, NetlinkError};
use rvs_drivers::netns;
use rvs_lab::{InterfaceDef, NodeDef, format_mac};

use super::{LabError, err};

pub(super) fn nl_err(e: NetlinkError) -> LabError {
    err(e)
}

/// `f` with a netlink handle on `ns` (`None`: the host namespace, `nl`).
pub(super) fn on<T: Send>(
    ns: Option<&str>,
    nl: &Netlink,
    f: impl FnOnce(&Netlink) -> Result<T, NetlinkError> + Send,
) -> Result<T, LabError> {
    match ns {
        None => f(nl),
        Some(ns) => Netlink::in_netns(ns, f),
    }
    .map_err(nl_err)
}

pub(super) fn proc_write(key_path: &str, value: &str) -> Result<(), String> {
    std::fs::write(key_path, format!("{value}\n")).map_err(|e| format!("{key_path}: {e}"))
}

/// Write sysctls (`net.x.y` → value) inside a namespace.
pub(super) fn sysctls_in(
    ns: &str,
    kv: Vec<(String, String)>,
    strict: bool,
) -> Result<(), LabError> {
    let res = netns::in_netns(ns, move || {
        for (k, v) in &kv {
            let p = format!("/proc/sys/{}", k.replace('.', "/"));
            if let Err(e) = proc_write(&p, v)
                && strict
            {
                return Err(format!("sysctl {k}={v}: {e}"));
            }
        }
        Ok(())
    })
    .map_err(err)?;
    res.map_err(|e| err(format!("namespace {ns}: {e}")))
}

/// MTU, MAC, addresses and link state of an interface inside its node.
pub(super) fn configure_inside(node: &NodeDef, i: &InterfaceDef) -> Result<(), LabError> {
    let ns = &node.netns;
    sysctls_in(
        ns,
        vec![(format!("net.ipv6.conf.{}.accept_dad", i.name), "0".into())],
        false,
    )?;
    let want: Vec<(IpAddr, u8)> = i.addresses().map(|c| (c.addr, c.len)).collect();
    Netlink::in_netns(ns, |n| {
        let cur = n.link(&i.name)?;
        if let Some(m) = i.mtu
            && cur.mtu != m
        {
            n.set_mtu(&i.name, m)?;
        }
        if cur.mac != Some(i.mac) {
            n.set_mac(&i.name, i.mac)?;
        }
        let have = n.addresses(&i.name)?;
        for (a, l) in &want {
            if !have.contains(&(*a, *l)) {
                n.add_address(&i.name, *a, *l)?;
            }
        }
        if !cur.up {
            n.set_up(&i.name)?;
        }
        Ok(())
    })
    .map_err(|e| {
        err(format!(
            "node {} {} ({}): {e}",
            node.name,
            i.name,
            format_mac(&i.mac)
        ))
    })
}

/// Pids of `rvswitch daemon` processes serving `socket`.
pub(super) fn daemon_pids(socket: &Path) -> Vec<i32> {
    let sock = socket.as_os_str().as_encoded_bytes();
    procs()
        .into_iter()
        .filter(|pid| {
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            args.contains(&&b"daemon"[..]) && args.contains(&sock)
        })
        .collect()
}

pub(super) fn procs() -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|p| *p != me)
                .collect()
        })
        .unwrap_or_default()
}

/// Gone, or a zombie nobody reaps (only its exit status is left).
pub(super) fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

pub(super) fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// SIGTERM, then SIGKILL after 5 s.
pub(super) fn stop_pid(pid: i32) {
    use nix::sys::signal::Signal;
    signal(pid, Signal::SIGTERM);
    let t = Instant::now();
    while !gone(pid) {
        if t.elapsed() > Duration::from_secs(5) {
            signal(pid, Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(100));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kill every process inside the namespace (commands started by `exec:`,
/// or by hand with `lab exec`), which would otherwise keep it alive.
pub(super) fn kill_in_netns(ns: &str) -> usize {
    let Ok(ino) = netns::netns_inode(&netns::netns_path(ns)) else {
        return 0;
    };
    let want = format!("net:[{ino}]");
    let victims: Vec<i32> = procs()
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|l| l.to_string_lossy() == want)
        })
        .collect();
    for pid in &victims {
        signal(*pid, nix::sys::signal::Signal::SIGKILL);
    }
    victims.len()
}
