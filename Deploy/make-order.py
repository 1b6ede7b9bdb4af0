#!/usr/bin/env python3
"""Regenerates Deploy/symbols.order, the symbol order of the static build (Deploy/static-build.sh).

The kernel maps a program's code 64 KiB at a time around each page it touches, so a server whose
start-up and echo path run a few hundred KiB of functions spread over 15 MB of statically linked
code keeps megabytes of it resident. Linked in the order written here (lld's
--symbol-ordering-file), the functions that ran are adjacent and the rest stays on disk.

It builds both programs statically without an order, runs each server under callgrind
(instructions per address), drives it with its own client over loopback (handshakes with and
without permessage-deflate, text and binary echoes, a close), and writes every function that
ran, the busiest first, so that the message path shares the fewest pages. Code without a symbol
(functions of private linkage) cannot be named, and stays where the linker puts it.

    Deploy/make-order.py            (needs valgrind)

Stops only what it starts. Takes a few minutes.
"""
import bisect, collections, os, re, shutil, signal, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = os.path.join(root, ".build-static-profile")
subprocess.run([os.path.join(root, "Deploy", "static-build.sh"), "--no-order", "--build-path", build], check=True)
client = os.path.join(build, "release", "wsx")
work = tempfile.mkdtemp()

def profile(product, args, path):
    """Instructions per function of `product` (not valgrind's) while it serves `args`."""
    binary = os.path.join(build, "release", product)
    stripped = os.path.join(work, product)
    shutil.copy(binary, stripped)
    subprocess.run(["strip", "-g", stripped], check=True)   # valgrind cannot read Swift 6.3's debug info
    port = 9500 + os.getpid() % 400
    out = os.path.join(work, "callgrind.out")
    log = os.path.join(work, "log")
    with open(log, "w") as stdout:
        server = subprocess.Popen(["valgrind", "--tool=callgrind", "--dump-instr=yes", "--callgrind-out-file=" + out,
                                   stripped, *args, "--port", str(port), "--loops", "1"],
                                  stdout=stdout, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while "listening" not in open(log).read():
            if time.time() > deadline or server.poll() is not None:
                sys.exit("the server did not start under valgrind")
            time.sleep(0.5)
        url = f"ws://127.0.0.1:{port}{path}"
        lines = "".join(f"message {i} " + "x" * (i * 37 % 300) + "\n" for i in range(200))
        for flags in ([], ["--no-compression"]):
            subprocess.run([client, "client", *flags, "--linger", "1", url], input=lines, text=True,
                           stdout=subprocess.DEVNULL, check=True, timeout=120)
        for api in ("raw", "async"):
            subprocess.run([client, "client-load", "--api", api, "--seconds", "2", "--in-flight", "4", url],
                           stdout=subprocess.DEVNULL, check=True, timeout=120)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
    # callgrind's compressed format: names are given once as "(n) name", then "(n)"; positions
    # are absolute or relative to the line before.
    cost = collections.Counter()
    names, ob, last, skip = {}, "", 0, False
    for line in open(out):
        if line.startswith(("ob=", "cob=")):
            m = re.match(r"c?ob=\((\d+)\)\s*(.*)", line.strip())
            if m and m.group(2):
                names[m.group(1)] = m.group(2)
            if line.startswith("ob=") and m:
                ob = names.get(m.group(1), "")
            continue
        if line.startswith("calls="):
            skip = True
            continue
        m = re.match(r"^(0x[0-9a-f]+|\+\d+|-\d+|\*)\s+\S+\s+(\d+)", line)
        if not m:
            continue
        p = m.group(1)
        last = int(p, 16) if p.startswith("0x") else last + int(p[1:]) if p[0] == "+" else last - int(p[1:]) if p[0] == "-" else last
        if skip:
            skip = False   # a call's inclusive cost: counted where the callee ran
            continue
        if ob.endswith("/" + product):
            cost[last] += int(m.group(2))
    symbols = []
    for line in subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            symbols.append((int(parts[0], 16), parts[2]))
    symbols.sort()
    starts = [a for a, _ in symbols]
    ran = collections.Counter()
    for address, n in cost.items():
        i = bisect.bisect_right(starts, address) - 1
        if i >= 0:
            ran[symbols[i][1]] += n
    return ran

ran = collections.Counter()
try:
    for product, args, path in [("wsx", ["echo-server"], "/"), ("wsx", ["echo-server", "--api", "service"], "/"),
                                ("service-tour", [], "/echo")]:
        ran.update(profile(product, args, path))
finally:
    shutil.rmtree(work)
target = os.path.join(root, "Deploy", "symbols.order")
with open(target, "w") as f:
    f.write("# The functions that ran in wsx echo-server (both APIs) and service-tour, at start-up and on the\n")
    f.write("# echo path, busiest first. Generated by Deploy/make-order.py; used by Deploy/static-build.sh.\n")
    # Busiest first by powers of two, then by name: a profile taken again lists nearly the same
    # functions in nearly the same order (rates on a shared machine vary from run to run).
    for name in sorted(ran, key=lambda name: (-ran[name].bit_length(), name)):
        f.write(name + "\n")
print(f"{target}: {len(ran)} functions")
