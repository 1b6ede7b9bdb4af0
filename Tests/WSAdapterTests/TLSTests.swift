import Foundation
import Glibc
import Synchronization
import WSEpoll
import Testing
import WSBlocking
import WSCore
import WSTransport

/// The test PKI in Fixtures/tls (see its make.sh): a CA, a server certificate for localhost,
/// 127.0.0.1 and ::1, and a client certificate.
enum TestPKI {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Fixtures/tls").standardized.path
    static func path(_ name: String) -> String { directory + "/" + name }
    static var ca: String { path("ca.pem") }

    static func server(clientAuthentication: WSTLSContext.ClientAuthentication = .none) throws -> WSTLSContext {
        try WSTLSContext.server(certificateChainFile: path("server.pem"), privateKeyFile: path("server-key.pem"),
                                clientAuthentication: clientAuthentication)
    }

    static func client(withCertificate: Bool = false) throws -> WSTLSContext {
        try WSTLSContext.client(trustRoots: .file(ca),
                                certificateChainFile: withCertificate ? path("client.pem") : nil,
                                privateKeyFile: withCertificate ? path("client-key.pem") : nil)
    }
}

/// Moves ciphertext between two in-memory sessions until neither has any to send.
private func pump(_ a: WSTLSSession, _ b: WSTLSSession) {
    var moved = true
    while moved {
        moved = false
        for (from, to) in [(a, b), (b, a)] where from.pendingCiphertextCount > 0 {
            from.withPendingCiphertext { to.receiveCiphertext($0) }
            from.consumeCiphertext(from.pendingCiphertextCount)
            moved = true
        }
    }
}

/// Runs both sides' handshakes in memory for a few rounds; throws the first failure.
private func handshake(_ client: WSTLSSession, _ server: WSTLSSession) throws(WSTransportError) {
    for _ in 0..<10 {
        _ = try client.advanceHandshake()
        _ = try server.advanceHandshake()
        pump(client, server)
    }
}

private func readAll(_ s: WSTLSSession) throws -> (bytes: [UInt8], closed: Bool) {
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let r = try buffer.withUnsafeMutableBytes { try s.readPlaintext(into: $0) }
        switch r {
        case .bytes(let n): out += buffer[..<n]
        case .needsInput: return (out, false)
        case .closed: return (out, true)
        }
    }
}

@Suite("TLS session (memory BIOs, no sockets)")
struct TLSSessionTests {
    @Test("handshake, data both ways and close_notify between two sessions")
    func inMemoryRoundTrip() throws {
        let server = try TestPKI.server().makeSession()
        let client = try TestPKI.client().makeSession(serverName: "localhost")
        var rounds = 0
        while true {
            let clientDone = try client.advanceHandshake()
            let serverDone = try server.advanceHandshake()
            if clientDone && serverDone { break }
            pump(client, server)
            rounds += 1
            try #require(rounds < 10)
        }
        pump(client, server)
        #expect(client.protocolVersion == "TLSv1.3")
        #expect(client.alpnProtocol == "http/1.1")
        #expect(server.alpnProtocol == "http/1.1")
        #expect(client.peerCertificateSubject == "CN=localhost")
        let request = Array("GET / HTTP/1.1\r\n\r\n".utf8)
        #expect(try request.withUnsafeBytes { try client.writePlaintext($0) } == request.count)
        pump(client, server)
        #expect(try readAll(server).bytes == request)
        client.closeNotify()
        pump(client, server)
        #expect(try readAll(server).closed)
    }

    @Test("a client writing before the handshake is told 0 and the handshake goes out")
    func writeBeforeHandshake() throws {
        let client = try TestPKI.client().makeSession(serverName: "localhost")
        let n = try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try client.writePlaintext($0) }
        #expect(n == 0)
        #expect(client.pendingCiphertextCount > 0)   // the ClientHello
        #expect(!client.isHandshakeComplete)
    }

    @Test("a server certificate for another name fails the handshake with the reason")
    func hostnameMismatch() throws {
        let server = try TestPKI.server().makeSession()
        let client = try TestPKI.client().makeSession(serverName: "example.com")
        let error = try #require(throws: WSTransportError.self) { try handshake(client, server) }
        #expect(error.operation == "TLS handshake")
        #expect(error.message.contains("hostname mismatch"))
    }

    @Test("an address is checked against the certificate's IP SANs")
    func addressVerification() throws {
        for (name, ok) in [("127.0.0.1", true), ("::1", true), ("10.0.0.1", false)] {
            let server = try TestPKI.server().makeSession()
            let client = try TestPKI.client().makeSession(serverName: name)
            let result = Result { () throws(WSTransportError) in try handshake(client, server) }
            #expect(((try? result.get()) != nil) == ok, "\(name)")
            #expect(client.isHandshakeComplete == ok, "\(name)")
        }
    }

    @Test("an untrusted CA is refused; the server sees the alert")
    func untrustedCertificate() throws {
        let server = try TestPKI.server().makeSession()
        // The client certificate's CA file is not a CA list for the server certificate's issuer
        // when the client trusts only the client certificate itself.
        let client = try WSTLSContext.client(trustRoots: .file(TestPKI.path("client.pem"))).makeSession(serverName: "localhost")
        var serverError: WSTransportError?
        let error = try #require(throws: WSTransportError.self) {
            for _ in 0..<10 {
                _ = try client.advanceHandshake()
                pump(client, server)
                do throws(WSTransportError) { _ = try server.advanceHandshake() } catch { serverError = error }
                pump(client, server)
            }
        }
        #expect(error.message.contains("certificate verify failed"))
        pump(client, server)   // the client's alert
        do throws(WSTransportError) { _ = try server.advanceHandshake() } catch { serverError = error }
        #expect(serverError?.message.contains("unknown ca") == true, "\(String(describing: serverError))")
    }

    @Test("mutual TLS: a required client certificate is checked")
    func mutualTLS() throws {
        let required = try TestPKI.server(clientAuthentication: .required(.file(TestPKI.ca)))
        for withCertificate in [true, false] {
            let server = try required.makeSession()
            let client = try TestPKI.client(withCertificate: withCertificate).makeSession(serverName: "localhost")
            var serverError: WSTransportError?
            for _ in 0..<10 {
                _ = try? client.advanceHandshake()
                pump(client, server)
                do { _ = try server.advanceHandshake() } catch { serverError = error; break }
                pump(client, server)
            }
            if withCertificate {
                #expect(serverError == nil)
                #expect(server.peerCertificateSubject == "CN=swift-ws test client")
            } else {
                #expect(serverError?.message.contains("certificate") == true)
            }
        }
    }

    @Test("optional client certificates: accepted without one, the subject seen with one")
    func optionalClientCertificate() throws {
        let optional = try TestPKI.server(clientAuthentication: .optional(.file(TestPKI.ca)))
        for withCertificate in [false, true] {
            let server = try optional.makeSession()
            let client = try TestPKI.client(withCertificate: withCertificate).makeSession(serverName: "localhost")
            try handshake(client, server)
            #expect(server.isHandshakeComplete && client.isHandshakeComplete)
            #expect(server.peerCertificateSubject == (withCertificate ? "CN=swift-ws test client" : nil))
        }
    }

    @Test("a missing certificate file or a key that does not match is a clear error")
    func badIdentity() {
        #expect(throws: WSTransportError.self) {
            _ = try WSTLSContext.server(certificateChainFile: "/nonexistent.pem", privateKeyFile: TestPKI.path("server-key.pem"))
        }
        let mismatch = #expect(throws: WSTransportError.self) {
            _ = try WSTLSContext.server(certificateChainFile: TestPKI.path("server.pem"), privateKeyFile: TestPKI.path("client-key.pem"))
        }
        #expect(mismatch?.operation.contains("private key") == true)
    }

    @Test("corrupted ciphertext fails the session instead of yielding bytes")
    func corruptedRecord() throws {
        let server = try TestPKI.server().makeSession()
        let client = try TestPKI.client().makeSession(serverName: "localhost")
        try handshake(client, server)
        _ = try [UInt8](repeating: 7, count: 100).withUnsafeBytes { try client.writePlaintext($0) }
        var record = client.withPendingCiphertext { Array($0) }
        client.consumeCiphertext(record.count)
        record[record.count - 5] ^= 0x40
        record.withUnsafeBytes { server.receiveCiphertext($0) }
        #expect(throws: WSTransportError.self) { _ = try readAll(server) }
    }
}

@Suite("TLS over loopback: blocking adapter", .timeLimit(.minutes(1)))
struct BlockingTLSTests {
    func echoServer(tls: WSTLSContext) throws -> WSBlockingServer {
        let server = WSBlockingServer(port: 0, tls: tls) { ws in
            while let message = try? ws.receive() {
                switch message {
                case .text(let s): try? ws.send(text: s)
                case .binary(let b): try? ws.send(binary: b)
                }
            }
        }
        try server.start()
        return server
    }

    @Test("wss:// echo with compression, 1 MiB included, and a clean close")
    func echo() throws {
        let server = try echoServer(tls: TestPKI.server())
        defer { server.stop() }
        var config = WSBlockingConnection.Configuration()
        config.tls = try TestPKI.client()
        let ws = try WSBlockingConnection.connect(to: "wss://localhost:\(server.port)/", configuration: config)
        #expect(ws.tls?.protocolVersion == "TLSv1.3")
        #expect(ws.handshake?.extensions.isEmpty == false)
        try ws.send(text: "secret")
        #expect(try ws.receive() == .text("secret"))
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        try ws.send(binary: big)
        #expect(try ws.receive() == .binary(big))
        #expect(try ws.close().wasClean)
    }

    @Test("a client that does not trust the server gets a transport error naming the reason")
    func untrusted() throws {
        let server = try echoServer(tls: TestPKI.server())
        defer { server.stop() }
        // The system's store does not hold the test CA.
        let result = Result { () throws(WSConnectionError) in
            try WSBlockingConnection.connect(to: "wss://localhost:\(server.port)/")
        }
        guard case .failure(.transport(let error)) = result else {
            Issue.record("expected a transport error, got \(result)")
            return
        }
        #expect(error.message.contains("certificate verify failed"))
    }

    @Test("a plain ws:// client against a TLS server fails without hanging")
    func plainClientAgainstTLS() throws {
        let server = try echoServer(tls: TestPKI.server())
        defer { server.stop() }
        #expect(throws: WSConnectionError.self) {
            _ = try WSBlockingConnection.connect(to: "ws://127.0.0.1:\(server.port)/") { $0.timeout = .seconds(5) }
        }
    }
}

@Suite("TLS over loopback: epoll adapter", .timeLimit(.minutes(1)))
struct EpollTLSTests {
    /// Remembers the TLS facts each opened connection reports on its loop.
    final class TLSRecorder: WSEpollHandler, Sendable {
        let echo = RecordingEcho()
        let subjects = Mutex<[String?]>([])
        let versions = Mutex<[String]>([])
        func opened(_ connection: WSEpollConnection, _ result: WSHandshakeResult) {
            subjects.withLock { $0.append(connection.tls?.peerCertificateSubject) }
            versions.withLock { $0.append(connection.tls?.protocolVersion ?? "none") }
            echo.opened(connection, result)
        }
        func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
            echo.received(connection, kind: kind, data: data, isFinal: isFinal)
        }
        func event(_ connection: WSEpollConnection, _ event: WSProtocol.Event) { echo.event(connection, event) }
    }

    func clientConfiguration(withCertificate: Bool = false) throws -> WSBlockingConnection.Configuration {
        var config = WSBlockingConnection.Configuration()
        config.tls = try TestPKI.client(withCertificate: withCertificate)
        return config
    }

    @Test("wss:// echo through the epoll server: text, 1 MiB, clean close", arguments: [true, false])
    func echo(compression: Bool) throws {
        let recorder = TLSRecorder()
        let tls = try TestPKI.server()
        let server = try startServer({
            $0.tls = tls
            if !compression { $0.compression = nil }
        }) { _ in .accept(recorder) }
        defer { server.immediateStop() }
        let ws = try WSBlockingConnection.connect(to: "wss://127.0.0.1:\(server.port)/", configuration: clientConfiguration())
        try ws.send(text: "over TLS")
        #expect(try ws.receive() == .text("over TLS"))
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) }
        try ws.send(binary: big)
        #expect(try ws.receive() == .binary(big))
        #expect(try ws.close().wasClean)
        #expect(recorder.versions.withLock { $0 } == ["TLSv1.3"])
        #expect(eventually { server.connectionCount == 0 })
    }

    @Test("epoll client ↔ epoll server over TLS: 20 connections echo and close cleanly")
    func epollToEpoll() throws {
        let tls = try TestPKI.server()
        let server = try startServer(loops: 2, { $0.tls = tls }) { _ in .accept(RecordingEcho()) }
        defer { server.immediateStop() }
        var config = WSEpollClient.Configuration()
        config.tls = try TestPKI.client()
        let client = WSEpollClient(configuration: config)
        try client.start()
        defer { client.immediateStop() }
        let greeting: [WSMessage] = [.text("first"), .binary(Array(repeating: 7, count: 200_000))]
        let collectors = (0..<20).map { _ in Collector(greeting: greeting) }
        var connections: [WSEpollConnection] = []
        for c in collectors {
            connections.append(try client.connect(to: "wss://localhost:\(server.port)/", handler: c))
        }
        #expect(eventually { collectors.allSatisfy { $0.messages.withLock { $0.count } == 2 } })
        #expect(collectors.allSatisfy { $0.messages.withLock { $0 } == greeting })
        for connection in connections { try connection.close(code: .normalClosure, reason: "done") }
        #expect(eventually { collectors.allSatisfy { $0.closeInfo != nil } })
        #expect(collectors.allSatisfy { $0.closeInfo?.wasClean == true })
        #expect(eventually { client.connectionCount == 0 && server.connectionCount == 0 })
    }

    @Test("an epoll client that does not trust the server sees the handshake fail and .closed")
    func epollClientUntrusted() throws {
        let tls = try TestPKI.server()
        let server = try startServer({ $0.tls = tls }) { _ in .accept(RecordingEcho()) }
        defer { server.immediateStop() }
        var config = WSEpollClient.Configuration()
        config.tls = try WSTLSContext.client(trustRoots: .file(TestPKI.path("client.pem")))
        let client = WSEpollClient(configuration: config)
        try client.start()
        defer { client.immediateStop() }
        let c = Collector(greeting: [.text("never")])
        _ = try client.connect(to: "wss://localhost:\(server.port)/", handler: c)
        #expect(eventually { c.closeInfo != nil })
        #expect(!c.isOpened)
        #expect(c.closeInfo?.wasClean == false)
        #expect(eventually { client.connectionCount == 0 && server.connectionCount == 0 })
    }

    @Test("mutual TLS: the server requires a client certificate and sees its subject")
    func mutualTLS() throws {
        let recorder = TLSRecorder()
        let tls = try TestPKI.server(clientAuthentication: .required(.file(TestPKI.ca)))
        let server = try startServer({ $0.tls = tls }) { _ in .accept(recorder) }
        defer { server.immediateStop() }
        #expect(throws: WSConnectionError.self) {
            _ = try WSBlockingConnection.connect(to: "wss://localhost:\(server.port)/", configuration: clientConfiguration())
        }
        let ws = try WSBlockingConnection.connect(to: "wss://localhost:\(server.port)/", configuration: clientConfiguration(withCertificate: true))
        try ws.send(text: "it's me")
        #expect(try ws.receive() == .text("it's me"))
        _ = try ws.close()
        #expect(recorder.subjects.withLock { $0 } == ["CN=swift-ws test client"])
        #expect(eventually { server.connectionCount == 0 })
    }

    @Test("a client that never starts TLS is dropped at the handshake timeout; plaintext HTTP is dropped at once")
    func silentAndPlaintextClients() throws {
        let tls = try TestPKI.server()
        let server = try startServer({
            $0.tls = tls
            $0.handshake.timeout = .seconds(1)   // room for the last, valid client on a loaded machine
        }) { _ in .accept(RecordingEcho()) }
        defer { server.immediateStop() }
        let silent = try RawClient(port: server.port)
        defer { silent.close() }
        let start = WSClock.now()
        let (_, eof) = try silent.readToEnd()
        #expect(eof)
        #expect(WSClock.now() - start < .seconds(4))

        let plain = try RawClient(port: server.port)
        defer { plain.close() }
        _ = try? plain.upgrade()
        #expect(eventually { server.connectionCount == 0 })
        // The server goes on serving TLS.
        let ws = try WSBlockingConnection.connect(to: "wss://localhost:\(server.port)/", configuration: clientConfiguration())
        try ws.send(text: "fine")
        #expect(try ws.receive() == .text("fine"))
        _ = try ws.close()
    }

    @Test("over maxConnections a TLS server closes new connections and goes on")
    func connectionLimit() throws {
        let tls = try TestPKI.server()
        let server = try startServer({
            $0.tls = tls
            $0.maxConnections = 1
        }) { _ in .accept(RecordingEcho()) }
        defer { server.immediateStop() }
        let first = try WSBlockingConnection.connect(to: "wss://localhost:\(server.port)/", configuration: clientConfiguration())
        #expect(throws: WSConnectionError.self) {
            _ = try WSBlockingConnection.connect(to: "wss://localhost:\(server.port)/", configuration: clientConfiguration())
        }
        try first.send(text: "still here")
        #expect(try first.receive() == .text("still here"))
        _ = try first.close()
    }

    @Test("backpressure, with TLS and without: a blocking client that does not read hits its write timeout, the server's queue stays bounded",
          arguments: [true, false])
    func backpressure(tls useTLS: Bool) throws {
        let echo = RecordingEcho()
        let tls = try TestPKI.server()
        let server = try startServer({
            smallBuffers(&$0)
            if useTLS { $0.tls = tls }
        }) { _ in .accept(echo) }
        defer { server.immediateStop() }
        var config = try clientConfiguration()
        config.compression = nil
        config.writeTimeout = .milliseconds(300)
        let ws = try WSBlockingConnection.connect(to: "\(useTLS ? "wss" : "ws")://localhost:\(server.port)/", configuration: config)
        var small: Int32 = 64 << 10
        setsockopt(ws.fileDescriptor, SOL_SOCKET, SO_RCVBUF, &small, 4)
        // Send 16 KiB echo requests and read nothing, until a send stalls past its timeout.
        let payload = [UInt8](repeating: 0x42, count: 16 << 10)
        var sent = 0
        var stalled = false
        while sent < 512 << 20 {
            do throws(WSConnectionError) { try ws.send(binary: payload) } catch {
                if case .timeout = error { stalled = true }
                break
            }
            sent += payload.count
        }
        #expect(stalled)
        #expect(echo.events.withLock { $0.isEmpty })
        #expect(echo.maxBuffered.load(ordering: .relaxed) < (256 << 10) + (64 << 10) + (32 << 10))
        #expect(server.connectionCount == 1)
    }
}
