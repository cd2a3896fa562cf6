//! Golden-frame tests: frames in through memory ports, exact bytes out.
//! Each test states a rule of 802.1D / 802.1Q as a user would check it.

use rvs_switch::counters::{DropReason, StageCounter};
use rvs_switch::vlan::{VlanMode, VlanProtocol};
use rvs_switch::{
    DomainConfig, DomainId, MacAddr, MemoryPort, MemoryPortHandle, PacketPool, PortConfig, PortId,
    Switch,
};

struct Rig {
    sw: Switch,
    h: Vec<MemoryPortHandle>,
    ids: Vec<PortId>,
    dom: DomainId,
}

fn rig_in(proto: VlanProtocol, modes: &[VlanMode]) -> Rig {
    let mut sw = Switch::new(PacketPool::with_frames(1024));
    let mut dc = DomainConfig::new("br0");
    dc.vlan_protocol = proto;
    let dom = sw.add_domain(dc).unwrap();
    let mut h = Vec::new();
    let mut ids = Vec::new();
    for (i, m) in modes.iter().enumerate() {
        let (p, handle) = MemoryPort::new(&format!("m{i}"));
        ids.push(
            sw.add_port(Box::new(p), PortConfig::access(dom, 1).with_vlan(m.clone()))
                .unwrap(),
        );
        h.push(handle);
    }
    Rig { sw, h, ids, dom }
}

fn rig(modes: &[VlanMode]) -> Rig {
    rig_in(VlanProtocol::Dot1Q, modes)
}

fn access(pvid: u16) -> VlanMode {
    VlanMode::Access { pvid }
}

fn trunk(list: &str, native: Option<u16>) -> VlanMode {
    VlanMode::Trunk {
        allowed: list.parse().unwrap(),
        native,
    }
}

impl Rig {
    /// Inject a frame on port `i` and run the switch until it is processed.
    fn send(&mut self, i: usize, frame: &[u8]) {
        self.h[i].inject(frame.to_vec());
        self.sw.poll();
        assert_eq!(self.h[i].rx_pending(), 0);
    }
    fn out(&self, i: usize) -> Vec<Vec<u8>> {
        self.h[i].take_tx()
    }
    /// Frames each port transmitted, in port order.
    fn outs(&self) -> Vec<Vec<Vec<u8>>> {
        (0..self.h.len()).map(|i| self.out(i)).collect()
    }
    fn drops(&self, i: usize, r: DropReason) -> u64 {
        self.sw.port_info(self.ids[i]).unwrap().counters.drops_by(r)
    }
    fn stage(&self, c: StageCounter) -> u64 {
        self.sw.stage_counters().get(c)
    }
}

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

/// Untagged frame: dst, src, EtherType 0x0800 and a recognisable payload.
fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend((0..46u8).map(|i| i.wrapping_mul(7)));
    f
}

/// The same frame with a tag (TPID, TCI) inserted after the addresses.
fn tagged(f: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
    let mut t = f[..12].to_vec();
    t.extend_from_slice(&tpid.to_be_bytes());
    t.extend_from_slice(&tci.to_be_bytes());
    t.extend_from_slice(&f[12..]);
    t
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const BCAST: [u8; 6] = [0xff; 6];

#[test]
fn unknown_unicast_floods_to_every_other_port_then_learned_unicast_goes_to_one() {
    let mut r = rig(&[access(1), access(1), access(1), access(1)]);
    let a_to_b = frame(mac(2), mac(1));
    r.send(0, &a_to_b);
    let o = r.outs();
    assert!(o[0].is_empty(), "never back to the ingress port");
    for (i, frames) in o.iter().enumerate().skip(1) {
        assert_eq!(
            frames,
            &vec![a_to_b.clone()],
            "port {i} gets the flood, byte for byte"
        );
    }
    assert_eq!(r.stage(StageCounter::FwdUnknownUnicast), 1);
    assert_eq!(r.stage(StageCounter::FloodCopies), 2);

    // B answers: A is known, so the reply goes to port 0 only.
    let b_to_a = frame(mac(1), mac(2));
    r.send(2, &b_to_a);
    assert_eq!(r.outs(), vec![vec![b_to_a.clone()], vec![], vec![], vec![]]);
    // And now A to B is known unicast to port 2 only.
    r.send(0, &a_to_b);
    assert_eq!(r.outs(), vec![vec![], vec![], vec![a_to_b], vec![]]);
    assert_eq!(r.stage(StageCounter::FwdKnownUnicast), 2);
    assert_eq!(r.stage(StageCounter::LearnNew), 2);
}

#[test]
fn broadcast_and_multicast_flood() {
    let mut r = rig(&[access(1), access(1), access(1)]);
    let b = frame(BCAST, mac(1));
    r.send(1, &b);
    assert_eq!(r.outs(), vec![vec![b.clone()], vec![], vec![b]]);
    let m = frame([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb], mac(1));
    r.send(1, &m);
    assert_eq!(r.outs(), vec![vec![m.clone()], vec![], vec![m]]);
    assert_eq!(
        (
            r.stage(StageCounter::FwdBroadcast),
            r.stage(StageCounter::FwdMulticast)
        ),
        (1, 1)
    );
}

#[test]
fn destination_on_the_ingress_port_is_filtered() {
    let mut r = rig(&[access(1), access(1)]);
    r.send(0, &frame(BCAST, mac(1)));
    r.outs();
    // Another station behind port 0 talks to mac(1), also behind port 0.
    r.send(0, &frame(mac(1), mac(3)));
    assert_eq!(r.outs(), vec![Vec::<Vec<u8>>::new(), vec![]]);
    assert_eq!(r.drops(0, DropReason::Filtered), 1);
}

#[test]
fn reserved_link_local_groups_are_not_forwarded() {
    let mut r = rig(&[access(1), access(1)]);
    for last in [0x00u8, 0x01, 0x02, 0x0e] {
        r.send(0, &frame([0x01, 0x80, 0xc2, 0, 0, last], mac(1)));
    }
    assert_eq!(r.outs(), vec![Vec::<Vec<u8>>::new(), vec![]]);
    assert_eq!(r.drops(0, DropReason::LinkLocal), 4);
    // 01:80:c2:00:00:10 is an ordinary multicast group and floods.
    r.send(0, &frame([0x01, 0x80, 0xc2, 0, 0, 0x10], mac(1)));
    assert_eq!(r.out(1).len(), 1);
}

#[test]
fn malformed_frames_are_counted_and_dropped() {
    let mut r = rig(&[trunk("10", Some(1)), access(1)]);
    r.send(0, &[0u8; 13]);
    r.send(0, &[]);
    // Tag TPID but the frame ends inside the tag.
    let mut t = frame(BCAST, mac(1))[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00, 0x00]);
    r.send(0, &t);
    // Reserved VID 4095.
    r.send(0, &tagged(&frame(BCAST, mac(1)), 0x8100, 0x0fff));
    // Three stacked tags.
    let three = tagged(
        &tagged(&tagged(&frame(BCAST, mac(1)), 0x8100, 5), 0x8100, 6),
        0x8100,
        10,
    );
    r.send(0, &three);
    // Multicast and zero source addresses.
    r.send(0, &frame(BCAST, [0x01, 0, 0, 0, 0, 1]));
    r.send(0, &frame(BCAST, [0; 6]));
    assert!(r.out(1).is_empty());
    assert_eq!(r.drops(0, DropReason::Runt), 2);
    assert_eq!(r.drops(0, DropReason::TruncatedTag), 1);
    assert_eq!(r.drops(0, DropReason::ReservedVid), 1);
    assert_eq!(r.drops(0, DropReason::TooManyTags), 1);
    assert_eq!(r.drops(0, DropReason::InvalidSource), 2);
    assert_eq!(
        r.sw.pool().available(),
        1024,
        "every dropped buffer went back"
    );
    assert_eq!(
        r.stage(StageCounter::LearnNew),
        0,
        "nothing malformed was learned"
    );
}

#[test]
fn access_to_trunk_pushes_the_tag_and_trunk_to_access_pops_it() {
    let mut r = rig(&[access(10), trunk("10,20", None), access(20)]);
    let f = frame(BCAST, mac(1));
    r.send(0, &f);
    let o = r.outs();
    // Exact bytes: the tag 81 00 00 0a sits after the source address.
    let expect = hex(
        "ffffffffffff 020000000001 8100 000a 0800
         00070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d9e0e7eef5fc030a11181f262d343b",
    );
    assert_eq!(o[1], vec![expect.clone()]);
    assert!(o[2].is_empty(), "VLAN 20 access port does not see VLAN 10");

    // From the trunk, tagged VLAN 20 reaches the VLAN 20 access port untagged.
    let g = frame(BCAST, mac(2));
    r.send(1, &tagged(&g, 0x8100, 20));
    let o = r.outs();
    assert_eq!(o[2], vec![g]);
    assert!(o[0].is_empty());
    assert_eq!(r.stage(StageCounter::EgressTagPush), 1);
    assert_eq!(r.stage(StageCounter::EgressTagPop), 1);
}

#[test]
fn priority_bits_survive_trunk_to_trunk_and_priority_tags_get_a_vid() {
    let mut r = rig(&[trunk("10", Some(1)), trunk("1-100", None), access(1)]);
    let f = frame(BCAST, mac(1));
    // PCP 5, DEI 1, VID 10 in; same TCI out on the other trunk.
    r.send(0, &tagged(&f, 0x8100, 0xb00a));
    assert_eq!(r.outs()[1], vec![tagged(&f, 0x8100, 0xb00a)]);
    // Priority-tagged (VID 0, PCP 3) on the trunk = native VLAN 1: leaves the
    // other trunk tagged VLAN 1 with PCP 3 kept, the access port untagged.
    r.send(0, &tagged(&f, 0x8100, 0x6000));
    let o = r.outs();
    assert_eq!(o[1], vec![tagged(&f, 0x8100, 0x6001)]);
    assert_eq!(o[2], vec![f.clone()]);
    assert_eq!(r.stage(StageCounter::ParsePriorityTagged), 1);
}

#[test]
fn native_vlan_is_untagged_on_the_trunk() {
    let mut r = rig(&[access(1), trunk("10", Some(1))]);
    let f = frame(BCAST, mac(1));
    r.send(0, &f);
    assert_eq!(r.outs()[1], vec![f.clone()], "native VLAN leaves untagged");
    r.send(1, &f);
    assert_eq!(r.outs()[0], vec![f], "untagged in = native VLAN");
}

#[test]
fn vlan_membership_is_enforced_on_ingress() {
    let mut r = rig(&[access(10), trunk("10", None), access(10)]);
    let f = frame(BCAST, mac(1));
    r.send(0, &tagged(&f, 0x8100, 10));
    assert_eq!(
        r.drops(0, DropReason::TaggedOnAccess),
        1,
        "tagged frames on an access port are dropped"
    );
    r.send(1, &tagged(&f, 0x8100, 30));
    assert_eq!(r.drops(1, DropReason::VlanNotAllowed), 1);
    r.send(1, &f);
    assert_eq!(r.drops(1, DropReason::UntaggedNoNative), 1);
    assert!(r.outs().iter().all(Vec::is_empty));
}

#[test]
fn one_fdb_per_vlan() {
    // The same MAC in VLAN 10 and 20 behind different ports (IVL).
    let mut r = rig(&[trunk("10,20", None), access(10), access(20)]);
    let m = mac(9);
    r.send(1, &frame(BCAST, m));
    r.send(2, &frame(BCAST, m));
    r.outs();
    let to10 = tagged(&frame(m, mac(1)), 0x8100, 10);
    let to20 = tagged(&frame(m, mac(1)), 0x8100, 20);
    r.send(0, &to10);
    r.send(0, &to20);
    let o = r.outs();
    assert_eq!(o[1], vec![frame(m, mac(1))]);
    assert_eq!(o[2], vec![frame(m, mac(1))]);
    let e = r.sw.fdb_entries(r.dom).unwrap();
    assert!(
        e.iter()
            .any(|x| x.vid == 10 && x.mac == MacAddr(m) && x.port == r.ids[1])
    );
    assert!(
        e.iter()
            .any(|x| x.vid == 20 && x.mac == MacAddr(m) && x.port == r.ids[2])
    );
}

#[test]
fn qinq_on_provider_trunks_keeps_the_customer_tag() {
    // 802.1ad domain: tunnel (customer) ports push/pop the S-tag; trunks carry it.
    let mut r = rig_in(
        VlanProtocol::Dot1Ad,
        &[
            VlanMode::Tunnel { svid: 100 },
            trunk("100,200", None),
            VlanMode::Tunnel { svid: 200 },
        ],
    );
    let customer = tagged(&frame(BCAST, mac(1)), 0x8100, 0x0007); // C-VLAN 7
    r.send(0, &customer);
    let o = r.outs();
    assert_eq!(
        o[1],
        vec![tagged(&customer, 0x88a8, 100)],
        "S-tag pushed outside the C-tag"
    );
    assert!(o[2].is_empty(), "another service VLAN is isolated");

    // Double-tagged in on the trunk: S-VLAN 200 classified, C-tag untouched.
    let inner = tagged(&frame(BCAST, mac(2)), 0x8100, 0x2009);
    r.send(1, &tagged(&inner, 0x88a8, 200));
    let o = r.outs();
    assert_eq!(o[2], vec![inner], "S-tag popped, customer frame intact");
    assert!(o[0].is_empty());
}

#[test]
fn customer_tag_on_a_dot1q_trunk_is_the_vlan_and_the_inner_tag_is_payload() {
    let mut r = rig(&[trunk("10", None), trunk("10", None)]);
    let f = tagged(&tagged(&frame(BCAST, mac(1)), 0x8100, 77), 0x8100, 10);
    r.send(0, &f);
    assert_eq!(r.outs()[1], vec![f]);
}

#[test]
fn mac_move_follows_the_station_and_is_counted() {
    let mut r = rig(&[access(1), access(1), access(1)]);
    r.send(0, &frame(BCAST, mac(1)));
    r.send(1, &frame(BCAST, mac(1))); // station moved to port 1
    r.outs();
    r.send(2, &frame(mac(1), mac(3)));
    assert_eq!(r.outs()[1].len(), 1, "traffic follows the move");
    assert_eq!(r.stage(StageCounter::LearnMove), 1);
}

#[test]
fn flapping_station_is_damped() {
    let mut r = rig(&[access(1), access(1), access(1)]);
    for i in 0..20 {
        r.send(i % 2, &frame(BCAST, mac(1)));
    }
    let damped = r.stage(StageCounter::LearnMoveDamped);
    let moved = r.stage(StageCounter::LearnMove);
    assert_eq!(moved, 5, "default damping allows 5 moves per window");
    // After the 5th move the station sits on port 1; every later frame from
    // port 0 is a damped move, every frame from port 1 a plain refresh.
    assert_eq!(damped, 7);
    let e = &r.sw.fdb_entries(r.dom).unwrap()[0];
    assert!(e.damped);
    assert_eq!(e.port, r.ids[1]);
}

#[test]
fn mac_limits_stop_learning_not_forwarding() {
    let mut r = rig(&[access(1), access(1)]);
    let mut cfg = r.sw.port_info(r.ids[0]).unwrap().cfg;
    cfg.mac_limit = 2;
    r.sw.set_port_config(r.ids[0], cfg).unwrap();
    for n in 1..=5 {
        r.send(0, &frame(BCAST, mac(n)));
    }
    assert_eq!(r.out(1).len(), 5, "frames still flow");
    assert_eq!(r.sw.port_info(r.ids[0]).unwrap().learned, 2);
    assert_eq!(r.stage(StageCounter::LearnLimitPort), 3);
}

#[test]
fn aging_forgets_stations_and_traffic_floods_again() {
    let mut r = rig(&[access(1), access(1), access(1)]);
    let mut dc = DomainConfig::new("br0");
    dc.fdb.aging_secs = 10;
    r.sw.set_domain_config(r.dom, dc).unwrap();
    r.sw.set_now_ms(0);
    r.send(0, &frame(BCAST, mac(1)));
    r.outs();
    r.sw.set_now_ms(9_000);
    r.send(1, &frame(mac(1), mac(2)));
    assert_eq!(
        r.outs().iter().map(Vec::len).collect::<Vec<_>>(),
        vec![1, 0, 0]
    );
    r.sw.set_now_ms(10_500);
    r.send(1, &frame(mac(1), mac(2)));
    assert_eq!(
        r.outs().iter().map(Vec::len).collect::<Vec<_>>(),
        vec![1, 0, 1],
        "aged out: flooded"
    );
    // The poll loop's sweep reclaimed the entry; mac(2), refreshed at 10.5 s, stays.
    r.sw.age(1 << 20);
    assert_eq!(r.stage(StageCounter::AgeExpired), 1);
    let left = r.sw.fdb_entries(r.dom).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].mac, MacAddr(mac(2)));
}

#[test]
fn static_entries_forward_and_resist_learning() {
    let mut r = rig(&[access(1), access(1), access(1)]);
    r.sw.add_static(r.dom, 1, MacAddr(mac(7)), r.ids[2])
        .unwrap();
    r.send(0, &frame(mac(7), mac(1)));
    assert_eq!(r.outs()[2].len(), 1);
    r.send(1, &frame(BCAST, mac(7)));
    assert_eq!(r.stage(StageCounter::LearnStaticConflict), 1);
    r.outs();
    r.send(0, &frame(mac(7), mac(1)));
    assert_eq!(r.outs()[2].len(), 1, "still on the static port");
    // Errors leave nothing behind.
    assert!(
        r.sw.add_static(r.dom, 2, MacAddr(mac(8)), r.ids[2])
            .is_err(),
        "port not in VLAN 2"
    );
    assert!(r.sw.add_static(r.dom, 1, MacAddr(BCAST), r.ids[2]).is_err());
    assert_eq!(
        r.sw.fdb_entries(r.dom)
            .unwrap()
            .iter()
            .filter(|e| e.is_static)
            .count(),
        1
    );
}

#[test]
fn bridge_domains_are_isolated() {
    let mut sw = Switch::new(PacketPool::with_frames(256));
    let d1 = sw.add_domain(DomainConfig::new("a")).unwrap();
    let d2 = sw.add_domain(DomainConfig::new("b")).unwrap();
    let mut h = Vec::new();
    for (i, d) in [d1, d1, d2, d2].iter().enumerate() {
        let (p, hh) = MemoryPort::new(&format!("p{i}"));
        sw.add_port(Box::new(p), PortConfig::access(*d, 1)).unwrap();
        h.push(hh);
    }
    h[0].inject(frame(BCAST, mac(1)));
    sw.poll();
    assert_eq!(h[1].take_tx().len(), 1);
    assert!(h[2].take_tx().is_empty() && h[3].take_tx().is_empty());
}

#[test]
fn disabled_ports_neither_receive_nor_send() {
    let mut r = rig(&[access(1), access(1), access(1)]);
    let mut cfg = r.sw.port_info(r.ids[2]).unwrap().cfg;
    cfg.enabled = false;
    r.sw.set_port_config(r.ids[2], cfg).unwrap();
    r.send(0, &frame(BCAST, mac(1)));
    assert_eq!(
        r.outs().iter().map(Vec::len).collect::<Vec<_>>(),
        vec![0, 1, 0]
    );
    r.send(2, &frame(BCAST, mac(3)));
    assert_eq!(r.drops(2, DropReason::PortDisabled), 1);
}

#[test]
fn storm_control_limits_flooding_only() {
    let mut r = rig(&[access(1), access(1)]);
    let mut cfg = r.sw.port_info(r.ids[0]).unwrap().cfg;
    cfg.storm_control = Some(rvs_switch::StormControl { pps: 10, burst: 3 });
    r.sw.set_port_config(r.ids[0], cfg).unwrap();
    r.sw.set_now_ms(0);
    for _ in 0..10 {
        r.send(0, &frame(BCAST, mac(1)));
    }
    assert_eq!(r.out(1).len(), 3, "burst of 3 broadcasts");
    assert_eq!(r.drops(0, DropReason::StormControl), 7);
    // Known unicast is not limited.
    r.send(1, &frame(BCAST, mac(2)));
    for _ in 0..10 {
        r.send(0, &frame(mac(2), mac(1)));
    }
    assert_eq!(r.out(1).len(), 10);
}

#[test]
fn oversize_frames_are_dropped_at_egress() {
    let mut sw = Switch::new(PacketPool::with_frames(64));
    let d = sw.add_domain(DomainConfig::new("a")).unwrap();
    let (p0, h0) = MemoryPort::new("in");
    let (p1, h1) = MemoryPort::new("out");
    sw.add_port(Box::new(p0), PortConfig::access(d, 1)).unwrap();
    let out = sw
        .add_port(Box::new(p1.with_max_frame(1514)), PortConfig::access(d, 1))
        .unwrap();
    let mut big = frame(BCAST, mac(1));
    big.resize(1600, 0);
    h0.inject(big);
    sw.poll();
    assert!(h1.take_tx().is_empty());
    assert_eq!(
        sw.port_info(out)
            .unwrap()
            .counters
            .drops_by(DropReason::Oversize),
        1
    );
}

#[test]
fn trace_records_each_stage_verdict() {
    let mut r = rig(&[access(10), trunk("10", None)]);
    r.sw.tracer().arm(2, Some(r.ids[0]));
    r.send(0, &frame(BCAST, mac(1)));
    r.send(1, &tagged(&frame(mac(1), mac(2)), 0x8100, 10)); // not traced: other port
    r.send(0, &frame(mac(2), mac(1)));
    let t = r.sw.tracer().take();
    assert_eq!(t.len(), 2);
    let stages: Vec<&str> = t[0].steps.iter().map(|s| s.stage).collect();
    assert_eq!(stages, vec!["parse", "learn", "forward", "output"]);
    assert!(t[0].steps[0].verdict.contains("vlan 10"), "{}", t[0]);
    assert!(t[0].steps[2].verdict.contains("flood"), "{}", t[0]);
    assert!(
        t[1].steps[2].verdict.contains("known unicast -> port 1"),
        "{}",
        t[1]
    );
    assert!(t[1].steps[3].verdict.contains("Tagged"), "{}", t[1]);
}

#[test]
fn capture_sees_rx_and_tx_frames() {
    let mut r = rig(&[access(10), trunk("10", None)]);
    let (cap, rx) = rvs_switch::capture::Capture::new(16, 65535);
    r.sw.set_capture(r.ids[1], Some(cap)).unwrap();
    let f = frame(BCAST, mac(1));
    r.send(0, &f);
    let got: Vec<_> = rx.try_iter().collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].dir, rvs_switch::capture::Direction::Tx);
    assert_eq!(
        got[0].data,
        tagged(&f, 0x8100, 10),
        "captured after the egress edit"
    );
}

#[test]
fn removing_a_port_forgets_its_stations_and_frees_everything() {
    let mut r = rig(&[access(1), access(1), access(1)]);
    r.send(1, &frame(BCAST, mac(5)));
    r.sw.add_static(r.dom, 1, MacAddr(mac(6)), r.ids[1])
        .unwrap();
    r.outs();
    r.sw.remove_port(r.ids[1]).unwrap();
    assert!(r.sw.fdb_entries(r.dom).unwrap().is_empty());
    r.send(0, &frame(mac(5), mac(1)));
    assert_eq!(
        r.out(2).len(),
        1,
        "unknown again: flooded to the remaining port"
    );
    assert_eq!(r.sw.pool().available(), 1024);
}

/// A back end whose link vanished: every receive says so.
struct GonePort;

impl rvs_switch::Port for GonePort {
    fn name(&self) -> &str {
        "gone0"
    }
    fn rx_burst(
        &mut self,
        _: &mut PacketPool,
        _: &mut rvs_switch::Batch,
    ) -> Result<usize, rvs_switch::PortError> {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        assert_eq!(
            CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            0,
            "polled after it said gone"
        );
        Err(rvs_switch::PortError::Gone("gone0".into()))
    }
    fn tx_burst(
        &mut self,
        pool: &mut PacketPool,
        batch: &mut rvs_switch::Batch,
    ) -> rvs_switch::TxDone {
        let n = batch.len();
        batch.free_all(pool);
        rvs_switch::TxDone {
            packets: 0,
            bytes: 0,
            dropped: n,
        }
    }
}

#[test]
fn a_port_whose_link_is_gone_is_reported_and_no_longer_polled() {
    let mut r = rig(&[access(1)]);
    let id =
        r.sw.add_port(Box::new(GonePort), PortConfig::access(r.dom, 1))
            .unwrap();
    for _ in 0..3 {
        r.sw.poll();
    }
    let info = r.sw.port_info(id).unwrap();
    assert!(info.gone);
    assert_eq!(info.last_error.as_deref(), Some("port gone0: link is gone"));
    r.send(0, &frame(BCAST, mac(1)));
    assert_eq!(
        r.sw.pool().available(),
        1024,
        "the flood copy to the dead port was freed"
    );
}

#[test]
fn port_security_lets_only_the_ports_station_send() {
    use rvs_switch::PortSecurity;
    let mut r = rig(&[access(1), access(1)]);
    let mut cfg = r.sw.port_info(r.ids[0]).unwrap().cfg;
    cfg.security = Some(PortSecurity {
        mac: MacAddr(mac(1)),
        ips: vec!["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
    });
    r.sw.set_port_config(r.ids[0], cfg).unwrap();
    // IPv4 frames with a source address (frame() carries 0x0800 and bytes).
    let ipv4 = |src_mac: u8, src_ip: [u8; 4]| {
        let mut f = frame(BCAST, mac(src_mac));
        f[14] = 0x45;
        f[26..30].copy_from_slice(&src_ip);
        f
    };
    r.send(0, &ipv4(1, [10, 0, 0, 1]));
    assert_eq!(r.out(1).len(), 1, "the station itself passes");
    r.send(0, &ipv4(9, [10, 0, 0, 1]));
    assert!(r.out(1).is_empty(), "another MAC is dropped");
    assert_eq!(r.drops(0, DropReason::PortSecurityMac), 1);
    r.send(0, &ipv4(1, [10, 0, 0, 99]));
    assert!(r.out(1).is_empty(), "another IPv4 address is dropped");
    // ARP claiming another address.
    let mut arp = frame(BCAST, mac(1));
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    arp[28..32].copy_from_slice(&[10, 0, 0, 99]);
    r.send(0, &arp.clone());
    assert!(r.out(1).is_empty(), "ARP spoofing is dropped");
    arp[28..32].copy_from_slice(&[10, 0, 0, 1]);
    r.send(0, &arp);
    assert_eq!(r.out(1).len(), 1, "its own ARP passes");
    // IPv6: link-local (neighbor discovery) passes, a foreign global not.
    let ipv6 = |src: [u8; 2]| {
        let mut f = frame(BCAST, mac(1));
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f.resize(14 + 40, 0);
        f[14] = 0x60;
        f[22..24].copy_from_slice(&src);
        f
    };
    r.send(0, &ipv6([0xfe, 0x80]));
    assert_eq!(r.out(1).len(), 1, "link-local passes");
    r.send(0, &ipv6([0xfd, 0x99]));
    assert!(r.out(1).is_empty(), "a foreign IPv6 source is dropped");
    assert_eq!(r.drops(0, DropReason::PortSecurityIp), 3);
    // The other port is not restricted.
    r.send(1, &ipv4(7, [192, 0, 2, 7]));
    assert_eq!(r.out(0).len(), 1);
}
