//! The UMEM: the switch's packet pool (its small-frame region) registered
//! with the kernel, shared by every AF_XDP socket of one worker.
//!
//! The kernel shares a UMEM through a *bound* socket (`XDP_SHARED_UMEM`
//! names its fd). The first port's socket is that anchor: it registers the
//! region and binds; later ports' sockets bind with `XDP_SHARED_UMEM`, each
//! with its own fill and completion rings (kernel >= 5.10 allows that across
//! devices and queues). Only the anchor port holds the registration strongly;
//! the handle keeps a weak reference. When the anchor port goes (or its
//! interface is deleted, which unbinds it), the next port registers the same
//! region afresh and becomes the new anchor. Every registration covers the
//! same bytes at the same offsets, so descriptors stay valid across all of
//! them: forwarding between any two ports of the worker moves addresses,
//! never bytes.
//!
//! Owns: the registration and the socket set-up sequence. Never: touches
//! frames, or keeps the pool's memory alive — the pool must outlive every
//! port made from this handle (the `Switch` drops its ports before its pool).

use std::io;
use std::num::NonZeroU32;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rvs_switch::PacketPool;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, UmemConfig};

use super::{AfXdpError, ZeroCopy};

/// `XDP_PACKET_HEADROOM`: the kernel puts received data this far into a
/// chunk, after the UMEM's own headroom.
pub(crate) const XDP_PACKET_HEADROOM: usize = 256;
const SOL_XDP: libc::c_int = 283;
const XDP_OPTIONS: libc::c_int = 8;
const XDP_OPTIONS_ZEROCOPY: u32 = 1;
const BIND_BUSY_RETRIES: u32 = 25;
const BIND_BUSY_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// A handle on the worker's UMEM; clone it into each port (cheap, `Arc`).
#[derive(Clone, Debug)]
pub struct Umem {
    inner: Arc<UmemShared>,
}

#[derive(Debug)]
struct UmemShared {
    /// Identity of the pool region (never dereferenced through these).
    base: usize,
    len: usize,
    frame_size: u32,
    /// UMEM headroom so received frames start at the pool's headroom.
    umem_headroom: u32,
    ring_size: u32,
    anchor: Mutex<Weak<Registration>>,
    /// Keeps the pool from freeing the region while sockets may use it.
    _token: rvs_switch::buf::RegionToken,
    /// Frames a dropped port left on its (now closed) rings, for the next
    /// port call that has the pool to give them back.
    orphans: Mutex<Vec<u32>>,
    has_orphans: AtomicBool,
}

/// One kernel registration of the region; its fd is the anchor socket.
pub(crate) struct Registration {
    umem: xdpilone::Umem,
}

// SAFETY: xdpilone's `Umem` is !Send/!Sync only because it stores the region
// as a `NonNull<[u8]>`, which it dereferences solely in `Umem::frame`; this
// module never calls that. The rest (an fd in an `Arc` and a spin-locked
// set) is thread-safe, and every method we use takes `&self`.
unsafe impl Send for Registration {}
// SAFETY: as above.
unsafe impl Sync for Registration {}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registration")
    }
}

/// A socket bound to an interface queue with its four rings mapped.
pub(crate) struct BoundSocket {
    pub rx: RingRx,
    pub tx: RingTx,
    pub fq_cq: DeviceQueue,
    pub fd: i32,
    /// Set for the anchor port: keeps the registration (and fd) alive.
    pub anchor: Option<Arc<Registration>>,
    pub zero_copy: bool,
}

/// How a port's socket meets the UMEM.
struct Want<'a> {
    ifname: &'a str,
    ifindex: u32,
    queue: u32,
    ring_size: u32,
    zero_copy: ZeroCopy,
}

fn errno(e: xdpilone::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.get_raw().abs())
}

impl Umem {
    /// Describe `pool`'s small-frame region as a UMEM with fill and
    /// completion rings of `ring_size` entries per port (a power of two).
    /// The kernel registration happens when the first port opens.
    pub fn new(pool: &mut PacketPool, ring_size: u32) -> Result<Umem, AfXdpError> {
        let cfg = |reason: String| AfXdpError::Config {
            ifname: "(umem)".to_string(),
            reason,
        };
        let fs = pool.frame_size();
        if !(2048..=4096).contains(&fs) {
            return Err(cfg(format!(
                "frame size {fs} is not usable as an aligned UMEM chunk (2048 or 4096)"
            )));
        }
        if !ring_size.is_power_of_two() || ring_size < 64 {
            return Err(cfg(format!(
                "ring size {ring_size} is not a power of two >= 64"
            )));
        }
        let region = pool.region_mut();
        Ok(Umem {
            inner: Arc::new(UmemShared {
                base: region.as_ptr() as usize,
                len: region.len(),
                frame_size: fs as u32,
                umem_headroom: pool.headroom().saturating_sub(XDP_PACKET_HEADROOM) as u32,
                ring_size,
                anchor: Mutex::new(Weak::new()),
                _token: pool.region_token(),
                orphans: Mutex::new(Vec::new()),
                has_orphans: AtomicBool::new(false),
            }),
        })
    }

    /// Whether `pool` is the pool this UMEM describes.
    pub fn is_pool(&self, pool: &mut PacketPool) -> bool {
        let r = pool.region_mut();
        r.as_ptr() as usize == self.inner.base && r.len() == self.inner.len
    }

    /// Where received packets start in their frame.
    pub fn rx_headroom(&self) -> usize {
        self.inner.umem_headroom as usize + XDP_PACKET_HEADROOM
    }

    /// Entries in each port's fill and completion ring.
    pub fn ring_size(&self) -> u32 {
        self.inner.ring_size
    }

    /// Whether a kernel registration is currently anchored by a live port.
    pub fn is_registered(&self) -> bool {
        self.inner.anchor.lock().expect("umem lock").strong_count() > 0
    }

    /// Give the pool back the frames that dropped ports left behind.
    /// Returns how many. Cheap when there are none.
    pub fn return_orphans(&self, pool: &mut PacketPool) -> usize {
        if !self.inner.has_orphans.load(Ordering::Relaxed) || !self.is_pool(pool) {
            return 0;
        }
        let mut o = self.inner.orphans.lock().expect("umem lock");
        self.inner.has_orphans.store(false, Ordering::Relaxed);
        let n = o.len();
        for frame in o.drain(..) {
            let addr = frame as u64 * self.inner.frame_size as u64;
            pool.free(
                pool.buf_at(addr, 0)
                    .expect("orphans are frames of this pool"),
            );
        }
        n
    }

    fn register(&self, pool: &mut PacketPool) -> io::Result<Registration> {
        let region = pool.region_mut();
        let cfg = UmemConfig {
            fill_size: self.inner.ring_size,
            complete_size: self.inner.ring_size,
            frame_size: self.inner.frame_size,
            headroom: self.inner.umem_headroom,
            flags: 0,
        };
        // SAFETY: `region` is the pool's small-frame region: page aligned
        // (the pool allocates whole pages), `len` bytes, a whole number of
        // `frame_size` chunks. Keeping it alive while the kernel uses it is
        // this handle's documented contract: every port made from it is
        // dropped before the pool (the `Switch` field order guarantees it for
        // ports it owns).
        let umem = unsafe { xdpilone::Umem::new(cfg, NonNull::from(region)) }.map_err(errno)?;
        Ok(Registration { umem })
    }

    /// Create, configure and bind a socket for `ifname` queue `queue`:
    /// share the anchored registration if there is one, else register anew.
    pub(crate) fn bind_socket(
        &self,
        pool: &mut PacketPool,
        ifname: &str,
        ifindex: u32,
        queue: u32,
        ring_size: u32,
        zero_copy: ZeroCopy,
    ) -> Result<BoundSocket, AfXdpError> {
        let w = Want {
            ifname,
            ifindex,
            queue,
            ring_size,
            zero_copy,
        };
        if !self.is_pool(pool) {
            return Err(AfXdpError::Config {
                ifname: ifname.to_string(),
                reason: "the packet pool is not the one this UMEM was made from".into(),
            });
        }
        let mut anchor = self.inner.anchor.lock().expect("umem lock");
        if let Some(reg) = anchor.upgrade() {
            // On failure the anchor may have lost its interface, or be in a
            // mode this device cannot share (zero-copy): register afresh,
            // and if that fails too, its error names the device's problem.
            if let Ok(s) = setup(&reg, &w, false) {
                return Ok(s);
            }
        }
        let sock_err = |what: &'static str, source: io::Error| AfXdpError::Socket {
            ifname: ifname.to_string(),
            queue,
            what,
            source,
        };
        let reg = Arc::new(
            self.register(pool)
                .map_err(|e| sock_err("register the packet pool as UMEM", e))?,
        );
        let mut s = setup(&reg, &w, true)?;
        *anchor = Arc::downgrade(&reg);
        s.anchor = Some(reg);
        Ok(s)
    }
}

/// The socket sequence: socket, fill/completion rings, rx/tx rings, mmap,
/// bind. `first`: the socket is the registration's own fd (the anchor).
fn setup(reg: &Registration, w: &Want<'_>, first: bool) -> Result<BoundSocket, AfXdpError> {
    let err = |what: &'static str| {
        move |e: xdpilone::Errno| AfXdpError::Socket {
            ifname: w.ifname.to_string(),
            queue: w.queue,
            what,
            source: errno(e),
        }
    };
    let mut info = IfInfo::invalid();
    info.from_ifindex(w.ifindex)
        .map_err(err("look up the interface"))?;
    info.set_queue(w.queue);
    let sock = if first {
        Socket::with_shared(&info, &reg.umem).map_err(err("open the UMEM's socket"))?
    } else {
        Socket::new(&info).map_err(err("open an AF_XDP socket"))?
    };
    let fq_cq = reg
        .umem
        .fq_cq(&sock)
        .map_err(err("set up the fill and completion rings"))?;
    // Sockets that share a UMEM may not pass bind flags: they inherit the
    // anchor's mode (copy or zero-copy, need-wakeup).
    let bind_flags = if first {
        SocketConfig::XDP_BIND_NEED_WAKEUP
            | match w.zero_copy {
                ZeroCopy::Auto => 0,
                ZeroCopy::Never => SocketConfig::XDP_BIND_COPY,
                ZeroCopy::Require => SocketConfig::XDP_BIND_ZEROCOPY,
            }
    } else {
        0
    };
    let size = NonZeroU32::new(w.ring_size);
    let cfg = SocketConfig {
        rx_size: size,
        tx_size: size,
        bind_flags,
    };
    let user = reg
        .umem
        .rx_tx(&sock, &cfg)
        .map_err(err("set up the rx and tx rings"))?;
    let rx = user.map_rx().map_err(err("map the rx ring"))?;
    let tx = user.map_tx().map_err(err("map the tx ring"))?;
    // A socket closed moments ago keeps its queue until the kernel's
    // deferred pool release runs: retry a busy bind for a short while
    // (control path only; the data path never waits).
    let mut tries = 0;
    loop {
        match reg.umem.bind(&user) {
            Ok(()) => break,
            Err(e) if e.get_raw() == libc::EBUSY && tries < BIND_BUSY_RETRIES => {
                tries += 1;
                std::thread::sleep(BIND_BUSY_WAIT);
            }
            Err(e) => {
                return Err(err(if first {
                    "bind failed"
                } else {
                    "bind with XDP_SHARED_UMEM failed"
                })(e));
            }
        }
    }
    let fd = user.as_raw_fd();
    let zero_copy = xdp_options(fd).map_err(|source| AfXdpError::Socket {
        ifname: w.ifname.to_string(),
        queue: w.queue,
        what: "read the bound socket's options (XDP_OPTIONS)",
        source,
    })? & XDP_OPTIONS_ZEROCOPY
        != 0;
    Ok(BoundSocket {
        rx,
        tx,
        fq_cq,
        fd,
        anchor: None,
        zero_copy,
    })
}

/// The frames one port has handed to the kernel (fill and tx rings) and
/// not yet got back (rx and completion rings), one bit per frame.
///
/// Declared after the port's rings, so it drops after they closed the
/// socket (after which the kernel no longer touches them): its `Drop` then
/// hands the frames to the UMEM's orphan list for the pool.
#[derive(Debug)]
pub(crate) struct HeldFrames {
    bits: Vec<u64>,
    count: u64,
    umem: Umem,
}

impl HeldFrames {
    pub(crate) fn new(umem: &Umem, frames: usize) -> HeldFrames {
        HeldFrames {
            bits: vec![0; frames.div_ceil(64)],
            count: 0,
            umem: umem.clone(),
        }
    }

    #[inline]
    pub(crate) fn hand_over(&mut self, frame: u32) {
        let (w, b) = (frame as usize / 64, frame % 64);
        debug_assert!(
            self.bits[w] & (1 << b) == 0,
            "frame {frame} handed over twice"
        );
        self.bits[w] |= 1 << b;
        self.count += 1;
    }

    #[inline]
    pub(crate) fn take_back(&mut self, frame: u32) {
        let (w, b) = (frame as usize / 64, frame % 64);
        debug_assert!(self.bits[w] & (1 << b) != 0, "frame {frame} was not ours");
        self.bits[w] &= !(1 << b);
        self.count -= 1;
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }
}

impl Drop for HeldFrames {
    fn drop(&mut self) {
        if self.count == 0 {
            return;
        }
        let mut o = self.umem.inner.orphans.lock().expect("umem lock");
        for (w, &word) in self.bits.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let b = word.trailing_zeros();
                o.push(w as u32 * 64 + b);
                word &= word - 1;
            }
        }
        self.umem.inner.has_orphans.store(true, Ordering::Relaxed);
    }
}

/// `getsockopt(SOL_XDP, XDP_OPTIONS)`: the bound socket's flags.
fn xdp_options(fd: i32) -> io::Result<u32> {
    let mut flags: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `flags`/`len` are live locals of the size the kernel expects
    // for `struct xdp_options`; `fd` is a socket the caller keeps open.
    let r = unsafe {
        libc::getsockopt(
            fd,
            SOL_XDP,
            XDP_OPTIONS,
            &mut flags as *mut u32 as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_checked() {
        let mut big = PacketPool::new(4, 8192, 256).unwrap();
        assert!(
            Umem::new(&mut big, 2048).is_err(),
            "8 KiB chunks need unaligned mode"
        );
        let mut p = PacketPool::with_frames(64);
        assert!(Umem::new(&mut p, 1000).is_err());
        let u = Umem::new(&mut p, 256).unwrap();
        assert!(u.is_pool(&mut p));
        assert_eq!(u.rx_headroom(), 256);
        assert!(!u.is_registered(), "registration waits for the first port");
        let mut other = PacketPool::with_frames(64);
        assert!(!u.is_pool(&mut other));
    }
}
