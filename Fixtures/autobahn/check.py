#!/usr/bin/env python3
"""Runs the Autobahn TestSuite (the kosoku engine) against wsx, as server and as client, and
compares the verdicts with the accepted ones in this folder.

    python3 Fixtures/autobahn/check.py [--cases '1.*,2.*'] [--wsx .build/release/wsx]
    python3 Fixtures/autobahn/check.py --accept        # store this run's verdicts as accepted
    python3 Fixtures/autobahn/check.py --import-report server REPORT_DIR   # or a full run's report

A case fails the check when its verdict is FAILED (behaviour FAILED or ERROR, or a close
behaviour other than OK/INFORMATIONAL), or when it is worse than the accepted verdict for that
case. NON-STRICT vs OK on timing-sensitive cases is reported but is not a failure.
kosoku comes from PyPI (`pip install kosoku==0.1.0`); set KOSOKU to its script, or the script
makes a virtual environment under /tmp. Loopback only; every process started is stopped.

wsx runs with its default compression (every message compressed; kosoku 0.1.0 fails a case
with a Python error, "Strings must be encoded before hashing", when a peer sends a short message
uncompressed inside a permessage-deflate session, which RFC 7692 allows and which wsx did by
default for messages under 64 bytes until 2026-12-05) and, as a server, with `--testee` (the
suite's 16 MiB messages, no keepalive pings).
"""
import argparse, json, os, socket, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
RANK = {"OK": 0, "NON-STRICT": 1, "INFORMATIONAL": 1, "UNIMPLEMENTED": 2, "FAILED": 3, "ERROR": 3}
CI_CASES = "1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.1.1,12.1.5,12.2.10,12.3.3,12.4.7,12.5.18,13.1.1,13.3.5,13.4.3,13.7.9"


def kosoku():
    if os.environ.get("KOSOKU"):
        return os.environ["KOSOKU"]
    venv = os.path.join(tempfile.gettempdir(), "swift-ws-kosoku")
    script = os.path.join(venv, "bin", "kosoku")
    if not os.path.exists(script):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "kosoku==0.1.0"], check=True)
    return script


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def include_flags(cases):
    flags = []
    for c in filter(None, (c.strip() for c in cases.split(","))):
        flags += ["-i", c]
    return flags


def verdict(result):
    """A case's verdict: its behaviour, or FAILED when the closing behaviour failed."""
    if result["behavior"] in ("FAILED", "ERROR"):
        return result["behavior"]
    if result["behaviorClose"] not in ("OK", "INFORMATIONAL"):
        return "FAILED"
    return result["behavior"]


def accepted_path(role):
    """Accepted verdicts: one `case verdict` line per case (plain text, so the fixture
    transcript loader, which reads every JSON file under Fixtures/, leaves it alone)."""
    return os.path.join(HERE, f"{role}-kosoku.txt")


def load_accepted(role):
    path = accepted_path(role)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return dict(line.split() for line in f if line.strip())


def store(role, got):
    with open(accepted_path(role), "w") as f:
        for case, verdict in sorted(got.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
            f.write(f"{case} {verdict}\n")


def verdicts(outdir):
    with open(os.path.join(outdir, "index.json")) as f:
        index = json.load(f)
    agent = index.get("swift-ws") or next(iter(index.values()))
    return {case: verdict(result) for case, result in agent.items()}


def run_server(ko, wsx, cases, outdir):
    port = free_port()
    server = subprocess.Popen([wsx, "echo-server", "--testee", "--port", str(port), "--loops", "1"], stdout=subprocess.DEVNULL)
    try:
        if not wait_port(port):
            raise SystemExit("wsx echo-server did not start")
        subprocess.run([ko, "-m", "fuzzingclient", "-p", "2", "-o", outdir] + include_flags(cases) + [f"ws://127.0.0.1:{port}"],
                       check=True, stdout=subprocess.DEVNULL, timeout=1800)
    finally:
        server.terminate()
        server.wait(10)
    return verdicts(outdir)


def run_client(ko, wsx, cases, outdir):
    port = free_port()
    fuzzer = subprocess.Popen([ko, "-m", "fuzzingserver", "-o", outdir] + include_flags(cases) + [f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL)
    try:
        if not wait_port(port):
            raise SystemExit("kosoku fuzzing server did not start")
        subprocess.run([wsx, "autobahn-client", "--url", f"ws://127.0.0.1:{port}", "--agent", "swift-ws"],
                       check=True, stdout=subprocess.DEVNULL, timeout=1800)
        fuzzer.wait(120)
    finally:
        if fuzzer.poll() is None:
            fuzzer.terminate()
            fuzzer.wait(10)
    return verdicts(outdir)


def compare(role, got, accepted):
    failures = []
    for case, verdict in sorted(got.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
        before = accepted.get(case)
        if verdict in ("FAILED", "ERROR"):
            failures.append(f"{role} {case}: {verdict}")
        elif before is not None and RANK[verdict] > RANK[before] and RANK[verdict] >= 2:
            failures.append(f"{role} {case}: {verdict}, accepted {before}")
        elif before is not None and verdict != before:
            print(f"note: {role} {case}: {verdict} (accepted {before}; timing-dependent)")
    counts = {}
    for v in got.values():
        counts[v] = counts.get(v, 0) + 1
    print(f"autobahn {role}: {len(got)} cases, " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=CI_CASES)
    ap.add_argument("--wsx", default=".build/release/wsx")
    ap.add_argument("--accept", action="store_true", help="store the verdicts of this run as accepted")
    ap.add_argument("--roles", default="server,client")
    ap.add_argument("--import-report", nargs=2, metavar=("ROLE", "REPORT_DIR"),
                    help="store the verdicts of a report made by the commands in CONFORMANCE.md as accepted")
    a = ap.parse_args()
    if a.import_report:
        role, outdir = a.import_report
        got = verdicts(outdir)
        compare(role, got, {})
        store(role, got)
        return
    ko = kosoku()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for role in a.roles.split(","):
            got = (run_server if role == "server" else run_client)(ko, a.wsx, a.cases, os.path.join(tmp, role))
            failures += compare(role, got, load_accepted(role))
            if a.accept:
                store(role, got)
    for f in failures:
        print("FAIL", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
