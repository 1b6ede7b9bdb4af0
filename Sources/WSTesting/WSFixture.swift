public import WSCore
public import WSDeflate
public import HTTPTypes
import FoundationEssentials

/// A transcript: a role, a configuration, injected masking keys, and steps that feed an engine
/// and state what it must produce. The format is documented in `Fixtures/README.md`.
public struct WSFixture: Sendable {
    /// The file's path relative to the fixtures root, without `.json` (its identity in reports).
    public var name: String
    /// What the transcript shows, citing the rule.
    public var description: String
    /// The engine's role.
    public var role: WSProtocol.Role
    /// The engine's configuration (defaults plus the file's overrides).
    public var configuration: WSProtocol.Configuration
    /// Client masking keys in the order the engine draws them.
    public var maskKeys: [WSMaskKey]
    /// The transcript, in order.
    public var steps: [Step]
    /// The opening handshake the engine starts with, if any (else it starts open).
    public var handshake: Handshake?
    /// For an engine that starts open: permessage-deflate as agreed elsewhere (the negotiator,
    /// whose configuration sets the compression, and the server's answer).
    public var deflate: (negotiator: WSPerMessageDeflate, agreed: WSExtensionElement)?

    /// Which side of the opening handshake the engine runs, and how.
    public enum Handshake: Sendable {
        case client(WSClientHandshake)
        case server(WSServerHandshake)
    }

    /// One line of a transcript.
    public enum Step: Sendable {
        /// Feed these bytes (the runner may split them).
        case receive([UInt8])
        /// End the input.
        case receiveEOF
        /// Advance the clock to this instant.
        case tick(WSInstant)
        /// Run a command; `expectError` names the ``WSUsageError`` case it must throw, if any.
        case command(Command, expectError: String?)
        /// The events produced since the previous `expectEvents` (fragments merged).
        case expectEvents([WSProtocol.Event])
        /// The bytes written since the previous `expectOutbound`, and whether end of stream followed.
        case expectOutbound([UInt8], endOfStream: Bool)
        /// Facts about the engine now; `nil` fields are not checked.
        case expectState(ExpectedState)
    }

    /// A command run on the engine (``WSProtocol``'s send and close methods).
    public enum Command: Sendable {
        case sendText(String, compress: Bool)
        case sendBinary([UInt8], compress: Bool)
        case sendFragment([UInt8], kind: WSMessageKind, isFinal: Bool, compress: Bool)
        case ping([UInt8])
        case pong([UInt8])
        /// `timeout`: the wait for the peer's Close; nil for the configured one.
        case close(code: WSCloseCode?, reason: String, timeout: Duration?)
        case accept(subprotocol: String?, extensions: [WSExtensionElement]?, headers: HTTPFields)
        case reject(status: Int, headers: HTTPFields, body: [UInt8])
        /// ``WSProtocol/fail(_:detail:)`` with the named code.
        case fail(code: String, detail: String)
    }

    /// Facts checked by an `expectState` step.
    public struct ExpectedState: Sendable {
        /// The lifecycle state, if checked.
        public var lifecycle: WSProtocol.Lifecycle?
        /// `.some(nil)` checks that no deadline is armed.
        public var nextDeadline: WSInstant??
        public var bufferedAmount: Int?
        public var isWritable: Bool?
    }
}

/// A fixture file that could not be read.
public struct WSFixtureFormatError: Error, CustomStringConvertible {
    /// The fixture's name or path.
    public var file: String
    /// What is wrong, and where.
    public var message: String
    public var description: String { "\(file): \(message)" }
}

extension WSFixture {
    /// Loads every `*.json` file under `directory`, sorted by path.
    public static func loadAll(under directory: String) throws -> [WSFixture] {
        let base = URL(fileURLWithPath: directory).standardizedFileURL.path
        guard let all = try? FileManager.default.subpathsOfDirectory(atPath: base) else {
            throw WSFixtureFormatError(file: base, message: "not a directory")
        }
        let paths = all.filter { $0.hasSuffix(".json") }
        return try paths.sorted().map { relative in
            let data = try Data(contentsOf: URL(fileURLWithPath: base + "/" + relative))
            return try WSFixture(json: Array(data), name: String(relative.dropLast(5)))
        }
    }

    /// Parses a fixture from its JSON text.
    public init(json: [UInt8], name: String) throws {
        let fail = { (message: String) in WSFixtureFormatError(file: name, message: message) }
        guard let root = try JSONDecoder().decode(JSONValue.self, from: Data(json)).any as? [String: Any] else {
            throw fail("the top level must be an object")
        }
        var p = Parser(file: name)
        try p.only(root, ["description", "role", "configuration", "maskKeys", "steps", "rfc", "handshake", "deflate"], "top level")
        self.name = name
        self.description = root["description"] as? String ?? ""
        switch root["role"] as? String {
        case "client": role = .client
        case "server": role = .server
        default: throw fail("role must be \"client\" or \"server\"")
        }
        configuration = try p.configuration(root["configuration"] as? [String: Any] ?? [:])
        maskKeys = try (root["maskKeys"] as? [String] ?? []).map { hex in
            let b = try p.bytes(hex)
            guard b.count == 4 else { throw fail("mask key \(hex) is not 4 bytes") }
            return WSMaskKey(b[0], b[1], b[2], b[3])
        }
        if let h = root["handshake"] {
            handshake = try p.handshake(h, role: role)
        }
        if let d = root["deflate"] as? [String: Any] {
            try p.only(d, ["agreed", "configuration"], "deflate")
            guard let agreed = d["agreed"] as? String else { throw fail("deflate needs the agreed element") }
            deflate = (try p.deflate(d["configuration"]), try p.extensionElements([agreed])[0])
        }
        guard let steps = root["steps"] as? [[String: Any]] else { throw fail("steps must be an array of objects") }
        self.steps = try steps.enumerated().map { i, s in
            p.context = "step \(i + 1)"
            return try p.step(s)
        }
    }
}

/// Turns the JSON values of a fixture into typed steps, naming the file and step on error.
private struct Parser {
    let file: String
    var context = "top level"

    func error(_ message: String) -> WSFixtureFormatError {
        WSFixtureFormatError(file: file, message: "\(context): \(message)")
    }

    func only(_ object: [String: Any], _ keys: Set<String>, _ what: String) throws {
        let unknown = Set(object.keys).subtracting(keys)
        if !unknown.isEmpty { throw error("unknown key(s) \(unknown.sorted()) in \(what)") }
    }

    /// Bytes: a hex string (spaces allowed), or an array of hex strings,
    /// `{"repeat": hex, "count": n}` and `{"utf8": text}` parts, concatenated.
    func bytes(_ value: Any?) throws -> [UInt8] {
        switch value {
        case let hex as String:
            let digits = hex.filter { !$0.isWhitespace }
            guard digits.count % 2 == 0 else { throw error("odd number of hex digits in \"\(hex.prefix(40))\"") }
            var out: [UInt8] = []
            out.reserveCapacity(digits.count / 2)
            var i = digits.startIndex
            while i < digits.endIndex {
                let j = digits.index(i, offsetBy: 2)
                guard let b = UInt8(digits[i..<j], radix: 16) else { throw error("bad hex \"\(digits[i..<j])\"") }
                out.append(b)
                i = j
            }
            return out
        case let parts as [Any]:
            return try parts.flatMap { try bytes($0) }
        case let part as [String: Any]:
            if let text = part["utf8"] as? String {
                try only(part, ["utf8"], "byte part")
                return Array(text.utf8)
            }
            try only(part, ["repeat", "count"], "byte part")
            guard let count = part["count"] as? Int, count >= 0 else { throw error("repeat needs a count") }
            let unit = try bytes(part["repeat"])
            var out: [UInt8] = []
            out.reserveCapacity(unit.count * count)
            for _ in 0..<count { out.append(contentsOf: unit) }
            return out
        default:
            throw error("expected bytes (hex string, or an array of parts)")
        }
    }

    func seconds(_ value: Any?) throws -> Duration {
        guard let s = (value as? Double) ?? (value as? Int).map(Double.init) else { throw error("expected seconds as a number") }
        return .nanoseconds(Int64((s * 1e9).rounded()))
    }

    func configuration(_ object: [String: Any]) throws -> WSProtocol.Configuration {
        var c = WSProtocol.Configuration()
        for (key, value) in object {
            let int = { () throws -> Int in
                guard let n = value as? Int else { throw error("\(key) must be an integer") }
                return n
            }
            let bool = { () throws -> Bool in
                guard let b = value as? Bool else { throw error("\(key) must be a boolean") }
                return b
            }
            switch key {
            case "maxFrameSize": c.maxFrameSize = try int()
            case "maxMessageSize": c.maxMessageSize = try int()
            case "maxDecompressedSize": c.maxDecompressedSize = value is JSONNull ? nil : try int()
            case "maxFragmentsPerMessage": c.maxFragmentsPerMessage = try int()
            case "decodeSliceSize": c.decodeSliceSize = value is JSONNull ? nil : try int()
            case "encodeSliceSize": c.encodeSliceSize = value is JSONNull ? nil : try int()
            case "outboundFragmentSize": c.outboundFragmentSize = try int()
            case "outboundHighWaterMark": c.outboundHighWaterMark = try int()
            case "outboundLowWaterMark": c.outboundLowWaterMark = try int()
            case "maxBufferedAmount": c.maxBufferedAmount = try int()
            case "autoPong": c.autoPong = try bool()
            case "autoCloseReply": c.autoCloseReply = try bool()
            case "acceptUnmaskedFrames": c.acceptUnmaskedFrames = try bool()
            case "delivery":
                switch value as? String {
                case "streaming": c.delivery = .streaming
                case "wholeMessages": c.delivery = .wholeMessages
                default: throw error("delivery must be \"streaming\" or \"wholeMessages\"")
                }
            case "pingInterval": c.pingInterval = value is JSONNull ? nil : try seconds(value)
            case "pingTimeout": c.pingTimeout = try seconds(value)
            case "idleTimeout": c.idleTimeout = value is JSONNull ? nil : try seconds(value)
            case "closeTimeout": c.closeTimeout = try seconds(value)
            default: throw error("unknown configuration key \(key)")
            }
        }
        return c
    }

    func closeFrame(_ value: Any?) throws -> WSCloseFrame? {
        if value == nil || value is JSONNull { return nil }
        guard let o = value as? [String: Any] else { throw error("a close frame is an object {code, reason}") }
        try only(o, ["code", "reason"], "close frame")
        let code = (o["code"] as? Int).map { WSCloseCode(UInt16($0)) }
        return WSCloseFrame(code: code, reason: o["reason"] as? String ?? "")
    }

    func kind(_ value: Any?) throws -> WSMessageKind {
        switch value as? String {
        case "text": return .text
        case "binary": return .binary
        default: throw error("kind must be \"text\" or \"binary\"")
        }
    }

    func step(_ s: [String: Any]) throws -> WSFixture.Step {
        let command: WSFixture.Command
        if s.count == 1, let (key, value) = s.first {
            switch key {
            case "receive": return .receive(try bytes(value))
            case "receiveEOF": return .receiveEOF
            case "tick": return .tick(WSInstant(try seconds(value)))
            case "expectEvents":
                guard let list = value as? [[String: Any]] else { throw error("expectEvents takes an array of events") }
                return .expectEvents(try list.map(event))
            case "expectOutbound": return .expectOutbound(try bytes(value), endOfStream: false)
            default: break
            }
        }
        if let value = s["expectOutbound"] {
            try only(s, ["expectOutbound", "endOfStream"], "expectOutbound")
            return .expectOutbound(try bytes(value), endOfStream: s["endOfStream"] as? Bool ?? false)
        }
        if let value = s["expectState"] {
            try only(s, ["expectState", "nextDeadline", "bufferedAmount", "isWritable"], "expectState")
            var expected = WSFixture.ExpectedState()
            if !(value is JSONNull) { expected.lifecycle = try lifecycle(value) }
            if let d = s["nextDeadline"] { expected.nextDeadline = d is JSONNull ? .some(nil) : WSInstant(try seconds(d)) }
            expected.bufferedAmount = s["bufferedAmount"] as? Int
            expected.isWritable = s["isWritable"] as? Bool
            return .expectState(expected)
        }
        let expectError = s["expectError"] as? String
        let compress = s["compress"] as? Bool ?? true
        let timeout = try s["timeout"].map(seconds)
        let keys = Set(s.keys).subtracting(["expectError", "compress", "timeout"])
        guard keys.count == 1, let key = keys.first else { throw error("a step has one action, got \(s.keys.sorted())") }
        let value = s[key]
        switch key {
        case "sendText":
            guard let t = value as? String else { throw error("sendText takes a string") }
            command = .sendText(t, compress: compress)
        case "sendBinary": command = .sendBinary(try bytes(value), compress: compress)
        case "sendFragment":
            guard let o = value as? [String: Any] else { throw error("sendFragment takes {kind, data, final}") }
            try only(o, ["kind", "data", "final"], "sendFragment")
            command = .sendFragment(try bytes(o["data"]), kind: try kind(o["kind"]), isFinal: o["final"] as? Bool ?? false, compress: compress)
        case "ping": command = .ping(try bytes(value))
        case "pong": command = .pong(try bytes(value))
        case "close":
            let frame = try closeFrame(value)
            command = .close(code: frame?.code, reason: frame?.reason ?? "", timeout: timeout)
        case "accept":
            let o = value as? [String: Any] ?? [:]
            try only(o, ["subprotocol", "extensions", "headers"], "accept")
            command = .accept(subprotocol: o["subprotocol"] as? String,
                              extensions: try (o["extensions"] as? [String]).map(extensionElements),
                              headers: try fields(o["headers"]))
        case "reject":
            guard let o = value as? [String: Any], let status = o["status"] as? Int else { throw error("reject takes {status, headers, body}") }
            try only(o, ["status", "headers", "body"], "reject")
            command = .reject(status: status, headers: try fields(o["headers"]), body: try o["body"].map(bytes) ?? [])
        case "fail":
            guard let o = value as? [String: Any], let code = o["code"] as? String else { throw error("fail takes {code, detail}") }
            try only(o, ["code", "detail"], "fail")
            command = .fail(code: code, detail: o["detail"] as? String ?? "")
        default: throw error("unknown step \(key)")
        }
        return .command(command, expectError: expectError)
    }

    func lifecycle(_ value: Any) throws -> WSProtocol.Lifecycle {
        switch value as? String {
        case "connecting": return .connecting
        case "open": return .open
        case "closeSent": return .closeSent
        case "closeReceived": return .closeReceived
        case "closing": return .closing
        case "closed": return .closed
        default: throw error("unknown state \(value)")
        }
    }

    func event(_ o: [String: Any]) throws -> WSProtocol.Event {
        guard o.count == 1, let (key, value) = o.first else { throw error("an event has one key") }
        switch key {
        case "text":
            guard let t = value as? String else { throw error("text takes a string") }
            return .text(t)
        case "binary": return .binary(try bytes(value)[...])
        case "fragment":
            guard let f = value as? [String: Any] else { throw error("fragment takes {kind, data, final}") }
            try only(f, ["kind", "data", "final"], "fragment")
            return .fragment(WSFragment(kind: try kind(f["kind"]), data: try bytes(f["data"] ?? "")[...],
                                        isFinal: f["final"] as? Bool ?? false))
        case "ping": return .ping(try bytes(value)[...])
        case "pong": return .pong(try bytes(value)[...])
        case "closeReceived":
            guard let frame = try closeFrame(value) else { throw error("closeReceived takes {code, reason}") }
            return .closeReceived(frame)
        case "idleTimeout": return .idleTimeout
        case "handshakeFailed":
            guard let code = value as? String else { throw error("handshakeFailed takes an error code name") }
            return .handshakeFailed(WSHandshakeError(WSHandshakeError.Code(rawValue: code), detail: ""))
        case "upgradeRequested":
            guard let r = value as? [String: Any] else { throw error("upgradeRequested takes an object") }
            try only(r, ["authority", "target", "headers", "path", "query", "origin", "subprotocols", "extensions", "cookies", "key"], "upgradeRequested")
            return .upgradeRequested(WSUpgradeRequest(
                head: HTTPRequest(method: .get, scheme: nil, authority: r["authority"] as? String, path: r["target"] as? String,
                                  headerFields: try fields(r["headers"])),
                path: r["path"] as? String ?? "", query: r["query"] as? String, origin: r["origin"] as? String,
                subprotocols: r["subprotocols"] as? [String] ?? [],
                extensions: try extensionElements(r["extensions"] as? [String] ?? []),
                cookies: try pairs(r["cookies"]).map { WSCookie(name: $0.0, value: $0.1) },
                key: r["key"] as? String ?? ""))
        case "opened":
            guard let o = value as? [String: Any], let request = o["request"] as? [String: Any],
                  let response = o["response"] as? [String: Any], let status = response["status"] as? Int else {
                throw error("opened takes {request, response, subprotocol, extensions}")
            }
            try only(o, ["request", "response", "subprotocol", "extensions"], "opened")
            try only(request, ["scheme", "authority", "target", "headers"], "opened request")
            try only(response, ["status", "headers"], "opened response")
            return .opened(WSHandshakeResult(
                request: HTTPRequest(method: .get, scheme: request["scheme"] as? String, authority: request["authority"] as? String,
                                     path: request["target"] as? String, headerFields: try fields(request["headers"])),
                response: HTTPResponse(status: HTTPResponse.Status(code: status), headerFields: try fields(response["headers"])),
                subprotocol: o["subprotocol"] as? String,
                extensions: try extensionElements(o["extensions"] as? [String] ?? [])))
        case "rejected":
            guard let o = value as? [String: Any], let status = o["status"] as? Int else { throw error("rejected takes {status, headers, body, truncated}") }
            try only(o, ["status", "headers", "body", "truncated"], "rejected")
            return .rejected(WSHandshakeRejection(
                response: HTTPResponse(status: HTTPResponse.Status(code: status), headerFields: try fields(o["headers"])),
                body: try o["body"].map(bytes) ?? [], isBodyTruncated: o["truncated"] as? Bool ?? false))
        case "failed":
            guard let code = value as? String else { throw error("failed takes an error code name") }
            return .failed(WSProtocolError(WSProtocolError.Code(rawValue: code)))
        case "closed":
            guard let c = value as? [String: Any] else { throw error("closed takes {sent, received, initiator, cause}") }
            try only(c, ["sent", "received", "initiator", "cause"], "closed")
            let initiator: WSProtocol.Initiator?
            switch c["initiator"] as? String {
            case "local": initiator = .local
            case "remote": initiator = .remote
            case nil: initiator = nil
            case let other?: throw error("unknown initiator \(other)")
            }
            return .closed(WSProtocol.CloseInfo(
                sent: try closeFrame(c["sent"]), received: try closeFrame(c["received"]),
                initiator: initiator, cause: try cause(c["cause"])))
        default:
            throw error("unknown event \(key)")
        }
    }

    func cause(_ value: Any?) throws -> WSProtocol.Cause? {
        if value == nil || value is JSONNull { return nil }
        if let name = value as? String {
            switch name {
            case "transportClosed": return .transportClosed
            case "keepaliveTimeout": return .keepaliveTimeout
            case "closeTimeout": return .closeTimeout
            default: throw error("unknown cause \(name)")
            }
        }
        guard let o = value as? [String: Any], o.count == 1 else { throw error("a cause is a name or a one-key object") }
        if let code = o["protocolError"] as? String { return .protocolError(WSProtocolError(WSProtocolError.Code(rawValue: code))) }
        if let code = o["handshakeFailed"] as? String {
            return .handshakeFailed(WSHandshakeError(WSHandshakeError.Code(rawValue: code), detail: ""))
        }
        if let status = o["handshakeRejected"] as? Int { return .handshakeRejected(status: status) }
        throw error("a cause object is {protocolError}, {handshakeFailed} or {handshakeRejected}")
    }

    /// `[[name, value], …]` pairs.
    func pairs(_ value: Any?) throws -> [(String, String)] {
        guard let value, !(value is JSONNull) else { return [] }
        guard let list = value as? [[String]], list.allSatisfy({ $0.count == 2 }) else { throw error("expected [[name, value], …]") }
        return list.map { ($0[0], $0[1]) }
    }

    /// Header fields as `[[name, value], …]`, in order.
    func fields(_ value: Any?) throws -> HTTPFields {
        var out = HTTPFields()
        for (name, v) in try pairs(value) {
            guard let n = HTTPField.Name(name) else { throw error("invalid field name \(name)") }
            out.append(HTTPField(name: n, value: v))
        }
        return out
    }

    /// `Sec-WebSocket-Extensions` elements, each written as in the header.
    func extensionElements(_ texts: [String]) throws -> [WSExtensionElement] {
        try texts.map { text in
            guard let parsed = WSExtensionElement.parse([text]), parsed.count == 1 else { throw error("bad extension element \(text)") }
            return parsed[0]
        }
    }

    /// permessage-deflate with a configuration object (``WSPerMessageDeflate/Configuration``'s fields).
    func deflate(_ value: Any?) throws -> WSPerMessageDeflate {
        let o = value as? [String: Any] ?? [:]
        var c = WSPerMessageDeflate.Configuration()
        for (key, v) in o {
            func int() throws -> Int {
                guard let n = v as? Int else { throw error("\(key) takes an integer") }
                return n
            }
            switch key {
            case "serverNoContextTakeover": c.serverNoContextTakeover = v as? Bool ?? false
            case "clientNoContextTakeover": c.clientNoContextTakeover = v as? Bool ?? false
            case "serverMaxWindowBits": c.serverMaxWindowBits = v is JSONNull ? nil : try int()
            case "clientMaxWindowBits": c.clientMaxWindowBits = v is JSONNull ? nil : try int()
            case "compressionLevel": c.compressionLevel = try int()
            case "memoryLevel": c.memoryLevel = try int()
            case "minimumSize": c.minimumSize = try int()
            default: throw error("unknown deflate key \(key)")
            }
        }
        return try WSPerMessageDeflate(c)
    }

    func handshake(_ value: Any, role: WSProtocol.Role) throws -> WSFixture.Handshake {
        guard let o = value as? [String: Any] else { throw error("handshake takes an object") }
        func negotiators() throws -> [any WSExtensionNegotiator] {
            try (o["extensions"] as? [[String: Any]] ?? []).map { e -> any WSExtensionNegotiator in
                guard let name = e["name"] as? String else { throw error("an extension needs a name") }
                if name == WSPerMessageDeflate.name { return try deflate(e["deflate"]) }
                return WSTestExtension(name: name, offers: try extensionElements(e["offers"] as? [String] ?? []))
            }
        }
        switch role {
        case .client:
            try only(o, ["url", "subprotocols", "extensions", "headers", "cookies", "authorization", "timeout",
                         "maxResponseHeaderSize", "maxRejectionBodySize"], "client handshake")
            guard let url = o["url"] as? String else { throw error("a client handshake needs a url") }
            var h = WSClientHandshake(url: try WSURL(url))
            h.subprotocols = o["subprotocols"] as? [String] ?? []
            h.extensions = try negotiators()
            h.headers = try fields(o["headers"])
            h.cookies = try pairs(o["cookies"]).map { WSCookie(name: $0.0, value: $0.1) }
            if let bearer = o["authorization"] as? String { h.authorization = .bearer(bearer) }
            if let t = o["timeout"] { h.timeout = try seconds(t) }
            if let n = o["maxResponseHeaderSize"] as? Int { h.maxResponseHeaderSize = n }
            if let n = o["maxRejectionBodySize"] as? Int { h.maxRejectionBodySize = n }
            return .client(h)
        case .server:
            try only(o, ["maxURILength", "maxHeaderSize", "timeout", "requestHeadTimeout", "extensions", "serverName"], "server handshake")
            var h = WSServerHandshake()
            if let n = o["maxURILength"] as? Int { h.maxURILength = n }
            if let n = o["maxHeaderSize"] as? Int { h.maxHeaderSize = n }
            if let t = o["timeout"] { h.timeout = try seconds(t) }
            if let t = o["requestHeadTimeout"] { h.requestHeadTimeout = t is JSONNull ? nil : try seconds(t) }
            h.extensions = try negotiators()
            h.serverName = o["serverName"] as? String
            return .server(h)
        }
    }
}

/// JSON `null` in a parsed fixture (the parser works on `Any` trees, as `JSONSerialization`
/// gives them, without full Foundation).
struct JSONNull {}

/// A JSON value as FoundationEssentials' `JSONDecoder` reads it; ``any`` is the `Any` tree the
/// fixture parser walks (objects as `[String: Any]`, arrays as `[Any]`, integral numbers as
/// `Int`, others as `Double`, `null` as ``JSONNull``).
enum JSONValue: Decodable {
    case null, bool(Bool), int(Int), double(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    var any: Any {
        switch self {
        case .null: JSONNull()
        case .bool(let b): b
        case .int(let i): i
        case .double(let d): d
        case .string(let s): s
        case .array(let a): a.map(\.any)
        case .object(let o): o.mapValues(\.any)
        }
    }
}
