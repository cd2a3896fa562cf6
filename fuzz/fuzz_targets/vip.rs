//! The load balancer's `vip` node against the general path, differentially:
//! two switches built alike (a VIP with TCP and UDP ports over three
//! backends, one behind a trunk, its IPv6 twin, and a second VIP whose
//! backend the FDB does not know) get the same frames; an armed tracer keeps one on the
//! general path. After every batch both must have sent the same bytes on
//! every port and counted the same (but the node's own counter), hold the
//! same flows, and leak no buffer.
//!
//! Input: records `[op: u8][arg: u8][len: u8][len bytes]`. By `op % 8`:
//! 0–4 a batch of `1 + arg % 32` frames into port `op % 3` (0 clients, 1
//! backends, 2 the trunk), each a packet to a VIP from a template picked
//! and filled in by the record's bytes (client, ports, flags, protocol,
//! IPv4 or IPv6),
//! then patched at `arg`'s offset with the rest of the bytes (so bad
//! headers, options, fragments and truncation all occur); 5 a raw frame;
//! 6 the clock moves on `arg` × 100 ms; 7 a control change by `arg`: a
//! backend's neighbor moves to another MAC, or the services change.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use rvs_switch::lb::{HealthCheck, Service, ServicePort};
use rvs_switch::router::Gateway;
use rvs_switch::wire::ipv4::{checksum, write_header};
use rvs_switch::{
    DomainConfig, DomainId, MacAddr, MemoryPort, MemoryPortHandle, PacketPool, PortConfig, PortId,
    StageCounter, Switch, VlanMode,
};

const FRAMES: usize = 512;
const GW: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const VIPS: [[u8; 4]; 2] = [[10, 0, 0, 100], [10, 0, 0, 101]];
/// The first VIP's IPv6 twin.
const VIP6: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_0100;

fn backend(i: u8) -> (Ipv4Addr, MacAddr) {
    (
        Ipv4Addr::new(10, 0, 0, 10 + i),
        MacAddr([2, 0, 0, 0, 0xb, i]),
    )
}

fn backend6(i: u8) -> IpAddr {
    IpAddr::V6((0xfd00_0000_0000_0000_0000_0000_000b_0000 | i as u128).into())
}

fn services(d: DomainId, which: u8) -> Vec<Service> {
    let picks: &[u8] = match which % 3 {
        0 => &[1, 2, 3],
        1 => &[1, 3],
        _ => &[2],
    };
    let health = (which % 4 == 3).then_some(HealthCheck {
        port: 9,
        interval_ms: 500,
        timeout_ms: 1500,
    });
    // The first VIP and its IPv6 twin: 80/tcp and 53/udp over `picks`.
    let web = |vip: IpAddr, backends: Vec<IpAddr>| Service {
        domain: d,
        vip,
        ports: vec![
            ServicePort {
                proto: 6,
                port: 80,
                target: 8080 + (which as u16 % 2),
            },
            ServicePort {
                proto: 17,
                port: 53,
                target: 5353,
            },
        ],
        backends,
        health,
    };
    let v4 = picks.iter().map(|&i| IpAddr::V4(backend(i).0)).collect();
    let v6 = picks.iter().map(|&i| backend6(i)).collect();
    vec![
        web(IpAddr::V4(VIPS[0].into()), v4),
        Service {
            domain: d,
            vip: IpAddr::V4(VIPS[1].into()),
            ports: vec![ServicePort {
                proto: 6,
                port: 443,
                target: 8443,
            }],
            backends: vec![IpAddr::V4(backend(4).0)],
            health: None,
        },
        web(IpAddr::V6(VIP6.into()), v6),
    ]
}

fn build() -> (Switch, Vec<MemoryPortHandle>, DomainId) {
    let mut sw = Switch::new(PacketPool::with_frames(FRAMES));
    let d = sw.add_domain(DomainConfig::new("lb")).unwrap();
    sw.set_gateway(
        Gateway::new(d, GW)
            .with_ipv4(Ipv4Addr::new(10, 0, 0, 1), 24)
            .with_ipv6("fd00::1".parse().unwrap(), 64),
    )
    .unwrap();
    let mut hs = Vec::new();
    for i in 0..3 {
        let (p, h) = MemoryPort::new(&format!("p{i}"));
        let mut cfg = PortConfig::access(d, 1);
        if i == 2 {
            cfg = cfg.with_vlan(VlanMode::Trunk {
                allowed: "1".parse().unwrap(),
                native: None,
            });
        }
        sw.add_port(Box::new(p), cfg).unwrap();
        hs.push(h);
    }
    for (i, port) in [(1, Some(1)), (2, Some(1)), (3, Some(2)), (4, None)] {
        let (ip, mac) = backend(i);
        sw.add_static_neighbor(d, IpAddr::V4(ip), mac).unwrap();
        sw.add_static_neighbor(d, backend6(i), mac).unwrap();
        if let Some(p) = port {
            sw.add_static(d, 1, mac, PortId(p)).unwrap();
        }
    }
    sw.set_services(services(d, 0)).unwrap();
    (sw, hs, d)
}

/// A packet to a VIP filled in from `b` (at least 8 bytes are used, zeros
/// when short), then patched with `patch` at `at`.
fn packet(b: &[u8], at: u8, patch: &[u8]) -> Vec<u8> {
    let g = |i: usize| b.get(i).copied().unwrap_or(0);
    let client = g(0) % 8;
    let tcp = g(1) & 1 == 0;
    let vip = VIPS[(g(1) >> 1) as usize & 1];
    let dport = match g(1) >> 2 & 3 {
        0 => 80,
        1 => 53,
        2 => 443,
        _ => u16::from_be_bytes([g(6), g(7)]),
    };
    let v6 = g(1) & 0x10 != 0;
    let sport = 1000 + (g(2) as u16 % 64);
    let l4 = if tcp { 20 } else { 8 };
    let l3 = if v6 { 40 } else { 20 };
    let mut f = vec![0u8; 14 + l3 + l4 + 4];
    let mac = if g(3) & 0x80 != 0 {
        backend(g(3) % 4 + 1).1
    } else {
        MacAddr([2, 0, 0, 0, 0xc, client])
    };
    f[0..6].copy_from_slice(&GW.0);
    f[6..12].copy_from_slice(&mac.0);
    let src = [10, 0, 0, 50 + client];
    let src6 = (0xfd00_0000_0000_0000_0000_0000_000c_0000_u128 | client as u128).to_be_bytes();
    let proto = if tcp { 6 } else { 17 };
    if v6 {
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        rvs_switch::wire::ipv6::write_header(
            &mut f[14..],
            (l4 + 4) as u16,
            proto,
            64,
            &src6,
            &VIP6.to_be_bytes(),
        );
    } else {
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        write_header(
            &mut f[14..],
            (20 + l4 + 4) as u16,
            64,
            proto,
            u32::from_be_bytes(src),
            u32::from_be_bytes(vip),
        );
    }
    let t = &mut f[14 + l3..];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    if tcp {
        t[12] = 5 << 4;
        t[13] = g(4);
    } else {
        t[4..6].copy_from_slice(&((l4 + 4) as u16).to_be_bytes());
    }
    let acc = if v6 {
        checksum::pseudo_v6(&src6, &VIP6.to_be_bytes(), proto, (l4 + 4) as u32)
    } else {
        checksum::pseudo_v4(src, vip, proto, (l4 + 4) as u16)
    };
    let c = !checksum::fold(checksum::sum(t, acc));
    let ck = if tcp { 16 } else { 6 };
    t[ck..ck + 2].copy_from_slice(&c.to_be_bytes());
    let at = at as usize % (f.len() + 1);
    for (i, &x) in patch.iter().enumerate() {
        match f.get_mut(at + i) {
            Some(y) => *y = x,
            None => f.push(x),
        }
    }
    if g(5) & 0x80 != 0 {
        f.truncate(g(5) as usize & 0x7f);
    }
    f
}

fn state(sw: &Switch) -> String {
    let mut l3 = sw.router().counters().clone();
    l3.stages.0[StageCounter::LbFastPath as usize] = 0;
    let mut stages = sw.stage_counters().clone();
    stages.0[StageCounter::LbFastPath as usize] = 0;
    let ports: Vec<_> = sw.ports().into_iter().map(|p| p.counters).collect();
    format!("{l3:?}\n{stages:?}\n{ports:?}\n{:?}", sw.services())
}

fuzz_target!(|data: &[u8]| {
    let (mut fast, fh, d) = build();
    let (mut slow, sh, _) = build();
    slow.tracer().arm(u32::MAX, None);
    let mut now = 0u64;
    let mut rest = data;
    while rest.len() >= 3 {
        let (op, arg, len) = (rest[0], rest[1], rest[2] as usize);
        let body = &rest[3..3 + len.min(rest.len() - 3)];
        rest = &rest[3 + body.len()..];
        match op % 8 {
            0..=4 => {
                let port = (op % 3) as usize;
                let split = body.len().min(8);
                for k in 0..1 + arg as usize % 32 {
                    let mut seed = body[..split].to_vec();
                    if let Some(x) = seed.get_mut(2) {
                        *x = x.wrapping_add(k as u8);
                    }
                    let patch = if k == 0 { &body[split..] } else { &[][..] };
                    let mut f = packet(&seed, arg, patch);
                    if port == 2 && f.len() >= 12 {
                        f.splice(12..12, [0x81, 0x00, 0x00, 0x01]);
                    }
                    fh[port].inject(f.clone());
                    sh[port].inject(f);
                }
            }
            5 => {
                fh[0].inject(body.to_vec());
                sh[0].inject(body.to_vec());
            }
            6 => {
                now += arg as u64 * 100;
                fast.set_now_ms(now);
                slow.set_now_ms(now);
            }
            _ => {
                for sw in [&mut fast, &mut slow] {
                    if arg & 1 == 0 {
                        let (ip, _) = backend(arg / 2 % 3 + 1);
                        let mac = MacAddr([2, 0, 0, 0, 0xd, arg]);
                        sw.add_static_neighbor(d, IpAddr::V4(ip), mac).unwrap();
                        let ip6 = backend6(arg / 2 % 3 + 1);
                        sw.add_static_neighbor(d, ip6, mac).unwrap();
                        sw.add_static(d, 1, mac, PortId(1)).unwrap();
                    } else {
                        sw.set_services(services(d, arg / 2)).unwrap();
                    }
                }
            }
        }
        fast.poll();
        slow.poll();
        for (a, b) in fh.iter().zip(&sh) {
            assert_eq!(a.take_tx(), b.take_tx(), "sent");
        }
        assert_eq!(state(&fast), state(&slow));
    }
    // Packets held for a neighbor's answer (a routed destination the
    // patches made) are freed when the resolution gives up.
    for _ in 0..10 {
        now += 10_000;
        for sw in [&mut fast, &mut slow] {
            sw.set_now_ms(now);
            sw.poll();
        }
    }
    assert_eq!(fast.pool().available(), FRAMES, "fast path leaked buffers");
    assert_eq!(
        slow.pool().available(),
        FRAMES,
        "general path leaked buffers"
    );
});
