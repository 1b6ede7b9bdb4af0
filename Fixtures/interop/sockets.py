#!/usr/bin/env python3
"""Interop over real loopback sockets with other libraries, both directions, compression on.

- python-websockets (asyncio client), aiohttp (client) and node's `ws` (client) against
  `wsx echo-server`:
  text, binary, empty, a 200 KB compressible message, a 64 KB random one, fragments,
  ping/pong, and a clean close with 1000. libwebsockets' client (lws_peer.c) too, without the
  empty message and the ping, which lws 4.1's own deflate code cannot handle (see lws_peer.c).
- `wsx client` against python-websockets, node `ws`, aiohttp and libwebsockets echo servers.
- All of it twice: over ws://, then over wss:// (TLS, with the test PKI in Fixtures/tls).

    python3 Fixtures/interop/sockets.py [--wsx .build/release/wsx]

Needs `pip install websockets==17.4 aiohttp==3.14.5` and
`apt-get install nodejs node-ws libwebsockets-dev`.
Prints one line per check and exits non-zero if any fails. Loopback only; stops every process it starts.
"""
import argparse, asyncio, os, random, socket, ssl, subprocess, sys, tempfile, time

NODE_WS = "/usr/share/nodejs/ws"
PKI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tls")
CA, CERT, KEY = (os.path.join(PKI, f) for f in ("ca.pem", "server.pem", "server-key.pem"))
failures = []
scheme_now = "ws"


def check(name, ok, detail=""):
    name = f"{scheme_now}:// {name}"
    print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def messages():
    rnd = random.Random(7)
    return [
        "héllo wörld 👋",
        b"\x00\x01\x02\xff",
        "",
        ("swift-ws " * 25000),
        bytes(rnd.getrandbits(8) for _ in range(65536)),
    ]


async def python_client(url):
    from websockets.asyncio.client import connect
    context = ssl.create_default_context(cafile=CA) if url.startswith("wss") else None
    async with connect(url, compression="deflate", max_size=None, ssl=context) as ws:
        check("python-websockets client: permessage-deflate negotiated",
              "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions") or ""))
        for m in messages():
            await ws.send(m)
            got = await ws.recv()
            check(f"python-websockets client: echo of {type(m).__name__} of {len(m)}", got == m)
        await ws.send(iter(["frag", "mented ", "text"]))
        check("python-websockets client: fragmented message", await ws.recv() == "fragmented text")
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        check("python-websockets client: ping answered", True)
    check("python-websockets client: clean close 1000", ws.close_code == 1000, str(ws.close_code))


async def aiohttp_client(url):
    import aiohttp
    context = ssl.create_default_context(cafile=CA) if url.startswith("wss") else None
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, compress=15, max_msg_size=0, ssl=context, autoping=True) as ws:
            check("aiohttp client: permessage-deflate negotiated", ws.compress > 0, str(ws.compress))
            for m in messages():
                await (ws.send_str(m) if isinstance(m, str) else ws.send_bytes(m))
                got = await ws.receive(timeout=10)
                check(f"aiohttp client: echo of {type(m).__name__} of {len(m)}", got.data == m, str(got.type))
            await ws.ping(b"are you there")
            await ws.send_str("after ping")
            got = await ws.receive(timeout=10)
            check("aiohttp client: ping answered, stream goes on", got.data == "after ping", str(got.type))
            await ws.close(code=1000, message=b"bye")
        check("aiohttp client: clean close 1000", ws.close_code == 1000, str(ws.close_code))


NODE_CLIENT = r"""
const WebSocket = require(process.argv[2]);
const ca = process.argv[4] ? require('fs').readFileSync(process.argv[4]) : undefined;
const ws = new WebSocket(process.argv[3], { perMessageDeflate: true, ca });
const msgs = ["héllo wörld 👋", Buffer.from([0, 1, 2, 255]), "", "swift-ws ".repeat(25000)];
let i = 0; const out = [];
ws.on('open', () => { out.push('ext=' + ws.extensions); ws.send(msgs[0]); });
ws.on('message', (data, isBinary) => {
  const m = msgs[i];
  const same = isBinary ? Buffer.compare(data, m) === 0 : data.toString() === m;
  out.push('echo' + i + '=' + same);
  i++;
  if (i < msgs.length) ws.send(msgs[i]); else ws.close(1000, 'bye');
});
ws.on('close', (code) => { out.push('close=' + code); console.log(out.join(' ')); });
ws.on('error', (e) => { console.log('error ' + e.message); process.exit(1); });
"""

NODE_SERVER = r"""
const WebSocket = require(process.argv[2]);
const fs = require('fs');
let wss;
if (process.argv[4]) {   // TLS: certificate and key
  const server = require('https').createServer({ cert: fs.readFileSync(process.argv[4]), key: fs.readFileSync(process.argv[5]) });
  wss = new WebSocket.Server({ server, perMessageDeflate: true });
  server.listen(+process.argv[3], '127.0.0.1');
} else {
  wss = new WebSocket.Server({ host: '127.0.0.1', port: +process.argv[3], perMessageDeflate: true });
}
wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d, { binary: isBinary })));
"""


def node_client(url, tmp):
    script = os.path.join(tmp, "client.js")
    open(script, "w").write(NODE_CLIENT)
    argv = ["node", script, NODE_WS, url] + ([CA] if url.startswith("wss") else [])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    check("node ws client: permessage-deflate negotiated", "ext=permessage-deflate" in out, out)
    check("node ws client: 4 echoes", all(f"echo{i}=true" in out for i in range(4)), out)
    check("node ws client: clean close 1000", "close=1000" in out, out)


def start_echo(wsx, tls, *options):
    """Starts `wsx echo-server` on a free port (TLS with the test PKI when `tls`) and waits
    for it to listen; returns the process and the port."""
    port = free_port()
    argv = [wsx, "echo-server", "--port", str(port), "--loops", "1", *options]
    if tls:
        argv += ["--tls-certificate", CERT, "--tls-key", KEY]
    echo = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    if not wait_port(port):
        echo.terminate()
        raise SystemExit("wsx echo-server did not start")
    return echo, port


def build_lws_peer(tmp):
    """Compiles lws_peer.c (beside this script) against Debian's libwebsockets-dev."""
    binary = os.path.join(tmp, "lws_peer")
    if not os.path.exists(binary):
        source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lws_peer.c")
        subprocess.run(["cc", "-O2", "-o", binary, source, "-lwebsockets"], check=True)
    return binary


def lws_client(wsx, tmp, tls):
    # Default settings: every message is compressed by default. (lws 4.1's client loops forever
    # on an uncompressed message in a deflate session, libwebsockets issue #2794, which RFC 7692
    # §6.1 allows: our default compressed messages under 64 bytes not, until 2026-12-05.)
    echo, port = start_echo(wsx, tls, "--subprotocol", "chat")
    try:
        host = "localhost" if tls else "127.0.0.1"
        r = subprocess.run([build_lws_peer(tmp), "client", host, str(port)] + ([CA] if tls else []),
                           capture_output=True, text=True, timeout=30)
        out = r.stdout.strip()
        check("libwebsockets client: permessage-deflate negotiated", "ext=permessage-deflate" in out, out)
        check("libwebsockets client: subprotocol chat", "protocol=chat " in out, out)
        check("libwebsockets client: 4 echoes", "echoes=4 " in out, out)
        check("libwebsockets client: our Close sent, connection ended", r.returncode == 0 and "close=sent" in out,
              f"rc={r.returncode} {out}")
    finally:
        echo.terminate()
        echo.wait(10)


def wsx_client_against(name, argv, port, wsx, tls):
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_port(port):
            check(f"wsx client vs {name}: server started", False)
            return
        # 100 KB in one line: each server echoes it as one frame, read with the default limits.
        lines = ["hello", "wörld 👋", "x" * 10000, "y" * 100_000, "last"]
        url = f"wss://localhost:{port}/" if tls else f"ws://127.0.0.1:{port}/"
        r = subprocess.run([wsx, "client"] + (["--ca-file", CA] if tls else []) + [url], input="\n".join(lines) + "\n",
                           capture_output=True, text=True, timeout=30)
        check(f"wsx client vs {name}: echoes printed, exit 0", r.returncode == 0 and r.stdout.splitlines() == lines,
              f"rc={r.returncode} out={r.stdout[:200]!r} err={r.stderr[:200]!r}")
    finally:
        server.terminate()
        server.wait(10)


PY_SERVER = """
import asyncio, ssl, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for m in ws: await ws.send(m)
async def main():
    context = None
    if len(sys.argv) > 2:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
    async with serve(echo, '127.0.0.1', int(sys.argv[1]), compression='deflate', ssl=context):
        await asyncio.Future()
asyncio.run(main())
"""


AIOHTTP_SERVER = """
import ssl, sys
from aiohttp import web, WSMsgType
async def echo(request):
    ws = web.WebSocketResponse(compress=True, max_msg_size=0)
    await ws.prepare(request)
    async for m in ws:
        if m.type == WSMsgType.TEXT: await ws.send_str(m.data)
        elif m.type == WSMsgType.BINARY: await ws.send_bytes(m.data)
    return ws
app = web.Application()
app.router.add_get('/', echo)
context = None
if len(sys.argv) > 2:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[2], sys.argv[3])
web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), ssl_context=context, print=None)
"""


def run_all(wsx, tmp, tls):
    global scheme_now
    before = len(failures)
    scheme = scheme_now = "wss" if tls else "ws"
    server_tls = [CERT, KEY] if tls else []
    echo, port = start_echo(wsx, tls)
    try:
        asyncio.run(python_client(f"{scheme}://localhost:{port}/"))
        asyncio.run(aiohttp_client(f"{scheme}://localhost:{port}/"))
        node_client(f"{scheme}://localhost:{port}/", tmp)
    finally:
        echo.terminate()
        echo.wait(10)
    lws_client(wsx, tmp, tls)
    p2 = free_port()
    pyserver = os.path.join(tmp, "pyserver.py")
    open(pyserver, "w").write(PY_SERVER)
    wsx_client_against("python-websockets server", [sys.executable, pyserver, str(p2)] + server_tls, p2, wsx, tls)
    p3 = free_port()
    nodeserver = os.path.join(tmp, "server.js")
    open(nodeserver, "w").write(NODE_SERVER)
    wsx_client_against("node ws server", ["node", nodeserver, NODE_WS, str(p3)] + server_tls, p3, wsx, tls)
    p4 = free_port()
    aioserver = os.path.join(tmp, "aioserver.py")
    open(aioserver, "w").write(AIOHTTP_SERVER)
    wsx_client_against("aiohttp server", [sys.executable, aioserver, str(p4)] + server_tls, p4, wsx, tls)
    p5 = free_port()
    wsx_client_against("libwebsockets server", [build_lws_peer(tmp), "server", str(p5)] + server_tls, p5, wsx, tls)
    print(f"-- {scheme}://: {len(failures) - before} failed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wsx", default=".build/release/wsx")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for tls in (False, True):
            run_all(a.wsx, tmp, tls)
    print(f"{len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
