// One connection of a service: it receives the epoll loop's events, queues them, and runs the
// service's callbacks for them in order, one at a time, on the connection's loop.
//
// Execution model
// - Every event becomes an item in `queue`. At the end of each burst of events (a read, a
//   timer, a decision) the loop calls `drained`; if no callback is running, a runner starts
//   there with `Task.immediate` and the loop as its executor preference. A callback that never
//   suspends runs to its end inside that call, on the loop's thread, as a plain call would.
// - A callback that suspends keeps the runner (and so later items) waiting; it resumes on the
//   loop as an executor job. Items that arrive meanwhile are queued; above the configured
//   high-water mark (bytes) reading stops, and it resumes at the low-water mark.
// - All mutable state here is touched only on the loop's thread: by the loop's calls, and by
//   the runner and the `WSCaller` commands, which run there. Other threads reach it through
//   the loop (`execute`), which is why the class may be `@unchecked Sendable`.
// - Writes (replies and `WSCaller` writes) wait while the engine is above its outbound
//   high-water mark, so a slow reader slows the producer instead of growing memory.

import FoundationEssentials
import Glibc
internal import HTTPTypes
import Logging
import Synchronization
import WSCore
import WSEpoll

/// A connection's loop-side state and commands, whatever its service type: the queue, the
/// caller's commands, the events from the loop. ``ServiceConnection`` adds the service and
/// the runner that calls it.
class ServiceConnectionBase: WSEpollServiceHooks, @unchecked Sendable {
    /// A queued cause of a callback. Small (the rare large payloads are boxed): items are
    /// copied through the queue and the runner's frame.
    enum Item {
        case open
        case text(String)
        case binary([UInt8])
        /// A small message's bytes, queued in `arena` (its `String` or array is made when the
        /// callback runs, and freed right after: one allocation at a time per connection,
        /// which the allocator's per-thread cache serves; a burst of sixteen allocated at
        /// once would not fit it).
        case smallText(Range<Int>)
        case smallBinary(Range<Int>)
        case ping([UInt8])
        case pong([UInt8])
        case idle
        indirect case failed(WSServiceError)
        indirect case closed(WSProtocol.CloseInfo)

        /// What the item counts against the inbound high-water mark: its bytes, plus its slot.
        var queuedSize: Int {
            switch self {
            case .text(let s): s.utf8.count + 64
            case .binary(let b), .ping(let b), .pong(let b): b.count + 64
            case .smallText(let r), .smallBinary(let r): r.count + 64
            case .open, .idle, .failed, .closed: 64
            }
        }
    }

    let connection: WSEpollConnection
    let route: Route
    /// The upgrade request, compact (see ``WSUpgradeRequest/compactHead``): a few hundred
    /// bytes in one allocation instead of the parsed request's 1.4 KB in many.
    private let requestHead: [UInt8]
    /// The upgrade request, parsed again from its compact form.
    var request: WSUpgradeRequest {
        guard let parsed = WSUpgradeRequest(compactHead: requestHead) else {
            preconditionFailure("a request that was read once reads again")
        }
        return parsed
    }
    let subprotocol: String?
    let id: String
    let attributes = Mutex<[String: any Sendable]>([:])
    /// 0 connecting, 1 open, 2 closing, 3 closed (readable from any thread).
    let phase = Atomic<UInt8>(0)

    // Loop-thread state, `@exclusivity(unchecked)` as in the epoll loop (no run-time access
    // checks on the hot path; no overlapping accesses are made).
    /// The queued items are `queue[head..<tail]`. Items are moved out (`take()`), not copied:
    /// no reference counting per message. The slots are reused from the start once the queue
    /// drains (no array operation per message or burst).
    @exclusivity(unchecked) private var queue: [Item?] = []
    @exclusivity(unchecked) private var head = 0
    @exclusivity(unchecked) private var tail = 0
    /// The bytes of queued small messages are `arena[..<arenaUsed]`, in queue order; it starts
    /// over when the queue drains (its bytes are overwritten, not removed).
    @exclusivity(unchecked) var arena: [UInt8] = []
    @exclusivity(unchecked) var arenaUsed = 0
    @exclusivity(unchecked) private var queuedBytes = 0
    /// This layer has paused the connection's reading (its queue went over the high-water
    /// mark); kept here so that the check per message reads no other module's state.
    @exclusivity(unchecked) private var pausedReading = false
    @exclusivity(unchecked) private var running = false
    /// The runner, waiting for the next burst (it keeps its task and frames between bursts of
    /// a busy connection; an idle one ends it).
    @exclusivity(unchecked) private var parked: UnsafeContinuation<Bool, Never>?
    /// Bursts of events since the connection was last idle (the open is one). A runner parks
    /// only from the third on: a connection that opens and sends a message or two, then waits,
    /// keeps no task (about 2.3 KB, which glibc would keep at its peak even after the idle
    /// sweep ended it).
    @exclusivity(unchecked) private var burstsSinceIdle = 0
    /// Runner tasks started for this connection (tests read it through the caller).
    @exclusivity(unchecked) package private(set) var runnerStarts = 0
    /// The connection's last item has been delivered: the runner ends instead of parking.
    @exclusivity(unchecked) private var ended = false
    /// A failure closed the connection: data still queued is not delivered.
    @exclusivity(unchecked) var failing = false
    @exclusivity(unchecked) private var writeWaiters: [CheckedContinuation<Void, Never>] = []
    @exclusivity(unchecked) private var closeWaiters: [CheckedContinuation<WSProtocol.CloseInfo, Never>] = []
    /// How the connection closed, once it has: boxed, since it is 129 bytes inline and only
    /// a closed connection has one.
    @exclusivity(unchecked) private var closed: Closed?
    private final class Closed: Sendable {
        let info: WSProtocol.CloseInfo
        init(_ info: WSProtocol.CloseInfo) { self.info = info }
    }

    init(connection: WSEpollConnection, route: Route, request: WSUpgradeRequest, subprotocol: String?) {
        self.connection = connection
        self.route = route
        self.requestHead = request.compactHead
        self.subprotocol = subprotocol
        self.id = ServiceConnectionBase.nextID()
    }

    private static let ids = Atomic<UInt64>(0)
    /// A process-unique id: `"<pid hex>-<n hex>"` (Ballerina's `connectionId` is a string).
    private static func nextID() -> String {
        "\(String(processTag, radix: 16))-\(String(ids.add(1, ordering: .relaxed).newValue, radix: 16))"
    }

    var caller: WSCaller { WSCaller(self) }
    var logger: Logger { route.logger }

    /// Delivers queued items as they come, parking between bursts, until told to end (the
    /// subclass knows the service).
    func run() async { fatalError("abstract") }

    // MARK: Events from the loop

    func opened(_ connection: WSEpollConnection, _ result: WSHandshakeResult) {
        phase.store(1, ordering: .releasing)
        enqueue(.open)
    }

    func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
        guard !failing else { return }
        if data.count <= Self.smallMessage {
            // The arena starts over with a new burst. Items taken from the queue have had
            // their bytes copied out already: the runner does that before its first
            // suspension after taking one.
            if tail == 0 {
                arenaUsed = 0
                if arena.count > 64 << 10 { arena = [] }
            }
            let range = appendToArena(data)
            enqueue(kind == .text ? .smallText(range) : .smallBinary(range))
        } else {
            enqueue(kind == .text ? .text(makeString(data)) : .binary(makeArray(data)))
        }
    }

    /// Messages up to this size are queued in the arena.
    static let smallMessage = 4096



    func event(_ connection: WSEpollConnection, _ event: WSProtocol.Event) {
        switch event {
        case .ping(let payload):
            if route.hasPing { enqueue(.ping(Array(payload))) }
        case .pong(let payload):
            if route.hasPong { enqueue(.pong(Array(payload))) }
        case .idleTimeout:
            enqueue(.idle)
        case .closeReceived:
            phase.store(2, ordering: .releasing)
        case .failed(let error):
            phase.store(2, ordering: .releasing)
            failing = true
            let code: WSServiceError.Code = error.closeCode == .messageTooBig ? .payloadTooLarge : .protocol
            logger.debug("connection failed", metadata: ["connection": "\(id)", "error": "\(error)"])
            enqueue(.failed(WSServiceError(code, error.description, closeCode: error.closeCode, underlying: error)))
        case .closed(let info):
            phase.store(3, ordering: .releasing)
            closed = Closed(info)
            resumeWriters()
            let waiters = closeWaiters
            closeWaiters.removeAll()
            for w in waiters { w.resume(returning: info) }
            enqueue(.closed(info))
        default:
            break
        }
    }

    /// The end of a burst of events: a parked runner is resumed (it runs as a job before the
    /// loop waits again); without one, a runner starts here, inline (a callback that does not
    /// suspend finishes before this returns).
    func drained(_ connection: WSEpollConnection) {
        guard head < tail else { return }
        burstsSinceIdle &+= 1
        if let runner = parked {
            parked = nil
            runner.resume(returning: true)
            return
        }
        guard !running else { return }
        running = true
        runnerStarts &+= 1
        Task.immediate(executorPreference: connection.executor) { [self] in
            await self.run()
            self.running = false
        }
    }

    /// Parks the runner until the next burst, where it waits for one (`await
    /// withUnsafeContinuation { park($0) }`, written inline by the runner's loops: every
    /// `async` call returning costs the runner an executor check, and that check takes a lock
    /// for a task with an executor preference). It is resumed with true when items came, with
    /// false when it should end (the connection went idle, or its last item was delivered, or
    /// it is not busy enough yet to keep a task: see `burstsSinceIdle`).
    final func park(_ runner: UnsafeContinuation<Bool, Never>) {
        guard ended || burstsSinceIdle < 3 else { return parked = runner }
        if head == tail {
            // Not busy: the queue's memory goes with the task, now, while the next
            // connection's allocations can reuse it (at the idle sweep it would leave holes
            // between live records, which the allocator cannot give back).
            queue = []
            arena = []
            arenaUsed = 0
        }
        runner.resume(returning: false)
    }

    /// The next item after the runner was told to end: items that came after that word still
    /// go first; nil when there are none, and the runner ends.
    final func nextAfterEnd() -> Item? {
        head < tail ? next() : nil
    }

    /// The queue's bytes and the arena's, for the server's memory budget.
    var heldBytes: Int { queuedBytes + arena.capacity }

    func writable(_ connection: WSEpollConnection) {
        resumeWriters()
    }

    /// Our Close is queued: no more messages may be sent (``WSCaller/isOpen`` turns false).
    final func markClosing() {
        if phase.load(ordering: .relaxed) < 2 { phase.store(2, ordering: .releasing) }
    }

    func idle(_ connection: WSEpollConnection) {
        burstsSinceIdle = 0
        if let runner = parked {
            parked = nil
            runner.resume(returning: false)
        }
        if head == tail {
            queue = []
            arena = []
            arenaUsed = 0
        }
    }

    private func resumeWriters() {
        let waiters = writeWaiters
        writeWaiters.removeAll()
        for w in waiters { w.resume() }
    }

    // MARK: The queue

    private func enqueue(_ item: Item) {
        if tail < queue.count { queue[tail] = item } else { queue.append(item) }
        tail += 1
        queuedBytes += item.queuedSize
        if !pausedReading && queuedBytes > route.configuration.inboundHighWaterMark {
            pausedReading = true
            connection.applicationPaused = true
        }
    }

    /// The next queued item, if any.
    final func next() -> Item? {
        guard head < tail, let item = queue[head].take() else { return nil }
        head += 1
        if head == tail {
            // Drained: the slots are kept for the next burst (up to 256 of them; a longer
            // queue's memory is given back now), and released when the connection goes idle.
            head = 0
            tail = 0
            if queue.count > 256 { queue = [] }
        }
        queuedBytes -= item.queuedSize
        if pausedReading && queuedBytes <= route.configuration.inboundLowWaterMark {
            pausedReading = false
            connection.resumeReading()
        }
        return item
    }

    /// Drops what is still queued: the connection has ended, and its runner ends too.
    func discardQueue() {
        queue = []
        arena = []
        arenaUsed = 0
        head = 0
        tail = 0
        queuedBytes = 0
        ended = true
    }

    // MARK: Commands (on the loop)

    /// Runs `body` on the engine and flushes. On the loop's thread only.
    func onLoop(_ body: (inout WSProtocol) throws(WSUsageError) -> Void) throws(WSUsageError) {
        try connection.withEngine(body)
    }

    /// Whether a message may be sent now without waiting (or the connection is over, and the
    /// send will say so).
    final var canWrite: Bool { closed != nil || connection.isWritable }

    /// Waits until the outbound buffer is below its low-water mark again (or the connection
    /// ends). On the loop's thread only.
    final func waitUntilWritable() async {
        while !canWrite {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                writeWaiters.append(c)
                connection.notifyWhenWritable()
            }
        }
    }

    /// Sends a message at once. On the loop's thread only.
    final func sendNow(_ message: Outgoing) throws(WSServiceError) {
        do {
            switch message {
            case .text(let s): try connection.sendOnLoop(text: s)
            case .binary(let b): try connection.sendOnLoop(b, kind: .binary)
            }
        } catch {
            throw Self.writeError(error)
        }
    }

    /// Sends a message, first waiting while the outbound buffer is above its high-water mark.
    /// On the loop's thread only.
    func send(_ message: Outgoing) async throws(WSServiceError) {
        if !canWrite { await waitUntilWritable() }
        try sendNow(message)
    }

    /// Starts the closing handshake and waits until the connection has closed (or the wait
    /// for the peer's Close ran out). On the loop's thread only.
    func close(code: WSCloseCode, reason: String, timeout: Duration) async throws(WSServiceError) {
        if closed == nil {
            do {
                try onLoop { (engine) throws(WSUsageError) in try engine.close(code: code, reason: reason, timeout: timeout) }
                markClosing()
            } catch .closeAlreadySent {
                // Closing already: wait for the end as well.
            } catch .notOpen {
                // Closing after the peer's Close, or over: wait for the end.
            } catch {
                throw Self.writeError(error)
            }
        }
        let info: WSProtocol.CloseInfo
        if let known = closed?.info {
            info = known
        } else {
            info = await withCheckedContinuation { closeWaiters.append($0) }
        }
        if info.cause == .closeTimeout && info.received == nil {
            throw WSServiceError(.connectionClosure, "the peer's Close did not come within \(timeout)", closeCode: code)
        }
    }

    static func writeError(_ error: WSUsageError) -> WSServiceError {
        switch error {
        case .notOpen, .closeAlreadySent:
            WSServiceError(.connectionClosure, "the connection is closed or closing")
        default:
            WSServiceError(.write, error.description)
        }
    }

    /// Runs `body` on the connection's loop: at once when already there, otherwise hopping
    /// there and back. For ``WSCaller``'s commands from any task.
    func onLoopAsync<R: Sendable>(_ body: @escaping @Sendable (ServiceConnectionBase) async throws(WSServiceError) -> R) async throws(WSServiceError) -> R {
        if connection.isOnLoop { return try await body(self) }
        let result: Result<R, WSServiceError> = await withCheckedContinuation { continuation in
            connection.execute { [self] in
                Task.immediate(executorPreference: self.connection.executor) {
                    do throws(WSServiceError) {
                        continuation.resume(returning: .success(try await body(self)))
                    } catch {
                        continuation.resume(returning: .failure(error))
                    }
                }
            }
        }
        return try result.get()
    }
}

/// This process's id, to make connection ids unique across processes sharing logs.
private let processTag = UInt64(getpid())

/// A connection of a service of type `S`: the runner that calls `S`'s methods.
final class ServiceConnection<S: WSService>: ServiceConnectionBase, @unchecked Sendable {
    let service: S
    let shape: ServiceShape<S>

    init(connection: WSEpollConnection, service: S, shape: ServiceShape<S>, route: Route, request: WSUpgradeRequest, subprotocol: String?) {
        self.service = service
        self.shape = shape
        super.init(connection: connection, route: route, request: request, subprotocol: subprotocol)
    }

    /// Runs of text and binary messages for `onTextMessage`/`onBinaryMessage` take the short
    /// path (their capability object calls the service's method and sends, message after
    /// message, and parks for the next burst itself); everything else goes through `deliver`.
    override func run() async {
        let onText = shape.dispatch == nil ? shape.onText : nil
        let onBinary = shape.dispatch == nil ? shape.onBinary : nil
        var pending = next()
        while true {
            guard let item = pending else {
                pending = await withUnsafeContinuation { park($0) } ? next() : nextAfterEnd()
                if pending == nil { return }
                continue
            }
            switch item {
            case .smallText(let range) where onText != nil && !failing:
                pending = await onText.unsafelyUnwrapped.serve(self, arenaText(range))
            case .text(let text) where onText != nil && !failing:
                pending = await onText.unsafelyUnwrapped.serve(self, text)
            case .smallBinary(let range) where onBinary != nil && !failing:
                pending = await onBinary.unsafelyUnwrapped.serve(self, arenaBytes(range))
            case .binary(let data) where onBinary != nil && !failing:
                pending = await onBinary.unsafelyUnwrapped.serve(self, data)
            default:
                await deliver(item)
                pending = next()
                continue
            }
            // `serve` returns nil only when told to end.
            if pending == nil {
                pending = nextAfterEnd()
                if pending == nil { return }
            }
        }
    }

    private func deliver(_ item: Item) async {
        let caller = self.caller
        switch item {
        case .open:
            do { try await service.onOpen(caller) } catch { await fail(error, in: "onOpen") }
        case .text(let text):
            guard !failing else { return }
            await deliverMessage(.text(text), caller: caller)
        case .binary(let data):
            guard !failing else { return }
            await deliverMessage(.binary(data), caller: caller)
        case .smallText(let range):
            guard !failing else { return }
            await deliverMessage(.text(arenaText(range)), caller: caller)
        case .smallBinary(let range):
            guard !failing else { return }
            await deliverMessage(.binary(arenaBytes(range)), caller: caller)
        case .ping(let data):
            guard let onPing = shape.onPing else { return }
            do {
                if let pong = try await onPing.call(service, caller, data) {
                    try onLoop { (engine) throws(WSUsageError) in try engine.pong(pong) }
                }
            } catch {
                await fail(error, in: "onPing")
            }
        case .pong(let data):
            guard let onPong = shape.onPong else { return }
            do { try await onPong.call(service, caller, data) } catch { await fail(error, in: "onPong") }
        case .idle:
            do { try await service.onIdleTimeout(caller) } catch { await fail(error, in: "onIdleTimeout") }
        case .failed(let error):
            await service.onError(caller, error: error)
        case .closed(let info):
            await service.onClose(caller, statusCode: Int(info.code.rawValue), reason: info.reason)
            discardQueue()
        }
    }

    /// A message for custom dispatch, data-bound `onMessage`, or (no handler matched) the
    /// text/binary callbacks.
    private func deliverMessage(_ payload: Payload, caller: WSCaller) async {
        let configuration = route.configuration
        // Custom dispatch reads the message as a JSON object once: its key picks the handler,
        // its stream id goes into every reply to it.
        var object: [String: WSJSON]?
        if shape.dispatch != nil, configuration.dispatcherKey != nil {
            object = try? JSONDecoder().decode([String: WSJSON].self, from: payload.utf8)
        }
        let streamID = configuration.dispatcherStreamId.flatMap { k in object?[k].map { (key: k, value: $0) } }
        do {
            var reply: Outgoing?
            if let object, let key = configuration.dispatcherKey, let entry = shape.dispatch?.entry(for: object, key: key) {
                do {
                    reply = try await entry.handle(service, caller, payload, configuration.validation)
                } catch let failure as BindingFailure {
                    guard let onError = entry.onError else { throw failure }
                    reply = try await onError(service, caller, failure.error)
                }
            } else {
                switch payload {
                case .text(let text) where shape.onText != nil:
                    reply = try await shape.onText!.call(service, caller, text)
                case .binary(let data) where shape.onBinary != nil:
                    reply = try await shape.onBinary!.call(service, caller, data)
                default:
                    guard let onMessage = shape.onMessage else { return }
                    reply = try await onMessage.call(service, caller, payload, validate: configuration.validation)
                }
            }
            if let reply {
                try await send(streamID.map { addingStreamID(reply, key: $0.key, value: $0.value) } ?? reply)
            }
        } catch {
            await fail(error, in: "onMessage")
        }
    }

    /// What a callback threw closes the connection (1003 for a binding failure, 1011
    /// otherwise); `onError` gets it once the Close is queued.
    func fail(_ error: any Error, in name: String) async {
        let failure: WSServiceError
        switch error {
        case let b as BindingFailure:
            failure = b.error
        case let s as WSServiceError where s.code == .connectionClosure:
            // Writing to a connection that closed meanwhile: its onClose tells the story.
            logger.debug("write after close", metadata: ["connection": "\(id)", "callback": "\(name)"])
            return
        default:
            failure = WSServiceError(.callback, "\(name) threw: \(error)", closeCode: .internalError, underlying: SendableDescription(error))
        }
        logger.debug("closing after an error", metadata: ["connection": "\(id)", "error": "\(failure)"])
        failing = true
        if let code = failure.closeCode {
            try? onLoop { (engine) throws(WSUsageError) in try engine.close(code: code, reason: failure.code.rawValue) }
            markClosing()
        }
        await service.onError(caller, error: failure)
    }
}
