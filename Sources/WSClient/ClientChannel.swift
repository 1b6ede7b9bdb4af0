// One connection of the async client, on its epoll loop: received messages wait in a queue
// until a read takes them (or go straight to a read that waits), writes wait while the
// outbound buffer is full, and the opening handshake's outcome is handed to the connecting
// task.
//
// All mutable state below `opening` is touched only on the loop's thread: by the loop's calls
// and by the commands, which run there (inline when the calling task already runs on the loop,
// as the benchmarked path does, or sent there with `execute`). That is why the class may be
// `@unchecked Sendable`.

import Synchronization
import WSBlocking
import WSCore
import WSEpoll
import WSTransport

final class ClientChannel: WSEpollServiceHooks, @unchecked Sendable {
    /// How the opening handshake ended.
    enum Opening: Sendable {
        case opened(WSHandshakeResult)
        case rejected(WSHandshakeRejection)
        case failed(WSClientError)
    }

    private struct Reader {
        var continuation: UnsafeContinuation<Result<WSMessage, WSClientError>, Never>
        var deadline: WSInstant?
    }

    private struct Writer {
        var message: WSMessage
        var continuation: UnsafeContinuation<Result<Void, WSClientError>, Never>
        var deadline: WSInstant?
    }

    let configuration: WSClientConfiguration
    /// The connecting task's continuation, or the outcome when it came first (the loop may
    /// finish the handshake before the task asks).
    private let opening = Mutex<(waiter: CheckedContinuation<Opening, Never>?, outcome: Opening?)>((nil, nil))
    /// 0 connecting, 1 open, 2 closing, 3 closed (readable from any thread).
    let phase = Atomic<UInt8>(0)

    // Loop-thread state.
    @exclusivity(unchecked) private var queue: [WSMessage] = []
    @exclusivity(unchecked) private var head = 0
    @exclusivity(unchecked) private var queuedBytes = 0
    @exclusivity(unchecked) private var pausedReading = false
    @exclusivity(unchecked) private var readers: [Reader] = []
    @exclusivity(unchecked) private var writers: [Writer] = []
    @exclusivity(unchecked) private var closers: [UnsafeContinuation<WSProtocol.CloseInfo, Never>] = []
    /// The engine's failure, reported before `.closed`.
    @exclusivity(unchecked) private var failure: WSProtocolError?
    @exclusivity(unchecked) private(set) var closeInfo: WSProtocol.CloseInfo?

    /// Above this many queued bytes the loop stops reading the socket (the server slows down
    /// instead of memory growing); at a quarter of it, reading resumes.
    private let highWaterMark: Int

    init(configuration: WSClientConfiguration) {
        self.configuration = configuration
        highWaterMark = max(1 << 20, configuration.maxMessageSize)
    }

    // MARK: The opening handshake

    /// Waits for the opening handshake's outcome.
    func opened() async -> Opening {
        await withCheckedContinuation { c in
            let known: Opening? = opening.withLock { state in
                if let outcome = state.outcome { return outcome }
                state.waiter = c
                return nil
            }
            if let known { c.resume(returning: known) }
        }
    }

    private func settleOpening(_ outcome: Opening) {
        let waiter: CheckedContinuation<Opening, Never>? = opening.withLock { state in
            guard state.outcome == nil else { return nil }
            state.outcome = outcome
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: outcome)
    }

    // MARK: Events from the loop

    func opened(_ connection: WSEpollConnection, _ result: WSHandshakeResult) {
        phase.store(1, ordering: .releasing)
        settleOpening(.opened(result))
    }

    func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
        let message: WSMessage = kind == .text ? .text(makeString(data)) : .binary(makeArray(data))
        if head == queue.count, !readers.isEmpty {
            let reader = readers.removeFirst()
            reader.continuation.resume(returning: .success(message))
            return
        }
        queue.append(message)
        queuedBytes += data.count + 32
        if !pausedReading && queuedBytes > highWaterMark {
            pausedReading = true
            connection.applicationPaused = true
        }
    }

    func event(_ connection: WSEpollConnection, _ event: WSProtocol.Event) {
        switch event {
        case .ping(let payload):
            if let onPing = configuration.onPing, let reply = onPing(Array(payload)) {
                try? connection.withEngine { (engine) throws(WSUsageError) in try engine.pong(reply) }
            }
        case .pong(let payload):
            configuration.onPong?(Array(payload))
        case .rejected(let rejection):
            settleOpening(.rejected(rejection))
        case .handshakeFailed(let error):
            settleOpening(.failed(.from(error)))
        case .closeReceived:
            phase.store(2, ordering: .releasing)
        case .failed(let error):
            phase.store(2, ordering: .releasing)
            failure = error
        case .closed(let info):
            // Written before the phase: other threads read it after seeing phase 3.
            closeInfo = info
            phase.store(3, ordering: .releasing)
            settleOpening(.failed(openingFailure(info, connection.transportError)))
            // Readers wait only while the queue is empty.
            let end = ending(info)
            for r in readers { r.continuation.resume(returning: .failure(end)) }
            readers.removeAll()
            for w in writers { w.continuation.resume(returning: .failure(end)) }
            writers.removeAll()
            for c in closers { c.resume(returning: info) }
            closers.removeAll()
        default:
            break
        }
    }

    func drained(_ connection: WSEpollConnection) {}

    func writable(_ connection: WSEpollConnection) {
        // In order, while the buffer takes them.
        while !writers.isEmpty && canWrite(connection) {
            let w = writers.removeFirst()
            w.continuation.resume(returning: send(connection, w.message))
        }
        if !writers.isEmpty { connection.notifyWhenWritable() }
    }

    func idle(_ connection: WSEpollConnection) {
        if head == queue.count {
            queue = []
            head = 0
        }
    }

    var heldBytes: Int { queuedBytes }

    func deadlinePassed(_ connection: WSEpollConnection) {
        let now = WSClock.now()
        for r in takeExpired(&readers, now: now, deadline: \.deadline) {
            r.continuation.resume(returning: .failure(WSClientError(.readTimedOut, "no message within \(configuration.readTimeout!)")))
        }
        for w in takeExpired(&writers, now: now, deadline: \.deadline) {
            w.continuation.resume(returning: .failure(WSClientError(.writeTimedOut, "the outbound buffer stayed full for \(configuration.writeTimeout!)")))
        }
        armDeadline(connection)
    }

    /// Removes from `waiters`, in order, those whose deadline has passed, and returns them.
    private func takeExpired<W>(_ waiters: inout [W], now: WSInstant, deadline: (W) -> WSInstant?) -> [W] {
        var expired: [W] = []
        waiters.removeAll { w in
            guard let d = deadline(w), d <= now else { return false }
            expired.append(w)
            return true
        }
        return expired
    }

    private func armDeadline(_ connection: WSEpollConnection) {
        let next = (readers.compactMap(\.deadline) + writers.compactMap(\.deadline)).min()
        connection.setApplicationDeadline(next)
    }

    /// The error a read or write gets once the connection has ended.
    private func ending(_ info: WSProtocol.CloseInfo) -> WSClientError {
        if let failure { return .from(failure, closeInfo: info) }
        return .closed(info)
    }

    /// The error the connecting task gets if the connection ended before it opened.
    private func openingFailure(_ info: WSProtocol.CloseInfo, _ transport: WSTransportError?) -> WSClientError {
        if case .handshakeFailed(let e)? = info.cause { return .from(e) }
        if let transport { return .from(transport) }
        return WSClientError(.connection, "the connection ended during the opening handshake: \(info)", closeInfo: info)
    }

    // MARK: Commands (on the loop)

    /// The next message: at once if one is queued, otherwise `waiter` is kept until one comes,
    /// the connection ends, or the read timeout passes. On the loop's thread only.
    func read(_ connection: WSEpollConnection, _ waiter: UnsafeContinuation<Result<WSMessage, WSClientError>, Never>) {
        if let message = takeQueued(connection) { return waiter.resume(returning: .success(message)) }
        if let info = closeInfo { return waiter.resume(returning: .failure(ending(info))) }
        let deadline = configuration.readTimeout.map { WSClock.now() + $0 }
        readers.append(Reader(continuation: waiter, deadline: deadline))
        if deadline != nil { armDeadline(connection) }
    }

    /// A queued message, if any (on the loop's thread only).
    func takeQueued(_ connection: WSEpollConnection) -> WSMessage? {
        guard head < queue.count else { return nil }
        let message = queue[head]
        head += 1
        switch message {
        case .text(let s): queuedBytes -= s.utf8.count + 32
        case .binary(let b): queuedBytes -= b.count + 32
        }
        if head == queue.count {
            head = 0
            queue.removeAll(keepingCapacity: queue.count <= 256)
        }
        if pausedReading && queuedBytes <= highWaterMark / 4 {
            pausedReading = false
            connection.resumeReading()
        }
        return message
    }

    /// Whether a message can be sent without waiting (or the connection is over, and sending
    /// will say so).
    func canWrite(_ connection: WSEpollConnection) -> Bool { closeInfo != nil || connection.isWritable }

    /// Sends at once. On the loop's thread only.
    func send(_ connection: WSEpollConnection, _ message: WSMessage) -> Result<Void, WSClientError> {
        do throws(WSUsageError) {
            switch message {
            case .text(let s): try connection.sendOnLoop(text: s)
            case .binary(let b): try connection.withEngine { (engine) throws(WSUsageError) in try engine.sendBinary(b) }
            }
            return .success(())
        } catch {
            if let info = closeInfo { return .failure(ending(info)) }
            return .failure(.from(error))
        }
    }

    /// Sends once the outbound buffer is below its low-water mark (at once if it is), or fails
    /// at the write timeout. On the loop's thread only.
    func write(_ connection: WSEpollConnection, _ message: WSMessage, _ done: UnsafeContinuation<Result<Void, WSClientError>, Never>) {
        if writers.isEmpty && canWrite(connection) { return done.resume(returning: send(connection, message)) }
        let deadline = configuration.writeTimeout.map { WSClock.now() + $0 }
        writers.append(Writer(message: message, continuation: done, deadline: deadline))
        connection.notifyWhenWritable()
        if deadline != nil { armDeadline(connection) }
    }

    /// Runs a command on the engine (Ping, Pong). On the loop's thread only.
    func control(_ connection: WSEpollConnection, _ body: (inout WSProtocol) throws(WSUsageError) -> Void) -> Result<Void, WSClientError> {
        do throws(WSUsageError) {
            try connection.withEngine(body)
            return .success(())
        } catch {
            if let info = closeInfo { return .failure(ending(info)) }
            return .failure(.from(error))
        }
    }

    /// Starts the closing handshake (unless it has started) and waits for the end. On the
    /// loop's thread only.
    func close(_ connection: WSEpollConnection, code: WSCloseCode, reason: String, timeout: Duration?,
               _ done: UnsafeContinuation<WSProtocol.CloseInfo, Never>) {
        if let info = closeInfo { return done.resume(returning: info) }
        try? connection.withEngine { (engine) throws(WSUsageError) in try engine.close(code: code, reason: reason, timeout: timeout) }
        if phase.load(ordering: .relaxed) < 2 { phase.store(2, ordering: .releasing) }
        closers.append(done)
    }
}
