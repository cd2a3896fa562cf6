//! Link, address and route configuration over rtnetlink, with a blocking API.
//!
//! Built on the `rtnetlink` crate (rust-netlink org, the maintained successor
//! of the netlink crates every Rust container runtime uses) with a private
//! tokio current-thread runtime per [`Netlink`] handle, so callers stay
//! synchronous. Do not call these methods from inside an async runtime.
//!
//! A netlink socket belongs to the network namespace of the thread that
//! opened it. [`Netlink::new`] talks to the caller's namespace;
//! [`Netlink::in_netns`] opens a handle on a fresh thread inside another
//! namespace (see `netns.rs`) and runs a closure with it.
//!
//! Owns: rtnetlink requests and their error reporting. Never: runs `ip` or
//! any other command, changes the caller's namespace, touches the data plane.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use futures_util::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::RouteScope;
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::netns::{NetnsError, in_netns, netns_path};

/// Why a netlink operation failed. Messages name the operation and its
/// arguments (`set mtu 9000 on veth0: ...`).
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("open rtnetlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("{op}: no such link {link:?}")]
    NoSuchLink { op: String, link: String },
    #[error("{op}: {source}")]
    Request {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{op}: {why}")]
    Invalid { op: String, why: String },
    #[error("{op}: {source}")]
    Namespace {
        op: String,
        #[source]
        source: NetnsError,
    },
}

impl NetlinkError {
    /// The errno the kernel answered with, if this was a kernel refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request {
                source: rtnetlink::Error::NetlinkError(m),
                ..
            } => Some(m.raw_code().abs()),
            _ => None,
        }
    }
}

/// A link as netlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    pub mac: Option<[u8; 6]>,
    /// The link's alias (`ip link set NAME alias TEXT`), which rvswitch
    /// uses to mark the links it made (see `set_alias`).
    pub alias: Option<String>,
    /// The index of the link this one is enslaved to (a bridge, a bond:
    /// `IFLA_MASTER`), if any.
    pub master: Option<u32>,
}

/// A route to add or delete: `dst/prefix [via gateway] [dev link]`.
/// The default route is `0.0.0.0/0` (or `::/0`) via a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpAddr,
    pub prefix: u8,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
}

impl Route {
    /// The IPv4 or IPv6 default route via `gateway` (family from the gateway).
    pub fn default_via(gateway: IpAddr) -> Route {
        let dst = match gateway {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        Route {
            dst,
            prefix: 0,
            via: Some(gateway),
            dev: None,
        }
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.dst, self.prefix)?;
        if let Some(v) = self.via {
            write!(f, " via {v}")?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        Ok(())
    }
}

/// A blocking rtnetlink handle bound to one network namespace.
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Netlink")
    }
}

impl Netlink {
    /// A handle on the calling thread's network namespace.
    pub fn new() -> Result<Netlink, NetlinkError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(NetlinkError::Socket)?;
        // The socket is opened here, in this thread's namespace; the
        // connection task runs whenever a request is blocked on.
        let (conn, handle) = rt
            .block_on(async {
                let (conn, handle, _) = rtnetlink::new_connection()?;
                Ok::<_, std::io::Error>((conn, handle))
            })
            .map_err(NetlinkError::Socket)?;
        rt.spawn(conn);
        Ok(Netlink { rt, handle })
    }

    /// Run `f` with a handle opened inside the namespace `ns` (a name under
    /// /run/netns or a path such as /var/run/docker/netns/ID), on a thread
    /// of its own.
    pub fn in_netns<T: Send>(
        ns: &str,
        f: impl FnOnce(&Netlink) -> Result<T, NetlinkError> + Send,
    ) -> Result<T, NetlinkError> {
        in_netns(ns, || Netlink::new().and_then(|nl| f(&nl))).map_err(|source| {
            NetlinkError::Namespace {
                op: format!("netlink in netns {ns}"),
                source,
            }
        })?
    }

    fn req<T>(
        &self,
        op: impl FnOnce() -> String,
        fut: impl std::future::Future<Output = Result<T, rtnetlink::Error>>,
    ) -> Result<T, NetlinkError> {
        self.rt
            .block_on(fut)
            .map_err(|source| NetlinkError::Request { op: op(), source })
    }

    /// The link called `name`, or `None` if there is none.
    pub fn find_link(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
        let mut get = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match self.rt.block_on(get.try_next()) {
            Ok(Some(m)) => Ok(Some(link_info(&m))),
            Ok(None) => Ok(None),
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code().abs() == libc::ENODEV => {
                Ok(None)
            }
            Err(source) => Err(NetlinkError::Request {
                op: format!("look up link {name}"),
                source,
            }),
        }
    }

    /// Every link of the namespace.
    pub fn links(&self) -> Result<Vec<LinkInfo>, NetlinkError> {
        let mut get = self.handle.link().get().execute();
        let mut out = Vec::new();
        loop {
            match self.rt.block_on(get.try_next()) {
                Ok(Some(m)) => out.push(link_info(&m)),
                Ok(None) => return Ok(out),
                Err(source) => {
                    return Err(NetlinkError::Request {
                        op: "list links".into(),
                        source,
                    });
                }
            }
        }
    }

    /// The link called `name`; an error naming `op` if there is none.
    pub fn link(&self, name: &str) -> Result<LinkInfo, NetlinkError> {
        self.find_link(name)?
            .ok_or_else(|| NetlinkError::NoSuchLink {
                op: format!("look up link {name}"),
                link: name.to_string(),
            })
    }

    /// The interface index of `name`.
    pub fn ifindex(&self, name: &str) -> Result<u32, NetlinkError> {
        Ok(self.link(name)?.index)
    }

    fn index_for(&self, op: &str, name: &str) -> Result<u32, NetlinkError> {
        match self.find_link(name)? {
            Some(l) => Ok(l.index),
            None => Err(NetlinkError::NoSuchLink {
                op: op.to_string(),
                link: name.to_string(),
            }),
        }
    }

    fn set(
        &self,
        op: String,
        link: &str,
        f: impl FnOnce(u32) -> LinkMessage,
    ) -> Result<(), NetlinkError> {
        let idx = self.index_for(&op, link)?;
        let msg = f(idx);
        self.req(|| op, self.handle.link().set(msg).execute())
    }

    /// Create a veth pair `name` <-> `peer`, both down, in this namespace.
    pub fn create_veth(&self, name: &str, peer: &str) -> Result<(), NetlinkError> {
        let msg = LinkVeth::new(name, peer).build();
        self.req(
            || format!("create veth {name} peer {peer}"),
            self.handle.link().add(msg).execute(),
        )
    }

    /// Delete a link (a veth takes its peer along).
    pub fn delete_link(&self, name: &str) -> Result<(), NetlinkError> {
        let op = format!("delete link {name}");
        let idx = self.index_for(&op, name)?;
        self.req(|| op, self.handle.link().del(idx).execute())
    }

    /// Bring a link up.
    pub fn set_up(&self, name: &str) -> Result<(), NetlinkError> {
        self.set(format!("set link {name} up"), name, |i| {
            LinkUnspec::new_with_index(i).up().build()
        })
    }

    /// Take a link down.
    pub fn set_down(&self, name: &str) -> Result<(), NetlinkError> {
        self.set(format!("set link {name} down"), name, |i| {
            LinkUnspec::new_with_index(i).down().build()
        })
    }

    pub fn set_mtu(&self, name: &str, mtu: u32) -> Result<(), NetlinkError> {
        self.set(format!("set mtu {mtu} on {name}"), name, |i| {
            LinkUnspec::new_with_index(i).mtu(mtu).build()
        })
    }

    pub fn set_mac(&self, name: &str, mac: [u8; 6]) -> Result<(), NetlinkError> {
        let m = mac.map(|b| format!("{b:02x}")).join(":");
        self.set(format!("set mac {m} on {name}"), name, |i| {
            LinkUnspec::new_with_index(i).address(mac.to_vec()).build()
        })
    }

    /// Give a link an alias (IFLA_IFALIAS, at most 255 bytes): a mark that
    /// says who made it, so a restart can find what it left behind.
    pub fn set_alias(&self, name: &str, alias: &str) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        self.set(format!("set alias {alias:?} on {name}"), name, |i| {
            msg.header.index = i;
            msg.attributes
                .push(LinkAttribute::IfAlias(alias.to_string()));
            msg
        })
    }

    /// Rename a link. The kernel refuses (EBUSY) while the link is up.
    pub fn rename(&self, name: &str, new_name: &str) -> Result<(), NetlinkError> {
        if new_name.is_empty() || new_name.len() > 15 || new_name.contains(['/', ' ']) {
            return Err(NetlinkError::Invalid {
                op: format!("rename link {name} to {new_name:?}"),
                why: "interface names are 1 to 15 bytes without '/' or spaces".into(),
            });
        }
        self.set(format!("rename link {name} to {new_name}"), name, |i| {
            LinkUnspec::new_with_index(i)
                .name(new_name.to_string())
                .build()
        })
    }

    /// Move a link into the namespace `ns` (a name under /run/netns or a
    /// path). The link arrives down, with its name (and addresses gone).
    pub fn move_to_netns(&self, name: &str, ns: &str) -> Result<(), NetlinkError> {
        let path = netns_path(ns);
        let f = std::fs::File::open(&path).map_err(|source| NetlinkError::Namespace {
            op: format!("move link {name} to netns {ns}"),
            source: NetnsError::Enter {
                path: path.clone(),
                op: "open",
                source,
            },
        })?;
        self.move_to_netns_fd(name, f.as_fd(), &path)
    }

    /// Move a link into the namespace open as `fd` (`label` names it in errors).
    pub fn move_to_netns_fd(
        &self,
        name: &str,
        fd: BorrowedFd<'_>,
        label: &Path,
    ) -> Result<(), NetlinkError> {
        let raw = fd.as_raw_fd();
        self.set(
            format!("move link {name} to netns {}", label.display()),
            name,
            |i| LinkUnspec::new_with_index(i).setns_by_fd(raw).build(),
        )
    }

    /// Add an address (`ip addr add ADDR/PREFIX dev LINK`).
    pub fn add_address(&self, link: &str, addr: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
        let op = format!("add address {addr}/{prefix} to {link}");
        check_prefix(&op, addr, prefix)?;
        let idx = self.index_for(&op, link)?;
        self.req(
            || op,
            self.handle.address().add(idx, addr, prefix).execute(),
        )
    }

    /// Delete an address; an error if the link does not have it.
    pub fn del_address(&self, link: &str, addr: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
        let op = format!("delete address {addr}/{prefix} from {link}");
        let idx = self.index_for(&op, link)?;
        let msgs = self.address_messages(&op, idx)?;
        let Some(m) = msgs
            .into_iter()
            .find(|m| m.header.prefix_len == prefix && address_of(m) == Some(addr))
        else {
            return Err(NetlinkError::Invalid {
                op,
                why: "the link has no such address".into(),
            });
        };
        self.req(|| op, self.handle.address().del(m).execute())
    }

    /// The addresses on a link, as (address, prefix length).
    pub fn addresses(&self, link: &str) -> Result<Vec<(IpAddr, u8)>, NetlinkError> {
        let op = format!("list addresses of {link}");
        let idx = self.index_for(&op, link)?;
        Ok(self
            .address_messages(&op, idx)?
            .iter()
            .filter_map(|m| address_of(m).map(|a| (a, m.header.prefix_len)))
            .collect())
    }

    fn address_messages(&self, op: &str, idx: u32) -> Result<Vec<AddressMessage>, NetlinkError> {
        let s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(idx)
            .execute();
        let all: Vec<AddressMessage> = self.req(|| op.to_string(), s.try_collect())?;
        // The filter is applied in user space by rtnetlink; keep the check
        // here too in case a version stops doing that.
        Ok(all.into_iter().filter(|m| m.header.index == idx).collect())
    }

    fn route_message(
        &self,
        op: &str,
        r: &Route,
    ) -> Result<netlink_packet_route::route::RouteMessage, NetlinkError> {
        check_prefix(op, r.dst, r.prefix)?;
        let invalid = |why: String| NetlinkError::Invalid {
            op: op.to_string(),
            why,
        };
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(r.dst, r.prefix)
            .map_err(|e| invalid(e.to_string()))?;
        if let Some(gw) = r.via {
            if gw.is_ipv4() != r.dst.is_ipv4() {
                return Err(invalid(
                    "gateway and destination differ in address family".into(),
                ));
            }
            b = b.gateway(gw).map_err(|e| invalid(e.to_string()))?;
        } else {
            b = b.scope(RouteScope::Link);
        }
        if let Some(dev) = &r.dev {
            b = b.output_interface(self.index_for(op, dev)?);
        } else if r.via.is_none() {
            return Err(invalid("a route needs a gateway or a device".into()));
        }
        Ok(b.build())
    }

    /// Add a route (`ip route add DST/PREFIX [via GW] [dev LINK]`).
    pub fn add_route(&self, r: &Route) -> Result<(), NetlinkError> {
        let op = format!("add route {r}");
        let m = self.route_message(&op, r)?;
        self.req(|| op, self.handle.route().add(m).execute())
    }

    /// Delete a route added with the same description.
    pub fn del_route(&self, r: &Route) -> Result<(), NetlinkError> {
        let op = format!("delete route {r}");
        let m = self.route_message(&op, r)?;
        self.req(|| op, self.handle.route().del(m).execute())
    }
}

fn check_prefix(op: &str, addr: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(NetlinkError::Invalid {
            op: op.to_string(),
            why: format!("prefix length {prefix} exceeds {max}"),
        });
    }
    Ok(())
}

fn address_of(m: &AddressMessage) -> Option<IpAddr> {
    // IFA_LOCAL is the interface's own address on point-to-point links;
    // IFA_ADDRESS otherwise (they are equal on Ethernet).
    let mut addr = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => return Some(*ip),
            AddressAttribute::Address(ip) => addr = Some(*ip),
            _ => {}
        }
    }
    addr
}

fn link_info(m: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: m.header.index,
        name: String::new(),
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        mac: None,
        alias: None,
        master: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => info.name = n.clone(),
            LinkAttribute::Mtu(v) => info.mtu = *v,
            LinkAttribute::IfAlias(a) => info.alias = Some(a.clone()),
            LinkAttribute::Controller(m) if *m != 0 => info.master = Some(*m),
            LinkAttribute::Address(b) if b.len() == 6 => {
                info.mac = Some(b.as_slice().try_into().expect("length checked"))
            }
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_display_like_ip() {
        let r = Route::default_via("10.0.0.1".parse().unwrap());
        assert_eq!(r.to_string(), "0.0.0.0/0 via 10.0.0.1");
        let r6 = Route {
            dst: "2001:db8::".parse().unwrap(),
            prefix: 32,
            via: None,
            dev: Some("eth0".into()),
        };
        assert_eq!(r6.to_string(), "2001:db8::/32 dev eth0");
    }

    #[test]
    fn prefix_lengths_are_checked_before_any_request() {
        let e = check_prefix("add address", "10.0.0.1".parse().unwrap(), 33).unwrap_err();
        assert!(e.to_string().contains("prefix length 33 exceeds 32"), "{e}");
        assert!(check_prefix("x", "::1".parse().unwrap(), 128).is_ok());
    }
}
