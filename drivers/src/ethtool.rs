//! The one ethtool knob the switch needs: transmit checksum offload. A veth
//! end attached by AF_XDP must have it off, or the peer hands us frames whose
//! L4 checksum was never completed (the kernel expects "hardware" to do it).
//!
//! Uses the legacy `SIOCETHTOOL` ioctl (`ETHTOOL_GTXCSUM`/`ETHTOOL_STXCSUM`),
//! which every kernel since 2.6 maps onto the feature flags; it needs no
//! generic-netlink family lookup. It acts in the caller's network namespace;
//! wrap it in `netns::in_netns` for another one.
//!
//! Owns: that ioctl. Never: other offload settings.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;

/// Why an ethtool request failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} on {ifname}: {source}")]
pub struct EthtoolError {
    pub op: &'static str,
    pub ifname: String,
    #[source]
    pub source: io::Error,
}

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

fn request(op: &'static str, ifname: &str, cmd: u32, data: u32) -> Result<u32, EthtoolError> {
    let err = |source| EthtoolError {
        op,
        ifname: ifname.to_string(),
        source,
    };
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ {
        return Err(err(io::Error::from(io::ErrorKind::InvalidInput)));
    }
    // SAFETY: socket(2) takes no pointers; a non-negative result is a new fd
    // that we own from here on.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: `raw` was just returned by socket(2) and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut value = EthtoolValue { cmd, data };
    let mut ifr = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: (&mut value as *mut EthtoolValue).cast(),
        _pad: [0; 16],
    };
    ifr.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
    // SAFETY: `ifr` is a properly laid out struct ifreq (name, then the
    // ifr_data pointer, padded to the union size) whose data pointer refers
    // to `value`, an ethtool_value that outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) };
    if rc < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(value.data)
}

/// Whether transmit checksum offload is on for `ifname`.
pub fn tx_checksum(ifname: &str) -> Result<bool, EthtoolError> {
    request("ETHTOOL_GTXCSUM", ifname, ETHTOOL_GTXCSUM, 0).map(|v| v != 0)
}

/// Turn transmit checksum offload of `ifname` on or off
/// (`ethtool -K IFNAME tx on|off`).
pub fn set_tx_checksum(ifname: &str, on: bool) -> Result<(), EthtoolError> {
    request("ETHTOOL_STXCSUM", ifname, ETHTOOL_STXCSUM, on as u32).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<IfreqData>(), 40);
        assert_eq!(std::mem::offset_of!(IfreqData, data), 16);
    }

    #[test]
    fn missing_interface_reports_the_name() {
        let e = tx_checksum("rvs-nope0").unwrap_err();
        assert!(
            e.to_string().starts_with("ETHTOOL_GTXCSUM on rvs-nope0: "),
            "{e}"
        );
    }
}
