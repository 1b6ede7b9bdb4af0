#!/usr/bin/env bash
# RSS at rest of `wsx echo-server` (both APIs) and `service-tour`: each started with two loops,
# read from /proc/PID/status one second after its listening line, then checked with one echo.
#
#   Benchmarks/rss_at_rest.sh [--max KB] [DIR]
#     DIR: where wsx and service-tour are (default .build/release; .build-static/release for
#          Deploy/static-build.sh's). --max: exit 1 if any VmRSS is above KB.
#
# VmRSS is resident memory of all kinds; RssAnon is the process's own (heap, stacks, written
# data), RssFile its program and libraries' pages, which the kernel maps 64 KiB around each page
# touched (Deploy/make-order.py). Loopback only; stops what it starts.
set -euo pipefail
max=""
if [ "${1:-}" = "--max" ]; then max=$2; shift 2; fi
dir=${1:-.build/release}
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
status=0
printf '%-34s %9s %9s %9s\n' program VmRSS_kB RssAnon RssFile
for run in "wsx echo-server" "wsx echo-server --api service" "service-tour"; do
    read -r -a argv <<<"$run"
    "$dir/${argv[0]}" "${argv[@]:1}" --port 0 --loops 2 >"$work/log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do grep -q listening "$work/log" && break; sleep 0.1; done
    url=$(grep -o 'ws://[^ ]*' "$work/log" || true)
    if [ -z "$url" ]; then echo "$run: did not start: $(cat "$work/log")" >&2; exit 1; fi
    sleep 1
    read -r rss anon file < <(awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print r, a, f}' "/proc/$pid/status")
    [ "${argv[0]}" = service-tour ] && url="${url}echo"
    [ "$(echo at-rest | "$dir/wsx" client "$url")" = at-rest ] || { echo "$run: no echo from $url" >&2; status=1; }
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    printf '%-34s %9s %9s %9s\n' "$run" "$rss" "$anon" "$file"
    if [ -n "$max" ] && [ "$rss" -gt "$max" ]; then echo "$run: VmRSS $rss kB is above $max kB" >&2; status=1; fi
done
exit $status
