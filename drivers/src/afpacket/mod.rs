//! The AF_PACKET port back end: a switch port on an existing interface
//! (typically the host end of a veth), for when AF_XDP cannot attach.
//!
//! Receive: `recvmmsg` bursts straight from the socket's queue, each frame
//! copied into a pool buffer. The kernel wakes the socket (and the worker's
//! epoll) for every frame, so a lone frame crosses at once; a TPACKET_V3
//! ring, which this port used before, hands a block over only when it is
//! full or its retire timer fires (>= 1 ms), and that timer was the latency
//! of every sparse flow (docs/architecture.md, "AF_PACKET receive"). The
//! socket ignores outgoing frames (`PACKET_IGNORE_OUTGOING`: it sees neither
//! its own transmissions nor the host stack's), holds a promiscuous
//! membership and is bound to the interface with `ETH_P_ALL`;
//! `PACKET_AUXDATA` gives each frame's length and the VLAN tag the kernel
//! took out of it.
//!
//! Offloads: with [`AfPacketConfig::vnet_hdr`] (the default) the kernel
//! tells, per frame, when a veth peer left the L4 checksum partial or sent
//! a TSO/USO super-frame; the receive path completes the checksum and cuts
//! the super-frame into MSS-sized segments in software (`crate::offload`), so the
//! switch only ever sees wire-ready frames and the namespace side keeps its
//! default offloads (`tx on`, TSO on). Without it the peer must run
//! `ethtool -K <peer> tx off` (which also turns TSO off), or TCP through the
//! switch breaks on bad checksums and oversize frames.
//!
//! Transmit: `sendmmsg` batches, non-blocking, with `PACKET_QDISC_BYPASS`;
//! a frame the kernel refuses (socket buffer full, link down, too long) is
//! counted in [`TxDone::dropped`]. Every buffer goes back to the pool before
//! `tx_burst` returns.
//!
//! Owns: one packet socket, its receive slots and its counters. Never:
//! blocking, changing the interface's settings (offloads, MTU, up/down belong
//! to the CNM layer), or forwarding a frame it could not receive whole.

mod frame;
mod rx;
mod stats;
mod sys;
mod tx;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use rvs_switch::{Batch, PacketPool, Port, PortError, TxDone};

use rx::RxSlots;
use stats::SharedStats;
pub use stats::{AfPacketStats, AfPacketStatsHandle};

/// How an AF_PACKET port sets up its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Bytes of frames the kernel queues for the port while its worker is
    /// busy (`SO_RCVBUF`, counted as the kernel charges buffers: a 64 KiB
    /// GSO super-frame costs ~70 KiB). Beyond it the kernel drops frames and
    /// counts them in [`AfPacketStats::kernel_drops`].
    pub rcvbuf: usize,
    /// Longest frame received whole; a longer one arrives cut short and is
    /// dropped ([`AfPacketStats::rx_truncated`]). The default takes a 64 KiB
    /// GSO super-frame with a VLAN tag. Each port keeps 64 receive slots of
    /// this size (made resident only as far as frames reach).
    pub max_rx_frame: usize,
    /// Receive a virtio-net header with each frame and finish checksum and
    /// segmentation offloads in software (see the module docs).
    pub vnet_hdr: bool,
    /// Transmit straight to the driver, skipping the qdisc layer.
    pub qdisc_bypass: bool,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig {
            rcvbuf: 4 << 20,
            // IPv4/IPv6 payload of up to 64 KiB, Ethernet header and a tag.
            max_rx_frame: 65_535 + 14 + 4,
            vnet_hdr: true,
            qdisc_bypass: true,
        }
    }
}

impl AfPacketConfig {
    fn check(&self) -> Result<(), String> {
        if !(4096..=1 << 30).contains(&self.rcvbuf) {
            return Err(format!(
                "receive buffer of {} bytes is outside 4096..=1 GiB",
                self.rcvbuf
            ));
        }
        if !(64..=1 << 17).contains(&self.max_rx_frame) {
            return Err(format!(
                "longest received frame {} is outside 64..=131072 bytes",
                self.max_rx_frame
            ));
        }
        Ok(())
    }
}

/// Why an AF_PACKET port could not be set up or queried.
#[derive(Debug, thiserror::Error)]
pub enum AfPacketError {
    #[error("attach AF_PACKET to {ifname}: {step} failed: {source}")]
    Attach {
        ifname: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("attach AF_PACKET to {ifname}: {reason}")]
    Config { ifname: String, reason: String },
    #[error("AF_PACKET port {ifname}: {op} failed: {source}")]
    Io {
        ifname: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// An AF_PACKET port; give it to `Switch::add_port`. Dropping it (after
/// `Switch::remove_port`) closes the socket, which ends
/// the promiscuous membership.
pub struct AfPacketPort {
    name: String,
    ifindex: u32,
    vnet_hdr: bool,
    max_frame: usize,
    sock: OwnedFd,
    slots: RxSlots,
    stats: Arc<SharedStats>,
    /// The link went down or away (`ENETDOWN`): `maintain` checks whether
    /// the interface still exists until a frame arrives again.
    suspect: bool,
    /// The interface was deleted; reported once as `PortError::Gone`.
    gone: bool,
    gone_reported: bool,
}

impl std::fmt::Debug for AfPacketPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketPort")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .field("fd", &self.sock.as_raw_fd())
            .field("vnet_hdr", &self.vnet_hdr)
            .finish()
    }
}

impl AfPacketPort {
    /// Attach to `ifname` with the default configuration.
    pub fn attach(ifname: &str) -> Result<AfPacketPort, AfPacketError> {
        Self::attach_with(ifname, &AfPacketConfig::default())
    }

    /// Attach to `ifname`: open the socket, set it up, join promiscuously
    /// and bind. Nothing is left behind on failure.
    pub fn attach_with(ifname: &str, cfg: &AfPacketConfig) -> Result<AfPacketPort, AfPacketError> {
        cfg.check().map_err(|reason| AfPacketError::Config {
            ifname: ifname.to_string(),
            reason,
        })?;
        let at = |step: &'static str| {
            move |source: io::Error| AfPacketError::Attach {
                ifname: ifname.to_string(),
                step,
                source,
            }
        };
        let sock = sys::packet_socket().map_err(at("socket(AF_PACKET, SOCK_RAW)"))?;
        let fd = sock.as_fd();
        let ifindex = sys::ifindex(fd, ifname).map_err(at("interface lookup"))?;
        let mtu = sys::mtu(fd, ifname).map_err(at("MTU lookup"))? as usize;
        if cfg.vnet_hdr {
            sys::set_packet_int(fd, libc::PACKET_VNET_HDR, 1).map_err(at("PACKET_VNET_HDR"))?;
        }
        sys::set_packet_int(fd, libc::PACKET_IGNORE_OUTGOING, 1)
            .map_err(at("PACKET_IGNORE_OUTGOING"))?;
        if cfg.qdisc_bypass {
            sys::set_packet_int(fd, libc::PACKET_QDISC_BYPASS, 1)
                .map_err(at("PACKET_QDISC_BYPASS"))?;
        }
        sys::set_packet_int(fd, libc::PACKET_AUXDATA, 1).map_err(at("PACKET_AUXDATA"))?;
        sys::set_rcvbuf(fd, cfg.rcvbuf).map_err(at("SO_RCVBUF"))?;
        sys::add_promisc(fd, ifindex).map_err(at("PACKET_ADD_MEMBERSHIP promiscuous"))?;
        sys::bind(fd, ifindex).map_err(at("bind"))?;
        Ok(AfPacketPort {
            name: ifname.to_string(),
            ifindex,
            vnet_hdr: cfg.vnet_hdr,
            // With a vnet header the kernel takes GSO super-frames and
            // checks the MTU itself (too long: EMSGSIZE, counted in
            // `tx_errors`); without one, one MTU plus an Ethernet header
            // and one VLAN tag, as packet_snd allows.
            max_frame: if cfg.vnet_hdr {
                u16::MAX as usize
            } else {
                mtu + 14 + 4
            },
            sock,
            slots: RxSlots::new(cfg.max_rx_frame, cfg.vnet_hdr),
            stats: Arc::new(SharedStats::default()),
            suspect: false,
            gone: false,
            gone_reported: false,
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// A handle on this port's counters that outlives handing the port to
    /// a switch.
    pub fn stats_handle(&self) -> AfPacketStatsHandle {
        AfPacketStatsHandle(self.stats.clone())
    }

    /// Fetch the kernel's `PACKET_STATISTICS` (frames delivered, frames
    /// dropped on a full receive queue) into the counters and return them all.
    pub fn statistics(&self) -> Result<AfPacketStats, AfPacketError> {
        self.refresh_kernel_stats()
            .map_err(|source| AfPacketError::Io {
                ifname: self.name.clone(),
                op: "getsockopt(PACKET_STATISTICS)",
                source,
            })?;
        Ok(self.stats.snapshot())
    }

    fn refresh_kernel_stats(&self) -> io::Result<()> {
        let k = sys::take_stats(self.sock.as_fd())?;
        self.stats.add(&AfPacketStats {
            kernel_packets: k.tp_packets as u64,
            kernel_drops: k.tp_drops as u64,
            ..AfPacketStats::default()
        });
        Ok(())
    }
}

impl Port for AfPacketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> Result<usize, PortError> {
        if self.gone {
            if !self.gone_reported {
                self.gone_reported = true;
                return Err(PortError::Gone(self.name.clone()));
            }
            return Ok(0);
        }
        let before = batch.len();
        let mut st = AfPacketStats::default();
        let r = rx::receive(
            self.sock.as_fd(),
            &mut self.slots,
            self.vnet_hdr,
            pool,
            batch,
            &mut st,
        );
        if st.rx_frames > 0 {
            self.suspect = false;
        }
        self.stats.add(&st);
        match r {
            Ok(()) => {}
            // The socket reports a link going down once, as a receive
            // error; `maintain` then watches for the interface's deletion.
            Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => self.suspect = true,
            Err(source) => {
                return Err(PortError::Io {
                    port: self.name.clone(),
                    op: "recvmmsg",
                    source,
                });
            }
        }
        Ok(batch.len() - before)
    }

    fn tx_burst(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> TxDone {
        let mut st = AfPacketStats::default();
        let (done, link) = tx::transmit(self.sock.as_fd(), self.vnet_hdr, pool, batch, &mut st);
        match link {
            tx::Link::Up => {}
            tx::Link::Down => self.suspect = true,
            tx::Link::Gone => self.gone = true,
        }
        self.stats.add(&st);
        done
    }

    fn poll_fd(&self) -> Option<i32> {
        Some(self.sock.as_raw_fd())
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Frames the kernel dropped on a full receive queue
    /// (`PACKET_STATISTICS`, fetched now) and frames longer than
    /// `max_rx_frame` that arrived cut short.
    fn backend_drops(&self) -> Vec<(&'static str, u64)> {
        let _ = self.refresh_kernel_stats();
        let s = self.stats.snapshot();
        vec![
            ("packet_rcvbuf_full", s.kernel_drops),
            ("packet_rx_truncated", s.rx_truncated),
        ]
    }

    /// Idle-time housekeeping: pull the kernel's drop counters and clear a
    /// pending socket error (which would otherwise keep the fd signalling
    /// EPOLLERR). After an `ENETDOWN`, and until a frame arrives again, check
    /// that the interface still exists under our index: if not, it was
    /// deleted and the next `rx_burst` reports [`PortError::Gone`].
    fn maintain(&mut self, _pool: &mut PacketPool) {
        let _ = self.refresh_kernel_stats();
        if let Ok(Some(e)) = sys::take_error(self.sock.as_fd())
            && e.raw_os_error() == Some(libc::ENETDOWN)
        {
            self.suspect = true;
        }
        if self.suspect
            && !self.gone
            && sys::ifindex(self.sock.as_fd(), &self.name).ok() != Some(self.ifindex)
        {
            self.gone = true;
        }
    }
}

#[cfg(test)]
mod tests;
