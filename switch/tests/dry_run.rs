//! `Switch::inject_dry` (`ctl trace inject`): one frame through the
//! ordinary pipeline that reports each stage and what it would send, and
//! changes nothing — checked against a real run of the same frame on a
//! twin switch (what it sends) and on the same switch afterwards (that the
//! real run does change what the dry one left alone).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use etherparse::{ArpOperation, ArpPacket, PacketBuilder};
use rvs_switch::lb::{Service, ServicePort};
use rvs_switch::router::Gateway;
use rvs_switch::stp::{StpConfig, StpPortConfig};
use rvs_switch::trace::{DryRun, InjectError};
use rvs_switch::vlan::VlanMode;
use rvs_switch::{
    DomainConfig, DomainId, MacAddr, MemoryPort, MemoryPortHandle, PacketPool, PortConfig, PortId,
    Switch,
};

const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
const C: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xc]);
const G1: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const G2: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
const HOST_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    rvs_switch::wire::ethernet::build(dst, src, 0x0800, &[0u8; 46])
}

fn tagged(f: &[u8], vid: u16) -> Vec<u8> {
    let mut t = f[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00]);
    t.extend_from_slice(&vid.to_be_bytes());
    t.extend_from_slice(&f[12..]);
    t
}

/// Everything a dry run must leave as it was.
#[derive(Debug, PartialEq)]
struct State {
    fdb: Vec<Vec<rvs_switch::FdbEntryInfo>>,
    ports: Vec<rvs_switch::switch::PortInfo>,
    stages: Vec<u64>,
    l3: rvs_switch::router::L3Counters,
    neighbors: usize,
    flows: Vec<usize>,
    stp: Vec<Option<rvs_switch::stp::StpInfo>>,
    pool_free: usize,
}

fn state(sw: &Switch) -> State {
    let doms: Vec<DomainId> = sw.domains().iter().map(|d| d.id).collect();
    State {
        fdb: doms.iter().map(|d| sw.fdb_entries(*d).unwrap()).collect(),
        ports: sw.ports(),
        stages: sw.stage_counters().0.to_vec(),
        l3: sw.router().counters().clone(),
        neighbors: sw.router().neighbors().len(),
        flows: sw.services().iter().map(|s| s.flows).collect(),
        stp: doms.iter().map(|d| sw.stp_info(*d).unwrap()).collect(),
        pool_free: sw.pool().available(),
    }
}

/// A dry run that must leave `sw` (and what its ports sent) unchanged.
fn dry(sw: &mut Switch, hs: &[&MemoryPortHandle], port: u16, f: &[u8]) -> DryRun {
    let before = state(sw);
    let r = sw.inject_dry(PortId(port), f, None).unwrap();
    assert_eq!(state(sw), before, "the dry run changed the switch");
    for h in hs {
        assert!(h.take_tx().is_empty(), "the dry run transmitted");
    }
    assert_eq!(sw.tracer().take(), vec![], "the live tracer has no record");
    r
}

fn has(r: &DryRun, stage: &str, text: &str) -> bool {
    r.steps
        .iter()
        .any(|s| s.stage == stage && s.verdict.contains(text))
}

fn sent(r: &DryRun) -> Vec<(u16, Vec<u8>)> {
    r.sent.iter().map(|s| (s.port.0, s.frame.clone())).collect()
}

/// p0 access 10, p1 access 10, p2 trunk (10, 20), p3 access 20.
fn l2() -> (Switch, Vec<MemoryPortHandle>) {
    let mut sw = Switch::new(PacketPool::with_frames(256));
    let d = sw.add_domain(DomainConfig::new("d")).unwrap();
    let trunk = VlanMode::Trunk {
        allowed: "10,20".parse().unwrap(),
        native: None,
    };
    let mut hs = Vec::new();
    for (i, mode) in [
        VlanMode::Access { pvid: 10 },
        VlanMode::Access { pvid: 10 },
        trunk,
        VlanMode::Access { pvid: 20 },
    ]
    .into_iter()
    .enumerate()
    {
        let (p, h) = MemoryPort::new(&format!("p{i}"));
        sw.add_port(Box::new(p), PortConfig::access(d, 1).with_vlan(mode))
            .unwrap();
        hs.push(h);
    }
    // C speaks from the trunk in VLAN 10.
    hs[2].inject(tagged(&frame(MacAddr::BROADCAST, C), 10));
    sw.set_now_ms(3000);
    sw.poll();
    sw.set_now_ms(6000);
    for h in &hs {
        h.take_tx();
    }
    (sw, hs)
}

#[test]
fn a_known_destination_reports_the_port_and_bytes_a_real_send_uses() {
    let (mut sw, hs) = l2();
    let (mut twin, ths) = l2();
    let f = frame(C, A);
    let r = dry(&mut sw, &hs.iter().collect::<Vec<_>>(), 0, &f);
    assert!(has(&r, "classify", "p0 (0) access vlan 10"), "{r:#?}");
    assert!(
        has(&r, "lookup", "\u{2192} port 2 (learned, age 3s)"),
        "{r:#?}"
    );
    assert!(has(&r, "learn", "New (dry run: not learned)"), "{r:#?}");
    assert!(
        has(&r, "egress", "port p2 (2) tagged vlan 10 pcp 0, 64 bytes"),
        "{r:#?}"
    );
    // The twin's real run sends exactly that, and only there.
    ths[0].inject(f.clone());
    twin.poll();
    let real: Vec<(u16, Vec<u8>)> = ths
        .iter()
        .enumerate()
        .flat_map(|(i, h)| h.take_tx().into_iter().map(move |f| (i as u16, f)))
        .collect();
    assert_eq!(sent(&r), real);
    assert_eq!(real, vec![(2, tagged(&f, 10))]);
    // A real run on the switch itself learns A, as the dry run did not.
    let learned = |sw: &Switch| sw.fdb_entries(DomainId(0)).unwrap().len();
    assert_eq!(learned(&sw), 1);
    hs[0].inject(f);
    sw.poll();
    assert_eq!(learned(&sw), 2);
}

#[test]
fn a_flood_lists_every_port_of_the_vlan_with_its_tagging() {
    let (mut sw, hs) = l2();
    let (mut twin, ths) = l2();
    let f = frame(MacAddr::BROADCAST, A);
    let r = dry(&mut sw, &hs.iter().collect::<Vec<_>>(), 0, &f);
    assert!(has(&r, "forward", "flood (Broadcast)"), "{r:#?}");
    assert!(has(&r, "egress", "(1) untagged"), "{r:#?}");
    assert!(has(&r, "egress", "(2) tagged vlan 10"), "{r:#?}");
    assert!(!has(&r, "egress", "(3)"), "VLAN 20 is not flooded: {r:#?}");
    ths[0].inject(f);
    twin.poll();
    let mut real: Vec<(u16, Vec<u8>)> = ths
        .iter()
        .enumerate()
        .flat_map(|(i, h)| h.take_tx().into_iter().map(move |f| (i as u16, f)))
        .collect();
    let mut dry = sent(&r);
    real.sort();
    dry.sort();
    assert_eq!(dry, real);
    assert_eq!(dry.len(), 2);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let (mut sw, _hs) = l2();
    let before = state(&sw);
    assert_eq!(
        sw.inject_dry(PortId(9), &frame(C, A), None).unwrap_err(),
        InjectError::NoPort(PortId(9))
    );
    assert_eq!(
        sw.inject_dry(PortId(0), &[0u8; 13], None).unwrap_err(),
        InjectError::Runt(13)
    );
    assert_eq!(
        sw.inject_dry(PortId(2), &frame(C, A), Some(4095))
            .unwrap_err(),
        InjectError::BadVlan(4095)
    );
    assert!(matches!(
        sw.inject_dry(PortId(0), &vec![0u8; 70_000], None),
        Err(InjectError::TooLong(70_000, _))
    ));
    assert_eq!(state(&sw), before);
    // A tag asked for is added as the domain's TPID: the trunk takes it.
    let r = sw.inject_dry(PortId(2), &frame(A, C), Some(10)).unwrap();
    assert_eq!(r.frame, tagged(&frame(A, C), 10));
    assert!(
        has(&r, "egress", "port p0 (0) untagged, 60 bytes"),
        "{r:#?}"
    );
}

/// Domain 0: port a (access 1), gateway 10.0.1.1/24. Domain 1: port b
/// (access 20), gateway 10.0.2.1/24 in VLAN 20; host B (10.0.2.5) known.
fn routed() -> (Switch, MemoryPortHandle, MemoryPortHandle) {
    let mut sw = Switch::new(PacketPool::with_frames(256));
    let d1 = sw.add_domain(DomainConfig::new("net1")).unwrap();
    let d2 = sw.add_domain(DomainConfig::new("net2")).unwrap();
    let (pa, a) = MemoryPort::new("a");
    let (pb, b) = MemoryPort::new("b");
    sw.add_port(Box::new(pa), PortConfig::access(d1, 1))
        .unwrap();
    sw.add_port(Box::new(pb), PortConfig::access(d2, 20))
        .unwrap();
    sw.set_gateway(Gateway::new(d1, G1).with_ipv4(Ipv4Addr::new(10, 0, 1, 1), 24))
        .unwrap();
    let mut g2 = Gateway::new(d2, G2).with_ipv4(Ipv4Addr::new(10, 0, 2, 1), 24);
    g2.vid = 20;
    sw.set_gateway(g2).unwrap();
    sw.add_static_neighbor(d2, IpAddr::V4(Ipv4Addr::new(10, 0, 2, 5)), HOST_B)
        .unwrap();
    sw.add_static(d2, 20, HOST_B, PortId(1)).unwrap();
    sw.set_now_ms(1);
    (sw, a, b)
}

fn udp(dst_mac: MacAddr, dst: [u8; 4], dport: u16, ttl: u8) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(A.0, dst_mac.0)
        .ipv4([10, 0, 1, 10], dst, ttl)
        .udp(40000, dport)
        .write(&mut f, b"hello")
        .unwrap();
    f
}

#[test]
fn a_routed_frame_shows_the_route_the_ttl_edit_and_the_bytes_sent() {
    let (mut sw, a, b) = routed();
    let (mut twin, _ta, tb) = routed();
    let f = udp(G1, [10, 0, 2, 5], 9, 64);
    let r = dry(&mut sw, &[&a, &b], 0, &f);
    assert!(has(&r, "forward", "to the gateway"), "{r:#?}");
    assert!(
        has(
            &r,
            "l3",
            "route 10.0.2.0/24 connected, domain net2, ttl 64\u{2192}63"
        ),
        "{r:#?}"
    );
    assert!(has(&r, "egress", "(1) untagged"), "{r:#?}");
    twin.inject_real(0, f.clone());
    let real = tb.take_tx();
    assert_eq!(sent(&r), vec![(1, real[0].clone())]);
    assert_eq!(real[0][14 + 8], 63, "the TTL a real run writes");
    // No route: the ICMP error goes back out of port a.
    let r = dry(&mut sw, &[&a, &b], 0, &udp(G1, [192, 0, 2, 1], 9, 64));
    assert!(has(&r, "l3", "no route to 192.0.2.1"), "{r:#?}");
    assert_eq!(r.sent.len(), 1, "{r:#?}");
    assert_eq!(r.sent[0].port, PortId(0));
}

trait Real {
    fn inject_real(&mut self, port: u16, f: Vec<u8>);
}

impl Real for Switch {
    /// A real run of `f` on `port` (through a throw-away memory port's
    /// handle is not possible here, so through the pipeline's entry).
    fn inject_real(&mut self, port: u16, f: Vec<u8>) {
        let mut batch = rvs_switch::Batch::new(1);
        let b = self.pool_mut().alloc_from(&f).unwrap();
        batch.push(b).unwrap();
        self.process(PortId(port), &mut batch);
    }
}

fn arp_request(spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(A.0, [0xff; 6])
        .arp(
            ArpPacket::new(
                etherparse::ArpHardwareId::ETHERNET,
                etherparse::EtherType::IPV4,
                ArpOperation::REQUEST,
                &A.0,
                &spa,
                &[0; 6],
                &tpa,
            )
            .unwrap(),
        )
        .write(&mut f)
        .unwrap();
    f
}

#[test]
fn arp_is_answered_but_no_neighbor_is_learned() {
    let (mut sw, a, b) = routed();
    let f = arp_request([10, 0, 1, 10], [10, 0, 1, 1]);
    let r = dry(&mut sw, &[&a, &b], 0, &f);
    assert!(
        has(
            &r,
            "l3",
            "would learn neighbor 10.0.1.10 at 02:00:00:00:00:0a"
        ),
        "{r:#?}"
    );
    assert!(
        r.sent
            .iter()
            .any(|s| s.port == PortId(0) && s.frame[12..14] == [0x08, 0x06]),
        "the ARP reply: {r:#?}"
    );
    let n = sw.router().neighbors().len();
    sw.inject_real(0, f);
    assert_eq!(sw.router().neighbors().len(), n + 1, "a real run learns it");
}

#[test]
fn an_unresolved_next_hop_is_solicited_but_nothing_is_held() {
    let (mut sw, a, b) = routed();
    let f = udp(G1, [10, 0, 2, 6], 9, 64);
    let r = dry(&mut sw, &[&a, &b], 0, &f);
    assert!(
        has(&r, "l3", "neighbor 10.0.2.6 in domain 1 unresolved"),
        "{r:#?}"
    );
    assert!(
        r.sent
            .iter()
            .any(|s| s.port == PortId(1) && s.frame[..6] == [0xff; 6]),
        "the ARP request: {r:#?}"
    );
    let n = sw.router().neighbors().len();
    sw.inject_real(0, f);
    assert_eq!(sw.router().neighbors().len(), n + 1, "a real run holds it");
}

#[test]
fn a_dns_query_says_punted_and_reaches_no_sink() {
    let (mut sw, a, b) = routed();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    sw.set_dns_punt(Some(Box::new(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })));
    let f = udp(G1, [10, 0, 1, 1], 53, 64);
    let r = dry(&mut sw, &[&a, &b], 0, &f);
    assert!(has(&r, "l3", "punted to DNS"), "{r:#?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    sw.inject_real(0, f);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a real run punts");
}

#[test]
fn a_packet_to_a_vip_is_balanced_but_no_flow_is_kept() {
    let (mut sw, a, b) = routed();
    let (mut twin, ta, _tb) = routed();
    let vip = Ipv4Addr::new(10, 0, 1, 100);
    let backend = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 20));
    for s in [&mut sw, &mut twin] {
        s.set_services(vec![Service {
            domain: DomainId(0),
            vip: vip.into(),
            ports: vec![ServicePort {
                proto: 17,
                port: 53,
                target: 5353,
            }],
            backends: vec![backend],
            health: None,
        }])
        .unwrap();
        s.add_static_neighbor(DomainId(0), backend, C).unwrap();
        s.add_static(DomainId(0), 1, C, PortId(0)).unwrap();
    }
    let f = udp(G1, vip.octets(), 53, 64);
    let r = dry(&mut sw, &[&a, &b], 0, &f);
    assert!(
        has(
            &r,
            "l3",
            "load balancer: service 0 to backend 10.0.1.20 (new flow, not recorded)"
        ),
        "{r:#?}"
    );
    twin.inject_real(0, f.clone());
    assert_eq!(
        sent(&r),
        vec![(0, ta.take_tx()[0].clone())],
        "the same rewrite"
    );
    sw.inject_real(0, f);
    assert_eq!(sw.services()[0].flows, 1, "a real run keeps the flow");
}

/// Two ports in an RSTP domain; `prio` is the bridge priority.
fn stp_bridge(name: &str, prio: u16) -> (Switch, Vec<MemoryPortHandle>) {
    let mut sw = Switch::new(PacketPool::with_frames(256));
    let mut dc = DomainConfig::new(name);
    dc.stp = Some(StpConfig {
        priority: prio,
        ..StpConfig::default()
    });
    let d = sw.add_domain(dc).unwrap();
    let mut hs = Vec::new();
    for i in 0..2 {
        let (p, h) = MemoryPort::new(&format!("{name}{i}"));
        let mut cfg = PortConfig::access(d, 1);
        cfg.stp = StpPortConfig::default();
        sw.add_port(Box::new(p), cfg).unwrap();
        hs.push(h);
    }
    (sw, hs)
}

#[test]
fn a_bpdu_is_reported_but_not_given_to_the_spanning_tree() {
    let (mut better, bh) = stp_bridge("root", 4096);
    let (mut sw, hs) = stp_bridge("leaf", 32768);
    better.set_now_ms(10);
    sw.set_now_ms(10);
    let mut bpdu = None;
    for t in 1..50 {
        better.set_now_ms(10 + t * 100);
        better.poll();
        if let Some(f) = bh[0].take_tx().into_iter().next() {
            bpdu = Some(f);
            break;
        }
    }
    let bpdu = bpdu.expect("the root bridge sends BPDUs");
    sw.poll();
    for h in &hs {
        h.take_tx();
    }
    let r = dry(&mut sw, &hs.iter().collect::<Vec<_>>(), 0, &bpdu);
    assert!(has(&r, "stp", "dry run: not applied"), "{r:#?}");
    assert!(r.sent.is_empty(), "{r:#?}");
    let root = |sw: &Switch| sw.stp_info(DomainId(0)).unwrap().unwrap().root_id;
    let own = root(&sw);
    sw.inject_real(0, bpdu);
    assert_ne!(root(&sw), own, "a real run takes the better root");
}

#[test]
fn a_neighbor_solicitation_is_answered_but_no_neighbor_is_learned() {
    let (mut sw, a, b) = routed();
    // The gateway of net1 with an IPv6 address too.
    sw.remove_gateway(DomainId(0)).unwrap();
    sw.set_gateway(
        Gateway::new(DomainId(0), G1)
            .with_ipv4(Ipv4Addr::new(10, 0, 1, 1), 24)
            .with_ipv6("2001:db8:1::1".parse().unwrap(), 64),
    )
    .unwrap();
    let target: std::net::Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    let mut body = target.octets().to_vec();
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&A.0);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(A.0, [0x33, 0x33, 0xff, 0, 0, 1])
        .ipv6(
            "2001:db8:1::a"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
            "ff02::1:ff00:1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
            255,
        )
        .icmpv6_raw(135, 0, [0; 4])
        .write(&mut f, &body)
        .unwrap();
    let r = dry(&mut sw, &[&a, &b], 0, &f);
    assert!(
        has(
            &r,
            "l3",
            "would learn neighbor 2001:db8:1::a at 02:00:00:00:00:0a"
        ),
        "{r:#?}"
    );
    assert!(
        r.sent
            .iter()
            .any(|s| s.port == PortId(0) && s.frame[12..14] == [0x86, 0xdd]),
        "the NA: {r:#?}"
    );
    let n = sw.router().neighbors().len();
    sw.inject_real(0, f);
    assert_eq!(sw.router().neighbors().len(), n + 1, "a real run learns it");
}

/// The learn verdict is the one learning reaches, limits and damping
/// included: a domain full of stations, and a station moving once too
/// often in the damping window.
#[test]
fn the_learn_verdict_knows_the_domain_limit_and_damping() {
    let mut sw = Switch::new(PacketPool::with_frames(256));
    let mut cfg = DomainConfig::new("d");
    cfg.fdb.max_entries = 1;
    cfg.fdb.damping = rvs_switch::MoveDamping {
        max_moves: 1,
        window_secs: 60,
        hold_secs: 60,
    };
    let d = sw.add_domain(cfg).unwrap();
    let mut hs = Vec::new();
    for i in 0..2 {
        let (p, h) = MemoryPort::new(&format!("p{i}"));
        sw.add_port(Box::new(p), PortConfig::access(d, 1)).unwrap();
        hs.push(h);
    }
    let all: Vec<&MemoryPortHandle> = hs.iter().collect();
    let where_is = |sw: &Switch, mac: MacAddr| {
        sw.fdb_entries(d)
            .unwrap()
            .iter()
            .find(|e| e.mac == mac)
            .map(|e| e.port.0)
    };
    sw.set_now_ms(1000);
    hs[0].inject(frame(MacAddr::BROADCAST, A));
    sw.poll();
    for h in &hs {
        h.take_tx();
    }
    // The domain holds one station (A): C would not be learned.
    let r = dry(&mut sw, &all, 1, &frame(A, C));
    assert!(
        has(&r, "learn", "LimitDomain (dry run: not learned)"),
        "{r:#?}"
    );
    hs[1].inject(frame(A, C));
    sw.poll();
    assert_eq!(where_is(&sw, C), None, "the real run agrees");
    // A moves to p1 once (allowed); a second move in the window is damped.
    hs[1].inject(frame(MacAddr::BROADCAST, A));
    sw.poll();
    assert_eq!(where_is(&sw, A), Some(1));
    for h in &hs {
        h.take_tx();
    }
    let r = dry(&mut sw, &all, 0, &frame(MacAddr::BROADCAST, A));
    assert!(
        has(&r, "learn", "MoveDamped (dry run: not learned)"),
        "{r:#?}"
    );
    hs[0].inject(frame(MacAddr::BROADCAST, A));
    sw.poll();
    assert_eq!(where_is(&sw, A), Some(1), "the real run agrees: damped");
}
