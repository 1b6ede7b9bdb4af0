import Glibc
import Testing
import WSBlocking
import WSCore
import WSTransport

@Suite("Blocking adapter over loopback", .timeLimit(.minutes(1)))
struct BlockingTests {
    @Test("thread-per-connection server echoes to a blocking client")
    func blockingServerEcho() throws {
        let server = WSBlockingServer(port: 0) { ws in
            while let message = try? ws.receive() {
                switch message {
                case .text(let s): try? ws.send(text: s)
                case .binary(let b): try? ws.send(binary: b)
                }
            }
        }
        try server.start()
        defer { server.stop() }
        let ws = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        try ws.send(text: "ping me")
        #expect(try ws.receive() == .text("ping me"))
        #expect(try ws.close().wasClean)
        #expect(eventually { server.activeConnections == 0 })
    }

    @Test("the thread-per-connection server writes its rejection whole before closing")
    func blockingServerRejects() throws {
        let server = WSBlockingServer(port: 0, decide: { _ in .reject(status: .forbidden) }) { _ in }
        try server.start()
        defer { server.stop() }
        let result = Result { () throws(WSConnectionError) in try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/") }
        guard case .failure(.rejected(let rejection)) = result else {
            Issue.record("expected a rejection")
            return
        }
        #expect(rejection.response.status.code == 403)
    }

    @Test("a blocking connection gives its buffers back after a second without input")
    func idleMemoryReleased() throws {
        let big = [UInt8](repeating: 0x5A, count: 512 << 10)
        let server = WSBlockingServer(port: 0) { ws in
            try? ws.send(binary: big)
            _ = try? ws.receive()
        }
        try server.start()
        defer { server.stop() }
        let ws = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/")
        #expect(try ws.receive() == .binary(big))
        // Kept for the next message: the buffer that assembled this one was well used.
        #expect(ws.bufferCapacity >= big.count)
        #expect(throws: WSConnectionError.self) { _ = try ws.receive(timeout: .milliseconds(1500)) }
        #expect(ws.bufferCapacity < 64 << 10)
        _ = try ws.close()
    }

    @Test("a read timeout throws and leaves the connection usable")
    func readTimeout() throws {
        let server = WSBlockingServer(port: 0) { ws in
            if case .text(let s)? = try? ws.receive() {
                usleep(300_000)
                try? ws.send(text: s)
            }
            _ = try? ws.receive()
        }
        try server.start()
        defer { server.stop() }
        var config = WSBlockingConnection.Configuration()
        config.readTimeout = .milliseconds(100)
        let ws = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/", configuration: config)
        try ws.send(text: "late")
        #expect(throws: WSConnectionError.self) { _ = try ws.receive() }
        #expect(try ws.receive(timeout: .seconds(5)) == .text("late"))
        _ = try ws.close()
    }

    @Test("keepalive pings run from the engine's deadline while receive waits")
    func keepaliveWhileWaiting() throws {
        let server = WSBlockingServer(port: 0) { ws in
            var pongs = 0
            ws.onControlFrame = { if case .pong = $0 { pongs += 1 } }
            _ = try? ws.receive(timeout: .seconds(5))
        }
        try server.start()
        defer { server.stop() }
        var config = WSBlockingConnection.Configuration()
        config.connection.pingInterval = .milliseconds(50)
        var pongs = 0
        let ws = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/", configuration: config)
        ws.onControlFrame = { if case .pong = $0 { pongs += 1 } }
        #expect(throws: WSConnectionError.self) { _ = try ws.receive(timeout: .seconds(1)) }   // ~20 intervals: slack for a loaded machine
        #expect(pongs >= 3)
        _ = try ws.close()
    }

    /// A server on its own thread that completes the handshake, then answers the client's Close
    /// `replyAfter` later (never if nil), and closes the socket.
    private func lateCloser(replyAfter: Duration?) throws -> (port: Int, thread: WSThread, listener: WSSocket) {
        let listener = try WSSocket.listen(host: "127.0.0.1", port: 0, nonBlocking: false)
        let thread = try WSThread {
            guard let s = try? listener.accept() else { return }
            defer { s.close() }
            try? s.setNonBlocking(false)
            var config = WSProtocol.Configuration()
            config.autoCloseReply = false
            var engine = try! WSProtocol(server: WSServerHandshake(), configuration: config, now: WSClock.now())
            var buffer = [UInt8](repeating: 0, count: 4096)
            func flush() {
                while case .bytes(let b)? = engine.nextOutbound() { _ = b.withUnsafeBytes { try? s.writeAll($0, timeout: nil) } }
            }
            var peerClosed = false
            while !peerClosed {
                let n = buffer.withUnsafeMutableBytes { (try? s.read(into: $0)) ?? nil } ?? 0
                if n == 0 { return }
                engine.receive(buffer[..<n])
                while let e = engine.nextEvent() {
                    if case .upgradeRequested = e { try? engine.accept() }
                    if case .closeReceived = e { peerClosed = true }
                }
                flush()
            }
            guard let replyAfter else {
                usleep(1_500_000)
                return
            }
            usleep(UInt32(replyAfter / .microseconds(1)))
            try? engine.close()
            flush()
        }
        return (listener.localAddress!.port, thread, listener)
    }

    /// A blocking client whose engine gives up on the peer's Close after 300 ms, unless told otherwise.
    private func impatientClient(port: Int) throws -> WSBlockingConnection {
        var config = WSBlockingConnection.Configuration()
        config.compression = nil
        config.connection.closeTimeout = .milliseconds(300)
        return try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(port)/", configuration: config)
    }

    @Test("close waits for the peer's Close at most the timeout, then ends unclean")
    func closeTimeout() throws {
        let server = try lateCloser(replyAfter: nil)
        defer { server.thread.join(); server.listener.close() }
        let ws = try impatientClient(port: server.port)
        let start = WSClock.now()
        let info = try ws.close(timeout: .milliseconds(200))
        #expect(WSClock.now() - start < .seconds(1))
        #expect(!info.wasClean)
        #expect(info.code == .abnormalClosure)
        #expect(info.cause == .closeTimeout)
    }

    @Test(
        "close(timeout:) is honoured past the engine's closeTimeout: a long one, and a negative one (no limit)",
        arguments: [(Duration.milliseconds(800), Duration.seconds(20)), (.milliseconds(1200), .seconds(-1))]
    )
    func closeWaitsAsToldForALateReply(replyAfter: Duration, timeout: Duration) throws {
        let server = try lateCloser(replyAfter: replyAfter)
        defer { server.thread.join(); server.listener.close() }
        let ws = try impatientClient(port: server.port)
        let start = WSClock.now()
        let info = try ws.close(timeout: timeout)
        #expect(WSClock.now() - start >= replyAfter)
        #expect(info.wasClean)
        #expect(info.received?.code == .normalClosure)
    }

    @Test("connect errors are transport errors with the cause")
    func connectRefused() throws {
        let listener = try WSSocket.listen(host: "127.0.0.1", port: 0)
        let port = listener.localAddress!.port
        listener.close()
        let result = Result { () throws(WSConnectionError) in try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(port)/") }
        guard case .failure(.transport(let e)) = result else {
            Issue.record("expected a transport error")
            return
        }
        #expect(e.errno == ECONNREFUSED)
    }

    @Test("writing to a peer that closed yields EPIPE or ECONNRESET, never SIGPIPE")
    func noSIGPIPE() throws {
        let listener = try WSSocket.listen(host: "127.0.0.1", port: 0, nonBlocking: false)
        defer { listener.close() }
        let client = try WSSocket.connect(host: "127.0.0.1", port: listener.localAddress!.port, timeout: .seconds(2))
        defer { client.close() }
        let accepted = try #require(try listener.accept())
        accepted.close()
        usleep(50_000)
        let chunk = [UInt8](repeating: 1, count: 65536)
        var failure: WSTransportError?
        for _ in 0..<100 where failure == nil {
            do { try chunk.withUnsafeBytes { try client.writeAll($0, timeout: .seconds(1)) } } catch let e as WSTransportError { failure = e }
        }
        #expect(failure?.errno == EPIPE || failure?.errno == ECONNRESET)
    }

    @Test("a vectored write sends its buffers in order, in one call")
    func vectoredWrite() throws {
        let listener = try WSSocket.listen(host: "127.0.0.1", port: 0, nonBlocking: false)
        defer { listener.close() }
        let client = try WSSocket.connect(host: "127.0.0.1", port: listener.localAddress!.port, timeout: .seconds(2))
        defer { client.close() }
        let accepted = try #require(try listener.accept())
        defer { accepted.close() }
        let parts: [[UInt8]] = [Array("head-".utf8), [], Array("body-".utf8), Array("tail".utf8)]
        let n = try parts[0].withUnsafeBytes { a in
            try parts[1].withUnsafeBytes { b in
                try parts[2].withUnsafeBytes { c in
                    try parts[3].withUnsafeBytes { d in try client.write(vectored: [a, b, c, d]) }
                }
            }
        }
        #expect(n == 14)
        client.shutdownWrite()
        try accepted.setNonBlocking(false)
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        while let k = try buffer.withUnsafeMutableBytes({ try accepted.read(into: $0) }), k > 0 { got += buffer[..<k] }
        #expect(got == Array("head-body-tail".utf8))
    }

    @Test("name resolution gives IPv4 and IPv6 loopback addresses")
    func resolution() throws {
        let v4 = try WSSocket.resolve(host: "127.0.0.1", port: 80)
        #expect(v4.first?.description == "127.0.0.1:80")
        if let v6 = try? WSSocket.resolve(host: "[::1]", port: 443) {
            #expect(v6.first?.description == "[::1]:443")
        }
        #expect(throws: WSTransportError.self) { _ = try WSSocket.resolve(host: "no-such-host.invalid", port: 1) }
    }
}
