#!/usr/bin/env bash
# Echo throughput of `wsx echo-server` against a SwiftNIO NIOWebSocket ChannelHandler echo server
# (Benchmarks/nio-echo), measured with the shared wsload in the same run, alternating the two
# servers for every repeat so that machine noise hits both alike. Server on CPU 0, wsload on CPU 1.
# Beside each median: wsload's own CPU (near 100% means the load generator, not the server, is the
# limit) and each server's user and kernel CPU time per message (from /proc/PID/stat), which
# show how much of a server's cost is the kernel's TCP work that every server pays alike.
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
tick=$(getconf CLK_TCK)
cputicks() { awk '{print $14, $15}' "/proc/$1/stat"; }   # user, system (clock ticks)

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  repeats: $reps  duration: ${dur}s"
printf '%-22s %14s %14s %8s %7s %13s %23s\n' scenario swift-ws swiftnio ratio errors 'wsload cpu' 'server us/msg usr+sys'
for s in $scenarios; do
  IFS=: read -r c p size type <<<"$s"
  for f in ours nio; do : >"/tmp/evn-$f"; : >"/tmp/evn-$f-cpu"; : >"/tmp/evn-$f-usr"; : >"/tmp/evn-$f-sys"; done
  errs=0
  for _ in $(seq "$reps"); do
    for who in ours nio; do
      if [ $who = ours ]; then port=9201; pid=${pids[0]}; else port=9202; pid=${pids[1]}; fi
      read -r u0 s0 < <(cputicks "$pid")
      line=$(taskset -c 1 "$wsload" -q -c "$c" -p "$p" -s "$size" -t "$type" -d "$dur" -w 1 "ws://127.0.0.1:$port/" | grep '^RESULT' || true)
      read -r u1 s1 < <(cputicks "$pid")
      [ -n "$line" ] || { echo "wsload failed against $who" >&2; exit 1; }
      e=$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$line"); errs=$((errs + e))
      if [ "$size" = 16 ]; then v=$(sed -E 's/.*msgs_per_s=([0-9.]+).*/\1/' <<<"$line"); else v=$(sed -E 's/.*mb_per_s=([0-9.]+).*/\1/' <<<"$line"); fi
      echo "$v" >>"/tmp/evn-$who"
      sed -E 's/.*client_cpu=([0-9.]+).*/\1/' <<<"$line" >>"/tmp/evn-$who-cpu"
      # Server CPU per message over the whole wsload run (its warm-up second included, so the
      # message count is the measured rate times warm-up plus measured time: an estimate).
      m=$(awk -v r="$(sed -E 's/.*msgs_per_s=([0-9.]+).*/\1/' <<<"$line")" -v d="$dur" 'BEGIN{print r * (d + 1)}')
      awk -v t="$((u1 - u0))" -v k="$tick" -v m="$m" 'BEGIN{print 1e6 * t / k / m}' >>"/tmp/evn-$who-usr"
      awk -v t="$((s1 - s0))" -v k="$tick" -v m="$m" 'BEGIN{print 1e6 * t / k / m}' >>"/tmp/evn-$who-sys"
    done
  done
  a=$(median </tmp/evn-ours); b=$(median </tmp/evn-nio)
  unit=$([ "$size" = 16 ] && echo msg/s || echo MB/s)
  cpu=$(printf '%.0f%%/%.0f%%' "$(median </tmp/evn-ours-cpu)" "$(median </tmp/evn-nio-cpu)")
  per=$(printf '%.2f+%.2f / %.2f+%.2f' "$(median </tmp/evn-ours-usr)" "$(median </tmp/evn-ours-sys)" "$(median </tmp/evn-nio-usr)" "$(median </tmp/evn-nio-sys)")
  printf '%-22s %14s %14s %7.2fx %7s %13s %23s\n' "${c}x${p}x${size} $type" "$a $unit" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN{print a/b}')" "$errs" "$cpu" "$per"
done
echo "(wsload cpu and server us/msg: swift-ws / swiftnio, medians)"
