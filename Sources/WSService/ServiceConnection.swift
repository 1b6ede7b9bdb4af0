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

final class ServiceConnection: WSEpollServiceHooks, @unchecked Sendable {
    enum Item {
        case open
        case message(Payload)
        case ping([UInt8])
        case pong([UInt8])
        case idle
        case failed(WSServiceError)
        case closed(WSProtocol.CloseInfo)
    }

    let connection: WSEpollConnection
    let service: any WSService
    let route: Route
    let request: WSUpgradeRequest
    let subprotocol: String?
    let id: String
    let attributes = Mutex<[String: any Sendable]>([:])
    /// 0 connecting, 1 open, 2 closing, 3 closed (readable from any thread).
    let phase = Atomic<UInt8>(0)

    // Loop-thread state.
    private var queue: [Item] = []
    private var head = 0
    private var queuedBytes = 0
    private var running = false
    /// A failure closed the connection: data still queued is not delivered.
    private var failing = false
    private var writeWaiters: [CheckedContinuation<Void, Never>] = []
    private var closeWaiters: [CheckedContinuation<WSProtocol.CloseInfo, Never>] = []
    private var closeInfo: WSProtocol.CloseInfo?

    init(connection: WSEpollConnection, service: any WSService, route: Route, request: WSUpgradeRequest, subprotocol: String?) {
        self.connection = connection
        self.service = service
        self.route = route
        self.request = request
        self.subprotocol = subprotocol
        self.id = ServiceConnection.nextID()
    }

    private static let ids = Atomic<UInt64>(0)
    /// A process-unique id: `"<pid hex>-<n hex>"` (Ballerina's `connectionId` is a string).
    private static func nextID() -> String {
        "\(String(processTag, radix: 16))-\(String(ids.add(1, ordering: .relaxed).newValue, radix: 16))"
    }

    var caller: WSCaller { WSCaller(self) }
    var logger: Logger { route.logger }

    // MARK: Events from the loop

    func opened(_ connection: WSEpollConnection, _ result: WSHandshakeResult) {
        phase.store(1, ordering: .releasing)
        enqueue(.open, size: 0)
    }

    func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
        guard !failing else { return }
        enqueue(.message(kind == .text ? .text(makeString(data)) : .binary(makeArray(data))), size: data.count)
    }

    func event(_ connection: WSEpollConnection, _ event: WSProtocol.Event) {
        switch event {
        case .ping(let payload):
            if route.shape.onPing != nil { enqueue(.ping(Array(payload)), size: payload.count) }
        case .pong(let payload):
            if route.shape.onPong != nil { enqueue(.pong(Array(payload)), size: payload.count) }
        case .idleTimeout:
            enqueue(.idle, size: 0)
        case .closeReceived:
            phase.store(2, ordering: .releasing)
        case .failed(let error):
            phase.store(2, ordering: .releasing)
            failing = true
            let code: WSServiceError.Code = error.closeCode == .messageTooBig ? .payloadTooLarge : .protocol
            logger.debug("connection failed", metadata: ["connection": "\(id)", "error": "\(error)"])
            enqueue(.failed(WSServiceError(code, error.description, closeCode: error.closeCode, underlying: error)), size: 0)
        case .closed(let info):
            phase.store(3, ordering: .releasing)
            closeInfo = info
            resumeWriters()
            let waiters = closeWaiters
            closeWaiters.removeAll()
            for w in waiters { w.resume(returning: info) }
            enqueue(.closed(info), size: 0)
        default:
            break
        }
    }

    func drained(_ connection: WSEpollConnection) {
        guard !running, head < queue.count else { return }
        running = true
        Task.immediate(executorPreference: connection.executor) { [self] in await self.run() }
    }

    func writable(_ connection: WSEpollConnection) {
        resumeWriters()
    }

    private func resumeWriters() {
        let waiters = writeWaiters
        writeWaiters.removeAll()
        for w in waiters { w.resume() }
    }

    // MARK: The queue

    private func enqueue(_ item: Item, size: Int) {
        queue.append(item)
        // Each item also costs its slot and bookkeeping.
        queuedBytes += size + 64
        if queuedBytes > route.configuration.inboundHighWaterMark { connection.applicationPaused = true }
    }

    private func next() -> Item? {
        guard head < queue.count else { return nil }
        let item = queue[head]
        queue[head] = .idle
        head += 1
        if head == queue.count {
            // A long queue's memory is given back once it has drained.
            queue.removeAll(keepingCapacity: queue.capacity <= 16)
            head = 0
        }
        switch item {
        case .message(.text(let s)): queuedBytes -= s.utf8.count + 64
        case .message(.binary(let b)), .ping(let b), .pong(let b): queuedBytes -= b.count + 64
        default: queuedBytes -= 64
        }
        if connection.applicationPaused && queuedBytes <= route.configuration.inboundLowWaterMark {
            connection.resumeReading()
        }
        return item
    }

    /// The runner: delivers queued items until none is left.
    private func run() async {
        while let item = next() {
            await deliver(item)
        }
        running = false
    }

    private func deliver(_ item: Item) async {
        let caller = self.caller
        let shape = route.shape
        switch item {
        case .open:
            await call("onOpen") { try await self.service.onOpen(caller) }
        case .message(let payload):
            guard !failing else { return }
            await deliverMessage(payload, caller: caller, shape: shape)
        case .ping(let data):
            guard let onPing = shape.onPing else { return }
            await call("onPing") {
                guard let pong = try await onPing(self.service, caller, data) else { return }
                try self.onLoop { (engine) throws(WSUsageError) in try engine.pong(pong) }
            }
        case .pong(let data):
            guard let onPong = shape.onPong else { return }
            await call("onPong") { try await onPong(self.service, caller, data) }
        case .idle:
            await call("onIdleTimeout") { try await self.service.onIdleTimeout(caller) }
        case .failed(let error):
            await service.onError(caller, error: error)
        case .closed(let info):
            await service.onClose(caller, statusCode: Int(info.code.rawValue), reason: info.reason)
            queue.removeAll()
        }
    }

    private func deliverMessage(_ payload: Payload, caller: WSCaller, shape: ServiceShape) async {
        let validate = route.configuration.validation
        // Custom dispatch reads the message as a JSON object once: its key picks the handler,
        // its stream id goes into every reply to it.
        var object: [String: WSJSON]?
        if shape.dispatch != nil, route.configuration.dispatcherKey != nil {
            object = try? JSONDecoder().decode([String: WSJSON].self, from: payload.utf8)
        }
        let streamID = route.configuration.dispatcherStreamId.flatMap { k in object?[k].map { (key: k, value: $0) } }
        func replying(_ reply: Outgoing) -> Outgoing {
            streamID.map { addingStreamID(reply, key: $0.key, value: $0.value) } ?? reply
        }
        if let object, let table = shape.dispatch, let key = route.configuration.dispatcherKey,
           let entry = table.entry(for: object, key: key) {
            await call("dispatch") {
                var reply: Outgoing?
                do {
                    reply = try await entry.handle(self.service, caller, payload, validate)
                } catch let failure as BindingFailure {
                    guard let onError = entry.onError else { throw failure }
                    reply = try await onError(self.service, caller, failure.error)
                }
                if let reply { try await self.send(replying(reply)) }
            }
            return
        }
        await call("onMessage") {
            let reply: Outgoing?
            switch payload {
            case .text(let text) where shape.onText != nil:
                reply = try await shape.onText!(self.service, caller, text)
            case .binary(let data) where shape.onBinary != nil:
                reply = try await shape.onBinary!(self.service, caller, data)
            default:
                guard let onMessage = shape.onMessage else { return }
                reply = try await onMessage(self.service, caller, payload, validate)
            }
            if let reply { try await self.send(replying(reply)) }
        }
    }

    /// Runs a callback; what it throws closes the connection (1003 for a binding failure,
    /// 1011 otherwise) and goes to `onError` once the Close is queued.
    private func call(_ name: String, _ body: () async throws -> Void) async {
        do {
            try await body()
        } catch {
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
            }
            await service.onError(self.caller, error: failure)
        }
    }

    // MARK: Commands (on the loop)

    /// Runs `body` on the engine and flushes. On the loop's thread only.
    func onLoop(_ body: (inout WSProtocol) throws(WSUsageError) -> Void) throws(WSUsageError) {
        try body(&connection.protocolEngine)
        connection.flushSoon()
    }

    /// Sends a message, first waiting while the outbound buffer is above its high-water mark.
    /// On the loop's thread only.
    func send(_ message: Outgoing) async throws(WSServiceError) {
        while closeInfo == nil && !connection.protocolEngine.isWritable {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                writeWaiters.append(c)
                connection.notifyWhenWritable()
            }
        }
        do {
            switch message {
            case .text(let s): try onLoop { (engine) throws(WSUsageError) in try engine.sendText(s) }
            case .binary(let b): try onLoop { (engine) throws(WSUsageError) in try engine.sendBinary(b) }
            }
        } catch {
            throw Self.writeError(error)
        }
    }

    /// Starts the closing handshake and waits until the connection has closed (or the wait
    /// for the peer's Close ran out). On the loop's thread only.
    func close(code: WSCloseCode, reason: String, timeout: Duration) async throws(WSServiceError) {
        if closeInfo == nil {
            do {
                try onLoop { (engine) throws(WSUsageError) in try engine.close(code: code, reason: reason, timeout: timeout) }
            } catch .closeAlreadySent {
                // Closing already: wait for the end as well.
            } catch .notOpen {
                // Closing after the peer's Close, or over: wait for the end.
            } catch {
                throw Self.writeError(error)
            }
        }
        let info: WSProtocol.CloseInfo
        if let known = closeInfo {
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
    func onLoopAsync<R: Sendable>(_ body: @escaping @Sendable (ServiceConnection) async throws(WSServiceError) -> R) async throws(WSServiceError) -> R {
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
