/// The peer broke RFC 6455 (or a negotiated extension, or one of our limits).
///
/// Produced by ``WSProtocol`` as the payload of ``WSProtocol/Event/failed(_:)``; by the time it is
/// reported, a Close frame with ``closeCode`` is already queued and the connection is terminal.
/// The ``detail`` never echoes payload bytes, so it is safe to log. Equality compares ``code``
/// only, so transcripts can state the rule without the wording or the offset.
public struct WSProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Which rule was broken: one code per rule.
    public var code: Code
    /// The status code sent in our Close frame.
    public var closeCode: WSCloseCode
    /// A short human-readable explanation (never contains payload bytes).
    public var detail: String
    /// The offset in the inbound byte stream (after the opening handshake) of the first byte of
    /// the offending frame, or of the offending byte itself for UTF-8 errors.
    public var offset: Int64

    /// Creates an error; `closeCode` defaults to the one `code` fails the connection with.
    public init(_ code: Code, closeCode: WSCloseCode? = nil, detail: String = "", offset: Int64 = 0) {
        self.code = code
        self.closeCode = closeCode ?? code.defaultCloseCode
        self.detail = detail
        self.offset = offset
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String {
        "\(code) (close \(closeCode)) at offset \(offset)\(detail.isEmpty ? "" : ": \(detail)")"
    }

    /// The rule a peer broke. An open set: extensions add their own codes.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The rule's name, as transcripts write it.
        public let rawValue: String
        /// The close code sent when this rule is broken.
        public let defaultCloseCode: WSCloseCode

        /// The code named `rawValue`, with its close code if it is a known rule (else 1002).
        public init(rawValue: String) {
            self.rawValue = rawValue
            self.defaultCloseCode = Self.known.first { $0.rawValue == rawValue }?.defaultCloseCode ?? .protocolError
        }

        /// Creates a code with the close code it fails the connection with.
        public init(_ rawValue: String, closeCode: WSCloseCode) {
            self.rawValue = rawValue
            self.defaultCloseCode = closeCode
        }

        public static func == (lhs: Self, rhs: Self) -> Bool { lhs.rawValue == rhs.rawValue }
        public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }
        public var description: String { rawValue }

        /// §5.2: RSV1–3 set without a negotiated extension defining them.
        public static let reservedBitsSet = Code("reservedBitsSet", closeCode: .protocolError)
        /// §5.2: an opcode RFC 6455 reserves (0x3–0x7, 0xB–0xF).
        public static let reservedOpcode = Code("reservedOpcode", closeCode: .protocolError)
        /// §5.5: a control frame with a payload longer than 125 bytes.
        public static let controlFrameTooLong = Code("controlFrameTooLong", closeCode: .protocolError)
        /// §5.5: a control frame without FIN.
        public static let fragmentedControlFrame = Code("fragmentedControlFrame", closeCode: .protocolError)
        /// §5.2: a payload length not encoded in the minimal number of bytes.
        public static let nonMinimalLength = Code("nonMinimalLength", closeCode: .protocolError)
        /// §5.2: a 64-bit payload length with its most significant bit set.
        public static let lengthMSBSet = Code("lengthMSBSet", closeCode: .protocolError)
        /// §5.1: a client frame without a mask.
        public static let unmaskedFrameFromClient = Code("unmaskedFrameFromClient", closeCode: .protocolError)
        /// §5.1: a server frame with a mask.
        public static let maskedFrameFromServer = Code("maskedFrameFromServer", closeCode: .protocolError)
        /// §5.4: a continuation frame with no message in progress.
        public static let unexpectedContinuation = Code("unexpectedContinuation", closeCode: .protocolError)
        /// §5.4: a new text or binary frame while a fragmented message is in progress.
        public static let expectedContinuation = Code("expectedContinuation", closeCode: .protocolError)
        /// §5.5.1: a Close payload of exactly one byte.
        public static let invalidClosePayload = Code("invalidClosePayload", closeCode: .protocolError)
        /// §7.4: a Close frame with a code that may not appear on the wire.
        public static let invalidCloseCode = Code("invalidCloseCode", closeCode: .protocolError)
        /// §5.5.1: a Close reason that is not valid UTF-8.
        public static let invalidCloseReason = Code("invalidCloseReason", closeCode: .invalidFramePayloadData)
        /// §5.6, §8.1: a text message that is not valid UTF-8.
        public static let invalidUTF8 = Code("invalidUTF8", closeCode: .invalidFramePayloadData)
        /// A frame payload over ``WSProtocol/Configuration/maxFrameSize``.
        public static let frameTooBig = Code("frameTooBig", closeCode: .messageTooBig)
        /// A message over ``WSProtocol/Configuration/maxMessageSize``.
        public static let messageTooBig = Code("messageTooBig", closeCode: .messageTooBig)
        /// A message of more frames than ``WSProtocol/Configuration/maxFragmentsPerMessage``.
        public static let tooManyFragments = Code("tooManyFragments", closeCode: .policyViolation)
        /// A transformed (compressed) message whose decoded size would pass
        /// ``WSProtocol/Configuration/maxDecompressedSize`` (or ``WSProtocol/Configuration/maxMessageSize``).
        public static let decompressedMessageTooBig = Code("decompressedMessageTooBig", closeCode: .messageTooBig)
        /// A transformed message whose payload the extension cannot decode (RFC 7692 §6.2: data
        /// that is not valid DEFLATE, or that does not end on a block boundary).
        public static let invalidCompressedData = Code("invalidCompressedData", closeCode: .invalidFramePayloadData)
        /// Not a peer's violation: the application failed the connection because a memory
        /// budget shared by many connections (an event loop's, a server's) ran out while this
        /// one's buffers grew (``WSProtocol/fail(_:detail:)``). 1013 Try Again Later: the peer
        /// may come back when the server is less loaded.
        public static let memoryBudgetExceeded = Code("memoryBudgetExceeded", closeCode: .tryAgainLater)

        static let known: [Code] = [
            .reservedBitsSet, .reservedOpcode, .controlFrameTooLong, .fragmentedControlFrame,
            .nonMinimalLength, .lengthMSBSet, .unmaskedFrameFromClient, .maskedFrameFromServer,
            .unexpectedContinuation, .expectedContinuation, .invalidClosePayload, .invalidCloseCode,
            .invalidCloseReason, .invalidUTF8, .frameTooBig, .messageTooBig, .tooManyFragments,
            .decompressedMessageTooBig, .invalidCompressedData, .memoryBudgetExceeded,
        ]
    }
}

/// We misused the API: thrown (typed) by ``WSProtocol``'s commands; the connection is unchanged.
public enum WSUsageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Data, ping or pong after our Close was sent, or any command after the connection closed.
    case notOpen
    /// `close` after our Close frame was already sent.
    case closeAlreadySent
    /// A control frame payload over 125 bytes (RFC 6455 §5.5).
    case controlPayloadTooLong(Int)
    /// A close code that may not be sent (see ``WSCloseCode/isSendable``).
    case invalidCloseCode(WSCloseCode)
    /// A close reason over 123 bytes of UTF-8, or a reason without a code.
    case invalidCloseReason
    /// A text message or fragment that is not valid UTF-8.
    case invalidUTF8
    /// A whole message, or a fragment of another kind, while a fragmented message is being sent.
    case fragmentedMessageInProgress
    /// Queuing this message would take ``WSProtocol/bufferedAmount`` over
    /// ``WSProtocol/Configuration/maxBufferedAmount``.
    case outboundBufferFull(bufferedAmount: Int, limit: Int)
    /// An invalid configuration; the string names the rule.
    case invalidConfiguration(String)
    /// A URL that is not a valid `ws`/`wss` URI (RFC 6455 §3).
    case invalidURL(String)
    /// Handshake options or an accept/reject call that break the handshake's rules.
    case invalidHandshake(String)
    /// ``WSProtocol/accept(subprotocol:extensions:headers:)`` or ``WSProtocol/reject(status:headers:body:)``
    /// without an upgrade request awaiting a decision.
    case noPendingUpgrade

    public var description: String {
        switch self {
        case .notOpen: "the connection is not open for sending"
        case .closeAlreadySent: "a Close frame was already sent"
        case .controlPayloadTooLong(let n): "control frame payload of \(n) bytes exceeds 125"
        case .invalidCloseCode(let c): "close code \(c) may not be sent"
        case .invalidCloseReason: "close reason must be at most 123 bytes and needs a code"
        case .invalidUTF8: "text is not valid UTF-8"
        case .fragmentedMessageInProgress: "a fragmented message is being sent"
        case .outboundBufferFull(let amount, let limit): "outbound buffer holds \(amount) bytes; limit \(limit)"
        case .invalidConfiguration(let why): "invalid configuration: \(why)"
        case .invalidURL(let why): "invalid WebSocket URL: \(why)"
        case .invalidHandshake(let why): "invalid handshake: \(why)"
        case .noPendingUpgrade: "no upgrade request awaits a decision"
        }
    }
}
