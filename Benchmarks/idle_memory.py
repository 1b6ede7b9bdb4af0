#!/usr/bin/env python3
"""Measures a WebSocket server's user-space memory per idle open connection.

Starts nothing: point it at a running server's pid and port. It reads the server's RSS, opens N
connections on loopback (each completes the opening handshake, offering permessage-deflate like
a browser), sends one small message on each (compressed with --compressed) and reads the echo, then leaves them idle, waits
for the server to settle, and reads RSS again. Then it closes them all, waits as long again,
and reads RSS a third time: how much of the growth the server kept after the connections left.

    python3 Benchmarks/idle_memory.py --pid PID --port 9001 --connections 10000
    python3 Benchmarks/idle_memory.py --pid PID --port 9001 --no-deflate         # no extension offered
    python3 Benchmarks/idle_memory.py --pid PID --port 9001 --warmup 16          # one-time costs first
    python3 Benchmarks/idle_memory.py --pid PID --port 9001 --compressed         # the message compressed
    python3 Benchmarks/idle_memory.py --pid PID --port 9001 --tls-ca Fixtures/tls/ca.pem   # wss://

Needs `ulimit -n` above N on both sides. Loopback only.
"""
import argparse, base64, os, select, socket, ssl, sys, time

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, default=9001)
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to wait before the second reading")
    ap.add_argument("--no-deflate", action="store_true", help="offer no extension (by default the handshake offers permessage-deflate)")
    ap.add_argument("--tls-ca", help="connect with TLS (wss://), trusting this CA file; the server name is localhost")
    ap.add_argument("--compressed", action="store_true",
                    help="send the message compressed (RSV1; permessage-deflate must be agreed): the server then decompresses it")
    ap.add_argument("--warmup", type=int, default=0,
                    help="first open this many connections the same way and close them, before the first reading: "
                         "what a server allocates once per thread (a shared compressor) is then not counted per connection")
    a = ap.parse_args()
    context = ssl.create_default_context(cafile=a.tls_ca) if a.tls_ca else None
    request = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               + ("" if a.no_deflate else "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
               + "\r\n")
    if a.compressed and a.no_deflate:
        raise SystemExit("--compressed needs permessage-deflate")
    # "hello" as text, or compressed as in RFC 7692 §7.2.3.1 (f2 48 cd c9 c9 07 00, RSV1 set).
    payload, first = (bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]), 0xC1) if a.compressed else (b"hello", 0x81)
    key = [1, 2, 3, 4]
    hello = bytes([first, 0x80 | len(payload)] + key) + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    if a.warmup:
        warm = [open_connection(a.port, context, request) for _ in range(a.warmup)]
        finish(warm, hello)
        for s in warm:
            s.close()
        time.sleep(a.settle)
    before = rss_kib(a.pid)
    socks = []
    start = time.time()
    for i in range(a.connections):
        socks.append(open_connection(a.port, context, request))
        if len(socks) % 500 == 0:
            finish(socks[-500:], hello)
    finish(socks[len(socks) - len(socks) % 500:], hello)
    opened = time.time() - start
    time.sleep(a.settle)
    after = rss_kib(a.pid)
    per = (after - before) * 1024 / a.connections
    print(f"tls={bool(context)} deflate={not a.no_deflate} compressed={a.compressed} warmup={a.warmup} connections={a.connections} open_seconds={opened:.1f} rss_before_kib={before} rss_after_kib={after} "
          f"bytes_per_idle_connection={per:.0f}", flush=True)
    for s in socks:
        s.close()
    # What the server gives back once they are gone (its idle sweep runs every second).
    time.sleep(a.settle)
    closed = rss_kib(a.pid)
    kept = (closed - before) * 100 / max(after - before, 1)
    print(f"rss_after_close_kib={closed} kept_after_close_percent={kept:.0f}")

def open_connection(port, context, request):
    """A connection that has sent its upgrade request."""
    s = socket.create_connection(("127.0.0.1", port))
    if context:
        s = context.wrap_socket(s, server_hostname="localhost")
    s.sendall((request % base64.b64encode(os.urandom(16)).decode()).encode())
    return s

def finish(batch, hello):
    """Reads each socket's 101 answer, sends one message, reads its echo."""
    for s in batch:
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit("server closed a connection during the handshake: %r" % got[:200])
            got += chunk
        if not got.startswith(b"HTTP/1.1 101"):
            raise SystemExit("not upgraded: %r" % got[:200])
        if hello[0] & 0x40 and b"permessage-deflate" not in got.lower():
            raise SystemExit("--compressed, but the server did not agree to permessage-deflate")
        s.sendall(hello)
    for s in batch:
        s.settimeout(10)
        data = s.recv(64)
        if not data:
            raise SystemExit("no echo")

if __name__ == "__main__":
    main()
