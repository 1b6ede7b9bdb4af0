#!/usr/bin/env python3
"""`wsx client` (WSClient) against real peers: retry and backoff, redirects, HTTP proxies.

- Retry: a python-websockets server that drops the connection (no Close) every few messages,
  one that closes with 1012 (restart) or 1000, and no server at all for a while (connection
  refused), with the waits checked against `interval × backOffFactor^n`.
- Redirects: an HTTP server answering 301/302/307/308 (absolute, relative, http:// Location),
  a loop, a chain longer than --max-redirects, `--max-redirects 0`, and wss -> ws (refused).
- Proxies: Debian's tinyproxy as the CONNECT proxy, given with --proxy (with Basic proxy
  credentials) and from http_proxy / https_proxy, no_proxy honoured; wss:// through the tunnel
  verifies the target's certificate (Fixtures/tls).
- Request fields: --header, --subprotocol, --cookie, --basic, --bearer seen by the server.

    python3 Fixtures/interop/client.py [--wsx .build/release/wsx]

Needs `pip install websockets==17.4` and `apt-get install tinyproxy`. Prints one line per
check, exits non-zero if any fails. Loopback only; stops every process it starts.
"""
import argparse, os, subprocess, sys, tempfile, time

from sockets import free_port, wait_port  # beside this script

HERE = os.path.dirname(os.path.abspath(__file__))
PKI = os.path.join(HERE, "..", "tls")
CA, CERT, KEY = (os.path.join(PKI, f) for f in ("ca.pem", "server.pem", "server-key.pem"))
failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        failures.append(name)


PY_SERVER = r"""
import asyncio, json, ssl, sys
from websockets.asyncio.server import serve
mode, port = sys.argv[1], int(sys.argv[2])
count = {'n': 0}
async def handler(ws):
    if ws.request.path == '/info':
        h = ws.request.headers
        await ws.send(json.dumps({k: h.get(k) for k in ('Authorization', 'Cookie', 'X-Custom', 'Origin')}
                                 | {'subprotocol': ws.subprotocol}))
        async for m in ws: await ws.send(m)
        return
    if mode == 'big':
        await ws.send('b' * 100_000)
        async for m in ws: await ws.send(m)
        return
    async for m in ws:
        count['n'] += 1
        await ws.send(m)
        if mode == 'drop' and count['n'] % 3 == 0:
            await asyncio.sleep(0.05)
            ws.transport.abort()
            return
        if mode == 'restart' and count['n'] == 1:
            await ws.close(1012, 'restart')
            return
        if mode == 'done':
            await ws.close(1000, 'bye')
            return
async def main():
    context = None
    if len(sys.argv) > 3:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[3], sys.argv[4])
    async with serve(handler, '127.0.0.1', port, compression='deflate', max_size=None, ssl=context,
                     subprotocols=['chat.v2', 'chat.v1'] if mode == 'info' else None):
        await asyncio.Future()
asyncio.run(main())
"""

REDIRECTOR = r"""
import http.server, ssl, sys
port, echo = int(sys.argv[1]), int(sys.argv[2])
routes = {
    '/301': (301, f'ws://127.0.0.1:{echo}/'),
    '/302-relative': (302, '/307-http'),
    '/307-http': (307, f'http://127.0.0.1:{echo}/'),
    '/308-path-relative/a': (308, 'b'),
    '/308-path-relative/b': (308, f'ws://127.0.0.1:{echo}/'),
    '/loop-a': (302, '/loop-b'),
    '/loop-b': (302, '/loop-a'),
    '/to-ws': (302, f'ws://127.0.0.1:{echo}/'),
}
for i in range(1, 13):
    routes[f'/chain/{i}'] = (302, f'/chain/{i - 1}' if i > 1 else f'ws://127.0.0.1:{echo}/')
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, location = routes.get(self.path, (404, None))
        self.send_response(status)
        if location: self.send_header('Location', location)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *a): pass
server = http.server.ThreadingHTTPServer(('127.0.0.1', port), H)
if len(sys.argv) > 3:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[3], sys.argv[4])
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


class Processes:
    def __init__(self):
        self.running = []

    def start(self, argv, port=None, **kw):
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.running.append(p)
        if port is not None and not wait_port(port):
            raise RuntimeError(f"{argv[:3]} did not start on {port}")
        return p

    def stop(self, p):
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        self.running.remove(p)

    def stop_all(self):
        for p in list(self.running):
            self.stop(p)


def client(wsx, args, lines=(), env=None, timeout=40):
    e = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        e.pop(k, None)
    e.update(env or {})
    start = time.time()
    r = subprocess.run([wsx, "client"] + args, input="".join(l + "\n" for l in lines), capture_output=True, text=True,
                       timeout=timeout, env=e)
    r.elapsed = time.time() - start
    return r


def finish(p, timeout=30):
    """The output of a client started with Popen; killed if it outlives `timeout`."""
    try:
        return p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return out, err + "\n(killed after the timeout)"


def detail(r):
    return f"rc={r.returncode} out={r.stdout[:300]!r} err={r.stderr[-400:]!r}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wsx", default=".build/release/wsx")
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()
    wsx, py = a.wsx, a.python
    procs = Processes()
    tmp = tempfile.mkdtemp(prefix="swift-ws-client-")
    server_py = os.path.join(tmp, "server.py")
    open(server_py, "w").write(PY_SERVER)
    redirector_py = os.path.join(tmp, "redirector.py")
    open(redirector_py, "w").write(REDIRECTOR)
    try:
        # The request: fields the server sees.
        port = free_port()
        s = procs.start([py, server_py, "info", str(port)], port)
        r = client(wsx, ["--header", "X-Custom: forty two", "--header", "Origin: http://127.0.0.1", "--subprotocol", "chat.v1",
                         "--cookie", "session=abc", "--bearer", "tok.en", "-v", f"ws://127.0.0.1:{port}/info"], ["ping"])
        first = r.stdout.splitlines()[0] if r.stdout else ""
        check("request fields: header, origin, cookie, bearer, subprotocol seen by python-websockets",
              r.returncode == 0 and '"X-Custom": "forty two"' in first and '"Cookie": "session=abc"' in first
              and '"Authorization": "Bearer tok.en"' in first and '"subprotocol": "chat.v1"' in first
              and '"Origin": "http://127.0.0.1"' in first, detail(r))
        check("-v: one line per connection with what was negotiated",
              f"connected ws://127.0.0.1:{port}/info subprotocol=chat.v1 compression=on" in r.stderr, detail(r))
        r = client(wsx, ["--basic", "ann:s3cret", "--subprotocol", "chat.v1", f"ws://127.0.0.1:{port}/info"])
        check("--basic sends Basic credentials", "Basic YW5uOnMzY3JldA==" in r.stdout, detail(r))
        r = client(wsx, ["--no-compression", "--subprotocol", "chat.v1", "-v", f"ws://127.0.0.1:{port}/info"])
        check("--no-compression: compression=off", "compression=off" in r.stderr and r.returncode == 0, detail(r))
        procs.stop(s)

        # A 100 KB message in one frame, default settings.
        port = free_port()
        s = procs.start([py, server_py, "big", str(port)], port)
        r = client(wsx, [f"ws://127.0.0.1:{port}/"])
        check("a 100 KB single-frame message from python-websockets is read with defaults",
              r.returncode == 0 and r.stdout.splitlines() == ["b" * 100_000], detail(r))
        procs.stop(s)

        # Retry: refused for a while, then the server comes.
        port = free_port()
        t0 = time.time()
        starter = subprocess.Popen([py, "-c", f"import time, subprocess, sys; time.sleep(1.6); "
                                    f"subprocess.run([sys.argv[1], sys.argv[2], 'echo', '{port}'])", py, server_py])
        procs.running.append(starter)
        r = client(wsx, ["--retry-count", "5", "--retry-interval", "0.3", "--backoff-factor", "2", "-v",
                         f"ws://127.0.0.1:{port}/"], ["after the wait"])
        waits = [l for l in r.stderr.splitlines() if l.startswith("reconnecting in")]
        check("refused, then up: reconnects with backoff 0.3, 0.6, 1.2 s and goes on",
              r.returncode == 0 and r.stdout.splitlines() == ["after the wait"]
              and waits[:3] == ["reconnecting in 0.3 s (attempt 1)", "reconnecting in 0.6 s (attempt 2)",
                                "reconnecting in 1.2 s (attempt 3)"], detail(r))
        check("refused, then up: the waits were slept (about 2.1 s before the connection)",
              1.9 <= r.elapsed <= 4.5, f"{r.elapsed:.2f} s")
        procs.stop(starter)
        subprocess.run(["pkill", "-f", f"{server_py} echo {port}"], check=False)

        port = free_port()
        r = client(wsx, ["--retry-count", "3", "--retry-interval", "0.2", "--backoff-factor", "2", "--max-wait-interval", "0.5",
                         "-v", f"ws://127.0.0.1:{port}/"], ["x"])
        waits = [l for l in r.stderr.splitlines() if l.startswith("reconnecting in")]
        check("never up: 3 attempts, waits capped by --max-wait-interval, then a non-zero exit with the reason",
              r.returncode != 0 and waits == ["reconnecting in 0.2 s (attempt 1)", "reconnecting in 0.4 s (attempt 2)",
                                              "reconnecting in 0.5 s (attempt 3)"]
              and "refused" in r.stderr and 1.0 <= r.elapsed <= 4, detail(r) + f" {r.elapsed:.2f} s")
        r = client(wsx, [f"ws://127.0.0.1:{port}/"], ["x"])
        check("without --retry-count: no retry, non-zero exit", r.returncode != 0 and "reconnecting" not in r.stderr, detail(r))

        # Retry: the server drops the connection every 3 messages.
        port = free_port()
        s = procs.start([py, server_py, "drop", str(port)], port)
        p = subprocess.Popen([wsx, "client", "--retry-count", "0", "--retry-interval", "0.1", "-v", f"ws://127.0.0.1:{port}/"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sent = [f"m{i}" for i in range(10)]
        for line in sent:
            p.stdin.write(line + "\n")
            p.stdin.flush()
            time.sleep(0.25)
        out, err = finish(p)
        got = out.splitlines()
        reconnects = [l for l in err.splitlines() if l.startswith("reconnecting in")]
        check("dropped every 3 messages: reconnects and echoes every line in order, exit 0",
              p.returncode == 0 and got == sent and len(reconnects) >= 3, f"rc={p.returncode} got={got} err={err[-300:]!r}")
        r = client(wsx, [f"ws://127.0.0.1:{port}/"], ["a", "b", "c", "d"])
        check("dropped without --retry-count: non-zero exit with a reason", r.returncode != 0 and "wsx:" in r.stderr, detail(r))
        procs.stop(s)

        # Retry: 1012 is retried, 1000 is not.
        port = free_port()
        s = procs.start([py, server_py, "restart", str(port)], port)
        p = subprocess.Popen([wsx, "client", "--retry-count", "2", "--retry-interval", "0.1", "-v", f"ws://127.0.0.1:{port}/"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stdin.write("one\n"); p.stdin.flush(); time.sleep(0.5)
        p.stdin.write("two\n"); p.stdin.flush(); time.sleep(0.3)
        out, err = finish(p)
        check("Close 1012 (restart): reconnected, the next line echoed",
              out.splitlines() == ["one", "two"] and "reconnecting in 0.1 s (attempt 1)" in err, f"out={out!r} err={err[-300:]!r}")
        procs.stop(s)
        port = free_port()
        s = procs.start([py, server_py, "done", str(port)], port)
        r = client(wsx, ["--retry-count", "2", "--retry-interval", "0.1", "-v", f"ws://127.0.0.1:{port}/"], ["only"])
        check("Close 1000 from the server: no retry, exit 0", r.returncode == 0 and r.stdout.splitlines() == ["only"]
              and "reconnecting" not in r.stderr, detail(r))
        procs.stop(s)

        # Redirects.
        echo = free_port()
        s = procs.start([py, server_py, "echo", str(echo)], echo)
        rport = free_port()
        rd = procs.start([py, redirector_py, str(rport), str(echo)], rport)
        for path, what in [("/301", "301 to an absolute ws:// URL"), ("/302-relative", "302 to a relative path, then 307 to http://"),
                           ("/308-path-relative/a", "308 to a path-relative reference"), ("/chain/10", "a chain of 10")]:
            r = client(wsx, ["-v", f"ws://127.0.0.1:{rport}{path}"], ["through"])
            check(f"redirect: {what} is followed", r.returncode == 0 and r.stdout.splitlines() == ["through"]
                  and f"connected ws://127.0.0.1:{echo}/" in r.stderr, detail(r))
        r = client(wsx, [f"ws://127.0.0.1:{rport}/chain/11"], ["x"])
        check("redirect: a chain of 11 is more than the default 10, refused naming the chain",
              r.returncode != 0 and "more than 10 redirects" in r.stderr and "/chain/11 -> " in r.stderr, detail(r))
        r = client(wsx, [f"ws://127.0.0.1:{rport}/loop-a"], ["x"])
        check("redirect: a loop is an error naming it", r.returncode != 0 and "redirect loop" in r.stderr
              and "/loop-a -> " in r.stderr and "/loop-b -> " in r.stderr, detail(r))
        r = client(wsx, ["--max-redirects", "0", f"ws://127.0.0.1:{rport}/301"], ["x"])
        check("redirect: --max-redirects 0 refuses", r.returncode != 0 and "maxRedirects is 0" in r.stderr, detail(r))
        tport = free_port()
        tr = procs.start([py, redirector_py, str(tport), str(echo), CERT, KEY], tport)
        r = client(wsx, ["--ca", CA, f"wss://localhost:{tport}/to-ws"], ["x"])
        check("redirect: wss -> ws is refused", r.returncode != 0 and "wss to ws" in r.stderr, detail(r))
        procs.stop(tr)
        procs.stop(rd)

        # Proxies: tinyproxy.
        pport = free_port()
        conf = os.path.join(tmp, "tinyproxy.conf")
        log = os.path.join(tmp, "tinyproxy.log")
        with open(conf, "w") as f:
            f.write(f"Port {pport}\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nMaxClients 20\nLogFile \"{log}\"\n"
                    f"LogLevel Connect\nBasicAuth ann s3cret\n")
        tp = procs.start(["tinyproxy", "-d", "-c", conf], pport)

        def proxied():
            return open(log).read().count("CONNECT") if os.path.exists(log) else 0

        before = proxied()
        r = client(wsx, ["--proxy", f"http://ann:s3cret@127.0.0.1:{pport}", f"ws://127.0.0.1:{echo}/"], ["via tinyproxy"])
        check("--proxy: ws:// through tinyproxy's CONNECT with Basic proxy credentials",
              r.returncode == 0 and r.stdout.splitlines() == ["via tinyproxy"] and proxied() > before, detail(r))
        r = client(wsx, ["--proxy", f"http://127.0.0.1:{pport}", f"ws://127.0.0.1:{echo}/"], ["x"])
        check("--proxy without credentials: tinyproxy's 407 is the reason", r.returncode != 0 and "407" in r.stderr, detail(r))
        before = proxied()
        r = client(wsx, [f"ws://127.0.0.1:{echo}/"], ["from http_proxy"], env={"http_proxy": f"http://ann:s3cret@127.0.0.1:{pport}"})
        check("http_proxy is used for ws://, loopback included", r.returncode == 0 and r.stdout.splitlines() == ["from http_proxy"]
              and proxied() > before, detail(r))
        dead = free_port()
        r = client(wsx, [f"ws://127.0.0.1:{echo}/"], ["x"], env={"http_proxy": f"http://127.0.0.1:{dead}"})
        check("http_proxy pointing nowhere: the connection fails (the variable is honoured)", r.returncode != 0, detail(r))
        for no_proxy in ["127.0.0.1", "localhost,127.0.0.0/8", "*", f"127.0.0.1:{echo}"]:
            r = client(wsx, [f"ws://127.0.0.1:{echo}/"], ["direct"], env={"http_proxy": f"http://127.0.0.1:{dead}", "no_proxy": no_proxy})
            check(f"no_proxy={no_proxy} bypasses the proxy", r.returncode == 0 and r.stdout.splitlines() == ["direct"], detail(r))
        r = client(wsx, [f"ws://127.0.0.1:{echo}/"], ["direct"], env={"https_proxy": f"http://127.0.0.1:{dead}"})
        check("https_proxy is not used for ws://", r.returncode == 0, detail(r))

        # wss:// through the tunnel: the target's certificate is verified.
        sport = free_port()
        ss = procs.start([py, server_py, "echo", str(sport), CERT, KEY], sport)
        before = proxied()
        r = client(wsx, ["--ca", CA, f"wss://localhost:{sport}/"], ["secure"], env={"https_proxy": f"http://ann:s3cret@127.0.0.1:{pport}"})
        check("https_proxy: wss:// through tinyproxy, the target's certificate verified with the test CA",
              r.returncode == 0 and r.stdout.splitlines() == ["secure"] and proxied() > before, detail(r))
        r = client(wsx, [f"wss://localhost:{sport}/"], ["x"], env={"https_proxy": f"http://ann:s3cret@127.0.0.1:{pport}"})
        check("wss:// through the tunnel without the test CA: refused (the target is verified, not the proxy)",
              r.returncode != 0 and ("certificate" in r.stderr or "SslError" in r.stderr), detail(r))
        procs.stop(ss)
        procs.stop(tp)
        procs.stop(s)
    finally:
        procs.stop_all()
    print(f"{len(failures)} failed" if failures else "all passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
