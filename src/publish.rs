//! Published ports (`docker run -p HOST:CONTAINER`): a userspace TCP proxy
//! per binding, listening on the host and connecting to the container's
//! address through the switch (the host reaches container networks over
//! the uplink), as Docker's own `docker-proxy` does. Written with blocking
//! sockets and a thread per connection direction: published ports carry
//! control traffic and tests, not the data plane, and this keeps the proxy
//! free of the daemon's async runtime.
//!
//! UDP ports (`-p 53:53/udp`) are relayed the same way: one socket on the
//! host port, and per client address a socket connected to the container,
//! whose replies go back to that client; a client silent for
//! [`UDP_IDLE`] is forgotten. Host port 0 takes a free port, the same one
//! on every address the binding listens on; [`Publisher::set`] returns
//! the bindings with the ports taken, for the caller to report.
//!
//! Both families: a binding without a host address (or with `::`) listens
//! on `0.0.0.0` and on `[::]` (IPv6-only sockets, so each family has its
//! own and a `0.0.0.0` binding beside a `::` one does not clash), as
//! Docker does. Either forwards to the container's IPv4 address: the host
//! routes the containers' IPv4 subnets through the uplink, and has no IPv6
//! route to them. A host without IPv6 publishes on IPv4 alone.
//!
//! Owns: the listeners of each endpoint. Never: NAT rules.

use std::collections::HashMap;
use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rvs_cnm::model::PortBinding;
use socket2::{Domain, Socket, Type};

const TCP: u8 = 6;
const UDP: u8 = 17;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A UDP client's relay lives this long after its last datagram either way.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// Tries at a free port (host port 0) that is free on both families.
const FREE_PORT_TRIES: usize = 16;

/// One listening socket.
struct Listener {
    proto: u8,
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept (or receive) through loopback.
        let wake = match self.local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.local.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), self.local.port())
            }
            _ => self.local,
        };
        match self.proto {
            UDP => {
                // An empty datagram wakes the blocking receive.
                let any: IpAddr = match wake {
                    SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                    SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
                };
                if let Ok(u) = UdpSocket::bind(SocketAddr::new(any, 0)) {
                    let _ = u.send_to(&[], wake);
                }
            }
            _ => {
                let _ = TcpStream::connect_timeout(&wake, Duration::from_millis(200));
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn copy_then_close(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

fn serve(client: TcpStream, target: SocketAddr) {
    let Ok(upstream) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    std::thread::spawn(move || copy_then_close(c2, u2));
    copy_then_close(upstream, client);
}

/// One UDP client: the socket connected to the container for it, and when
/// it was last heard from (either way).
struct UdpClient {
    upstream: Arc<UdpSocket>,
    last: Arc<Mutex<std::time::Instant>>,
}

/// Relay datagrams between clients of `front` and `target`, until `stop`.
fn relay_udp(front: UdpSocket, target: SocketAddr, stop: Arc<AtomicBool>) {
    let front = Arc::new(front);
    let mut clients: HashMap<SocketAddr, UdpClient> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    let mut repliers: Vec<JoinHandle<()>> = Vec::new();
    let _ = front.set_read_timeout(Some(Duration::from_secs(1)));
    while !stop.load(Ordering::Acquire) {
        repliers.retain(|t| !t.is_finished());
        clients.retain(|_, c| c.last.lock().expect("udp clock").elapsed() < UDP_IDLE);
        let (n, from) = match front.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => break,
        };
        if stop.load(Ordering::Acquire) {
            break;
        }
        let client = match clients.get(&from) {
            Some(c) => c,
            None => {
                let any: IpAddr = match target {
                    SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
                };
                let Ok(up) = UdpSocket::bind(SocketAddr::new(any, 0)) else {
                    continue;
                };
                if up.connect(target).is_err() {
                    continue;
                }
                let up = Arc::new(up);
                let last = Arc::new(Mutex::new(std::time::Instant::now()));
                // Replies: back to this client, until it goes idle.
                let (u, f, l, st) = (up.clone(), front.clone(), last.clone(), stop.clone());
                let _ = up.set_read_timeout(Some(Duration::from_secs(1)));
                repliers.push(std::thread::spawn(move || {
                    let mut b = vec![0u8; 65536];
                    while !st.load(Ordering::Acquire)
                        && l.lock().expect("udp clock").elapsed() < UDP_IDLE
                    {
                        if let Ok(n) = u.recv(&mut b) {
                            *l.lock().expect("udp clock") = std::time::Instant::now();
                            let _ = f.send_to(&b[..n], from);
                        }
                    }
                }));
                clients
                    .entry(from)
                    .or_insert(UdpClient { upstream: up, last })
            }
        };
        *client.last.lock().expect("udp clock") = std::time::Instant::now();
        let _ = client.upstream.send(&buf[..n]);
    }
    // The repliers hold the host port's socket too: it is free once they
    // have seen the stop (within their 1 s receive timeout).
    drop(clients);
    for t in repliers {
        let _ = t.join();
    }
}

/// A socket on `addr` for `proto`, bound (and listening, for TCP). IPv6
/// sockets are IPv6-only: `0.0.0.0` gets a socket of its own.
fn bind_socket(proto: u8, addr: SocketAddr) -> io::Result<Socket> {
    let ty = if proto == UDP {
        Type::DGRAM
    } else {
        Type::STREAM
    };
    let s = Socket::new(Domain::for_address(addr), ty, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if proto == TCP {
        // As std's TcpListener::bind: a port in TIME_WAIT can be taken.
        s.set_reuse_address(true)?;
    }
    s.bind(&addr.into())?;
    if proto == TCP {
        s.listen(1024)?;
    }
    Ok(s)
}

/// Whether binding failed because the host has no IPv6 (disabled, or no
/// such address): the IPv6 half of a family-less binding is then left out.
fn no_ipv6(e: &io::Error) -> bool {
    const EAFNOSUPPORT: i32 = 97;
    e.kind() == io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(EAFNOSUPPORT)
}

impl Listener {
    /// Serve `sock` (made by [`bind_socket`]): forward to `target`.
    fn start(proto: u8, sock: Socket, target: SocketAddr) -> io::Result<Listener> {
        let local = sock
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an IP socket"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = match proto {
            UDP => {
                let front = UdpSocket::from(sock);
                std::thread::Builder::new()
                    .name(format!("rvs-publish-{}u", local.port()))
                    .spawn(move || relay_udp(front, target, s))?
            }
            _ => {
                let listener = TcpListener::from(sock);
                std::thread::Builder::new()
                    .name(format!("rvs-publish-{}", local.port()))
                    .spawn(move || {
                        for conn in listener.incoming() {
                            if s.load(Ordering::Acquire) {
                                break;
                            }
                            if let Ok(c) = conn {
                                std::thread::spawn(move || serve(c, target));
                            }
                        }
                    })?
            }
        };
        Ok(Listener {
            proto,
            local,
            stop,
            thread: Some(thread),
        })
    }
}

/// One binding as it was asked for, and the sockets serving it.
struct Published {
    asked: PortBinding,
    target: SocketAddr,
    /// The host port taken (the one asked, or a free one for 0).
    host_port: u16,
    /// Dropped, they stop listening.
    _sockets: Vec<Listener>,
}

impl Published {
    /// The binding as published: its host port is the one taken.
    fn binding(&self) -> PortBinding {
        PortBinding {
            host_port: self.host_port,
            ..self.asked.clone()
        }
    }

    /// Listen for `b`, forwarding to `target_ip`. `siblings`: the other
    /// bindings of the endpoint (a `::` binding beside an equal `0.0.0.0`
    /// one is IPv6 alone).
    fn open(
        b: &PortBinding,
        target_ip: IpAddr,
        siblings: &[PortBinding],
    ) -> Result<Published, String> {
        let proto = match b.proto {
            TCP => "tcp",
            UDP => "udp",
            p => {
                return Err(format!(
                    "host port {}: rvswitch publishes TCP and UDP ports (protocol {p} asked)",
                    b.host_port
                ));
            }
        };
        let v4: IpAddr = Ipv4Addr::UNSPECIFIED.into();
        let v6: IpAddr = Ipv6Addr::UNSPECIFIED.into();
        // (address, whether a host without IPv6 may leave it out)
        let addrs: Vec<(IpAddr, bool)> = match b.host_ip {
            None => vec![(v4, false), (v6, true)],
            Some(ip) if ip == v6 => {
                let twin = siblings.iter().any(|s| {
                    s.host_ip == Some(v4)
                        && (s.proto, s.host_port, s.port) == (b.proto, b.host_port, b.port)
                });
                if twin {
                    vec![(v6, false)]
                } else {
                    vec![(v4, false), (v6, false)]
                }
            }
            Some(ip) => vec![(ip, false)],
        };
        let target = SocketAddr::new(target_ip, b.port);
        let what = |ip: IpAddr, port: u16| {
            format!("publish host port {}/{proto}", SocketAddr::new(ip, port))
        };
        let tries = if b.host_port == 0 { FREE_PORT_TRIES } else { 1 };
        let mut last = String::new();
        'tries: for _ in 0..tries {
            let mut port = b.host_port;
            let mut sockets = Vec::new();
            for &(ip, optional) in &addrs {
                let sock = match bind_socket(b.proto, SocketAddr::new(ip, port)) {
                    Ok(s) => s,
                    Err(e) if optional && no_ipv6(&e) => {
                        tracing::warn!(port, error = %e, "no IPv6 on this host: publishing on IPv4 alone");
                        continue;
                    }
                    // A free port on the first family taken on the next:
                    // try another free port.
                    Err(e) if b.host_port == 0 && e.kind() == io::ErrorKind::AddrInUse => {
                        last = format!("{}: {e}", what(ip, port));
                        continue 'tries;
                    }
                    Err(e) => return Err(format!("{}: {e}", what(ip, port))),
                };
                let l = Listener::start(b.proto, sock, target)
                    .map_err(|e| format!("{}: {e}", what(ip, port)))?;
                port = l.local.port();
                sockets.push(l);
            }
            return Ok(Published {
                asked: b.clone(),
                target,
                host_port: port,
                _sockets: sockets,
            });
        }
        Err(format!("no port free on both families ({last})"))
    }
}

/// The published ports of every endpoint.
#[derive(Default)]
pub struct Publisher {
    by_endpoint: Mutex<HashMap<String, Vec<Published>>>,
}

impl Publisher {
    /// Make `endpoint`'s published ports exactly `bindings`, forwarding to
    /// `target`: unchanged ones keep listening (and their host port), new
    /// ones open (all or none), removed ones close. Returns `bindings` as
    /// published: host port 0 replaced by the port taken.
    pub fn set(
        &self,
        endpoint: &str,
        target: Option<IpAddr>,
        bindings: &[PortBinding],
    ) -> Result<Vec<PortBinding>, String> {
        let mut all = self.by_endpoint.lock().expect("publisher lock");
        let mut old = all.remove(endpoint).unwrap_or_default();
        // In the order of `bindings`; whether each was already listening.
        let mut now: Vec<(Published, bool)> = Vec::new();
        for b in bindings {
            let Some(ip) = target else {
                all.insert(endpoint.to_string(), old);
                return Err("the endpoint has no IPv4 address to publish ports to".into());
            };
            match old
                .iter()
                .position(|p| p.asked == *b && p.target.ip() == ip)
            {
                Some(i) => now.push((old.swap_remove(i), true)),
                None => match Published::open(b, ip, bindings) {
                    Ok(p) => now.push((p, false)),
                    Err(e) => {
                        // Nothing changes: the old set stays as it was;
                        // the new ones close as they drop.
                        old.extend(now.into_iter().filter(|(_, kept)| *kept).map(|(p, _)| p));
                        all.insert(endpoint.to_string(), old);
                        return Err(e);
                    }
                },
            }
        }
        drop(old);
        let now: Vec<Published> = now.into_iter().map(|(p, _)| p).collect();
        let out = now.iter().map(Published::binding).collect();
        if !now.is_empty() {
            all.insert(endpoint.to_string(), now);
        }
        Ok(out)
    }

    /// Host ports published for `endpoint` (the ports taken).
    pub fn ports(&self, endpoint: &str) -> Vec<u16> {
        self.by_endpoint
            .lock()
            .expect("publisher lock")
            .get(endpoint)
            .map(|v| v.iter().map(|p| p.host_port).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn binding(host_port: u16, port: u16) -> PortBinding {
        PortBinding {
            proto: TCP,
            host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            host_port,
            port,
        }
    }

    /// A one-shot echo server on loopback; its port.
    fn echo() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut c = c;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn round_trip(port: u16) -> io::Result<Vec<u8>> {
        round_trip_to(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    fn round_trip_to(ip: IpAddr, port: u16) -> io::Result<Vec<u8>> {
        let mut c = TcpStream::connect((ip, port))?;
        c.set_read_timeout(Some(Duration::from_secs(2)))?;
        c.write_all(b"hello")?;
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf)?;
        Ok(buf.to_vec())
    }

    #[test]
    fn published_ports_forward_and_unpublish_cleanly() {
        let p = Publisher::default();
        let (up, host) = (echo(), free_port());
        let lo = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        p.set("e1", lo, &[binding(host, up)]).unwrap();
        assert_eq!(round_trip(host).unwrap(), b"hello");
        // Setting the same again keeps the listener (no rebind error).
        p.set("e1", lo, &[binding(host, up)]).unwrap();
        assert_eq!(p.ports("e1"), [host]);
        // A port in use is refused and changes nothing.
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let bp = busy.local_addr().unwrap().port();
        let e = p
            .set("e1", lo, &[binding(host, up), binding(bp, up)])
            .unwrap_err();
        assert!(e.contains(&format!("{bp}")), "{e}");
        assert_eq!(p.ports("e1"), [host]);
        assert_eq!(round_trip(host).unwrap(), b"hello");
        // SCTP is refused with the reason.
        let mut sctp = binding(free_port(), up);
        sctp.proto = 132;
        assert!(
            p.set("e2", lo, &[sctp])
                .unwrap_err()
                .contains("protocol 132")
        );
        // Unpublish: the host port is free again.
        p.set("e1", lo, &[]).unwrap();
        assert!(p.ports("e1").is_empty());
        assert!(round_trip(host).is_err());
        TcpListener::bind(("127.0.0.1", host)).expect("the port was released");
    }

    /// A UDP echo server on loopback; its port.
    fn udp_echo() -> u16 {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = u.recv_from(&mut buf) {
                let _ = u.send_to(&buf[..n], from);
            }
        });
        port
    }

    /// UDP (`-p H:C/udp`) and a host port of 0 (a free one is taken): two
    /// clients each get their own answers back; unpublishing frees it.
    #[test]
    fn udp_ports_and_host_port_0_are_published() {
        let p = Publisher::default();
        let lo = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut b = binding(0, udp_echo());
        b.proto = UDP;
        p.set("u1", lo, std::slice::from_ref(&b)).unwrap();
        let host = p.ports("u1")[0];
        assert_ne!(host, 0, "a free port was taken");
        let clients: Vec<UdpSocket> = (0..2)
            .map(|_| {
                let c = UdpSocket::bind("127.0.0.1:0").unwrap();
                c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                c.connect(("127.0.0.1", host)).unwrap();
                c
            })
            .collect();
        for round in 0..3u8 {
            for (i, c) in clients.iter().enumerate() {
                let msg = [b'c', i as u8, round];
                c.send(&msg).unwrap();
                let mut got = [0u8; 16];
                let n = c.recv(&mut got).expect("the echo came back");
                assert_eq!(&got[..n], msg, "client {i} round {round}");
            }
        }
        // TCP on host port 0 too.
        let tcp = binding(0, echo());
        p.set("t1", lo, &[tcp]).unwrap();
        assert_eq!(round_trip(p.ports("t1")[0]).unwrap(), b"hello");
        p.set("u1", lo, &[]).unwrap();
        p.set("t1", lo, &[]).unwrap();
        UdpSocket::bind(("127.0.0.1", host)).expect("the UDP port was released");
    }

    /// A binding without a host address listens on both families, on the
    /// same port (also when a free one is taken), forwarding to the
    /// target's IPv4 address; `::` beside an equal `0.0.0.0` binding takes
    /// IPv6 alone, so both are published.
    #[test]
    fn bindings_without_an_address_listen_on_ipv4_and_ipv6() {
        let p = Publisher::default();
        let lo = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut any = binding(0, echo());
        any.host_ip = None;
        let got = p.set("d1", lo, std::slice::from_ref(&any)).unwrap();
        let host = got[0].host_port;
        assert_ne!(host, 0, "the port taken is reported");
        assert_eq!(p.ports("d1"), [host]);
        assert_eq!(round_trip_to(v4, host).unwrap(), b"hello");
        assert_eq!(round_trip_to(v6, host).unwrap(), b"hello");
        // Publishing the same again keeps the port taken.
        assert_eq!(p.set("d1", lo, std::slice::from_ref(&any)).unwrap(), got);

        // UDP on [::1] too.
        let mut u = binding(0, udp_echo());
        u.proto = UDP;
        u.host_ip = None;
        let uh = p.set("d2", lo, &[u]).unwrap()[0].host_port;
        let c = UdpSocket::bind("[::1]:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.connect((v6, uh)).unwrap();
        c.send(b"six").unwrap();
        let mut buf = [0u8; 8];
        let n = c.recv(&mut buf).expect("the echo came back over IPv6");
        assert_eq!(&buf[..n], b"six");

        // An engine that splits a binding sends 0.0.0.0 and :: alike.
        let port = free_port();
        let up = echo();
        let mut a = binding(port, up);
        a.host_ip = Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut b = binding(port, up);
        b.host_ip = Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        p.set("d3", lo, &[a, b.clone()]).unwrap();
        assert_eq!(round_trip_to(v4, port).unwrap(), b"hello");
        assert_eq!(round_trip_to(v6, port).unwrap(), b"hello");
        // `::` alone is both families.
        p.set("d3", lo, &[]).unwrap();
        p.set("d4", lo, &[b]).unwrap();
        assert_eq!(round_trip_to(v4, port).unwrap(), b"hello");
        assert_eq!(round_trip_to(v6, port).unwrap(), b"hello");
        // An IPv4 address is IPv4 alone.
        let mut only4 = binding(0, up);
        only4.host_ip = Some(v4);
        let h4 = p.set("d5", lo, &[only4]).unwrap()[0].host_port;
        assert!(round_trip_to(v6, h4).is_err());

        for e in ["d1", "d2", "d4", "d5"] {
            p.set(e, lo, &[]).unwrap();
        }
        TcpListener::bind(("::1", host)).expect("the IPv6 port was released");
        TcpListener::bind(("127.0.0.1", host)).expect("the IPv4 port was released");
    }
}
