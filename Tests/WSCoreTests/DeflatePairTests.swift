import Testing
import WSCore
import WSDeflate
import WSTesting

// Engines negotiating permessage-deflate with each other, through the real opening handshake,
// under every combination of the four parameters, then exchanging messages both ways.

@Suite("RFC 7692: engine pairs negotiate every parameter combination and compress end to end")
struct DeflatePairTests {
    static let windows: [Int?] = [nil, 8, 9, 10, 11, 12, 13, 14, 15]

    /// Every client configuration (2 × 2 × 9 × 9 = 324), each against a server configuration
    /// drawn from the same space, with a random delivery mode and random messages.
    @Test("Every client parameter combination against random server preferences round-trips messages")
    func everyCombination() throws {
        var rng = WSSeededRandom(seed: 7692)
        var cases = 0
        var compressedBoth = 0
        for serverNCT in [false, true] {
            for clientNCT in [false, true] {
                for serverBits in Self.windows {
                    for clientBits in Self.windows {
                        var c = WSPerMessageDeflate.Configuration()
                        c.serverNoContextTakeover = serverNCT
                        c.clientNoContextTakeover = clientNCT
                        c.serverMaxWindowBits = serverBits
                        c.clientMaxWindowBits = clientBits
                        c.minimumSize = 0
                        var s = WSPerMessageDeflate.Configuration()
                        s.serverNoContextTakeover = rng.next() % 2 == 0
                        s.clientNoContextTakeover = rng.next() % 2 == 0
                        s.serverMaxWindowBits = Self.windows[Int(rng.next() % 9)]
                        s.clientMaxWindowBits = Self.windows[Int(rng.next() % 9)]
                        s.minimumSize = 0
                        let outcome = try roundTrip(client: c, server: s, rng: &rng)
                        cases += 1
                        if outcome { compressedBoth += 1 }
                    }
                }
            }
        }
        #expect(cases == 324)
        // Only offers the server must decline (server_max_window_bits=8) stay uncompressed.
        #expect(compressedBoth == 324 - 36)
    }

    /// One handshake and exchange; returns whether compression was agreed.
    func roundTrip(client c: WSPerMessageDeflate.Configuration, server s: WSPerMessageDeflate.Configuration,
                   rng: inout WSSeededRandom) throws -> Bool {
        let label = "client \(c) server \(s)"
        var handshake = WSClientHandshake(url: try WSURL("ws://example.com/"))
        handshake.extensions = [try WSPerMessageDeflate(c)]
        var serverHandshake = WSServerHandshake()
        serverHandshake.extensions = [try WSPerMessageDeflate(s)]
        var config = WSProtocol.Configuration()
        config.maxFrameSize = 1 << 20
        config.delivery = rng.next() % 2 == 0 ? .streaming : .wholeMessages
        var pair = WSConnectionPair(
            client: try WSProtocol(client: handshake, configuration: config, now: .zero, randomNumberGenerator: WSSeededRandom(seed: rng.next())),
            server: try WSProtocol(server: serverHandshake, configuration: config, now: .zero))
        _ = pair.exchange()
        try pair.server.accept()
        let opened = pair.exchange()
        guard case .opened(let clientResult)? = opened.client.first else {
            Issue.record("client did not open: \(opened.client) \(label)")
            return false
        }
        let agreed = clientResult.extensions.first
        let clientWindow = try agreed.map { try #require(WSPerMessageDeflate(c).parameters(agreed: $0, role: .client)).send.maxWindowBits }
        if c.serverMaxWindowBits == 8 {
            #expect(agreed == nil, "an offer demanding server_max_window_bits=8 is declined: \(label)")
        }
        if let agreed {
            let clientSide = try #require(WSPerMessageDeflate(c).parameters(agreed: agreed, role: .client))
            let serverSide = try #require(WSPerMessageDeflate().parameters(agreed: agreed, role: .server))
            // What each side compresses with fits what the other decompresses with.
            #expect(clientSide.send.maxWindowBits <= serverSide.receive.maxWindowBits || serverSide.receive.maxWindowBits == 15, "\(label)")
            #expect(clientSide.receive == serverSide.send, "\(label)")
            #expect(serverSide.send.maxWindowBits >= 9, "we never compress with 8 bits as a server: \(label)")
            #expect(serverSide.send.maxWindowBits <= (c.serverMaxWindowBits ?? 15), "\(label)")
            if c.serverNoContextTakeover { #expect(serverSide.send.noContextTakeover, "\(label)") }
            if c.clientNoContextTakeover || s.clientNoContextTakeover { #expect(clientSide.send.noContextTakeover, "\(label)") }
        }
        for round in 0..<3 {
            let size = [10, 3000, 40_000][round] + Int(rng.next() % 500)
            let message = DeflateCodecTests.json(size, seed: rng.next())
            let text = String(decoding: message, as: UTF8.self)
            try pair.client.sendText(text)
            if let clientWindow, clientWindow > 8, round > 0 {
                #expect(pair.client.bufferedAmount < size / 2, "compressed on the wire: \(label)")
            } else if clientWindow == 8, round > 0 {
                // Distance-1 matches only: JSON barely compresses, but it does.
                #expect(pair.client.bufferedAmount < size, "compressed on the wire: \(label)")
            }
            try pair.server.sendBinary(message)
            let events = pair.exchange()
            #expect(Self.payloads(events.server) == [message], "client → server, round \(round): \(label)")
            #expect(Self.payloads(events.client) == [message], "server → client, round \(round): \(label)")
        }
        return agreed != nil
    }

    /// The data of the events, streaming fragments joined into messages.
    static func payloads(_ events: [WSProtocol.Event]) -> [[UInt8]] {
        var messages: [[UInt8]] = []
        var current: [UInt8] = []
        for event in events {
            switch event {
            case .text(let s): messages.append(Array(s.utf8))
            case .binary(let b): messages.append(Array(b))
            case .fragment(let f):
                current += f.data
                if f.isFinal { messages.append(current); current = [] }
            default: break
            }
        }
        return messages
    }

    @Test("An engine given the transform directly fails a Ping with RSV1 with 1002")
    func violationsThroughThePair() throws {
        let deflate = WSPerMessageDeflate()
        let agreed = WSExtensionElement(name: "permessage-deflate")
        var server = try WSProtocol(role: .server, now: .zero, transform: deflate.makeTransform(agreed: agreed, role: .server))
        // A Ping with RSV1 (0xC9), masked with a zero key.
        server.receive([0xC9, 0x80, 0, 0, 0, 0])
        guard case .failed(let error)? = server.nextEvent() else { Issue.record("no failure"); return }
        #expect(error.code == .reservedBitsSet && error.closeCode == .protocolError)
    }

    @Test("releaseIdleMemory between messages keeps working under no_context_takeover, and with takeover keeps the context")
    func releaseIdleMemory() throws {
        for agreedText in ["permessage-deflate", "permessage-deflate; server_no_context_takeover; client_no_context_takeover"] {
            var c = WSPerMessageDeflate.Configuration()
            c.minimumSize = 0
            let deflate = try WSPerMessageDeflate(c)
            let agreed = WSExtensionElement.parse([agreedText])![0]
            var pair = WSConnectionPair(
                client: try WSProtocol(role: .client, now: .zero, randomNumberGenerator: WSSeededRandom(seed: 1), transform: deflate.makeTransform(agreed: agreed, role: .client)),
                server: try WSProtocol(role: .server, now: .zero, transform: deflate.makeTransform(agreed: agreed, role: .server)))
            for i in 0..<5 {
                let message = DeflateCodecTests.json(2000, seed: UInt64(i % 2))
                try pair.client.sendBinary(message)
                try pair.server.sendBinary(message)
                let events = pair.exchange()
                #expect(Self.payloads(events.server) == [message])
                #expect(Self.payloads(events.client) == [message])
                pair.client.releaseIdleMemory()
                pair.server.releaseIdleMemory()
            }
        }
    }

    /// Whether an engine's transform is a codec of its own (else the negotiator's shared profile).
    static func ownsCodec(_ transform: (any WSMessageTransform)?) -> Bool { transform is WSDeflateTransform }

    @Test("An idle connection holds the shared profile, not a codec: whole messages under no context takeover need none; received ones get one until idle (issue 18)")
    func idleConnectionsShareTheProfile() throws {
        var c = WSPerMessageDeflate.Configuration()
        c.minimumSize = 0
        let deflate = try WSPerMessageDeflate(c)
        func pair(_ agreed: String) throws -> WSConnectionPair {
            let element = WSExtensionElement.parse([agreed])![0]
            return WSConnectionPair(
                client: try WSProtocol(role: .client, now: .zero, randomNumberGenerator: WSSeededRandom(seed: 1), transform: deflate.makeTransform(agreed: element, role: .client)),
                server: try WSProtocol(role: .server, now: .zero, transform: deflate.makeTransform(agreed: element, role: .server)))
        }
        let message = DeflateCodecTests.json(3000, seed: 5)

        // The server resets its context: whole messages it sends never make it a codec.
        var p = try pair("permessage-deflate; server_no_context_takeover")
        let other = try pair("permessage-deflate; server_no_context_takeover")
        #expect(!Self.ownsCodec(p.server.currentTransform) && !Self.ownsCodec(p.client.currentTransform))
        #expect(p.server.currentTransform === other.server.currentTransform, "one profile for the same parameters")
        #expect(p.server.currentTransform !== p.client.currentTransform, "the roles' parameters differ")
        for _ in 0..<3 { try p.server.sendBinary(message) }
        #expect(!Self.ownsCodec(p.server.currentTransform))
        #expect(Self.payloads(p.exchange().client) == [message, message, message])
        // The client decompressed them with a codec of its own, given up once idle.
        #expect(Self.ownsCodec(p.client.currentTransform))
        p.client.releaseIdleMemory()
        #expect(!Self.ownsCodec(p.client.currentTransform))

        // With context takeover the context is the (de)compressor, kept when idle: the client's
        // compressor and the server's decompressor.
        try p.client.sendBinary(message)
        #expect(Self.payloads(p.exchange().server) == [message])
        p.client.releaseIdleMemory()
        p.server.releaseIdleMemory()
        #expect(Self.ownsCodec(p.client.currentTransform) && Self.ownsCodec(p.server.currentTransform))

        // Without it, the codec is given up once idle, and made again for the next message.
        var q = try pair("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        let profile = q.server.currentTransform
        for round in 0..<3 {
            try q.client.sendBinary(message)
            #expect(Self.payloads(q.exchange().server) == [message], "round \(round)")
            #expect(Self.ownsCodec(q.server.currentTransform))
            q.server.releaseIdleMemory()
            q.client.releaseIdleMemory()
            #expect(!Self.ownsCodec(q.server.currentTransform) && !Self.ownsCodec(q.client.currentTransform))
        }
        #expect(q.server.currentTransform === profile)

        // Mid-message (a fragmented send, a message half received) the codec stays.
        try q.server.sendFragment(message[..<1000], kind: .binary, isFinal: false)
        #expect(Self.ownsCodec(q.server.currentTransform))
        q.server.releaseIdleMemory()
        #expect(Self.ownsCodec(q.server.currentTransform))
        try q.server.sendFragment(message[1000...], kind: .binary, isFinal: true)
        try q.client.sendFragment(message[..<1000], kind: .binary, isFinal: false)
        while let out = q.client.nextOutbound() {
            if case .bytes(let b) = out { q.server.receive(b) }
        }
        while let event = q.server.nextEvent() { Issue.record("unexpected \(event)") }
        q.server.releaseIdleMemory()
        #expect(Self.ownsCodec(q.server.currentTransform))
        try q.client.sendFragment(message[1000...], kind: .binary, isFinal: true)
        let events = q.exchange()
        #expect(Self.payloads(events.server) == [message])
        #expect(Self.payloads(events.client) == [message])
        q.server.releaseIdleMemory()
        #expect(!Self.ownsCodec(q.server.currentTransform))
    }
}
