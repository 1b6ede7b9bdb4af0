#!/usr/bin/env bash
# User-space instructions per echoed small compressed message of `wsx echo-server`, counted by
# callgrind (the event loop's thread only, as Benchmarks/callgrind_echo.sh). The load is 4
# python-websockets clients with permessage-deflate (its defaults: the client keeps its context,
# our server answers server_no_context_takeover), each echoing 2,000 times a 30-byte JSON text,
# so every message is inflated and deflated once. Compare with COMPRESSION=none (the same load,
# no extension): the difference is what compression costs per small message.
#
#   Benchmarks/callgrind_deflate_small.sh [BINARY]   (default .build/release/wsx; from the repository root)
#
# Needs valgrind and python-websockets (`pip install websockets`; PYTHON overrides the
# interpreter). Loopback only; stops what it starts.
set -euo pipefail
bin=${1:-.build/release/wsx}
python=${PYTHON:-python3}
port=${PORT:-9362}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$bin" "$work/wsx" && strip -g "$work/wsx"
valgrind --tool=callgrind --toggle-collect='*EventLoopC3runyyF' --callgrind-out-file="$work/out" \
    "$work/wsx" echo-server --port "$port" --loops 1 >"$work/log" 2>"$work/err" &
pid=$!
for _ in $(seq 240); do grep -q listening "$work/log" 2>/dev/null && break; sleep 0.5; done
"$python" - "ws://127.0.0.1:$port/" "${COMPRESSION:-deflate}" >"$work/client" <<'PY'
import asyncio, sys
from websockets.asyncio.client import connect
url, compression = sys.argv[1], (None if sys.argv[2] == "none" else "deflate")
async def one():
    async with connect(url, compression=compression) as ws:
        for _ in range(2000):
            await ws.send('{"type":"chat","text":"hello"}')
            await ws.recv()
async def main():
    await asyncio.gather(*[one() for _ in range(4)])
    print(4 * 2000)
asyncio.run(main())
PY
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
msgs=$(cat "$work/client")
ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$work/out")
echo "compression=${COMPRESSION:-deflate} messages=$msgs instructions=$ir instructions_per_message=$((ir / msgs))"
