public import WSCore
internal import HTTPTypes

/// How a fixture's `receive` steps are fed to the engine.
public enum WSReplayMode: Hashable, Sendable, CustomStringConvertible {
    /// Each `receive` step in one call.
    case whole
    /// One byte per call, draining events after each.
    case byteByByte
    /// Seeded random pieces: half of them 1–16 bytes, half up to the whole step.
    case randomSplits(seed: UInt64)
    /// Random splits as ``randomSplits(seed:)``, the engine borrowing its buffers from one
    /// ``WSProtocol/SpareBuffers`` before each piece and giving them back after draining, as
    /// the epoll adapter does, then releasing its idle memory (``WSProtocol/releaseIdleMemory()``,
    /// which the adapter's sweep calls: a message transform may stand aside for its idle
    /// form), as after every command; events are taken as the adapter takes them
    /// (``drainStepping(_:)``).
    case lentBuffers(seed: UInt64)
    /// Lent buffers as ``lentBuffers(seed:)``, each piece fed as the epoll adapter feeds a read
    /// (``WSFixtureRunner/receiveDirect(_:into:onMessage:)``): whole messages taken in place
    /// with ``WSProtocol/nextDirectMessage(in:at:)``, the rest received and drained; the drain
    /// is checked to find nothing when ``WSProtocol/hasNoEvents`` says so. Pieces are random
    /// splits, or each step whole when `seed` is nil.
    case directReads(seed: UInt64?)

    /// The ways every fixture is replayed: whole, byte by byte, two seeds of random splits,
    /// random splits with lent buffers, and read in place, whole and in random splits.
    public static let standard: [WSReplayMode] = [
        .whole, .byteByByte, .randomSplits(seed: 1), .randomSplits(seed: 2), .lentBuffers(seed: 3),
        .directReads(seed: nil), .directReads(seed: 4),
    ]

    public var description: String {
        switch self {
        case .whole: "whole"
        case .byteByByte: "byte-by-byte"
        case .randomSplits(let seed): "random splits (seed \(seed))"
        case .lentBuffers(let seed): "lent buffers (seed \(seed))"
        case .directReads(let seed?): "direct reads (seed \(seed))"
        case .directReads(nil): "direct reads (whole)"
        }
    }
}

/// Replays ``WSFixture`` transcripts against a fresh ``WSProtocol`` and reports every mismatch.
///
/// The runner behaves as an adapter: after every input it drains all events and all outbound
/// bytes. Events are compared after merging consecutive ``WSProtocol/Event/fragment(_:)``
/// events of one message (streaming delivery depends on how input was split; the merged
/// transcript does not). At the end, events or bytes nobody checked are mismatches too.
public enum WSFixtureRunner {
    /// Runs `fixture` in `mode`; returns one line per mismatch (empty when the transcript holds).
    public static func run(_ fixture: WSFixture, mode: WSReplayMode) -> [String] {
        var failures: [String] = []
        func fail(_ step: Int, _ message: String) { failures.append("\(fixture.name) [\(mode)] step \(step): \(message)") }

        var engine: WSProtocol
        do {
            engine = try makeEngine(fixture)
        } catch {
            return ["\(fixture.name): \(error)"]
        }

        var spare = WSProtocol.SpareBuffers()
        var lending = false, direct = false
        switch mode {
        case .lentBuffers: lending = true
        case .directReads: (lending, direct) = (true, true)
        case .whole, .byteByByte, .randomSplits: break
        }
        var events: [WSProtocol.Event] = []
        var written: [UInt8] = []
        var endOfStream = false
        func drain(_ step: Int, _ engine: inout WSProtocol) {
            // Decoding and encoding paused after a slice go on, as an adapter's next turns would.
            if lending {
                events += Self.drainStepping(&engine)
            } else {
                repeat {
                    while let e = engine.nextEvent() { events.append(e) }
                    engine.continueEncoding()
                } while engine.hasPendingWork
            }
            while let out = engine.nextOutbound() {
                switch out {
                case .bytes(let b):
                    if endOfStream { fail(step, "bytes written after end of stream") }
                    written += b
                case .endOfStream:
                    if endOfStream { fail(step, "end of stream twice") }
                    endOfStream = true
                }
            }
        }

        // An adapter writes what a new engine holds (a client's handshake request) at once.
        drain(0, &engine)
        for (index, step) in fixture.steps.enumerated() {
            let n = index + 1
            switch step {
            case .receive(let bytes):
                for chunk in split(bytes, mode: mode, salt: UInt64(n)) {
                    if lending { engine.borrowBuffers(from: &spare) }
                    if direct {
                        let streaming = engine.configuration.delivery == .streaming
                        let quiet = receiveDirect(chunk, into: &engine) { _, kind, bytes in
                            events.append(dataEvent(kind, Array(bytes), streaming: streaming))
                        }
                        let before = events.count
                        drain(n, &engine)
                        if quiet && events.count != before { fail(n, "hasNoEvents, then the drain found \(events[before...].map(render))") }
                    } else {
                        engine.receive(chunk)
                        drain(n, &engine)
                    }
                    if lending {
                        engine.returnBuffers(to: &spare)
                        engine.releaseIdleMemory()
                    }
                }
            case .receiveEOF:
                engine.receiveEOF()
                drain(n, &engine)
            case .tick(let now):
                engine.tick(now: now)
                drain(n, &engine)
            case .command(let command, let expectError):
                do {
                    try perform(command, on: &engine)
                    if let expectError { fail(n, "expected \(expectError), command succeeded") }
                } catch {
                    let name = usageErrorName(error)
                    if name != expectError { fail(n, "command threw \(name) (\(error)), expected \(expectError ?? "success")") }
                }
                drain(n, &engine)
                if lending { engine.releaseIdleMemory() }
            case .expectEvents(let expected):
                let got = mergeFragments(events)
                if got != mergeFragments(expected) {
                    fail(n, "events\n    got      \(got.map(render))\n    expected \(mergeFragments(expected).map(render))")
                }
                events = []
            case .expectOutbound(let expected, let eos):
                if written != expected {
                    fail(n, "outbound\n    got      \(hex(written))\n    expected \(hex(expected))")
                }
                if endOfStream != eos { fail(n, "end of stream \(endOfStream), expected \(eos)") }
                written = []
                endOfStream = false
            case .expectState(let expected):
                if let l = expected.lifecycle, engine.lifecycle != l { fail(n, "state \(engine.lifecycle), expected \(l)") }
                if let d = expected.nextDeadline, engine.nextDeadline != d {
                    fail(n, "nextDeadline \(String(describing: engine.nextDeadline)), expected \(String(describing: d))")
                }
                if let b = expected.bufferedAmount, engine.bufferedAmount != b { fail(n, "bufferedAmount \(engine.bufferedAmount), expected \(b)") }
                if let w = expected.isWritable, engine.isWritable != w { fail(n, "isWritable \(engine.isWritable), expected \(w)") }
            }
        }
        if !events.isEmpty { fail(fixture.steps.count, "unchecked events at the end: \(mergeFragments(events).map(render))") }
        if !written.isEmpty || endOfStream {
            fail(fixture.steps.count, "unchecked outbound at the end: \(hex(written))\(endOfStream ? " + end of stream" : "")")
        }
        return failures
    }

    /// A fresh engine for `fixture`: its role, configuration, keys and handshake.
    public static func makeEngine(_ fixture: WSFixture) throws(WSUsageError) -> WSProtocol {
        let keys: any RandomNumberGenerator & Sendable =
            fixture.maskKeys.isEmpty ? WSSeededRandom(seed: 1) : WSMaskKeySequence(fixture.maskKeys)
        switch fixture.handshake {
        case .client(let h)?:
            return try WSProtocol(client: h, configuration: fixture.configuration, now: .zero, randomNumberGenerator: keys)
        case .server(let h)?:
            return try WSProtocol(server: h, configuration: fixture.configuration, now: .zero)
        case nil:
            return try WSProtocol(role: fixture.role, configuration: fixture.configuration, now: .zero, randomNumberGenerator: keys,
                                  transform: fixture.deflate.flatMap { $0.negotiator.makeTransform(agreed: $0.agreed, role: fixture.role) })
        }
    }

    static func perform(_ command: WSFixture.Command, on engine: inout WSProtocol) throws(WSUsageError) {
        switch command {
        case .sendText(let t, let compress): try engine.sendText(t, compress: compress)
        case .sendBinary(let b, let compress): try engine.sendBinary(b, compress: compress)
        case .sendFragment(let b, let kind, let isFinal, let compress): try engine.sendFragment(b, kind: kind, isFinal: isFinal, compress: compress)
        case .ping(let b): try engine.ping(b)
        case .pong(let b): try engine.pong(b)
        case .close(let code, let reason, let timeout): try engine.close(code: code, reason: reason, timeout: timeout)
        case .accept(let subprotocol, let extensions, let headers):
            try engine.accept(subprotocol: subprotocol, extensions: extensions, headers: headers)
        case .reject(let status, let headers, let body):
            try engine.reject(status: HTTPResponse.Status(code: status), headers: headers, body: body)
        case .fail(let code, let detail):
            try engine.fail(WSProtocolError.Code(rawValue: code), detail: detail)
        }
    }

    /// The name of a ``WSUsageError`` case, as fixtures write it in `expectError`.
    public static func usageErrorName(_ error: WSUsageError) -> String {
        switch error {
        case .notOpen: "notOpen"
        case .closeAlreadySent: "closeAlreadySent"
        case .controlPayloadTooLong: "controlPayloadTooLong"
        case .invalidCloseCode: "invalidCloseCode"
        case .invalidCloseReason: "invalidCloseReason"
        case .invalidUTF8: "invalidUTF8"
        case .fragmentedMessageInProgress: "fragmentedMessageInProgress"
        case .outboundBufferFull: "outboundBufferFull"
        case .invalidConfiguration: "invalidConfiguration"
        case .invalidURL: "invalidURL"
        case .invalidHandshake: "invalidHandshake"
        case .noPendingUpgrade: "noPendingUpgrade"
        }
    }

    /// Cuts `bytes` into the reads `mode` feeds; `salt` varies the random splits between steps.
    public static func split(_ bytes: [UInt8], mode: WSReplayMode, salt: UInt64) -> [ArraySlice<UInt8>] {
        switch mode {
        case .whole, .directReads(nil):
            return [bytes[...]]
        case .byteByByte:
            return bytes.indices.map { bytes[$0...$0] }
        case .randomSplits(let seed), .lentBuffers(let seed), .directReads(let seed?):
            var rng = WSSeededRandom(seed: seed &* 0x1000_0001 &+ salt)
            var pieces: [ArraySlice<UInt8>] = []
            var i = 0
            while i < bytes.count {
                let limit = rng.next() & 1 == 0 ? 16 : bytes.count
                let size = 1 + Int(rng.next() % UInt64(limit))
                let end = min(bytes.count, i + size)
                pieces.append(bytes[i..<end])
                i = end
            }
            return pieces
        }
    }

    /// Feeds `bytes` to `engine` as the epoll adapter feeds a read: from a buffer of its own,
    /// each whole message the engine takes in place (``WSProtocol/nextDirectMessage(in:at:)``)
    /// goes to `onMessage` (which may use the engine: an echo), then the rest is received the
    /// general way, to be drained by the caller. Returns whether every byte was taken in place
    /// and the engine then reported ``WSProtocol/hasNoEvents`` (the adapter skips the drain).
    public static func receiveDirect(_ bytes: some Collection<UInt8>, into engine: inout WSProtocol,
                                     onMessage: (inout WSProtocol, WSMessageKind, [UInt8]) -> Void) -> Bool {
        var buffer = Array(bytes)
        var taken = 0
        // Each message is copied out of the buffer before `onMessage` may use the engine.
        while let (kind, payload) = nextDirect(&buffer, &taken, &engine) {
            onMessage(&engine, kind, payload)
        }
        if taken < buffer.count { engine.receive(buffer[taken...]) }
        return taken == buffer.count && engine.hasNoEvents
    }

    private static func nextDirect(_ buffer: inout [UInt8], _ taken: inout Int, _ engine: inout WSProtocol) -> (WSMessageKind, [UInt8])? {
        buffer.withUnsafeMutableBytes { raw in
            guard let (kind, range) = engine.nextDirectMessage(in: raw, at: &taken) else { return nil }
            return (kind, Array(raw[range]))
        }
    }

    /// The event ``WSProtocol/nextEvent()`` returns for a whole message of `kind`.
    public static func dataEvent(_ kind: WSMessageKind, _ bytes: [UInt8], streaming: Bool) -> WSProtocol.Event {
        if streaming { return .fragment(WSFragment(kind: kind, data: bytes[...], isFinal: true)) }
        return kind == .text ? .text(String(decoding: bytes, as: UTF8.self)) : .binary(bytes[...])
    }

    /// Drains `engine` with ``WSProtocol/nextEvent(lendingData:)`` and rebuilds from the lent
    /// bytes the events ``WSProtocol/nextEvent()`` would have returned, so the two ways of taking
    /// data can be compared. A data event returned as `.event` (which must never happen) is kept
    /// as it is, so a comparison shows it.
    public static func drainLending(_ engine: inout WSProtocol) -> [WSProtocol.Event] {
        let streaming = engine.configuration.delivery == .streaming
        var events: [WSProtocol.Event] = []
        repeat {
            while let result = engine.nextEvent(lendingData: { kind, bytes, isFinal in
                var copy: [UInt8] = []
                copy.reserveCapacity(bytes.count)
                for i in bytes.indices { copy.append(bytes[i]) }
                if streaming {
                    events.append(.fragment(WSFragment(kind: kind, data: copy[...], isFinal: isFinal)))
                } else {
                    events.append(kind == .text ? .text(String(decoding: copy, as: UTF8.self)) : .binary(copy[...]))
                }
            }) {
                if case .event(let event) = result { events.append(event) }
            }
            engine.continueEncoding()
        } while engine.hasPendingWork
        return events
    }

    /// Drains `engine` with ``WSProtocol/nextEventSharingData()`` and builds from the shared
    /// slices the events ``WSProtocol/nextEvent()`` would have returned. The slices are kept as
    /// they are (still sharing the engine's buffers), so an engine fed more input afterwards
    /// must leave them unchanged: comparing the events later checks that too.
    public static func drainSharing(_ engine: inout WSProtocol) -> [WSProtocol.Event] {
        let streaming = engine.configuration.delivery == .streaming
        var events: [WSProtocol.Event] = []
        repeat {
            while let result = engine.nextEventSharingData() {
                switch result {
                case .data(let kind, let bytes, let isFinal):
                    if streaming {
                        events.append(.fragment(WSFragment(kind: kind, data: bytes, isFinal: isFinal)))
                    } else {
                        events.append(kind == .text ? .text(String(decoding: bytes, as: UTF8.self)) : .binary(bytes))
                    }
                case .event(let event):
                    events.append(event)
                }
            }
            engine.continueEncoding()
        } while engine.hasPendingWork
        return events
    }

    /// The ways ``drainLending(_:)``, ``drainSharing(_:)`` and ``drainStepping(_:)`` take data.
    public enum Take: Sendable { case lending, sharing, stepping }

    /// Drains `engine` as the epoll adapter does, with ``WSProtocol/nextSharedData()`` (taking
    /// each other event with ``WSProtocol/nextEventSharingData()``), and rebuilds from the
    /// pieces the events ``WSProtocol/nextEvent()`` would have returned, sharing the engine's
    /// buffers as ``drainSharing(_:)`` does.
    public static func drainStepping(_ engine: inout WSProtocol) -> [WSProtocol.Event] {
        let streaming = engine.configuration.delivery == .streaming
        var events: [WSProtocol.Event] = []
        repeat {
            steps: while true {
                let step = engine.nextSharedData()
                switch step.found {
                case .none:
                    break steps
                case .data:
                    if streaming {
                        events.append(.fragment(WSFragment(kind: step.kind, data: step.bytes, isFinal: step.isFinal)))
                    } else {
                        events.append(step.kind == .text ? .text(String(decoding: step.bytes, as: UTF8.self)) : .binary(step.bytes))
                    }
                case .event:
                    guard case .event(let event)? = engine.nextEventSharingData() else {
                        preconditionFailure("nextSharedData() found an event that nextEventSharingData() does not return")
                    }
                    events.append(event)
                }
            }
            engine.continueEncoding()
        } while engine.hasPendingWork
        return events
    }

    /// Merges each run of fragments of one message into one fragment, so transcripts do not
    /// depend on how the input was split.
    public static func mergeFragments(_ events: [WSProtocol.Event]) -> [WSProtocol.Event] {
        var out: [WSProtocol.Event] = []
        for event in events {
            if case .fragment(let next) = event, case .fragment(var open)? = out.last, !open.isFinal, open.kind == next.kind {
                open.data = ArraySlice(Array(open.data) + next.data)
                open.isFinal = next.isFinal
                out[out.count - 1] = .fragment(open)
            } else {
                out.append(event)
            }
        }
        return out
    }

    /// A short rendering of an event for failure messages.
    public static func render(_ event: WSProtocol.Event) -> String {
        switch event {
        case .text(let t): "text(\(t.count > 80 ? "\(t.prefix(80))… (\(t.utf8.count) bytes)" : t.debugDescription))"
        case .binary(let b): "binary(\(hex(b)))"
        case .fragment(let f): "fragment(\(f.kind), \(hex(f.data))\(f.isFinal ? ", final" : ""))"
        case .ping(let b): "ping(\(hex(b)))"
        case .pong(let b): "pong(\(hex(b)))"
        case .closeReceived(let f): "closeReceived(\(f))"
        case .idleTimeout: "idleTimeout"
        case .upgradeRequested(let r): "upgradeRequested(\(r.head.path ?? ""), \(r.head.headerFields.map(\.description)))"
        case .opened(let r): "opened(\(r.response.status.code), \(r.response.headerFields.map(\.description)), subprotocol: \(r.subprotocol ?? "nil"), extensions: \(r.extensions))"
        case .rejected(let r): "rejected(\(r.response.status.code), \(r.response.headerFields.map(\.description)), body: \(hex(r.body))\(r.isBodyTruncated ? ", truncated" : ""))"
        case .handshakeFailed(let e): "handshakeFailed(\(e.code))"
        case .failed(let e): "failed(\(e.code))"
        case .closed(let info): "closed(sent: \(info.sent.map { "\($0)" } ?? "nil"), received: \(info.received.map { "\($0)" } ?? "nil"), initiator: \(info.initiator.map { "\($0)" } ?? "nil"), cause: \(info.cause.map { "\($0)" } ?? "nil"))"
        }
    }

    /// Lowercase hex, abbreviated past 64 bytes.
    public static func hex(_ bytes: some Collection<UInt8>) -> String {
        let digits = bytes.prefix(64).map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: " ")
        return bytes.count > 64 ? "\(digits) … (\(bytes.count) bytes)" : digits
    }
}
