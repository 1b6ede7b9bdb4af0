public import HTTPTypes
public import WSCore

/// Refuses an upgrade request (Ballerina's `UpgradeError`): the HTTP answer the client gets.
public struct WSUpgradeError: Error, Sendable, CustomStringConvertible {
    /// The status, for example 401, 403 or 404.
    public var status: HTTPResponse.Status
    /// Fields of the answer, such as `WWW-Authenticate`.
    public var headers: HTTPFields
    /// The answer's body.
    public var body: [UInt8]

    /// Creates a refusal.
    public init(status: HTTPResponse.Status, headers: HTTPFields = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// Creates a refusal with a plain-text body.
    public init(status: HTTPResponse.Status, headers: HTTPFields = [:], message: String) {
        self.init(status: status, headers: headers, body: Array(message.utf8))
    }

    public var description: String { "upgrade refused: \(status.code) \(status.reasonPhrase)" }
}

/// What went wrong on a connection, as ``WSService/onError(_:error:)`` and custom-dispatch
/// error handlers receive it. The code follows Ballerina's error kinds.
public struct WSServiceError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public var code: Code
    /// What exactly, for logs (never the peer's payload).
    public var message: String
    /// The close code sent for it, if the connection is being closed because of it.
    public var closeCode: WSCloseCode?
    /// The underlying error (a `DecodingError`, a ``WSProtocolError``, a callback's error).
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, closeCode: WSCloseCode? = nil, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.closeCode = closeCode
        self.underlying = underlying
    }

    public var description: String { "\(code): \(message)" }

    /// An open set of error kinds (Ballerina's `websocket:Error` subtypes).
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A message did not bind to the expected type (Ballerina's `PayloadBindingError`).
        public static let payloadBinding = Code(rawValue: "PayloadBindingError")
        /// A bound value failed its validation (Ballerina's `PayloadValidationError`).
        public static let payloadValidation = Code(rawValue: "PayloadValidationError")
        /// The peer broke RFC 6455 or RFC 7692 (Ballerina's `ProtocolError`).
        public static let `protocol` = Code(rawValue: "ProtocolError")
        /// A message or frame was larger than allowed (Ballerina's `PayloadTooLargeError`).
        public static let payloadTooLarge = Code(rawValue: "PayloadTooLargeError")
        /// A callback threw (Ballerina: an error returned from a remote method).
        public static let callback = Code(rawValue: "CallbackError")
        /// Writing failed: the connection is closed or closing (Ballerina's
        /// `ConnectionClosureError`).
        public static let connectionClosure = Code(rawValue: "ConnectionClosureError")
        /// A write was refused (too large for the outbound buffer, invalid text) (Ballerina's
        /// generic `Error`).
        public static let write = Code(rawValue: "Error")
    }
}

/// Refuses to attach a service, or to start the listener: the service or configuration
/// cannot work as given.
public struct WSServiceConfigurationError: Error, Sendable, CustomStringConvertible {
    /// Why.
    public var message: String
    /// Creates the error.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
