//! Packet-rate benches of the L2 pipeline, 64-byte frames, bursts of 32 and
//! 64. Throughput is reported in elements (frames) per second: read Melem/s
//! as Mpps. IDs are stable: `l2/known_unicast/32` etc.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rvs_bench as sc;
use rvs_switch::FlushFilter;

const BURSTS: [usize; 2] = [32, 64];

fn l2(c: &mut Criterion) {
    let mut g = c.benchmark_group("l2");
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut sw = sc::known_unicast(burst);
        g.bench_function(BenchmarkId::new("known_unicast", burst), |b| {
            b.iter(|| sw.poll())
        });
        let mut sw = sc::flood_4ports(burst);
        g.bench_function(BenchmarkId::new("flood_4ports", burst), |b| {
            b.iter(|| sw.poll())
        });
        // Every frame a new station. The table is flushed (untimed) every
        // 256k frames so the bench measures inserts into a table of 0..256k
        // entries, growth included, not an ever-growing one.
        const ROUND: u64 = 1 << 18;
        let (mut sw, d) = sc::learn_new_macs(burst, ROUND);
        g.bench_function(BenchmarkId::new("learn_new_macs", burst), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let per_round = ROUND / burst as u64;
                let mut left = iters;
                let mut done_in_round = 0u64;
                while left > 0 {
                    let n = left.min(per_round - done_in_round);
                    let t = Instant::now();
                    for _ in 0..n {
                        sw.poll();
                    }
                    total += t.elapsed();
                    left -= n;
                    done_in_round += n;
                    if done_in_round == per_round {
                        sw.flush_fdb(d, FlushFilter::default()).unwrap();
                        sw.add_static(d, 1, sc::B, rvs_switch::PortId(1)).unwrap();
                        done_in_round = 0;
                    }
                }
                total
            })
        });
    }
    g.finish();
}

fn vlan(c: &mut Criterion) {
    let mut g = c.benchmark_group("vlan");
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut sw = sc::access_to_trunk(burst);
        g.bench_function(BenchmarkId::new("access_to_trunk", burst), |b| {
            b.iter(|| sw.poll())
        });
        let mut sw = sc::trunk_to_access(burst);
        g.bench_function(BenchmarkId::new("trunk_to_access", burst), |b| {
            b.iter(|| sw.poll())
        });
    }
    g.finish();
}

fn fdb(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdb");
    // The whole pipeline with a million stations installed, every frame to
    // another one (compare with fdb/lookup_1M_entries: the table alone).
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut sw = sc::known_unicast_stations(burst, 1 << 20);
        g.bench_function(BenchmarkId::new("known_unicast_1M_stations", burst), |b| {
            b.iter(|| sw.poll())
        });
    }
    let (f, keys) = sc::big_fdb(1 << 20);
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut at = 0usize;
        let mut out = [None; 64];
        g.bench_function(BenchmarkId::new("lookup_1M_entries", burst), |b| {
            b.iter(|| {
                if at + burst > keys.len() {
                    at = 0;
                }
                f.lookup_batch(&keys[at..at + burst], 0, &mut out[..burst]);
                at += burst;
                std::hint::black_box(&out);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = l2, vlan, fdb
}
criterion_main!(benches);
