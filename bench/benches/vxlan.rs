//! Packet-rate benches of the VXLAN building blocks: 64-byte inner frames in
//! batches of 32, throughput in elements (read Melem/s as Mpps).
//!
//! - `vxlan/encap`: the full outer IPv4 encapsulation a raw underlay needs
//!   (inner flow hash → UDP source port, template copy, IPv4 length, ID and
//!   header checksum, UDP checksum on as Linux does by default, MTU check).
//! - `vxlan/decap`: its receive side (outer Ethernet/IPv4/UDP/VXLAN checked,
//!   IPv4 header checksum verified, VNI looked up, headers stripped).
//! - `vxlan/encap_nocsum`: `encap` with a zero outer UDP checksum (RFC 7348's
//!   IPv4 default).
//! - `vxlan/push_header`, `vxlan/pull_header`: the 8-byte VXLAN header alone
//!   (the UDP-socket underlay, where the kernel writes the outer headers).
//!
//! Each iteration also undoes its work (a head pointer move) so the same 32
//! frames go round; that costs one add per frame.

use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rvs_switch::mac::MacAddr;
use rvs_switch::vxlan::{
    self, OuterDecap, OuterEncap, UnderlayParams, Vni, VniConfig, VtepTable, VxlanCounters,
};
use rvs_switch::{BATCH_MAX, Batch, PacketPool};

const BURST: usize = 32;
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

/// 64-byte inner IPv4/UDP frames, one flow each.
fn inner_batch(pool: &mut PacketPool) -> Batch {
    let mut batch = Batch::new(BURST);
    for i in 0..BURST {
        let mut f = vec![0u8; 64];
        f[..6].copy_from_slice(&MacAddr::local(2).0);
        f[6..12].copy_from_slice(&MacAddr::local(1).0);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&50u16.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&(1000 + i as u16).to_be_bytes());
        f[36..38].copy_from_slice(&5000u16.to_be_bytes());
        batch.push(pool.alloc_from(&f).unwrap()).unwrap();
    }
    batch
}

fn encap(udp_csum: bool) -> (PacketPool, Batch, OuterEncap) {
    let mut pool = PacketPool::with_frames(256);
    let batch = inner_batch(&mut pool);
    let mut p = UnderlayParams::new(MacAddr::local(10), MacAddr::local(11), LOCAL, REMOTE);
    p.udp_csum = udp_csum;
    (
        pool,
        batch,
        OuterEncap::new(&p, Vni::new(42).unwrap()).unwrap(),
    )
}

fn vxlan(c: &mut Criterion) {
    let mut g = c.benchmark_group("vxlan");
    g.throughput(Throughput::Elements(BURST as u64));
    let mut counters = VxlanCounters::default();

    for (id, csum) in [("encap", true), ("encap_nocsum", false)] {
        let (mut pool, mut batch, mut e) = encap(csum);
        g.bench_function(id, |b| {
            b.iter(|| {
                e.encap_batch(&mut pool, &mut batch, 1500, &mut counters);
                for p in batch.as_mut_slice() {
                    pool.pull_front(p, vxlan::OVERHEAD_V4);
                }
            })
        });
        assert_eq!(batch.len(), BURST, "nothing dropped");
    }

    let mut table = VtepTable::new();
    table
        .add_vni(Vni::new(42).unwrap(), VniConfig::default())
        .unwrap();
    let (mut pool, mut batch, mut e) = encap(true);
    e.encap_batch(&mut pool, &mut batch, 1500, &mut counters);
    let d = OuterDecap {
        local: REMOTE,
        port: vxlan::UDP_PORT,
    };
    let mut meta = [None; BATCH_MAX];
    g.bench_function("decap", |b| {
        b.iter(|| {
            d.decap_batch(&mut pool, &mut batch, &table, &mut meta, &mut counters);
            for p in batch.as_mut_slice() {
                pool.push_front(p, vxlan::OVERHEAD_V4);
            }
        })
    });
    assert_eq!(batch.len(), BURST, "nothing dropped");

    let mut pool = PacketPool::with_frames(256);
    let mut batch = inner_batch(&mut pool);
    let vni = Vni::new(42).unwrap();
    g.bench_function("push_header", |b| {
        b.iter(|| {
            vxlan::encap_batch(&mut pool, &mut batch, vni, 1464, &mut counters);
            for p in batch.as_mut_slice() {
                pool.pull_front(p, vxlan::HEADER_LEN);
            }
        })
    });
    vxlan::encap_batch(&mut pool, &mut batch, vni, 1464, &mut counters);
    let mut vnis = [vni; BATCH_MAX];
    g.bench_function("pull_header", |b| {
        b.iter(|| {
            vxlan::decap_batch(&mut pool, &mut batch, &table, &mut vnis, &mut counters);
            for p in batch.as_mut_slice() {
                pool.push_front(p, vxlan::HEADER_LEN);
            }
        })
    });
    assert_eq!(batch.len(), BURST, "nothing dropped");
    g.finish();
}

criterion_group!(benches, vxlan);
criterion_main!(benches);
