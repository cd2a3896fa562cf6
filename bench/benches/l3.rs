//! Packet-rate benches of the router's forward path: 64-byte frames (60
//! bytes + FCS), batches of 32, pre-resolved neighbors, destinations drawn
//! at random inside the installed routes. Throughput is in elements
//! (frames): read Melem/s as Mpps. IDs are stable:
//! `l3/ipv4_forward_1k_routes`, `l3/ipv4_forward_100k_routes`,
//! `l3/ipv6_forward_1k_routes`.
//!
//! Only `Router::process` is timed. Before each batch its frames are reset
//! untimed (gateway MAC, TTL, a fresh destination, checksum), as a receive
//! path would hand them over; frames cycle through 2048 pool frames like an
//! rx ring, and destinations through 1M pre-drawn addresses so the route
//! table is not all in cache.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rvs_switch::router::{Gateway, L3Out, NextHop, Router, RouterConfig};
use rvs_switch::wire::ipv4::checksum;
use rvs_switch::{Batch, DomainId, MacAddr, PacketPool, PktBuf};

const BURST: usize = 32;
/// Frames in flight: 64 batches' worth, cycled like an rx ring.
const ROUND: usize = 64;
const FRAME_LEN: usize = 60;
const DSTS: usize = 1 << 20;
const IN: DomainId = DomainId(1);
const OUT: DomainId = DomainId(2);
const GW_IN: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const GW_OUT: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
const NEXT_HOPS: u32 = 16;

/// splitmix64: seeded, so every run benches the same tables.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn router(pool: &mut PacketPool) -> Router {
    let mut r = Router::new(RouterConfig::default(), 0);
    r.add_gateway(
        Gateway::new(IN, GW_IN)
            .with_ipv4(Ipv4Addr::new(100, 64, 0, 1), 16)
            .with_ipv6("fd00:1::1".parse().unwrap(), 64),
    )
    .unwrap();
    r.add_gateway(
        Gateway::new(OUT, GW_OUT)
            .with_ipv4(Ipv4Addr::new(100, 65, 0, 1), 16)
            .with_ipv6("fd00:2::1".parse().unwrap(), 64),
    )
    .unwrap();
    let mut out = L3Out::default();
    for i in 0..NEXT_HOPS {
        let mac = MacAddr::local(0x1000 + i as u64);
        r.add_static_neighbor(pool, OUT, IpAddr::V4(nh4(i)), mac, &mut out);
        r.add_static_neighbor(pool, OUT, IpAddr::V6(nh6(i)), mac, &mut out);
    }
    r
}

fn nh4(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x6441_0000 + 2 + i)
}
fn nh6(i: u32) -> Ipv6Addr {
    Ipv6Addr::from((0xfd00_0002u128 << 96) + 2 + i as u128)
}

/// `n` random IPv4 routes (70% /24, 25% /16../23, 5% /25../32) and 1M
/// destinations inside them.
fn routes4(r: &mut Router, n: usize, rng: &mut Rng) -> Vec<u32> {
    let mut installed = Vec::with_capacity(n);
    while installed.len() < n {
        let x = rng.next();
        let len = match x % 100 {
            0..70 => 24,
            70..95 => 16 + (x >> 8) as u8 % 8,
            _ => 25 + (x >> 8) as u8 % 8,
        };
        // Unicast space 1.0.0.0 .. 223.255.255.255 minus 100.64/10.
        let a = (x >> 32) as u32 % 0xdf00_0000 + 0x0100_0000;
        if a >> 22 == 0x191 {
            continue;
        }
        let a = a & (u32::MAX << (32 - len));
        let via = nh4((x >> 16) as u32 % NEXT_HOPS);
        let nh = NextHop::Via {
            gateway: IpAddr::V4(via),
            domain: OUT,
        };
        if r.add_route(0, IpAddr::V4(a.into()), len, nh).is_ok() {
            installed.push((a, len));
        }
    }
    (0..DSTS)
        .map(|_| {
            let x = rng.next();
            let (a, len) = installed[(x as usize) % installed.len()];
            a | ((x >> 32) as u32 & !(u32::MAX << (32 - len)))
        })
        .collect()
}

/// `n` random IPv6 routes (/32../64, mostly /48 and /56 and /64) in
/// 2000::/3 and 1M destinations inside them.
fn routes6(r: &mut Router, n: usize, rng: &mut Rng) -> Vec<u128> {
    let mut installed = Vec::with_capacity(n);
    while installed.len() < n {
        let x = rng.next();
        let len = [32u8, 40, 48, 48, 56, 56, 64, 64][(x % 8) as usize];
        let hi = ((rng.next() as u128) << 64) | rng.next() as u128;
        let a = (0x2u128 << 124) | (hi >> 3);
        let a = a & (u128::MAX << (128 - len as u32));
        let nh = NextHop::Via {
            gateway: IpAddr::V6(nh6((x >> 16) as u32 % NEXT_HOPS)),
            domain: OUT,
        };
        if r.add_route(0, IpAddr::V6(a.into()), len, nh).is_ok() {
            installed.push((a, len));
        }
    }
    (0..DSTS)
        .map(|_| {
            let (a, len) = installed[(rng.next() as usize) % installed.len()];
            let host = ((rng.next() as u128) << 64) | rng.next() as u128;
            a | (host & !(u128::MAX << (128 - len as u32)))
        })
        .collect()
}

/// A 60-byte IPv4/UDP frame to the ingress gateway.
fn frame4() -> Vec<u8> {
    let mut f = vec![0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&GW_IN.0);
    f[6..12].copy_from_slice(&MacAddr::local(0xa).0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..34].copy_from_slice(&[
        0x45, 0, 0, 46, 0, 1, 0x40, 0, 64, 17, 0, 0, 100, 64, 0, 10, 0, 0, 0, 0,
    ]);
    f[34..42].copy_from_slice(&[0x30, 0x39, 0, 53, 0, 26, 0, 0]);
    f
}

/// A 60-byte IPv6 frame (no next header, 6 bytes payload).
fn frame6() -> Vec<u8> {
    let mut f = vec![0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&GW_IN.0);
    f[6..12].copy_from_slice(&MacAddr::local(0xa).0);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14..22].copy_from_slice(&[0x60, 0, 0, 0, 0, 6, 59, 64]);
    f[22..38].copy_from_slice(&"fd00:1::a".parse::<Ipv6Addr>().unwrap().octets());
    f
}

/// Reset a frame for the next round with destination `dst`.
fn reset4(f: &mut [u8], dst: u32) {
    f[0..6].copy_from_slice(&GW_IN.0);
    f[22] = 64;
    f[30..34].copy_from_slice(&dst.to_be_bytes());
    f[24..26].fill(0);
    let c = checksum::compute(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

fn reset6(f: &mut [u8], dst: u128) {
    f[0..6].copy_from_slice(&GW_IN.0);
    f[21] = 64;
    f[38..54].copy_from_slice(&dst.to_be_bytes());
}

/// Batches reset and then timed together, so the two clock reads (slow
/// in a VM) do not dominate a ~1 µs batch.
const GROUP: usize = 8;

/// Time `iters` batches of the forward path. Each group of batches is
/// reset untimed right before it is processed, as a receive path would
/// hand frames over, hot in cache.
fn run<D: Copy>(
    iters: u64,
    r: &mut Router,
    pool: &mut PacketPool,
    bufs: &mut VecDeque<PktBuf>,
    dsts: &[D],
    at: &mut usize,
    reset: fn(&mut [u8], D),
) -> Duration {
    let mut out = L3Out::default();
    let mut batches: Vec<Batch> = (0..GROUP).map(|_| Batch::new(BURST)).collect();
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let n = left.min(GROUP);
        for batch in &mut batches[..n] {
            for b in bufs.drain(..BURST) {
                reset(pool.data_mut(&b), dsts[*at]);
                *at = (*at + 1) % dsts.len();
                batch.push(b).unwrap();
            }
        }
        let t = Instant::now();
        for batch in &mut batches[..n] {
            r.process(pool, IN, batch, 0, &mut out);
        }
        total += t.elapsed();
        assert_eq!(out.len(), n * BURST, "every frame forwarded");
        // Frames cycle through the pool like an rx ring.
        bufs.extend(out.frames.drain(..).map(|f| f.buf));
        left -= n;
    }
    total
}

fn bench(c: &mut Criterion, id: &str, v6: bool, nroutes: usize) {
    let mut pool = PacketPool::with_frames(ROUND * BURST + 64);
    let mut r = router(&mut pool);
    let mut rng = Rng(0x5eed ^ nroutes as u64);
    let template = if v6 { frame6() } else { frame4() };
    let mut bufs: VecDeque<PktBuf> = (0..ROUND * BURST)
        .map(|_| pool.alloc_from(&template).unwrap())
        .collect();
    let mut at = 0;
    let mut g = c.benchmark_group("l3");
    g.throughput(Throughput::Elements(BURST as u64));
    if v6 {
        let dsts = routes6(&mut r, nroutes, &mut rng);
        g.bench_function(id, |b| {
            b.iter_custom(|n| run(n, &mut r, &mut pool, &mut bufs, &dsts, &mut at, reset6))
        });
    } else {
        let dsts = routes4(&mut r, nroutes, &mut rng);
        g.bench_function(id, |b| {
            b.iter_custom(|n| run(n, &mut r, &mut pool, &mut bufs, &dsts, &mut at, reset4))
        });
    }
    g.finish();
}

fn l3(c: &mut Criterion) {
    bench(c, "ipv4_forward_1k_routes", false, 1_000);
    bench(c, "ipv4_forward_100k_routes", false, 100_000);
    bench(c, "ipv6_forward_1k_routes", true, 1_000);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = l3
}
criterion_main!(benches);
