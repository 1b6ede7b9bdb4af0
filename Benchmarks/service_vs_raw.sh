#!/usr/bin/env bash
# Echo throughput of the service layer (`wsx echo-server --api service`: onTextMessage /
# onBinaryMessage returning the message) against the raw WSEpollHandler echo of the same binary
# (`--api raw`), measured with the shared wsload in the same run, alternating the two servers
# for every repeat so that machine noise hits both alike. Servers on CPU 0, wsload on CPU 1.
# Prints each scenario's medians, the ratio service/raw, and every repeat's ratio.
#
#   Benchmarks/service_vs_raw.sh [REPEATS]        (default 5; from the repository root)
#
# Needs `swift build -c release --product wsx` and wsload
# (`cc -O2 -o /tmp/wsload ../shared/tools/wsload/wsload.c`; WSLOAD overrides the path).
# Loopback only; stops the servers it starts.
set -euo pipefail
reps=${1:-5}
wsload=${WSLOAD:-/tmp/wsload}
dur=${DURATION:-3}
bin=.build/release/wsx
scenarios=${SCENARIOS:-"100:1:16:binary 100:16:16:binary 100:16:16:text 10:4:16k:binary 1:1:1m:binary"}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
taskset -c 0 "$bin" echo-server --port 9211 --loops 1 --no-compression --api raw >/dev/null & pids+=($!)
taskset -c 0 "$bin" echo-server --port 9212 --loops 1 --no-compression --api service >/dev/null & pids+=($!)
sleep 1
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  repeats: $reps  duration: ${dur}s"
printf '%-22s %16s %16s %7s %7s  %s\n' scenario raw service ratio errors 'ratios per repeat'
for s in $scenarios; do
  IFS=: read -r c p size type <<<"$s"
  : >/tmp/svr-raw; : >/tmp/svr-service
  errs=0; each=""
  for _ in $(seq "$reps"); do
    pair=()
    for who in raw service; do
      port=$([ $who = raw ] && echo 9211 || echo 9212)
      line=$(taskset -c 1 "$wsload" -q -c "$c" -p "$p" -s "$size" -t "$type" -d "$dur" -w 1 "ws://127.0.0.1:$port/" | grep '^RESULT' || true)
      [ -n "$line" ] || { echo "wsload failed against $who" >&2; exit 1; }
      e=$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$line"); errs=$((errs + e))
      if [ "$size" = 16 ]; then v=$(sed -E 's/.*msgs_per_s=([0-9.]+).*/\1/' <<<"$line"); else v=$(sed -E 's/.*mb_per_s=([0-9.]+).*/\1/' <<<"$line"); fi
      echo "$v" >>"/tmp/svr-$who"; pair+=("$v")
    done
    each="$each $(awk -v a="${pair[0]}" -v b="${pair[1]}" 'BEGIN{printf "%.2f", b/a}')"
  done
  a=$(median </tmp/svr-raw); b=$(median </tmp/svr-service)
  unit=$([ "$size" = 16 ] && echo msg/s || echo MB/s)
  printf '%-22s %16s %16s %6.2fx %7s %s\n' "${c}x${p}x${size} $type" "$a $unit" "$b $unit" "$(awk -v a="$a" -v b="$b" 'BEGIN{print b/a}')" "$errs" "$each"
done
