//! The syscalls of the VTEP port: UDP sockets with the outer-header options,
//! group membership, `recvmmsg` and `sendmmsg`, each `unsafe` block passing
//! only pointers to live, correctly sized values.
//!
//! Owns: the libc calls and sockaddr conversions. Never: packet logic.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use rvs_switch::BATCH_MAX;

use super::{Msg, VtepConfig, VtepError};

pub(super) type SockAddr = (libc::sockaddr_storage, libc::socklen_t);

pub(super) fn sock_err(name: &str, step: &'static str) -> impl FnOnce(io::Error) -> VtepError {
    let name = name.to_string();
    move |source| VtepError::Socket { name, step, source }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: i32, name: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of `size_of::<T>()` bytes for the
    // whole call, and the kernel only reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

pub(super) fn sockaddr(a: SocketAddr) -> SockAddr {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as _;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as _;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

pub(super) fn socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            let ip = IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::new(ip, u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            let ip = IpAddr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::new(ip, u16::from_be(sin6.sin6_port)))
        }
        _ => None,
    }
}

/// The address a socket is bound to.
pub(super) fn local_addr(fd: &OwnedFd) -> io::Result<SocketAddr> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss` and `len` are live and writable; `len` says how big `ss` is.
    cvt(unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })?;
    socket_addr(&ss).ok_or_else(|| io::Error::other("socket of an unknown family"))
}

/// A non-blocking UDP socket bound to `addr`, with the outer-header options
/// (TOS, DF, TTL) of `cfg`.
pub(super) fn udp_socket(cfg: &VtepConfig, addr: SocketAddr) -> Result<OwnedFd, VtepError> {
    let n = cfg.name.as_str();
    let v6 = addr.is_ipv6();
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: no pointers are passed; a non-negative result is a new fd.
    let fd = cvt(unsafe {
        libc::socket(
            family,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })
    .map_err(sock_err(n, "socket"))?;
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let (level, tos, pmtu, ttl) = if v6 {
        setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &1i32)
            .map_err(sock_err(n, "IPV6_V6ONLY"))?;
        let how = if cfg.df {
            libc::IPV6_PMTUDISC_DO
        } else {
            libc::IPV6_PMTUDISC_DONT
        };
        let o = (libc::IPV6_TCLASS, libc::IPV6_MTU_DISCOVER);
        (libc::IPPROTO_IPV6, o.0, (o.1, how), libc::IPV6_UNICAST_HOPS)
    } else {
        let how = if cfg.df {
            libc::IP_PMTUDISC_DO
        } else {
            libc::IP_PMTUDISC_DONT
        };
        let o = (libc::IP_TOS, libc::IP_MTU_DISCOVER);
        (libc::IPPROTO_IP, o.0, (o.1, how), libc::IP_TTL)
    };
    setsockopt(&fd, level, tos, &(cfg.tos as i32)).map_err(sock_err(n, "set TOS"))?;
    setsockopt(&fd, level, pmtu.0, &pmtu.1).map_err(sock_err(n, "set DF (MTU_DISCOVER)"))?;
    if let Some(t) = cfg.ttl {
        setsockopt(&fd, level, ttl, &(t as i32)).map_err(sock_err(n, "set TTL"))?;
    }
    // Bigger buffers absorb bursts; the kernel caps them at its maximum.
    let buf = 4i32 << 20;
    let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &buf);
    let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &buf);
    let (ss, len) = sockaddr(addr);
    // SAFETY: `ss` holds a sockaddr of `len` bytes for the whole call.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&ss as *const libc::sockaddr_storage).cast(),
            len,
        )
    })
    .map_err(sock_err(n, "bind"))?;
    Ok(fd)
}

/// Make `fd` send multicast out of `cfg.local` / `cfg.group_ifindex` with
/// the configured TTL and loopback off, and (with `join`) receive `group`.
pub(super) fn setup_group(
    fd: &OwnedFd,
    cfg: &VtepConfig,
    group: IpAddr,
    join: bool,
) -> Result<(), VtepError> {
    let n = cfg.name.as_str();
    let hops = cfg.ttl.unwrap_or(64) as i32;
    match (group, cfg.local) {
        (IpAddr::V4(g), IpAddr::V4(l)) => {
            let m = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(g.octets()),
                },
                imr_address: libc::in_addr {
                    s_addr: u32::from_ne_bytes(l.octets()),
                },
                imr_ifindex: cfg.group_ifindex as i32,
            };
            let p = libc::IPPROTO_IP;
            if join {
                setsockopt(fd, p, libc::IP_ADD_MEMBERSHIP, &m)
                    .map_err(sock_err(n, "join group"))?;
            }
            setsockopt(fd, p, libc::IP_MULTICAST_IF, &m).map_err(sock_err(n, "IP_MULTICAST_IF"))?;
            setsockopt(fd, p, libc::IP_MULTICAST_LOOP, &0i32)
                .map_err(sock_err(n, "IP_MULTICAST_LOOP"))?;
            setsockopt(fd, p, libc::IP_MULTICAST_TTL, &hops)
                .map_err(sock_err(n, "IP_MULTICAST_TTL"))
        }
        (IpAddr::V6(g), IpAddr::V6(_)) => {
            let m = libc::ipv6_mreq {
                ipv6mr_multiaddr: libc::in6_addr {
                    s6_addr: g.octets(),
                },
                ipv6mr_interface: cfg.group_ifindex,
            };
            let p = libc::IPPROTO_IPV6;
            if join {
                setsockopt(fd, p, libc::IPV6_ADD_MEMBERSHIP, &m)
                    .map_err(sock_err(n, "join group"))?;
            }
            setsockopt(fd, p, libc::IPV6_MULTICAST_IF, &cfg.group_ifindex)
                .map_err(sock_err(n, "IPV6_MULTICAST_IF"))?;
            setsockopt(fd, p, libc::IPV6_MULTICAST_LOOP, &0i32)
                .map_err(sock_err(n, "IPV6_MULTICAST_LOOP"))?;
            setsockopt(fd, p, libc::IPV6_MULTICAST_HOPS, &hops)
                .map_err(sock_err(n, "IPV6_MULTICAST_HOPS"))
        }
        _ => Err(VtepError::Config {
            name: n.to_string(),
            reason: format!("group {group} and local {} differ in family", cfg.local),
        }),
    }
}

pub(super) fn iovec(p: *const u8, len: usize) -> libc::iovec {
    libc::iovec {
        iov_base: p as *mut libc::c_void,
        iov_len: len,
    }
}

/// Receive up to `iov.len()` datagrams, one per iovec, without blocking.
/// `lens[i]` is the i-th datagram's length, `None` if it was truncated;
/// `names[i]` its sender. Returns how many arrived.
pub(super) fn recv_batch(
    fd: &OwnedFd,
    iov: &mut [libc::iovec],
    lens: &mut [Option<usize>; BATCH_MAX],
    names: &mut [libc::sockaddr_storage; BATCH_MAX],
) -> io::Result<usize> {
    let k = iov.len().min(BATCH_MAX);
    // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
    let mut hdrs: [libc::mmsghdr; BATCH_MAX] = unsafe { std::mem::zeroed() };
    for i in 0..k {
        let h = &mut hdrs[i].msg_hdr;
        h.msg_iov = &mut iov[i];
        h.msg_iovlen = 1;
        h.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    }
    // SAFETY: the first `k` headers point at one iovec each (pool frames the
    // caller owns and does not touch until this returns) and at a live
    // sockaddr_storage; the kernel writes datagrams, names and lengths there.
    let r = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            k as u32,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    let got = cvt(r)? as usize;
    for i in 0..got {
        let trunc = hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        lens[i] = (!trunc).then_some(hdrs[i].msg_len as usize);
    }
    Ok(got)
}

/// `sendmmsg` every message in `msgs` on `fd`, going on past a refused one
/// (no route, too big with DF) and stopping when the socket buffer is full.
/// Returns (sent, refused, inner bytes sent).
pub(super) fn send_all(
    fd: &OwnedFd,
    msgs: &[Msg],
    iov: &[libc::iovec],
    dsts: &[SockAddr],
) -> (usize, usize, usize) {
    // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
    let mut hdrs: [libc::mmsghdr; BATCH_MAX] = unsafe { std::mem::zeroed() };
    let (mut sent, mut refused, mut bytes) = (0, 0, 0);
    let mut i = 0;
    while i < msgs.len() {
        let k = (msgs.len() - i).min(BATCH_MAX);
        for (h, m) in hdrs.iter_mut().zip(&msgs[i..i + k]) {
            h.msg_hdr.msg_iov = iov[m.iov_at..].as_ptr() as *mut libc::iovec;
            h.msg_hdr.msg_iovlen = m.iov_n as _;
            h.msg_hdr.msg_name = (&dsts[m.dst].0 as *const libc::sockaddr_storage) as *mut _;
            h.msg_hdr.msg_namelen = dsts[m.dst].1;
        }
        // SAFETY: the first `k` headers point at iovecs and addresses in
        // `iov` and `dsts`, which live across the call, and those iovecs at
        // pool frames and the header arena, which the caller keeps alive and
        // unchanged until this returns; the kernel only reads them (and
        // writes `msg_len` into `hdrs`, which we own).
        let r = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                k as u32,
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN | libc::ENOBUFS) => {
                    return (sent, refused + msgs.len() - i, bytes);
                }
                _ => {
                    refused += 1;
                    i += 1;
                    continue;
                }
            }
        }
        let r = r as usize;
        sent += r;
        bytes += msgs[i..i + r].iter().map(|m| m.inner_len).sum::<usize>();
        i += r;
    }
    (sent, refused, bytes)
}
