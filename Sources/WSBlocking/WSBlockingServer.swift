// A small thread-per-connection server over the blocking adapter, for simple uses and tests:
// one thread accepts, each accepted connection gets its own thread that runs the opening
// handshake and then the application's closure.

public import WSCore
public import HTTPTypes
public import WSTransport
import Glibc
import Synchronization

/// A thread-per-connection WebSocket server. Each connection's thread runs `handler` with a
/// ``WSBlockingConnection``; when it returns, the connection is closed (1000) if still open.
///
/// ```swift
/// let server = WSBlockingServer(port: 0) { ws in
///     while let message = try? ws.receive() {
///         if case .text(let s) = message { try? ws.send(text: s) }
///     }
/// }
/// try server.start()
/// print(server.port)
/// ```
///
/// For many connections use `WSEpollServer`, which serves thousands per thread.
public final class WSBlockingServer: Sendable {
    /// The application's answer to an upgrade request.
    public enum Decision: Sendable {
        /// Accept, with the subprotocol to use (one the client offered) and extra headers.
        case accept(subprotocol: String? = nil, headers: HTTPFields = [:])
        /// Refuse with an HTTP status.
        case reject(status: HTTPResponse.Status)
    }

    private let host: String?
    private let requestedPort: Int
    private let handshake: WSServerHandshake
    private let configuration: WSBlockingConnection.Configuration
    private let tls: WSTLSContext?
    private let decide: @Sendable (WSUpgradeRequest) -> Decision
    private let handler: @Sendable (WSBlockingConnection) -> Void
    private let state = Mutex<(listener: WSSocket?, port: Int, thread: WSThread?, active: Int)>((nil, 0, nil, 0))

    /// Creates a server.
    /// - Parameters:
    ///   - host: the address to listen on (default loopback).
    ///   - port: the port; 0 picks a free one (see ``port``).
    ///   - handshake: request limits and handshake timeout (compression is added from
    ///     `configuration`).
    ///   - configuration: each connection's engine, compression (on by default) and timeouts.
    ///   - tls: a server context (``WSTLSContext/server(certificateChainFile:privateKeyFile:clientAuthentication:minimumVersion:)``)
    ///     to serve `wss://`; the TLS handshake shares the opening handshake's timeout.
    ///   - decide: accepts or rejects each valid upgrade request (default: accept all).
    ///   - handler: runs each open connection on its own thread.
    public init(
        host: String? = "127.0.0.1",
        port: Int,
        handshake: WSServerHandshake = WSServerHandshake(),
        configuration: WSBlockingConnection.Configuration = .init(),
        tls: WSTLSContext? = nil,
        decide: @escaping @Sendable (WSUpgradeRequest) -> Decision = { _ in .accept() },
        handler: @escaping @Sendable (WSBlockingConnection) -> Void
    ) {
        self.host = host
        self.requestedPort = port
        var handshake = handshake
        if let deflate = configuration.compression { handshake.extensions.insert(deflate, at: 0) }
        self.handshake = handshake
        self.configuration = configuration
        self.tls = tls
        self.decide = decide
        self.handler = handler
    }

    /// The port listened on (the chosen one for port 0), once started.
    public var port: Int { state.withLock { $0.port } }

    /// Connections being served now.
    public var activeConnections: Int { state.withLock { $0.active } }

    /// Binds and starts the accepting thread.
    /// - Throws: `WSTransportError`.
    public func start() throws {
        let listener = try WSSocket.listen(host: host, port: requestedPort, nonBlocking: false)
        let port = listener.localAddress?.port ?? requestedPort
        // The listener is published before the thread starts: the accept loop runs while it is set.
        state.withLock { $0 = (listener, port, nil, 0) }
        do {
            let thread = try WSThread { [self] in acceptLoop(listener) }
            state.withLock { $0.thread = thread }
        } catch {
            state.withLock { $0.listener = nil }
            listener.close()
            throw error
        }
    }

    /// Stops accepting (connections being served run on until their handlers return).
    public func stop() {
        let (listener, thread) = state.withLock { s in
            let r = (s.listener, s.thread)
            s.listener = nil
            return r
        }
        // shutdown wakes the blocked accept(); then the descriptor can go.
        if let listener {
            listener.shutdown()
            thread?.join()
            listener.close()
        }
    }

    private func acceptLoop(_ listener: WSSocket) {
        while state.withLock({ $0.listener != nil }) {
            let accepted: WSSocket?
            do { accepted = try listener.accept() } catch {
                if state.withLock({ $0.listener == nil }) { return }
                usleep(10_000)  // out of descriptors or memory: retry shortly, without spinning
                continue
            }
            guard let s = accepted else { continue }
            try? s.setNonBlocking(false)
            state.withLock { $0.active += 1 }
            do {
                try WSThread { [self] in
                    serve(s)
                    state.withLock { $0.active -= 1 }
                }.detach()
            } catch {
                state.withLock { $0.active -= 1 }
                s.close()
            }
        }
    }

    private func serve(_ socket: WSSocket) {
        let stream: WSStream
        do { stream = WSStream(socket: socket, tls: try tls?.makeSession()) } catch {
            socket.close()
            return
        }
        guard let connection = try? WSBlockingConnection(serving: stream, handshake: handshake, configuration: configuration, decide: decide) else {
            return
        }
        handler(connection)
        if connection.closeInfo == nil { _ = try? connection.close() }
    }
}
