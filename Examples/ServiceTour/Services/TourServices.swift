// The tour's services: one per row of the table in README ("Services"), each as short as the
// Ballerina service it mirrors.

import WSCore
public import WSService

/// `/echo`, `/chat`, `/small`: text back as text, binary as binary.
struct Echo: WSTextService, WSBinaryService {
    func onTextMessage(_ caller: WSCaller, text: String) async -> String { text }
    func onBinaryMessage(_ caller: WSCaller, data: [UInt8]) async -> [UInt8] { data }
}

/// `/orders`: every message binds to an `Order` (text JSON, or binary holding JSON).
struct Orders: WSMessageService {
    struct Order: Codable, Sendable {
        var id: Int
        var item: String
        var quantity: Int
    }
    struct Accepted: Encodable, Sendable {
        var id: Int
        var item: String
        var quantity: Int
        var status = "accepted"
    }

    func onMessage(_ caller: WSCaller, message order: Order) async -> Accepted {
        Accepted(id: order.id, item: order.item, quantity: order.quantity)
    }
}

/// `/events`: custom dispatch on the `event` field, request ids copied into replies.
struct Events: WSDispatchingService, WSMessageService {
    struct Heartbeat: Decodable, Sendable {}
    struct Topic: Decodable, Sendable { var topic: String }
    struct Reply: Encodable, Sendable {
        var event: String
        var status: String? = nil
        var topic: String? = nil
        var on: String? = nil
    }

    static let dispatchTable = WSDispatchTable<Events>()
        .on("onHeartbeat", Events.onHeartbeat)
        .on("onSubscribe", Events.onSubscribe, onError: Events.onSubscribeError)
        .on("onUnSubscribe", Events.onUnSubscribe)

    func onHeartbeat(_ caller: WSCaller, _ beat: Heartbeat) async -> Reply {
        Reply(event: "heartbeat", status: "alive")
    }

    func onSubscribe(_ caller: WSCaller, _ request: Topic) async -> Reply {
        Reply(event: "subscribed", topic: request.topic)
    }

    func onSubscribeError(_ caller: WSCaller, _ error: WSServiceError) async -> Reply {
        Reply(event: "error", on: "subscribe")
    }

    func onUnSubscribe(_ caller: WSCaller, _ request: Topic) async -> Reply {
        Reply(event: "unsubscribed", topic: request.topic)
    }

    /// Anything that names no handler (or has no `event`).
    func onMessage(_ caller: WSCaller, message: WSJSON) async -> Reply {
        Reply(event: "unhandled")
    }
}

/// `/ping`: answers Pings itself, counts Pongs.
struct PingPong: WSPingService, WSPongService, WSTextService {
    func onOpen(_ caller: WSCaller) async throws { caller.setAttribute("pongs", 0) }

    func onPing(_ caller: WSCaller, data: [UInt8]) async -> [UInt8] { Array("re:".utf8) + data }

    func onPong(_ caller: WSCaller, data: [UInt8]) async throws {
        caller.setAttribute("pongs", (caller.getAttribute("pongs", as: Int.self) ?? 0) + 1)
    }

    func onTextMessage(_ caller: WSCaller, text: String) async -> String? {
        text == "pongs" ? String(caller.getAttribute("pongs", as: Int.self) ?? 0) : nil
    }
}

/// `/auto`: no `onPing`, so Pings are answered automatically.
struct TextEcho: WSTextService {
    func onTextMessage(_ caller: WSCaller, text: String) async -> String { text }
}

/// `/idle`: closes connections that stay silent for the idle timeout.
struct Idle: WSTextService {
    func onIdleTimeout(_ caller: WSCaller) async throws {
        try await caller.close(statusCode: 1000, reason: "idle")
    }

    func onTextMessage(_ caller: WSCaller, text: String) async -> String { text }
}

/// `/guarded`: an asynchronous upgrade decision on the `token` query item.
struct Guarded: WSUpgradeService {
    func onUpgrade(_ request: WSUpgradeRequest) async throws -> Echo {
        try await Task.sleep(for: .milliseconds(50))   // as if asking an auth server
        switch request.queryItems.first(where: { $0.name == "token" })?.value {
        case "letmein": return Echo()
        case "forbidden": throw WSUpgradeError(status: .forbidden)
        default: throw WSUpgradeError(status: .unauthorized, headers: [.wwwAuthenticate: #"Bearer realm="tour""#])
        }
    }
}

/// `/attrs`: per-connection state in the caller's attributes.
struct Attributes: WSTextService {
    func onOpen(_ caller: WSCaller) async throws { caller.setAttribute("count", 0) }

    func onTextMessage(_ caller: WSCaller, text: String) async -> String {
        if text == "id" { return caller.connectionId }
        let count = (caller.getAttribute("count", as: Int.self) ?? 0) + 1
        caller.setAttribute("count", count)
        return "count=\(count)"
    }
}

/// `/slow`: every callback suspends; messages still come back in order.
struct Slow: WSTextService {
    func onTextMessage(_ caller: WSCaller, text: String) async throws -> String {
        try await Task.sleep(for: .milliseconds(10))
        return text
    }
}

/// `/ticker`: a task writes through the kept caller, then closes.
struct Ticker: WSService {
    func onOpen(_ caller: WSCaller) async throws {
        Task {
            for i in 1...5 {
                try await Task.sleep(for: .milliseconds(50))
                try await caller.writeTextMessage("tick \(i)")
            }
            try await caller.close(statusCode: 1000, reason: "done")
        }
    }
}

/// Attaches every tour service to `listener` (the table in README, "Services").
public func attachTour(to listener: WSListener) throws {
    try listener.attach(service: Echo(), at: "/echo")
    try listener.attach(service: Orders(), at: "/orders")
    try listener.attach(service: Events(), at: "/events", configuration: .init(dispatcherKey: "event", dispatcherStreamId: "id"))
    try listener.attach(service: PingPong(), at: "/ping")
    try listener.attach(service: TextEcho(), at: "/auto")
    try listener.attach(service: Idle(), at: "/idle", configuration: .init(idleTimeout: .seconds(1)))
    try listener.attach(Guarded(), at: "/guarded")
    try listener.attach(service: TextEcho(), at: "/chat", configuration: .init(subprotocols: ["v2.chat", "v1.chat"]))
    // Uncompressed, so that the frame limit counts the message's own bytes, whatever the client.
    try listener.attach(service: Echo(), at: "/small", configuration: .init(maxFrameSize: 1024, compression: false))
    try listener.attach(service: Attributes(), at: "/attrs")
    try listener.attach(service: Slow(), at: "/slow")
    try listener.attach(service: Ticker(), at: "/ticker")
}
