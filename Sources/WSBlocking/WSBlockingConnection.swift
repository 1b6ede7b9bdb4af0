// The blocking adapter: one socket, one engine, the calling thread does the I/O. Reads wait
// with poll() until data, the read timeout, or the engine's next deadline (keepalive Ping,
// Pong timeout, close timeout), whichever is first, so timers run while a read is waiting.
// Every protocol decision is the engine's.

public import WSCore
public import WSDeflate
public import WSTransport

/// A WebSocket connection driven by the calling thread with blocking socket calls.
///
/// ```swift
/// let ws = try WSBlockingConnection.connect(to: "ws://127.0.0.1:9001/chat")
/// try ws.send(text: "hello")
/// if case .text(let reply)? = try ws.receive() { print(reply) }
/// try ws.close()
/// ```
///
/// Not thread-safe: one thread at a time calls it. Keepalive Pings and timeouts are served only
/// while a call is in progress (``receive()`` waiting, or ``close(code:reason:timeout:)``), as
/// with every blocking client; use the epoll adapter for connections that sit unattended.
public final class WSBlockingConnection {
    /// Client settings.
    public struct Configuration: Sendable {
        /// The engine's configuration: limits, keepalive (Ping every 20 s by default), close
        /// timeout.
        public var connection: WSProtocol.Configuration = .default
        /// permessage-deflate, offered to the server; nil turns compression off. Default: on.
        public var compression: WSPerMessageDeflate? = WSPerMessageDeflate()
        /// How long a ``receive()`` waits for a message; nil (the default) waits as long as the
        /// connection lives. A timeout throws ``WSConnectionError/timeout(_:)`` and leaves the
        /// connection usable.
        public var readTimeout: Duration?
        /// How long a send may wait for the kernel to take the bytes; nil (default) waits.
        public var writeTimeout: Duration?
        /// TLS for `wss://` URLs: trust roots, client certificate, verification. nil (the
        /// default) verifies servers against the system's trust store.
        public var tls: WSTLSContext?
        /// An HTTP proxy to reach the server through (`CONNECT`); nil (the default) connects
        /// directly. See ``WSProxy/fromEnvironment(for:environment:)`` for `http_proxy` and
        /// friends.
        public var proxy: WSProxy?

        /// Creates the default configuration.
        public init() {}
    }

    private let stream: WSStream
    private var engine: WSProtocol
    private let configuration: Configuration
    private var readBuffer = [UInt8](repeating: 0, count: 64 << 10)
    private var failure: WSProtocolError?
    private var socketClosed = false
    /// Whether the buffers were given back during the current wait without input.
    private var idleReleased = false
    /// How long a wait without input lasts before the buffers are given back (as the epoll
    /// loops do for their idle connections).
    private static let idleRelease = Duration.seconds(1)

    /// The handshake's outcome: request, response, subprotocol, extensions.
    public private(set) var handshake: WSHandshakeResult?
    /// How the connection ended, once it has.
    public var closeInfo: WSProtocol.CloseInfo? { engine.closeInfo }
    /// Whether messages can still be sent and received.
    public var isOpen: Bool { engine.lifecycle == .open }
    /// Bytes of memory the engine's buffers hold (see ``WSProtocol/bufferCapacity``). After a
    /// second of waiting without input they are given back, down to what is in use.
    public var bufferCapacity: Int { engine.bufferCapacity }
    /// The negotiated subprotocol, if any.
    public var negotiatedSubprotocol: String? { handshake?.subprotocol }
    /// The socket's descriptor, for `poll` beside other descriptors (read it, never read from
    /// or write to it). With TLS, decrypted bytes may wait in the session while the socket is
    /// not readable: after `poll` wakes you, drain with ``receive(timeout:)`` and `.zero`.
    public var fileDescriptor: Int32 { stream.socket.fd }
    /// The TLS session of a `wss://` connection: protocol version, cipher, peer certificate.
    public var tls: WSTLSSession? { stream.tls }
    /// Called for each Ping and Pong received (the engine answers Pings itself).
    public var onControlFrame: ((WSProtocol.Event) -> Void)?

    // MARK: Connecting

    /// Connects to a `ws://` or `wss://` URL and performs the opening handshake (after the TLS
    /// handshake, for `wss://`).
    ///
    /// - Parameters:
    ///   - url: `ws://host[:port]/path?query`, or `wss://…` for TLS (see ``Configuration/tls``).
    ///   - subprotocols: offered in order of preference.
    ///   - configuration: engine, compression, timeouts.
    ///   - prepare: last changes to the handshake (headers, cookies, authorization, its timeout
    ///     (300 s by default), which also bounds the TCP connect).
    /// - Throws: ``WSConnectionError``.
    public static func connect(
        to url: String,
        subprotocols: [String] = [],
        configuration: Configuration = Configuration(),
        prepare: (inout WSClientHandshake) -> Void = { _ in }
    ) throws(WSConnectionError) -> WSBlockingConnection {
        var handshake: WSClientHandshake
        do { handshake = WSClientHandshake(url: try WSURL(url)) } catch { throw .usage(error) }
        handshake.subprotocols = subprotocols
        if let deflate = configuration.compression { handshake.extensions = [deflate] }
        prepare(&handshake)
        return try WSBlockingConnection(client: handshake, configuration: configuration)
    }

    /// Connects and performs the opening handshake described by `handshake`.
    /// - Throws: ``WSConnectionError``.
    public init(client handshake: WSClientHandshake, configuration: Configuration = Configuration()) throws(WSConnectionError) {
        let start = WSClock.now()
        let socket: WSSocket
        do {
            socket = try WSSocket.connect(host: handshake.url.host, port: handshake.url.port, timeout: handshake.timeout,
                                          via: configuration.proxy)
        } catch { throw .transport(error) }
        if handshake.url.isSecure {
            do throws(WSTransportError) {
                let context: WSTLSContext
                if let configured = configuration.tls { context = configured } else { context = try WSTLSContext.systemClient() }
                stream = WSStream(socket: socket, tls: try context.makeSession(serverName: handshake.url.host))
                // The TLS handshake shares the opening handshake's time limit.
                try stream.handshake(timeout: handshake.timeout - (WSClock.now() - start))
            } catch {
                socket.close()
                throw .transport(error)
            }
        } else {
            stream = WSStream(socket: socket)
        }
        self.configuration = configuration
        do {
            engine = try WSProtocol(client: handshake, configuration: configuration.connection.whole, now: start)
        } catch {
            stream.socket.close()
            throw .usage(error)
        }
        do throws(WSConnectionError) {
            try flush()
            try awaitOpen()
        } catch {
            closeSocket()
            throw error
        }
    }

    /// Runs the server side of the opening handshake on an accepted socket (``WSBlockingServer``):
    /// reads the request, lets `decide` accept or reject it, and writes the answer. A rejected or
    /// invalid request is answered, the client's FIN awaited briefly, and the socket closed.
    init(
        serving stream: WSStream,
        handshake: WSServerHandshake,
        configuration: Configuration,
        decide: @escaping (WSUpgradeRequest) -> WSBlockingServer.Decision
    ) throws(WSConnectionError) {
        self.stream = stream
        self.configuration = configuration
        let start = WSClock.now()
        do {
            engine = try WSProtocol(server: handshake, configuration: configuration.connection.whole, now: start)
        } catch {
            stream.socket.close()
            throw .usage(error)
        }
        do throws(WSConnectionError) {
            do throws(WSTransportError) { try stream.handshake(timeout: handshake.timeout) } catch {
                throw .transport(error)
            }
            try awaitOpen(decide: decide)
        } catch {
            // The answer is written; a reset now could destroy it before the client reads it.
            stream.socket.drainUntilEOF(timeout: .seconds(2))
            closeSocket()
            throw error
        }
    }

    /// Drives the opening handshake (either role) until the connection opens; the answer or
    /// request we owe is written before returning or throwing.
    private func awaitOpen(decide: ((WSUpgradeRequest) -> WSBlockingServer.Decision)? = nil) throws(WSConnectionError) {
        while true {
            while let event = engine.nextEvent() {
                switch event {
                case .upgradeRequested(let request):
                    switch decide?(request) ?? .reject(status: .internalServerError) {
                    case .accept(let subprotocol, let headers):
                        if (try? engine.accept(subprotocol: subprotocol, headers: headers)) == nil {
                            try? engine.reject(status: .internalServerError)
                        }
                    case .reject(let status):
                        try? engine.reject(status: status)
                    }
                case .opened(let result):
                    handshake = result
                    try flush()
                    return
                case .rejected(let rejection): throw .rejected(rejection)
                case .handshakeFailed(let error):
                    try? flush()
                    throw .handshakeFailed(error)
                case .closed(let info):
                    try? flush()
                    throw .closed(info)
                default: break
                }
            }
            try flush()
            try readOnce(until: nil)
        }
    }

    deinit {
        closeSocket()
    }

    // MARK: Sending

    /// Sends a text message.
    public func send(text: String, compress: Bool = true) throws(WSConnectionError) {
        try command { (e) throws(WSUsageError) in try e.sendText(text, compress: compress) }
    }

    /// Sends a binary message.
    public func send(binary: some Collection<UInt8>, compress: Bool = true) throws(WSConnectionError) {
        try command { (e) throws(WSUsageError) in try e.sendBinary(binary, compress: compress) }
    }

    /// Sends one piece of a fragmented message (see ``WSProtocol/sendFragment(_:kind:isFinal:compress:)``).
    public func sendFragment(_ bytes: some Collection<UInt8>, kind: WSMessageKind, isFinal: Bool, compress: Bool = true) throws(WSConnectionError) {
        try command { (e) throws(WSUsageError) in try e.sendFragment(bytes, kind: kind, isFinal: isFinal, compress: compress) }
    }

    /// Sends a Ping (payload at most 125 bytes).
    public func ping(_ payload: [UInt8] = []) throws(WSConnectionError) {
        try command { (e) throws(WSUsageError) in try e.ping(payload) }
    }

    /// Sends an unsolicited Pong (payload at most 125 bytes).
    public func pong(_ payload: [UInt8] = []) throws(WSConnectionError) {
        try command { (e) throws(WSUsageError) in try e.pong(payload) }
    }

    private func command(_ body: (inout WSProtocol) throws(WSUsageError) -> Void) throws(WSConnectionError) {
        if let info = engine.closeInfo { throw failure.map { .protocolViolation($0) } ?? .closed(info) }
        engine.tick(now: WSClock.now())
        do { try body(&engine) } catch { throw .usage(error) }
        try flush()
    }

    // MARK: Receiving

    /// Waits for the next whole message. Pings are answered and reported to
    /// ``onControlFrame``; keepalive runs meanwhile.
    ///
    /// - Parameter timeout: how long to wait for this message (`.zero`: only what has already
    ///   arrived); nil uses ``Configuration/readTimeout``.
    /// - Returns: the message, or nil once the connection has closed cleanly (see ``closeInfo``).
    /// - Throws: ``WSConnectionError/protocolViolation(_:)`` when the peer broke the protocol
    ///   (the connection is then closed with the error's code), ``WSConnectionError/timeout(_:)``
    ///   when the timeout passes, ``WSConnectionError/transport(_:)``.
    public func receive(timeout: Duration? = nil) throws(WSConnectionError) -> WSMessage? {
        let deadline = (timeout ?? configuration.readTimeout).map { WSClock.now() + $0 }
        while true {
            while let event = engine.nextEvent() {
                switch event {
                case .text(let s): return .text(s)
                case .binary(let b): return .binary(Array(b))
                case .ping, .pong: onControlFrame?(event)
                case .failed(let error): failure = error
                case .closed:
                    try? flush()
                    closeSocket()
                    if let failure { throw .protocolViolation(failure) }
                    return nil
                default: break
                }
            }
            try flush()
            if engine.isClosed { return nil }
            try readOnce(until: deadline)
        }
    }

    /// Reads once (waiting until `deadline`, or the engine's next deadline), feeds the engine.
    /// A wait without input gives the buffers back after ``idleRelease``, once.
    private func readOnce(until deadline: WSInstant?) throws(WSConnectionError) {
        let now = WSClock.now()
        var wake = engine.nextDeadline
        if let deadline, wake == nil || deadline < wake! { wake = deadline }
        let idleAt = idleReleased ? nil : now + Self.idleRelease
        if let idleAt, wake == nil || idleAt < wake! { wake = idleAt }
        let ready: Bool
        do {
            ready = try stream.waitReadable(timeout: wake.map { $0 - now })
        } catch { throw .transport(error) }
        engine.tick(now: WSClock.now())
        guard ready else {
            if let idleAt, WSClock.now() >= idleAt {
                engine.releaseIdleMemory()
                stream.tls?.releaseIdleMemory()
                idleReleased = true
            }
            if let deadline, WSClock.now() >= deadline, engine.nextDeadline.map({ WSClock.now() < $0 }) ?? true {
                throw .timeout("read")
            }
            return
        }
        idleReleased = false
        let n: Int?
        do {
            n = try readBuffer.withUnsafeMutableBytes { (raw) throws(WSTransportError) in try stream.read(into: raw) }
        } catch {
            engine.receiveEOF()
            return
        }
        guard let n else { return }
        if n == 0 {
            engine.receiveEOF()
        } else {
            readBuffer.withUnsafeBytes { engine.receive(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        }
    }

    private func flush() throws(WSConnectionError) {
        while let out = engine.nextOutbound() {
            switch out {
            case .bytes(let bytes):
                let written = bytes.withUnsafeBytes { raw in
                    Result { () throws(WSTransportError) in try stream.writeAll(raw, timeout: configuration.writeTimeout) }
                }
                if case .failure(let error) = written {
                    if error.isTimeout { throw .timeout("write") }
                    engine.receiveEOF()
                    throw .transport(error)
                }
            case .endOfStream:
                stream.shutdownWrite(timeout: configuration.writeTimeout ?? .seconds(10))
            }
        }
    }

    // MARK: Closing

    /// Starts the closing handshake with `code` and `reason`, waits for the peer's Close up to
    /// `timeout`, then closes the socket. Messages the peer sent before its Close go to
    /// `onMessage` (by default they are discarded).
    ///
    /// - Parameters:
    ///   - timeout: how long to wait for the peer's Close (default 60 s, as Ballerina's
    ///     `close`); a negative duration waits until it comes or the connection drops; `nil`
    ///     waits for the engine's ``WSProtocol/Configuration/closeTimeout`` (10 s by default).
    ///     Past it the connection ends with code 1006 (``WSProtocol/Cause/closeTimeout``).
    /// - Returns: how the connection ended.
    @discardableResult
    public func close(
        code: WSCloseCode? = .normalClosure, reason: String = "", timeout: Duration? = .seconds(60),
        onMessage: (WSMessage) -> Void = { _ in }
    ) throws(WSConnectionError) -> WSProtocol.CloseInfo {
        engine.tick(now: WSClock.now())
        switch engine.lifecycle {
        case .open, .closeReceived:
            do { try engine.close(code: code, reason: reason, timeout: timeout) } catch { throw .usage(error) }
        case .connecting, .closeSent, .closing, .closed:
            break
        }
        func deliver() {
            while let event = engine.nextEvent() {
                switch event {
                case .text(let s): onMessage(.text(s))
                case .binary(let b): onMessage(.binary(Array(b)))
                default: break
                }
            }
        }
        // The engine's timers end the wait (readOnce sleeps until its next deadline).
        while !engine.isClosed {
            deliver()
            if engine.isClosed { break }
            try? flush()
            do { try readOnce(until: nil) } catch { engine.receiveEOF() }
        }
        deliver()
        closeSocket()
        return engine.closeInfo!
    }

    private func closeSocket() {
        if !socketClosed {
            socketClosed = true
            stream.socket.close()
        }
    }
}

extension WSProtocol.Configuration {
    /// Without decode or encode slices: one connection per thread has no neighbours to serve
    /// between them, so messages are (de)compressed whole.
    var whole: Self {
        var c = self
        c.decodeSliceSize = nil
        c.encodeSliceSize = nil
        return c
    }
}
