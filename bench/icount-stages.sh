#!/usr/bin/env bash
# Instructions per frame by pipeline stage, from callgrind's inclusive
# per-function counts: like icount.sh, each scenario runs for N and 2N
# bursts and the difference is divided by N*BURST frames. The pipeline's
# nodes are #[inline(never)] (one call per batch), so each is a function.
# A stage's count includes what it calls (the FDB, the pool); "rx" and
# "tx" are the memory port's (or the bench generator's) receive and the
# egress ports' transmit, "total" the whole poll.
# Usage: bench/icount-stages.sh [SCENARIO...]   (needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p rvs-bench --bin rvs-icount
scenarios=${*:-known_unicast flood_4ports learn_new_macs access_to_trunk trunk_to_access known_unicast_1M_stations}
burst=32
n=2000
stages="total run classify stp lookup learn forward egress fdb_learn fdb_lookup rx tx"
pattern() {
  case $1 in
    total) echo 'core::Switch>::poll ' ;;
    run) echo 'pipeline::run::node ' ;;
    classify) echo 'pipeline::classify::node ' ;;
    stp) echo 'pipeline::stp::node ' ;;
    lookup) echo 'pipeline::forward::lookup_node ' ;;
    learn) echo 'pipeline::learn::node ' ;;
    forward) echo 'pipeline::forward::node ' ;;
    egress) echo 'pipeline::egress::node ' ;;
    fdb_learn) echo 'fdb::Fdb::learn_hashed ' ;;
    fdb_lookup) echo 'fdb::Fdb::lookup ' ;;
    rx) echo 'as rvs_switch::port::Port>::rx_burst ' ;;
    tx) echo 'core::PortSlot>::flush ' ;;
  esac
}
# Inclusive count of the functions matching $2 in profile $1 (summed over
# the lines that name them as a whole function, not an inlined piece).
incl() {
  (cd "$tmp" && callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null) |
    grep -F "$2" | grep -v '=>' |
    awk '/\[/ {gsub(",", "", $1); s += $1} END {printf "%d\n", s}' || true
}
bin=$PWD/target/release/rvs-icount
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-26s' scenario
for st in $stages; do printf ' %10s' "$st"; done
echo
for s in $scenarios; do
  for k in 1 2; do
    # Run from outside the tree: callgrind then records absolute source
    # paths, and callgrind_annotate tags each whole function with its binary.
    (cd "$tmp" && valgrind --tool=callgrind --callgrind-out-file="$tmp/$s.$k" \
      "$bin" "$s" "$burst" $((k * n)) >/dev/null 2>&1)
  done
  printf '%-26s' "$s"
  for st in $stages; do
    p=$(pattern "$st")
    a=$(incl "$tmp/$s.1" "$p")
    b=$(incl "$tmp/$s.2" "$p")
    printf ' %10.1f' "$(echo "($b - $a) / ($n * $burst)" | bc -l)"
  done
  echo
done
