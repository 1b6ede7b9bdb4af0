import Testing
@testable import WSCore
import WSTesting

/// Encodes a frame the way a peer would (masked if `key` is given).
func frame(_ opcode: WSOpcode, _ payload: [UInt8], fin: Bool = true, key: WSMaskKey? = nil) -> [UInt8] {
    var out: [UInt8] = []
    WSFrameHeader(fin: fin, opcode: opcode, maskKey: key, payloadLength: UInt64(payload.count)).encode(into: &out)
    var body = payload
    key?.apply(to: &body)
    return out + body
}

func drain(_ p: inout WSProtocol) -> [WSProtocol.Event] {
    var events: [WSProtocol.Event] = []
    while let e = p.nextEvent() { events.append(e) }
    return events
}

func outbound(_ p: inout WSProtocol) -> (bytes: [UInt8], endOfStream: Bool) {
    var bytes: [UInt8] = [], eos = false
    while let o = p.nextOutbound() {
        switch o {
        case .bytes(let b): bytes += b
        case .endOfStream: eos = true
        }
    }
    return (bytes, eos)
}

let key = WSMaskKey(0x37, 0xfa, 0x21, 0x3d)

@Suite("WSProtocol engine behaviour")
struct WSProtocolTests {
    @Test("held events cost at most one copy of the receive buffer per read, not one per frame")
    func heldEventsShareStorage() throws {
        var config = WSProtocol.Configuration()
        config.delivery = .streaming
        var server = try WSProtocol(role: .server, configuration: config, now: .zero)
        var input: [UInt8] = []
        for i in 0..<20_000 { input += frame(.binary, [UInt8(truncatingIfNeeded: i), 1, 2, 3], key: key) }
        server.receive(input)
        let events = drain(&server)
        #expect(events.count == 20_000)
        let addresses = events.compactMap { e -> Int? in
            guard case .fragment(let f) = e else { return nil }
            return f.data.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
        }
        // Frame i's payload sits 10 bytes (6 header + 4 payload) after frame i-1's in the same
        // buffer; a copy shows as one break in that sequence.
        let copies = zip(addresses, addresses.dropFirst()).filter { $1 - $0 != 10 }.count
        #expect(copies <= 1)
        guard case .fragment(let last) = events.last else { Issue.record("no fragment"); return }
        #expect(Array(last.data) == [UInt8(truncatingIfNeeded: 19_999), 1, 2, 3])
    }

    @Test("input is processed before timers: a Pong already received beats the Pong deadline")
    func inputBeforeTimers() throws {
        var config = WSProtocol.Configuration()
        config.pingInterval = .seconds(10)
        config.pingTimeout = .seconds(5)
        var client = try WSProtocol(role: .client, configuration: config, now: .zero)
        client.tick(now: .seconds(10))
        #expect(drain(&client).isEmpty)
        #expect(outbound(&client).bytes.first == 0x89)
        client.receive(frame(.pong, [0, 0, 0, 1]))
        client.tick(now: .seconds(16))  // past the Pong deadline, the Pong not yet parsed
        #expect(drain(&client) == [.pong([0, 0, 0, 1])])
        #expect(client.lifecycle == .open)
    }

    @Test("timers fire exactly at nextDeadline, the earliest of ping, Pong wait and idle; 1 ns before, nothing happens")
    func timersAtNextDeadline() throws {
        var config = WSProtocol.Configuration()
        config.pingInterval = .seconds(10)
        config.pingTimeout = .seconds(5)
        config.idleTimeout = .seconds(7)
        var client = try WSProtocol(role: .client, configuration: config, now: .zero)
        /// Ticks to 1 ns before `deadline` (nothing may happen), then to `deadline`.
        func justBefore(_ deadline: WSInstant) {
            client.tick(now: WSInstant(nanoseconds: deadline.nanoseconds - 1))
            #expect(drain(&client).isEmpty)
            #expect(outbound(&client).bytes.isEmpty)
            #expect(client.nextDeadline == deadline)
            client.tick(now: deadline)
        }
        // Idle (7 s) comes before the first ping (10 s).
        #expect(client.nextDeadline == .seconds(7))
        justBefore(.seconds(7))
        #expect(drain(&client) == [.idleTimeout])
        // Idle re-armed for 14 s; the ping is next.
        #expect(client.nextDeadline == .seconds(10))
        justBefore(.seconds(10))
        #expect(drain(&client).isEmpty)
        #expect(outbound(&client).bytes.first == 0x89)
        // The Pong wait ends at 15 s, after the idle deadline at 14 s.
        #expect(client.nextDeadline == .seconds(14))
        justBefore(.seconds(14))
        #expect(drain(&client) == [.idleTimeout])
        #expect(client.nextDeadline == .seconds(15))
        justBefore(.seconds(15))
        guard case .closed(let info)? = drain(&client).last else { Issue.record("not closed"); return }
        #expect(info.cause == .keepaliveTimeout && info.code == .abnormalClosure && info.sent?.code == .internalError)
        #expect(client.nextDeadline == nil)
    }

    @Test("end of input is processed after buffered frames: a Close then EOF in one read is a clean close")
    func eofAfterBufferedClose() throws {
        var server = try WSProtocol(role: .server, now: .zero)
        server.receive(frame(.close, [0x03, 0xE8], key: key))
        server.receiveEOF()
        let events = drain(&server)
        #expect(events.count == 2)
        guard case .closed(let info)? = events.last else { Issue.record("\(events)"); return }
        #expect(info.wasClean && info.code == .normalClosure && info.initiator == .remote)
        #expect(outbound(&server) == ([0x88, 0x02, 0x03, 0xE8], true))
    }

    @Test("backpressure: isWritable turns false at the high-water mark and true again at the low-water mark")
    func backpressure() throws {
        var config = WSProtocol.Configuration()
        config.outboundHighWaterMark = 100
        config.outboundLowWaterMark = 40
        config.maxBufferedAmount = 300
        var server = try WSProtocol(role: .server, configuration: config, now: .zero)
        try server.sendBinary([UInt8](repeating: 1, count: 90))  // 92 bytes queued
        #expect(server.bufferedAmount == 92 && server.isWritable)
        try server.sendBinary([UInt8](repeating: 2, count: 10))  // 104
        #expect(server.isWritable == false)
        server.consumeOutbound(50)  // 54: above the low-water mark, still paused
        #expect(server.bufferedAmount == 54 && !server.isWritable)
        server.consumeOutbound(14)  // 40: at the low-water mark
        #expect(server.isWritable == true)
        #expect(throws: WSUsageError.outboundBufferFull(bufferedAmount: 40, limit: 300)) {
            try server.sendBinary([UInt8](repeating: 3, count: 250))
        }
        // Control frames are never refused, even past the limit.
        try server.sendBinary([UInt8](repeating: 4, count: 240))
        for _ in 0..<3 { try server.ping([UInt8](repeating: 5, count: 125)) }
        #expect(server.bufferedAmount > 300)
        try server.close()
    }

    @Test("zero-copy drain: withOutboundBytes + consumeOutbound, then isOutboundFinished after end of stream")
    func zeroCopyDrain() throws {
        var server = try WSProtocol(role: .server, now: .zero)
        try server.sendText("Hello")
        let seen = server.withOutboundBytes { Array($0) }
        #expect(seen == [0x81, 0x05] + Array("Hello".utf8))
        server.consumeOutbound(3)
        #expect(server.withOutboundBytes { Array($0) } == Array("ello".utf8))
        server.receive(frame(.close, [], key: key))
        _ = drain(&server)
        #expect(server.isOutboundFinished == false)
        server.consumeOutbound(server.bufferedAmount)
        #expect(server.isOutboundFinished == true)
    }

    @Test("a large message drains in place: partial writes move no bytes; appends between writes keep the buffer bounded")
    func outboundDrainsInPlace() throws {
        var config = WSProtocol.Configuration()
        config.maxBufferedAmount = 4 << 20
        config.outboundHighWaterMark = 2 << 20
        config.outboundLowWaterMark = 1 << 20
        config.outboundFragmentSize = 2 << 20  // one frame
        var server = try WSProtocol(role: .server, configuration: config, now: .zero)
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try server.sendBinary(payload)
        let expected = frame(.binary, payload)
        var written: [UInt8] = []
        let base = server.withOutboundBytes { Int(bitPattern: $0.baseAddress) }
        while server.bufferedAmount > 0 {
            // The pending bytes stay where they were: the write position just advances.
            #expect(server.withOutboundBytes { Int(bitPattern: $0.baseAddress) } == base + written.count)
            let n = min(65_000, server.bufferedAmount)
            written += server.withOutboundBytes { Array($0.prefix(n)) }
            server.consumeOutbound(n)
        }
        let sameBytes = written == expected
        #expect(sameBytes)

        // Small messages queued while earlier ones are half written: written bytes are dropped
        // before the buffer would grow, and every byte comes out in order.
        written = []
        var queued: [UInt8] = []
        // (The 1 MiB buffer was well used, so it is kept: the small messages go into it.)
        let capacity = server.outbound.storage.capacity
        for i in 0..<20_000 {
            let message = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 1 + i % 200)
            try server.sendBinary(message)
            queued += frame(.binary, message)
            let n = server.bufferedAmount / 2 + 1
            written += server.withOutboundBytes { Array($0.prefix(n)) }
            server.consumeOutbound(n)
            #expect(server.outbound.storage.capacity <= capacity)
        }
        written += server.withOutboundBytes { Array($0) }
        let sameOrder = written == queued
        #expect(sameOrder)
    }

    @Test("buffers keep their memory while large messages keep coming, and give it back at the next small one")
    func buffersReusedWhileWellUsed() throws {
        var config = WSProtocol.Configuration()
        config.maxFrameSize = 4 << 20
        config.maxMessageSize = 4 << 20
        config.outboundFragmentSize = 4 << 20
        config.maxBufferedAmount = 16 << 20
        config.outboundHighWaterMark = 8 << 20
        var server = try WSProtocol(role: .server, configuration: config, now: .zero)
        let big = [UInt8](repeating: 0x42, count: 1 << 20)
        /// A 1 MiB message in two frames, fed in 64 KiB reads (assembled in the message buffer),
        /// taken the sharing way; returns where its bytes were.
        func receiveBig() -> Int? {
            let input = frame(.binary, Array(big[..<(1 << 19)]), fin: false, key: key) + frame(.continuation, Array(big[(1 << 19)...]), key: key)
            var address: Int?
            for start in stride(from: 0, to: input.count, by: 65536) {
                server.receive(input[start..<min(input.count, start + 65536)])
                while let shared = server.nextEventSharingData() {
                    guard case .data(.binary, let bytes, isFinal: true) = shared else { Issue.record("\(shared)"); continue }
                    #expect(bytes.count == big.count && bytes.allSatisfy { $0 == 0x42 })
                    address = bytes.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
                }
            }
            return address
        }
        // Inbound: the second and third large messages reuse the first one's memory.
        let first = receiveBig()
        #expect(first != nil)
        #expect(receiveBig() == first)
        #expect(receiveBig() == first)
        // A small message after them: the large memory is given back when the next message starts.
        server.receive(frame(.binary, [1], fin: false, key: key) + frame(.continuation, [2], key: key))
        guard case .binary(let small)? = server.nextEvent() else { Issue.record("no small message"); return }
        #expect(Array(small) == [1, 2])
        server.receive(frame(.binary, [3], fin: false, key: key))
        #expect(server.nextEvent() == nil)
        #expect(server.messageBuffer.capacity <= 64 << 10)

        // Outbound: the same rule when the queue drains.
        func sendAndDrain(_ bytes: [UInt8]) throws -> Int {
            try server.sendBinary(bytes)
            let address = server.withOutboundBytes { Int(bitPattern: $0.baseAddress) }
            server.consumeOutbound(server.bufferedAmount)
            return address
        }
        let out = try sendAndDrain(big)
        #expect(try sendAndDrain(big) == out)
        #expect(server.outbound.storage.capacity >= big.count)
        _ = try sendAndDrain([7])
        #expect(server.outbound.storage.capacity <= 64 << 10)
    }

    @Test("bufferCapacity reports what the buffers hold, and releaseIdleMemory gives it back")
    func bufferCapacityAndRelease() throws {
        var config = WSProtocol.Configuration()
        config.maxMessageSize = 4 << 20
        var server = try WSProtocol(role: .server, configuration: config, now: .zero)
        #expect(server.bufferCapacity == 0)
        let half = [UInt8](repeating: 9, count: 60_000)
        server.receive(frame(.binary, half, fin: false, key: key) + frame(.continuation, half, key: key))
        guard case .binary(let message)? = server.nextEvent() else { Issue.record("no message"); return }
        #expect(message.count == 120_000)
        try server.send(message, kind: .binary)
        #expect(server.bufferCapacity >= 3 * 120_000)  // receive buffer, message buffer, send queue
        server.consumeOutbound(server.bufferedAmount)
        server.releaseIdleMemory()
        #expect(server.bufferCapacity == 0)
    }

    @Test("bytes after a failure or after close are discarded: memory stays bounded")
    func boundedAfterFailure() throws {
        var server = try WSProtocol(role: .server, now: .zero)
        server.receive([0x83, 0x80, 0, 0, 0, 0])  // reserved opcode
        #expect(drain(&server).count == 1)
        for _ in 0..<100 { server.receive([UInt8](repeating: 0x81, count: 65536)) }
        #expect(server.inbound.readable == 0)
        server.receiveEOF()
        #expect(drain(&server).count == 1)
        for _ in 0..<10 { server.receive([UInt8](repeating: 0x81, count: 65536)) }
        #expect(server.inbound.readable == 0)
    }

    @Test("a huge declared frame does not allocate: 2^62 bytes fails at the header (1009)")
    func hugeFrameHeader() throws {
        var client = try WSProtocol(role: .client, now: .zero)
        client.receive([0x82, 0x7F, 0x40, 0, 0, 0, 0, 0, 0, 0])
        let events = drain(&client)
        guard case .failed(let e)? = events.first else { Issue.record("\(events)"); return }
        #expect(e.code == .frameTooBig && e.closeCode == .messageTooBig && e.offset == 0)
    }

    @Test("error offsets point at the frame, or at the invalid byte for UTF-8")
    func errorOffsets() throws {
        var server = try WSProtocol(role: .server, now: .zero)
        server.receive(frame(.text, Array("ok".utf8), key: key) + frame(.text, [0x61, 0x62, 0xFF], key: key))
        let events = drain(&server)
        guard case .failed(let e)? = events.last else { Issue.record("\(events)"); return }
        #expect(e.offset == 8 + 6 + 2)  // first frame 8 bytes, second header 6, then "ab"
        #expect(!e.detail.contains("\u{FF}"))
    }

    @Test("the frame limit follows the message limit until set (real peers send a message as one frame)")
    func frameLimitFollowsMessageLimit() {
        var c = WSProtocol.Configuration()
        #expect(c.maxFrameSize == 1 << 20 && c.maxMessageSize == 1 << 20)
        c.maxMessageSize = 4 << 20
        #expect(c.maxFrameSize == 4 << 20)
        c.maxFrameSize = 65536
        c.maxMessageSize = 8 << 20
        #expect(c.maxFrameSize == 65536)
    }

    @Test("a configuration is a value (its fields are shared copy-on-write): a changed copy leaves the original; equal ones hash alike")
    func configurationIsAValue() {
        let original = WSProtocol.Configuration()
        var copy = original
        #expect(copy == original)
        copy.maxMessageSize = 4096
        copy.pingInterval = nil
        #expect(original.maxMessageSize == 1 << 20 && original.pingInterval == .seconds(20))
        #expect(copy.maxMessageSize == 4096 && copy.maxFrameSize == 4096 && copy.pingInterval == nil)
        #expect(copy != original)
        var again = WSProtocol.Configuration()
        again.pingInterval = nil
        again.maxMessageSize = 4096
        #expect(again == copy)
        #expect(Set([again, copy, original]).count == 2)
        #expect(WSProtocol.Configuration.default == WSProtocol.Configuration())
    }

    @Test("a 100 KB message in one frame passes the default limits (as python-websockets, aiohttp, ws and browsers send it)")
    func defaultLimitsTakeOneFrameMessages() throws {
        var server = try WSProtocol(role: .server, now: .zero)
        let payload = [UInt8](repeating: 0x41, count: 100_000)
        server.receive(frame(.binary, payload, key: key))
        #expect(drain(&server) == [.binary(ArraySlice(payload))])
    }

    @Test("invalid configurations are refused at init", arguments: [
        { (c: inout WSProtocol.Configuration) in c.maxFrameSize = 0 },
        { (c: inout WSProtocol.Configuration) in c.maxMessageSize = -1 },
        { (c: inout WSProtocol.Configuration) in c.outboundFragmentSize = 0 },
        { (c: inout WSProtocol.Configuration) in c.pingInterval = .zero },
        { (c: inout WSProtocol.Configuration) in c.outboundLowWaterMark = c.outboundHighWaterMark },
        { (c: inout WSProtocol.Configuration) in c.maxBufferedAmount = 10 },
        { (c: inout WSProtocol.Configuration) in c.idleTimeout = .seconds(-1) },
    ] as [@Sendable (inout WSProtocol.Configuration) -> Void])
    func invalidConfiguration(_ change: @Sendable (inout WSProtocol.Configuration) -> Void) {
        var c = WSProtocol.Configuration()
        change(&c)
        #expect(throws: WSUsageError.self) { _ = try WSProtocol(role: .server, configuration: c, now: .zero) }
    }

    @Test("releaseIdleMemory drops empty buffers and keeps working")
    func releaseIdleMemory() throws {
        var pair = try WSConnectionPair()
        try pair.client.sendBinary([UInt8](repeating: 7, count: 5000))
        _ = pair.exchange()
        pair.server.releaseIdleMemory()
        pair.client.releaseIdleMemory()
        #expect(pair.server.inbound.storage.capacity == 0)
        try pair.client.sendText("again")
        #expect(pair.exchange().server == [.text("again")])
    }
}

/// Two servers fed interleaved pieces of their own traffic, echoing every message and writing
/// part of their output each turn (as a loop does when the kernel takes only some), with or
/// without one ``WSProtocol/SpareBuffers`` they take turns with. Returns each engine's events
/// (held across turns, so lent storage that changed under them would show) and bytes written.
private func spareBufferRun(seed: UInt64, lending: Bool) throws -> [([WSProtocol.Event], [UInt8])] {
    var rng = WSSeededRandom(seed: seed)
    var config = WSProtocol.Configuration()
    config.pingInterval = nil
    var first = try WSProtocol(role: .server, configuration: config, now: .zero)
    var second = try WSProtocol(role: .server, configuration: config, now: .zero)
    var spare = WSProtocol.SpareBuffers()
    var inputs: [[UInt8]] = [[], []]
    for which in 0..<2 {
        for _ in 0..<40 {
            let size = Int(rng.next() % 3 == 0 ? rng.next() % 70_000 : rng.next() % 200)
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ which) }
            inputs[which] += frame(.binary, payload, key: WSMaskKey(rawValue: UInt32(truncatingIfNeeded: rng.next())))
        }
    }
    var offsets = [0, 0]
    var results: [([WSProtocol.Event], [UInt8])] = [([], []), ([], [])]
    func turn(_ engine: inout WSProtocol, _ which: Int) throws {
        let n = min(inputs[which].count - offsets[which], 1 + Int(rng.next() % 9000))
        if lending { engine.borrowBuffers(from: &spare) }
        engine.receive(inputs[which][offsets[which]..<(offsets[which] + n)])
        offsets[which] += n
        while let event = engine.nextEvent() {
            results[which].0.append(event)
            if case .binary(let bytes) = event { try engine.send(bytes, kind: .binary) }
        }
        let writable = min(engine.bufferedAmount, Int(rng.next() % 100_000))
        results[which].1 += engine.withOutboundBytes { Array($0.prefix(writable)) }
        engine.consumeOutbound(writable)
        if lending {
            engine.returnBuffers(to: &spare)
            // An emptied buffer goes to the spare unless the spare has one of that kind already or
            // it is over 64 KiB.
            let kept = { (capacity: Int, spareCapacity: Int) in capacity == 0 || spareCapacity > 0 || capacity > 64 << 10 }
            if engine.inbound.readable == 0 { #expect(kept(engine.inbound.storage.capacity, spare.inbound.storage.capacity)) }
            if engine.bufferedAmount == 0 { #expect(kept(engine.outbound.storage.capacity, spare.outbound.storage.capacity)) }
        }
    }
    while offsets != [inputs[0].count, inputs[1].count] {
        if rng.next() & 1 == 0 { try turn(&first, 0) } else { try turn(&second, 1) }
    }
    for which in 0..<2 {
        results[which].1 += which == 0 ? first.withOutboundBytes { Array($0) } : second.withOutboundBytes { Array($0) }
    }
    return results
}

@Suite("Spare buffers lent by the adapter (WSProtocol.SpareBuffers)")
struct SpareBufferTests {
    @Test("engines taking turns with one set of spare buffers deliver and write exactly what engines with their own do", arguments: 0..<6)
    func sameAsOwnBuffers(seed: UInt64) throws {
        let own = try spareBufferRun(seed: seed, lending: false)
        let lent = try spareBufferRun(seed: seed, lending: true)
        for which in 0..<2 {
            #expect(lent[which].0 == own[which].0)
            #expect(lent[which].1 == own[which].1)
            #expect(own[which].0.count == 40)
        }
    }

    @Test("WSOptionalInstant holds an optional instant in 8 bytes: none, the origin and any other instant read back")
    func optionalInstant() {
        #expect(MemoryLayout<WSOptionalInstant>.size == 8)
        for instant: WSInstant? in [nil, .zero, .seconds(-3), .seconds(1e9), WSInstant(nanoseconds: .max)] {
            var compact = WSOptionalInstant(instant)
            #expect(compact.value == instant)
            compact.value = nil
            #expect(compact.value == nil && compact == WSOptionalInstant())
        }
    }

    @Test("an engine is at most 312 bytes: it is in every connection's record (issue 18)")
    func engineSize() {
        #expect(MemoryLayout<WSProtocol>.size <= 312)
    }

    @Test("a partial frame stays with its engine; the spare keeps one buffer of each kind, none over 64 KiB")
    func partialStaysAndSizeIsBounded() throws {
        var server = try WSProtocol(role: .server, now: .zero)
        var spare = WSProtocol.SpareBuffers()
        let whole = frame(.text, Array("hello".utf8), key: WSMaskKey(1, 2, 3, 4))
        server.borrowBuffers(from: &spare)
        server.receive(whole[..<4])
        server.returnBuffers(to: &spare)
        #expect(server.inbound.readable == 4 && server.bufferCapacity > 0 && spare.capacity == 0)
        server.receive(whole[4...])
        #expect(drain(&server) == [.text("hello")])
        server.returnBuffers(to: &spare)
        #expect(server.bufferCapacity == 0 && spare.capacity > 0)

        let big = [UInt8](repeating: 1, count: 100_000)
        var other = try WSProtocol(role: .server, now: .zero)
        other.borrowBuffers(from: &spare)
        other.receive(frame(.binary, big, key: WSMaskKey(1, 2, 3, 4)))
        #expect(drain(&other).count == 1)
        other.returnBuffers(to: &spare)
        // The receive buffer grew past 64 KiB: the engine keeps it (until it is idle), the spare stays small.
        #expect(other.inbound.storage.capacity >= 100_000 && spare.capacity <= 64 << 10)
        other.releaseIdleMemory()
        #expect(other.bufferCapacity == 0)
    }
}

@Suite("Unmasking on arrival: large reads, mixed frame sizes, held and dropped events")
struct UnmaskOnArrivalTests {
    @Test("every payload comes out exactly, whatever the read sizes and frame sizes", arguments: 0..<16)
    func payloadsIntact(seed: Int) throws {
        var rng = WSSeededRandom(seed: UInt64(seed) &+ 900)
        var config = WSProtocol.Configuration()
        config.delivery = seed % 2 == 0 ? .streaming : .wholeMessages
        config.maxFrameSize = 1 << 20
        config.maxMessageSize = 1 << 20
        config.pingInterval = nil
        var server = try WSProtocol(role: .server, configuration: config, now: .zero)
        var input: [UInt8] = []
        var expected: [[UInt8]] = []
        for _ in 0..<40 {
            let sizes = [0, 3, 125, 126, 4095, 4096, 5000, 16 << 10, (16 << 10) + 7, 65536, 100_003]
            let n = sizes[Int(rng.next() % UInt64(sizes.count))]
            let payload = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            input += frame(.binary, payload, key: WSMaskKey(rawValue: UInt32(truncatingIfNeeded: rng.next())))
            expected.append(payload)
        }
        let holdEvents = seed % 3 == 0
        var held: [WSProtocol.Event] = []
        var got: [[UInt8]] = []
        var partial: [UInt8] = []
        var offset = 0
        while offset < input.count {
            let reads = [1, 13, 4096, 16 << 10, (16 << 10) + 5, 65536, 200_000]
            let end = min(input.count, offset + reads[Int(rng.next() % UInt64(reads.count))])
            input.withUnsafeBytes { server.receive(UnsafeRawBufferPointer(rebasing: $0[offset..<end])) }
            offset = end
            while let e = server.nextEvent() {
                if holdEvents { held.append(e) }
                switch e {
                case .binary(let b): got.append(Array(b))
                case .fragment(let f):
                    partial += f.data
                    if f.isFinal { got.append(partial); partial = [] }
                default: Issue.record("unexpected \(e)")
                }
            }
        }
        #expect(got == expected)
        // Held events still show the bytes they were delivered with.
        if holdEvents, config.delivery == .wholeMessages {
            #expect(held.compactMap { if case .binary(let b) = $0 { Array(b) } else { nil } } == expected)
        }
    }
}
