//! Loopback tests of the VTEP port (no root needed): two ports on
//! 127.0.0.1 and 127.0.0.2 of the test's own namespace, on a UDP port of
//! their own so parallel runs and other VTEPs do not collide.

use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant};

use rvs_switch::buf::Offload;
use rvs_switch::mac::MacAddr;
use rvs_switch::vxlan::{RxMeta, Vni};
use rvs_switch::{Batch, PacketPool, Port};

use super::{VtepConfig, VtepPort, VtepStats};
use crate::offload::{csum_add, csum_fold};

fn port_no() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static N: AtomicU16 = AtomicU16::new(0);
    20000 + (std::process::id() % 20000) as u16 + N.fetch_add(1, Ordering::Relaxed) * 7
}

fn pair() -> (VtepPort, VtepPort, u16) {
    let p = port_no();
    let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
    let vni = Vni::new(42).unwrap();
    let mut ca = VtepConfig::new("vta", a, vni);
    ca.port = p;
    ca.flood = vec![b];
    ca.underlay_mtu = 1500;
    let mut cb = VtepConfig::new("vtb", b, vni);
    cb.port = p;
    cb.flood = vec![a];
    cb.tx_sockets = 2;
    (
        VtepPort::open(&ca).unwrap(),
        VtepPort::open(&cb).unwrap(),
        p,
    )
}

/// Receive on `port` until `n` frames arrived or a second passed.
fn recv(port: &mut VtepPort, pool: &mut PacketPool, n: usize) -> Vec<(Vec<u8>, Option<RxMeta>)> {
    let t = Instant::now();
    let mut out = Vec::new();
    while out.len() < n && t.elapsed() < Duration::from_secs(1) {
        let mut batch = Batch::new(64);
        port.rx_burst(pool, &mut batch).unwrap();
        for mut b in batch.drain() {
            let m = RxMeta::take(pool, &mut b);
            out.push((pool.data(&b).to_vec(), m));
            pool.free(b);
        }
    }
    out
}

fn frame(dst: MacAddr, src: MacAddr, len: usize) -> Vec<u8> {
    let mut f = vec![0x5a; len];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

fn send(port: &mut VtepPort, pool: &mut PacketPool, frames: &[Vec<u8>]) -> rvs_switch::TxDone {
    let mut batch = Batch::new(64);
    for f in frames {
        batch.push(pool.alloc_from(f).unwrap()).unwrap();
    }
    port.tx_burst(pool, &mut batch)
}

fn stats(p: &VtepPort) -> VtepStats {
    p.handle().stats()
}

#[test]
fn flood_then_learn_then_unicast_over_loopback() {
    let (mut a, mut b, _) = pair();
    let mut pool = PacketPool::with_frames(512);
    let (ma, mb) = (MacAddr::local(0xa), MacAddr::local(0xb));
    let bcast = frame(MacAddr::BROADCAST, ma, 60);
    let done = send(&mut a, &mut pool, std::slice::from_ref(&bcast));
    assert_eq!((done.packets, done.dropped), (1, 0));
    let got = recv(&mut b, &mut pool, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, bcast, "inner frame intact");
    let m = got[0].1.expect("metadata in headroom");
    assert_eq!((m.vni.get(), m.remote), (42, "127.0.0.1".parse().unwrap()));
    assert_eq!(stats(&b).learn_new, 1);
    // b learned ma behind a: its reply is unicast (from a hashed tx socket).
    let reply = frame(ma, mb, 100);
    assert_eq!(
        send(&mut b, &mut pool, std::slice::from_ref(&reply)).packets,
        1
    );
    let got = recv(&mut a, &mut pool, 1);
    assert_eq!(got[0].0, reply);
    assert!(got[0].1.is_some());
    let sb = stats(&b);
    assert_eq!(
        (sb.tx_datagrams, sb.tx_replicas, sb.tx_no_remote),
        (1, 0, 0)
    );
    assert_eq!(pool.available(), 512, "every buffer back");
    // Source-port entropy: a (default config) sends from four ports of its own.
    let mut ports: Vec<u16> = a.tx_addrs().unwrap().iter().map(|s| s.port()).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), super::DEFAULT_TX_SOCKETS);
    assert!(!ports.contains(&a.local_addr().unwrap().port()));
}

#[test]
fn oversize_dropped_and_counted_no_remote_counted() {
    let (mut a, _b, _) = pair();
    let mut pool = PacketPool::with_frames(64);
    assert_eq!(a.max_frame(), 1464);
    let big = frame(MacAddr::BROADCAST, MacAddr::local(1), 1465);
    let ok = frame(MacAddr::BROADCAST, MacAddr::local(1), 1464);
    let done = send(&mut a, &mut pool, &[big, ok]);
    assert_eq!((done.packets, done.dropped), (1, 1));
    assert_eq!(stats(&a).tx_oversize, 1);
    let vni = Vni::new(42).unwrap();
    a.table_mut()
        .remove_flood(vni, "127.0.0.2".parse().unwrap())
        .unwrap();
    let done = send(
        &mut a,
        &mut pool,
        &[frame(MacAddr::BROADCAST, MacAddr::local(1), 60)],
    );
    assert_eq!(done.dropped, 1);
    assert_eq!(stats(&a).tx_no_remote, 1);
    assert_eq!(pool.available(), 64);
}

#[test]
fn forged_datagrams_are_dropped_by_reason() {
    let (_a, mut b, p) = pair();
    let mut pool = PacketPool::with_frames(64);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let inner = frame(MacAddr::BROADCAST, MacAddr::local(3), 60);
    for (hdr, _) in [
        ([8u8, 0, 0, 0, 0, 0, 43, 0], "unknown VNI"),
        ([0, 0, 0, 0, 0, 0, 42, 0], "I flag clear"),
    ] {
        let mut d = hdr.to_vec();
        d.extend_from_slice(&inner);
        s.send_to(&d, ("127.0.0.2", p)).unwrap();
    }
    s.send_to(&[8, 0, 0, 0, 0, 0, 42, 0, 1, 2], ("127.0.0.2", p))
        .unwrap();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(1) {
        let mut batch = Batch::new(64);
        b.rx_burst(&mut pool, &mut batch).unwrap();
        assert!(batch.is_empty(), "nothing forged gets through");
        let st = stats(&b);
        if st.rx_unknown_vni + st.rx_no_i_flag + st.rx_truncated == 3 {
            break;
        }
    }
    let st = stats(&b);
    assert_eq!(
        (st.rx_unknown_vni, st.rx_no_i_flag, st.rx_truncated),
        (1, 1, 1)
    );
    assert_eq!(pool.available(), 64);
}

/// A TCP/IPv4 super-frame of `pay` bytes with a partial checksum, as a TAP
/// with TSO hands it over.
fn tso_frame(pay: usize) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20 + pay];
    f[..6].copy_from_slice(&MacAddr::local(0xb).0);
    f[6..12].copy_from_slice(&MacAddr::local(0xa).0);
    f[12..14].copy_from_slice(&[8, 0]);
    let tot = (20 + 20 + pay) as u16;
    f[14..34].copy_from_slice(&[
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    f[16..18].copy_from_slice(&tot.to_be_bytes());
    let t = &mut f[34..54];
    t[..4].copy_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
    t[4..8].copy_from_slice(&1000u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x18;
    for (i, b) in f[54..].iter_mut().enumerate() {
        *b = (i * 7 + i / 251) as u8;
    }
    // Partial checksum: the pseudo-header sum, as the sender's stack leaves it.
    let ps = csum_add(0, &f[26..34]) + 6 + (20 + pay) as u64;
    f[50..52].copy_from_slice(&csum_fold(ps).to_be_bytes());
    f
}

#[test]
fn tso_super_frames_are_segmented_before_encapsulation() {
    let (mut a, mut b, _) = pair();
    let mut pool = PacketPool::with_large(64, 2048, 256, 4).unwrap();
    let sf = tso_frame(4000);
    let mut buf = pool.alloc_from(&sf).unwrap();
    buf.set_offload(Offload {
        flags: Offload::NEEDS_CSUM,
        gso_type: Offload::GSO_TCPV4,
        gso_size: 1400,
        csum_start: 20,
        csum_offset: 16,
    });
    let mut batch = Batch::new(4);
    batch.push(buf).unwrap();
    let done = a.tx_burst(&mut pool, &mut batch);
    assert_eq!((done.packets, done.dropped), (3, 0), "{:?}", stats(&a));
    let got = recv(&mut b, &mut pool, 3);
    assert_eq!(got.len(), 3);
    let mut payload = Vec::new();
    for (i, (f, _)) in got.iter().enumerate() {
        assert!(f.len() <= 14 + 40 + 1400);
        // IPv4 header and TCP checksums are complete.
        assert_eq!(csum_fold(csum_add(0, &f[14..34])), 0xffff, "segment {i} IP");
        let l4 = (f.len() - 34) as u64;
        let s = csum_add(csum_add(0, &f[26..34]) + 6 + l4, &f[34..]);
        assert_eq!(csum_fold(s), 0xffff, "segment {i} TCP");
        payload.extend_from_slice(&f[54..]);
    }
    assert_eq!(payload, sf[54..], "payload intact and in order");
    assert_eq!(stats(&a).tx_gso_segmented, 1);
    assert_eq!(pool.large_available(), 4);
}

#[test]
fn several_vnis_share_one_udp_socket_and_each_gets_only_its_own() {
    let p = port_no();
    let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
    let cfg = |name: &str, local: IpAddr, remote: IpAddr, vni: u32| {
        let mut c = VtepConfig::new(name, local, Vni::new(vni).unwrap());
        c.port = p;
        c.flood = vec![remote];
        c.tx_sockets = 0;
        c
    };
    // Host A: VNIs 10 and 20 on one socket; host B: the same.
    let mut a10 = VtepPort::open(&cfg("a10", a, b, 10)).unwrap();
    let mut a20 = VtepPort::open(&cfg("a20", a, b, 20)).unwrap();
    let mut b10 = VtepPort::open(&cfg("b10", b, a, 10)).unwrap();
    let mut b20 = VtepPort::open(&cfg("b20", b, a, 20)).unwrap();
    assert_eq!(
        a10.poll_fd(),
        a20.poll_fd(),
        "one socket per address and port"
    );
    let e = VtepPort::open(&cfg("a10bis", a, b, 10)).err().unwrap();
    assert!(e.to_string().contains("already has a VTEP port"), "{e}");
    let mut pool = PacketPool::with_frames(512);
    let free0 = pool.available();
    let (m1, m2) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
    send(&mut a10, &mut pool, &[frame(MacAddr::BROADCAST, m1, 100)]);
    send(&mut a20, &mut pool, &[frame(MacAddr::BROADCAST, m2, 200)]);
    // b20 polls first: it receives both datagrams, keeps VNI 20's and parks
    // VNI 10's for b10.
    let got20 = recv(&mut b20, &mut pool, 1);
    assert_eq!(got20.len(), 1);
    assert_eq!(got20[0].0.len(), 200);
    assert_eq!(got20[0].1.unwrap().vni.get(), 20);
    let got10 = recv(&mut b10, &mut pool, 1);
    assert_eq!(got10.len(), 1, "parked datagram delivered to its VNI");
    assert_eq!(got10[0].0.len(), 100);
    assert_eq!(got10[0].1.unwrap().vni.get(), 10);
    assert!(
        recv(&mut b20, &mut pool, 1).is_empty(),
        "nothing crossed VNIs"
    );
    // A datagram parked for a port that leaves is given back to the pool.
    send(&mut a10, &mut pool, &[frame(MacAddr::BROADCAST, m1, 100)]);
    std::thread::sleep(Duration::from_millis(50));
    assert!(recv(&mut b20, &mut pool, 1).is_empty());
    b10.detach(&mut pool);
    drop(b10);
    // VNI 10 is now unknown on B.
    send(&mut a10, &mut pool, &[frame(MacAddr::BROADCAST, m1, 100)]);
    std::thread::sleep(Duration::from_millis(50));
    assert!(recv(&mut b20, &mut pool, 1).is_empty());
    assert_eq!(stats(&b20).rx_unknown_vni, 1);
    assert_eq!(pool.available(), free0, "no frame leaked");
    drop((a10, a20, b20));
}

// ---- ARP/ND suppression -------------------------------------------------
//
// Golden frames written out byte by byte (checksums computed apart from the
// code under test): asker 02:00:00:00:00:0a (10.0.0.1, fd00::a) asks for a
// remote endpoint 02:00:00:00:00:0b (10.0.0.2, fd00::b) behind 127.0.0.2.

/// Broadcast who-has 10.0.0.2 tell 10.0.0.1, padded to 60 bytes.
#[rustfmt::skip]
const ARP_REQUEST: [u8; 60] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x08, 0x06, 0x00, 0x01,
    0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x0a, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// 10.0.0.2 is-at 02:00:00:00:00:0b, to the asker.
#[rustfmt::skip]
const ARP_REPLY: [u8; 42] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x08, 0x06, 0x00, 0x01,
    0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x0a, 0x00, 0x00, 0x02,
    0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x0a, 0x00, 0x00, 0x01,
];

/// NS fd00::a -> ff02::1:ff00:b for fd00::b, source link-layer option.
#[rustfmt::skip]
const NS: [u8; 86] = [
    0x33, 0x33, 0xff, 0x00, 0x00, 0x0b, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x86, 0xdd, 0x60, 0x00,
    0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0xff, 0x00, 0x00, 0x0b, 0x87, 0x00, 0x7d, 0x73, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x01, 0x01,
    0x02, 0x00, 0x00, 0x00, 0x00, 0x0a,
];

/// NA fd00::b -> fd00::a, solicited + override (not router), target
/// link-layer option 02:00:00:00:00:0b.
#[rustfmt::skip]
const NA: [u8; 86] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x86, 0xdd, 0x60, 0x00,
    0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x88, 0x00, 0x1c, 0x76, 0x60, 0x00, 0x00, 0x00, 0xfd, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x02, 0x01,
    0x02, 0x00, 0x00, 0x00, 0x00, 0x0b,
];

const REMOTE_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);

/// Port `a` of a pair, told that REMOTE_MAC (10.0.0.2, fd00::b) lives
/// behind 127.0.0.2.
fn suppressing_pair() -> (VtepPort, VtepPort) {
    let (a, b, _) = pair();
    let h = a.handle();
    h.add_static(REMOTE_MAC, "127.0.0.2".parse().unwrap());
    h.add_neighbor("10.0.0.2".parse().unwrap(), REMOTE_MAC);
    h.add_neighbor("fd00::b".parse().unwrap(), REMOTE_MAC);
    (a, b)
}

/// Whatever `port` hands the switch within `wait` (answers included).
fn take_rx(port: &mut VtepPort, pool: &mut PacketPool) -> Vec<(Vec<u8>, Option<RxMeta>)> {
    let mut batch = Batch::new(64);
    port.rx_burst(pool, &mut batch).unwrap();
    batch
        .drain()
        .collect::<Vec<_>>()
        .into_iter()
        .map(|mut b| {
            let m = RxMeta::take(pool, &mut b);
            let d = pool.data(&b).to_vec();
            pool.free(b);
            (d, m)
        })
        .collect()
}

#[test]
fn arp_and_ns_for_a_known_remote_are_answered_locally_not_replicated() {
    let (mut a, mut b) = suppressing_pair();
    let mut pool = PacketPool::with_frames(64);
    a.maintain(&mut pool);
    assert_eq!(a.wake_after(), None);
    let done = send(&mut a, &mut pool, &[ARP_REQUEST.to_vec(), NS.to_vec()]);
    assert_eq!((done.packets, done.dropped), (2, 0));
    let st = stats(&a);
    assert_eq!(
        (st.arp_suppressed, st.nd_suppressed, st.tx_datagrams),
        (1, 1, 0),
        "{st:?}"
    );
    assert_eq!(
        a.wake_after(),
        Some(Duration::ZERO),
        "answers are due at once"
    );
    let got = take_rx(&mut a, &mut pool);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, ARP_REPLY);
    assert_eq!(got[1].0, NA);
    let remote: IpAddr = "127.0.0.2".parse().unwrap();
    for (_, m) in &got {
        let m = m.expect("metadata as for a decapsulated frame");
        assert_eq!((m.vni.get(), m.remote), (42, remote));
    }
    assert_eq!(a.wake_after(), None);
    assert!(
        recv(&mut b, &mut pool, 1).is_empty(),
        "nothing on the underlay"
    );
    assert_eq!(
        pool.available(),
        64,
        "requests and answers back in the pool"
    );
}

#[test]
fn what_the_table_cannot_answer_still_floods() {
    let (mut a, mut b) = suppressing_pair();
    let mut pool = PacketPool::with_frames(64);
    a.maintain(&mut pool);
    // Who-has an unknown 10.0.0.9.
    let mut unknown = ARP_REQUEST;
    unknown[41] = 9;
    // Gratuitous ARP: sender = target = 10.0.0.2 (the owner announcing).
    let mut garp = ARP_REQUEST;
    garp[28..32].copy_from_slice(&[10, 0, 0, 2]);
    // An ARP probe: sender 0.0.0.0.
    let mut probe = ARP_REQUEST;
    probe[28..32].copy_from_slice(&[0; 4]);
    // Duplicate address detection: an NS from :: (the checksum no longer
    // matters, the source is checked first).
    let mut dad = NS;
    dad[22..38].fill(0);
    // An NS whose checksum is wrong.
    let mut bad = NS;
    bad[57] ^= 1;
    let frames = [unknown, garp, probe].map(|f| f.to_vec());
    let frames: Vec<Vec<u8>> = frames
        .into_iter()
        .chain([dad.to_vec(), bad.to_vec()])
        .collect();
    let done = send(&mut a, &mut pool, &frames);
    assert_eq!((done.packets, done.dropped), (5, 0));
    let st = stats(&a);
    assert_eq!((st.arp_suppressed, st.nd_suppressed), (0, 0), "{st:?}");
    assert!(take_rx(&mut a, &mut pool).is_empty(), "no answer");
    let got = recv(&mut b, &mut pool, 5);
    // (Sent from several sockets: the order on arrival is not kept.)
    let mut got: Vec<Vec<u8>> = got.into_iter().map(|(f, _)| f).collect();
    let mut want = frames.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "all five replicated to the remote VTEP");
    // Forgetting the neighbor brings the flood back for it too.
    a.handle().remove_neighbor("10.0.0.2".parse().unwrap());
    a.maintain(&mut pool);
    send(&mut a, &mut pool, &[ARP_REQUEST.to_vec()]);
    assert_eq!(recv(&mut b, &mut pool, 1).len(), 1);
    assert_eq!(stats(&a).arp_suppressed, 0);
    assert_eq!(pool.available(), 64);
}

#[test]
fn a_neighbor_whose_mac_has_no_remote_is_not_answered() {
    let (mut a, mut b, _) = pair();
    let mut pool = PacketPool::with_frames(64);
    a.handle()
        .add_neighbor("10.0.0.2".parse().unwrap(), REMOTE_MAC);
    a.maintain(&mut pool);
    send(&mut a, &mut pool, &[ARP_REQUEST.to_vec()]);
    assert_eq!(stats(&a).arp_suppressed, 0);
    assert_eq!(recv(&mut b, &mut pool, 1).len(), 1, "flooded instead");
    assert_eq!(pool.available(), 64);
}
