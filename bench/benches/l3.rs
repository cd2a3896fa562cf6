//! Packet-rate benches of the router's forward path: 64-byte frames (60
//! bytes + FCS), batches of 32, pre-resolved neighbors, destinations drawn
//! at random inside the installed routes. Throughput is in elements
//! (frames): read Melem/s as Mpps. IDs are stable:
//! `l3/ipv4_forward_1k_routes`, `l3/ipv4_forward_100k_routes`,
//! `l3/ipv6_forward_1k_routes`.
//!
//! Only `Router::process` is timed. Before each batch its frames are reset
//! untimed (gateway MAC, TTL, a fresh destination, checksum), as a receive
//! path would hand them over; frames cycle through 2048 pool frames like an
//! rx ring, and destinations through 1M pre-drawn addresses so the route
//! table is not all in cache.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rvs_bench::l3::{IN, Rng, frame4, frame6, reset4, reset6, router, routes4, routes6};
use rvs_switch::router::{L3Out, Router, RouterConfig};
use rvs_switch::{Batch, PacketPool, PktBuf};

const BURST: usize = 32;
/// Frames in flight: 64 batches' worth, cycled like an rx ring.
const ROUND: usize = 64;

/// Batches reset and then timed together, so the two clock reads (slow
/// in a VM) do not dominate a ~1 µs batch.
const GROUP: usize = 8;

/// Time `iters` batches of the forward path. Each group of batches is
/// reset untimed right before it is processed, as a receive path would
/// hand frames over, hot in cache.
fn run<D: Copy>(
    iters: u64,
    r: &mut Router,
    pool: &mut PacketPool,
    bufs: &mut VecDeque<PktBuf>,
    dsts: &[D],
    at: &mut usize,
    reset: fn(&mut [u8], D),
) -> Duration {
    let mut out = L3Out::default();
    let mut batches: Vec<Batch> = (0..GROUP).map(|_| Batch::new(BURST)).collect();
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let n = left.min(GROUP);
        for batch in &mut batches[..n] {
            for b in bufs.drain(..BURST) {
                reset(pool.data_mut(&b), dsts[*at]);
                *at = (*at + 1) % dsts.len();
                batch.push(b).unwrap();
            }
        }
        let t = Instant::now();
        for batch in &mut batches[..n] {
            r.process(pool, IN, batch, 0, &mut out);
        }
        total += t.elapsed();
        assert_eq!(out.len(), n * BURST, "every frame forwarded");
        // Frames cycle through the pool like an rx ring.
        bufs.extend(out.frames.drain(..).map(|f| f.buf));
        left -= n;
    }
    total
}

fn bench(c: &mut Criterion, id: &str, v6: bool, nroutes: usize) {
    let mut pool = PacketPool::with_frames(ROUND * BURST + 64);
    let mut r = router(&mut pool, RouterConfig::default());
    let mut rng = Rng(0x5eed ^ nroutes as u64);
    let template = if v6 { frame6() } else { frame4() };
    let mut bufs: VecDeque<PktBuf> = (0..ROUND * BURST)
        .map(|_| pool.alloc_from(&template).unwrap())
        .collect();
    let mut at = 0;
    let mut g = c.benchmark_group("l3");
    g.throughput(Throughput::Elements(BURST as u64));
    if v6 {
        let dsts = routes6(&mut r, nroutes, &mut rng);
        g.bench_function(id, |b| {
            b.iter_custom(|n| run(n, &mut r, &mut pool, &mut bufs, &dsts, &mut at, reset6))
        });
    } else {
        let dsts = routes4(&mut r, nroutes, &mut rng);
        g.bench_function(id, |b| {
            b.iter_custom(|n| run(n, &mut r, &mut pool, &mut bufs, &dsts, &mut at, reset4))
        });
    }
    g.finish();
}

fn l3(c: &mut Criterion) {
    bench(c, "ipv4_forward_1k_routes", false, 1_000);
    bench(c, "ipv4_forward_100k_routes", false, 100_000);
    bench(c, "ipv6_forward_1k_routes", true, 1_000);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = l3
}
criterion_main!(benches);
