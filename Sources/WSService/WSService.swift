// The service shape of Ballerina's `websocket` module in Swift: an upgrade service decides each
// upgrade request and hands back a service; a service receives a connection's callbacks.
//
// A service is a type that adopts `WSService` (the lifecycle callbacks, all optional) and the
// capability protocols for what it handles: `WSTextService`, `WSBinaryService`,
// `WSMessageService` (data-bound), `WSPingService`, `WSPongService`, `WSDispatchingService`.
// Adopting a capability is what "the service implements onX" means: without `WSPingService`
// the Pong is automatic; `WSMessageService` excludes the text and binary capabilities. The
// listener learns a service type's capabilities once, when it is attached.

@_exported public import WSBinding
public import WSCore

/// A WebSocket service (Ballerina's `websocket:Service`): the callbacks of one connection.
///
/// Every callback is optional (the defaults do nothing) and `async`. For one connection they run
/// one at a time, in the order their causes arrived, on the connection's event loop; a callback
/// that never suspends costs about as much as a function call. Messages that arrive while a
/// callback is suspended wait in the connection's inbound queue (reading pauses when it is
/// full), so a slow callback slows its own peer, nobody else's.
///
/// One service value may serve many connections at once (from several loops), hence
/// `Sendable`; keep per-connection state in the ``WSCaller``'s attributes or in a service value
/// made per connection by a ``WSUpgradeService``.
///
/// ```swift
/// struct Echo: WSTextService, WSBinaryService {
///     func onTextMessage(_ caller: WSCaller, text: String) async -> String { text }
///     func onBinaryMessage(_ caller: WSCaller, data: [UInt8]) async -> [UInt8] { data }
/// }
/// ```
public protocol WSService: Sendable {
    /// The connection is open (Ballerina's `onOpen`); first of a connection's callbacks.
    func onOpen(_ caller: WSCaller) async throws
    /// No data frame went either way for the service's ``WSServiceConfiguration/idleTimeout``
    /// (Ballerina's `onIdleTimeout`). The connection stays open unless this closes it; the
    /// timer re-arms.
    func onIdleTimeout(_ caller: WSCaller) async throws
    /// The connection ended (Ballerina's `onClose`): the close code and reason the peer sent
    /// (1005 if its Close had no code; 1006 if the connection ended without one). The last
    /// callback of a connection.
    func onClose(_ caller: WSCaller, statusCode: Int, reason: String) async
    /// Something went wrong (Ballerina's `onError`): the peer broke the protocol, a message did
    /// not bind, a callback threw. A Close with the right code has already been queued when
    /// this runs; ``onClose(_:statusCode:reason:)`` follows.
    func onError(_ caller: WSCaller, error: WSServiceError) async
}

extension WSService {
    public func onOpen(_ caller: WSCaller) async throws {}
    public func onIdleTimeout(_ caller: WSCaller) async throws {}
    public func onClose(_ caller: WSCaller, statusCode: Int, reason: String) async {}
    public func onError(_ caller: WSCaller, error: WSServiceError) async {}
}

/// A service that handles text messages (Ballerina's `onTextMessage`).
///
/// The return value is sent back: a `String` as text, `[UInt8]` as binary, any other
/// `Encodable` as JSON text, `Void` (or nil) as nothing.
public protocol WSTextService: WSService {
    /// What ``onTextMessage(_:text:)`` returns (inferred from the method).
    associatedtype TextReply: Sendable = Void
    /// A whole text message (validated UTF-8).
    func onTextMessage(_ caller: WSCaller, text: String) async throws -> TextReply
}

/// A service that handles binary messages (Ballerina's `onBinaryMessage`). Replies as
/// ``WSTextService``.
public protocol WSBinaryService: WSService {
    /// What ``onBinaryMessage(_:data:)`` returns (inferred from the method).
    associatedtype BinaryReply: Sendable = Void
    /// A whole binary message.
    func onBinaryMessage(_ caller: WSCaller, data: [UInt8]) async throws -> BinaryReply
}

/// A service that receives every data message bound to one type (Ballerina's data-bound
/// `onMessage`). It may not also be a ``WSTextService`` or ``WSBinaryService``: `attach`
/// refuses such a service.
///
/// Binding follows Ballerina: a text message binds raw to `String`, otherwise it is decoded as
/// JSON; a binary message binds raw to `[UInt8]`, otherwise its bytes are decoded as JSON
/// (UTF-8). A message that does not bind closes the connection with 1003 (Unsupported Data),
/// and ``WSService/onError(_:error:)`` gets a ``WSServiceError/Code/payloadBinding`` error
/// that says why. With ``WSServiceConfiguration/validation`` on, a bound value that adopts
/// ``WSValidatable`` is validated too, and a failure is treated the same way.
public protocol WSMessageService: WSService {
    /// The type messages bind to.
    associatedtype Message: Decodable & Sendable
    /// What ``onMessage(_:message:)`` returns (inferred from the method).
    associatedtype MessageReply: Sendable = Void
    /// A data message, bound to ``Message``.
    func onMessage(_ caller: WSCaller, message: Message) async throws -> MessageReply
}

/// A service that sees Pings (Ballerina's `onPing`). With it, no Pong is sent automatically:
/// what the method returns goes out as the Pong's payload (`[UInt8]`, or a `String`'s UTF-8;
/// `Void` or nil sends none, and ``WSCaller/pong(_:)`` may send one later).
public protocol WSPingService: WSService {
    /// What ``onPing(_:data:)`` returns (inferred from the method).
    associatedtype PingReply: Sendable = Void
    /// A Ping and its payload (at most 125 bytes).
    func onPing(_ caller: WSCaller, data: [UInt8]) async throws -> PingReply
}

/// A service that sees Pongs (Ballerina's `onPong`): answers to its pings, keepalive answers
/// and unsolicited ones.
public protocol WSPongService: WSService {
    /// A Pong and its payload.
    func onPong(_ caller: WSCaller, data: [UInt8]) async throws
}

/// Ballerina's upgrade service (the `get` resource of a `websocket:UpgradeService`): sees each
/// upgrade request at its path and returns the service for the connection, or refuses it.
///
/// ```swift
/// struct Guarded: WSUpgradeService {
///     func onUpgrade(_ request: WSUpgradeRequest) async throws -> Echo {
///         guard try await tokens.isValid(request.queryItems.first { $0.name == "token" }?.value)
///         else { throw WSUpgradeError(status: .unauthorized) }
///         return Echo()
///     }
/// }
/// ```
///
/// The decision may take its time (a database, an auth server): it runs on the connection's
/// loop without blocking it, bounded by the listener's handshake timeout (the client is
/// answered 503 if it runs out).
public protocol WSUpgradeService: Sendable {
    /// The service type this upgrade service returns (its capabilities are learnt once).
    associatedtype Service: WSService
    /// Decides an upgrade request: return the connection's service, or throw
    /// ``WSUpgradeError`` to answer with its status, headers and body. Any other error is
    /// answered 500.
    func onUpgrade(_ request: WSUpgradeRequest) async throws -> Service
}
