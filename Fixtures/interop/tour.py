#!/usr/bin/env python3
"""The service tour (README, "Services") checked by a real peer: python-websockets drives every
row against `service-tour`, then stops it with SIGTERM and checks the Close 1001 and exit
status 0.

    python3 Fixtures/interop/tour.py [--tour .build/release/service-tour]

Needs `pip install websockets==17.4`. Prints one line per check and exits non-zero if any
fails. Loopback only; stops the process it starts.
"""
import argparse, asyncio, json, os, signal, subprocess, sys, time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(name)


async def closed(ws):
    """Reads until the connection ends; the Close the server sent."""
    try:
        while True:
            await ws.recv()
    except ConnectionClosed as e:
        return e.rcvd


async def pong_payload(ws, payload):
    """Sends a Ping and returns the payload of the next Pong (whatever it carries)."""
    got = asyncio.get_running_loop().create_future()
    original = ws.protocol.events_received

    def events_received():
        for event in original():
            if event.opcode.name == "PONG" and not got.done():
                got.set_result(bytes(event.data))
            yield event

    ws.protocol.events_received = events_received
    await ws.protocol_send_ping(payload) if hasattr(ws, "protocol_send_ping") else ws.protocol.send_ping(payload)
    ws.send_data()
    try:
        return await asyncio.wait_for(got, 5)
    finally:
        ws.protocol.events_received = original


async def tour(base):
    async with connect(base + "/echo", max_size=None) as ws:
        await ws.send("hello")
        check("/echo text", await ws.recv() == "hello")
        await ws.send(b"\x00\xff")
        check("/echo binary", await ws.recv() == b"\x00\xff")
        big = os.urandom(1 << 20)
        await ws.send(big)
        check("/echo 1 MiB", await ws.recv() == big)
        await ws.send(["frag", "mented"])
        check("/echo fragmented", await ws.recv() == "fragmented")

    async with connect(base + "/orders") as ws:
        await ws.send(json.dumps({"id": 1, "item": "tea", "quantity": 2}))
        reply = json.loads(await ws.recv())
        check("/orders text", reply == {"id": 1, "item": "tea", "quantity": 2, "status": "accepted"}, reply)
        await ws.send(json.dumps({"id": 2, "item": "cup", "quantity": 1}).encode())
        reply = await ws.recv()
        check("/orders binary JSON -> text", isinstance(reply, str) and json.loads(reply)["status"] == "accepted", reply)
        await ws.send('{"id": "x"}')
        code = (await closed(ws)).code
        check("/orders unbound -> 1003", code == 1003, code)
    async with connect(base + "/orders") as ws:
        await ws.send("not json")
        code = (await closed(ws)).code
        check("/orders not JSON -> 1003", code == 1003, code)

    async with connect(base + "/events") as ws:
        async def ask(message):
            await ws.send(json.dumps(message))
            return json.loads(await ws.recv())
        for message, want in [
            ({"event": "heartbeat"}, {"event": "heartbeat", "status": "alive"}),
            ({"event": "heartbeat", "id": "7"}, {"event": "heartbeat", "status": "alive", "id": "7"}),
            ({"event": "subscribe", "topic": "news", "id": 5}, {"event": "subscribed", "topic": "news", "id": 5}),
            ({"event": "subscribe", "topic": 5}, {"event": "error", "on": "subscribe"}),
            ({"event": "un subscribe", "topic": "news"}, {"event": "unsubscribed", "topic": "news"}),
            ({"event": "nope", "id": 9}, {"event": "unhandled", "id": 9}),
            ({"topic": "news"}, {"event": "unhandled"}),
        ]:
            got = await ask(message)
            check(f"/events {json.dumps(message)}", got == want, got)

    async with connect(base + "/ping") as ws:
        payload = await pong_payload(ws, b"abc")
        check("/ping Ping abc -> Pong re:abc", payload == b"re:abc", payload)
        await ws.pong(b"1")
        await ws.pong(b"2")
        await ws.send("pongs")
        got = await ws.recv()
        check("/ping two Pongs counted", got == "2", got)
    async with connect(base + "/auto") as ws:
        payload = await pong_payload(ws, b"abc")
        check("/auto automatic Pong", payload == b"abc", payload)

    async with connect(base + "/idle") as silent, connect(base + "/idle") as talker:
        start = time.monotonic()
        for i in range(6):
            await asyncio.sleep(0.25)
            await talker.send(f"t{i}")
            assert await talker.recv() == f"t{i}"
        rcvd = await closed(silent)
        check("/idle silence -> Close 1000 idle", rcvd.code == 1000 and rcvd.reason == "idle" and time.monotonic() - start >= 0.9, rcvd)
        await talker.send("still")
        check("/idle talker stays", await talker.recv() == "still")

    for token, want in (("letmein", 101), ("forbidden", 403), ("other", 401)):
        try:
            async with connect(base + "/guarded?token=" + token):
                status = 101
        except InvalidStatus as e:
            status = e.response.status_code
            if want == 401 and e.response.headers.get("WWW-Authenticate") != 'Bearer realm="tour"':
                status = "401 without WWW-Authenticate"
        check(f"/guarded token={token} -> {want}", status == want, status)

    for offer, want in ((["v1.chat", "v2.chat"], "v2.chat"), (["v1.chat"], "v1.chat"), (["other"], None)):
        async with connect(base + "/chat", subprotocols=offer) as ws:
            check(f"/chat {offer} -> {want}", ws.subprotocol == want, ws.subprotocol)

    async with connect(base + "/small") as ws:
        await ws.send(os.urandom(1024))
        check("/small 1024-byte frame echoed", len(await ws.recv()) == 1024)
        await ws.send(os.urandom(1025))
        code = (await closed(ws)).code
        check("/small 1025-byte frame -> 1009", code == 1009, code)

    async with connect(base + "/attrs") as a, connect(base + "/attrs") as b:
        counts = []
        for _ in range(3):
            await a.send("x")
            counts.append(await a.recv())
        check("/attrs counts", counts == ["count=1", "count=2", "count=3"], counts)
        await a.send("id")
        await b.send("id")
        ia, ib = await a.recv(), await b.recv()
        check("/attrs ids differ", ia and ib and ia != ib, (ia, ib))

    async with connect(base + "/slow") as ws:
        for i in range(200):
            await ws.send(str(i))
        got = [await ws.recv() for _ in range(200)]
        check("/slow 200 in order", got == [str(i) for i in range(200)])

    async with connect(base + "/ticker") as ws:
        got = []
        try:
            while True:
                got.append(await ws.recv())
        except ConnectionClosed as e:
            ok = got == [f"tick {i}" for i in range(1, 6)] and e.rcvd.code == 1000 and e.rcvd.reason == "done"
            check("/ticker five ticks then 1000 done", ok, (got, e.rcvd))

    try:
        async with connect(base + "/nowhere"):
            status = 101
    except InvalidStatus as e:
        status = e.response.status_code
    check("unknown path -> 404", status == 404, status)


async def graceful(base, process):
    async with connect(base + "/echo") as ws:
        process.send_signal(signal.SIGTERM)
        rcvd = await closed(ws)
        check("SIGTERM -> Close 1001", rcvd is not None and rcvd.code == 1001, rcvd)
    code = await asyncio.get_running_loop().run_in_executor(None, lambda: process.wait(timeout=15))
    check("SIGTERM -> exit status 0", code == 0, code)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tour", default=".build/release/service-tour")
    args = parser.parse_args()
    process = subprocess.Popen([args.tour, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()
        check("prints its listening line", line.startswith("service-tour listening on ws://127.0.0.1:"), line)
        base = line.split()[-1].rstrip("/")
        asyncio.run(asyncio.wait_for(tour(base), 120))
        asyncio.run(graceful(base, process))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    print(f"{len(failures) == 0 and 'all' or len(failures)} {'checks passed' if not failures else 'failed'}")
    sys.exit(1 if failures else 0)


main()
