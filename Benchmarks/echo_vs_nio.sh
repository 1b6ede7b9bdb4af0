#!/usr/bin/env bash
# Echo throughput of `wsx echo-server` against a SwiftNIO NIOWebSocket ChannelHandler echo server
# (Benchmarks/nio-echo), measured with the shared wsload in the same run, alternating the two
# servers for every repeat so that machine noise hits both alike. Server on CPU 0, wsload on CPU 1.
#
#   Benchmarks/echo_vs_nio.sh [REPEATS]          (default 3; run from the repository root)
#
# Needs: `swift build -c release --product wsx`, `swift build -c release --package-path
# Benchmarks/nio-echo`, and wsload: `cc -O2 -o /tmp/wsload ../shared/tools/wsload/wsload.c`
# (WSLOAD overrides the path). Loopback only; stops the servers it starts.
set -euo pipefail
reps=${1:-3}
wsload=${WSLOAD:-/tmp/wsload}
dur=${DURATION:-4}
ours=.build/release/wsx
nio=Benchmarks/nio-echo/.build/release/nio-echo
scenarios=${SCENARIOS:-"100:1:16:binary 100:16:16:binary 10:4:16k:binary 1:1:1m:binary 10:4:16k:utf8"}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

taskset -c 0 "$ours" echo-server --port 9201 --loops 1 >/dev/null & pids+=($!)
taskset -c 0 "$nio" 9202 >/dev/null & pids+=($!)
sleep 1

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  repeats: $reps  duration: ${dur}s"
printf '%-22s %14s %14s %8s %7s\n' scenario swift-ws swiftnio ratio errors
for s in $scenarios; do
  IFS=: read -r c p size type <<<"$s"
  : >/tmp/evn-ours; : >/tmp/evn-nio; errs=0
  for _ in $(seq "$reps"); do
    for who in ours nio; do
      port=$([ $who = ours ] && echo 9201 || echo 9202)
      line=$(taskset -c 1 "$wsload" -q -c "$c" -p "$p" -s "$size" -t "$type" -d "$dur" -w 1 "ws://127.0.0.1:$port/" | grep '^RESULT' || true)
      [ -n "$line" ] || { echo "wsload failed against $who" >&2; exit 1; }
      e=$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$line"); errs=$((errs + e))
      if [ "$size" = 16 ]; then v=$(sed -E 's/.*msgs_per_s=([0-9.]+).*/\1/' <<<"$line"); else v=$(sed -E 's/.*mb_per_s=([0-9.]+).*/\1/' <<<"$line"); fi
      echo "$v" >>"/tmp/evn-$who"
    done
  done
  a=$(median </tmp/evn-ours); b=$(median </tmp/evn-nio)
  unit=$([ "$size" = 16 ] && echo msg/s || echo MB/s)
  printf '%-22s %14s %14s %7.2fx %7s\n' "${c}x${p}x${size} $type" "$a $unit" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN{print a/b}')" "$errs"
done
