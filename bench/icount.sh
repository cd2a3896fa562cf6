#!/usr/bin/env bash
# Instructions per frame for each pipeline scenario, from callgrind: run the
# scenario for N and 2N bursts and divide the difference by N*BURST frames,
# so setup (pool, tables, 1M-entry fills) cancels out.
# The l3_* scenarios route frames through the router alone (benches/l3.rs's
# setup, binary rvs-icount-l3); their counts include resetting each frame as
# a receive path would.
# known_unicast_stream is known_unicast over 64 frames of one flow that
# differ in IPv4 length and id, as a real stream's do.
# known_unicast_1M_stations is the whole pipeline with a million stations
# installed and every frame to another one; vxlan_encap / vxlan_decap are
# the outer IPv4 encapsulation and decapsulation of benches/vxlan.rs (their
# counts include the head move that undoes each step).
# lb_vip_tcp is the whole pipeline with a service VIP
# (benches/lb.rs's setup), its flow table filled before counting;
# lb_vip6_tcp the same over IPv6 (74-byte frames).
# Usage: bench/icount.sh [SCENARIO...]   (needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p rvs-bench --bin rvs-icount --bin rvs-icount-l3
scenarios=${*:-known_unicast known_unicast_stream flood_4ports learn_new_macs access_to_trunk trunk_to_access lookup_1M_entries
  known_unicast_1M_stations vxlan_encap vxlan_decap lb_vip_tcp lb_vip6_tcp l3_ipv4_100k_routes l3_ipv6_1k_routes l3_icmp4_ttl_exceeded l3_icmp6_hop_limit}
burst=32
n=2000
count() {
  local out bin=target/release/rvs-icount
  case $1 in l3_*) bin=target/release/rvs-icount-l3 ;; esac
  out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$burst" "$2" 2>&1)
  echo "$out" | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-26s %12s\n' scenario instr/frame
for s in $scenarios; do
  a=$(count "$s" "$n")
  b=$(count "$s" $((2 * n)))
  printf '%-26s %12.1f\n' "$s" "$(echo "($b - $a) / ($n * $burst)" | bc -l)"
done
