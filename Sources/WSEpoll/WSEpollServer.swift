// The epoll WebSocket server: configuration, start, stop. The loops do the work
// (EventLoop+Unsafe.swift).

public import WSCore
public import WSDeflate
public import WSTransport
internal import Glibc
import Synchronization

/// A WebSocket server on Linux epoll: one event loop per thread (default: one per CPU), each
/// with its own `SO_REUSEPORT` listening socket, serving many connections.
///
/// ```swift
/// final class Echo: WSEpollHandler {
///     func received(_ c: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
///         try? c.send(data, kind: kind)
///     }
/// }
/// let echo = Echo()
/// let server = WSEpollServer(configuration: .init(port: 9001)) { request in
///     request.path == "/echo" ? .accept(echo) : .reject(status: .notFound)
/// }
/// try server.start()
/// server.wait()
/// ```
///
/// Compression (permessage-deflate) is on by default; set
/// ``Configuration/compression`` to nil to turn it off.
public final class WSEpollServer: Sendable {
    /// Server settings.
    public struct Configuration: Sendable {
        /// The address to listen on: a name or literal (`"::1"`, `"0.0.0.0"`); nil for all.
        /// Default `127.0.0.1`: loopback until asked otherwise.
        public var host: String? = "127.0.0.1"
        /// The port; 0 picks a free one (see ``WSEpollServer/port``). Default 9001.
        public var port: Int = 9001
        /// Event loops (threads). Default: the CPUs this process may use.
        public var loops: Int = WSThread.processorCount
        /// The opening handshake's limits (URI 4096, header 8192 bytes, answers 414/431),
        /// timeout (120 s: a client that never finishes is dropped then), server name.
        public var handshake = WSServerHandshake()
        /// permessage-deflate, offered to clients that ask; nil turns compression off.
        /// Default: on, ``WSPerMessageDeflate/server`` (our compressor reset after each message,
        /// so idle connections hold no compression state).
        public var compression: WSPerMessageDeflate? = .server
        /// Each connection's engine: limits, keepalive, timeouts, water marks.
        public var connection: WSProtocol.Configuration = .default
        /// Open connections (all loops) beyond which new ones are answered 503 and closed.
        /// Default 10,000; raise the process's descriptor limit (`ulimit -n`) to match.
        ///
        /// When the limit is reached, the loop that accepts a new connection first drops its
        /// oldest connection that has not finished its opening handshake (no request yet, or
        /// waiting for the upgrade decision), so that sockets that connect and stay silent
        /// cannot lock honest clients out; only when it has none is the new one refused.
        /// (Each loop drops among its own connections; the kernel spreads new connections
        /// evenly across loops.)
        public var maxConnections: Int = 10_000
        /// Open connections from one remote IP address (any port) beyond which new ones from
        /// it are answered 503 and closed. nil (the default): no limit per address.
        public var maxConnectionsPerAddress: Int?
        /// The most bytes all connections together may hold in their buffers (received messages
        /// being assembled, inflated output, outbound queues, and the service layer's inbound
        /// queues); nil for no budget. Default: a quarter of the machine's physical memory.
        ///
        /// Per-connection limits cannot bound a server's memory: 10,000 connections each allowed
        /// a 1 MiB message may hold 10 GB, and a compressed message of 61 KB inflates to 60 MiB.
        /// When a connection's buffers grow while the total is over the budget, that connection
        /// is failed with 1013 Try Again Later (``WSProtocolError/Code/memoryBudgetExceeded``)
        /// and its buffers are freed; the others go on. Growth is checked after each read and
        /// each inflate slice, so the total stays within the budget plus, per loop, about one
        /// read buffer, one slice and one growth step of a message buffer (at most 16 MiB).
        /// zlib's own state is not counted: the decompressor of each client that compresses
        /// (about 40 KiB), and a compressor per connection only with context takeover (see
        /// ``WSPerMessageDeflate/server``).
        public var memoryBudget: Int? = WSEpollServer.defaultMemoryBudget
        /// Whether each connection keeps its opening handshake for
        /// ``WSEpollConnection/handshake`` (the request and the 101 answer with every header
        /// field: about 2 KB per connection for as long as it lives). Default false: the
        /// handler's ``WSEpollHandler/opened(_:_:)`` gets the handshake and keeps what it needs;
        /// ``WSEpollConnection/subprotocol`` is kept either way.
        public var keepsHandshake = false
        /// Each loop's read buffer, shared by its connections. Default 256 KiB.
        public var readBufferSize: Int = 256 << 10
        /// How long a closed connection waits for the peer's FIN after ours, reading and
        /// discarding, before the socket is closed anyway. Default 2 s.
        public var lingerTimeout: Duration = .seconds(2)
        /// TLS, to serve `wss://`: a server context with the certificate chain and key (and
        /// client certificate checks for mutual TLS). nil (the default): plain `ws://`. The TLS
        /// handshake counts against the opening handshake's timeout.
        public var tls: WSTLSContext?

        /// Creates a configuration.
        public init(host: String? = "127.0.0.1", port: Int = 9001) {
            self.host = host
            self.port = port
        }
    }

    /// A quarter of the machine's physical memory: the default ``Configuration/memoryBudget``.
    public static let defaultMemoryBudget: Int = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        return pages > 0 && size > 0 ? pages * size / 4 : 1 << 30
    }()

    /// The settings the server was created with.
    public let configuration: Configuration
    private let context: LoopContext
    private let group = LoopGroup()
    private let boundPort = Mutex(0)

    /// Creates a server; `upgrade` decides each valid upgrade request (called on the loop that
    /// owns the connection, so it must not block). Invalid requests are answered by the engine.
    public convenience init(configuration: Configuration, upgrade: @escaping @Sendable (WSUpgradeRequest) -> WSUpgradeDecision) {
        self.init(configuration: configuration, upgrade: .immediate(upgrade))
    }

    /// Creates a server whose application decides each upgrade when it can: `upgrade` is
    /// called on the owning loop and answers through ``WSEpollConnection/decide(_:)``, at once
    /// or later from any task. A decision not made within the handshake's timeout (counted
    /// from the connection's start) is answered 503 for it.
    package convenience init(configuration: Configuration, deferredUpgrade upgrade: @escaping @Sendable (WSUpgradeRequest, WSEpollConnection) -> Void) {
        self.init(configuration: configuration, upgrade: .deferred(upgrade))
    }

    private init(configuration: Configuration, upgrade: LoopContext.Upgrade) {
        self.configuration = configuration
        var handshake = configuration.handshake
        if let deflate = configuration.compression { handshake.extensions.insert(deflate, at: 0) }
        context = LoopContext(connection: configuration.connection, readBufferSize: configuration.readBufferSize,
                              lingerTimeout: configuration.lingerTimeout, maxConnections: configuration.maxConnections,
                              maxPerAddress: configuration.maxConnectionsPerAddress,
                              keepsHandshake: configuration.keepsHandshake,
                              memoryBudget: configuration.memoryBudget.map(MemoryBudget.init),
                              server: (handshake, configuration.tls, upgrade))
    }

    /// Binds the listening sockets and starts the loops. Returns once the server accepts.
    /// - Throws: ``WSTransportError`` (address in use, no permission, bad host);
    ///   ``WSUsageError`` for an invalid configuration.
    public func start() throws {
        try context.server!.handshake.validate()
        if let tls = configuration.tls, !tls.isServer {
            throw WSUsageError.invalidConfiguration("Configuration.tls must be a server context (WSTLSContext.server)")
        }
        _ = try WSProtocol(role: .server, configuration: configuration.connection, now: .zero)
        let count = max(1, configuration.loops)
        var loops: [EventLoop] = []
        var port = configuration.port
        for i in 0..<count {
            let listener = try WSSocket.listen(host: configuration.host, port: port, reusePort: count > 1)
            if port == 0, let bound = listener.localAddress?.port { port = bound }
            do {
                loops.append(try EventLoop(index: i, context: context, listener: listener))
            } catch {
                listener.close()
                throw error
            }
        }
        try group.start(loops)
        boundPort.withLock { $0 = port }
    }

    /// Starts the loops without listening sockets: connections come only through
    /// ``adoptAccepted(_:)`` (in-memory tests).
    package func startWithoutListening() throws {
        try context.server!.handshake.validate()
        var loops: [EventLoop] = []
        for i in 0..<max(1, configuration.loops) { loops.append(try EventLoop(index: i, context: context, listener: nil)) }
        try group.start(loops)
    }

    /// Serves `socket` as if a loop had accepted it (one end of ``WSSocket/pair()``, say).
    /// - Throws: ``WSUsageError`` when not started or over the connection limit.
    package func adoptAccepted(_ socket: WSSocket) throws(WSUsageError) {
        guard let loop = group.pick() else { throw .invalidConfiguration("the server is not started") }
        guard context.reserveConnection() else { throw .invalidConfiguration("more than maxConnections connections") }
        loop.execute { loop.adoptAccepted(socket) }
    }

    /// Opens a client connection over `socket` (already connected) on one of this server's
    /// loops: the client half of an in-memory test pair, or a test client over loopback. It
    /// counts against ``Configuration/maxConnections``. `handler` gets its events on the loop;
    /// commands are queued until the handshake is done.
    package func adoptClient(_ socket: WSSocket, handshake: WSClientHandshake, configuration: WSProtocol.Configuration,
                             handler: any WSEpollHandler & Sendable) throws -> WSEpollConnection {
        guard let loop = group.pick() else { throw WSUsageError.invalidConfiguration("the server is not started") }
        guard context.reserveConnection() else { throw WSUsageError.invalidConfiguration("more than maxConnections connections") }
        let engine: WSProtocol
        do { engine = try WSProtocol(client: handshake, configuration: LoopContext.sliced(configuration), now: WSClock.now()) } catch {
            context.releaseConnection()
            throw error
        }
        let connection = WSEpollConnection(id: context.nextID(), loop: loop, stream: WSStream(socket: socket, tls: nil),
                                           peer: nil, engine: engine, handler: handler)
        loop.execute { loop.adopt(connection) }
        return connection
    }

    /// The port the server listens on (the chosen one when configured with 0).
    public var port: Int { boundPort.withLock { $0 } }

    /// Open connections across all loops.
    public var connectionCount: Int { context.connections.load(ordering: .relaxed) }

    /// `configuration` with the loops' decode and encode slices where it sets none, as the
    /// loops apply it to each connection's: a layer that accepts connections with a
    /// configuration of its own applies it once, so that its connections share one copy.
    package static func sliced(_ configuration: WSProtocol.Configuration) -> WSProtocol.Configuration {
        LoopContext.sliced(configuration)
    }

    /// The bytes the connections hold in buffers now, as counted against
    /// ``Configuration/memoryBudget`` (nil without a budget).
    public var memoryInUse: Int? { context.memoryBudget?.inUse }

    /// Times a loop trimmed the allocator (after 1,024 connections ended), for tests.
    package var heapTrims: Int { context.heapTrims.load(ordering: .relaxed) }

    /// Blocks until every loop has ended (after a stop).
    public func wait() { group.wait() }

    /// Stops accepting, sends every open connection a Close with 1001 (Going Away), waits up to
    /// `timeout` for the closing handshakes, then drops what is left. Returns when all loops
    /// have ended, so call it from outside the loops (not from a handler).
    public func gracefulStop(timeout: Duration = .seconds(10)) { group.gracefulStop(timeout: timeout) }

    /// Stops at once: closes the listening sockets and every connection without a closing
    /// handshake (handlers get `.closed` with 1006). Returns when all loops have ended, so call
    /// it from outside the loops (not from a handler).
    public func immediateStop() { group.immediateStop() }
}

/// The loops of one server or client and their threads.
final class LoopGroup: Sendable {
    private let state = Mutex<(loops: [EventLoop], threads: [WSThread])>(([], []))
    private let next = Atomic<Int>(0)

    func start(_ loops: [EventLoop]) throws {
        var threads: [WSThread] = []
        for loop in loops { threads.append(try WSThread { loop.run() }) }
        state.withLock { $0 = (loops, threads) }
    }

    /// The loop for a new outgoing connection (round robin).
    func pick() -> EventLoop? {
        let loops = state.withLock { $0.loops }
        guard !loops.isEmpty else { return nil }
        return loops[next.add(1, ordering: .relaxed).newValue % loops.count]
    }

    func wait() {
        for t in state.withLock({ $0.threads }) { t.join() }
    }

    func gracefulStop(timeout: Duration) {
        let deadline = WSClock.now() + timeout
        for loop in state.withLock({ $0.loops }) { loop.execute { loop.beginGracefulStop(deadline: deadline) } }
        wait()
    }

    func immediateStop() {
        for loop in state.withLock({ $0.loops }) { loop.execute { loop.beginImmediateStop() } }
        wait()
    }
}

/// What the loops of one server (or client) share.
final class LoopContext: Sendable {
    let connection: WSProtocol.Configuration
    let readBufferSize: Int
    let lingerTimeout: Duration
    let maxConnections: Int
    let maxPerAddress: Int?
    /// Server connections keep their handshake (client connections always do).
    let keepsHandshake: Bool
    /// The bytes all connections hold in buffers, against the server's budget (nil: none).
    let memoryBudget: MemoryBudget?
    /// Times a loop gave the allocator's free pages back after many connections ended.
    let heapTrims = Atomic<Int>(0)
    /// Open connections per remote address, when ``maxPerAddress`` is set.
    private let perAddress = Mutex<[String: Int]>([:])
    /// The server's handshake and upgrade decision; nil for a client's loops.
    let server: (handshake: WSServerHandshake, tls: WSTLSContext?, upgrade: Upgrade)?

    /// How the application decides upgrades: at once, or through ``WSEpollConnection/decide(_:)``.
    enum Upgrade {
        case immediate(@Sendable (WSUpgradeRequest) -> WSUpgradeDecision)
        case deferred(@Sendable (WSUpgradeRequest, WSEpollConnection) -> Void)
    }
    let connections = Atomic<Int>(0)
    private let ids = Atomic<UInt64>(0)

    init(connection: WSProtocol.Configuration, readBufferSize: Int, lingerTimeout: Duration, maxConnections: Int,
         maxPerAddress: Int? = nil, keepsHandshake: Bool = true, memoryBudget: MemoryBudget? = nil,
         server: (handshake: WSServerHandshake, tls: WSTLSContext?, upgrade: Upgrade)?) {
        self.connection = Self.sliced(connection)
        self.readBufferSize = readBufferSize
        self.lingerTimeout = lingerTimeout
        self.maxConnections = maxConnections
        self.maxPerAddress = maxPerAddress
        self.keepsHandshake = keepsHandshake
        self.memoryBudget = memoryBudget
        self.server = server
    }

    /// The decode and encode slices of the loops' engines when the configuration sets none: a
    /// compressed message inflates, or deflates, at most this much per turn of its loop.
    static let codingSlice = 256 << 10

    /// `configuration` with ``codingSlice`` where it sets no slice of its own.
    static func sliced(_ configuration: WSProtocol.Configuration) -> WSProtocol.Configuration {
        var c = configuration
        if c.decodeSliceSize == nil { c.decodeSliceSize = codingSlice }
        if c.encodeSliceSize == nil { c.encodeSliceSize = codingSlice }
        return c
    }

    /// Counts a connection from `address` against ``maxPerAddress``; false when it is over.
    func reserveAddress(_ address: String) -> Bool {
        guard let limit = maxPerAddress else { return true }
        return perAddress.withLock { counts in
            let n = counts[address, default: 0]
            guard n < limit else { return false }
            counts[address] = n + 1
            return true
        }
    }

    func releaseAddress(_ address: String) {
        perAddress.withLock { counts in
            let n = counts[address, default: 1] - 1
            counts[address] = n > 0 ? n : nil
        }
    }

    func reserveConnection() -> Bool {
        let n = connections.add(1, ordering: .relaxed).newValue
        if n > maxConnections {
            connections.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func releaseConnection() { connections.subtract(1, ordering: .relaxed) }

    func nextID() -> UInt64 { ids.add(1, ordering: .relaxed).newValue }
}

/// The bytes held in buffers by all connections of a server, against its budget. Charged by
/// the loops (each connection's growth or shrinkage as it happens), from several threads.
package final class MemoryBudget: Sendable {
    /// The most bytes the connections may hold together.
    package let limit: Int
    private let used = Atomic<Int>(0)

    package init(_ limit: Int) { self.limit = limit }

    /// The bytes held now.
    package var inUse: Int { used.load(ordering: .relaxed) }

    /// Adds `delta` bytes (negative when buffers shrink); false when it was growth that left
    /// the total over the limit (the caller then fails the connection that grew, which gives
    /// its bytes back). A total exactly at the limit is within it.
    package func charge(_ delta: Int) -> Bool {
        let total = used.add(delta, ordering: .relaxed).newValue
        return delta <= 0 || total <= limit
    }
}
