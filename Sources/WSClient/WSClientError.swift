// Why a client call failed: one error type whose code follows Ballerina's error kinds.

public import HTTPTypes
public import WSCore
import WSTransport

/// The failure of a ``WSClient`` or ``WSBlockingClient`` call (Ballerina's `websocket:Error`
/// and its subtypes, as ``code``).
///
/// ```swift
/// do {
///     let quote = try await client.readMessage(as: Quote.self)
/// } catch let error where error.code == .payloadBinding {
///     print("not a quote:", error.message)
/// }
/// ```
public struct WSClientError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public var code: Code
    /// What exactly (never the peer's payload).
    public var message: String
    /// How the connection ended, when it has (the server's Close code and reason, or 1006).
    public var closeInfo: WSProtocol.CloseInfo?
    /// The server's answer to the upgrade, when it refused it (``Code/upgradeRejected``) or
    /// redirected too often.
    public var response: HTTPResponse?
    /// The refusal's body (at most 64 KiB).
    public var responseBody: [UInt8]
    /// The error below (a ``WSProtocolError``, a ``WSTransportError``, a `DecodingError`, …).
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, closeInfo: WSProtocol.CloseInfo? = nil, response: HTTPResponse? = nil,
                responseBody: [UInt8] = [], underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.closeInfo = closeInfo
        self.response = response
        self.responseBody = responseBody
        self.underlying = underlying
    }

    public var description: String { "\(code): \(message)" }

    /// An open set of error kinds (Ballerina's `websocket:Error` subtypes).
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The server could not be reached, or the connection dropped (`ConnectionError`).
        public static let connection = Code(rawValue: "ConnectionError")
        /// The connection is closed or closing: nothing more can be read or written
        /// (`ConnectionClosureError`). ``WSClientError/closeInfo`` says how it ended.
        public static let connectionClosure = Code(rawValue: "ConnectionClosureError")
        /// The server did not answer the upgrade in time (`HandshakeTimedOut`).
        public static let handshakeTimedOut = Code(rawValue: "HandshakeTimedOut")
        /// The server's answer was not a valid WebSocket upgrade (`InvalidHandshakeError`), or
        /// a redirect could not be followed (a loop, too many, `wss` to `ws`).
        public static let invalidHandshake = Code(rawValue: "InvalidHandshakeError")
        /// The server refused the upgrade: ``WSClientError/response`` holds its answer
        /// (`UpgradeError`).
        public static let upgradeRejected = Code(rawValue: "UpgradeError")
        /// The server refused the credentials (401 or 403 to the upgrade) (`AuthError`).
        public static let auth = Code(rawValue: "AuthError")
        /// A message did not bind to the type asked for, or is of the other kind
        /// (`PayloadBindingError`).
        public static let payloadBinding = Code(rawValue: "PayloadBindingError")
        /// A bound value failed its validation (`PayloadValidationError`).
        public static let payloadValidation = Code(rawValue: "PayloadValidationError")
        /// A message or frame was larger than allowed (`PayloadTooLargeError`).
        public static let payloadTooLarge = Code(rawValue: "PayloadTooLargeError")
        /// The server broke RFC 6455 or RFC 7692 (`ProtocolError`).
        public static let `protocol` = Code(rawValue: "ProtocolError")
        /// No message came within the read timeout; the connection is still usable
        /// (`ReadTimedOutError`).
        public static let readTimedOut = Code(rawValue: "ReadTimedOutError")
        /// A write waited for the outbound buffer longer than the write timeout.
        public static let writeTimedOut = Code(rawValue: "WriteTimedOutError")
        /// TLS failed: certificate verification, the handshake (`SslError`).
        public static let ssl = Code(rawValue: "SslError")
        /// The call was not valid: a bad URL, configuration or argument (Ballerina's generic
        /// `Error`).
        public static let usage = Code(rawValue: "Error")
    }
}

extension WSClientError {
    /// A failure of the protocol engine (the server broke the protocol, or a limit was hit).
    static func from(_ error: WSProtocolError, closeInfo: WSProtocol.CloseInfo?) -> WSClientError {
        WSClientError(error.closeCode == .messageTooBig ? .payloadTooLarge : .protocol, error.description,
                      closeInfo: closeInfo, underlying: error)
    }

    /// A transport failure (refused, reset, TLS, the proxy).
    static func from(_ error: WSTransportError) -> WSClientError {
        if error.isTimeout { return WSClientError(.handshakeTimedOut, error.description, underlying: error) }
        return WSClientError(error.operation.hasPrefix("TLS") ? .ssl : .connection, error.description, underlying: error)
    }

    /// A refusal of the upgrade (not a redirect that was followed).
    static func rejected(_ rejection: WSHandshakeRejection, url: WSURL) -> WSClientError {
        let status = rejection.response.status
        let code: Code = status.code == 401 || status.code == 403 ? .auth : .upgradeRejected
        return WSClientError(code, "\(url) answered \(status.code) \(status.reasonPhrase)", response: rejection.response,
                             responseBody: rejection.body)
    }

    /// An invalid or late answer to the upgrade.
    static func from(_ error: WSHandshakeError) -> WSClientError {
        WSClientError(error.code == .handshakeTimeout ? .handshakeTimedOut : .invalidHandshake, error.description, underlying: error)
    }

    /// A call that was not valid now.
    static func from(_ error: WSUsageError) -> WSClientError {
        switch error {
        case .notOpen, .closeAlreadySent:
            WSClientError(.connectionClosure, "the connection is closed or closing", underlying: error)
        default:
            WSClientError(.usage, error.description, underlying: error)
        }
    }

    /// The connection ended (how, in `info`).
    static func closed(_ info: WSProtocol.CloseInfo) -> WSClientError {
        WSClientError(.connectionClosure, "the connection is closed: \(info)", closeInfo: info)
    }

    /// Whether reconnecting may cure it: the connection dropped without a Close, or the
    /// server closed with 1001, 1011, 1012, 1013 or 1014; or connecting failed at the
    /// transport (refused, reset, timed out).
    var isRetryable: Bool {
        switch code {
        case .connection, .handshakeTimedOut:
            return true
        case .connectionClosure, .protocol, .payloadTooLarge:
            guard let info = closeInfo else { return false }
            if info.received != nil, info.initiator == .remote {
                return [1001, 1011, 1012, 1013, 1014].contains(info.code.rawValue)
            }
            switch info.cause {
            case .transportClosed?, .keepaliveTimeout?: return info.initiator == nil || info.cause == .keepaliveTimeout
            default: return false
            }
        default:
            return false
        }
    }
}
