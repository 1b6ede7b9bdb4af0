// Testing services without a network: a listener whose connections are in-memory socket
// pairs, and a client that reads their messages as async calls. The services run through the
// same loops, engine and runtime as in production; only the transport is a local pair.

public import HTTPTypes
import WSCore
import WSDeflate
import WSEpoll
public import WSService
import WSTransport
import Synchronization

/// Drives services without a network, as NIO's `EmbeddedChannel` drives handlers: attach them
/// to ``listener``, then ``connect(_:subprotocols:headers:compression:)`` clients and talk to
/// them.
///
/// ```swift
/// let tester = try WSServiceTester()
/// try tester.listener.attach(service: Echo(), at: "/echo")
/// let client = try await tester.connect("/echo")
/// try await client.send(text: "hi")
/// #expect(try await client.receiveText() == "hi")
/// try await client.close()
/// await tester.shutdown()
/// ```
///
/// Each connection is a `socketpair(AF_UNIX)`: no port, no address, nothing outside the
/// process. The client's engine runs on the listener's loop too. With
/// ``connect(url:subprotocols:headers:compression:)`` the same client talks to any server
/// over TCP instead (loopback tests of a real listener).
public final class WSServiceTester: Sendable {
    /// The listener the services are attached to (one loop, no port).
    public let listener: WSListener

    /// Creates a tester and starts its listener's loop.
    /// - Parameter configuration: the listener's settings (its host and port are not used).
    public init(configuration: WSListener.Configuration = WSServiceTester.defaultConfiguration) throws {
        listener = WSListener(configuration: configuration)
        try listener.startWithoutListening()
    }

    /// One loop, 5 s for handshakes and graceful stops (tests fail fast).
    public static var defaultConfiguration: WSListener.Configuration {
        var c = WSListener.Configuration(host: nil, port: 0)
        c.loops = 1
        c.handshakeTimeout = .seconds(5)
        c.gracefulStopTimeout = .seconds(5)
        return c
    }

    /// Opens an in-memory connection to the service at `path` (with its query, if any) and
    /// completes the opening handshake.
    /// - Throws: ``WSTestError/rejected(_:)`` when the upgrade is refused (its status, headers
    ///   and body are in the rejection), ``WSTestError/handshakeFailed(_:)``.
    public func connect(_ path: String = "/", subprotocols: [String] = [], headers: HTTPFields = [:],
                        compression: Bool = true) async throws(WSTestError) -> WSTestClient {
        let handshake = try Self.handshake("ws://localhost\(path.hasPrefix("/") ? "" : "/")\(path)", subprotocols, headers, compression)
        let (server, client) = try Self.transport { () throws(WSTransportError) in try WSSocket.pair() }
        do {
            try listener.server.adoptAccepted(server)
        } catch {
            server.close()
            client.close()
            throw .usage(error)
        }
        return try await open(client, handshake)
    }

    /// Opens a connection over TCP to `url` (`ws://127.0.0.1:PORT/path`), served by this
    /// tester's loop: the same client against a real listener.
    public func connect(url: String, subprotocols: [String] = [], headers: HTTPFields = [:],
                        compression: Bool = true) async throws(WSTestError) -> WSTestClient {
        let handshake = try Self.handshake(url, subprotocols, headers, compression)
        let socket = try Self.transport { () throws(WSTransportError) in
            try WSSocket.connect(host: handshake.url.host, port: handshake.url.port, timeout: .seconds(5), nonBlocking: true)
        }
        return try await open(socket, handshake)
    }

    /// Stops the listener (open connections get Close 1001) and waits for its loop to end.
    public func shutdown() async {
        await listener.gracefulStop()
    }

    private func open(_ socket: WSSocket, _ handshake: WSClientHandshake) async throws(WSTestError) -> WSTestClient {
        var configuration = WSProtocol.Configuration.default
        configuration.maxFrameSize = 64 << 20
        configuration.maxMessageSize = 64 << 20
        configuration.pingInterval = nil
        let recorder = WSTestClient.Recorder()
        let client: WSTestClient
        do {
            client = WSTestClient(connection: try listener.server.adoptClient(socket, handshake: handshake, configuration: configuration, handler: recorder),
                                  recorder: recorder)
        } catch {
            socket.close()
            throw .usage(error as? WSUsageError ?? .invalidConfiguration("\(error)"))
        }
        try await client.waitUntilOpen()
        return client
    }

    private static func handshake(_ url: String, _ subprotocols: [String], _ headers: HTTPFields, _ compression: Bool) throws(WSTestError) -> WSClientHandshake {
        var handshake: WSClientHandshake
        do { handshake = WSClientHandshake(url: try WSURL(url)) } catch { throw .usage(error) }
        handshake.subprotocols = subprotocols
        handshake.headers = headers
        handshake.timeout = .seconds(5)
        if compression { handshake.extensions = [WSPerMessageDeflate()] }
        return handshake
    }

    private static func transport<R>(_ body: () throws(WSTransportError) -> R) throws(WSTestError) -> R {
        do { return try body() } catch { throw .transport(error) }
    }
}
