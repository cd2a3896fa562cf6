//! The interface ioctls the back ends need, in one place: transmit checksum
//! offload (`SIOCETHTOOL` with `ETHTOOL_GTXCSUM`/`ETHTOOL_STXCSUM`), the MTU
//! (`SIOCGIFMTU`) and the interface index (`SIOCGIFINDEX`). A veth end
//! attached by AF_XDP must have transmit checksum offload off, or the peer
//! hands us CHECKSUM_PARTIAL frames whose L4 checksum an AF_XDP socket in
//! copy mode sees never filled in (docs/afxdp.md).
//!
//! The legacy ethtool ioctl, which every kernel since 2.6 maps onto the
//! feature flags, needs no generic-netlink family lookup; the `ethtool`
//! crate speaks the netlink interface and would bring an async stack for
//! two requests, and `nix` has no ifreq helpers, so the one `ioctl` call is
//! written here (the request socket comes from std, the namespace switch
//! from `netns`). Every call acts in the calling thread's network namespace;
//! the `*_in_netns` forms run it on a thread inside another one.
//!
//! Owns: those ioctls and their short-lived request socket. Never: any
//! other interface setting.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use crate::netns;

const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;

/// Why an interface request failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} on {ifname}: {source}")]
pub struct EthtoolError {
    pub op: &'static str,
    pub ifname: String,
    #[source]
    pub source: io::Error,
}

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with `ifr_data`, a pointer to the request (SIOCETHTOOL).
#[repr(C)]
struct IfReqPtr {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// `struct ifreq` with an int in the union (`ifr_mtu`, `ifr_ifindex`).
#[repr(C)]
struct IfReqInt {
    name: [u8; libc::IFNAMSIZ],
    value: libc::c_int,
    _pad: [u8; 20],
}

/// The two `struct ifreq` shapes above; only they may reach [`ioctl`].
trait IfReq {}
impl IfReq for IfReqPtr {}
impl IfReq for IfReqInt {}

fn ifname_bytes(ifname: &str) -> io::Result<[u8; libc::IFNAMSIZ]> {
    let b = ifname.as_bytes();
    if b.is_empty() || b.len() >= libc::IFNAMSIZ || b.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut name = [0u8; libc::IFNAMSIZ];
    name[..b.len()].copy_from_slice(b);
    Ok(name)
}

/// Issue interface request `req` with `ifr` on a fresh datagram socket of
/// this thread's namespace (an AF_UNIX one: the kernel routes interface
/// ioctls of any socket family to the device layer, as `ethtool` relies on
/// when AF_INET is unavailable).
fn ioctl<T: IfReq>(req: libc::c_ulong, ifr: &mut T) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    // SAFETY: `ifr` is exclusively borrowed for the call and is one of the
    // two 40-byte `struct ifreq` layouts (name, then the union). The callers
    // pair each request with its layout: SIOCETHTOOL with `IfReqPtr` whose
    // pointer refers to an `ethtool_value` they keep alive across the call,
    // SIOCGIFMTU/SIOCGIFINDEX with `IfReqInt`, which the kernel fills in.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), req as _, ifr as *mut T) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn ethtool_value(ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let mut v = EthtoolValue { cmd, data };
    let mut ifr = IfReqPtr {
        name: ifname_bytes(ifname)?,
        data: (&raw mut v).cast(),
        _pad: [0; 16],
    };
    ioctl(libc::SIOCETHTOOL, &mut ifr)?;
    Ok(v.data)
}

fn int_request(ifname: &str, req: libc::c_ulong) -> io::Result<libc::c_int> {
    let mut ifr = IfReqInt {
        name: ifname_bytes(ifname)?,
        value: 0,
        _pad: [0; 20],
    };
    ioctl(req, &mut ifr)?;
    Ok(ifr.value)
}

/// Whether transmit checksum offload is on for `ifname`.
pub fn tx_checksum(ifname: &str) -> Result<bool, EthtoolError> {
    ethtool_value(ifname, ETHTOOL_GTXCSUM, 0)
        .map(|v| v != 0)
        .map_err(|source| EthtoolError {
            op: "read tx checksum offload (ETHTOOL_GTXCSUM)",
            ifname: ifname.to_string(),
            source,
        })
}

/// Turn transmit checksum offload of `ifname` on or off
/// (`ethtool -K IFNAME tx on|off`); off also turns off TSO, which depends
/// on it.
pub fn set_tx_checksum(ifname: &str, on: bool) -> Result<(), EthtoolError> {
    ethtool_value(ifname, ETHTOOL_STXCSUM, on as u32)
        .map(|_| ())
        .map_err(|source| EthtoolError {
            op: if on {
                "turn on tx checksum offload (ETHTOOL_STXCSUM)"
            } else {
                "turn off tx checksum offload (ETHTOOL_STXCSUM)"
            },
            ifname: ifname.to_string(),
            source,
        })
}

/// Run `f` for `ifname` inside the network namespace at `ns` (a bind-mount
/// path such as `/run/netns/NAME` or `/proc/PID/ns/net`).
fn in_netns<T: Send>(
    ns: &Path,
    ifname: &str,
    f: impl FnOnce() -> Result<T, EthtoolError> + Send,
) -> Result<T, EthtoolError> {
    netns::in_netns_path(ns, f).unwrap_or_else(|e| {
        Err(EthtoolError {
            op: "enter the interface's network namespace (setns)",
            ifname: ifname.to_string(),
            source: io::Error::other(e),
        })
    })
}

/// [`tx_checksum`] for an interface inside another network namespace; the
/// caller's namespace never changes.
pub fn tx_checksum_in_netns(ns: &Path, ifname: &str) -> Result<bool, EthtoolError> {
    in_netns(ns, ifname, || tx_checksum(ifname))
}

/// [`set_tx_checksum`] for an interface inside another network namespace;
/// the caller's namespace never changes.
pub fn set_tx_checksum_in_netns(ns: &Path, ifname: &str, on: bool) -> Result<(), EthtoolError> {
    in_netns(ns, ifname, || set_tx_checksum(ifname, on))
}

/// The MTU of `ifname`.
pub fn mtu(ifname: &str) -> io::Result<usize> {
    int_request(ifname, libc::SIOCGIFMTU).map(|m| m.max(0) as usize)
}

/// The interface index of `ifname`.
pub fn ifindex(ifname: &str) -> io::Result<u32> {
    int_request(ifname, libc::SIOCGIFINDEX).map(|i| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<IfReqPtr>(), 40);
        assert_eq!(std::mem::offset_of!(IfReqPtr, data), 16);
        assert_eq!(std::mem::size_of::<IfReqInt>(), 40);
        assert_eq!(std::mem::offset_of!(IfReqInt, value), 16);
    }

    #[test]
    fn interface_names_are_checked_before_any_ioctl() {
        assert!(ifname_bytes("").is_err());
        assert!(ifname_bytes("a-name-that-is-too-long").is_err());
        assert!(ifname_bytes("nul\0").is_err());
        assert!(ifname_bytes("eth0").is_ok());
    }

    #[test]
    fn missing_interface_reports_the_name() {
        let e = tx_checksum("rvs-nope0").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("read tx checksum offload (ETHTOOL_GTXCSUM) on rvs-nope0: "),
            "{e}"
        );
        assert_eq!(e.source.raw_os_error(), Some(libc::ENODEV));
    }

    #[test]
    fn loopback_mtu_and_index_are_readable() {
        assert!(mtu("lo").unwrap() >= 1500);
        assert_eq!(ifindex("lo").unwrap(), 1);
        assert!(ifindex("no-such-if0").is_err());
        // lo has tx checksum offload on by default.
        assert!(tx_checksum("lo").unwrap());
    }

    #[test]
    fn missing_namespace_is_an_error_naming_it() {
        let e = tx_checksum_in_netns(Path::new("/nonexistent/rvs-ns"), "lo").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("setns") && msg.contains("/nonexistent/rvs-ns"),
            "{msg}"
        );
    }
}
