import HTTPTypes
import Testing
import WSCore
import WSDeflate
import WSTesting

/// The README's examples, run: if one stops compiling or behaving as described, this fails.
@Suite("README examples")
struct ReadmeExamplesTests {
    @Test("sending, fragmenting, closing")
    func sending() throws {
        var pair = try WSConnectionPair()
        let imageBytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47]
        try pair.client.sendText("hello")
        try pair.client.sendBinary(imageBytes)
        try pair.client.sendFragment(Array("Hel".utf8), kind: .text, isFinal: false)
        try pair.client.ping([1, 2, 3])
        try pair.client.sendFragment(Array("lo".utf8), kind: .text, isFinal: true)
        try pair.client.close(code: .goingAway, reason: "shutting down")
        let server = pair.exchange().server
        #expect(Array(server.prefix(4)) == [.text("hello"), .binary(imageBytes[...]), .ping([1, 2, 3]), .text("Hello")])
        #expect(server.contains(.closeReceived(WSCloseFrame(code: .goingAway, reason: "shutting down"))))
    }

    @Test("lending buffers: an engine fed and drained with the spare buffers holds none afterwards")
    func spareBuffers() throws {
        var engine = try WSProtocol(role: .server, now: .zero)
        var bytes: [UInt8] = []
        WSFrameHeader(fin: true, opcode: .text, maskKey: WSMaskKey(1, 2, 3, 4), payloadLength: 2).encode(into: &bytes)
        var payload = Array("hi".utf8)
        WSMaskKey(1, 2, 3, 4).apply(to: &payload)
        bytes += payload

        var spare = WSProtocol.SpareBuffers()          // one per thread
        engine.borrowBuffers(from: &spare)
        engine.receive(bytes)
        var events: [WSProtocol.Event] = []
        while let event = engine.nextEvent() {
            events.append(event)
            if case .text(let text) = event { try engine.sendText(text) }
        }
        let written = engine.withOutboundBytes { Array($0) }
        engine.consumeOutbound(written.count)
        engine.returnBuffers(to: &spare)
        #expect(events == [.text("hi")])
        #expect(written == [0x81, 2] + Array("hi".utf8))
        #expect(engine.bufferCapacity == 0 && spare.capacity > 0)
    }

    @Test("reading in place: whole messages echoed from the read buffer, the rest received and drained")
    func readingInPlace() throws {
        var ws = try WSProtocol(role: .server, now: .zero)
        var input: [UInt8] = []
        for (opcode, payload) in [(WSOpcode.text, Array("hi".utf8)), (.binary, [1, 2, 3]), (.ping, [7]), (.text, Array("after".utf8))] {
            var masked = payload
            WSMaskKey(1, 2, 3, 4).apply(to: &masked)
            WSFrameHeader(fin: true, opcode: opcode, maskKey: WSMaskKey(1, 2, 3, 4), payloadLength: UInt64(payload.count)).encode(into: &input)
            input += masked
        }
        let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { readBuffer.deallocate() }
        readBuffer.copyBytes(from: input)
        let n = input.count
        var drained: [WSProtocol.Event] = []

        let read = UnsafeMutableRawBufferPointer(rebasing: readBuffer[..<n])   // n bytes just read
        var taken = 0
        while let (kind, range) = ws.nextDirectMessage(in: read, at: &taken) {
            try ws.send(UnsafeRawBufferPointer(rebasing: read[range]), kind: kind)   // echo
        }
        if taken < n { ws.receive(UnsafeRawBufferPointer(rebasing: read[taken...])) }
        if !ws.hasNoEvents { while let e = ws.nextEvent() { drained.append(e) } }

        // The two messages before the Ping were taken in place and echoed; the Ping and what
        // follows it went the general way.
        #expect(taken == 8 + 9)
        #expect(drained == [.ping([7]), .text("after")])
        let written = ws.withOutboundBytes { Array($0) }
        #expect(written == [0x81, 2] + Array("hi".utf8) + [0x82, 3, 1, 2, 3] + [0x8A, 1, 7])
    }

    @Test("time: keepalive deadlines as the README describes")
    func time() throws {
        var config = WSProtocol.Configuration()
        config.pingInterval = .seconds(10)
        config.pingTimeout = .seconds(5)
        config.idleTimeout = .seconds(60)
        var ws = try WSProtocol(role: .client, configuration: config, now: .zero)
        #expect(ws.nextDeadline == .seconds(10))
        ws.tick(now: .seconds(10))
        #expect(ws.nextEvent() == nil)
        #expect(ws.nextDeadline == .seconds(15))
        guard case .bytes(let out)? = ws.nextOutbound() else { Issue.record("no ping"); return }
        #expect(out.first == 0x89)
    }

    @Test("lending data: bytes read in place, other events returned")
    func lending() throws {
        var pair = try WSConnectionPair()
        try pair.client.sendBinary([1, 2, 3])
        try pair.client.ping([9])
        var toServer: [UInt8] = []
        while case .bytes(let b)? = pair.client.nextOutbound() { toServer += b }
        pair.server.receive(toServer)
        var checksum = 0
        var others: [WSProtocol.Event] = []
        while let result = pair.server.nextEvent(lendingData: { kind, bytes, isFinal in
            #expect(kind == .binary && isFinal)
            for i in bytes.indices { checksum += Int(bytes[i]) }
        }) {
            if case .event(let event) = result { others.append(event) }
        }
        #expect(checksum == 6)
        #expect(others == [.ping([9])])
    }

    /// A pair whose server has received a text message and a Ping, not yet drained.
    static func helloAndPingReceived() throws -> WSConnectionPair {
        var pair = try WSConnectionPair()
        try pair.client.sendText("héllo")
        try pair.client.ping([9])
        var toServer: [UInt8] = []
        while case .bytes(let b)? = pair.client.nextOutbound() { toServer += b }
        pair.server.receive(toServer)
        return pair
    }

    @Test("sharing data: an echo sent straight from the shared bytes")
    func sharing() throws {
        var pair = try Self.helloAndPingReceived()
        var others: [WSProtocol.Event] = []
        while let shared = pair.server.nextEventSharingData() {
            switch shared {
            case .data(let kind, let bytes, let isFinal):
                #expect(kind == .text && isFinal)
                try pair.server.send(bytes, kind: kind)
            case .event(let event):
                others.append(event)
            }
        }
        #expect(others == [.ping([9])])
        #expect(pair.exchange().client == [.text("héllo"), .pong([9])])
    }

    @Test("an adapter's loop: data as shared steps, other events after them")
    func stepping() throws {
        var pair = try Self.helloAndPingReceived()
        var others: [WSProtocol.Event] = []
        loop: while true {
            let step = pair.server.nextSharedData()
            switch step.found {
            case .data: try pair.server.send(step.bytes, kind: step.kind)
            case .event: if case .event(let event)? = pair.server.nextEventSharingData() { others.append(event) }
            case .none: break loop
            }
        }
        #expect(others == [.ping([9])])
        #expect(pair.exchange().client == [.text("héllo"), .pong([9])])
    }

    @Test("testing your code with WSConnectionPair")
    func echo() throws {
        var pair = try WSConnectionPair()
        try pair.client.sendText("ping me")
        #expect(pair.exchange().server == [.text("ping me")])
    }

    @Test("the echo loop of the engine section")
    func echoLoop() throws {
        var pair = try WSConnectionPair()
        try pair.client.sendText("echo")
        var toServer: [UInt8] = []
        while case .bytes(let b)? = pair.client.nextOutbound() { toServer += b }
        pair.server.receive(toServer)
        while let event = pair.server.nextEvent() {
            switch event {
            case .text(let text): try pair.server.sendText(text)
            case .binary(let bytes): try pair.server.sendBinary(bytes)
            default: break
            }
        }
        var toClient: [UInt8] = []
        while case .bytes(let b)? = pair.server.nextOutbound() { toClient += b }
        pair.client.receive(toClient)
        #expect(pair.client.nextEvent() == .text("echo"))
    }

    @Test("opening handshake: client request, origin policy, accept with subprotocol and cookie; reject otherwise")
    func handshake() throws {
        for origin in ["https://chat.example.com", "https://evil.test"] {
            var request = WSClientHandshake(url: try WSURL("wss://chat.example.com/room?id=7"))
            request.subprotocols = ["chat.v2", "chat.v1"]
            request.headers[.origin] = origin
            request.cookies = [WSCookie(name: "session", value: "abc")]
            request.authorization = .bearer("token")
            let client = try WSProtocol(client: request, now: .zero, randomNumberGenerator: WSSeededRandom(seed: 3))
            let server = try WSProtocol(server: WSServerHandshake(), now: .zero)
            var pair = WSConnectionPair(client: client, server: server)
            guard case .upgradeRequested(let r)? = pair.exchange().server.first else { Issue.record("no request"); return }
            #expect(r.queryItems.map { "\($0.name)=\($0.value)" } == ["id=7"])
            #expect(r.cookies == [WSCookie(name: "session", value: "abc")])
            let origins = WSOriginPolicy(allowing: ["https://chat.example.com", "*.example.org"])
            if origins.allows(r.origin) {
                try pair.server.accept(subprotocol: r.selectSubprotocol(preferring: ["chat.v2", "chat.v1"]), headers: [.setCookie: "seen=1"])
                guard case .opened(let result)? = pair.exchange().client.first else { Issue.record("not opened"); return }
                #expect(result.subprotocol == "chat.v2")
                #expect(result.response.headerFields[.setCookie] == "seen=1")
            } else {
                try pair.server.reject(status: .forbidden, body: Array("origin not allowed".utf8))
                guard case .rejected(let rejection)? = pair.exchange().client.first else { Issue.record("not rejected"); return }
                #expect(rejection.response.status == .forbidden)
                #expect(rejection.body == Array("origin not allowed".utf8))
            }
        }
    }

    @Test("compression: both sides add WSPerMessageDeflate; big text compressed, compress: false sent as it is")
    func compression() throws {
        let bigJSON = String(repeating: "{\"id\":1,\"name\":\"swift-ws\"},", count: 200)
        let sessionToken = "secret-token-that-must-not-be-compressed-next-to-user-data-xyz"
        var server = WSServerHandshake()
        server.extensions = [WSPerMessageDeflate()]           // accept browsers' and libraries' offers
        var client = WSClientHandshake(url: try WSURL("ws://127.0.0.1:9001/"))
        client.extensions = [WSPerMessageDeflate()]           // offer it
        var pair = WSConnectionPair(client: try WSProtocol(client: client, now: .zero), server: try WSProtocol(server: server, now: .zero))
        _ = pair.exchange()
        try pair.server.accept()
        guard case .opened(let result)? = pair.exchange().client.first else { Issue.record("not opened"); return }
        #expect(result.extensions.map(\.name) == ["permessage-deflate"])
        try pair.client.sendText(bigJSON)                     // compressed
        #expect(pair.client.bufferedAmount < bigJSON.utf8.count / 10)
        _ = pair.exchange()
        try pair.client.sendText(sessionToken, compress: false) // never compressed
        #expect(pair.client.bufferedAmount == sessionToken.utf8.count + 6)   // 2-byte header, mask key, payload as it is
        let events = pair.exchange().server
        #expect(events == [.text(sessionToken)])
    }
}
