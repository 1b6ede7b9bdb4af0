import HTTPTypes
import Testing
import WSCore
import WSTesting

/// Feeds `request` to a fresh server engine in one read and returns its events and output.
private func serve(_ request: String, _ options: WSServerHandshake = WSServerHandshake()) throws -> (events: [WSProtocol.Event], output: String, eos: Bool) {
    var server = try WSProtocol(server: options, now: .zero)
    server.receive(Array(request.utf8))
    var events: [WSProtocol.Event] = []
    while let e = server.nextEvent() { events.append(e) }
    var out: [UInt8] = []
    var eos = false
    while let o = server.nextOutbound() {
        if case .bytes(let b) = o { out += b } else { eos = true }
    }
    return (events, String(decoding: out, as: UTF8.self), eos)
}

private let validHead = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

@Suite("RFC 6455 §4.2.1 server: reading the client's opening handshake")
struct ServerHandshakeTests {
    @Test("the §1.2 example request is reported, accepted, and answered with the §1.3 key")
    func rfcExample() throws {
        var server = try WSProtocol(server: WSServerHandshake(), now: .zero)
        server.receive(Array((validHead + "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\r\n").utf8))
        guard case .upgradeRequested(let request)? = server.nextEvent() else { Issue.record("no upgradeRequested"); return }
        #expect(request.path == "/chat")
        #expect(request.head.authority == "server.example.com")
        #expect(request.origin == "http://example.com")
        #expect(request.subprotocols == ["chat", "superchat"])
        #expect(request.selectSubprotocol(preferring: ["superchat", "chat"]) == "superchat")
        #expect(server.lifecycle == .connecting)
        #expect(server.nextEvent() == nil)
        try server.accept(subprotocol: "chat")
        guard case .opened(let result)? = server.nextEvent() else { Issue.record("no opened"); return }
        #expect(result.subprotocol == "chat")
        #expect(server.lifecycle == .open)
        guard case .bytes(let out)? = server.nextOutbound() else { Issue.record("no answer"); return }
        #expect(String(decoding: out, as: UTF8.self) == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n")
    }

    static let badRequests: [(String, String, Int, String?)] = [
        ("POST /chat HTTP/1.1\r\nHost: h\r\n\r\n", "methodNotAllowed", 405, "Allow: GET"),
        ("GET /chat HTTP/1.0\r\nHost: h\r\n\r\n", "unsupportedHTTPVersion", 400, nil),
        ("GET /chat HTTP/2.0\r\nHost: h\r\n\r\n", "unsupportedHTTPVersion", 400, nil),
        ("GET /chat HTTP/1.1 extra\r\n\r\n", "malformedRequest", 400, nil),
        ("GET  /chat HTTP/1.1\r\n\r\n", "malformedRequest", 400, nil),
        ("GET http://h/chat HTTP/1.1\r\nHost: h\r\n\r\n", "malformedRequest", 400, nil),
        ("GET /chat HTTP/1.1\nHost: h\r\n\r\n", "malformedRequest", 400, nil),
        ("GET /chat HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", "malformedRequest", 400, nil),
        ("GET /chat HTTP/1.1\r\nHost : h\r\n\r\n", "malformedRequest", 400, nil),
        ("GET /chat HTTP/1.1\r\nNoColon\r\n\r\n", "malformedRequest", 400, nil),
        ("GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "missingHost", 400, nil),
        ("GET /chat HTTP/1.1\r\nHost: a\r\nHost: b\r\nUpgrade: websocket\r\n\r\n", "missingHost", 400, nil),
        ("GET /chat HTTP/1.1\r\nHost: h\r\n\r\n", "upgradeRequired", 426, "Upgrade: websocket"),
        ("GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", "upgradeRequired", 426, "Upgrade: websocket"),
        ("GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n\r\n", "missingConnectionUpgrade", 400, nil),
        ("GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", "unsupportedVersion", 426, "Sec-WebSocket-Version: 13"),
        ("GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", "unsupportedVersion", 426, "Sec-WebSocket-Version: 13"),
        ("GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", "invalidKey", 400, nil),
        ("GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n", "invalidKey", 400, nil),
        (validHead + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", "invalidKey", 400, nil),
        (validHead + "Sec-WebSocket-Protocol: chat, bad/token\r\n\r\n", "invalidNegotiationHeader", 400, nil),
        (validHead + "Sec-WebSocket-Extensions: x;=1\r\n\r\n", "invalidNegotiationHeader", 400, nil),
        (validHead + "Content-Length: 5\r\n\r\nhello", "malformedRequest", 400, nil),
        (validHead + "Transfer-Encoding: chunked\r\n\r\n", "malformedRequest", 400, nil),
    ]

    @Test("each invalid request is answered with its status, fields and Connection: close", arguments: badRequests)
    func badRequest(request: String, code: String, status: Int, field: String?) throws {
        let (events, output, eos) = try serve(request)
        #expect(events.count == 2)
        #expect(events.first == .handshakeFailed(WSHandshakeError(WSHandshakeError.Code(rawValue: code), detail: "")))
        guard case .closed(let info)? = events.last else { Issue.record("no closed"); return }
        #expect(info.cause == .handshakeFailed(WSHandshakeError(WSHandshakeError.Code(rawValue: code), detail: "")))
        #expect(output.hasPrefix("HTTP/1.1 \(status) "))
        if let field { #expect(output.contains("\r\n\(field)\r\n")) }
        #expect(output.contains("Connection: close") || output.contains("Connection: Upgrade, close"))
        #expect(eos)
    }

    @Test("maxURILength is exact: a target of the limit is read, one byte more is 414")
    func uriLimit() throws {
        var options = WSServerHandshake()
        options.maxURILength = 100
        let target = "/" + String(repeating: "a", count: 99)
        let at = try serve(validHead.replacingFirst("/chat", with: target) + "\r\n", options)
        guard case .upgradeRequested(let r)? = at.events.first else { Issue.record("\(at.events)"); return }
        #expect(r.path == target)
        let over = try serve(validHead.replacingFirst("/chat", with: target + "b") + "\r\n", options)
        #expect(over.output.hasPrefix("HTTP/1.1 414 URI Too Long\r\n"))
        // A request line that never ends is refused as soon as it cannot be within the limit.
        let endless = try serve("GET /" + String(repeating: "a", count: 100 + 64), options)
        #expect(endless.output.hasPrefix("HTTP/1.1 414 "))
    }

    @Test("maxHeaderSize is exact: a field section of the limit is read, one byte more is 431, before the end arrives")
    func headerLimit() throws {
        let fieldSection = validHead.utf8.count - "GET /chat HTTP/1.1\r\n".utf8.count
        var options = WSServerHandshake()
        let filler = "X-Pad: "
        options.maxHeaderSize = fieldSection + 100
        let pad = filler + String(repeating: "p", count: 100 - filler.utf8.count - 2) + "\r\n"
        #expect(pad.utf8.count == 100)
        let at = try serve(validHead + pad + "\r\n", options)
        #expect(at.events.first.map { if case .upgradeRequested = $0 { true } else { false } } == true)
        let over = try serve(validHead + "p" + pad + "\r\n", options)
        #expect(over.output.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"))
        // Without the end of the head: refused once the section cannot fit.
        let endless = try serve(validHead + String(repeating: "X-A: b\r\n", count: 20), options)
        #expect(endless.output.hasPrefix("HTTP/1.1 431 "))
    }

    @Test("frames that arrive with the request are kept for after accept")
    func earlyFrames() throws {
        var server = try WSProtocol(server: WSServerHandshake(), now: .zero)
        // A masked "Hi" text frame right after the head, in the same read.
        server.receive(Array((validHead + "\r\n").utf8) + [0x81, 0x82, 1, 2, 3, 4, 0x48 ^ 1, 0x69 ^ 2])
        guard case .upgradeRequested? = server.nextEvent() else { Issue.record("no upgradeRequested"); return }
        #expect(server.nextEvent() == nil)
        try server.accept()
        guard case .opened? = server.nextEvent() else { Issue.record("no opened"); return }
        #expect(server.nextEvent() == .text("Hi"))
    }

    @Test("more data before the answer than a handshake allows is refused")
    func dataBeforeHandshake() throws {
        var server = try WSProtocol(server: WSServerHandshake(), now: .zero)
        server.receive(Array((validHead + "\r\n").utf8) + [UInt8](repeating: 0, count: 8193))
        guard case .upgradeRequested? = server.nextEvent() else { Issue.record("no upgradeRequested"); return }
        #expect(server.nextEvent() == .handshakeFailed(WSHandshakeError(.dataBeforeHandshake, detail: "")))
    }

    @Test("reject answers with the status, fields and body, then closes")
    func reject() throws {
        var server = try WSProtocol(server: WSServerHandshake(), now: .zero)
        server.receive(Array((validHead + "Origin: https://evil.test\r\n\r\n").utf8))
        guard case .upgradeRequested(let r)? = server.nextEvent() else { Issue.record("no upgradeRequested"); return }
        #expect(!WSOriginPolicy(allowing: ["https://good.test"]).allows(r.origin))
        #expect(throws: WSUsageError.invalidHandshake("a rejection needs a final status (200–599)")) {
            try server.reject(status: .switchingProtocols)
        }
        try server.reject(status: .forbidden, headers: [.server: "swift-ws"], body: Array("origin not allowed".utf8))
        guard case .closed(let info)? = server.nextEvent() else { Issue.record("no closed"); return }
        #expect(info.cause == .handshakeRejected(status: 403))
        guard case .bytes(let out)? = server.nextOutbound() else { Issue.record("no answer"); return }
        #expect(String(decoding: out, as: UTF8.self) == "HTTP/1.1 403 Forbidden\r\nServer: swift-ws\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 18\r\nConnection: close\r\n\r\norigin not allowed")
        #expect(server.nextOutbound() == .endOfStream)
    }

    @Test("accept refuses a subprotocol or extension the client did not offer, and handshake-owned fields")
    func acceptMisuse() throws {
        var server = try WSProtocol(server: WSServerHandshake(), now: .zero)
        #expect(throws: WSUsageError.noPendingUpgrade) { try server.accept() }
        server.receive(Array((validHead + "Sec-WebSocket-Protocol: chat\r\n\r\n").utf8))
        _ = server.nextEvent()
        #expect(throws: WSUsageError.self) { try server.accept(subprotocol: "other") }
        #expect(throws: WSUsageError.self) { try server.accept(extensions: [WSExtensionElement(name: "x-never")]) }
        #expect(throws: WSUsageError.self) { try server.accept(headers: [.secWebSocketAccept: "x"]) }
        #expect(throws: WSUsageError.notOpen) { try server.sendText("too early") }
        try server.accept(headers: [.setCookie: "session=1"])
        #expect(server.lifecycle == .open)
    }

    @Test("no complete request head within the request-head timeout (10 s by default): 408, then closed")
    func requestHeadTimeout() throws {
        var server = try WSProtocol(server: WSServerHandshake(), now: .zero)
        server.receive(Array("GET /chat HTTP/1.1\r\n".utf8))
        #expect(server.nextEvent() == nil)
        #expect(server.nextDeadline == .seconds(10))
        server.tick(now: .seconds(9.999))
        #expect(server.nextEvent() == nil)
        server.tick(now: .seconds(10))
        #expect(server.nextEvent() == .handshakeFailed(WSHandshakeError(.requestHeadTimeout, detail: "")))
        guard case .bytes(let out)? = server.nextOutbound() else { Issue.record("no answer"); return }
        #expect(String(decoding: out, as: UTF8.self).hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
    }

    @Test("without a request-head timeout, no complete request within the handshake timeout: 408, then closed")
    func timeout() throws {
        var handshake = WSServerHandshake()
        handshake.requestHeadTimeout = nil
        var server = try WSProtocol(server: handshake, now: .zero)
        server.receive(Array("GET /chat HTTP/1.1\r\n".utf8))
        #expect(server.nextEvent() == nil)
        #expect(server.nextDeadline == .seconds(120))
        server.tick(now: .seconds(119.999))
        #expect(server.nextEvent() == nil)
        server.tick(now: .seconds(120))
        #expect(server.nextEvent() == .handshakeFailed(WSHandshakeError(.handshakeTimeout, detail: "")))
        guard case .bytes(let out)? = server.nextOutbound() else { Issue.record("no answer"); return }
        #expect(String(decoding: out, as: UTF8.self).hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
    }
}

@Suite("RFC 6455 §4.1 client: the request and the checks on the server's answer")
struct ClientHandshakeTests {
    /// A client engine with nonce bytes 0…15 (so its key is `AAECAwQFBgcICQoLDA0ODw==`), its
    /// request already taken.
    static func client(_ configure: (inout WSClientHandshake) -> Void = { _ in }) throws -> WSProtocol {
        var ws = try fresh(configure)
        _ = ws.nextOutbound()
        return ws
    }

    static func fresh(_ configure: (inout WSClientHandshake) -> Void) throws -> WSProtocol {
        var h = WSClientHandshake(url: try WSURL("ws://example.com:8080/chat?room=1"))
        configure(&h)
        var keys: [WSMaskKey] = []
        for i in 0..<4 {
            let b = UInt8(4 * i)
            keys.append(WSMaskKey(b, b + 1, b + 2, b + 3))
        }
        return try WSProtocol(client: h, now: .zero, randomNumberGenerator: WSMaskKeySequence(keys))
    }

    static func requestText(_ configure: (inout WSClientHandshake) -> Void) throws -> String {
        var ws = try fresh(configure)
        guard case .bytes(let out)? = ws.nextOutbound() else { return "" }
        return String(decoding: out, as: UTF8.self)
    }

    static let key = "AAECAwQFBgcICQoLDA0ODw=="
    static var accept: String { WSHandshake.acceptValue(forKey: key) }

    @Test("the request carries the target, Host with port, key, version, subprotocols, extensions, auth, cookies, headers")
    func request() throws {
        let request = try Self.requestText { h in
            h.subprotocols = ["v2.chat", "v1.chat"]
            h.extensions = [WSTestExtension(name: "x-test", offers: [WSExtensionElement(name: "x-test", parameters: [.init("a", "1")])])]
            h.authorization = .bearer("tok")
            h.cookies = [WSCookie(name: "s", value: "1"), WSCookie(name: "t", value: "2")]
            h.headers[.origin] = "http://example.com"
        }
        #expect(request == "GET /chat?room=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \(Self.key)\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v2.chat, v1.chat\r\nSec-WebSocket-Extensions: x-test; a=1\r\nAuthorization: Bearer tok\r\nCookie: s=1; t=2\r\nOrigin: http://example.com\r\n\r\n")
    }

    @Test("handshake options that break the rules are a usage error")
    func invalidOptions() throws {
        #expect(throws: WSUsageError.self) { _ = try Self.client { $0.subprotocols = ["a b"] } }
        #expect(throws: WSUsageError.self) { _ = try Self.client { $0.subprotocols = ["a", "a"] } }
        #expect(throws: WSUsageError.self) { _ = try Self.client { $0.headers[.secWebSocketKey] = "x" } }
        #expect(throws: WSUsageError.self) { _ = try Self.client { $0.cookies = [WSCookie(name: "a", value: "b;c")] } }
    }

    @Test("a 101 split at every byte opens the same way, and a frame in the same read follows")
    func splitEverywhere() throws {
        let response = Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: \(Self.accept)\r\n\r\n".utf8) + [0x81, 0x02, 0x48, 0x69]
        for cut in 0...response.count {
            var ws = try Self.client()
            ws.receive(response[..<cut])
            var events: [WSProtocol.Event] = []
            while let e = ws.nextEvent() { events.append(e) }
            ws.receive(response[cut...])
            while let e = ws.nextEvent() { events.append(e) }
            #expect(events.count == 2, "cut at \(cut)")
            guard case .opened(let result)? = events.first else { Issue.record("cut \(cut): \(events)"); continue }
            #expect(result.response.status.code == 101)
            #expect(events.last == .text("Hi"))
        }
    }

    static let badResponses: [(String, String)] = [
        ("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT\r\n\r\n", "invalidUpgrade"),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT\r\n\r\n", "invalidUpgrade"),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: ACCEPT\r\n\r\n", "invalidConnection"),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "invalidAccept"),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", "invalidAccept"),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT\r\nSec-WebSocket-Accept: ACCEPT\r\n\r\n", "invalidAccept"),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT\r\nSec-WebSocket-Protocol: chat\r\n\r\n", "unexpectedSubprotocol"),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", "unexpectedExtension"),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT\r\nSec-WebSocket-Extensions: x;\r\n\r\n", "unexpectedExtension"),
        ("HTTP/1.0 101 Switching Protocols\r\n\r\n", "malformedResponse"),
        ("HTTP/1.1 1O1 Switching Protocols\r\n\r\n", "malformedResponse"),
        ("HTTP/1.1 101 Switching Protocols\n\n", "malformedResponse"),
        ("HTTP/1.1 404 Not Found\r\nContent-Length: 1x\r\n\r\n", "malformedResponse"),
    ]

    @Test("an invalid answer fails with a precise error and ends the stream", arguments: badResponses)
    func badResponse(response: String, code: String) throws {
        var ws = try Self.client()
        ws.receive(Array(response.replacingFirst("ACCEPT", with: Self.accept).replacingFirst("ACCEPT", with: Self.accept).utf8))
        #expect(ws.nextEvent() == .handshakeFailed(WSHandshakeError(WSHandshakeError.Code(rawValue: code), detail: "")))
        guard case .closed? = ws.nextEvent() else { Issue.record("no closed"); return }
        #expect(ws.nextOutbound() == .endOfStream)
    }

    @Test("a non-101 answer is a rejection with status, fields and body, in each body framing",
          arguments: [
              ("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 6\r\n\r\nlogin!", 401, "login!", false),
              ("HTTP/1.1 302 Found\r\nLocation: ws://elsewhere/\r\nContent-Length: 0\r\n\r\n", 302, "", false),
              ("HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n", 403, "abcde", false),
              ("HTTP/1.1 500 Oops\r\n\r\nuntil the end", 500, "until the end", false),
              ("HTTP/1.1 400 Bad\r\nContent-Length: 100\r\n\r\n" + String(repeating: "z", count: 100), 400, String(repeating: "z", count: 64), true),
          ])
    func rejection(response: String, status: Int, body: String, truncated: Bool) throws {
        var ws = try Self.client { $0.maxRejectionBodySize = 64 }
        ws.receive(Array(response.utf8))
        ws.receiveEOF()
        guard case .rejected(let r)? = ws.nextEvent() else { Issue.record("no rejection"); return }
        #expect(r.response.status.code == status)
        #expect(r.body == Array(body.utf8))
        #expect(r.isBodyTruncated == truncated)
        guard case .closed(let info)? = ws.nextEvent() else { Issue.record("no closed"); return }
        #expect(info.cause == .handshakeRejected(status: status))
    }

    @Test("1xx answers before the 101 are skipped")
    func informational() throws {
        var ws = try Self.client()
        ws.receive(Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(Self.accept)\r\n\r\n".utf8))
        guard case .opened? = ws.nextEvent() else { Issue.record("not opened"); return }
    }

    @Test("the response head limit is enforced before the head ends")
    func responseTooLarge() throws {
        var ws = try Self.client { $0.maxResponseHeaderSize = 64 }
        ws.receive(Array(("HTTP/1.1 101 Switching Protocols\r\n" + String(repeating: "X-A: b\r\n", count: 9)).utf8))
        #expect(ws.nextEvent() == .handshakeFailed(WSHandshakeError(.responseTooLarge, detail: "")))
    }

    @Test("no answer within the timeout, or the end of the connection, ends the client")
    func timeoutAndEOF() throws {
        var a = try Self.client { $0.timeout = .seconds(5) }
        #expect(a.nextDeadline == .seconds(5))
        a.tick(now: .seconds(5))
        #expect(a.nextEvent() == .handshakeFailed(WSHandshakeError(.handshakeTimeout, detail: "")))
        var b = try Self.client()
        b.receive(Array("HTTP/1.1 101".utf8))
        b.receiveEOF()
        guard case .closed(let info)? = b.nextEvent() else { Issue.record("not closed"); return }
        #expect(info.cause == .transportClosed)
    }
}

@Suite("RFC 6455 §4 client ↔ server: any valid configuration round-trips")
struct HandshakeRoundTripTests {
    @Test("random URLs, subprotocols, extensions, headers and cookies: both sides open and agree, then exchange data")
    func roundTrip() throws {
        var rng = WSSeededRandom(seed: 4242)
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
        for iteration in 0..<200 {
            let host = pick(["example.com", "127.0.0.1", "[::1]", "a.b.c"])
            let port = pick(["", ":80", ":9001", ":443"])
            let target = pick(["", "/", "/chat", "/a/b?x=1&y=%20z", "?only=query"])
            var h = WSClientHandshake(url: try WSURL("\(pick(["ws", "wss"]))://\(host)\(port)\(target)"))
            let all = ["chat", "superchat", "v1.x", "json"]
            h.subprotocols = Array(all.shuffled(using: &rng).prefix(Int(rng.next() % 4)))
            let offerExt = rng.next() % 2 == 0
            if offerExt { h.extensions = [WSTestExtension(name: "x-test", offers: [WSExtensionElement(name: "x-test", parameters: [.init("p", "1")])])] }
            if rng.next() % 2 == 0 { h.cookies = [WSCookie(name: "id", value: "\(iteration)")] }
            if rng.next() % 2 == 0 { h.headers[.origin] = "https://origin.test" }
            if rng.next() % 3 == 0 { h.authorization = .basic(user: "u\(iteration)", password: "p") }
            var options = WSServerHandshake()
            let serverKnowsExt = rng.next() % 2 == 0
            if serverKnowsExt { options.extensions = [WSTestExtension(name: "x-test")] }

            let client = try WSProtocol(client: h, now: .zero, randomNumberGenerator: WSSeededRandom(seed: UInt64(iteration)))
            let server = try WSProtocol(server: options, now: .zero)
            var pair = WSConnectionPair(client: client, server: server)
            let first = pair.exchange()
            guard case .upgradeRequested(let request)? = first.server.first else { Issue.record("\(iteration): \(first)"); continue }
            #expect(request.subprotocols == h.subprotocols)
            #expect(request.cookies == h.cookies)
            #expect(request.origin == h.headers[.origin])
            #expect(request.head.authority == h.url.hostField)
            #expect(request.head.path == h.url.target)
            #expect(request.head.headerFields[.authorization] == h.authorization?.fieldValue)
            let chosen = request.selectSubprotocol(preferring: all.reversed())
            try pair.server.accept(subprotocol: chosen)
            let second = pair.exchange()
            guard case .opened(let c)? = second.client.first, case .opened(let s)? = second.server.first else {
                Issue.record("\(iteration): \(second)"); continue
            }
            #expect(c.subprotocol == chosen && s.subprotocol == chosen)
            #expect(c.extensions == s.extensions)
            #expect(c.extensions.isEmpty == !(offerExt && serverKnowsExt))
            #expect(c.response == s.response)
            try pair.client.sendText("ping \(iteration)")
            try pair.server.sendBinary([UInt8(iteration & 0xFF)])
            let data = pair.exchange()
            #expect(data.server == [.text("ping \(iteration)")])
            #expect(data.client == [.binary([UInt8(iteration & 0xFF)])])
        }
    }
}

extension String {
    fileprivate func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let r = firstRange(of: target) else { return self }
        return String(self[..<r.lowerBound]) + replacement + String(self[r.upperBound...])
    }
}

@Suite("Server handshake hooks for the service layer (package API)")
struct ServiceHookTests {
    private func pathsServer() -> WSServerHandshake {
        var options = WSServerHandshake()
        options.resourceExists = { $0 == "/chat" }
        return options
    }

    @Test("an unknown path is answered 404 before the upgrade is judged; a plain GET of a known one 426")
    func unknownResource() throws {
        let unknown = try serve("GET /nowhere?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", pathsServer())
        #expect(unknown.events.first == .handshakeFailed(WSHandshakeError(.notFound, detail: "")))
        #expect(unknown.output.hasPrefix("HTTP/1.1 404 Not Found\r\n") && unknown.eos)
        let plainUnknown = try serve("GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n", pathsServer())
        #expect(plainUnknown.output.hasPrefix("HTTP/1.1 404 "))
        let plainKnown = try serve("GET /chat HTTP/1.1\r\nHost: h\r\n\r\n", pathsServer())
        #expect(plainKnown.output.hasPrefix("HTTP/1.1 426 "))
        let known = try serve(validHead + "\r\n", pathsServer())
        guard case .upgradeRequested(let request)? = known.events.first else { Issue.record("no upgradeRequested"); return }
        #expect(request.path == "/chat")
        // Method and request-line errors still come first.
        #expect(try serve("POST /nowhere HTTP/1.1\r\nHost: h\r\n\r\n", pathsServer()).output.hasPrefix("HTTP/1.1 405 "))
    }

    @Test("accept with a configuration of the connection's own: its limits and automatic Pong apply; the deadline is kept while the application decides")
    func acceptWithConfiguration() throws {
        var options = WSServerHandshake()
        options.timeout = .seconds(3)
        var server = try WSProtocol(server: options, now: WSInstant(nanoseconds: 1_000))
        server.receive(Array((validHead + "\r\n").utf8))
        guard case .upgradeRequested? = server.nextEvent() else { Issue.record("no upgradeRequested"); return }
        #expect(server.nextDeadline == nil)
        #expect(server.upgradeDecisionDeadline == WSInstant(nanoseconds: 1_000) + .seconds(3))
        var own = WSProtocol.Configuration.default
        own.maxFrameSize = 4
        own.autoPong = false
        var invalid = own
        invalid.maxMessageSize = 0
        #expect(throws: WSUsageError.self) { try server.accept(subprotocol: nil, extensions: nil, headers: [:], configuration: invalid) }
        #expect(server.lifecycle == .connecting)
        try server.accept(subprotocol: nil, extensions: nil, headers: [:], configuration: own)
        #expect(server.upgradeDecisionDeadline == nil)
        #expect(server.configuration.maxFrameSize == 4)
        guard case .opened? = server.nextEvent() else { Issue.record("no opened"); return }
        while server.nextOutbound() != nil {}
        // A Ping is reported but not answered (autoPong off); a 5-byte frame fails with 1009.
        server.receive([0x89, 0x80, 0, 0, 0, 0])
        #expect(server.nextEvent() == .ping([]))
        #expect(server.nextOutbound() == nil)
        server.receive([0x82, 0x85, 0, 0, 0, 0, 1, 2, 3, 4, 5])
        guard case .failed(let error)? = server.nextEvent() else { Issue.record("no failure"); return }
        #expect(error.closeCode == .messageTooBig)
    }
}

@Suite("The compact form of an upgrade request (kept by the service layer for a connection's lifetime)")
struct CompactRequestTests {
    /// Requests as clients send them: field order and case, repeated fields, cookies, a query,
    /// extensions with parameters, Host anywhere; each extra line is appended to the valid head.
    static let variants: [String] = [
        "",
        "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n",
        "Cookie: a=1; b=two\r\nCookie: c=3\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-test; a=\"qs\"\r\n",
        "user-agent: Mozilla/5.0 (X11; Linux x86_64)\r\naccept-encoding: gzip, deflate, br\r\nCache-Control: no-cache\r\n",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x\r\nX-Empty:\r\n",
    ]

    @Test("compactHead then init(compactHead:) gives the same request, for every variant and target")
    func roundTrip() throws {
        for target in ["/chat", "/a/b?x=1&y=%20z", "/?", "/p;q?r#"] where !target.contains("#") {
            for extra in Self.variants {
                let head = validHead.replacingOccurrences(of: "GET /chat ", with: "GET \(target) ") + extra + "\r\n"
                let (events, _, _) = try serve(head)
                guard case .upgradeRequested(let request)? = events.first else { Issue.record("\(target) \(extra): \(events)"); continue }
                let compact = request.compactHead
                #expect(WSUpgradeRequest(compactHead: compact) == request, "\(target) \(extra)")
                #expect(compact.count <= head.utf8.count + 8)
                // Kept per connection: allocated to measure (the allocator rounds to 16 bytes).
                #expect(compact.capacity < compact.count + 16)
            }
        }
    }

    @Test("Host moved elsewhere in the request still round-trips (it is kept as the authority)")
    func hostLast() throws {
        let head = "GET /h HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nHost: h.example:8080\r\n\r\n"
        let (events, _, _) = try serve(head)
        guard case .upgradeRequested(let request)? = events.first else { Issue.record("\(events)"); return }
        #expect(WSUpgradeRequest(compactHead: request.compactHead) == request)
    }

    @Test("bytes that are not such a head read as nil, never a crash")
    func notAHead() {
        #expect(WSUpgradeRequest(compactHead: []) == nil)
        #expect(WSUpgradeRequest(compactHead: Array("GET / HTTP/1.1\r\n\r\n".utf8)) == nil)
        #expect(WSUpgradeRequest(compactHead: Array("nonsense".utf8)) == nil)
        #expect(WSUpgradeRequest(compactHead: Array((validHead).utf8)) == nil)   // no final empty line
        #expect(WSUpgradeRequest(compactHead: Array("GET / HTTP/1.1\r\n".utf8) + [0xBF, 13, 10]) == nil)  // no such line code
    }

    @Test("the lines every client sends take a byte each: a python-websockets request of 218 bytes is kept in 61")
    func compactSize() throws {
        let head = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        let (events, _, _) = try serve(head)
        guard case .upgradeRequested(let request)? = events.first else { Issue.record("\(events)"); return }
        #expect(head.utf8.count == 218)
        #expect(request.compactHead.count == 61)
        #expect(WSUpgradeRequest(compactHead: request.compactHead) == request)
    }

    @Test("property: random changes to a compact head read back as nil or as a request, never a crash")
    func mutatedCompactHeads() throws {
        let (events, _, _) = try serve(validHead + Self.variants[1] + Self.variants[4] + "\r\n")
        guard case .upgradeRequested(let request)? = events.first else { Issue.record("\(events)"); return }
        let compact = request.compactHead
        var rng = WSSeededRandom(seed: 18)
        for _ in 0..<3000 {
            var bytes = compact
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let at = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes.remove(at: at)
                default: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                }
            }
            _ = WSUpgradeRequest(compactHead: bytes)
        }
    }
}
