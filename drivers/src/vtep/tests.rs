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
