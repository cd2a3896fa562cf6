use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::fdb::Learned;
use crate::mac::MacAddr;
use crate::port::PortId;
use crate::wire::ethernet;
use table::MAX_REMOTES;

fn vni(v: u32) -> Vni {
    Vni::new(v).unwrap()
}

fn v4(d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, d))
}

fn inner(dst: MacAddr, src: MacAddr, len: usize) -> Vec<u8> {
    let mut f = ethernet::build(dst, src, EtherType::IPV4, &vec![0x45; len - 14]);
    f[14] = 0x45;
    f
}

#[test]
fn mtu_arithmetic_matches_linux() {
    assert_eq!(overlay_mtu(1500, false), 1450);
    assert_eq!(overlay_mtu(1500, true), 1430);
    // A 1450-byte inner IP packet is a 1464-byte frame, a 1500-byte outer IP packet.
    assert_eq!(max_inner_frame(1500, false), 1464);
    assert_eq!(max_inner_frame(1500, true), 1444);
    assert_eq!(max_inner_frame(10, false), 0);
}

#[test]
fn push_then_pull_round_trips_without_moving_the_payload() {
    let mut pool = PacketPool::with_frames(4);
    let f = inner(MacAddr::BROADCAST, MacAddr::local(1), 64);
    let mut b = pool.alloc_from(&f).unwrap();
    let head = b.headroom();
    push_header(&mut pool, &mut b, vni(0xabcdef)).unwrap();
    assert_eq!(b.headroom(), head - 8);
    assert_eq!(&pool.data(&b)[..8], &[0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
    assert_eq!(pull_header(&pool, &mut b).unwrap(), vni(0xabcdef));
    assert_eq!(pool.data(&b), &f[..]);
    assert_eq!(b.headroom(), head);
}

#[test]
fn pull_rejects_missing_i_flag_and_runts() {
    let mut pool = PacketPool::with_frames(4);
    let mut d = header(vni(7)).to_vec();
    d.extend_from_slice(&[0; 14]);
    d[0] = 0;
    let mut b = pool.alloc_from(&d).unwrap();
    assert_eq!(pull_header(&pool, &mut b), Err(DropReason::VxlanNoIFlag));
    let mut r = pool.alloc_from(&header(vni(7))).unwrap();
    assert_eq!(pull_header(&pool, &mut r), Err(DropReason::VxlanTruncated));
}

#[test]
fn decap_batch_drops_unknown_vni_and_bad_flags_and_counts_them() {
    let mut pool = PacketPool::with_frames(16);
    let mut t = VtepTable::new();
    t.add_vni(vni(42), VniConfig::default()).unwrap();
    let f = inner(MacAddr::BROADCAST, MacAddr::local(1), 60);
    let mut batch = Batch::new(8);
    for (v, flags) in [(42, 0x08), (43, 0x08), (42, 0x00), (42, 0x0c)] {
        let mut d = header(vni(v)).to_vec();
        d[0] = flags;
        d.extend_from_slice(&f);
        batch.push(pool.alloc_from(&d).unwrap()).unwrap();
    }
    let mut vnis = [vni(0); BATCH_MAX];
    let mut c = VxlanCounters::default();
    assert_eq!(decap_batch(&mut pool, &mut batch, &t, &mut vnis, &mut c), 2);
    assert_eq!(batch.len(), 2);
    assert_eq!(&vnis[..2], &[vni(42), vni(42)]);
    assert_eq!(c.drops_by(DropReason::VxlanUnknownVni), 1);
    assert_eq!(c.drops_by(DropReason::VxlanNoIFlag), 1);
    assert_eq!(c.get(StageCounter::VxlanDecap), 2);
    for b in batch.iter() {
        assert_eq!(pool.data(b), &f[..]);
    }
    batch.free_all(&mut pool);
    assert_eq!(pool.available(), 16);
}

#[test]
fn encap_batch_drops_oversize_and_counts() {
    let mut pool = PacketPool::with_frames(8);
    let mut batch = Batch::new(8);
    let max = max_inner_frame(1500, false);
    for len in [64, max, max + 1] {
        let f = inner(MacAddr::local(2), MacAddr::local(1), len);
        batch.push(pool.alloc_from(&f).unwrap()).unwrap();
    }
    let mut c = VxlanCounters::default();
    assert_eq!(encap_batch(&mut pool, &mut batch, vni(5), max, &mut c), 1);
    assert_eq!(c.drops_by(DropReason::VxlanOversize), 1);
    assert_eq!(c.get(StageCounter::VxlanEncap), 2);
    assert_eq!(pool.data(batch.get(1)).len(), max + 8);
    batch.free_all(&mut pool);
}

#[test]
fn flow_hash_depends_on_ports_and_src_port_stays_in_range() {
    let mut a = inner(MacAddr::local(2), MacAddr::local(1), 64);
    a[14 + 9] = 17; // UDP
    a[20..22].fill(0); // not a fragment
    let h1 = flow_hash(&a);
    assert_eq!(h1, flow_hash(&a), "stable");
    a[34] ^= 1; // source port
    let h2 = flow_hash(&a);
    assert_ne!(h1, h2);
    a[20] = 0x20; // now a fragment: ports are not looked at
    let h3 = flow_hash(&a);
    a[34] ^= 1;
    assert_eq!(h3, flow_hash(&a));
    for h in [0, 1, h1, h2, u32::MAX] {
        let p = src_port(h, SRC_PORTS_RFC);
        assert!((49152..=65535).contains(&p));
    }
    assert_eq!(src_port(0, (100, 200)), 100);
    assert_eq!(src_port(u32::MAX, (100, 200)), 200);
    assert_eq!(src_port(u32::MAX, (7, 7)), 7);
    // Spread: 1024 flows land on many ports.
    let mut ports: Vec<u16> = (0..1024u32)
        .map(|i| {
            let mut f = a.clone();
            f[20] = 0;
            f[34..36].copy_from_slice(&(i as u16).to_be_bytes());
            src_port(flow_hash(&f), SRC_PORTS_RFC)
        })
        .collect();
    ports.sort();
    ports.dedup();
    assert!(ports.len() > 900, "only {} distinct ports", ports.len());
}

#[test]
fn rx_meta_rides_in_headroom_and_is_read_once() {
    let mut pool = PacketPool::with_frames(2);
    let f = inner(MacAddr::local(2), MacAddr::local(1), 64);
    let mut b = pool.alloc_from(&f).unwrap();
    assert_eq!(RxMeta::take(&mut pool, &mut b), None);
    for remote in [
        v4(9),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9)),
    ] {
        let m = RxMeta {
            vni: vni(0xfffffe),
            remote,
        };
        assert!(m.write(&mut pool, &mut b));
        assert_eq!(pool.data(&b), &f[..], "frame untouched");
        assert_eq!(RxMeta::take(&mut pool, &mut b), Some(m));
        assert_eq!(RxMeta::take(&mut pool, &mut b), None, "mark cleared");
    }
}

#[test]
fn table_floods_unknown_and_bum_and_unicasts_learned() {
    let mut t = VtepTable::new();
    let cfg = VniConfig {
        flood: vec![v4(2), v4(3), v4(2)],
        ..VniConfig::default()
    };
    t.add_vni(vni(42), cfg).unwrap();
    assert_eq!(t.flood(vni(42)), &[v4(2), v4(3)], "deduplicated");
    let m = MacAddr::local(7);
    assert_eq!(
        t.destination(vni(42), m, 0),
        Some(Destination::Flood(&[v4(2), v4(3)]))
    );
    assert_eq!(t.learn(vni(42), m, v4(3), 0), Some(Learned::New));
    assert_eq!(
        t.destination(vni(42), m, 1),
        Some(Destination::Unicast(v4(3)))
    );
    // Broadcast is flooded even if someone learned it (it cannot be).
    assert_eq!(t.learn(vni(42), MacAddr::BROADCAST, v4(3), 0), None);
    assert!(matches!(
        t.destination(vni(42), MacAddr::BROADCAST, 1),
        Some(Destination::Flood(_))
    ));
    // Moves and VNI isolation.
    assert_eq!(
        t.learn(vni(42), m, v4(2), 1),
        Some(Learned::Moved { from: PortId(0) })
    );
    assert_eq!(t.lookup(vni(42), m, 1), Some(v4(2)));
    assert_eq!(t.destination(vni(43), m, 1), None);
    assert_eq!(t.learn(vni(43), m, v4(2), 1), None);
    // Group joins the flood targets.
    t.set_group(vni(42), Some("239.1.1.42".parse().unwrap()))
        .unwrap();
    assert!(matches!(
        t.destination(vni(42), MacAddr::local(99), 1),
        Some(Destination::Flood(d)) if d.len() == 3
    ));
    assert!(t.set_group(vni(42), Some(v4(1))).is_err());
}

#[test]
fn learned_remotes_age_static_ones_do_not() {
    let mut t = VtepTable::new();
    let mut cfg = VniConfig::default();
    cfg.fdb.aging_secs = 10;
    t.add_vni(vni(1), cfg).unwrap();
    let (a, s) = (MacAddr::local(1), MacAddr::local(2));
    t.learn(vni(1), a, v4(5), 100);
    t.add_static(vni(1), s, v4(6)).unwrap();
    assert_eq!(
        t.learn(vni(1), s, v4(5), 100),
        Some(Learned::StaticConflict)
    );
    assert_eq!(t.lookup(vni(1), a, 109), Some(v4(5)));
    assert_eq!(t.lookup(vni(1), a, 110), None, "expired on lookup");
    let mut gone = 0;
    for _ in 0..64 {
        gone += t.age_step(120, 1024);
    }
    assert_eq!(gone, 1);
    assert_eq!(t.lookup(vni(1), s, 10_000), Some(v4(6)));
    let e = t.entries(vni(1), 10_000);
    assert_eq!(e.len(), 1);
    assert!(e[0].is_static);
    assert_eq!(e[0].remote, v4(6));
    assert!(t.remove(vni(1), s).unwrap());
    assert!(t.entries(vni(1), 0).is_empty());
}

#[test]
fn table_refuses_bad_config() {
    let mut t = VtepTable::new();
    t.add_vni(vni(1), VniConfig::default()).unwrap();
    assert_eq!(
        t.add_vni(vni(1), VniConfig::default()),
        Err(VtepTableError::DuplicateVni(vni(1)))
    );
    assert!(t.add_flood(vni(2), v4(1)).is_err());
    assert!(t.add_flood(vni(1), "0.0.0.0".parse().unwrap()).is_err());
    assert!(
        t.add_static(vni(1), MacAddr::local(1), "224.0.0.1".parse().unwrap())
            .is_err()
    );
    assert!(t.remove_vni(vni(1)).is_ok());
    assert!(!t.knows(vni(1)));
}

#[test]
fn remote_table_is_bounded() {
    let mut t = VtepTable::new();
    t.add_vni(vni(1), VniConfig::default()).unwrap();
    for i in 0..MAX_REMOTES as u32 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i));
        assert_eq!(
            t.learn(vni(1), MacAddr::local(i as u64 + 1), ip, 0),
            Some(Learned::New)
        );
    }
    let one_more = IpAddr::V4(Ipv4Addr::new(11, 0, 0, 1));
    assert_eq!(
        t.learn(vni(1), MacAddr::local(999_999), one_more, 0),
        Some(Learned::LimitDomain)
    );
    assert!(matches!(
        t.add_static(vni(1), MacAddr::local(5), one_more),
        Err(VtepTableError::TooManyRemotes(_))
    ));
}

/// Found by the `pipeline` fuzz target: the table keyed its FDB with VID 0,
/// so the all-zero MAC made key 0, the FDB's empty-slot marker. A frame to
/// 00:00:00:00:00:00 then "hit" an empty slot: unicast to remote 0 (an
/// index panic when no remote was known yet, a wrong VTEP otherwise), and
/// removing that MAC freed a slot that was never taken.
#[test]
fn the_all_zero_mac_is_an_ordinary_unknown_destination() {
    let zero = MacAddr([0; 6]);
    let mut t = VtepTable::new();
    let cfg = VniConfig {
        flood: vec![v4(2), v4(3)],
        ..VniConfig::default()
    };
    t.add_vni(vni(7), cfg).unwrap();
    assert_eq!(
        t.destination(vni(7), zero, 0),
        Some(Destination::Flood(&[v4(2), v4(3)][..]))
    );
    assert_eq!(t.lookup(vni(7), zero, 0), None);
    assert!(!t.remove(vni(7), zero).unwrap());
    // With a remote known, the zero MAC still floods rather than going to it.
    t.learn(vni(7), MacAddr::local(1), v4(9), 0);
    assert_eq!(
        t.destination(vni(7), zero, 0),
        Some(Destination::Flood(&[v4(2), v4(3)][..]))
    );
    assert_eq!(t.lookup(vni(7), zero, 0), None);
    assert!(!t.remove(vni(7), zero).unwrap());
    assert_eq!(t.lookup(vni(7), MacAddr::local(1), 0), Some(v4(9)));
    assert_eq!(t.entries(vni(7), 0).len(), 1);
}
