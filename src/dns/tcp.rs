//! DNS over TCP at the gateways (RFC 7766): the switch punts TCP segments
//! to port 53 of a gateway address as whole IP packets; each network (bridge
//! domain) gets a `smoltcp` interface holding the gateway addresses queries
//! came to, fed those packets as its device's input, whose output goes back
//! to the worker as IP packets from the gateway (`IpReply`).
//!
//! smoltcp runs the TCP state machine (handshake, retransmission, windows,
//! FIN/RST, refusing a SYN with a reset when no socket listens); this module
//! only frames messages (`rvs_dns::TcpFramer`) and bounds what a client may
//! hold: [`MAX_CONNECTIONS`] per network (a SYN beyond them is reset and
//! counted), [`IDLE`] without a query closes a connection, at most
//! [`MAX_IN_FLIGHT`] forwarded queries per connection (reading stops until
//! they are answered), and a length prefix no DNS message has closes the
//! connection with a reset (counted as malformed).
//!
//! Owns: each network's TCP interface and connections, the client MACs of
//! the segments. Never: blocking a worker (the punt queue is bounded), DNS
//! parsing (`rvs-dns`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rvs_dns::{TcpFramer, Transport};
use rvs_switch::router::{IpReply, Punted};
use rvs_switch::{DomainId, MacAddr};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use tokio::sync::mpsc;

use super::{Dns, Step};
use crate::daemon::control::Control;

/// TCP connections one network may hold at once (its listening sockets).
pub const MAX_CONNECTIONS: usize = 16;
/// A connection without a query or an answer for this long is closed (RFC
/// 7766 asks servers to close idle connections after seconds).
pub const IDLE: Duration = Duration::from_secs(10);
/// Forwarded queries one connection may wait on; reading stops beyond.
pub const MAX_IN_FLIGHT: usize = 8;
/// Gateway addresses one network answers TCP on (smoltcp's interface
/// holds a fixed number, `iface-max-addr-count-8`).
pub const MAX_SERVER_ADDRS: usize = 8;
/// Receive window: queries are small.
const RX_BUF: usize = 4096;
/// Send buffer: an answer waits in the connection's queue for room here.
const TX_BUF: usize = 16384;
/// The IP MTU of the interface: segments fit any gateway MTU from the
/// IPv6 minimum up.
const MTU: usize = 1280;
/// A network's interface is dropped after this long without a connection.
const FORGET: Duration = Duration::from_secs(60);
/// Punted segments taken in one turn before the sockets are served.
const BATCH: usize = 64;

/// The device of one network's interface: the punted packets in, the
/// packets to send out.
#[derive(Default)]
struct Punts {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut Vec<Vec<u8>>);

impl smoltcp::phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl smoltcp::phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut v = vec![0u8; len];
        let r = f(&mut v);
        self.0.push(v);
        r
    }
}

impl Device for Punts {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let p = self.rx.pop_front()?;
        Some((Rx(p), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = MTU;
        c
    }
}

/// One connection's state beside its socket.
#[derive(Default)]
struct Conn {
    /// Counted as accepted (reset when the socket listens again).
    open: bool,
    framer: TcpFramer,
    /// Framed answers waiting for room in the socket.
    out: VecDeque<u8>,
    in_flight: usize,
    last: Option<Instant>,
    /// Tells a late forwarded answer from the answer to this connection.
    generation: u64,
}

struct Net {
    domain: DomainId,
    /// The VLAN its queries come in (the gateway's or a DNS listener's).
    vid: u16,
    iface: Interface,
    dev: Punts,
    sockets: SocketSet<'static>,
    conns: Vec<(SocketHandle, Conn)>,
    /// Each client address's MAC, from its last segment.
    macs: HashMap<IpAddr, MacAddr>,
    last_used: Instant,
}

/// A forwarded query's answer on its way back to its connection.
pub(super) struct Late {
    net: rvs_dns::NetId,
    conn: usize,
    generation: u64,
    bytes: Vec<u8>,
}

fn now_of(start: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(start.elapsed().as_micros() as i64)
}

fn listener() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; RX_BUF]),
        tcp::SocketBuffer::new(vec![0; TX_BUF]),
    );
    // smoltcp's timeout drops a connection silently when the peer sends
    // nothing for that long: a backstop well past IDLE, which closes
    // idle connections first (with a FIN). Answers go out at once.
    s.set_timeout(Some(smoltcp::time::Duration::from_secs(3 * IDLE.as_secs())));
    s.set_nagle_enabled(false);
    let _ = s.listen(super::DNS_PORT);
    s
}

impl Net {
    fn new(domain: DomainId, vid: u16, start: Instant) -> Net {
        let mut dev = Punts::default();
        let mut cfg = Config::new(HardwareAddress::Ip);
        cfg.random_seed = u64::from(rvs_dns::random_id()) << 16 | u64::from(rvs_dns::random_id());
        let iface = Interface::new(cfg, &mut dev, now_of(start));
        let mut sockets = SocketSet::new(Vec::new());
        let conns = (0..MAX_CONNECTIONS)
            .map(|_| (sockets.add(listener()), Conn::default()))
            .collect();
        Net {
            domain,
            vid,
            iface,
            dev,
            sockets,
            conns,
            macs: HashMap::new(),
            last_used: Instant::now(),
        }
    }

    /// Make `server` one of the interface's addresses (a /32 or /128 with
    /// a default route of its family through it, so any client address is
    /// reachable); false when the interface holds [`MAX_SERVER_ADDRS`] already.
    fn hold(&mut self, server: IpAddr) -> bool {
        if self.iface.has_ip_addr(IpAddress::from(server)) {
            return true;
        }
        if self.iface.ip_addrs().len() >= MAX_SERVER_ADDRS {
            return false;
        }
        let mut added = false;
        self.iface.update_ip_addrs(|a| {
            let cidr = match server {
                IpAddr::V4(_) => IpCidr::new(server.into(), 32),
                IpAddr::V6(_) => IpCidr::new(server.into(), 128),
            };
            added = a.push(cidr).is_ok();
        });
        if !added {
            return false;
        }
        let routes = self.iface.routes_mut();
        let _ = match server {
            IpAddr::V4(a) => routes.add_default_ipv4_route(a).map(|_| ()),
            IpAddr::V6(a) => routes.add_default_ipv6_route(a).map(|_| ()),
        };
        true
    }

    fn listening(&mut self) -> bool {
        self.conns
            .iter()
            .any(|(h, _)| self.sockets.get::<tcp::Socket>(*h).state() == tcp::State::Listen)
    }

    fn idle(&mut self) -> bool {
        self.conns.iter().all(|(h, c)| {
            c.in_flight == 0 && self.sockets.get::<tcp::Socket>(*h).state() == tcp::State::Listen
        })
    }
}

/// Whether the IP packet `ip` carries a TCP SYN without ACK (a new
/// connection).
fn is_syn(ip: &[u8]) -> bool {
    let off = match ip.first().map(|b| b >> 4) {
        Some(4) => usize::from(ip[0] & 0x0f) * 4,
        Some(6) => 40,
        _ => return false,
    };
    ip.get(off + 13).is_some_and(|f| f & 0x12 == 0x02)
}

/// The destination address of the IP packet `ip`.
fn dst_of(ip: &[u8]) -> Option<IpAddr> {
    match ip.first()? >> 4 {
        4 => {
            let b: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        6 => {
            let b: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        _ => None,
    }
}

/// Run DNS over TCP: punted segments from `rx`, until the sender is gone.
pub(super) async fn serve(control: Arc<Control>, dns: Arc<Dns>, mut rx: mpsc::Receiver<Punted>) {
    let start = Instant::now();
    let mut nets: HashMap<rvs_dns::NetId, Net> = HashMap::new();
    let (late_tx, mut late_rx) = mpsc::channel::<Late>(MAX_CONNECTIONS * MAX_IN_FLIGHT);
    loop {
        let wait = nets
            .values_mut()
            .filter_map(|n| n.iface.poll_delay(now_of(start), &n.sockets))
            .map(|d| Duration::from_micros(d.total_micros()))
            .fold(Duration::from_secs(1), Duration::min);
        tokio::select! {
            p = rx.recv() => {
                let Some(p) = p else { return };
                take(&dns, &mut nets, p, start);
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(p) => take(&dns, &mut nets, p, start),
                        Err(_) => break,
                    }
                }
            }
            Some(l) = late_rx.recv() => {
                if let Some((_, c)) = nets.get_mut(&l.net).and_then(|n| n.conns.get_mut(l.conn))
                    && c.generation == l.generation
                {
                    c.in_flight -= 1;
                    queue(c, &l.bytes);
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
        for net in nets.values_mut() {
            turn(&control, &dns, net, start, &late_tx);
        }
        nets.retain(|_, n| !(n.idle() && n.last_used.elapsed() > FORGET));
    }
}

/// Hand a punted segment to its network's interface.
fn take(dns: &Dns, nets: &mut HashMap<rvs_dns::NetId, Net>, p: Punted, start: Instant) {
    let c = &dns.counters;
    let net = nets
        .entry(rvs_dns::net_id(p.domain.0, p.vid))
        .or_insert_with(|| Net::new(p.domain, p.vid, start));
    net.last_used = Instant::now();
    if !net.hold(p.server) {
        c.tcp_dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if is_syn(&p.payload) && !net.listening() {
        // smoltcp answers it with a reset: no socket takes it.
        c.tcp_refused.fetch_add(1, Ordering::Relaxed);
    }
    if net.macs.len() >= 4 * MAX_CONNECTIONS && !net.macs.contains_key(&p.client.ip()) {
        let live: Vec<IpAddr> = net
            .conns
            .iter()
            .filter_map(|(h, _)| net.sockets.get::<tcp::Socket>(*h).remote_endpoint())
            .map(|e| e.addr.into())
            .collect();
        net.macs.retain(|a, _| live.contains(a));
    }
    net.macs.insert(p.client.ip(), p.client_mac);
    net.dev.rx.push_back(p.payload);
}

/// Frame `answer` onto `c`'s queue.
fn queue(c: &mut Conn, answer: &[u8]) {
    if let Some(f) = rvs_dns::tcp_frame(answer) {
        c.out.extend(f);
        c.last = Some(Instant::now());
    }
}

/// Run `net`'s interface, then its connections, then send what it wrote.
fn turn(
    control: &Arc<Control>,
    dns: &Arc<Dns>,
    net: &mut Net,
    start: Instant,
    late: &mpsc::Sender<Late>,
) {
    net.iface
        .poll(now_of(start), &mut net.dev, &mut net.sockets);
    let (domain, vid) = (net.domain, net.vid);
    let id = rvs_dns::net_id(domain.0, vid);
    let mut served = false;
    for (i, (h, c)) in net.conns.iter_mut().enumerate() {
        let s = net.sockets.get_mut::<tcp::Socket>(*h);
        served |= serve_conn(dns, id, i, s, c, late);
    }
    if served {
        net.iface
            .poll(now_of(start), &mut net.dev, &mut net.sockets);
    }
    for packet in net.dev.tx.drain(..) {
        let Some(mac) = dst_of(&packet).and_then(|d| net.macs.get(&d)) else {
            dns.counters.tcp_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        control.post_dns_ip_reply(IpReply {
            domain,
            vid,
            client_mac: *mac,
            packet,
        });
    }
}

/// Read, answer and write one connection; true when it changed the
/// socket (the interface then runs again to send).
fn serve_conn(
    dns: &Arc<Dns>,
    net: rvs_dns::NetId,
    index: usize,
    s: &mut tcp::Socket<'static>,
    c: &mut Conn,
    late: &mpsc::Sender<Late>,
) -> bool {
    let counters = &dns.counters;
    match s.state() {
        tcp::State::Listen | tcp::State::SynReceived => return false,
        tcp::State::Closed | tcp::State::TimeWait => {
            // Done (or closed by us and waiting out TIME-WAIT, which a
            // server need not): listen again as a fresh connection.
            s.abort();
            let generation = c.generation + 1;
            *c = Conn {
                generation,
                ..Conn::default()
            };
            let _ = s.listen(super::DNS_PORT);
            return true;
        }
        _ => {}
    }
    let now = Instant::now();
    if !c.open {
        c.open = true;
        c.last = Some(now);
        counters.tcp_connections.fetch_add(1, Ordering::Relaxed);
    }
    let mut changed = false;
    while c.in_flight < MAX_IN_FLIGHT && s.can_recv() {
        let Ok(n) = s.recv(|b| {
            let n = c.framer.push(b);
            (n, n)
        }) else {
            break;
        };
        changed |= n > 0;
        match c.framer.message() {
            Some(Ok(m)) => {
                c.last = Some(now);
                counters.tcp_queries.fetch_add(1, Ordering::Relaxed);
                match super::step(dns, net, &m, Transport::Tcp) {
                    Step::Now(bytes) => queue(c, &bytes),
                    Step::Forward(pending) => {
                        c.in_flight += 1;
                        let (dns, late) = (dns.clone(), late.clone());
                        let (conn, generation) = (index, c.generation);
                        tokio::spawn(async move {
                            let bytes = super::forward_answer(&dns, &pending).await;
                            let _ = late
                                .send(Late {
                                    net,
                                    conn,
                                    generation,
                                    bytes,
                                })
                                .await;
                        });
                    }
                    Step::Dropped => {}
                }
            }
            Some(Err(e)) => {
                counters.tcp_malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "DNS over TCP: not a DNS stream; connection reset");
                s.abort();
                return true;
            }
            None if n == 0 => break,
            None => {}
        }
    }
    while !c.out.is_empty() && s.can_send() {
        let (a, _) = c.out.as_slices();
        match s.send_slice(a) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                c.out.drain(..n);
                changed = true;
            }
        }
    }
    let quiet = c.in_flight == 0 && c.out.is_empty() && s.send_queue() == 0;
    if quiet && !s.may_recv() && s.state() == tcp::State::CloseWait {
        // The client is done and has every answer.
        s.close();
        return true;
    }
    let idle = c.last.map_or(Duration::ZERO, |l| now.duration_since(l));
    if quiet && idle > IDLE {
        match s.state() {
            tcp::State::Established | tcp::State::CloseWait => {
                counters.tcp_idle_closed.fetch_add(1, Ordering::Relaxed);
                s.close();
                return true;
            }
            // Closed by us, and the client never finishes: given up.
            _ if idle > 2 * IDLE => {
                s.abort();
                return true;
            }
            _ => {}
        }
    }
    changed
}
