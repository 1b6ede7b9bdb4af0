import Glibc
import Synchronization
import Testing
import WSBlocking
import WSCore
import WSDeflate
import WSEpoll
import WSTransport

@Suite("Epoll server over loopback", .timeLimit(.minutes(1)))
struct EpollServerTests {
    @Test("echo: text, binary, empty, 1 MiB, with and without compression, clean close", arguments: [true, false])
    func echoRoundTrip(compression: Bool) throws {
        let echo = RecordingEcho()
        let server = try startServer(loops: 2, { $0.compression = compression ? .init() : nil; $0.connection.maxMessageSize = 4 << 20 }) { _ in .accept(echo) }
        defer { server.immediateStop() }
        var config = WSBlockingConnection.Configuration()
        config.connection.maxMessageSize = 4 << 20
        config.compression = compression ? .init() : nil
        let ws = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/echo", configuration: config)
        #expect(ws.handshake?.extensions.isEmpty == !compression)
        try ws.send(text: "héllo 👋")
        #expect(try ws.receive() == .text("héllo 👋"))
        try ws.send(binary: [0, 1, 2, 255])
        #expect(try ws.receive() == .binary([0, 1, 2, 255]))
        try ws.send(text: "")
        #expect(try ws.receive() == .text(""))
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try ws.send(binary: big)
        #expect(try ws.receive() == .binary(big))
        let info = try ws.close(code: .normalClosure, reason: "bye")
        #expect(info.wasClean)
        #expect(info.code == .normalClosure)
        #expect(eventually { server.connectionCount == 0 })
    }

    @Test("many clients on several loops, each gets its own echoes")
    func manyClients() throws {
        let echo = RecordingEcho()
        let server = try startServer(loops: 2) { _ in .accept(echo) }
        defer { server.immediateStop() }
        let clients = try (0..<50).map { _ in try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/") }
        for (i, c) in clients.enumerated() { try c.send(text: "client \(i)") }
        for (i, c) in clients.enumerated() { #expect(try c.receive() == .text("client \(i)")) }
        #expect(server.connectionCount == 50)
        for c in clients { _ = try c.close() }
        #expect(eventually { server.connectionCount == 0 })
    }

    @Test("after 1,024 connections have ended, the next sweep gives the allocator's free pages back")
    func trimsAfterDepartures() throws {
        let server = try startServer(loops: 1) { _ in .accept(RecordingEcho()) }
        defer { server.immediateStop() }
        // Upgraded and dropped in batches (the loop releases each one when its FIN comes).
        for _ in 0..<11 {
            let batch = try (0..<100).map { _ in try RawClient(port: server.port) }
            for c in batch { _ = try c.upgrade() }
            for c in batch { c.socket.close() }
            #expect(eventually { server.connectionCount == 0 })
        }
        // 1,100 departures: one trim at the next sweep (a second), and no more after it.
        #expect(eventually(3) { server.heapTrims == 1 })
        usleep(1_500_000)
        #expect(server.heapTrims == 1)
    }

    @Test("after 1,024 connections have gone idle after activity, the next sweep gives the allocator's free pages back",
          .enabled(if: raiseDescriptorLimit(to: 4096), "needs 2,400 descriptors"))
    func trimsAfterConnectionsGoIdle() throws {
        let server = try startServer(loops: 1) { _ in .accept(RecordingEcho()) }
        defer { server.immediateStop() }
        // 1,100 connections at once, each exchanging a message, then all idle: each gives back
        // what it held at a sweep (a decompressor, with permessage-deflate), and the sweep after
        // those trims once.
        let clients = try (0..<1100).map { _ in try RawClient(port: server.port) }
        defer { for c in clients { c.close() } }
        for c in clients {
            _ = try c.upgrade()
            try c.send(maskedFrame(opcode: 0x1, Array("hi".utf8)))
        }
        for c in clients {
            guard try c.socket.wait(timeout: .seconds(5)) else { Issue.record("no echo"); return }
        }
        #expect(eventually(4) { server.heapTrims == 1 })
        usleep(1_500_000)
        #expect(server.heapTrims == 1, "idle connections released again are not counted again")
    }

    @Test("an application rejection is written whole and the socket closed cleanly")
    func applicationRejection() throws {
        let server = try startServer { request in
            request.path == "/ok" ? .accept(RecordingEcho()) : .reject(status: .notFound, body: Array("no such room".utf8))
        }
        defer { server.immediateStop() }
        let rejection = try #require(rejected { () throws(WSConnectionError) in try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/missing") })
        #expect(rejection.response.status.code == 404)
        #expect(rejection.body == Array("no such room".utf8))
    }

    @Test("invalid requests get their HTTP answer (400, 414, 426, 431), then FIN", arguments: [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426),
        ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", 400),
        ("GET /\(String(repeating: "a", count: 5000)) HTTP/1.1\r\n\r\n", 414),
        ("GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "b", count: 9000))\r\n\r\n", 431),
    ])
    func invalidRequests(request: String, status: Int) throws {
        let server = try startServer { _ in .accept(RecordingEcho()) }
        defer { server.immediateStop() }
        let raw = try RawClient(port: server.port)
        defer { raw.close() }
        try raw.send(request)
        let (answer, eof) = try raw.readToEnd()
        #expect(String(decoding: answer, as: UTF8.self).hasPrefix("HTTP/1.1 \(status) "))
        #expect(eof)
        #expect(eventually { server.connectionCount == 0 })
    }

    @Test("a client that never finishes its request is answered 408 and dropped, at the handshake timeout or the request-head timeout, whichever is set shorter",
          arguments: [
              { (c: inout WSEpollServer.Configuration) in c.handshake.timeout = .milliseconds(200) },
              { (c: inout WSEpollServer.Configuration) in c.handshake.requestHeadTimeout = .milliseconds(200) },
          ] as [@Sendable (inout WSEpollServer.Configuration) -> Void])
    func slowHandshake(_ timeout: @Sendable (inout WSEpollServer.Configuration) -> Void) throws {
        let server = try startServer(timeout) { _ in .accept(RecordingEcho()) }
        defer { server.immediateStop() }
        let raw = try RawClient(port: server.port)
        defer { raw.close() }
        try raw.send("GET / HTTP/1.1\r\nHost: x\r\n")
        let start = WSClock.now()
        let (answer, eof) = try raw.readToEnd()
        #expect(String(decoding: answer, as: UTF8.self).hasPrefix("HTTP/1.1 408 "))
        #expect(eof)
        #expect(WSClock.now() - start < .seconds(3))
    }

    @Test("connections beyond maxConnections, or beyond maxConnectionsPerAddress from 127.0.0.1, are answered 503 and closed; room again after one closes",
          arguments: [
              { (c: inout WSEpollServer.Configuration) in c.maxConnections = 2 },
              { (c: inout WSEpollServer.Configuration) in c.maxConnectionsPerAddress = 2 },
          ] as [@Sendable (inout WSEpollServer.Configuration) -> Void])
    func connectionLimit(_ limit: @Sendable (inout WSEpollServer.Configuration) -> Void) throws {
        let server = try startServer(limit) { _ in .accept(RecordingEcho()) }
        defer { server.immediateStop() }
        let a = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        let b = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        let r = try #require(rejected { () throws(WSConnectionError) in try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/") })
        #expect(r.response.status.code == 503)
        _ = try a.close()
        #expect(eventually { server.connectionCount == 1 })
        let c = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        try c.send(text: "still serving")
        #expect(try c.receive() == .text("still serving"))
        _ = try b.close()
        _ = try c.close()
    }

    @Test("a full table of silent sockets: each new client drops the oldest unfinished one (in accept order), open ones stay")
    func fullTableDropsOldestUnfinished() throws {
        let server = try startServer({ $0.maxConnections = 4; $0.loops = 1 }) { _ in .accept(RecordingEcho()) }
        defer { server.immediateStop() }
        let open = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        let silent = try (0..<3).map { _ in try RawClient(port: server.port) }
        defer { silent.forEach { $0.close() } }
        #expect(eventually { server.connectionCount == 4 })
        // The table is full; a new client gets in, and the first silent socket is dropped.
        let a = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        #expect(try silent[0].readToEnd(seconds: 2) == ([], true))
        // Then the second (the first is gone; the open connections are never chosen).
        let b = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        #expect(try silent[1].readToEnd(seconds: 2) == ([], true))
        #expect(try silent[2].readToEnd(seconds: 0.2).eof == false)
        for c in [open, a, b] {
            try c.send(text: "still here")
            #expect(try c.receive() == .text("still here"))
        }
        // Only open connections left but one silent: the next new one takes its place; after that
        // the table is full of open connections, and a new one is refused with 503.
        let c = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        #expect(try silent[2].readToEnd(seconds: 2) == ([], true))
        let r = try #require(rejected { () throws(WSConnectionError) in try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/") })
        #expect(r.response.status.code == 503)
        for x in [open, a, b, c] { _ = try x.close() }
    }

    /// Notes, when a connection opens, what it kept of its handshake.
    final class HandshakeNotes: WSEpollHandler, Sendable {
        let seen = Mutex<[String]>([])
        func opened(_ c: WSEpollConnection, _ result: WSHandshakeResult) {
            let kept = c.handshake.map { "kept \($0.request.headerFields[.secWebSocketKey] != nil)" } ?? "not kept"
            seen.withLock { $0.append("\(kept), subprotocol \(c.subprotocol ?? "none"), result \(result.subprotocol ?? "none")") }
        }
        func received(_ c: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {}
    }

    @Test("a server connection keeps its handshake only with keepsHandshake (2 KB each); its subprotocol either way", arguments: [false, true])
    func keepsHandshake(_ keep: Bool) throws {
        let notes = HandshakeNotes()
        let server = try startServer({ $0.keepsHandshake = keep }) { request in
            .accept(notes, subprotocol: request.selectSubprotocol(preferring: ["chat"]))
        }
        defer { server.immediateStop() }
        let c = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/", subprotocols: ["chat"])
        #expect(eventually { notes.seen.withLock { $0.count } == 1 })
        #expect(notes.seen.withLock { $0 } == ["\(keep ? "kept true" : "not kept"), subprotocol chat, result chat"])
        _ = try c.close()
    }

    /// Upgrades `client` with permessage-deflate and sends one compressed binary frame of zeros
    /// (a few KiB on the wire) that inflates to `size` bytes; with `isFinal` false the message
    /// stays open.
    func sendBomb(_ client: RawClient, inflatingTo size: Int, isFinal: Bool) throws {
        _ = try client.upgrade(extra: "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n")
        var deflate = WSPerMessageDeflate.Configuration()
        deflate.minimumSize = 0
        let codec = WSDeflateTransform(parameters: WSDeflateParameters(send: .init(), receive: .init()), configuration: deflate)
        var compressed: [UInt8] = []
        codec.encode([UInt8](repeating: 0, count: size).span, isFinal: isFinal, into: &compressed)
        #expect(compressed.count < size / 500)
        var frame = maskedFrame(opcode: 2, compressed, fin: isFinal)
        frame[0] |= 0x40  // RSV1: compressed
        try client.send(frame)
    }

    /// Records the order in which the loop delivers whole messages (their first byte and size).
    final class OrderRecorder: WSEpollHandler, Sendable {
        let order = Mutex<[String]>([])
        func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
            order.withLock { $0.append(data.count > 1000 ? "large \(data.count)" : "small") }
            if data.count <= 1000 { try? connection.send(data, kind: kind) }
        }
    }

    @Test("fair inflate: a message inflating to 32 MiB takes many loop turns; a neighbour's message sent after it is served first")
    func fairInflate() throws {
        let recorder = OrderRecorder()
        let server = try startServer({
            $0.connection.maxMessageSize = 64 << 20
            $0.loops = 1
        }) { _ in .accept(recorder) }
        defer { server.immediateStop() }
        let neighbour = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        let bomber = try RawClient(port: server.port)
        defer { bomber.close() }
        try sendBomb(bomber, inflatingTo: 32 << 20, isFinal: true)
        try neighbour.send(text: "after")
        #expect(try neighbour.receive() == .text("after"))
        #expect(eventually { recorder.order.withLock { $0.count } == 2 })
        #expect(recorder.order.withLock { $0 } == ["small", "large \(32 << 20)"])
        _ = try neighbour.close()
    }

    @Test("the memory budget: exactly at the limit is within it, one byte more is over; shrinking never fails")
    func budgetAccounting() {
        let budget = MemoryBudget(1000)
        #expect(budget.charge(600))
        #expect(budget.charge(400))
        #expect(budget.inUse == 1000)
        #expect(!budget.charge(1))
        #expect(budget.inUse == 1001)
        #expect(budget.charge(-1))
        #expect(budget.charge(-500))
        #expect(budget.charge(500))
        #expect(!budget.charge(1))
    }

    @Test("a compressed fragment inflating past the server's memory budget closes that connection with 1013; a neighbour goes on; the bytes come back")
    func memoryBudget() throws {
        let server = try startServer({
            $0.connection.maxMessageSize = 64 << 20
            $0.memoryBudget = 8 << 20
            $0.loops = 1
        }) { _ in .accept(RecordingEcho()) }
        defer { server.immediateStop() }
        let neighbour = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        let bomber = try RawClient(port: server.port)
        defer { bomber.close() }
        try sendBomb(bomber, inflatingTo: 32 << 20, isFinal: false)  // a first fragment: the message stays open
        let (bytes, eof) = try bomber.readToEnd()
        // Close 1013 with the code's name as its reason, then FIN.
        #expect(bytes.count >= 4 && bytes[0] == 0x88 && bytes[2] == 0x03 && bytes[3] == 0xF5, "\(bytes.prefix(8))")
        #expect(String(decoding: bytes.dropFirst(4), as: UTF8.self) == "memoryBudgetExceeded")
        #expect(eof)
        bomber.close()
        try neighbour.send(text: "still served")
        #expect(try neighbour.receive() == .text("still served"))
        _ = try neighbour.close()
        #expect(eventually { server.connectionCount == 0 })
        #expect(eventually { server.memoryInUse == 0 })
    }

    @Test("a protocol violation is answered with Close 1002 and FIN (RFC 6455 §7.1.7)")
    func violationClosesWith1002() throws {
        try withUpgradedRawClient { echo, raw in
            try raw.send([0x81, 0x02, 0x68, 0x69])  // unmasked text from a client
            let (bytes, eof) = try raw.readToEnd()
            #expect(bytes.count >= 4 && bytes[0] == 0x88 && bytes[2] == 0x03 && bytes[3] == 0xEA)
            #expect(eof)
            #expect(eventually { echo.events.withLock { $0.contains { if case .failed(let e) = $0 { e.closeCode == .protocolError } else { false } } } })
        }
    }

    @Test("a peer that does not read: the server stops reading it at the high-water mark (backpressure)")
    func backpressure() throws {
        let echo = RecordingEcho()
        let server = try startServer(smallBuffers) { _ in .accept(echo) }
        defer { server.immediateStop() }
        let raw = try RawClient(port: server.port)
        defer { raw.close() }
        _ = try raw.upgrade()
        try raw.socket.setNonBlocking()
        var small: Int32 = 64 << 10
        setsockopt(raw.socket.fd, SOL_SOCKET, SO_RCVBUF, &small, 4)
        // Write 16 KiB echo requests without reading any answer, until writes stall for 300 ms
        // (or 512 MiB went out, which would mean the server never stopped reading).
        let frame = maskedFrame(opcode: 0x2, [UInt8](repeating: 0x42, count: 16 << 10))
        var sent = 0
        var lastProgress = WSClock.now()
        while sent < 512 << 20, WSClock.now() - lastProgress < .milliseconds(300) {
            let offset = sent % frame.count  // continue a frame the kernel took part of
            if let n = try frame.withUnsafeBytes({ try raw.socket.write(UnsafeRawBufferPointer(rebasing: $0[offset...])) }), n > 0 {
                sent += n
                lastProgress = WSClock.now()
            } else {
                usleep(1000)
            }
        }
        // Kernel buffers (up to tens of MiB with autotuning) fill on both sides, and the server
        // stops reading: writes stall, and the server's queue stayed near its high-water mark.
        #expect(sent < 512 << 20)
        #expect(echo.events.withLock { $0.isEmpty })  // no failure, no close: just paused
        #expect(echo.maxBuffered.load(ordering: .relaxed) < (256 << 10) + (64 << 10) + (32 << 10))
        #expect(server.connectionCount == 1)
    }

    @Test("sends from another thread reach the client (the owning loop is woken)")
    func crossThreadSend() throws {
        let echo = RecordingEcho(echo: false)
        let server = try startServer(loops: 2) { _ in .accept(echo) }
        defer { server.immediateStop() }
        let ws = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        #expect(eventually { echo.connections.withLock { $0.count } == 1 })
        let connection = echo.connections.withLock { $0[0] }
        for i in 0..<100 { try connection.send(text: "push \(i)") }
        for i in 0..<100 { #expect(try ws.receive() == .text("push \(i)")) }
        try connection.close(code: .normalClosure, reason: "done")
        #expect(try ws.receive() == nil)
        #expect(ws.closeInfo?.code == .normalClosure)
    }

    /// Relays each message to every other open connection of the loop (a chat room).
    final class Relay: WSEpollHandler, Sendable {
        let room = Mutex<[WSEpollConnection]>([])
        func opened(_ connection: WSEpollConnection, _ result: WSHandshakeResult) { room.withLock { $0.append(connection) } }
        func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
            for other in room.withLock({ $0 }) where other !== connection { try? other.send(data, kind: kind) }
        }
    }

    @Test("a handler sending to another connection of its loop while handling a message: the other is flushed too")
    func relayOnTheSameLoop() throws {
        let relay = Relay()
        let server = try startServer(loops: 1) { _ in .accept(relay) }
        defer { server.immediateStop() }
        let a = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        let b = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        #expect(eventually { relay.room.withLock { $0.count } == 2 })
        for i in 0..<50 { try a.send(text: "to b \(i)") }
        for i in 0..<50 { #expect(try b.receive(timeout: .seconds(5)) == .text("to b \(i)")) }
        try b.send(binary: [1, 2, 3])
        #expect(try a.receive(timeout: .seconds(5)) == .binary([1, 2, 3]))
        _ = try a.close()
        _ = try b.close()
    }

    @Test("graceful stop sends 1001 Going Away and waits for the closing handshakes")
    func gracefulStop() throws {
        let server = try startServer { _ in .accept(RecordingEcho()) }
        let ws = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        let stopper = try WSThread { server.gracefulStop(timeout: .seconds(5)) }
        #expect(try ws.receive() == nil)
        #expect(ws.closeInfo?.code == .goingAway)
        #expect(ws.closeInfo?.wasClean == true)
        stopper.join()
        #expect(server.connectionCount == 0)
        #expect(throws: WSConnectionError.self) { _ = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/") }
    }

    @Test("immediate stop drops connections: the client sees the transport end (1006)")
    func immediateStop() throws {
        let echo = RecordingEcho()
        let server = try startServer { _ in .accept(echo) }
        let ws = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        server.immediateStop()
        #expect(try ws.receive() == nil)
        #expect(ws.closeInfo?.code == .abnormalClosure)
        #expect(echo.events.withLock { $0.contains { if case .closed = $0 { true } else { false } } })
    }

    @Test("the handshake timeout, subprotocol choice and IPv6 loopback")
    func subprotocolOverIPv6() throws {
        guard let server = try startServerOnIPv6(upgrade: { request in
            .accept(RecordingEcho(), subprotocol: request.selectSubprotocol(preferring: ["v2", "v1"]))
        }) else { return }  // no IPv6 on this machine
        defer { server.immediateStop() }
        let ws = try WSBlockingConnection.connect(to: "ws://[::1]:\(server.port)/", subprotocols: ["v1", "v2"])
        #expect(ws.negotiatedSubprotocol == "v2")
        _ = try ws.close()
    }

    @Test("an idle timeout that each message moves later fires only after the last one: the deadline armed first fires early and re-arms, never reports early")
    func idleTimeoutMovesLater() throws {
        let echo = RecordingEcho()
        let server = try startServer({ $0.connection.idleTimeout = .milliseconds(600); $0.connection.pingInterval = nil }) { _ in .accept(echo) }
        defer { server.immediateStop() }
        let ws = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        func idleEvents() -> Int { echo.events.withLock { $0.filter { $0 == .idleTimeout }.count } }
        for i in 0..<8 {  // 1.2 s of traffic, a message every 150 ms: past the first deadline
            usleep(150_000)
            try ws.send(text: "\(i)")
            _ = try ws.receive(timeout: .seconds(5))
        }
        #expect(idleEvents() == 0)
        #expect(eventually(3) { idleEvents() >= 1 })
        _ = try ws.close()
    }

    @Test("remoteAddress is the peer's host:port: an IPv4 peer kept in one word, an IPv6 one as text")
    func remoteAddress() throws {
        try withUpgradedRawClient { echo, raw in
            let port = try #require(raw.socket.localAddress?.port)
            #expect(eventually { echo.connections.withLock { $0.count } == 1 })
            #expect(echo.connections.withLock { $0.first?.remoteAddress } == "127.0.0.1:\(port)")
        }
        #expect(WSSocketAddress.describe(packedIPv4: 0xC0A8_0102 << 16 | 65535) == "192.168.1.2:65535")

        let echo6 = RecordingEcho()
        guard let server6 = try startServerOnIPv6(upgrade: { _ in .accept(echo6) }) else { return }  // no IPv6 here
        defer { server6.immediateStop() }
        let ws = try WSBlockingConnection.connect(to: "ws://[::1]:\(server6.port)/")
        #expect(eventually { echo6.connections.withLock { $0.count } == 1 })
        let text = try #require(echo6.connections.withLock { $0.first?.remoteAddress })
        #expect(text.hasPrefix("[::1]:") && Int(text.dropFirst(6)) != nil)
        _ = try ws.close()
    }
}

/// The rejection a connect attempt ended with, or nil if it did not end with one.
func rejected(_ connect: () throws(WSConnectionError) -> WSBlockingConnection) -> WSHandshakeRejection? {
    let result = Result(catching: connect)
    if case .failure(.rejected(let r)) = result { return r }
    return nil
}
