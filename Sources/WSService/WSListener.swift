// The listener (Ballerina's `websocket:Listener`): upgrade services attached by path, served by
// the epoll server's loops.

public import Logging
public import ServiceLifecycle
public import WSCore
public import WSDeflate
package import WSEpoll
public import WSTransport
import Synchronization

/// A WebSocket listener: upgrade services attached at paths, each connection's callbacks run
/// on the event loop that owns it.
///
/// ```swift
/// let listener = WSListener(configuration: .init(port: 9090))
/// try listener.attach(service: Echo(), at: "/echo")
/// try listener.attach(Guarded(), at: "/guarded", configuration: .init(idleTimeout: .seconds(30)))
/// try listener.start()
/// print("listening on", listener.port)
/// ```
///
/// A request for a path with nothing attached is answered 404 (and a plain HTTP GET of an
/// attached path 426). `attach` and `detach` may be called at any time; connections already
/// open stay with their service. `WSListener` is a swift-service-lifecycle `Service`: in a
/// `ServiceGroup`, ``run()`` serves until the group shuts down, then stops gracefully.
public final class WSListener: Sendable {
    /// The listener's settings (Ballerina's `ListenerConfiguration`).
    public struct Configuration: Sendable {
        /// The address to listen on (a name or literal: `"::1"`, `"0.0.0.0"`); nil for every
        /// address. Default `127.0.0.1`: loopback until asked otherwise.
        public var host: String? = "127.0.0.1"
        /// The port; 0 picks a free one (read it from ``WSListener/port``). Default 9090.
        public var port: Int = 9090
        /// TLS for `wss://`: a server context (certificate chain and key; client certificates
        /// for mutual TLS). nil (the default): plain `ws://`.
        public var tls: WSTLSContext? = nil
        /// How long a client has for its upgrade request and the upgrade decision (an upgrade
        /// service's time included; the TLS handshake too). Default 120 s.
        public var handshakeTimeout: Duration = .seconds(120)
        /// How long a new connection has to deliver its complete upgrade request; then 408.
        /// Default 10 s; nil leaves only ``handshakeTimeout``. (Silent sockets would otherwise
        /// hold connection slots for the whole handshake timeout.)
        public var requestHeadTimeout: Duration? = .seconds(10)
        /// A `Server` header on every answer, or nil (the default) for none.
        public var serverName: String? = nil
        /// permessage-deflate, offered to clients that ask; nil turns compression off.
        /// Default: on, ``WSPerMessageDeflate/server`` (our compressor reset after each message,
        /// so idle connections hold no compression state).
        public var compression: WSPerMessageDeflate? = .server
        /// The longest request-target accepted; longer is answered 414. Default 4096.
        public var maxURILength: Int = 4096
        /// The largest request header section accepted; larger is answered 431. Default 8192.
        public var maxHeaderSize: Int = 8192
        /// Event loops (threads). Default: the CPUs this process may use.
        public var loops: Int = WSThread.processorCount
        /// Open connections beyond which new ones are answered 503. Default 10,000. When the
        /// limit is reached, the oldest connection still in its opening handshake is dropped
        /// to make room first (``WSEpollServer/Configuration/maxConnections``).
        public var maxConnections: Int = 10_000
        /// The most bytes all connections together may hold in buffers (messages being
        /// received or inflated, outbound queues, services' inbound queues); a connection that
        /// grows past it is closed with 1013. nil: no budget. Default: a quarter of the
        /// machine's memory (``WSEpollServer/Configuration/memoryBudget``).
        public var memoryBudget: Int? = WSEpollServer.defaultMemoryBudget
        /// Open connections from one remote IP address beyond which new ones from it are
        /// answered 503. nil (the default): no limit per address.
        public var maxConnectionsPerAddress: Int? = nil
        /// Each connection's engine settings (keepalive, close timeout, outbound water marks);
        /// every service's own limits and idle timeout replace the corresponding fields.
        public var connection: WSProtocol.Configuration = .default
        /// How long ``WSListener/gracefulStop()`` (and a lifecycle shutdown) lets closing
        /// handshakes run before dropping what is left. Default 10 s.
        public var gracefulStopTimeout: Duration = .seconds(10)
        /// Where the listener logs (upgrades refused, connections failed, callback errors, at
        /// debug level). Default: nowhere.
        public var logger: Logger = Logger(label: "swift-ws.listener", factory: { _ in SwiftLogNoOpLogHandler() })

        /// Creates a configuration.
        public init(host: String? = "127.0.0.1", port: Int = 9090) {
            self.host = host
            self.port = port
        }
    }

    /// The settings the listener was created with.
    public let configuration: Configuration
    private let routes = RouteTable()
    package let server: WSEpollServer
    private let stopped = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    private let started = Atomic<Bool>(false)

    /// Creates a listener; ``start()`` (or ``run()``) opens its port.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        var server = WSEpollServer.Configuration(host: configuration.host, port: configuration.port)
        server.tls = configuration.tls
        server.compression = configuration.compression
        server.loops = configuration.loops
        server.maxConnections = configuration.maxConnections
        server.maxConnectionsPerAddress = configuration.maxConnectionsPerAddress
        server.memoryBudget = configuration.memoryBudget
        server.connection = configuration.connection
        server.handshake.timeout = configuration.handshakeTimeout
        server.handshake.requestHeadTimeout = configuration.requestHeadTimeout
        server.handshake.serverName = configuration.serverName
        server.handshake.maxURILength = configuration.maxURILength
        server.handshake.maxHeaderSize = configuration.maxHeaderSize
        let routes = self.routes
        server.handshake.resourceExists = { path in routes.table.withLock { $0[path] != nil } }
        self.server = WSEpollServer(configuration: server) { request, connection in
            guard let route = routes.table.withLock({ $0[request.path] }) else {
                return connection.decide(.reject(status: .notFound, headers: [:], body: []))
            }
            Task.immediate(executorPreference: connection.executor) {
                connection.decide(await route.decide(request, connection))
            }
        }
    }

    /// Attaches an upgrade service at `path` (Ballerina's `attach`): every upgrade request for
    /// that path (query aside) goes to it. Replaces what was attached there before.
    /// - Throws: ``WSServiceConfigurationError`` for a service type that cannot work (a
    ///   data-bound `onMessage` beside `onTextMessage`/`onBinaryMessage`, a reply type that
    ///   cannot be sent, a bad dispatch table) or an invalid configuration.
    public func attach<U: WSUpgradeService>(_ upgradeService: U, at path: String, configuration: WSServiceConfiguration = .init()) throws(WSServiceConfigurationError) {
        let shape = try ServiceShape<U.Service>()
        let route = try Route(path: path, shape: shape, configuration: configuration, base: self.configuration.connection,
                              logger: self.configuration.logger, isSecure: self.configuration.tls != nil) { route, request, connection, subprotocol in
            ServiceConnection(connection: connection, service: try await upgradeService.onUpgrade(request), shape: shape,
                              route: route, request: request, subprotocol: subprotocol)
        }
        routes.table.withLock { $0[route.path] = route }
    }

    /// Attaches one service value at `path`: every connection there gets it (keep
    /// per-connection state in the caller's attributes).
    /// - Throws: as ``attach(_:at:configuration:)``.
    public func attach<S: WSService>(service: S, at path: String, configuration: WSServiceConfiguration = .init()) throws(WSServiceConfigurationError) {
        try attach(SameService(service: service), at: path, configuration: configuration)
    }

    /// Detaches what is attached at `path` (Ballerina's `detach`): new requests for it get 404;
    /// open connections stay.
    public func detach(_ path: String) {
        routes.table.withLock { _ = $0.removeValue(forKey: Route.normalize(path)) }
    }

    /// The paths with something attached.
    public var paths: [String] { routes.table.withLock { Array($0.keys).sorted() } }

    /// Opens the port and starts the loops (Ballerina's `start`). Returns once connections are
    /// accepted.
    /// - Throws: ``WSTransportError`` (address in use, no permission), ``WSUsageError`` for an
    ///   invalid configuration.
    public func start() throws {
        try server.start()
        started.store(true, ordering: .releasing)
    }

    /// Starts the loops without opening a port: connections come only through
    /// `WSServiceTester` (in-memory tests).
    package func startWithoutListening() throws {
        try server.startWithoutListening()
        started.store(true, ordering: .releasing)
    }

    /// The port listened on (the chosen one when configured with 0); 0 before ``start()``.
    public var port: Int { server.port }

    /// Open connections.
    public var connectionCount: Int { server.connectionCount }

    /// Stops gracefully (Ballerina's `gracefulStop`): no new connections; every open one gets a
    /// Close with 1001 (Going Away) and may finish its closing handshake within `timeout`
    /// (default ``Configuration/gracefulStopTimeout``); then the rest are dropped. Returns when
    /// the loops have ended.
    public func gracefulStop(timeout: Duration? = nil) async {
        let grace = timeout ?? configuration.gracefulStopTimeout
        await stop { $0.gracefulStop(timeout: grace) }
    }

    /// Stops at once (Ballerina's `immediateStop`): every connection is dropped without a
    /// closing handshake (their services see `onClose` with 1006).
    public func immediateStop() async {
        await stop { $0.immediateStop() }
    }

    /// Blocks the calling thread until the listener's loops have ended (after a stop), for
    /// programs without an async context.
    @available(*, noasync, message: "use waitUntilStopped()")
    public func wait() { server.wait() }

    /// Waits until the listener has stopped.
    public func waitUntilStopped() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = stopped.withLock { s -> Bool in
                if !s.done { s.waiters.append(c) }
                return s.done
            }
            if done { c.resume() }
        }
    }

    /// Stopping blocks until the loops end, so it runs on a thread of its own, never on a
    /// task's (nor a loop's) thread.
    private func stop(_ how: @escaping @Sendable (WSEpollServer) -> Void) async {
        guard started.load(ordering: .acquiring) else { return markStopped() }
        let server = self.server
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            do {
                try WSThread {
                    how(server)
                    c.resume()
                }.detach()
            } catch {
                how(server)
                c.resume()
            }
        }
        markStopped()
    }

    private func markStopped() {
        let waiters = stopped.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.done = true
            let w = s.waiters
            s.waiters.removeAll()
            return w
        }
        for w in waiters { w.resume() }
    }
}

extension WSListener: ServiceLifecycle.Service {
    /// Starts (unless started) and serves until the task is cancelled or, in a `ServiceGroup`,
    /// until graceful shutdown; then stops gracefully and returns.
    public func run() async throws {
        if !started.load(ordering: .acquiring) { try start() }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await waitUntilStopped()
            } onCancel: {
                Task { await self.gracefulStop() }
            }
        } onGracefulShutdown: {
            Task { await self.gracefulStop() }
        }
    }
}

/// The attached routes, shared with the handshake's path check.
private final class RouteTable: Sendable {
    let table = Mutex<[String: Route]>([:])
}

/// One service value for every connection.
private struct SameService<S: WSService>: WSUpgradeService {
    let service: S
    func onUpgrade(_ request: WSUpgradeRequest) async throws -> S { service }
}

/// What is attached at a path.
final class Route: Sendable {
    typealias Open = @Sendable (Route, WSUpgradeRequest, WSEpollConnection, _ subprotocol: String?) async throws -> ServiceConnectionBase

    let path: String
    let configuration: WSServiceConfiguration
    let engine: WSProtocol.Configuration
    let logger: Logger
    let isSecure: Bool
    let hasPing: Bool
    let hasPong: Bool
    /// Runs the upgrade service and makes the connection's handler.
    let open: Open

    init<S: WSService>(path: String, shape: ServiceShape<S>, configuration: WSServiceConfiguration, base: WSProtocol.Configuration,
                       logger: Logger, isSecure: Bool, open: @escaping Open) throws(WSServiceConfigurationError) {
        try configuration.validate()
        guard path.hasPrefix("/") || path.isEmpty else { throw WSServiceConfigurationError("a path starts with \"/\": \(path)") }
        if configuration.dispatcherKey != nil && shape.dispatch == nil {
            throw WSServiceConfigurationError("dispatcherKey is set but \(shape.typeName) is not a WSDispatchingService")
        }
        self.path = Self.normalize(path)
        self.configuration = configuration
        self.hasPing = shape.onPing != nil
        self.hasPong = shape.onPong != nil
        // Sliced here, once: the loop would copy it for every connection otherwise.
        self.engine = WSEpollServer.sliced(configuration.engineConfiguration(base: base, autoPong: !hasPing))
        do { try engine.validate() } catch { throw WSServiceConfigurationError("\(error)") }
        self.logger = logger
        self.isSecure = isSecure
        self.open = open
    }

    static func normalize(_ path: String) -> String { path.isEmpty ? "/" : path }

    /// Runs authentication and the upgrade service for a request (on the connection's loop).
    func decide(_ request: WSUpgradeRequest, _ connection: WSEpollConnection) async -> WSDeferredDecision {
        do {
            try await configuration.authenticate?(request)
            let subprotocol = request.selectSubprotocol(preferring: configuration.subprotocols)
            let handler = try await open(self, request, connection, subprotocol)
            return .accept(handler, subprotocol: subprotocol, extensions: configuration.compression ? nil : [],
                           headers: [:], configuration: engine)
        } catch let refusal as WSUpgradeError {
            logger.debug("upgrade refused", metadata: ["path": "\(path)", "status": "\(refusal.status.code)"])
            return .reject(status: refusal.status, headers: refusal.headers, body: refusal.body)
        } catch {
            logger.debug("upgrade failed", metadata: ["path": "\(path)", "error": "\(error)"])
            return .reject(status: .internalServerError, headers: [:], body: [])
        }
    }
}
