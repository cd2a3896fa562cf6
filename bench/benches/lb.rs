//! Packet rate of a service VIP through the whole pipeline (memory ports,
//! 64-byte TCP segments of 4096 established flows, bursts of 32): see
//! `rvs_bench::lb`. Throughput is in elements (frames): read Melem/s as
//! Mpps. IDs are stable: `lb/vip_tcp`, and `lb/known_unicast_peer` (the
//! L2 known-unicast scenario, measured in the same run as the ratio's
//! peer).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BURST: usize = 32;

fn lb(c: &mut Criterion) {
    let mut g = c.benchmark_group("lb");
    g.throughput(Throughput::Elements(BURST as u64));
    let mut sw = rvs_bench::lb::vip_tcp(BURST);
    // Fill the flow table first: the steady state is established flows.
    for _ in 0..2 * rvs_bench::lb::FLOWS / BURST {
        sw.poll();
    }
    let l3 = sw.router().counters();
    assert!(l3.drops.iter().all(|&d| d == 0), "nothing dropped: {l3:?}");
    let sent = l3.stages.get(rvs_switch::StageCounter::LbToBackend);
    assert_eq!(
        sent,
        2 * rvs_bench::lb::FLOWS as u64,
        "every frame balanced"
    );
    g.bench_function("vip_tcp", |b| b.iter(|| sw.poll()));
    let flows = sw.services()[0].flows;
    assert_eq!(flows, rvs_bench::lb::FLOWS, "every flow in the table");
    let mut sw6 = rvs_bench::lb::vip6_tcp(BURST);
    for _ in 0..2 * rvs_bench::lb::FLOWS / BURST {
        sw6.poll();
    }
    let l3 = sw6.router().counters();
    assert!(l3.drops.iter().all(|&d| d == 0), "nothing dropped: {l3:?}");
    g.bench_function("vip6_tcp", |b| b.iter(|| sw6.poll()));
    assert_eq!(sw6.services()[0].flows, rvs_bench::lb::FLOWS);
    let mut peer = rvs_bench::known_unicast(BURST);
    g.bench_function("known_unicast_peer", |b| b.iter(|| peer.poll()));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = lb
}
criterion_main!(benches);
