#!/usr/bin/env python3
"""Writes two permessage-deflate transcripts against node's `ws` 8.11 (Debian's node-ws), through
node_ws_bridge.js, which runs ws's own negotiation, Sender and Receiver (with node's bundled
zlib) without sockets:

- deflate-server-node-ws-client.json: ws's client offer and its compressed, masked frames, fed
  to our server; ws's receiver decodes the frames our server must send back.
- deflate-client-node-ws-server.json: ws's server answers our client's offer and sends
  compressed frames; ws's receiver decodes the frames our client must send.

    apt-get install -y nodejs node-ws && python3 Fixtures/interop/node_ws_deflate.py
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from deflate_common import MESSAGES, exchange_steps, g, our_frames, write  # noqa: E402


def bridge(request):
    out = subprocess.run(["node", os.path.join(HERE, "node_ws_bridge.js")], input=json.dumps(request).encode(),
                         capture_output=True, check=True, timeout=30).stdout
    return json.loads(out)


def as_messages(pairs):
    return [("binary" if binary else "text", bytes.fromhex(h)) for binary, h in pairs]


def to_send():
    return [[kind == "binary", data.hex()] for kind, data in MESSAGES]


def server_side():
    offer = "permessage-deflate; client_max_window_bits"  # what ws's client offers by default
    fields = [("Host", "127.0.0.1:9001"), ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", g.RFC_KEY),
              ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Extensions", offer)]
    request = g.head("GET /chat HTTP/1.1", fields)
    response_fields = g.answer_101(g.RFC_KEY, [("Sec-WebSocket-Extensions", "permessage-deflate")])
    answer = g.head("HTTP/1.1 101 Switching Protocols", response_fields)
    ours = our_frames(MESSAGES, 15)
    result = bridge({"role": "client", "response": "permessage-deflate", "send": to_send(), "receive": ours.hex()})
    assert result["error"] is None, result["error"]
    assert as_messages(result["messages"]) == MESSAGES, "ws did not decode our server's frames"
    frames = bytes.fromhex(result["frames"])
    steps = [
        {"receive": [{"utf8": request.decode()}]},
        {"expectEvents": [g.upgrade_requested("/chat", fields, extensions=[offer])]},
        {"accept": {}},
        {"expectOutbound": [{"utf8": answer.decode()}]},
        {"expectEvents": [g.opened("/chat", fields, response_fields, extensions=["permessage-deflate"])]},
    ] + exchange_steps(frames, MESSAGES, ours)
    write("deflate-server-node-ws-client.json", {
        "description": "node ws 8.11's client (its default offer; every message compressed by node's zlib, masked) to our server; "
                       "ws's receiver decoded the frames our server sends back",
        "role": "server", "handshake": {"extensions": [{"name": "permessage-deflate"}]}, "steps": steps})


def client_side():
    offer = "permessage-deflate; client_max_window_bits"
    fields, request = g.client_request([("Sec-WebSocket-Extensions", offer)], target="/chat", host="127.0.0.1:9001")
    keys = g.CLIENT_KEYS[4:] + g.CLIENT_KEYS
    ours = our_frames(MESSAGES, 15, mask_keys=[keys[i % len(keys)] for i in range(len(MESSAGES))])
    result = bridge({"role": "server", "offer": offer, "send": to_send(), "receive": ours.hex()})
    assert result["error"] is None, result["error"]
    assert as_messages(result["messages"]) == MESSAGES, "ws did not decode our client's frames"
    agreed = result["answer"]
    response_fields = g.answer_101(g.CLIENT_NONCE_KEY, [("Sec-WebSocket-Extensions", agreed)])
    steps = [
        {"expectOutbound": [{"utf8": request.decode()}]},
        {"receive": [{"utf8": g.head("HTTP/1.1 101 Switching Protocols", response_fields).decode()}]},
        {"expectEvents": [g.opened("/chat", fields, response_fields, scheme="ws", extensions=[agreed])]},
    ] + exchange_steps(bytes.fromhex(result["frames"]), MESSAGES, ours)
    write("deflate-client-node-ws-server.json", {
        "description": f"node ws 8.11's server answers our offer with \"{agreed}\" and sends messages compressed by node's zlib; "
                       "ws's receiver decoded our client's frames",
        "role": "client", "maskKeys": g.CLIENT_KEYS,
        "handshake": {"url": "ws://127.0.0.1:9001/chat", "extensions": [{"name": "permessage-deflate"}]}, "steps": steps})


if __name__ == "__main__":
    server_side()
    client_side()
    print("wrote 2 interop transcripts; node ws decoded our frames both ways")
