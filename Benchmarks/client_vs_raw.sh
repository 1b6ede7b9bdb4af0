#!/usr/bin/env bash
# Echo rate through one client connection: the async WSClient (its scoped form, on the loop)
# against the raw WSEpollClient handler of the same binary (`wsx client-load --api async|raw`),
# both against one `wsx echo-server` started here, alternating for every repeat so that machine
# noise hits both alike. Server on CPU 0, clients on CPU 1. No compression.
# Prints each scenario's medians, the ratio async/raw, and every repeat's ratio.
#
#   Benchmarks/client_vs_raw.sh [REPEATS]        (default 5; from the repository root)
#
# Needs `swift build -c release --product wsx`. Loopback only; stops the server it starts.
set -euo pipefail
reps=${1:-5}
dur=${DURATION:-3}
bin=.build/release/wsx
scenarios=${SCENARIOS:-"1:16 16:16"}
taskset -c 0 "$bin" echo-server --port 9213 --loops 1 --no-compression >/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 1
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  repeats: $reps  duration: ${dur}s"
printf '%-26s %14s %14s %7s  %s\n' scenario raw async ratio 'ratios per repeat'
for s in $scenarios; do
  IFS=: read -r inflight size <<<"$s"
  : >/tmp/cvr-raw; : >/tmp/cvr-async
  each=""
  for _ in $(seq "$reps"); do
    pair=()
    for api in raw async; do
      line=$(taskset -c 1 "$bin" client-load --api "$api" --in-flight "$inflight" --size "$size" --seconds "$dur" ws://127.0.0.1:9213/ | grep '^RESULT')
      v=$(sed -E 's/.*msgs_per_s=([0-9]+).*/\1/' <<<"$line")
      echo "$v" >>"/tmp/cvr-$api"; pair+=("$v")
    done
    each="$each $(awk -v a="${pair[0]}" -v b="${pair[1]}" 'BEGIN{printf "%.2f", b/a}')"
  done
  a=$(median </tmp/cvr-raw); b=$(median </tmp/cvr-async)
  printf '%-26s %14s %14s %6.2fx %s\n' "1 conn, $inflight in flight, ${size} B" "$a msg/s" "$b msg/s" "$(awk -v a="$a" -v b="$b" 'BEGIN{print b/a}')" "$each"
done
