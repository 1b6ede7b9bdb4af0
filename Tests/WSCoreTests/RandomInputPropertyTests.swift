import Testing
import WSCore
import WSDeflate
import WSTesting

/// A random frame: mostly valid, sometimes breaking exactly one rule, sometimes raw garbage.
/// With `hostile` off, frames are well formed (whole messages and control frames only), so runs
/// reach the closing handshake; with it on, every rule gets broken now and then.
/// With `deflate`, data frames are usually whole messages compressed on their own (RSV1).
func randomFrame(_ rng: inout WSSeededRandom, role: WSProtocol.Role, hostile: Bool, deflate: Bool = false) -> [UInt8] {
    let opcodes: [UInt8] = hostile ? [0x0, 0x1, 0x2, 0x1, 0x2, 0x8, 0x9, 0xA, 0x3, 0xB] : [0x1, 0x2, 0x1, 0x2, 0x9, 0xA, 0x8]
    let opcode = opcodes[Int(rng.next() % UInt64(opcodes.count))]
    var payload: [UInt8]
    switch rng.next() % 4 {
    case 0: payload = Array("héllo wörld 😀".utf8.prefix(Int(rng.next() % 18)))
    case 1: payload = (0..<Int(rng.next() % 130)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    case 2: payload = [0x03, 0xE8] + Array("bye".utf8)
    default: payload = []
    }
    var rsv: UInt8 = 0
    if deflate, opcode == 0x1 || opcode == 0x2, rng.next() % 4 != 0 {
        if opcode == 0x1 { payload = Array(String(repeating: "héllo wörld 😀 ", count: Int(rng.next() % 40)).utf8) }
        payload = zlibDeflate(payload)
        rsv = 0b100
        // Now and then, damage the compressed data.
        if hostile, rng.next() % 6 == 0, !payload.isEmpty { payload[Int(rng.next() % UInt64(payload.count))] ^= 0x5A }
    }
    if !hostile || rsv != 0 {
        if opcode == 0x1, rsv == 0 { payload = Array("héllo wörld 😀".utf8) }
        if opcode == 0x8 { payload = [0x03, 0xE8] }
        var out: [UInt8] = []
        let key = role == .server ? WSMaskKey(rawValue: UInt32(truncatingIfNeeded: rng.next())) : nil
        WSFrameHeader(rsv: rsv, opcode: WSOpcode(rawValue: opcode)!, maskKey: key, payloadLength: UInt64(payload.count)).encode(into: &out)
        if let key { key.apply(to: &payload) }
        return out + payload
    }
    if opcode == 0x8, rng.next() % 3 == 0 {
        payload = [UInt8(truncatingIfNeeded: rng.next()), UInt8(truncatingIfNeeded: rng.next())]
    }
    let wrongMask = rng.next() % 20 == 0
    let masked = (role == .server) != wrongMask
    let header = WSFrameHeader(
        fin: rng.next() % 5 != 0, rsv: rng.next() % 25 == 0 ? 0b100 : 0, opcode: WSOpcode(rawValue: opcode)!,
        maskKey: masked ? WSMaskKey(rawValue: UInt32(truncatingIfNeeded: rng.next())) : nil,
        payloadLength: UInt64(payload.count))
    if rng.next() % 40 == 0 { return (0..<Int(rng.next() % 16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
    var out: [UInt8] = []
    header.encode(into: &out)
    if let key = header.maskKey { key.apply(to: &payload) }
    return out + payload
}

struct Run: Equatable {
    var events: [WSProtocol.Event]
    var written: [UInt8]
    var endOfStream: Bool
}

func replay(_ input: [UInt8], role: WSProtocol.Role, config: WSProtocol.Configuration, pieces: [ArraySlice<UInt8>],
            transform: (any WSMessageTransform)? = nil) throws -> Run {
    var p = try WSProtocol(role: role, configuration: config, now: .zero, randomNumberGenerator: WSSeededRandom(seed: 5), transform: transform)
    var run = Run(events: [], written: [], endOfStream: false)
    for piece in pieces {
        p.receive(piece)
        run.events += drain(&p)
        let o = outbound(&p)
        run.written += o.bytes
        run.endOfStream = run.endOfStream || o.endOfStream
    }
    p.receiveEOF()
    run.events += drain(&p)
    let o = outbound(&p)
    run.written += o.bytes
    run.endOfStream = run.endOfStream || o.endOfStream
    #expect(p.isClosed == true)
    run.events = WSFixtureRunner.mergeFragments(run.events)
    return run
}

@Suite("Random input: split-invariance and legal close codes, both roles")
struct RandomInputPropertyTests {
    @Test("whole == byte by byte == random splits; every failure carries a legal close code", arguments: 0..<60)
    func randomStreams(seed: Int) throws {
        _ = try check(seed: seed)
    }

    @Test("the generator is not vacuous: it reaches many different outcomes")
    func variety() throws {
        var codes = Set<String>(), messages = 0, clean = 0
        for seed in 0..<300 {
            let run = try check(seed: seed, splits: false)
            for e in run.events {
                switch e {
                case .failed(let f): codes.insert(f.code.rawValue)
                case .text, .binary, .fragment: messages += 1
                case .closed(let info) where info.wasClean: clean += 1
                default: break
                }
            }
        }
        #expect(codes.count >= 10, "\(codes.sorted())")
        #expect(codes.contains("invalidCompressedData"), "compressed frames are in the soup")
        #expect(messages >= 100)
        #expect(clean >= 10)
    }

    func check(seed: Int, splits: Bool = true) throws -> Run {
        var rng = WSSeededRandom(seed: UInt64(seed) &* 31 &+ 7)
        let role: WSProtocol.Role = seed % 2 == 0 ? .server : .client
        var config = WSProtocol.Configuration()
        config.delivery = seed % 3 == 0 ? .streaming : .wholeMessages
        config.maxMessageSize = [1 << 20, 64, 200][seed % 3]
        config.maxFrameSize = [65536, 100, 50][seed % 3]
        config.maxFragmentsPerMessage = [16384, 3, 8][seed % 3]
        config.autoCloseReply = seed % 5 != 0
        // Every third seed runs with permessage-deflate agreed, compressed frames in the soup.
        let deflate = seed % 3 == 1
        if deflate { config.maxDecompressedSize = [1 << 20, 300][seed % 2] }
        var input: [UInt8] = []
        for _ in 0..<Int(rng.next() % 40) { input += randomFrame(&rng, role: role, hostile: seed % 4 != 1, deflate: deflate) }
        func transform() -> (any WSMessageTransform)? {
            deflate ? WSPerMessageDeflate().makeTransform(agreed: WSExtensionElement(name: "permessage-deflate"), role: role) : nil
        }

        let whole = try replay(input, role: role, config: config, pieces: [input[...]], transform: transform())
        if !splits { return whole }
        let bytes = try replay(input, role: role, config: config, pieces: input.indices.map { input[$0...$0] }, transform: transform())
        let split = try replay(input, role: role, config: config,
                               pieces: WSFixtureRunner.split(input, mode: .randomSplits(seed: UInt64(seed)), salt: 0), transform: transform())
        #expect(bytes == whole)
        #expect(split == whole)

        let failures = whole.events.compactMap { e -> WSProtocolError? in if case .failed(let f) = e { f } else { nil } }
        #expect(failures.count <= 1)
        if let failure = failures.first {
            #expect([1002, 1007, 1008, 1009].contains(failure.closeCode.rawValue), "\(failure)")
            #expect(failure.closeCode == failure.code.defaultCloseCode)
            #expect(whole.endOfStream)
            // We never close first here, so the Close we sent is the failure's.
            guard case .closed(let info)? = whole.events.last else { Issue.record("no closed event"); return whole }
            #expect(info.cause == .protocolError(failure))
            #expect(info.sent?.code == failure.closeCode)
            #expect(info.initiator == .local)
        }
        return whole
    }
}

@Suite("nextEvent(lendingData:), nextEventSharingData() and nextSharedData() deliver exactly what nextEvent() does")
struct LendingDataTests {
    /// Runs `input` through an engine, taking data with the lending API (events rebuilt from
    /// lent bytes) or the sharing API (shared slices held while more input is fed).
    func lendingRun(_ input: [UInt8], role: WSProtocol.Role, config: WSProtocol.Configuration, pieces: [ArraySlice<UInt8>],
                    transform: (any WSMessageTransform)?, take: WSFixtureRunner.Take = .lending) throws -> Run {
        var p = try WSProtocol(role: role, configuration: config, now: .zero, randomNumberGenerator: WSSeededRandom(seed: 5), transform: transform)
        var run = Run(events: [], written: [], endOfStream: false)
        func drain(_ p: inout WSProtocol) {
            switch take {
            case .lending: run.events += WSFixtureRunner.drainLending(&p)
            case .sharing: run.events += WSFixtureRunner.drainSharing(&p)
            case .stepping: run.events += WSFixtureRunner.drainStepping(&p)
            }
            let o = outbound(&p)
            run.written += o.bytes
            run.endOfStream = run.endOfStream || o.endOfStream
        }
        for piece in pieces {
            p.receive(piece)
            drain(&p)
        }
        p.receiveEOF()
        drain(&p)
        run.events = WSFixtureRunner.mergeFragments(run.events)
        return run
    }

    @Test("random streams, both roles, both delivery modes, with and without permessage-deflate, split at random", arguments: 0..<60)
    func sameAsEvents(seed: Int) throws {
        var rng = WSSeededRandom(seed: UInt64(seed) &* 17 &+ 3)
        let role: WSProtocol.Role = seed % 2 == 0 ? .server : .client
        var config = WSProtocol.Configuration()
        config.delivery = seed % 4 < 2 ? .streaming : .wholeMessages
        config.maxMessageSize = [1 << 20, 200][seed % 2]
        // Every third seed with permessage-deflate: decoded pieces and messages come from the
        // engine's decode buffers, not the receive buffer.
        let deflate = seed % 3 == 1
        func transform() -> (any WSMessageTransform)? {
            deflate ? WSPerMessageDeflate().makeTransform(agreed: WSExtensionElement(name: "permessage-deflate"), role: role) : nil
        }
        var input: [UInt8] = []
        for _ in 0..<Int(rng.next() % 40) { input += randomFrame(&rng, role: role, hostile: seed % 3 == 0, deflate: deflate) }
        let pieces = WSFixtureRunner.split(input, mode: .randomSplits(seed: UInt64(seed)), salt: 0)
        let expected = try replay(input, role: role, config: config, pieces: pieces, transform: transform())
        let lent = try lendingRun(input, role: role, config: config, pieces: pieces, transform: transform())
        #expect(lent == expected)
        let shared = try lendingRun(input, role: role, config: config, pieces: pieces, transform: transform(), take: .sharing)
        #expect(shared == expected)
        let stepped = try lendingRun(input, role: role, config: config, pieces: pieces, transform: transform(), take: .stepping)
        #expect(stepped == expected)
    }
}
