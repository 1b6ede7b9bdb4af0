// The async client (Ballerina's `websocket:Client`): connections run on an epoll client loop,
// and the methods are Ballerina's. A task that runs on the loop (the scoped form does that)
// reads and writes with plain calls and continuations, no thread hop; any other task hops to
// the loop and back for each call.

public import HTTPTypes
import Glibc
import Logging
import Synchronization
@_exported public import WSBinding
import WSBlocking
@_exported public import WSCore
import WSEpoll
import WSTransport

/// A WebSocket client connection (Ballerina's `websocket:Client`), async.
///
/// ```swift
/// try await WSClient.withConnection(to: "ws://127.0.0.1:9090/echo") { client in
///     try await client.writeTextMessage("hello")
///     print(try await client.readTextMessage())
/// }   // closed with 1000 on the way out, also after an error
/// ```
///
/// Kept as an object, it is `Sendable`: one task may read while others write. Close it with
/// ``close(statusCode:reason:timeout:)`` when done. The scoped form
/// ``withConnection(to:configuration:_:)`` also runs the body on the connection's loop, where
/// each call is a plain function call; any task can do the same with
/// `withTaskExecutorPreference(client.executor)`.
///
/// With ``WSClientConfiguration/retry``, a dropped connection is reconnected (see
/// ``WSRetryConfig``): the calls go on with the new connection.
public final class WSClient: Sendable {
    /// The URL the client was created with (redirects may have led elsewhere: see
    /// ``url``).
    public let requestedURL: String
    /// The settings.
    public let configuration: WSClientConfiguration
    /// A process-unique id for this client (it stays the same across reconnections).
    public let connectionId: String

    private let dialer: Dialer
    private let state: Mutex<State>
    /// The only connection, when there is no retry policy (no lock to read it).
    private let fixed: Session?
    private let attributes = Mutex<[String: any Sendable]>([:])

    private struct State: Sendable {
        var session: Session
        var reconnecting: Task<Session, any Error>?
        var closedByUser = false
    }

    /// One connection: the loop's connection, its channel, its handshake.
    final class Session: Sendable {
        let connection: WSEpollConnection
        let channel: ClientChannel
        let handshake: WSHandshakeResult
        let url: WSURL
        init(connection: WSEpollConnection, channel: ClientChannel, handshake: WSHandshakeResult, url: WSURL) {
            self.connection = connection
            self.channel = channel
            self.handshake = handshake
            self.url = url
        }
    }

    /// Connects to a `ws://` or `wss://` URL (Ballerina's `new websocket:Client(url, config)`):
    /// through the proxy if any, following redirects, retrying a failed connect when
    /// ``WSClientConfiguration/retry`` says so.
    /// - Throws: ``WSClientError``: ``WSClientError/Code/connection`` (refused, unreachable,
    ///   the proxy), ``WSClientError/Code/ssl``, ``WSClientError/Code/handshakeTimedOut``,
    ///   ``WSClientError/Code/upgradeRejected`` or ``WSClientError/Code/auth`` with the answer,
    ///   ``WSClientError/Code/invalidHandshake``, ``WSClientError/Code/usage``.
    public init(_ url: String, configuration: WSClientConfiguration = WSClientConfiguration()) async throws(WSClientError) {
        requestedURL = url
        self.configuration = configuration
        dialer = try Dialer(url: url, configuration: configuration)
        connectionId = nextConnectionID()
        let first: Session
        do {
            first = try await Self.dial(dialer)
        } catch where error.isRetryable && configuration.retry != nil {
            first = try await Self.redial(dialer, after: error)
        }
        state = Mutex(State(session: first))
        fixed = configuration.retry == nil ? first : nil
    }

    /// A client dropped without ``close(statusCode:reason:timeout:)`` closes its connection
    /// with 1001 (Going Away) rather than keep it open on the loop.
    deinit {
        let s = fixed ?? state.withLock { $0.session }
        if s.channel.phase.load(ordering: .acquiring) < 2 { try? s.connection.close(code: .goingAway) }
    }

    /// Connects, runs `body` on the connection's loop, and closes with 1000 (waiting up to 10 s
    /// for the server's Close) when it returns or throws.
    public static func withConnection<R: Sendable>(
        to url: String, configuration: WSClientConfiguration = WSClientConfiguration(),
        _ body: (WSClient) async throws -> R
    ) async throws -> R {
        let client = try await WSClient(url, configuration: configuration)
        let result: Result<R, any Error>
        do {
            result = .success(try await withTaskExecutorPreference(client.executor) { try await body(client) })
        } catch {
            result = .failure(error)
        }
        if client.isOpen { try? await client.close(timeout: .seconds(10)) }
        return try result.get()
    }

    /// The loop the connections run on, for `withTaskExecutorPreference`: a task that prefers
    /// it makes each call without a thread hop.
    public var executor: any TaskExecutor { session.connection.executor }

    private var session: Session { fixed ?? state.withLock { $0.session } }

    // MARK: Writing

    /// Sends a text message (Ballerina's `writeTextMessage`). Waits while the outbound buffer is
    /// full (at most ``WSClientConfiguration/writeTimeout``).
    /// - Throws: ``WSClientError/Code/connectionClosure`` once closed (``WSClientError/closeInfo``
    ///   says how), ``WSClientError/Code/writeTimedOut``.
    public func writeTextMessage(_ text: String) async throws(WSClientError) {
        try await write(.text(text))
    }

    /// Sends a binary message (Ballerina's `writeBinaryMessage`); as ``writeTextMessage(_:)``.
    public func writeBinaryMessage(_ data: [UInt8]) async throws(WSClientError) {
        try await write(.binary(data))
    }

    /// Sends a value (Ballerina's `writeMessage`): a `String` as text, `[UInt8]` as binary, any
    /// other `Encodable` as JSON text (keys sorted).
    /// - Throws: as ``writeTextMessage(_:)``; ``WSClientError/Code/usage`` if it does not encode.
    public func writeMessage(_ value: some Encodable & Sendable) async throws(WSClientError) {
        try await write(try encode(value))
    }

    private func write(_ message: WSMessage) async throws(WSClientError) {
        try await withSession { (s) async throws(WSClientError) in
            let c = s.connection
            if c.isOnLoop {
                if s.channel.canWrite(c) { return try s.channel.send(c, message).get() }
                return try await _unsafeInheritExecutor_withUnsafeContinuation { s.channel.write(c, message, $0) }.get()
            }
            return try await withUnsafeContinuation { done in c.execute { s.channel.write(c, message, done) } }.get()
        }
    }

    // MARK: Reading

    /// The next message, text or binary. Waits at most ``WSClientConfiguration/readTimeout``.
    /// - Throws: ``WSClientError/Code/readTimedOut`` (the connection stays usable),
    ///   ``WSClientError/Code/connectionClosure`` once closed, ``WSClientError/Code/protocol`` or
    ///   ``WSClientError/Code/payloadTooLarge`` when the server broke the rules.
    public func readMessage() async throws(WSClientError) -> WSMessage {
        try await withSession { (s) async throws(WSClientError) in
            let c = s.connection
            if c.isOnLoop {
                if let m = s.channel.takeQueued(c) { return m }
                // On the loop already, and resumed there: `withUnsafeContinuation` (the
                // reference) would hop to the generic executor and back for its isolation
                // parameter, per wait.
                return try await _unsafeInheritExecutor_withUnsafeContinuation { s.channel.read(c, $0) }.get()
            }
            return try await withUnsafeContinuation { done in c.execute { s.channel.read(c, done) } }.get()
        }
    }

    /// The next message, which must be text (Ballerina's `readTextMessage`).
    /// - Throws: ``WSClientError/Code/payloadBinding`` for a binary message (it is consumed),
    ///   and as ``readMessage()``.
    public func readTextMessage() async throws(WSClientError) -> String {
        try text(of: try await readMessage())
    }

    /// The next message, which must be binary (Ballerina's `readBinaryMessage`).
    /// - Throws: ``WSClientError/Code/payloadBinding`` for a text message (it is consumed), and
    ///   as ``readMessage()``.
    public func readBinaryMessage() async throws(WSClientError) -> [UInt8] {
        try bytes(of: try await readMessage())
    }

    /// The next message bound to `T` (Ballerina's `readMessage(targetType)`): text binds raw to
    /// `String`, binary to `[UInt8]`; anything else is decoded as JSON, then validated if `T`
    /// adopts ``WSValidatable`` (and ``WSClientConfiguration/validation`` is on).
    /// - Throws: ``WSClientError/Code/payloadBinding`` saying what did not bind,
    ///   ``WSClientError/Code/payloadValidation``, and as ``readMessage()``.
    public func readMessage<T: Decodable>(as type: T.Type = T.self) async throws(WSClientError) -> T {
        try bind(try await readMessage(), to: type, validate: configuration.validation)
    }

    /// The messages as they come, until the connection closes (Ballerina has none; Swift
    /// users expect one). The sequence ends after a Close from the server; other ends throw.
    public var messages: Messages { Messages(client: self) }

    /// The received messages as an `AsyncSequence`.
    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = WSMessage
        public typealias Failure = WSClientError
        let client: WSClient

        public func makeAsyncIterator() -> Iterator { Iterator(client: client) }

        /// Reads the next message.
        public struct Iterator: AsyncIteratorProtocol {
            let client: WSClient
            public mutating func next() async throws(WSClientError) -> WSMessage? {
                do {
                    return try await client.readMessage()
                } catch where error.code == .connectionClosure && error.closeInfo?.received != nil {
                    return nil
                }
            }

            public mutating func next(isolation actor: isolated (any Actor)?) async throws(WSClientError) -> WSMessage? {
                try await next()
            }
        }
    }

    // MARK: Control frames

    /// Sends a Ping (payload at most 125 bytes); its Pong goes to
    /// ``WSClientConfiguration/onPong``.
    public func ping(_ data: [UInt8] = []) async throws(WSClientError) {
        try await control { (engine) throws(WSUsageError) in try engine.ping(data) }
    }

    /// Sends a Pong (payload at most 125 bytes): unsolicited, a one-way heartbeat (RFC 6455
    /// §5.5.3).
    public func pong(_ data: [UInt8] = []) async throws(WSClientError) {
        try await control { (engine) throws(WSUsageError) in try engine.pong(data) }
    }

    private func control(_ body: @escaping @Sendable (inout WSProtocol) throws(WSUsageError) -> Void) async throws(WSClientError) {
        let s = session
        let c = s.connection
        if c.isOnLoop { return try s.channel.control(c, body).get() }
        try await withUnsafeContinuation { done in c.execute { done.resume(returning: s.channel.control(c, body)) } }.get()
    }

    // MARK: Closing

    /// Closes the connection (Ballerina's `close`): sends a Close with `statusCode` and
    /// `reason`, and waits up to `timeout` for the server's (60 s by default; a negative
    /// duration waits until it comes or the connection drops). No retry follows.
    /// - Throws: ``WSClientError/Code/connectionClosure`` when the server's Close did not come
    ///   in time (the connection is dropped then), ``WSClientError/Code/usage`` for a code
    ///   that may not be sent.
    public func close(statusCode: Int = 1000, reason: String = "", timeout: Duration = .seconds(60)) async throws(WSClientError) {
        guard let code = UInt16(exactly: statusCode).map(WSCloseCode.init(rawValue:)) else {
            throw WSClientError(.usage, "\(statusCode) is not a close code")
        }
        let s = state.withLock { state in
            state.closedByUser = true
            return state.session
        }
        let c = s.connection
        let info: WSProtocol.CloseInfo
        if c.isOnLoop {
            info = await withUnsafeContinuation { s.channel.close(c, code: code, reason: reason, timeout: timeout, $0) }
        } else {
            info = await withUnsafeContinuation { done in
                c.execute { s.channel.close(c, code: code, reason: reason, timeout: timeout, done) }
            }
        }
        if info.cause == .closeTimeout && info.received == nil {
            throw WSClientError(.connectionClosure, "the server's Close did not come within \(timeout)", closeInfo: info)
        }
    }

    // MARK: The connection

    /// Whether messages can be sent and received (Ballerina's `isOpen`).
    public var isOpen: Bool { session.channel.phase.load(ordering: .acquiring) == 1 }
    /// Whether the connection uses TLS (`wss://`) (Ballerina's `isSecure`).
    public var isSecure: Bool { session.url.isSecure }
    /// The subprotocol the server chose, if any (Ballerina's `getNegotiatedSubProtocol`).
    public var negotiatedSubProtocol: String? { session.handshake.subprotocol }
    /// The server's answer to the upgrade (Ballerina's `getHttpResponse`).
    public var httpResponse: HTTPResponse { session.handshake.response }
    /// The current connection's URL (after redirects).
    public var url: String { session.url.description }
    /// How the connection ended, once it has.
    public var closeInfo: WSProtocol.CloseInfo? {
        let s = session
        if s.connection.isOnLoop { return s.channel.closeInfo }
        return s.channel.phase.load(ordering: .acquiring) == 3 ? s.channel.closeInfo : nil
    }

    /// Sets an attribute of the connection (Ballerina's `setAttribute`).
    public func setAttribute(_ key: String, _ value: any Sendable) { attributes.withLock { $0[key] = value } }
    /// An attribute, if set (Ballerina's `getAttribute`).
    public func getAttribute(_ key: String) -> (any Sendable)? { attributes.withLock { $0[key] } }
    /// Removes an attribute (Ballerina's `removeAttribute`).
    public func removeAttribute(_ key: String) { _ = attributes.withLock { $0.removeValue(forKey: key) } }

    // MARK: Connecting and reconnecting

    /// Runs `operation` on the current connection; after a failure that a retry may cure (and
    /// a retry policy), on the next one.
    private func withSession<R>(_ operation: (Session) async throws(WSClientError) -> R) async throws(WSClientError) -> R {
        var s = session
        while true {
            do {
                return try await operation(s)
            } catch {
                guard configuration.retry != nil, error.isRetryable, !state.withLock({ $0.closedByUser }) else { throw error }
                s = try await reconnect(replacing: s, after: error)
            }
        }
    }

    /// The connection that replaces `old`: one reconnection at a time, which every caller
    /// that found `old` broken waits for.
    private func reconnect(replacing old: Session, after error: WSClientError) async throws(WSClientError) -> Session {
        let dialer = self.dialer
        enum Next { case ready(Session), waiting(Task<Session, any Error>) }
        let next: Next = state.withLock { state in
            if state.session !== old { return .ready(state.session) }
            if let running = state.reconnecting { return .waiting(running) }
            let running = Task<Session, any Error> { try await Self.redial(dialer, after: error) }
            state.reconnecting = running
            return .waiting(running)
        }
        let task: Task<Session, any Error>
        switch next {
        case .ready(let s): return s
        case .waiting(let t): task = t
        }
        let result = await task.result
        return try state.withLock { (state) throws(WSClientError) -> Session in
            if state.reconnecting == task { state.reconnecting = nil }
            switch result {
            case .success(let s):
                if state.session === old { state.session = s }
                // Closed by the application while reconnecting: the new connection goes too.
                if state.closedByUser { try? s.connection.close(code: .normalClosure) }
                return state.session
            case .failure(let e):
                throw e as? WSClientError ?? WSClientError(.connection, "\(e)")
            }
        }
    }

    /// Dials again after `error`, waiting before each attempt as the retry policy says.
    private static func redial(_ dialer: Dialer, after error: WSClientError) async throws(WSClientError) -> Session {
        var schedule = RetrySchedule(dialer.configuration, after: error)
        var failure: WSClientError?
        while let delay = schedule.next(after: failure) {
            try? await Task.sleep(for: delay)
            do { return try await dial(dialer) } catch where error.isRetryable { failure = error }
        }
        throw schedule.last
    }

    /// One connection: the TCP connect (through the proxy) on a thread of its own, the
    /// handshake on the loop; redirects followed.
    private static func dial(_ dialer: Dialer) async throws(WSClientError) -> Session {
        let loops: WSEpollClient
        do { loops = try sharedLoops.get() } catch { throw WSClientError(.usage, "the client loop did not start: \(error)") }
        var url = dialer.url
        var chain = [url]
        while true {
            let handshake = try dialer.handshake(for: url)
            let proxy = try dialer.proxy(for: url)
            let channel = ClientChannel(configuration: dialer.configuration)
            let configuration = dialer.configuration
            let connected: Result<WSEpollConnection, WSClientError> = await onThread {
                do {
                    return .success(try loops.connect(handshake, proxy: proxy, hooks: channel, configuration: configuration.connection,
                                                      tls: configuration.tls))
                } catch let e as WSTransportError {
                    return .failure(.from(e))
                } catch let e as WSUsageError {
                    return .failure(.from(e))
                } catch {
                    return .failure(WSClientError(.connection, "\(error)"))
                }
            }
            let connection = try connected.get()
            switch await channel.opened() {
            case .opened(let result):
                dialer.configuration.logger.connected(url, result)
                return Session(connection: connection, channel: channel, handshake: result, url: url)
            case .rejected(let rejection):
                url = try dialer.redirect(rejection, from: url, chain: &chain)
            case .failed(let error):
                throw error
            }
        }
    }
}

/// The loop every ``WSClient`` runs on: one thread, started at first use.
private let sharedLoops = Result { () throws -> WSEpollClient in
    var configuration = WSEpollClient.Configuration()
    configuration.compression = nil
    let client = WSEpollClient(configuration: configuration)
    try client.start()
    return client
}

/// Runs blocking work (resolving, connecting, a proxy's CONNECT) on a thread of its own, not
/// on the cooperative pool.
private func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        do {
            let thread = try WSThread { continuation.resume(returning: work()) }
            thread.detach()
        } catch {
            continuation.resume(returning: work())
        }
    }
}

private let connectionIDs = Atomic<UInt64>(0)

/// A process-unique id: `"c<pid hex>-<n hex>"`.
func nextConnectionID() -> String {
    "c\(String(UInt64(getpid()), radix: 16))-\(String(connectionIDs.add(1, ordering: .relaxed).newValue, radix: 16))"
}

// MARK: Binding (shared with the blocking client)

func text(of message: WSMessage) throws(WSClientError) -> String {
    switch message {
    case .text(let s): return s
    case .binary(let b): throw WSClientError(.payloadBinding, "expected a text message, received a binary one (\(b.count) bytes)")
    }
}

func bytes(of message: WSMessage) throws(WSClientError) -> [UInt8] {
    switch message {
    case .binary(let b): return b
    case .text(let s): throw WSClientError(.payloadBinding, "expected a binary message, received a text one (\(s.utf8.count) bytes)")
    }
}

func bind<T: Decodable>(_ message: WSMessage, to type: T.Type, validate: Bool) throws(WSClientError) -> T {
    let payload: WSPayload
    switch message {
    case .text(let s): payload = .text(s)
    case .binary(let b): payload = .binary(b)
    }
    do {
        return try wsBind(payload, to: type, validate: validate)
    } catch {
        throw WSClientError(error.isValidation ? .payloadValidation : .payloadBinding, error.message, underlying: error.underlying)
    }
}

func encode(_ value: some Encodable) throws(WSClientError) -> WSMessage {
    do {
        switch try WSPayload(encoding: value) {
        case .text(let s): return .text(s)
        case .binary(let b): return .binary(b)
        }
    } catch {
        throw WSClientError(.usage, "the \(type(of: value)) does not encode as JSON: \(error)")
    }
}
