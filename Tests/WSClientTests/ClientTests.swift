// WSClient and WSBlockingClient against loopback servers: Ballerina's operations, data
// binding, timeouts, closing, ping/pong handlers, retry, redirects and proxies.

import Glibc
import HTTPTypes
import Logging
import Synchronization
import Testing
import WSClient
import WSCore
import WSTransport

private struct Person: Codable, Equatable, Sendable, WSValidatable {
    var name: String
    var age: Int
    func validate() throws {
        if age < 0 { throw ValidationFailed() }
    }
    struct ValidationFailed: Error {}
}

/// Fast retries for tests.
private func quickRetry(_ count: Int = 5) -> WSRetryConfig {
    WSRetryConfig(maxCount: count, interval: .milliseconds(50), backOffFactor: 1.5, maxWaitInterval: .milliseconds(200))
}

/// Collects the log lines' messages (what `wsx client -v` prints).
private final class LogLines: LogHandler, @unchecked Sendable {
    let lines = Mutex<[String]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { lines.withLock { $0.append("\(event.message)") } }
}

@Suite("WSClient (async)", .serialized, .timeLimit(.minutes(1)))
struct AsyncClientTests {
    @Test("Ballerina's operations: write and read text, binary, JSON values; the connection's facts")
    func operations() async throws {
        let server = try ScriptedServer.start(subprotocols: ["v2"])
        defer { server.stop() }
        var configuration = WSClientConfiguration()
        configuration.subProtocols = ["v1", "v2"]
        configuration.customHeaders[.origin] = "http://127.0.0.1"
        configuration.cookies = [WSCookie(name: "s", value: "1")]
        configuration.auth = .bearer("t0k")
        let client = try await WSClient(server.url, configuration: configuration)
        #expect(client.isOpen)
        #expect(!client.isSecure)
        #expect(client.negotiatedSubProtocol == "v2")
        #expect(client.httpResponse.status.code == 101)
        #expect(client.connectionId.hasPrefix("c"))
        let request = try #require(server.requests.withLock { $0.first })
        #expect(request.origin == "http://127.0.0.1")
        #expect(request.cookies == [WSCookie(name: "s", value: "1")])
        #expect(request.head.headerFields[.authorization] == "Bearer t0k")

        try await client.writeTextMessage("héllo")
        #expect(try await client.readTextMessage() == "héllo")
        try await client.writeBinaryMessage([0, 1, 255])
        #expect(try await client.readBinaryMessage() == [0, 1, 255])
        try await client.writeMessage(Person(name: "ann", age: 7))
        #expect(try await client.readTextMessage() == #"{"age":7,"name":"ann"}"#)
        try await client.writeMessage("json")
        #expect(try await client.readMessage(as: Person.self) == Person(name: "ann", age: 7))
        try await client.writeMessage([UInt8]([9]))
        #expect(try await client.readMessage() == .binary([9]))

        client.setAttribute("user", "ann")
        #expect(client.getAttribute("user") as? String == "ann")
        client.removeAttribute("user")
        #expect(client.getAttribute("user") == nil)

        try await client.close()
        #expect(!client.isOpen)
        #expect(client.closeInfo?.code == .normalClosure)
        await #expect { try await client.writeTextMessage("late") } throws: { ($0 as? WSClientError)?.code == .connectionClosure }
    }

    @Test("Data binding failures are typed and say what did not bind; the other kind is an error, not a conversion")
    func bindingFailures() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        try await WSClient.withConnection(to: server.url) { client in
            try await client.writeTextMessage(#"{"name":"ann"}"#)
            do throws(WSClientError) {
                _ = try await client.readMessage(as: Person.self)
                Issue.record("bound")
            } catch {
                #expect(error.code == .payloadBinding)
                #expect(error.message.contains("missing key \"age\""))
            }
            try await client.writeTextMessage(#"{"name":"ann","age":-1}"#)
            await #expect { try await client.readMessage(as: Person.self) } throws: { ($0 as? WSClientError)?.code == .payloadValidation }
            try await client.writeMessage("binary:abc")
            await #expect { try await client.readTextMessage() } throws: {
                ($0 as? WSClientError)?.code == .payloadBinding && "\($0)".contains("binary")
            }
            try await client.writeTextMessage("text")
            await #expect { try await client.readBinaryMessage() } throws: { ($0 as? WSClientError)?.code == .payloadBinding }
            // The connection is still usable.
            try await client.writeTextMessage("still")
            #expect(try await client.readTextMessage() == "still")
        }
    }

    @Test("Read timeout: a read-timed-out error, and the connection stays usable")
    func readTimeout() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        var configuration = WSClientConfiguration()
        configuration.readTimeout = .milliseconds(100)
        let client = try await WSClient(server.url, configuration: configuration)
        let start = ContinuousClock.now
        await #expect { try await client.readMessage() } throws: { ($0 as? WSClientError)?.code == .readTimedOut }
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(90) && waited < .seconds(3))
        try await client.writeTextMessage("after")
        #expect(try await client.readTextMessage() == "after")
        try await client.close()
    }

    @Test("The messages sequence yields in order and ends after the server's Close")
    func messagesSequence() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        let client = try await WSClient(server.url)
        for i in 0..<5 { try await client.writeTextMessage("m\(i)") }
        try await client.writeTextMessage("close:1000")
        var got: [WSMessage] = []
        for try await m in client.messages { got.append(m) }
        #expect(got == (0..<5).map { .text("m\($0)") })
        #expect(client.closeInfo?.code == .normalClosure)
    }

    @Test("onPing answers with its own payload (no automatic Pong); onPong sees our Ping's answer")
    func pingPongHandlers() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        let pongsSeen = Mutex<[[UInt8]]>([])
        var configuration = WSClientConfiguration()
        configuration.onPing = { payload in Array("re:".utf8) + payload }
        configuration.onPong = { payload in pongsSeen.withLock { $0.append(payload) } }
        try await WSClient.withConnection(to: server.url, configuration: configuration) { client in
            try await client.writeTextMessage("ping:xy")
            try await client.writeTextMessage("sync")
            #expect(try await client.readTextMessage() == "sync")
            #expect(await eventually { server.pongs.withLock { $0 } == [Array("re:xy".utf8)] })
            try await client.ping([7])
            #expect(await eventually { pongsSeen.withLock { $0 } == [[7]] })
        }
    }

    @Test("Retry: a Close with 1012 reconnects, logged; the next read and write use the new connection")
    func retryAfterRestartClose() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        let log = LogLines()
        var configuration = WSClientConfiguration()
        configuration.retry = quickRetry()
        configuration.logger = Logger(label: "test") { _ in log }
        let client = try await WSClient(server.url, configuration: configuration)
        try await client.writeTextMessage("close:1012")
        // The read sees the Close, reconnects, and waits on the new connection.
        async let read = client.readTextMessage()
        #expect(await eventually { server.opened.load(ordering: .relaxed) == 2 })
        try await client.writeTextMessage("again")
        #expect(try await read == "again")
        #expect(log.lines.withLock { $0 }.contains("reconnecting in 0.05 s (attempt 1)"))
        try await client.close()
    }

    @Test("Retry: a transport drop (server gone) reconnects to the server started again on the port")
    func retryAfterDrop() async throws {
        var server = try ScriptedServer.start()
        let port = server.server.port
        var configuration = WSClientConfiguration()
        configuration.retry = WSRetryConfig(maxCount: 20, interval: .milliseconds(50))
        let client = try await WSClient(server.url, configuration: configuration)
        try await client.writeTextMessage("one")
        #expect(try await client.readTextMessage() == "one")
        server.stop()
        server = try ScriptedServer.start(port: port)
        defer { server.stop() }
        // The write may go into the dead connection; the read notices and reconnects.
        var echoed = false
        for _ in 0..<20 where !echoed {
            try await client.writeTextMessage("two")
            if case .text("two")? = try? await client.readMessage() { echoed = true }
        }
        #expect(echoed)
        try await client.close()
    }

    @Test("Retry: a Close with 1000 or 1008 is never retried")
    func noRetryForNormalClose() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        for code in [1000, 1008] {
            var configuration = WSClientConfiguration()
            configuration.retry = quickRetry()
            let client = try await WSClient(server.url, configuration: configuration)
            try await client.writeTextMessage("close:\(code)")
            await #expect { try await client.readMessage() } throws: {
                ($0 as? WSClientError)?.code == .connectionClosure && ($0 as? WSClientError)?.closeInfo?.code.rawValue == UInt16(code)
            }
        }
        #expect(server.opened.load(ordering: .relaxed) == 2)
    }

    @Test("Retry: the first connect is retried while refused, up to maxCount, each wait logged")
    func retryRefusedConnect() async throws {
        let unused = try WSSocket.listen(host: "127.0.0.1", port: 0)
        let port = unused.localAddress!.port
        unused.close()
        let log = LogLines()
        var configuration = WSClientConfiguration()
        configuration.retry = WSRetryConfig(maxCount: 3, interval: .milliseconds(20), backOffFactor: 2)
        configuration.logger = Logger(label: "test") { _ in log }
        await #expect { try await WSClient("ws://127.0.0.1:\(port)/", configuration: configuration) } throws: {
            ($0 as? WSClientError)?.code == .connection
        }
        #expect(log.lines.withLock { $0 }.filter { $0.hasPrefix("reconnecting") } == [
            "reconnecting in 0.02 s (attempt 1)", "reconnecting in 0.04 s (attempt 2)", "reconnecting in 0.08 s (attempt 3)",
        ])
    }

    @Test("Redirects: 301/302/307/308 are followed, credentials only to the same host; loops, too many and 0 are errors")
    func redirects() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        for status in [301, 302, 303, 307, 308] {
            let r = try Redirector(status: status) { _ in server.url }
            defer { r.stop() }
            try await WSClient.withConnection(to: "ws://127.0.0.1:\(r.port)/start") { client in
                #expect(client.url == server.url)
                try await client.writeTextMessage("s\(status)")
                #expect(try await client.readTextMessage() == "s\(status)")
            }
        }
        // Credentials go to the first host only: 127.0.0.1 redirects to localhost.
        let elsewhere = try Redirector { _ in "ws://localhost:\(server.server.port)/" }
        defer { elsewhere.stop() }
        var configuration = WSClientConfiguration()
        configuration.auth = .basic(user: "ann", password: "pw")
        try await WSClient.withConnection(to: "ws://127.0.0.1:\(elsewhere.port)/", configuration: configuration) { _ in }
        #expect(server.requests.withLock { $0.last?.head.headerFields[.authorization] } == nil)

        let loop = try Redirector { path in path == "/a" ? "/b" : "/a" }
        defer { loop.stop() }
        await #expect { try await WSClient("ws://127.0.0.1:\(loop.port)/a") } throws: {
            let e = $0 as? WSClientError
            return e?.code == .invalidHandshake && e!.message.contains("redirect loop") && e!.message.contains("/a -> ")
        }
        let chain = try Redirector { path in "/\((Int(path.dropFirst()) ?? 0) + 1)" }
        defer { chain.stop() }
        configuration = WSClientConfiguration()
        configuration.maxRedirects = 3
        await #expect { try await WSClient("ws://127.0.0.1:\(chain.port)/0", configuration: configuration) } throws: {
            ($0 as? WSClientError)?.message.contains("more than 3 redirects") == true
        }
        configuration.maxRedirects = 0
        await #expect { try await WSClient("ws://127.0.0.1:\(chain.port)/0", configuration: configuration) } throws: {
            ($0 as? WSClientError)?.message.contains("maxRedirects is 0") == true
        }
    }

    @Test("Other refusals: the answer is in the error (401 is an auth error)")
    func refusals() async throws {
        let r = try Redirector(status: 401) { _ in nil }
        defer { r.stop() }
        await #expect { try await WSClient("ws://127.0.0.1:\(r.port)/") } throws: {
            let e = $0 as? WSClientError
            return e?.code == .auth && e?.response?.status.code == 401
        }
    }

    @Test("Proxy: CONNECT with Basic proxy credentials; the 407 without them is the error")
    func proxy() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        let proxy = try ConnectProxy(credentials: "ann:pw")
        defer { proxy.stop() }
        var configuration = WSClientConfiguration()
        configuration.proxy = .proxy(try WSProxy("http://ann:pw@127.0.0.1:\(proxy.port)"))
        try await WSClient.withConnection(to: server.url, configuration: configuration) { client in
            try await client.writeTextMessage("tunnelled")
            #expect(try await client.readTextMessage() == "tunnelled")
        }
        #expect(proxy.tunnels.load(ordering: .relaxed) == 1)
        configuration.proxy = .proxy(try WSProxy("127.0.0.1:\(proxy.port)"))
        await #expect { try await WSClient(server.url, configuration: configuration) } throws: {
            ($0 as? WSClientError)?.code == .connection && "\($0)".contains("407")
        }
    }

    @Test("A 100 KB message in one frame is read with the default limits")
    func largeSingleFrame() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        try await WSClient.withConnection(to: server.url) { client in
            let big = String(repeating: "x", count: 100_000)
            try await client.writeTextMessage(big)
            #expect(try await client.readTextMessage() == big)
        }
    }

    @Test("A client dropped without close closes its connection with 1001")
    func droppedClientCloses() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        do {
            let client = try await WSClient(server.url)
            try await client.writeTextMessage("x")
            _ = try await client.readTextMessage()
        }
        #expect(await eventually { server.closes.withLock { $0 } == [1001] })
    }

    @Test("Calls from tasks off the loop hop there and back; concurrent reader and writer")
    func offLoopTasks() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        let client = try await WSClient(server.url)
        async let reader: [String] = {
            var got: [String] = []
            for _ in 0..<200 { got.append(try await client.readTextMessage()) }
            return got
        }()
        for i in 0..<200 { try await client.writeTextMessage("\(i)") }
        #expect(try await reader == (0..<200).map { "\($0)" })
        try await client.close()
    }
}

@Suite("WSBlockingClient", .serialized, .timeLimit(.minutes(1)))
struct BlockingClientTests {
    @Test("The same operations, blocking")
    func operations() throws {
        let server = try ScriptedServer.start(subprotocols: ["v1"])
        defer { server.stop() }
        var configuration = WSClientConfiguration()
        configuration.subProtocols = ["v1"]
        let client = try WSBlockingClient(server.url, configuration: configuration)
        #expect(client.negotiatedSubProtocol == "v1")
        try client.writeTextMessage("a")
        #expect(try client.readTextMessage() == "a")
        try client.writeBinaryMessage([1, 2])
        #expect(try client.readBinaryMessage() == [1, 2])
        try client.writeMessage("json")
        #expect(try client.readMessage(as: Person.self) == Person(name: "ann", age: 7))
        try client.writeMessage("binary:x")
        #expect(throws: WSClientError.self) { try client.readTextMessage() }
        try client.close()
        #expect(!client.isOpen)
    }

    @Test("Blocking: read timeout, then usable; retry after 1013; redirect; proxy")
    func timeoutsRetryRedirectProxy() throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        var configuration = WSClientConfiguration()
        configuration.readTimeout = .milliseconds(100)
        configuration.retry = quickRetry()
        let client = try WSBlockingClient(server.url, configuration: configuration)
        #expect { try client.readMessage() } throws: { ($0 as? WSClientError)?.code == .readTimedOut }
        try client.writeTextMessage("close:1013")
        #expect { try client.readMessage() } throws: { _ in true }  // 1013 is retried: the read times out on the new connection
        try client.writeTextMessage("back")
        #expect(try client.readTextMessage() == "back")
        #expect(server.opened.load(ordering: .relaxed) == 2)
        try client.close()

        let r = try Redirector(status: 307) { _ in server.url }
        defer { r.stop() }
        let redirected = try WSBlockingClient("ws://127.0.0.1:\(r.port)/")
        #expect(redirected.url == server.url)
        try redirected.close()

        let proxy = try ConnectProxy()
        defer { proxy.stop() }
        var proxied = WSClientConfiguration()
        proxied.proxy = .proxy(WSProxy(host: "127.0.0.1", port: proxy.port))
        let tunnelled = try WSBlockingClient(server.url, configuration: proxied)
        try tunnelled.writeTextMessage("t")
        #expect(try tunnelled.readTextMessage() == "t")
        try tunnelled.close()
        #expect(proxy.tunnels.load(ordering: .relaxed) == 1)
    }
}

@Suite("Client settings")
struct ClientSettingsTests {
    @Test("Retry waits: interval × backOffFactor^n, capped at maxWaitInterval; 0 retries indefinitely")
    func retryDelays() {
        let r = WSRetryConfig(maxCount: 0, interval: .milliseconds(500), backOffFactor: 2, maxWaitInterval: .seconds(3))
        #expect((1...5).map { r.delay(beforeAttempt: $0) } == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(3), .seconds(3)])
        #expect(WSRetryConfig().delay(beforeAttempt: 9) == .seconds(1))
    }

    @Test("Proxy URLs: scheme optional, port 1080 by default, credentials percent-decoded; https and SOCKS refused")
    func proxyURLs() throws {
        let p = try WSProxy("http://us%40er:p%3Aw@proxy.local:3128/")
        #expect(p.host == "proxy.local" && p.port == 3128)
        #expect(p.credentials?.user == "us@er" && p.credentials?.password == "p:w")
        #expect(try WSProxy("10.0.0.1").port == 1080)
        #expect(try WSProxy("[::1]:8888").host == "::1")
        #expect(throws: WSUsageError.self) { try WSProxy("socks5://127.0.0.1:1080") }
        #expect(throws: WSUsageError.self) { try WSProxy("https://127.0.0.1:8443") }
    }

    @Test("Proxy environment: http_proxy for ws, https_proxy for wss, no_proxy as curl reads it")
    func proxyEnvironment() throws {
        let ws = try WSURL("ws://api.example.com:8080/"), wss = try WSURL("wss://api.example.com/")
        let env = ["http_proxy": "http://p:1", "HTTPS_PROXY": "http://q:2"]
        #expect(try WSProxy.fromEnvironment(for: ws, environment: env)?.host == "p")
        #expect(try WSProxy.fromEnvironment(for: wss, environment: env)?.host == "q")
        #expect(try WSProxy.fromEnvironment(for: ws, environment: [:]) == nil)
        #expect(try WSProxy.fromEnvironment(for: ws, environment: ["http_proxy": ""]) == nil)
        for (list, bypassed) in [("example.com", true), (".example.com", true), ("other.com,api.example.com", true),
                                 ("xample.com", false), ("*", true), ("api.example.com:8080", true), ("api.example.com:80", false)] {
            #expect(WSProxy.bypasses(list, host: "api.example.com", port: 8080) == bypassed, "\(list)")
        }
        #expect(WSProxy.bypasses("10.0.0.0/8", host: "10.1.2.3", port: 80))
        #expect(!WSProxy.bypasses("10.0.0.0/8", host: "11.1.2.3", port: 80))
        #expect(WSProxy.bypasses("::1", host: "::1", port: 80))
        #expect(WSProxy.bypasses("[::1]:80", host: "::1", port: 80))
        #expect(!WSProxy.bypasses("localhost", host: "127.0.0.1", port: 80))
        // Found by FuzzProxySettings: U+0600 (a prepending mark) before a comma made one
        // grapheme of both, and the list did not split there.
        #expect(WSProxy.bypasses("\u{0600},*", host: "example.com", port: 443))
        #expect(WSProxy.bypasses("\u{0600},example.com", host: "example.com", port: 443))
    }

    @Test("Configuration: the message limit applies to what the server sends, and the frame limit follows it")
    func engineSettings() async throws {
        var c = WSClientConfiguration()
        c.maxMessageSize = 4 << 20
        let server = try ScriptedServer.start { $0.connection.maxMessageSize = 8 << 20 }
        defer { server.stop() }
        try await WSClient.withConnection(to: server.url, configuration: c) { client in
            let big = [UInt8](repeating: 7, count: 3 << 20)
            try await client.writeBinaryMessage(big)
            #expect(try await client.readBinaryMessage() == big)
        }
        // Above the limit: 1009, reported as too large.
        c.maxMessageSize = 1 << 20
        try await WSClient.withConnection(to: server.url, configuration: c) { client in
            try await client.writeBinaryMessage([UInt8](repeating: 7, count: 2 << 20))
            await #expect { try await client.readBinaryMessage() } throws: { ($0 as? WSClientError)?.code == .payloadTooLarge }
        }
    }

    @Test("Bad settings are refused before connecting")
    func badSettings() async {
        await #expect { try await WSClient("http://example.com/") } throws: { ($0 as? WSClientError)?.code == .usage }
        var c = WSClientConfiguration()
        c.subProtocols = ["not a token"]
        await #expect { try await WSClient("ws://127.0.0.1:1/", configuration: c) } throws: { ($0 as? WSClientError)?.code == .usage }
    }
}

/// Polls `condition` every 5 ms for up to `seconds`, suspending between polls (the caller may
/// run on the client's loop, which must go on meanwhile).
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}
