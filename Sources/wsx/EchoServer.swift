import ArgumentParser
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
}

/// Echoes every message back as it was received (the handler shared by all connections).
final class EchoHandler: WSEpollHandler, Sendable {
    func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
        try? connection.send(data, kind: kind)
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
            Limits are set for conformance testing: frames and messages up to 64 MiB, any number
            of fragments, no keepalive pings. Stop it with Ctrl-C.

            Examples:
              wsx echo-server
              wsx echo-server --port 9001 --loops 1 --no-compression
              wsx echo-server --subprotocol chat --subprotocol superchat
              wsx echo-server --tls-certificate Fixtures/tls/server.pem --tls-key Fixtures/tls/server-key.pem
              wsx echo-server --api service     (the service layer's echo, for comparisons)
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

    @Option(help: "Messages shorter than this are sent uncompressed (RFC 7692 lets each message choose).")
    var compressionThreshold = 64

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
        if tlsClientCa != nil && tlsCertificate == nil { throw fail("--tls-client-ca needs --tls-certificate and --tls-key") }
    }

    func run() throws {
        var config = WSEpollServer.Configuration(host: host, port: port)
        if let loops { config.loops = loops }
        config.compression = try WSPerMessageDeflate.testee(off: noCompression, threshold: compressionThreshold)
        config.connection = .echoTestee
        config.handshake.serverName = "swift-ws"
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
            listener.tls = config.tls
            let server = WSListener(configuration: listener)
            var service = WSServiceConfiguration(subprotocols: subprotocol, maxMessageSize: config.connection.maxMessageSize)
            service.inboundHighWaterMark = config.connection.outboundHighWaterMark
            service.inboundLowWaterMark = config.connection.outboundLowWaterMark
            try server.attach(service: EchoService(), at: "/", configuration: service)
            try server.start()
            started = (server.port, server.wait)
        }
        printFlushed("wsx echo-server listening on \(config.tls == nil ? "ws" : "wss")://\(host.contains(":") ? "[\(host)]" : host):\(started.port)/ (\(config.loops) loop\(config.loops == 1 ? "" : "s"), compression \(noCompression ? "off" : "on"), \(api.rawValue) API)")
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
    /// The testees' compression: nil when `off`, else the defaults with messages shorter than
    /// `threshold` sent uncompressed.
    static func testee(off: Bool, threshold: Int) throws -> WSPerMessageDeflate? {
        guard !off else { return nil }
        var deflate = WSPerMessageDeflate.Configuration()
        deflate.minimumSize = threshold
        return try WSPerMessageDeflate(deflate)
    }
}

/// Prints a line and writes it out at once (standard output may be a pipe or file, which
/// buffers; scripts wait for this line).
func printFlushed(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}
