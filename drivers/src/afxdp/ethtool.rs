//! The two interface ioctls the AF_XDP back end needs: transmit checksum
//! offload (ETHTOOL_GTXCSUM / ETHTOOL_STXCSUM over SIOCETHTOOL) and the MTU
//! (SIOCGIFMTU). A veth whose sender leaves checksums to "hardware" hands
//! CHECKSUM_PARTIAL frames to XDP, and an AF_XDP socket in copy mode then
//! sees TCP/UDP checksums that were never filled in (docs/afxdp.md).
//!
//! Owns: nothing beyond a short-lived datagram socket per call. Never:
//! changes any other interface setting.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::AfXdpError;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const SIOCGIFMTU: libc::c_ulong = 0x8921;
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with the union as either a pointer or an int.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: IfReqData,
}

#[repr(C)]
union IfReqData {
    ptr: *mut libc::c_void,
    int: libc::c_int,
    _size: [u8; 24],
}

fn ifreq(ifname: &str) -> io::Result<IfReq> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut name = [0u8; libc::IFNAMSIZ];
    name[..bytes.len()].copy_from_slice(bytes);
    Ok(IfReq {
        name,
        data: IfReqData { _size: [0; 24] },
    })
}

fn dgram_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl(req: libc::c_ulong, ifr: &mut IfReq) -> io::Result<()> {
    let sock = dgram_socket()?;
    // SAFETY: `ifr` is a valid `struct ifreq` for SIOCETHTOOL / SIOCGIFMTU;
    // for SIOCETHTOOL its data pointer points at a live `ethtool_value` owned
    // by the caller for the duration of the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), req as _, ifr as *mut IfReq) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn ethtool_value(ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let mut v = EthtoolValue { cmd, data };
    let mut ifr = ifreq(ifname)?;
    ifr.data.ptr = &mut v as *mut EthtoolValue as *mut libc::c_void;
    ioctl(SIOCETHTOOL, &mut ifr)?;
    Ok(v.data)
}

/// Whether `ifname` (in this thread's network namespace) offloads transmit
/// checksums.
pub fn tx_checksum(ifname: &str) -> Result<bool, AfXdpError> {
    ethtool_value(ifname, ETHTOOL_GTXCSUM, 0)
        .map(|v| v != 0)
        .map_err(|source| AfXdpError::Ethtool {
            ifname: ifname.to_string(),
            what: "read tx checksum offload (ETHTOOL_GTXCSUM)",
            source,
        })
}

/// Turn transmit checksum offload of `ifname` (in this thread's network
/// namespace) on or off; off also turns off TSO, which depends on it.
pub fn set_tx_checksum(ifname: &str, on: bool) -> Result<(), AfXdpError> {
    ethtool_value(ifname, ETHTOOL_STXCSUM, on as u32)
        .map(|_| ())
        .map_err(|source| AfXdpError::Ethtool {
            ifname: ifname.to_string(),
            what: if on {
                "turn on tx checksum offload (ETHTOOL_STXCSUM)"
            } else {
                "turn off tx checksum offload (ETHTOOL_STXCSUM)"
            },
            source,
        })
}

/// Like [`set_tx_checksum`] for an interface inside another network
/// namespace, named by its bind-mount path (`/run/netns/NAME`) or
/// `/proc/PID/ns/net`. Runs on a short-lived thread that enters the
/// namespace, so the caller's namespace never changes.
pub fn set_tx_checksum_in_netns(netns: &Path, ifname: &str, on: bool) -> Result<(), AfXdpError> {
    let ns = netns.to_path_buf();
    let name = ifname.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns).map_err(|source| AfXdpError::Ethtool {
            ifname: name.clone(),
            what: "enter the interface's network namespace (setns)",
            source,
        })?;
        set_tx_checksum(&name, on)
    })
    .join()
    .expect("the namespace helper thread does not panic")
}

/// Like [`tx_checksum`] inside another network namespace.
pub fn tx_checksum_in_netns(netns: &Path, ifname: &str) -> Result<bool, AfXdpError> {
    let ns = netns.to_path_buf();
    let name = ifname.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns).map_err(|source| AfXdpError::Ethtool {
            ifname: name.clone(),
            what: "enter the interface's network namespace (setns)",
            source,
        })?;
        tx_checksum(&name)
    })
    .join()
    .expect("the namespace helper thread does not panic")
}

/// Move the calling thread (only) into the network namespace at `path`.
fn enter_netns(path: &Path) -> io::Result<()> {
    let f = std::fs::File::open(path)?;
    // SAFETY: `f` is an open namespace file; setns(CLONE_NEWNET) changes
    // only the calling thread's network namespace and touches no memory.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The MTU of `ifname` in this thread's network namespace.
pub fn mtu(ifname: &str) -> io::Result<usize> {
    let mut ifr = ifreq(ifname)?;
    ioctl(SIOCGIFMTU, &mut ifr)?;
    // SAFETY: SIOCGIFMTU succeeded, so the kernel wrote `ifr_mtu` (the int
    // member of the union); every bit pattern is a valid c_int.
    let mtu = unsafe { ifr.data.int };
    Ok(mtu.max(0) as usize)
}

/// The interface index of `ifname` in this thread's network namespace.
pub(crate) fn ifindex(ifname: &str) -> io::Result<u32> {
    let c = CString::new(ifname).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked_before_any_ioctl() {
        assert!(ifreq("").is_err());
        assert!(ifreq("a-name-that-is-too-long").is_err());
        assert!(ifreq("eth0").is_ok());
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
    }

    #[test]
    fn loopback_mtu_and_index_are_readable() {
        assert!(mtu("lo").unwrap() >= 1500);
        assert_eq!(ifindex("lo").unwrap(), 1);
        assert!(ifindex("no-such-if0").is_err());
    }
}
