public import HTTPTypes

/// The opening handshake failed (RFC 6455 §4).
///
/// On a server it carries the HTTP status to answer with (and any header fields that answer
/// needs, such as `Sec-WebSocket-Version: 13` for a 426); the engine has already queued that
/// answer. On a client it says what was wrong with the server's response. The detail never
/// echoes more than a short, printable excerpt of what the peer sent.
public struct WSHandshakeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Which rule was broken.
    public var code: Code
    /// What exactly, for logs.
    public var detail: String

    /// Creates an error with a detail.
    public init(_ code: Code, detail: String) {
        self.code = code
        self.detail = detail
    }

    /// The status a server answers with, or nil for client-side failures.
    public var status: HTTPResponse.Status? { code.status.map { HTTPResponse.Status(code: $0) } }

    /// Equality compares the code only (the detail is for people).
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String { "\(code.rawValue): \(detail)" }

    /// An open set of handshake failure kinds; each server-side one names its HTTP status.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        /// The HTTP status code a server answers with; nil for client-side failures.
        public var status: Int?

        public init(rawValue: String) {
            self.rawValue = rawValue
            self.status = Self.known.first { $0.rawValue == rawValue }?.status
        }

        init(_ rawValue: String, status: Int?) {
            self.rawValue = rawValue
            self.status = status
        }

        public static func == (lhs: Self, rhs: Self) -> Bool { lhs.rawValue == rhs.rawValue }
        public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }
        public var description: String { rawValue }

        // Server side: the request.

        /// The request is not valid HTTP/1.1 (RFC 9112 §2–§5): bad request line, bare LF, obsolete
        /// line folding, a bad field name or value, a duplicated single-valued field, a body.
        public static let malformedRequest = Code("malformedRequest", status: 400)
        /// The request-target is longer than the server's `maxURILength` (RFC 9110 §15.5.15).
        public static let uriTooLong = Code("uriTooLong", status: 414)
        /// The header fields are larger than the server's `maxHeaderSize` (RFC 6585 §5).
        public static let headerFieldsTooLarge = Code("headerFieldsTooLarge", status: 431)
        /// §4.1: "The method of the request MUST be GET".
        public static let methodNotAllowed = Code("methodNotAllowed", status: 405)
        /// §4.1: "the HTTP version MUST be at least 1.1".
        public static let unsupportedHTTPVersion = Code("unsupportedHTTPVersion", status: 400)
        /// §4.1: the request "MUST contain a |Host| header field".
        public static let missingHost = Code("missingHost", status: 400)
        /// The request's path names no resource of this server (RFC 9110 §15.5.5).
        public static let notFound = Code("notFound", status: 404)
        /// §4.2.1: no `Upgrade` header field with the token `websocket`: answered 426 with
        /// `Upgrade: websocket` (RFC 9110 §15.5.22), which is what a plain HTTP request gets.
        public static let upgradeRequired = Code("upgradeRequired", status: 426)
        /// §4.2.1: no `Connection` header field with the token `Upgrade`.
        public static let missingConnectionUpgrade = Code("missingConnectionUpgrade", status: 400)
        /// §4.4: `Sec-WebSocket-Version` is not 13: answered 426 with `Sec-WebSocket-Version: 13`.
        public static let unsupportedVersion = Code("unsupportedVersion", status: 426)
        /// §4.1: `Sec-WebSocket-Key` must be the base64 of 16 bytes, once.
        public static let invalidKey = Code("invalidKey", status: 400)
        /// `Sec-WebSocket-Protocol` or `Sec-WebSocket-Extensions` does not follow its grammar
        /// (§4.1, §9.1).
        public static let invalidNegotiationHeader = Code("invalidNegotiationHeader", status: 400)
        /// More bytes arrived after the request, before our answer, than a conforming client
        /// could send (§4.1: it "MUST wait for a response from the server before sending any
        /// further data").
        public static let dataBeforeHandshake = Code("dataBeforeHandshake", status: 400)
        /// The request did not arrive within the handshake timeout: answered 408 (server), or
        /// the response did not (client, no status).
        public static let handshakeTimeout = Code("handshakeTimeout", status: 408)
        /// The request head did not arrive within the request-head timeout
        /// (``WSServerHandshake/requestHeadTimeout``, shorter than the handshake's): answered 408.
        public static let requestHeadTimeout = Code("requestHeadTimeout", status: 408)

        // Client side: the response.

        /// The response is not valid HTTP/1.1.
        public static let malformedResponse = Code("malformedResponse", status: nil)
        /// The response head is larger than the client's `maxResponseHeaderSize`.
        public static let responseTooLarge = Code("responseTooLarge", status: nil)
        /// §4.1: the response's `Upgrade` is not `websocket`.
        public static let invalidUpgrade = Code("invalidUpgrade", status: nil)
        /// §4.1: the response's `Connection` has no `Upgrade` token.
        public static let invalidConnection = Code("invalidConnection", status: nil)
        /// §4.1: `Sec-WebSocket-Accept` is missing or does not match our key.
        public static let invalidAccept = Code("invalidAccept", status: nil)
        /// §4.1: the server chose a subprotocol we did not offer, or several.
        public static let unexpectedSubprotocol = Code("unexpectedSubprotocol", status: nil)
        /// §4.1: the server answered with an extension we did not offer, or with parameters its
        /// negotiation rejects.
        public static let unexpectedExtension = Code("unexpectedExtension", status: nil)

        static let known: [Code] = [
            .malformedRequest, .uriTooLong, .headerFieldsTooLarge, .methodNotAllowed, .unsupportedHTTPVersion,
            .missingHost, .notFound, .upgradeRequired, .missingConnectionUpgrade, .unsupportedVersion, .invalidKey,
            .invalidNegotiationHeader, .dataBeforeHandshake, .handshakeTimeout, .requestHeadTimeout, .malformedResponse,
            .responseTooLarge, .invalidUpgrade, .invalidConnection, .invalidAccept, .unexpectedSubprotocol,
            .unexpectedExtension,
        ]
    }
}

/// A short, printable excerpt of peer bytes for an error detail (never the whole input).
func excerpt(_ bytes: some Collection<UInt8>, limit: Int = 40) -> String {
    var s = ""
    for b in bytes.prefix(limit) {
        s += (0x20..<0x7F).contains(b) ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
    }
    return bytes.count > limit ? s + "…" : s
}
