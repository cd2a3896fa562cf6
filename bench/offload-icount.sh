#!/usr/bin/env bash
# Instructions per run of each case of the offload bench (benches/offload.rs:
# one 64 KiB TSO super-frame cut or finished, or one 1500-byte checksum
# completed), from callgrind: each case runs N and 2N times and the
# difference is divided by N, so start-up and input set-up cancel out.
# Unlike wall-clock figures these do not move with the machine's load.
# Usage: bench/offload-icount.sh [BENCH_BINARY]   (needs valgrind; without
# an argument the bench is built from this checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
  bin=$(cargo bench -q -p rvs-bench --bench offload --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
fi
cases="segment_full segment_partial rx_cut_in_place finish_in_software complete_csum_1500"
n=200
count() {
  RVS_OFFLOAD_ICOUNT=$2 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-20s %12s\n' case instr/run
for c in $cases; do
  a=$(count "$c" "$n")
  b=$(count "$c" $((2 * n)))
  printf '%-20s %12.1f\n' "$c" "$(echo "($b - $a) / $n" | bc -l)"
done
