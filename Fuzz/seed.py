#!/usr/bin/env python3
"""Seeds Fuzz/Corpus/<Target>/ from the fixture transcripts (small, hand-checked inputs)."""
import base64, glob, hashlib, json, os, re, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "Fixtures")


def parts(v):
    if isinstance(v, str):
        return bytes.fromhex("".join(v.split()))
    if isinstance(v, list):
        return b"".join(parts(p) for p in v)
    if "utf8" in v:
        return v["utf8"].encode()
    return parts(v["repeat"]) * v["count"]


def put(target, data):
    d = os.path.join(HERE, "Corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def splitmix64(seed):
    state = seed
    while True:
        state = (state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        yield z ^ (z >> 31)


# The handshake harness's client draws its nonce from WSSeededRandom(seed: 7): four masking keys,
# two per 64-bit draw, low half first, each key's bytes little-endian = the draw's bytes.
_rng = splitmix64(7)
HARNESS_KEY = base64.b64encode(struct.pack("<QQ", next(_rng), next(_rng))).decode()
HARNESS_ACCEPT = base64.b64encode(hashlib.sha1((HARNESS_KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())


for path in sorted(glob.glob(os.path.join(FIXTURES, "**", "*.json"), recursive=True)):
    fx = json.load(open(path))
    config = fx.get("configuration", {})
    flags = (1 if config.get("delivery") == "streaming" else 0) | (8 if config.get("acceptUnmaskedFrames") else 0)
    if "deflate" in fx:
        flags |= 0x80  # the protocol harnesses' permessage-deflate bit
    stream = b"".join(parts(s["receive"]) for s in fx["steps"] if "receive" in s)
    for value in re.findall(rb"Sec-WebSocket-Extensions: ([^\r]*)", stream):
        for c in (0, 0x05, 0x2B):
            put("FuzzExtensionHeader", bytes([c]) + value)
    if not stream or len(stream) > 2048:
        continue
    if "handshake" in fx:
        target = "FuzzHandshakeServer" if fx["role"] == "server" else "FuzzHandshakeClient"
        stream = re.sub(rb"Sec-WebSocket-Accept: [A-Za-z0-9+/=]+", b"Sec-WebSocket-Accept: " + HARNESS_ACCEPT, stream)
        for f in (flags, flags | 0x80):
            put(target, bytes([f, 0]) + stream)
            put(target, bytes([f, 5]) + stream)
        continue
    target = "FuzzProtocolServer" if fx["role"] == "server" else "FuzzProtocolClient"
    put(target, bytes([flags, 0]) + stream)
    put(target, bytes([flags, 5]) + stream)
    put("FuzzFrameHeader", stream[:16])
    put("FuzzUTF8", bytes([1, 7]) + stream[6:])

for text in ["Hello", "héllo wörld", "€uro", "😀 grin", "中文字符", "\U0010FFFF", "a" * 100 + "é" * 40]:
    put("FuzzUTF8", bytes([3, 11]) + text.encode())
put("FuzzUTF8", bytes([0, 0, 0xED, 0xA0, 0x80, 0xC0, 0x80]))
for n in [0, 7, 64, 300, 1000]:
    put("FuzzUnmask", bytes([0x37, 0xFA, 0x21, 0x3D, n % 256, n % 7]) + bytes(range(256)) * (n // 256 + 1))
# Compressed payloads: RFC 7692 §7.2.3's examples and zlib output at several windows.
for hexed in ["f248cdc90700", "f248cdc9c90700", "f200110000", "000500faff48656c6c6f00", "f348cdc9c9070000",
              "f248050000 00ffffcac9c90700", "00"]:
    put("FuzzDeflateInflate", bytes([0x0F, 3]) + bytes.fromhex(hexed.replace(" ", "")))
for bits in (8, 9, 12, 15):
    for data in [b"", b"Hello", b"a" * 3000, bytes(range(256)) * 8, json.dumps({"k": list(range(200))}).encode()]:
        c = zlib.compressobj(6, zlib.DEFLATED, -max(bits, 9), 8, zlib.Z_RLE if bits == 8 else zlib.Z_DEFAULT_STRATEGY)
        out = (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4] or b"\x00"
        put("FuzzDeflateInflate", bytes([(bits - 8) | 0x08, 5]) + out)
        put("FuzzDeflateInflate", bytes([(bits - 8), 200]) + out)
for value in [b"permessage-deflate; client_max_window_bits", b"permessage-deflate; server_max_window_bits=8, permessage-deflate",
              b"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12",
              b'x-test; a="b", permessage-deflate; client_max_window_bits=9']:
    put("FuzzExtensionHeader", bytes([0x15]) + value)

print("seeded", sum(len(files) for _, _, files in os.walk(os.path.join(HERE, "Corpus"))), "corpus files")
