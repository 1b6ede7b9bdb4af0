// The blocking twin of WSClient: the same methods and configuration, for scripts, command-line
// tools and tests, on one blocking socket (WSBlockingConnection). Every method blocks the
// calling thread, so none may be called from async code.

internal import Glibc
public import HTTPTypes
import Logging
import WSBlocking
public import WSCore
import WSTransport

/// A WebSocket client connection driven by the calling thread (Ballerina's synchronous
/// `websocket:Client`): ``WSClient``'s methods, blocking.
///
/// ```swift
/// let client = try WSBlockingClient("ws://127.0.0.1:9090/echo")
/// try client.writeTextMessage("hello")
/// print(try client.readTextMessage())
/// try client.close()
/// ```
///
/// One thread at a time uses it. Keepalive and the server's Pings are served while a call is
/// in progress (a read waiting, a close), as with every blocking client.
public final class WSBlockingClient {
    /// The URL the client was created with.
    public let requestedURL: String
    /// The settings.
    public let configuration: WSClientConfiguration
    /// A process-unique id for this client (the same across reconnections).
    public let connectionId: String

    private let dialer: Dialer
    private var connection: WSBlockingConnection
    private var currentURL: WSURL
    private var closedByUser = false
    private var attributes: [String: Any] = [:]

    /// Connects (Ballerina's `new websocket:Client(url, config)`), as
    /// ``WSClient/init(_:configuration:)``.
    /// - Throws: ``WSClientError``.
    @available(*, noasync, message: "blocks the thread: use WSClient in async code")
    public init(_ url: String, configuration: WSClientConfiguration = WSClientConfiguration()) throws(WSClientError) {
        requestedURL = url
        self.configuration = configuration
        dialer = try Dialer(url: url, configuration: configuration)
        connectionId = nextConnectionID()
        let first: (WSBlockingConnection, WSURL)
        do {
            first = try Self.dial(dialer)
        } catch where error.isRetryable && configuration.retry != nil {
            first = try Self.redial(dialer, after: error)
        }
        (connection, currentURL) = first
    }

    // MARK: Writing

    /// Sends a text message (Ballerina's `writeTextMessage`).
    /// - Throws: ``WSClientError/Code/connectionClosure`` once closed,
    ///   ``WSClientError/Code/writeTimedOut``.
    @available(*, noasync)
    public func writeTextMessage(_ text: String) throws(WSClientError) {
        try withConnection { (c) throws(WSConnectionError) in try c.send(text: text) }
    }

    /// Sends a binary message (Ballerina's `writeBinaryMessage`).
    @available(*, noasync)
    public func writeBinaryMessage(_ data: [UInt8]) throws(WSClientError) {
        try withConnection { (c) throws(WSConnectionError) in try c.send(binary: data) }
    }

    /// Sends a value (Ballerina's `writeMessage`): `String` as text, `[UInt8]` as binary, any
    /// other `Encodable` as JSON text.
    @available(*, noasync)
    public func writeMessage(_ value: some Encodable) throws(WSClientError) {
        switch try encode(value) {
        case .text(let s): try writeTextMessage(s)
        case .binary(let b): try writeBinaryMessage(b)
        }
    }

    // MARK: Reading

    /// The next message, text or binary, waiting at most
    /// ``WSClientConfiguration/readTimeout``.
    /// - Throws: as ``WSClient/readMessage()``.
    @available(*, noasync)
    public func readMessage() throws(WSClientError) -> WSMessage {
        try withConnection { (c) throws(WSConnectionError) -> WSMessage in
            guard let message = try c.receive() else { throw .closed(c.closeInfo!) }
            return message
        }
    }

    /// The next message, which must be text (Ballerina's `readTextMessage`).
    @available(*, noasync)
    public func readTextMessage() throws(WSClientError) -> String { try text(of: try readMessage()) }

    /// The next message, which must be binary (Ballerina's `readBinaryMessage`).
    @available(*, noasync)
    public func readBinaryMessage() throws(WSClientError) -> [UInt8] { try bytes(of: try readMessage()) }

    /// The next message bound to `T` (Ballerina's `readMessage(targetType)`), as
    /// ``WSClient/readMessage(as:)``.
    @available(*, noasync)
    public func readMessage<T: Decodable>(as type: T.Type = T.self) throws(WSClientError) -> T {
        try bind(try readMessage(), to: type, validate: configuration.validation)
    }

    // MARK: Control frames

    /// Sends a Ping (payload at most 125 bytes).
    @available(*, noasync)
    public func ping(_ data: [UInt8] = []) throws(WSClientError) {
        do { try connection.ping(data) } catch { throw translate(error) }
    }

    /// Sends a Pong (payload at most 125 bytes).
    @available(*, noasync)
    public func pong(_ data: [UInt8] = []) throws(WSClientError) {
        do { try connection.pong(data) } catch { throw translate(error) }
    }

    // MARK: Closing

    /// Closes the connection (Ballerina's `close`), as ``WSClient/close(statusCode:reason:timeout:)``.
    @available(*, noasync)
    public func close(statusCode: Int = 1000, reason: String = "", timeout: Duration = .seconds(60)) throws(WSClientError) {
        guard let code = UInt16(exactly: statusCode).map(WSCloseCode.init(rawValue:)) else {
            throw WSClientError(.usage, "\(statusCode) is not a close code")
        }
        closedByUser = true
        let info: WSProtocol.CloseInfo
        do { info = try connection.close(code: code, reason: reason, timeout: timeout) } catch { throw translate(error) }
        if info.cause == .closeTimeout && info.received == nil {
            throw WSClientError(.connectionClosure, "the server's Close did not come within \(timeout)", closeInfo: info)
        }
    }

    // MARK: The connection

    /// Whether messages can be sent and received.
    public var isOpen: Bool { connection.isOpen }
    /// Whether the connection uses TLS.
    public var isSecure: Bool { currentURL.isSecure }
    /// The subprotocol the server chose, if any.
    public var negotiatedSubProtocol: String? { connection.negotiatedSubprotocol }
    /// The server's answer to the upgrade.
    public var httpResponse: HTTPResponse? { connection.handshake?.response }
    /// The current connection's URL (after redirects).
    public var url: String { currentURL.description }
    /// How the connection ended, once it has.
    public var closeInfo: WSProtocol.CloseInfo? { connection.closeInfo }
    /// The socket, for `poll` beside other descriptors (see
    /// ``WSBlockingConnection/fileDescriptor``); it changes after a reconnection.
    public var fileDescriptor: Int32 { connection.fileDescriptor }

    /// Sets an attribute of the connection.
    public func setAttribute(_ key: String, _ value: Any) { attributes[key] = value }
    /// An attribute, if set.
    public func getAttribute(_ key: String) -> Any? { attributes[key] }
    /// Removes an attribute.
    public func removeAttribute(_ key: String) { attributes.removeValue(forKey: key) }

    // MARK: Connecting and reconnecting

    private func withConnection<R>(_ operation: (WSBlockingConnection) throws(WSConnectionError) -> R) throws(WSClientError) -> R {
        while true {
            do {
                return try operation(connection)
            } catch {
                let failure = translate(error)
                guard configuration.retry != nil, failure.isRetryable, !closedByUser else { throw failure }
                (connection, currentURL) = try Self.redial(dialer, after: failure)
            }
        }
    }

    private func translate(_ error: WSConnectionError) -> WSClientError {
        Self.translate(error, url: currentURL, closeInfo: connection.closeInfo)
    }

    private static func translate(_ error: WSConnectionError, url: WSURL, closeInfo: WSProtocol.CloseInfo?) -> WSClientError {
        switch error {
        case .transport(let e):
            // A socket that failed after the opening is a dropped connection.
            if let closeInfo { return WSClientError(.connection, e.description, closeInfo: closeInfo, underlying: e) }
            return .from(e)
        case .rejected(let r): return .rejected(r, url: url)
        case .handshakeFailed(let e): return .from(e)
        case .protocolViolation(let e): return .from(e, closeInfo: closeInfo)
        case .closed(let info): return .closed(info)
        case .timeout(let what) where what == "read":
            return WSClientError(.readTimedOut, "no message within the read timeout")
        case .timeout: return WSClientError(.writeTimedOut, "the write did not complete within the write timeout")
        case .usage(let e): return .from(e)
        }
    }

    private static func redial(_ dialer: Dialer, after error: WSClientError) throws(WSClientError) -> (WSBlockingConnection, WSURL) {
        var schedule = RetrySchedule(dialer.configuration, after: error)
        var failure: WSClientError?
        while let delay = schedule.next(after: failure) {
            sleep(for: delay)
            do { return try dial(dialer) } catch where error.isRetryable { failure = error }
        }
        throw schedule.last
    }

    private static func dial(_ dialer: Dialer) throws(WSClientError) -> (WSBlockingConnection, WSURL) {
        var url = dialer.url
        var chain = [url]
        let configuration = dialer.configuration
        var settings = WSBlockingConnection.Configuration()
        settings.connection = configuration.connection
        settings.readTimeout = configuration.readTimeout
        settings.writeTimeout = configuration.writeTimeout
        settings.tls = configuration.tls
        while true {
            let handshake = try dialer.handshake(for: url)
            settings.proxy = try dialer.proxy(for: url)
            do {
                let connection = try WSBlockingConnection(client: handshake, configuration: settings)
                if configuration.onPing != nil || configuration.onPong != nil {
                    connection.onControlFrame = { [unowned connection] event in
                        switch event {
                        case .ping(let payload):
                            if let reply = configuration.onPing?(Array(payload)) { try? connection.pong(reply) }
                        case .pong(let payload):
                            configuration.onPong?(Array(payload))
                        default:
                            break
                        }
                    }
                }
                configuration.logger.connected(url, connection.handshake!)
                return (connection, url)
            } catch .rejected(let rejection) {
                url = try dialer.redirect(rejection, from: url, chain: &chain)
            } catch {
                throw translate(error, url: url, closeInfo: nil)
            }
        }
    }
}

/// Sleeps the calling thread.
private func sleep(for duration: Duration) {
    let (seconds, attoseconds) = duration.components
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
