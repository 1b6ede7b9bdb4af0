public import HTTPTypes
public import WSCore

/// The connection as a service sees it (Ballerina's `websocket:Caller`): write to it, ping,
/// close, keep attributes.
///
/// `Sendable`: keep it and use it from any task or thread (a timer task, another connection's
/// callback). Commands run on the connection's event loop, at once when called there (from a
/// callback), otherwise after a hop to it. Writes suspend while the connection's outbound
/// buffer is above its high-water mark (``WSProtocol/Configuration/outboundHighWaterMark``),
/// so a slow peer slows its producer down instead of growing memory.
public struct WSCaller: Sendable {
    let connection: ServiceConnectionBase

    init(_ connection: ServiceConnectionBase) { self.connection = connection }

    // MARK: Writing

    /// Sends a text message.
    /// - Throws: ``WSServiceError`` (``WSServiceError/Code/connectionClosure`` once the
    ///   connection is closing).
    public func writeTextMessage(_ text: String) async throws(WSServiceError) {
        try await connection.onLoopAsync { (c) throws(WSServiceError) in try await c.send(.text(text)) }
    }

    /// Sends a binary message.
    /// - Throws: as ``writeTextMessage(_:)``.
    public func writeBinaryMessage(_ data: [UInt8]) async throws(WSServiceError) {
        try await connection.onLoopAsync { (c) throws(WSServiceError) in try await c.send(.binary(data)) }
    }

    /// Sends a value the way a callback's return value is sent (Ballerina's `writeMessage`):
    /// a `String` as text, `[UInt8]` as binary, any other `Encodable` as JSON text.
    /// - Throws: as ``writeTextMessage(_:)``; ``WSServiceError/Code/write`` if the value does
    ///   not encode.
    public func writeMessage(_ message: some Encodable & Sendable) async throws(WSServiceError) {
        let outgoing: Outgoing
        switch message {
        case let s as String: outgoing = .text(s)
        case let b as [UInt8]: outgoing = .binary(b)
        default:
            do { outgoing = .text(try jsonText(message)) } catch {
                throw WSServiceError(.write, "the \(type(of: message)) does not encode as JSON: \(error)")
            }
        }
        try await connection.onLoopAsync { (c) throws(WSServiceError) in try await c.send(outgoing) }
    }

    /// Sends a Ping (payload at most 125 bytes).
    public func ping(_ data: [UInt8] = []) async throws(WSServiceError) {
        try await control { (engine) throws(WSUsageError) in try engine.ping(data) }
    }

    /// Sends a Pong (payload at most 125 bytes): an answer from a service with `onPing`, or
    /// an unsolicited one (a one-way heartbeat, RFC 6455 §5.5.3).
    public func pong(_ data: [UInt8] = []) async throws(WSServiceError) {
        try await control { (engine) throws(WSUsageError) in try engine.pong(data) }
    }

    private func control(_ body: @escaping @Sendable (inout WSProtocol) throws(WSUsageError) -> Void) async throws(WSServiceError) {
        try await connection.onLoopAsync { (c) throws(WSServiceError) in
            do throws(WSUsageError) { try c.onLoop(body) } catch { throw ServiceConnectionBase.writeError(error) }
        }
    }

    /// Closes the connection (Ballerina's `close`): sends a Close with `statusCode` and
    /// `reason`, then waits for the peer's Close at most `timeout` (60 s by default, as
    /// Ballerina; a negative timeout waits without limit). Returns once the connection has
    /// closed; closing an already closing connection waits for that end.
    /// - Throws: ``WSServiceError/Code/connectionClosure`` if the peer's Close did not come in
    ///   time (the connection is closed anyway), ``WSServiceError/Code/write`` for a code that
    ///   may not be sent (1005, 1006, 1015, out of range) or a reason over 123 bytes.
    public func close(statusCode: Int = 1000, reason: String = "", timeout: Duration = .seconds(60)) async throws(WSServiceError) {
        guard let raw = UInt16(exactly: statusCode) else {
            throw WSServiceError(.write, "close code \(statusCode) is out of range")
        }
        try await connection.onLoopAsync { (c) throws(WSServiceError) in
            try await c.close(code: WSCloseCode(rawValue: raw), reason: reason, timeout: timeout)
        }
    }

    // MARK: Attributes

    /// Stores a value on the connection (Ballerina's `setAttribute`).
    public func setAttribute(_ key: String, _ value: any Sendable) {
        connection.attributes.withLock { $0[key] = value }
    }

    /// The value stored under `key`, if any (Ballerina's `getAttribute`).
    public func getAttribute(_ key: String) -> (any Sendable)? {
        connection.attributes.withLock { $0[key] }
    }

    /// The value stored under `key` if it is a `T`.
    public func getAttribute<T>(_ key: String, as _: T.Type = T.self) -> T? {
        connection.attributes.withLock { $0[key] as? T }
    }

    /// Removes and returns the value under `key` (Ballerina's `removeAttribute`).
    @discardableResult
    public func removeAttribute(_ key: String) -> (any Sendable)? {
        connection.attributes.withLock { $0.removeValue(forKey: key) }
    }

    // MARK: About the connection

    /// A string unique to this connection within the process.
    public var connectionId: String { connection.id }
    /// The subprotocol agreed in the handshake, if any.
    public var negotiatedSubProtocol: String? { connection.subprotocol }
    /// Whether the connection runs over TLS (`wss://`).
    public var isSecure: Bool { connection.route.isSecure }
    /// Whether messages can still be sent (open, and no Close sent or received).
    public var isOpen: Bool { connection.phase.load(ordering: .acquiring) == 1 }
    /// The upgrade request: path, query, headers, origin, cookies.
    public var request: WSUpgradeRequest { connection.request }
    /// Runner tasks started so far for the connection (read it in a callback; for tests).
    package var runnerStarts: Int { connection.runnerStarts }

    /// The HTTP head of the upgrade request.
    public var httpRequest: HTTPRequest { connection.request.head }
    /// The peer's address (`"127.0.0.1:50712"`).
    public var remoteAddress: String { connection.connection.remoteAddress }
}
