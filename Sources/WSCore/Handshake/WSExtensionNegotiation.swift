// `Sec-WebSocket-Extensions` (RFC 6455 §9.1) and the synchronous negotiation interface that
// extensions such as permessage-deflate (RFC 7692) plug into.
//
//     Sec-WebSocket-Extensions = extension-list
//     extension-list = 1#extension
//     extension = extension-token *( ";" extension-param )
//     extension-token = registered-token
//     registered-token = token
//     extension-param = token [ "=" (token | quoted-string) ]
//         ;When using the quoted-string syntax variant, the value
//         ;after quoted-string unescaping MUST conform to the
//         ;'token' ABNF.

/// One element of a `Sec-WebSocket-Extensions` list: an extension's name and its parameters,
/// as offered by a client or accepted by a server.
public struct WSExtensionElement: Hashable, Sendable, CustomStringConvertible {
    /// The extension token, such as `permessage-deflate`.
    public var name: String
    /// The parameters in order; a parameter without a value has `value == nil`.
    public var parameters: [Parameter]

    /// One `name[=value]` parameter.
    public struct Parameter: Hashable, Sendable {
        public var name: String
        public var value: String?
        public init(_ name: String, _ value: String? = nil) {
            self.name = name
            self.value = value
        }
    }

    /// Creates an element; `name` and every parameter name and value must be tokens (§9.1).
    public init(name: String, parameters: [Parameter] = []) {
        self.name = name
        self.parameters = parameters
    }

    /// The value of the first parameter named `name` (`.some(nil)` if it has no value).
    public subscript(parameter name: String) -> String?? {
        parameters.first { asciiLowercased($0.name) == asciiLowercased(name) }.map { $0.value }
    }

    /// Whether every name and value is a token, as §9.1 requires.
    public var isValid: Bool {
        isToken(name) && parameters.allSatisfy { isToken($0.name) && ($0.value.map(isToken) ?? true) }
    }

    /// The element as it appears in the header: `name; param; param=value`.
    public var description: String {
        ([name] + parameters.map { p in p.value.map { "\(p.name)=\($0)" } ?? p.name }).joined(separator: "; ")
    }

    /// Serializes a list of elements as one `Sec-WebSocket-Extensions` value.
    public static func serialize(_ elements: [WSExtensionElement]) -> String {
        elements.map(\.description).joined(separator: ", ")
    }

    /// Parses the values of every `Sec-WebSocket-Extensions` field of a message, in order.
    ///
    /// Accepts optional whitespace around separators, empty list elements (RFC 9110 §5.6.1), and
    /// quoted-string parameter values whose unescaped content is a token (§9.1). Returns nil for
    /// anything else.
    public static func parse(_ values: [String]) -> [WSExtensionElement]? {
        var elements: [WSExtensionElement] = []
        for value in values {
            guard let parsed = parse(value) else { return nil }
            elements += parsed
        }
        return elements
    }

    private static func parse(_ value: String) -> [WSExtensionElement]? {
        var p = ListParser(Array(value.utf8))
        var elements: [WSExtensionElement] = []
        while true {
            p.skipWhitespace()
            if p.atEnd { return elements }
            if p.consume(",") { continue }
            guard let name = p.token() else { return nil }
            var element = WSExtensionElement(name: name)
            p.skipWhitespace()
            while p.consume(";") {
                p.skipWhitespace()
                guard let paramName = p.token() else { return nil }
                p.skipWhitespace()
                var paramValue: String?
                if p.consume("=") {
                    p.skipWhitespace()
                    guard let v = p.peek == UInt8(ascii: "\"") ? p.quotedString() : p.token(), isToken(v) else { return nil }
                    paramValue = v
                    p.skipWhitespace()
                }
                element.parameters.append(Parameter(paramName, paramValue))
            }
            elements.append(element)
            guard p.atEnd || p.consume(",") else { return nil }
        }
    }
}

/// A cursor over a header value for the §9.1 grammar.
private struct ListParser {
    let bytes: [UInt8]
    var index = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { index == bytes.count }
    var peek: UInt8? { atEnd ? nil : bytes[index] }

    mutating func skipWhitespace() {
        while let b = peek, b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") { index += 1 }
    }

    mutating func consume(_ c: Unicode.Scalar) -> Bool {
        guard peek == UInt8(ascii: c) else { return false }
        index += 1
        return true
    }

    mutating func token() -> String? {
        let start = index
        while let b = peek, isTokenByte(b) { index += 1 }
        return index > start ? String(decoding: bytes[start..<index], as: UTF8.self) : nil
    }

    /// RFC 9110 §5.6.4: DQUOTE *( qdtext / quoted-pair ) DQUOTE, returned unescaped.
    mutating func quotedString() -> String? {
        guard consume("\"") else { return nil }
        var out: [UInt8] = []
        while let b = peek {
            index += 1
            switch b {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let escaped = peek, escaped == 0x09 || (0x20...0x7E).contains(escaped) || escaped >= 0x80 else { return nil }
                index += 1
                out.append(escaped)
            case 0x09, 0x20, 0x21, 0x23...0x5B, 0x5D...0x7E, 0x80...0xFF:
                out.append(b)
            default:
                return nil
            }
        }
        return nil
    }
}

/// Negotiates one extension in the opening handshake (RFC 6455 §9). Synchronous and stateless:
/// the same negotiator can serve every connection.
///
/// A client sends ``offers()``; a server's engine gathers the client's offers of
/// ``extensionName`` and asks ``accept(offers:)`` for the element to answer with; the client's
/// engine checks that answer with ``validate(response:offered:)``. The agreed elements are
/// reported in ``WSHandshakeResult/extensions``.
public protocol WSExtensionNegotiator: Sendable {
    /// The extension token this negotiator handles, compared case-insensitively.
    var extensionName: String { get }

    /// Client: the elements to offer, most preferred first (an extension may be offered several
    /// times with different parameters, §9.1).
    func offers() -> [WSExtensionElement]

    /// Server: chooses among the client's offers of this extension (in the client's order of
    /// preference) and returns the element to send back, or nil to decline them all. Offers
    /// with parameters this extension does not understand should be declined, not failed
    /// (RFC 7692 §5).
    func accept(offers: [WSExtensionElement]) -> WSExtensionElement?

    /// Client: whether `response` is an acceptable answer to what was offered. Return a short
    /// reason to fail the connection (§4.1: the client "MUST _Fail the WebSocket Connection_"
    /// when the server's answer "indicates the use of an extension that was not present in the
    /// client's handshake"), or nil to accept it.
    func validate(response: WSExtensionElement, offered: [WSExtensionElement]) -> String?

    /// Both roles: the per-connection transform for the agreed element (the server's answer),
    /// or nil for an extension that changes no frames. Called once per connection, when it
    /// opens. A connection can use at most one transform.
    func makeTransform(agreed: WSExtensionElement, role: WSProtocol.Role) -> (any WSMessageTransform)?
}

extension WSExtensionNegotiator {
    /// No transform: the extension changes no frames.
    public func makeTransform(agreed: WSExtensionElement, role: WSProtocol.Role) -> (any WSMessageTransform)? { nil }
}

/// The transform for the agreed `elements`, made by the negotiator of each; nil if none makes
/// one. Returns a failure reason if more than one would.
func makeTransform(_ elements: [WSExtensionElement], negotiators: [any WSExtensionNegotiator], role: WSProtocol.Role) -> Result<(any WSMessageTransform)?, WSHandshakeError> {
    var found: (any WSMessageTransform)?
    for element in elements {
        let name = asciiLowercased(element.name)
        guard let negotiator = negotiators.first(where: { asciiLowercased($0.extensionName) == name }),
              let transform = negotiator.makeTransform(agreed: element, role: role) else { continue }
        if found != nil {
            return .failure(WSHandshakeError(.unexpectedExtension, detail: "more than one extension transforms messages"))
        }
        found = transform
    }
    return .success(found)
}
