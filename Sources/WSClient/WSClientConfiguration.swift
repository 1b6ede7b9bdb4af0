// The client's settings: Ballerina's `ClientConfiguration` (with `retryConfig`), in one Sendable
// struct shared by the async client and its blocking twin.

internal import Glibc
public import HTTPTypes
public import Logging
public import WSCore
public import WSTransport

/// How a ``WSClient`` or ``WSBlockingClient`` connects and behaves (Ballerina's
/// `websocket:ClientConfiguration`).
///
/// ```swift
/// var configuration = WSClientConfiguration()
/// configuration.subProtocols = ["chat.v2"]
/// configuration.customHeaders[.userAgent] = "prices-feed/1.0"
/// configuration.auth = .bearer(token)
/// configuration.readTimeout = .seconds(30)
/// configuration.retry = WSRetryConfig(maxCount: 5, interval: .seconds(1), backOffFactor: 2)
/// let client = try await WSClient("wss://example.com/prices", configuration: configuration)
/// ```
public struct WSClientConfiguration: Sendable {
    /// Subprotocols to offer, most preferred first (`Sec-WebSocket-Protocol`).
    public var subProtocols: [String] = []
    /// More fields for the upgrade request (`Origin`, `User-Agent`, …). The fields the
    /// handshake sets itself (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-*`) are refused.
    public var customHeaders: HTTPFields = [:]
    /// Cookies, sent as one `Cookie` field.
    public var cookies: [WSCookie] = []
    /// Credentials for the `Authorization` field: HTTP Basic or a bearer token (JWT and OAuth2
    /// grants come with `WSAuth`). Default: Basic from the URL's `user:password@`, if any.
    /// They are not sent to another host after a redirect.
    public var auth: WSAuthorization?
    /// How long a read waits for a message; nil (the default) waits as long as the connection
    /// lives. A timeout throws ``WSClientError/Code/readTimedOut`` and leaves the connection
    /// usable (Ballerina's `readTimeout`).
    public var readTimeout: Duration?
    /// How long a write may wait while the connection's outbound buffer is full (a slow
    /// server); nil (the default) waits. Past it: ``WSClientError/Code/writeTimedOut``.
    public var writeTimeout: Duration?
    /// How long connecting (TCP, a proxy, TLS) and the server's answer to the upgrade may take.
    /// Default 300 s (Ballerina's `handShakeTimeout`).
    public var handshakeTimeout: Duration = .seconds(300)
    /// TLS for `wss://`: trust roots (a CA file, or the system's), a client certificate.
    /// Hostname verification and SNI are always on unless the context turns verification off.
    /// nil (the default) verifies against the system's trust store.
    public var tls: WSTLSContext?
    /// The largest message accepted, in bytes (after decompression). Default 1 MiB.
    public var maxMessageSize: Int = 1 << 20
    /// The largest frame accepted; nil (the default) follows ``maxMessageSize``, as every
    /// common server sends a large message as one frame. (Ballerina's 65,536-byte default
    /// refuses those.)
    public var maxFrameSize: Int?
    /// Offer permessage-deflate (RFC 7692). Default on (Ballerina's
    /// `webSocketCompressionEnabled`).
    public var compression: Bool = true
    /// Keepalive: a Ping this often while open, and the connection is failed if its Pong does
    /// not come within as long again. nil turns it off. Default 20 s.
    public var keepalive: Duration? = .seconds(20)
    /// Called for each Ping from the server (Ballerina's `pingPongHandler.onPing`), on the
    /// connection's thread (do not block): what it returns is sent as the Pong's payload, nil
    /// sends none. Without it, every Ping is answered at once with its own payload.
    public var onPing: (@Sendable ([UInt8]) -> [UInt8]?)?
    /// Called for each Pong from the server (`pingPongHandler.onPong`), on the connection's
    /// thread.
    public var onPong: (@Sendable ([UInt8]) -> Void)?
    /// Reconnecting after a dropped connection; nil (the default) never retries.
    public var retry: WSRetryConfig?
    /// Redirects (301, 302, 303, 307, 308) followed for the upgrade request; 0 refuses them.
    /// Default 10. `wss` to `ws` is always refused.
    public var maxRedirects: Int = 10
    /// Which HTTP proxy to go through. Default: the environment's (`http_proxy`,
    /// `https_proxy`, `no_proxy`).
    public var proxy: WSProxySetting = .environment
    /// Validate bound messages that adopt ``WSValidatable`` (Ballerina's `validation`).
    /// Default on.
    public var validation: Bool = true
    /// Where connects, retries and failures are logged. Default: nowhere.
    public var logger: Logger = Logger(label: "swift-ws.client", factory: { _ in SwiftLogNoOpLogHandler() })
    /// The engine's settings beyond the fields above (close timeout, delivery, water marks);
    /// the fields above override their counterparts in it.
    public var engine: WSProtocol.Configuration = .default

    /// Creates the default configuration.
    public init() {}

    /// The engine's configuration with this one's fields applied.
    var connection: WSProtocol.Configuration {
        var c = engine
        c.maxMessageSize = maxMessageSize
        c.maxFrameSize = maxFrameSize ?? maxMessageSize
        c.pingInterval = keepalive
        if let keepalive { c.pingTimeout = keepalive }
        c.autoPong = onPing == nil
        return c
    }
}

/// Ballerina's `WebSocketRetryConfig`: when a connection drops (no Close from the server, or
/// a Close with 1001, 1011, 1012, 1013 or 1014), the client reconnects to the same URL with the
/// same headers and credentials, waiting `interval × backOffFactor^n` (at most
/// `maxWaitInterval`) before attempt `n + 1`.
///
/// A write that failed is made again on the new connection; a read waits for it. Messages
/// already handed to the old connection's socket are not sent again (WebSocket has no
/// acknowledgements). A Close with 1000 or any other code is never retried.
public struct WSRetryConfig: Sendable, Hashable {
    /// Attempts after a drop before giving up; 0 retries indefinitely (Ballerina's rule).
    public var maxCount: Int
    /// The first wait. Default 1 s.
    public var interval: Duration
    /// How much each wait grows over the previous one. Default 1 (constant).
    public var backOffFactor: Double
    /// The longest wait. Default 30 s.
    public var maxWaitInterval: Duration
    /// Random spread of each wait, as a fraction (0.2: ±20 %). Default 0 (none), so that
    /// the waits are exactly as configured.
    public var jitter: Double

    /// Creates a retry policy (Ballerina's defaults).
    public init(maxCount: Int = 0, interval: Duration = .seconds(1), backOffFactor: Double = 1,
                maxWaitInterval: Duration = .seconds(30), jitter: Double = 0) {
        self.maxCount = maxCount
        self.interval = interval
        self.backOffFactor = backOffFactor
        self.maxWaitInterval = maxWaitInterval
        self.jitter = jitter
    }

    /// The wait before attempt `attempt` (1-based), without jitter:
    /// `interval × backOffFactor^(attempt − 1)`, at most ``maxWaitInterval``.
    public func delay(beforeAttempt attempt: Int) -> Duration {
        let seconds = interval.seconds * pow(max(backOffFactor, 0), Double(max(attempt - 1, 0)))
        return .seconds(min(seconds, maxWaitInterval.seconds))
    }

    /// ``delay(beforeAttempt:)`` with the jitter applied.
    func jittered(_ delay: Duration) -> Duration {
        guard jitter > 0 else { return delay }
        return .seconds(max(0, delay.seconds * (1 + Double.random(in: -jitter...jitter))))
    }

    /// Whether another attempt is allowed after `attempts` made.
    func allows(attempt: Int) -> Bool { maxCount <= 0 || attempt <= maxCount }
}

/// Which HTTP proxy a client goes through.
public enum WSProxySetting: Sendable, Hashable {
    /// The environment's: `http_proxy` for `ws://`, `https_proxy` for `wss://`, unless
    /// `no_proxy` lists the host (see ``WSProxy/fromEnvironment(for:environment:)``).
    case environment
    /// Always this proxy.
    case proxy(WSProxy)
    /// Never a proxy.
    case direct

    /// The proxy for `url`.
    func resolve(for url: WSURL) throws(WSUsageError) -> WSProxy? {
        switch self {
        case .environment: try WSProxy.fromEnvironment(for: url)
        case .proxy(let p): p
        case .direct: nil
        }
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
