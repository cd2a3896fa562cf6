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

/// Size the socket's receive queue: `SO_RCVBUFFORCE` (past the
/// `net.core.rmem_max` cap; needs `CAP_NET_ADMIN`), else `SO_RCVBUF`.
pub(super) fn set_rcvbuf(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let v = c_int::try_from(bytes).unwrap_or(c_int::MAX);
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &v)
        .or_else(|_| setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &v))
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
pub(super) fn take_stats(fd: BorrowedFd<'_>) -> io::Result<libc::tpacket_stats> {
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as socklen_t;
    // SAFETY: `st` is a live, writable tpacket_stats and `len` says its
    // size; the kernel writes at most `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast(),
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

/// Most frames one `recvmmsg` call takes (the switch's largest batch).
pub(super) const RECV_MAX: usize = 64;
/// Control-message room per received frame: one `PACKET_AUXDATA` (20
/// bytes behind a 16-byte header) with room to spare.
pub(super) const CTRL_LEN: usize = 64;

/// What `recvmmsg` reported for one message.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Received {
    /// Bytes written into the slot.
    pub len: usize,
    /// The frame was longer than the slot (`MSG_TRUNC`).
    pub truncated: bool,
    /// Bytes of control messages written.
    pub ctrl_len: usize,
}

/// Receive up to `out.len()` frames (at most [`RECV_MAX`]) without
/// blocking: frame `i` into `data[i * slot..][..slot]`, its control
/// messages into `ctrl[i * CTRL_LEN..][..CTRL_LEN]`, what arrived into
/// `out[i]`. Returns how many arrived; 0 when none was waiting.
pub(super) fn recv_frames(
    fd: BorrowedFd<'_>,
    data: &mut [u8],
    slot: usize,
    ctrl: &mut [u8],
    out: &mut [Received],
) -> io::Result<usize> {
    let n = out
        .len()
        .min(RECV_MAX)
        .min(data.len() / slot.max(1))
        .min(ctrl.len() / CTRL_LEN);
    if n == 0 {
        return Ok(0);
    }
    let (dp, cp) = (data.as_mut_ptr(), ctrl.as_mut_ptr());
    // SAFETY: all-zero is a valid iovec and mmsghdr (null pointers, zero
    // lengths).
    let mut iovs: [libc::iovec; RECV_MAX] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; RECV_MAX] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        // SAFETY: `i < n <= data.len() / slot`, so `[i * slot, (i + 1) *
        // slot)` lies in `data`; likewise for `ctrl` with CTRL_LEN.
        let (d, c) = unsafe { (dp.add(i * slot), cp.add(i * CTRL_LEN)) };
        iovs[i] = libc::iovec {
            iov_base: d.cast(),
            iov_len: slot,
        };
        let h = &mut msgs[i].msg_hdr;
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
        h.msg_control = c.cast();
        h.msg_controllen = CTRL_LEN as _;
    }
    let got = loop {
        // SAFETY: the first `n` headers point at iovecs in `iovs` and
        // control buffers in `ctrl`, each naming a disjoint range of a live
        // buffer we hold `&mut` for the whole call; the kernel writes at
        // most the lengths given, plus `msg_len`/flags into `msgs`.
        let r = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r >= 0 {
            break r as usize;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(e),
        }
    };
    for (o, m) in out.iter_mut().zip(&msgs[..got]) {
        // `msg_controllen` is a `size_t` on glibc, a `socklen_t` on musl.
        #[allow(clippy::unnecessary_cast)]
        let ctrl_len = m.msg_hdr.msg_controllen as usize;
        *o = Received {
            len: (m.msg_len as usize).min(slot),
            truncated: m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            ctrl_len: ctrl_len.min(CTRL_LEN),
        };
    }
    Ok(got)
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
