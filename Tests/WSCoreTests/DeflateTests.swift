import Foundation
import CWSZlib
import Testing
import WSCore
import WSDeflate
import WSTesting

// permessage-deflate (RFC 7692): the codec against the RFC's examples and against zlib called
// directly, the negotiation rules of §7.1, and engines that compress end to end.

/// One-shot raw DEFLATE with zlib directly (the reference the codec is compared with).
func zlibDeflate(_ data: [UInt8], windowBits: Int32 = 15, strategy: Int32 = Z_DEFAULT_STRATEGY, level: Int32 = 6) -> [UInt8] {
    var s = z_stream()
    precondition(cws_deflateInit2(&s, level, -windowBits, 8, strategy) == Z_OK)
    defer { deflateEnd(&s) }
    var out = [UInt8](repeating: 0, count: Int(deflateBound(&s, UInt(data.count))) + 16)
    var input = data
    let n = input.withUnsafeMutableBufferPointer { inp in
        out.withUnsafeMutableBufferPointer { o in
            s.next_in = inp.baseAddress
            s.avail_in = UInt32(inp.count)
            s.next_out = o.baseAddress
            s.avail_out = UInt32(o.count)
            precondition(deflate(&s, Z_SYNC_FLUSH) == Z_OK)
            return o.count - Int(s.avail_out)
        }
    }
    return Array(out[0..<(n - 4)])  // without 00 00 ff ff
}

/// One-shot raw inflate with zlib directly, appending 00 00 ff ff; nil on a data error.
func zlibInflate(_ data: [UInt8], windowBits: Int32 = 15) -> [UInt8]? {
    var s = z_stream()
    precondition(cws_inflateInit2(&s, -windowBits) == Z_OK)
    defer { inflateEnd(&s) }
    var input = data + [0, 0, 0xFF, 0xFF]
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    let ok = input.withUnsafeMutableBufferPointer { inp -> Bool in
        s.next_in = inp.baseAddress
        s.avail_in = UInt32(inp.count)
        while true {
            let (rc, n) = chunk.withUnsafeMutableBufferPointer { o -> (Int32, Int) in
                s.next_out = o.baseAddress
                s.avail_out = UInt32(o.count)
                let rc = inflate(&s, Z_SYNC_FLUSH)
                return (rc, o.count - Int(s.avail_out))
            }
            result += chunk[0..<n]
            if rc == Z_STREAM_END || (rc == Z_BUF_ERROR && s.avail_in == 0) || (rc == Z_OK && s.avail_out != 0 && s.avail_in == 0) { return true }
            if rc != Z_OK && rc != Z_BUF_ERROR { return false }
        }
    }
    return ok ? result : nil
}

func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var digits = s.filter { !$0.isWhitespace }.makeIterator()
    while let a = digits.next(), let b = digits.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
    return out
}

func deflateCodec(_ send: WSDeflateParameters.Direction = .init(), _ receive: WSDeflateParameters.Direction = .init(),
                  minimumSize: Int = 0) -> WSDeflateTransform {
    var c = WSPerMessageDeflate.Configuration()
    c.minimumSize = minimumSize
    return WSDeflateTransform(parameters: WSDeflateParameters(send: send, receive: receive), configuration: c)
}

extension WSDeflateTransform {
    func encodeMessage(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        encode(bytes.span, isFinal: true, into: &out)
        return out
    }
}

@Suite("RFC 7692 §7.2.3: the examples")
struct DeflateExampleTests {
    @Test("§7.2.3.1: \"Hello\" compresses to f2 48 cd c9 c9 07 00")
    func hello() {
        let codec = deflateCodec()
        #expect(codec.encodeMessage(Array("Hello".utf8)) == hexBytes("f2 48 cd c9 c9 07 00"))
        #expect(codec.decodeMessage([hexBytes("f2 48 cd c9 c9 07 00")]) == .success(Array("Hello".utf8)))
    }

    @Test("§7.2.3.2: the second \"Hello\" with context takeover is f2 00 11 00 00")
    func helloTwiceWithTakeover() {
        let sender = deflateCodec(), receiver = deflateCodec()
        let first = sender.encodeMessage(Array("Hello".utf8)), second = sender.encodeMessage(Array("Hello".utf8))
        #expect(first == hexBytes("f2 48 cd c9 c9 07 00"))
        #expect(second == hexBytes("f2 00 11 00 00"))
        #expect(receiver.decodeMessage([first]) == .success(Array("Hello".utf8)))
        #expect(receiver.decodeMessage([second]) == .success(Array("Hello".utf8)))
    }

    @Test("§7.2.3.2: without context takeover both messages are f2 48 cd c9 c9 07 00")
    func helloTwiceWithoutTakeover() {
        let sender = deflateCodec(.init(noContextTakeover: true))
        #expect(sender.encodeMessage(Array("Hello".utf8)) == hexBytes("f2 48 cd c9 c9 07 00"))
        #expect(sender.encodeMessage(Array("Hello".utf8)) == hexBytes("f2 48 cd c9 c9 07 00"))
    }

    @Test("§7.2.3.1: the message split across two frames (f2 48 cd | c9 c9 07 00)")
    func fragmented() {
        #expect(deflateCodec().decodeMessage([hexBytes("f2 48 cd"), hexBytes("c9 c9 07 00")]) == .success(Array("Hello".utf8)))
    }

    @Test("§7.2.3.3: a stored (uncompressed) block")
    func storedBlock() {
        #expect(deflateCodec().decodeMessage([hexBytes("00 05 00 fa ff 48 65 6c 6c 6f 00")]) == .success(Array("Hello".utf8)))
    }

    @Test("§7.2.3.4: a block with BFINAL set, then the next message on a fresh stream")
    func bfinal() {
        let codec = deflateCodec()
        #expect(codec.decodeMessage([hexBytes("f3 48 cd c9 c9 07 00 00")]) == .success(Array("Hello".utf8)))
        // Without the RFC's trailing 00: the message ends exactly with the final block.
        #expect(codec.decodeMessage([hexBytes("f3 48 cd c9 c9 07 00")]) == .success(Array("Hello".utf8)))
        #expect(codec.decodeMessage([hexBytes("f2 48 cd c9 c9 07 00")]) == .success(Array("Hello".utf8)))
    }

    @Test("A final block completed by the bits of the appended 00 00 ff ff ends the message (FuzzDeflateInflate finding)")
    func finalBlockEndsInTail() {
        // Fixtures/fuzz-regressions/deflate-inflate-final-block-ends-in-tail.bin: 97 × eb, then 26, window 11.
        // zlib's stream ends two bytes into the tail; python-websockets accepts it the same way.
        let payload = [UInt8](repeating: 0xEB, count: 97) + [0x26]
        let codec = deflateCodec(.init(), .init(maxWindowBits: 11))
        let inflated = codec.decodeMessage([payload])
        #expect(inflated == zlibInflate(payload, windowBits: 11).map { .success($0) })
        #expect((try? inflated.get())?.count == 128)
        #expect(codec.decodeMessage([hexBytes("f2 48 cd c9 c9 07 00")]) == .success(Array("Hello".utf8)))
    }

    @Test("§7.2.3.5: two DEFLATE blocks in one message")
    func twoBlocks() {
        #expect(deflateCodec().decodeMessage([hexBytes("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")]) == .success(Array("Hello".utf8)))
    }

    @Test("§7.2.3.6: the empty message is the single octet 00, also right after another message")
    func empty() {
        let sender = deflateCodec(), receiver = deflateCodec()
        #expect(sender.encodeMessage([]) == [0x00])
        #expect(receiver.decodeMessage([[0x00]]) == .success([]))
        let hello = sender.encodeMessage(Array("Hello".utf8))
        #expect(sender.encodeMessage([]) == [0x00])  // zlib has nothing to flush here
        #expect(receiver.decodeMessage([hello]) == .success(Array("Hello".utf8)))
        #expect(receiver.decodeMessage([[0x00]]) == .success([]))
        #expect(receiver.decodeMessage([sender.encodeMessage(Array("Hello".utf8))]) == .success(Array("Hello".utf8)))
    }

    @Test("§7.2.2: data that is not DEFLATE, or ends inside a block, is invalid")
    func invalid() {
        #expect(deflateCodec().decodeMessage([[0xFF, 0xFF, 0xFF]]).isInvalid)
        // "Hello" cut before its end-of-block code.
        #expect(deflateCodec().decodeMessage([hexBytes("f2 48 cd c9")]).isInvalid)
        // The sync marker left in (not stripped): the appended one then opens a stored block.
        #expect(deflateCodec().decodeMessage([hexBytes("f2 48 cd c9 c9 07 00 00 00 ff ff")]).isInvalid)
        // Garbage after a final block.
        #expect(deflateCodec().decodeMessage([hexBytes("f3 48 cd c9 c9 07 00 ff ff")]).isInvalid)
    }
}

extension Result where Failure == WSTransformError {
    var isInvalid: Bool {
        if case .failure(.invalidData) = self { return true }
        return false
    }
}

@Suite("RFC 7692 §7.2: the codec against zlib")
struct DeflateCodecTests {
    @Test("a codec gives back the parameters it was made with (it stores them in a few bytes)")
    func parametersRoundTrip() {
        for send in 8...15 {
            for receive in [8, 9, 12, 15] {
                for flags in 0..<4 {
                    let p = WSDeflateParameters(send: .init(maxWindowBits: send, noContextTakeover: flags & 1 != 0),
                                                receive: .init(maxWindowBits: receive, noContextTakeover: flags & 2 != 0))
                    #expect(WSDeflateTransform(parameters: p).parameters == p)
                }
            }
        }
    }

    /// JSON-like text of `count` bytes (compressible, not trivially).
    static func json(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        var rng = WSSeededRandom(seed: seed)
        var out: [UInt8] = []
        while out.count < count {
            let id = rng.next() % 100_000
            out += Array("{\"id\":\(id),\"name\":\"user\(id % 977)\",\"active\":\(id % 2 == 0),\"score\":\(rng.next() % 1000)},".utf8)
        }
        return Array(out.prefix(count))
    }

    @Test("Messages round-trip at every window size and takeover setting, and zlib inflates what we send")
    func roundTrips() {
        var rng = WSSeededRandom(seed: 7)
        for bits in 8...15 {
            for takeover in [true, false] {
                let sender = deflateCodec(.init(maxWindowBits: bits, noContextTakeover: !takeover))
                let receiver = deflateCodec(.init(), .init(maxWindowBits: bits, noContextTakeover: !takeover))
                // A reference inflater with exactly the agreed window (8 included) reading the stream.
                var reference: [[UInt8]] = []
                var sent: [UInt8] = []
                for m in 0..<6 {
                    let size = [0, 1, 100, 5000, 70_000, 300][m]
                    var message = Self.json(size, seed: rng.next())
                    if m == 5 { message = (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }  // incompressible
                    let wire = sender.encodeMessage(message)
                    #expect(receiver.decodeMessage([wire]) == .success(message), "bits \(bits) takeover \(takeover) message \(m)")
                    reference.append(wire)
                    sent += message
                    if !takeover {
                        #expect(zlibInflate(wire, windowBits: Int32(bits)) == message, "zlib, bits \(bits), message \(m)")
                    }
                }
                if takeover {
                    // With context takeover, the messages are one stream: zlib inflates their concatenation.
                    let stream: [UInt8] = reference.flatMap { $0 + [0, 0, 0xFF, 0xFF] as [UInt8] }
                    #expect(zlibInflate(Array(stream.dropLast(4)), windowBits: Int32(bits)) == sent, "bits \(bits)")
                }
            }
        }
    }

    @Test("What zlib compresses, split at random frame boundaries and paused at random points, decodes exactly")
    func splitsAndPauses() {
        var rng = WSSeededRandom(seed: 11)
        for round in 0..<40 {
            let message = Self.json(1 + Int(rng.next() % 200_000), seed: UInt64(round))
            let wire = zlibDeflate(message)
            var pieces: [[UInt8]] = []
            var i = 0
            while i < wire.count {
                let n = 1 + Int(rng.next() % UInt64(max(1, wire.count / 3)))
                pieces.append(Array(wire[i..<min(wire.count, i + n)]))
                i += n
            }
            if rng.next() % 3 == 0 { pieces.append([]) }  // an empty final frame
            let pause = 1 + Int(rng.next() % 70_000)
            #expect(deflateCodec().decodeMessage(pieces, pauseAfter: pause) == .success(message), "round \(round)")
        }
    }

    @Test("A pause that falls where the output ends (while the appended tail is read) still finishes (FuzzDeflateInflate finding)")
    func pauseAtTheEnd() throws {
        // zlib may need the tail's bits to decode a message's last codes, so the last bytes come
        // out only once the tail is read; a pause right there used to end the message looking
        // "mid-block". Fixtures/fuzz-regressions/deflate-inflate-split.bin is such a message.
        let fuzzed = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixturesRoot + "/fuzz-regressions/deflate-inflate-split.bin"))).dropFirst(2)
        let expected = try deflateCodec().decodeMessage([Array(fuzzed)]).get()
        for pause in 1...(expected.count + 1) {
            #expect(deflateCodec().decodeMessage([Array(fuzzed)], pauseAfter: pause) == .success(expected), "pause \(pause)")
        }
        for size in [1, 100, 5000, 70_000] {
            let message = Self.json(size, seed: UInt64(size))
            let wire = zlibDeflate(message)
            for pause in max(1, size - 16)...(size + 1) {
                #expect(deflateCodec().decodeMessage([wire], pauseAfter: pause) == .success(message), "size \(size) pause \(pause)")
            }
        }
    }

    @Test("Window 8: we compress with distance-1 matches only, which an 8-bit inflater reads")
    func windowEight() {
        let sender = deflateCodec(.init(maxWindowBits: 8))
        for seed in 1...5 as ClosedRange<UInt64> {
            let message = Self.json(20_000, seed: seed) + [UInt8](repeating: 0x41, count: 3000)
            let wire = sender.encodeMessage(message)
            #expect(wire.count < message.count)
            #expect(zlibInflate(wire, windowBits: 8) == message)
        }
    }
}

@Suite("Decompression bombs: limits enforced inside the inflate loop")
struct DeflateBombTests {
    @Test("A message that inflates to exactly the limit passes; one byte more fails; memory stays at the limit")
    func exactLimit() {
        let limit = 1 << 20
        for size in [limit, limit + 1] {
            let wire = zlibDeflate([UInt8](repeating: 0, count: size))
            var out: [UInt8] = []
            let codec = deflateCodec()
            let result: Result<WSDecodeProgress, WSTransformError> = Result { () throws(WSTransformError) in
                try codec.decode(wire.span, isFinal: true, into: &out, pauseAfter: .max, limit: limit)
            }
            if size == limit {
                #expect(result == .success(WSDecodeProgress(consumed: wire.count, status: .finished)))
                #expect(out.count == limit)
            } else {
                #expect(result == .failure(.outputLimitExceeded))
                #expect(out.count <= limit)
            }
            // Never more memory than the limit (plus malloc's page rounding).
            #expect(out.capacity <= limit + 4096, "capacity \(out.capacity)")
        }
    }

    @Test("Output past the limit is reported before a data error that follows it (FuzzDeflateInflate finding)")
    func limitBeforeDataError() {
        // Fixtures/fuzz-regressions/deflate-inflate-limit-then-invalid-code.bin: 17 bytes, then an invalid distance code.
        let payload = hexBytes("f248cdc9c900c848cdc9c900c8f2f248cd07fd")
        #expect(deflateCodec().decodeMessage([payload], limit: 16) == .failure(.outputLimitExceeded))
        #expect(deflateCodec().decodeMessage([payload], limit: 17).isInvalid)
        #expect(deflateCodec().decodeMessage([Array(payload.prefix(9)), Array(payload.dropFirst(9))], limit: 16, pauseAfter: 5) == .failure(.outputLimitExceeded))
    }

    @Test("A 256 MiB bomb (about 256 KiB on the wire) fails at a 1 MiB limit with at most 1 MiB buffered")
    func gigabyteBomb() {
        // 256 MiB of zeros deflates to ~256 KiB; build it in pieces to keep the test's own memory small.
        let codec = deflateCodec()
        var wire: [UInt8] = []
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        let sender = deflateCodec()
        for _ in 0..<255 {
            var piece: [UInt8] = []
            sender.encode(zeros.span, isFinal: false, into: &piece)
            wire += piece
        }
        wire += sender.encodeMessage(zeros)
        var out: [UInt8] = []
        #expect(throws: WSTransformError.outputLimitExceeded) {
            _ = try codec.decode(wire.span, isFinal: true, into: &out, pauseAfter: .max, limit: 1 << 20)
        }
        #expect(out.count <= 1 << 20)
        #expect(out.capacity <= (1 << 20) + 4096)
    }
}
