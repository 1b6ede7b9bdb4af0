// permessage-deflate benchmarks: our codec against zlib called directly on the same data in the
// same run, a compressed echo through a server engine, and a decompression bomb's peak memory.
import CWSZlib
import Glibc
import WSCore
import WSDeflate
import WSTesting

/// Deterministic JSON-like text: records with ids, names, flags and scores.
func jsonText(bytes: Int, seed: UInt64) -> [UInt8] {
    var rng = WSSeededRandom(seed: seed)
    var out: [UInt8] = Array("[".utf8)
    while out.count < bytes {
        let id = rng.next() % 1_000_000
        out += Array("{\"id\":\(id),\"user\":\"user\(id % 5000)\",\"active\":\(id % 3 == 0),\"score\":\(rng.next() % 10_000),\"tags\":[\"t\(id % 17)\",\"t\(id % 31)\"]},".utf8)
    }
    return Array(out.prefix(bytes - 1)) + Array("]".utf8)
}

/// zlib used directly, as an application without swift-ws would: one raw DEFLATE stream per
/// direction, Z_SYNC_FLUSH per message, into a preallocated buffer.
final class DirectZlib {
    let d = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    let i = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    var out = [UInt8](repeating: 0, count: 1 << 20)

    init() {
        d.initialize(to: z_stream())
        i.initialize(to: z_stream())
        precondition(cws_deflateInit2(d, 6, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK)
        precondition(cws_inflateInit2(i, -15) == Z_OK)
    }

    deinit {
        deflateEnd(d)
        inflateEnd(i)
        d.deallocate()
        i.deallocate()
    }

    /// Compresses one message (then resets: no context takeover); returns the compressed size.
    func deflateMessage(_ data: [UInt8]) -> Int {
        let n = data.withUnsafeBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                d.pointee.next_in = UnsafeMutablePointer(mutating: inp.baseAddress)
                d.pointee.avail_in = UInt32(inp.count)
                d.pointee.next_out = o.baseAddress
                d.pointee.avail_out = UInt32(o.count)
                precondition(deflate(d, Z_SYNC_FLUSH) == Z_OK)
                return o.count - Int(d.pointee.avail_out) - 4
            }
        }
        deflateReset(d)
        return n
    }

    /// Inflates one message (the payload, then 00 00 ff ff), then resets; returns the size.
    func inflateMessage(_ payload: [UInt8]) -> Int {
        let n = payload.withUnsafeBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                i.pointee.next_out = o.baseAddress
                i.pointee.avail_out = UInt32(o.count)
                for (base, count) in [(inp.baseAddress!, inp.count), (DirectZlib.tail.baseAddress!, 4)] {
                    i.pointee.next_in = UnsafeMutablePointer(mutating: base)
                    i.pointee.avail_in = UInt32(count)
                    let rc = inflate(i, Z_SYNC_FLUSH)
                    precondition(rc == Z_OK || rc == Z_BUF_ERROR)
                }
                return o.count - Int(i.pointee.avail_out)
            }
        }
        inflateReset(i)
        return n
    }

    nonisolated(unsafe) static let tail: UnsafeBufferPointer<UInt8> = {
        let p = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 4)
        _ = p.initialize(from: [0, 0, 0xFF, 0xFF])
        return UnsafeBufferPointer(p)
    }()
}

func deflateBench(_ timer: Timer) throws {
    let size = 16 << 10
    let messages = (0..<8).map { jsonText(bytes: size, seed: UInt64($0)) }
    let zlib = DirectZlib()
    let compressed = messages.map { Array(zlib.out[0..<zlib.deflateMessage($0)]) }
    let ratio = Double(compressed.map(\.count).reduce(0, +)) / Double(size * messages.count)
    print("permessage-deflate, 16 KiB JSON-like text (compressed to \(String(format2: ratio * 100))%), no context takeover, level 6")

    // The codec (what the engine calls) against zlib directly, in MB/s of uncompressed bytes.
    let params = WSDeflateParameters(send: .init(noContextTakeover: true), receive: .init(noContextTakeover: true))
    let codec = WSDeflateTransform(parameters: params)
    var out: [UInt8] = []
    var k = 0
    let deflated = timer.compare(units: Double(size), ours: {
        out.removeAll(keepingCapacity: true)
        let message = messages[k & 7]
        codec.encode(message.span, isFinal: true, into: &out)
        k &+= 1
        blackHole(out.count)
    }, baseline: {
        blackHole(zlib.deflateMessage(messages[k & 7]))
        k &+= 1
    })
    row("deflate (codec)", deflated.ours, "MB/s", baseline: ("zlib direct", deflated.baseline))
    let inflated = timer.compare(units: Double(size), ours: {
        out.removeAll(keepingCapacity: true)
        let payload = compressed[k & 7]
        _ = try? codec.decode(payload.span, isFinal: true, into: &out, pauseAfter: .max, limit: 1 << 20)
        k &+= 1
        blackHole(out.count)
    }, baseline: {
        blackHole(zlib.inflateMessage(compressed[k & 7]))
        k &+= 1
    })
    row("inflate (codec)", inflated.ours, "MB/s", baseline: ("zlib direct", inflated.baseline))

    // A compressed echo through a server engine: parse, unmask, inflate, validate UTF-8, make
    // the String, compress the reply and frame it. Baseline: only zlib's inflate + deflate.
    let client = WSPerMessageDeflate()
    let agreed = WSExtensionElement.parse(["permessage-deflate; server_no_context_takeover; client_no_context_takeover"])![0]
    let clientCodec = client.makeTransform(agreed: agreed, role: .client)!
    var frames: [[UInt8]] = []
    for m in messages {
        var payload: [UInt8] = []
        clientCodec.encode(m.span, isFinal: true, into: &payload)
        var frame: [UInt8] = []
        let key = WSMaskKey(rawValue: 0x3D21_FA37)
        WSFrameHeader(rsv: WSFrameHeader.rsv1, opcode: .text, maskKey: key, payloadLength: UInt64(payload.count)).encode(into: &frame)
        key.apply(to: &payload)
        frames.append(frame + payload)
    }
    var config = WSProtocol.Configuration()
    config.pingInterval = nil
    var server = try WSProtocol(role: .server, configuration: config, now: .zero, transform: client.makeTransform(agreed: agreed, role: .server))
    let echo = timer.compare(units: 1, ours: {
        frames[k & 7].withUnsafeBytes { server.receive($0) }
        k &+= 1
        while let event = server.nextEvent() {
            if case .text(let s) = event { try? server.sendText(s) }
        }
        server.withOutboundBytes { blackHole($0.count) }
        server.consumeOutbound(server.bufferedAmount)
    }, baseline: {
        blackHole(zlib.inflateMessage(compressed[k & 7]))
        blackHole(zlib.deflateMessage(messages[k & 7]))
        k &+= 1
    })
    row("compressed echo (engine)", echo.ours, "msg/s", baseline: ("zlib inflate+deflate", echo.baseline))
    precondition(server.lifecycle == .open, "the echo failed")
}

/// Runs `count` messages through one codec path and prints nothing, for counting instructions
/// with callgrind (load-independent, unlike the timed figures): `path` is deflate-ours,
/// deflate-zlib, inflate-ours or inflate-zlib.
func codecRun(_ path: String, count: Int) {
    let messages = (0..<8).map { jsonText(bytes: 16 << 10, seed: UInt64($0)) }
    let zlib = DirectZlib()
    let compressed = messages.map { Array(zlib.out[0..<zlib.deflateMessage($0)]) }
    let codec = WSDeflateTransform(parameters: WSDeflateParameters(send: .init(noContextTakeover: true), receive: .init(noContextTakeover: true)))
    var out: [UInt8] = []
    for k in 0..<count {
        switch path {
        case "deflate-ours":
            out.removeAll(keepingCapacity: true)
            let message = messages[k & 7]
            codec.encode(message.span, isFinal: true, into: &out)
        case "deflate-zlib":
            blackHole(zlib.deflateMessage(messages[k & 7]))
        case "inflate-ours":
            out.removeAll(keepingCapacity: true)
            let payload = compressed[k & 7]
            _ = try? codec.decode(payload.span, isFinal: true, into: &out, pauseAfter: .max, limit: 1 << 20)
        default:
            blackHole(zlib.inflateMessage(compressed[k & 7]))
        }
    }
    blackHole(out.count)
}

/// A 512 MiB decompression bomb (about 500 KiB on the wire) sent to a server engine with the
/// default limits (1 MiB): it must fail with 1009 having held about 1 MiB. Prints the outcome and
/// the process's peak RSS; for the heap's peak, run it under `valgrind --tool=dhat`.
func bombRun() throws {
    let zeros = [UInt8](repeating: 0, count: 1 << 20)
    let codec = WSDeflateTransform(parameters: WSDeflateParameters())
    var payload: [UInt8] = []
    for n in 0..<512 { codec.encode(zeros.span, isFinal: n == 511, into: &payload) }
    // As a client would send it: 64 KiB frames (the default maxFrameSize), the first with RSV1.
    var wire: [UInt8] = []
    var offset = 0
    while offset < payload.count {
        let n = min(65536, payload.count - offset)
        var piece = Array(payload[offset..<(offset + n)])
        let key = WSMaskKey(rawValue: 0x1234_5678)
        WSFrameHeader(fin: offset + n == payload.count, rsv: offset == 0 ? WSFrameHeader.rsv1 : 0,
                      opcode: offset == 0 ? .binary : .continuation, maskKey: key, payloadLength: UInt64(n)).encode(into: &wire)
        key.apply(to: &piece)
        wire += piece
        offset += n
    }
    let before = peakRSS()
    var server = try WSProtocol(role: .server, now: .zero, transform: WSPerMessageDeflate().makeTransform(agreed: WSExtensionElement(name: "permessage-deflate"), role: .server))
    var outcome = "no failure"
    var start = 0
    while start < wire.count, !server.isClosed {
        let end = min(wire.count, start + 65536)
        wire[start..<end].withUnsafeBytes { server.receive($0) }
        start = end
        while let event = server.nextEvent() {
            if case .failed(let error) = event { outcome = "\(error)" }
        }
    }
    print("bomb: 512 MiB of zeros in \(payload.count) bytes on the wire, default limits (maxMessageSize 1 MiB)")
    print("outcome: \(outcome)")
    print("peak RSS: \(before / 1024) MiB before the engine, \(peakRSS() / 1024) MiB after")
}

/// The process's peak resident set size, in KiB.
func peakRSS() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss
}
