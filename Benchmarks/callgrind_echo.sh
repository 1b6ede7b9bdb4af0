#!/usr/bin/env bash
# User-space instructions per echoed message of `wsx echo-server`, counted by callgrind: a
# repeatable figure on a shared, noisy machine, where wall-clock rates swing several-fold.
# Only the event loop's thread is counted (--toggle-collect on EventLoop.run), so start-up is
# left out; the 10 opening handshakes are in, which adds under 2% at the message counts here.
#
#   Benchmarks/callgrind_echo.sh [BINARY]     (default .build/release/wsx; from the repository root)
#   API=service Benchmarks/callgrind_echo.sh  (the service layer's echo: `echo-server --api service`)
#   FLIGHT=16 Benchmarks/callgrind_echo.sh     (16 messages in flight per connection; default 1)
#
# Needs valgrind and wsload (`cc -O2 -o /tmp/wsload ../shared/tools/wsload/wsload.c`; WSLOAD
# overrides the path). The binary is copied and its debug info stripped (valgrind cannot read
# Swift 6.3's), keeping the symbols the toggle needs. Loopback only; stops what it starts.
set -euo pipefail
bin=${1:-.build/release/wsx}
wsload=${WSLOAD:-/tmp/wsload}
port=${PORT:-9361}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$bin" "$work/wsx" && strip -g "$work/wsx"
valgrind --tool=callgrind --toggle-collect='*EventLoopC3runyyF' --callgrind-out-file="$work/out" \
    "$work/wsx" echo-server --port "$port" --loops 1 --api "${API:-raw}" >"$work/log" 2>"$work/err" &
pid=$!
for _ in $(seq 240); do grep -q listening "$work/log" 2>/dev/null && break; sleep 0.5; done
taskset -c 1 "$wsload" -q -c 10 -p "${FLIGHT:-1}" -s 16 -t binary -d 8 -w 0 "ws://127.0.0.1:$port/" >"$work/wsload"
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
msgs=$(sed -nE 's/^RESULT.* msgs=([0-9]+).*/\1/p' "$work/wsload")
ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$work/out")
echo "messages=$msgs instructions=$ir instructions_per_message=$((ir / msgs))"
