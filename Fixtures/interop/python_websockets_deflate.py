#!/usr/bin/env python3
"""Writes two permessage-deflate transcripts against python-websockets (17.4), using its sans-I/O
ClientProtocol and ServerProtocol with their default permessage-deflate settings:

- deflate-server-python-websockets-client.json: its client's request and compressed frames, fed
  to our server; the bytes our server must send back are checked here by that same client,
  which must decode every message.
- deflate-client-python-websockets-server.json: our client's request (its offer) answered by its
  server (which limits both windows to 12 bits); its compressed frames fed to our client; the
  frames our client must send are decoded here by that server.

    pip install websockets==17.4 && python3 Fixtures/interop/python_websockets_deflate.py

The expected bytes of our side are computed with Python's zlib at our default settings (level 6,
memLevel 8), which is the same library our engine calls; the peer then decodes them.
"""
import base64
import os
import sys

import websockets
import websockets.client
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import enable_client_permessage_deflate, enable_server_permessage_deflate
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from deflate_common import JSON, MESSAGES, exchange_steps, g, our_frames, write  # noqa: E402

assert websockets.__version__ == "17.4", websockets.__version__


def received(protocol):
    got = []
    for event in protocol.events_received():
        if isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.BINARY):
            got.append(("text" if event.opcode == Opcode.TEXT else "binary", bytes(event.data)))
    return got


def server_side():
    websockets.client.generate_key = lambda: "dGhlIHNhbXBsZSBub25jZQ=="
    client = ClientProtocol(parse_uri("ws://127.0.0.1:9001/chat"), extensions=enable_client_permessage_deflate(None))
    client.send_request(client.connect())
    request = b"".join(client.data_to_send())
    answer = g.head("HTTP/1.1 101 Switching Protocols", g.answer_101(g.RFC_KEY, [("Sec-WebSocket-Extensions", "permessage-deflate")]))
    client.receive_data(answer)
    assert client.state.name == "OPEN", client.state
    for kind, data in MESSAGES:
        (client.send_text if kind == "text" else client.send_binary)(data)
    client.send_text(b"frag", fin=False)
    client.send_continuation(b"mented " + JSON[:200], fin=True)
    frames = b"".join(client.data_to_send())

    ours = our_frames(MESSAGES, 15)
    client.receive_data(ours)
    assert received(client) == MESSAGES, "python-websockets did not decode our frames"

    request_fields = [tuple(line.split(": ", 1)) for line in request.decode().split("\r\n")[1:] if line]
    steps = [
        {"receive": [{"utf8": request.decode()}]},
        {"expectEvents": [g.upgrade_requested("/chat", request_fields, extensions=["permessage-deflate; client_max_window_bits"])]},
        {"accept": {}},
        {"expectOutbound": [{"utf8": answer.decode()}]},
        {"expectEvents": [g.opened("/chat", request_fields, g.answer_101(g.RFC_KEY, [("Sec-WebSocket-Extensions", "permessage-deflate")]),
                                   extensions=["permessage-deflate"])]},
    ] + exchange_steps(frames, MESSAGES + [("text", b"fragmented " + JSON[:200])], ours)
    write("deflate-server-python-websockets-client.json", {
        "description": "python-websockets 17.4's client (default permessage-deflate offer) sends compressed messages, one fragmented; "
                       "our server's compressed answers were decoded by that client",
        "role": "server", "handshake": {"extensions": [{"name": "permessage-deflate"}]}, "steps": steps})


def client_side():
    nonce = b"".join(bytes.fromhex(k) for k in g.CLIENT_KEYS[:4])
    key = base64.b64encode(nonce).decode()
    fields, request = g.client_request([("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")],
                                       target="/chat", host="127.0.0.1:9001")
    server = ServerProtocol(extensions=enable_server_permessage_deflate(None))
    server.receive_data(request)
    [handshake] = server.events_received()
    response = server.accept(handshake)
    response.headers["Date"] = "Sun, 22 Nov 2026 00:00:00 GMT"
    server.send_response(response)
    answer = b"".join(server.data_to_send())
    agreed = response.headers["Sec-WebSocket-Extensions"]
    assert agreed == "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12", agreed
    for kind, data in MESSAGES:
        (server.send_text if kind == "text" else server.send_binary)(data)
    frames = b"".join(server.data_to_send())

    keys = g.CLIENT_KEYS[4:] + g.CLIENT_KEYS  # the handshake nonce used the first four
    ours = our_frames(MESSAGES, 12, mask_keys=[keys[i % len(keys)] for i in range(len(MESSAGES))])
    server.receive_data(ours)
    assert received(server) == MESSAGES, "python-websockets did not decode our client's frames"

    response_fields = [tuple(line.split(": ", 1)) for line in answer.decode().split("\r\n")[1:] if line]
    steps = [
        {"expectOutbound": [{"utf8": request.decode()}]},
        {"receive": [{"utf8": answer.decode()}]},
        {"expectEvents": [g.opened("/chat", fields, response_fields, scheme="ws", extensions=[agreed])]},
    ] + exchange_steps(frames, MESSAGES, ours)
    write("deflate-client-python-websockets-server.json", {
        "description": "python-websockets 17.4's server answers our offer limiting both windows to 12 bits and sends compressed "
                       "messages; our client's compressed frames (12-bit window) were decoded by that server",
        "role": "client", "maskKeys": g.CLIENT_KEYS,
        "handshake": {"url": "ws://127.0.0.1:9001/chat", "extensions": [{"name": "permessage-deflate"}]}, "steps": steps})


if __name__ == "__main__":
    server_side()
    client_side()
    print("wrote 2 interop transcripts; python-websockets decoded our frames both ways")
