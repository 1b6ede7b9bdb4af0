// What the application gives the epoll server: a decision per upgrade request, and a handler
// per accepted connection, called on the connection's event loop.

public import WSCore
public import HTTPTypes

/// The application's answer to an upgrade request.
public enum WSUpgradeDecision {
    /// Accept the connection; `handler` receives its messages and events on the connection's
    /// event loop. `subprotocol` must be one the client offered.
    case accept(any WSEpollHandler, subprotocol: String? = nil, headers: HTTPFields = [:])
    /// Refuse with an HTTP answer (for example 403, 404, or 401 with `WWW-Authenticate`); the
    /// answer is written and the connection closed cleanly.
    case reject(status: HTTPResponse.Status, headers: HTTPFields = [:], body: [UInt8] = [])
}

/// Receives one accepted connection's messages and events.
///
/// Every method is called on the event loop that owns the connection, never concurrently for
/// one connection; a handler shared by several connections may be called from several loops
/// at once (one per loop). Calls must not block: the loop serves many connections.
public protocol WSEpollHandler: AnyObject {
    /// The connection is open (`result` holds the request, the answer, the subprotocol and
    /// extensions).
    func opened(_ connection: WSEpollConnection, _ result: WSHandshakeResult)

    /// A message (``WSProtocol/Delivery/wholeMessages``, `isFinal` always true) or a piece of one
    /// (``WSProtocol/Delivery/streaming``). `data` is valid only during the call; text is
    /// already validated UTF-8 (`String(decoding: data…, as: UTF8.self)` if a `String` is
    /// wanted). Sending from here is the fast path of an echo or a relay.
    func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool)

    /// Every other event: `.ping`, `.pong`, `.closeReceived`, `.idleTimeout`, `.failed` (the
    /// close frame with the right code is already queued), and last `.closed`.
    func event(_ connection: WSEpollConnection, _ event: WSProtocol.Event)
}

extension WSEpollHandler {
    public func opened(_ connection: WSEpollConnection, _ result: WSHandshakeResult) {}
    public func event(_ connection: WSEpollConnection, _ event: WSProtocol.Event) {}
}

// MARK: Hooks for the service layer (package API)

/// What a layer above the raw handler (the service layer) learns beyond ``WSEpollHandler``.
/// Called on the connection's loop.
package protocol WSEpollServiceHooks: WSEpollHandler, Sendable {
    /// The loop has handed out every event it had for this connection after a read (or a
    /// timer, or a decision): the end of a burst, where queued work may start.
    func drained(_ connection: WSEpollConnection)
    /// ``WSEpollConnection/isWritable`` turned true after
    /// ``WSEpollConnection/notifyWhenWritable()`` asked for it.
    func writable(_ connection: WSEpollConnection)
    /// Nothing was read or written for a sweep period (about a second): a moment to give back
    /// memory kept for a busy connection.
    func idle(_ connection: WSEpollConnection)
    /// Bytes this layer holds for the connection (its inbound queue), counted against the
    /// server's memory budget with the engine's buffers.
    var heldBytes: Int { get }
    /// The time set with ``WSEpollConnection/setApplicationDeadline(_:)`` has come.
    func deadlinePassed(_ connection: WSEpollConnection)
}

extension WSEpollServiceHooks {
    package func deadlinePassed(_ connection: WSEpollConnection) {}
}

/// An upgrade decision made after the request was reported (an `async` upgrade service).
package enum WSDeferredDecision: Sendable {
    /// Accept with `handler` and, when given, a configuration of the connection's own (which
    /// replaces the server's for this connection). `extensions`: nil negotiates the server's
    /// extensions, `[]` declines them all.
    case accept(any WSEpollServiceHooks, subprotocol: String?, extensions: [WSExtensionElement]?, headers: HTTPFields,
                configuration: WSProtocol.Configuration?)
    /// Refuse with an HTTP answer.
    case reject(status: HTTPResponse.Status, headers: HTTPFields, body: [UInt8])
}
