internal import HTTPTypes

// The server's half of RFC 6455 §4.2: reading and checking the client's request (§4.2.1) and
// writing the answer (§4.2.2).

extension WSServerHandshake {
    /// The scanner for a request under these limits. The start line may hold the method, the
    /// target and the version around the URI: the URI limit plus room for those, with the
    /// exact URI check made once the line is complete.
    func makeScanner() -> HTTPHeadScanner {
        HTTPHeadScanner(maxStartLine: maxURILength + 64, maxFieldSection: maxHeaderSize)
    }

    /// Judges a complete request head, in the order a client most needs to hear about.
    func evaluate(_ headBytes: ArraySlice<UInt8>) -> Result<WSUpgradeRequest, WSHandshakeError> {
        func fail(_ code: WSHandshakeError.Code, _ detail: String) -> Result<WSUpgradeRequest, WSHandshakeError> {
            .failure(WSHandshakeError(code, detail: detail))
        }
        // request-line = method SP request-target SP HTTP-version (RFC 9112 §3)
        let lineEnd = headBytes.firstIndex(of: UInt8(ascii: "\r"))!
        let parts = headBytes[..<lineEnd].split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy(isTokenByte), !parts[1].isEmpty else {
            return fail(.malformedRequest, "bad request line: \(excerpt(headBytes[..<lineEnd]))")
        }
        if parts[1].count > maxURILength {
            return fail(.uriTooLong, "request-target of \(parts[1].count) bytes over the \(maxURILength)-byte limit")
        }
        guard let version = parseHTTPVersion(parts[2]) else { return fail(.malformedRequest, "bad HTTP version: \(excerpt(parts[2]))") }
        // §4.1: "the HTTP version MUST be at least 1.1"; versions 2 and up are not spoken this way.
        guard version.major == 1, version.minor >= 1 else {
            return fail(.unsupportedHTTPVersion, "HTTP/\(version.major).\(version.minor)")
        }
        // §3: the "/resource name/" is a path and query: origin-form (RFC 9112 §3.2.1), printable ASCII.
        let target = parts[1]
        guard target.first == UInt8(ascii: "/"), target.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            return fail(.malformedRequest, "request-target is not origin-form: \(excerpt(target))")
        }
        let method = String(decoding: parts[0], as: UTF8.self)
        // §4.1: "The method of the request MUST be GET".
        guard method == "GET" else { return fail(.methodNotAllowed, "method \(excerpt(parts[0]))") }

        let fields: HTTPFields
        do { fields = try HTTPHead(headBytes).fields } catch { return fail(.malformedRequest, error.detail) }
        // A GET upgrade carries no body; one declared here would be read as frames.
        if !fields[values: .transferEncoding].isEmpty { return fail(.malformedRequest, "Transfer-Encoding in an upgrade request") }
        if fields[values: .contentLength].contains(where: { $0 != "0" }) { return fail(.malformedRequest, "a body in an upgrade request") }
        // §4.1 item 4: "The request MUST contain a |Host| header field".
        guard case .some(.some(let host)) = fields.single(.hostField), !host.isEmpty else {
            return fail(.missingHost, fields[values: .hostField].count > 1 ? "Host repeated" : "no Host field")
        }
        let targetString = String(decoding: target, as: UTF8.self)
        let question = targetString.firstIndex(of: "?")
        let path = String(targetString[..<(question ?? targetString.endIndex)])
        if let resourceExists, !resourceExists(path) { return fail(.notFound, "no resource at \(excerpt(path.utf8))") }
        // §4.2.1 items 3–4.
        guard fields.listContainsToken(.upgrade, "websocket") else {
            return fail(.upgradeRequired, "Upgrade is \(fields[.upgrade].map { "\"\(excerpt($0.utf8))\"" } ?? "missing")")
        }
        guard fields.listContainsToken(.connection, "upgrade") else {
            return fail(.missingConnectionUpgrade, "Connection has no Upgrade token")
        }
        // §4.2.1 item 6, §4.4: answer a version we do not speak with the one we do.
        guard case .some(.some(let wsVersion)) = fields.single(.secWebSocketVersion), wsVersion == "13" else {
            return fail(.unsupportedVersion, "Sec-WebSocket-Version is \(fields[.secWebSocketVersion].map { excerpt($0.utf8) } ?? "missing")")
        }
        // §4.2.1 item 5: "a base64-encoded value that, when decoded, is 16 bytes in length".
        guard case .some(.some(let key)) = fields.single(.secWebSocketKey), wsBase64Decode(key)?.count == 16 else {
            return fail(.invalidKey, "Sec-WebSocket-Key is not the base64 of 16 bytes")
        }
        let subprotocols = fields.listElements(.secWebSocketProtocol)
        guard subprotocols.allSatisfy(isToken) else { return fail(.invalidNegotiationHeader, "Sec-WebSocket-Protocol is not a token list") }
        guard let extensions = WSExtensionElement.parse(fields[values: .secWebSocketExtensions]) else {
            return fail(.invalidNegotiationHeader, "Sec-WebSocket-Extensions does not follow RFC 6455 §9.1")
        }

        var headerFields = fields
        headerFields[.hostField] = nil
        let head = HTTPRequest(method: .get, scheme: nil, authority: host, path: targetString, headerFields: headerFields)
        return .success(WSUpgradeRequest(
            head: head,
            path: path,
            query: question.map { String(targetString[targetString.index(after: $0)...]) },
            origin: fields[.origin],
            subprotocols: subprotocols.map(String.init),
            extensions: extensions,
            cookies: fields[values: .cookie].flatMap(parseCookies),
            key: key))
    }

    /// The error answer for a failed handshake: status, the fields the status calls for, a
    /// short plain-text body, `Connection: close`.
    func errorResponse(_ error: WSHandshakeError, into out: inout [UInt8]) {
        var fields = HTTPFields()
        switch error.code {
        case .upgradeRequired:
            fields[.upgrade] = "websocket"
            fields[.connection] = "Upgrade, close"
        case .unsupportedVersion:
            fields[.secWebSocketVersion] = "13"
        case .methodNotAllowed:
            fields[.allow] = "GET"
        default:
            break
        }
        let status = withReasonPhrase(HTTPResponse.Status(code: error.code.status ?? 400))
        // The body names the rule, not the detail: nothing the peer sent is echoed back.
        plainResponse(status: status, fields: fields, body: Array("\(status.code) \(status.reasonPhrase): \(error.code)\n".utf8), into: &out)
    }

    /// A complete non-101 answer: the fields given plus `Server`, `Content-Length` and
    /// `Connection: close` (the connection ends after it), then the body.
    func plainResponse(status: HTTPResponse.Status, fields given: HTTPFields, body: [UInt8], into out: inout [UInt8]) {
        var fields = given
        if let serverName, fields[.server] == nil { fields[.server] = serverName }
        if !body.isEmpty, fields[.contentType] == nil { fields[.contentType] = "text/plain; charset=utf-8" }
        fields[.contentLength] = String(body.count)
        if !fields.listContainsToken(.connection, "close") {
            fields[.connection] = fields[.connection].map { "\($0), close" } ?? "close"
        }
        appendStatusHead(withReasonPhrase(status), fields: fields, to: &out)
        out.append(contentsOf: body)
    }

    /// §4.2.2 item 5: the 101 answer.
    func acceptResponse(_ request: WSUpgradeRequest, subprotocol: String?, extensions: [WSExtensionElement], extra: HTTPFields) -> HTTPResponse {
        var fields: HTTPFields = [
            .upgrade: "websocket",
            .connection: "Upgrade",
            .secWebSocketAccept: WSHandshake.acceptValue(forKey: request.key),
        ]
        if let subprotocol { fields[.secWebSocketProtocol] = subprotocol }
        if !extensions.isEmpty { fields[.secWebSocketExtensions] = WSExtensionElement.serialize(extensions) }
        if let serverName, extra[.server] == nil { fields[.server] = serverName }
        fields.append(contentsOf: extra)
        return HTTPResponse(status: .switchingProtocols, headerFields: fields)
    }

    /// Runs the configured negotiators over the client's offers, in the order the client
    /// offered the extensions (each negotiator sees every offer of its extension).
    func negotiate(_ offers: [WSExtensionElement]) -> [WSExtensionElement] {
        var names: [String] = []
        for offer in offers where !names.contains(asciiLowercased(offer.name)) { names.append(asciiLowercased(offer.name)) }
        return names.compactMap { name in
            // §9.1: a server ignores extensions it does not know.
            guard let negotiator = extensions.first(where: { asciiLowercased($0.extensionName) == name }) else { return nil }
            return negotiator.accept(offers: offers.filter { asciiLowercased($0.name) == name })
        }
    }
}

func appendStatusHead(_ status: HTTPResponse.Status, fields: HTTPFields, to out: inout [UInt8]) {
    let code = String(status.code)
    appendHead(startLine: "HTTP/1.1 \(String(repeating: "0", count: 3 - code.count))\(code) \(status.reasonPhrase)", fields: fields, to: &out)
}

/// `Cookie: a=b; c=d` (RFC 6265 §4.2.1), leniently: pairs without `=` are skipped.
private func parseCookies(_ value: String) -> [WSCookie] {
    value.split(separator: ";").compactMap { pair in
        let trimmed = trimmedOWS(pair)
        guard let eq = trimmed.firstIndex(of: "=") else { return nil }
        var v = trimmed[trimmed.index(after: eq)...]
        if v.count >= 2, v.first == "\"", v.last == "\"" { v = v.dropFirst().dropLast() }
        return WSCookie(name: String(trimmed[..<eq]), value: String(v))
    }
}

extension WSUpgradeRequest {
    /// The request in a compact form to keep for a connection's lifetime (the parsed request
    /// costs several separate allocations: about 1.4 KB for a browser's request). It is the
    /// request's HTTP/1.1 head (request line, `Host`, the other fields) with the lines every
    /// WebSocket client sends, and the common field names, each written as one byte ≥ 0x80
    /// (no header line starts with such a byte): a python-websockets request head of 218
    /// bytes keeps 61. ``init(compactHead:)`` reads it back.
    package var compactHead: [UInt8] {
        let startLine = "GET \(head.path ?? "/") HTTP/1.1"
        // `Host` first, then the other fields, each coded once.
        var fields = HTTPFields()
        if let host = head.authority { fields[.hostField] = host }
        fields.append(contentsOf: head.headerFields)
        let coded = fields.map(CompactField.init)
        var out: [UInt8] = []
        // Kept for the connection's lifetime: allocated to measure, not grown by doubling.
        out.reserveCapacity(coded.reduce(startLine.utf8.count + 4) { $0 + $1.size })
        out += startLine.utf8
        out += [13, 10]
        for field in coded { field.write(to: &out) }
        out += [13, 10]
        return out
    }

    /// The request that ``compactHead`` wrote: expanded to its HTTP head, then parsed and
    /// checked again as a server reads it, so it equals the original. Nil for bytes that are
    /// not such a head.
    package init?(compactHead bytes: [UInt8]) {
        var head: [UInt8] = []
        head.reserveCapacity(bytes.count * 2)
        var atLineStart = false
        var index = 0
        // The request line, then the fields.
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if atLineStart && byte >= 0x80 {
                let code = Int(byte & 0x3F)
                if byte & 0x40 == 0 {
                    guard code < Self.compactLines.count else { return nil }
                    head += Self.compactLines[code].utf8
                    head += [13, 10]
                    continue
                }
                guard code < Self.compactNames.count else { return nil }
                head += Self.compactNames[code].utf8
                head += ": ".utf8
                atLineStart = false
                continue
            }
            head.append(byte)
            atLineStart = byte == 10
        }
        // Scanned as the engine scans what it receives (every line ends in CRLF, the empty one
        // last), then parsed and checked.
        var scanner = HTTPHeadScanner(maxStartLine: head.count, maxFieldSection: head.count)
        guard case .complete(let length) = scanner.scan(head[...]), length == head.count else { return nil }
        var reader = WSServerHandshake()
        reader.maxURILength = head.count
        reader.maxHeaderSize = head.count
        guard case .success(let request) = reader.evaluate(head[...]) else { return nil }
        self = request
    }

    /// Whole header lines written as the byte `0x80 | index`.
    private static let compactLines = [
        "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Connection: keep-alive, Upgrade",
        "Upgrade: WebSocket", "Connection: upgrade", "Pragma: no-cache", "Cache-Control: no-cache",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        "Sec-WebSocket-Extensions: permessage-deflate",
        "Accept-Encoding: gzip, deflate, br, zstd", "Accept-Encoding: gzip, deflate, br", "Accept-Encoding: gzip, deflate",
    ]
    /// Field names written as the byte `0xC0 | index` (the value follows as it is).
    private static let compactNames = [
        "Host", "Sec-WebSocket-Key", "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol", "Origin", "User-Agent",
        "Cookie", "Accept-Language", "Accept-Encoding", "Authorization", "Cache-Control", "Pragma", "Accept",
        "X-Forwarded-For", "Sec-WebSocket-Version", "Upgrade", "Connection",
    ]

    /// How one field is written: a whole-line code, a name code and the value, or as it is.
    private enum CompactField {
        case line(UInt8)
        case name(UInt8, String)
        case raw(String, String)

        init(_ field: HTTPField) {
            let name = field.name.rawName
            if let i = WSUpgradeRequest.compactLines.firstIndex(of: "\(name): \(field.value)") {
                self = .line(0x80 | UInt8(i))
            } else if let i = WSUpgradeRequest.compactNames.firstIndex(of: name) {
                self = .name(0xC0 | UInt8(i), field.value)
            } else {
                self = .raw(name, field.value)
            }
        }

        var size: Int {
            switch self {
            case .line: 1
            case .name(_, let value): 1 + value.utf8.count + 2
            case .raw(let name, let value): name.utf8.count + 2 + value.utf8.count + 2
            }
        }

        func write(to out: inout [UInt8]) {
            switch self {
            case .line(let code):
                out.append(code)
            case .name(let code, let value):
                out.append(code)
                out += value.utf8
                out += [13, 10]
            case .raw(let name, let value):
                out += name.utf8
                out += ": ".utf8
                out += value.utf8
                out += [13, 10]
            }
        }
    }
}

