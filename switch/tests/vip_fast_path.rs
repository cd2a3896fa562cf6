//! The `vip` node (packets of established IPv4 flows to a service VIP,
//! balanced in one loop) against the general path: two switches built
//! alike get the same batches; on one an armed tracer keeps every batch on
//! the general path (traced batches skip the run and vip nodes). After
//! each batch both must have sent the same bytes on every port and
//! counted the same, and their services must hold the same flows; the
//! fast twin must have taken the established flows' packets itself.
//!
//! The batches mix what the node takes with everything it must leave to
//! the router: new flows, a bad header checksum, IP options, a
//! fragment, UDP, a port the service does not offer, the health-probe
//! port range, an echo request, a backend whose MAC the FDB does not know
//! (a flood), backends' replies, a tagged client on a trunk, and the
//! control changes that must send flows back to the general path (a
//! neighbor's new MAC, a backend removed).

use std::net::{IpAddr, Ipv4Addr};

use rvs_switch::lb::{HealthCheck, Service, ServicePort};
use rvs_switch::router::Gateway;
use rvs_switch::wire::ipv4::{checksum, write_header};
use rvs_switch::{
    DomainConfig, DomainId, DropReason, MacAddr, MemoryPort, MemoryPortHandle, PacketPool,
    PortConfig, PortId, StageCounter, Switch, VlanMode,
};

const GW: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const VIP: [u8; 4] = [10, 0, 0, 100];
const VIP2: [u8; 4] = [10, 0, 0, 101];
const VIP6: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_0100;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ACK: u8 = 0x10;
const SYN: u8 = 0x02;
const FIN: u8 = 0x01;

fn client_mac(i: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0xc, i])
}

fn backend(i: u8) -> (Ipv4Addr, MacAddr) {
    (
        Ipv4Addr::new(10, 0, 0, 10 + i),
        MacAddr([2, 0, 0, 0, 0xb, i]),
    )
}

/// An IPv4 TCP (`proto` 6, `flags`) or UDP (17) frame from `src` to
/// `dst`, checksums valid, with `opts` bytes of IP options (a multiple of
/// 4) and the fragment field `frag`.
#[allow(clippy::too_many_arguments)]
fn packet(
    macs: (MacAddr, MacAddr),
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    proto: u8,
    flags: u8,
    opts: usize,
    frag: u16,
) -> Vec<u8> {
    let l4 = if proto == TCP { 20 } else { 8 };
    let payload = 6;
    let ihl = 20 + opts;
    let mut f = vec![0u8; 14 + ihl + l4 + payload];
    f[0..6].copy_from_slice(&macs.0.0);
    f[6..12].copy_from_slice(&macs.1.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let total = (ihl + l4 + payload) as u16;
    write_header(
        &mut f[14..],
        total,
        64,
        proto,
        u32::from_be_bytes(src.0),
        u32::from_be_bytes(dst.0),
    );
    if opts > 0 {
        // Move the transport area out of the way and put NOPs (1) there.
        f[14] = 0x40 | (ihl / 4) as u8;
        f[34..34 + opts].fill(1);
    }
    f[20..22].copy_from_slice(&frag.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = checksum::compute(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let acc = checksum::pseudo_v4(src.0, dst.0, proto, (l4 + payload) as u16);
    transport(&mut f[14 + ihl..], (src.1, dst.1), proto, flags, acc);
    f
}

/// The TCP (`flags`) or UDP header and the payload "abcdef" in `t`, its
/// checksum over the pseudo-header sum `pseudo`.
fn transport(t: &mut [u8], (sport, dport): (u16, u16), proto: u8, flags: u8, pseudo: u32) {
    let l4 = if proto == TCP { 20 } else { 8 };
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    if proto == TCP {
        t[12] = 5 << 4;
        t[13] = flags;
    } else {
        t[4..6].copy_from_slice(&((l4 + 6) as u16).to_be_bytes());
    }
    t[l4..l4 + 6].copy_from_slice(b"abcdef");
    let c = !checksum::fold(checksum::sum(t, pseudo));
    let at = if proto == TCP { 16 } else { 6 };
    t[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Client 2's UDP datagram from port `cport` to VIP:53.
fn udp(cport: u16) -> Vec<u8> {
    packet(
        (GW, client_mac(2)),
        ([10, 0, 0, 52], cport),
        (VIP, 53),
        UDP,
        0,
        0,
        0,
    )
}

/// Backend `i`'s IPv6 address (fd00::b:i).
fn backend6(i: u8) -> u128 {
    0xfd00_0000_0000_0000_0000_0000_000b_0000 | i as u128
}

/// An IPv6 TCP (`proto` 6, `flags`) or UDP (17) frame from client
/// `client` (fd00::c:client) port `cport` to `dst`, checksum valid; with
/// `hop_by_hop`, an empty hop-by-hop options header before it.
fn packet6(
    client: u8,
    cport: u16,
    dst: (u128, u16),
    proto: u8,
    flags: u8,
    hop_by_hop: bool,
) -> Vec<u8> {
    let src = 0xfd00_0000_0000_0000_0000_0000_000c_0000_u128 | client as u128;
    let l4 = if proto == TCP { 20 } else { 8 };
    let ext = if hop_by_hop { 8 } else { 0 };
    let payload = 6;
    let mut f = vec![0u8; 14 + 40 + ext + l4 + payload];
    f[0..6].copy_from_slice(&GW.0);
    f[6..12].copy_from_slice(&client_mac(client).0);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let next = if hop_by_hop { 0 } else { proto };
    rvs_switch::wire::ipv6::write_header(
        &mut f[14..],
        (ext + l4 + payload) as u16,
        next,
        64,
        &src.to_be_bytes(),
        &dst.0.to_be_bytes(),
    );
    if hop_by_hop {
        // Next header, length 0 (8 bytes), a PadN option filling it.
        f[54..62].copy_from_slice(&[proto, 0, 1, 4, 0, 0, 0, 0]);
    }
    let acc = checksum::pseudo_v6(
        &src.to_be_bytes(),
        &dst.0.to_be_bytes(),
        proto,
        (l4 + payload) as u32,
    );
    transport(&mut f[54 + ext..], (cport, dst.1), proto, flags, acc);
    f
}

/// A client's TCP segment to `dst`.
fn tcp(client: u8, cport: u16, dst: ([u8; 4], u16), flags: u8) -> Vec<u8> {
    let src = [10, 0, 0, 50 + client];
    packet(
        (GW, client_mac(client)),
        (src, cport),
        dst,
        TCP,
        flags,
        0,
        0,
    )
}

fn tagged(f: Vec<u8>, vid: u16) -> Vec<u8> {
    let mut t = f[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00]);
    t.extend_from_slice(&vid.to_be_bytes());
    t.extend_from_slice(&f[12..]);
    t
}

/// An echo request from client 1 to the VIP.
fn ping_vip() -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 12];
    f[0..6].copy_from_slice(&GW.0);
    f[6..12].copy_from_slice(&client_mac(1).0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    write_header(
        &mut f[14..],
        32,
        64,
        1,
        0x0a00_0033,
        u32::from_be_bytes(VIP),
    );
    let icmp = &mut f[34..];
    icmp[0] = 8;
    icmp[4..8].copy_from_slice(&[0, 1, 0, 1]);
    icmp[8..].copy_from_slice(b"ping");
    let c = checksum::compute(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    f
}

/// p0: clients (access, VLAN 1); p1: backends 1 and 2 (access; frames of
/// at most `p1_max` bytes, when given); p2: a trunk (VLAN 1 tagged) with
/// backend 3 behind it and tagged clients; backend 4 has a neighbor entry
/// but no FDB entry (its packets flood). VIP:80/tcp → 8080 and
/// VIP:53/udp → 5353 over backends 1–3; VIP2:443 → 8443 over backend 4.
fn twin(
    health: Option<HealthCheck>,
    p1_max: Option<usize>,
) -> (Switch, Vec<MemoryPortHandle>, DomainId) {
    let mut sw = Switch::new(PacketPool::with_frames(1024));
    let mut cfg = DomainConfig::new("lb");
    cfg.fdb.max_entries = 64;
    let d = sw.add_domain(cfg).unwrap();
    sw.set_gateway(
        Gateway::new(d, GW)
            .with_ipv4(Ipv4Addr::new(10, 0, 0, 1), 24)
            .with_ipv6("fd00::1".parse().unwrap(), 64),
    )
    .unwrap();
    let mut hs = Vec::new();
    for i in 0..3 {
        let (mut p, h) = MemoryPort::new(&format!("p{i}"));
        if let (1, Some(max)) = (i, p1_max) {
            p = p.with_max_frame(max);
        }
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
    for (i, port) in [(1, 1), (2, 1), (3, 2), (4, u16::MAX)] {
        let (ip, mac) = backend(i);
        sw.add_static_neighbor(d, IpAddr::V4(ip), mac).unwrap();
        let ip6 = IpAddr::V6(backend6(i).into());
        sw.add_static_neighbor(d, ip6, mac).unwrap();
        if port != u16::MAX {
            sw.add_static(d, 1, mac, PortId(port)).unwrap();
        }
    }
    let mut s = services(d, &[1, 2, 3]);
    s[0].health = health;
    sw.set_services(s).unwrap();
    (sw, hs, d)
}

/// VIP:80/tcp → 8080 and VIP:53/udp → 5353 over `backends`, the same
/// on VIP6 over their IPv6 addresses, VIP2:443 → 8443 over backend 4.
fn services(d: DomainId, backends: &[u8]) -> Vec<Service> {
    let web = |vip: IpAddr, backends: Vec<IpAddr>| Service {
        domain: d,
        vip,
        ports: vec![
            ServicePort {
                proto: TCP,
                port: 80,
                target: 8080,
            },
            ServicePort {
                proto: UDP,
                port: 53,
                target: 5353,
            },
        ],
        backends,
        health: None,
    };
    let v4 = backends.iter().map(|&i| IpAddr::V4(backend(i).0)).collect();
    let v6 = backends
        .iter()
        .map(|&i| IpAddr::V6(backend6(i).into()))
        .collect();
    vec![
        web(IpAddr::V4(VIP.into()), v4),
        Service {
            domain: d,
            vip: IpAddr::V4(VIP2.into()),
            ports: vec![ServicePort {
                proto: TCP,
                port: 443,
                target: 8443,
            }],
            backends: vec![IpAddr::V4(backend(4).0)],
            health: None,
        },
        web(IpAddr::V6(VIP6.into()), v6),
    ]
}

/// Everything a user could compare between the twins, the fast path's
/// own counter left out.
fn state(sw: &Switch) -> String {
    let mut l3 = sw.router().counters().clone();
    l3.stages.0[StageCounter::LbFastPath as usize] = 0;
    let mut stages = sw.stage_counters().clone();
    stages.0[StageCounter::LbFastPath as usize] = 0;
    let ports: Vec<_> = sw
        .ports()
        .into_iter()
        .map(|p| (p.counters, p.learned))
        .collect();
    format!("{l3:?}\n{stages:?}\n{ports:?}\n{:?}", sw.services())
}

fn fast_path(sw: &Switch) -> u64 {
    sw.router().counters().stages.get(StageCounter::LbFastPath)
}

struct Twins {
    fast: Switch,
    fh: Vec<MemoryPortHandle>,
    slow: Switch,
    sh: Vec<MemoryPortHandle>,
    d: DomainId,
    batch: usize,
}

impl Twins {
    fn new(health: Option<HealthCheck>) -> Self {
        Self::with_p1_max(health, None)
    }

    fn with_p1_max(health: Option<HealthCheck>, p1_max: Option<usize>) -> Self {
        let (fast, fh, d) = twin(health, p1_max);
        let (mut slow, sh, _) = twin(health, p1_max);
        slow.tracer().arm(u32::MAX, None);
        Twins {
            fast,
            fh,
            slow,
            sh,
            d,
            batch: 0,
        }
    }

    /// Send `frames` into port `port` of both, as one batch, and compare.
    /// Returns what the fast twin sent, by port.
    fn batch(&mut self, port: usize, frames: &[Vec<u8>]) -> Vec<Vec<Vec<u8>>> {
        assert!(frames.len() <= 32);
        for f in frames {
            self.fh[port].inject(f.clone());
            self.sh[port].inject(f.clone());
        }
        self.fast.poll();
        self.slow.poll();
        let k = self.batch;
        self.batch += 1;
        let mut sent = Vec::new();
        for (i, (a, b)) in self.fh.iter().zip(&self.sh).enumerate() {
            let (a, b) = (a.take_tx(), b.take_tx());
            assert_eq!(a, b, "batch {k}: port {i} sent");
            sent.push(a);
        }
        assert_eq!(state(&self.fast), state(&self.slow), "batch {k}");
        sent
    }

    fn both(&mut self, f: impl Fn(&mut Switch, DomainId)) {
        f(&mut self.fast, self.d);
        f(&mut self.slow, self.d);
    }
}

fn flows(client: u8, ports: std::ops::Range<u16>, flags: u8) -> Vec<Vec<u8>> {
    ports.map(|p| tcp(client, p, (VIP, 80), flags)).collect()
}

#[test]
fn the_vip_node_sends_what_the_general_path_sends() {
    let mut t = Twins::new(None);
    // New flows: the general path both times (nothing is established).
    t.batch(0, &flows(1, 1000..1032, SYN));
    assert_eq!(fast_path(&t.fast), 0);
    // The same flows again: established, every decision cached (the
    // backends' MACs were cached as the first packets went out).
    let sent = t.batch(0, &flows(1, 1000..1032, ACK));
    assert_eq!(fast_path(&t.fast), 32, "the vip node took the batch");
    let to_backends = sent[1].len() + sent[2].len();
    assert_eq!(to_backends, 32);
    assert!(
        sent[2].iter().all(|f| f[12..14] == [0x81, 0x00]),
        "tagged on the trunk"
    );
    // Several clients in one batch (the run node's mixed sources).
    let mixed: Vec<_> = (0..32)
        .map(|i| tcp(1 + i % 3, 2000 + i as u16, (VIP, 80), SYN))
        .collect();
    t.batch(0, &mixed);
    let mixed: Vec<_> = (0..32)
        .map(|i| tcp(1 + i % 3, 2000 + i as u16, (VIP, 80), ACK))
        .collect();
    let before = fast_path(&t.fast);
    t.batch(0, &mixed);
    assert_eq!(fast_path(&t.fast) - before, 32);

    // A FIN of an established flow is the node's too (the flow is marked
    // closing, as the router marks it).
    let c = |p| tcp(1, p, (VIP, 80), ACK);
    let before = fast_path(&t.fast);
    t.batch(0, &[c(1000), tcp(1, 1003, (VIP, 80), FIN | ACK), c(1001)]);
    assert_eq!(fast_path(&t.fast) - before, 3);
    // Everything the node must leave to the router, each after two
    // established packets (taken) and followed by more (left, in order).
    let odd: Vec<(&str, Vec<u8>)> = vec![
        ("a new flow", tcp(1, 3000, (VIP, 80), SYN)),
        ("a bad header checksum", {
            let mut f = c(1004);
            f[24] ^= 0x40;
            f
        }),
        (
            "IP options",
            packet(
                (GW, client_mac(1)),
                ([10, 0, 0, 51], 1005),
                (VIP, 80),
                TCP,
                ACK,
                4,
                0,
            ),
        ),
        (
            "a first fragment",
            packet(
                (GW, client_mac(1)),
                ([10, 0, 0, 51], 1006),
                (VIP, 80),
                TCP,
                ACK,
                0,
                0x2000,
            ),
        ),
        (
            "UDP",
            packet(
                (GW, client_mac(1)),
                ([10, 0, 0, 51], 1007),
                (VIP, 53),
                UDP,
                0,
                0,
                0,
            ),
        ),
        (
            "a port the service does not offer",
            tcp(1, 1008, (VIP, 81), ACK),
        ),
        ("the probe port range", tcp(1, 1009, (VIP, 64600), ACK)),
        ("an echo request", ping_vip()),
        (
            "a backend the FDB does not know",
            tcp(1, 1010, (VIP2, 443), SYN),
        ),
    ];
    for (what, f) in odd {
        let before = fast_path(&t.fast);
        let batch = vec![c(1000), c(1001), f, c(1002), c(1012)];
        let sent = t.batch(0, &batch);
        assert_eq!(fast_path(&t.fast) - before, 2, "{what}: the two before it");
        assert!(!sent.iter().all(Vec::is_empty), "{what}: something sent");
    }
    // UDP and the FDB-less backend once established: UDP takes the fast
    // path; backend 4's packets keep flooding through the router.
    t.batch(0, &(0..8).map(|i| udp(4000 + i)).collect::<Vec<_>>());
    let before = fast_path(&t.fast);
    t.batch(0, &(0..8).map(|i| udp(4000 + i)).collect::<Vec<_>>());
    assert_eq!(fast_path(&t.fast) - before, 8, "established UDP");
    let before = fast_path(&t.fast);
    t.batch(0, &[tcp(1, 1010, (VIP2, 443), ACK)]);
    assert_eq!(fast_path(&t.fast), before, "a flood is the router's");

    // Backends' replies (to the VIP's SNAT ports) go the general way.
    let replies: Vec<_> = t.batch(0, &flows(1, 1000..1016, ACK))[1]
        .iter()
        .map(|f| {
            // Turn the packet the backend got around.
            let ip_src = [f[26], f[27], f[28], f[29]];
            let ip_dst = [f[30], f[31], f[32], f[33]];
            let sport = u16::from_be_bytes([f[34], f[35]]);
            let dport = u16::from_be_bytes([f[36], f[37]]);
            let mac = MacAddr(f[0..6].try_into().unwrap());
            packet((GW, mac), (ip_dst, dport), (ip_src, sport), TCP, ACK, 0, 0)
        })
        .collect();
    assert!(!replies.is_empty());
    let sent = t.batch(1, &replies);
    assert_eq!(
        sent[0].len(),
        replies.len(),
        "every reply reached the client"
    );

    // Tagged clients on the trunk.
    let tag = |p| tagged(tcp(4, p, (VIP, 80), SYN), 1);
    t.batch(2, &(5000..5016).map(tag).collect::<Vec<_>>());
    let tag = |p| tagged(tcp(4, p, (VIP, 80), ACK), 1);
    let before = fast_path(&t.fast);
    t.batch(2, &(5000..5016).map(tag).collect::<Vec<_>>());
    assert_eq!(fast_path(&t.fast) - before, 16, "tagged clients");

    // A neighbor's new MAC: flows drop their cached MAC (the general path
    // resolves it again), then take the fast path to the new MAC.
    let (ip1, _) = backend(1);
    let new_mac = MacAddr([2, 0, 0, 0, 0xb, 0x71]);
    t.both(|sw, d| {
        sw.add_static_neighbor(d, IpAddr::V4(ip1), new_mac).unwrap();
        sw.add_static(d, 1, new_mac, PortId(1)).unwrap();
    });
    let before = fast_path(&t.fast);
    let sent = t.batch(0, &flows(1, 1000..1032, ACK));
    let moved = sent[1].iter().filter(|f| f[0..6] == new_mac.0).count();
    assert!(moved > 0, "some flows are on backend 1");
    assert_eq!(fast_path(&t.fast) - before, 0, "cached MACs are stale");
    let before = fast_path(&t.fast);
    let sent = t.batch(0, &flows(1, 1000..1032, ACK));
    assert_eq!(fast_path(&t.fast) - before, 32);
    assert_eq!(
        sent[1].iter().filter(|f| f[0..6] == new_mac.0).count(),
        moved
    );

    // Backend 2 removed: its flows move (the general path picks again),
    // the others stay on the fast path.
    t.both(|sw, d| sw.set_services(services(d, &[1, 3])).unwrap());
    let sent = t.batch(0, &flows(1, 1000..1032, ACK));
    let to_b2 = sent[1].iter().filter(|f| f[0..6] == backend(2).1.0).count();
    assert_eq!(to_b2, 0, "nothing goes to the removed backend");
    let before = fast_path(&t.fast);
    t.batch(0, &flows(1, 1000..1032, ACK));
    assert_eq!(fast_path(&t.fast) - before, 32);

    assert_eq!(t.fast.pool().available(), 1024, "every buffer back");
    assert_eq!(fast_path(&t.slow), 0, "the traced twin never took it");
}

#[test]
fn a_backend_whose_health_check_failed_is_left_to_the_general_path() {
    let check = HealthCheck {
        port: 9,
        interval_ms: 1000,
        timeout_ms: 3000,
    };
    let mut t = Twins::new(Some(check));
    t.batch(0, &flows(1, 1000..1032, SYN));
    let before = fast_path(&t.fast);
    t.batch(0, &flows(1, 1000..1032, ACK));
    assert_eq!(fast_path(&t.fast) - before, 32);
    // No backend answered its probes: after the timeout all are down, and
    // established flows are dropped (no backend), not sent to them.
    t.both(|sw, _| {
        sw.set_now_ms(5000);
        sw.poll();
    });
    for h in t.fh.iter().chain(&t.sh) {
        h.take_tx();
    }
    let before = fast_path(&t.fast);
    let sent = t.batch(0, &flows(1, 1000..1032, ACK));
    assert_eq!(fast_path(&t.fast) - before, 0);
    assert!(
        sent[1].is_empty() && sent[2].is_empty(),
        "nothing to the backends"
    );
    let dropped = t
        .fast
        .router()
        .counters()
        .drops_by(rvs_switch::DropReason::LbNoBackend);
    assert_eq!(dropped, 32);
}

/// The node moves a run of frames to one port into its transmit batch at
/// once; what it sends and counts must still be what frame by frame
/// gives: a port too small for a run's frames drops them (counted, and
/// the run goes frame by frame), and a batch whose bridged frames already
/// wait on the port adds to them.
#[test]
fn runs_to_one_port_queue_as_single_frames_do() {
    // p1 takes frames of up to 56 bytes: the clients' UDP datagrams (48
    // bytes) fit, their TCP segments (60) do not.
    let mut t = Twins::with_p1_max(None, Some(56));
    let tcps = flows(1, 1000..1016, SYN);
    let udps: Vec<_> = (0..16).map(|i| udp(4000 + i)).collect();
    t.batch(0, &[tcps.clone(), udps.clone()].concat());
    let tcps = flows(1, 1000..1016, ACK);
    let oversize = |sw: &Switch| sw.ports()[1].counters.drops[DropReason::Oversize as usize];
    let (before, dropped) = (fast_path(&t.fast), oversize(&t.fast));
    let sent = t.batch(0, &[tcps, udps.clone()].concat());
    assert_eq!(
        fast_path(&t.fast) - before,
        32,
        "the vip node took them all"
    );
    assert!(sent[1].iter().all(|f| f.len() == 48), "only UDP fits p1");
    assert!(!sent[1].is_empty() && !sent[2].is_empty());
    assert_eq!(
        (oversize(&t.fast) - dropped) as usize,
        16 - sent[2].iter().filter(|f| f.len() == 64).count(),
        "every TCP segment to p1 dropped"
    );
    // A bridged frame to backend 1 (on p1) first, then established UDP
    // flows: the node's frames join it on p1.
    let mut direct = udp(5000);
    direct[0..6].copy_from_slice(&backend(1).1.0);
    let before = fast_path(&t.fast);
    let sent = t.batch(0, &[vec![direct.clone()], udps].concat());
    assert_eq!(fast_path(&t.fast) - before, 16);
    assert_eq!(sent[1].first(), Some(&direct), "the bridged frame first");
}

/// IPv6 flows to a VIP take the node as IPv4 ones do, and what it leaves
/// (extension headers, a batch that turns to the other family, a length
/// the packet does not have) the router decides, the same way.
#[test]
fn ipv6_flows_take_the_vip_node_too() {
    let mut t = Twins::new(None);
    let syn: Vec<_> = (0..32)
        .map(|i| packet6(1 + i % 3, 1000 + i as u16, (VIP6, 80), TCP, SYN, false))
        .collect();
    t.batch(0, &syn);
    assert_eq!(fast_path(&t.fast), 0, "new flows: the router");
    let ack = |i: u16| packet6(1 + (i % 3) as u8, 1000 + i, (VIP6, 80), TCP, ACK, false);
    let sent = t.batch(0, &(0..32).map(ack).collect::<Vec<_>>());
    assert_eq!(fast_path(&t.fast), 32, "the vip node took the batch");
    let to_backends: Vec<_> = sent[1].iter().chain(&sent[2]).collect();
    assert_eq!(to_backends.len(), 32);
    // IPv6 destination (after a tag on the trunk): a backend's address.
    let dst = |f: &Vec<u8>| {
        let at = if f[12..14] == [0x81, 0x00] { 18 } else { 14 };
        u128::from_be_bytes(f[at + 24..at + 40].try_into().unwrap())
    };
    assert!(
        to_backends
            .iter()
            .all(|f| (1..=3).any(|i| dst(f) == backend6(i)))
    );
    // UDP, established.
    let udp6 = |p| packet6(2, p, (VIP6, 53), UDP, 0, false);
    t.batch(0, &(0..8).map(|i| udp6(4000 + i)).collect::<Vec<_>>());
    let before = fast_path(&t.fast);
    t.batch(0, &(0..8).map(|i| udp6(4000 + i)).collect::<Vec<_>>());
    assert_eq!(fast_path(&t.fast) - before, 8, "established UDP");
    // What the node leaves, each after two packets it takes.
    let mut short = ack(3);
    short[18..20].copy_from_slice(&200u16.to_be_bytes());
    let odd: Vec<(&str, Vec<u8>)> = vec![
        (
            "a hop-by-hop header",
            packet6(1, 1004, (VIP6, 80), TCP, ACK, true),
        ),
        ("a payload length past the frame", short),
        ("an IPv4 packet", tcp(1, 1000, (VIP, 80), ACK)),
        ("a new flow", packet6(1, 3000, (VIP6, 80), TCP, SYN, false)),
    ];
    for (what, f) in odd {
        let before = fast_path(&t.fast);
        let batch = vec![ack(0), ack(1), f, ack(2), ack(4)];
        t.batch(0, &batch);
        assert_eq!(fast_path(&t.fast) - before, 2, "{what}: the two before it");
    }
    // A batch that starts with IPv4: the node takes the IPv4 head.
    t.batch(0, &flows(1, 1000..1004, SYN));
    let before = fast_path(&t.fast);
    let mut mixed = flows(1, 1000..1004, ACK);
    mixed.extend((0..4).map(ack));
    t.batch(0, &mixed);
    assert_eq!(fast_path(&t.fast) - before, 4, "the IPv4 head");
}
