#!/usr/bin/env python3
"""Writes the WSCore fixture transcripts under Fixtures/.

Each transcript is stated here from RFC 6455, with this file's own frame encoder and masking, so
the expected bytes and events do not come from the engine under test. Run it after editing:

    python3 Fixtures/generate.py

It rewrites every generated file (and removes stale ones it generated before, which it marks
with `"rfc"`); hand-written fixtures elsewhere under Fixtures/ are left alone.
"""
import random
import base64
import hashlib
import json
import os
import shutil
import struct
import zlib

ROOT = os.path.dirname(os.path.abspath(__file__))
GENERATED = ["core", "handshake", "deflate"]  # folders owned by this script

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
CLIENT_KEYS = ["37fa213d", "a1b2c3d4", "00000000", "ffffffff", "5a0f3c96", "01020304"]


def mask(payload: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def header(opcode, length, fin=True, rsv=0, key=None, form=None):
    """RFC 6455 §5.2 header. `form` forces the length encoding: 7, 16 or 64 bits."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if key is not None else 0
    if form is None:
        form = 7 if length < 126 else (16 if length <= 0xFFFF else 64)
    if form == 7:
        h = bytes([b0, m | length])
    elif form == 16:
        h = bytes([b0, m | 126]) + struct.pack(">H", length)
    else:
        h = bytes([b0, m | 127]) + struct.pack(">Q", length)
    return h + (key if key is not None else b"")


def close_payload(code, reason=""):
    return b"" if code is None else struct.pack(">H", code) + reason.encode()


def hexs(b: bytes) -> str:
    return " ".join(f"{x:02x}" for x in b)


def compact(b: bytes):
    """Bytes as JSON: plain hex, or hex parts with a repeat for long periodic runs."""
    if len(b) <= 96:
        return hexs(b)
    parts, i = [], 0
    while i < len(b):
        best = None
        for p in range(1, 17):
            j = i + p
            while j < len(b) and b[j] == b[j - p]:
                j += 1
            run = (j - i) // p
            if run >= 8 and (best is None or run * p > best[1] * best[0]):
                best = (p, run)
        if best:
            p, run = best
            parts.append({"repeat": hexs(b[i:i + p]), "count": run})
            i += p * run
        else:
            j = min(len(b), i + 32)
            if parts and isinstance(parts[-1], str):
                parts[-1] += " " + hexs(b[i:j])
            else:
                parts.append(hexs(b[i:j]))
            i = j
    return parts


class Fixture:
    """A transcript for one engine in one role. Frames *to* the engine are masked when the
    engine is a server (clients mask); frames *from* a client engine use its injected keys."""

    def __init__(self, path, role, description, rfc, config=None):
        self.path, self.role, self.description, self.rfc = path, role, description, rfc
        self.config = config or {}
        self.steps = []
        self.keys = CLIENT_KEYS if role == "client" else []
        self.key_index = 0
        self.in_key_index = 0
        self.handshake = None
        self.deflate = None

    # Frames the peer sends us.
    def frame(self, opcode, payload=b"", fin=True, rsv=0, masked=None, form=None, length=None):
        if masked is None:
            masked = self.role == "server"
        key = None
        if masked:
            key = bytes([(0x11 * (self.in_key_index + 1) + k * 0x3B) & 0xFF for k in range(4)])
            self.in_key_index += 1
        n = len(payload) if length is None else length
        return header(opcode, n, fin, rsv, key, form) + (mask(payload, key) if key else payload)

    # Frames we must send.
    def out_frame(self, opcode, payload=b"", fin=True, rsv=0):
        if self.role == "client":
            key = bytes.fromhex(self.keys[self.key_index % len(self.keys)])
            self.key_index += 1
            return header(opcode, len(payload), fin, rsv, key) + mask(payload, key)
        return header(opcode, len(payload), fin, rsv) + payload

    def out_close(self, code, reason=""):
        return self.out_frame(CLOSE, close_payload(code, reason))

    # Steps.
    def receive(self, *frames):
        self.steps.append({"receive": compact(b"".join(frames))})

    def eof(self):
        self.steps.append({"receiveEOF": True})

    def tick(self, seconds):
        self.steps.append({"tick": seconds})

    def events(self, *events):
        self.steps.append({"expectEvents": list(events)})

    def out(self, *frames, eos=False):
        step = {"expectOutbound": compact(b"".join(frames))}
        if eos:
            step["endOfStream"] = True
        self.steps.append(step)

    def state(self, lifecycle, **facts):
        step = {"expectState": lifecycle}
        step.update(facts)
        self.steps.append(step)

    def command(self, name, value, error=None, compress=None, timeout=None):
        step = {name: value}
        if error:
            step["expectError"] = error
        if compress is not None:
            step["compress"] = compress
        if timeout is not None:
            step["timeout"] = timeout
        self.steps.append(step)

    def json(self):
        d = {"description": self.description, "rfc": self.rfc, "role": self.role}
        if self.config:
            d["configuration"] = self.config
        if self.role == "client":
            d["maskKeys"] = self.keys
        if self.handshake is not None:
            d["handshake"] = self.handshake
        if self.deflate is not None:
            d["deflate"] = self.deflate
        d["steps"] = self.steps
        return d


# Event constructors (the JSON forms of WSProtocol.Event).
def text(s): return {"text": s}
def binary(b): return {"binary": compact(b)}
def fragment(kind, b, final): return {"fragment": {"kind": kind, "data": compact(b), "final": final}}
def ping(b=b""): return {"ping": hexs(b)}
def pong(b=b""): return {"pong": hexs(b)}
def close_received(code, reason=""): return {"closeReceived": {"code": code, "reason": reason}}
def failed(code): return {"failed": code}
def idle(): return {"idleTimeout": True}
def cf(code, reason=""): return None if code is False else {"code": code, "reason": reason}


def closed(sent=None, received=None, initiator=None, cause=None):
    return {"closed": {"sent": sent, "received": received, "initiator": initiator, "cause": cause}}


FIXTURES = []


def fixture(path, role, description, rfc, config=None):
    f = Fixture(path, role, description, rfc, config)
    FIXTURES.append(f)
    return f


ROLES = ["server", "client"]


def violation(f, frames, code, close_code, before=()):
    """The peer breaks a rule: failed(code), our Close(close_code, reason = code name), end of
    stream; then the transport ends and the connection closes with the error as its cause."""
    f.receive(*frames)
    f.events(*before, failed(code))
    f.out(f.out_close(close_code, code), eos=True)
    f.state("closing")
    f.eof()
    f.events(closed(sent=cf(close_code, code), initiator="local", cause={"protocolError": code}))
    f.state("closed", nextDeadline=None)


# ---------------------------------------------------------------------------------------------
# RFC 6455 §5.7 examples

def rfc_examples():
    f = fixture("core/rfc6455-5.7/unmasked-text", "client",
                "§5.7: a single-frame unmasked text message 81 05 48 65 6c 6c 6f contains \"Hello\"", "6455 §5.7")
    f.receive(bytes.fromhex("810548656c6c6f"))
    f.events(text("Hello"))

    f = fixture("core/rfc6455-5.7/masked-text", "server",
                "§5.7: a single-frame masked text message with key 37 fa 21 3d contains \"Hello\"", "6455 §5.7")
    f.receive(bytes.fromhex("818537fa213d7f9f4d5158"))
    f.events(text("Hello"))

    f = fixture("core/rfc6455-5.7/fragmented-unmasked-text", "client",
                "§5.7: a fragmented unmasked text message 01 03 48 65 6c / 80 02 6c 6f contains \"Hello\"", "6455 §5.7")
    f.receive(bytes.fromhex("010348656c"), bytes.fromhex("80026c6f"))
    f.events(text("Hello"))

    f = fixture("core/rfc6455-5.7/ping-and-masked-pong", "client",
                "§5.7: an unmasked Ping 89 05 Hello is answered by the masked Pong 8a 85 37 fa 21 3d 7f 9f 4d 51 58",
                "6455 §5.7, §5.5.2")
    f.receive(bytes.fromhex("890548656c6c6f"))
    f.events(ping(b"Hello"))
    f.out(bytes.fromhex("8a8537fa213d7f9f4d5158"))

    f = fixture("core/rfc6455-5.7/binary-256", "client",
                "§5.7: 256 bytes of binary data in a single unmasked frame (82 7e 01 00)", "6455 §5.7")
    data = bytes(range(256))
    f.receive(bytes.fromhex("827e0100") + data)
    f.events(binary(data))

    f = fixture("core/rfc6455-5.7/binary-64k", "client",
                "§5.7: 64 KiB of binary data in a single unmasked frame (82 7f 00 00 00 00 00 01 00 00)", "6455 §5.7")
    data = bytes(i % 251 for i in range(65536))
    f.receive(bytes.fromhex("827f0000000000010000") + data)
    f.events(binary(data))

    f = fixture("core/rfc6455-5.7/client-sends-masked-hello", "client",
                "§5.7: a client sending \"Hello\" with key 37 fa 21 3d writes 81 85 37 fa 21 3d 7f 9f 4d 51 58", "6455 §5.7, §5.3")
    f.command("sendText", "Hello")
    f.out(bytes.fromhex("818537fa213d7f9f4d5158"))

    f = fixture("core/rfc6455-5.7/server-sends-unmasked-hello", "server",
                "§5.7: a server sending \"Hello\" writes 81 05 48 65 6c 6c 6f", "6455 §5.7, §5.1")
    f.command("sendText", "Hello")
    f.out(bytes.fromhex("810548656c6c6f"))


# ---------------------------------------------------------------------------------------------
# §5.2 payload length boundaries, both directions, both roles

def lengths():
    for role in ROLES:
        for n in [0, 125, 126, 127, 65535, 65536]:
            f = fixture(f"core/length/{role}-{n}", role,
                        f"§5.2: a {n}-byte binary payload is received and sent with the minimal length encoding "
                        f"({'7-bit' if n < 126 else '16-bit' if n <= 65535 else '64-bit'})", "6455 §5.2")
            data = bytes((i * 7 + 3) % 256 for i in range(n))
            f.receive(f.frame(BINARY, data))
            f.events(binary(data))
            f.command("sendBinary", compact(data))
            f.out(f.out_frame(BINARY, data))

        f = fixture(f"core/length/{role}-2pow32-over-limit", role,
                    "§5.2: a frame declaring 2^32 bytes (64-bit length) fails with 1009 from its header alone, "
                    "before any payload arrives", "6455 §5.2, §7.4.1")
        violation(f, [f.frame(BINARY, b"", length=1 << 32)], "frameTooBig", 1009)

        f = fixture(f"core/length/{role}-msb-set", role,
                    "§5.2: \"the most significant bit MUST be 0\" in a 64-bit length: 2^63 fails with 1002",
                    "6455 §5.2")
        violation(f, [f.frame(BINARY, b"", length=1 << 63)], "lengthMSBSet", 1002)

        f = fixture(f"core/length/{role}-non-minimal-16", role,
                    "§5.2: \"the minimal number of bytes MUST be used to encode the length\": 5 in the 16-bit form fails",
                    "6455 §5.2")
        violation(f, [f.frame(TEXT, b"Hello", form=16)], "nonMinimalLength", 1002)

        f = fixture(f"core/length/{role}-non-minimal-64", role,
                    "§5.2: 200 encoded in the 64-bit form fails with 1002", "6455 §5.2")
        violation(f, [f.frame(BINARY, bytes(200), form=64)], "nonMinimalLength", 1002)

        f = fixture(f"core/length/{role}-max-frame-size", role,
                    "maxFrameSize is enforced exactly: 100 bytes pass, a 101-byte frame fails 1009 at its header",
                    "6455 §7.4.1 (1009)", {"maxFrameSize": 100})
        f.receive(f.frame(BINARY, bytes(100)))
        f.events(binary(bytes(100)))
        violation(f, [f.frame(BINARY, b"", length=101)], "frameTooBig", 1009)

        f = fixture(f"core/length/{role}-frame-limit-follows-message-limit", role,
                    "maxFrameSize unset follows maxMessageSize: with a 200-byte message limit a 200-byte frame passes, "
                    "a 201-byte frame fails 1009 at its header", "6455 §7.4.1 (1009)", {"maxMessageSize": 200})
        f.receive(f.frame(BINARY, bytes(200)))
        f.events(binary(bytes(200)))
        violation(f, [f.frame(BINARY, b"", length=201)], "frameTooBig", 1009)


# ---------------------------------------------------------------------------------------------
# Many frames in one read: adapters take whole messages in place (WSProtocol.nextDirectMessage)
# and leave the rest to the general parser; the transcript is the same however the read is cut.

def reads():
    for role in ROLES:
        f = fixture(f"core/reads/{role}-messages-in-one-read", role,
                    "§5.2, §5.4, §5.5: one read holding text, binary, empty, 125- and 126-byte (16-bit length) "
                    "messages, a Ping, a fragmented message and one more message gives each event in order",
                    "6455 §5.2, §5.4, §5.5")
        b125 = bytes((i * 5) % 256 for i in range(125))
        b126 = bytes((i * 3 + 1) % 256 for i in range(126))
        f.receive(f.frame(TEXT, b"a"), f.frame(BINARY, b"\x00\x01\x02"), f.frame(BINARY, b""), f.frame(BINARY, b125),
                  f.frame(BINARY, b126), f.frame(PING, b"p"), f.frame(TEXT, "h\u00e9".encode()),
                  f.frame(TEXT, b"fr", fin=False), f.frame(CONT, b"ag"), f.frame(BINARY, b"end"))
        f.events(text("a"), binary(b"\x00\x01\x02"), binary(b""), binary(b125), binary(b126), ping(b"p"),
                 text("h\u00e9"), text("frag"), binary(b"end"))
        f.out(f.out_frame(PONG, b"p"))

        f = fixture(f"core/reads/{role}-message-then-partial", role,
                    "§5.2: a read that ends inside the next frame's header, then inside its payload: the whole "
                    "message is delivered at once, the next when its last byte arrives", "6455 §5.2")
        first, second = f.frame(BINARY, b"one"), f.frame(TEXT, b"second message")
        f.receive(first, second[:1])
        f.events(binary(b"one"))
        f.receive(second[1:6])
        f.events()
        f.receive(second[6:])
        f.events(text("second message"))

        f = fixture(f"core/reads/{role}-invalid-utf8-after-messages", role,
                    "§8.1: valid messages, then a text message with invalid UTF-8 (FF) and one more message, in one "
                    "read: the valid ones are delivered, the connection fails with 1007 at the bad one, and what "
                    "follows is discarded", "6455 §8.1")
        violation(f, [f.frame(TEXT, b"ok"), f.frame(BINARY, b"\x01"), f.frame(TEXT, b"ab\xffcd"), f.frame(TEXT, b"after")],
                  "invalidUTF8", 1007, before=[text("ok"), binary(b"\x01")])

        f = fixture(f"core/reads/{role}-limit-in-one-read", role,
                    "maxMessageSize enforced exactly inside one read: a 100-byte message passes, the 101-byte "
                    "one after it fails 1009 at its header", "6455 §7.4.1 (1009)", {"maxMessageSize": 100})
        violation(f, [f.frame(BINARY, bytes(100)), f.frame(BINARY, bytes(101))], "frameTooBig", 1009,
                  before=[binary(bytes(100))])

        f = fixture(f"core/reads/{role}-close-after-messages", role,
                    "§5.5.1: messages then the peer's Close in one read: the messages, then closeReceived, and "
                    "our Close echoes the code (not the reason), and the message after the Close is discarded",
                    "6455 §5.5.1")
        f.receive(f.frame(TEXT, b"x"), f.frame(CLOSE, close_payload(1000, "bye")), f.frame(TEXT, b"ignored"))
        f.events(text("x"), close_received(1000, "bye"))
        f.out(f.out_close(1000), eos=role == "server")

# ---------------------------------------------------------------------------------------------
# §5.4 fragmentation, §5.5 control frames interleaved

def fragmentation():
    for role in ROLES:
        f = fixture(f"core/fragmentation/{role}-text-three-frames", role,
                    "§5.4: a text message in three frames (text, continuation, continuation+FIN) is delivered whole",
                    "6455 §5.4")
        f.receive(f.frame(TEXT, b"Hel", fin=False), f.frame(CONT, b"lo, ", fin=False), f.frame(CONT, b"world"))
        f.events(text("Hello, world"))

        f = fixture(f"core/fragmentation/{role}-ping-interleaved", role,
                    "§5.4: \"Control frames MAY be injected in the middle of a fragmented message\"; the Ping is "
                    "reported and answered before the message completes", "6455 §5.4, §5.5.2")
        f.receive(f.frame(BINARY, b"\x01\x02", fin=False), f.frame(PING, b"mid"), f.frame(CONT, b"\x03", fin=False),
                  f.frame(PONG, b"p"), f.frame(CONT, b"\x04"))
        f.events(ping(b"mid"), pong(b"p"), binary(b"\x01\x02\x03\x04"))
        f.out(f.out_frame(PONG, b"mid"))

        f = fixture(f"core/fragmentation/{role}-empty-fragments", role,
                    "§5.4: empty first, middle and final fragments are legal; the message is their concatenation",
                    "6455 §5.4")
        f.receive(f.frame(TEXT, b"", fin=False), f.frame(CONT, b"ab", fin=False), f.frame(CONT, b"", fin=False),
                  f.frame(CONT, b""))
        f.events(text("ab"))

        f = fixture(f"core/fragmentation/{role}-empty-message", role,
                    "§5.6: an empty text message and an empty binary message", "6455 §5.6")
        f.receive(f.frame(TEXT, b""), f.frame(BINARY, b""))
        f.events(text(""), binary(b""))

        f = fixture(f"core/fragmentation/{role}-streaming", role,
                    "Streaming delivery: pieces of a fragmented message arrive as fragment events, the last one final",
                    "6455 §5.4", {"delivery": "streaming"})
        f.receive(f.frame(TEXT, b"Hel", fin=False))
        f.events(fragment("text", b"Hel", False))
        f.receive(f.frame(CONT, b"lo", fin=False), f.frame(PING, b""), f.frame(CONT, b"!"))
        f.events(fragment("text", b"lo", False), ping(), fragment("text", b"!", True))
        f.out(f.out_frame(PONG, b""))

        f = fixture(f"core/fragmentation/{role}-streaming-partial-frame", role,
                    "Streaming delivery does not wait for the end of a frame: half a frame's payload is delivered "
                    "as soon as it arrives", "6455 §5.4", {"delivery": "streaming"})
        data = bytes(range(200))
        whole = f.frame(BINARY, data)
        f.receive(whole[:120])
        hlen = len(whole) - len(data)
        f.events(fragment("binary", data[:120 - hlen], False))
        f.receive(whole[120:])
        f.events(fragment("binary", data[120 - hlen:], True))

        f = fixture(f"core/fragmentation/{role}-close-interleaved", role,
                    "§5.4/§5.5.1: a Close in the middle of a fragmented message ends the connection; the partial "
                    "message is never delivered", "6455 §5.4, §5.5.1")
        f.receive(f.frame(TEXT, b"part", fin=False), f.frame(CLOSE, close_payload(1000)))
        f.events(close_received(1000))
        f.out(f.out_close(1000), eos=(role == "server"))
        f.eof()
        f.events(closed(sent=cf(1000), received=cf(1000), initiator="remote"))

        f = fixture(f"core/fragmentation/{role}-max-fragments", role,
                    "maxFragmentsPerMessage is enforced exactly: 4 frames pass, a 5th frame fails with 1008",
                    "6455 §7.4.1 (1008)", {"maxFragmentsPerMessage": 4})
        f.receive(f.frame(TEXT, b"a", fin=False), f.frame(CONT, b"b", fin=False), f.frame(CONT, b"c", fin=False),
                  f.frame(CONT, b"d"))
        f.events(text("abcd"))
        violation(f, [f.frame(TEXT, b"a", fin=False), f.frame(CONT, b"b", fin=False), f.frame(CONT, b"c", fin=False),
                      f.frame(CONT, b"d", fin=False), f.frame(CONT, b"e")], "tooManyFragments", 1008)

        f = fixture(f"core/fragmentation/{role}-max-message-size", role,
                    "maxMessageSize is enforced exactly across fragments: 10 bytes pass, 11 fail with 1009 at the "
                    "header of the frame that crosses the limit", "6455 §7.4.1 (1009)", {"maxMessageSize": 10})
        f.receive(f.frame(BINARY, bytes(6), fin=False), f.frame(CONT, bytes(4)))
        f.events(binary(bytes(10)))
        violation(f, [f.frame(BINARY, bytes(6), fin=False), f.frame(CONT, b"", length=5)], "messageTooBig", 1009)

        f = fixture(f"core/fragmentation/{role}-unexpected-continuation", role,
                    "§5.4: a continuation frame with no message in progress fails with 1002", "6455 §5.4")
        violation(f, [f.frame(CONT, b"x")], "unexpectedContinuation", 1002)

        f = fixture(f"core/fragmentation/{role}-expected-continuation", role,
                    "§5.4: a new text frame while a fragmented message is in progress fails with 1002", "6455 §5.4")
        violation(f, [f.frame(TEXT, b"a", fin=False), f.frame(TEXT, b"b")], "expectedContinuation", 1002)


# ---------------------------------------------------------------------------------------------
# §5.2, §5.5 frame rules

def frame_rules():
    for role in ROLES:
        for rsv, name in [(4, "rsv1"), (2, "rsv2"), (1, "rsv3")]:
            f = fixture(f"core/violations/{role}-{name}", role,
                        f"§5.2: {name.upper()} set with no extension negotiated fails with 1002", "6455 §5.2")
            violation(f, [f.frame(TEXT, b"Hello", rsv=rsv)], "reservedBitsSet", 1002)
        for op in [0x3, 0x7, 0xB, 0xF]:
            f = fixture(f"core/violations/{role}-reserved-opcode-{op:x}", role,
                        f"§5.2: reserved opcode 0x{op:X} fails with 1002", "6455 §5.2")
            violation(f, [f.frame(op, b"")], "reservedOpcode", 1002)
        f = fixture(f"core/violations/{role}-control-too-long", role,
                    "§5.5: a Ping with a 126-byte payload fails with 1002", "6455 §5.5")
        violation(f, [f.frame(PING, bytes(126))], "controlFrameTooLong", 1002)
        f = fixture(f"core/violations/{role}-fragmented-control", role,
                    "§5.5: \"Control frames themselves MUST NOT be fragmented\": a Ping without FIN fails", "6455 §5.5")
        violation(f, [f.frame(PING, b"x", fin=False)], "fragmentedControlFrame", 1002)
        f = fixture(f"core/violations/{role}-violation-stops-reading", role,
                    "§7.1.7: after a violation nothing more is processed: the valid frame after it is discarded",
                    "6455 §7.1.7")
        violation(f, [f.frame(TEXT, b"one"), f.frame(0x3, b""), f.frame(TEXT, b"two")], "reservedOpcode", 1002,
                  before=[text("one")])

    f = fixture("core/violations/server-unmasked-frame", "server",
                "§5.1: \"The server MUST close the connection upon receiving a frame that is not masked\"", "6455 §5.1")
    violation(f, [f.frame(TEXT, b"Hello", masked=False)], "unmaskedFrameFromClient", 1002)

    f = fixture("core/violations/server-accept-unmasked", "server",
                "acceptUnmaskedFrames lets a server accept unmasked frames from a trusted peer", "6455 §5.1",
                {"acceptUnmaskedFrames": True})
    f.receive(f.frame(TEXT, b"Hello", masked=False), f.frame(TEXT, b"again", masked=True))
    f.events(text("Hello"), text("again"))

    f = fixture("core/violations/client-masked-frame", "client",
                "§5.1: \"A client MUST close a connection if it detects a masked frame\"", "6455 §5.1")
    violation(f, [f.frame(TEXT, b"Hello", masked=True)], "maskedFrameFromServer", 1002)

    f = fixture("core/violations/client-masked-control-frame", "client",
                "§5.1: the masking rule applies to control frames too", "6455 §5.1")
    violation(f, [f.frame(PING, b"x", masked=True)], "maskedFrameFromServer", 1002)


# ---------------------------------------------------------------------------------------------
# §8.1 UTF-8

GRIN = "\U0001F600".encode()  # f0 9f 98 80


def utf8():
    for role in ROLES:
        for cut in [1, 2, 3]:
            f = fixture(f"core/utf8/{role}-4-byte-split-at-{cut}", role,
                        f"§8.1: U+1F600 split after byte {cut} of 4 across two fragments is valid", "6455 §8.1")
            f.receive(f.frame(TEXT, b"a" + GRIN[:cut], fin=False), f.frame(CONT, GRIN[cut:] + b"z"))
            f.events(text("a\U0001F600z"))

        f = fixture(f"core/utf8/{role}-boundaries", role,
                    "§8.1: the first and last code points of every UTF-8 length (U+0000, U+007F, U+0080, U+07FF, "
                    "U+0800, U+FFFF, U+10000, U+10FFFF) and U+FFFE are valid", "6455 §8.1, RFC 3629")
        s = "\u0000\u007f\u0080\u07ff\u0800\uffff\U00010000\U0010ffff\ufffe"
        f.receive(f.frame(TEXT, s.encode()))
        f.events(text(s))

        f = fixture(f"core/utf8/{role}-fail-fast", role,
                    "§8.1 fail fast: a text frame whose first payload byte is invalid (C0) fails with 1007 before "
                    "the rest of its 100-byte payload arrives", "6455 §8.1")
        whole = f.frame(TEXT, b"\xc0" + bytes(99))
        violation(f, [whole[:len(whole) - 99]], "invalidUTF8", 1007)

        f = fixture(f"core/utf8/{role}-fail-in-continuation", role,
                    "§8.1: invalid UTF-8 in the second fragment of a message fails with 1007", "6455 §8.1")
        violation(f, [f.frame(TEXT, b"ok ", fin=False), f.frame(CONT, b"\xff")], "invalidUTF8", 1007)

        f = fixture(f"core/utf8/{role}-incomplete-at-end", role,
                    "§8.1: a text message ending inside a character (E2 82) fails with 1007", "6455 §8.1")
        violation(f, [f.frame(TEXT, b"\xe2\x82")], "invalidUTF8", 1007)

        f = fixture(f"core/utf8/{role}-binary-not-validated", role,
                    "§5.6: binary messages are not UTF-8 and are never validated", "6455 §5.6")
        f.receive(f.frame(BINARY, b"\xc0\xff\xed\xa0\x80"))
        f.events(binary(b"\xc0\xff\xed\xa0\x80"))

    for name, bad, note in [
        ("surrogate", b"\xed\xa0\x80", "a UTF-16 surrogate (ED A0 80)"),
        ("overlong-2", b"\xc0\x80", "an overlong 2-byte NUL (C0 80)"),
        ("overlong-3", b"\xe0\x80\x80", "an overlong 3-byte encoding (E0 80 80)"),
        ("overlong-4", b"\xf0\x80\x80\x80", "an overlong 4-byte encoding (F0 80 80 80)"),
        ("above-10ffff", b"\xf4\x90\x80\x80", "a code point above U+10FFFF (F4 90 80 80)"),
        ("f5", b"\xf5\x80\x80\x80", "the never-valid byte F5"),
        ("lone-continuation", b"\x80", "a lone continuation byte"),
        ("truncated-then-ascii", b"\xe2\x82A", "a truncated sequence followed by ASCII (E2 82 41)"),
    ]:
        role = "server" if len(name) % 2 else "client"
        f = fixture(f"core/utf8/{role}-invalid-{name}", role, f"§8.1: {note} fails with 1007", "6455 §8.1, RFC 3629")
        violation(f, [f.frame(TEXT, b"ab" + bad + b"cd")], "invalidUTF8", 1007)

    f = fixture("core/utf8/server-streaming-valid-prefix", "server",
                "§8.1 in streaming mode: the valid bytes before the first invalid one are delivered, then the "
                "connection fails with 1007", "6455 §8.1", {"delivery": "streaming"})
    violation(f, [f.frame(TEXT, b"abc\xed\xa0\x80def")], "invalidUTF8", 1007,
              before=[fragment("text", b"abc\xed", False)])

    f = fixture("core/utf8/client-streaming-incomplete-at-end", "client",
                "§8.1 in streaming mode: a text message ending inside a character delivers the bytes that were "
                "valid so far, then fails with 1007 (the same transcript however the frame is split)",
                "6455 §8.1", {"delivery": "streaming"})
    violation(f, [f.frame(TEXT, b"ab\xe2\x82")], "invalidUTF8", 1007, before=[fragment("text", b"ab\xe2\x82", False)])

    f = fixture("core/utf8/client-streaming-split-character", "client",
                "Streaming: a text fragment may end inside a character; validation carries across pieces",
                "6455 §8.1", {"delivery": "streaming"})
    f.receive(f.frame(TEXT, b"x" + GRIN[:2], fin=False))
    f.events(fragment("text", b"x" + GRIN[:2], False))
    f.receive(f.frame(CONT, GRIN[2:]))
    f.events(fragment("text", GRIN[2:], True))


# ---------------------------------------------------------------------------------------------
# §5.5.1, §7 closing handshake

def closing():
    for role in ROLES:
        eos = role == "server"
        f = fixture(f"core/close/{role}-remote-initiates", role,
                    "§5.5.1: the peer's Close is reported and echoed with its code; "
                    + ("a server ends TCP first (§7.1.1)" if eos else "a client waits for the server to end TCP (§7.1.1)"),
                    "6455 §5.5.1, §7.1.1")
        f.receive(f.frame(CLOSE, close_payload(1000, "bye")))
        f.events(close_received(1000, "bye"))
        f.out(f.out_close(1000), eos=eos)
        f.state("closing", nextDeadline=10)
        f.receive(f.frame(TEXT, b"ignored"))
        f.events()
        f.eof()
        f.events(closed(sent=cf(1000), received=cf(1000, "bye"), initiator="remote"))
        f.state("closed", nextDeadline=None)

        f = fixture(f"core/close/{role}-local-initiates", role,
                    "§7.1.2: after our Close, data still arrives and is delivered until the peer's Close; then "
                    "the handshake is complete", "6455 §7.1.2, §5.5.1")
        f.command("close", cf(1000, "done"))
        f.out(f.out_close(1000, "done"))
        f.state("closeSent", nextDeadline=10)
        f.command("sendText", "late", error="notOpen")
        f.receive(f.frame(TEXT, b"in flight"), f.frame(CLOSE, close_payload(1000)))
        f.events(text("in flight"), close_received(1000))
        f.out(eos=eos)
        f.eof()
        f.events(closed(sent=cf(1000, "done"), received=cf(1000), initiator="local"))

        f = fixture(f"core/close/{role}-empty-close", role,
                    "§7.1.5: a Close with no body is reported as code 1005 and answered with an empty Close",
                    "6455 §5.5.1, §7.1.5")
        f.receive(f.frame(CLOSE, b""))
        f.events(close_received(None))
        f.out(f.out_close(None), eos=eos)
        f.eof()
        f.events(closed(sent=cf(None), received=cf(None), initiator="remote"))

        f = fixture(f"core/close/{role}-local-empty-close", role,
                    "close with no code sends a Close with an empty body", "6455 §5.5.1")
        f.command("close", None)
        f.out(f.out_close(None))
        f.receive(f.frame(CLOSE, b""))
        f.events(close_received(None))
        f.out(eos=eos)
        f.eof()
        f.events(closed(sent=cf(None), received=cf(None), initiator="local"))

        f = fixture(f"core/close/{role}-close-timeout", role,
                    "closeTimeout: after our Close, a peer that never answers is given up on at the deadline "
                    "(code 1006, not clean)", "6455 §7.1.1, §7.1.5", {"closeTimeout": 3})
        f.tick(1)
        f.command("close", cf(1001))
        f.out(f.out_close(1001))
        f.state("closeSent", nextDeadline=4)
        f.tick(3.999)
        f.events()
        f.tick(4)
        f.events(closed(sent=cf(1001), initiator="local", cause="closeTimeout"))
        f.out(eos=True)
        f.state("closed", nextDeadline=None)

        f = fixture(f"core/close/{role}-close-own-timeout", role,
                    "close(timeout:) waits for the peer's Close as long as it is told, here longer than "
                    "closeTimeout, then gives up (code 1006, not clean)", "6455 §7.1.1, §7.1.5", {"closeTimeout": 3})
        f.tick(1)
        f.command("close", cf(1001), timeout=30)
        f.out(f.out_close(1001))
        f.state("closeSent", nextDeadline=31)
        f.tick(4)
        f.events()
        f.tick(30.999)
        f.events()
        f.tick(31)
        f.events(closed(sent=cf(1001), initiator="local", cause="closeTimeout"))
        f.out(eos=True)
        f.state("closed", nextDeadline=None)

        f = fixture(f"core/close/{role}-close-no-time-limit", role,
                    "close(timeout:) with a negative timeout waits for the peer's Close without limit; "
                    "once it comes, the transport's end is awaited for closeTimeout as usual",
                    "6455 §7.1.2, §7.1.1", {"closeTimeout": 3})
        f.tick(1)
        f.command("close", cf(1000, "done"), timeout=-1)
        f.out(f.out_close(1000, "done"))
        f.state("closeSent", nextDeadline=None)
        f.tick(86400)
        f.events()
        f.state("closeSent", nextDeadline=None)
        f.receive(f.frame(TEXT, b"late"), f.frame(CLOSE, close_payload(1000)))
        f.events(text("late"), close_received(1000))
        f.out(eos=eos)
        f.state("closing", nextDeadline=86403)
        f.eof()
        f.events(closed(sent=cf(1000, "done"), received=cf(1000), initiator="local"))

        f = fixture(f"core/close/{role}-eof-without-close", role,
                    "§7.1.5: the transport ending without a Close gives code 1006 and an unclean close",
                    "6455 §7.1.5")
        f.receive(f.frame(TEXT, b"hi"))
        f.eof()
        f.events(text("hi"), closed(cause="transportClosed"))
        f.command("sendText", "x", error="notOpen")
        f.command("close", cf(1000), error="notOpen")

        f = fixture(f"core/close/{role}-eof-mid-frame", role,
                    "§7.1.5: the transport ending inside a frame gives 1006; the partial frame is dropped",
                    "6455 §7.1.5")
        f.receive(f.frame(TEXT, b"Hello")[:4])
        f.events()
        f.eof()
        f.events(closed(cause="transportClosed"))

        f = fixture(f"core/close/{role}-no-auto-reply", role,
                    "§5.5.1 with autoCloseReply off: after the peer's Close the application may finish its message "
                    "(\"An endpoint MAY delay sending a Close frame until its current message is sent\") and then closes",
                    "6455 §5.5.1", {"autoCloseReply": False})
        f.command("sendFragment", {"kind": "text", "data": hexs(b"par"), "final": False})
        f.out(f.out_frame(TEXT, b"par", fin=False))
        f.receive(f.frame(CLOSE, close_payload(1001, "going")), f.frame(TEXT, b"discarded"))
        f.events(close_received(1001, "going"))
        f.state("closeReceived", nextDeadline=None)
        f.command("sendFragment", {"kind": "text", "data": hexs(b"t"), "final": True})
        f.out(f.out_frame(CONT, b"t"))
        f.command("close", cf(1001))
        f.out(f.out_close(1001), eos=eos)
        f.state("closing")
        f.eof()
        f.events(closed(sent=cf(1001), received=cf(1001, "going"), initiator="remote"))

        f = fixture(f"core/close/{role}-simultaneous", role,
                    "§7.1.3: both sides send Close at once; each Close answers the other", "6455 §7.1.3")
        f.command("close", cf(1000, "a"))
        f.out(f.out_close(1000, "a"))
        f.receive(f.frame(CLOSE, close_payload(1000, "b")))
        f.events(close_received(1000, "b"))
        f.out(eos=eos)
        f.command("close", cf(1000), error="closeAlreadySent")
        f.eof()
        f.events(closed(sent=cf(1000, "a"), received=cf(1000, "b"), initiator="local"))

        f = fixture(f"core/close/{role}-handshake-then-timeout", role,
                    "§7.1.1: after the handshake, if the transport does not end within closeTimeout it is dropped "
                    "(the handshake still counts as clean)", "6455 §7.1.1", {"closeTimeout": 2})
        f.receive(f.frame(CLOSE, close_payload(1000)))
        f.events(close_received(1000))
        f.out(f.out_close(1000), eos=eos)
        f.tick(2)
        f.events(closed(sent=cf(1000), received=cf(1000), initiator="remote", cause="closeTimeout"))
        if not eos:
            f.out(eos=True)

        f = fixture(f"core/close/{role}-invalid-1-byte", role,
                    "§5.5.1: a Close body of one byte (no room for a code) fails with 1002", "6455 §5.5.1")
        violation(f, [f.frame(CLOSE, b"\x03")], "invalidClosePayload", 1002)

        f = fixture(f"core/close/{role}-invalid-reason-utf8", role,
                    "§5.5.1/§8.1: a Close reason that is not valid UTF-8 fails with 1007", "6455 §5.5.1, §8.1")
        violation(f, [f.frame(CLOSE, close_payload(1000) + b"\xce\xba\xe1\xbd")], "invalidCloseReason", 1007)

        f = fixture(f"core/close/{role}-violation-after-close-sent", role,
                    "§7.1.7 after our Close: a violation fails the connection without a second Close frame",
                    "6455 §7.1.7")
        f.command("close", cf(1000))
        f.out(f.out_close(1000))
        f.receive(f.frame(0x3, b""))
        f.events(failed("reservedOpcode"))
        f.out(eos=True)
        f.eof()
        f.events(closed(sent=cf(1000), initiator="local", cause={"protocolError": "reservedOpcode"}))

    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]:
        role = ROLES[code % 2]
        f = fixture(f"core/close/{role}-invalid-code-{code}", role,
                    f"§7.4: close code {code} may not appear on the wire; the connection fails with 1002",
                    "6455 §7.4.1, §7.4.2")
        violation(f, [f.frame(CLOSE, close_payload(code))], "invalidCloseCode", 1002)

    for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]:
        role = ROLES[code % 2]
        f = fixture(f"core/close/{role}-valid-code-{code}", role,
                    f"§7.4: close code {code} is valid on the wire and is echoed", "6455 §7.4.1, §7.4.2, IANA registry")
        f.receive(f.frame(CLOSE, close_payload(code, "r")))
        f.events(close_received(code, "r"))
        f.out(f.out_close(code), eos=(role == "server"))
        f.eof()
        f.events(closed(sent=cf(code), received=cf(code, "r"), initiator="remote"))

    f = fixture("core/close/server-close-command-errors", "server",
                "close rejects codes that may not be sent, reasons over 123 bytes, and a reason without a code",
                "6455 §5.5, §7.4")
    f.command("close", cf(1005), error="invalidCloseCode")
    f.command("close", cf(1000, "x" * 124), error="invalidCloseReason")
    f.command("close", {"reason": "why"}, error="invalidCloseReason")
    f.command("close", cf(4999, "y" * 123))
    f.out(f.out_close(4999, "y" * 123))
    f.state("closeSent")


# ---------------------------------------------------------------------------------------------
# §5.5.2–5.5.3 control frames and commands

def control():
    for role in ROLES:
        f = fixture(f"core/control/{role}-ping-125", role,
                    "§5.5.2: a Ping with the largest allowed payload (125 bytes) is answered with an identical Pong",
                    "6455 §5.5, §5.5.2")
        data = bytes(range(125))
        f.receive(f.frame(PING, data))
        f.events(ping(data))
        f.out(f.out_frame(PONG, data))

        f = fixture(f"core/control/{role}-no-auto-pong", role,
                    "autoPong off: the Ping is reported and the application answers it", "6455 §5.5.2",
                    {"autoPong": False})
        f.receive(f.frame(PING, b"abc"))
        f.events(ping(b"abc"))
        f.out()
        f.command("pong", hexs(b"abc"))
        f.out(f.out_frame(PONG, b"abc"))

        f = fixture(f"core/control/{role}-pong-received", role,
                    "§5.5.3: unsolicited Pongs are reported and need no answer", "6455 §5.5.3")
        f.receive(f.frame(PONG, b"beat"))
        f.events(pong(b"beat"))
        f.out()

        f = fixture(f"core/control/{role}-commands", role,
                    "ping and pong commands send control frames; payloads over 125 bytes are refused",
                    "6455 §5.5")
        f.command("ping", hexs(b"hi"))
        f.out(f.out_frame(PING, b"hi"))
        f.command("pong", "")
        f.out(f.out_frame(PONG, b""))
        f.command("ping", compact(bytes(126)), error="controlPayloadTooLong")
        f.out()

        f = fixture(f"core/control/{role}-ping-after-close-sent", role,
                    "§5.5.2: after our Close, a received Ping is reported but not answered", "6455 §5.5.2, §5.5.1")
        f.command("close", cf(1000))
        f.out(f.out_close(1000))
        f.receive(f.frame(PING, b"p"))
        f.events(ping(b"p"))
        f.out()


# ---------------------------------------------------------------------------------------------
# Sending: fragmentation and validation of our own messages

def sending():
    for role in ROLES:
        f = fixture(f"core/send/{role}-fragmented", role,
                    "§5.4: sendFragment emits text, continuation, continuation+FIN; a Ping may go between pieces",
                    "6455 §5.4")
        f.command("sendFragment", {"kind": "text", "data": hexs(b"Hel"), "final": False})
        f.command("ping", "")
        f.command("sendFragment", {"kind": "text", "data": hexs(b"lo"), "final": False})
        f.command("sendFragment", {"kind": "text", "data": "", "final": True})
        f.out(f.out_frame(TEXT, b"Hel", fin=False), f.out_frame(PING), f.out_frame(CONT, b"lo", fin=False),
              f.out_frame(CONT, b""))

        f = fixture(f"core/send/{role}-auto-fragment", role,
                    "Messages larger than outboundFragmentSize are split into frames of that size", "6455 §5.4",
                    {"outboundFragmentSize": 5})
        f.command("sendText", "Hello, world")
        f.out(f.out_frame(TEXT, b"Hello", fin=False), f.out_frame(CONT, b", wor", fin=False), f.out_frame(CONT, b"ld"))
        f.command("sendBinary", hexs(b"12345"))
        f.out(f.out_frame(BINARY, b"12345"))

        f = fixture(f"core/send/{role}-fragment-errors", role,
                    "A whole message, or a piece of another kind, while a fragmented message is being sent is "
                    "refused; invalid UTF-8 in a text piece is refused and sends nothing", "6455 §5.4, §8.1")
        f.command("sendFragment", {"kind": "text", "data": hexs(b"a" + GRIN[:2]), "final": False})
        f.out(f.out_frame(TEXT, b"a" + GRIN[:2], fin=False))
        f.command("sendText", "x", error="fragmentedMessageInProgress")
        f.command("sendFragment", {"kind": "binary", "data": "00", "final": True}, error="fragmentedMessageInProgress")
        f.command("sendFragment", {"kind": "text", "data": "41", "final": True}, error="invalidUTF8")
        f.command("sendFragment", {"kind": "text", "data": hexs(GRIN[2:3]), "final": True}, error="invalidUTF8")
        f.out()
        f.command("sendFragment", {"kind": "text", "data": hexs(GRIN[2:]), "final": True})
        f.out(f.out_frame(CONT, GRIN[2:]))


# ---------------------------------------------------------------------------------------------
# Time: keepalive, idle, deadlines

def timers():
    for role in ROLES:
        f = fixture(f"core/time/{role}-keepalive", role,
                    "Keepalive: a Ping every pingInterval; a Pong clears the wait; the next Ping is one interval "
                    "after the previous", "6455 §5.5.2", {"pingInterval": 10, "pingTimeout": 5})
        f.state("open", nextDeadline=10)
        f.tick(9.5)
        f.out()
        f.tick(10)
        f.out(f.out_frame(PING, b"\x00\x00\x00\x01"))
        f.state("open", nextDeadline=15)
        f.tick(12)
        f.receive(f.frame(PONG, b"\x00\x00\x00\x01"))
        f.events(pong(b"\x00\x00\x00\x01"))
        f.state("open", nextDeadline=20)
        f.tick(20)
        f.out(f.out_frame(PING, b"\x00\x00\x00\x02"))

        f = fixture(f"core/time/{role}-keepalive-timeout", role,
                    "Keepalive: no Pong within pingTimeout: a Close 1011 is queued and the connection is dropped "
                    "at once (code 1006)", "6455 §7.1.5", {"pingInterval": 10, "pingTimeout": 5})
        f.tick(10)
        f.out(f.out_frame(PING, b"\x00\x00\x00\x01"))
        f.receive(f.frame(TEXT, b"data is not a pong"))
        f.events(text("data is not a pong"))
        f.tick(15)
        f.events(closed(sent=cf(1011, "keepalive ping timeout"), initiator="local", cause="keepaliveTimeout"))
        f.out(f.out_close(1011, "keepalive ping timeout"), eos=True)
        f.state("closed", nextDeadline=None)

        f = fixture(f"core/time/{role}-any-pong-clears", role,
                    "Keepalive: any Pong after the keepalive Ping proves the peer alive, whatever its payload",
                    "6455 §5.5.3", {"pingInterval": 10, "pingTimeout": 5})
        f.tick(10)
        f.out(f.out_frame(PING, b"\x00\x00\x00\x01"))
        f.receive(f.frame(PONG, b"other"))
        f.events(pong(b"other"))
        f.tick(16)
        f.events()
        f.state("open", nextDeadline=20)

        f = fixture(f"core/time/{role}-no-keepalive", role,
                    "pingInterval null disables keepalive: no deadline is armed", "6455 §5.5.2", {"pingInterval": None})
        f.state("open", nextDeadline=None)
        f.tick(3600)
        f.out()

        f = fixture(f"core/time/{role}-idle-timeout", role,
                    "idleTimeout: reported after that long without a data frame in either direction; control "
                    "frames do not count; the timer re-arms", "Ballerina onIdleTimeout",
                    {"idleTimeout": 30, "pingInterval": None})
        f.state("open", nextDeadline=30)
        f.tick(20)
        f.receive(f.frame(TEXT, b"hi"))
        f.events(text("hi"))
        f.state("open", nextDeadline=50)
        f.receive(f.frame(PING, b""))
        f.events(ping())
        f.out(f.out_frame(PONG, b""))
        f.tick(40)
        f.command("sendText", "out")
        f.out(f.out_frame(TEXT, b"out"))
        f.state("open", nextDeadline=70)
        f.tick(70)
        f.events(idle())
        f.state("open", nextDeadline=100)
        f.tick(100)
        f.events(idle())

# ---------------------------------------------------------------------------------------------
# Opening handshake (RFC 6455 §4), HTTP written out by hand here

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REASONS = {101: "Switching Protocols", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           405: "Method Not Allowed", 408: "Request Timeout", 414: "URI Too Long", 426: "Upgrade Required",
           431: "Request Header Fields Too Large"}


def accept_for(key):
    """§4.2.2: base64(SHA-1(key + GUID)), with Python's own SHA-1 and base64."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def head(start, fields, body=b""):
    return (start + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields) + "\r\n").encode() + body


def error_answer(status, code, extra=()):
    """What the server engine answers to a bad request: the status, its fields, a body naming the rule."""
    body = f"{status} {REASONS[status]}: {code}\n".encode()
    fields = [(n, v + ", close" if n == "Connection" else v) for n, v in extra]
    fields += [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    if not any(n == "Connection" for n, _ in fields):
        fields.append(("Connection", "close"))
    return head(f"HTTP/1.1 {status} {REASONS[status]}", fields, body)


def upgrade_requested(target, fields, subprotocols=(), extensions=(), cookies=()):
    d = dict((n.lower(), v) for n, v in fields)
    path, _, query = target.partition("?")
    return {"upgradeRequested": {
        "authority": d["host"], "target": target, "headers": [[n, v] for n, v in fields if n.lower() != "host"],
        "path": path, "query": query if "?" in target else None, "origin": d.get("origin"),
        "subprotocols": list(subprotocols), "extensions": list(extensions), "cookies": [list(c) for c in cookies],
        "key": d["sec-websocket-key"]}}


def opened(request_target, request_fields, response_fields, scheme=None, subprotocol=None, extensions=()):
    d = dict((n.lower(), v) for n, v in request_fields)
    return {"opened": {
        "request": {"scheme": scheme, "authority": d["host"], "target": request_target,
                    "headers": [[n, v] for n, v in request_fields if n.lower() != "host"]},
        "response": {"status": 101, "headers": [list(f) for f in response_fields]},
        "subprotocol": subprotocol, "extensions": list(extensions)}}


RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
BASE_REQUEST = [("Host", "server.example.com"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", RFC_KEY), ("Sec-WebSocket-Version", "13")]
CHROME_REQUEST = [
    ("Host", "127.0.0.1:9001"), ("Connection", "Upgrade"), ("Pragma", "no-cache"), ("Cache-Control", "no-cache"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
    ("Upgrade", "websocket"), ("Origin", "http://127.0.0.1:9001"), ("Sec-WebSocket-Version", "13"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"), ("Accept-Language", "en-US,en;q=0.9"),
    ("Cookie", "session=abc123; theme=dark"), ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
    ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
    ("Sec-WebSocket-Protocol", "chat.v2, chat.v1")]
CURL_REQUEST = [("Host", "localhost:8080"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*"),
                ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA==")]


def answer_101(key, extra=()):
    return [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept_for(key))] + list(extra)


def handshake_server():
    def server(path, description, rfc, options=None):
        f = fixture("handshake/server/" + path, "server", description, rfc)
        f.handshake = options or {}
        return f

    f = server("rfc-example", "§1.2/§1.3: the RFC's request, answered with the RFC's accept key; subprotocol chosen", "6455 §1.2, §1.3, §4.2.2")
    fields = BASE_REQUEST + [("Origin", "http://example.com"), ("Sec-WebSocket-Protocol", "chat, superchat")]
    f.state("connecting", nextDeadline=10)  # the request-head timeout (the handshake's is 120 s)
    f.receive(head("GET /chat HTTP/1.1", fields))
    f.events(upgrade_requested("/chat", fields, subprotocols=["chat", "superchat"]))
    f.state("connecting", nextDeadline=None)  # the decision is the application's; no timer runs
    f.out()
    f.command("accept", {"subprotocol": "chat"})
    assert accept_for(RFC_KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    response = answer_101(RFC_KEY, [("Sec-WebSocket-Protocol", "chat")])
    f.events(opened("/chat", fields, response, subprotocol="chat"))
    f.out(head("HTTP/1.1 101 Switching Protocols", response))
    f.state("open")

    f = server("browser-request", "A browser's full request: many fields, cookies, an unknown extension (ignored, §9.1), two subprotocols", "6455 §4.2.1, §9.1",
               {"serverName": "swift-ws"})
    f.receive(head("GET /ws?room=42&x=%20 HTTP/1.1", CHROME_REQUEST))
    f.events(upgrade_requested("/ws?room=42&x=%20", CHROME_REQUEST, subprotocols=["chat.v2", "chat.v1"],
                               extensions=["permessage-deflate; client_max_window_bits"],
                               cookies=[("session", "abc123"), ("theme", "dark")]))
    f.command("accept", {"subprotocol": "chat.v1", "headers": [["Set-Cookie", "seen=1"]]})
    response = answer_101("x3JJHMbDL1EzLkh9GBhXDw==", [("Sec-WebSocket-Protocol", "chat.v1"), ("Server", "swift-ws"), ("Set-Cookie", "seen=1")])
    f.events(opened("/ws?room=42&x=%20", CHROME_REQUEST, response, subprotocol="chat.v1"))
    f.out(head("HTTP/1.1 101 Switching Protocols", response))

    f = server("curl-request", "A curl-style minimal request, then a masked text frame in the same read, delivered after accept", "6455 §4.2.1")
    f.receive(head("GET / HTTP/1.1", CURL_REQUEST), f.frame(TEXT, b"early"))
    f.events(upgrade_requested("/", CURL_REQUEST))
    f.command("accept", {})
    response = answer_101("AQIDBAUGBwgJCgsMDQ4PEA==")
    f.events(opened("/", CURL_REQUEST, response), text("early"))
    f.out(head("HTTP/1.1 101 Switching Protocols", response))
    f.command("sendText", "hi")
    f.out(f.out_frame(TEXT, b"hi"))

    f = server("extension-negotiated", "§9.1: the server's negotiator answers the offer it accepts; other extensions are ignored", "6455 §9.1",
               {"extensions": [{"name": "x-test"}]})
    fields = BASE_REQUEST + [("Sec-WebSocket-Extensions", "x-unknown, x-test; a=1, x-test")]
    f.receive(head("GET /chat HTTP/1.1", fields))
    f.events(upgrade_requested("/chat", fields, extensions=["x-unknown", "x-test; a=1", "x-test"]))
    f.command("accept", {})
    response = answer_101(RFC_KEY, [("Sec-WebSocket-Extensions", "x-test; a=1")])
    f.events(opened("/chat", fields, response, extensions=["x-test; a=1"]))
    f.out(head("HTTP/1.1 101 Switching Protocols", response))

    f = server("reject-403", "The application refuses (an origin not allowed): status, fields, body, Connection: close, end of stream", "6455 §4.2.2, §10.2")
    fields = BASE_REQUEST + [("Origin", "https://evil.test")]
    f.receive(head("GET /chat HTTP/1.1", fields))
    f.events(upgrade_requested("/chat", fields))
    f.command("reject", {"status": 403, "headers": [["X-Why", "origin"]], "body": hexs(b"forbidden")})
    f.events(closed(cause={"handshakeRejected": 403}))
    f.out(head("HTTP/1.1 403 Forbidden", [("X-Why", "origin"), ("Content-Type", "text/plain; charset=utf-8"),
                                          ("Content-Length", "9"), ("Connection", "close")], b"forbidden"), eos=True)

    bad = [
        ("method-post", "POST /chat HTTP/1.1", BASE_REQUEST, 405, "methodNotAllowed", [("Allow", "GET")]),
        ("http-1.0", "GET /chat HTTP/1.0", BASE_REQUEST, 400, "unsupportedHTTPVersion", []),
        ("bad-request-line", "GET /chat  HTTP/1.1", BASE_REQUEST, 400, "malformedRequest", []),
        ("absolute-form", "GET ws://h/chat HTTP/1.1", BASE_REQUEST, 400, "malformedRequest", []),
        ("no-host", "GET /chat HTTP/1.1", BASE_REQUEST[1:], 400, "missingHost", []),
        ("no-upgrade", "GET /chat HTTP/1.1", [BASE_REQUEST[0]], 426, "upgradeRequired",
         [("Upgrade", "websocket"), ("Connection", "Upgrade")]),
        ("upgrade-not-websocket", "GET /chat HTTP/1.1", [BASE_REQUEST[0], ("Upgrade", "h2c"), ("Connection", "Upgrade")], 426,
         "upgradeRequired", [("Upgrade", "websocket"), ("Connection", "Upgrade")]),
        ("connection-keep-alive", "GET /chat HTTP/1.1", [BASE_REQUEST[0], BASE_REQUEST[1], ("Connection", "keep-alive")], 400,
         "missingConnectionUpgrade", []),
        ("version-8", "GET /chat HTTP/1.1", BASE_REQUEST[:4] + [("Sec-WebSocket-Version", "8")], 426, "unsupportedVersion",
         [("Sec-WebSocket-Version", "13")]),
        ("key-15-bytes", "GET /chat HTTP/1.1", BASE_REQUEST[:3] + [("Sec-WebSocket-Key", base64.b64encode(bytes(15)).decode()), BASE_REQUEST[4]],
         400, "invalidKey", []),
        ("key-not-base64", "GET /chat HTTP/1.1", BASE_REQUEST[:3] + [("Sec-WebSocket-Key", "not base64 at all!!!!!!="), BASE_REQUEST[4]],
         400, "invalidKey", []),
        ("bad-extension-grammar", "GET /chat HTTP/1.1", BASE_REQUEST + [("Sec-WebSocket-Extensions", "x; a=\"b c\"")], 400,
         "invalidNegotiationHeader", []),
    ]
    for name, line, fields, status, code, extra in bad:
        f = server("bad/" + name, f"§4.2.1: {code} answers {status}", "6455 §4.2.1, §4.4")
        f.receive(head(line, fields))
        f.events({"handshakeFailed": code}, closed(cause={"handshakeFailed": code}))
        f.out(error_answer(status, code, extra), eos=True)

    f = server("bad/bare-lf", "RFC 9112 §2.2: a bare LF line ending is refused at once, before the head ends", "6455 §4.2.1; 9112 §2.2")
    f.receive(b"GET /chat HTTP/1.1\nHost: h\n")
    f.events({"handshakeFailed": "malformedRequest"}, closed(cause={"handshakeFailed": "malformedRequest"}))
    f.out(error_answer(400, "malformedRequest"), eos=True)

    # Limits, exact at the boundary.
    for over in (0, 1):
        target = "/" + "u" * (63 + over)
        f = server(f"limits/uri-{64 + over}", f"maxURILength 64: a {64 + over}-byte target is {'accepted' if not over else 'answered 414'}",
                   "9110 §15.5.15", {"maxURILength": 64})
        f.receive(head(f"GET {target} HTTP/1.1", BASE_REQUEST))
        if over:
            f.events({"handshakeFailed": "uriTooLong"}, closed(cause={"handshakeFailed": "uriTooLong"}))
            f.out(error_answer(414, "uriTooLong"), eos=True)
        else:
            f.events(upgrade_requested(target, BASE_REQUEST))
            f.out()
    section_size = len(head("X", BASE_REQUEST)) - len(b"X\r\n") - 2
    for over in (0, 1):
        limit = section_size + 20
        fields = BASE_REQUEST + [("X-Pad", "p" * (20 - len("X-Pad: \r\n") + over))]
        f = server(f"limits/header-{'over' if over else 'at'}-limit", f"maxHeaderSize {limit}: a field section of {limit + over} bytes is {'answered 431' if over else 'accepted'}",
                   "6585 §5", {"maxHeaderSize": limit})
        f.receive(head("GET /chat HTTP/1.1", fields))
        if over:
            f.events({"handshakeFailed": "headerFieldsTooLarge"}, closed(cause={"handshakeFailed": "headerFieldsTooLarge"}))
            f.out(error_answer(431, "headerFieldsTooLarge"), eos=True)
        else:
            f.events(upgrade_requested("/chat", fields))
            f.out()

    def request_timeout(path, description, options, deadline, code):
        """A partial request: nothing before `deadline` seconds, then 408 `code` and end of stream."""
        f = server(path, description, "6455 §4.2.1", options)
        f.receive(b"GET /chat HTTP/1.1\r\nHost: h\r\n")
        f.state("connecting", nextDeadline=deadline)
        f.tick(deadline - 0.001)
        f.events()
        f.tick(deadline)
        f.events({"handshakeFailed": code}, closed(cause={"handshakeFailed": code}))
        f.out(error_answer(408, code), eos=True)

    request_timeout("timeout", "No complete request within the handshake timeout: 408 and end of stream", {"timeout": 5}, 5, "handshakeTimeout")
    request_timeout("request-head-timeout", "A request head not complete within the request-head timeout (default 10 s, "
                    "the handshake's 120 s): 408 and end of stream", None, 10, "requestHeadTimeout")
    request_timeout("request-head-timeout-off", "requestHeadTimeout null: only the handshake timeout (30 s) bounds the request",
                    {"requestHeadTimeout": None, "timeout": 30}, 30, "handshakeTimeout")

    f = server("request-head-timeout-then-decision", "The request head within its 10 s; the application's decision may then "
               "take the rest of the handshake's 120 s", "6455 §4.2.1")
    f.tick(9.5)
    f.receive(head("GET / HTTP/1.1", CURL_REQUEST))
    f.events(upgrade_requested("/", CURL_REQUEST))
    f.tick(100)
    f.events()
    f.command("accept", {})
    response = answer_101("AQIDBAUGBwgJCgsMDQ4PEA==")
    f.events(opened("/", CURL_REQUEST, response))
    f.out(head("HTTP/1.1 101 Switching Protocols", response))

    f = server("eof-mid-request", "The client leaves before its request ends: closed, nothing sent", "6455 §4.2.1")
    f.receive(b"GET /chat HTTP/1.1\r\nHo")
    f.eof()
    f.events(closed(cause="transportClosed"))
    f.out()


def client_fixture(path, description, rfc, options=None):
    f = fixture("handshake/client/" + path, "client", description, rfc)
    f.handshake = {"url": "ws://example.com:8080/chat?room=1"}
    f.handshake.update(options or {})
    f.key_index = 4  # the first four keys' bytes are the handshake nonce
    return f


CLIENT_NONCE_KEY = base64.b64encode(b"".join(bytes.fromhex(k) for k in CLIENT_KEYS[:4])).decode()


def client_request(extra=(), target="/chat?room=1", host="example.com:8080"):
    fields = [("Host", host), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
              ("Sec-WebSocket-Key", CLIENT_NONCE_KEY), ("Sec-WebSocket-Version", "13")] + list(extra)
    return fields, head(f"GET {target} HTTP/1.1", fields)


def handshake_client():
    f = client_fixture("opened", "§4.1: the request, then a 101 and a frame in one read: opened, then the message", "6455 §4.1")
    fields, request = client_request()
    f.state("connecting", nextDeadline=300)
    f.out(request)
    response = answer_101(CLIENT_NONCE_KEY)
    f.receive(head("HTTP/1.1 101 Switching Protocols", response), f.frame(TEXT, b"welcome"))
    f.events(opened("/chat?room=1", fields, response, scheme="ws"), text("welcome"))
    f.command("sendText", "hi")
    f.out(f.out_frame(TEXT, b"hi"))

    f = client_fixture("subprotocol-and-extension", "§4.1: the server picks one offered subprotocol and accepts an offered extension", "6455 §4.1, §9.1",
                       {"subprotocols": ["v2", "v1"], "extensions": [{"name": "x-test", "offers": ["x-test; a=1"]}],
                        "headers": [["Origin", "http://example.com"]], "cookies": [["s", "1"]], "authorization": "tok"})
    fields, request = client_request([("Sec-WebSocket-Protocol", "v2, v1"), ("Sec-WebSocket-Extensions", "x-test; a=1"),
                                      ("Authorization", "Bearer tok"), ("Cookie", "s=1"), ("Origin", "http://example.com")])
    f.out(request)
    response = answer_101(CLIENT_NONCE_KEY, [("Sec-WebSocket-Protocol", "v1"), ("Sec-WebSocket-Extensions", "x-test; a=1")])
    f.receive(head("HTTP/1.1 101 Switching Protocols", response))
    f.events(opened("/chat?room=1", fields, response, scheme="ws", subprotocol="v1", extensions=["x-test; a=1"]))

    fail_cases = [
        ("wrong-accept", [("Sec-WebSocket-Accept", accept_for(RFC_KEY))], "invalidAccept"),
        ("subprotocol-not-offered", [("Sec-WebSocket-Accept", accept_for(CLIENT_NONCE_KEY)), ("Sec-WebSocket-Protocol", "chat")], "unexpectedSubprotocol"),
        ("extension-not-offered", [("Sec-WebSocket-Accept", accept_for(CLIENT_NONCE_KEY)), ("Sec-WebSocket-Extensions", "permessage-deflate")], "unexpectedExtension"),
    ]
    for name, accept_fields, code in fail_cases:
        f = client_fixture("bad/" + name, f"§4.1: {code} fails the connection", "6455 §4.1")
        f.out(client_request()[1])
        f.receive(head("HTTP/1.1 101 Switching Protocols", [("Upgrade", "websocket"), ("Connection", "Upgrade")] + accept_fields))
        f.events({"handshakeFailed": code}, closed(cause={"handshakeFailed": code}))
        f.out(eos=True)

    rejections = [
        ("rejected-401", "§4.1: a 401 is reported with its fields and body (Content-Length), then closed", "6455 §4.1",
         "401 Unauthorized", [("WWW-Authenticate", "Bearer"), ("Content-Length", "12")], b"log in first", b"log in first"),
        ("rejected-chunked", "A rejection body in chunked transfer coding is decoded", "9112 §7.1",
         "307 Temporary Redirect", [("Location", "ws://elsewhere/"), ("Transfer-Encoding", "chunked")],
         b"4\r\nmove\r\n3;ext=1\r\nd o\r\n0\r\n\r\n", b"moved o"),
    ]
    for name, description, rfc, status, fields, wire_body, body in rejections:
        f = client_fixture(name, description, rfc)
        f.out(client_request()[1])
        f.receive(head("HTTP/1.1 " + status, fields, wire_body))
        code = int(status.split()[0])
        f.events({"rejected": {"status": code, "headers": [list(x) for x in fields], "body": hexs(body), "truncated": False}},
                 closed(cause={"handshakeRejected": code}))
        f.out(eos=True)

    # HTTP/1.0 servers (Python's http.server by default) answer redirects and refusals too;
    # only the 101 itself must be HTTP/1.1.
    f = client_fixture("rejected-http-1.0", "An HTTP/1.0 redirect is reported as a rejection, like an HTTP/1.1 one", "9110 §15.4")
    f.out(client_request()[1])
    fields = [("Location", "ws://elsewhere/"), ("Content-Length", "0")]
    f.receive(head("HTTP/1.0 302 Found", fields))
    f.events({"rejected": {"status": 302, "headers": [list(x) for x in fields], "body": "", "truncated": False}},
             closed(cause={"handshakeRejected": 302}))
    f.out(eos=True)
    f = client_fixture("bad/101-http-1.0", "§4.1: a 101 in HTTP/1.0 fails the connection (the upgrade needs HTTP/1.1)", "6455 §4.1")
    f.out(client_request()[1])
    f.receive(head("HTTP/1.0 101 Switching Protocols", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                                        ("Sec-WebSocket-Accept", accept_for(CLIENT_NONCE_KEY))]))
    f.events({"handshakeFailed": "malformedResponse"}, closed(cause={"handshakeFailed": "malformedResponse"}))
    f.out(eos=True)

    f = client_fixture("timeout", "No answer within the handshake timeout fails the connection", "6455 §4.1", {"timeout": 3})
    f.out(client_request()[1])
    f.tick(3)
    f.events({"handshakeFailed": "handshakeTimeout"}, closed(cause={"handshakeFailed": "handshakeTimeout"}))
    f.out(eos=True)


def handshake():
    handshake_server()
    handshake_client()


# ---------------------------------------------------------------------------------------------
# permessage-deflate (RFC 7692). Compressed bytes come from Python's zlib (raw DEFLATE, level 6,
# memLevel 8, Z_SYNC_FLUSH, the trailing 00 00 ff ff removed), or are the RFC's own examples.

class Compressor:
    """One direction's compression context, as RFC 7692 §7.2.1 describes it."""

    def __init__(self, window=15, takeover=True, level=6, strategy=zlib.Z_DEFAULT_STRATEGY, mem_level=8):
        self.args = (level, zlib.DEFLATED, -window, mem_level, strategy)
        self.takeover = takeover
        self.c = zlib.compressobj(*self.args)

    def message(self, data: bytes) -> bytes:
        out = self.c.compress(data) + self.c.flush(zlib.Z_SYNC_FLUSH)
        if not self.takeover:
            self.c = zlib.compressobj(*self.args)
        if not out:
            return b"\x00"  # nothing to flush: the empty stored block's first octet (§7.2.3.6)
        assert out.endswith(b"\x00\x00\xff\xff")
        return out[:-4]


HELLO_DEFLATED = bytes.fromhex("f248cdc9c90700")
RSV1 = 4


def deflate_fixture(path, role, description, rfc, agreed="permessage-deflate", deflate_config=None, config=None):
    f = fixture("deflate/" + path, role, description, rfc, config)
    f.deflate = {"agreed": agreed, "configuration": {"minimumSize": 0, **(deflate_config or {})}}
    return f


def deflate_examples():
    assert Compressor().message(b"Hello") == HELLO_DEFLATED
    for role in ROLES:
        f = deflate_fixture(f"rfc7692-7.2.3.1-hello-{role}", role, "§7.2.3.1: \"Hello\" in one compressed frame, both ways", "7692 §7.2.3.1")
        f.receive(f.frame(TEXT, HELLO_DEFLATED, rsv=RSV1))
        f.events(text("Hello"))
        f.command("sendText", "Hello")
        f.out(f.out_frame(TEXT, HELLO_DEFLATED, rsv=RSV1))

    f = deflate_fixture("rfc7692-7.2.3.1-fragmented", "server", "§7.2.3.1: the compressed \"Hello\" split over two frames; RSV1 on the first only", "7692 §7.2.3.1, §6.1")
    f.receive(f.frame(TEXT, HELLO_DEFLATED[:3], fin=False, rsv=RSV1), f.frame(CONT, HELLO_DEFLATED[3:]))
    f.events(text("Hello"))

    f = deflate_fixture("rfc7692-7.2.3.2-context-takeover", "server", "§7.2.3.2: the second \"Hello\" refers to the first: f2 00 11 00 00, both ways", "7692 §7.2.3.2")
    second = bytes.fromhex("f200110000")
    c = Compressor()
    assert c.message(b"Hello") == HELLO_DEFLATED and c.message(b"Hello") == second
    f.receive(f.frame(TEXT, HELLO_DEFLATED, rsv=RSV1), f.frame(TEXT, second, rsv=RSV1))
    f.events(text("Hello"), text("Hello"))
    f.command("sendText", "Hello")
    f.command("sendText", "Hello")
    f.out(f.out_frame(TEXT, HELLO_DEFLATED, rsv=RSV1), f.out_frame(TEXT, second, rsv=RSV1))

    f = deflate_fixture("no-context-takeover", "server", "§7.1.1.1: with server_no_context_takeover our context is reset: both messages compress alike",
                        "7692 §7.1.1.1, §7.2.3.2", agreed="permessage-deflate; server_no_context_takeover")
    f.command("sendText", "Hello")
    f.command("sendText", "Hello")
    f.out(f.out_frame(TEXT, HELLO_DEFLATED, rsv=RSV1), f.out_frame(TEXT, HELLO_DEFLATED, rsv=RSV1))

    examples = [
        ("rfc7692-7.2.3.3-stored-block", "§7.2.3.3: an uncompressed (stored) DEFLATE block", "00 05 00 fa ff 48 65 6c 6c 6f 00"),
        ("rfc7692-7.2.3.4-bfinal", "§7.2.3.4: a block with BFINAL set, then the octet that lets the tail be appended", "f3 48 cd c9 c9 07 00 00"),
        ("rfc7692-7.2.3.5-two-blocks", "§7.2.3.5: two DEFLATE blocks in one message", "f2 48 05 00 00 00 ff ff ca c9 c9 07 00"),
    ]
    for name, description, payload in examples:
        f = deflate_fixture(name, "server", description, "7692 " + name.split("-")[1])
        f.receive(f.frame(TEXT, bytes.fromhex(payload), rsv=RSV1), f.frame(TEXT, HELLO_DEFLATED, rsv=RSV1))
        f.events(text("Hello"), text("Hello"))

    f = deflate_fixture("rfc7692-7.2.3.6-empty", "client", "§7.2.3.6: the empty message is the one octet 00, received and sent, also after another message",
                        "7692 §7.2.3.6")
    f.receive(f.frame(TEXT, b"\x00", rsv=RSV1), f.frame(BINARY, b"\x00", rsv=RSV1))
    f.events(text(""), binary(b""))
    f.command("sendText", "")
    f.command("sendText", "Hello")
    f.command("sendBinary", "")
    f.out(f.out_frame(TEXT, b"\x00", rsv=RSV1), f.out_frame(TEXT, HELLO_DEFLATED, rsv=RSV1), f.out_frame(BINARY, b"\x00", rsv=RSV1))


def deflate_rules():
    for role in ROLES:
        f = deflate_fixture(f"rules/{role}-rsv1-on-control", role, "§6.1: RSV1 on a control frame fails the connection (1002)", "7692 §6.1")
        violation(f, [f.frame(PING, b"", rsv=RSV1)], "reservedBitsSet", 1002)
        f = deflate_fixture(f"rules/{role}-rsv1-on-continuation", role, "§6.1: RSV1 on a continuation frame fails the connection (1002)", "7692 §6.1")
        violation(f, [f.frame(TEXT, HELLO_DEFLATED[:3], fin=False, rsv=RSV1), f.frame(CONT, HELLO_DEFLATED[3:], rsv=RSV1)], "reservedBitsSet", 1002)
        f = deflate_fixture(f"rules/{role}-rsv2", role, "§5.2: RSV2 means nothing under permessage-deflate (1002)", "6455 §5.2; 7692 §6")
        violation(f, [f.frame(TEXT, b"x", rsv=2)], "reservedBitsSet", 1002)
        f = deflate_fixture(f"rules/{role}-invalid-data", role, "§7.2.2: a payload that is not DEFLATE fails with 1007", "7692 §7.2.2")
        violation(f, [f.frame(BINARY, b"\xff\xff\xff", rsv=RSV1)], "invalidCompressedData", 1007)
        f = deflate_fixture(f"rules/{role}-truncated", role, "§7.2.2: a message that ends inside a DEFLATE block fails with 1007", "7692 §7.2.2")
        violation(f, [f.frame(TEXT, HELLO_DEFLATED[:4], rsv=RSV1)], "invalidCompressedData", 1007)
    f = deflate_fixture("rules/invalid-utf8-inside", "server", "§8.1 after inflating: compressed text that is not UTF-8 fails with 1007", "6455 §8.1; 7692 §6.2")
    violation(f, [f.frame(TEXT, Compressor().message(b"ok \xff"), rsv=RSV1)], "invalidUTF8", 1007)
    f = deflate_fixture("rules/binary-uncompressed-beside", "server", "§6: a message without RSV1 is not compressed, between compressed ones", "7692 §6")
    c = Compressor()
    f.receive(f.frame(TEXT, c.message(b"one"), rsv=RSV1), f.frame(BINARY, b"raw"), f.frame(TEXT, c.message(b"one two"), rsv=RSV1))
    f.events(text("one"), binary(b"raw"), text("one two"))


def deflate_limits():
    """maxDecompressedSize (or maxMessageSize) bounds the inflated message, exactly at the limit."""
    n = 1000
    for delivery in ("wholeMessages", "streaming"):
        for key in ("maxDecompressedSize", "maxMessageSize"):
            for over in (0, 1):
                data = b"a" * (n + over)
                f = deflate_fixture(f"limits/{delivery}-{key}-{'over' if over else 'at'}-limit", "server",
                                    f"{key} {n}, {delivery}: a message inflating to {n + over} bytes {'fails with 1009' if over else 'is delivered'}",
                                    "7692 §8.1", config={key: n, "delivery": delivery})
                frame = f.frame(TEXT, Compressor().message(data), rsv=RSV1)
                if over:
                    # Streaming delivers the bytes up to the limit first, however the input was split.
                    before = (fragment("text", data[:n], False),) if delivery == "streaming" else ()
                    violation(f, [frame], "decompressedMessageTooBig", 1009, before=before)
                else:
                    f.receive(frame)
                    f.events(fragment("text", data, True) if delivery == "streaming" else text(data.decode()))
    # Incompressible data grows a little under deflate (stored blocks): a message that inflates
    # to exactly the limit is accepted though its frame is larger on the wire; the wire limit
    # of compressed frames is the limit plus deflate's worst-case growth (1000 + 151 here).
    noise = random.Random(7692).randbytes(n + 1)
    for over in (0, 1):
        data = noise[:n + over]
        payload = Compressor().message(data)
        assert len(payload) > n
        f = deflate_fixture(f"limits/incompressible-{'over' if over else 'at'}-limit", "server",
                            f"maxMessageSize and maxFrameSize {n}: an incompressible message inflating to {n + over} bytes, "
                            f"{len(payload)} on the wire, {'fails with 1009' if over else 'is delivered'}",
                            "7692 §8.1", config={"maxMessageSize": n, "maxFrameSize": n})
        frame = f.frame(BINARY, payload, rsv=RSV1)
        if over:
            violation(f, [frame], "decompressedMessageTooBig", 1009)
        else:
            f.receive(frame)
            f.events(binary(data))
    f = deflate_fixture("limits/compressed-frame-over-wire-bound", "server",
                        f"maxFrameSize {n}: a compressed frame of {n + 152} bytes on the wire, past deflate's worst-case growth ({n + 151}), fails with 1009 at its header",
                        "7692 §8.1", config={"maxMessageSize": n, "maxFrameSize": n})
    violation(f, [f.frame(BINARY, b"\x00" * (n + 152), rsv=RSV1)], "frameTooBig", 1009)
    f = deflate_fixture("limits/streaming-bomb-in-pieces", "client",
                        "Streaming: 300,000 bytes inflate from a few hundred, delivered in pieces, the whole bounded by maxDecompressedSize",
                        "7692 §8.1", config={"maxDecompressedSize": 300_000, "delivery": "streaming"})
    data = bytes(range(256)) * 1171 + b"tail"
    assert len(data) == 299_780
    f.receive(f.frame(BINARY, Compressor().message(data), rsv=RSV1))
    f.events(fragment("binary", data, True))


def deflate_slices():
    """decodeSliceSize: a compressed message inflates a slice per nextEvent call (a loop serves
    other connections between slices); the events and limits are those of one call."""
    n = 1000
    for delivery in ("wholeMessages", "streaming"):
        data = (b"slice " * 2000)[:10_000]
        f = deflate_fixture(f"slices/{delivery}-message-in-slices", "server",
                            f"decodeSliceSize 997, {delivery}: a message inflating to 10,000 bytes is decoded in 11 slices and "
                            "delivered as with no slice", "7692 §6.2", config={"decodeSliceSize": 997, "delivery": delivery})
        c = Compressor()
        f.receive(f.frame(TEXT, c.message(data), rsv=RSV1), f.frame(BINARY, c.message(b"next"), rsv=RSV1))
        f.events(fragment("text", data, True) if delivery == "streaming" else text(data.decode()),
                 fragment("binary", b"next", True) if delivery == "streaming" else binary(b"next"))
        for over in (0, 1):
            data = b"b" * (n + over)
            f = deflate_fixture(f"slices/{delivery}-limit-{'over' if over else 'at'}", "server",
                                f"decodeSliceSize 64, maxDecompressedSize {n}, {delivery}: inflating to {n + over} bytes in slices "
                                f"{'fails with 1009' if over else 'is delivered'}, exactly as in one call", "7692 §8.1",
                                config={"decodeSliceSize": 64, "maxDecompressedSize": n, "delivery": delivery})
            frame = f.frame(BINARY, Compressor().message(data), rsv=RSV1)
            if over:
                before = (fragment("binary", data[:n], False),) if delivery == "streaming" else ()
                violation(f, [frame], "decompressedMessageTooBig", 1009, before=before)
            else:
                f.receive(frame)
                f.events(fragment("binary", data, True) if delivery == "streaming" else binary(data))


def deflate_sending():
    for role in ("server", "client"):
        data = "".join(random.Random(1000).choices("abcdefghij klmnop", k=11_000)).encode()
        f = deflate_fixture(f"send/{role}-in-slices", role,
                            "encodeSliceSize 1000, outboundFragmentSize 300: an 11,000-byte message deflated in 11 slices gives the "
                            "frames of one compression, then the message sent after it",
                            "7692 §6.1, §7.2.1", config={"encodeSliceSize": 1000, "outboundFragmentSize": 300})
        c = Compressor()
        payload = c.message(data)
        f.command("sendText", data.decode())
        f.command("sendText", "next")
        frames = [payload[i:i + 300] for i in range(0, len(payload), 300)]
        # (The runner, as an adapter, encodes the remaining slices before the next command.)
        f.out(*[f.out_frame(TEXT if i == 0 else CONT, fr, fin=(i == len(frames) - 1), rsv=RSV1 if i == 0 else 0)
                for i, fr in enumerate(frames)], f.out_frame(TEXT, c.message(b"next"), rsv=RSV1))

    f = deflate_fixture("send/compress-false", "client", "A message sent with compress: false goes out as it is, without RSV1", "7692 §6")
    f.command("sendText", "Hello", compress=False)
    f.command("sendText", "Hello")
    f.out(f.out_frame(TEXT, b"Hello"), f.out_frame(TEXT, HELLO_DEFLATED, rsv=RSV1))

    f = deflate_fixture("send/minimum-size", "server", "minimumSize 6: shorter messages go uncompressed", "7692 §6", deflate_config={"minimumSize": 6})
    c = Compressor()
    f.command("sendText", "Hello")
    f.command("sendText", "Hello!")
    f.out(f.out_frame(TEXT, b"Hello"), f.out_frame(TEXT, c.message(b"Hello!"), rsv=RSV1))

    f = deflate_fixture("send/fragments", "server", "sendFragment compresses and flushes each piece; RSV1 on the first frame only; the last piece's tail removed",
                        "7692 §6.1, §7.2.1")
    c = zlib.compressobj(6, zlib.DEFLATED, -15, 8)
    piece1 = c.compress(b"Hello, ") + c.flush(zlib.Z_SYNC_FLUSH)
    piece2 = c.compress(b"world") + c.flush(zlib.Z_SYNC_FLUSH)
    assert piece2.endswith(b"\x00\x00\xff\xff")
    f.command("sendFragment", {"kind": "text", "data": hexs(b"Hello, "), "final": False})
    f.command("sendFragment", {"kind": "text", "data": hexs(b"world"), "final": True})
    f.out(f.out_frame(TEXT, piece1, fin=False, rsv=RSV1), f.out_frame(CONT, piece2[:-4]))

    f = deflate_fixture("send/split-into-frames", "client", "outboundFragmentSize splits the compressed payload; RSV1 on the first frame only",
                        "7692 §6.1", config={"outboundFragmentSize": 4})
    f.command("sendText", "Hello")
    f.out(f.out_frame(TEXT, HELLO_DEFLATED[:4], fin=False, rsv=RSV1), f.out_frame(CONT, HELLO_DEFLATED[4:]))

    f = deflate_fixture("send/window-9", "server", "server_max_window_bits=9: we compress with a 512-byte window (a 600-byte repeat is out of reach)",
                        "7692 §7.1.2.1", agreed="permessage-deflate; server_max_window_bits=9")
    data = bytes((i * 7) % 251 for i in range(600)) * 2
    f.command("sendBinary", hexs(data))
    f.out(f.out_frame(BINARY, Compressor(window=9).message(data), rsv=RSV1))
    assert Compressor(window=9).message(data) != Compressor().message(data)

    f = deflate_fixture("send/window-8-rle", "client", "client_max_window_bits=8: zlib cannot compress with 8 bits, so we use 9 with distance-1 matches only",
                        "7692 §7.1.2.2", agreed="permessage-deflate; client_max_window_bits=8")
    data = b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabcabcabcabcabcabc"
    wire = Compressor(window=9, strategy=zlib.Z_RLE).message(data)
    assert zlib.decompressobj(-8).decompress(wire + b"\x00\x00\xff\xff") == data
    f.command("sendText", data.decode())
    f.out(f.out_frame(TEXT, wire, rsv=RSV1))

    # Whole messages under no context takeover: under 1 KiB our compressor has memory level 4
    # (its 4 KiB hash table is what the reset after each message clears), and the bytes are
    # still zlib's at level 8, because zlib ends a block at 1,023 symbols. At 1,024 bytes of
    # literals level 4 would end a block one symbol early: one byte more, so that size is
    # compressed at the configured level. Between the sends a compressed message is received,
    # which needs a decompressor of the connection's own (given up again when idle: the lent-
    # buffer replay releases idle memory after every step).
    f = deflate_fixture("send/small-whole-messages", "server",
                        "No context takeover: a message under 1 KiB gives zlib's bytes at memory level 8 though compressed at 4; "
                        "at 1,024 bytes (where level 4 would add a byte) the configured level; a received message between",
                        "7692 §7.1.1.1, §7.2.1",
                        agreed="permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    chat = b'{"type":"chat","room":"lobby","text":"hello hello, is anyone in the lobby?"}'
    rng = random.Random(1000)  # noise1024 is one whose level-4 compression is a byte longer
    noise1023 = bytes(rng.randrange(256) for _ in range(1023))
    noise1024 = bytes(rng.randrange(256) for _ in range(1024))
    def ours(data): return Compressor(takeover=False).message(data)
    assert Compressor(takeover=False, mem_level=4).message(noise1023) == ours(noise1023)
    assert len(Compressor(takeover=False, mem_level=4).message(noise1024)) == len(ours(noise1024)) + 1  # 1,031 against 1,030
    f.command("sendText", chat.decode())
    f.receive(f.frame(TEXT, ours(b"hello back"), rsv=RSV1))
    f.events(text("hello back"))
    f.command("sendText", chat.decode())
    f.command("sendBinary", hexs(noise1023))
    f.command("sendBinary", hexs(noise1024))
    f.out(f.out_frame(TEXT, ours(chat), rsv=RSV1), f.out_frame(TEXT, ours(chat), rsv=RSV1),
          f.out_frame(BINARY, ours(noise1023), rsv=RSV1), f.out_frame(BINARY, ours(noise1024), rsv=RSV1))


def deflate_handshake():
    deflate = {"name": "permessage-deflate", "deflate": {"minimumSize": 0}}

    def server(path, description, offers, answer, options=None):
        f = fixture("deflate/handshake/server-" + path, "server", description, "7692 §7.1")
        f.handshake = {"extensions": [{"name": "permessage-deflate", "deflate": {"minimumSize": 0, **(options or {})}}]}
        fields = BASE_REQUEST + [("Sec-WebSocket-Extensions", offers)]
        f.receive(head("GET /chat HTTP/1.1", fields))
        offered = [o.strip() for o in offers.split(",")]
        f.events(upgrade_requested("/chat", fields, extensions=offered))
        f.command("accept", {})
        response = answer_101(RFC_KEY, [("Sec-WebSocket-Extensions", answer)] if answer else [])
        f.events(opened("/chat", fields, response, extensions=[answer] if answer else []))
        f.out(head("HTTP/1.1 101 Switching Protocols", response))
        return f

    f = server("browser-offer", "A browser's offer (client_max_window_bits, no value): accepted as it is; then messages compress both ways",
               "permessage-deflate; client_max_window_bits", "permessage-deflate")
    f.receive(f.frame(TEXT, HELLO_DEFLATED, rsv=RSV1))
    f.events(text("Hello"))
    f.command("sendText", "Hello")
    f.out(f.out_frame(TEXT, HELLO_DEFLATED, rsv=RSV1))

    server("all-parameters", "Every parameter offered: server_no_context_takeover must be answered, server_max_window_bits answered with at most the offer",
           "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12",
           "permessage-deflate; server_no_context_takeover; server_max_window_bits=10")
    server("configured-limits", "Our configuration: reset our context, ask the client to reset its, a 12-bit window for us, 10 for the client",
           "permessage-deflate; client_max_window_bits",
           "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=10",
           {"serverNoContextTakeover": True, "clientNoContextTakeover": True, "serverMaxWindowBits": 12, "clientMaxWindowBits": 10})
    server("client-window-not-offered", "§7.1.2.2: without client_max_window_bits in the offer, we may not limit the client's window",
           "permessage-deflate", "permessage-deflate", {"clientMaxWindowBits": 10})
    server("window-8-declined", "zlib cannot compress with 8 bits: the offer demanding server_max_window_bits=8 is declined, the next accepted",
           "permessage-deflate; server_max_window_bits=8, permessage-deflate", "permessage-deflate")
    server("window-8-configured", "Our own preference of 8 bits is answered as 9",
           "permessage-deflate", "permessage-deflate; server_max_window_bits=9", {"serverMaxWindowBits": 8})
    for name, offer in [("unknown-parameter", "permessage-deflate; x=1"), ("duplicate", "permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
                        ("value-on-flag", "permessage-deflate; client_no_context_takeover=1"), ("window-16", "permessage-deflate; server_max_window_bits=16"),
                        ("window-leading-zero", "permessage-deflate; server_max_window_bits=09"), ("window-without-value", "permessage-deflate; server_max_window_bits")]:
        server("declined-" + name, f"§7.1: an invalid offer ({name}) is declined, not failed; the connection opens uncompressed", offer, None)

    def client(path, description, answer, options=None, code=None):
        f = fixture("deflate/handshake/client-" + path, "client", description, "7692 §7.1")
        opts = {"minimumSize": 0, **(options or {})}
        f.handshake = {"url": "ws://example.com:8080/chat?room=1", "extensions": [{"name": "permessage-deflate", "deflate": opts}]}
        f.key_index = 4
        offer = ["permessage-deflate"]
        if opts.get("serverNoContextTakeover"): offer.append("server_no_context_takeover")
        if opts.get("clientNoContextTakeover"): offer.append("client_no_context_takeover")
        if "serverMaxWindowBits" in opts: offer.append(f"server_max_window_bits={opts['serverMaxWindowBits']}")
        offer.append("client_max_window_bits" + (f"={opts['clientMaxWindowBits']}" if "clientMaxWindowBits" in opts else ""))
        fields, request = client_request([("Sec-WebSocket-Extensions", "; ".join(offer))])
        f.out(request)
        response = answer_101(CLIENT_NONCE_KEY, [("Sec-WebSocket-Extensions", answer)])
        f.receive(head("HTTP/1.1 101 Switching Protocols", response))
        if code:
            f.events({"handshakeFailed": code}, closed(cause={"handshakeFailed": code}))
            f.out(eos=True)
        else:
            f.events(opened("/chat?room=1", fields, response, scheme="ws", extensions=[answer]))
        return f

    f = client("accepted", "The server accepts our offer: messages compress both ways", "permessage-deflate")
    f.receive(f.frame(TEXT, HELLO_DEFLATED, rsv=RSV1))
    f.events(text("Hello"))
    f.command("sendText", "Hello")
    f.out(f.out_frame(TEXT, HELLO_DEFLATED, rsv=RSV1))
    f = client("client-no-context-takeover", "The server requires client_no_context_takeover: we reset our context after each message",
               "permessage-deflate; client_no_context_takeover")
    f.command("sendText", "Hello")
    f.command("sendText", "Hello")
    f.out(f.out_frame(TEXT, HELLO_DEFLATED, rsv=RSV1), f.out_frame(TEXT, HELLO_DEFLATED, rsv=RSV1))
    client("server-window-smaller", "server_max_window_bits at or below our limit is accepted", "permessage-deflate; server_max_window_bits=9",
           {"serverMaxWindowBits": 10})
    for name, answer, options in [
        ("unknown-parameter", "permessage-deflate; x", None),
        ("bare-client-window", "permessage-deflate; client_max_window_bits", None),
        ("server-window-larger", "permessage-deflate; server_max_window_bits=12", {"serverMaxWindowBits": 10}),
        ("server-window-missing", "permessage-deflate", {"serverMaxWindowBits": 10}),
        ("no-context-takeover-missing", "permessage-deflate", {"serverNoContextTakeover": True}),
        ("client-window-larger", "permessage-deflate; client_max_window_bits=12", {"clientMaxWindowBits": 10}),
        ("duplicate", "permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    ]:
        client("bad-" + name, f"§7.1: an answer the offer does not allow ({name}) fails the connection", answer, options, code="unexpectedExtension")


def deflate():
    deflate_examples()
    deflate_rules()
    deflate_limits()
    deflate_slices()
    deflate_sending()
    deflate_handshake()


def application_fail():
    """WSProtocol.fail: the application fails the connection (a shared memory budget ran out)."""
    for role in ("server", "client"):
        f = fixture(f"core/application-fail/{role}-memory-budget", role,
                    "fail(memoryBudgetExceeded) mid-message: failed, our Close 1013, end of stream; the rest of the "
                    "message and later input are dropped", "6455 §7.1.7, §7.4.1 (1013)")
        f.receive(f.frame(BINARY, b"first part", fin=False))
        f.events()
        f.command("fail", {"code": "memoryBudgetExceeded", "detail": "budget"})
        f.events(failed("memoryBudgetExceeded"))
        f.out(f.out_close(1013, "memoryBudgetExceeded"), eos=True)
        f.receive(f.frame(CONT, b"rest"), f.frame(TEXT, b"later"))
        f.events()
        f.eof()
        f.events(closed(sent=cf(1013, "memoryBudgetExceeded"), initiator="local", cause={"protocolError": "memoryBudgetExceeded"}))
        f.command("fail", {"code": "memoryBudgetExceeded"}, error="notOpen")
        f.state("closed", nextDeadline=None)


def main():
    rfc_examples()
    lengths()
    reads()
    fragmentation()
    frame_rules()
    utf8()
    closing()
    control()
    sending()
    timers()
    application_fail()
    handshake()
    deflate()
    for folder in GENERATED:
        shutil.rmtree(os.path.join(ROOT, folder), ignore_errors=True)
    seen = set()
    for f in FIXTURES:
        assert f.path not in seen, f.path
        seen.add(f.path)
        path = os.path.join(ROOT, f.path + ".json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as out:
            json.dump(f.json(), out, indent=1, ensure_ascii=False)
            out.write("\n")
    print(f"wrote {len(FIXTURES)} fixtures")


if __name__ == "__main__":
    main()
