//! The router inside the switch: hosts in two bridge domains reach each
//! other through the domains' gateways, frames in and out of memory ports,
//! checked with etherparse as an independent parser.

use std::net::Ipv4Addr;

use etherparse::{
    ArpOperation, ArpPacket, EtherType, Icmpv4Type, NetSlice, PacketBuilder, SlicedPacket,
    TransportSlice,
};
use rvs_switch::router::{Gateway, NextHop};
use rvs_switch::vlan::VlanMode;
use rvs_switch::{
    DomainConfig, DomainId, DropReason, MacAddr, MemoryPort, MemoryPortHandle, PacketPool,
    PortConfig, StageCounter, Switch,
};

const G1: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const G2: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
const A: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];
const C: [u8; 6] = [2, 0, 0, 0, 0, 0x0c];

struct Rig {
    sw: Switch,
    d1: DomainId,
    d2: DomainId,
    /// Ports: a (d1), b (d2), c (d2, trunk carrying VLAN 20 tagged).
    a: MemoryPortHandle,
    b: MemoryPortHandle,
    c: MemoryPortHandle,
    now: u64,
}

fn rig() -> Rig {
    let mut sw = Switch::new(PacketPool::with_frames(1024));
    let d1 = sw.add_domain(DomainConfig::new("net1")).unwrap();
    let d2 = sw.add_domain(DomainConfig::new("net2")).unwrap();
    let (pa, a) = MemoryPort::new("a");
    let (pb, b) = MemoryPort::new("b");
    let (pc, c) = MemoryPort::new("c");
    sw.add_port(Box::new(pa), PortConfig::access(d1, 1))
        .unwrap();
    sw.add_port(Box::new(pb), PortConfig::access(d2, 20))
        .unwrap();
    let trunk = VlanMode::Trunk {
        allowed: "20".parse().unwrap(),
        native: None,
    };
    sw.add_port(Box::new(pc), PortConfig::access(d2, 1).with_vlan(trunk))
        .unwrap();
    sw.set_gateway(Gateway::new(d1, G1).with_ipv4(Ipv4Addr::new(10, 0, 1, 1), 24))
        .unwrap();
    let mut g2 = Gateway::new(d2, G2).with_ipv4(Ipv4Addr::new(10, 0, 2, 1), 24);
    g2.vid = 20;
    sw.set_gateway(g2).unwrap();
    Rig {
        sw,
        d1,
        d2,
        a,
        b,
        c,
        now: 1,
    }
}

impl Rig {
    fn send(&mut self, h: usize, f: Vec<u8>) {
        [&self.a, &self.b, &self.c][h].inject(f);
        self.now += 1;
        self.sw.set_now_ms(self.now);
        self.sw.poll();
    }
}

fn arp(op: ArpOperation, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let dst = if op == ArpOperation::REQUEST {
        [0xff; 6]
    } else {
        tha
    };
    let p = ArpPacket::new(
        etherparse::ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        op,
        &sha,
        &spa,
        &tha,
        &tpa,
    )
    .unwrap();
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&p.to_bytes());
    f
}

fn ping(src: [u8; 6], dst: [u8; 6], sip: [u8; 4], dip: [u8; 4], ttl: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv4(sip, dip, ttl)
        .icmpv4_echo_request(7, 1);
    let payload = [0x5a; 32];
    let mut f = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut f, &payload).unwrap();
    f
}

/// (dst MAC, src MAC, TTL, ICMP type) of an untagged IPv4 ICMP frame.
fn icmp_of(f: &[u8]) -> ([u8; 6], [u8; 6], u8, Icmpv4Type) {
    let p = SlicedPacket::from_ethernet(f).expect("parses");
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4: {f:02x?}")
    };
    let ttl = ip.header().ttl();
    let Some(TransportSlice::Icmpv4(m)) = &p.transport else {
        panic!("not ICMP")
    };
    (
        f[0..6].try_into().unwrap(),
        f[6..12].try_into().unwrap(),
        ttl,
        m.icmp_type(),
    )
}

fn is_arp_reply_from_gw(f: &[u8], gw: MacAddr, to: [u8; 6]) -> bool {
    f.len() >= 42
        && f[0..6] == to
        && f[6..12] == gw.0
        && f[12..14] == [0x08, 0x06]
        && f[20..22] == [0, 2]
}

#[test]
fn the_gateway_answers_arp_and_ping_for_its_address() {
    let mut r = rig();
    r.send(
        0,
        arp(
            ArpOperation::REQUEST,
            A,
            [10, 0, 1, 10],
            [0; 6],
            [10, 0, 1, 1],
        ),
    );
    let out = r.a.take_tx();
    assert_eq!(
        out.len(),
        1,
        "one ARP reply, the request is not echoed back"
    );
    assert!(is_arp_reply_from_gw(&out[0], G1, A), "{:02x?}", out[0]);
    r.send(0, ping(A, G1.0, [10, 0, 1, 10], [10, 0, 1, 1], 64));
    let out = r.a.take_tx();
    assert_eq!(out.len(), 1);
    let (dst, src, _, t) = icmp_of(&out[0]);
    assert_eq!((dst, src), (A, G1.0));
    assert!(matches!(t, Icmpv4Type::EchoReply(_)), "{t:?}");
    // Nothing leaked into the other network.
    assert!(r.b.take_tx().is_empty() && r.c.take_tx().is_empty());
}

#[test]
fn hosts_in_two_networks_reach_each_other_through_the_gateways() {
    let mut r = rig();
    // A pings B (10.0.2.20 in net2): the router must ARP for B in VLAN 20
    // of net2 — untagged on b's access port, tagged 20 on the trunk c.
    r.send(0, ping(A, G1.0, [10, 0, 1, 10], [10, 0, 2, 20], 64));
    let on_b = r.b.take_tx();
    let on_c = r.c.take_tx();
    assert_eq!(on_b.len(), 1, "ARP request flooded to b");
    assert_eq!(on_b[0][0..6], [0xff; 6]);
    assert_eq!(on_b[0][6..12], G2.0);
    assert_eq!(on_b[0][12..14], [0x08, 0x06]);
    assert_eq!(on_c.len(), 1, "and to the trunk, tagged");
    assert_eq!(on_c[0][12..16], [0x81, 0x00, 0x00, 20]);
    assert!(r.a.take_tx().is_empty(), "nothing back into net1 yet");
    // B answers; the held echo request goes out to B, TTL decremented.
    r.send(
        1,
        arp(ArpOperation::REPLY, B, [10, 0, 2, 20], G2.0, [10, 0, 2, 1]),
    );
    let on_b = r.b.take_tx();
    assert_eq!(on_b.len(), 1, "held packet released: {on_b:02x?}");
    let (dst, src, ttl, t) = icmp_of(&on_b[0]);
    assert_eq!((dst, src, ttl), (B, G2.0, 63));
    assert!(matches!(t, Icmpv4Type::EchoRequest(_)));
    assert!(
        r.c.take_tx().is_empty(),
        "B is known: no flood to the trunk"
    );
    // B's reply goes back to A (the router learned A from its ARP-less
    // ping? No: it must resolve A first).
    r.send(1, ping(B, G2.0, [10, 0, 2, 20], [10, 0, 1, 10], 64));
    let on_a = r.a.take_tx();
    assert_eq!(on_a.len(), 1, "ARP request for A");
    assert_eq!(on_a[0][12..14], [0x08, 0x06]);
    r.send(
        0,
        arp(ArpOperation::REPLY, A, [10, 0, 1, 10], G1.0, [10, 0, 1, 1]),
    );
    let on_a = r.a.take_tx();
    assert_eq!(on_a.len(), 1);
    let (dst, src, ttl, t) = icmp_of(&on_a[0]);
    assert_eq!((dst, src, ttl), (A, G1.0, 63));
    assert!(matches!(t, Icmpv4Type::EchoRequest(_)));
    assert!(
        r.sw.router()
            .counters()
            .stages
            .get(StageCounter::L3Forwarded)
            >= 2
    );
}

#[test]
fn a_host_behind_a_trunk_is_routed_with_its_tag() {
    let mut r = rig();
    r.sw.add_static_neighbor(r.d2, [10, 0, 2, 30].into(), MacAddr(C))
        .unwrap();
    // C is learned on the trunk port in VLAN 20 from a tagged frame.
    let mut hello = ping(C, G2.0, [10, 0, 2, 30], [10, 0, 2, 1], 64);
    hello.splice(12..12, [0x81, 0x00, 0x00, 20]);
    r.send(2, hello);
    let back = r.c.take_tx();
    assert_eq!(back.len(), 1, "the gateway answered C's ping, tagged");
    assert_eq!(back[0][12..16], [0x81, 0x00, 0x00, 20]);
    // A pings C: the router knows C; the frame leaves the trunk tagged 20.
    r.send(0, ping(A, G1.0, [10, 0, 1, 10], [10, 0, 2, 30], 64));
    let on_c = r.c.take_tx();
    assert_eq!(on_c.len(), 1);
    assert_eq!(on_c[0][12..16], [0x81, 0x00, 0x00, 20]);
    let mut untagged = on_c[0].clone();
    untagged.drain(12..16);
    let (dst, src, ttl, _) = icmp_of(&untagged);
    assert_eq!((dst, src, ttl), (C, G2.0, 63));
    assert!(r.b.take_tx().is_empty(), "C is learned: no flood to b");
}

#[test]
fn ttl_expiry_is_answered_with_time_exceeded_from_the_gateway() {
    let mut r = rig();
    r.sw.add_static_neighbor(r.d1, [10, 0, 1, 10].into(), MacAddr(A))
        .unwrap();
    r.send(0, ping(A, G1.0, [10, 0, 1, 10], [10, 0, 2, 20], 1));
    let out = r.a.take_tx();
    assert_eq!(out.len(), 1);
    let (dst, src, _, t) = icmp_of(&out[0]);
    assert_eq!((dst, src), (A, G1.0));
    assert!(matches!(t, Icmpv4Type::TimeExceeded(_)), "{t:?}");
    assert!(r.b.take_tx().is_empty());
}

#[test]
fn static_routes_and_unreachable_destinations() {
    let mut r = rig();
    r.sw.add_static_neighbor(r.d1, [10, 0, 1, 10].into(), MacAddr(A))
        .unwrap();
    r.sw.add_static_neighbor(r.d2, [10, 0, 2, 254].into(), MacAddr(B))
        .unwrap();
    r.sw.add_route(
        0,
        [172, 16, 0, 0].into(),
        12,
        NextHop::Via {
            gateway: [10, 0, 2, 254].into(),
            domain: r.d2,
        },
    )
    .unwrap();
    r.send(0, ping(A, G1.0, [10, 0, 1, 10], [172, 20, 1, 1], 64));
    let on_b = r.b.take_tx();
    assert_eq!(on_b.len(), 1, "via the next hop's MAC");
    assert_eq!(icmp_of(&on_b[0]).0, B);
    // No route: destination unreachable back to A.
    r.send(0, ping(A, G1.0, [10, 0, 1, 10], [192, 0, 2, 1], 64));
    let out = r.a.take_tx();
    assert_eq!(out.len(), 1);
    assert!(matches!(
        icmp_of(&out[0]).3,
        Icmpv4Type::DestinationUnreachable(_)
    ));
    assert_eq!(r.sw.router().counters().drops_by(DropReason::L3NoRoute), 1);
}

#[test]
fn a_domain_without_gateway_is_plain_l2_and_removing_one_stops_routing() {
    let mut r = rig();
    r.sw.remove_gateway(r.d1).unwrap();
    // A's ping to the old gateway MAC floods as unknown unicast within
    // net1 (only port a: nothing goes out) and never reaches net2.
    r.send(0, ping(A, G1.0, [10, 0, 1, 10], [10, 0, 2, 20], 64));
    assert!(r.b.take_tx().is_empty() && r.c.take_tx().is_empty());
    assert!(r.a.take_tx().is_empty());
    // ARP for the old gateway address gets no answer.
    r.send(
        0,
        arp(
            ArpOperation::REQUEST,
            A,
            [10, 0, 1, 10],
            [0; 6],
            [10, 0, 1, 1],
        ),
    );
    assert!(r.a.take_tx().is_empty());
    assert!(r.sw.router().gateway(r.d1).is_none());
    assert!(r.sw.router().gateway(r.d2).is_some());
}

#[test]
fn routing_off_keeps_the_gateway_but_isolates_the_network() {
    let mut r = rig();
    let mut g = r.sw.router().gateway(r.d1).unwrap().clone();
    g.routing = false;
    r.sw.set_gateway(g).unwrap();
    r.sw.add_static_neighbor(r.d2, [10, 0, 2, 20].into(), MacAddr(B))
        .unwrap();
    r.send(0, ping(A, G1.0, [10, 0, 1, 10], [10, 0, 2, 20], 64));
    assert!(r.b.take_tx().is_empty(), "not routed");
    assert_eq!(
        r.sw.router()
            .counters()
            .drops_by(DropReason::L3RoutingDisabled),
        1
    );
    // The gateway still answers its own address.
    r.send(0, ping(A, G1.0, [10, 0, 1, 10], [10, 0, 1, 1], 64));
    assert_eq!(r.a.take_tx().len(), 1);
}

#[test]
fn unanswered_arp_is_retried_then_the_held_packet_freed() {
    let mut r = rig();
    let free0 = r.sw.pool().available();
    r.send(0, ping(A, G1.0, [10, 0, 1, 10], [10, 0, 2, 99], 64));
    assert_eq!(r.b.take_tx().len(), 1);
    // Let neighbor timers run for 10 s of switch time.
    for _ in 0..100 {
        r.now += 100;
        r.sw.set_now_ms(r.now);
        r.sw.poll();
    }
    let retries = r.b.take_tx().len();
    assert!((1..=10).contains(&retries), "{retries} retransmits");
    assert!(
        r.sw.router()
            .counters()
            .drops_by(DropReason::NeighUnresolved)
            >= 1
    );
    assert_eq!(r.sw.pool().available(), free0, "no buffer leaked");
    let _ = r.d2;
}

#[test]
fn isolated_networks_still_reach_an_external_uplink_but_not_each_other() {
    let mut r = rig();
    for d in [r.d1, r.d2] {
        let mut g = r.sw.router().gateway(d).unwrap().clone();
        g.routing = false;
        r.sw.set_gateway(g).unwrap();
    }
    let up = r.sw.add_domain(DomainConfig::new("uplink")).unwrap();
    let (pu, u) = MemoryPort::new("u");
    r.sw.add_port(Box::new(pu), PortConfig::access(up, 1))
        .unwrap();
    let mut g =
        Gateway::new(up, MacAddr([2, 0, 0, 0, 9, 1])).with_ipv4(Ipv4Addr::new(10, 0, 9, 1), 24);
    g.routing = false;
    g.external = true;
    r.sw.set_gateway(g).unwrap();
    const UP: [u8; 6] = [2, 0, 0, 0, 9, 0xfe];
    r.sw.add_static_neighbor(up, [10, 0, 9, 254].into(), MacAddr(UP))
        .unwrap();
    r.sw.add_static_neighbor(r.d1, [10, 0, 1, 10].into(), MacAddr(A))
        .unwrap();
    r.sw.add_static_neighbor(r.d2, [10, 0, 2, 20].into(), MacAddr(B))
        .unwrap();
    r.sw.add_route(
        0,
        [0, 0, 0, 0].into(),
        0,
        NextHop::Via {
            gateway: [10, 0, 9, 254].into(),
            domain: up,
        },
    )
    .unwrap();
    // Out through the uplink, twice (the second time by the cached adjacency).
    for _ in 0..2 {
        r.send(0, ping(A, G1.0, [10, 0, 1, 10], [192, 0, 2, 1], 64));
        let out = u.take_tx();
        assert_eq!(out.len(), 1, "to the uplink");
        assert_eq!(icmp_of(&out[0]).0, UP);
    }
    // And back in from the uplink.
    u.inject(ping(
        UP,
        [2, 0, 0, 0, 9, 1],
        [192, 0, 2, 1],
        [10, 0, 1, 10],
        64,
    ));
    r.now += 1;
    r.sw.set_now_ms(r.now);
    r.sw.poll();
    assert_eq!(r.a.take_tx().len(), 1, "the answer reaches A");
    // Still no route between the two isolated networks.
    r.send(0, ping(A, G1.0, [10, 0, 1, 10], [10, 0, 2, 20], 64));
    assert!(r.b.take_tx().is_empty());
    assert!(u.take_tx().is_empty(), "nor via the uplink");
}

#[test]
fn a_routed_frame_to_a_disabled_port_is_dropped_and_counted_there() {
    let mut r = rig();
    // A reaches B once (ARP resolved, B learned on port b).
    r.send(0, ping(A, G1.0, [10, 0, 1, 10], [10, 0, 2, 20], 64));
    r.b.take_tx();
    r.c.take_tx();
    r.send(
        1,
        arp(ArpOperation::REPLY, B, [10, 0, 2, 20], G2.0, [10, 0, 2, 1]),
    );
    assert_eq!(r.b.take_tx().len(), 1, "the held ping reached B");
    // Port b goes down administratively; its FDB entry stays.
    let b = r.sw.port_id("b").unwrap();
    let cfg = r.sw.port_info(b).unwrap().cfg;
    r.sw.set_port_config(
        b,
        PortConfig {
            enabled: false,
            ..cfg
        },
    )
    .unwrap();
    let free = r.sw.pool().available();
    r.send(0, ping(A, G1.0, [10, 0, 1, 10], [10, 0, 2, 20], 64));
    assert!(r.b.take_tx().is_empty(), "nothing leaves a disabled port");
    let drops = r.sw.port_info(b).unwrap().counters;
    assert_eq!(drops.drops_by(DropReason::NoEgressMember), 1, "{drops:?}");
    assert_eq!(
        r.sw.pool().available(),
        free,
        "the frame went back to the pool"
    );
}
