//! What a TAP port is created with: name, offloads, MTU, and the errors
//! creation reports. Plain data; the syscalls are in `mod.rs`.

use std::io;

use rvs_switch::PacketPool;

use crate::netlink::NetlinkError;

/// Which offloads the TAP offers the kernel (`TUNSETOFFLOAD`): what the
/// kernel may hand us, and what we pass through on transmit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TapOffload {
    /// Complete frames only; partial checksums are completed in software.
    None,
    /// `TUN_F_CSUM`: frames may carry a partial L4 checksum.
    Csum,
    /// `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`: TCP super-frames up to
    /// 64 KiB. Needs a pool with large frames.
    Tso,
}

/// How to create a TAP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapOptions {
    /// Interface name (at most 15 bytes); also the switch port name.
    pub name: String,
    pub offload: TapOffload,
    /// `IFF_MULTI_QUEUE`: further `TapPort`s may attach to the same name.
    pub multi_queue: bool,
    pub mtu: u32,
    /// Bring the link up after creation.
    pub up: bool,
    /// `TUNSETPERSIST`: the device outlives the port's file descriptor (a
    /// daemon restart or crash), and is re-attached by the next open. It is
    /// removed only when the port leaves the switch (`Port::detach`).
    pub persist: bool,
    /// The namespace the device may have been moved to (a name under
    /// /run/netns or a path such as Docker's sandbox key). Open looks for
    /// the device by `name` in the caller's namespace first, then there
    /// (by `netns_ifname`, else by `mac`). When the namespace itself is
    /// gone, open fails instead of making a new device.
    pub netns: Option<String>,
    /// The device's name inside `netns`, when it was renamed there.
    pub netns_ifname: Option<String>,
    /// The MAC to give a new device, and to find a moved one by.
    pub mac: Option<[u8; 6]>,
    /// An alias for a new device (who made it), set before the device is
    /// made persistent: a process killed in between leaves no device.
    pub alias: Option<String>,
}

impl TapOptions {
    /// Checksum offload, MTU 1500, up, single queue.
    pub fn new(name: &str) -> TapOptions {
        TapOptions {
            name: name.to_string(),
            offload: TapOffload::Csum,
            multi_queue: false,
            mtu: 1500,
            up: true,
            persist: false,
            netns: None,
            netns_ifname: None,
            mac: None,
            alias: None,
        }
    }

    /// Like [`TapOptions::new`], with TSO when `pool` has large frames.
    pub fn for_pool(name: &str, pool: &PacketPool) -> TapOptions {
        let mut o = Self::new(name);
        if pool.large_capacity() > 0 {
            o.offload = TapOffload::Tso;
        }
        o
    }

    pub fn offload(mut self, o: TapOffload) -> Self {
        self.offload = o;
        self
    }
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = mtu;
        self
    }
    pub fn up(mut self, up: bool) -> Self {
        self.up = up;
        self
    }
    pub fn multi_queue(mut self, mq: bool) -> Self {
        self.multi_queue = mq;
        self
    }
    pub fn persist(mut self, p: bool) -> Self {
        self.persist = p;
        self
    }
    pub fn netns(mut self, ns: Option<String>, ifname: Option<String>) -> Self {
        self.netns = ns;
        self.netns_ifname = ifname;
        self
    }
    pub fn alias(mut self, a: Option<String>) -> Self {
        self.alias = a;
        self
    }
    pub fn mac(mut self, mac: Option<[u8; 6]>) -> Self {
        self.mac = mac;
        self
    }
}

/// Why a TAP could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("create tap {name}: {why}")]
    Config { name: String, why: String },
    #[error("create tap {name}: open /dev/net/tun failed: {source}")]
    Open {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("create tap {name}: {op} failed: {source}")]
    Ioctl {
        name: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The device was moved into a namespace that no longer exists (its
    /// container or node went away while the port was closed).
    #[error("open tap {name}: {why}")]
    Gone { name: String, why: String },
    #[error("create tap {name}: {source}")]
    Netlink {
        name: String,
        #[source]
        source: NetlinkError,
    },
}
