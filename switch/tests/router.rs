//! Golden-frame tests of the router (exact bytes of what the gateway sends)
//! with etherparse as an independent parser and checksum oracle. The LPM
//! property tests against a naive reference live beside `lpm4`/`lpm6`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use rvs_switch::router::{Gateway, L3Out, NeighKey, NeighState, NextHop, Router, RouterConfig};
use rvs_switch::{Batch, DomainId, DropReason, MacAddr, PacketPool, StageCounter};

const D1: DomainId = DomainId(1);
const D2: DomainId = DomainId(2);
const D3: DomainId = DomainId(3);
const D4: DomainId = DomainId(4);
const G1: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const G2: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
const G3: MacAddr = MacAddr([2, 0, 0, 0, 3, 1]);
const H1: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const H2: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x14]);

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 1071, written again here so expected frames do not depend on the
/// code under test.
fn csum(parts: &[&[u8]]) -> u16 {
    let mut all = Vec::new();
    parts.iter().for_each(|p| all.extend_from_slice(p));
    if all.len() % 2 == 1 {
        all.push(0);
    }
    let mut s: u32 = all
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Fill an IPv4 header checksum (bytes 10..12 of `ip`) in place.
fn fix_ip(frame: &mut [u8]) {
    frame[24..26].fill(0);
    let c = csum(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Fill the ICMPv4 checksum of a frame with a 20-byte IPv4 header.
fn fix_icmp(frame: &mut [u8]) {
    frame[36..38].fill(0);
    let c = csum(&[&frame[34..]]);
    frame[36..38].copy_from_slice(&c.to_be_bytes());
}

/// Fill the ICMPv6 checksum of an Ethernet+IPv6+ICMPv6 frame.
fn fix_icmp6(frame: &mut [u8]) {
    frame[56..58].fill(0);
    let len = (frame.len() - 54) as u32;
    let c = csum(&[
        &frame[22..54],
        &len.to_be_bytes(),
        &[0, 0, 0, 58],
        &frame[54..],
    ]);
    frame[56..58].copy_from_slice(&c.to_be_bytes());
}

/// etherparse must parse the frame and agree that every checksum holds.
fn oracle(f: &[u8]) {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let p = SlicedPacket::from_ethernet(f).expect("etherparse parses the frame");
    match (&p.net, &p.transport) {
        (Some(NetSlice::Ipv4(ip)), t) => {
            let h = ip.header();
            assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
            if let Some(TransportSlice::Icmpv4(m)) = t {
                assert_eq!(m.icmp_type().calc_checksum(m.payload()), m.checksum());
            }
        }
        (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Icmpv6(m))) => {
            let h = ip.header();
            assert!(m.is_checksum_valid(h.source(), h.destination()));
        }
        (Some(_), _) => {}
        (None, _) => panic!("no network layer in {f:02x?}"),
    }
}

type Sent = Vec<(DomainId, u16, Vec<u8>)>;

struct Lab {
    r: Router,
    pool: PacketPool,
    out: L3Out,
}

impl Lab {
    fn with(cfg: RouterConfig) -> Self {
        let mut r = Router::new(cfg, 0);
        let gw = |d, m, v4: [u8; 4], v6: &str| {
            Gateway::new(d, m)
                .with_ipv4(Ipv4Addr::from(v4), 24)
                .with_ipv6(v6.parse().unwrap(), 64)
        };
        r.add_gateway(gw(D1, G1, [10, 0, 1, 1], "2001:db8:1::1"))
            .unwrap();
        r.add_gateway(gw(D2, G2, [10, 0, 2, 1], "2001:db8:2::1"))
            .unwrap();
        let mut g3 = gw(D3, G3, [10, 0, 3, 1], "2001:db8:3::1");
        g3.mtu = 1280;
        r.add_gateway(g3).unwrap();
        r.add_route(
            0,
            IpAddr::V4(Ipv4Addr::new(192, 168, 0, 0)),
            16,
            NextHop::Via {
                gateway: IpAddr::V4(Ipv4Addr::new(10, 0, 2, 20)),
                domain: D2,
            },
        )
        .unwrap();
        Lab {
            r,
            pool: PacketPool::with_frames(256),
            out: L3Out::default(),
        }
    }

    fn new() -> Self {
        Self::with(RouterConfig::default())
    }

    fn collect(&mut self) -> Sent {
        self.out
            .frames
            .drain(..)
            .map(|f| {
                let bytes = self.pool.data(&f.buf).to_vec();
                self.pool.free(f.buf);
                (f.domain, f.vid, bytes)
            })
            .collect()
    }

    fn send(&mut self, d: DomainId, frames: &[Vec<u8>], now: u64) -> Sent {
        let mut b = Batch::new(64);
        for f in frames {
            b.push(self.pool.alloc_from(f).unwrap()).unwrap();
        }
        self.r
            .process(&mut self.pool, d, &mut b, now, &mut self.out);
        assert!(b.is_empty(), "every frame leaves the batch");
        self.collect()
    }

    fn tick(&mut self, now: u64) -> Sent {
        self.r.tick(&mut self.pool, now, &mut self.out);
        self.collect()
    }

    fn neighbor(&mut self, d: DomainId, ip: IpAddr, mac: MacAddr) {
        self.r
            .add_static_neighbor(&mut self.pool, d, ip, mac, &mut self.out);
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.r.counters().drops_by(r)
    }
    fn stage(&self, c: StageCounter) -> u64 {
        self.r.counters().stages.get(c)
    }

    /// Everything the router held must be back in the pool.
    fn assert_no_leak(&mut self) {
        self.r.tick(&mut self.pool, u64::MAX / 2, &mut self.out);
        self.out.free_all(&mut self.pool);
        assert_eq!(self.pool.available(), self.pool.capacity(), "leaked frames");
    }
}

/// H1 (10.0.1.10) → `dst`, UDP 12345 → 53 "ping", TTL `ttl`, DF, padded to 60.
fn udp4(dst: [u8; 4], ttl: u8) -> Vec<u8> {
    let mut f = hex("020000000101 02000000000a 0800
         4500 0020 1234 4000 0011 0000 0a00010a 00000000
         3039 0035 000c 0000 70696e67");
    f[22] = ttl;
    f[30..34].copy_from_slice(&dst);
    fix_ip(&mut f);
    f.resize(60, 0);
    f
}

#[test]
fn arp_request_for_the_gateway_gets_the_exact_reply() {
    let mut lab = Lab::new();
    let req = hex("ffffffffffff 02000000000a 0806 0001 0800 0604 0001
         02000000000a 0a00010a 000000000000 0a000101 000000000000000000000000000000000000");
    let out = lab.send(D1, &[req], 0);
    let want = hex("02000000000a 020000000101 0806 0001 0800 0604 0002
         020000000101 0a000101 02000000000a 0a00010a");
    assert_eq!(out, vec![(D1, 1, want)]);
    assert_eq!(lab.stage(StageCounter::L3ArpReplies), 1);
    // The requester was learned.
    let k = NeighKey::v4(D1, 0x0a00010a);
    assert_eq!(lab.r.neighbors().resolve(&k), Some(H1));
    // A request for someone else is consumed, not answered.
    let other = hex("ffffffffffff 02000000000b 0806 0001 0800 0604 0001
         02000000000b 0a00010b 000000000000 0a000163");
    assert!(lab.send(D1, &[other], 0).is_empty());
    lab.assert_no_leak();
}

#[test]
fn echo_request_to_the_gateway_gets_the_exact_reply() {
    let mut lab = Lab::new();
    let mut req = hex("020000000101 02000000000a 0800
         4500 0024 abcd 0000 4001 0000 0a00010a 0a000101
         0800 0000 1234 0001 7276737769746368");
    fix_ip(&mut req);
    fix_icmp(&mut req);
    let out = lab.send(D1, &[req], 0);
    let mut want = hex("02000000000a 020000000101 0800
         4500 0024 abcd 0000 4001 0000 0a000101 0a00010a
         0000 0000 1234 0001 7276737769746368");
    fix_ip(&mut want);
    fix_icmp(&mut want);
    assert_eq!(out, vec![(D1, 1, want.clone())]);
    oracle(&want);
    assert_eq!(lab.stage(StageCounter::L3EchoReplies), 1);
    lab.assert_no_leak();
}

#[test]
fn forwarded_frame_has_ttl_minus_one_new_macs_and_a_valid_checksum() {
    let mut lab = Lab::new();
    lab.neighbor(D2, IpAddr::V4(Ipv4Addr::new(10, 0, 2, 20)), H2);
    let out = lab.send(D1, &[udp4([10, 0, 2, 20], 64)], 0);
    let mut want = udp4([10, 0, 2, 20], 63);
    want.truncate(14 + 32); // Ethernet padding is not routed
    want[0..6].copy_from_slice(&H2.0);
    want[6..12].copy_from_slice(&G2.0);
    assert_eq!(out, vec![(D2, 1, want.clone())]);
    oracle(&want);
    // A static route via 10.0.2.20 goes to the same neighbor.
    let out = lab.send(D1, &[udp4([192, 168, 7, 7], 9)], 0);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].2[0..6], &H2.0);
    assert_eq!(out[0].2[22], 8);
    oracle(&out[0].2);
    assert_eq!(lab.stage(StageCounter::L3Forwarded), 2);
    lab.assert_no_leak();
}

#[test]
fn ttl_expiry_sends_time_exceeded_quoting_the_original() {
    let mut lab = Lab::new();
    let orig = udp4([10, 0, 2, 20], 1);
    let out = lab.send(D1, std::slice::from_ref(&orig), 0);
    let mut want = hex("02000000000a 020000000101 0800
         4500 003c 0000 4000 4001 0000 0a000101 0a00010a
         0b00 0000 00000000");
    want.extend_from_slice(&orig[14..14 + 32]);
    fix_ip(&mut want);
    fix_icmp(&mut want);
    assert_eq!(out, vec![(D1, 1, want.clone())]);
    oracle(&want);
    assert_eq!(lab.drops(DropReason::L3TtlExceeded), 1);
    assert_eq!(lab.stage(StageCounter::L3IcmpErrors), 1);
    lab.assert_no_leak();
}

#[test]
fn no_route_sends_net_unreachable() {
    let mut lab = Lab::new();
    let orig = udp4([172, 16, 0, 1], 64);
    let out = lab.send(D1, std::slice::from_ref(&orig), 0);
    let mut want = hex("02000000000a 020000000101 0800
         4500 003c 0000 4000 4001 0000 0a000101 0a00010a
         0300 0000 00000000");
    want.extend_from_slice(&orig[14..14 + 32]);
    fix_ip(&mut want);
    fix_icmp(&mut want);
    assert_eq!(out, vec![(D1, 1, want.clone())]);
    oracle(&want);
    assert_eq!(lab.drops(DropReason::L3NoRoute), 1);
    lab.assert_no_leak();
}

#[test]
fn df_packet_over_the_egress_mtu_gets_frag_needed_with_the_mtu() {
    let mut lab = Lab::new();
    lab.neighbor(D3, IpAddr::V4(Ipv4Addr::new(10, 0, 3, 5)), H2);
    let mut big = udp4([10, 0, 3, 5], 64);
    big.truncate(34);
    big[16..18].copy_from_slice(&1400u16.to_be_bytes());
    fix_ip(&mut big);
    big.extend((0..1380).map(|i| i as u8));
    let out = lab.send(D1, std::slice::from_ref(&big), 0);
    let mut want = hex("02000000000a 020000000101 0800
         4500 0240 0000 4000 4001 0000 0a000101 0a00010a
         0304 0000 0000 0500");
    want.extend_from_slice(&big[14..14 + 548]);
    fix_ip(&mut want);
    fix_icmp(&mut want);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].2.len(), 14 + 576);
    assert_eq!(out, vec![(D1, 1, want.clone())]);
    oracle(&want);
    assert_eq!(lab.drops(DropReason::L3FragNeeded), 1);
    // Without DF it is dropped (no fragmentation), not answered.
    big[20] = 0;
    fix_ip(&mut big);
    assert!(lab.send(D1, &[big], 0).is_empty());
    assert_eq!(lab.drops(DropReason::L3FragUnsupported), 1);
    lab.assert_no_leak();
}

#[test]
fn unresolved_neighbor_is_solicited_held_and_released() {
    let mut lab = Lab::new();
    let pkts: Vec<_> = (0..4).map(|_| udp4([10, 0, 2, 30], 64)).collect();
    let out = lab.send(D1, &pkts, 0);
    let want_req = hex("ffffffffffff 020000000201 0806 0001 0800 0604 0001
         020000000201 0a000201 000000000000 0a00021e");
    assert_eq!(out, vec![(D2, 1, want_req)]);
    assert_eq!(lab.stage(StageCounter::NeighHeld), 3);
    assert_eq!(lab.drops(DropReason::NeighPendingFull), 1);
    let reply = hex("020000000201 02000000001e 0806 0001 0800 0604 0002
         02000000001e 0a00021e 020000000201 0a000201");
    let out = lab.send(D2, &[reply], 5);
    assert_eq!(out.len(), 3, "held packets released");
    for (d, vid, f) in &out {
        assert_eq!((*d, *vid), (D2, 1));
        assert_eq!(&f[0..12], &hex("02000000001e 020000000201")[..]);
        assert_eq!(f[22], 63);
        oracle(f);
    }
    assert_eq!(lab.stage(StageCounter::NeighReleased), 3);
    lab.assert_no_leak();
}

#[test]
fn neighbor_timeout_retransmits_then_answers_host_unreachable() {
    let mut lab = Lab::new();
    let orig = udp4([10, 0, 2, 40], 64);
    let out = lab.send(D1, &[orig.clone(), orig.clone()], 0);
    assert_eq!(out.len(), 1);
    assert!(lab.tick(999).is_empty());
    let r1 = lab.tick(1000);
    let r2 = lab.tick(2000);
    assert_eq!(r1.len(), 1);
    assert_eq!(r1, r2, "same ARP request retransmitted");
    assert_eq!(r1[0].2, out[0].2);
    let k = NeighKey::v4(D2, 0x0a000228);
    assert_eq!(
        lab.r.neighbors().get(&k).unwrap().state,
        NeighState::Incomplete
    );
    assert_eq!(lab.drops(DropReason::NeighUnresolved), 0, "still held");
    // The third probe went unanswered: each held packet is dropped, counted,
    // and its sender (back in D1) told the host is unreachable, quoting the
    // packet as it was forwarded (TTL already one less).
    let errs = lab.tick(3000);
    assert!(lab.r.neighbors().get(&k).is_none());
    assert_eq!(lab.drops(DropReason::NeighUnresolved), 2);
    let mut quoted = orig.clone();
    quoted[22] = 63;
    fix_ip(&mut quoted);
    let mut want = hex("02000000000a 020000000101 0800
         4500 003c 0000 4000 4001 0000 0a000101 0a00010a
         0301 0000 00000000");
    want.extend_from_slice(&quoted[14..14 + 32]);
    fix_ip(&mut want);
    fix_icmp(&mut want);
    oracle(&want);
    assert_eq!(errs, vec![(D1, 1, want.clone()), (D1, 1, want)]);
    assert_eq!(lab.stage(StageCounter::L3IcmpErrors), 2);
    // IPv6: address unreachable (type 1 code 3) back to the sender.
    let udp = hex("3039 0035 000c 0000 70696e67");
    let pkt = ip6(&G1.0, "2001:db8:2::99", 64, 17, &udp);
    assert_eq!(lab.send(D1, &[pkt], 10_000).len(), 1, "NS");
    for t in [11_000, 12_000] {
        assert_eq!(lab.tick(t).len(), 1, "NS retransmit");
    }
    let errs = lab.tick(13_000);
    assert_eq!(errs.len(), 1);
    let e = &errs[0].2;
    assert_eq!(errs[0].0, D1);
    assert_eq!(&e[0..6], &H1.0);
    assert_eq!((e[54], e[55]), (1, 3));
    assert_eq!(&e[38..54], &v6("2001:db8:1::a"));
    oracle(e);
    assert_eq!(lab.drops(DropReason::NeighUnresolved), 3);
    lab.assert_no_leak();
}

#[test]
fn cached_adjacency_follows_neighbor_and_policy_changes() {
    let mut lab = Lab::new();
    lab.neighbor(D2, IpAddr::V4(Ipv4Addr::new(10, 0, 2, 20)), H2);
    let to_via = || udp4([192, 168, 3, 3], 64);
    // The first packet builds the adjacency, the second uses it.
    for _ in 0..2 {
        let out = lab.send(D1, &[to_via()], 0);
        assert_eq!(&out[0].2[0..6], &H2.0);
    }
    // Routing turned off: the cached rewrite must not bypass the policy.
    lab.r.set_routing(D1, false).unwrap();
    assert!(lab.send(D1, &[to_via()], 0).is_empty());
    assert_eq!(lab.drops(DropReason::L3RoutingDisabled), 1);
    lab.r.set_routing(D1, true).unwrap();
    // The next hop moves to a new MAC (a gratuitous ARP reply from it).
    let garp = hex("ffffffffffff 020000000099 0806 0001 0800 0604 0002
         020000000099 0a000214 ffffffffffff 0a000214");
    // Permanent entries do not move; use a learned one instead.
    let mut lab2 = Lab::new();
    let req = hex("ffffffffffff 020000000014 0806 0001 0800 0604 0001
         020000000014 0a000214 000000000000 0a000201");
    assert_eq!(lab2.send(D2, &[req], 0).len(), 1, "ARP reply to 10.0.2.20");
    let out = lab2.send(D1, &[to_via(), to_via()], 0);
    assert!(out.iter().all(|f| f.2[0..6] == H2.0));
    assert!(lab2.send(D2, &[garp], 1).is_empty());
    let out = lab2.send(D1, &[to_via()], 1);
    assert_eq!(&out[0].2[0..6], &[2, 0, 0, 0, 0, 0x99]);
    // The egress gateway goes away: no stale rewrite is used.
    lab2.r.remove_gateway(&mut lab2.pool, D2).unwrap();
    assert!(lab2.send(D1, &[to_via()], 2).is_empty());
    assert_eq!(lab2.drops(DropReason::L3NoGateway), 1);
    lab.assert_no_leak();
    lab2.assert_no_leak();
}

#[test]
fn icmp_errors_are_rate_limited() {
    let cfg = RouterConfig {
        icmp_pps: 1,
        icmp_burst: 2,
        ..Default::default()
    };
    let mut lab = Lab::with(cfg);
    let pkts: Vec<_> = (0..5).map(|_| udp4([10, 0, 2, 20], 1)).collect();
    assert_eq!(lab.send(D1, &pkts, 0).len(), 2);
    assert_eq!(lab.drops(DropReason::L3TtlExceeded), 5);
    assert_eq!(lab.stage(StageCounter::L3IcmpRateLimited), 3);
    assert_eq!(lab.send(D1, &pkts[..1], 1000).len(), 1, "refilled");
    lab.assert_no_leak();
}

#[test]
fn routing_off_and_internal_networks_drop() {
    let mut lab = Lab::new();
    lab.neighbor(D2, IpAddr::V4(Ipv4Addr::new(10, 0, 2, 20)), H2);
    lab.r.set_routing(D2, false).unwrap();
    assert!(lab.send(D1, &[udp4([10, 0, 2, 20], 64)], 0).is_empty());
    assert_eq!(lab.drops(DropReason::L3RoutingDisabled), 1);
    // The gateway still answers for itself.
    let mut ping = hex("020000000201 020000000014 0800
         4500 0024 0001 0000 4001 0000 0a000214 0a000201
         0800 0000 0001 0001 0000000000000000");
    fix_ip(&mut ping);
    fix_icmp(&mut ping);
    assert_eq!(lab.send(D2, &[ping], 0).len(), 1);
    // D4 has no gateway: an internal network.
    assert!(lab.send(D4, &[udp4([10, 0, 2, 20], 64)], 0).is_empty());
    assert_eq!(lab.drops(DropReason::L3NoGateway), 1);
    assert!(!lab.r.wants(D4, &udp4([10, 0, 2, 20], 64), false));
    assert!(lab.r.wants(D1, &udp4([10, 0, 2, 20], 64), false));
    lab.r.set_routing(D2, true).unwrap();
    assert_eq!(lab.send(D1, &[udp4([10, 0, 2, 20], 64)], 0).len(), 1);
    lab.assert_no_leak();
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

/// An Ethernet+IPv6 frame from H1's 2001:db8:1::a to `dst`.
fn ip6(eth_dst: &[u8], dst: &str, hops: u8, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = eth_dst.to_vec();
    f.extend_from_slice(&H1.0);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[next, hops]);
    f.extend_from_slice(&v6("2001:db8:1::a"));
    f.extend_from_slice(&v6(dst));
    f.extend_from_slice(payload);
    f
}

#[test]
fn neighbor_solicitation_for_the_gateway_gets_the_exact_advert() {
    let mut lab = Lab::new();
    let mut ns = hex("87 00 0000 00000000");
    ns.extend_from_slice(&v6("2001:db8:1::1"));
    ns.extend_from_slice(&hex("01 01 02000000000a"));
    let mut f = ip6(&hex("3333ff000001"), "ff02::1:ff00:1", 255, 58, &ns);
    fix_icmp6(&mut f);
    oracle(&f);
    let out = lab.send(D1, &[f], 0);
    let mut na = hex("88 00 0000 e0000000");
    na.extend_from_slice(&v6("2001:db8:1::1"));
    na.extend_from_slice(&hex("02 01 020000000101"));
    let mut want = hex("02000000000a 020000000101 86dd 60000000 0020 3a ff");
    want.extend_from_slice(&v6("2001:db8:1::1"));
    want.extend_from_slice(&v6("2001:db8:1::a"));
    want.extend_from_slice(&na);
    fix_icmp6(&mut want);
    assert_eq!(out, vec![(D1, 1, want.clone())]);
    oracle(&want);
    let k = NeighKey::v6(D1, u128::from_be_bytes(v6("2001:db8:1::a")));
    assert_eq!(lab.r.neighbors().resolve(&k), Some(H1));
    lab.assert_no_leak();
}

#[test]
fn ipv6_forward_hop_limit_echo_and_errors() {
    let mut lab = Lab::new();
    let g1 = G1.0;
    // Echo to the gateway.
    let mut echo = ip6(
        &g1,
        "2001:db8:1::1",
        64,
        58,
        &hex("8000 0000 0007 0001 61626364"),
    );
    fix_icmp6(&mut echo);
    let out = lab.send(D1, &[echo], 0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].2[54], 129);
    assert_eq!(&out[0].2[38..54], &v6("2001:db8:1::a"));
    oracle(&out[0].2);
    // Forward: unresolved → NS to the solicited-node group, then NA releases.
    let udp = hex("3039 0035 000c 0000 70696e67");
    let pkt = ip6(&g1, "2001:db8:2::14", 64, 17, &udp);
    let out = lab.send(D1, std::slice::from_ref(&pkt), 0);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].2[..6], &hex("3333ff000014")[..]);
    assert_eq!(out[0].2[54], 135);
    oracle(&out[0].2);
    let mut na = hex("88 00 0000 60000000");
    na.extend_from_slice(&v6("2001:db8:2::14"));
    na.extend_from_slice(&hex("02 01 020000000014"));
    let mut naf = ip6(&G2.0, "2001:db8:2::1", 255, 58, &na);
    naf[22..38].copy_from_slice(&v6("2001:db8:2::14"));
    fix_icmp6(&mut naf);
    let out = lab.send(D2, &[naf], 1);
    let mut want = pkt.clone();
    want[0..6].copy_from_slice(&H2.0);
    want[6..12].copy_from_slice(&G2.0);
    want[21] = 63;
    assert_eq!(out, vec![(D2, 1, want)]);
    // Hop limit 1 → time exceeded quoting the packet.
    let out = lab.send(D1, &[ip6(&g1, "2001:db8:2::14", 1, 17, &udp)], 2);
    assert_eq!(out.len(), 1);
    let e = &out[0].2;
    assert_eq!((e[54], e[55]), (3, 0));
    assert_eq!(&e[62..], &ip6(&g1, "2001:db8:2::14", 1, 17, &udp)[14..]);
    oracle(e);
    // No route → unreachable; too big for D3's 1280 → packet too big.
    let out = lab.send(D1, &[ip6(&g1, "2001:db8:99::1", 64, 17, &udp)], 3);
    assert_eq!((out[0].2[54], out[0].2[55]), (1, 0));
    oracle(&out[0].2);
    lab.neighbor(D3, IpAddr::V6("2001:db8:3::5".parse().unwrap()), H2);
    let big = ip6(&g1, "2001:db8:3::5", 64, 17, &vec![0u8; 1400]);
    let out = lab.send(D1, &[big], 4);
    let e = &out[0].2;
    assert_eq!((e[54], e[55]), (2, 0));
    assert_eq!(&e[58..62], &1280u32.to_be_bytes());
    assert_eq!(e.len(), 14 + 1280, "errors fit the minimum MTU");
    oracle(e);
    lab.assert_no_leak();
}

#[test]
fn gateway_configuration_is_validated() {
    let mut r = Router::new(RouterConfig::default(), 0);
    let bad = Gateway::new(D1, G1).with_ipv4(Ipv4Addr::new(10, 0, 0, 1), 33);
    assert!(r.add_gateway(bad).is_err());
    assert!(r.add_gateway(Gateway::new(D1, MacAddr::BROADCAST)).is_err());
    let host = Gateway::new(D1, G1).with_ipv4(Ipv4Addr::new(10, 0, 0, 1), 32);
    r.add_gateway(host.clone()).unwrap();
    assert!(r.add_gateway(host).is_err(), "one gateway per domain");
    let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(r.route(0, a), Some(NextHop::Local));
}

#[test]
fn routes_and_gateways_can_be_removed() {
    let mut lab = Lab::new();
    let a = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1));
    assert!(matches!(lab.r.route(0, a), Some(NextHop::Via { .. })));
    lab.r
        .remove_route(0, IpAddr::V4(Ipv4Addr::new(192, 168, 0, 0)), 16)
        .unwrap();
    assert_eq!(lab.r.route(0, a), None);
    let b = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 9));
    assert_eq!(lab.r.route(0, b), Some(NextHop::Connected { domain: D2 }));
    lab.send(D1, &[udp4([10, 0, 2, 9], 64)], 0); // held for 10.0.2.9
    lab.r.remove_gateway(&mut lab.pool, D2).unwrap();
    assert_eq!(lab.r.route(0, b), None);
    assert!(lab.r.neighbors().is_empty(), "domain's neighbors flushed");
    lab.assert_no_leak();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn garbage_never_panics_or_leaks(frames in prop::collection::vec(
        prop::collection::vec(any::<u8>(), 0..120), 1..32), to_gw in any::<bool>()) {
        let mut lab = Lab::new();
        let frames: Vec<Vec<u8>> = frames.into_iter().map(|mut f| {
            if to_gw && f.len() >= 14 {
                f[..6].copy_from_slice(&G1.0);
                f[12] = if f[13] & 1 == 0 { 0x08 } else { 0x86 };
                f[13] = if f[12] == 0x08 { 0 } else { 0xdd };
            }
            f
        }).collect();
        let _ = lab.send(D1, &frames, 0);
        lab.assert_no_leak();
    }
}
