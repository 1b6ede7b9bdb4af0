// The interface through which a per-message extension (RFC 7692 §4's "PMCE" model, such as
// permessage-deflate) changes the payload of data messages. WSCore frames, checks and limits;
// the transform only turns payload bytes into other payload bytes. WSCore itself knows no
// compression algorithm (permessage-deflate lives in WSDeflate, over zlib).

/// The per-connection work of a negotiated per-message extension: it encodes outgoing messages
/// and decodes incoming ones marked with its RSV bit.
///
/// A transform belongs to exactly one ``WSProtocol`` (a reference type because it owns state
/// such as a compression context; the engine is its only user), except for an idle form that
/// connections share between messages (``idleForm()``). It is created after the opening
/// handshake by ``WSExtensionNegotiator/makeTransform(agreed:role:)``, or passed to
/// ``WSProtocol/init(role:configuration:now:randomNumberGenerator:transform:)`` when the
/// handshake happened elsewhere.
///
/// The engine guarantees the call order: for each message, `encode` calls end with one whose
/// `isFinal` is true; `decode` calls for one message end with one that returns
/// ``WSDecodeProgress/Status/finished``, unless the connection failed in between (then no
/// further calls come).
public protocol WSMessageTransform: AnyObject, Sendable {
    /// The RSV bits that mark a transformed message on its first frame, as in
    /// ``WSFrameHeader/rsv`` (``WSFrameHeader/rsv1`` for permessage-deflate). The engine accepts
    /// them on the first frame of a data message only (RFC 7692 §6.1); elsewhere they fail the
    /// connection with 1002.
    var reservedBits: UInt8 { get }

    /// Whether to transform a message about to be sent. `size` is its length, or nil when it is
    /// sent in fragments and the length is not known yet. The application can also refuse
    /// transformation per message (the `compress:` argument of the send commands).
    func shouldEncode(kind: WSMessageKind, size: Int?) -> Bool

    /// Encodes the next piece of the message being sent and appends the result to `output`.
    /// `isFinal` ends the message (every message gets at least one call).
    func encode(_ input: Span<UInt8>, isFinal: Bool, into output: inout [UInt8])

    /// Encodes the next piece of the message being sent without flushing: output may lag the
    /// input until a later ``encode(_:isFinal:into:)`` call. The engine uses it to encode a large
    /// message a slice at a time (``WSProtocol/Configuration/encodeSliceSize``), which must give
    /// the bytes one call would. Default: ``encode(_:isFinal:into:)`` with `isFinal` false (a
    /// valid encoding, though a flushing transform's output then differs from one call's).
    func encodeContinuing(_ input: Span<UInt8>, into output: inout [UInt8])

    /// Decodes the next piece of a received transformed message's payload and appends the
    /// result to `output`.
    ///
    /// - Parameters:
    ///   - input: payload bytes, unmasked, in order; `isFinal` says they end the message's payload
    ///     (possibly an empty `input` after the last frame).
    ///   - pauseAfter: return with ``WSDecodeProgress/Status/paused`` once this many bytes were
    ///     appended in this call (streaming delivery bounds each piece this way).
    ///   - limit: the most bytes the rest of the message may decode to. Exceeding it by a single
    ///     byte must throw ``WSTransformError/outputLimitExceeded`` without appending more than
    ///     `limit` bytes in total, so a decompression bomb costs no more memory than the limit.
    /// - Returns: how many bytes of `input` were used (the rest is passed again in the next call)
    ///   and whether the message needs more input, was paused, or is finished.
    func decode(_ input: Span<UInt8>, isFinal: Bool, into output: inout [UInt8], pauseAfter: Int, limit: Int) throws(WSTransformError) -> WSDecodeProgress

    /// Releases memory that is not needed between messages (for example a compression context
    /// that is reset after every message anyway). Called from ``WSProtocol/releaseIdleMemory()``.
    func releaseIdleMemory()

    /// The most bytes a message of `decodedSize` bytes can take once encoded, by any encoder
    /// of this transform (incompressible data grows a little under deflate). The engine lets
    /// a transformed message's frames and total on the wire reach this for its
    /// ``WSProtocol/Configuration/maxFrameSize`` and ``WSProtocol/Configuration/maxMessageSize``,
    /// so a message that decodes to exactly the limit is accepted however it was encoded; what
    /// it decodes to stays bounded exactly by the decoded-size limit. Default: `decodedSize`.
    func maxEncodedSize(forDecodedSize decodedSize: Int) -> Int

    /// A transform that holds no state the connection's next message needs may stand aside,
    /// while the connection is idle, for one that many connections share: an idle connection
    /// then keeps no object of its own (as with permessage-deflate without context takeover,
    /// or before any message was compressed). The engine asks when it installs the transform
    /// and after each ``releaseIdleMemory()``, and holds the answer in this one's place.
    /// Default: nil (this transform stays).
    func idleForm() -> (any WSMessageTransform)?

    /// For a shared idle form (see ``idleForm()``): the transform this connection uses from
    /// now on, made for the message about to be encoded (`encoding`) or decoded, or nil when
    /// this one can do that without keeping state for the connection: a whole message passed
    /// in one call (`wholeMessage`), for example, under no context takeover. The engine asks
    /// before each `encode`, `encodeContinuing` and `decode` call; a connection's own
    /// transform answers nil. Default: nil.
    func connectionTransform(encoding: Bool, wholeMessage: Bool) -> (any WSMessageTransform)?
}

extension WSMessageTransform {
    public func maxEncodedSize(forDecodedSize decodedSize: Int) -> Int { decodedSize }
    public func idleForm() -> (any WSMessageTransform)? { nil }
    public func connectionTransform(encoding: Bool, wholeMessage: Bool) -> (any WSMessageTransform)? { nil }
    public func encodeContinuing(_ input: Span<UInt8>, into output: inout [UInt8]) { encode(input, isFinal: false, into: &output) }
}

/// The result of one ``WSMessageTransform/decode(_:isFinal:into:pauseAfter:limit:)`` call.
public struct WSDecodeProgress: Hashable, Sendable {
    /// Why the call returned.
    public enum Status: Hashable, Sendable {
        /// Every input byte was used; more input is needed (the input was not final).
        case needsInput
        /// `pauseAfter` bytes were produced; call again (with the unused input, if any).
        case paused
        /// The message is completely decoded.
        case finished
    }

    /// How many input bytes were used.
    public var consumed: Int
    public var status: Status

    public init(consumed: Int, status: Status) {
        self.consumed = consumed
        self.status = status
    }
}

/// Why a received transformed message cannot be decoded.
public enum WSTransformError: Error, Hashable, Sendable {
    /// The decoded message would pass its size limit: the connection fails with 1009.
    case outputLimitExceeded
    /// The payload is not valid for the extension: the connection fails with 1007. The string
    /// explains why (it never contains payload bytes).
    case invalidData(String)
}
