//! One AF_XDP socket behind the switch's `Port` trait: the fill ring kept
//! topped up from the pool, rx descriptors turned into `PktBuf`s, `PktBuf`s
//! put on the tx ring as descriptors, and completed frames given back to the
//! pool.
//!
//! Owns: the socket's four rings, the interface's XDP attachment, the port
//! counters. Never: blocks (every syscall is MSG_DONTWAIT or a zero-timeout
//! poll), copies a frame that is already in the UMEM.

use std::io;
use std::sync::Arc;

use rvs_switch::buf::{Offload, PktBuf};
use rvs_switch::{Batch, PacketPool, Port, PortError, TxDone};
use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, RingRx, RingTx};

use super::prog::XdpRedirect;
use super::umem::{HeldFrames, Registration};
use super::{AfXdpConfig, AfXdpError, AfXdpInfo, AfXdpStats, Umem};
use crate::ethtool;
use crate::offload::{self, Finished};

/// Refill only when at least this many fill slots are free (or the ring is
/// nearly empty), so a refill is one burst, not one frame.
const REFILL_MIN: u32 = 32;
/// Copy mode transmits inside `sendto`, a bounded budget per call.
const MAX_KICKS: usize = 8;
/// Ethernet header plus one VLAN tag on top of the MTU (what a veth takes).
const L2_OVERHEAD: usize = 18;

/// A switch port over an interface queue through an AF_XDP socket.
pub struct AfXdpPort {
    // Field order is drop order: detach the program first so nothing more is
    // redirected; unmap the rings and drop the registration (anchor port
    // only), which closes the socket; then `held` hands the frames still on
    // the rings to the UMEM's orphan list.
    _prog: XdpRedirect,
    rx: RingRx,
    tx: RingTx,
    fq_cq: DeviceQueue,
    _anchor: Option<Arc<Registration>>,
    /// After the rings: drops once the socket is closed (see `HeldFrames`).
    held: HeldFrames,
    umem: Umem,
    fd: i32,
    info: AfXdpInfo,
    stats: Arc<AfXdpStats>,
    fill_frames: u32,
    pool_reserve: usize,
    /// A failed wake-up, reported by the next `rx_burst`.
    kick_error: Option<io::Error>,
    /// Staging for large-class frames copied into UMEM frames.
    scratch: Vec<u8>,
    /// Software segments waiting for the next burst of the same tx call.
    overflow: Vec<PktBuf>,
}

impl std::fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpPort")
            .field("info", &self.info)
            .field("kernel_frames", &self.held.count())
            .finish_non_exhaustive()
    }
}

impl AfXdpPort {
    /// Attach to `ifname` queue `cfg.queue`: bind a socket on `umem` (which
    /// must describe `pool`), attach the redirect program, fill the fill ring.
    pub fn open(
        umem: &Umem,
        pool: &mut PacketPool,
        ifname: &str,
        cfg: &AfXdpConfig,
    ) -> Result<AfXdpPort, AfXdpError> {
        let bad = |reason: String| AfXdpError::Config {
            ifname: ifname.to_string(),
            reason,
        };
        if !cfg.ring_size.is_power_of_two() || cfg.ring_size < 64 {
            return Err(bad(format!(
                "ring size {} is not a power of two >= 64",
                cfg.ring_size
            )));
        }
        if cfg.fill_frames < rvs_switch::BATCH_MAX as u32 || cfg.fill_frames > umem.ring_size() {
            return Err(bad(format!(
                "fill_frames {} outside {}..={} (a batch up to the fill ring)",
                cfg.fill_frames,
                rvs_switch::BATCH_MAX,
                umem.ring_size()
            )));
        }
        if !umem.is_pool(pool) {
            return Err(bad(
                "the packet pool is not the one this UMEM was made from".into(),
            ));
        }
        let io_err = |what: &'static str| {
            move |source: io::Error| AfXdpError::Socket {
                ifname: ifname.to_string(),
                queue: cfg.queue,
                what,
                source,
            }
        };
        let ifindex = ethtool::ifindex(ifname).map_err(io_err("look up the interface"))?;
        let mtu = ethtool::mtu(ifname).map_err(io_err("read the MTU"))?;
        let rx_room = pool.frame_size() - umem.rx_headroom();
        if mtu + L2_OVERHEAD > rx_room {
            return Err(bad(format!(
                "MTU {mtu} does not fit a {}-byte UMEM frame after {} bytes of headroom",
                pool.frame_size(),
                umem.rx_headroom()
            )));
        }
        let mut tx_checksum_turned_off = false;
        if cfg.disable_tx_checksum && ethtool::tx_checksum(ifname)? {
            ethtool::set_tx_checksum(ifname, false)?;
            tx_checksum_turned_off = true;
        }
        umem.return_orphans(pool);
        let sock = umem.bind_socket(
            pool,
            ifname,
            ifindex,
            cfg.queue,
            cfg.ring_size,
            cfg.zero_copy,
        )?;
        let prog = XdpRedirect::attach(ifname, ifindex, cfg.queue, sock.fd, cfg.xdp_mode)?;
        let info = AfXdpInfo {
            ifname: ifname.to_string(),
            ifindex,
            queue: cfg.queue,
            xdp_mode: prog.mode(),
            zero_copy: sock.zero_copy,
            umem_anchor: sock.anchor.is_some(),
            tx_checksum_turned_off,
            max_frame: mtu + L2_OVERHEAD,
        };
        let mut port = AfXdpPort {
            _prog: prog,
            rx: sock.rx,
            tx: sock.tx,
            fq_cq: sock.fq_cq,
            _anchor: sock.anchor,
            held: HeldFrames::new(umem, pool.capacity()),
            umem: umem.clone(),
            fd: sock.fd,
            info,
            stats: Arc::new(AfXdpStats::default()),
            fill_frames: cfg.fill_frames,
            pool_reserve: cfg.pool_reserve,
            kick_error: None,
            scratch: vec![0; pool.max_packet()],
            overflow: Vec::new(),
        };
        port.refill(pool);
        Ok(port)
    }

    /// What the port runs with (XDP mode, zero-copy, UMEM anchor, MTU).
    pub fn info(&self) -> &AfXdpInfo {
        &self.info
    }

    /// The port's counters; keep a clone to read them once the switch owns
    /// the port.
    pub fn stats(&self) -> Arc<AfXdpStats> {
        self.stats.clone()
    }

    /// Frames of the pool currently on this socket's kernel rings (fill, rx
    /// not yet read, tx not yet completed). When the port is dropped they
    /// go to the UMEM's orphan list, and back to the pool at the next
    /// `rx_burst`/`maintain`/`open` of any port on the same UMEM (or
    /// [`Umem::return_orphans`]).
    pub fn kernel_frames(&self) -> u64 {
        self.held.count()
    }

    /// Give completed tx frames back to the pool. Returns how many.
    pub fn reap_completions(&mut self, pool: &mut PacketPool) -> usize {
        let n = self.fq_cq.available();
        if n == 0 {
            return 0;
        }
        let (mut done, mut bad) = (0u64, 0u64);
        let mut cq = self.fq_cq.complete(n);
        while let Some(addr) = cq.read() {
            match pool.buf_at(addr, 0) {
                Some(b) => {
                    self.held.take_back(b.frame());
                    pool.free(b);
                    done += 1;
                }
                None => bad += 1,
            }
        }
        cq.release();
        AfXdpStats::add(&self.stats.completed, done);
        AfXdpStats::add(&self.stats.rx_bad_desc, bad);
        done as usize
    }

    /// Top the fill ring up to `fill_frames`, leaving `pool_reserve` frames
    /// in the pool.
    fn refill(&mut self, pool: &mut PacketPool) {
        let queued = self.fq_cq.pending();
        let want = self.fill_frames.saturating_sub(queued);
        if want == 0 || (want < REFILL_MIN && queued >= REFILL_MIN) {
            return;
        }
        let spare = pool.available().saturating_sub(self.pool_reserve);
        let n = (want as usize).min(spare) as u32;
        if n < want {
            AfXdpStats::add(&self.stats.fill_starved, 1);
        }
        if n == 0 {
            return;
        }
        // Two rounds: the first reservation may see a stale consumer head.
        let mut posted = 0u64;
        for _ in 0..2 {
            let left = n - posted as u32;
            if left == 0 {
                break;
            }
            let mut fill = self.fq_cq.fill(left);
            for _ in 0..fill.capacity() {
                let b = pool.alloc().expect("counted free frames above the reserve");
                self.held.hand_over(b.frame());
                fill.insert_once(pool.into_addr(b));
                posted += 1;
            }
            fill.commit();
        }
        AfXdpStats::add(&self.stats.fill_posted, posted);
        if self.fq_cq.needs_wakeup() {
            // Zero-copy drivers may sleep on an empty fill ring.
            self.fq_cq.wake();
        }
    }

    /// Put one burst on the tx ring (frames it cannot take are dropped).
    fn tx_once(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> TxDone {
        self.reap_completions(pool);
        let mut done = TxDone::default();
        if batch.is_empty() {
            return done;
        }
        let (copied, too_big, mut full) = if batch.iter().any(|b| pool.is_large(b)) {
            self.copy_large_frames(pool, batch)
        } else {
            (0, 0, 0)
        };

        // xdpilone reserves against its cached view of the kernel's consumer
        // and refreshes it only when that view shows a full ring, so a second
        // round picks up slots the kernel freed since.
        let mut left = batch.len();
        let mut frames = batch.drain();
        for _ in 0..2 {
            if left == 0 {
                break;
            }
            let mut tx = self.tx.transmit(left as u32);
            for _ in 0..tx.capacity() {
                let b = frames.next().expect("capacity <= frames left");
                left -= 1;
                let len = b.len();
                tx.insert_once(XdpDesc {
                    addr: pool.addr_of(&b),
                    len: len as u32,
                    options: 0,
                });
                done.packets += 1;
                done.bytes += len;
                // The frame belongs to the kernel until the completion ring
                // hands its address back.
                self.held.hand_over(b.frame());
                let _ = pool.into_addr(b);
            }
            tx.commit();
        }
        for b in frames {
            pool.free(b);
            full += 1;
        }
        let moved = (done.packets as u64).saturating_sub(copied);
        done.dropped = (too_big + full) as usize;
        self.kick();
        let s = &self.stats;
        AfXdpStats::add(&s.tx_packets, done.packets as u64);
        AfXdpStats::add(&s.tx_bytes, done.bytes as u64);
        AfXdpStats::add(&s.tx_moved, moved);
        AfXdpStats::add(&s.tx_copied, copied);
        AfXdpStats::add(&s.tx_drop_too_big, too_big);
        AfXdpStats::add(&s.tx_drop_full, full);
        done
    }

    /// Complete every offload in `batch` in software (segments may outnumber
    /// the batch: the overflow waits in `self.pending`). Returns how many
    /// packets had to be dropped.
    #[cold]
    fn finish_offloads(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> u64 {
        let max_len = self.info.max_frame.min(pool.max_packet());
        let mut out: Vec<PktBuf> = Vec::with_capacity(batch.len());
        let mut dropped = 0;
        for b in batch.drain() {
            if b.offload() == Offload::NONE {
                out.push(b);
                continue;
            }
            match offload::finish_in_software(pool, b, max_len, |_, seg| out.push(seg)) {
                Ok(Finished::Segmented(n)) => AfXdpStats::add(&self.stats.tx_segments, n as u64),
                Ok(_) => {}
                Err(_) => dropped += 1,
            }
        }
        // What fits goes in this burst; the rest in further bursts of the
        // same call, in order.
        let mut rest = out.into_iter();
        while !batch.is_full() {
            let Some(b) = rest.next() else { break };
            batch.push(b).expect("not full");
        }
        self.overflow.extend(rest);
        dropped
    }

    /// Replace large-class frames (not in the UMEM) in `batch` by copies in
    /// small frames; drop those no small frame or the MTU takes. Returns
    /// (copied, too big, no frame).
    #[cold]
    fn copy_large_frames(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> (u64, u64, u64) {
        let (mut copied, mut too_big, mut full) = (0, 0, 0);
        let max_copy = self.info.max_frame.min(pool.max_packet());
        let mut out = Batch::new(batch.limit());
        for b in batch.drain() {
            if !pool.is_large(&b) {
                out.push(b).expect("same limit");
                continue;
            }
            let len = b.len();
            if len > max_copy {
                pool.free(b);
                too_big += 1;
                continue;
            }
            self.scratch[..len].copy_from_slice(pool.data(&b));
            pool.free(b);
            match pool.alloc_from(&self.scratch[..len]) {
                Some(s) => {
                    out.push(s).expect("same limit");
                    copied += 1;
                }
                None => full += 1,
            }
        }
        for b in out.drain() {
            batch.push(b).expect("same limit");
        }
        (copied, too_big, full)
    }

    /// Wake the kernel to transmit what is on the tx ring (copy mode sends
    /// inside the call). Stops when the ring is drained, the kernel says it
    /// needs no wake-up, or a call makes no progress.
    fn kick(&mut self) {
        let mut kicks = 0;
        for _ in 0..MAX_KICKS {
            let before = self.tx.pending();
            if before == 0 || !self.tx.needs_wakeup() {
                break;
            }
            kicks += 1;
            // SAFETY: zero-length sendto on our own open socket fd with null
            // buffers, as the AF_XDP ABI prescribes for a tx wake-up.
            let r = unsafe {
                libc::sendto(
                    self.fd,
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS) => {}
                    _ => {
                        AfXdpStats::add(&self.stats.tx_kick_errors, 1);
                        self.kick_error = Some(e);
                        break;
                    }
                }
            }
            if self.tx.pending() == before {
                break;
            }
        }
        AfXdpStats::add(&self.stats.tx_kicks, kicks);
    }
}

impl Port for AfXdpPort {
    fn name(&self) -> &str {
        &self.info.ifname
    }

    fn rx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> Result<usize, PortError> {
        if let Some(e) = self.kick_error.take() {
            return Err(if e.raw_os_error() == Some(libc::ENXIO) {
                PortError::Gone(self.info.ifname.clone())
            } else {
                PortError::Io {
                    port: self.info.ifname.clone(),
                    op: "tx wake-up (sendto)",
                    source: e,
                }
            });
        }
        self.umem.return_orphans(pool);
        self.reap_completions(pool);
        self.refill(pool);
        if self.tx.pending() > 0 {
            self.kick();
        }
        let room = batch.room() as u32;
        if room == 0 || self.rx.available() == 0 {
            return Ok(0);
        }
        let (mut n, mut bytes, mut bad) = (0usize, 0u64, 0u64);
        // Two rounds: the first peek may see a stale producer head.
        for _ in 0..2 {
            let want = room - (n as u32 + bad as u32);
            if want == 0 {
                break;
            }
            let mut rx = self.rx.receive(want);
            while let Some(d) = rx.read() {
                match pool.buf_at(d.addr, d.len as usize) {
                    Some(b) => {
                        self.held.take_back(b.frame());
                        bytes += d.len as u64;
                        batch.push(b).expect("at most room() descriptors read");
                        n += 1;
                    }
                    None => bad += 1,
                }
            }
            rx.release();
        }
        AfXdpStats::add(&self.stats.rx_packets, n as u64);
        AfXdpStats::add(&self.stats.rx_bytes, bytes);
        AfXdpStats::add(&self.stats.rx_bad_desc, bad);
        Ok(n)
    }

    fn tx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> TxDone {
        // AF_XDP takes no offloads: finish partial checksums and cut GSO
        // super-frames (from TAP ports) in software first. Segments beyond
        // one burst wait in `overflow` and go out in further bursts here.
        let mut bad_offload = 0;
        if batch.iter().any(|b| b.offload() != Offload::NONE) {
            bad_offload = self.finish_offloads(pool, batch);
        }
        let mut total = self.tx_once(pool, batch);
        while !self.overflow.is_empty() {
            let k = self.overflow.len().min(batch.limit());
            for b in self.overflow.drain(..k) {
                batch.push(b).expect("k <= limit");
            }
            let d = self.tx_once(pool, batch);
            total.packets += d.packets;
            total.bytes += d.bytes;
            total.dropped += d.dropped;
        }
        total.dropped += bad_offload as usize;
        AfXdpStats::add(&self.stats.tx_drop_bad_offload, bad_offload);
        total
    }

    /// The kernel's XDP socket statistics: frames it could not put on the
    /// rx ring (full), found no fill-ring frame for, or dropped otherwise,
    /// and invalid descriptors. `rx_dropped` includes the first two, so
    /// they are reported apart and the rest as `xdp_rx_dropped_other`.
    fn backend_drops(&self) -> Vec<(&'static str, u64)> {
        let Ok(s) = self.fq_cq.statistics_v2() else {
            return Vec::new();
        };
        let named = s.rx_ring_full + s.rx_fill_ring_empty_descs;
        vec![
            ("xdp_rx_ring_full", s.rx_ring_full),
            ("xdp_fill_ring_empty", s.rx_fill_ring_empty_descs),
            ("xdp_rx_dropped_other", s.rx_dropped.saturating_sub(named)),
            ("xdp_rx_invalid_descs", s.rx_invalid_descs),
            ("xdp_tx_invalid_descs", s.tx_invalid_descs),
        ]
    }

    fn poll_fd(&self) -> Option<i32> {
        Some(self.fd)
    }

    fn max_frame(&self) -> usize {
        self.info.max_frame
    }

    fn maintain(&mut self, pool: &mut PacketPool) {
        self.umem.return_orphans(pool);
        self.reap_completions(pool);
        self.refill(pool);
        self.kick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_and_missing_interfaces_are_refused_with_context() {
        let mut pool = PacketPool::with_frames(256);
        let umem = Umem::new(&mut pool, 256).unwrap();
        let cfg = AfXdpConfig {
            ring_size: 1000,
            ..AfXdpConfig::default()
        };
        let e = AfXdpPort::open(&umem, &mut pool, "lo", &cfg).unwrap_err();
        assert!(e.to_string().contains("ring size 1000"), "{e}");
        let cfg = AfXdpConfig {
            fill_frames: 512,
            ..AfXdpConfig::default()
        };
        let e = AfXdpPort::open(&umem, &mut pool, "lo", &cfg).unwrap_err();
        assert!(e.to_string().contains("fill_frames 512"), "{e}");
        let cfg = AfXdpConfig {
            fill_frames: 128,
            ..AfXdpConfig::default()
        };
        let e = AfXdpPort::open(&umem, &mut pool, "rvs-nosuch0", &cfg).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("attach AF_XDP to rvs-nosuch0 queue 0: look up the interface"),
            "{e}"
        );
        let mut other = PacketPool::with_frames(256);
        let e = AfXdpPort::open(&umem, &mut other, "lo", &cfg).unwrap_err();
        assert!(e.to_string().contains("not the one this UMEM"), "{e}");
        assert!(!umem.is_registered(), "nothing was registered");
        assert_eq!(pool.available(), 256, "no frame left the pool");
    }
}
