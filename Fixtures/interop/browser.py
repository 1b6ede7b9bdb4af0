#!/usr/bin/env python3
"""Interop with a real browser: headless Chromium's WebSocket against `wsx echo-server`.

The page (served from loopback by this script) opens a WebSocket to the echo server over ws://
and wss://, with and without permessage-deflate on the server, offering subprotocols. It sends
text (with multi-byte characters), binary, an empty message, a 300 KB compressible text and a
64 KB random binary, checks every echo byte for byte, closes with 1000 and a reason, and posts
what it saw back to this script, which checks:

- the negotiated extension (Chromium offers `permessage-deflate; client_max_window_bits`) and
  subprotocol (`ws.protocol`);
- every echo;
- the close event: code 1000 (the server echoes the code, RFC 6455 §5.5.1), `wasClean`.

    python3 Fixtures/interop/browser.py [--wsx .build/release/wsx] [--chromium chromium]

Needs `apt-get install chromium`. Prints one line per check and exits non-zero if any fails.
Loopback only; stops every process it starts. wss:// uses the test PKI in Fixtures/tls with
Chromium's `--ignore-certificate-errors` (a fresh profile has no way to trust a private CA
without NSS tools); the TLS handshake and records are still real.
"""
import argparse, http.server, json, os, queue, subprocess, sys, tempfile, threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sockets as common  # noqa: E402  (check, start_echo)

PAGE = r"""<!doctype html><meta charset="utf-8"><title>swift-ws browser interop</title>
<script>
const params = new URLSearchParams(location.search);
const rnd = (n, seed) => { const a = new Uint8Array(n); let x = seed; for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; a[i] = x >>> 24; } return a; };
const messages = ["héllo wörld 👋", new Uint8Array([0, 1, 2, 255]), "", "swift-ws ".repeat(33000), rnd(65536, 7)];
const same = (a, b) => {
  if (typeof a === "string") return a === b;
  if (!(b instanceof ArrayBuffer)) return false;
  const v = new Uint8Array(b);
  return v.length === a.length && v.every((x, i) => x === a[i]);
};
function run(url) {
  return new Promise((resolve) => {
    const seen = { url, echoes: [] };
    const ws = new WebSocket(url, ["unknown-protocol", "chat"]);
    ws.binaryType = "arraybuffer";
    let i = 0;
    const timer = setTimeout(() => { seen.error = "timeout"; resolve(seen); }, 20000);
    ws.onopen = () => { seen.extensions = ws.extensions; seen.protocol = ws.protocol; ws.send(messages[0]); };
    ws.onmessage = (e) => {
      seen.echoes.push(same(messages[i], e.data));
      i++;
      if (i < messages.length) ws.send(messages[i]); else ws.close(1000, "done, thank you");
    };
    ws.onerror = () => { seen.error = "error event"; };
    ws.onclose = (e) => {
      clearTimeout(timer);
      Object.assign(seen, { code: e.code, reason: e.reason, wasClean: e.wasClean });
      resolve(seen);
    };
  });
}
(async () => {
  const results = [];
  for (const url of params.getAll("url")) results.push(await run(url));
  await fetch("/result", { method: "POST", body: JSON.stringify(results) });
})();
</script>
"""


def serve_page(results):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", 0))
            results.put(json.loads(self.rfile.read(n)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wsx", default=".build/release/wsx")
    ap.add_argument("--chromium", default="chromium")
    a = ap.parse_args()
    servers, urls = [], {}
    results = queue.Queue()
    httpd = serve_page(results)
    try:
        for tls in (False, True):
            for compression in (True, False):
                process, port = common.start_echo(a.wsx, tls, "--subprotocol", "chat",
                                                  *([] if compression else ["--no-compression"]))
                servers.append(process)
                urls[f"{'wss://localhost' if tls else 'ws://127.0.0.1'}:{port}/echo"] = (tls, compression)
        query = "&".join("url=" + u for u in urls)
        page = f"http://127.0.0.1:{httpd.server_address[1]}/?{query}"
        with tempfile.TemporaryDirectory() as profile:
            browser = subprocess.Popen(
                [a.chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--ignore-certificate-errors", f"--user-data-dir={profile}", page],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                seen = results.get(timeout=90)
            except queue.Empty:
                seen = []
                common.check("chromium reported its results", False, "no report within 90 s")
            finally:
                browser.terminate()
                try:
                    browser.wait(10)
                except subprocess.TimeoutExpired:
                    browser.kill()
        for r in seen:
            tls, compression = urls[r["url"]]
            common.scheme_now = "wss" if tls else "ws"
            name = f"chromium, compression {'on' if compression else 'off'}"
            common.check(f"{name}: no error", "error" not in r, r.get("error", ""))
            extensions = r.get("extensions", "")
            common.check(f"{name}: extension " + ("permessage-deflate negotiated" if compression else "none"),
                         extensions.startswith("permessage-deflate") if compression else extensions == "",
                         repr(extensions))
            common.check(f"{name}: subprotocol chat chosen from two offered", r.get("protocol") == "chat",
                         repr(r.get("protocol")))
            common.check(f"{name}: 5 echoes byte for byte", r.get("echoes") == [True] * 5, str(r.get("echoes")))
            common.check(f"{name}: clean close 1000", r.get("code") == 1000 and r.get("wasClean") is True,
                         f"code={r.get('code')} clean={r.get('wasClean')} reason={r.get('reason')!r}")
        if seen and len(seen) != len(urls):
            common.check("chromium ran every connection", False, f"{len(seen)} of {len(urls)}")
    finally:
        httpd.shutdown()
        for process in servers:
            process.terminate()
            process.wait(10)
    print(f"{len(common.failures)} failed")
    sys.exit(1 if common.failures else 0)


if __name__ == "__main__":
    main()
