import Foundation
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
        let error = try #require(throws: WSTransportError.self) {
            for _ in 0..<10 {
                _ = try client.advanceHandshake()
                _ = try server.advanceHandshake()
                pump(client, server)
            }
        }
        #expect(error.operation == "TLS handshake")
        #expect(error.message.contains("hostname mismatch"))
    }

    @Test("an address is checked against the certificate's IP SANs")
    func addressVerification() throws {
        for (name, ok) in [("127.0.0.1", true), ("::1", true), ("10.0.0.1", false)] {
            let server = try TestPKI.server().makeSession()
            let client = try TestPKI.client().makeSession(serverName: name)
            let result = Result {
                for _ in 0..<10 {
                    _ = try client.advanceHandshake()
                    _ = try server.advanceHandshake()
                    pump(client, server)
                }
            }
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
        for _ in 0..<10 {
            _ = try client.advanceHandshake()
            _ = try server.advanceHandshake()
            pump(client, server)
        }
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
