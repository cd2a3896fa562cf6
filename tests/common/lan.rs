//! A LAN for the tests of networks on a host NIC (`rvswitch.parent`,
//! `ctl parent`): a veth pair stands for the NIC — `nic` stays in the
//! host's namespace as the parent, its peer is `eth0` of namespace `ns`,
//! the LAN's wire. Untagged hosts are `ns` itself (an address on `eth0`).
//! Hosts on a VLAN are namespaces of their own behind the LAN's switch:
//! a second rvswitch daemon inside `ns`, with a trunk port on `eth0` and
//! an access port per host, standing for the physical switch a NIC's
//! trunk goes to. (A kernel VLAN device would do for one host, but test
//! machines without the `8021q` module have none; the LAN switch needs
//! nothing but veth and packet sockets, and its hosts are real kernels.)
//! A capture on `eth0` of `ns` shows every frame with its tag.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use rvs_drivers::testutil::{Link, Netns, ip, unique};

/// The LAN; everything in it goes on drop (its switch first).
pub struct Lan {
    /// Its switch's daemon and state directory, started with the first
    /// VLAN host.
    switch: Option<(Child, PathBuf)>,
    hosts: Vec<Netns>,
    pub nic: Link,
    pub ns: Netns,
}

impl Lan {
    pub fn new() -> Lan {
        let ns = Netns::new("lan");
        let (nic, peer) = Link::veth("nic", Some(&ns));
        ns.ip(&["link", "set", &peer, "name", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        Lan {
            switch: None,
            hosts: Vec::new(),
            nic,
            ns,
        }
    }

    /// `parent` text for this NIC: `nic` or `nic.VID`.
    pub fn parent(&self, vid: Option<u16>) -> String {
        match vid {
            Some(v) => format!("{}.{v}", self.nic.name),
            None => self.nic.name.clone(),
        }
    }

    fn socket(&self) -> PathBuf {
        self.switch.as_ref().expect("started").1.join("api.sock")
    }

    fn ctl(&self, args: &[&str]) {
        super::ctl_ok(&self.socket(), args);
    }

    /// The LAN's switch: a daemon in `ns`, domain `lan`, a trunk of every
    /// VLAN on `eth0` (untagged frames are the namespace's own).
    fn switch(&mut self) {
        if self.switch.is_some() {
            return;
        }
        let dir = std::env::temp_dir().join(unique("rvlan"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns.name, super::BIN, "daemon"])
            .arg("--socket")
            .arg(dir.join("api.sock"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        let child = super::spawn_ready(&mut cmd, None);
        self.switch = Some((child, dir));
        self.ctl(&["domain", "add", "lan"]);
        self.ctl(&[
            "port", "add", "wire", "--kind", "afpacket", "--iface", "eth0", "--domain", "lan",
            "--trunk", "all",
        ]);
    }

    /// The `i`th VLAN host made.
    pub fn host(&self, i: usize) -> &Netns {
        &self.hosts[i]
    }

    /// A host on VLAN `vid` of the LAN with `addr` on its `eth0`.
    pub fn vlan_host(&mut self, vid: u16, addr: &str) -> &Netns {
        self.switch();
        let host = Netns::new(&format!("v{vid}"));
        let (a, b) = (unique("lh"), unique("lh"));
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        ip(&["link", "set", &a, "netns", &self.ns.name]);
        ip(&["link", "set", &b, "netns", &host.name]);
        self.ns.ip(&["link", "set", &a, "up"]);
        host.ip(&["link", "set", &b, "name", "eth0"]);
        host.ip(&["addr", "add", addr, "dev", "eth0"]);
        host.ip(&["link", "set", "eth0", "up"]);
        self.ctl(&[
            "port",
            "add",
            &a,
            "--kind",
            "afpacket",
            "--iface",
            &a,
            "--domain",
            "lan",
            "--access",
            &vid.to_string(),
        ]);
        self.hosts.push(host);
        self.hosts.last().unwrap()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        if let Some((mut c, dir)) = self.switch.take() {
            let _ = c.kill();
            let _ = c.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `tcpdump` on `eth0` of `ns` while it lives, written to a file; read
/// back with [`Capture::lines`].
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
}

impl Capture {
    pub fn start(ns: &Netns) -> Capture {
        let file = std::env::temp_dir().join(format!("{}.pcap", unique("cap")));
        // Its messages go to a file: with its stderr closed early, tcpdump
        // writes no packets at all.
        let log = file.with_extension("log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "tcpdump",
                "-i",
                "eth0",
                "-n",
                "-U",
                "--immediate-mode",
            ])
            .arg("-w")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("tcpdump");
        let cap = Capture {
            child: Some(child),
            file,
        };
        // It says "listening on" once its socket is open.
        let t = std::time::Instant::now();
        loop {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            if said.contains("listening on") {
                break;
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "tcpdump did not start: {said}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        cap
    }

    /// Stop, and read the capture back: one line per frame with its
    /// link-level header (`-e`: the MACs and the 802.1Q tag, `vlan N,`).
    pub fn lines(mut self) -> Vec<String> {
        if let Some(c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait_with_output();
        }
        let o = Command::new("tcpdump")
            .args(["-n", "-e", "-r"])
            .arg(&self.file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_file(self.file.with_extension("log"));
    }
}

/// The frames of a capture sent from `mac`.
pub fn sent_by<'a>(lines: &'a [String], mac: &str) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|l| l.split_whitespace().nth(1) == Some(mac))
        .collect()
}

/// Whether tcpdump is there (the capture tests skip, or fail under
/// RVS_TEST_STRICT=1, without it).
pub fn tcpdump() -> Result<(), String> {
    Command::new("tcpdump")
        .arg("--version")
        .output()
        .map(drop)
        .map_err(|e| format!("needs tcpdump: {e}"))
}
