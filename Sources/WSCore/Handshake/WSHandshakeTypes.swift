public import HTTPTypes

/// The Sec-WebSocket-Accept computation of RFC 6455 §4.2.2.
public enum WSHandshake {
    /// The GUID of RFC 6455 §1.3, appended to the key before hashing.
    public static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// §4.2.2: "the base64-encoded SHA-1 of the concatenation of the |Sec-WebSocket-Key| (as a
    /// string, not base64-decoded) with the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"".
    public static func acceptValue(forKey key: String) -> String {
        wsBase64Encode(wsSHA1(Array((key + guid).utf8)))
    }
}

/// A cookie sent by a client (`Cookie: name=value`, RFC 6265 §4.2).
public struct WSCookie: Hashable, Sendable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// Credentials a client sends in the `Authorization` header field.
public enum WSAuthorization: Hashable, Sendable {
    /// HTTP Basic (RFC 7617): `user:password`, base64-encoded.
    case basic(user: String, password: String)
    /// A bearer token (RFC 6750), such as a JWT or an OAuth2 access token.
    case bearer(String)

    /// The header field value.
    public var fieldValue: String {
        switch self {
        case .basic(let user, let password): "Basic " + wsBase64Encode(Array("\(user):\(password)".utf8))
        case .bearer(let token): "Bearer " + token
        }
    }
}

/// How a client opens a connection: the URL and everything the request carries.
///
/// ```swift
/// var request = WSClientHandshake(url: try WSURL("ws://127.0.0.1:9001/chat"))
/// request.subprotocols = ["chat.v2", "chat.v1"]
/// request.headers[.origin] = "http://127.0.0.1:9001"
/// var ws = try WSProtocol(client: request, now: .zero)
/// ```
public struct WSClientHandshake: Sendable {
    /// Where to connect; the request line and `Host` come from it.
    public var url: WSURL
    /// Subprotocols to offer, most preferred first (`Sec-WebSocket-Protocol`, §4.1). Each must be a token.
    public var subprotocols: [String] = []
    /// Extensions to offer, in order of preference; each negotiator also checks the answer.
    public var extensions: [any WSExtensionNegotiator] = []
    /// More header fields, such as `Origin` or `User-Agent`. The fields the handshake itself
    /// sets (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-*`) are refused here.
    public var headers: HTTPFields = [:]
    /// Cookies, sent as one `Cookie` field.
    public var cookies: [WSCookie] = []
    /// Credentials for the `Authorization` field; defaults to Basic from the URL's user info.
    public var authorization: WSAuthorization?
    /// How long the server may take to answer. Default 300 s (as Ballerina's client).
    public var timeout: Duration = .seconds(300)
    /// The largest response head accepted (status line plus fields), in bytes. Default 16384:
    /// twice a common server's limit on what it sends; a larger answer fails with
    /// ``WSHandshakeError/Code/responseTooLarge``.
    public var maxResponseHeaderSize: Int = 16384
    /// At most this much of a rejection's body is kept (the rest is not read). Default 64 KiB.
    public var maxRejectionBodySize: Int = 64 << 10

    /// A request for `url` with the defaults above.
    public init(url: WSURL) {
        self.url = url
        if let info = url.userInfo { authorization = .basic(user: info.user, password: info.password) }
    }

    /// Checks what the fields above can get wrong.
    public func validate() throws(WSUsageError) {
        func require(_ ok: Bool, _ why: String) throws(WSUsageError) {
            if !ok { throw .invalidHandshake(why) }
        }
        try require(subprotocols.allSatisfy(isToken), "each subprotocol must be a token")
        try require(Set(subprotocols).count == subprotocols.count, "subprotocols must be distinct")
        for field in headers {
            try require(!handshakeOwnedFields.contains(field.name), "\(field.name) is set by the handshake")
        }
        try require(cookies.allSatisfy { isToken($0.name) && $0.value.utf8.allSatisfy(isCookieOctet) },
                    "cookie names must be tokens and values cookie-octets (RFC 6265 §4.1.1)")
        try require(timeout > .zero, "timeout must be positive")
        try require(maxResponseHeaderSize > 0 && maxRejectionBodySize >= 0, "limits must be positive")
        for negotiator in extensions {
            try require(isToken(negotiator.extensionName), "extension names must be tokens")
            try require(negotiator.offers().allSatisfy(\.isValid), "extension offers must be tokens (§9.1)")
        }
    }
}

/// How a server reads opening handshakes.
public struct WSServerHandshake: Sendable {
    /// The longest request-target accepted, in bytes; longer answers 414. Default 4096 (as Ballerina).
    public var maxURILength: Int = 4096
    /// The largest field section accepted (the header lines with their CRLFs), in bytes; larger
    /// answers 431. Default 8192 (as Ballerina): browsers send 0.5–2 KiB, more with big cookies.
    public var maxHeaderSize: Int = 8192
    /// How long the opening handshake may take, from the connection's start: the TLS
    /// handshake, the request, and the application's decision on it; then 408 (no request
    /// yet) or 503 (no decision yet). Default 120 s (as Ballerina).
    public var timeout: Duration = .seconds(120)
    /// How long a new connection has to deliver its complete request head, from its start;
    /// then 408 (`requestHeadTimeout`). Default 10 s; nil leaves only ``timeout``.
    ///
    /// A client that connects and sends nothing holds a slot in the server's connection table;
    /// thousands of them would lock honest clients out until the handshake timeout. A real
    /// client sends its request within a round trip of connecting (a TLS handshake included),
    /// so a short limit costs it nothing, while an async upgrade decision keeps the whole
    /// ``timeout``.
    public var requestHeadTimeout: Duration? = .seconds(10)
    /// Extensions this server supports; ``WSProtocol/accept(subprotocol:extensions:headers:)``
    /// negotiates them against the client's offers.
    public var extensions: [any WSExtensionNegotiator] = []
    /// A `Server` field for every answer (101 and errors), or nil for none. Default nil.
    public var serverName: String?
    /// Whether a request path (without its query) names a resource this server has; a request
    /// for any other path is answered 404 before the upgrade is judged (so a plain GET of an
    /// unknown path gets 404, of a known one 426). nil (the default): every path exists, and
    /// the application decides on the upgrade. The listener of the service layer sets it from
    /// the paths attached.
    package var resourceExists: (@Sendable (String) -> Bool)?

    /// The defaults above.
    public init() {}

    /// Checks the fields.
    public func validate() throws(WSUsageError) {
        guard maxURILength > 0, maxHeaderSize > 0, timeout > .zero, requestHeadTimeout.map({ $0 > .zero }) ?? true else {
            throw .invalidHandshake("limits and timeouts must be positive")
        }
        guard serverName.map({ HTTPField.isValidValue($0) }) ?? true else { throw .invalidHandshake("invalid Server value") }
    }
}

/// What a client asked for, reported by ``WSProtocol/Event/upgradeRequested(_:)``; the
/// application answers with ``WSProtocol/accept(subprotocol:extensions:headers:)`` or
/// ``WSProtocol/reject(status:headers:body:)``.
public struct WSUpgradeRequest: Hashable, Sendable {
    /// The request as received. As in swift-http-types' HTTP/1 mapping, `Host` is in
    /// `authority`, the request-target in `path`, and `scheme` is nil (the transport knows it).
    public var head: HTTPRequest
    /// The path of the request-target, before any `?`.
    public var path: String
    /// The query of the request-target, after `?`, still percent-encoded; nil if none.
    public var query: String?
    /// The `Origin` field (§4.1, §10.2), if any.
    public var origin: String?
    /// The subprotocols offered, in the client's order of preference.
    public var subprotocols: [String]
    /// The extensions offered, in order.
    public var extensions: [WSExtensionElement]
    /// The cookies of every `Cookie` field, in order.
    public var cookies: [WSCookie]
    /// The client's `Sec-WebSocket-Key`.
    public var key: String

    /// Creates a request report (tests and transcripts build expected events this way).
    public init(head: HTTPRequest, path: String, query: String?, origin: String?, subprotocols: [String],
                extensions: [WSExtensionElement], cookies: [WSCookie], key: String) {
        self.head = head
        self.path = path
        self.query = query
        self.origin = origin
        self.subprotocols = subprotocols
        self.extensions = extensions
        self.cookies = cookies
        self.key = key
    }

    /// The first of `preferences` (the server's order) that the client offered, if any.
    public func selectSubprotocol(preferring preferences: [String]) -> String? {
        preferences.first { subprotocols.contains($0) }
    }

    /// The decoded `name=value` pairs of the query, in order (`+` is a space, as in HTML forms).
    public var queryItems: [(name: String, value: String)] {
        guard let query else { return [] }
        return query.split(separator: "&").map { item in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (formDecoded(parts[0]), parts.count > 1 ? formDecoded(parts[1]) : "")
        }
    }
}

/// The outcome of a completed opening handshake, reported by ``WSProtocol/Event/opened(_:)``.
public struct WSHandshakeResult: Hashable, Sendable {
    /// The request (sent by us as a client, received as a server).
    public var request: HTTPRequest
    /// The 101 response.
    public var response: HTTPResponse
    /// The subprotocol the server chose, if any.
    public var subprotocol: String?
    /// The extensions in use, in the server's order (the order they apply, §9.1).
    public var extensions: [WSExtensionElement]

    /// Creates a result (tests and transcripts build expected events this way).
    public init(request: HTTPRequest, response: HTTPResponse, subprotocol: String?, extensions: [WSExtensionElement]) {
        self.request = request
        self.response = response
        self.subprotocol = subprotocol
        self.extensions = extensions
    }
}

/// A server's answer other than 101, reported to a client by ``WSProtocol/Event/rejected(_:)``.
/// A 3xx carries `Location` for a redirect; a 401 carries `WWW-Authenticate`.
public struct WSHandshakeRejection: Hashable, Sendable {
    /// The response head.
    public var response: HTTPResponse
    /// The body (decoded from chunked transfer coding), at most
    /// ``WSClientHandshake/maxRejectionBodySize`` bytes.
    public var body: [UInt8]
    /// Whether the body was longer than the limit (or its framing broken) and was cut.
    public var isBodyTruncated: Bool

    /// Creates a rejection report (tests and transcripts build expected events this way).
    public init(response: HTTPResponse, body: [UInt8], isBodyTruncated: Bool) {
        self.response = response
        self.body = body
        self.isBodyTruncated = isBodyTruncated
    }
}

/// An allow-list for the `Origin` of browser requests (RFC 6455 §10.2): a server that only
/// serves its own pages should refuse other origins with 403.
///
/// ```swift
/// let policy = WSOriginPolicy(allowing: ["https://example.com", "*.example.org"])
/// policy.allows("https://chat.example.org")   // true
/// ```
public struct WSOriginPolicy: Hashable, Sendable {
    /// Exact origins (`scheme://host[:port]`) and host patterns (`example.com`, `*.example.com`
    /// for any subdomain, `*` for any host).
    public var allowed: [String]
    /// Whether a request without `Origin` (a non-browser client) passes. Default true.
    public var allowsMissingOrigin: Bool

    public init(allowing allowed: [String], allowsMissingOrigin: Bool = true) {
        self.allowed = allowed
        self.allowsMissingOrigin = allowsMissingOrigin
    }

    /// Whether `origin` (the field's value, or nil when absent) is allowed.
    public func allows(_ origin: String?) -> Bool {
        guard let origin else { return allowsMissingOrigin }
        guard let parsed = Self.normalize(origin) else { return allowed.contains(origin) }
        return allowed.contains { (entry: String) -> Bool in
            if entry.contains("://") { return Self.normalize(entry).map { $0.scheme == parsed.scheme && $0.host == parsed.host && $0.port == parsed.port } ?? false }
            let pattern = asciiLowercased(entry)
            if pattern == "*" { return true }
            if pattern.hasPrefix("*.") { return parsed.host.hasSuffix(pattern.dropFirst()) }
            return parsed.host == pattern
        }
    }

    /// `scheme://host[:port]` lowercased with the default port dropped; nil for `null` or junk.
    private static func normalize(_ origin: String) -> (scheme: String, host: String, port: String)? {
        guard let sep = origin.firstRange(of: "://") else { return nil }
        let scheme = asciiLowercased(origin[..<sep.lowerBound])
        var hostPort = Substring(asciiLowercased(origin[sep.upperBound...]))
        if hostPort.hasSuffix("/") { hostPort = hostPort.dropLast() }
        var port = ""
        if let colon = hostPort.lastIndex(of: ":"), !hostPort[colon...].contains("]") {
            port = String(hostPort[hostPort.index(after: colon)...])
            hostPort = hostPort[..<colon]
        }
        if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") { port = "" }
        guard !hostPort.isEmpty, !hostPort.contains("/") else { return nil }
        return (scheme, String(hostPort), port)
    }
}

// MARK: - Shared rules

/// Fields the handshake sets itself; applications may not add them.
let handshakeOwnedFields: Set<HTTPField.Name> = [
    .hostField, .upgrade, .connection, .secWebSocketKey, .secWebSocketVersion, .secWebSocketAccept,
    .secWebSocketProtocol, .secWebSocketExtensions,
]

/// RFC 6265 §4.1.1 cookie-octet.
func isCookieOctet(_ b: UInt8) -> Bool {
    b == 0x21 || (0x23...0x2B).contains(b) || (0x2D...0x3A).contains(b) || (0x3C...0x5B).contains(b) || (0x5D...0x7E).contains(b)
}

private func formDecoded(_ s: Substring) -> String {
    String(decoding: percentDecodedBytes(s, strict: false, plusIsSpace: true) ?? [], as: UTF8.self)
}

/// Reason phrases for the statuses the engine produces when the caller gives none.
func withReasonPhrase(_ status: HTTPResponse.Status) -> HTTPResponse.Status {
    guard status.reasonPhrase.isEmpty else { return status }
    let phrase: String = switch status.code {
    case 101: "Switching Protocols"
    case 301: "Moved Permanently"
    case 302: "Found"
    case 307: "Temporary Redirect"
    case 308: "Permanent Redirect"
    case 400: "Bad Request"
    case 401: "Unauthorized"
    case 403: "Forbidden"
    case 404: "Not Found"
    case 405: "Method Not Allowed"
    case 408: "Request Timeout"
    case 414: "URI Too Long"
    case 426: "Upgrade Required"
    case 429: "Too Many Requests"
    case 431: "Request Header Fields Too Large"
    case 500: "Internal Server Error"
    case 503: "Service Unavailable"
    default: ""
    }
    return HTTPResponse.Status(code: status.code, reasonPhrase: phrase)
}
