//! The punt path: DNS to a gateway address leaves the data plane through a
//! bounded queue without blocking the worker, and answers come back from
//! the gateway. Frames checked with etherparse as an independent parser.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::mpsc;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use rvs_switch::router::{Gateway, IpReply, Punted, Transport, UdpReply};
use rvs_switch::{
    DomainConfig, DomainId, DropReason, MacAddr, MemoryPort, MemoryPortHandle, PacketPool,
    PortConfig, StageCounter, Switch,
};

const G1: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const G2: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
const A: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];

struct Rig {
    sw: Switch,
    d1: DomainId,
    a: MemoryPortHandle,
    now: u64,
    rx: mpsc::Receiver<Punted>,
}

/// Domain net1 (10.0.1.1/24, fd00:1::1/64) with port a, net2 (10.0.2.1/24)
/// with port b; a punt queue of `depth`.
fn rig(depth: usize) -> Rig {
    let mut sw = Switch::new(PacketPool::with_frames(256));
    let d1 = sw.add_domain(DomainConfig::new("net1")).unwrap();
    let d2 = sw.add_domain(DomainConfig::new("net2")).unwrap();
    let (pa, a) = MemoryPort::new("a");
    let (pb, _b) = MemoryPort::new("b");
    sw.add_port(Box::new(pa), PortConfig::access(d1, 1))
        .unwrap();
    sw.add_port(Box::new(pb), PortConfig::access(d2, 1))
        .unwrap();
    let g1 = Gateway::new(d1, G1)
        .with_ipv4(Ipv4Addr::new(10, 0, 1, 1), 24)
        .with_ipv6("fd00:1::1".parse().unwrap(), 64);
    sw.set_gateway(g1).unwrap();
    sw.set_gateway(Gateway::new(d2, G2).with_ipv4(Ipv4Addr::new(10, 0, 2, 1), 24))
        .unwrap();
    let (tx, rx) = mpsc::sync_channel(depth);
    sw.set_dns_punt(Some(Box::new(move |p| {
        tx.try_send(p).map_err(|e| match e {
            mpsc::TrySendError::Full(p) | mpsc::TrySendError::Disconnected(p) => p,
        })
    })));
    Rig {
        sw,
        d1,
        a,
        now: 1,
        rx,
    }
}

impl Rig {
    fn send(&mut self, f: Vec<u8>) {
        self.a.inject(f);
        self.now += 1;
        self.sw.set_now_ms(self.now);
        self.sw.poll();
    }
    fn drops(&self, r: DropReason) -> u64 {
        self.sw.router().counters().drops_by(r)
    }
    fn stage(&self, s: StageCounter) -> u64 {
        self.sw.router().counters().stages.get(s)
    }
}

fn udp4(dst_mac: MacAddr, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(A, dst_mac.0)
        .ipv4([10, 0, 1, 10], dst, 64)
        .udp(40000, dport);
    let mut f = Vec::new();
    b.write(&mut f, payload).unwrap();
    f
}

#[test]
fn dns_to_the_gateway_is_punted_with_who_asked() {
    let mut r = rig(8);
    r.send(udp4(G1, [10, 0, 1, 1], 53, b"query-bytes"));
    let p = r.rx.try_recv().expect("punted");
    assert_eq!(p.domain, r.d1);
    assert_eq!(p.vid, 1, "asked in the gateway's VLAN");
    assert_eq!(p.client_mac, MacAddr(A));
    assert_eq!(p.client, "10.0.1.10:40000".parse::<SocketAddr>().unwrap());
    assert_eq!(p.server, IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)));
    assert_eq!(p.payload, b"query-bytes");
    assert_eq!(r.stage(StageCounter::DnsPunted), 1);
    assert!(
        r.a.take_tx().is_empty(),
        "nothing answered in the data plane"
    );

    // IPv6 too.
    let b = PacketBuilder::ethernet2(A, G1.0)
        .ipv6(
            "fd00:1::10".parse::<Ipv6Addr>().unwrap().octets(),
            "fd00:1::1".parse::<Ipv6Addr>().unwrap().octets(),
            64,
        )
        .udp(40001, 53);
    let mut f = Vec::new();
    b.write(&mut f, b"v6").unwrap();
    r.send(f);
    let p = r.rx.try_recv().expect("punted over IPv6");
    assert_eq!(p.server, "fd00:1::1".parse::<IpAddr>().unwrap());
    assert_eq!(p.client.port(), 40001);
}

#[test]
fn other_ports_and_other_networks_gateways_are_not_punted() {
    let mut r = rig(8);
    // Port 54: port unreachable as before.
    r.send(udp4(G1, [10, 0, 1, 1], 54, b"x"));
    assert!(r.rx.try_recv().is_err());
    assert_eq!(r.drops(DropReason::L3LocalUnsupported), 1);
    // Port 53 of net2's gateway, asked from net1: not this network's DNS.
    r.send(udp4(G1, [10, 0, 2, 1], 53, b"x"));
    assert!(r.rx.try_recv().is_err(), "a name server is per network");
    assert_eq!(r.drops(DropReason::L3LocalUnsupported), 2);
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let mut r = rig(2);
    for _ in 0..5 {
        r.send(udp4(G1, [10, 0, 1, 1], 53, b"q"));
    }
    assert_eq!(r.stage(StageCounter::DnsPunted), 2);
    assert_eq!(r.drops(DropReason::DnsPuntFull), 3);
    assert_eq!(r.rx.try_iter().count(), 2);
}

#[test]
fn answers_leave_from_the_gateway_with_valid_checksums() {
    let mut r = rig(8);
    let reply = UdpReply {
        domain: r.d1,
        vid: 1,
        client_mac: MacAddr(A),
        client: "10.0.1.10:40000".parse().unwrap(),
        server: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
        payload: b"answer".to_vec(),
    };
    r.sw.send_udp_reply(&reply).unwrap();
    let out = r.a.take_tx();
    assert_eq!(out.len(), 1);
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else {
        panic!("not Ethernet II")
    };
    assert_eq!(eth.source(), G1.0);
    assert_eq!(eth.destination(), A);
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4")
    };
    assert_eq!(ip.header().source(), [10, 0, 1, 1]);
    assert_eq!(ip.header().destination(), [10, 0, 1, 10]);
    let Some(TransportSlice::Udp(u)) = &p.transport else {
        panic!("not UDP")
    };
    assert_eq!((u.source_port(), u.destination_port()), (53, 40000));
    assert_eq!(u.payload(), b"answer");
    let want = u
        .to_header()
        .calc_checksum_ipv4(&ip.header().to_header(), u.payload())
        .unwrap();
    assert_eq!(u.checksum(), want);
    assert_eq!(r.stage(StageCounter::DnsReplies), 1);

    // From an address the gateway does not have: refused, nothing sent.
    let mut bad = reply.clone();
    bad.server = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 2));
    assert!(r.sw.send_udp_reply(&bad).is_err());
    let mut bad = reply;
    bad.payload = vec![0; 4000];
    assert!(r.sw.send_udp_reply(&bad).is_err(), "longer than a frame");
    assert!(r.a.take_tx().is_empty());
}

fn tcp4(dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(A, G1.0)
        .ipv4([10, 0, 1, 10], dst, 64)
        .tcp(40000, dport, 1000, 4096)
        .syn();
    let mut f = Vec::new();
    b.write(&mut f, payload).unwrap();
    f
}

#[test]
fn tcp_to_port_53_of_the_gateway_is_punted_as_its_ip_packet() {
    let mut r = rig(8);
    let f = tcp4([10, 0, 1, 1], 53, b"");
    r.send(f.clone());
    let p = r.rx.try_recv().expect("punted");
    assert_eq!(p.transport, Transport::Tcp);
    assert_eq!(p.client, "10.0.1.10:40000".parse::<SocketAddr>().unwrap());
    assert_eq!(p.client_mac, MacAddr(A));
    assert_eq!(p.payload, f[14..], "the whole IP packet, for a TCP stack");
    // Another port of the gateway, or another network's gateway: not DNS.
    r.send(tcp4([10, 0, 1, 1], 80, b""));
    r.send(tcp4([10, 0, 2, 1], 53, b""));
    assert!(r.rx.try_recv().is_err());
    assert_eq!(r.drops(DropReason::L3LocalUnsupported), 2);
    // UDP is still punted as its payload.
    r.send(udp4(G1, [10, 0, 1, 1], 53, b"q"));
    assert_eq!(r.rx.try_recv().unwrap().transport, Transport::Udp);
}

#[test]
fn ip_replies_leave_from_the_gateway_only_from_its_addresses() {
    let mut r = rig(8);
    let seg = |src: [u8; 4]| {
        let mut f = Vec::new();
        PacketBuilder::ipv4(src, [10, 0, 1, 10], 64)
            .tcp(53, 40000, 7, 4096)
            .ack(1001)
            .write(&mut f, b"answer")
            .unwrap();
        f
    };
    let reply = IpReply {
        domain: r.d1,
        vid: 1,
        client_mac: MacAddr(A),
        packet: seg([10, 0, 1, 1]),
    };
    r.sw.send_ip_reply(&reply).unwrap();
    let out = r.a.take_tx();
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0][0..6], &A);
    assert_eq!(&out[0][6..12], &G1.0);
    assert_eq!(&out[0][14..], &reply.packet[..]);
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        panic!("not TCP")
    };
    assert_eq!(t.payload(), b"answer");
    assert_eq!(r.stage(StageCounter::DnsReplies), 1);

    // Another source, a cut packet, not IP: refused, nothing sent.
    let bad = |packet: Vec<u8>| IpReply {
        packet,
        ..reply.clone()
    };
    assert!(r.sw.send_ip_reply(&bad(seg([10, 0, 1, 2]))).is_err());
    let mut cut = seg([10, 0, 1, 1]);
    cut.pop();
    assert!(r.sw.send_ip_reply(&bad(cut)).is_err());
    assert!(r.sw.send_ip_reply(&bad(vec![0x45; 10])).is_err());
    assert!(r.sw.send_ip_reply(&bad(Vec::new())).is_err());
    assert!(r.a.take_tx().is_empty());
}
