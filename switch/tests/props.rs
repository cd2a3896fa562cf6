//! Properties over arbitrary input: the pipeline never panics, never leaks a
//! buffer, and every received frame is either sent or counted as a drop.

use proptest::prelude::*;
use rvs_switch::vlan::{VlanMode, VlanProtocol};
use rvs_switch::{DomainConfig, MemoryPort, MemoryPortHandle, PacketPool, PortConfig, Switch};

fn mode(sel: u8) -> VlanMode {
    match sel % 4 {
        0 => VlanMode::Access { pvid: 1 },
        1 => VlanMode::Access { pvid: 10 },
        2 => VlanMode::Trunk {
            allowed: "1-20".parse().unwrap(),
            native: Some(1),
        },
        _ => VlanMode::Tunnel { svid: 10 },
    }
}

fn build(modes: &[u8], qinq: bool) -> (Switch, Vec<MemoryPortHandle>) {
    let mut sw = Switch::new(PacketPool::with_frames(512));
    let mut dc = DomainConfig::new("d");
    if qinq {
        dc.vlan_protocol = VlanProtocol::Dot1Ad;
    }
    let d = sw.add_domain(dc).unwrap();
    let mut hs = Vec::new();
    for (i, m) in modes.iter().enumerate() {
        let (p, h) = MemoryPort::new(&format!("p{i}"));
        sw.add_port(Box::new(p), PortConfig::access(d, 1).with_vlan(mode(*m)))
            .unwrap();
        hs.push(h);
    }
    (sw, hs)
}

/// Frames biased towards the interesting shapes: short, tagged, stacked.
fn frame_strategy() -> impl Strategy<Value = Vec<u8>> {
    let tpid = prop_oneof![
        Just([0x81u8, 0x00]),
        Just([0x88, 0xa8]),
        Just([0x91, 0x00]),
        any::<[u8; 2]>()
    ];
    (
        prop_oneof![
            Just([0xffu8; 6]),
            Just([2, 0, 0, 0, 0, 1]),
            Just([2, 0, 0, 0, 0, 2]),
            any::<[u8; 6]>()
        ],
        prop_oneof![
            Just([2u8, 0, 0, 0, 0, 1]),
            Just([2, 0, 0, 0, 0, 2]),
            any::<[u8; 6]>()
        ],
        proptest::collection::vec((tpid, any::<[u8; 2]>()), 0..4),
        proptest::collection::vec(any::<u8>(), 0..80),
        0usize..40,
    )
        .prop_map(|(d, s, tags, tail, cut)| {
            let mut f = d.to_vec();
            f.extend_from_slice(&s);
            for (t, tci) in tags {
                f.extend_from_slice(&t);
                f.extend_from_slice(&tci);
            }
            f.extend_from_slice(&tail);
            let keep = f.len().saturating_sub(cut % (f.len() + 1));
            f.truncate(keep.max(if cut % 3 == 0 { 0 } else { keep }));
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_never_leaks(
        modes in proptest::collection::vec(any::<u8>(), 2..5),
        qinq in any::<bool>(),
        frames in proptest::collection::vec((any::<u8>(), frame_strategy()), 1..60),
    ) {
        let (mut sw, hs) = build(&modes, qinq);
        for (port, f) in &frames {
            hs[*port as usize % hs.len()].inject(f.clone());
        }
        for _ in 0..4 {
            sw.poll();
        }
        prop_assert_eq!(sw.pool().available(), 512, "every buffer returned to the pool");
        let rx: u64 = sw.ports().iter().map(|p| p.counters.rx_packets).sum();
        prop_assert_eq!(rx, frames.len() as u64);
        // Every frame was forwarded at least once or dropped with a reason.
        let ingress_drops: u64 = sw.ports().iter().map(|p| p.counters.total_drops()).sum();
        let tx: u64 = sw.ports().iter().map(|p| p.counters.tx_packets).sum();
        prop_assert!(tx + ingress_drops >= rx, "tx {} + drops {} < rx {}", tx, ingress_drops, rx);
    }
}
