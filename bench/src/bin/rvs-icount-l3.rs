//! Instruction-count harness for the router alone (`bench/icount.sh`, the
//! `l3_*` scenarios): `Router::process` and the frame reset a receive path
//! would do, on the setup of `benches/l3.rs`, for a given number of bursts.
//!
//! A binary of its own: a second caller of `Router::process` in
//! `rvs-icount` changes how the switch pipeline around it is inlined, and
//! the L2 scenarios there would no longer count what the daemon runs.
//!
//! Usage: rvs-icount-l3 SCENARIO BURST BURSTS

use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!(
            "usage: rvs-icount-l3 <l3_ipv4_100k_routes|l3_ipv6_1k_routes|l3_icmp4_ttl_exceeded|l3_icmp6_hop_limit> BURST BURSTS"
        );
        std::process::exit(2);
    }
    let burst: usize = args[2].parse().expect("BURST is a number 1..=64");
    let bursts: u64 = args[3].parse().expect("BURSTS is a number");
    // (IPv6, routes, TTL / hop limit): TTL 1 makes every frame an ICMP
    // time-exceeded error.
    let (v6, routes, ttl) = match args[1].as_str() {
        "l3_ipv4_100k_routes" => (false, 100_000, 64),
        "l3_ipv6_1k_routes" => (true, 1_000, 64),
        "l3_icmp4_ttl_exceeded" => (false, 1_000, 1),
        "l3_icmp6_hop_limit" => (true, 1_000, 1),
        other => {
            eprintln!("unknown scenario {other}");
            std::process::exit(2);
        }
    };
    let mut run = rvs_bench::l3::L3Run::new(v6, routes, burst, ttl);
    for _ in 0..bursts {
        black_box(run.step());
    }
}
