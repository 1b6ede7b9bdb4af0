extension WSProtocol {
    /// How received data messages are delivered.
    public enum Delivery: Hashable, Sendable {
        /// Each message is assembled and delivered whole as ``Event/text(_:)`` or
        /// ``Event/binary(_:)``, up to ``Configuration/maxMessageSize``.
        case wholeMessages
        /// Payload is delivered as ``Event/fragment(_:)`` as soon as it arrives, without waiting
        /// for the rest of the frame or message; memory is bounded by the size of each
        /// ``WSProtocol/receive(_:)``, not by the message. Text is still validated as it arrives.
        case streaming
    }

    /// Limits, timers and behaviour of one connection.
    ///
    /// Every field has a default chosen to be safe for a server facing untrusted peers; each says
    /// why and how far to push it. ``WSProtocol/init(role:configuration:now:randomNumberGenerator:)``
    /// rejects invalid combinations with ``WSUsageError/invalidConfiguration(_:)``.
    public struct Configuration: Hashable, Sendable {
        /// The largest frame payload accepted, in bytes. Default: ``maxMessageSize`` (it follows
        /// that limit until set).
        ///
        /// A larger frame fails the connection with 1009 as soon as its header arrives, before
        /// any of its payload is read. Browsers, python-websockets, aiohttp, node's `ws`, wsproto
        /// and libwebsockets send each message as one frame, so a frame limit below the message
        /// limit refuses their larger messages (Ballerina's 65536 default is a well-known source
        /// of "max frame length exceeded" errors); set it lower only for peers known to
        /// fragment.
        public var maxFrameSize: Int {
            get { storage.fields.frameLimit ?? storage.fields.maxMessageSize }
            set { modify { $0.frameLimit = newValue } }
        }

        /// The largest message accepted, in bytes (the sum of its frames). Default 1 MiB.
        ///
        /// In ``Delivery/wholeMessages`` mode this bounds the memory one connection can make us
        /// hold; it is checked against each frame header, so the message fails with 1009 before
        /// the offending frame's payload arrives. 1 MiB (python-websockets' default) keeps
        /// 10,000 connections under 10 GiB at worst; raise it with care.
        public var maxMessageSize: Int {
            get { storage.fields.maxMessageSize }
            set { modify { $0.maxMessageSize = newValue } }
        }

        /// The largest size a compressed (transformed) message may decode to, in bytes; `nil`
        /// (the default) means ``maxMessageSize``.
        ///
        /// With permessage-deflate, ``maxMessageSize`` and ``maxFrameSize`` bound the bytes on
        /// the wire, and this bounds what they inflate to, inside the inflate loop: a
        /// decompression bomb fails with 1009 once its output would pass the limit, having
        /// buffered no more than the limit. Set it to allow (or refuse) large decompressed
        /// messages independently of their compressed size.
        public var maxDecompressedSize: Int? {
            get { storage.fields.maxDecompressedSize }
            set { modify { $0.maxDecompressedSize = newValue } }
        }

        /// The most bytes a transformed (compressed) message is decoded by in one call of
        /// ``WSProtocol/nextEvent()``; then the call returns nil with
        /// ``WSProtocol/hasPendingWork`` true, and the next call goes on where it stopped.
        /// nil (the default): a whole message is decoded in one call.
        ///
        /// Inflating is the one step whose work is not bounded by the bytes received: 61 KB can
        /// inflate to 60 MiB, about a second of CPU. An event loop serving many connections
        /// sets this (the epoll adapter uses 256 KiB when it is nil) and serves its other
        /// connections between slices, so a large message, or a decompression bomb, costs its
        /// own connection time and not its neighbours'. Streaming pieces are at most this
        /// size too.
        public var decodeSliceSize: Int? {
            get { storage.fields.decodeSliceSize }
            set { modify { $0.decodeSliceSize = newValue } }
        }

        /// The most bytes of a message being sent that are transformed (compressed) in one
        /// step; nil (the default): a message is compressed whole when it is sent.
        ///
        /// With a slice, a compressed message larger than it is copied when sent, its first
        /// slice compressed and framed at once, and each ``WSProtocol/continueEncoding()`` call
        /// compresses the next (``WSProtocol/hasPendingWork`` is true meanwhile); messages sent
        /// after it wait behind it, control frames do not. The frames are the ones a whole
        /// compression gives. Deflating 60 MiB takes a fraction of a second: an event loop
        /// (the epoll adapter uses 256 KiB when this is nil) serves its other connections
        /// between slices. Unencoded bytes count toward ``WSProtocol/isWritable`` and
        /// ``maxBufferedAmount``.
        public var encodeSliceSize: Int? {
            get { storage.fields.encodeSliceSize }
            set { modify { $0.encodeSliceSize = newValue } }
        }

        /// The most frames one message may span. Default 16384.
        ///
        /// Empty or tiny fragments cost the peer 2–6 bytes each and us a header parse each; the
        /// cap keeps a flood of them from holding a message open forever. With the default
        /// ``maxMessageSize`` it still allows fragments averaging 64 bytes. Exceeding it fails
        /// with 1008.
        public var maxFragmentsPerMessage: Int {
            get { storage.fields.maxFragmentsPerMessage }
            set { modify { $0.maxFragmentsPerMessage = newValue } }
        }

        /// Whole messages or streaming fragments. Default ``Delivery/wholeMessages``.
        public var delivery: Delivery {
            get { storage.fields.delivery }
            set { modify { $0.delivery = newValue } }
        }

        /// Outgoing messages larger than this are split into frames of this size. Default 65536,
        /// so that peers with a 64 KiB frame limit (Ballerina's default) take our messages of
        /// any size.
        public var outboundFragmentSize: Int {
            get { storage.fields.outboundFragmentSize }
            set { modify { $0.outboundFragmentSize = newValue } }
        }

        /// Answer each Ping with a Pong automatically. Default on. The ``Event/ping(_:)`` event
        /// is reported either way; with this off, the application answers with ``WSProtocol/pong(_:)``.
        public var autoPong: Bool {
            get { storage.fields.autoPong }
            set { modify { $0.autoPong = newValue } }
        }

        /// Answer a received Close with a Close echoing its code, at once. Default on.
        ///
        /// With this off, after ``Event/closeReceived(_:)`` the application may finish sending a
        /// message and must then call ``WSProtocol/close(code:reason:)`` (RFC 6455 §5.5.1 lets
        /// an endpoint delay its Close until its current message is sent).
        public var autoCloseReply: Bool {
            get { storage.fields.autoCloseReply }
            set { modify { $0.autoCloseReply = newValue } }
        }

        /// Accept unmasked frames from a client (server role only). Default off.
        ///
        /// RFC 6455 §5.1: "The server MUST close the connection upon receiving a frame that is
        /// not masked." Turn on only for trusted, non-browser peers on a private link.
        public var acceptUnmaskedFrames: Bool {
            get { storage.fields.acceptUnmaskedFrames }
            set { modify { $0.acceptUnmaskedFrames = newValue } }
        }

        /// Send a keepalive Ping this often while open; `nil` disables keepalive. Default 20 s
        /// (as python-websockets).
        public var pingInterval: Duration? {
            get { storage.fields.pingInterval }
            set { modify { $0.pingInterval = newValue } }
        }

        /// Fail the connection if a keepalive Ping gets no Pong within this time. Default 20 s.
        ///
        /// Any Pong received after the keepalive Ping counts. On timeout a Close with 1011 is
        /// queued and the connection closes at once with code 1006: a peer that does not answer
        /// pings will not answer a Close either.
        public var pingTimeout: Duration {
            get { storage.fields.pingTimeout }
            set { modify { $0.pingTimeout = newValue } }
        }

        /// Report ``Event/idleTimeout`` after this long without a data frame in either
        /// direction; `nil` disables it. Default `nil` (as Ballerina's `idleTimeout = 0`).
        ///
        /// Control frames do not count, so keepalive does not hide an idle connection. The
        /// connection stays open: the application decides (for example by closing it). The
        /// timer re-arms after each report.
        public var idleTimeout: Duration? {
            get { storage.fields.idleTimeout }
            set { modify { $0.idleTimeout = newValue } }
        }

        /// After our Close is sent, wait this long for the peer's Close (unless
        /// ``WSProtocol/close(code:reason:timeout:)`` is given its own timeout), and once both
        /// are exchanged or the connection failed, for the transport to end, before giving up.
        /// Default 10 s (as python-websockets).
        public var closeTimeout: Duration {
            get { storage.fields.closeTimeout }
            set { modify { $0.closeTimeout = newValue } }
        }

        /// Above this many queued outbound bytes ``WSProtocol/isWritable`` turns false; adapters
        /// stop reading from the peer until it turns true again. Default 1 MiB.
        public var outboundHighWaterMark: Int {
            get { storage.fields.outboundHighWaterMark }
            set { modify { $0.outboundHighWaterMark = newValue } }
        }

        /// ``WSProtocol/isWritable`` turns true again at or below this many queued bytes.
        /// Default 256 KiB. Must be below ``outboundHighWaterMark``.
        public var outboundLowWaterMark: Int {
            get { storage.fields.outboundLowWaterMark }
            set { modify { $0.outboundLowWaterMark = newValue } }
        }

        /// Data sends that would queue more than this many outbound bytes throw
        /// ``WSUsageError/outboundBufferFull(bufferedAmount:limit:)``. Control frames (pong,
        /// close) are never refused. Default 64 MiB: far above the high-water mark, a last guard
        /// against an application that ignores backpressure.
        public var maxBufferedAmount: Int {
            get { storage.fields.maxBufferedAmount }
            set { modify { $0.maxBufferedAmount = newValue } }
        }

        /// The defaults described on each field.
        public static let `default` = Configuration()

        /// The defaults described on each field.
        public init() {}

        // The fields live in a shared, copy-on-write box: every connection of a server gets
        // the server's configuration, and copying it is a reference count, not 200 bytes per
        // connection (an engine is created per connection and keeps its configuration).
        private var storage = Storage.defaults

        fileprivate struct Fields: Hashable, Sendable {
            /// ``maxFrameSize`` when set; nil follows ``maxMessageSize``.
            var frameLimit: Int? = nil
            var maxMessageSize: Int = 1 << 20
            var maxDecompressedSize: Int? = nil
            var decodeSliceSize: Int? = nil
            var encodeSliceSize: Int? = nil
            var maxFragmentsPerMessage: Int = 16384
            var delivery: Delivery = .wholeMessages
            var outboundFragmentSize: Int = 65536
            var autoPong: Bool = true
            var autoCloseReply: Bool = true
            var acceptUnmaskedFrames: Bool = false
            var pingInterval: Duration? = .seconds(20)
            var pingTimeout: Duration = .seconds(20)
            var idleTimeout: Duration? = nil
            var closeTimeout: Duration = .seconds(10)
            var outboundHighWaterMark: Int = 1 << 20
            var outboundLowWaterMark: Int = 256 << 10
            var maxBufferedAmount: Int = 64 << 20
        }

        /// Immutable: ``modify(_:)`` makes a new one. Its fields are constants, so an engine
        /// reads them with no run-time exclusivity check.
        private final class Storage: Sendable {
            let fields: Fields
            let limits: FrameLimits
            init(_ fields: Fields) {
                self.fields = fields
                limits = FrameLimits(fields)
            }
            static let defaults = Storage(Fields())
        }

        private mutating func modify(_ change: (inout Fields) -> Void) {
            var fields = storage.fields
            change(&fields)
            storage = Storage(fields)
        }

        /// The checks an engine makes on every frame header, in the types the checks use.
        struct FrameLimits: Sendable {
            var maxFrameSize: UInt64
            var maxMessageSize: UInt64
            var maxDecodedSize: Int
            var maxFragments: Int
            /// The most bytes one decode call may produce: the decode slice (whole messages), at
            /// most a streaming piece.
            var decodePause: Int
            var acceptUnmasked: Bool
            var streaming: Bool

            /// Computed for every configuration, valid or not (``validate()`` refuses a negative
            /// limit before an engine uses one).
            fileprivate init(_ f: Fields) {
                maxFrameSize = UInt64(clamping: f.frameLimit ?? f.maxMessageSize)
                maxMessageSize = UInt64(clamping: f.maxMessageSize)
                maxDecodedSize = f.maxDecompressedSize ?? f.maxMessageSize
                maxFragments = f.maxFragmentsPerMessage
                acceptUnmasked = f.acceptUnmaskedFrames
                streaming = f.delivery == .streaming
                let slice = f.decodeSliceSize ?? .max
                decodePause = streaming ? Swift.min(WSProtocol.decodedPieceSize, slice) : slice
            }
        }

        var frameLimits: FrameLimits { storage.limits }

        public static func == (a: Self, b: Self) -> Bool { a.storage === b.storage || a.storage.fields == b.storage.fields }
        public func hash(into hasher: inout Hasher) { hasher.combine(storage.fields) }

        /// Checks the combination of fields.
        public func validate() throws(WSUsageError) {
            func require(_ ok: Bool, _ why: String) throws(WSUsageError) {
                if !ok { throw .invalidConfiguration(why) }
            }
            try require(maxFrameSize > 0, "maxFrameSize must be positive")
            try require(maxMessageSize > 0, "maxMessageSize must be positive")
            try require(maxDecompressedSize.map { $0 > 0 } ?? true, "maxDecompressedSize must be positive")
            try require(maxFragmentsPerMessage > 0, "maxFragmentsPerMessage must be positive")
            try require(decodeSliceSize.map { $0 > 0 } ?? true, "decodeSliceSize must be positive")
            try require(encodeSliceSize.map { $0 > 0 } ?? true, "encodeSliceSize must be positive")
            try require(outboundFragmentSize > 0, "outboundFragmentSize must be positive")
            try require(pingInterval.map { $0 > .zero } ?? true, "pingInterval must be positive")
            try require(pingTimeout > .zero, "pingTimeout must be positive")
            try require(idleTimeout.map { $0 > .zero } ?? true, "idleTimeout must be positive")
            try require(closeTimeout >= .zero, "closeTimeout must not be negative")
            try require(outboundLowWaterMark >= 0, "outboundLowWaterMark must not be negative")
            try require(outboundLowWaterMark < outboundHighWaterMark, "outboundLowWaterMark must be below outboundHighWaterMark")
            try require(maxBufferedAmount >= outboundHighWaterMark, "maxBufferedAmount must be at least outboundHighWaterMark")
        }
    }
}
