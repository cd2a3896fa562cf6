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

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rvs_bench::vxlan::{DecapRun, EncapRun, inner_batch};
use rvs_switch::vxlan::{self, Vni, VniConfig, VtepTable, VxlanCounters};
use rvs_switch::{BATCH_MAX, PacketPool};

const BURST: usize = 32;

fn vxlan(c: &mut Criterion) {
    let mut g = c.benchmark_group("vxlan");
    g.throughput(Throughput::Elements(BURST as u64));
    let mut counters = VxlanCounters::default();

    for (id, csum) in [("encap", true), ("encap_nocsum", false)] {
        let mut run = EncapRun::new(BURST, csum);
        g.bench_function(id, |b| b.iter(|| run.step()));
        assert_eq!(run.batch.len(), BURST, "nothing dropped");
    }

    let mut run = DecapRun::new(BURST);
    g.bench_function("decap", |b| b.iter(|| run.step()));
    assert_eq!(run.batch.len(), BURST, "nothing dropped");

    let mut table = VtepTable::new();
    table
        .add_vni(Vni::new(42).unwrap(), VniConfig::default())
        .unwrap();
    let mut pool = PacketPool::with_frames(256);
    let mut batch = inner_batch(&mut pool, BURST);
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
