// Outgoing connections on epoll loops: many client connections served by a few threads, with
// the same handler interface, timers, backpressure and stop as the server.

public import WSCore
public import WSDeflate
public import WSTransport

/// Client connections driven by epoll event loops.
///
/// ```swift
/// let client = WSEpollClient(configuration: .init())
/// try client.start()
/// let connection = try client.connect(to: "ws://127.0.0.1:9001/feed", handler: myHandler)
/// try connection.send(text: "subscribe")      // queued until the handshake completes
/// // … handler.received(…) runs on the loop for each message
/// client.gracefulStop()
/// ```
///
/// `connect` returns once the TCP connection is up; the opening handshake then runs on the loop:
/// the handler's ``WSEpollHandler/opened(_:_:)`` reports success, its
/// ``WSEpollHandler/event(_:_:)`` a `.rejected` answer or `.handshakeFailed`, then `.closed`.
/// Compression (permessage-deflate) is offered by default.
public final class WSEpollClient: Sendable {
    /// Client settings.
    public struct Configuration: Sendable {
        /// Event loops (threads). Default 1.
        public var loops: Int = 1
        /// Each connection's engine: limits, keepalive (Ping every 20 s), timeouts, water marks.
        public var connection: WSProtocol.Configuration = .default
        /// permessage-deflate, offered to servers; nil turns compression off. Default: on.
        public var compression: WSPerMessageDeflate? = WSPerMessageDeflate()
        /// Open connections beyond which ``WSEpollClient/connect(to:subprotocols:handler:prepare:)``
        /// throws. Default 100,000.
        public var maxConnections: Int = 100_000
        /// Each loop's read buffer. Default 256 KiB.
        public var readBufferSize: Int = 256 << 10
        /// How long a closed connection waits for the peer's FIN before the socket is closed.
        public var lingerTimeout: Duration = .seconds(2)
        /// TLS for `wss://` URLs: trust roots, client certificate, verification. nil (the
        /// default) verifies servers against the system's trust store.
        public var tls: WSTLSContext?

        /// Creates the default configuration.
        public init() {}
    }

    /// The settings the client was created with.
    public let configuration: Configuration
    private let context: LoopContext
    private let group = LoopGroup()

    /// Creates a client; ``start()`` starts its loops.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        context = LoopContext(connection: configuration.connection, readBufferSize: configuration.readBufferSize,
                              lingerTimeout: configuration.lingerTimeout, maxConnections: configuration.maxConnections,
                              server: nil)
    }

    /// Starts the event loops.
    /// - Throws: ``WSTransportError``, ``WSUsageError`` for an invalid configuration.
    public func start() throws {
        _ = try WSProtocol(role: .client, configuration: configuration.connection, now: .zero)
        var loops: [EventLoop] = []
        for i in 0..<max(1, configuration.loops) { loops.append(try EventLoop(index: i, context: context, listener: nil)) }
        try group.start(loops)
    }

    /// Opens a connection to a `ws://` or `wss://` URL: resolves the host and connects TCP on the calling
    /// thread (within the handshake's timeout, 300 s by default), then hands the connection to a
    /// loop, which runs the opening handshake and calls `handler` from then on. Commands sent
    /// before the handshake completes are queued and go out after it.
    ///
    /// - Parameters:
    ///   - url: `ws://host[:port]/path?query`, or `wss://…` (TLS, see ``Configuration/tls``;
    ///     the TLS handshake runs on the loop, within the opening handshake's timeout).
    ///   - subprotocols: offered in order of preference.
    ///   - proxy: an HTTP proxy to reach the server through (`CONNECT`, on the calling thread);
    ///     nil connects directly.
    ///   - handler: receives the connection's messages and events on its loop.
    ///   - prepare: last changes to the handshake (headers, cookies, authorization, timeout).
    /// - Throws: ``WSUsageError`` (bad URL, not started, too many connections),
    ///   ``WSTransportError`` (resolution, refused, timeout, the proxy's refusal).
    public func connect(
        to url: String,
        subprotocols: [String] = [],
        proxy: WSProxy? = nil,
        handler: any WSEpollHandler & Sendable,
        prepare: (inout WSClientHandshake) -> Void = { _ in }
    ) throws -> WSEpollConnection {
        var handshake = WSClientHandshake(url: try WSURL(url))
        handshake.subprotocols = subprotocols
        if let deflate = configuration.compression { handshake.extensions = [deflate] }
        prepare(&handshake)
        return try connect(handshake, proxy: proxy, handler: handler, hooks: nil)
    }

    /// Opens a connection for a layer above the raw handler (the async client): `hooks` gets
    /// its events and the extra notifications. The handshake is used as given (its
    /// extensions included); `configuration` and `tls`, when given, replace the client's for
    /// this connection.
    package func connect(_ handshake: WSClientHandshake, proxy: WSProxy?, hooks: any WSEpollServiceHooks,
                         configuration: WSProtocol.Configuration?, tls: WSTLSContext?) throws -> WSEpollConnection {
        try connect(handshake, proxy: proxy, handler: hooks, hooks: hooks, engineConfiguration: configuration, tls: tls)
    }

    private func connect(_ handshake: WSClientHandshake, proxy: WSProxy?, handler: any WSEpollHandler & Sendable,
                         hooks: (any WSEpollServiceHooks)? = nil, engineConfiguration: WSProtocol.Configuration? = nil,
                         tls: WSTLSContext? = nil) throws -> WSEpollConnection {
        guard let loop = group.pick() else { throw WSUsageError.invalidConfiguration("the client is not started") }
        guard context.reserveConnection() else { throw WSUsageError.invalidConfiguration("more than maxConnections connections") }
        let socket: WSSocket
        let engine: WSProtocol
        let session: WSTLSSession?
        do {
            let tls = handshake.url.isSecure ? try tls ?? configuration.tls ?? WSTLSContext.systemClient() : nil
            socket = try WSSocket.connect(host: handshake.url.host, port: handshake.url.port, timeout: handshake.timeout,
                                          via: proxy, nonBlocking: true)
            do {
                session = try tls?.makeSession(serverName: handshake.url.host)
                engine = try WSProtocol(client: handshake, configuration: engineConfiguration.map(LoopContext.sliced) ?? context.connection,
                                        now: WSClock.now())
            } catch {
                socket.close()
                throw error
            }
        } catch {
            context.releaseConnection()
            throw error
        }
        let connection = WSEpollConnection(id: context.nextID(), loop: loop, stream: WSStream(socket: socket, tls: session),
                                           peer: socket.peerAddress, engine: engine, handler: handler)
        connection.serviceHooks = hooks
        loop.execute { loop.adopt(connection) }
        return connection
    }

    /// Open connections across all loops.
    public var connectionCount: Int { context.connections.load(ordering: .relaxed) }

    /// Sends every open connection a Close with 1001 (Going Away), waits up to `timeout` for the
    /// closing handshakes, then drops what is left and ends the loops. Call it from outside the
    /// loops.
    public func gracefulStop(timeout: Duration = .seconds(10)) { group.gracefulStop(timeout: timeout) }

    /// Drops every connection at once and ends the loops. Call it from outside the loops.
    public func immediateStop() { group.immediateStop() }
}
