//! The VTEP port's transmit burst, in three phases so that no pointer into
//! a frame is taken while a frame is still being written:
//!
//! 1. write: complete partial checksums, push the VXLAN header into the
//!    headroom (plain frames), drop what exceeds the underlay MTU;
//! 2. plan: per frame its destinations (known remote, or the flood list:
//!    head-end replication as several messages over the same bytes), TCP
//!    super-frames cut into (header block in an arena, payload slice);
//! 3. send: iovecs built once the arena stops growing, one `sendmmsg` run
//!    per transmit socket, every frame back to the pool.
//!
//! Owns: the burst's scratch state. Never: blocking, copying a payload.

use rvs_switch::buf::Offload;
use rvs_switch::mac::MacAddr;
use rvs_switch::vxlan::{self, Destination};
use rvs_switch::{BATCH_MAX, Batch, PacketPool, PktBuf, TxDone};

use super::suppress::{self, Asked};
use super::{ANSWERS_MAX, VtepPort, VtepStats, sys};
use crate::offload::{self, CsumMode, GsoPlan, MAX_HEADERS};

/// One datagram to send: iovecs `iov[iov_at..iov_at + iov_n]` to
/// `dsts[dst]` on transmit socket `sock` (`usize::MAX`: the bound one).
#[derive(Debug, Clone, Copy)]
pub(super) struct Msg {
    pub iov_at: usize,
    pub iov_n: usize,
    pub dst: usize,
    pub sock: usize,
    pub inner_len: usize,
}

/// Where an iovec's bytes are: a pool frame or an arena header block.
#[derive(Debug, Clone, Copy)]
pub(super) enum IovAt {
    Pool(*const u8),
    Arena(usize),
}

/// What phase 1 decided for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prep {
    Drop,
    /// VXLAN header pushed; one iovec.
    Plain,
    /// A GSO super-frame to cut.
    Segment,
}

fn dst_mac(inner: &[u8]) -> MacAddr {
    MacAddr(inner[0..6].try_into().unwrap())
}

impl VtepPort {
    pub(super) fn transmit(&mut self, pool: &mut PacketPool, batch: &mut Batch) -> TxDone {
        let mut st = VtepStats::default();
        let now = self.now_s();
        self.arena.clear();
        self.spec.clear();
        self.dsts.clear();
        self.msgs.clear();
        let mut answered = 0;
        if !self.neighbors.is_empty() && batch.iter().any(|b| suppress::maybe_request(pool.data(b)))
        {
            answered = self.suppress(pool, batch, now, &mut st);
        }
        let mut prep = [Prep::Drop; BATCH_MAX];
        for (i, b) in batch.as_mut_slice().iter_mut().enumerate() {
            let o = b.offload();
            if o.is_gso() {
                prep[i] = Prep::Segment;
                continue;
            }
            if b.len() > self.max_inner {
                st.tx_oversize += 1;
                continue;
            }
            if o.needs_csum() {
                if offload::complete_partial(pool.data_mut(b), o).is_err() {
                    st.tx_bad_offload += 1;
                    continue;
                }
                st.tx_csum_completed += 1;
            }
            if vxlan::push_header(pool, b, self.vni).is_err() {
                st.tx_bad_offload += 1;
                continue;
            }
            prep[i] = Prep::Plain;
        }
        let mut dropped = 0;
        for (i, b) in batch.iter().enumerate() {
            let d = pool.data(b);
            let ok = match prep[i] {
                Prep::Drop => false,
                Prep::Plain => {
                    let inner = &d[vxlan::HEADER_LEN..];
                    let sock = self.pick_socket(inner);
                    let at = self.spec.len();
                    self.spec.push((IovAt::Pool(d.as_ptr()), d.len()));
                    self.queue(dst_mac(inner), at, inner.len(), sock, now, &mut st)
                }
                Prep::Segment => self.segment(d, b.offload(), now, &mut st),
            };
            dropped += usize::from(!ok);
        }
        self.iov.clear();
        for &(at, len) in &self.spec {
            let p = match at {
                IovAt::Pool(p) => p,
                IovAt::Arena(k) => self.arena[k].as_ptr(),
            };
            self.iov.push(sys::iovec(p, len));
        }
        // Answered requests count as sent: the switch handed them to the
        // VXLAN segment and the segment (this port) took them.
        let mut done = TxDone {
            dropped,
            packets: answered,
            ..TxDone::default()
        };
        for s in 0..=self.tx_socks.len() {
            let (fd, id) = match s {
                0 => (&self.rx.sock, usize::MAX),
                _ => (&self.tx_socks[s - 1], s - 1),
            };
            self.sorted.clear();
            self.sorted
                .extend(self.msgs.iter().filter(|m| m.sock == id));
            if self.sorted.is_empty() {
                continue;
            }
            let (sent, refused, bytes) = sys::send_all(fd, &self.sorted, &self.iov, &self.dsts);
            done.packets += sent;
            done.bytes += bytes;
            done.dropped += refused;
            st.tx_datagrams += sent as u64;
            st.tx_errors += refused as u64;
        }
        for b in batch.drain() {
            pool.free(b);
        }
        self.counters.add(&st);
        done
    }

    /// Take out of `batch` the ARP requests and Neighbor Solicitations the
    /// neighbor table answers, queue the answers for the next receive
    /// burst and free the requests. Returns how many were answered.
    fn suppress(
        &mut self,
        pool: &mut PacketPool,
        batch: &mut Batch,
        now: u32,
        st: &mut VtepStats,
    ) -> usize {
        let frames: Vec<PktBuf> = batch.drain().collect();
        let mut answered = 0;
        for b in frames {
            let ans = match self.answers.len() < ANSWERS_MAX && !b.offload().is_gso() {
                true => suppress::answer(pool.data(&b), |ip| self.neighbors.get(&ip).copied()),
                false => None,
            };
            // The answer comes from the VTEP the endpoint's MAC is behind;
            // a MAC the table cannot place is left to the flood.
            let from = ans.and_then(|a| match self.table.destination(self.vni, a.mac, now) {
                Some(Destination::Unicast(ip)) => Some((a, ip)),
                _ => None,
            });
            let reply = from.and_then(|(a, ip)| pool.alloc_from(a.bytes()).map(|r| (a, ip, r)));
            let Some((a, remote, r)) = reply else {
                batch.push(b).expect("fewer frames than it held");
                continue;
            };
            match a.kind {
                Asked::Arp => st.arp_suppressed += 1,
                Asked::Nd => st.nd_suppressed += 1,
            }
            self.answers.push_back((r, remote));
            pool.free(b);
            answered += 1;
        }
        answered
    }

    fn pick_socket(&self, inner: &[u8]) -> usize {
        match self.tx_socks.len() {
            0 => usize::MAX,
            k => vxlan::flow_hash(inner) as usize % k,
        }
    }

    /// Plan one frame's datagrams (its iovecs are `spec[iov_at..]`) to
    /// every destination of inner MAC `dst`. False: nowhere to send.
    fn queue(
        &mut self,
        dst: MacAddr,
        iov_at: usize,
        inner_len: usize,
        sock: usize,
        now: u32,
        st: &mut VtepStats,
    ) -> bool {
        let iov_n = self.spec.len() - iov_at;
        let port = self.port;
        let (dsts, msgs) = (&mut self.dsts, &mut self.msgs);
        let mut push = |ip| {
            dsts.push(sys::sockaddr(std::net::SocketAddr::new(ip, port)));
            msgs.push(Msg {
                iov_at,
                iov_n,
                dst: dsts.len() - 1,
                sock,
                inner_len,
            });
        };
        match self.table.destination(self.vni, dst, now) {
            Some(Destination::Unicast(ip)) => push(ip),
            Some(Destination::Flood(list)) if !list.is_empty() => {
                st.tx_replicas += list.len() as u64 - 1;
                list.iter().for_each(|ip| push(*ip));
            }
            _ => {
                st.tx_no_remote += 1;
                self.spec.truncate(iov_at);
                return false;
            }
        }
        true
    }

    /// Plan the segments of GSO super-frame `d`: per segment a block of
    /// VXLAN header + rebuilt headers in the arena and a payload slice of
    /// `d`. False (counted): it cannot be cut, a segment would exceed the
    /// underlay MTU, or there is nowhere to send it.
    fn segment(&mut self, d: &[u8], o: Offload, now: u32, st: &mut VtepStats) -> bool {
        let Ok(plan) = GsoPlan::from_offload(d, o) else {
            st.tx_bad_offload += 1;
            return false;
        };
        if plan.hdr_len() + o.gso_size as usize > self.max_inner {
            st.tx_oversize += 1;
            return false;
        }
        let (vni, dst, sock) = (self.vni, dst_mac(d), self.pick_socket(d));
        let mut segs = std::mem::take(&mut self.segs);
        segs.clear();
        let arena = &mut self.arena;
        let cut = plan.segment(d, CsumMode::Full, |s| -> Result<(), ()> {
            let mut h = [0u8; vxlan::HEADER_LEN + MAX_HEADERS];
            let hl = vxlan::HEADER_LEN + s.headers.len();
            h[..vxlan::HEADER_LEN].copy_from_slice(&vxlan::header(vni));
            h[vxlan::HEADER_LEN..hl].copy_from_slice(s.headers);
            arena.push(h);
            segs.push((arena.len() - 1, hl, s.payload.as_ptr(), s.payload.len()));
            Ok(())
        });
        let mut ok = matches!(cut, Ok(Ok(_)));
        if ok {
            st.tx_gso_segmented += 1;
            for &(k, hl, p, pl) in &segs {
                let at = self.spec.len();
                self.spec.push((IovAt::Arena(k), hl));
                self.spec.push((IovAt::Pool(p), pl));
                let inner = hl - vxlan::HEADER_LEN + pl;
                if !self.queue(dst, at, inner, sock, now, st) {
                    ok = false;
                    break;
                }
            }
        } else {
            st.tx_bad_offload += 1;
        }
        self.segs = segs;
        ok
    }
}
