// WSProtocol: the connection state machine of RFC 6455 for both roles: the opening handshake
// (§4, optional: an engine can also start open, after a handshake done elsewhere) and then
// §5–§7. A pure function of its inputs: bytes, end of input, commands and the time passed to
// `tick(now:)`. It does no I/O, reads no clock and draws randomness only from the injected
// generator (client handshake nonce and masking keys).
//
// Rules
// - Pull-based: `receive` only buffers; frames are parsed when `nextEvent()` is called, one event
//   per call, so memory is bounded by what the adapter feeds between drains. End of input and
//   timers are processed by `nextEvent()` too, after every buffered byte, so a Pong already
//   received is never mistaken for a missing one.
// - Contract for adapters: after any input (`receive`, `receiveEOF`, `tick`), call `nextEvent()`
//   until it returns nil; after that and after any command, write what `nextOutbound()` (or
//   `withOutboundBytes`) holds; arm one timer for `nextDeadline`.
// - A peer's violation: `.failed(error)`, a Close with the error's code queued, end of stream
//   queued, input discarded, state `closing`. Our misuse: a typed `WSUsageError`, nothing changed.
// - Role changes only: which side must mask (§5.1), and that a client waits for the server to
//   end TCP after a clean closing handshake (§7.1.1) instead of ending it first.
// - A negotiated per-message extension (permessage-deflate, RFC 7692) is a `WSMessageTransform`:
//   its RSV bit is accepted on the first frame of a data message only, such messages' payload
//   is decoded through it (bounded by the decoded-size limit inside its loop), and sent messages
//   are encoded through it. The engine keeps framing, limits and UTF-8; the transform only turns
//   payload bytes into other payload bytes.
//
// Transition table (`lifecycle` → `lifecycle`; EOS = `WSOutbound.endOfStream` queued)
//
// | state         | input                                   | next          | events / output                       |
// |---------------|-----------------------------------------|---------------|---------------------------------------|
// | open          | data or Pong frame                      | open          | message/fragment, pong                |
// | open          | Ping frame                              | open          | ping; Pong if autoPong                |
// | open          | Close frame, autoCloseReply on          | closing       | closeReceived; Close echo; EOS if server |
// | open          | Close frame, autoCloseReply off         | closeReceived | closeReceived                         |
// | open          | close(code:reason:)                     | closeSent     | Close                                 |
// | open          | violation                               | closing       | failed; Close(code); EOS              |
// | open          | end of input                            | closed        | closed(1006, transportClosed)         |
// | open          | keepalive Ping due                      | open          | Ping                                  |
// | open          | no Pong by pingTimeout                  | closed        | Close(1011); EOS; closed(keepaliveTimeout) |
// | open          | idleTimeout elapsed                     | open          | idleTimeout                           |
// | closeSent     | data, Ping, Pong frame                  | closeSent     | message/fragment, ping, pong          |
// | closeSent     | Close frame                             | closing       | closeReceived; EOS if server          |
// | closeSent     | violation                               | closing       | failed; EOS                           |
// | closeSent     | end of input                            | closed        | closed(1006, transportClosed)         |
// | closeSent     | close's timeout elapsed (none if < 0)   | closed        | EOS; closed(1006, closeTimeout)       |
// | closeReceived | close(code:reason:)                     | closing       | Close; EOS if server                  |
// | closeReceived | end of input                            | closed        | closed(peer's code, transportClosed)  |
// | closing       | end of input                            | closed        | closed                                |
// | closing       | closeTimeout elapsed                    | closed        | EOS if not yet; closed                |
// | closed        | any input                               | closed        | none; commands throw `notOpen`        |
//
// The opening handshake, for engines created with `init(client:)` or `init(server:)`:
//
// | state         | input                                   | next          | events / output                       |
// |---------------|-----------------------------------------|---------------|---------------------------------------|
// | connecting    | server: a complete, valid request       | connecting    | upgradeRequested; no timer until decided |
// | connecting    | server: accept(...)                     | open          | opened; 101; buffered frames follow   |
// | connecting    | server: reject(status:...)              | closed        | the answer; EOS; closed(handshakeRejected) |
// | connecting    | server: an invalid request              | closed        | handshakeFailed; 4xx answer; EOS; closed |
// | connecting    | client: a valid 101                     | open          | opened; frames in the same read follow |
// | connecting    | client: a non-101 answer and its body   | closed        | rejected; EOS; closed(handshakeRejected) |
// | connecting    | client: an invalid answer               | closed        | handshakeFailed; EOS; closed          |
// | connecting    | end of input                            | closed        | closed(transportClosed)               |
// | connecting    | handshake timeout elapsed               | closed        | handshakeFailed; 408 if server; EOS; closed |
//
// Input that arrives in closeReceived, closing or closed is discarded (§1.4: after a Close,
// "the endpoint ... discards"). Ping, pong and data commands are accepted in open and, for
// ping/pong/data, closeReceived; `close` in open and closeReceived.

public import HTTPTypes

/// The WebSocket protocol engine for one connection after the opening handshake.
///
/// Feed it what the transport delivers and drain what it produces:
///
/// ```swift
/// var ws = try WSProtocol(role: .server, now: clock.now)
/// ws.receive(bytesFromSocket)
/// ws.tick(now: clock.now)
/// while let event = ws.nextEvent() {
///     switch event {
///     case .text(let s): try ws.sendText(s)          // echo
///     case .closed: break
///     default: break
///     }
/// }
/// while let out = ws.nextOutbound() { /* write .bytes, or half-close on .endOfStream */ }
/// ```
///
/// `WSProtocol` is a single-owner value (`~Copyable`): exactly one adapter drives it.
public struct WSProtocol: ~Copyable, Sendable {
    /// Which end of the connection this engine is.
    public enum Role: Hashable, Sendable {
        /// The side that opened the connection; masks every frame it sends.
        case client
        /// The side that accepted it; must receive only masked frames.
        case server
    }

    // Stored properties: word-aligned ones first, then the odd-sized ones, then the bytes, so
    // that padding between them does not grow every connection's record.

    /// The configuration, fixed for the connection's life once it is open (a server's
    /// application may set its own when it accepts the upgrade).
    public private(set) var configuration: Configuration

    /// The latest time passed to ``tick(now:)`` (or `init`); timers are armed relative to it.
    public private(set) var now: WSInstant

    /// The checks made on every frame header: computed once per configuration and shared by
    /// every engine with it (not 64 bytes in each).
    private var limits: Configuration.FrameLimits { configuration.frameLimits }

    private var state: State
    @usableFromInline var inbound = InboundBuffer()
    /// Offset in the inbound stream of `inbound`'s read position.
    private var streamOffset: Int64 = 0
    /// The bytes of the message being assembled (``Delivery/wholeMessages``).
    @usableFromInline private(set) var messageBuffer: [UInt8] = []
    @usableFromInline var pending: [Event] = []
    @usableFromInline var outbound = OutboundBuffer()
    /// The negotiated per-message extension (permessage-deflate), if any.
    @usableFromInline var transform: (any WSMessageTransform)?
    /// Decoded bytes of a transformed message in streaming delivery: one piece at a time.
    @usableFromInline var decodeBuffer: [UInt8] = []
    /// An outgoing message after the transform encoded it.
    @usableFromInline var encodeBuffer: [UInt8] = []
    /// Messages waiting to be encoded a slice at a time (``Configuration/encodeSliceSize``),
    /// in order; the first is in progress. Usually empty.
    private var queuedSends: [QueuedSend] = []
    /// The bytes of `queuedSends` not encoded yet (counted when asked: the queue is usually
    /// empty, and a stored count would take 8 bytes in every engine).
    private var queuedBytes: Int {
        @inline(__always) get { queuedSends.isEmpty ? 0 : Self.pendingBytes(queuedSends) }
    }

    private static func pendingBytes(_ queue: [QueuedSend]) -> Int {
        queue.reduce(0) { $0 + $1.bytes.count - $1.offset }
    }
    /// A client's masking keys. Its generator is an existential held inline, which also keeps
    /// the engine address-only: a getter called on an engine stored in a class (the epoll
    /// connection) then reads it in place. A loadable engine (the generator boxed in a class)
    /// was 40 bytes smaller but copied whole, 328 bytes, for every such call: +800
    /// instructions per echoed message (callgrind).
    private var maskKeys: MaskKeySource?
    private var frame = FrameState.header
    private var sending = OutboundMessage.none
    private var message: InboundMessage?
    /// This engine's role.
    public let role: Role
    /// `messageBuffer` holds a message already handed out (its bytes may still be shared by the
    /// consumer); it is emptied when the next message needs it (`prepareMessageBuffer`).
    private var messageDelivered = false
    private var inputEnded = false
    @usableFromInline var outboundEOS = OutboundEOS.none
    private var writable = true
    /// The RSV bits the transform lets a message's first frame carry.
    private var allowedRSV: UInt8 = 0

    // MARK: State

    /// The rare, large cases are `indirect` so that the hot `open` case keeps the enum small.
    private enum State: Sendable {
        indirect case handshaking(Handshaking)
        case open(Timers)
        /// `deadline`: when waiting for the peer's Close ends; nil waits without limit.
        case closeSent(sent: WSCloseFrame, deadline: WSInstant?)
        case closeReceived(WSCloseFrame)
        indirect case closing(Closing)
        indirect case closed(CloseInfo)
    }

    /// The opening handshake (RFC 6455 §4), before `open`.
    private enum Handshaking: Sendable {
        /// Server: reading the client's request.
        /// `deadline`: the request head's (the earlier of the two timeouts); `handshakeDeadline`:
        /// the whole handshake's, kept for the decision.
        case readingRequest(HTTPHeadScanner, WSServerHandshake, deadline: WSInstant, handshakeDeadline: WSInstant)
        /// Server: the request is reported; the application must accept or reject it. The
        /// deadline is the request's handshake deadline, kept for the adapter (the engine arms
        /// no timer while the application decides).
        case awaitingDecision(WSUpgradeRequest, WSServerHandshake, deadline: WSInstant)
        /// Client: the request is queued; reading the answer.
        case readingResponse(ClientHandshakeState)
        /// Client: the answer was not 101; reading its body before reporting it.
        case readingRejection(HTTPResponse, BodyReader, deadline: WSInstant)
    }

    /// Keepalive and idle timers, meaningful only while open.
    private struct Timers: Sendable {
        // Compact optionals (8 bytes each, not 16): in every open connection's engine.
        var nextPing = WSOptionalInstant()
        var pongDeadline = WSOptionalInstant()
        var idleDeadline = WSOptionalInstant()
        var pingsSent: UInt32 = 0

        /// The earliest deadline: the Pong's while one is awaited, else the next Ping's; or the
        /// idle one, if sooner.
        var earliest: WSInstant? {
            let (ping, pong, idle) = (nextPing.nanoseconds, pongDeadline.nanoseconds, idleDeadline.nanoseconds)
            let keepalive = pong != .min ? pong : ping
            let soonest = keepalive == .min ? idle : (idle == .min ? keepalive : Swift.min(keepalive, idle))
            return soonest == .min ? nil : WSInstant(nanoseconds: soonest)
        }
    }

    private struct Closing: Sendable {
        var sent: WSCloseFrame?
        var received: WSCloseFrame?
        var initiator: Initiator?
        var cause: Cause?
        var deadline: WSInstant
    }

    /// Data ready for the application, located but not yet wrapped in an event: the two ways
    /// of taking data (``nextEvent()``, ``nextEvent(lendingData:)``) wrap it their own way.
    private struct Piece {
        var kind: WSMessageKind
        /// Where the bytes are in the receive buffer (already consumed), unless `assembled`.
        var range: Range<Int>
        /// Whether this ends the message.
        var isFinal: Bool
        /// A whole message (``Delivery/wholeMessages``) rather than a streaming fragment.
        var isMessage: Bool
        /// Where the bytes are.
        var source = Source.receiveBuffer

        enum Source {
            /// At `range` in the receive buffer.
            case receiveBuffer
            /// All of `messageBuffer` (a message assembled from several frames, or decoded).
            case messageBuffer
            /// All of `decodeBuffer` (a streaming piece of a decoded message).
            case decodeBuffer
        }
    }

    private enum Pulled {
        case event(Event)
        case piece(Piece)
    }

    /// Where the frame parser is: between frames, or inside a data frame's payload.
    private enum FrameState: Sendable {
        case header
        case payload(Payload)
    }

    private struct Payload: Sendable {
        var remaining: Int
        /// The key phase of the next payload byte.
        var phase: Int = 0
        var key: WSMaskKey?
        var fin: Bool
    }

    /// The data message being received.
    private struct InboundMessage: Sendable {
        var kind: WSMessageKind
        /// Marked with the transform's RSV bit: its payload goes through `transform.decode`.
        var isTransformed = false
        /// The last decode call paused with output pending.
        var decodePaused = false
        var utf8 = WSUTF8Validator()
        var size = 0
        var frames = 0
        /// Bytes decoded so far (transformed messages).
        var decodedSize = 0
    }

    /// A message sent while a large one is being encoded a slice at a time.
    private struct QueuedSend: Sendable {
        var bytes: [UInt8]
        var offset = 0
        let kind: WSMessageKind
        /// Goes through the transform (else it is framed as it is, when its turn comes).
        let transformed: Bool
        /// Its first frame (with the opcode and the transform's RSV bits) is queued.
        var started = false
        /// Encoded bytes not framed yet: a frame goes out once more than a fragment is here,
        /// so the frames are those of a whole encoding (all full but the last).
        var held: [UInt8] = []
    }

    /// A fragmented message being sent with ``sendFragment(_:kind:isFinal:compress:)``.
    private enum OutboundMessage: Sendable {
        case none
        case inProgress(WSUTF8Validator, WSMessageKind, transformed: Bool)
    }

    @usableFromInline enum OutboundEOS: Sendable {
        case none, queued, delivered
    }

    // MARK: Creation

    /// Creates the engine for a connection whose opening handshake has completed.
    ///
    /// - Parameters:
    ///   - role: whether we are the client or the server.
    ///   - configuration: limits and behaviour; validated here.
    ///   - now: the current time; keepalive and idle timers start from it.
    ///   - randomNumberGenerator: the source of client masking keys (RFC 6455 §5.3 asks for a
    ///     strong source of entropy; the default is the system's). Tests inject a fixed one.
    ///   - transform: the per-message extension the handshake agreed on, if any (for example
    ///     `WSPerMessageDeflate(...).makeTransform(agreed:role:)` from WSDeflate).
    /// - Throws: ``WSUsageError/invalidConfiguration(_:)``.
    public init(
        role: Role,
        configuration: Configuration = .default,
        now: WSInstant,
        randomNumberGenerator: some RandomNumberGenerator & Sendable = SystemRandomNumberGenerator(),
        transform: (any WSMessageTransform)? = nil
    ) throws(WSUsageError) {
        try configuration.validate()
        self.role = role
        self.configuration = configuration
        self.now = now
        self.maskKeys = role == .client ? MaskKeySource(random: randomNumberGenerator) : nil
        self.state = .open(Self.openTimers(configuration, now: now))
        install(transform)
    }

    private mutating func install(_ transform: (any WSMessageTransform)?) {
        self.transform = transform.map { $0.idleForm() ?? $0 }
        allowedRSV = transform?.reservedBits ?? 0
    }

    /// The message transform held now: the connection's own, or its idle form (for tests).
    package var currentTransform: (any WSMessageTransform)? { transform }

    /// The transform for the next encode or decode call: a shared idle form gives way to the
    /// connection's own when it cannot make the call alone
    /// (``WSMessageTransform/connectionTransform(encoding:wholeMessage:)``).
    private mutating func activeTransform(encoding: Bool, wholeMessage: Bool) -> any WSMessageTransform {
        let current = transform!
        guard let own = current.connectionTransform(encoding: encoding, wholeMessage: wholeMessage) else { return current }
        transform = own
        return own
    }

    /// Creates a client engine that starts with the opening handshake (RFC 6455 §4.1): the
    /// request is queued at once (drain ``nextOutbound()``), then the server's answer is read
    /// from what ``receive(_:)`` gets. ``Event/opened(_:)`` reports success (frames may follow
    /// in the same read); ``Event/rejected(_:)`` a non-101 answer; ``Event/handshakeFailed(_:)``
    /// an invalid one. Each ends in ``Event/closed(_:)`` unless the connection opened.
    ///
    /// - Parameters:
    ///   - handshake: the URL, subprotocols, extensions, headers, cookies, credentials, timeout.
    ///   - randomNumberGenerator: the source of the 16-byte nonce (the first four masking keys'
    ///     worth of bytes) and of masking keys.
    /// - Throws: ``WSUsageError/invalidConfiguration(_:)``, ``WSUsageError/invalidHandshake(_:)``.
    public init(
        client handshake: WSClientHandshake,
        configuration: Configuration = .default,
        now: WSInstant,
        randomNumberGenerator: some RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()
    ) throws(WSUsageError) {
        try handshake.validate()
        try self.init(role: .client, configuration: configuration, now: now, randomNumberGenerator: randomNumberGenerator)
        var nonce: [UInt8] = []
        for _ in 0..<4 {
            let key = maskKeys!.next()
            nonce += [key[0], key[1], key[2], key[3]]
        }
        var request: [UInt8] = []
        let pending = ClientHandshakeState(handshake, nonce: nonce, now: now, into: &request)
        outbound.appendRaw(request)
        state = .handshaking(.readingResponse(pending))
    }

    /// Creates a server engine that starts with the opening handshake (RFC 6455 §4.2): it reads
    /// the client's request, answers invalid ones itself (400, 405, 408, 414, 426, 431 with
    /// ``Event/handshakeFailed(_:)``), and reports a valid one as ``Event/upgradeRequested(_:)``;
    /// the application then calls ``accept(subprotocol:extensions:headers:)`` or
    /// ``reject(status:headers:body:)``.
    ///
    /// - Throws: ``WSUsageError/invalidConfiguration(_:)``, ``WSUsageError/invalidHandshake(_:)``.
    public init(
        server handshake: WSServerHandshake = WSServerHandshake(),
        configuration: Configuration = .default,
        now: WSInstant
    ) throws(WSUsageError) {
        try handshake.validate()
        try self.init(role: .server, configuration: configuration, now: now)
        let handshakeDeadline = now + handshake.timeout
        let headDeadline = handshake.requestHeadTimeout.map { min(now + $0, handshakeDeadline) } ?? handshakeDeadline
        state = .handshaking(.readingRequest(handshake.makeScanner(), handshake, deadline: headDeadline, handshakeDeadline: handshakeDeadline))
    }

    private static func openTimers(_ configuration: Configuration, now: WSInstant) -> Timers {
        Timers(nextPing: WSOptionalInstant(configuration.pingInterval.map { now + $0 }),
               idleDeadline: WSOptionalInstant(configuration.idleTimeout.map { now + $0 }))
    }

    // MARK: Observation

    /// Where the connection is in its lifecycle.
    public var lifecycle: Lifecycle {
        switch state {
        case .handshaking: .connecting
        case .open: .open
        case .closeSent: .closeSent
        case .closeReceived: .closeReceived
        case .closing: .closing
        case .closed: .closed
        }
    }

    /// Whether the connection is over (``Event/closed(_:)`` has been produced).
    public var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    /// How the connection ended, once closed.
    public var closeInfo: CloseInfo? {
        if case .closed(let info) = state { return info }
        return nil
    }

    /// When ``tick(now:)`` must next be called, or `nil` if no timer is armed.
    public var nextDeadline: WSInstant? {
        switch state {
        case .handshaking(let h):
            switch h {
            case .readingRequest(_, _, let deadline, _), .readingRejection(_, _, let deadline): return deadline
            case .readingResponse(let client): return client.deadline
            case .awaitingDecision: return nil
            }
        case .open(let t):
            return t.earliest
        case .closeSent(_, let deadline):
            return deadline
        case .closeReceived:
            return nil
        case .closing(let c):
            return c.deadline
        case .closed:
            return nil
        }
    }

    /// Outbound bytes queued and not yet taken by the adapter (ready to write: the unencoded
    /// part of a message compressed a slice at a time is not counted here, but toward
    /// ``isWritable``).
    @inlinable public var bufferedAmount: Int { outbound.count }

    /// Whether the engine has work it can do without new input: the decoding of a transformed
    /// message paused (after a ``Configuration/decodeSliceSize`` slice, or a streaming piece)
    /// with more to decode from what was received, for ``nextEvent()``; or a message being
    /// encoded a slice at a time (``Configuration/encodeSliceSize``), for
    /// ``continueEncoding()``. An adapter that stopped to serve other connections comes back
    /// while this is true. Both need a message transform: without one this is false, which the
    /// inlined part answers (the loop asks after every message).
    @inlinable public var hasPendingWork: Bool { transform != nil && hasPendingTransformWork }

    @usableFromInline var hasPendingTransformWork: Bool { (message?.decodePaused ?? false) || !queuedSends.isEmpty }

    /// Bytes of memory the engine's own buffers hold (receive, send, message assembly, decoding
    /// and encoding), in use or kept for the next message, not counting the message transform's
    /// state (zlib). A buffer keeps its memory while messages fill a quarter of it or more;
    /// ``releaseIdleMemory()`` brings this down to what is in use.
    @inlinable public var bufferCapacity: Int {
        inbound.storage.capacity + outbound.storage.capacity + messageBuffer.capacity
            + decodeBuffer.capacity + encodeBuffer.capacity
    }

    /// Whether the application may keep producing: false from the moment ``bufferedAmount``
    /// reaches ``Configuration/outboundHighWaterMark`` until it falls to
    /// ``Configuration/outboundLowWaterMark``. Adapters stop reading while it is false.
    public var isWritable: Bool { writable }

    // MARK: Inputs

    /// Where the parser stands, for unmasking on arrival: between frames, or inside a masked
    /// payload (nil inside an unmasked one).
    var parserPosition: InboundBuffer.ScanStart? {
        if case .handshaking = state { return nil }
        switch frame {
        case .header: return .header
        case .payload(let p):
            guard let key = p.key else { return nil }
            return .payload(remaining: UInt64(p.remaining), key: key, phase: p.phase)
        }
    }

    /// Whether received bytes are still parsed (open, or our Close sent and theirs awaited).
    var acceptsInput: Bool {
        if inputEnded { return false }
        switch state {
        case .handshaking, .open, .closeSent: return true
        case .closeReceived, .closing, .closed: return false
        }
    }

    /// Records that the transport will deliver no more bytes. Drain ``nextEvent()`` afterwards:
    /// bytes already buffered are parsed first, then ``Event/closed(_:)`` is produced.
    public mutating func receiveEOF() {
        inputEnded = true
    }

    /// Advances the engine's clock. Drain ``nextEvent()`` afterwards: expired timers are
    /// processed there (keepalive Ping, Pong timeout, idle timeout, close timeout).
    ///
    /// Call it whenever ``nextDeadline`` passes, and before feeding input, so that activity is
    /// timed correctly. Time never goes backwards: an earlier `now` is ignored.
    public mutating func tick(now: WSInstant) {
        if now > self.now { self.now = now }
    }

    // MARK: Events

    /// Returns the next event, or `nil` when the engine needs more input (or time).
    ///
    /// Parsing, end-of-input and timers are processed here; automatic replies (Pong, Close
    /// echo) and keepalive Pings are queued as a side effect, so drain ``nextOutbound()`` after
    /// draining events.
    public mutating func nextEvent() -> Event? {
        switch pull() {
        case .event(let event)?: return event
        case .piece(let piece)?: return event(for: piece)
        case nil: return nil
        }
    }

    /// What ``nextEvent(lendingData:)`` did.
    public enum Lent {
        /// A piece of data was lent to the closure.
        case data
        /// Any other event (data events are never returned this way).
        case event(Event)
    }

    /// Like ``nextEvent()``, but lends the bytes of data to `body` instead of returning them: a
    /// `Span` over the receive buffer, valid only during the call, with no copy, no allocation
    /// and no reference counting. The fastest way to consume a stream (an echo server can send
    /// the bytes straight back from `body`'s caller, a parser can read them in place).
    ///
    /// - Parameter body: called with the kind of the message, its bytes, and whether they end the
    ///   message. In ``Delivery/wholeMessages`` mode each call is a whole message (text is
    ///   validated UTF-8, not converted to `String`); in ``Delivery/streaming`` mode each call is
    ///   a piece as it arrived.
    /// - Returns: `.data` after `body` ran, `.event` for every other event, nil when the engine
    ///   needs more input (or time).
    public mutating func nextEvent(lendingData body: (WSMessageKind, Span<UInt8>, Bool) -> Void) -> Lent? {
        switch pull() {
        case .event(let event)?:
            return .event(event)
        case .piece(let piece)?:
            switch piece.source {
            case .receiveBuffer:
                body(piece.kind, inbound.storage.span.extracting(piece.range), piece.isFinal)
            case .messageBuffer:
                body(piece.kind, messageBuffer.span, true)
                messageDelivered = true
            case .decodeBuffer:
                body(piece.kind, decodeBuffer.span, piece.isFinal)
            }
            return .data
        case nil:
            return nil
        }
    }

    /// What ``nextEventSharingData()`` returns.
    public enum Shared {
        /// A piece of data: the kind of its message, its bytes, and whether they end the message.
        /// In ``Delivery/wholeMessages`` mode each piece is a whole message (text is validated
        /// UTF-8, not converted to `String`); in ``Delivery/streaming`` mode, a piece as it arrived.
        case data(WSMessageKind, ArraySlice<UInt8>, isFinal: Bool)
        /// Any other event (data events are never returned this way).
        case event(Event)
    }

    /// Like ``nextEvent(lendingData:)``, but hands data over as a slice that shares the engine's
    /// buffer: no copy and no allocation, one reference count. Unlike a lent `Span`, the slice
    /// may be held while the engine is used again, to send a reply from the bytes, say (an echo
    /// or relay without copying the message first). Holding it past the next ``receive(_:)``
    /// makes that call copy the receive buffer once (copy-on-write), as with ``nextEvent()``.
    public mutating func nextEventSharingData() -> Shared? {
        switch pull() {
        case .event(let event)?:
            return .event(event)
        case .piece(let piece)?:
            let (storage, range, isFinal) = sharedPiece(piece)
            return .data(piece.kind, storage[range], isFinal: isFinal)
        case nil:
            return nil
        }
    }

    /// What ``nextSharedData()`` found next: a piece of data, another event, or nothing.
    public struct SharedStep: Sendable {
        /// What came next.
        public enum Found: UInt8, Sendable {
            /// A piece of data, as ``Shared/data(_:_:isFinal:)``: ``kind``, ``bytes``, ``isFinal``.
            case data
            /// Another event: ``nextEventSharingData()`` (or ``nextEvent()``) returns it.
            case event
            /// Nothing until more input or time.
            case none
        }
        public var found: Found
        /// The kind of the piece's message (data only).
        public var kind: WSMessageKind
        /// Whether the piece ends its message (data only).
        public var isFinal: Bool
        /// The buffer that holds the piece, shared with the engine (data only; empty otherwise).
        public var storage: [UInt8]
        /// Where the piece is in ``storage``.
        public var range: Range<Int>
        /// The piece's bytes.
        public var bytes: ArraySlice<UInt8> { storage[range] }
    }

    /// ``nextEventSharingData()`` for an adapter's data path: a piece of data the same way, but
    /// for any other event only ``SharedStep/Found/event``, leaving the event to the next
    /// ``nextEventSharingData()`` or ``nextEvent()``. A `Shared?` holds an ``Event``, and the
    /// compiler destroys it through the runtime's value witnesses (about 90 instructions per
    /// message in the epoll loop); a `SharedStep` is released as the one buffer reference it
    /// holds.
    public mutating func nextSharedData() -> SharedStep {
        switch pull() {
        case .piece(let piece)?:
            let (storage, range, isFinal) = sharedPiece(piece)
            return SharedStep(found: .data, kind: piece.kind, isFinal: isFinal, storage: storage, range: range)
        case .event(let event)?:
            pending.insert(event, at: 0)
            return SharedStep(found: .event, kind: .binary, isFinal: true, storage: [], range: 0..<0)
        case nil:
            return SharedStep(found: .none, kind: .binary, isFinal: true, storage: [], range: 0..<0)
        }
    }

    /// The buffer that holds a piece, where the piece is in it, and whether it ends its message.
    @inline(__always)
    private mutating func sharedPiece(_ piece: Piece) -> (storage: [UInt8], range: Range<Int>, isFinal: Bool) {
        switch piece.source {
        case .receiveBuffer:
            return (inbound.storage, piece.range, piece.isFinal)
        case .messageBuffer:
            messageDelivered = true
            return (messageBuffer, 0..<messageBuffer.count, true)
        case .decodeBuffer:
            return (decodeBuffer, 0..<decodeBuffer.count, piece.isFinal)
        }
    }

    @inline(__always)
    private mutating func event(for piece: Piece) -> Event {
        let data: ArraySlice<UInt8>
        switch piece.source {
        case .receiveBuffer: data = inbound.storage[piece.range]
        case .messageBuffer: return takeMessage(piece.kind)
        case .decodeBuffer: data = decodeBuffer[...]
        }
        if !piece.isMessage { return .fragment(WSFragment(kind: piece.kind, data: data, isFinal: piece.isFinal)) }
        return piece.kind == .text ? .text(String(decoding: data, as: UTF8.self)) : .binary(data)
    }

    /// The engine's step: pending events first, then buffered input, end of input, timers.
    /// Inlined into both entry points so each specializes the data path its own way.
    @inline(__always)
    private mutating func pull() -> Pulled? {
        if !pending.isEmpty { return .event(pending.removeFirst()) }
        if acceptsStepping {
            let betweenFrames = isBetweenFrames
            if betweenFrames, message == nil, let pulled = singleFrameMessage() { return pulled }
            var progress = inbound.readable > 0 || !betweenFrames
            while progress {
                progress = false
                let pulled: Pulled?
                switch frame {
                case .header: pulled = parseHeader(&progress)
                case .payload(let p): pulled = parsePayload(p, &progress)
                }
                if let pulled { return pulled }
            }
        } else if case .handshaking = state, let event = stepHandshake() {
            return .event(event)
        }
        if inputEnded, let event = processEndOfInput() { return .event(event) }
        // An open connection's timers are checked here first: nothing is due before the
        // earliest, and then the large `processTimers` is not even entered (once per drain).
        if case .open(let t) = state, t.earliest.map({ now < $0 }) ?? true { return nil }
        return processTimers().map { .event($0) }
    }

    /// Whether the next message may be parsed straight from the caller's buffer
    /// (``nextDirectMessage(in:at:)``): exactly when ``pull()`` would come to
    /// ``singleFrameMessage()`` first with those bytes buffered. Open (a closing connection takes
    /// the general path), nothing buffered or pending, no message or frame in progress, input
    /// not ended.
    @inline(__always)
    var acceptsDirectMessage: Bool {
        guard case .open = state, pending.isEmpty, inbound.readable == 0, message == nil, !inputEnded else { return false }
        return isBetweenFrames
    }

    /// Whether the engine is known to have no event until more input or time: open, nothing
    /// pending, buffered or in progress, input not ended and no timer due. Then ``nextEvent()``
    /// would return nil, and an adapter that fed every byte to ``nextDirectMessage(in:at:)``
    /// may skip the drain. False says nothing: drain as usual (there may be no event either).
    public var hasNoEvents: Bool {
        guard acceptsDirectMessage else { return false }
        guard case .open(let t) = state, let earliest = t.earliest else { return true }
        return now < earliest
    }

    /// Records a message of `frameLength` bytes (header included) taken by
    /// ``nextDirectMessage(in:at:)``: the stream offset and the idle timer, as
    /// ``singleFrameMessage()`` does.
    @inline(__always)
    mutating func noteDirectMessage(frameLength: Int) {
        streamOffset += Int64(frameLength)
        noteDataActivity()
    }

    /// At a frame boundary (the parser has nothing to do without more input then).
    private var isBetweenFrames: Bool {
        if case .header = frame { return true }
        return false
    }

    private var acceptsStepping: Bool {
        switch state {
        case .open, .closeSent: return true
        case .handshaking, .closeReceived, .closing, .closed: return false
        }
    }

    /// Parses the frame header at the read position. Returns an event, or nil with `progress`
    /// set when it should be called again, or nil with `progress` clear when it needs more input.
    private mutating func parseHeader(_ progress: inout Bool) -> Pulled? {
        let header: WSFrameHeader, headerLength: Int
        switch inbound.decodeHeader() {
        case .incomplete:
            return nil
        case .invalid(let code):
            return .event(fail(code, detail: "invalid payload length encoding", offset: streamOffset))
        case .header(let h, let length):
            header = h
            headerLength = length
        }
        if let rule = brokenRule(header) {
            let (code, detail) = rule.describe(header, configuration: configuration, messageSize: message?.size ?? 0, allowedRSV: allowedRSV)
            return .event(fail(code, detail: detail, offset: streamOffset))
        }
        // Lengths are now known to fit: control ≤ 125, data ≤ maxFrameSize.
        let length = Int(header.payloadLength)
        if header.opcode.isControl {
            guard inbound.readable >= headerLength + length else { return nil }
            let frameOffset = streamOffset
            consume(headerLength)
            if let key = header.maskKey { inbound.unmask(length, key: key, phase: 0, after: 0) }
            return .event(controlFrame(header.opcode, payload: inbound.storage[take(length)], offset: frameOffset))
        }
        consume(headerLength)
        noteDataActivity()
        if header.opcode == .continuation {
            message!.frames += 1
            message!.size += length
        } else {
            message = InboundMessage(kind: header.opcode == .text ? .text : .binary, isTransformed: header.rsv != 0,
                                     size: length, frames: 1)
        }
        // Straight on to the payload: when it is already buffered the frame completes in this step.
        return parsePayload(Payload(remaining: length, key: header.maskKey, fin: header.fin), &progress)
    }

    /// The fast path for the commonest frame: a whole message in one complete, valid frame (FIN,
    /// no RSV bits, text or binary, masked as the role requires, 7- or 16-bit length within the
    /// limits) with no fragmented message in progress. It decides from the first bytes before
    /// consuming anything and returns nil for any other frame, which the general parser then
    /// handles; for the frames it takes, it does exactly what the general parser would.
    @inline(__always)
    private mutating func singleFrameMessage() -> Pulled? {
        guard let layout = singleFrameLayout(readable: inbound.readable, peek: { inbound.peek($0) }) else { return nil }
        let key: WSMaskKey? = layout.masked ? inbound.peekKey(layout.headerLength) : nil
        consume(layout.headerLength + (layout.masked ? 4 : 0))
        noteDataActivity()
        if let key { inbound.unmask(layout.length, key: key, phase: 0, after: 0) }
        if layout.kind == .text {
            var utf8 = WSUTF8Validator()
            if let bad = inbound.validateUTF8(layout.length, with: &utf8) { return failInvalidUTF8(validPrefix: bad) }
            guard utf8.isComplete else { return failIncompleteText(layout.length) }
        }
        return .piece(Piece(kind: layout.kind, range: take(layout.length), isFinal: true, isMessage: !limits.streaming))
    }

    /// A whole message in one frame, as ``singleFrameMessage()`` and ``nextDirectMessage(in:at:)``
    /// take it: its kind, header length (without the masking key), payload length and whether
    /// it is masked; nil for any other frame, or one not yet complete in the `readable` bytes
    /// that `peek` reads. Only the state the two callers checked before is assumed (open or
    /// closing, between frames, no message in progress); the frame's own checks are here.
    @inline(__always)
    func singleFrameLayout(readable: Int, peek: (Int) -> UInt8) -> (kind: WSMessageKind, headerLength: Int, length: Int, masked: Bool)? {
        guard readable >= 2 else { return nil }
        let b0 = peek(0), b1 = peek(1)
        guard b0 == 0x81 || b0 == 0x82 else { return nil }
        let masked = b1 & 0x80 != 0
        guard masked == (role == .server) else { return nil }
        var length = Int(b1 & 0x7F)
        var headerLength = 2
        if length == 126 {
            guard readable >= 4 else { return nil }
            length = Int(peek(2)) << 8 | Int(peek(3))
            guard length >= 126 else { return nil }
            headerLength = 4
        } else if length == 127 {
            return nil
        }
        guard UInt64(length) <= limits.maxFrameSize, UInt64(length) <= limits.maxMessageSize,
              readable >= headerLength + (masked ? 4 : 0) + length else { return nil }
        return (b0 == 0x81 ? .text : .binary, headerLength, length, masked)
    }

    /// The RFC 6455 rules (§5.1–§5.5) and configured limits a frame header can break, in the
    /// order they are checked. Kept to one byte so the check costs nothing when nothing is broken;
    /// the words are produced only on failure (`describe`).
    private enum Rule: UInt8 {
        case reservedBits, reservedOpcode, unmasked, masked, controlTooLong, fragmentedControl
        case unexpectedContinuation, expectedContinuation, frameTooBig, messageTooBig, tooManyFragments

        func describe(_ h: WSFrameHeader, configuration c: Configuration, messageSize: Int, allowedRSV: UInt8) -> (WSProtocolError.Code, String) {
            switch self {
            case .reservedBits: (.reservedBitsSet, h.rsv & ~allowedRSV != 0 ? "RSV bits \(h.rsv) set without an extension"
                                 : "RSV bits \(h.rsv) on a \(h.opcode == .continuation ? "continuation" : "control") frame")
            case .reservedOpcode: (.reservedOpcode, "opcode \(h.opcode)")
            case .unmasked: (.unmaskedFrameFromClient, "client frame is not masked")
            case .masked: (.maskedFrameFromServer, "server frame is masked")
            case .controlTooLong: (.controlFrameTooLong, "\(h.opcode) payload of \(h.payloadLength) bytes")
            case .fragmentedControl: (.fragmentedControlFrame, "\(h.opcode) without FIN")
            case .unexpectedContinuation: (.unexpectedContinuation, "continuation frame with no message in progress")
            case .expectedContinuation: (.expectedContinuation, "\(h.opcode) frame inside a fragmented message")
            case .frameTooBig: (.frameTooBig, "frame of \(h.payloadLength) bytes over the \(c.maxFrameSize)-byte limit")
            case .messageTooBig: (.messageTooBig, "message of \(UInt64(messageSize) + h.payloadLength)+ bytes over the \(c.maxMessageSize)-byte limit")
            case .tooManyFragments: (.tooManyFragments, "message of more than \(c.maxFragmentsPerMessage) frames")
            }
        }
    }

    /// The first rule `header` breaks in the current context, if any.
    @inline(__always)
    private func brokenRule(_ header: WSFrameHeader) -> Rule? {
        if header.rsv != 0 {
            // §5.2: "MUST be 0 unless an extension is negotiated that defines meanings for non-zero values."
            // RFC 7692 §6.1: the "Per-Message Compressed" bit goes on the first frame of a data
            // message only, never on control frames or continuations.
            if header.rsv & ~allowedRSV != 0 || header.opcode.isControl || header.opcode == .continuation { return .reservedBits }
        }
        // §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket Connection_."
        if !header.opcode.isDefined { return .reservedOpcode }
        if header.maskKey == nil {
            // §5.1: "The server MUST close the connection upon receiving a frame that is not masked."
            if role == .server && !limits.acceptUnmasked { return .unmasked }
        } else if role == .client {
            // §5.1: "A client MUST close a connection if it detects a masked frame."
            return .masked
        }
        if header.opcode.isControl {
            // §5.5: "All control frames MUST have a payload length of 125 bytes or less and MUST NOT be fragmented."
            if header.payloadLength > 125 { return .controlTooLong }
            if !header.fin { return .fragmentedControl }
            return nil
        }
        // §5.4: continuation frames only inside a fragmented message, new messages only outside one.
        let soFar: Int
        let transformed: Bool
        if let message {
            if header.opcode != .continuation { return .expectedContinuation }
            if message.frames >= limits.maxFragments { return .tooManyFragments }
            soFar = message.size
            transformed = message.isTransformed
        } else {
            if header.opcode == .continuation { return .unexpectedContinuation }
            soFar = 0
            transformed = header.rsv != 0
        }
        if transformed, let transform {
            // A transformed (compressed) message may take a little more room on the wire than
            // it decodes to (the transform's worst-case growth); what it decodes to is bounded
            // exactly by the decoded-size limit.
            if header.payloadLength > UInt64(transform.maxEncodedSize(forDecodedSize: configuration.maxFrameSize)) { return .frameTooBig }
            if UInt64(soFar) + header.payloadLength > UInt64(transform.maxEncodedSize(forDecodedSize: configuration.maxMessageSize)) {
                return .messageTooBig
            }
            return nil
        }
        if header.payloadLength > limits.maxFrameSize { return .frameTooBig }
        if UInt64(soFar) + header.payloadLength > limits.maxMessageSize { return .messageTooBig }
        return nil
    }

    /// Consumes what is buffered of the current data frame's payload (see `parseHeader` for the
    /// meaning of the result).
    private mutating func parsePayload(_ payload: Payload, _ progress: inout Bool) -> Pulled? {
        if message!.isTransformed { return parseTransformedPayload(payload, &progress) }
        var p = payload
        let available = min(p.remaining, inbound.readable)
        if available == 0 && p.remaining > 0 {
            frame = .payload(p)
            return nil
        }
        if let key = p.key {
            inbound.unmask(available, key: key, phase: p.phase, after: UInt64(p.remaining &- available))
            p.phase = (p.phase &+ available) & 3
        }
        let kind = message!.kind
        if kind == .text, let bad = inbound.validateUTF8(available, with: &message!.utf8) {
            return failInvalidUTF8(validPrefix: bad)
        }
        p.remaining -= available
        let ends = p.remaining == 0 && p.fin
        if ends, kind == .text, !message!.utf8.isComplete { return failIncompleteText(available) }
        let range = take(available)
        frame = p.remaining == 0 ? .header : .payload(p)
        if ends { message = nil }
        if limits.streaming {
            if available == 0 && !ends {
                progress = true
                return nil
            }
            return .piece(Piece(kind: kind, range: range, isFinal: ends, isMessage: false))
        }
        prepareMessageBuffer()
        guard ends else {
            messageBuffer.append(contentsOf: inbound.storage[range])
            progress = true
            return nil
        }
        if messageBuffer.isEmpty {
            // The whole message is this one frame's payload, still in the receive buffer.
            return .piece(Piece(kind: kind, range: range, isFinal: true, isMessage: true))
        }
        messageBuffer.append(contentsOf: inbound.storage[range])
        return .piece(Piece(kind: kind, range: 0..<messageBuffer.count, isFinal: true, isMessage: true, source: .messageBuffer))
    }

    /// The most decoded bytes one streaming piece of a transformed message holds.
    static let decodedPieceSize = 64 << 10

    /// The payload of a message marked with the transform's RSV bit (RFC 7692 §6.2): the input
    /// goes through `transform.decode`, bounded by the decoded-size limit. Whole messages decode
    /// into `messageBuffer`; streaming pieces into `decodeBuffer`, at most `decodedPieceSize`
    /// bytes each, so memory stays bounded whatever the input inflates to.
    private mutating func parseTransformedPayload(_ payload: Payload, _ progress: inout Bool) -> Pulled? {
        var p = payload
        let available = min(p.remaining, inbound.readable)
        let lastInput = p.fin && available == p.remaining
        if available == 0 && !lastInput && !message!.decodePaused {
            if p.remaining == 0 {
                frame = .header
                progress = true
            } else {
                frame = .payload(p)
            }
            return nil
        }
        if let key = p.key {
            inbound.unmask(available, key: key, phase: p.phase, after: UInt64(p.remaining &- available))
        }
        let streaming = limits.streaming
        if streaming { decodeBuffer.removeAll(keepingCapacity: decodeBuffer.capacity <= Self.decodedPieceSize) } else { prepareMessageBuffer() }
        let before = streaming ? 0 : messageBuffer.count
        let limit = limits.maxDecodedSize - message!.decodedSize
        // The output buffer is moved out (not copied) while the input is borrowed from the
        // receive buffer, and moved back after.
        var output: [UInt8]
        if streaming { output = decodeBuffer; decodeBuffer = [] } else { output = messageBuffer; messageBuffer = [] }
        let outcome: Result<WSDecodeProgress, WSTransformError>
        let decoder = activeTransform(encoding: false, wholeMessage: false)
        do throws(WSTransformError) {
            let input = inbound.storage.span.extracting(inbound.readIndex..<(inbound.readIndex &+ available))
            outcome = .success(try decoder.decode(input, isFinal: lastInput, into: &output,
                                                     pauseAfter: limits.decodePause, limit: limit))
        } catch {
            outcome = .failure(error)
        }
        if streaming { decodeBuffer = output } else { messageBuffer = output }
        let kind = message!.kind
        let produced = streaming ? decodeBuffer.count : messageBuffer.count &- before
        // Validate what was decoded before judging the rest: a run fed in smaller reads would
        // have validated (and, streaming, delivered) it before reaching a decoding error.
        if kind == .text {
            let bad = streaming ? message!.utf8.validate(decodeBuffer) : message!.utf8.validate(messageBuffer[before...])
            if let bad { return failDecodedText(validPrefix: bad, detail: "invalid UTF-8 in text message") }
        }
        let result: WSDecodeProgress
        switch outcome {
        case .success(let r):
            result = r
        case .failure(let error):
            let failure: Event
            switch error {
            case .outputLimitExceeded:
                failure = fail(.decompressedMessageTooBig, detail: "message decompresses to more than \(limits.maxDecodedSize) bytes", offset: streamOffset)
            case .invalidData(let why):
                failure = fail(.invalidCompressedData, detail: why, offset: streamOffset)
            }
            // Streaming: deliver what was decoded before the failure, as a split run would have.
            guard streaming, produced > 0 else { return .event(failure) }
            pending.append(failure)
            return .piece(Piece(kind: kind, range: 0..<produced, isFinal: false, isMessage: false, source: .decodeBuffer))
        }
        consume(result.consumed)
        p.remaining -= result.consumed
        p.phase = (p.phase &+ result.consumed) & 3
        let ends = result.status == .finished
        message!.decodePaused = result.status == .paused
        message!.decodedSize += produced
        let done = p.remaining == 0 && !message!.decodePaused && (!lastInput || ends)
        frame = done ? .header : .payload(p)
        if ends, kind == .text, !message!.utf8.isComplete {
            return failDecodedText(validPrefix: produced, detail: "text message ends inside a character")
        }
        if ends { message = nil }
        if streaming {
            guard produced > 0 || ends else {
                progress = done
                return nil
            }
            return .piece(Piece(kind: kind, range: 0..<produced, isFinal: ends, isMessage: false, source: .decodeBuffer))
        }
        guard ends else {
            progress = done
            return nil
        }
        return .piece(Piece(kind: kind, range: 0..<messageBuffer.count, isFinal: true, isMessage: true, source: .messageBuffer))
    }

    /// §8.1 for decoded text: as `failText`, with the valid bytes of the piece in `decodeBuffer`.
    private mutating func failDecodedText(validPrefix count: Int, detail: String) -> Pulled {
        let error = fail(.invalidUTF8, detail: detail, offset: streamOffset)
        guard limits.streaming, count > 0 else { return .event(error) }
        decodeBuffer.removeSubrange(count...)
        pending.append(error)
        return .piece(Piece(kind: .text, range: 0..<count, isFinal: false, isMessage: false, source: .decodeBuffer))
    }

    /// §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the byte
    /// stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
    /// Connection_." In streaming mode the valid bytes before the offending one are delivered
    /// first, so the result does not depend on how the input was split.
    private mutating func failInvalidUTF8(validPrefix: Int) -> Pulled {
        failText(deliveringFirst: validPrefix, detail: "invalid UTF-8 in text message")
    }

    /// A text message that ends inside a character: the same rule, with the end of the message
    /// as the point of failure (the `available` bytes before it were valid so far).
    private mutating func failIncompleteText(_ available: Int) -> Pulled {
        failText(deliveringFirst: available, detail: "text message ends inside a character")
    }

    private mutating func failText(deliveringFirst count: Int, detail: String) -> Pulled {
        let offset = streamOffset + Int64(count)
        guard limits.streaming, count > 0 else { return .event(fail(.invalidUTF8, detail: detail, offset: offset)) }
        let range = take(count)
        pending.append(fail(.invalidUTF8, detail: detail, offset: offset))
        return .piece(Piece(kind: .text, range: range, isFinal: false, isMessage: false))
    }

    private mutating func takeMessage(_ kind: WSMessageKind) -> Event {
        messageDelivered = true
        return kind == .text ? .text(String(decoding: messageBuffer, as: UTF8.self)) : .binary(messageBuffer[...])
    }

    /// Empties the message buffer of the message delivered last, before the next one uses it.
    /// Done here rather than at delivery, so that a slice of it the consumer held meanwhile is
    /// gone by now and the memory is reused, not reallocated; the memory is kept while messages
    /// fill it well (see `keepsCapacity`).
    @inline(__always)
    private mutating func prepareMessageBuffer() {
        guard messageDelivered else { return }
        messageDelivered = false
        messageBuffer.removeAll(keepingCapacity: keepsCapacity(used: messageBuffer.count, capacity: messageBuffer.capacity))
    }

    private mutating func controlFrame(_ opcode: WSOpcode, payload: ArraySlice<UInt8>, offset: Int64) -> Event {
        switch opcode {
        case .ping:
            // §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in
            // response, unless it already received a Close frame."
            if configuration.autoPong, case .open = state {
                enqueueControl(.pong, payload)
            }
            return .ping(payload)
        case .pong:
            if case .open(var t) = state, t.pongDeadline.value != nil {
                t.pongDeadline.value = nil
                state = .open(t)
            }
            return .pong(payload)
        default:
            return closeFrame(payload, offset: offset)
        }
    }

    private mutating func closeFrame(_ payload: ArraySlice<UInt8>, offset: Int64) -> Event {
        let received: WSCloseFrame
        switch payload.count {
        case 0:
            received = WSCloseFrame(code: nil)
        case 1:
            // §5.5.1: "If there is a body, the first two bytes of the body MUST be a 2-byte unsigned integer"
            return fail(.invalidClosePayload, detail: "Close payload of 1 byte", offset: offset)
        default:
            let code = WSCloseCode(UInt16(payload[payload.startIndex]) << 8 | UInt16(payload[payload.startIndex + 1]))
            guard code.isValidOnWire else {
                return fail(.invalidCloseCode, detail: "close code \(code)", offset: offset)
            }
            let reason = payload.dropFirst(2)
            var utf8 = WSUTF8Validator()
            // §5.5.1: the reason's "interpretation is not defined by this specification" but it
            // is UTF-8-encoded data, so it gets the same validation as text (§8.1).
            guard utf8.validate(reason) == nil, utf8.isComplete else {
                return fail(.invalidCloseReason, detail: "Close reason is not valid UTF-8", offset: offset)
            }
            received = WSCloseFrame(code: code, reason: String(decoding: reason, as: UTF8.self))
        }
        switch state {
        case .open:
            if configuration.autoCloseReply {
                // §5.5.1: "the endpoint typically echos the status code it received" (after the
                // message it is sending, §5.5.1 allows: a message being encoded is finished).
                finishQueuedSends()
                let reply = WSCloseFrame(code: received.code)
                enqueueClose(reply)
                enterClosing(sent: reply, received: received, initiator: .remote)
            } else {
                state = .closeReceived(received)
                resetReader()
            }
        case .closeSent(let sent, _):
            enterClosing(sent: sent, received: received, initiator: .local)
        case .handshaking, .closeReceived, .closing, .closed:
            preconditionFailure("frames are parsed only while open or closeSent")
        }
        return .closeReceived(received)
    }

    // MARK: Failure, closing, end of input, timers

    /// RFC 6455 §7.1.7 _Fail the WebSocket Connection_: queue a Close with the error's code (if
    /// ours was not sent yet), end the stream, stop reading. Returns the ``Event/failed(_:)`` event.
    private mutating func fail(_ code: WSProtocolError.Code, detail: String, offset: Int64) -> Event {
        let error = WSProtocolError(code, detail: detail, offset: offset)
        let sent: WSCloseFrame?
        let initiator: Initiator
        switch state {
        case .open:
            let frame = WSCloseFrame(code: error.closeCode, reason: code.rawValue)
            enqueueClose(frame)
            sent = frame
            initiator = .local
        case .closeSent(let frame, _):
            sent = frame
            initiator = .local
        case .handshaking, .closeReceived, .closing, .closed:
            preconditionFailure("frames are parsed only while open or closeSent")
        }
        enterClosing(sent: sent, received: nil, initiator: initiator, cause: .protocolError(error))
        return .failed(error)
    }

    /// Fails the connection from the application's side, as the engine fails it for a peer's
    /// violation (RFC 6455 §7.1.7): a Close with `code`'s close code is queued (unless ours was
    /// sent already), the message being received and all further input are dropped, and
    /// ``Event/failed(_:)`` then ``Event/closed(_:)`` follow. For resource limits the engine
    /// cannot see, such as a memory budget shared by many connections
    /// (``WSProtocolError/Code/memoryBudgetExceeded``).
    /// - Throws: ``WSUsageError/notOpen`` unless the connection is open, or closing after our
    ///   own Close (before it, or once both Close frames are exchanged, there is nothing to fail).
    public mutating func fail(_ code: WSProtocolError.Code, detail: String) throws(WSUsageError) {
        switch state {
        case .open, .closeSent:
            pending.append(fail(code, detail: detail, offset: streamOffset))
        case .handshaking, .closeReceived, .closing, .closed:
            throw .notOpen
        }
    }

    /// Both Close frames exchanged, or the connection failed: stop reading and wait up to
    /// `closeTimeout` for the transport to end. §7.1.1: the server ends TCP first; a client
    /// waits for it, so only a server (or a failed connection) queues end of stream now.
    private mutating func enterClosing(sent: WSCloseFrame?, received: WSCloseFrame?, initiator: Initiator, cause: Cause? = nil) {
        if role == .server || cause != nil { queueEndOfStream() }
        state = .closing(Closing(sent: sent, received: received, initiator: initiator, cause: cause,
                                 deadline: now + configuration.closeTimeout))
        resetReader()
    }

    private mutating func enterClosed(_ info: CloseInfo) {
        dropQueuedSends()
        state = .closed(info)
        resetReader()
        pending.append(.closed(info))
    }

    private mutating func resetReader() {
        inbound.consumeAll()
        frame = .header
        message = nil
        messageBuffer = []
        messageDelivered = false
    }

    private mutating func processEndOfInput() -> Event? {
        switch state {
        case .handshaking(.readingRejection(let response, let reader, _)):
            return finishRejection(response, reader)
        case .handshaking:
            enterClosed(CloseInfo(sent: nil, received: nil, initiator: nil, cause: .transportClosed))
        case .open:
            enterClosed(CloseInfo(sent: nil, received: nil, initiator: nil, cause: .transportClosed))
        case .closeSent(let sent, _):
            enterClosed(CloseInfo(sent: sent, received: nil, initiator: .local, cause: .transportClosed))
        case .closeReceived(let received):
            enterClosed(CloseInfo(sent: nil, received: received, initiator: .remote, cause: .transportClosed))
        case .closing(let c):
            enterClosed(CloseInfo(sent: c.sent, received: c.received, initiator: c.initiator, cause: c.cause))
        case .closed:
            return nil
        }
        return pending.isEmpty ? nil : pending.removeFirst()
    }

    private mutating func processTimers() -> Event? {
        switch state {
        case .handshaking(let h):
            guard let deadline = nextDeadline, now >= deadline else { return nil }
            let timeout = WSHandshakeError(.handshakeTimeout, detail: "no complete handshake within the timeout")
            switch h {
            case .readingRequest(_, let options, let deadline, let handshakeDeadline):
                guard deadline < handshakeDeadline else { return failServerHandshake(timeout, options) }
                return failServerHandshake(WSHandshakeError(.requestHeadTimeout, detail: "no complete request head within the request-head timeout"), options)
            case .readingResponse: return failClientHandshake(timeout)
            case .readingRejection(let response, let reader, _): return finishRejection(response, reader, cut: true)
            case .awaitingDecision: return nil
            }
        case .open(var t):
            // `pull` enters only when the earliest deadline is due (or for another state).
            guard let due = t.earliest, now >= due else { return nil }
            if let deadline = t.pongDeadline.value, now >= deadline {
                // The peer did not answer: queue a Close for form's sake and drop the transport.
                let frame = WSCloseFrame(code: .internalError, reason: "keepalive ping timeout")
                enqueueClose(frame)
                queueEndOfStream()
                enterClosed(CloseInfo(sent: frame, received: nil, initiator: .local, cause: .keepaliveTimeout))
                return pending.removeFirst()
            }
            if t.pongDeadline.value == nil, let due = t.nextPing.value, now >= due, let interval = configuration.pingInterval {
                t.pingsSent &+= 1
                let n = t.pingsSent
                enqueueControl(.ping, [UInt8(truncatingIfNeeded: n >> 24), UInt8(truncatingIfNeeded: n >> 16),
                                       UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)])
                t.pongDeadline.value = now + configuration.pingTimeout
                t.nextPing.value = max(due + interval, now)
            }
            var event: Event?
            if let deadline = t.idleDeadline.value, now >= deadline, let idle = configuration.idleTimeout {
                t.idleDeadline.value = now + idle
                event = .idleTimeout
            }
            state = .open(t)
            return event
        case .closeSent(let sent, let deadline):
            guard let deadline, now >= deadline else { return nil }
            queueEndOfStream()
            enterClosed(CloseInfo(sent: sent, received: nil, initiator: .local, cause: .closeTimeout))
            return pending.removeFirst()
        case .closing(let c):
            guard now >= c.deadline else { return nil }
            queueEndOfStream()
            enterClosed(CloseInfo(sent: c.sent, received: c.received, initiator: c.initiator, cause: c.cause ?? .closeTimeout))
            return pending.removeFirst()
        case .closeReceived, .closed:
            return nil
        }
    }

    private mutating func noteDataActivity() {
        guard let idle = configuration.idleTimeout, case .open(var t) = state else { return }
        t.idleDeadline.value = now + idle
        state = .open(t)
    }

    // MARK: Opening handshake

    /// Reads handshake bytes: the request (server), the response and a rejection's body
    /// (client). Returns the event the step produced, or nil when more input (or a decision)
    /// is needed; end of input and the timeout are handled by `processEndOfInput` and
    /// `processTimers` after it.
    private mutating func stepHandshake() -> Event? {
        while case .handshaking(let h) = state {
            let buffered = inbound.storage[inbound.readIndex..<inbound.end]
            switch h {
            case .readingRequest(var scanner, let options, let deadline, let handshakeDeadline):
                switch scanner.scan(buffered) {
                case .incomplete:
                    state = .handshaking(.readingRequest(scanner, options, deadline: deadline, handshakeDeadline: handshakeDeadline))
                    return nil
                case .startLineTooLong:
                    return failServerHandshake(WSHandshakeError(.uriTooLong, detail: "request line over \(scanner.maxStartLine) bytes"), options)
                case .fieldsTooLarge:
                    return failServerHandshake(WSHandshakeError(.headerFieldsTooLarge, detail: "header fields over \(options.maxHeaderSize) bytes"), options)
                case .bareLF(let at):
                    return failServerHandshake(WSHandshakeError(.malformedRequest, detail: "line ends in a bare LF at byte \(at)"), options)
                case .complete(let length):
                    let result = options.evaluate(buffered.prefix(length))
                    consume(length)
                    switch result {
                    case .success(let request):
                        state = .handshaking(.awaitingDecision(request, options, deadline: handshakeDeadline))
                        return .upgradeRequested(request)
                    case .failure(let error):
                        return failServerHandshake(error, options)
                    }
                }
            case .awaitingDecision(_, let options, _):
                // A conforming client sends nothing more before our answer; a little (frames
                // sent optimistically) is kept for after the handshake, more is refused.
                guard buffered.count <= options.maxHeaderSize else {
                    return failServerHandshake(WSHandshakeError(.dataBeforeHandshake, detail: "\(buffered.count) bytes sent before the handshake completed"), options)
                }
                return nil
            case .readingResponse(var client):
                let outcome: ClientHandshakeState.Outcome
                switch client.scanner.scan(buffered) {
                case .incomplete:
                    state = .handshaking(.readingResponse(client))
                    return nil
                case .startLineTooLong, .fieldsTooLarge:
                    return failClientHandshake(WSHandshakeError(.responseTooLarge, detail: "response head over the limit"))
                case .bareLF(let at):
                    return failClientHandshake(WSHandshakeError(.malformedResponse, detail: "line ends in a bare LF at byte \(at)"))
                case .complete(let length):
                    outcome = client.evaluate(buffered.prefix(length))
                    consume(length)
                }
                switch outcome {
                case .opened(let result):
                    switch makeTransform(result.extensions, negotiators: client.negotiators, role: .client) {
                    case .success(let transform): install(transform)
                    case .failure(let error): return failClientHandshake(error)
                    }
                    state = .open(Self.openTimers(configuration, now: now))
                    return .opened(result)
                case .informational:
                    client.scanner = HTTPHeadScanner(maxStartLine: client.scanner.maxStartLine, maxFieldSection: client.scanner.maxFieldSection)
                    state = .handshaking(.readingResponse(client))
                case .rejected(let response, let reader):
                    state = .handshaking(.readingRejection(response, reader, deadline: client.deadline))
                case .failed(let error):
                    return failClientHandshake(error)
                }
            case .readingRejection(let response, var reader, let deadline):
                let (used, done) = reader.read(buffered)
                consume(used)
                if done { return finishRejection(response, reader) }
                state = .handshaking(.readingRejection(response, reader, deadline: deadline))
                return nil
            }
        }
        return nil
    }

    /// Answers an invalid request with its status (and whatever fields that status calls for),
    /// ends the stream and closes.
    private mutating func failServerHandshake(_ error: WSHandshakeError, _ options: WSServerHandshake) -> Event {
        var answer: [UInt8] = []
        options.errorResponse(error, into: &answer)
        outbound.appendRaw(answer)
        return endHandshake(.handshakeFailed(error), cause: .handshakeFailed(error))
    }

    /// §4.1: "the client MUST _Fail the WebSocket Connection_": end the stream and close.
    private mutating func failClientHandshake(_ error: WSHandshakeError) -> Event {
        endHandshake(.handshakeFailed(error), cause: .handshakeFailed(error))
    }

    private mutating func finishRejection(_ response: HTTPResponse, _ reader: BodyReader, cut: Bool = false) -> Event {
        let rejection = WSHandshakeRejection(response: response, body: reader.body, isBodyTruncated: reader.truncated || cut)
        return endHandshake(.rejected(rejection), cause: .handshakeRejected(status: response.status.code))
    }

    /// Queues end of stream, closes with `cause`, and returns `event` (``Event/closed(_:)`` follows it).
    private mutating func endHandshake(_ event: Event, cause: Cause) -> Event {
        queueEndOfStream()
        enterClosed(CloseInfo(sent: nil, received: nil, initiator: nil, cause: cause))
        return event
    }

    /// The request reported by ``Event/upgradeRequested(_:)`` while it awaits ``accept(subprotocol:extensions:headers:)``
    /// or ``reject(status:headers:body:)``; nil otherwise.
    public var pendingUpgrade: WSUpgradeRequest? {
        if case .handshaking(.awaitingDecision(let request, _, _)) = state { return request }
        return nil
    }

    /// While an upgrade awaits the application's decision: the end of the handshake's time
    /// (the request's arrival deadline, ``WSServerHandshake/timeout`` from the start). The
    /// engine arms no timer for it (``nextDeadline`` is nil); an adapter that lets the
    /// application decide later bounds the wait with it.
    package var upgradeDecisionDeadline: WSInstant? {
        if case .handshaking(.awaitingDecision(_, _, let deadline)) = state { return deadline }
        return nil
    }

    /// Accepts the pending upgrade request (RFC 6455 §4.2.2): queues the 101 answer and opens
    /// the connection. Drain ``nextEvent()`` (``Event/opened(_:)`` comes first, then any frames
    /// that arrived with the request) and ``nextOutbound()`` afterwards.
    ///
    /// - Parameters:
    ///   - subprotocol: the subprotocol to use; must be one the client offered
    ///     (``WSUpgradeRequest/selectSubprotocol(preferring:)`` picks by the server's preference).
    ///   - extensions: the extension answers; nil (the default) negotiates the
    ///     ``WSServerHandshake/extensions`` against the client's offers. An answer's transform
    ///     (permessage-deflate's compression) comes from the configured negotiator of its name.
    ///   - headers: more response fields, such as `Set-Cookie`. The handshake's own fields are refused.
    /// - Throws: ``WSUsageError/noPendingUpgrade``, ``WSUsageError/invalidHandshake(_:)``.
    public mutating func accept(subprotocol: String? = nil, extensions: [WSExtensionElement]? = nil, headers: HTTPFields = [:]) throws(WSUsageError) {
        try accept(subprotocol: subprotocol, extensions: extensions, headers: headers, configuration: nil)
    }

    /// Accepts the pending upgrade like ``accept(subprotocol:extensions:headers:)``, and
    /// replaces the engine's configuration with `configuration` (validated first) for the
    /// connection's life: the service layer's per-service limits, idle timeout and automatic
    /// Pong. Nothing changes if it throws.
    package mutating func accept(subprotocol: String?, extensions: [WSExtensionElement]?, headers: HTTPFields,
                                 configuration newConfiguration: Configuration?) throws(WSUsageError) {
        guard case .handshaking(.awaitingDecision(let request, let options, _)) = state else { throw .noPendingUpgrade }
        try newConfiguration?.validate()
        if let subprotocol, !request.subprotocols.contains(subprotocol) {
            throw .invalidHandshake("subprotocol \(subprotocol) was not offered")
        }
        let agreed = extensions ?? options.negotiate(request.extensions)
        for element in agreed {
            // §9.1: the server answers only with extensions the client offered.
            guard element.isValid, request.extensions.contains(where: { asciiLowercased($0.name) == asciiLowercased(element.name) }) else {
                throw .invalidHandshake("extension \(element.name) was not offered or is not a valid element")
            }
        }
        for field in headers where handshakeOwnedFields.contains(field.name) {
            throw .invalidHandshake("\(field.name) is set by the handshake")
        }
        guard case .success(let transform) = makeTransform(agreed, negotiators: options.extensions, role: .server) else {
            throw .invalidHandshake("more than one extension transforms messages")
        }
        if let newConfiguration {
            configuration = newConfiguration
        }
        install(transform)
        let response = options.acceptResponse(request, subprotocol: subprotocol, extensions: agreed, extra: headers)
        var bytes: [UInt8] = []
        appendStatusHead(response.status, fields: response.headerFields, to: &bytes)
        outbound.appendRaw(bytes)
        state = .open(Self.openTimers(configuration, now: now))
        pending.append(.opened(WSHandshakeResult(request: request.head, response: response, subprotocol: subprotocol, extensions: agreed)))
    }

    /// Refuses the pending upgrade request with an HTTP answer (for example 403 for an origin
    /// not allowed, 401 with `WWW-Authenticate`, 404, or a 3xx with `Location`), then ends the
    /// stream and closes. Drain ``nextEvent()`` (``Event/closed(_:)``) and ``nextOutbound()``.
    ///
    /// - Parameters:
    ///   - status: a final status (200–599).
    ///   - headers: response fields; `Content-Length` and `Connection: close` are added.
    ///   - body: the response body.
    /// - Throws: ``WSUsageError/noPendingUpgrade``, ``WSUsageError/invalidHandshake(_:)``.
    public mutating func reject(status: HTTPResponse.Status, headers: HTTPFields = [:], body: some Collection<UInt8> = [UInt8]()) throws(WSUsageError) {
        guard case .handshaking(.awaitingDecision(_, let options, _)) = state else { throw .noPendingUpgrade }
        guard (200...599).contains(status.code) else { throw .invalidHandshake("a rejection needs a final status (200–599)") }
        guard headers[values: .transferEncoding].isEmpty else { throw .invalidHandshake("the body is sent with Content-Length") }
        var bytes: [UInt8] = []
        options.plainResponse(status: status, fields: headers, body: Array(body), into: &bytes)
        outbound.appendRaw(bytes)
        queueEndOfStream()
        enterClosed(CloseInfo(sent: nil, received: nil, initiator: nil, cause: .handshakeRejected(status: status.code)))
    }

    // MARK: Commands

    /// Sends a text message, split into frames of at most ``Configuration/outboundFragmentSize``.
    /// Drain ``nextOutbound()`` afterwards.
    ///
    /// - Parameter compress: with a negotiated per-message extension (permessage-deflate),
    ///   `false` sends this message as it is. Use it for payloads that compress badly, and for
    ///   secrets sent beside attacker-influenced data: compressing them together leaks the
    ///   secret through the compressed size (the CRIME/BREACH side channel).
    /// - Throws: ``WSUsageError/notOpen``, ``WSUsageError/fragmentedMessageInProgress``,
    ///   ``WSUsageError/outboundBufferFull(bufferedAmount:limit:)``.
    public mutating func sendText(_ text: String, compress: Bool = true) throws(WSUsageError) {
        try sendMessage(text.utf8, kind: .text, compress: compress)
    }

    /// Sends a binary message, split into frames of at most ``Configuration/outboundFragmentSize``.
    /// Drain ``nextOutbound()`` afterwards.
    /// - Throws: as ``sendText(_:compress:)``.
    public mutating func sendBinary(_ bytes: some Collection<UInt8>, compress: Bool = true) throws(WSUsageError) {
        try sendMessage(bytes, kind: .binary, compress: compress)
    }

    /// Sends a whole message of either kind from its bytes (an echo, a relay, text already
    /// encoded as UTF-8). Text is checked to be valid UTF-8 first; nothing is sent if it is not.
    /// Drain ``nextOutbound()`` afterwards.
    /// - Throws: ``WSUsageError/invalidUTF8``, and the errors of ``sendText(_:compress:)``.
    public mutating func send(_ bytes: some Collection<UInt8>, kind: WSMessageKind, compress: Bool = true) throws(WSUsageError) {
        if kind == .text {
            var utf8 = WSUTF8Validator()
            guard utf8.validate(bytes) == nil, utf8.isComplete else { throw .invalidUTF8 }
        }
        try sendMessage(bytes, kind: kind, compress: compress)
    }

    /// Whether a whole message of `count` bytes goes out as one plain frame with nothing else to
    /// decide (``send(_:kind:compress:)``'s fast path, in `WSProtocol+Unsafe.swift`): open or
    /// closing on the peer's side, no fragmented or queued message, not encoded by the
    /// transform, one fragment, unmasked (a server). Then ``sendMessage(_:kind:compress:)``
    /// would check the room and append exactly that frame.
    @inline(__always)
    func sendsAsOnePlainFrame(_ count: Int, compress: Bool) -> Bool {
        // A server has no masking keys (`maskKeys` is nil exactly then; comparing the optional
        // would copy its existential).
        guard transform == nil || !compress, role == .server, queuedSends.isEmpty, case .none = sending,
              count <= configuration.outboundFragmentSize else { return false }
        return acceptsSends
    }

    /// After a data frame is queued: writability, and the idle timer (data in either direction).
    @inline(__always)
    mutating func noteDataQueued() {
        updateWritability()
        noteDataActivity()
    }

    mutating func sendMessage(_ bytes: some Collection<UInt8>, kind: WSMessageKind, compress: Bool) throws(WSUsageError) {
        try requireSendable()
        guard case .none = sending else { throw .fragmentedMessageInProgress }
        let transformed = compress && transform?.shouldEncode(kind: kind, size: bytes.count) == true
        if !queuedSends.isEmpty || (transformed && bytes.count > configuration.encodeSliceSize ?? .max) {
            // Behind (or as) a message encoded a slice at a time.
            try requireRoom(for: transformed ? Self.encodedSizeBound(bytes.count) : bytes.count)
            queuedSends.append(QueuedSend(bytes: Array(bytes), kind: kind, transformed: transformed))
            noteDataActivity()
            if queuedSends.count == 1 { continueEncoding() } else { updateWritability() }
            return
        }
        if transformed {
            try requireRoom(for: Self.encodedSizeBound(bytes.count))
            appendEncoded(bytes, activeTransform(encoding: true, wholeMessage: true), opcode: kind.opcode, isFirst: true, fin: true)
        } else {
            try requireRoom(for: bytes.count)
            appendData(bytes, opcode: kind.opcode, fin: true)
        }
    }

    /// Sends one piece of a fragmented message: the first call starts a message of `kind`, later
    /// calls continue it (with the same `kind`), and the call with `isFinal` ends it. Each piece
    /// becomes one frame or more (see ``Configuration/outboundFragmentSize``). Control frames
    /// may be sent between pieces. Text pieces are validated as UTF-8 across pieces; a piece may
    /// end inside a character, the message may not.
    ///
    /// With a negotiated per-message extension, the first piece's `compress` decides for the
    /// whole message; each piece is compressed and flushed as it is sent, so the peer can
    /// decode it at once.
    /// - Throws: ``WSUsageError/invalidUTF8`` (nothing is sent), ``WSUsageError/fragmentedMessageInProgress``
    ///   for a `kind` different from the message in progress, and the errors of ``sendText(_:compress:)``.
    public mutating func sendFragment(_ bytes: some Collection<UInt8>, kind: WSMessageKind, isFinal: Bool, compress: Bool = true) throws(WSUsageError) {
        try requireSendable()
        finishQueuedSends()
        var utf8: WSUTF8Validator
        let opcode: WSOpcode
        let transformed: Bool
        switch sending {
        case .none:
            utf8 = WSUTF8Validator()
            opcode = kind.opcode
            transformed = compress && transform?.shouldEncode(kind: kind, size: isFinal ? bytes.count : nil) == true
        case .inProgress(let validator, let current, let t):
            guard current == kind else { throw .fragmentedMessageInProgress }
            utf8 = validator
            opcode = .continuation
            transformed = t
        }
        if kind == .text {
            guard utf8.validate(bytes) == nil, !isFinal || utf8.isComplete else { throw .invalidUTF8 }
        }
        if transformed {
            try requireRoom(for: Self.encodedSizeBound(bytes.count))
            let first = opcode != .continuation
            appendEncoded(bytes, activeTransform(encoding: true, wholeMessage: first && isFinal), opcode: opcode, isFirst: first, fin: isFinal)
        } else {
            try requireRoom(for: bytes.count)
            appendData(bytes, opcode: opcode, fin: isFinal)
        }
        sending = isFinal ? .none : .inProgress(utf8, kind, transformed: transformed)
    }

    /// Encodes the next slice of the message being sent a slice at a time
    /// (``Configuration/encodeSliceSize``) and queues its frames; then the messages behind it
    /// that need no encoding, and, when it ends, the next one's first slice waits for the next
    /// call. Does nothing when no message is being encoded. Adapters call it while
    /// ``hasPendingWork`` is true, a slice per turn.
    public mutating func continueEncoding() {
        while let first = queuedSends.first {
            guard first.transformed, transform != nil else {
                queuedSends.removeFirst()
                appendData(first.bytes, opcode: first.kind.opcode, fin: true)
                continue
            }
            encodeSlice()
            return
        }
    }

    private mutating func dropQueuedSends() {
        guard !queuedSends.isEmpty else { return }
        queuedSends = []
        updateWritability()
    }

    /// Encodes the rest of every queued message now: before our Close, and before a fragmented
    /// message starts (whose pieces must follow them).
    private mutating func finishQueuedSends() {
        while !queuedSends.isEmpty { continueEncoding() }
    }

    /// One slice of the first queued message through the transform; its frames.
    private mutating func encodeSlice() {
        let slice = configuration.encodeSliceSize ?? .max
        let start = queuedSends[0].offset
        let end = start + Swift.min(slice, queuedSends[0].bytes.count - start)
        let last = end == queuedSends[0].bytes.count
        let transform = activeTransform(encoding: true, wholeMessage: start == 0 && last)
        var held = queuedSends[0].held
        queuedSends[0].held = []
        withContiguousSpan(queuedSends[0].bytes[start..<end]) { span in
            if last { transform.encode(span, isFinal: true, into: &held) } else { transform.encodeContinuing(span, into: &held) }
        }
        queuedSends[0].offset = end
        let fragment = configuration.outboundFragmentSize
        let kind = queuedSends[0].kind
        var started = queuedSends[0].started
        // Frames of a fragment each while more may come; all the rest at the end.
        let ready = last ? held.count : (held.count - 1) / fragment * fragment
        if ready > 0 {
            outbound.appendMessage(held[..<ready], opcode: started ? .continuation : kind.opcode, fin: last, fragmentSize: fragment,
                                   keys: &maskKeys, rsv: started ? 0 : transform.reservedBits)
            held.removeFirst(ready)
            started = true
        }
        if last {
            queuedSends.removeFirst()
        } else {
            queuedSends[0].held = held
            queuedSends[0].started = started
        }
        updateWritability()
    }

    /// The room a message of `count` bytes may need once encoded: DEFLATE expands incompressible
    /// data by a few bytes per stored block, well under 0.1%, plus a few bytes per flush.
    private static func encodedSizeBound(_ count: Int) -> Int { count + count >> 10 + 64 }

    /// Encodes `bytes` (a whole message or one piece of it) with the transform and queues the
    /// result as frames, the first frame of the message marked with the transform's RSV bits.
    private mutating func appendEncoded(_ bytes: some Collection<UInt8>, _ transform: any WSMessageTransform, opcode: WSOpcode, isFirst: Bool, fin: Bool) {
        encodeBuffer.removeAll(keepingCapacity: true)
        withContiguousSpan(bytes) { transform.encode($0, isFinal: fin, into: &encodeBuffer) }
        outbound.appendMessage(encodeBuffer, opcode: opcode, fin: fin, fragmentSize: configuration.outboundFragmentSize,
                               keys: &maskKeys, rsv: isFirst ? transform.reservedBits : 0)
        if encodeBuffer.capacity > 64 << 10 { encodeBuffer = [] }
        updateWritability()
        noteDataActivity()
    }

    @inline(__always)
    private mutating func appendData(_ bytes: some Collection<UInt8>, opcode: WSOpcode, fin: Bool) {
        outbound.appendMessage(bytes, opcode: opcode, fin: fin, fragmentSize: configuration.outboundFragmentSize, keys: &maskKeys)
        noteDataQueued()
    }

    /// Sends a Ping with an empty payload.
    public mutating func ping() throws(WSUsageError) { try ping([UInt8]()) }

    /// Sends a Ping (payload at most 125 bytes). The peer's Pong arrives as ``Event/pong(_:)``.
    public mutating func ping(_ payload: some Collection<UInt8>) throws(WSUsageError) {
        try sendControl(.ping, payload)
    }

    /// Sends an empty Pong (an unsolicited Pong is a unidirectional heartbeat, RFC 6455 §5.5.3).
    public mutating func pong() throws(WSUsageError) { try pong([UInt8]()) }

    /// Sends a Pong (payload at most 125 bytes), for example in reply to a Ping when
    /// ``Configuration/autoPong`` is off.
    public mutating func pong(_ payload: some Collection<UInt8>) throws(WSUsageError) {
        try sendControl(.pong, payload)
    }

    private mutating func sendControl(_ opcode: WSOpcode, _ payload: some Collection<UInt8>) throws(WSUsageError) {
        try requireSendable()
        guard payload.count <= 125 else { throw .controlPayloadTooLong(payload.count) }
        enqueueControl(opcode, payload)
    }

    /// Starts (or, after ``Event/closeReceived(_:)`` with ``Configuration/autoCloseReply`` off,
    /// completes) the closing handshake. Drain ``nextOutbound()`` afterwards.
    ///
    /// After our Close the engine waits for the peer's (RFC 6455 §7.1.2) up to `timeout`, then
    /// gives up: end of stream and ``Event/closed(_:)`` with code 1006 and cause
    /// ``Cause/closeTimeout``. A peer's Close within the wait ends it at once.
    ///
    /// - Parameters:
    ///   - code: the status code, or `nil` for a Close with no body (received as 1005).
    ///   - reason: at most 123 bytes of UTF-8; requires a code.
    ///   - timeout: how long to wait for the peer's Close: `nil` (the default) for
    ///     ``Configuration/closeTimeout``; a negative duration waits without limit (Ballerina's
    ///     `close(timeout: -1)`; the peer's Close or the transport's end still ends the wait).
    ///     Once both Close frames have crossed, a client waits for the server to end TCP for
    ///     ``Configuration/closeTimeout`` whatever this says (§7.1.1).
    /// - Throws: ``WSUsageError/invalidCloseCode(_:)``, ``WSUsageError/invalidCloseReason``,
    ///   ``WSUsageError/closeAlreadySent``, ``WSUsageError/notOpen``.
    public mutating func close(
        code: WSCloseCode? = .normalClosure, reason: String = "", timeout: Duration? = nil
    ) throws(WSUsageError) {
        if let code, !code.isSendable { throw .invalidCloseCode(code) }
        if (code == nil && !reason.isEmpty) || reason.utf8.count > 123 { throw .invalidCloseReason }
        let frame = WSCloseFrame(code: code, reason: reason)
        if case .open = state { finishQueuedSends() } else if case .closeReceived = state { finishQueuedSends() }
        switch state {
        case .open:
            enqueueClose(frame)
            let wait = timeout ?? configuration.closeTimeout
            state = .closeSent(sent: frame, deadline: wait < .zero ? nil : now + wait)
        case .closeReceived(let received):
            enqueueClose(frame)
            enterClosing(sent: frame, received: received, initiator: .remote)
        case .closeSent, .closing:
            throw .closeAlreadySent
        case .handshaking, .closed:
            throw .notOpen
        }
    }

    /// Data and control frames may be sent while open, and after the peer's Close until ours.
    private func requireSendable() throws(WSUsageError) {
        guard acceptsSends else { throw .notOpen }
    }

    /// Whether data and control frames may be sent: open, or the peer's Close received and ours
    /// not yet sent.
    @inline(__always)
    private var acceptsSends: Bool {
        switch state {
        case .open, .closeReceived: true
        case .handshaking, .closeSent, .closing, .closed: false
        }
    }

    @inline(__always)
    func requireRoom(for payloadCount: Int) throws(WSUsageError) {
        let fragment = configuration.outboundFragmentSize
        let frames = payloadCount < fragment ? 1 : payloadCount / fragment + 1
        let total = outbound.count + queuedBytes + payloadCount + frames * WSFrameHeader.maxLength
        if total > configuration.maxBufferedAmount { throw outboundBufferFull() }
    }

    /// The error of a send that would pass ``Configuration/maxBufferedAmount`` (out of line:
    /// the room check is inlined into every send).
    @inline(never)
    private func outboundBufferFull() -> WSUsageError {
        .outboundBufferFull(bufferedAmount: outbound.count, limit: configuration.maxBufferedAmount)
    }

    private mutating func enqueueControl(_ opcode: WSOpcode, _ payload: some Collection<UInt8>) {
        outbound.appendMessage(payload, opcode: opcode, fin: true, fragmentSize: 125, keys: &maskKeys)
        updateWritability()
    }

    private mutating func enqueueClose(_ frame: WSCloseFrame) {
        // No data after our Close: a message still being encoded (the connection failed) is dropped.
        dropQueuedSends()
        var body: [UInt8] = []
        if let code = frame.code {
            body.reserveCapacity(2 + frame.reason.utf8.count)
            body.append(UInt8(code.rawValue >> 8))
            body.append(UInt8(truncatingIfNeeded: code.rawValue))
            body.append(contentsOf: frame.reason.utf8)
        }
        enqueueControl(.close, body)
    }

    // MARK: Outputs

    /// Takes the next thing to write: all queued bytes at once, then (once) end of stream.
    /// Returns `nil` when there is nothing to write.
    public mutating func nextOutbound() -> WSOutbound? {
        if outbound.count > 0 {
            let bytes = outbound.takeAll()
            updateWritability()
            return .bytes(bytes)
        }
        if case .queued = outboundEOS {
            outboundEOS = .delivered
            return .endOfStream
        }
        return nil
    }

    /// Whether end of stream is queued and everything before it has been taken: the adapter
    /// should now half-close the transport (the zero-copy counterpart of ``WSOutbound/endOfStream``,
    /// for adapters that drain with `withOutboundBytes`).
    @inlinable public var isOutboundFinished: Bool {
        if case .none = outboundEOS { return false }
        return outbound.count == 0
    }

    /// Removes the first `count` queued outbound bytes after the adapter wrote them from
    /// `withOutboundBytes`.
    public mutating func consumeOutbound(_ count: Int) {
        outbound.consume(count)
        updateWritability()
    }

    /// Lets go of empty buffers' memory. Adapters with many idle connections call it when a
    /// connection has nothing buffered; the next message allocates again.
    public mutating func releaseIdleMemory() {
        inbound.releaseIfEmpty()
        outbound.releaseIfEmpty()
        decodeBuffer = []
        encodeBuffer = []
        if pending.isEmpty { pending = [] }
        if message == nil {
            messageBuffer = []
            messageDelivered = false
            if case .none = sending, queuedSends.isEmpty, let current = transform {
                current.releaseIdleMemory()
                if let idle = current.idleForm() { transform = idle }
            }
        }
    }

    /// Buffers an adapter lends to the engines it serves one at a time, so that a connection
    /// between messages holds no receive, send, compression or event buffer of its own (the way
    /// uWebSockets shares one receive and one send buffer per loop). Without them every
    /// connection keeps its last message's buffers until ``releaseIdleMemory()``, and freeing
    /// them then leaves holes in the heap that the allocator cannot give back while live
    /// connections sit between them.
    ///
    /// The adapter keeps one per thread: ``borrowBuffers(from:)`` before it feeds a
    /// connection's bytes in, ``returnBuffers(to:)`` once it has taken the events and written
    /// what it could. Behaviour does not depend on it: an engine that borrows nothing allocates
    /// its own, and a buffer still in use (bytes the kernel has not taken, a partial frame)
    /// stays with its engine.
    public struct SpareBuffers: Sendable {
        @usableFromInline var inbound = InboundBuffer()
        @usableFromInline var outbound = OutboundBuffer()
        @usableFromInline var encoded: [UInt8] = []
        @usableFromInline var events: [Event] = []

        /// The most capacity a buffer may have to be kept here; a larger one stays with its
        /// engine, which gives it back when it is idle.
        @usableFromInline static let maxKept = 64 << 10

        public init() {}

        /// Bytes of memory held for the next engine.
        public var capacity: Int {
            inbound.storage.capacity + outbound.storage.capacity + encoded.capacity
                + events.capacity * MemoryLayout<Event>.stride
        }
    }

    /// Takes the spare buffers in place of those this engine lacks (see ``SpareBuffers``).
    @inlinable @inline(__always)
    public mutating func borrowBuffers(from spare: inout SpareBuffers) {
        if inbound.storage.capacity == 0 { swap(&inbound, &spare.inbound) }
        if outbound.storage.capacity == 0 { swap(&outbound, &spare.outbound) }
        // Only a message transform encodes into a buffer of its own.
        if transform != nil, encodeBuffer.capacity == 0 { swap(&encodeBuffer, &spare.encoded) }
        if pending.capacity == 0 { swap(&pending, &spare.events) }
    }

    /// Gives the buffers this engine has emptied back to `spare` where it has none (see
    /// ``SpareBuffers``); a buffer with bytes still in it stays.
    @inlinable @inline(__always)
    public mutating func returnBuffers(to spare: inout SpareBuffers) {
        if inbound.readable == 0, spare.inbound.storage.capacity == 0, inbound.storage.capacity <= SpareBuffers.maxKept {
            swap(&inbound, &spare.inbound)
        }
        if outbound.count == 0, spare.outbound.storage.capacity == 0, outbound.storage.capacity <= SpareBuffers.maxKept {
            swap(&outbound, &spare.outbound)
        }
        // Scratch between calls: what an encode leaves in it is already framed into `outbound`.
        if transform != nil, spare.encoded.capacity == 0, encodeBuffer.capacity <= SpareBuffers.maxKept { swap(&encodeBuffer, &spare.encoded) }
        if pending.isEmpty, spare.events.capacity == 0 { swap(&pending, &spare.events) }
    }

    private mutating func queueEndOfStream() {
        if case .none = outboundEOS { outboundEOS = .queued }
    }

    @inline(__always)
    private mutating func updateWritability() {
        let queued = outbound.count + queuedBytes
        if writable, queued >= configuration.outboundHighWaterMark {
            writable = false
        } else if !writable, queued <= configuration.outboundLowWaterMark {
            writable = true
        }
    }

    // MARK: Inbound bookkeeping

    private mutating func consume(_ n: Int) {
        inbound.skip(n)
        streamOffset += Int64(n)
    }

    /// Consumes the next `n` bytes and returns where they are in the receive buffer (they stay
    /// there, unchanged, until the next `receive`).
    private mutating func take(_ n: Int) -> Range<Int> {
        streamOffset += Int64(n)
        return inbound.take(n)
    }
}
