//! rvs-rr: request/response latency over one connection, for `bench/e2e` and
//! `bench/docker-tcp`.
//!
//! `rvs-rr server --listen ADDR:PORT` echoes every request back (TCP: each
//! connection in its own thread; UDP: each datagram to its sender).
//! `rvs-rr client --connect ADDR:PORT --count N` sends N requests of `--size`
//! bytes (1 by default) one at a time over one TCP connection with
//! `TCP_NODELAY` (or one UDP socket with `--udp`), each waiting for its
//! answer, and prints the round-trip percentiles in microseconds: a human
//! line and a `rr proto=… p50_us=… p99_us=…` line the scripts parse.
//!
//! Only the standard library's sockets: the harnesses run it from the host
//! inside a container's network namespace (`nsenter -t PID -n rvs-rr …`),
//! where only the network namespace changes and the host's files, this
//! binary included, stay visible.
//!
//! Owns: its sockets. Never: sends anywhere but the address it is given.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "request/response round-trip latency (TCP_NODELAY or UDP), percentiles in µs")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Echo requests back until killed (or, with --once, until the first
    /// TCP client goes away).
    Server {
        #[arg(long)]
        listen: SocketAddr,
        /// UDP instead of TCP.
        #[arg(long)]
        udp: bool,
        /// Request size in bytes; must match the client's.
        #[arg(long, default_value_t = 1)]
        size: usize,
        /// TCP: serve one connection, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Measure: `--count` round trips after `--warmup` unmeasured ones.
    Client {
        #[arg(long)]
        connect: SocketAddr,
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        #[arg(long, default_value_t = 100)]
        warmup: usize,
        #[arg(long, default_value_t = 1)]
        size: usize,
        /// UDP instead of TCP.
        #[arg(long)]
        udp: bool,
        /// Seconds to keep retrying the connection (the server may still be
        /// starting); UDP: how long one answer may take before it counts as lost.
        #[arg(long, default_value_t = 5.0)]
        wait_s: f64,
        /// Label echoed in the `rr` line (e.g. the case or network).
        #[arg(long, default_value = "-")]
        label: String,
    },
}

fn check_size(size: usize) -> Result<()> {
    if !(1..=65_000).contains(&size) {
        bail!("--size {size} outside 1..=65000");
    }
    Ok(())
}

fn serve_tcp(listen: SocketAddr, size: usize, once: bool) -> Result<()> {
    let l = TcpListener::bind(listen).with_context(|| format!("listen on {listen}"))?;
    println!("ready tcp {}", l.local_addr()?);
    for conn in l.incoming() {
        let s = conn.context("accept")?;
        s.set_nodelay(true)?;
        if once {
            return echo(s, size);
        }
        std::thread::spawn(move || echo(s, size));
    }
    Ok(())
}

/// Echo `size`-byte requests until the peer closes.
fn echo(mut s: TcpStream, size: usize) -> Result<()> {
    let mut buf = vec![0u8; size];
    loop {
        match s.read_exact(&mut buf) {
            Ok(()) => s.write_all(&buf)?,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn serve_udp(listen: SocketAddr) -> Result<()> {
    let s = UdpSocket::bind(listen).with_context(|| format!("bind {listen}"))?;
    println!("ready udp {}", s.local_addr()?);
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = s.recv_from(&mut buf)?;
        s.send_to(&buf[..n], from)?;
    }
}

fn connect_retrying(to: SocketAddr, wait: Duration) -> Result<TcpStream> {
    let t0 = Instant::now();
    loop {
        match TcpStream::connect_timeout(&to, Duration::from_secs(1)) {
            Ok(s) => return Ok(s),
            Err(_) if t0.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).with_context(|| format!("connect to {to}")),
        }
    }
}

/// Round trips in nanoseconds, after `warmup` unmeasured ones.
fn client_tcp(
    to: SocketAddr,
    count: usize,
    warmup: usize,
    size: usize,
    wait: Duration,
) -> Result<Vec<u64>> {
    let mut s = connect_retrying(to, wait)?;
    s.set_nodelay(true)?;
    let req = vec![b'r'; size];
    let mut resp = vec![0u8; size];
    let mut rtts = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let t = Instant::now();
        s.write_all(&req)?;
        s.read_exact(&mut resp).context("read the answer")?;
        if i >= warmup {
            rtts.push(t.elapsed().as_nanos() as u64);
        }
    }
    Ok(rtts)
}

/// Round trips in nanoseconds, and how many requests got no answer within
/// `wait`.
fn client_udp(
    to: SocketAddr,
    count: usize,
    warmup: usize,
    size: usize,
    wait: Duration,
) -> Result<(Vec<u64>, usize)> {
    let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse()?;
    let s = UdpSocket::bind(bind)?;
    s.connect(to)?;
    s.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
    let mut resp = vec![0u8; size + 8];
    let mut rtts = Vec::with_capacity(count);
    let mut lost = 0;
    for i in 0..(warmup + count) as u64 {
        // Each request carries its sequence number, so a late answer to an
        // earlier (lost) request is not taken for this one.
        let mut req = vec![b'r'; size.max(8)];
        req[..8].copy_from_slice(&i.to_be_bytes());
        let t = Instant::now();
        s.send(&req)?;
        let answered = loop {
            match s.recv(&mut resp) {
                Ok(n) if n >= 8 && resp[..8] == req[..8] => break true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break false;
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused && i < warmup as u64 => {
                    // Server not up yet: warm-up requests may be refused.
                    std::thread::sleep(Duration::from_millis(20));
                    break false;
                }
                Err(e) => return Err(e).context("receive the answer"),
            }
        };
        if i >= warmup as u64 {
            if answered {
                rtts.push(t.elapsed().as_nanos() as u64);
            } else {
                lost += 1;
            }
        }
    }
    Ok((rtts, lost))
}

/// Nearest-rank percentile (`p` in 0..=100) of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Summary {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

fn summarize(mut ns: Vec<u64>) -> Summary {
    ns.sort_unstable();
    let us = |v: u64| v as f64 / 1e3;
    let mean = if ns.is_empty() {
        0.0
    } else {
        ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1e3
    };
    Summary {
        p50: us(percentile(&ns, 50.0)),
        p90: us(percentile(&ns, 90.0)),
        p99: us(percentile(&ns, 99.0)),
        max: us(ns.last().copied().unwrap_or(0)),
        mean,
    }
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Server {
            listen,
            udp,
            size,
            once,
        } => {
            check_size(size)?;
            if udp {
                serve_udp(listen)
            } else {
                serve_tcp(listen, size, once)
            }
        }
        Cmd::Client {
            connect,
            count,
            warmup,
            size,
            udp,
            wait_s,
            label,
        } => {
            check_size(size)?;
            if count == 0 {
                bail!("--count must be at least 1");
            }
            let wait = Duration::from_secs_f64(wait_s);
            let (rtts, lost) = if udp {
                client_udp(connect, count, warmup, size, wait)?
            } else {
                (client_tcp(connect, count, warmup, size, wait)?, 0)
            };
            if rtts.is_empty() {
                bail!("no answers from {connect} ({lost} of {count} requests lost)");
            }
            let n = rtts.len();
            let s = summarize(rtts);
            let proto = if udp { "udp" } else { "tcp" };
            println!(
                "{label}: {proto} {size}-byte round trips to {connect}: p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({n} measured, {lost} lost)",
                s.p50, s.p90, s.p99, s.max
            );
            println!(
                "rr label={label} proto={proto} size={size} count={n} lost={lost} p50_us={:.1} p90_us={:.1} p99_us={:.1} max_us={:.1} mean_us={:.1}",
                s.p50, s.p90, s.p99, s.max, s.mean
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn summary_in_microseconds() {
        let s = summarize(vec![3_000, 1_000, 2_000, 4_000]);
        assert_eq!((s.p50, s.p99, s.max, s.mean), (2.0, 4.0, 4.0, 2.5));
    }

    /// A real round trip over loopback: the server echoes what the client
    /// sends, and the client counts every answer.
    #[test]
    fn tcp_and_udp_round_trips_on_loopback() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            echo(s, 3).unwrap();
        });
        let rtts = client_tcp(addr, 50, 5, 3, Duration::from_secs(2)).unwrap();
        assert_eq!(rtts.len(), 50);
        assert!(rtts.iter().all(|&ns| ns > 0));

        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let uaddr = u.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                let (n, from) = u.recv_from(&mut buf).unwrap();
                u.send_to(&buf[..n], from).unwrap();
            }
        });
        let (rtts, lost) = client_udp(uaddr, 40, 2, 1, Duration::from_secs(2)).unwrap();
        assert_eq!((rtts.len(), lost), (40, 0));
    }
}
