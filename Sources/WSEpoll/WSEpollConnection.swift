// One connection of the epoll server: its stream (a socket, with TLS for wss://), its engine,
// and the application's handle.
// All mutable state is touched only on the owning loop's thread; other threads go through the
// loop's inbox (`execute`), which is why the class can be shared (`@unchecked Sendable`).

public import WSCore
public import WSTransport

/// A connection owned by one of the server's event loops, as the application sees it.
///
/// Commands called on the owning loop (from a handler callback, say) act at once and throw
/// usage errors. Called from any other thread, they are queued for the owning loop and return
/// immediately; there a failing command (the connection closed meanwhile) is dropped, and the
/// handler learns of the closure from its own `.closed` event.
public final class WSEpollConnection: @unchecked Sendable {
    /// A number unique within the server for its lifetime.
    public let id: UInt64
    /// The peer's address: `host:port` (IPv6 hosts in brackets), or `local`.
    public var remoteAddress: String {
        peer != 0 ? WSSocketAddress.describe(packedIPv4: peer & ~Self.ipv4Tag) : rare?.remoteAddress ?? "local"
    }
    /// An IPv4 peer's address and port (``WSSocketAddress/packedIPv4``) with `ipv4Tag` set;
    /// 0 when the text is in `rare` (IPv6, Unix sockets): one word instead of a string.
    private let peer: UInt64
    private static let ipv4Tag: UInt64 = 1 << 63

    // The loop outlives its connections: it releases each one before it ends.
    unowned(unsafe) let loop: EventLoop
    let stream: WSStream
    /// Where the owning loop keeps it (set when the loop adopts it); 32 bits, stored in the
    /// 4 bytes after the stream.
    @exclusivity(unchecked) private var slotIndex: Int32 = -1
    var slot: Int {
        get { Int(slotIndex) }
        set { slotIndex = Int32(newValue) }
    }
    var socket: WSSocket { stream.socket }
    // Loop-thread state, `@exclusivity(unchecked)` as in EventLoop (no run-time access checks on
    // the hot path; no overlapping accesses are made).
    @exclusivity(unchecked) var handler: (any WSEpollHandler)?
    /// The same handler when it is the service layer's (its extra notifications).
    @exclusivity(unchecked) var serviceHooks: (any WSEpollServiceHooks)?
    /// The opening handshake (the request and the 101 answer, every header field included),
    /// once open: always for a client connection; for a server's, only when the server keeps
    /// it (``WSEpollServer/Configuration/keepsHandshake``, off by default: about 2 KB per
    /// connection). The handler's ``WSEpollHandler/opened(_:_:)`` gets it either way.
    public var handshake: WSHandshakeResult? { rare?.handshake }
    /// The subprotocol agreed in the opening handshake, if any (once open).
    public var subprotocol: String? { rare?.subprotocol }
    /// The TLS session of a `wss://` connection (version, cipher, the peer's certificate); read
    /// it on the owning loop.
    public var tls: WSTLSSession? { stream.tls }

    /// Bytes charged to the server's memory budget for this connection.
    @exclusivity(unchecked) var charged = 0
    @exclusivity(unchecked) private var rare: Rare?
    // The armed deadline, a compact optional (8 bytes, not 16). Read each time the timer is
    // armed: unchecked, or the run-time access check costs about 70 instructions per echoed
    // message (callgrind).
    @exclusivity(unchecked) private var armed = WSOptionalInstant()
    /// The engine, in the connection's own allocation. `@exclusivity(unchecked)` as the
    /// loop-thread state: a class's stored property would otherwise pay for a run-time access
    /// check on every call (it is the loop's hot path).
    @exclusivity(unchecked) var engine: WSProtocol
    // The transport's and the loop's flags (loop thread only), one bit each in one word after
    // the engine: as twelve `Bool`s they took 12 bytes, and with the padding after them a
    // connection's record went past an allocator size class (440 -> 424 bytes, 448 -> 432 allocated).
    // Unchecked, as above: `applicationPaused`, set from the service layer's module, cost a
    // run-time access check (about 60 instructions) per echo.
    @exclusivity(unchecked) private var flags: UInt16 = 1 << 0 | 1 << 10

    @inline(__always) private func flag(_ bit: Int) -> Bool { flags & (1 << bit) != 0 }
    @inline(__always) private func setFlag(_ bit: Int, _ on: Bool) {
        if on { flags |= 1 << bit } else { flags &= ~(1 << bit) }
    }
    var readable: Bool { get { flag(0) } set { setFlag(0, newValue) } }
    var peerHungUp: Bool { get { flag(1) } set { setFlag(1, newValue) } }
    var kernelFull: Bool { get { flag(2) } set { setFlag(2, newValue) } }
    var readPaused: Bool { get { flag(3) } set { setFlag(3, newValue) } }
    /// Reading stopped by the application (its inbound queue is full).
    package var applicationPaused: Bool { get { flag(4) } set { setFlag(4, newValue) } }
    /// ``WSEpollServiceHooks/writable(_:)`` is owed when the engine turns writable.
    var writabilityWanted: Bool { get { flag(5) } set { setFlag(5, newValue) } }
    var writeShut: Bool { get { flag(6) } set { setFlag(6, newValue) } }
    var inputEnded: Bool { get { flag(7) } set { setFlag(7, newValue) } }
    var transportDead: Bool { get { flag(8) } set { setFlag(8, newValue) } }
    var isDirty: Bool { get { flag(9) } set { setFlag(9, newValue) } }
    var wasActive: Bool { get { flag(10) } set { setFlag(10, newValue) } }
    /// The engine paused a decode; the loop serves it again next turn (reading waits).
    var workPending: Bool { get { flag(11) } set { setFlag(11, newValue) } }
    /// A sweep saw activity since the connection's memory was last released (read and written
    /// by the sweep only).
    var activeSinceRelease: Bool { get { flag(12) } set { setFlag(12, newValue) } }
    /// The loop is handing this connection's events to its handler: that drain's caller
    /// flushes and settles it right after, so a send from the handler need not queue a flush.
    var isBeingDrained: Bool { get { flag(13) } set { setFlag(13, newValue) } }

    /// Why the socket (or its TLS session) failed, if it did: a reset, a certificate refused.
    package internal(set) var transportError: WSTransportError? {
        get { rare?.transportError }
        set { if newValue != nil || rare != nil { rareState.transportError = newValue } }
    }
    /// When a closed connection stops waiting for its last bytes to go out and its peer's FIN.
    var lingerDeadline: WSInstant? {
        get { rare?.lingerDeadline }
        set { if newValue != nil || rare != nil { rareState.lingerDeadline = newValue } }
    }
    /// The deadline the loop's timer heap holds for this connection, if any.
    var armedDeadline: WSInstant? {
        get { armed.value }
        set { armed.value = newValue }
    }
    /// When to call ``WSEpollServiceHooks/deadlinePassed(_:)`` (a layer's own timeout: the
    /// client's reads and writes), kept in `rare`.
    var applicationDeadline: WSInstant? {
        get { rare?.applicationDeadline }
        set { if newValue != nil || rare != nil { rareState.applicationDeadline = newValue } }
    }
    /// The remote address counted against the server's per-address limit, if it has one.
    var countedAddress: String? {
        get { rare?.countedAddress }
        set { if newValue != nil || rare != nil { rareState.countedAddress = newValue } }
    }

    /// What few connections need (a kept handshake, a subprotocol, a failure, the close's
    /// linger, a per-address count, a peer that is not IPv4, a layer's deadline), out of line
    /// so that an idle connection's record stays small; allocated on first use.
    private final class Rare {
        @exclusivity(unchecked) var handshake: WSHandshakeResult?
        @exclusivity(unchecked) var subprotocol: String?
        @exclusivity(unchecked) var transportError: WSTransportError?
        @exclusivity(unchecked) var lingerDeadline: WSInstant?
        @exclusivity(unchecked) var countedAddress: String?
        /// The peer's address when it is not IPv4.
        @exclusivity(unchecked) var remoteAddress: String?
        /// When to call ``WSEpollServiceHooks/deadlinePassed(_:)`` (the client layer's timeouts).
        @exclusivity(unchecked) var applicationDeadline: WSInstant?
    }
    private var rareState: Rare {
        if let rare { return rare }
        let made = Rare()
        rare = made
        return made
    }

    /// `peer`: the socket's peer, nil for none (`local`).
    init(id: UInt64, loop: EventLoop, stream: WSStream, peer: WSSocketAddress?, engine: consuming WSProtocol, handler: (any WSEpollHandler)? = nil) {
        self.id = id
        self.loop = loop
        self.stream = stream
        self.handler = handler
        self.engine = engine
        let v4 = peer?.packedIPv4
        self.peer = v4.map { $0 | Self.ipv4Tag } ?? 0
        if v4 == nil, let peer { rareState.remoteAddress = peer.description }
    }

    func opened(_ result: WSHandshakeResult, keep: Bool) {
        if let subprotocol = result.subprotocol { rareState.subprotocol = subprotocol }
        if keep { rareState.handshake = result }
    }

    // MARK: Observation (owning loop)

    /// Where the connection is in its lifecycle (read it on the owning loop).
    public var lifecycle: WSProtocol.Lifecycle { engine.lifecycle }
    /// Whether messages can be sent (open, or the peer's Close received and ours not yet sent).
    public var isOpen: Bool { engine.lifecycle == .open }
    /// Outbound bytes the kernel has not taken yet.
    public var bufferedAmount: Int { engine.bufferedAmount }
    /// False while ``bufferedAmount`` is above the high-water mark (until it falls below the
    /// low-water mark); the server stops reading this connection meanwhile.
    public var isWritable: Bool { engine.isWritable }

    // MARK: The service layer's hooks (package API)

    /// The loop that owns the connection, as an executor: the service layer runs the
    /// connection's callbacks on it.
    package var executor: any TaskExecutor { loop }

    /// Whether the caller runs on the owning loop's thread.
    package var isOnLoop: Bool { loop.isCurrent }

    /// Runs `body` on the owning loop, soon (from any thread).
    package func execute(_ body: @escaping @Sendable () -> Void) { loop.execute(body) }

    /// Answers the upgrade request that awaits a decision (``WSEpollServer``'s deferred
    /// upgrade). From any thread; ignored if the handshake's time ran out meanwhile (the
    /// client was answered 503) or the client left.
    package func decide(_ decision: WSDeferredDecision) {
        if loop.isCurrent {
            loop.apply(decision, to: self)
        } else {
            loop.execute { [self] in self.loop.apply(decision, to: self) }
        }
    }

    /// Resumes reading after ``applicationPaused`` (owning loop only).
    package func resumeReading() {
        guard applicationPaused else { return }
        applicationPaused = false
        scheduleFlush()
    }

    /// Asks for ``WSEpollServiceHooks/writable(_:)`` once ``isWritable`` is true again (owning
    /// loop only).
    package func notifyWhenWritable() { writabilityWanted = true }

    /// Calls ``WSEpollServiceHooks/deadlinePassed(_:)`` at `deadline` (nil: never), on the
    /// loop's timer (owning loop only). One deadline per connection; a new one replaces it.
    package func setApplicationDeadline(_ deadline: WSInstant?) {
        applicationDeadline = deadline
        scheduleFlush()
    }


    /// Runs `body` on the engine and queues a flush, for the service layer's commands (owning
    /// loop only). A function rather than an accessor: a `_modify` coroutine called from
    /// another module allocates its frame on every access.
    package func withEngine<R, E: Error>(_ body: (inout WSProtocol) throws(E) -> R) throws(E) -> R {
        defer { scheduleFlush() }
        return try body(&engine)
    }

    /// Sends a text message and queues a flush: the service layer's reply path (owning loop
    /// only).
    package func sendOnLoop(text: String) throws(WSUsageError) {
        defer { scheduleFlush() }
        try engine.sendText(text)
    }

    // MARK: Commands

    func perform(_ body: @escaping @Sendable (WSEpollConnection) throws(WSUsageError) -> Void) throws(WSUsageError) {
        if loop.isCurrent {
            try body(self)
            scheduleFlush()
        } else {
            loop.execute { [self] in
                guard !self.transportDead else { return }
                try? body(self)
                self.scheduleFlush()
            }
        }
    }

    /// Queues a flush at the end of the loop's turn (owning loop only), unless one is queued or
    /// the connection's events are being handed out: that drain's caller flushes it. Tested
    /// here and only here, so that the loop is not even loaded (a retain and a release) in
    /// either case.
    @inline(__always)
    func scheduleFlush() {
        if !isDirty && !isBeingDrained { loop.markDirty(self) }
    }

    /// Sends a text message.
    public func send(text: String, compress: Bool = true) throws(WSUsageError) {
        try perform { (c) throws(WSUsageError) in try c.engine.sendText(text, compress: compress) }
    }

    /// Sends a binary message.
    public func send(binary: [UInt8], compress: Bool = true) throws(WSUsageError) {
        try perform { (c) throws(WSUsageError) in try c.engine.sendBinary(binary, compress: compress) }
    }

    /// Sends one piece of a fragmented message (see ``WSProtocol/sendFragment(_:kind:isFinal:compress:)``).
    public func sendFragment(_ bytes: [UInt8], kind: WSMessageKind, isFinal: Bool, compress: Bool = true) throws(WSUsageError) {
        try perform { (c) throws(WSUsageError) in try c.engine.sendFragment(bytes, kind: kind, isFinal: isFinal, compress: compress) }
    }

    /// Sends a Ping (payload at most 125 bytes).
    public func ping(_ payload: [UInt8] = []) throws(WSUsageError) {
        try perform { (c) throws(WSUsageError) in try c.engine.ping(payload) }
    }

    /// Sends an unsolicited Pong (payload at most 125 bytes).
    public func pong(_ payload: [UInt8] = []) throws(WSUsageError) {
        try perform { (c) throws(WSUsageError) in try c.engine.pong(payload) }
    }

    /// Starts the closing handshake (RFC 6455 §7.1.2); the handler gets `.closed` when it ends.
    /// The wait for the peer's Close lasts `timeout` (see
    /// ``WSProtocol/close(code:reason:timeout:)``: nil for the engine's `closeTimeout`, negative
    /// for no limit).
    public func close(code: WSCloseCode? = .normalClosure, reason: String = "", timeout: Duration? = nil) throws(WSUsageError) {
        try perform { (c) throws(WSUsageError) in try c.engine.close(code: code, reason: reason, timeout: timeout) }
    }
}
