#!/usr/bin/env python3
"""`wsx echo-server` under attack, as issue 17 describes it: load checks with recorded figures
(not unit tests: they take seconds and whole-process memory).

    python3 Benchmarks/hardening.py [--wsx .build/release/wsx] [--only NAME ...]

Checks (each starts its own server on a free loopback port and stops it):
  amplification  20 connections each send one compressed first fragment (RSV1, FIN=0) of about
                 61 KB that inflates to 60 MiB, then go quiet; server `--testee --memory-budget
                 256M` (64 MiB messages allowed). Peak RSS growth must stay under 256 + 64 MiB,
                 and the connections past the budget get Close 1013.
  stall          6 connections send complete 60 MiB compression bombs at once while a canary
                 connection echoes a 16-byte message every 10 ms; the canary's worst round trip
                 must stay under 100 ms (server `--testee`, 2 loops).
  lockout        the connection table (`--max-connections 2000`) is filled with TCP sockets
                 that send nothing; a canary client must still complete its handshake within 1 s.
  keepalive      a client completes its handshake, then neither reads nor answers; with
                 `--keepalive 1` the server must drop it within 3 s (ping at 1 s, no Pong by 2 s).
  one-frame      a 100 KB message sent as one frame (as browsers and python-websockets send it)
                 is echoed with the default limits.

Prints one line per check with its figures, then `N failed`; exits non-zero if any failed.
Needs only Python's standard library. Loopback only; stops what it starts.
"""
import argparse
import os
import socket
import struct
import subprocess
import sys
import time
import zlib

FAILED = []


def check(name, ok, detail):
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        FAILED.append(name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, wsx, *flags):
        self.port = free_port()
        self.proc = subprocess.Popen([wsx, "echo-server", "--port", str(self.port), *flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if "listening" not in line:
            self.stop()
            raise SystemExit(f"wsx echo-server did not start: {line!r}")

    def status(self, field):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


def frame(opcode, payload, fin=True, rsv1=False, mask=b"\x01\x02\x03\x04"):
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload)) if n < 4096 else mask_fast(payload, mask)
    return head + mask + masked


def mask_fast(payload, mask):
    key = int.from_bytes(mask * ((len(payload) + 3) // 4), "big") >> (8 * (-len(payload) % 4))
    return (int.from_bytes(payload, "big") ^ key).to_bytes(len(payload), "big")


def connect(port, deflate=False, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    ext = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n" if deflate else ""
    s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + ext + "\r\n").encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        got += chunk
    if not got.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(got.split(b"\r\n")[0].decode())
    if deflate and b"permessage-deflate" not in got:
        raise ConnectionError("permessage-deflate not agreed")
    return s, got.split(b"\r\n\r\n", 1)[1]


def read_frame(s, buffered=b""):
    """One server frame: (opcode, payload, rest of the buffer)."""
    data = buffered
    def need(n):
        nonlocal data
        while len(data) < n:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
    need(2)
    opcode, n = data[0] & 0x0F, data[1] & 0x7F
    at = 2
    if n == 126:
        need(4); n = struct.unpack("!H", data[2:4])[0]; at = 4
    elif n == 127:
        need(10); n = struct.unpack("!Q", data[2:10])[0]; at = 10
    need(at + n)
    return opcode, data[at:at + n], data[at + n:]


def bomb(size, final):
    """A compressed payload inflating to `size` zero bytes (RFC 7692: the sync-flush tail is
    removed from a final frame)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = c.compress(bytes(size)) + c.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4] if final else data


def amplification(wsx):
    server = Server(wsx, "--testee", "--memory-budget", "256M", "--loops", "2")
    try:
        base = server.status("VmRSS")
        payload = bomb(60 << 20, final=False)
        sockets = []
        for _ in range(20):
            s, _ = connect(server.port, deflate=True)
            s.sendall(frame(0x2, payload, fin=False, rsv1=True))
            sockets.append(s)
        time.sleep(3)  # the loops inflate in slices; connections past the budget are closed
        codes = []
        for s in sockets:
            s.settimeout(0.5)
            try:
                opcode, body, _ = read_frame(s)
                codes.append(struct.unpack("!H", body[:2])[0] if opcode == 0x8 and len(body) >= 2 else opcode)
            except (socket.timeout, ConnectionError):
                codes.append(None)
        peak = server.status("VmHWM") - base
        closed = codes.count(1013)
        check("amplification", peak < (256 + 64) << 20 and closed > 0,
              f"{len(payload)} B each inflating to 60 MiB ×20: peak RSS growth {peak >> 20} MiB "
              f"(budget 256 MiB, allowed 320), {closed} connections closed with 1013, "
              f"{codes.count(None)} still open")
        for s in sockets:
            s.close()
    finally:
        server.stop()


def stall(wsx):
    server = Server(wsx, "--testee", "--loops", "2")
    try:
        canary, rest = connect(server.port)
        bombers = [connect(server.port, deflate=True)[0] for _ in range(6)]
        payload = frame(0x2, bomb(60 << 20, final=True), rsv1=True)
        worst = 0.0
        rtts = []
        for b in bombers:
            b.sendall(payload)
        end = time.monotonic() + 3
        while time.monotonic() < end:
            start = time.monotonic()
            canary.sendall(frame(0x1, b"0123456789abcdef"))
            opcode, body, rest = read_frame(canary, rest)
            rtt = time.monotonic() - start
            rtts.append(rtt)
            worst = max(worst, rtt)
            time.sleep(0.01)
        rtts.sort()
        check("stall", worst < 0.1,
              f"6 bombers of 60 MiB on 2 loops: canary worst round trip {worst * 1000:.1f} ms, "
              f"median {rtts[len(rtts) // 2] * 1000:.2f} ms over {len(rtts)} round trips (limit 100 ms)")
        for b in bombers + [canary]:
            b.close()
    finally:
        server.stop()


def lockout(wsx):
    n = 2000
    server = Server(wsx, "--max-connections", str(n), "--loops", "2")
    try:
        silent = []
        for _ in range(n):
            silent.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        time.sleep(0.5)
        start = time.monotonic()
        try:
            s, _ = connect(server.port, timeout=2)
            took = time.monotonic() - start
            s.close()
            ok = took < 1
            detail = f"{n} silent sockets fill the table: a canary's handshake took {took * 1000:.1f} ms (limit 1 s)"
        except (ConnectionError, socket.timeout) as e:
            ok, detail = False, f"canary failed: {e}"
        check("lockout", ok, detail)
        for s in silent:
            s.close()
    finally:
        server.stop()


def keepalive(wsx):
    server = Server(wsx, "--keepalive", "1", "--loops", "1")
    try:
        s, _ = connect(server.port)
        start = time.monotonic()
        # Read what comes (the pings, then the Close) but never answer: to the server this peer
        # is as gone as one whose machine vanished. Time the server's FIN.
        dropped = None
        s.settimeout(0.05)
        while time.monotonic() < start + 6:
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            if not data:
                dropped = time.monotonic() - start
                break
        check("keepalive", dropped is not None and dropped < 3,
              f"a peer that never answers pings is dropped after {dropped:.2f} s (ping at 1 s, Pong due 1 s later; limit 3 s)"
              if dropped is not None else "the silent peer was not dropped within 6 s")
        s.close()
    finally:
        server.stop()


def one_frame(wsx):
    server = Server(wsx, "--loops", "1")
    try:
        s, rest = connect(server.port)
        data = os.urandom(100_000)
        s.sendall(frame(0x2, data))
        opcode, body, rest = read_frame(s, rest)
        frames = 1
        while len(body) < len(data):  # our echo fragments at 64 KiB (outboundFragmentSize)
            _, more, rest = read_frame(s, rest)
            body += more
            frames += 1
        check("one-frame", opcode == 0x2 and body == data,
              f"a 100,000-byte binary message in one frame: accepted and echoed {'whole' if body == data else 'wrong'} "
              f"(in {frames} frames)")
        s.close()
    finally:
        server.stop()


CHECKS = {"amplification": amplification, "stall": stall, "lockout": lockout, "keepalive": keepalive, "one-frame": one_frame}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wsx", default=".build/release/wsx")
    parser.add_argument("--only", nargs="*", choices=sorted(CHECKS))
    args = parser.parse_args()
    print(f"date: {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}", flush=True)
    for name in args.only or CHECKS:
        CHECKS[name](args.wsx)
    print(f"{len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
