// permessage-deflate (RFC 7692): the negotiation of its four parameters (§7.1) in both roles.
// The compression itself is in WSDeflateTransform+Unsafe.swift.

public import WSCore
internal import Synchronization

/// The permessage-deflate extension (RFC 7692): compresses each data message with DEFLATE.
///
/// Add it to ``WSClientHandshake/extensions`` or ``WSServerHandshake/extensions``; the engines
/// then negotiate it and compress and decompress transparently:
///
/// ```swift
/// var server = WSServerHandshake()
/// server.extensions = [WSPerMessageDeflate()]
/// ```
///
/// As a server it accepts the first acceptable offer and declines the others (RFC 7692 §5):
/// offers with unknown, repeated or invalid parameters, and offers that demand
/// `server_max_window_bits=8`, which zlib cannot compress with. As a client it offers one
/// configuration and fails the connection on an answer RFC 7692 §7 forbids.
public struct WSPerMessageDeflate: WSExtensionNegotiator {
    /// The extension token.
    public static let name = "permessage-deflate"
    public var extensionName: String { Self.name }

    /// What this endpoint offers, accepts and compresses with.
    public let configuration: Configuration
    /// The shared profile of each set of parameters agreed so far (the idle form of the
    /// connections' codecs), shared by copies of this negotiator.
    private let profiles = Profiles()

    /// Negotiation preferences and compression settings.
    ///
    /// Memory per connection (zlib's own figures): compressing costs
    /// `2^(windowBits + 2) + 2^(memoryLevel + 9)` bytes, about 256 KiB with the defaults
    /// (windowBits 15, memoryLevel 8) and 32 KiB with windowBits 12 and memoryLevel 5 (see
    /// ``lowMemory``); decompressing costs about 39 KiB (a 32 KiB window plus 7 KiB of state):
    /// we always decompress with the largest window, so that the outcome never depends on how
    /// the input was split (see ``WSDeflateTransform``).
    /// Both are allocated on the first message in each direction. With context takeover they
    /// live as long as the connection (the window is the context); under a `no_context_takeover`
    /// parameter ``WSProtocol/releaseIdleMemory()`` frees them between messages.
    public struct Configuration: Hashable, Sendable {
        /// Server: reset our compression context after each message, and say so. Client: ask
        /// the server to (it must agree or decline compression). Saves the peer's decompressor
        /// nothing, but lets the compressing side free its memory between messages.
        public var serverNoContextTakeover = false

        /// Server: require the client to reset its compression context after each message.
        /// Client: promise to (RFC 7692 §7.1.1.2's hint), and do it.
        public var clientNoContextTakeover = false

        /// Server: the largest window (8–15) we compress with; we answer with it when it is
        /// below 15. 8 is answered as 9: zlib cannot compress with an 8-bit window. Client: ask
        /// the server to compress with at most this window (`server_max_window_bits`). `nil`: 15.
        public var serverMaxWindowBits: Int? = nil

        /// Client: the largest window (8–15) we compress with, offered as
        /// `client_max_window_bits=N`; `nil` offers the bare parameter (the server may choose
        /// any window). Server: ask a client that offered the parameter to use at most this
        /// window. `nil`: 15 (the client's own choice).
        ///
        /// When the server limits our window to 8, we compress with distance-1 matches only
        /// (zlib's run-length strategy), which any 8-bit window decompresses.
        public var clientMaxWindowBits: Int? = nil

        /// The zlib compression level, 0 (store) to 9 (smallest). Default 6, zlib's default;
        /// 1 is about three times faster on text and compresses 10–20% less.
        public var compressionLevel: Int = 6

        /// zlib's memLevel, 1–9: memory for the compressor's hash table,
        /// `2^(memoryLevel + 9)` bytes. Default 8 (128 KiB); lower costs some ratio and speed.
        /// The most used: a whole message under 1 KiB compressed without context takeover uses at
        /// most 4, whose table is cheaper to clear after each message (the bytes are the same).
        public var memoryLevel: Int = 8

        /// Messages shorter than this many bytes are sent uncompressed (fragmented messages,
        /// whose length is unknown, are always compressed). Default 0: every message is
        /// compressed, as python-websockets and Chromium do. RFC 7692 lets each message choose,
        /// but some peers mishandle uncompressed messages in a compressed session
        /// (libwebsockets 4.1's client misreads the stream after one); below 64 bytes DEFLATE
        /// saves a few bytes at best, so raise this for peers known to cope.
        public var minimumSize: Int = 0

        /// The defaults described on each field.
        public init() {}

        /// 12-bit windows both ways and memoryLevel 5: about 32 KiB instead of 256 KiB to
        /// compress per connection, for a little less compression (python-websockets'
        /// defaults). It also lets the peer compress with less memory.
        public static var lowMemory: Configuration {
            var c = Configuration()
            c.serverMaxWindowBits = 12
            c.clientMaxWindowBits = 12
            c.memoryLevel = 5
            return c
        }

        /// Checks the ranges of the fields.
        public func validate() throws(WSUsageError) {
            func require(_ ok: Bool, _ why: String) throws(WSUsageError) {
                if !ok { throw .invalidConfiguration(why) }
            }
            try require(serverMaxWindowBits.map { (8...15).contains($0) } ?? true, "serverMaxWindowBits must be 8–15")
            try require(clientMaxWindowBits.map { (8...15).contains($0) } ?? true, "clientMaxWindowBits must be 8–15")
            try require((0...9).contains(compressionLevel), "compressionLevel must be 0–9")
            try require((1...9).contains(memoryLevel), "memoryLevel must be 1–9")
            try require(minimumSize >= 0, "minimumSize must not be negative")
        }
    }

    /// permessage-deflate with the default configuration.
    public init() {
        configuration = Configuration()
    }

    /// The servers' default (``WSEpollServer`` and the service layer's listener): the defaults,
    /// answered with `server_no_context_takeover` (RFC 7692 §7.1.1.1 lets a server add it to any
    /// accepted offer). Our compressor is then reset after every message, and given back when
    /// the connection goes idle, so an idle connection holds no compression state: with
    /// context takeover it keeps zlib's compressor (about 256 KiB allocated, 60–100 KiB of it
    /// touched) for as long as it lives, 1 GB for 10,000 connections that each got one
    /// compressed message. The cost is the ratio of small similar messages (each starts
    /// without the previous ones' window); set ``Configuration/serverNoContextTakeover`` to
    /// false where few connections exchange many similar messages.
    public static var server: WSPerMessageDeflate {
        var c = Configuration()
        c.serverNoContextTakeover = true
        return try! WSPerMessageDeflate(c)
    }

    /// permessage-deflate with `configuration`.
    /// - Throws: ``WSUsageError/invalidConfiguration(_:)`` for a field out of range.
    public init(_ configuration: Configuration) throws(WSUsageError) {
        try configuration.validate()
        self.configuration = configuration
    }

    // MARK: Client

    /// One offer: the configured parameters, and `client_max_window_bits` always (bare unless
    /// configured), which tells the server it may limit our window (RFC 7692 §7.1.2.2).
    public func offers() -> [WSExtensionElement] {
        var offer = DeflateParameters()
        offer.serverNoContextTakeover = configuration.serverNoContextTakeover
        offer.clientNoContextTakeover = configuration.clientNoContextTakeover
        offer.serverMaxWindowBits = configuration.serverMaxWindowBits
        offer.clientMaxWindowBits = configuration.clientMaxWindowBits.map { .bits($0) } ?? .unspecified
        return [offer.element]
    }

    /// RFC 7692 §7.1: the answer must carry only known parameters, each once, with valid values,
    /// and be an acceptable answer to one of our offers.
    public func validate(response: WSExtensionElement, offered: [WSExtensionElement]) -> String? {
        guard let answer = DeflateParameters(response, isOffer: false) else {
            return "unknown, repeated or invalid parameter in \(response)"
        }
        let offers = offered.compactMap { DeflateParameters($0, isOffer: true) }
        return offers.contains { answer.answers($0) } ? nil : "the answer \(response) matches no offer"
    }

    // MARK: Server

    /// The answer to the first acceptable offer (RFC 7692 §7.1), or nil to decline them all.
    public func accept(offers: [WSExtensionElement]) -> WSExtensionElement? {
        for element in offers {
            guard let offer = DeflateParameters(element, isOffer: true) else { continue }  // §7.1: decline
            var answer = DeflateParameters()
            // §7.1.2.1: our window may not exceed the client's limit. zlib cannot compress with
            // 8 bits, so an offer that demands 8 is declined and our own preference of 8 becomes 9.
            var window = min(configuration.serverMaxWindowBits ?? 15, offer.serverMaxWindowBits ?? 15)
            if window == 8 {
                if offer.serverMaxWindowBits == 8 { continue }
                window = 9
            }
            if window < 15 || offer.serverMaxWindowBits != nil { answer.serverMaxWindowBits = window }
            // §7.1.1.1: an offer with server_no_context_takeover is accepted only by including it.
            answer.serverNoContextTakeover = offer.serverNoContextTakeover || configuration.serverNoContextTakeover
            answer.clientNoContextTakeover = configuration.clientNoContextTakeover
            // §7.1.2.2: client_max_window_bits may be answered only if it was offered.
            if let limit = configuration.clientMaxWindowBits {
                switch offer.clientMaxWindowBits {
                case .absent: break
                case .unspecified: answer.clientMaxWindowBits = .bits(limit)
                case .bits(let offered): answer.clientMaxWindowBits = .bits(min(limit, offered))
                }
            }
            return answer.element
        }
        return nil
    }

    // MARK: Both

    /// The per-direction parameters the agreed element (the server's answer) means for `role`,
    /// or nil if the element is not a valid answer.
    public func parameters(agreed: WSExtensionElement, role: WSProtocol.Role) -> WSDeflateParameters? {
        guard let answer = DeflateParameters(agreed, isOffer: false) else { return nil }
        let server = WSDeflateParameters.Direction(maxWindowBits: answer.serverMaxWindowBits ?? 15,
                                                   noContextTakeover: answer.serverNoContextTakeover)
        switch role {
        case .server:
            let client = WSDeflateParameters.Direction(maxWindowBits: answer.clientMaxWindowBits.bits ?? 15,
                                                       noContextTakeover: answer.clientNoContextTakeover)
            return WSDeflateParameters(send: server, receive: client)
        case .client:
            // We promised the offered window and, if configured, no context takeover.
            let client = WSDeflateParameters.Direction(
                maxWindowBits: answer.clientMaxWindowBits.bits ?? configuration.clientMaxWindowBits ?? 15,
                noContextTakeover: answer.clientNoContextTakeover || configuration.clientNoContextTakeover)
            return WSDeflateParameters(send: client, receive: server)
        }
    }

    /// The compressor and decompressor for one connection. The connections that agree on the
    /// same parameters with this negotiator (or a copy of it) share one profile of them, which
    /// each connection's engine holds instead of the codec while the connection is idle
    /// (``WSDeflateTransform/idleForm()``).
    public func makeTransform(agreed: WSExtensionElement, role: WSProtocol.Role) -> (any WSMessageTransform)? {
        parameters(agreed: agreed, role: role).map { WSDeflateTransform(profile: profiles.profile($0, configuration)) }
    }

    /// At most 256 profiles: 8 window sizes and 2 flags in each direction.
    private final class Profiles: Sendable {
        private let byKey = Mutex<[UInt16: DeflateProfile]>([:])

        func profile(_ parameters: WSDeflateParameters, _ configuration: Configuration) -> DeflateProfile {
            func bits(_ d: WSDeflateParameters.Direction) -> UInt16 { UInt16(d.maxWindowBits & 0xF) << 1 | (d.noContextTakeover ? 1 : 0) }
            let key = bits(parameters.send) << 5 | bits(parameters.receive)
            return byKey.withLock { profiles in
                if let p = profiles[key] { return p }
                let p = DeflateProfile(parameters: parameters, configuration: configuration)
                profiles[key] = p
                return p
            }
        }
    }
}

/// What permessage-deflate was agreed to mean for one endpoint, by direction.
public struct WSDeflateParameters: Hashable, Sendable {
    /// One direction's compression context.
    public struct Direction: Hashable, Sendable {
        /// The base-2 logarithm of the LZ77 window the compressing side uses at most (8–15).
        public var maxWindowBits: Int
        /// The compressing side resets its context after each message.
        public var noContextTakeover: Bool

        public init(maxWindowBits: Int = 15, noContextTakeover: Bool = false) {
            self.maxWindowBits = maxWindowBits
            self.noContextTakeover = noContextTakeover
        }
    }

    /// How we compress.
    public var send: Direction
    /// How the peer compresses (what we decompress).
    public var receive: Direction

    public init(send: Direction = Direction(), receive: Direction = Direction()) {
        self.send = send
        self.receive = receive
    }
}

/// The four parameters of one offer or answer, parsed and checked (RFC 7692 §7.1).
struct DeflateParameters: Equatable {
    enum ClientWindow: Equatable {
        /// Not present.
        case absent
        /// Present without a value (offers only): the server may choose.
        case unspecified
        case bits(Int)

        var bits: Int? {
            if case .bits(let b) = self { return b }
            return nil
        }
    }

    var serverNoContextTakeover = false
    var clientNoContextTakeover = false
    var serverMaxWindowBits: Int?
    var clientMaxWindowBits = ClientWindow.absent

    init() {}

    /// Parses an offer or an answer; nil when §7 says to decline the offer or fail the
    /// connection: an unknown parameter, a repeated one, a value where none is allowed, a
    /// missing or invalid window size (an integer 8–15 without leading zeros), or a bare
    /// `client_max_window_bits` in an answer.
    init?(_ element: WSExtensionElement, isOffer: Bool) {
        guard element.name.lowercased() == WSPerMessageDeflate.name else { return nil }
        var seen: Set<String> = []
        for parameter in element.parameters {
            let name = parameter.name.lowercased()
            guard seen.insert(name).inserted else { return nil }
            switch name {
            case "server_no_context_takeover":
                guard parameter.value == nil else { return nil }
                serverNoContextTakeover = true
            case "client_no_context_takeover":
                guard parameter.value == nil else { return nil }
                clientNoContextTakeover = true
            case "server_max_window_bits":
                guard let bits = parameter.value.flatMap(Self.windowBits) else { return nil }
                serverMaxWindowBits = bits
            case "client_max_window_bits":
                if let value = parameter.value {
                    guard let bits = Self.windowBits(value) else { return nil }
                    clientMaxWindowBits = .bits(bits)
                } else {
                    guard isOffer else { return nil }
                    clientMaxWindowBits = .unspecified
                }
            default:
                return nil
            }
        }
    }

    /// §7.1.2: "a decimal integer value without leading zeroes between 8 to 15, inclusive".
    static func windowBits(_ value: String) -> Int? {
        let digits = Array(value.utf8)
        guard (1...2).contains(digits.count), digits[0] != UInt8(ascii: "0"),
              digits.allSatisfy({ (0x30...0x39).contains($0) }), let n = Int(value), (8...15).contains(n) else { return nil }
        return n
    }

    /// Whether this answer is one a server may send to `offer` (§7.1.1.1, §7.1.2.1, §7.1.2.2).
    func answers(_ offer: DeflateParameters) -> Bool {
        if offer.serverNoContextTakeover && !serverNoContextTakeover { return false }
        if let limit = offer.serverMaxWindowBits {
            guard let bits = serverMaxWindowBits, bits <= limit else { return false }
        }
        if let bits = clientMaxWindowBits.bits {
            switch offer.clientMaxWindowBits {
            case .absent: return false
            case .unspecified: break
            case .bits(let limit): if bits > limit { return false }
            }
        }
        return true
    }

    var element: WSExtensionElement {
        var parameters: [WSExtensionElement.Parameter] = []
        if serverNoContextTakeover { parameters.append(.init("server_no_context_takeover")) }
        if clientNoContextTakeover { parameters.append(.init("client_no_context_takeover")) }
        if let bits = serverMaxWindowBits { parameters.append(.init("server_max_window_bits", String(bits))) }
        switch clientMaxWindowBits {
        case .absent: break
        case .unspecified: parameters.append(.init("client_max_window_bits"))
        case .bits(let bits): parameters.append(.init("client_max_window_bits", String(bits)))
        }
        return WSExtensionElement(name: WSPerMessageDeflate.name, parameters: parameters)
    }
}
