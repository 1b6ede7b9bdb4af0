import ArgumentParser
import CWSSystem
import Glibc
import WSCore
import WSDeflate
import WSEpoll
import WSService
import WSTransport

/// The same echo written with the service API (`--api service`): what a user of the service
/// layer writes, measured against the raw handler.
struct EchoService: WSTextService, WSBinaryService {
    func onTextMessage(_ caller: WSCaller, text: String) async -> String { text }
    func onBinaryMessage(_ caller: WSCaller, data: [UInt8]) async -> [UInt8] { data }
    /// Connections closed for the memory budget are logged, as the raw handler does.
    func onError(_ caller: WSCaller, error: WSServiceError) async {
        if error.closeCode == .tryAgainLater { logLine("connection \(caller.connectionId) closed with 1013: \(error.message)") }
    }
    /// `--idle-timeout`: close an idle connection, as the raw handler does.
    func onIdleTimeout(_ caller: WSCaller) async throws {
        try await caller.close(statusCode: 1000, reason: "idle", timeout: .seconds(10))
    }
}

/// Echoes every message back as it was received (the handler shared by all connections).
final class EchoHandler: WSEpollHandler, Sendable {
    func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
        try? connection.send(data, kind: kind)
    }

    /// `--idle-timeout`: an idle connection is closed (1000 "idle"). Connections closed for the
    /// memory budget are logged on standard error.
    func event(_ connection: WSEpollConnection, _ event: WSProtocol.Event) {
        switch event {
        case .idleTimeout:
            try? connection.close(code: .normalClosure, reason: "idle")
        case .failed(let error) where error.code == .memoryBudgetExceeded:
            logLine("connection \(connection.id) from \(connection.remoteAddress) closed with 1013: \(error.detail)")
        default:
            break
        }
    }
}

struct EchoServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-server",
        abstract: "Run the epoll echo server: every text and binary message is sent back as received.",
        discussion: """
            Accepts any path. Compression (permessage-deflate) is on unless --no-compression.
            With --tls-certificate and --tls-key it serves wss:// (TLS 1.2 and 1.3); with
            --tls-client-ca too, clients must present a certificate that CA signed.
            It runs with the library's production defaults (README, "Limits and defaults"):
            messages and frames up to 1 MiB, keepalive pings every 20 s (dead after 20 s more
            without a Pong), a 10 s request-head timeout, a memory budget of a quarter of the
            machine's memory, every message compressed. Each has a flag; --testee switches to
            the Autobahn TestSuite's needs (64 MiB messages, any number of fragments, no
            keepalive pings), and flags given with it still apply. Sizes take K, M or G
            (binary multiples). Stop it with Ctrl-C.

            Examples:
              wsx echo-server
              wsx echo-server --port 9001 --loops 1 --no-compression
              wsx echo-server --subprotocol chat --subprotocol superchat
              wsx echo-server --tls-certificate Fixtures/tls/server.pem --tls-key Fixtures/tls/server-key.pem
              wsx echo-server --api service     (the service layer's echo, for comparisons)
              wsx echo-server --testee --port 9001 --loops 1     (for the Autobahn TestSuite)
              wsx echo-server --max-message-size 16M --keepalive 30 --memory-budget 512M
            """)

    enum API: String, ExpressibleByArgument, CaseIterable {
        case raw, service
    }

    @Option(help: "The echo's API: raw (a WSEpollHandler sends the lent bytes back) or service (WSListener with onTextMessage/onBinaryMessage returning the message).")
    var api = API.raw

    @Option(help: "Address to listen on (a name, an IPv4 or IPv6 literal).")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free port, printed at start).")
    var port = 9001

    @Flag(help: "Do not offer permessage-deflate.")
    var noCompression = false

    @Option(help: "Messages shorter than this many bytes are sent uncompressed (RFC 7692 lets each message choose; default 0: every message compressed).")
    var compressionThreshold: ByteCount?

    @Flag(help: "Keep our compression context across messages (better ratio for similar messages; zlib's compressor, about 256 KiB, kept per connection). Default: server_no_context_takeover.")
    var contextTakeover = false

    @Flag(help: "Ask clients to reset their compression context after each message (client_no_context_takeover in the answer): our decompressor is then freed when a connection goes idle, instead of kept (about 40 KiB) for each client that sent a compressed message.")
    var clientNoContextTakeover = false

    @Flag(help: "Autobahn TestSuite settings: 64 MiB messages and frames, any number of fragments, no keepalive pings.")
    var testee = false

    @Option(help: "The largest message accepted (default 1M; 64M with --testee).")
    var maxMessageSize: ByteCount?

    @Option(help: "The largest frame accepted (default: the message limit).")
    var maxFrameSize: ByteCount?

    @Option(help: "Seconds between keepalive pings; 0 turns keepalive off (default 20; off with --testee).")
    var keepalive: Double?

    @Option(help: "Seconds to wait for the Pong of a keepalive ping before dropping the connection (default: the --keepalive interval).")
    var keepaliveTimeout: Double?

    @Option(help: "Seconds without a data message before the connection is closed (default: no idle timeout).")
    var idleTimeout: Double?

    @Option(help: "Seconds a client has for its whole opening handshake, TLS included (default 120).")
    var handshakeTimeout: Double?

    @Option(help: "Seconds a new connection has to send its complete request head; 0 turns it off (default 10).")
    var requestHeadTimeout: Double?

    @Option(help: "The most bytes all connections may hold in buffers; a connection growing past it is closed with 1013; 0 for no budget (default: a quarter of physical memory).")
    var memoryBudget: ByteCount?

    @Option(help: "Open connections beyond which new ones are refused with 503, after the oldest unfinished handshake is dropped (default 10000).")
    var maxConnections: Int?

    @Option(help: "Open connections per remote IP address beyond which new ones get 503 (default: no limit).")
    var maxConnectionsPerAddress: Int?

    @Option(help: "Event loops (threads); default: one per CPU.")
    var loops: Int?

    @Option(help: "A subprotocol to accept (repeatable, in order of preference); the first the client offers is chosen.")
    var subprotocol: [String] = []

    @Option(help: "PEM certificate chain (leaf first) to serve wss:// with; needs --tls-key.")
    var tlsCertificate: String?

    @Option(help: "PEM private key of --tls-certificate.")
    var tlsKey: String?

    @Option(help: "PEM CA certificates: require client certificates they signed (mutual TLS).")
    var tlsClientCa: String?

    func validate() throws {
        if (tlsCertificate == nil) != (tlsKey == nil) { throw fail("--tls-certificate and --tls-key go together") }
        for (name, value) in [("--keepalive", keepalive), ("--request-head-timeout", requestHeadTimeout)] {
            if let value, value < 0 { throw fail("\(name) must not be negative") }
        }
        for (name, value) in [("--keepalive-timeout", keepaliveTimeout), ("--idle-timeout", idleTimeout), ("--handshake-timeout", handshakeTimeout)] {
            if let value, value <= 0 { throw fail("\(name) must be positive") }
        }
        for (name, value) in [("--max-message-size", maxMessageSize), ("--max-frame-size", maxFrameSize)] {
            if let value, value.bytes <= 0 { throw fail("\(name) must be positive") }
        }
        if tlsClientCa != nil && tlsCertificate == nil { throw fail("--tls-client-ca needs --tls-certificate and --tls-key") }
    }

    /// The server's configuration: the defaults (or the testee's), then each flag given.
    func configuration() throws -> WSEpollServer.Configuration {
        var config = WSEpollServer.Configuration(host: host, port: port)
        if let loops { config.loops = loops }
        config.compression = try WSPerMessageDeflate.commandLine(off: noCompression, threshold: compressionThreshold?.bytes ?? 0,
                                                                 serverContextTakeover: contextTakeover, clientNoContextTakeover: clientNoContextTakeover)
        if testee { config.connection = .echoTestee }
        if let maxMessageSize { config.connection.maxMessageSize = maxMessageSize.bytes }
        if let maxFrameSize { config.connection.maxFrameSize = maxFrameSize.bytes }
        if let keepalive { config.connection.pingInterval = keepalive == 0 ? nil : .seconds(keepalive) }
        if let interval = config.connection.pingInterval { config.connection.pingTimeout = keepaliveTimeout.map { .seconds($0) } ?? interval }
        if let idleTimeout { config.connection.idleTimeout = .seconds(idleTimeout) }
        if let handshakeTimeout { config.handshake.timeout = .seconds(handshakeTimeout) }
        if let requestHeadTimeout { config.handshake.requestHeadTimeout = requestHeadTimeout == 0 ? nil : .seconds(requestHeadTimeout) }
        if let memoryBudget { config.memoryBudget = memoryBudget.bytes == 0 ? nil : memoryBudget.bytes }
        if let maxConnections { config.maxConnections = maxConnections }
        if let maxConnectionsPerAddress { config.maxConnectionsPerAddress = maxConnectionsPerAddress }
        config.handshake.serverName = "swift-ws"
        return config
    }

    func run() throws {
        // Buffers of 2 MiB and more (past the default 1 MiB message limit) come from mmap and go
        // back to the system when freed. glibc otherwise raises this threshold to the largest
        // block freed so far (up to 32 MiB), and the freed buffers of connections closed under
        // a flood stay in the heap. Below it, a heap keeps up to 4 MiB free at its top (glibc's
        // own ratio of the two). Measured (Benchmarks/hardening.py, six runs each), peak RSS
        // growth under the amplification attack against a 256 MiB budget: 300–327 MiB with
        // glibc's defaults, 256–285 MiB with a 256 KiB mmap threshold, 263–294 MiB with these.
        // The 256 KiB threshold mapped and faulted in fresh pages for every 1 MiB message the
        // service layer copies: its 1 MiB echo ran at 0.55× (BENCHMARKS.md, "Services").
        _ = cws_set_malloc_thresholds(2 << 20, 4 << 20)
        var config = try configuration()
        if let tlsCertificate, let tlsKey {
            config.tls = try WSTLSContext.server(certificateChainFile: tlsCertificate, privateKeyFile: tlsKey,
                                                 clientAuthentication: tlsClientCa.map { .required(.file($0)) } ?? .none)
        }
        let started: (port: Int, wait: () -> Void)
        switch api {
        case .raw:
            let echo = EchoHandler()
            let preferred = subprotocol
            let server = WSEpollServer(configuration: config) { request in
                .accept(echo, subprotocol: request.selectSubprotocol(preferring: preferred))
            }
            try server.start()
            started = (server.port, server.wait)
        case .service:
            var listener = WSListener.Configuration(host: host, port: port)
            listener.loops = config.loops
            listener.compression = config.compression
            listener.connection = config.connection
            listener.serverName = config.handshake.serverName
            listener.handshakeTimeout = config.handshake.timeout
            listener.requestHeadTimeout = config.handshake.requestHeadTimeout
            listener.memoryBudget = config.memoryBudget
            listener.maxConnections = config.maxConnections
            listener.maxConnectionsPerAddress = config.maxConnectionsPerAddress
            listener.tls = config.tls
            let server = WSListener(configuration: listener)
            var service = WSServiceConfiguration(subprotocols: subprotocol, idleTimeout: config.connection.idleTimeout,
                                                 maxFrameSize: config.connection.maxFrameSize, maxMessageSize: config.connection.maxMessageSize)
            service.inboundHighWaterMark = config.connection.outboundHighWaterMark
            service.inboundLowWaterMark = config.connection.outboundLowWaterMark
            try server.attach(service: EchoService(), at: "/", configuration: service)
            try server.start()
            started = (server.port, server.wait)
        }
        printFlushed("wsx echo-server listening on \(config.tls == nil ? "ws" : "wss")://\(host.contains(":") ? "[\(host)]" : host):\(started.port)/ (\(config.loops) loop\(config.loops == 1 ? "" : "s"), compression \(noCompression ? "off" : "on"), \(api.rawValue) API\(testee ? ", testee settings" : ""))")
        started.wait()
    }
}

extension WSProtocol.Configuration {
    /// Limits for a conformance testee (Autobahn sends 16 MiB messages and 4097-fragment
    /// messages, and counts unexpected pings against the testee).
    static var echoTestee: Self {
        var c = Self.default
        c.maxFrameSize = 64 << 20
        c.maxMessageSize = 64 << 20
        c.maxFragmentsPerMessage = 1 << 20
        c.pingInterval = nil
        c.outboundHighWaterMark = 4 << 20
        c.outboundLowWaterMark = 1 << 20
        c.maxBufferedAmount = 256 << 20
        return c
    }
}

extension WSPerMessageDeflate {
    /// The commands' compression: nil when `off`, else the defaults (the server's, without
    /// context takeover, unless `serverContextTakeover`) with messages shorter than `threshold`
    /// sent uncompressed.
    static func commandLine(off: Bool, threshold: Int, serverContextTakeover: Bool = true, clientNoContextTakeover: Bool = false) throws -> WSPerMessageDeflate? {
        guard !off else { return nil }
        var deflate = serverContextTakeover ? WSPerMessageDeflate.Configuration() : WSPerMessageDeflate.server.configuration
        deflate.minimumSize = threshold
        deflate.clientNoContextTakeover = clientNoContextTakeover
        return try WSPerMessageDeflate(deflate)
    }
}

/// A size in bytes on the command line: a number, optionally with K, M or G (binary multiples).
struct ByteCount: ExpressibleByArgument {
    var bytes: Int

    init?(argument: String) {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        var digits = Substring(argument)
        var unit = 1
        if let last = digits.last?.uppercased().first, let u = units[last] {
            unit = u
            digits = digits.dropLast()
        }
        guard let n = Int(digits), n >= 0, n <= Int.max / unit else { return nil }
        bytes = n * unit
    }
}

/// Writes a line to standard error at once.
func logLine(_ line: String) {
    printFlushed("wsx echo-server: " + line, to: 2)
}

/// Writes a line to `fd` (standard output by default) at once: standard output may be a pipe
/// or file, which buffers, and scripts wait for this line.
func printFlushed(_ line: String, to fd: Int32 = 1) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}
