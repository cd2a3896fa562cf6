//! Helpers for tests that need root, namespaces and links. One gate for all of
//! them: without root a test prints why it skips, and under
//! `RVS_TEST_STRICT=1` (CI) a skip is a failure.
//!
//! Every fixture removes what it made in `Drop`, so a failing test cleans up
//! too, and names are unique per process so test binaries can run at once.
//! Fixtures use the `ip` command on purpose: tests check the switch with the
//! tools a user would use, independently of the switch's own netlink code.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rvs_switch::Switch;

/// True when the test may go on. Otherwise prints a skip line, or panics when
/// `RVS_TEST_STRICT=1`.
pub fn root_or_skip(test: &str) -> bool {
    let why = if !is_root() {
        Some("needs root")
    } else if !std::path::Path::new("/dev/net/tun").exists() {
        Some("needs /dev/net/tun")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("needs the ip command (iproute2)")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) => {
            if std::env::var("RVS_TEST_STRICT").as_deref() == Ok("1") {
                panic!("{test}: {why}, and RVS_TEST_STRICT=1 forbids skipping");
            }
            eprintln!("SKIP {test}: {why}");
            false
        }
    }
}

/// Whether the process runs with effective uid 0 (read from /proc, no libc).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A name unique to this process and call, at most 15 bytes (IFNAMSIZ - 1):
/// `prefix` (up to 5 chars) + pid (base 36) + a counter.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p: String = prefix.chars().take(5).collect();
    let name = format!("{p}{}x{}", base36(std::process::id()), base36(n));
    assert!(name.len() <= 15, "{name} too long for an interface name");
    name
}

fn base36(mut v: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(digits[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

/// Run a command, panicking with its output when it fails.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ip ARGS...`, panicking on failure.
pub fn ip(args: &[&str]) -> Output {
    run("ip", args)
}

/// A network namespace, deleted on drop (with every link inside it).
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = unique(prefix);
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Run a command inside the namespace; returns its output whatever the status.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, cmd])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {} {cmd}: {e}", self.name))
    }

    /// `ip ARGS` inside the namespace, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        ip(&a)
    }

    /// Whether `count` pings to `addr` get answers (1 s timeout each; exit 0
    /// means at least one reply, so count replies in the output).
    pub fn ping(&self, addr: &str, count: u32) -> bool {
        let c = count.to_string();
        let six = addr.contains(':');
        let mut args = vec!["-c", c.as_str(), "-i", "0.2", "-W", "1"];
        if six {
            args.insert(0, "-6");
        }
        args.push(addr);
        let out = self.exec("ping", &args);
        out.status.success()
    }

    /// Ping until one answer arrives or `within` passes (ARP warm-up, ports
    /// coming up). Returns whether an answer came.
    pub fn ping_eventually(&self, addr: &str, within: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < within {
            if self.ping(addr, 1) {
                return true;
            }
        }
        false
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A link in the host namespace, deleted on drop (a veth's peer goes with it).
#[derive(Debug)]
pub struct Link {
    pub name: String,
}

impl Link {
    /// A veth pair: `host` stays here, `peer` moves into `ns` (if given).
    pub fn veth(prefix: &str, ns: Option<&Netns>) -> (Link, String) {
        let host = unique(prefix);
        let peer = unique("p");
        ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer]);
        if let Some(ns) = ns {
            ip(&["link", "set", &peer, "netns", &ns.name]);
        }
        ip(&["link", "set", &host, "up"]);
        (Link { name: host }, peer)
    }

    /// Adopt an existing link for cleanup.
    pub fn adopt(name: &str) -> Link {
        Link {
            name: name.to_string(),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .output();
    }
}

/// A switch polled by a background thread until dropped (a stand-in for the
/// daemon's workers in driver tests).
pub struct RunningSwitch {
    pub switch: Arc<Mutex<Switch>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RunningSwitch {
    pub fn start(switch: Switch) -> RunningSwitch {
        let switch = Arc::new(Mutex::new(switch));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, st) = (switch.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            while !st.load(Ordering::Relaxed) {
                let n = {
                    let mut sw = s.lock().unwrap();
                    sw.set_now_ms(t0.elapsed().as_millis() as u64);
                    sw.poll()
                };
                if n == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        RunningSwitch {
            switch,
            stop,
            thread: Some(thread),
        }
    }

    /// Run `f` on the switch between polls.
    pub fn with<R>(&self, f: impl FnOnce(&mut Switch) -> R) -> R {
        f(&mut self.switch.lock().unwrap())
    }
}

impl Drop for RunningSwitch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Send one raw Ethernet frame, exactly as given (VLAN tags included), out
/// of `ifname` in namespace `ns` through an AF_PACKET socket. For tests that
/// need frames the namespace's own stack would not build (this kernel has
/// no 802.1Q sub-interfaces, so tagged traffic is injected this way).
pub fn inject_frame(ns: &Netns, ifname: &str, frame: &[u8]) -> std::io::Result<()> {
    let ifname = std::ffi::CString::new(ifname).expect("no NUL in names");
    crate::netns::in_netns(&ns.name, || -> std::io::Result<()> {
        // SAFETY: if_nametoindex reads a NUL-terminated string that lives
        // across the call.
        let index = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
        if index == 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: socket(2) takes no pointers. Protocol 0: send only.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2); nothing else owns it.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = index as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: `frame` and `sll` are live for the call and the length
        // arguments are their sizes.
        let n = unsafe {
            libc::sendto(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    })
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_fit_ifnamsiz_and_differ() {
        let a = unique("rvtap");
        let b = unique("rvtap");
        assert_ne!(a, b);
        assert!(a.len() <= 15);
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36), "10");
    }
}
