//! Published ports (`docker run -p HOST:CONTAINER`): a userspace TCP proxy
//! per binding, listening on the host and connecting to the container's
//! address through the switch (the host reaches container networks over
//! the uplink), as Docker's own `docker-proxy` does. Written with blocking
//! sockets and a thread per connection direction: published ports carry
//! control traffic and tests, not the data plane, and this keeps the proxy
//! free of the daemon's async runtime.
//!
//! Owns: the listeners of each endpoint. Never: NAT rules.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rvs_cnm::model::PortBinding;

const TCP: u8 = 6;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
        let _ = TcpStream::connect_timeout(&wake, Duration::from_millis(200));
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

impl Listener {
    fn open(b: &PortBinding, target_ip: IpAddr) -> Result<Listener, String> {
        if b.proto != TCP {
            return Err(format!(
                "host port {}: only TCP ports are published by rvswitch (protocol {} asked)",
                b.host_port, b.proto
            ));
        }
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
        // UDP is refused with the reason.
        let mut udp = binding(free_port(), up);
        udp.proto = 17;
        assert!(p.set("e2", lo, &[udp]).unwrap_err().contains("only TCP"));
        // Unpublish: the host port is free again.
        p.set("e1", lo, &[]).unwrap();
        assert!(p.ports("e1").is_empty());
        assert!(round_trip(host).is_err());
        TcpListener::bind(("127.0.0.1", host)).expect("the port was released");
    }
}
