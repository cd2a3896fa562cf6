//! The router's input parsing (ARP, IPv4, IPv6, ICMP, ICMPv6 echo and
//! neighbor discovery) never panics and never loses a buffer, whatever the
//! frames; and what it sends is well formed: from its gateway's MAC, IPv4
//! headers with a valid checksum (TTL decrements are incremental updates),
//! lengths inside the frame, and every ICMP/ICMPv6 message it originates
//! (echo replies, errors built in headroom, neighbor adverts and
//! solicitations) with a valid checksum. With a service configured, the
//! load balancer's parsing, rewrite and health probes are under the same
//! checks.
//!
//! Input layout: byte 0 picks the setup (`F_*`); then records
//! `[sel: u8][len: u8][len bytes]`: `sel & 1` is the domain the frame
//! arrives in, `sel & 2` keeps the frame in the current batch instead of
//! routing the batch now, `sel >> 2` moves the clock first (steps of 50 ms).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use rvs_switch::lb::{HealthCheck, Service, ServicePort};
use rvs_switch::router::{Gateway, L3Out, NextHop, Router, RouterConfig};
use rvs_switch::{BATCH_MAX, Batch, DomainId, MacAddr, PacketPool, StageCounter};

const FRAMES: usize = 128;
const D: [DomainId; 2] = [DomainId(0), DomainId(1)];
const MACS: [MacAddr; 2] = [
    MacAddr([2, 0, 0, 0, 0x0a, 1]),
    MacAddr([2, 0, 0, 0, 0x0b, 1]),
];
const V4: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 1, 1)];
const V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0xfd00, 0, 1, 0, 0, 0, 0, 1),
];

/// Gateways route between the two domains.
const F_ROUTING: u8 = 1;
/// Domain 1's gateway has a 128-byte MTU.
const F_SMALL_MTU: u8 = 2;
/// Routes to 198.51.0.0/16 and 2001:db8::/32 via 10.0.1.254 / fd00:1::fe in
/// domain 1 (not /0: that writes all 2^24 entries of the DIR-24-8 table,
/// which makes one input take a second under ASan).
const F_DEFAULT: u8 = 4;
/// Static neighbors 10.0.1.2 / fd00:1::2 in domain 1.
const F_STATIC: u8 = 8;
/// Gateway 0 on VLAN 7 (the VID only travels in the output).
const F_VID: u8 = 16;
/// A service in domain 0: VIPs 10.0.0.100 / fd00::100, TCP 80 and UDP 53
/// to backends .2/.3 (::2/::3), health-checked (the load balancer's
/// parsing, rewrite and probes).
const F_SERVICE: u8 = 32;

/// RFC 1071 sum of `parts`, not folded to 16 bits yet; written here so the
/// oracle does not share code with the router.
fn sum(parts: &[&[u8]]) -> u32 {
    let mut s = 0u32;
    let mut odd: Option<u8> = None;
    for p in parts {
        for &b in *p {
            match odd.take() {
                Some(h) => s += u16::from_be_bytes([h, b]) as u32,
                None => odd = Some(b),
            }
        }
    }
    if let Some(h) = odd {
        s += (h as u32) << 8;
    }
    s
}

fn folds_to_ffff(mut s: u32) -> bool {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s == 0xffff
}

fn be16(b: &[u8], at: usize) -> usize {
    u16::from_be_bytes([b[at], b[at + 1]]) as usize
}

/// What a well-formed router output looks like.
fn check_output(f: &[u8], domain: DomainId, own_ok: bool) {
    let d = domain.0 as usize;
    assert!(d < 2, "output into a domain with a gateway");
    assert!(f.len() >= 14, "output shorter than an Ethernet header");
    assert_eq!(f[6..12], MACS[d].0, "output from the egress gateway's MAC");
    match be16(f, 12) {
        0x0800 => {
            let ip = &f[14..];
            assert!(ip.len() >= 20, "IPv4 output without a header");
            let ihl = (ip[0] & 0xf) as usize * 4;
            assert!(ip[0] >> 4 == 4 && ihl >= 20, "IPv4 version/IHL");
            let total = be16(ip, 2);
            assert!(
                ihl <= total && total <= ip.len(),
                "IPv4 total length {total} in {}",
                ip.len()
            );
            assert!(folds_to_ffff(sum(&[&ip[..ihl]])), "IPv4 header checksum");
            let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            if ip[9] == 1 && own_ok && V4.contains(&src) {
                assert!(
                    folds_to_ffff(sum(&[&ip[ihl..total]])),
                    "ICMP checksum of an own message"
                );
            }
        }
        0x86dd => {
            let ip = &f[14..];
            assert!(
                ip.len() >= 40 && ip[0] >> 4 == 6,
                "IPv6 output without a header"
            );
            let plen = be16(ip, 4);
            assert!(
                40 + plen <= ip.len(),
                "IPv6 payload length {plen} in {}",
                ip.len()
            );
            let src: [u8; 16] = ip[8..24].try_into().unwrap();
            let own = V6.iter().any(|a| a.octets() == src) || src[..2] == [0xfe, 0x80];
            if ip[6] == 58 && own_ok && own {
                let pseudo_len = (plen as u32).to_be_bytes();
                let payload = &ip[40..40 + plen];
                let s = sum(&[&ip[8..40], &pseudo_len, &[0, 0, 0, 58], payload]);
                assert!(folds_to_ffff(s), "ICMPv6 checksum of an own message");
            }
        }
        0x0806 => assert!(f.len() >= 42, "ARP output shorter than an ARP packet"),
        t => panic!("router output with EtherType {t:#06x}"),
    }
}

/// Whether `f` carries one of the gateways' own addresses as its IP source
/// (then a routed copy can look like an own message and is not checked).
fn spoofs_gateway(f: &[u8]) -> bool {
    match f.get(12..14) {
        Some([0x08, 0x00]) => f
            .get(26..30)
            .is_some_and(|s| V4.iter().any(|a| a.octets() == s)),
        Some([0x86, 0xdd]) => f
            .get(22..38)
            .is_some_and(|s| V6.iter().any(|a| a.octets() == s) || s[..2] == [0xfe, 0x80]),
        _ => false,
    }
}

fn drain(pool: &mut PacketPool, out: &mut L3Out, own_ok: bool) {
    for f in out.frames.drain(..) {
        check_output(pool.data(&f.buf), f.domain, own_ok);
        pool.free(f.buf);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, mut rest)) = data.split_first() else {
        return;
    };
    let mut pool = PacketPool::with_frames(FRAMES);
    let mut r = Router::new(RouterConfig::default(), 0);
    for d in 0..2 {
        let mut g = Gateway::new(D[d], MACS[d])
            .with_ipv4(V4[d], 24)
            .with_ipv6(V6[d], 64);
        g.routing = cfg & F_ROUTING != 0;
        if d == 1 && cfg & F_SMALL_MTU != 0 {
            g.mtu = 128;
        }
        if d == 0 && cfg & F_VID != 0 {
            g.vid = 7;
        }
        r.add_gateway(g).unwrap();
    }
    let mut out = L3Out::default();
    if cfg & F_DEFAULT != 0 {
        let via = |a: IpAddr| NextHop::Via {
            gateway: a,
            domain: D[1],
        };
        r.add_route(
            0,
            "198.51.0.0".parse().unwrap(),
            16,
            via("10.0.1.254".parse().unwrap()),
        )
        .unwrap();
        r.add_route(
            0,
            "2001:db8::".parse().unwrap(),
            32,
            via("fd00:1::fe".parse().unwrap()),
        )
        .unwrap();
    }
    if cfg & F_STATIC != 0 {
        let mac = MacAddr([2, 0, 0, 0, 0x0b, 2]);
        r.add_static_neighbor(&mut pool, D[1], "10.0.1.2".parse().unwrap(), mac, &mut out);
        r.add_static_neighbor(&mut pool, D[1], "fd00:1::2".parse().unwrap(), mac, &mut out);
    }

    if cfg & F_SERVICE != 0 {
        let ports = vec![
            ServicePort {
                proto: 6,
                port: 80,
                target: 8080,
            },
            ServicePort {
                proto: 17,
                port: 53,
                target: 53,
            },
        ];
        let health = Some(HealthCheck {
            port: 8080,
            interval_ms: 1000,
            timeout_ms: 2500,
        });
        let svc = |vip: &str, b: [&str; 2]| Service {
            domain: D[0],
            vip: vip.parse().unwrap(),
            ports: ports.clone(),
            backends: b.iter().map(|a| a.parse().unwrap()).collect(),
            health,
        };
        let services = vec![
            svc("10.0.0.100", ["10.0.0.2", "10.0.0.3"]),
            svc("fd00::100", ["fd00::2", "fd00::3"]),
        ];
        r.set_services(services, 0).unwrap();
    }

    let mut own_ok = true;
    let mut t = 0u64;
    let mut inputs = 0u64;
    let mut batch = Batch::new(BATCH_MAX);
    let mut batch_domain = D[0];
    while rest.len() >= 2 {
        let sel = rest[0];
        let len = (rest[1] as usize).min(rest.len() - 2);
        let bytes = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let domain = D[(sel & 1) as usize];
        // A batch comes from one domain: route what is queued first.
        if domain != batch_domain && !batch.is_empty() {
            r.process(&mut pool, batch_domain, &mut batch, t, &mut out);
            drain(&mut pool, &mut out, own_ok);
        }
        batch_domain = domain;
        own_ok &= !spoofs_gateway(bytes);
        t += (sel >> 2) as u64 * 50;
        if let Some(b) = pool.alloc_from(bytes) {
            batch.push(b).unwrap();
            inputs += 1;
        }
        if sel & 2 == 0 || batch.is_full() {
            r.process(&mut pool, batch_domain, &mut batch, t, &mut out);
            assert!(batch.is_empty(), "every frame leaves the batch");
        }
        r.tick(&mut pool, t, &mut out);
        drain(&mut pool, &mut out, own_ok);
    }
    r.process(&mut pool, batch_domain, &mut batch, t, &mut out);
    drain(&mut pool, &mut out, own_ok);
    // Held packets: resolution fails after 3 probes 1 s apart. Services
    // go first: their health probes would otherwise keep being held.
    r.set_services(Vec::new(), t).unwrap();
    for _ in 0..6 {
        t += 1000;
        r.tick(&mut pool, t, &mut out);
        drain(&mut pool, &mut out, own_ok);
    }
    assert_eq!(pool.available(), FRAMES, "router leaked buffers");

    // Every input was routed, answered, taken in, held or dropped and counted.
    let c = r.counters();
    let counted = c.drops.iter().sum::<u64>()
        + [
            StageCounter::L3Forwarded,
            StageCounter::L3ArpReplies,
            StageCounter::L3NdAdverts,
            StageCounter::L3EchoReplies,
            StageCounter::L3NeighConsumed,
            StageCounter::NeighHeld,
            StageCounter::LbToBackend,
            StageCounter::LbToClient,
            StageCounter::LbProbeAnswers,
        ]
        .iter()
        .map(|s| c.stages.get(*s))
        .sum::<u64>();
    assert!(
        counted >= inputs,
        "{inputs} inputs, {counted} accounted for"
    );
});
