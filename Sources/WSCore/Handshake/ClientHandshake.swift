internal import HTTPTypes

// The client's half of RFC 6455 §4.1: the request it sends and the checks on the answer.

/// What a client keeps while waiting for the server's answer.
struct ClientHandshakeState: Sendable {
    var scanner: HTTPHeadScanner
    var request: HTTPRequest
    var expectedAccept: String
    var subprotocols: [String]
    var offered: [WSExtensionElement]
    var negotiators: [any WSExtensionNegotiator]
    var maxRejectionBodySize: Int
    var deadline: WSInstant

    /// Builds the request bytes for `options` with the 16-byte `nonce` (§4.1: "a randomly
    /// selected 16-byte value that has been base64-encoded").
    init(_ options: WSClientHandshake, nonce: [UInt8], now: WSInstant, into out: inout [UInt8]) {
        let key = wsBase64Encode(nonce)
        var fields: HTTPFields = [
            .upgrade: "websocket",
            .connection: "Upgrade",
            .secWebSocketKey: key,
            .secWebSocketVersion: "13",
        ]
        if !options.subprotocols.isEmpty { fields[.secWebSocketProtocol] = options.subprotocols.joined(separator: ", ") }
        let offers = options.extensions.flatMap { $0.offers() }
        if !offers.isEmpty { fields[.secWebSocketExtensions] = WSExtensionElement.serialize(offers) }
        if let auth = options.authorization { fields[.authorization] = auth.fieldValue }
        // RFC 6265 §5.4: one Cookie field (HTTPFields' subscript would split it, as HTTP/2 does).
        if !options.cookies.isEmpty { fields.append(HTTPField(name: .cookie, value: options.cookies.map { "\($0.name)=\($0.value)" }.joined(separator: "; "))) }
        fields.append(contentsOf: options.headers)

        var wire = HTTPFields()
        wire[.hostField] = options.url.hostField
        wire.append(contentsOf: fields)
        appendHead(startLine: "GET \(options.url.target) HTTP/1.1", fields: wire, to: &out)

        scanner = HTTPHeadScanner(maxStartLine: 1024, maxFieldSection: options.maxResponseHeaderSize)
        request = HTTPRequest(method: .get, scheme: options.url.isSecure ? "wss" : "ws",
                              authority: options.url.hostField, path: options.url.target, headerFields: fields)
        expectedAccept = WSHandshake.acceptValue(forKey: key)
        subprotocols = options.subprotocols
        offered = offers
        negotiators = options.extensions
        maxRejectionBodySize = options.maxRejectionBodySize
        deadline = now + options.timeout
    }

    enum Outcome {
        case opened(WSHandshakeResult)
        /// A 1xx other than 101: skip it and read the next head (RFC 9110 §15.2).
        case informational
        case rejected(HTTPResponse, BodyReader)
        case failed(WSHandshakeError)
    }

    /// Judges a complete response head (§4.1, "the client MUST validate the server's response").
    func evaluate(_ headBytes: ArraySlice<UInt8>) -> Outcome {
        func fail(_ code: WSHandshakeError.Code, _ detail: String) -> Outcome { .failed(WSHandshakeError(code, detail: detail)) }
        let head: HTTPHead
        do { head = try HTTPHead(headBytes) } catch { return fail(.malformedResponse, error.detail) }
        // status-line = HTTP-version SP status-code SP [ reason-phrase ]
        let line = head.startLine
        guard line.count >= 12, let version = parseHTTPVersion(line.prefix(8)), version.major == 1,
              line[line.startIndex + 8] == UInt8(ascii: " "),
              line[(line.startIndex + 9)..<(line.startIndex + 12)].allSatisfy({ (0x30...0x39).contains($0) }),
              line.count == 12 || line[line.startIndex + 12] == UInt8(ascii: " ") else {
            return fail(.malformedResponse, "bad status line: \(excerpt(line))")
        }
        let code = Int(String(decoding: line[(line.startIndex + 9)..<(line.startIndex + 12)], as: UTF8.self))!
        // An HTTP/1.0 server can refuse or redirect (its answer is read the same way), but it
        // cannot upgrade: the 101 needs HTTP/1.1.
        guard version.minor >= 1 || code != 101 else {
            return fail(.malformedResponse, "bad status line: \(excerpt(line))")
        }
        let phrase = line.count > 13 ? String(decoding: line[(line.startIndex + 13)...], as: UTF8.self) : ""
        let response = HTTPResponse(status: HTTPResponse.Status(code: code, reasonPhrase: phrase), headerFields: head.fields)

        if code != 101 {
            if (100..<200).contains(code) { return .informational }
            // §4.1: "If the status code received from the server is not 101, the client handles
            // the response per HTTP procedures": read the body, report it.
            switch BodyReader.framing(status: code, fields: head.fields) {
            case .some(let framing): return .rejected(response, BodyReader(framing: framing, limit: maxRejectionBodySize))
            case nil: return fail(.malformedResponse, "invalid Content-Length or Transfer-Encoding in a \(code) response")
            }
        }
        let fields = head.fields
        // §4.1 items 2–4 of the response checks.
        let upgrade = fields.listElements(.upgrade)
        guard upgrade.count == 1, asciiLowercased(upgrade[0]) == "websocket" else {
            return fail(.invalidUpgrade, "Upgrade is \(fields[.upgrade].map { "\"\(excerpt($0.utf8))\"" } ?? "missing")")
        }
        guard fields.listContainsToken(.connection, "upgrade") else { return fail(.invalidConnection, "Connection has no Upgrade token") }
        guard case .some(.some(let accept)) = fields.single(.secWebSocketAccept), accept == expectedAccept else {
            return fail(.invalidAccept, "Sec-WebSocket-Accept missing, repeated or not \(expectedAccept)")
        }
        // Item 6: the subprotocol must be one we offered; several values are not a choice.
        var chosen: String?
        let protocols = fields.listElements(.secWebSocketProtocol)
        if !protocols.isEmpty {
            guard protocols.count == 1, subprotocols.contains(String(protocols[0])) else {
                return fail(.unexpectedSubprotocol, "server chose \(excerpt(fields[values: .secWebSocketProtocol].joined(separator: ", ").utf8))")
            }
            chosen = String(protocols[0])
        }
        // Item 5: every extension must have been offered, and its negotiator must accept it.
        guard let answered = WSExtensionElement.parse(fields[values: .secWebSocketExtensions]) else {
            return fail(.unexpectedExtension, "Sec-WebSocket-Extensions does not follow RFC 6455 §9.1")
        }
        var seen: Set<String> = []
        for element in answered {
            let name = asciiLowercased(element.name)
            guard seen.insert(name).inserted else { return fail(.unexpectedExtension, "\(name) answered twice") }
            let offers = offered.filter { asciiLowercased($0.name) == name }
            guard !offers.isEmpty, let negotiator = negotiators.first(where: { asciiLowercased($0.extensionName) == name }) else {
                return fail(.unexpectedExtension, "\(excerpt(element.name.utf8)) was not offered")
            }
            if let why = negotiator.validate(response: element, offered: offers) {
                return fail(.unexpectedExtension, "\(name): \(why)")
            }
        }
        return .opened(WSHandshakeResult(request: request, response: response, subprotocol: chosen, extensions: answered))
    }
}

/// Reads the body of a rejection, bounded, in whichever framing the response declares
/// (RFC 9112 §6.3).
struct BodyReader: Sendable {
    enum Framing: Sendable, Equatable {
        case none
        case length(Int)
        case chunked
        case untilEOF
    }

    private enum ChunkState: Sendable {
        case size, data(Int), dataEnd, trailers
    }

    var framing: Framing
    let limit: Int
    private(set) var body: [UInt8] = []
    private(set) var truncated = false
    private var chunk = ChunkState.size

    init(framing: Framing, limit: Int) {
        self.framing = framing
        self.limit = limit
    }

    /// RFC 9112 §6.3; nil for framing that cannot be trusted (conflicting or bad lengths).
    static func framing(status: Int, fields: HTTPFields) -> Framing? {
        if status == 204 || status == 304 { return Framing.none }
        let codings = fields.listElements(.transferEncoding)
        if !codings.isEmpty {
            return asciiLowercased(codings.last!) == "chunked" ? .chunked : .untilEOF
        }
        let lengths = Set(fields.listElements(.contentLength))
        if lengths.isEmpty { return .untilEOF }
        guard lengths.count == 1, let only = lengths.first, only.utf8.count <= 18,
              only.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let n = Int(only) else { return nil }
        return n == 0 ? Framing.none : .length(n)
    }

    /// Consumes what it can of `bytes`; returns how many bytes it used and whether the body is complete.
    mutating func read(_ bytes: ArraySlice<UInt8>) -> (used: Int, done: Bool) {
        switch framing {
        case .none:
            return (0, true)
        case .length(let remaining):
            let n = min(remaining, bytes.count)
            keep(bytes.prefix(n))
            framing = .length(remaining - n)
            return (n, remaining == n || truncated)
        case .untilEOF:
            keep(bytes)
            return (bytes.count, truncated)
        case .chunked:
            return readChunked(bytes)
        }
    }

    private mutating func readChunked(_ bytes: ArraySlice<UInt8>) -> (used: Int, done: Bool) {
        var at = bytes.startIndex
        func line() -> ArraySlice<UInt8>? {
            guard let lf = bytes[at...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            defer { at = lf + 1 }
            return bytes[at..<lf]
        }
        while true {
            switch chunk {
            case .size:
                if bytes.endIndex - at > 1024, bytes[at...].prefix(1024).firstIndex(of: UInt8(ascii: "\n")) == nil {
                    return cut(at - bytes.startIndex)
                }
                guard let l = line() else { return (at - bytes.startIndex, false) }
                let digits = l.prefix { $0 != UInt8(ascii: ";") && $0 != UInt8(ascii: "\r") }
                guard !digits.isEmpty, digits.count <= 15, let size = Int(String(decoding: digits, as: UTF8.self), radix: 16), size >= 0 else {
                    return cut(at - bytes.startIndex)
                }
                chunk = size == 0 ? .trailers : .data(size)
            case .data(let remaining):
                let n = min(remaining, bytes.endIndex - at)
                keep(bytes[at..<(at + n)])
                at += n
                if truncated { return (at - bytes.startIndex, true) }
                if n < remaining {
                    chunk = .data(remaining - n)
                    return (at - bytes.startIndex, false)
                }
                chunk = .dataEnd
            case .dataEnd:
                guard let l = line() else { return (at - bytes.startIndex, false) }
                guard l.isEmpty || l.elementsEqual([UInt8(ascii: "\r")]) else { return cut(at - bytes.startIndex) }
                chunk = .size
            case .trailers:
                guard let l = line() else { return (at - bytes.startIndex, false) }
                if l.isEmpty || l.elementsEqual([UInt8(ascii: "\r")]) { return (at - bytes.startIndex, true) }
            }
        }
    }

    private mutating func cut(_ used: Int) -> (used: Int, done: Bool) {
        truncated = true
        return (used, true)
    }

    private mutating func keep(_ bytes: ArraySlice<UInt8>) {
        let room = limit - body.count
        if bytes.count > room { truncated = true }
        body.append(contentsOf: bytes.prefix(room))
    }
}
