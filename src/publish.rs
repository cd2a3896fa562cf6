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
//! [`UDP_IDLE`] is forgotten. Host port 0 takes a free port.
//!
//! Owns: the listeners of each endpoint. Never: NAT rules.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rvs_cnm::model::PortBinding;

const TCP: u8 = 6;
const UDP: u8 = 17;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A UDP client's relay lives this long after its last datagram either way.
const UDP_IDLE: Duration = Duration::from_secs(60);

/// One listening host port.
struct Listener {
    binding: PortBinding,
    target: SocketAddr,
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept.
        let wake = match self.local.ip() {
            ip if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.local.port())
            }
            _ => self.local,
        };
        match self.binding.proto {
            UDP => {
                // An empty datagram wakes the blocking receive.
                if let Ok(u) = UdpSocket::bind(SocketAddr::new(wake.ip(), 0)) {
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

impl Listener {
    fn open(b: &PortBinding, target_ip: IpAddr) -> Result<Listener, String> {
        match b.proto {
            TCP => Self::open_tcp(b, target_ip),
            UDP => Self::open_udp(b, target_ip),
            p => Err(format!(
                "host port {}: rvswitch publishes TCP and UDP ports (protocol {p} asked)",
                b.host_port
            )),
        }
    }

    fn open_udp(b: &PortBinding, target_ip: IpAddr) -> Result<Listener, String> {
        let ip = b.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let front = UdpSocket::bind(SocketAddr::new(ip, b.host_port))
            .map_err(|e| format!("publish host port {ip}:{}/udp: {e}", b.host_port))?;
        let local = front
            .local_addr()
            .map_err(|e| format!("publish host port {}/udp: {e}", b.host_port))?;
        let target = SocketAddr::new(target_ip, b.port);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("rvs-publish-{}u", local.port()))
            .spawn(move || relay_udp(front, target, s))
            .map_err(|e| format!("publish host port {}/udp: {e}", b.host_port))?;
        Ok(Listener {
            binding: b.clone(),
            target,
            local,
            stop,
            thread: Some(thread),
        })
    }

    fn open_tcp(b: &PortBinding, target_ip: IpAddr) -> Result<Listener, String> {
        let ip = b.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let listener = TcpListener::bind(SocketAddr::new(ip, b.host_port))
            .map_err(|e| format!("publish host port {ip}:{}: {e}", b.host_port))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("publish host port {}: {e}", b.host_port))?;
        let target = SocketAddr::new(target_ip, b.port);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("rvs-publish-{}", b.host_port))
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::Acquire) {
                        break;
                    }
                    if let Ok(c) = conn {
                        std::thread::spawn(move || serve(c, target));
                    }
                }
            })
            .map_err(|e| format!("publish host port {}: {e}", b.host_port))?;
        Ok(Listener {
            binding: b.clone(),
            target,
            local,
            stop,
            thread: Some(thread),
        })
    }
}

/// The published ports of every endpoint.
#[derive(Default)]
pub struct Publisher {
    by_endpoint: Mutex<HashMap<String, Vec<Listener>>>,
}

impl Publisher {
    /// Make `endpoint`'s published ports exactly `bindings`, forwarding to
    /// `target`: unchanged ones keep listening, new ones open (all or
    /// none), removed ones close.
    pub fn set(
        &self,
        endpoint: &str,
        target: Option<IpAddr>,
        bindings: &[PortBinding],
    ) -> Result<(), String> {
        let mut all = self.by_endpoint.lock().expect("publisher lock");
        let mut old = all.remove(endpoint).unwrap_or_default();
        let mut keep = Vec::new();
        let mut new = Vec::new();
        for b in bindings {
            let Some(ip) = target else {
                all.insert(endpoint.to_string(), old);
                return Err("the endpoint has no IPv4 address to publish ports to".into());
            };
            match old
                .iter()
                .position(|l| l.binding == *b && l.target.ip() == ip)
            {
                Some(i) => keep.push(old.swap_remove(i)),
                None => match Listener::open(b, ip) {
                    Ok(l) => new.push(l),
                    Err(e) => {
                        // Nothing changes: the old set stays as it was.
                        old.extend(keep);
                        drop(new);
                        all.insert(endpoint.to_string(), old);
                        return Err(e);
                    }
                },
            }
        }
        drop(old);
        keep.extend(new);
        if !keep.is_empty() {
            all.insert(endpoint.to_string(), keep);
        }
        Ok(())
    }

    /// Host ports published for `endpoint`.
    pub fn ports(&self, endpoint: &str) -> Vec<u16> {
        self.by_endpoint
            .lock()
            .expect("publisher lock")
            .get(endpoint)
            .map(|v| v.iter().map(|l| l.local.port()).collect())
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
        let mut c = TcpStream::connect(("127.0.0.1", port))?;
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
}
