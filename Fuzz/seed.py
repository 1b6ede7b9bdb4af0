#!/usr/bin/env python3
"""Seeds Fuzz/Corpus/<Target>/ from the fixture transcripts (small, hand-checked inputs)."""
import glob, hashlib, json, os

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


for path in sorted(glob.glob(os.path.join(FIXTURES, "**", "*.json"), recursive=True)):
    fx = json.load(open(path))
    config = fx.get("configuration", {})
    flags = (1 if config.get("delivery") == "streaming" else 0) | (8 if config.get("acceptUnmaskedFrames") else 0)
    stream = b"".join(parts(s["receive"]) for s in fx["steps"] if "receive" in s)
    if not stream or len(stream) > 2048:
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
print("seeded", sum(len(files) for _, _, files in os.walk(os.path.join(HERE, "Corpus"))), "corpus files")
