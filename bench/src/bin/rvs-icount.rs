//! Instruction-count harness: runs one bench scenario for a given number of
//! bursts so `bench/icount.sh` can run it under callgrind twice (N and 2N
//! bursts) and report instructions per frame from the difference, which
//! cancels setup cost. Instruction counts do not care how noisy the machine
//! is, so this is the number to watch for regressions.
//!
//! Usage: rvs-icount SCENARIO BURST BURSTS

use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!(
            "usage: rvs-icount <known_unicast|known_unicast_stream|flood_4ports|learn_new_macs|access_to_trunk|trunk_to_access|lookup_1M_entries|known_unicast_1M_stations|vxlan_encap|vxlan_decap|lb_vip_tcp|lb_vip6_tcp> BURST BURSTS"
        );
        std::process::exit(2);
    }
    let burst: usize = args[2].parse().expect("BURST is a number 1..=64");
    let bursts: u64 = args[3].parse().expect("BURSTS is a number");
    let mut sw = match args[1].as_str() {
        "known_unicast" => rvs_bench::known_unicast(burst),
        "known_unicast_stream" => rvs_bench::known_unicast_stream(burst),
        "flood_4ports" => rvs_bench::flood_4ports(burst),
        "access_to_trunk" => rvs_bench::access_to_trunk(burst),
        "trunk_to_access" => rvs_bench::trunk_to_access(burst),
        "learn_new_macs" => rvs_bench::learn_new_macs(burst, 1 << 30).0,
        "known_unicast_1M_stations" => rvs_bench::known_unicast_stations(burst, 1 << 20),
        "vxlan_encap" => {
            let mut run = rvs_bench::vxlan::EncapRun::new(burst, true);
            for _ in 0..bursts {
                black_box(run.step());
            }
            return;
        }
        "vxlan_decap" => {
            let mut run = rvs_bench::vxlan::DecapRun::new(burst);
            for _ in 0..bursts {
                black_box(run.step());
            }
            return;
        }
        // The flow table is filled before counting starts (2 rounds of the
        // replayed flows), so N and 2N bursts both count established flows.
        "lb_vip_tcp" | "lb_vip6_tcp" => {
            let mut sw = if args[1] == "lb_vip6_tcp" {
                rvs_bench::lb::vip6_tcp(burst)
            } else {
                rvs_bench::lb::vip_tcp(burst)
            };
            for _ in 0..2 * rvs_bench::lb::FLOWS / burst {
                sw.poll();
            }
            sw
        }
        "lookup_1M_entries" => {
            let (f, keys) = rvs_bench::big_fdb(1 << 20);
            let mut out = [None; 64];
            let mut at = 0;
            for _ in 0..bursts {
                if at + burst > keys.len() {
                    at = 0;
                }
                f.lookup_batch(&keys[at..at + burst], 0, &mut out[..burst]);
                black_box(&out);
                at += burst;
            }
            return;
        }
        other => {
            eprintln!("unknown scenario {other}");
            std::process::exit(2);
        }
    };
    for _ in 0..bursts {
        black_box(sw.poll());
    }
}
