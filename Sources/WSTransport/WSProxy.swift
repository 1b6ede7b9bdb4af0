// HTTP proxies for clients: a CONNECT tunnel (RFC 9110 §9.3.6) opened before the WebSocket (and
// TLS) handshake, and the proxy variables of the environment, read as curl reads them.

internal import Glibc
public import WSCore

/// An HTTP proxy that a client reaches its servers through, with `CONNECT`.
///
/// ```swift
/// let proxy = try WSProxy("http://user:secret@127.0.0.1:8888")
/// let socket = try WSSocket.connect(host: "example.com", port: 443, timeout: .seconds(10), via: proxy)
/// ```
///
/// The tunnel carries the bytes end to end: for `wss://` the TLS handshake runs through it
/// with the target server, so the certificate verified is the target's, not the proxy's.
public struct WSProxy: Hashable, Sendable, CustomStringConvertible {
    /// The proxy's host name or address.
    public var host: String
    /// The proxy's port (1080 when the URL has none, as curl).
    public var port: Int
    /// Credentials sent as `Proxy-Authorization: Basic …`, if any.
    public var credentials: (user: String, password: String)?

    /// Parses `http://[user:password@]host[:port][/]` (the scheme may be left out).
    /// - Throws: ``WSUsageError/invalidURL(_:)`` for another scheme (https and SOCKS proxies
    ///   are not supported) or a malformed authority.
    public init(_ url: String) throws(WSUsageError) {
        var rest = Substring(url)
        if let schemeEnd = rest.firstRange(of: "://") {
            let scheme = rest[..<schemeEnd.lowerBound].lowercased()
            guard scheme == "http" else {
                throw .invalidURL("only http:// proxies are supported (CONNECT): \(url)")
            }
            rest = rest[schemeEnd.upperBound...]
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains("/"), !rest.contains("?") else {
            throw .invalidURL("a proxy URL is http://host[:port]: \(url)")
        }
        // The authority has the syntax of a WebSocket URI's.
        let hostPort = rest.lastIndex(of: "@").map { rest[rest.index(after: $0)...] } ?? rest
        let hasPort = hostPort.hasPrefix("[") ? hostPort.contains("]:") : hostPort.contains(":")
        let parsed = try WSURL("ws://" + rest)
        host = parsed.host
        port = hasPort ? parsed.port : 1080
        credentials = parsed.userInfo
    }

    /// Creates a proxy from its parts.
    public init(host: String, port: Int, credentials: (user: String, password: String)? = nil) {
        self.host = host
        self.port = port
        self.credentials = credentials
    }

    public var description: String {
        "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.host == rhs.host && lhs.port == rhs.port && lhs.credentials?.user == rhs.credentials?.user
            && lhs.credentials?.password == rhs.credentials?.password
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(host)
        hasher.combine(port)
    }

    // MARK: The environment

    /// The proxy the environment names for `url`, as curl and python-websockets choose it:
    /// `http_proxy` for `ws://`, `https_proxy` for `wss://` (lowercase first, then uppercase),
    /// nil when the variable is unset or empty, or when `no_proxy` (or `NO_PROXY`) matches the
    /// host. Loopback targets are not exempt unless `no_proxy` lists them.
    /// - Throws: ``WSUsageError/invalidURL(_:)`` when the variable holds no usable proxy URL.
    public static func fromEnvironment(for url: WSURL, environment: [String: String]? = nil) throws(WSUsageError) -> WSProxy? {
        func variable(_ name: String) -> String? {
            let value = environment.map { $0[name] } ?? getenv(name).map { String(cString: $0) }
            return value.flatMap { $0.isEmpty ? nil : $0 }
        }
        let name = url.isSecure ? "https_proxy" : "http_proxy"
        guard let value = variable(name) ?? variable(name.uppercased()) else { return nil }
        if let exempt = variable("no_proxy") ?? variable("NO_PROXY"), bypasses(exempt, host: url.host, port: url.port) {
            return nil
        }
        return try WSProxy(value)
    }

    /// Whether a `no_proxy` list exempts `host:port` (curl's rules): a comma-separated list of
    /// names, addresses and `address/prefix` ranges, `*` for everything; a name matches itself and
    /// its subdomains (a leading dot is ignored); an entry with `:port` matches that port only.
    public static func bypasses(_ list: String, host: String, port: Int) -> Bool {
        let host = host.lowercased()
        // Split on the comma's byte: split on `Character`s, a comma after a prepending mark
        // (U+0600, say) would be part of that mark's grapheme and not split the list.
        for raw in list.utf8.split(separator: UInt8(ascii: ",")) {
            var entry = String(decoding: raw, as: UTF8.self).trimmingASCIISpaces().lowercased()[...]
            if entry == "*" { return true }
            if entry.isEmpty { continue }
            // An optional port: `name:port`, `[v6]:port`.
            if entry.hasPrefix("[") {
                guard let close = entry.firstIndex(of: "]") else { continue }
                let after = entry[entry.index(after: close)...]
                if after.hasPrefix(":") {
                    guard Int(after.dropFirst()) == port else { continue }
                }
                entry = entry[entry.index(after: entry.startIndex)..<close]
            } else if entry.filter({ $0 == ":" }).count == 1, let colon = entry.firstIndex(of: ":") {
                guard Int(entry[entry.index(after: colon)...]) == port else { continue }
                entry = entry[..<colon]
            }
            if let slash = entry.firstIndex(of: "/"), let bits = Int(entry[entry.index(after: slash)...]) {
                if let a = ipBytes(String(entry[..<slash])), let b = ipBytes(host), a.count == b.count, prefixMatches(a, b, bits: bits) {
                    return true
                }
                continue
            }
            if entry.hasPrefix(".") { entry = entry.dropFirst() }
            if host == entry || host.hasSuffix("." + entry) { return true }
        }
        return false
    }

    private static func ipBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: v6) { Array($0) } }
        return nil
    }

    private static func prefixMatches(_ a: [UInt8], _ b: [UInt8], bits: Int) -> Bool {
        guard bits >= 0, bits <= a.count * 8 else { return false }
        for i in 0..<a.count {
            let remaining = bits - i * 8
            if remaining <= 0 { return true }
            let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
            if a[i] & mask != b[i] & mask { return false }
        }
        return true
    }
}

extension StringProtocol {
    fileprivate func trimmingASCIISpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

extension WSSocket {
    /// Connects to `host:port` through `proxy` with `CONNECT`, within `timeout` in all (connect,
    /// request, answer); without a proxy, directly. Any 2xx answer opens the tunnel; the socket
    /// comes back carrying it, blocking unless `nonBlocking`, ready for the WebSocket (or TLS)
    /// handshake.
    /// - Throws: ``WSTransportError``: the proxy unreachable, its answer not 2xx (the status
    ///   is in the message, such as 407 when it wants credentials), malformed, larger than
    ///   16 KiB, or late.
    public static func connect(host: String, port: Int, timeout: Duration, via proxy: WSProxy?, nonBlocking: Bool = false) throws(WSTransportError) -> WSSocket {
        guard let proxy else { return try connect(host: host, port: port, timeout: timeout, nonBlocking: nonBlocking) }
        let deadline = WSClock.now() + timeout
        let socket = try connect(host: proxy.host, port: proxy.port, timeout: timeout)
        do throws(WSTransportError) {
            let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            var request = "CONNECT \(authority) HTTP/1.1\r\nHost: \(authority)\r\n"
            if let (user, password) = proxy.credentials {
                request += "Proxy-Authorization: \(WSAuthorization.basic(user: user, password: password).fieldValue)\r\n"
            }
            request += "\r\n"
            try Array(request.utf8).withUnsafeBytes { raw in
                Result { () throws(WSTransportError) in try socket.writeAll(raw, timeout: deadline - WSClock.now()) }
            }.get()
            let operation = "CONNECT \(authority) through \(proxy)"
            // The answer's head, a byte at a time: nothing past it may be taken from the socket
            // (it belongs to the tunnel). It is a few dozen bytes, once per connection.
            var head: [UInt8] = []
            var byte: UInt8 = 0
            while !(head.count >= 4 && head.suffix(4).elementsEqual([13, 10, 13, 10])) {
                guard head.count < 16 << 10 else { throw WSTransportError(operation, message: "the proxy's answer is larger than 16 KiB") }
                guard try socket.wait(timeout: deadline - WSClock.now()) else {
                    throw WSTransportError(operation, errno: ETIMEDOUT)
                }
                let n = try withUnsafeMutableBytes(of: &byte) { raw in
                    Result { () throws(WSTransportError) in try socket.read(into: raw, nonBlocking: true) }
                }.get()
                guard let n else { continue }
                guard n > 0 else { throw WSTransportError(operation, message: "the proxy closed the connection") }
                head.append(byte)
            }
            let statusLine = String(decoding: head.prefix { $0 != 13 }, as: UTF8.self)
            let parts = statusLine.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
                throw WSTransportError(operation, message: "not an HTTP answer: \(statusLine.prefix(80))")
            }
            guard (200..<300).contains(status) else {
                throw WSTransportError(operation, message: "the proxy answered \(statusLine.dropFirst(parts[0].count + 1))")
            }
            if nonBlocking { try socket.setNonBlocking(true) }
            return socket
        } catch {
            socket.close()
            throw error
        }
    }
}
