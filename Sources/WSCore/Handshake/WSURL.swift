/// A WebSocket URI (RFC 6455 §3): `ws://host[:port]/path?query` or `wss://…`, parsed without
/// Foundation.
///
/// ```swift
/// let url = try WSURL("wss://[::1]:8443/chat?room=1")
/// url.hostField   // "[::1]:8443"
/// url.target      // "/chat?room=1"
/// ```
public struct WSURL: Hashable, Sendable, CustomStringConvertible {
    /// `wss` (TLS) rather than `ws`.
    public var isSecure: Bool
    /// The host: a lowercased name, an IPv4 address, or an IPv6 address without brackets.
    public var host: String
    /// The port, defaulted from the scheme (80 for `ws`, 443 for `wss`).
    public var port: Int
    /// The request target sent in the request line (§3 "/resource name/"): the path (at least
    /// `/`) and the query, percent-encoded where the URI had characters a request line may not hold.
    public var target: String
    /// The user name and password of a `user:password@` prefix, percent-decoded; the client sends
    /// them as HTTP Basic authorization unless another is set.
    public var userInfo: (user: String, password: String)?

    /// Parses a `ws` or `wss` URI.
    /// - Throws: ``WSUsageError/invalidURL(_:)`` for another scheme, a fragment (§3: "Fragment
    ///   identifiers ... MUST NOT be used on these URIs"), an empty or invalid host, a bad port.
    public init(_ string: String) throws(WSUsageError) {
        func fail(_ why: String) -> WSUsageError { .invalidURL("\(why): \(string)") }
        guard let schemeEnd = string.firstRange(of: "://") else { throw fail("no scheme") }
        switch asciiLowercased(string[..<schemeEnd.lowerBound]) {
        case "ws": isSecure = false
        case "wss": isSecure = true
        default: throw fail("the scheme must be ws or wss")
        }
        var rest = string[schemeEnd.upperBound...]
        if rest.contains("#") { throw fail("a WebSocket URI has no fragment") }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        rest = rest[authorityEnd...]

        userInfo = nil
        if let at = authority.lastIndex(of: "@") {
            let info = authority[..<at]
            authority = authority[authority.index(after: at)...]
            let parts = info.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let user = percentDecoded(parts[0]), let password = percentDecoded(parts.count > 1 ? parts[1] : "") else {
                throw fail("bad percent-encoding in user information")
            }
            userInfo = (user, password)
        }

        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw fail("unclosed IPv6 literal") }
            let literal = authority[authority.index(after: authority.startIndex)..<close]
            guard literal.contains(":"), literal.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw fail("invalid IPv6 literal")
            }
            host = asciiLowercased(literal)
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("junk after IPv6 literal") }
                portText = after.dropFirst()
            }
        } else {
            if let colon = authority.lastIndex(of: ":") {
                portText = authority[authority.index(after: colon)...]
                authority = authority[..<colon]
            }
            // RFC 3986 reg-name (unreserved / sub-delims) or IPv4; percent-encoded names are
            // not supported, nor internationalized ones (those need IDNA, done by the caller).
            guard authority.utf8.allSatisfy({ isUnreserved($0) || "!$&'()*+,;=".utf8.contains($0) }) else {
                throw fail("invalid host (internationalized names must be converted to ASCII first)")
            }
            host = asciiLowercased(authority)
        }
        guard !host.isEmpty else { throw fail("empty host") }
        let defaultPort = isSecure ? 443 : 80
        if let portText, !portText.isEmpty {
            guard portText.utf8.count <= 5, portText.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
                  let p = Int(portText), (1...65535).contains(p) else { throw fail("invalid port") }
            port = p
        } else {
            port = defaultPort
        }

        // The request target: the path (or "/") and query, with any byte a request line
        // cannot hold percent-encoded (RFC 3986 §2.1).
        var target = rest.hasPrefix("?") || rest.isEmpty ? "/" : ""
        for byte in rest.utf8 {
            if isUnreserved(byte) || "!$&'()*+,;=:@/?%".utf8.contains(byte) {
                target.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = Array("0123456789ABCDEF".utf8)
                target += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
            }
        }
        self.target = target
    }

    /// Whether the port is the scheme's default (then the Host field omits it, §4.1).
    public var hasDefaultPort: Bool { port == (isSecure ? 443 : 80) }

    /// The value of the `Host` header field (§4.1): the host, bracketed if IPv6, and the port
    /// unless it is the default.
    public var hostField: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return hasDefaultPort ? h : "\(h):\(port)"
    }

    public var description: String { "\(isSecure ? "wss" : "ws")://\(hostField)\(target)" }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.isSecure == rhs.isSecure && lhs.host == rhs.host && lhs.port == rhs.port && lhs.target == rhs.target
            && lhs.userInfo?.user == rhs.userInfo?.user && lhs.userInfo?.password == rhs.userInfo?.password
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(description)
    }
}

private func isUnreserved(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        true
    default:
        b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "~")
    }
}

private func percentDecoded(_ s: Substring) -> String? {
    percentDecodedBytes(s, strict: true).flatMap { String(validating: $0, as: UTF8.self) }
}

/// RFC 3986 §2.1 percent-decoding. `strict`: a `%` not followed by two hex digits fails the
/// whole decoding; otherwise it is kept as it is. `plusIsSpace`: HTML form encoding.
func percentDecodedBytes(_ s: Substring, strict: Bool, plusIsSpace: Bool = false) -> [UInt8]? {
    var out: [UInt8] = []
    var bytes = s.utf8[...]
    while let b = bytes.popFirst() {
        if b == UInt8(ascii: "%"), bytes.count >= 2, bytes.prefix(2).allSatisfy({ Character(Unicode.Scalar($0)).isHexDigit }),
           let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
            out.append(v)
            bytes = bytes.dropFirst(2)
        } else if b == UInt8(ascii: "%"), strict {
            return nil
        } else {
            out.append(plusIsSpace && b == UInt8(ascii: "+") ? UInt8(ascii: " ") : b)
        }
    }
    return out
}
