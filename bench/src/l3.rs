//! Router scenarios shared by the criterion bench (`benches/l3.rs`) and the
//! instruction-count harness: two gateways (ingress domain 1, egress domain
//! 2), 16 pre-resolved next hops behind the egress gateway, random routes
//! and 1M destinations drawn inside them, 60-byte frames (64 on the wire).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_switch::router::{Gateway, L3Out, NextHop, Router, RouterConfig};
use rvs_switch::wire::ipv4::checksum;
use rvs_switch::{Batch, DomainId, MacAddr, PacketPool, PktBuf};

use crate::FRAME_LEN;

/// Destinations per scenario: enough that the route table is not all in cache.
pub const DSTS: usize = 1 << 20;
pub const IN: DomainId = DomainId(1);
pub const OUT: DomainId = DomainId(2);
pub const GW_IN: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
pub const GW_OUT: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
const NEXT_HOPS: u32 = 16;

/// splitmix64: seeded, so every run benches the same tables.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The two gateways and the resolved next hops, under `cfg`.
pub fn router(pool: &mut PacketPool, cfg: RouterConfig) -> Router {
    let mut r = Router::new(cfg, 0);
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
pub fn routes4(r: &mut Router, n: usize, rng: &mut Rng) -> Vec<u32> {
    let mut installed = Vec::with_capacity(n);
    while installed.len() < n {
        let x = rng.next_u64();
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
            let x = rng.next_u64();
            let (a, len) = installed[(x as usize) % installed.len()];
            a | ((x >> 32) as u32 & !(u32::MAX << (32 - len)))
        })
        .collect()
}

/// `n` random IPv6 routes (/32../64, mostly /48 and /56 and /64) in
/// 2000::/3 and 1M destinations inside them.
pub fn routes6(r: &mut Router, n: usize, rng: &mut Rng) -> Vec<u128> {
    let mut installed = Vec::with_capacity(n);
    while installed.len() < n {
        let x = rng.next_u64();
        let len = [32u8, 40, 48, 48, 56, 56, 64, 64][(x % 8) as usize];
        let hi = ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128;
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
            let (a, len) = installed[(rng.next_u64() as usize) % installed.len()];
            let host = ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128;
            a | (host & !(u128::MAX << (128 - len as u32)))
        })
        .collect()
}

/// A 60-byte IPv4/UDP frame to the ingress gateway.
pub fn frame4() -> Vec<u8> {
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
pub fn frame6() -> Vec<u8> {
    let mut f = vec![0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&GW_IN.0);
    f[6..12].copy_from_slice(&MacAddr::local(0xa).0);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14..22].copy_from_slice(&[0x60, 0, 0, 0, 0, 6, 59, 64]);
    f[22..38].copy_from_slice(&"fd00:1::a".parse::<Ipv6Addr>().unwrap().octets());
    f
}

/// Reset an IPv4 frame for the next round: destination `dst`, TTL `ttl`.
pub fn prepare4(f: &mut [u8], dst: u32, ttl: u8) {
    f[0..6].copy_from_slice(&GW_IN.0);
    f[22] = ttl;
    f[30..34].copy_from_slice(&dst.to_be_bytes());
    f[24..26].fill(0);
    let c = checksum::compute(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Reset an IPv6 frame for the next round: destination `dst`, hop limit `hops`.
pub fn prepare6(f: &mut [u8], dst: u128, hops: u8) {
    f[0..6].copy_from_slice(&GW_IN.0);
    f[21] = hops;
    f[38..54].copy_from_slice(&dst.to_be_bytes());
}

pub fn reset4(f: &mut [u8], dst: u32) {
    prepare4(f, dst, 64)
}
pub fn reset6(f: &mut [u8], dst: u128) {
    prepare6(f, dst, 64)
}

/// Destinations of one family.
enum Dsts {
    V4(Vec<u32>),
    V6(Vec<u128>),
}

/// One router scenario run burst by burst (the instruction-count harness):
/// every burst resets `burst` frames as a receive path would hand them
/// over, routes them, and takes back what the router sent.
pub struct L3Run {
    router: Router,
    pool: PacketPool,
    bufs: VecDeque<PktBuf>,
    dsts: Dsts,
    at: usize,
    out: L3Out,
    batch: Batch,
    burst: usize,
    /// TTL / hop limit written into every frame: 64 forwards, 1 makes
    /// every frame an ICMP time-exceeded error.
    ttl: u8,
    template: Vec<u8>,
}

impl L3Run {
    /// `nroutes` random routes of one family; `ttl` 1 turns the scenario
    /// into ICMP error generation (the rate limit is lifted so every frame
    /// gets its error).
    pub fn new(v6: bool, nroutes: usize, burst: usize, ttl: u8) -> Self {
        let mut pool = PacketPool::with_frames(64 * burst + 64);
        let cfg = RouterConfig {
            icmp_pps: 1 << 30,
            icmp_burst: 1 << 40,
            ..RouterConfig::default()
        };
        let mut router = router(&mut pool, cfg);
        let mut rng = Rng(0x5eed ^ nroutes as u64);
        let (template, dsts) = if v6 {
            (frame6(), Dsts::V6(routes6(&mut router, nroutes, &mut rng)))
        } else {
            (frame4(), Dsts::V4(routes4(&mut router, nroutes, &mut rng)))
        };
        let bufs = (0..64 * burst)
            .map(|_| pool.alloc_from(&template).unwrap())
            .collect();
        L3Run {
            router,
            pool,
            bufs,
            dsts,
            at: 0,
            out: L3Out::default(),
            batch: Batch::new(burst),
            burst,
            ttl,
            template,
        }
    }

    /// Route one burst; returns the frames the router handed out.
    pub fn step(&mut self) -> usize {
        for _ in 0..self.burst {
            let b = self.bufs.pop_front().expect("frames cycle");
            let f = self.pool.data_mut(&b);
            match &self.dsts {
                Dsts::V4(d) => prepare4(f, d[self.at], self.ttl),
                Dsts::V6(d) => prepare6(f, d[self.at], self.ttl),
            }
            self.at = (self.at + 1) % DSTS;
            self.batch.push(b).unwrap();
        }
        self.router
            .process(&mut self.pool, IN, &mut self.batch, 0, &mut self.out);
        let n = self.out.len();
        for f in self.out.frames.drain(..) {
            let mut b = f.buf;
            if self.ttl <= 1 {
                // An ICMP error grew into the headroom: back to a fresh frame.
                self.pool.reset(&mut b);
                self.pool.set_len(&mut b, FRAME_LEN);
                self.pool.data_mut(&b).copy_from_slice(&self.template);
            }
            self.bufs.push_back(b);
        }
        n
    }

    pub fn router(&self) -> &Router {
        &self.router
    }
}
