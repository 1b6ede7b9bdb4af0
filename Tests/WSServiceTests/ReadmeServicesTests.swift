// README, "Services": the examples as they appear there, run.

import Foundation
import Testing
import WSCore
import WSService
import WSServiceTesting

private struct Echo: WSTextService, WSBinaryService {
    func onTextMessage(_ caller: WSCaller, text: String) async -> String { text }
    func onBinaryMessage(_ caller: WSCaller, data: [UInt8]) async -> [UInt8] { data }
}

private struct Orders: WSMessageService {
    struct Order: Codable, Sendable { var id: Int; var item: String; var quantity: Int }
    struct Accepted: Encodable, Sendable { var id: Int; var status = "accepted" }

    func onMessage(_ caller: WSCaller, message order: Order) async -> Accepted {
        Accepted(id: order.id)           // sent back as JSON text
    }
}

private struct Events: WSDispatchingService {
    struct Topic: Decodable, Sendable { var topic: String }
    struct Reply: Encodable, Sendable { var event: String; var topic: String? = nil }

    static let dispatchTable = WSDispatchTable<Events>()
        .on("onSubscribe", Events.onSubscribe, onError: Events.onSubscribeError)
        .on("onUnSubscribe", Events.onUnSubscribe)

    func onSubscribe(_ caller: WSCaller, _ request: Topic) async -> Reply { Reply(event: "subscribed", topic: request.topic) }
    func onSubscribeError(_ caller: WSCaller, _ error: WSServiceError) async -> Reply { Reply(event: "error") }
    func onUnSubscribe(_ caller: WSCaller, _ request: Topic) async -> Reply { Reply(event: "unsubscribed", topic: request.topic) }
}

private struct Guarded: WSUpgradeService {
    func onUpgrade(_ request: WSUpgradeRequest) async throws -> Echo {
        guard request.queryItems.contains(where: { $0 == (name: "token", value: "letmein") }) else {
            throw WSUpgradeError(status: .unauthorized, headers: [.wwwAuthenticate: #"Bearer realm="tour""#])
        }
        return Echo()
    }
}

private struct Ticker: WSService {
    func onOpen(_ caller: WSCaller) async throws {
        caller.setAttribute("opened", ContinuousClock.now)
        Task {
            for i in 1...5 {
                try await Task.sleep(for: .milliseconds(50))
                try await caller.writeTextMessage("tick \(i)")
            }
            try await caller.close(statusCode: 1000, reason: "done")
        }
    }
}

@Suite("README examples: services")
struct ReadmeServicesTests {
    @Test("the listener serves the echo on a port")
    func listener() async throws {
        var configuration = WSListener.Configuration(port: 0)
        configuration.loops = 1
        let listener = WSListener(configuration: configuration)
        try listener.attach(service: Echo(), at: "/echo")
        try listener.start()
        let tester = try WSServiceTester()
        let client = try await tester.connect(url: "ws://127.0.0.1:\(listener.port)/echo")
        try await client.send(binary: [1, 2])
        #expect(try await client.receiveBinary() == [1, 2])
        try await client.close()
        await listener.gracefulStop()
        await tester.shutdown()
    }

    @Test("data binding and custom dispatch")
    func bindingAndDispatch() async throws {
        let tester = try WSServiceTester()
        let listener = tester.listener
        try listener.attach(service: Orders(), at: "/orders")
        try listener.attach(service: Events(), at: "/events", configuration: .init(dispatcherKey: "event", dispatcherStreamId: "id"))
        let orders = try await tester.connect("/orders")
        try await orders.send(text: #"{"id": 3, "item": "tea", "quantity": 1}"#)
        #expect(try await orders.receiveText() == #"{"id":3,"status":"accepted"}"#)
        let events = try await tester.connect("/events")
        try await events.send(text: #"{"event": "subscribe", "topic": "news", "id": 1}"#)
        #expect(try await events.receiveText() == #"{"event":"subscribed","topic":"news","id":1}"#)
        try await events.send(text: #"{"event": "subscribe", "topic": 5}"#)
        #expect(try await events.receiveText() == #"{"event":"error"}"#)
        try await events.send(text: #"{"event": "un subscribe", "topic": "news"}"#)
        let unsubscribed = try await events.receiveText()
        #expect(unsubscribed == #"{"event":"unsubscribed","topic":"news"}"#, "\(unsubscribed)")
        try await events.send(text: #"{"event": "other"}"#)   // no handler, no onMessage: ignored
        try await events.ping([7])
        #expect(try await events.next() == .pong([7]))
        try await orders.close()
        try await events.close()
        await tester.shutdown()
    }

    @Test("an upgrade service and a kept Caller")
    func upgradeAndCaller() async throws {
        let tester = try WSServiceTester()
        try tester.listener.attach(Guarded(), at: "/guarded")
        try tester.listener.attach(service: Ticker(), at: "/ticker", configuration: .init(idleTimeout: .seconds(30)))
        await #expect { _ = try await tester.connect("/guarded") } throws: { error in
            guard case WSTestError.rejected(let r) = error else { return false }
            return r.response.status == .unauthorized
        }
        let guarded = try await tester.connect("/guarded?token=letmein")
        try await guarded.close()
        let ticker = try await tester.connect("/ticker")
        for i in 1...5 { #expect(try await ticker.receiveText() == "tick \(i)") }
        #expect(try await ticker.closeInfo().reason == "done")
        await tester.shutdown()
    }

    @Test("testing services: the harness example")
    func echoes() async throws {
        let tester = try WSServiceTester()
        try tester.listener.attach(service: Echo(), at: "/echo")
        let client = try await tester.connect("/echo")
        try await client.send(text: "hi")
        #expect(try await client.receiveText() == "hi")
        try await client.close()
        await tester.shutdown()
    }
}
