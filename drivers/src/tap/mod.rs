//! TAP port: a kernel netdev (`/dev/net/tun`, `IFF_TAP`) as a switch port,
//! with a virtio-net header on every frame so checksum and TCP segmentation
//! offload survive the switch: a 64 KiB TSO super-frame from one TAP reaches
//! another TAP as one frame.
//!
//! Receive reads one frame per `read()` with its 12-byte header landing in
//! the headroom right before the frame; the header is parsed into the
//! packet's [`Offload`] (L3-relative `csum_start`, so a VLAN push or pop on
//! the way does not break it). Transmit writes each frame with a header
//! rebuilt from that state; what the egress did not negotiate is done in
//! software (`crate::offload`).
//!
//! Owns: the tun fd and its ioctls, the rx/tx offload decisions. Never:
//! blocks, keeps a buffer across calls, or configures anything but its own
//! link.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use rvs_switch::buf::Offload;
use rvs_switch::{Batch, PacketPool, PktBuf, Port, PortError, TxDone};

use crate::netlink::Netlink;
use crate::offload::{self, CsumMode, GsoPlan, VNET_HDR_LEN, VnetHdr};

mod counters;
mod options;

pub use counters::{TapCounters, TapMax, TapStats};
pub use options::{TapError, TapOffload, TapOptions};

/// Slack over the MTU for the Ethernet header and two VLAN tags.
const L2_SLACK: usize = 14 + 8;

/// A TAP netdev as a switch port.
pub struct TapPort {
    name: String,
    fd: OwnedFd,
    offload: TapOffload,
    mtu: usize,
    /// Receive into large frames (TSO, or an MTU beyond a small frame).
    rx_large: bool,
    /// What `Port::max_frame` reports (see there).
    max_frame: usize,
    /// Copy buffer for moving a short frame out of a large one.
    scratch: Box<[u8]>,
    counters: Arc<TapCounters>,
    max: Arc<TapMax>,
    /// The device outlives the fd until the port is detached.
    persist: bool,
}

impl std::fmt::Debug for TapPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapPort")
            .field("name", &self.name)
            .field("fd", &self.fd.as_raw_fd())
            .field("offload", &self.offload)
            .finish()
    }
}

#[repr(C)]
struct IfreqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// `TUNSETIFF`: attach the fd to (or create) the interface named in `ifr`.
fn tun_set_iff(fd: RawFd, ifr: &mut IfreqFlags) -> io::Result<()> {
    // SAFETY: TUNSETIFF reads and writes back a struct ifreq; `ifr` has its
    // layout (name, flags, padding to 40 bytes) and is exclusively borrowed
    // for the call.
    let rc = unsafe { libc::ioctl(fd, libc::TUNSETIFF, ifr as *mut IfreqFlags) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `TUNSETVNETHDRSZ`: the size of the vnet header on every frame.
fn tun_set_vnet_hdr_sz(fd: RawFd, len: libc::c_int) -> io::Result<()> {
    let mut len = len;
    // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which
    // points at a live local.
    let rc = unsafe { libc::ioctl(fd, libc::TUNSETVNETHDRSZ, &mut len as *mut libc::c_int) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A tun ioctl whose argument is passed by value (TUNSETOFFLOAD, TUNSETPERSIST).
fn ioctl_val(fd: RawFd, req: libc::Ioctl, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: tun requests TUNSETOFFLOAD and TUNSETPERSIST take their
    // argument by value; no memory is passed.
    let rc = unsafe { libc::ioctl(fd, req, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Open `/dev/net/tun` in the calling thread's namespace and attach it to
/// the TAP `name` (made when there is none).
fn attach(name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let fd = OwnedFd::from(file);
    let mut ifr = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: flags as libc::c_short,
        _pad: [0; 22],
    };
    ifr.name[..name.len()].copy_from_slice(name.as_bytes());
    tun_set_iff(fd.as_raw_fd(), &mut ifr)?;
    Ok(fd)
}

/// In a namespace (the calling thread's): the TAP called `ifname`, or the
/// link with `mac`, attached; `None` when there is no such link.
fn find_and_attach(
    ifname: &Option<String>,
    mac: Option<[u8; 6]>,
    flags: libc::c_int,
) -> io::Result<Option<OwnedFd>> {
    let nl = Netlink::new().map_err(io::Error::other)?;
    let links = nl.links().map_err(io::Error::other)?;
    let hit = links.iter().find(|l| match ifname {
        Some(n) => &l.name == n,
        None => mac.is_some() && l.mac == mac,
    });
    match hit {
        // TUNSETIFF refuses (EINVAL) a link that is not a TAP, so a
        // namesake of another kind is never taken over.
        Some(l) => attach(&l.name, flags).map(Some),
        None => Ok(None),
    }
}

impl TapPort {
    /// Create the TAP `opts.name` for a switch whose packets live in
    /// `pool`, or attach to it where it already is: in the caller's
    /// namespace by name (a persistent device, or another queue of a
    /// `multi_queue` one), or in `opts.netns` where its owner moved and
    /// renamed it (see [`TapOptions::netns`]). A new device gets the MTU,
    /// MAC and up state of `opts`; a found one keeps what it has. Without
    /// `persist` the device disappears when the port is dropped.
    pub fn create(opts: &TapOptions, pool: &PacketPool) -> Result<TapPort, TapError> {
        let name = opts.name.clone();
        let config = |why: String| TapError::Config {
            name: name.clone(),
            why,
        };
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ', '%']) {
            return Err(config(
                "interface names are 1 to 15 bytes without '/', ' ' or '%'".into(),
            ));
        }
        let mtu = opts.mtu as usize;
        if !(68..=65535 - L2_SLACK).contains(&mtu) {
            return Err(config(format!(
                "MTU {mtu} outside 68..={}",
                65535 - L2_SLACK
            )));
        }
        let has_large = pool.large_capacity() > 0;
        if opts.offload == TapOffload::Tso && !has_large {
            return Err(config(
                "TSO needs a pool with large frames (PacketPool::with_large)".into(),
            ));
        }
        let rx_large = opts.offload == TapOffload::Tso || mtu + L2_SLACK > pool.max_packet();
        if rx_large && !has_large {
            return Err(config(format!(
                "MTU {mtu} does not fit a {}-byte frame and the pool has no large frames",
                pool.frame_size()
            )));
        }
        if pool.headroom() < VNET_HDR_LEN {
            return Err(config(format!(
                "pool headroom {} is smaller than the {VNET_HDR_LEN}-byte vnet header",
                pool.headroom()
            )));
        }
        let ioctl_err = |op, source| TapError::Ioctl {
            name: name.clone(),
            op,
            source,
        };
        let nl_err = |source| TapError::Netlink {
            name: name.clone(),
            source,
        };
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;
        if opts.multi_queue {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        let nl = Netlink::new().map_err(nl_err)?;
        let here = nl.find_link(&name).map_err(nl_err)?.is_some();
        // Where the device is: here by its name (made, or moved back out of
        // a sandbox), in `opts.netns` under another name, or nowhere yet.
        let found = if here {
            Some(attach(&name, flags).map_err(|e| ioctl_err("TUNSETIFF", e))?)
        } else if let Some(ns) = &opts.netns {
            let path = crate::netns::netns_path(ns);
            if !path.exists() {
                return Err(TapError::Gone {
                    name: name.clone(),
                    why: format!(
                        "it is in namespace {ns}, which no longer exists (its sandbox went away)"
                    ),
                });
            }
            let want = (opts.netns_ifname.clone(), opts.mac);
            crate::netns::in_netns(ns, move || find_and_attach(&want.0, want.1, flags))
                .map_err(|e| TapError::Gone {
                    name: name.clone(),
                    why: e.to_string(),
                })?
                .map_err(|e| ioctl_err("TUNSETIFF in the sandbox", e))?
        } else {
            None
        };
        let made = found.is_none();
        let fd = match found {
            Some(fd) => fd,
            None => attach(&name, flags).map_err(|e| ioctl_err("TUNSETIFF", e))?,
        };
        let raw = fd.as_raw_fd();
        tun_set_vnet_hdr_sz(raw, VNET_HDR_LEN as libc::c_int)
            .map_err(|e| ioctl_err("TUNSETVNETHDRSZ", e))?;
        let off = match opts.offload {
            TapOffload::None => 0,
            TapOffload::Csum => libc::TUN_F_CSUM,
            TapOffload::Tso => libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6,
        };
        ioctl_val(raw, libc::TUNSETOFFLOAD, off as libc::c_ulong)
            .map_err(|e| ioctl_err("TUNSETOFFLOAD", e))?;
        // A device found again keeps what its namespace's owner (Docker, the
        // lab) set on it; only a new one is configured here, before it is
        // made persistent: until then it goes with this process, so an
        // error or a crash in between leaves nothing half-made behind.
        if made {
            nl.set_mtu(&name, opts.mtu).map_err(nl_err)?;
            if let Some(mac) = opts.mac {
                nl.set_mac(&name, mac).map_err(nl_err)?;
            }
            if let Some(a) = &opts.alias {
                nl.set_alias(&name, a).map_err(nl_err)?;
            }
            if opts.up {
                nl.set_up(&name).map_err(nl_err)?;
            }
        } else if here {
            nl.set_mtu(&name, opts.mtu).map_err(nl_err)?;
        }
        ioctl_val(raw, libc::TUNSETPERSIST, opts.persist as libc::c_ulong)
            .map_err(|e| ioctl_err("TUNSETPERSIST", e))?;
        Ok(TapPort {
            name: name.clone(),
            fd,
            offload: opts.offload,
            mtu,
            rx_large,
            max_frame: if has_large {
                u16::MAX as usize
            } else {
                mtu + L2_SLACK
            },
            scratch: vec![0; pool.max_packet()].into_boxed_slice(),
            counters: Arc::default(),
            max: Arc::default(),
            persist: opts.persist,
        })
    }

    /// The offloads this TAP negotiated.
    pub fn offload(&self) -> TapOffload {
        self.offload
    }

    /// The port's counters; keep the handle to read them once the port has
    /// moved into a switch.
    pub fn counters(&self) -> Arc<TapCounters> {
        self.counters.clone()
    }

    /// Longest frames received and transmitted so far.
    pub fn max_frames(&self) -> Arc<TapMax> {
        self.max.clone()
    }

    /// Read one frame into `b` (empty, at the pool's headroom) so the vnet
    /// header lands in the headroom. Returns the header, or `None` on EAGAIN.
    fn read_into(
        &self,
        pool: &mut PacketPool,
        b: &mut PktBuf,
    ) -> io::Result<Option<[u8; VNET_HDR_LEN]>> {
        let head = b.headroom();
        pool.set_head(b, head - VNET_HDR_LEN);
        let room = pool.tail_room_mut(b);
        let cap = room.len().min(VNET_HDR_LEN + u16::MAX as usize);
        let room = &mut room[..cap];
        // SAFETY: `room` is a writable slice of `cap` bytes inside the
        // buffer's frame, exclusively borrowed for the duration of read(2).
        let n = unsafe { libc::read(self.fd.as_raw_fd(), room.as_mut_ptr().cast(), cap) };
        let res = if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            }
        } else {
            let n = n as usize;
            let hdr: [u8; VNET_HDR_LEN] = room[..VNET_HDR_LEN].try_into().expect("12 bytes");
            Ok(Some((hdr, n.saturating_sub(VNET_HDR_LEN))))
        };
        pool.set_head(b, head);
        match res {
            Ok(Some((hdr, len))) => {
                pool.set_len(b, len);
                Ok(Some(hdr))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn writev(&self, parts: &[&[u8]]) -> io::Result<()> {
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 3];
        debug_assert!(parts.len() <= iov.len());
        for (v, p) in iov.iter_mut().zip(parts) {
            v.iov_base = p.as_ptr() as *mut libc::c_void;
            v.iov_len = p.len();
        }
        // SAFETY: the first `parts.len()` iovecs point at live slices that
        // outlive the call; writev(2) only reads through them.
        let n = unsafe {
            libc::writev(
                self.fd.as_raw_fd(),
                iov.as_ptr(),
                parts.len() as libc::c_int,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Transmit one frame; whether the kernel took it (all of it).
    fn transmit(&self, pool: &mut PacketPool, b: &PktBuf, st: &mut TapStats) -> bool {
        let o = b.offload();
        let base = o.gso_type & !Offload::GSO_ECN;
        let res = if o.is_gso() {
            let frame = pool.data(b);
            let tcp = base == Offload::GSO_TCPV4 || base == Offload::GSO_TCPV6;
            if self.offload == TapOffload::Tso && tcp {
                let Some(h) = VnetHdr::from_offload(o, frame) else {
                    st.tx_bad_offload += 1;
                    return false;
                };
                st.tx_gso_passthrough += 1;
                self.writev(&[&h.encode(), frame])
            } else {
                let mode = if self.offload >= TapOffload::Csum {
                    CsumMode::Partial
                } else {
                    CsumMode::Full
                };
                let Ok(plan) = GsoPlan::from_offload(frame, o) else {
                    st.tx_bad_offload += 1;
                    return false;
                };
                let sent = plan.segment(frame, mode, |s| {
                    let h = match s.partial_csum {
                        Some((start, off)) => VnetHdr {
                            flags: Offload::NEEDS_CSUM,
                            csum_start: start,
                            csum_offset: off,
                            hdr_len: s.headers.len() as u16,
                            ..VnetHdr::default()
                        },
                        None => VnetHdr::default(),
                    };
                    self.writev(&[&h.encode(), s.headers, s.payload])
                });
                match sent {
                    Err(_) => {
                        st.tx_bad_offload += 1;
                        return false;
                    }
                    Ok(Ok(n)) => {
                        st.tx_gso_segmented += 1;
                        st.tx_segments += n as u64;
                        Ok(())
                    }
                    Ok(Err(e)) => Err(e),
                }
            }
        } else if o.needs_csum() && self.offload == TapOffload::None {
            if offload::complete_partial(pool.data_mut(b), o).is_err() {
                st.tx_bad_offload += 1;
                return false;
            }
            st.tx_csum_completed += 1;
            self.writev(&[&VnetHdr::default().encode(), pool.data(b)])
        } else {
            let frame = pool.data(b);
            if frame.len() > self.mtu + L2_SLACK {
                st.tx_oversize += 1;
                return false;
            }
            let h = if o.needs_csum() {
                match VnetHdr::from_offload(o, frame) {
                    Some(h) => h,
                    None => {
                        st.tx_bad_offload += 1;
                        return false;
                    }
                }
            } else {
                VnetHdr::default()
            };
            self.writev(&[&h.encode(), frame])
        };
        match res {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                st.tx_eagain += 1;
                false
            }
            Err(_) => {
                st.tx_errors += 1;
                false
            }
        }
    }
}

fn gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADFD | libc::ENODEV | libc::ENXIO)
    )
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> Result<usize, PortError> {
        let mut n = 0;
        let mut st = TapStats::default();
        let mut max_len = 0;
        // An empty buffer to read into, reused across frames of the burst
        // and returned to the pool at its end.
        let mut spare: Option<PktBuf> = None;
        let res = loop {
            if batch.room() == 0 {
                break Ok(());
            }
            let next = spare.take().or_else(|| {
                if self.rx_large {
                    pool.alloc_large()
                } else {
                    pool.alloc()
                }
            });
            let Some(mut b) = next else {
                st.rx_no_buffer += 1;
                break Ok(());
            };
            let hdr = match self.read_into(pool, &mut b) {
                Ok(Some(h)) => h,
                Ok(None) => {
                    spare = Some(b);
                    break Ok(());
                }
                Err(e) => {
                    pool.free(b);
                    break Err(e);
                }
            };
            let h = VnetHdr::parse(&hdr);
            let off = if b.len() < 14 {
                None
            } else {
                h.to_offload(pool.data(&b))
            };
            let Some(off) = off else {
                st.rx_bad_vnet_hdr += 1;
                pool.reset(&mut b);
                spare = Some(b);
                continue;
            };
            st.rx_gso += off.is_gso() as u64;
            st.rx_csum_partial += off.needs_csum() as u64;
            max_len = max_len.max(b.len());
            if self.rx_large && b.len() <= pool.max_packet() {
                // Short frame in a large buffer: move it to a small one and
                // keep the large one for the next read.
                if let Some(mut s) = pool.alloc() {
                    let len = b.len();
                    self.scratch[..len].copy_from_slice(pool.data(&b));
                    pool.set_len(&mut s, len);
                    pool.data_mut(&s).copy_from_slice(&self.scratch[..len]);
                    pool.reset(&mut b);
                    spare = Some(std::mem::replace(&mut b, s));
                }
            }
            b.set_offload(off);
            batch.push(b).expect("room checked");
            n += 1;
        };
        if let Some(b) = spare {
            pool.free(b);
        }
        self.counters.add(&st);
        TapMax::raise(&self.max.rx_frame, max_len as u64);
        match res {
            Ok(()) => Ok(n),
            Err(e) if gone(&e) => Err(PortError::Gone(self.name.clone())),
            Err(source) => Err(PortError::Io {
                port: self.name.clone(),
                op: "read",
                source,
            }),
        }
    }

    fn tx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> TxDone {
        let mut done = TxDone::default();
        let mut st = TapStats::default();
        let mut max_len = 0;
        for b in batch.drain() {
            if self.transmit(pool, &b, &mut st) {
                done.packets += 1;
                done.bytes += b.len();
                max_len = max_len.max(b.len());
            } else {
                done.dropped += 1;
            }
            pool.free(b);
        }
        self.counters.add(&st);
        TapMax::raise(&self.max.tx_frame, max_len as u64);
        done
    }

    fn poll_fd(&self) -> Option<i32> {
        Some(self.fd.as_raw_fd())
    }

    /// The port leaves the switch for good: a persistent device goes with
    /// it (when the fd closes), wherever it is now.
    fn detach(&mut self, _pool: &mut PacketPool) {
        if self.persist {
            let _ = ioctl_val(self.fd.as_raw_fd(), libc::TUNSETPERSIST, 0);
            self.persist = false;
        }
    }

    /// 65535 when the pool has large frames (super-frames may arrive; the
    /// port passes them on or segments them), else MTU + Ethernet header
    /// and two VLAN tags.
    fn max_frame(&self) -> usize {
        self.max_frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_pick_tso_only_with_large_frames() {
        let small = PacketPool::with_frames(4);
        assert_eq!(TapOptions::for_pool("t0", &small).offload, TapOffload::Csum);
        let large = PacketPool::with_large(4, 2048, 256, 1).unwrap();
        assert_eq!(TapOptions::for_pool("t0", &large).offload, TapOffload::Tso);
        let e =
            TapPort::create(&TapOptions::new("t0").offload(TapOffload::Tso), &small).unwrap_err();
        assert!(e.to_string().starts_with("create tap t0: TSO needs"), "{e}");
        let e = TapPort::create(&TapOptions::new("t0").mtu(9000), &small).unwrap_err();
        assert!(e.to_string().contains("MTU 9000 does not fit"), "{e}");
    }
}
