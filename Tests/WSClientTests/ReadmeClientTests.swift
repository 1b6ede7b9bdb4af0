// README, "Client: WSClient": the examples as they appear there, run against a loopback echo
// server (its URL instead of the README's).

import Testing
import WSClient

private struct Quote: Decodable, WSValidatable {
    var symbol: String
    var price: Double
    func validate() throws { if price < 0 { throw BadPrice() } }
    struct BadPrice: Error {}
}

@Suite("README: Client", .serialized, .timeLimit(.minutes(1)))
struct ReadmeClientTests {
    @Test("Scoped and kept clients")
    func scopedAndKept() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        // (The README prints what it reads; here it is returned.)
        let printed = try await WSClient.withConnection(to: server.url) { client in
            try await client.writeTextMessage("hello")
            return try await client.readTextMessage()
        }
        #expect(printed == "hello")

        let client = try await WSClient(server.url)
        try await client.writeBinaryMessage([1, 2, 3])
        let bytes = try await client.readBinaryMessage()
        try await client.close(statusCode: 1000, reason: "done", timeout: .seconds(60))
        #expect(bytes == [1, 2, 3])
        #expect(client.closeInfo?.wasClean == true)
    }

    @Test("Data binding, and the error that says what did not bind")
    func binding() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        let client = try await WSClient(server.url)
        try await client.writeTextMessage(#"{"symbol":"ACME","price":12.5}"#)
        let quote = try await client.readMessage(as: Quote.self)
        #expect(quote.symbol == "ACME" && quote.price == 12.5)
        try await client.writeTextMessage(#"{"symbol":"ACME"}"#)
        await #expect { try await client.readMessage(as: Quote.self) } throws: {
            let error = $0 as? WSClientError
            return error?.code == .payloadBinding && error?.message == #"the message does not bind to Quote: missing key "price""#
        }
        // The README's form.
        try await client.writeTextMessage(#"{"symbol":"ACME"}"#)
        do {
            let quote = try await client.readMessage(as: Quote.self)
            Issue.record("bound: \(quote)")
        } catch {
            #expect(error.code == .payloadBinding)
            #expect(error.message.contains("missing key"))
        }
        try await client.close()
    }

    @Test("Retry configuration and the messages sequence")
    func retryAndSequence() async throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        var configuration = WSClientConfiguration()
        configuration.retry = WSRetryConfig(maxCount: 5, interval: .seconds(1), backOffFactor: 2, maxWaitInterval: .seconds(30))
        configuration.readTimeout = .seconds(30)
        let feed = try await WSClient(server.url, configuration: configuration)
        try await feed.writeTextMessage("a")
        try await feed.writeTextMessage("close:1000")   // not retried: the sequence ends
        var seen: [WSMessage] = []
        for try await message in feed.messages { seen.append(message) }
        #expect(seen == [.text("a")])
    }

    @Test("The blocking twin")
    func blockingTwin() throws {
        let server = try ScriptedServer.start()
        defer { server.stop() }
        let ws = try WSBlockingClient(server.url, configuration: WSClientConfiguration())
        try ws.writeMessage(["symbol": "ACME"])
        let reply: [String: String] = try ws.readMessage(as: [String: String].self)
        try ws.close()
        #expect(reply == ["symbol": "ACME"])
    }
}
