use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::wire::ipv4::checksum;

const D: DomainId = DomainId(1);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const CLIENT: u32 = 0x0a00_0005;
const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 5]);

fn be(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10 + i))
}

fn svc(backends: &[IpAddr], health: Option<HealthCheck>) -> Service {
    Service {
        domain: D,
        vip: VIP.into(),
        ports: vec![ServicePort {
            proto: nat::UDP,
            port: 53,
            target: 5353,
        }],
        backends: backends.to_vec(),
        health,
    }
}

/// IPv4 UDP `src:sport → dst:dport` with a 4-byte payload and correct
/// checksums.
fn udp(src: u32, sport: u16, dst: u32, dport: u16) -> Vec<u8> {
    let mut ip = vec![0u8; 20 + 12];
    crate::wire::ipv4::write_header(&mut ip, 32, 64, nat::UDP, src, dst);
    ip[20..22].copy_from_slice(&sport.to_be_bytes());
    ip[22..24].copy_from_slice(&dport.to_be_bytes());
    ip[24..26].copy_from_slice(&12u16.to_be_bytes());
    ip[28..].copy_from_slice(b"ping");
    let acc = checksum::pseudo_v4(src.to_be_bytes(), dst.to_be_bytes(), nat::UDP, 12);
    let c = !checksum::fold(checksum::sum(&ip[20..], acc));
    ip[26..28].copy_from_slice(&c.to_be_bytes());
    ip
}

fn udp_ok(ip: &[u8]) -> bool {
    let s: [u8; 4] = ip[12..16].try_into().unwrap();
    let d: [u8; 4] = ip[16..20].try_into().unwrap();
    let acc = checksum::pseudo_v4(s, d, nat::UDP, (ip.len() - 20) as u16);
    checksum::compute(&ip[..20]) == 0 && checksum::fold(checksum::sum(&ip[20..], acc)) == 0xffff
}

fn lb(backends: &[IpAddr]) -> Lb {
    let mut l = Lb::default();
    l.set(vec![svc(backends, None)], 0).unwrap();
    l
}

/// Send one flow from the client's `sport`; returns the backend's address.
fn send(l: &mut Lb, sport: u16) -> u128 {
    let mut p = udp(CLIENT, sport, VIP.into(), 53);
    let s = l.vip(D, false, u32::from(VIP) as u128).unwrap();
    match l.packet(s, &mut p, MAC, false, 1).0 {
        Verdict::ToBackend(b) => b,
        v => panic!("{v:?}"),
    }
}

#[test]
fn a_flow_is_rewritten_to_a_backend_and_its_reply_back_to_the_vip() {
    let mut l = lb(&[be(1), be(2), be(3)]);
    let s = l.vip(D, false, u32::from(VIP) as u128).unwrap();
    let mut p = udp(CLIENT, 40000, VIP.into(), 53);
    let (v, new) = l.packet(s, &mut p, MAC, false, 1);
    let Verdict::ToBackend(b) = v else {
        panic!("{v:?}")
    };
    assert!(new);
    let f = nat::parse(&p).unwrap();
    assert_eq!(f.src, u32::from(VIP) as u128, "source is the VIP");
    assert_eq!(f.dst, b, "destination is the chosen backend");
    assert_eq!(f.dport, 5353, "the target port");
    assert!((SNAT_FIRST..PROBE_PORT_BASE).contains(&f.sport));
    assert!(udp_ok(&p), "checksums");
    // The same flow again: same backend, same source port, not new.
    let mut q = udp(CLIENT, 40000, VIP.into(), 53);
    let (v2, new2) = l.packet(s, &mut q, MAC, false, 2);
    assert_eq!((v2, new2), (Verdict::ToBackend(b), false));
    assert_eq!(p, q);
    // The backend's reply, to the VIP and the flow's port.
    let mut r = udp(b as u32, 5353, VIP.into(), f.sport);
    let (v, _) = l.packet(s, &mut r, MAC, false, 3);
    assert_eq!(v, Verdict::ToClient(MAC));
    let g = nat::parse(&r).unwrap();
    assert_eq!((g.src, g.sport), (u32::from(VIP) as u128, 53));
    assert_eq!((g.dst, g.dport), (CLIENT as u128, 40000));
    assert!(udp_ok(&r));
    // Not a port of the service: dropped; not TCP/UDP: the gateway's.
    let mut x = udp(CLIENT, 40001, VIP.into(), 54);
    assert_eq!(
        l.packet(s, &mut x, MAC, false, 4).0,
        Verdict::Drop(DropReason::LbNoPort)
    );
    x[9] = 1;
    assert_eq!(l.packet(s, &mut x, MAC, false, 4).0, Verdict::Local);
    assert_eq!(l.flows(), 1);
}

#[test]
fn flows_spread_over_the_backends_and_a_removal_moves_only_its_own() {
    let all = [be(1), be(2), be(3)];
    let mut l = lb(&all);
    let n = 6000u16;
    let first: Vec<u128> = (0..n).map(|p| send(&mut l, 10000 + p)).collect();
    for b in &all {
        let k = key_of(*b).1;
        let c = first.iter().filter(|x| **x == k).count() as f64;
        assert!((c / n as f64 - 1.0 / 3.0).abs() < 0.033, "{b}: {c}");
    }
    l.set(vec![svc(&[be(1), be(3)], None)], 5).unwrap();
    let gone = key_of(be(2)).1;
    for (p, was) in first.iter().enumerate() {
        let now = send(&mut l, 10000 + p as u16);
        if *was == gone {
            assert_ne!(now, gone);
        } else {
            assert_eq!(now, *was, "flow {p} moved off a remaining backend");
        }
    }
    // A fresh flow table (the flows forgotten) still maps the remaining
    // backends' flows to them: the Maglev table kept their slots.
    let mut fresh = lb(&all);
    let before: Vec<u128> = (0..n).map(|p| send(&mut fresh, 30000 + p)).collect();
    fresh.flows.clear();
    fresh.set(vec![svc(&[be(1), be(3)], None)], 5).unwrap();
    for (p, was) in before.iter().enumerate() {
        if *was != gone {
            assert_eq!(send(&mut fresh, 30000 + p as u16), *was);
        }
    }
}

#[test]
fn health_checks_take_a_silent_backend_out_and_an_answer_puts_it_back() {
    let h = HealthCheck {
        port: 8080,
        interval_ms: 1000,
        timeout_ms: 2500,
    };
    let mut l = Lb::default();
    l.set(vec![svc(&[be(1), be(2)], Some(h))], 0).unwrap();
    let mut probes = Vec::new();
    l.tick(0, &mut probes);
    assert_eq!(probes.len(), 2);
    assert_eq!(probes[1].sport, PROBE_PORT_BASE + 1);
    assert_eq!(probes[1].dport, 8080);
    let s = l.vip(D, false, u32::from(VIP) as u128).unwrap();
    // Backend 1 answers every probe; backend 2 never does.
    let answer = |l: &mut Lb, now: u64| {
        let mut ip = vec![0u8; 40];
        let b1 = key_of(be(1)).1;
        crate::wire::ipv4::write_header(&mut ip, 40, 64, nat::TCP, b1 as u32, VIP.into());
        nat::write_tcp(
            &mut ip[20..],
            false,
            b1,
            u32::from(VIP) as u128,
            (8080, PROBE_PORT_BASE),
            1,
            2,
            nat::SYN | nat::ACK,
        );
        l.packet(s, &mut ip, MAC, false, now).0
    };
    for t in (1000..=3000).step_by(1000) {
        probes.clear();
        l.tick(t, &mut probes);
        assert_eq!(answer(&mut l, t), Verdict::Probe { reset: true });
    }
    let st = l.status();
    assert!(st[0].backends[0].up);
    assert!(!st[0].backends[1].up, "silent for 3 s");
    for p in 0..200 {
        assert_eq!(send(&mut l, 20000 + p), key_of(be(1)).1);
    }
    // Both down: no backend.
    probes.clear();
    l.tick(10_000, &mut probes);
    let mut p = udp(CLIENT, 1, VIP.into(), 53);
    assert_eq!(
        l.packet(s, &mut p, MAC, false, 10_000).0,
        Verdict::Drop(DropReason::LbNoBackend)
    );
    // An answer brings backend 1 back.
    answer(&mut l, 10_001);
    assert_eq!(send(&mut l, 2), key_of(be(1)).1);
}

#[test]
fn idle_flows_expire_and_bad_services_are_refused_changing_nothing() {
    let mut l = lb(&[be(1)]);
    send(&mut l, 1);
    let mut probes = Vec::new();
    assert_eq!(l.tick(UDP_IDLE_MS, &mut probes), 0);
    assert_eq!(l.tick(UDP_IDLE_MS + 2, &mut probes), 1);
    assert_eq!(l.flows(), 0);
    let v6 = IpAddr::V6("fd00::1".parse().unwrap());
    for (bad, want) in [
        (svc(&[v6], None), LbError::Family(v6, VIP.into())),
        (
            svc(&[be(1), be(1)], None),
            LbError::DuplicateBackend(VIP.into(), be(1)),
        ),
        (
            Service {
                ports: vec![],
                ..svc(&[be(1)], None)
            },
            LbError::NoPorts(VIP.into()),
        ),
    ] {
        assert_eq!(l.set(vec![bad], 0), Err(want));
    }
    // VIPs packets could never reach: not unicast, or not routed.
    for vip in [
        "255.255.255.255",
        "0.1.2.3",
        "224.0.0.5",
        "127.0.0.1",
        "0.0.0.0",
        "ff02::1",
        "fe80::1",
        "febf::1",
    ] {
        let vip: IpAddr = vip.parse().unwrap();
        let backends = if vip.is_ipv4() { vec![be(1)] } else { vec![] };
        let bad = Service {
            vip,
            backends,
            ..svc(&[], None)
        };
        assert_eq!(l.set(vec![bad], 0), Err(LbError::BadVip(vip)), "{vip}");
    }
    let dup = vec![svc(&[be(1)], None), svc(&[be(2)], None)];
    assert_eq!(l.set(dup, 0), Err(LbError::DuplicateVip(VIP.into(), D)));
    // A flow key holds a service's slot in 16 bits.
    let many = vec![svc(&[be(1)], None); SERVICES_MAX + 1];
    assert_eq!(
        l.set(many, 0),
        Err(LbError::TooManyServices(SERVICES_MAX + 1))
    );
    assert_eq!(l.status().len(), 1, "the old service is still there");
    l.set(vec![], 0).unwrap();
    assert!(l.is_empty() && !l.serves(D));
}

/// A flow's packets keep correct checksums and ports in both directions
/// through everything that changes its rewrite: the first packet, the
/// following ones (the flow's kept deltas), the service's target port
/// changing, its backend moving to another slot, and its backend leaving.
#[test]
fn an_established_flow_is_rewritten_right_as_its_service_changes() {
    let mut l = lb(&[be(1)]);
    let s = l.vip(D, false, u32::from(VIP) as u128).unwrap();
    let vip = u32::from(VIP);
    let check = |l: &mut Lb, backend: IpAddr, target: u16| {
        let mut first = None;
        for _ in 0..3 {
            let mut p = udp(CLIENT, 4242, vip, 53);
            let (v, _) = l.packet(s, &mut p, MAC, false, 1);
            assert_eq!(v, Verdict::ToBackend(key_of(backend).1));
            assert!(udp_ok(&p), "checksums after the rewrite to {backend}");
            assert_eq!(&p[12..16], &VIP.octets());
            assert_eq!(p[16..20], key_of(backend).1.to_be_bytes()[12..]);
            assert_eq!(u16::from_be_bytes([p[22], p[23]]), target);
            assert_eq!(*first.get_or_insert(p.clone()), p, "every packet alike");
            // The backend's reply goes back to the client from the VIP.
            let snat = u16::from_be_bytes([p[20], p[21]]);
            let IpAddr::V4(b) = backend else { panic!() };
            let mut r = udp(u32::from(b), target, vip, snat);
            assert_eq!(l.packet(s, &mut r, MAC, false, 1).0, Verdict::ToClient(MAC));
            assert!(udp_ok(&r), "checksums of the reply");
            assert_eq!(
                r,
                udp(vip, 53, CLIENT, 4242),
                "the reply as the client expects it"
            );
        }
    };
    check(&mut l, be(1), 5353);
    let with = |backends: &[IpAddr], target: u16| Service {
        ports: vec![ServicePort {
            proto: nat::UDP,
            port: 53,
            target,
        }],
        ..svc(backends, None)
    };
    l.set(vec![with(&[be(1)], 6000)], 1).unwrap();
    check(&mut l, be(1), 6000);
    l.set(vec![with(&[be(2), be(1)], 6000)], 1).unwrap();
    check(&mut l, be(1), 6000);
    l.set(vec![with(&[be(2)], 6000)], 1).unwrap();
    check(&mut l, be(2), 6000);
}

/// The switch sends a flow's packets to its backend's MAC as the neighbor
/// table has it now, though the flow keeps the MAC it resolved.
#[test]
fn a_flow_follows_its_backends_new_mac() {
    use crate::router::Gateway;
    use crate::{MemoryPort, PacketPool, PortConfig, Switch};
    let gw = MacAddr([2, 0, 0, 0, 1, 1]);
    let mut sw = Switch::new(PacketPool::with_frames(256));
    let d = sw.add_domain(crate::DomainConfig::new("lb")).unwrap();
    sw.set_gateway(Gateway::new(d, gw).with_ipv4(Ipv4Addr::new(10, 0, 0, 1), 24))
        .unwrap();
    let (client, ch) = MemoryPort::new("client");
    let (backends, bh) = MemoryPort::new("backends");
    sw.add_port(Box::new(client), PortConfig::access(d, 1))
        .unwrap();
    let out = sw
        .add_port(Box::new(backends), PortConfig::access(d, 1))
        .unwrap();
    let (m1, m2) = (MacAddr::local(0x101), MacAddr::local(0x102));
    sw.add_static(d, 1, m1, out).unwrap();
    sw.add_static(d, 1, m2, out).unwrap();
    sw.add_static_neighbor(d, be(1), m1).unwrap();
    sw.set_services(vec![Service {
        domain: d,
        ..svc(&[be(1)], None)
    }])
    .unwrap();
    let frame = || {
        let mut f = gw.0.to_vec();
        f.extend_from_slice(&MAC.0);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&udp(CLIENT, 4242, VIP.into(), 53));
        f
    };
    let dst_macs = |sw: &mut Switch| {
        ch.inject(frame());
        ch.inject(frame());
        sw.poll();
        bh.take_tx()
            .iter()
            .map(|f| MacAddr(f[0..6].try_into().unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(dst_macs(&mut sw), vec![m1, m1]);
    sw.add_static_neighbor(d, be(1), m2).unwrap();
    assert_eq!(dst_macs(&mut sw), vec![m2, m2]);
}

/// Two flow tables (two processes, two hosts) send a flow to the same
/// backend from the same SNAT port, though each keys its indexes with a
/// seed of its own.
#[test]
fn a_flow_gets_the_same_backend_and_port_from_every_table() {
    let backends = [be(1), be(2), be(3)];
    let (mut a, mut b) = (lb(&backends), lb(&backends));
    assert_ne!(a.flows.seed.0, b.flows.seed.0, "each table draws its seed");
    let s = a.vip(D, false, u32::from(VIP) as u128).unwrap();
    for sport in 1000..1500 {
        let (mut p, mut q) = (
            udp(CLIENT, sport, VIP.into(), 53),
            udp(CLIENT, sport, VIP.into(), 53),
        );
        let va = a.packet(s, &mut p, MAC, false, 1).0;
        let vb = b.packet(s, &mut q, MAC, false, 1).0;
        assert_eq!(va, vb, "port {sport}");
        assert_eq!(p, q, "port {sport}: the same backend, port and SNAT port");
    }
}

/// Flows chosen so that the unkeyed hash sends them all to one index home
/// (as anyone can compute it) land spread out under the table's seed: no
/// probe walks their whole run.
#[test]
fn flows_chosen_to_collide_do_not_make_a_long_probe() {
    let mut flows = Flows::default();
    flows.reserve();
    let mask = 2 * INDEX_FIRST as u64 - 1;
    let key = |cport: u16, client: u32| {
        FwdKey::of(
            0,
            &nat::Flow {
                v6: false,
                proto: nat::TCP,
                src: client as u128,
                dst: u32::from(VIP) as u128,
                sport: cport,
                dport: 80,
                flags: 0,
                l4: 20,
            },
        )
    };
    let home = |k: &FwdKey| (pick_hash(k) >> 32) & mask;
    let target = home(&key(0, CLIENT));
    let chosen: Vec<FwdKey> = (0..64u32)
        .flat_map(|c| (0..=u16::MAX).map(move |p| (p, CLIENT + c)))
        .map(|(p, c)| key(p, c))
        .filter(|k| home(k) == target)
        .take(300)
        .collect();
    assert_eq!(chosen.len(), 300, "enough colliding flows found");
    for (i, k) in chosen.iter().enumerate() {
        let fl = Flow {
            key: *k,
            backend: 0,
            target: 8080,
            snat: SNAT_FIRST + i as u16,
            client_mac: MAC,
            last_ms: 0,
            closing: false,
            used: true,
            deltas: nat::Deltas::default(),
            deltas_ok: false,
            mac: 0,
            mac_gen: NO_GEN,
        };
        flows.insert(fl);
    }
    for k in &chosen {
        assert!(flows.find(k).is_some());
    }
    let run = flows.fwd.longest_run();
    assert!(run < 40, "longest probe {run} words for 300 flows in 2,048");
}
