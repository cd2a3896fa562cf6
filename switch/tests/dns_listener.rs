//! DNS listeners: a bridge domain carrying two VLANs has its gateway in
//! VLAN 10 and a DNS-only address in VLAN 20. The listener answers ARP,
//! ND, ping and DNS with the gateway's MAC in VLAN 20 only, tagged or not
//! as each port needs, and never routes. Frames checked with etherparse as
//! an independent parser.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::mpsc;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use rvs_switch::router::{DnsListener, Gateway, IpReply, Punted, Transport, UdpReply};
use rvs_switch::wire::{arp, icmpv6};
use rvs_switch::{
    DomainConfig, DomainId, DropReason, MacAddr, MemoryPort, MemoryPortHandle, PacketPool,
    PortConfig, StageCounter, Switch, SwitchError, VlanMode, VlanSet,
};

const G: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
/// A station in VLAN 10 (red) and one in VLAN 20 (blue).
const RED: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const BLUE: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x14]);
const GW4: Ipv4Addr = Ipv4Addr::new(10, 0, 10, 1);
const DNS4: Ipv4Addr = Ipv4Addr::new(10, 0, 20, 254);
const BLUE4: Ipv4Addr = Ipv4Addr::new(10, 0, 20, 5);

fn dns6() -> Ipv6Addr {
    "fd00:20::fe".parse().unwrap()
}

struct Rig {
    sw: Switch,
    d: DomainId,
    /// Access port in VLAN 10, access port in VLAN 20, trunk of both.
    red: MemoryPortHandle,
    blue: MemoryPortHandle,
    trunk: MemoryPortHandle,
    now: u64,
    rx: mpsc::Receiver<Punted>,
}

/// Domain "west": gateway 10.0.10.1/24 in VLAN 10; a DNS listener
/// 10.0.20.254 and fd00:20::fe in VLAN 20.
fn rig() -> Rig {
    let mut sw = Switch::new(PacketPool::with_frames(256));
    let d = sw.add_domain(DomainConfig::new("west")).unwrap();
    let (pr, red) = MemoryPort::new("red");
    let (pb, blue) = MemoryPort::new("blue");
    let (pt, trunk) = MemoryPort::new("trunk");
    sw.add_port(Box::new(pr), PortConfig::access(d, 10))
        .unwrap();
    sw.add_port(Box::new(pb), PortConfig::access(d, 20))
        .unwrap();
    let allowed: VlanSet = "10,20".parse().unwrap();
    let mode = VlanMode::Trunk {
        allowed,
        native: None,
    };
    sw.add_port(Box::new(pt), PortConfig::access(d, 1).with_vlan(mode))
        .unwrap();
    let mut gw = Gateway::new(d, G).with_ipv4(GW4, 24);
    gw.vid = 10;
    sw.set_gateway(gw).unwrap();
    let mut l = DnsListener::new(d, 20);
    l.ipv4.push(DNS4);
    l.ipv6.push(dns6());
    sw.set_dns_listener(l).unwrap();
    let (tx, rx) = mpsc::sync_channel(8);
    sw.set_dns_punt(Some(Box::new(move |p| {
        tx.try_send(p).map_err(|e| match e {
            mpsc::TrySendError::Full(p) | mpsc::TrySendError::Disconnected(p) => p,
        })
    })));
    Rig {
        sw,
        d,
        red,
        blue,
        trunk,
        now: 1,
        rx,
    }
}

impl Rig {
    fn send(&mut self, port: &str, f: Vec<u8>) {
        match port {
            "red" => self.red.inject(f),
            "blue" => self.blue.inject(f),
            _ => self.trunk.inject(f),
        }
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
    /// Everything every port sent since the last call.
    fn take_all(&self) -> (Frames, Frames, Frames) {
        (
            self.red.take_tx(),
            self.blue.take_tx(),
            self.trunk.take_tx(),
        )
    }
}

type Frames = Vec<Vec<u8>>;

/// Insert an 802.1Q tag for `vid` after the MACs.
fn tagged(mut f: Vec<u8>, vid: u16) -> Vec<u8> {
    let tag = [0x81, 0x00, (vid >> 8) as u8, vid as u8];
    f.splice(12..12, tag);
    f
}

fn arp_request(from: MacAddr, from_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0; arp::FRAME_LEN];
    arp::write_request(&mut f, from, from_ip, target).unwrap();
    f
}

fn udp4(from: MacAddr, src: Ipv4Addr, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(from.0, G.0)
        .ipv4(src.octets(), dst.octets(), 64)
        .udp(40000, dport)
        .write(&mut f, b"query")
        .unwrap();
    f
}

/// The ARP reply in `f` (untagged): (sender MAC, sender IP, target MAC).
fn arp_reply(f: &[u8]) -> (MacAddr, Ipv4Addr, MacAddr) {
    assert_eq!(&f[12..14], &[0x08, 0x06], "ARP");
    assert_eq!(&f[20..22], &[0, 2], "a reply");
    let mac = |o: usize| MacAddr(f[o..o + 6].try_into().unwrap());
    let ip = Ipv4Addr::new(f[28], f[29], f[30], f[31]);
    (mac(22), ip, mac(32))
}

#[test]
fn arp_for_the_listener_is_answered_with_the_gateway_mac_only_in_its_vlan() {
    let mut r = rig();
    r.send("blue", arp_request(BLUE, BLUE4, DNS4));
    let (red, blue, trunk) = r.take_all();
    let reply = blue
        .iter()
        .find(|f| f[0..6] == BLUE.0)
        .expect("answered on the blue port");
    assert_eq!(arp_reply(reply), (G, DNS4, BLUE));
    assert!(red.is_empty(), "VLAN 10 sees nothing of VLAN 20: {red:?}");
    assert!(
        trunk.iter().all(|f| f[0..6] != BLUE.0),
        "the reply is unicast to the asker's port"
    );

    // From a station behind the trunk, tagged 20: the answer leaves
    // tagged 20.
    let far = MacAddr([2, 0, 0, 0, 0, 0x15]);
    let far4 = Ipv4Addr::new(10, 0, 20, 6);
    r.send("trunk", tagged(arp_request(far, far4, DNS4), 20));
    let (_, _, trunk) = r.take_all();
    let reply = trunk.iter().find(|f| f[0..6] == far.0).expect("answered");
    assert_eq!(&reply[12..16], &[0x81, 0x00, 0, 20], "tagged for VLAN 20");
    let mut untag = reply.clone();
    untag.drain(12..16);
    assert_eq!(arp_reply(&untag), (G, DNS4, far));

    // The gateway's own address asked over the trunk, tagged 10 (the
    // router used to look for ARP at offset 12 of the still tagged frame,
    // and never saw it): answered tagged 10.
    let far10 = MacAddr([2, 0, 0, 0, 0, 0x0b]);
    r.send(
        "trunk",
        tagged(arp_request(far10, Ipv4Addr::new(10, 0, 10, 6), GW4), 10),
    );
    let (_, _, trunk) = r.take_all();
    let reply = trunk.iter().find(|f| f[0..6] == far10.0).expect("answered");
    assert_eq!(&reply[12..16], &[0x81, 0x00, 0, 10], "tagged for VLAN 10");
    let mut untag = reply.clone();
    untag.drain(12..16);
    assert_eq!(arp_reply(&untag), (G, GW4, far10));

    // The listener's address asked in VLAN 10 (the gateway's): not answered.
    let before = r.stage(StageCounter::L3ArpReplies);
    r.send("red", arp_request(RED, Ipv4Addr::new(10, 0, 10, 5), DNS4));
    let (red, _, _) = r.take_all();
    assert!(red.iter().all(|f| f[0..6] != RED.0), "no answer in VLAN 10");
    assert_eq!(r.stage(StageCounter::L3ArpReplies), before);
}

#[test]
fn dns_to_the_listener_is_punted_with_its_vlan_and_answered_there() {
    let mut r = rig();
    r.send("blue", udp4(BLUE, BLUE4, DNS4, 53));
    let p = r.rx.try_recv().expect("punted");
    assert_eq!((p.domain, p.vid), (r.d, 20));
    assert_eq!(p.server, IpAddr::V4(DNS4));
    assert_eq!(p.client_mac, BLUE);
    assert_eq!(p.payload, b"query");

    let reply = UdpReply {
        domain: r.d,
        vid: p.vid,
        client_mac: p.client_mac,
        client: p.client,
        server: p.server,
        payload: b"answer".to_vec(),
    };
    r.sw.send_udp_reply(&reply).unwrap();
    let (red, blue, trunk) = r.take_all();
    assert!(red.is_empty() && trunk.is_empty());
    assert_eq!(blue.len(), 1, "to the asker's port, untagged");
    let s = SlicedPacket::from_ethernet(&blue[0]).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &s.link else {
        panic!("not Ethernet II")
    };
    assert_eq!((eth.source(), eth.destination()), (G.0, BLUE.0));
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!("not IPv4")
    };
    assert_eq!(ip.header().source(), DNS4.octets());
    let Some(TransportSlice::Udp(u)) = &s.transport else {
        panic!("not UDP")
    };
    assert_eq!(u.payload(), b"answer");
    let want = u
        .to_header()
        .calc_checksum_ipv4(&ip.header().to_header(), u.payload())
        .unwrap();
    assert_eq!(u.checksum(), want);

    // From the gateway's address into VLAN 20, or the listener's into
    // VLAN 10: refused, nothing sent.
    let bad = UdpReply {
        server: IpAddr::V4(GW4),
        ..reply.clone()
    };
    assert!(r.sw.send_udp_reply(&bad).is_err());
    let bad = UdpReply { vid: 10, ..reply };
    assert!(r.sw.send_udp_reply(&bad).is_err());
    let (red, blue, trunk) = r.take_all();
    assert!(red.is_empty() && blue.is_empty() && trunk.is_empty());

    // TCP too, answered as an IP packet, tagged on the trunk.
    let mut f = Vec::new();
    let far = MacAddr([2, 0, 0, 0, 0, 0x15]);
    PacketBuilder::ethernet2(far.0, G.0)
        .ipv4([10, 0, 20, 6], DNS4.octets(), 64)
        .tcp(40001, 53, 1000, 4096)
        .syn()
        .write(&mut f, b"")
        .unwrap();
    r.send("trunk", tagged(f, 20));
    let p = r.rx.try_recv().expect("TCP punted");
    assert_eq!((p.transport, p.vid), (Transport::Tcp, 20));
    let mut seg = Vec::new();
    PacketBuilder::ipv4(DNS4.octets(), [10, 0, 20, 6], 64)
        .tcp(53, 40001, 7, 4096)
        .ack(1001)
        .write(&mut seg, b"")
        .unwrap();
    let ip = IpReply {
        domain: r.d,
        vid: 20,
        client_mac: far,
        packet: seg,
    };
    r.sw.send_ip_reply(&ip).unwrap();
    let (_, _, trunk) = r.take_all();
    assert_eq!(trunk.len(), 1);
    assert_eq!(&trunk[0][12..16], &[0x81, 0x00, 0, 20]);
    assert_eq!(&trunk[0][18..], &ip.packet[..]);
}

#[test]
fn the_listener_answers_ping_and_neighbor_solicitation() {
    let mut r = rig();
    let mut f = Vec::new();
    PacketBuilder::ethernet2(BLUE.0, G.0)
        .ipv4(BLUE4.octets(), DNS4.octets(), 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut f, b"ping")
        .unwrap();
    r.send("blue", f);
    let (_, blue, _) = r.take_all();
    assert_eq!(blue.len(), 1);
    let s = SlicedPacket::from_ethernet(&blue[0]).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!("not IPv4")
    };
    assert_eq!(ip.header().source(), DNS4.octets());
    assert_eq!(ip.header().destination(), BLUE4.octets());
    let Some(TransportSlice::Icmpv4(icmp)) = &s.transport else {
        panic!("not ICMP")
    };
    assert!(matches!(
        icmp.icmp_type(),
        etherparse::Icmpv4Type::EchoReply(_)
    ));

    let me: Ipv6Addr = "fd00:20::5".parse().unwrap();
    let mut f = vec![0; 200];
    let n = icmpv6::write_solicit(&mut f, BLUE, &me.octets(), &dns6().octets()).unwrap();
    f.truncate(n);
    r.send("blue", f);
    let (red, blue, _) = r.take_all();
    assert!(red.is_empty(), "VLAN 10 does not see VLAN 20's multicast");
    let na = blue
        .iter()
        .find(|f| f[0..6] == BLUE.0)
        .expect("an advert to the asker");
    assert_eq!(&na[6..12], &G.0);
    let s = SlicedPacket::from_ethernet(na).unwrap();
    let Some(TransportSlice::Icmpv6(m)) = &s.transport else {
        panic!("not ICMPv6")
    };
    assert!(matches!(
        m.icmp_type(),
        etherparse::Icmpv6Type::NeighborAdvertisement(_)
    ));
    assert_eq!(&m.payload()[..16], &dns6().octets(), "target: the listener");
    assert_eq!(r.stage(StageCounter::L3NdAdverts), 1);
}

#[test]
fn a_listener_never_routes_and_never_answers_for_the_gateway() {
    let mut r = rig();
    // To a red host through the gateway MAC from VLAN 20: dropped.
    r.send("blue", udp4(BLUE, BLUE4, Ipv4Addr::new(10, 0, 10, 5), 9));
    // DNS to the gateway's own address from VLAN 20: not punted.
    r.send("blue", udp4(BLUE, BLUE4, GW4, 53));
    assert!(r.rx.try_recv().is_err());
    assert_eq!(r.drops(DropReason::L3NotForGateway), 2);
    let (red, blue, trunk) = r.take_all();
    assert!(red.is_empty() && blue.is_empty() && trunk.is_empty());
    // Another port of the listener: not served.
    r.send("blue", udp4(BLUE, BLUE4, DNS4, 54));
    assert!(r.rx.try_recv().is_err());
    assert_eq!(r.drops(DropReason::L3LocalUnsupported), 1);

    // Without the listener, VLAN 20 gets nothing from the gateway MAC.
    r.sw.remove_dns_listener(r.d, 20).unwrap();
    r.send("blue", udp4(BLUE, BLUE4, DNS4, 53));
    r.send("blue", arp_request(BLUE, BLUE4, DNS4));
    assert!(r.rx.try_recv().is_err());
    assert_eq!(r.drops(DropReason::L3NotForGateway), 2);
    let (_, blue, _) = r.take_all();
    assert!(blue.iter().all(|f| f[0..6] != BLUE.0), "no ARP answer");
    assert_eq!(r.stage(StageCounter::L3ArpReplies), 0);
    let ports = r.sw.ports();
    let c = &ports
        .iter()
        .find(|p| p.name == "blue")
        .expect("blue")
        .counters;
    assert_eq!(c.drops_by(DropReason::L3NotForGateway), 1);
}

#[test]
fn bad_listeners_are_refused_and_change_nothing() {
    let mut r = rig();
    let with = |vid: u16, a: Option<Ipv4Addr>| {
        let mut l = DnsListener::new(r.d, vid);
        l.ipv4.extend(a);
        l
    };
    let refused = |res: Result<(), SwitchError>| match res {
        Err(SwitchError::Listener(e)) => e.to_string(),
        other => panic!("not refused: {other:?}"),
    };
    let e = refused(r.sw.set_dns_listener(with(10, Some(DNS4))));
    assert!(e.contains("gateway's own"), "{e}");
    let e = refused(r.sw.set_dns_listener(with(30, None)));
    assert!(e.contains("at least one address"), "{e}");
    let e = refused(r.sw.set_dns_listener(with(4095, Some(DNS4))));
    assert!(e.contains("out of range"), "{e}");
    let e = refused(r.sw.set_dns_listener(with(30, Some(Ipv4Addr::BROADCAST))));
    assert!(e.contains("not a unicast"), "{e}");
    let d2 = r.sw.add_domain(DomainConfig::new("east")).unwrap();
    let mut l = with(30, Some(DNS4));
    l.domain = d2;
    let e = refused(r.sw.set_dns_listener(l));
    assert!(e.contains("no gateway"), "{e}");
    assert!(r.sw.remove_dns_listener(r.d, 30).is_err());
    let ls = r.sw.router().dns_listeners(r.d);
    assert_eq!(ls.len(), 1);
    assert_eq!((ls[0].vid, ls[0].ipv4.as_slice()), (20, &[DNS4][..]));
}
