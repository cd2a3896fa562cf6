//! RSTP tests: golden BPDU bytes, decoding of hostile input, and a network
//! simulator of several `Stp` bridges joined by in-memory links.

use proptest::prelude::*;

use super::bpdu::{self, Bpdu, BpduError, BpduKind, BridgeId, Times, flags};
use super::*;
use crate::mac::MacAddr;
use crate::port::PortId;

fn mac(n: u8) -> MacAddr {
    MacAddr([0x00, 0x00, 0x5e, 0x00, 0x53, n])
}

// ---------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------

fn sample_rst() -> Bpdu {
    Bpdu {
        kind: BpduKind::Rst,
        version: 2,
        flags: flags::TC | flags::PROPOSAL | flags::ROLE_DESIGNATED | flags::LEARNING,
        root: BridgeId::new(0x8000, MacAddr([0x00, 0x11, 0x22, 0x33, 0x44, 0x55])),
        root_path_cost: 20_000,
        bridge: BridgeId::new(0x9000, MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x01])),
        port: bpdu::port_identifier(128, 3),
        times: Times {
            message_age: 1_000,
            max_age: 20_000,
            hello: 2_000,
            forward_delay: 15_000,
        },
    }
}

/// Every octet of an RST BPDU frame, derived by hand from 802.1D-2004
/// clause 9 (offsets within the BPDU, i.e. after the LLC header).
#[test]
fn golden_rst_frame() {
    let src = MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0x00, 0x04]);
    let frame = sample_rst().encode_frame(src);
    #[rustfmt::skip]
    let want: [u8; 60] = [
        // Ethernet: destination = Bridge Group Address 01-80-C2-00-00-00
        0x01, 0x80, 0xc2, 0x00, 0x00, 0x00,
        // source
        0x02, 0xaa, 0xbb, 0xcc, 0x00, 0x04,
        // 802.3 length = LLC (3) + RST BPDU (36) = 39
        0x00, 0x27,
        // LLC: DSAP 0x42, SSAP 0x42, control UI 0x03
        0x42, 0x42, 0x03,
        // BPDU 0..2: Protocol Identifier 0x0000
        0x00, 0x00,
        // 2: Protocol Version Identifier 2 (RSTP)
        0x02,
        // 3: BPDU Type 0x02 (RST)
        0x02,
        // 4: Flags: TC (bit 1, 0x01) | Proposal (bit 2, 0x02) |
        //    Port Role Designated (bits 3-4 = 11, 0x0c) | Learning (bit 5, 0x10)
        0x1f,
        // 5..13: Root Identifier: priority 0x8000, MAC 00-11-22-33-44-55
        0x80, 0x00, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
        // 13..17: Root Path Cost 20000 = 0x00004e20
        0x00, 0x00, 0x4e, 0x20,
        // 17..25: Bridge Identifier: priority 0x9000, MAC 02-00-00-00-00-01
        0x90, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        // 25..27: Port Identifier: priority 128 (top nibble 8), number 3
        0x80, 0x03,
        // 27..29: Message Age 1 s = 256/256 s
        0x01, 0x00,
        // 29..31: Max Age 20 s = 5120/256 s
        0x14, 0x00,
        // 31..33: Hello Time 2 s = 512/256 s
        0x02, 0x00,
        // 33..35: Forward Delay 15 s = 3840/256 s
        0x0f, 0x00,
        // 35: Version 1 Length 0
        0x00,
        // padding to the 60-octet Ethernet minimum
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    assert_eq!(frame, want);
    assert!(bpdu::is_bpdu_frame(&frame));
    assert_eq!(Bpdu::decode_frame(&frame), Ok(sample_rst()));
    // Unpadded frames decode the same.
    assert_eq!(Bpdu::decode_frame(&frame[..53]), Ok(sample_rst()));
}

#[test]
fn golden_config_and_tcn() {
    let mut cfg = sample_rst();
    cfg.kind = BpduKind::Config;
    cfg.version = 0;
    cfg.flags = flags::TC | flags::TCA;
    let f = cfg.encode_frame(mac(1));
    assert_eq!(&f[12..14], &[0x00, 0x26]); // 3 + 35
    // Version 0, type 0x00, flags TC|TCA.
    assert_eq!(&f[17..22], &[0x00, 0x00, 0x00, 0x00, 0x81]);
    assert_eq!(f.len(), 60);
    assert_eq!(Bpdu::decode_frame(&f), Ok(cfg));

    let tcn = Bpdu::tcn().encode_frame(mac(1));
    assert_eq!(
        &tcn[12..21],
        &[0x00, 0x07, 0x42, 0x42, 0x03, 0x00, 0x00, 0x00, 0x80]
    );
    assert!(tcn[21..].iter().all(|&b| b == 0));
    assert_eq!(Bpdu::decode_frame(&tcn).map(|b| b.kind), Ok(BpduKind::Tcn));
}

#[test]
fn config_bpdu_keeps_only_tc_flags() {
    let mut b = sample_rst();
    b.kind = BpduKind::Config;
    b.flags = 0xff;
    let f = b.encode_frame(mac(1));
    assert_eq!(
        Bpdu::decode_frame(&f).unwrap().flags,
        flags::TC | flags::TCA
    );
}

#[test]
fn malformed_bpdus_rejected() {
    let good = sample_rst().encode_frame(mac(1));
    let with = |at: usize, v: u8| {
        let mut f = good.clone();
        f[at] = v;
        f
    };
    assert_eq!(Bpdu::decode_frame(&good[..10]), Err(BpduError::TooShort));
    assert!(!bpdu::is_bpdu_frame(&good[..10]));
    assert!(!bpdu::is_bpdu_frame(&with(5, 0x0e))); // LLDP's group address
    assert!(!bpdu::is_bpdu_frame(&with(12, 0x88))); // an EtherType
    assert!(!bpdu::is_bpdu_frame(&with(15, 0xaa)));
    assert_eq!(
        Bpdu::decode_frame(&with(5, 0x01)),
        Err(BpduError::NotBridgeGroup)
    );
    // An EtherType instead of an 802.3 length.
    assert_eq!(Bpdu::decode_frame(&with(12, 0x08)), Err(BpduError::NotLlc));
    assert_eq!(Bpdu::decode_frame(&with(14, 0xaa)), Err(BpduError::NotLlc));
    // 802.3 length beyond the frame.
    assert_eq!(
        Bpdu::decode_frame(&with(13, 0x50)),
        Err(BpduError::TooShort)
    );
    assert_eq!(
        Bpdu::decode_frame(&with(18, 0x01)),
        Err(BpduError::BadProtocol)
    );
    assert_eq!(
        Bpdu::decode_frame(&with(20, 0x07)),
        Err(BpduError::UnknownType(0x07))
    );
    // RST type with version < 2 is not an RST BPDU (9.3.4 c).
    assert_eq!(
        Bpdu::decode_frame(&with(19, 0x01)),
        Err(BpduError::UnknownType(0x02))
    );
    // Version 3 (MSTP) RST-type BPDUs are read as RST.
    assert_eq!(
        Bpdu::decode_frame(&with(19, 0x03)).map(|b| b.kind),
        Ok(BpduKind::Rst)
    );
    // RST shorter than 36 octets: length field says 3 + 35.
    assert_eq!(Bpdu::decode_frame(&with(13, 38)), Err(BpduError::TooShort));
    // Config BPDU shorter than 35 octets.
    let mut c = with(20, 0x00);
    c[13] = 3 + 34;
    assert_eq!(Bpdu::decode_frame(&c), Err(BpduError::TooShort));
    // Config BPDU whose message age reached max age (9.3.4 a).
    let mut c = with(20, 0x00);
    c[44] = 0x14; // message age 20 s = max age
    assert_eq!(Bpdu::decode_frame(&c), Err(BpduError::MessageAgeExceeded));
    // TCN needs only 4 octets.
    assert_eq!(
        Bpdu::decode(&[0, 0, 0, 0x80]).map(|b| b.kind),
        Ok(BpduKind::Tcn)
    );
    assert_eq!(Bpdu::decode(&[0, 0, 0]), Err(BpduError::TooShort));
}

#[test]
fn identifiers_and_costs() {
    let id = BridgeId::new(32768 + 7, mac(9));
    assert_eq!(id.priority(), 0x8000, "priority keeps the top nibble only");
    assert_eq!(id.mac(), mac(9));
    assert_eq!(id.to_string(), "8000.00005e005309");
    assert!(BridgeId::new(4096, mac(200)) < BridgeId::new(8192, mac(1)));
    assert_eq!(bpdu::port_identifier(0x80, 1), 0x8001);
    assert_eq!(bpdu::port_identifier(0x8f, 0x1234), 0x8234);
    assert_eq!(path_cost_for_speed(1_000), 20_000);
    assert_eq!(path_cost_for_speed(10_000), 2_000);
    assert_eq!(path_cost_for_speed(100), 200_000);
    assert_eq!(path_cost_for_speed(100_000_000), 1);
    assert_eq!(bpdu::ms_to_ticks(2_000), 512);
    assert_eq!(bpdu::ticks_to_ms(512), 2_000);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = Bpdu::decode(&data);
        let _ = Bpdu::decode_frame(&data);
        let mut stp = Stp::new(mac(1), StpConfig::default(), 0);
        stp.add_port(PortId(0), StpPortConfig::default(), 0);
        let _ = stp.rx_bpdu(PortId(0), &data, 10);
    }

    /// Valid framing, random BPDU body: decoding and the whole bridge cope.
    #[test]
    fn random_bpdu_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..40),
                                      version in 0u8..4, ty in prop::sample::select(vec![0u8, 2, 0x80])) {
        let mut f = Vec::new();
        f.extend_from_slice(&bpdu::BRIDGE_GROUP.0);
        f.extend_from_slice(&mac(7).0);
        f.extend_from_slice(&((3 + 4 + body.len()) as u16).to_be_bytes());
        f.extend_from_slice(&bpdu::LLC);
        f.extend_from_slice(&[0, 0, version, ty]);
        f.extend_from_slice(&body);
        let mut stp = Stp::new(mac(1), StpConfig::default(), 0);
        stp.add_port(PortId(0), StpPortConfig::default(), 0);
        stp.add_port(PortId(1), StpPortConfig::default(), 0);
        for t in 0..5u64 {
            let _ = stp.rx_bpdu(PortId(0), &f, t * 700);
            stp.tick(t * 700 + 350);
        }
        let mut out = Vec::new();
        stp.drain_tx(&mut out);
        for (_, frame) in out {
            prop_assert!(Bpdu::decode_frame(&frame).is_ok());
        }
    }

    #[test]
    fn encode_decode_round_trip(kind in prop::sample::select(vec![BpduKind::Rst, BpduKind::Config]),
                                fl in any::<u8>(), root in any::<u64>(), cost in any::<u32>(),
                                bridge in any::<u64>(), port in any::<u16>(),
                                age in 0u32..10, max in 10u32..40, hello in 1u32..10, fwd in 4u32..30) {
        let b = Bpdu {
            kind,
            version: if kind == BpduKind::Rst { 2 } else { 0 },
            flags: if kind == BpduKind::Rst { fl } else { fl & (flags::TC | flags::TCA) },
            root: BridgeId(root),
            root_path_cost: cost,
            bridge: BridgeId(bridge),
            port,
            times: Times { message_age: age * 1000, max_age: max * 1000, hello: hello * 1000, forward_delay: fwd * 1000 },
        };
        prop_assert_eq!(Bpdu::decode_frame(&b.encode_frame(mac(2))), Ok(b));
    }
}

// ---------------------------------------------------------------------------
// Simulator
// ---------------------------------------------------------------------------

/// One end of a link: bridge index and port.
type End = (usize, PortId);

struct Link {
    a: End,
    b: End,
    up: bool,
}

/// Bridges joined by links. Each step ticks every bridge, then delivers
/// every frame sent (after `delay_ms`) to the port at the other end of its
/// link, until nothing is left to deliver at this instant.
struct Sim {
    now: u64,
    step_ms: u64,
    delay_ms: u64,
    bridges: Vec<Stp>,
    dead: Vec<bool>,
    /// Bridges whose BPDUs are lost (they still receive).
    mute: Vec<bool>,
    links: Vec<Link>,
    in_flight: Vec<(u64, End, Vec<u8>)>,
    flushes: Vec<Vec<FlushRequest>>,
    /// Every frame delivered: (time, from, to, decoded).
    log: Vec<(u64, End, End, Bpdu)>,
    /// Check after every step that no cycle of forwarding links exists,
    /// not even for a moment.
    loop_free_always: bool,
}

impl Sim {
    fn new(bridges: &[(u16, u8)]) -> Self {
        Self::with_config(bridges, StpConfig::default())
    }

    fn with_config(bridges: &[(u16, u8)], cfg: StpConfig) -> Self {
        let bridges: Vec<Stp> = bridges
            .iter()
            .map(|&(prio, m)| {
                Stp::new(
                    mac(m),
                    StpConfig {
                        priority: prio,
                        ..cfg
                    },
                    0,
                )
            })
            .collect();
        let n = bridges.len();
        Sim {
            now: 0,
            step_ms: 10,
            delay_ms: 0,
            bridges,
            dead: vec![false; n],
            mute: vec![false; n],
            links: Vec::new(),
            in_flight: Vec::new(),
            flushes: vec![Vec::new(); n],
            log: Vec::new(),
            loop_free_always: true,
        }
    }

    /// Join port `pa` of bridge `a` and port `pb` of bridge `b`.
    fn link(&mut self, a: usize, pa: u16, b: usize, pb: u16) {
        let now = self.now;
        self.bridges[a].add_port(PortId(pa), StpPortConfig::default(), now);
        self.bridges[b].add_port(PortId(pb), StpPortConfig::default(), now);
        self.links.push(Link {
            a: (a, PortId(pa)),
            b: (b, PortId(pb)),
            up: true,
        });
    }

    fn peer(&self, from: End) -> Option<End> {
        self.links.iter().find_map(|l| match () {
            _ if !l.up => None,
            _ if l.a == from => Some(l.b),
            _ if l.b == from => Some(l.a),
            _ => None,
        })
    }

    /// Take a link down: both ends see link down.
    fn cut(&mut self, a: End, b: End) {
        let now = self.now;
        for l in &mut self.links {
            if (l.a == a && l.b == b) || (l.a == b && l.b == a) {
                l.up = false;
            }
        }
        self.bridges[a.0].set_port_enabled(a.1, false, now);
        self.bridges[b.0].set_port_enabled(b.1, false, now);
        self.exchange();
    }

    /// A bridge dies silently: no more ticks, frames, or reception; its
    /// neighbors' links stay up.
    fn kill(&mut self, b: usize) {
        self.dead[b] = true;
    }

    fn exchange(&mut self) {
        for _ in 0..10_000 {
            let mut out = Vec::new();
            for b in 0..self.bridges.len() {
                self.bridges[b].drain_tx(&mut out);
                for (p, frame) in out.drain(..) {
                    if self.dead[b] || self.mute[b] {
                        continue;
                    }
                    if let Some(to) = self.peer((b, p)) {
                        self.in_flight
                            .push((self.now + self.delay_ms, (b, p), frame));
                        let _ = to;
                    }
                }
                let mut f = Vec::new();
                self.bridges[b].drain_flush(&mut f);
                self.flushes[b].extend(f);
            }
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) =
                self.in_flight.drain(..).partition(|(at, _, _)| *at <= now);
            self.in_flight = later;
            if due.is_empty() {
                return;
            }
            for (_, from, frame) in due {
                let Some(to) = self.peer(from) else { continue };
                if self.dead[to.0] {
                    continue;
                }
                let bpdu = Bpdu::decode_frame(&frame).expect("bridges send valid BPDUs");
                self.log.push((now, from, to, bpdu));
                self.bridges[to.0]
                    .rx_bpdu(to.1, &frame, now)
                    .expect("valid BPDU accepted");
            }
        }
        panic!("BPDUs never stop flowing at t={}", self.now);
    }

    fn step(&mut self) {
        self.now += self.step_ms;
        for (b, stp) in self.bridges.iter_mut().enumerate() {
            if !self.dead[b] {
                stp.tick(self.now);
            }
        }
        self.exchange();
        if self.loop_free_always {
            self.assert_no_forwarding_cycle();
        }
    }

    /// Links forwarding at both ends, as a union-find forest: the number of
    /// such links and the forest, or the first link that closes a cycle.
    fn forwarding_links(&self) -> Result<(usize, Vec<usize>), (End, End)> {
        let mut parent: Vec<usize> = (0..self.bridges.len()).collect();
        let mut edges = 0;
        for l in self.links.iter().filter(|l| l.up) {
            if self.dead[l.a.0] || self.dead[l.b.0] {
                continue;
            }
            if self.state(l.a) == PortState::Forwarding && self.state(l.b) == PortState::Forwarding
            {
                let (x, y) = (find(&mut parent, l.a.0), find(&mut parent, l.b.0));
                if x == y {
                    return Err((l.a, l.b));
                }
                parent[x] = y;
                edges += 1;
            }
        }
        Ok((edges, parent))
    }

    fn forwarding_cycle(&self) -> Option<(End, End)> {
        self.forwarding_links().err()
    }

    fn forwarding_forest(&self) -> (usize, Vec<usize>) {
        match self.forwarding_links() {
            Ok(f) => f,
            Err((a, b)) => panic!("t={}: forwarding cycle through link {a:?}-{b:?}", self.now),
        }
    }

    fn assert_no_forwarding_cycle(&self) {
        self.forwarding_forest();
    }

    fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.step();
        }
    }

    /// Step until `cond` holds; the time it took, or `None` after `max_ms`.
    fn run_until(&mut self, max_ms: u64, cond: impl Fn(&Sim) -> bool) -> Option<u64> {
        let start = self.now;
        while self.now - start <= max_ms {
            if cond(self) {
                return Some(self.now - start);
            }
            self.step();
        }
        None
    }

    fn state(&self, e: End) -> PortState {
        self.bridges[e.0].state(e.1)
    }

    fn role(&self, e: End) -> PortRole {
        self.bridges[e.0].role(e.1)
    }

    fn all_forwarding(&self, ends: &[End]) -> bool {
        ends.iter().all(|&e| self.state(e) == PortState::Forwarding)
    }

    /// Every live bridge agrees on the root and the links whose both ends
    /// forward form a spanning tree of the live bridges reachable over up
    /// links: connected and without a cycle.
    fn assert_spanning_tree(&self) {
        let live: Vec<usize> = (0..self.bridges.len()).filter(|&b| !self.dead[b]).collect();
        let root = self.bridges[live[0]].root_id();
        for &b in &live {
            assert_eq!(
                self.bridges[b].root_id(),
                root,
                "bridge {b} disagrees on the root"
            );
        }
        let (edges, mut parent) = self.forwarding_forest();
        for l in self.links.iter().filter(|l| l.up) {
            if self.dead[l.a.0] || self.dead[l.b.0] {
                continue;
            }
            // A blocked link is blocked at one end only; the other end is
            // the designated port and forwards.
            let fa = self.state(l.a) == PortState::Forwarding;
            let fb = self.state(l.b) == PortState::Forwarding;
            assert!(fa || fb, "link {:?}-{:?} blocked at both ends", l.a, l.b);
        }
        let roots: std::collections::BTreeSet<usize> =
            live.iter().map(|&b| find(&mut parent, b)).collect();
        assert_eq!(
            roots.len(),
            1,
            "forwarding links do not connect every bridge"
        );
        assert_eq!(edges, live.len() - 1);
    }
}

fn find(p: &mut [usize], x: usize) -> usize {
    let mut x = x;
    while p[x] != x {
        p[x] = p[p[x]];
        x = p[x];
    }
    x
}

const P1: u16 = 1;
const P2: u16 = 2;

/// Three bridges in a ring; bridge 0 has the lowest ID.
/// All links come up at once; each BPDU takes 1 ms, time advances in 1 ms
/// steps.
fn ring() -> Sim {
    let mut s = Sim::new(&[(32768, 1), (32768, 2), (32768, 3)]);
    s.delay_ms = 1;
    s.step_ms = 1;
    s.link(0, P1, 1, P1);
    s.link(0, P2, 2, P1);
    s.link(1, P2, 2, P2);
    s
}

#[test]
fn two_bridges_converge_by_handshake() {
    let mut s = Sim::new(&[(32768, 2), (32768, 1)]);
    s.delay_ms = 1;
    s.step_ms = 1;
    s.link(0, P1, 1, P1);
    let t = s
        .run_until(30_000, |s| {
            s.all_forwarding(&[(0, PortId(P1)), (1, PortId(P1))])
        })
        .expect("converges");
    eprintln!("two bridges forward after {t} ms");
    assert!(t < 1_000, "took {t} ms: the handshake did not work");
    // The lower bridge ID (bridge 1) is the root.
    let root = s.bridges[1].bridge_id();
    assert_eq!(s.bridges[0].root_id(), root);
    assert_eq!(s.bridges[1].root_id(), root);
    assert_eq!(s.role((1, PortId(P1))), PortRole::Designated);
    assert_eq!(s.role((0, PortId(P1))), PortRole::Root);
    assert_eq!(s.bridges[0].root_port(), Some(PortId(P1)));
    assert_eq!(s.bridges[1].root_port(), None);
    // The proposal and the agreement both went over the wire.
    assert!(
        s.log
            .iter()
            .any(|(_, _, to, b)| to.0 == 0 && b.flags & flags::PROPOSAL != 0)
    );
    assert!(
        s.log
            .iter()
            .any(|(_, _, to, b)| to.0 == 1 && b.flags & flags::AGREEMENT != 0)
    );
    // It stays that way.
    s.run_for(60_000);
    assert!(s.all_forwarding(&[(0, PortId(P1)), (1, PortId(P1))]));
    let info = s.bridges[0].info();
    assert_eq!(info.root_port, Some(PortId(P1)));
    assert_eq!(info.root_path_cost, DEFAULT_PATH_COST);
    assert!(info.ports[0].counters.bpdu_rx > 20);
}

#[test]
fn priority_beats_mac() {
    let mut s = Sim::new(&[(32768, 1), (4096, 9)]);
    s.link(0, P1, 1, P1);
    s.run_for(2_000);
    assert_eq!(s.bridges[0].root_id(), s.bridges[1].bridge_id());
    assert_eq!(s.bridges[0].root_port(), Some(PortId(P1)));
}

#[test]
fn ring_converges_with_one_alternate() {
    let mut s = ring();
    let ports = [
        (0, PortId(P1)),
        (0, PortId(P2)),
        (1, PortId(P1)),
        (1, PortId(P2)),
        (2, PortId(P1)),
        (2, PortId(P2)),
    ];
    let t = s
        .run_until(60_000, |s| {
            ports
                .iter()
                .filter(|&&e| s.state(e) == PortState::Forwarding)
                .count()
                == 5
                && ports.iter().any(|&e| s.role(e) == PortRole::Alternate)
        })
        .expect("converges");
    eprintln!("ring converged after {t} ms");
    assert!(t < 1_000, "took {t} ms");
    s.run_for(30_000);
    let root = s.bridges[0].bridge_id();
    for b in &s.bridges {
        assert_eq!(b.root_id(), root);
    }
    let alternates: Vec<_> = ports
        .iter()
        .filter(|&&e| s.role(e) == PortRole::Alternate)
        .collect();
    // Bridge 2 (highest ID) blocks its port towards bridge 1.
    assert_eq!(alternates, [&(2, PortId(P2))]);
    assert_eq!(s.state((2, PortId(P2))), PortState::Discarding);
    for &e in &ports {
        if e != (2, PortId(P2)) {
            assert_eq!(s.state(e), PortState::Forwarding, "{e:?}");
        }
    }
    assert_eq!(s.role((1, PortId(P2))), PortRole::Designated);
    assert_eq!(s.role((0, PortId(P1))), PortRole::Designated);
    assert_eq!(s.role((0, PortId(P2))), PortRole::Designated);
    assert_eq!(s.role((1, PortId(P1))), PortRole::Root);
    assert_eq!(s.role((2, PortId(P1))), PortRole::Root);
    s.assert_spanning_tree();
}

#[test]
fn cut_ring_link_fails_over_to_alternate() {
    let mut s = ring();
    s.run_for(10_000);
    s.assert_spanning_tree();
    for f in &mut s.flushes {
        f.clear();
    }
    // Bridge 2 loses its root port.
    s.cut((0, PortId(P2)), (2, PortId(P1)));
    let t = s
        .run_until(30_000, |s| {
            s.role((2, PortId(P2))) == PortRole::Root
                && s.state((2, PortId(P2))) == PortState::Forwarding
        })
        .expect("alternate takes over");
    eprintln!("alternate forwarding {t} ms after the cut");
    assert!(t < 1_000, "took {t} ms");
    assert_eq!(s.bridges[2].root_id(), s.bridges[0].bridge_id());
    assert_eq!(s.bridges[2].info().root_path_cost, 2 * DEFAULT_PATH_COST);
    s.assert_spanning_tree();
    // The topology change reached bridge 1 and it flushed its port towards
    // the root (not the one the TC came in on).
    s.run_for(1_000);
    assert!(
        s.flushes[1].contains(&FlushRequest { port: PortId(P1) }),
        "{:?}",
        s.flushes
    );
    assert!(!s.flushes[1].contains(&FlushRequest { port: PortId(P2) }));
    assert!(s.bridges[2].info().topology_changes > 0);
    s.run_for(30_000);
    s.assert_spanning_tree();
}

#[test]
fn root_failure_reelects() {
    let mut s = ring();
    s.run_for(10_000);
    s.kill(0);
    let new_root = s.bridges[1].bridge_id();
    let t = s
        .run_until(60_000, |s| {
            s.bridges[1].root_id() == new_root
                && s.bridges[2].root_id() == new_root
                && s.all_forwarding(&[(1, PortId(P2)), (2, PortId(P2))])
        })
        .expect("re-elects");
    eprintln!("re-elected {t} ms after the root died");
    // Information ages out after 3 × Hello without BPDUs (6 s), not before.
    assert!(t >= 4_000, "re-elected after {t} ms, before info could age");
    assert!(t <= 20_000 + 6_000, "took {t} ms");
    s.run_for(30_000);
    assert_eq!(s.bridges[2].root_port(), Some(PortId(P2)));
    assert_eq!(s.bridges[1].root_port(), None);
    s.assert_spanning_tree();
}

#[test]
fn edge_ports() {
    let mut stp = Stp::new(mac(5), StpConfig::default(), 0);
    let edge = PortId(3);
    stp.add_port(
        edge,
        StpPortConfig {
            admin_edge: true,
            ..Default::default()
        },
        0,
    );
    // Forwarding at once, no timers.
    assert_eq!(stp.state(edge), PortState::Forwarding);
    assert!(stp.learning(edge) && stp.forwarding(edge));
    assert!(stp.is_edge(edge));
    assert_eq!(stp.role(edge), PortRole::Designated);
    // Edge ports going to forwarding are not topology changes.
    assert_eq!(stp.info().topology_changes, 0);

    // A non-edge port with nothing behind it becomes edge after the
    // migrate time (auto edge) instead of waiting 2 × Forward Delay.
    let host = PortId(4);
    stp.add_port(host, StpPortConfig::default(), 0);
    assert_eq!(stp.state(host), PortState::Discarding);
    let mut t = 0;
    while stp.state(host) != PortState::Forwarding {
        t += 100;
        stp.tick(t);
        assert!(t < 10_000, "auto edge never happened");
    }
    assert!(
        (MIGRATE_TIME_MS..=MIGRATE_TIME_MS + 200).contains(&t),
        "t = {t}"
    );
    assert!(stp.is_edge(host));

    // A BPDU on the edge port: it stops being an edge port. This one comes
    // from a better bridge, so the port becomes the root port.
    let mut other = Stp::new(mac(1), StpConfig::default(), 0);
    other.add_port(PortId(0), StpPortConfig::default(), 0);
    let mut out = Vec::new();
    other.drain_tx(&mut out);
    let (_, frame) = out.pop().expect("a BPDU");
    stp.rx_bpdu(edge, &frame, t + 10).unwrap();
    assert!(!stp.is_edge(edge));
    assert!(
        !stp.info()
            .ports
            .iter()
            .find(|p| p.port == edge)
            .unwrap()
            .edge
    );
    assert_eq!(stp.role(edge), PortRole::Root);
    assert_eq!(stp.root_id(), other.bridge_id());
    // An inferior BPDU (a worse bridge) on the auto edge port clears edge
    // too; the port stays designated.
    stp.drain_tx(&mut out);
    let (_, own) = out
        .iter()
        .find(|(p, _)| *p == host)
        .cloned()
        .expect("sent on host port");
    let mut third = Stp::new(mac(9), StpConfig::default(), 0);
    third.add_port(PortId(0), StpPortConfig::default(), 0);
    let mut o3 = Vec::new();
    third.drain_tx(&mut o3);
    stp.rx_bpdu(host, &o3[0].1, t + 20).unwrap();
    assert!(!stp.is_edge(host));
    assert_eq!(stp.role(host), PortRole::Designated);
    // A looped-back BPDU (our own, on the same port) is refused.
    assert_eq!(stp.rx_bpdu(host, &own, t + 30), Err(BpduError::Loopback));
}

#[test]
fn stp_neighbor_falls_back_to_config_bpdus_and_timers() {
    let mut s = Sim::new(&[(32768, 1), (32768, 2)]);
    // Bridge 1 speaks 802.1D-1998 only.
    s.bridges[1] = Stp::new(
        mac(2),
        StpConfig {
            force_version: 0,
            ..Default::default()
        },
        0,
    );
    s.link(0, P1, 1, P1);
    let a = (0, PortId(P1));
    let b = (1, PortId(P1));
    // Within a few seconds bridge 0 speaks STP on that port.
    let t = s
        .run_until(10_000, |s| !s.bridges[0].info().ports[0].rstp)
        .expect("falls back");
    assert!(t <= MIGRATE_TIME_MS + 2 * 2_000 + 100, "t = {t}");
    s.run_for(100);
    let since = s.now;
    // No handshake: nothing forwards before Forward Delay has passed twice
    // (a new port starts with fdWhile = Max Age, 17.29: learning after 20 s,
    // forwarding 15 s later).
    let t = s
        .run_until(60_000, |s| s.state(a) == PortState::Learning)
        .expect("learns");
    assert!(s.now >= 15_000, "learning at {} ms", s.now);
    assert!(t < 60_000);
    let learn_at = s.now;
    s.run_until(60_000, |s| s.all_forwarding(&[a, b]))
        .expect("forwards");
    assert!(
        s.now - learn_at >= 14_000,
        "learning lasted {} ms",
        s.now - learn_at
    );
    assert!(
        s.now >= 30_000 && s.now <= 36_000,
        "forwarding at {} ms",
        s.now
    );
    assert_eq!(s.role(a), PortRole::Designated);
    assert_eq!(s.role(b), PortRole::Root);
    // After the fallback bridge 0 sent only Configuration BPDUs, and the
    // STP bridge never sent an RST BPDU.
    for (at, from, _, bpdu) in &s.log {
        if from.0 == 1 {
            assert_ne!(bpdu.kind, BpduKind::Rst);
        } else if *at >= since {
            assert_eq!(bpdu.kind, BpduKind::Config);
            assert_eq!(bpdu.version, 0);
        }
    }
    s.run_for(60_000);
    // The STP bridge's root port reported the topology change with TCNs and
    // bridge 0 acknowledged them.
    assert!(
        s.log
            .iter()
            .any(|(_, f, _, b)| f.0 == 1 && b.kind == BpduKind::Tcn)
    );
    assert!(
        s.log
            .iter()
            .any(|(_, f, _, b)| f.0 == 0 && b.flags & flags::TCA != 0)
    );
    // TCNs stop once acknowledged.
    let late_tcns = s
        .log
        .iter()
        .filter(|(at, f, _, b)| *at > s.now - 20_000 && f.0 == 1 && b.kind == BpduKind::Tcn)
        .count();
    assert_eq!(late_tcns, 0);
    s.assert_spanning_tree();
}

#[test]
fn tx_hold_count_limits_bpdus() {
    let mut stp = Stp::new(mac(50), StpConfig::default(), 0);
    let p = PortId(0);
    stp.add_port(p, StpPortConfig::default(), 0);
    let mut out = Vec::new();
    // 40 BPDUs from ever better roots within one second: each changes the
    // bridge's information and asks for a BPDU on every port.
    stp.add_port(PortId(1), StpPortConfig::default(), 0);
    for k in 0..40u8 {
        let mut b = sample_rst();
        b.flags = flags::ROLE_DESIGNATED;
        b.root = BridgeId::new(0x1000, mac(200 - k));
        b.bridge = BridgeId::new(0x1000, mac(200 - k));
        b.times.message_age = 0;
        stp.rx_bpdu(p, &b.encode_frame(mac(99)), 100 + k as u64)
            .unwrap();
    }
    stp.drain_tx(&mut out);
    let on_1 = out.iter().filter(|(q, _)| *q == PortId(1)).count();
    assert_eq!(on_1 as u32, StpConfig::default().tx_hold_count);
    // A second later the hold has room again and the latest state goes out.
    out.clear();
    stp.tick(1_200);
    stp.drain_tx(&mut out);
    let last = out
        .iter()
        .rev()
        .find(|(q, _)| *q == PortId(1))
        .expect("sent");
    assert_eq!(
        Bpdu::decode_frame(&last.1).unwrap().root,
        BridgeId::new(0x1000, mac(161))
    );
}

#[test]
fn backup_port_on_shared_segment() {
    // Two ports of one bridge on the same segment (a hub): the higher port
    // ID becomes Backup and discards.
    let mut s = Sim::new(&[(32768, 1)]);
    let now = 0;
    s.bridges[0].add_port(PortId(1), StpPortConfig::default(), now);
    s.bridges[0].add_port(PortId(2), StpPortConfig::default(), now);
    s.links.push(Link {
        a: (0, PortId(1)),
        b: (0, PortId(2)),
        up: true,
    });
    s.run_for(5_000);
    assert_eq!(s.role((0, PortId(1))), PortRole::Designated);
    assert_eq!(s.role((0, PortId(2))), PortRole::Backup);
    assert_eq!(s.state((0, PortId(2))), PortState::Discarding);
    s.run_for(40_000);
    assert_eq!(s.state((0, PortId(2))), PortState::Discarding);
}

#[test]
fn port_removal_and_link_flap() {
    let mut s = ring();
    s.run_for(5_000);
    // Bridge 2's root port goes away entirely.
    s.bridges[2].remove_port(PortId(P1));
    s.links.retain(|l| l.b != (2, PortId(P1)));
    s.bridges[0].set_port_enabled(PortId(P2), false, s.now);
    s.run_for(2_000);
    assert_eq!(s.bridges[2].root_port(), Some(PortId(P2)));
    assert_eq!(s.bridges[2].role(PortId(P1)), PortRole::Disabled);
    assert_eq!(s.bridges[2].state(PortId(P1)), PortState::Discarding);
    assert!(
        s.bridges[2]
            .info()
            .ports
            .iter()
            .all(|p| p.port != PortId(P1))
    );
    // A link flap on bridge 1's root port: down, then up again.
    s.bridges[1].set_port_enabled(PortId(P1), false, s.now);
    s.bridges[0].set_port_enabled(PortId(P1), false, s.now);
    s.links[0].up = false;
    s.run_for(2_000);
    // Bridge 1 and 2 are cut off from bridge 0: bridge 1 is their root.
    assert_eq!(s.bridges[2].root_id(), s.bridges[1].bridge_id());
    s.links[0].up = true;
    s.bridges[1].set_port_enabled(PortId(P1), true, s.now);
    s.bridges[0].set_port_enabled(PortId(P1), true, s.now);
    let t = s
        .run_until(5_000, |s| {
            s.bridges[2].root_id() == s.bridges[0].bridge_id()
                && s.all_forwarding(&[(0, PortId(P1)), (1, PortId(P1)), (1, PortId(P2))])
        })
        .expect("rejoins");
    assert!(t < 1_000, "took {t} ms");
}

/// Random topologies: after convergence the forwarding links always form
/// a spanning tree rooted at the lowest bridge ID.
#[test]
fn random_topologies_form_spanning_trees() {
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 24,
        ..Default::default()
    });
    let strat = (
        3usize..7,
        proptest::collection::vec((0usize..7, 0usize..7), 2..14),
        proptest::collection::vec(0u16..3, 7),
    );
    runner
        .run(&strat, |(n, pairs, prios)| {
            let spec: Vec<(u16, u8)> = (0..n)
                .map(|i| (prios[i] * 4096 + 4096, 10 + i as u8))
                .collect();
            let mut s = Sim::new(&spec);
            s.delay_ms = 3;
            let mut next_port = vec![0u16; n];
            // A chain first so the graph is connected, then random extras
            // (parallel links included).
            let mut pairs2: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
            pairs2.extend(
                pairs
                    .into_iter()
                    .map(|(a, b)| (a % n, b % n))
                    .filter(|(a, b)| a != b),
            );
            for (a, b) in pairs2 {
                let (pa, pb) = (next_port[a], next_port[b]);
                next_port[a] += 1;
                next_port[b] += 1;
                s.link(a, pa, b, pb);
            }
            s.run_for(40_000);
            s.assert_spanning_tree();
            let best = s.bridges.iter().map(|b| b.bridge_id()).min().unwrap();
            prop_assert_eq!(s.bridges[0].root_id(), best);
            Ok(())
        })
        .unwrap();
}

#[test]
fn info_serializes() {
    let mut s = Sim::new(&[(32768, 1), (32768, 2)]);
    s.link(0, P1, 1, P1);
    s.run_for(1_000);
    let v = serde_json::to_value(s.bridges[1].info()).unwrap();
    assert_eq!(v["root_id"], "8000.00005e005301");
    assert_eq!(v["root_port"], 1);
    assert_eq!(v["ports"][0]["role"], "root");
    assert_eq!(v["ports"][0]["state"], "forwarding");
    assert!(v["ports"][0]["counters"]["bpdu_rx"].as_u64().unwrap() > 0);
}

/// Is the graph of up links (between live bridges) connected without `skip`?
fn connected_without(s: &Sim, skip: usize) -> bool {
    let n = s.bridges.len();
    let mut parent: Vec<usize> = (0..n).collect();
    for (k, l) in s.links.iter().enumerate() {
        if k != skip && l.up {
            let (x, y) = (find(&mut parent, l.a.0), find(&mut parent, l.b.0));
            parent[x] = y;
        }
    }
    let r = find(&mut parent, 0);
    (0..n).all(|b| find(&mut parent, b) == r)
}

/// Random topologies under churn: links fail (never partitioning the
/// network), come back, and new links appear, at random moments, with link
/// delay. No cycle of forwarding links may exist at any step, and once
/// things settle the forwarding links are a spanning tree again.
#[test]
fn churn_never_loops() {
    #[derive(Debug, Clone)]
    enum Ev {
        Cut(usize),
        Restore(usize),
        Add(usize, usize),
    }
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 24,
        ..Default::default()
    });
    let ev = prop_oneof![
        (0usize..32).prop_map(Ev::Cut),
        (0usize..32).prop_map(Ev::Restore),
        (0usize..8, 0usize..8).prop_map(|(a, b)| Ev::Add(a, b)),
    ];
    let strat = (
        3usize..7,
        proptest::collection::vec((0usize..7, 0usize..7), 2..10),
        proptest::collection::vec((ev, 0u64..4_000), 1..10),
        0u64..5,
    );
    runner
        .run(&strat, |(n, pairs, events, delay)| {
            let spec: Vec<(u16, u8)> = (0..n).map(|i| (32768, 20 + i as u8)).collect();
            let mut s = Sim::new(&spec);
            s.delay_ms = delay;
            let mut next_port = vec![0u16; n];
            let mut pairs2: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
            pairs2.extend(
                pairs
                    .into_iter()
                    .map(|(a, b)| (a % n, b % n))
                    .filter(|(a, b)| a != b),
            );
            for (a, b) in pairs2 {
                let (pa, pb) = (next_port[a], next_port[b]);
                next_port[a] += 1;
                next_port[b] += 1;
                s.link(a, pa, b, pb);
            }
            s.run_for(5_000);
            for (e, wait) in events {
                match e {
                    Ev::Cut(k) => {
                        let k = k % s.links.len();
                        if s.links[k].up && connected_without(&s, k) {
                            let (a, b) = (s.links[k].a, s.links[k].b);
                            s.cut(a, b);
                        }
                    }
                    Ev::Restore(k) => {
                        let k = k % s.links.len();
                        if !s.links[k].up {
                            let (a, b) = (s.links[k].a, s.links[k].b);
                            s.links[k].up = true;
                            let now = s.now;
                            s.bridges[a.0].set_port_enabled(a.1, true, now);
                            s.bridges[b.0].set_port_enabled(b.1, true, now);
                            s.exchange();
                        }
                    }
                    Ev::Add(a, b) => {
                        let (a, b) = (a % n, b % n);
                        if a != b {
                            let (pa, pb) = (next_port[a], next_port[b]);
                            next_port[a] += 1;
                            next_port[b] += 1;
                            s.link(a, pa, b, pb);
                        }
                    }
                }
                s.run_for(wait);
            }
            s.run_for(40_000);
            s.assert_spanning_tree();
            Ok(())
        })
        .unwrap();
}

#[test]
fn config_validation() {
    assert_eq!(StpConfig::default().validate(), Ok(()));
    assert_eq!(StpPortConfig::default().validate(), Ok(()));
    let bad = |c: StpConfig| c.validate().is_err();
    let d = StpConfig::default();
    assert!(bad(StpConfig { priority: 100, ..d }));
    assert!(bad(StpConfig { hello_ms: 0, ..d }));
    assert!(bad(StpConfig {
        max_age_ms: 40_000,
        forward_delay_ms: 15_000,
        ..d
    }));
    assert!(bad(StpConfig {
        max_age_ms: 6_000,
        hello_ms: 3_000,
        ..d
    }));
    assert!(bad(StpConfig {
        tx_hold_count: 0,
        ..d
    }));
    assert!(bad(StpConfig {
        force_version: 1,
        ..d
    }));
    assert!(
        StpPortConfig {
            priority: 129,
            ..Default::default()
        }
        .validate()
        .is_err()
    );
}

/// Message age grows one second per hop, and information whose age would
/// reach max age is discarded on receipt (17.21.23).
#[test]
fn message_age_limits_information() {
    let better = |age_ms: u32| {
        let mut b = sample_rst();
        b.flags = flags::ROLE_DESIGNATED;
        b.root = BridgeId::new(0x1000, mac(1));
        b.bridge = BridgeId::new(0x1000, mac(1));
        b.times.message_age = age_ms;
        b.encode_frame(mac(1))
    };
    let mut stp = Stp::new(mac(50), StpConfig::default(), 0);
    stp.add_port(PortId(0), StpPortConfig::default(), 0);
    stp.add_port(PortId(1), StpPortConfig::default(), 0);
    // 19.5 s + 1 s > 20 s: aged at once, this bridge stays root.
    stp.rx_bpdu(PortId(0), &better(19_500), 10).unwrap();
    assert_eq!(stp.root_id(), stp.bridge_id());
    // 18 s is usable; the bridge passes it on as 19 s.
    stp.rx_bpdu(PortId(0), &better(18_000), 20).unwrap();
    assert_eq!(stp.root_id(), BridgeId::new(0x1000, mac(1)));
    assert_eq!(stp.root_port(), Some(PortId(0)));
    let mut out = Vec::new();
    stp.drain_tx(&mut out);
    let sent = out.iter().rev().find(|(p, _)| *p == PortId(1)).unwrap();
    let b = Bpdu::decode_frame(&sent.1).unwrap();
    assert_eq!(b.root, BridgeId::new(0x1000, mac(1)));
    assert_eq!(b.times.message_age, 19_000);
    assert_eq!(b.root_path_cost, DEFAULT_PATH_COST + 20_000);
    // Without repeats the root port's information ages after 3 × hello.
    stp.tick(20 + 5_900);
    assert_eq!(stp.root_port(), Some(PortId(0)));
    stp.tick(20 + 6_000);
    assert_eq!(stp.root_port(), None);
    assert_eq!(stp.root_id(), stp.bridge_id());
}

/// A TC received on the root port flushes every other non-edge port, not
/// the receiving one and not edge ports, and is passed on downstream.
#[test]
fn received_tc_flushes_other_non_edge_ports() {
    let mut s = Sim::new(&[(32768, 1), (32768, 2), (32768, 3)]);
    s.link(0, P1, 1, P1);
    s.link(1, P2, 2, P1);
    let edge = PortId(9);
    s.bridges[1].add_port(
        edge,
        StpPortConfig {
            admin_edge: true,
            ..Default::default()
        },
        0,
    );
    s.run_for(10_000);
    s.assert_spanning_tree();
    for f in &mut s.flushes {
        f.clear();
    }
    let n_log = s.log.len();
    let tc_rx = s.bridges[1].info().ports[0].counters.tc_rx;
    // Bridge 0 sends a BPDU with TC to bridge 1's root port.
    let (_, _, _, last) = *s
        .log
        .iter()
        .rev()
        .find(|(_, from, _, _)| from.0 == 0)
        .unwrap();
    let tc = Bpdu {
        flags: last.flags | flags::TC,
        ..last
    };
    let now = s.now;
    s.bridges[1]
        .rx_bpdu(PortId(P1), &tc.encode_frame(mac(1)), now)
        .unwrap();
    s.exchange();
    assert_eq!(s.flushes[1], [FlushRequest { port: PortId(P2) }]);
    assert_eq!(s.bridges[1].info().ports[0].counters.tc_rx, tc_rx + 1);
    // Passed on to bridge 2 with the TC flag, which flushes nothing else
    // (it has no other port) and does not send it back.
    assert!(
        s.log[n_log..]
            .iter()
            .any(|(_, from, to, b)| *from == (1, PortId(P2))
                && to.0 == 2
                && b.flags & flags::TC != 0)
    );
    assert!(s.flushes[2].is_empty());
    s.run_for(10_000);
    assert!(
        !s.log[n_log..]
            .iter()
            .any(|(_, from, _, b)| *from == (1, PortId(P1)) && b.flags & flags::TC != 0),
        "TC echoed back towards where it came from"
    );
}

proptest! {
    /// Arbitrary (well-formed) BPDUs on arbitrary ports at arbitrary times:
    /// the machines always settle (a livelock trips a debug assertion) and
    /// the outputs stay consistent.
    #[test]
    fn arbitrary_bpdu_sequences_keep_invariants(
        seq in proptest::collection::vec(
            (0u16..4, prop::sample::select(vec![BpduKind::Rst, BpduKind::Config, BpduKind::Tcn]),
             any::<u8>(), 0u8..4, 0u8..4, 0u32..60_000, 0u16..4, 0u32..4, 0u64..3_000),
            1..60),
        version in prop::sample::select(vec![0u8, 2]),
    ) {
        let mut stp = Stp::new(mac(2), StpConfig { force_version: version, ..Default::default() }, 0);
        for p in 0..4 {
            stp.add_port(PortId(p), StpPortConfig { admin_edge: p == 3, ..Default::default() }, 0);
        }
        let mut now = 0;
        let mut out = Vec::new();
        for (port, kind, fl, root, bridge, cost, dport, age, wait) in seq {
            let b = Bpdu {
                kind,
                version: if kind == BpduKind::Rst { 2 } else { 0 },
                flags: if kind == BpduKind::Rst { fl } else { fl & (flags::TC | flags::TCA) },
                root: BridgeId::new(0x8000, mac(root)),
                root_path_cost: cost,
                bridge: BridgeId::new(0x8000, mac(bridge)),
                port: bpdu::port_identifier(128, dport),
                times: Times { message_age: age * 1000, max_age: 20_000, hello: 2_000, forward_delay: 15_000 },
            };
            now += wait;
            let _ = stp.rx_bpdu(PortId(port), &b.encode_frame(mac(bridge)), now);
            stp.tick(now + 1);
            for p in 0..4 {
                let p = PortId(p);
                prop_assert!(!stp.forwarding(p) || stp.learning(p));
                if matches!(stp.role(p), PortRole::Alternate | PortRole::Backup) {
                    prop_assert_eq!(stp.state(p), PortState::Discarding);
                }
            }
            match stp.root_port() {
                Some(r) => {
                    prop_assert_eq!(stp.role(r), PortRole::Root);
                    prop_assert!(stp.root_id() < stp.bridge_id());
                }
                None => prop_assert_eq!(stp.root_id(), stp.bridge_id()),
            }
            prop_assert!(
                (0..4).filter(|&p| stp.role(PortId(p)) == PortRole::Root).count() <= 1
            );
            stp.drain_tx(&mut out);
            // Never more than tx_hold_count + 1 per port in any one call.
            for p in 0..4 {
                prop_assert!(out.iter().filter(|(q, _)| q.0 == p).count() <= 7);
            }
            out.clear();
        }
    }
}

#[test]
fn shared_link_waits_for_timers() {
    // Not point-to-point: agreements are not trusted (17.21.9), so the
    // designated end waits Forward Delay twice; the root port, a local
    // decision, forwards at once.
    let mut s = Sim::new(&[(32768, 1), (32768, 2)]);
    s.delay_ms = 1;
    let shared = StpPortConfig {
        point_to_point: false,
        auto_edge: false,
        ..Default::default()
    };
    s.bridges[0].add_port(PortId(P1), shared, 0);
    s.bridges[1].add_port(PortId(P1), shared, 0);
    s.links.push(Link {
        a: (0, PortId(P1)),
        b: (1, PortId(P1)),
        up: true,
    });
    s.run_for(1_000);
    assert_eq!(s.state((1, PortId(P1))), PortState::Forwarding);
    assert_eq!(s.role((1, PortId(P1))), PortRole::Root);
    assert_eq!(s.state((0, PortId(P1))), PortState::Discarding);
    s.run_until(60_000, |s| {
        s.state((0, PortId(P1))) == PortState::Forwarding
    })
    .expect("forwards by timer");
    assert!(s.now >= 30_000, "forwarding at {} ms", s.now);
}

#[test]
fn returns_to_rstp_when_the_stp_neighbor_is_replaced() {
    let mut s = Sim::new(&[(32768, 1), (32768, 2)]);
    s.bridges[1] = Stp::new(
        mac(2),
        StpConfig {
            force_version: 0,
            ..Default::default()
        },
        0,
    );
    s.link(0, P1, 1, P1);
    s.run_for(40_000);
    assert!(!s.bridges[0].info().ports[0].rstp);
    assert!(s.all_forwarding(&[(0, PortId(P1)), (1, PortId(P1))]));
    // The old bridge is swapped for an RSTP one on the same link.
    let now = s.now;
    s.bridges[1] = Stp::new(mac(2), StpConfig::default(), now);
    s.bridges[1].add_port(PortId(P1), StpPortConfig::default(), now);
    s.run_until(10_000, |s| s.bridges[0].info().ports[0].rstp)
        .expect("back to RSTP");
    // And the handshake works again: forwarding within a second of that.
    let t = s
        .run_until(30_000, |s| {
            s.all_forwarding(&[(0, PortId(P1)), (1, PortId(P1))])
        })
        .expect("forwards");
    assert!(t < 1_000, "took {t} ms");
    // mcheck on a port that speaks RSTP already changes nothing.
    let now = s.now;
    s.bridges[0].mcheck(PortId(P1), now);
    s.run_for(5_000);
    assert!(s.bridges[0].info().ports[0].rstp);
    assert!(s.all_forwarding(&[(0, PortId(P1)), (1, PortId(P1))]));
}

#[test]
fn auto_edge_on_shared_link_waits_max_age() {
    let mut stp = Stp::new(mac(5), StpConfig::default(), 0);
    let p = PortId(0);
    stp.add_port(
        p,
        StpPortConfig {
            point_to_point: false,
            ..Default::default()
        },
        0,
    );
    stp.tick(MIGRATE_TIME_MS + 1_000);
    assert!(!stp.is_edge(p));
    stp.tick(19_900);
    assert!(!stp.is_edge(p));
    stp.tick(20_000);
    assert!(stp.is_edge(p));
    assert_eq!(stp.state(p), PortState::Forwarding);
}

#[test]
fn reconfiguration_moves_the_root_and_the_block() {
    let mut s = ring();
    s.run_for(5_000);
    assert_eq!(s.role((2, PortId(P2))), PortRole::Alternate);
    // Make bridge 2 the best bridge: it becomes root, the tree re-forms
    // without a loop (checked every step) and bridge 1 now blocks.
    let now = s.now;
    s.bridges[2].set_config(
        StpConfig {
            priority: 4096,
            ..Default::default()
        },
        now,
    );
    s.run_for(5_000);
    let root = s.bridges[2].bridge_id();
    assert!(s.bridges.iter().all(|b| b.root_id() == root));
    assert_eq!(s.role((1, PortId(P1))), PortRole::Alternate);
    s.assert_spanning_tree();
    // Make the direct link 0-2 expensive: bridge 0 now reaches the root
    // through bridge 1 and the block moves onto link 0-2.
    let now = s.now;
    for (b, p) in [(0, P2), (2, P1)] {
        s.bridges[b].set_port_config(
            PortId(p),
            StpPortConfig {
                path_cost: 200_000,
                ..Default::default()
            },
            now,
        );
    }
    s.run_for(5_000);
    assert_eq!(s.bridges[0].root_port(), Some(PortId(P1)));
    assert_eq!(s.bridges[0].info().root_path_cost, 2 * DEFAULT_PATH_COST);
    assert_eq!(s.state((0, PortId(P2))), PortState::Discarding);
    s.assert_spanning_tree();
    // Back to STP-compatible everywhere: still a tree.
    s.step_ms = 10;
    let now = s.now;
    for b in 0..3 {
        let cfg = StpConfig {
            force_version: 0,
            ..*s.bridges[b].config()
        };
        s.bridges[b].set_config(cfg, now);
    }
    s.run_for(60_000);
    assert!((0..3).all(|b| s.bridges[b].info().ports.iter().all(|p| !p.rstp)));
    s.assert_spanning_tree();
    // An admin edge port set later forwards at once.
    let now = s.now;
    s.bridges[0].add_port(PortId(7), StpPortConfig::default(), now);
    assert_eq!(s.bridges[0].state(PortId(7)), PortState::Discarding);
    s.bridges[0].set_port_config(
        PortId(7),
        StpPortConfig {
            admin_edge: true,
            ..Default::default()
        },
        now,
    );
    assert_eq!(s.bridges[0].state(PortId(7)), PortState::Forwarding);
}

/// The root keeps running but its BPDUs stop arriving (a one-way failure):
/// the others age it out and elect a new root, and the old root, hearing
/// inferior BPDUs from ports that are learning, disputes them (17.21.10)
/// and stops forwarding. A loop exists only while that first dispute is on
/// the wire (one link delay).
#[test]
fn mute_root_is_disputed() {
    let mut s = ring();
    s.run_for(10_000);
    s.mute[0] = true;
    s.loop_free_always = false;
    let mut looped_ms = 0;
    for _ in 0..20_000 {
        s.step();
        if s.forwarding_cycle().is_some() {
            looped_ms += s.step_ms;
        }
    }
    assert!(looped_ms <= 2 * s.delay_ms, "looped for {looped_ms} ms");
    let new_root = s.bridges[1].bridge_id();
    assert_eq!(s.bridges[1].root_id(), new_root);
    assert_eq!(s.bridges[2].root_id(), new_root);
    s.loop_free_always = true;
    s.run_for(30_000);
    // Bridge 0 still believes it is root, but blocks both ports.
    assert_eq!(s.bridges[0].root_id(), s.bridges[0].bridge_id());
    assert_eq!(s.state((0, PortId(P1))), PortState::Discarding);
    assert_eq!(s.state((0, PortId(P2))), PortState::Discarding);
}
