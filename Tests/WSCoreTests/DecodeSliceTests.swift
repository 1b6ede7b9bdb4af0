import Testing
import WSCore
import WSDeflate
import WSTesting

// `decodeSliceSize`: a compressed message is inflated a slice per `nextEvent()` call, so an event
// loop can serve other connections between slices (issue: a decompression bomb stalled its
// neighbours). The reference is the same engine without a slice: same events, same limits.

@Suite("Decode slices: a compressed message inflated a slice per call, events as without")
struct DecodeSliceTests {
    /// A server engine with permessage-deflate (no context takeover either way, so any slice of
    /// frames decodes alone), fed client frames masked with a fixed key.
    func server(slice: Int?, delivery: WSProtocol.Delivery = .wholeMessages, limit: Int = 1 << 20) throws -> WSProtocol {
        var c = WSProtocol.Configuration()
        c.decodeSliceSize = slice
        c.delivery = delivery
        c.maxMessageSize = limit
        c.pingInterval = nil
        return try WSProtocol(role: .server, configuration: c, now: .zero, transform: deflateCodec())
    }

    func compressedFrame(_ data: [UInt8], opcode: WSOpcode = .binary) -> [UInt8] {
        let payload = deflateCodec().encodeMessage(data)
        let header = WSFrameHeader(fin: true, rsv: 0x4, opcode: opcode, maskKey: key, payloadLength: UInt64(payload.count))
        var out: [UInt8] = []
        header.encode(into: &out)
        var masked = payload
        key.apply(to: &masked)
        return out + masked
    }

    @Test("each nextEvent() call inflates at most the slice: 1 MiB arrives after 16 calls of 64 KiB, hasPendingWork in between")
    func sliceBoundsEachCall() throws {
        var engine = try server(slice: 64 << 10)
        let data = [UInt8](repeating: 0x61, count: 1 << 20)
        engine.receive(compressedFrame(data))
        var calls = 0
        var message: WSProtocol.Event?
        while message == nil {
            calls += 1
            message = engine.nextEvent()
            if message == nil {
                let pending = engine.hasPendingWork
                #expect(pending)
            }
            if calls > 100 { break }
        }
        #expect(message == .binary(ArraySlice(data)))
        #expect(calls == 17)  // 16 slices of 64 KiB; the 17th call finds the end of the stream
        let pending = engine.hasPendingWork
        #expect(!pending)
        #expect(engine.nextEvent() == nil)
    }

    @Test("without a slice the whole message comes in one call, and there is no pending work")
    func noSliceOneCall() throws {
        var engine = try server(slice: nil)
        let data = [UInt8](repeating: 0x61, count: 1 << 20)
        engine.receive(compressedFrame(data))
        #expect(engine.nextEvent() == .binary(ArraySlice(data)))
        let pending = engine.hasPendingWork
        #expect(!pending)
    }

    @Test("differential: random messages, slices and reads give the events of the engine without slices", arguments: 0..<24)
    func sameEventsAsWithoutSlices(seed: Int) throws {
        var rng = WSSeededRandom(seed: UInt64(seed) &+ 4242)
        let delivery: WSProtocol.Delivery = seed % 2 == 0 ? .wholeMessages : .streaming
        let limit = 200_000
        var input: [UInt8] = []
        for _ in 0..<(1 + Int(rng.next() % 6)) {
            let size = Int(rng.next() % 300_000)
            let byte = UInt8(truncatingIfNeeded: rng.next())
            // Compressible runs with some noise; a few messages pass the limit.
            var data = [UInt8](repeating: byte, count: size)
            for _ in 0..<(size / 1000) { data[Int(rng.next() % UInt64(size))] = UInt8(truncatingIfNeeded: rng.next()) }
            input += compressedFrame(data, opcode: rng.next() % 2 == 0 ? .binary : .text)
        }
        // Text of random bytes fails UTF-8 at some point, binary of the same passes: both paths.
        var reference = try server(slice: nil, delivery: delivery, limit: limit)
        reference.receive(input)
        let expected = WSFixtureRunner.mergeFragments(WSFixtureRunner.drainSharing(&reference))
        let slice = 1 + Int(rng.next() % 70_000)
        var sliced = try server(slice: slice, delivery: delivery, limit: limit)
        var events: [WSProtocol.Event] = []
        var offset = 0
        while offset < input.count {
            let n = min(input.count - offset, 1 + Int(rng.next() % 100_000))
            sliced.receive(Array(input[offset..<offset + n]))
            offset += n
            events += WSFixtureRunner.drainSharing(&sliced)
        }
        #expect(WSFixtureRunner.mergeFragments(events) == expected, "slice \(slice), \(delivery)")
        #expect(!expected.isEmpty)
    }

    @Test("an invalid slice size is refused")
    func invalidSlice() {
        var c = WSProtocol.Configuration()
        c.decodeSliceSize = 0
        #expect(throws: WSUsageError.self) { _ = try WSProtocol(role: .server, configuration: c, now: .zero) }
    }
}

// `encodeSliceSize`: a large compressed message is deflated a slice per `continueEncoding()`
// call. The reference is the same engine without a slice: the same frames, byte for byte.

@Suite("Encode slices: a large compressed message deflated a slice per call, frames as without")
struct EncodeSliceTests {
    func client(slice: Int?, highWater: Int = 1 << 20) throws -> WSProtocol {
        var c = WSProtocol.Configuration()
        c.encodeSliceSize = slice
        c.pingInterval = nil
        c.outboundHighWaterMark = highWater
        c.outboundLowWaterMark = highWater / 4
        return try WSProtocol(role: .client, configuration: c, now: .zero, randomNumberGenerator: WSSeededRandom(seed: 9), transform: deflateCodec())
    }

    /// Everything the engine writes, encoding slice after slice as an adapter's turns would;
    /// the number of turns it took.
    func written(_ engine: inout WSProtocol) -> (bytes: [UInt8], turns: Int) {
        var out: [UInt8] = []
        var turns = 0
        repeat {
            turns += 1
            while case .bytes(let b)? = engine.nextOutbound() { out += b }
            engine.continueEncoding()
        } while engine.hasPendingWork
        while case .bytes(let b)? = engine.nextOutbound() { out += b }
        return (out, turns)
    }

    @Test("differential: random messages and slices give the bytes of the engine without slices", arguments: 0..<16)
    func sameBytesAsWithoutSlices(seed: Int) throws {
        var rng = WSSeededRandom(seed: UInt64(seed) &+ 7692)
        let slice = 1 + Int(rng.next() % 200_000)
        var sliced = try client(slice: slice)
        var whole = try client(slice: nil)
        for _ in 0..<(1 + Int(rng.next() % 5)) {
            let size = Int(rng.next() % 400_000)
            var data = [UInt8](repeating: UInt8(truncatingIfNeeded: rng.next()), count: size)
            for _ in 0..<(size / 500) { data[Int(rng.next() % UInt64(size))] = UInt8(truncatingIfNeeded: rng.next()) }
            let compress = rng.next() % 4 != 0
            try sliced.sendBinary(data, compress: compress)
            try whole.sendBinary(data, compress: compress)
        }
        #expect(written(&sliced).bytes == written(&whole).bytes, "slice \(slice)")
    }

    @Test("a 1 MiB message in 64 KiB slices: one slice per call, writability while queued, a Ping between slices, then the message whole")
    func slicesAndControlFrames() throws {
        var client = try client(slice: 64 << 10, highWater: 256 << 10)
        let data = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 7) }
        try client.sendBinary(data)
        let queued = client.hasPendingWork, writable = client.isWritable
        #expect(queued)
        #expect(!writable)  // the unencoded bytes count toward the high-water mark
        try client.ping([7])
        try client.sendText("after")  // waits behind the message
        let (bytes, turns) = written(&client)
        #expect(turns == 16)
        // The peer reads the Ping between the message's frames, then the message, then "after".
        var server = try WSProtocol(role: .server, configuration: .init(), now: .zero, transform: deflateCodec())
        server.receive(bytes)
        var events: [WSProtocol.Event] = []
        while let e = server.nextEvent() { events.append(e) }
        #expect(events == [.ping([7]), .binary(ArraySlice(data)), .text("after")])
    }

    @Test("close() finishes the message being encoded before its Close; a failure drops it")
    func closeFinishesTheMessage() throws {
        var client = try client(slice: 1000)
        let data = [UInt8](repeating: 0x41, count: 50_000)
        try client.sendBinary(data)
        try client.close(code: .normalClosure)
        let pending = client.hasPendingWork
        #expect(!pending)
        let (bytes, _) = written(&client)
        var server = try WSProtocol(role: .server, configuration: .init(), now: .zero, transform: deflateCodec())
        server.receive(bytes)
        var events: [WSProtocol.Event] = []
        while let e = server.nextEvent() { events.append(e) }
        #expect(events.first == .binary(ArraySlice(data)))
        #expect(events.dropFirst().first.map { if case .closeReceived = $0 { true } else { false } } == true)

        // Failing the connection instead drops the rest of the message: nothing after the Close.
        var failing = try self.client(slice: 1000)
        try failing.sendBinary(data)
        try failing.fail(.memoryBudgetExceeded, detail: "test")
        let stillPending = failing.hasPendingWork
        #expect(!stillPending)
        let (out, _) = written(&failing)
        #expect(out.count < 2000)
        #expect(out.suffix(2 + 4 + 2 + 20).prefix(2) == [0x88, 0x80 | 22])  // our masked Close, 1013 + reason, last
    }
}

// Without context takeover, a whole message is compressed with its thread's shared compressor
// (an idle connection owns no zlib memory). The reference is zlib called directly, one-shot.

@Suite("The thread's shared compressor: whole messages under no-context-takeover, same bytes as zlib one-shot")
struct SharedCompressorTests {
    static func message(_ seed: UInt64, _ size: Int) -> [UInt8] {
        var rng = WSSeededRandom(seed: seed)
        return (0..<size).map { _ in UInt8(97 + rng.next() % 6) }
    }

    @Test("two connections' whole messages, interleaved on one thread: each as zlib compresses it alone; neither keeps a compressor")
    func interleavedWholeMessages() {
        let a = deflateCodec(.init(noContextTakeover: true)), b = deflateCodec(.init(noContextTakeover: true))
        for i in 0..<6 {
            let codec = i % 2 == 0 ? a : b
            let data = Self.message(UInt64(i), 1000 + i * 7919)
            #expect(codec.encodeMessage(data) == zlibDeflate(data), "message \(i)")
            #expect(!codec.ownsCompressor)
        }
    }

    @Test("whole messages under 1 KiB use memory level 4 at most (a 4 KiB hash table to clear after each, not 64 KiB), and their bytes are zlib's at level 8")
    func smallMessagesSmallTable() {
        #expect(WSDeflateTransform.memoryLevel(forWholeMessage: 1023, configured: 8) == 4)
        #expect(WSDeflateTransform.memoryLevel(forWholeMessage: 1024, configured: 8) == 8)
        #expect(WSDeflateTransform.memoryLevel(forWholeMessage: 30, configured: 2) == 2)
        #expect(WSDeflateTransform.memoryLevel(forWholeMessage: 5000, configured: 5) == 5)
        let codec = deflateCodec(.init(noContextTakeover: true))
        var rng = WSSeededRandom(seed: 1024)
        for i in 0..<300 {
            // From random bytes to runs of a two-letter alphabet, 0 to 1,100 bytes; and 1,023
            // and 1,024 random bytes, where level 4 would split the block (one byte longer).
            let alphabet = UInt64([2, 4, 16, 64, 256][i % 5])
            let size = i < 2 ? 1023 + i : Int(rng.next() % 1100)
            let data = (0..<size).map { _ in UInt8(truncatingIfNeeded: (i < 2 ? 0 : 97) &+ rng.next() % (i < 2 ? 256 : alphabet)) }
            let ours = codec.encodeMessage(data)
            #expect(zlibInflate(ours) == data, "message \(i)")
            #expect(ours == zlibDeflate(data), "message \(i), \(size) bytes")
            #expect(!codec.ownsCompressor)
        }
    }

    @Test("a message compressed across calls keeps its own compressor while another connection's whole messages use the shared one")
    func acrossCallsBesideShared() {
        let a = deflateCodec(.init(noContextTakeover: true)), b = deflateCodec(.init(noContextTakeover: true))
        let first = Self.message(1, 40_000), second = Self.message(2, 30_000), other = Self.message(3, 20_000)
        var aOut: [UInt8] = []
        a.encodeContinuing(first.span, into: &aOut)
        #expect(a.ownsCompressor)
        #expect(b.encodeMessage(other) == zlibDeflate(other))
        a.encode(second.span, isFinal: true, into: &aOut)
        #expect(aOut == zlibDeflate(first + second))
        a.releaseIdleMemory()
        #expect(!a.ownsCompressor)
        // With context takeover the connection keeps its own compressor (its window is the context).
        let c = deflateCodec()
        _ = c.encodeMessage(other)
        c.releaseIdleMemory()
        #expect(c.ownsCompressor)
    }
}
