"""What the interop transcript writers share: the messages, our side's expected frames (computed
with Python's zlib at our default settings: level 6, memLevel 8, the same library our engine
calls), event forms, and writing a transcript."""
import json
import os
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import generate as g  # noqa: E402  (the generator's frame encoder, masking and event forms)

JSON = ("".join(f'{{"id":{i},"name":"user{i % 97}","active":{str(i % 2 == 0).lower()}}},' for i in range(150))).encode()
MESSAGES = [("text", b"Hello"), ("text", JSON), ("text", JSON), ("binary", bytes(range(256)) * 40)]


def events_of(messages):
    return [g.text(m.decode()) if kind == "text" else g.binary(m) for kind, m in messages]


def our_frames(messages, window, mask_keys=None):
    """What our engine sends (every message compressed, the default minimumSize 0), computed with
    zlib."""
    c = zlib.compressobj(6, zlib.DEFLATED, -window, 8)
    out = b""
    for i, (kind, data) in enumerate(messages):
        opcode = g.TEXT if kind == "text" else g.BINARY
        payload, rsv = (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4], 4
        key = bytes.fromhex(mask_keys[i]) if mask_keys else None
        out += g.header(opcode, len(payload), True, rsv, key) + (g.mask(payload, key) if key else payload)
    return out


def exchange_steps(peer_frames, received, ours):
    """The steps after the handshake: the peer's frames arrive and give `received`; our side
    sends MESSAGES and must write exactly `ours`."""
    return [
        {"receive": g.compact(peer_frames)},
        {"expectEvents": events_of(received)},
    ] + [{"sendText" if kind == "text" else "sendBinary": data.decode() if kind == "text" else g.hexs(data)} for kind, data in MESSAGES] + [
        {"expectOutbound": g.compact(ours)},
    ]


def write(name, fixture):
    with open(os.path.join(HERE, name), "w") as out:
        json.dump(fixture, out, indent=1, ensure_ascii=False)
        out.write("\n")


