import Testing
import WSCore
import WSDeflate
import WSTesting

/// An echo of every data message, run two ways over the same reads:
/// - the reference: `receive`, then `nextEvent()`, each message sent back with the generic
///   `send(_:kind:compress:)`;
/// - the adapter's fast paths: whole messages taken in place with `nextDirectMessage(in:at:)`
///   and sent back with `send(_: UnsafeRawBufferPointer, …)` (its one-frame path), the rest
///   received and drained with `nextSharedData()`, the drain skipped when `hasNoEvents` says so
///   (after checking that it would find nothing).
private struct EchoRun: Equatable {
    var events: [WSProtocol.Event] = []
    var written: [UInt8] = []
    var endOfStream = false
    var sendErrors: [String] = []
    /// `nextDeadline` after each read (the idle timer moves with data in either direction).
    var deadlines: [WSInstant?] = []
    /// Messages taken in place (not compared: the reference takes none).
    var direct = 0

    static func == (a: EchoRun, b: EchoRun) -> Bool {
        a.events == b.events && a.written == b.written && a.endOfStream == b.endOfStream && a.sendErrors == b.sendErrors
            && a.deadlines == b.deadlines
    }
}

/// `send(_: UnsafeRawBufferPointer, kind:compress:)`, the adapters' entry point (its one-frame path).
private func sendRaw(_ p: inout WSProtocol, _ bytes: [UInt8], kind: WSMessageKind, compress: Bool = true) throws(WSUsageError) {
    try bytes.span.withUnsafeBytes { (raw) throws(WSUsageError) in try p.send(raw, kind: kind, compress: compress) }
}

private func echoRun(role: WSProtocol.Role, config: WSProtocol.Configuration, transform: (any WSMessageTransform)?,
                     pieces: [ArraySlice<UInt8>], direct: Bool) throws -> EchoRun {
    var p = try WSProtocol(role: role, configuration: config, now: .zero, randomNumberGenerator: WSSeededRandom(seed: 5), transform: transform)
    var run = EchoRun()
    let streaming = config.delivery == .streaming
    func echo(_ p: inout WSProtocol, _ kind: WSMessageKind, _ bytes: [UInt8], fast: Bool) {
        do throws(WSUsageError) {
            if fast {
                try sendRaw(&p, bytes, kind: kind)
            } else {
                try p.send(bytes, kind: kind)
            }
        } catch {
            run.sendErrors.append(WSFixtureRunner.usageErrorName(error))
        }
    }
    func collect(_ p: inout WSProtocol) {
        let o = outbound(&p)
        run.written += o.bytes
        run.endOfStream = run.endOfStream || o.endOfStream
    }
    /// Every other whole message is echoed (so that what receiving does to the idle timer is
    /// seen too; streaming pieces are not echoed, they may be parts of one).
    var messages = 0
    func take(_ event: WSProtocol.Event, _ p: inout WSProtocol, fast: Bool) {
        run.events.append(event)
        switch event {
        case .text(let s):
            messages += 1
            if messages % 2 == 0 { echo(&p, .text, Array(s.utf8), fast: fast) }
        case .binary(let b):
            messages += 1
            if messages % 2 == 0 { echo(&p, .binary, Array(b), fast: fast) }
        default: break
        }
    }
    /// The adapter's drain: `nextSharedData()`, each data piece and event taken as it comes.
    func drainStepping(_ p: inout WSProtocol) {
        while true {
            let step = p.nextSharedData()
            switch step.found {
            case .none: return
            case .data:
                take(streaming ? .fragment(WSFragment(kind: step.kind, data: step.bytes, isFinal: step.isFinal))
                     : WSFixtureRunner.dataEvent(step.kind, Array(step.bytes), streaming: false), &p, fast: true)
            case .event:
                guard case .event(let e)? = p.nextEventSharingData() else { Issue.record("no event after .event"); return }
                take(e, &p, fast: true)
            }
        }
    }
    for (i, piece) in pieces.enumerated() {
        // Time passes between reads (half a second each), so that timers fire in both runs.
        p.tick(now: .seconds(0.5 * Double(i)))
        if direct {
            let quiet = WSFixtureRunner.receiveDirect(piece, into: &p) { p, kind, bytes in
                run.direct += 1
                take(WSFixtureRunner.dataEvent(kind, bytes, streaming: streaming), &p, fast: true)
            }
            let before = run.events.count
            drainStepping(&p)
            #expect(!quiet || run.events.count == before, "hasNoEvents, yet the drain found events")
        } else {
            p.receive(piece)
            while let e = p.nextEvent() { take(e, &p, fast: false) }
        }
        collect(&p)
        run.deadlines.append(p.nextDeadline)
    }
    p.receiveEOF()
    if direct {
        drainStepping(&p)
    } else {
        while let e = p.nextEvent() { take(e, &p, fast: false) }
    }
    collect(&p)
    run.events = WSFixtureRunner.mergeFragments(run.events)
    return run
}

/// Mostly whole data messages (0–300 bytes, across the 7- and 16-bit length forms; text valid
/// UTF-8), the rest ``randomFrame(_:role:hostile:deflate:)``'s soup: runs of messages that the
/// adapter takes in place, broken by control frames, fragments and (when hostile) violations.
private func echoFrame(_ rng: inout WSSeededRandom, role: WSProtocol.Role, hostile: Bool, deflate: Bool) -> [UInt8] {
    if rng.next() % 4 == 0 {
        // Not the peer's Close (unless hostile): sessions go on long enough for timers to matter.
        while true {
            let frame = randomFrame(&rng, role: role, hostile: hostile, deflate: deflate)
            if hostile || frame.first.map({ $0 & 0x0F != 0x8 }) ?? true { return frame }
        }
    }
    let text = rng.next() % 2 == 0
    let n = Int(rng.next() % 301)
    var payload = text ? Array(String(repeating: "é", count: n / 2).utf8) : (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    let key = role == .server ? WSMaskKey(rawValue: UInt32(truncatingIfNeeded: rng.next())) : nil
    var out: [UInt8] = []
    WSFrameHeader(opcode: text ? .text : .binary, maskKey: key, payloadLength: UInt64(payload.count)).encode(into: &out)
    if let key { key.apply(to: &payload) }
    return out + payload
}

/// Reads as the network usually delivers them: one to four whole frames each.
private func readsOfWholeFrames(_ frames: [[UInt8]], _ rng: inout WSSeededRandom) -> [ArraySlice<UInt8>] {
    var reads: [ArraySlice<UInt8>] = []
    var i = 0
    while i < frames.count {
        let n = min(frames.count - i, 1 + Int(rng.next() % 4))
        reads.append(frames[i..<(i + n)].flatMap { $0 }[...])
        i += n
    }
    return reads
}

@Suite("Reading in place (nextDirectMessage) and sending one plain frame give what receive, nextEvent() and the general send give")
struct DirectPathTests {
    @Test("random echo sessions, both roles, both delivery modes, with and without permessage-deflate, split at random",
          arguments: 0..<80)
    func sameAsReference(seed: Int) throws {
        var rng = WSSeededRandom(seed: UInt64(seed) &* 13 &+ 11)
        let role: WSProtocol.Role = seed % 2 == 0 ? .server : .client
        var config = WSProtocol.Configuration()
        config.delivery = seed % 5 == 0 ? .streaming : .wholeMessages
        config.maxMessageSize = [1 << 20, 200, 100][seed % 3]
        config.maxFrameSize = [65536, 100, 100][seed % 3]
        config.outboundFragmentSize = [1 << 20, 16, 100][seed % 3]
        config.idleTimeout = seed % 4 < 2 ? .seconds(2) : nil
        config.pingInterval = seed % 4 == 2 ? .seconds(3) : nil
        let deflate = seed % 3 == 1
        func transform() -> (any WSMessageTransform)? {
            deflate ? WSPerMessageDeflate().makeTransform(agreed: WSExtensionElement(name: "permessage-deflate"), role: role) : nil
        }
        let frames = (0..<Int(rng.next() % 40)).map { _ in echoFrame(&rng, role: role, hostile: seed % 4 == 3, deflate: deflate) }
        let input = frames.flatMap { $0 }
        let pieces = switch seed % 3 {
        case 0: [input[...]]
        case 1: readsOfWholeFrames(frames, &rng)
        default: WSFixtureRunner.split(input, mode: .randomSplits(seed: UInt64(seed)), salt: 0)
        }
        let reference = try echoRun(role: role, config: config, transform: transform(), pieces: pieces, direct: false)
        let fast = try echoRun(role: role, config: config, transform: transform(), pieces: pieces, direct: true)
        #expect(fast == reference)
    }

    @Test("the comparison is not vacuous: messages are taken in place and echoed, in both roles")
    func notVacuous() throws {
        var taken: [WSProtocol.Role: Int] = [:]
        var echoed = 0
        for seed in 0..<40 {
            var rng = WSSeededRandom(seed: UInt64(seed))
            let role: WSProtocol.Role = seed % 2 == 0 ? .server : .client
            let frames = (0..<Int(rng.next() % 40)).map { _ in echoFrame(&rng, role: role, hostile: false, deflate: false) }
            let run = try echoRun(role: role, config: .init(), transform: nil, pieces: readsOfWholeFrames(frames, &rng), direct: true)
            taken[role, default: 0] += run.direct
            echoed += run.written.count
        }
        // A read goes the general way from its first control frame on, and a Close ends the
        // session: many messages still go each way.
        #expect(taken[.server, default: 0] >= 100)
        #expect(taken[.client, default: 0] >= 100)
        #expect(echoed > 0)
    }

    @Test("§5.2: every 7- and 16-bit length up to the limit is taken in place, unmasked; one byte over is left to the parser")
    func lengthsAndLimit() throws {
        var config = WSProtocol.Configuration()
        config.maxMessageSize = 300
        for n in [0, 1, 7, 8, 31, 32, 33, 125, 126, 127, 255, 300, 301] {
            var p = try WSProtocol(role: .server, configuration: config, now: .zero)
            let payload = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            var masked = payload
            let key = WSMaskKey(0x37, 0xfa, 0x21, 0x3d)
            key.apply(to: &masked)
            var frame: [UInt8] = []
            WSFrameHeader(opcode: .binary, maskKey: key, payloadLength: UInt64(n)).encode(into: &frame)
            frame += masked
            var taken = 0
            let result = frame.withUnsafeMutableBytes { raw -> (WSMessageKind, [UInt8])? in
                p.nextDirectMessage(in: raw, at: &taken).map { ($0.kind, Array(raw[$0.range])) }
            }
            if n <= 300 {
                #expect(result?.0 == .binary)
                #expect(result?.1 == payload)
                #expect(taken == frame.count)
            } else {
                #expect(result == nil)
                #expect(taken == 0)
                p.receive(frame)
                guard case .failed(let e)? = p.nextEvent() else { Issue.record("no failure for \(n) bytes"); continue }
                #expect(e.closeCode == .messageTooBig)
            }
        }
    }

    @Test("§8.1: invalid UTF-8 is left, masked as it came, to the parser, which fails with 1007 at the same byte")
    func invalidTextLeftMasked() throws {
        var p = try WSProtocol(role: .server, now: .zero)
        let key = WSMaskKey(1, 2, 3, 4)
        var frame: [UInt8] = []
        var payload: [UInt8] = Array("ok".utf8) + [0xFF] + Array("z".utf8)
        WSFrameHeader(opcode: .text, maskKey: key, payloadLength: UInt64(payload.count)).encode(into: &frame)
        key.apply(to: &payload)
        frame += payload
        let original = frame
        var taken = 0
        let result = frame.withUnsafeMutableBytes { p.nextDirectMessage(in: $0, at: &taken) }
        #expect(result == nil)
        #expect(taken == 0)
        #expect(frame == original)
        p.receive(frame)
        guard case .failed(let e)? = p.nextEvent() else { Issue.record("no failure"); return }
        #expect(e.closeCode == .invalidFramePayloadData)
        #expect(e.offset == 2 + 4 + 2)
    }

    @Test("not taken in place: a frame in progress, a pending event, a closing connection, compressed or fragmented frames, the wrong masking")
    func declines() throws {
        func frame(_ b0: UInt8, _ payload: [UInt8], masked: Bool = true) -> [UInt8] {
            var out = [b0, UInt8(payload.count) | (masked ? 0x80 : 0)]
            if masked { out += [0, 0, 0, 0] }
            return out + payload
        }
        func takes(_ p: inout WSProtocol, _ bytes: [UInt8]) -> Bool {
            var buffer = bytes, taken = 0
            return buffer.withUnsafeMutableBytes { p.nextDirectMessage(in: $0, at: &taken) } != nil
        }
        var p = try WSProtocol(role: .server, now: .zero)
        #expect(takes(&p, frame(0x82, [1])))
        #expect(!takes(&p, frame(0x02, [1])), "no FIN")
        #expect(!takes(&p, frame(0xC2, [1])), "RSV1 (compressed)")
        #expect(!takes(&p, frame(0x89, [1])), "a Ping")
        #expect(!takes(&p, frame(0x82, [1], masked: false)), "a client frame must be masked")
        #expect(!takes(&p, Array(frame(0x82, [1, 2, 3]).dropLast())), "incomplete")
        // A frame buffered in the engine first: later bytes must follow it.
        p.receive(frame(0x82, [1, 2, 3]).prefix(3))
        #expect(!takes(&p, frame(0x82, [1])))
        var q = try WSProtocol(role: .server, now: .zero)
        q.receive(frame(0x89, []))
        #expect(!takes(&q, frame(0x82, [1])), "buffered, not yet parsed")
        var r = try WSProtocol(role: .server, now: .zero)
        try r.close(code: .normalClosure)
        #expect(!takes(&r, frame(0x82, [1])), "our Close sent: the general parser handles what comes")
        var c = try WSProtocol(role: .client, now: .zero)
        #expect(takes(&c, frame(0x81, Array("hi".utf8), masked: false)))
        #expect(!takes(&c, frame(0x81, Array("hi".utf8))), "a server frame must not be masked")
    }

    @Test("hasNoEvents: true only when nextEvent() has nothing; false with input buffered, an event pending, a timer due")
    func hasNoEvents() throws {
        var config = WSProtocol.Configuration()
        config.pingInterval = .seconds(10)
        var p = try WSProtocol(role: .server, configuration: config, now: .zero)
        #expect(p.hasNoEvents == true)
        #expect(p.nextEvent() == nil)
        p.receive([0x89, 0x80])
        #expect(p.hasNoEvents == false)
        p.receive([0, 0, 0, 0])
        #expect(p.hasNoEvents == false)
        #expect(p.nextEvent() == .ping([]))
        #expect(p.hasNoEvents == true)
        p.tick(now: .seconds(10))
        #expect(p.hasNoEvents == false)
        #expect(p.nextEvent() == nil)   // the keepalive Ping goes out; no event
        #expect(p.hasNoEvents == true)
        p.receive([0x82])
        #expect(p.hasNoEvents == false)
        p.receiveEOF()
        #expect(p.hasNoEvents == false)
    }

    @Test("send's one-frame path writes exactly the general path's bytes: every length 0–130, the 16- and 64-bit forms, fragmenting, deflate, client masking")
    func sendSameAsReference() throws {
        var fragmenting = WSProtocol.Configuration()
        fragmenting.outboundFragmentSize = 100
        let deflate = { (role: WSProtocol.Role) in
            WSPerMessageDeflate().makeTransform(agreed: WSExtensionElement(name: "permessage-deflate"), role: role)
        }
        for role in [WSProtocol.Role.server, .client] {
            for (config, withDeflate) in [(WSProtocol.Configuration(), false), (fragmenting, false), (.init(), true)] {
                for n in Array(0...130) + [65535, 65536, 70000] {
                    for (kind, compress) in [(WSMessageKind.binary, true), (.text, true), (.binary, false)] {
                        let bytes = (0..<n).map { UInt8(truncatingIfNeeded: 0x41 + $0 % 26) }
                        var general = try WSProtocol(role: role, configuration: config, now: .zero,
                                                     randomNumberGenerator: WSSeededRandom(seed: 3), transform: withDeflate ? deflate(role) : nil)
                        var fast = try WSProtocol(role: role, configuration: config, now: .zero,
                                                  randomNumberGenerator: WSSeededRandom(seed: 3), transform: withDeflate ? deflate(role) : nil)
                        try general.send(bytes, kind: kind, compress: compress)
                        try sendRaw(&fast, bytes, kind: kind, compress: compress)
                        let a = outbound(&general), b = outbound(&fast)
                        #expect(a.bytes == b.bytes, "\(role) \(n) bytes \(kind) compress \(compress) deflate \(withDeflate)")
                        #expect(general.isWritable == fast.isWritable)
                        #expect(general.nextDeadline == fast.nextDeadline)
                    }
                }
            }
        }
    }

    @Test("send's one-frame path keeps the general path's errors and limits: not open, a fragmented message in progress, a full buffer")
    func sendErrors() throws {
        var config = WSProtocol.Configuration()
        config.outboundLowWaterMark = 10
        config.outboundHighWaterMark = 50
        config.maxBufferedAmount = 100
        var p = try WSProtocol(role: .server, configuration: config, now: .zero)
        let ninety = [UInt8](repeating: 1, count: 90)
        // 90 bytes and the largest header (14): 104 > 100.
        #expect(throws: WSUsageError.outboundBufferFull(bufferedAmount: 0, limit: 100)) {
            try sendRaw(&p, ninety, kind: .binary)
        }
        try sendRaw(&p, [UInt8](repeating: 1, count: 70), kind: .binary)
        try p.sendFragment([1], kind: .binary, isFinal: false)
        #expect(throws: WSUsageError.fragmentedMessageInProgress) {
            try sendRaw(&p, [], kind: .binary)
        }
        var q = try WSProtocol(role: .server, now: .zero)
        try q.close(code: .normalClosure)
        #expect(throws: WSUsageError.notOpen) {
            try sendRaw(&q, [], kind: .binary)
        }
    }
}
