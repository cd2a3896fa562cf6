//! The syscalls of the AF_PACKET port: socket, socket options, bind,
//! statistics and batched send, each a small function whose `unsafe` block
//! only passes pointers to live, correctly sized values.
//!
//! Owns: the libc calls. Never: ring memory (see `ring.rs`) or packet logic.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libc::{c_int, c_void, socklen_t};

/// `ETH_P_ALL` in network byte order, as `bind` and `socket` want it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

fn cvt(r: c_int) -> io::Result<c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A raw packet socket, non-blocking and close-on-exec, that receives
/// nothing until [`bind`] names an interface and protocol.
pub(super) fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: no pointers are passed; a non-negative result is a new fd.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt<T>(fd: BorrowedFd<'_>, level: c_int, name: c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of `size_of::<T>()` bytes for the
    // whole call, and the kernel only reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast::<c_void>(),
            std::mem::size_of::<T>() as socklen_t,
        )
    })
    .map(drop)
}

/// `setsockopt(SOL_PACKET, name, &v)` for an integer option.
pub(super) fn set_packet_int(fd: BorrowedFd<'_>, name: c_int, v: c_int) -> io::Result<()> {
    setsockopt(fd, libc::SOL_PACKET, name, &v)
}

/// Ask for a TPACKET_V3 receive ring.
pub(super) fn set_rx_ring(
    fd: BorrowedFd<'_>,
    block_size: usize,
    blocks: usize,
    frame_size: usize,
    retire_ms: u32,
) -> io::Result<()> {
    let req = libc::tpacket_req3 {
        tp_block_size: block_size as u32,
        tp_block_nr: blocks as u32,
        tp_frame_size: frame_size as u32,
        tp_frame_nr: ((block_size / frame_size) * blocks) as u32,
        tp_retire_blk_tov: retire_ms,
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    };
    setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
}

/// Put the interface in promiscuous mode for as long as the socket lives.
pub(super) fn add_promisc(fd: BorrowedFd<'_>, ifindex: u32) -> io::Result<()> {
    let mreq = libc::packet_mreq {
        mr_ifindex: ifindex as c_int,
        mr_type: libc::PACKET_MR_PROMISC as u16,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    setsockopt(fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
}

/// Bind to one interface, every protocol.
pub(super) fn bind(fd: BorrowedFd<'_>, ifindex: u32) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_ll (plain integers and bytes).
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL_BE;
    sll.sll_ifindex = ifindex as c_int;
    // SAFETY: `sll` is a live sockaddr_ll and the length passed is its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as socklen_t,
        )
    })
    .map(drop)
}

/// Kernel counters since the previous call (reading resets them).
pub(super) fn take_stats(fd: BorrowedFd<'_>) -> io::Result<libc::tpacket_stats_v3> {
    let mut st = libc::tpacket_stats_v3 {
        tp_packets: 0,
        tp_drops: 0,
        tp_freeze_q_cnt: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as socklen_t;
    // SAFETY: `st` is a live, writable tpacket_stats_v3 and `len` says its
    // size; the kernel writes at most `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats_v3).cast(),
            &mut len,
        )
    })?;
    Ok(st)
}

/// The socket's pending error (`SO_ERROR`), which reading clears.
pub(super) fn take_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let mut v: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: `v` is a live, writable int and `len` says its size.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut v as *mut c_int).cast(),
            &mut len,
        )
    })?;
    Ok((v != 0).then(|| io::Error::from_raw_os_error(v)))
}

/// Most frames one `sendmmsg` call takes (the switch's largest batch).
pub(super) const SEND_MAX: usize = 64;

/// Send up to [`SEND_MAX`] frames, each given as the slices that make it up
/// (a virtio-net header and the frame, or the frame alone), without
/// blocking. Returns how many frames the kernel took, in order; an error
/// means the first frame was not taken.
pub(super) fn send_frames(
    fd: BorrowedFd<'_>,
    frames: &[[IoSlice<'_>; 2]],
    iovs: usize,
) -> io::Result<usize> {
    assert!(frames.len() <= SEND_MAX && (1..=2).contains(&iovs));
    // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
    let mut msgs: [libc::mmsghdr; SEND_MAX] = unsafe { std::mem::zeroed() };
    let skip = 2 - iovs;
    for (m, f) in msgs.iter_mut().zip(frames) {
        // IoSlice is guaranteed ABI-compatible with `struct iovec`.
        m.msg_hdr.msg_iov = f[skip..].as_ptr() as *mut libc::iovec;
        m.msg_hdr.msg_iovlen = iovs as _;
    }
    loop {
        // SAFETY: the first `frames.len()` headers point at iovecs in
        // `frames`, which borrow live buffers for the whole call; the kernel
        // only reads them (and writes `msg_len` into `msgs`, which we own).
        let r = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                frames.len() as u32,
                libc::MSG_DONTWAIT,
            )
        };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn ifreq_for(ifname: &str) -> io::Result<libc::ifreq> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface names are 1 to 15 bytes without NUL",
        ));
    }
    // SAFETY: all-zero is a valid ifreq (a NUL name and a zero union).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

/// An interface's index in the caller's network namespace.
pub(super) fn ifindex(fd: BorrowedFd<'_>, ifname: &str) -> io::Result<u32> {
    let mut req = ifreq_for(ifname)?;
    // SAFETY: SIOCGIFINDEX reads the NUL-terminated name in `req` and writes
    // the `ifru_ifindex` member of its union; `req` is live and writable.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) })?;
    // SAFETY: the ioctl succeeded, so it initialised `ifru_ifindex`.
    Ok(unsafe { req.ifr_ifru.ifru_ifindex } as u32)
}

/// An interface's MTU.
pub(super) fn mtu(fd: BorrowedFd<'_>, ifname: &str) -> io::Result<u32> {
    let mut req = ifreq_for(ifname)?;
    // SAFETY: SIOCGIFMTU reads the NUL-terminated name in `req` and writes
    // the `ifru_mtu` member of its union; `req` is live and writable.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) })?;
    // SAFETY: the ioctl succeeded, so it initialised `ifru_mtu`.
    Ok(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}
