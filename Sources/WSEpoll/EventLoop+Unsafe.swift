// One epoll event loop: a thread that owns a listening socket (SO_REUSEPORT, so the kernel
// spreads new connections across loops) and every connection accepted on it.
//
// Per readiness event the loop runs four verbs: read (into one buffer shared by the loop's
// connections), feed the engine, drain its events to the handler, write what the engine
// queued. Whole messages the engine takes in place (`nextDirectMessage`) go to the handler
// straight from the read buffer; the rest of a read is copied into the engine. It decides
// nothing about the protocol: every rule, timer and close code is the engine's. What is the
// loop's:
// - Edge-triggered registration (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) made once per
//   connection, never modified: reads run until a short read or EAGAIN; a write the kernel does
//   not finish leaves the rest in the engine's outbound buffer until EPOLLOUT.
// - Backpressure: while the engine reports `isWritable == false` (outbound above its high-water
//   mark, until below the low-water mark) the loop stops reading that connection, so a peer that
//   does not read cannot make us buffer without bound. Control frames are queued by the engine
//   like everything else and never dropped.
// - One timer per connection: the engine's `nextDeadline` (or the linger deadline), in a heap
//   with lazy deletion.
// - Closing TCP: once the engine is closed and its bytes are written, our side is shut down
//   and input is read and discarded until the peer's FIN (or the linger timeout), so an HTTP
//   answer or Close frame is never destroyed by a reset.
// - Commands from other threads arrive through a locked inbox and an eventfd wake-up; the
//   loop's own I/O path takes no lock.
// - The loop is also a Swift task executor: jobs enqueued on its own thread go to a local run
//   queue, others through a locked queue and the wake-up; they run between readiness events,
//   before the loop waits again. The service layer gives each connection's callbacks the
//   loop as their executor preference, so nonisolated async code runs here. (Not a serial
//   executor: jobs run as task-executor jobs, in the generic context that nonisolated
//   functions expect, so calling one is no hop.)

internal import Glibc
internal import CWSSystem
import Synchronization
import WSCore
import WSTransport

final class EventLoop: TaskExecutor, @unchecked Sendable {
    private static let listenerToken: UInt64 = 0
    private static let wakeToken: UInt64 = 1

    let index: Int
    let context: LoopContext
    private let epfd: Int32
    private let wakefd: Int32
    private var listener: WSSocket?
    private let threadID = Atomic<UInt>(0)
    private let inbox = Mutex(Inbox())
    private let wakePending = Atomic<Bool>(false)

    // The loop's own state, touched only on its thread. `@exclusivity(unchecked)`: Swift would
    // otherwise check every access to a class's stored property at run time (a thread-local
    // lookup and an insertion per access, about 80 instructions), several times per message.
    // The code below makes no overlapping accesses to these (no `inout` of one is held across a
    // call that touches it again).
    @exclusivity(unchecked) private var slots: [WSEpollConnection?] = []
    @exclusivity(unchecked) private var generations: [UInt32] = []
    @exclusivity(unchecked) private var freeSlots: [Int] = []
    @exclusivity(unchecked) private(set) var liveCount = 0
    /// Connections released, or gone idle after activity, since the allocator was last trimmed
    /// (see `sweep`).
    @exclusivity(unchecked) private var releasedSinceTrim = 0
    /// Departures, or connections gone idle, after which a sweep trims the allocator.
    static let trimAfterReleases = 1024
    @exclusivity(unchecked) private var timers = TimerHeap()
    @exclusivity(unchecked) private var dirty: [WSEpollConnection] = []
    /// Tokens of accepted connections in the order they came, `unfinished[unfinishedHead...]`:
    /// where the oldest one still in its opening handshake is found when the connection table
    /// is full. Entries of connections that opened or ended are skipped then (and dropped by a
    /// compaction when the list outgrows the live connections).
    @exclusivity(unchecked) private var unfinished: [UInt64] = []
    @exclusivity(unchecked) private var unfinishedHead = 0
    /// Jobs enqueued on the loop's own thread.
    @exclusivity(unchecked) private var runQueue: [UnownedJob] = []
    /// Connections whose engine paused decoding or encoding a compressed message after a
    /// slice: served again in the next turn, after the other connections' events.
    @exclusivity(unchecked) private var pendingWork: [WSEpollConnection] = []
    private let readBuffer: UnsafeMutableRawBufferPointer
    /// Messages in the read buffer are lent to a handler (`drain`).
    @exclusivity(unchecked) private var readBufferLent = false
    /// The engine buffers lent to the connection being served, so that idle connections hold
    /// none (`WSProtocol.SpareBuffers`): borrowed for each read's bytes, given back once its
    /// events are handled and the replies written.
    @exclusivity(unchecked) private var spare = WSProtocol.SpareBuffers()
    private let events: UnsafeMutablePointer<epoll_event>
    private let maxEvents = 512
    @exclusivity(unchecked) private(set) var now: WSInstant
    @exclusivity(unchecked) private var acceptRetryAt: WSInstant?
    @exclusivity(unchecked) private var nextSweep: WSInstant
    private enum Stopping { case no, graceful(WSInstant), immediate }
    @exclusivity(unchecked) private var stopping = Stopping.no

    init(index: Int, context: LoopContext, listener: WSSocket?) throws(WSTransportError) {
        self.index = index
        self.context = context
        self.listener = listener
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw WSTransportError("epoll_create1", errno: errno) }
        wakefd = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard wakefd >= 0 else { throw WSTransportError("eventfd", errno: errno) }
        readBuffer = .allocate(byteCount: context.readBufferSize, alignment: 64)
        events = .allocate(capacity: maxEvents)
        now = WSClock.now()
        nextSweep = now + .seconds(1)
        if let listener { try register(listener.fd, token: Self.listenerToken, events: EPOLLIN.rawValue | EPOLLET.rawValue) }
        try register(wakefd, token: Self.wakeToken, events: EPOLLIN.rawValue | EPOLLET.rawValue)
    }

    /// The read buffer and event array are freed when the loop ends (`finishRun`), or here
    /// for a loop that never ran.
    @exclusivity(unchecked) private var buffersFreed = false

    deinit {
        if !buffersFreed {
            readBuffer.deallocate()
            events.deallocate()
        }
    }

    private func register(_ fd: Int32, token: UInt64, events: UInt32) throws(WSTransportError) {
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = token
        guard epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 else { throw WSTransportError("epoll_ctl add", errno: errno) }
    }

    // MARK: Cross-thread

    var isCurrent: Bool { threadID.load(ordering: .relaxed) == UInt(pthread_self()) }

    /// Work for the loop from other threads (and, once the loop has ended, from any thread).
    private struct Inbox {
        enum Work {
            case body(@Sendable () -> Void)
            case job(UnownedJob)
        }

        var bodies: [@Sendable () -> Void] = []
        var jobs: [UnownedJob] = []
        /// The loop has finished: work is run by the thread that brings it, one item at a
        /// time across threads (a task suspended at shutdown can still finish, a command
        /// from another thread still completes). Work brought while another thread drains is
        /// queued for it, so a job that enqueues more never waits on itself.
        var ended = false
        var late: [Work] = []
        var drainingLate = false

        enum Outcome { case queued, drainLate, queuedLate }

        mutating func accept(_ work: Work) -> Outcome {
            if ended {
                late.append(work)
                if drainingLate { return .queuedLate }
                drainingLate = true
                return .drainLate
            }
            switch work {
            case .body(let b): bodies.append(b)
            case .job(let j): jobs.append(j)
            }
            return .queued
        }
    }

    /// Runs `body` on this loop's thread, soon. Safe from any thread; after the loop has
    /// ended, `body` runs on the calling thread (serialized with other late work).
    func execute(_ body: @escaping @Sendable () -> Void) {
        deliver(inbox.withLock { $0.accept(.body(body)) })
    }

    private func deliver(_ outcome: Inbox.Outcome) {
        switch outcome {
        case .queued:
            if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
                var one: UInt64 = 1
                _ = Glibc.write(wakefd, &one, 8)
            }
        case .drainLate:
            drainLate()
        case .queuedLate:
            break
        }
    }

    private func drainLate() {
        while let work = inbox.withLock({ q -> Inbox.Work? in
            if q.late.isEmpty {
                q.drainingLate = false
                return nil
            }
            return q.late.removeFirst()
        }) {
            switch work {
            case .body(let body): body()
            case .job(let job): job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
    }

    private func runInbox() {
        var counter: UInt64 = 0
        _ = Glibc.read(wakefd, &counter, 8)
        wakePending.store(false, ordering: .releasing)
        let (bodies, jobs) = inbox.withLock { q -> ([@Sendable () -> Void], [UnownedJob]) in
            let taken = (q.bodies, q.jobs)
            q.bodies.removeAll()
            q.jobs.removeAll()
            return taken
        }
        for body in bodies { body() }
        runQueue.append(contentsOf: jobs)
    }

    // MARK: Executor

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if isCurrent {
            runQueue.append(job)
            return
        }
        deliver(inbox.withLock { $0.accept(.job(job)) })
    }

    func asUnownedTaskExecutor() -> UnownedTaskExecutor { UnownedTaskExecutor(ordinary: self) }

    /// Runs the jobs queued so far, and those they queue, until none is left.
    private func runJobs() {
        while !runQueue.isEmpty {
            let jobs = runQueue
            runQueue.removeAll(keepingCapacity: true)
            for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }

    /// Queues `c` for a flush at the end of this loop iteration (a command changed its engine).
    /// Only through `WSEpollConnection.scheduleFlush()`, which skips a connection already queued
    /// or being drained (its drain's caller flushes and settles it right after).
    @inline(__always)
    func markDirty(_ c: WSEpollConnection) {
        c.isDirty = true
        dirty.append(c)
    }

    // MARK: Running

    func run() {
        // A loop that has run is never freed: tasks may name it as their executor preference,
        // which the Swift runtime holds unowned, and a task can outlive its server (a sleep
        // that ends after the stop enqueues here). What is left after the loop ends is this
        // small object; its buffers are freed then, and late work runs on the thread that
        // brings it (`Inbox.ended`).
        _ = Unmanaged.passRetained(self)
        threadID.store(UInt(pthread_self()), ordering: .relaxed)
        while true {
            switch stopping {
            case .no: break
            case .immediate:
                closeAll()
                return finishRun()
            case .graceful(let deadline):
                if liveCount == 0 || now >= deadline {
                    closeAll()
                    return finishRun()
                }
            }
            let n = epoll_wait(epfd, events, Int32(maxEvents), waitMilliseconds())
            now = WSClock.now()
            if n < 0 && errno != EINTR { break }
            for i in 0..<max(0, Int(n)) {
                let ev = events[i]
                let token = ev.data.u64
                if token == Self.listenerToken {
                    acceptAll()
                } else if token == Self.wakeToken {
                    runInbox()
                } else if let c = connection(token) {
                    if ev.events & EPOLLOUT.rawValue != 0 { c.kernelFull = false }
                    if ev.events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { c.readable = true }
                    if ev.events & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { c.peerHungUp = true }
                    service(c)
                }
            }
            runTimers()
            runPendingWork()
            runJobs()
            flushDirty()
            if now >= nextSweep { sweep() }
        }
        finishRun()
    }

    private func finishRun() {
        listener?.close()
        listener = nil
        runJobs()
        // From now on no thread is this loop's: what was queued and what comes later runs on
        // the thread that brings it (`Inbox.ended`).
        threadID.store(0, ordering: .relaxed)
        inbox.withLock { q in
            q.ended = true
            q.late = q.bodies.map { .body($0) } + runQueue.map { .job($0) } + q.jobs.map { .job($0) }
            q.bodies.removeAll()
            q.jobs.removeAll()
            q.drainingLate = true
        }
        runQueue.removeAll()
        drainLate()
        Glibc.close(epfd)
        Glibc.close(wakefd)
        readBuffer.deallocate()
        events.deallocate()
        buffersFreed = true
        slots = []
        generations = []
        freeSlots = []
        timers = TimerHeap()
        dirty = []
    }

    private func waitMilliseconds() -> Int32 {
        if !runQueue.isEmpty || !pendingWork.isEmpty { return 0 }
        var next = nextSweep
        if let t = timers.earliest, t < next { next = t }
        if let r = acceptRetryAt, r < next { next = r }
        if case .graceful(let d) = stopping, d < next { next = d }
        let ns = next.nanoseconds - now.nanoseconds
        return ns <= 0 ? 0 : Int32(clamping: (ns + 999_999) / 1_000_000)
    }

    func beginGracefulStop(deadline: WSInstant) {
        stopAccepting()
        stopping = .graceful(deadline)
        for case let c? in slots {
            switch c.engine.lifecycle {
            case .connecting:
                drop(c)
            case .open, .closeReceived:
                try? c.engine.close(code: .goingAway, reason: "server stopping")
                c.scheduleFlush()
            case .closeSent, .closing, .closed:
                break
            }
        }
        flushDirty()
    }

    func beginImmediateStop() {
        stopAccepting()
        stopping = .immediate
    }

    private func stopAccepting() {
        if let l = listener {
            l.close()
            listener = nil
        }
        acceptRetryAt = nil
    }

    // MARK: Accepting

    private func acceptAll() {
        guard let l = listener, let server = context.server else { return }
        acceptRetryAt = nil
        while true {
            let s: WSSocket
            do throws(WSTransportError) {
                guard let accepted = try l.accept() else { return }
                s = accepted
            } catch {
                // Out of descriptors (EMFILE/ENFILE) or memory: the connection stays in the
                // backlog; try again shortly instead of spinning.
                acceptRetryAt = now + .milliseconds(100)
                return
            }
            let address = context.maxPerAddress == nil ? nil : s.peerAddress?.host
            if let address, !context.reserveAddress(address) {
                refuse(s, tls: server.tls != nil)
                continue
            }
            guard context.reserveConnection() || (dropOldestUnfinished() && context.reserveConnection()) else {
                if let address { context.releaseAddress(address) }
                refuse(s, tls: server.tls != nil)
                continue
            }
            adoptAccepted(s, countedAddress: address)
        }
    }

    /// Drops this loop's oldest connection that has not finished its opening handshake, to make
    /// room in a full connection table; false when there is none.
    private func dropOldestUnfinished() -> Bool {
        while unfinishedHead < unfinished.count {
            let token = unfinished[unfinishedHead]
            unfinishedHead += 1
            if let c = connection(token), c.engine.lifecycle == .connecting {
                drop(c)
                return true
            }
        }
        unfinished.removeAll(keepingCapacity: true)
        unfinishedHead = 0
        return false
    }

    /// Remembers a new connection's place in the accept order; keeps the list near the number
    /// of connections still in their handshake.
    private func trackUnfinished(_ c: WSEpollConnection) {
        if unfinished.count - unfinishedHead > 2 * liveCount + 1024 || unfinishedHead > unfinished.count / 2 + 1024 {
            unfinished = unfinished[unfinishedHead...].filter { connection($0)?.engine.lifecycle == .connecting }
            unfinishedHead = 0
        }
        unfinished.append(token(c))
    }

    /// Takes an accepted socket (its count reserved by the caller, and its address when
    /// `countedAddress` is set) as a server connection: TLS session, engine awaiting the
    /// request, a slot.
    func adoptAccepted(_ s: WSSocket, countedAddress: String? = nil) {
        guard let server = context.server else { return }
        let engine: WSProtocol
        let stream: WSStream
        do {
            stream = WSStream(socket: s, tls: try server.tls?.makeSession())
            engine = try WSProtocol(server: server.handshake, configuration: context.connection, now: now)
        } catch {
            context.releaseConnection()
            if let countedAddress { context.releaseAddress(countedAddress) }
            s.close()
            return
        }
        let c = WSEpollConnection(id: context.nextID(), loop: self, stream: stream,
                                  peer: s.peerAddress, engine: engine)
        c.countedAddress = countedAddress
        adopt(c)
        if owns(c) && c.engine.lifecycle == .connecting { trackUnfinished(c) }
    }

    /// Takes a connection into this loop: a slot, the epoll registration (once, for good), its
    /// timer. The connection's count was reserved by the caller.
    func adopt(_ c: WSEpollConnection) {
        let slot = allocateSlot()
        c.slot = slot
        slots[slot] = c
        liveCount += 1
        do throws(WSTransportError) {
            try register(c.socket.fd, token: token(c), events: EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue)
        } catch {
            failed(c, error)
            release(c)
            return
        }
        service(c)
    }

    /// Whether `c` is one of this loop's live connections (adopted and not yet released).
    private func owns(_ c: WSEpollConnection) -> Bool {
        c.slot >= 0 && c.slot < slots.count && slots[c.slot] === c
    }

    private func token(_ c: WSEpollConnection) -> UInt64 {
        UInt64(c.slot + 2) | UInt64(generations[c.slot]) << 32
    }

    /// Over the connection limit: a short 503 answer, best effort, and close (TLS: just close;
    /// a handshake is what the limit saves).
    private func refuse(_ s: WSSocket, tls: Bool) {
        guard !tls else { return s.close() }
        let answer = Array("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".utf8)
        _ = answer.withUnsafeBytes { try? s.write($0) }
        s.shutdownWrite()
        s.close()
    }

    private func allocateSlot() -> Int {
        if let s = freeSlots.popLast() { return s }
        slots.append(nil)
        generations.append(0)
        return slots.count - 1
    }

    private func connection(_ token: UInt64) -> WSEpollConnection? {
        let slot = Int(token & 0xFFFF_FFFF) - 2
        guard slot >= 0, slot < slots.count, generations[slot] == UInt32(token >> 32) else { return nil }
        return slots[slot]
    }

    // MARK: Serving a connection

    /// Flush, read while allowed, then settle the connection's fate and timer.
    private func service(_ c: WSEpollConnection) {
        // A handler's command that serves another connection (an upgrade decided at once, a
        // client adopted) while the read buffer holds a message lent to it and the bytes after
        // it: that connection is served at the end of the turn instead.
        if readBufferLent { return c.scheduleFlush() }
        c.wasActive = true
        // What waited for the socket to take it (every turn ends with the rest flushed).
        if c.engine.bufferedAmount > 0 || c.stream.hasPendingOutput || c.readPaused || c.writabilityWanted { flush(c) }
        // Not while a decode or an encode waits for its next slice: what it has is enough for now.
        while c.readable && !c.readPaused && !c.applicationPaused && !c.transportDead && !c.inputEnded && !c.workPending {
            let result: Int?
            do throws(WSTransportError) {
                result = try c.stream.read(into: readBuffer)
            } catch {
                failed(c, error)
                break
            }
            guard let n = result else {
                c.readable = false
                break
            }
            if n == 0 {
                c.readable = false
                c.inputEnded = true
                c.engine.receiveEOF()
            } else {
                // A short read means the socket is drained, unless the peer's FIN (or an
                // error) came with this readiness: then read on, to its end of stream. (Not
                // with TLS: a read returns one record's plaintext.)
                if n < readBuffer.count && !c.peerHungUp && c.stream.tls == nil { c.readable = false }
                c.engine.tick(now: now)
                c.engine.borrowBuffers(from: &spare)
            }
            drain(c, read: n)
            flush(c)
            c.engine.returnBuffers(to: &spare)
            account(c)
            if !c.engine.isWritable { c.readPaused = true }
        }
        // A TLS handshake that finished in these reads releases what the engine queued.
        if c.stream.tls != nil { flush(c) }
        settle(c)
    }

    /// Feeds the engine the `read` bytes just read into the read buffer, if any, and hands every
    /// event it has to the application. Data goes to the handler as a span, valid during the
    /// call: of the read buffer itself for whole messages the engine takes in place
    /// (``WSProtocol/nextDirectMessage(in:at:)``), otherwise of the engine's own buffer, into
    /// which the rest is copied. The read buffer is not read into again while it is lent (see
    /// `service`).
    /// Every caller flushes and settles `c` afterwards (or releases it).
    private func drain(_ c: WSEpollConnection, read: Int = 0) {
        let outer = c.isBeingDrained
        c.isBeingDrained = true
        defer { c.isBeingDrained = outer }
        if read > 0 {
            let bytes = UnsafeMutableRawBufferPointer(rebasing: readBuffer[..<read])
            var taken = 0
            var paused = false
            readBufferLent = true
            while !paused, taken < read, let (kind, range) = c.engine.nextDirectMessage(in: bytes, at: &taken) {
                let message = UnsafeRawBufferPointer(rebasing: bytes[range]).assumingMemoryBound(to: UInt8.self)
                c.handler?.received(c, kind: kind, data: message.span, isFinal: true)
                // As below: a reply being compressed in slices has the rest wait for next turn.
                paused = c.engine.hasPendingWork
            }
            readBufferLent = false
            if taken < read { c.engine.receive(UnsafeRawBufferPointer(rebasing: bytes[taken...])) }
            if paused || (taken == read && c.engine.hasNoEvents) {
                c.serviceHooks?.drained(c)
                return
            }
        }
        events: while true {
            let step = c.engine.nextSharedData()
            switch step.found {
            case .none:
                break events
            case .data:
                c.handler?.received(c, kind: step.kind, data: step.storage.span.extracting(step.range), isFinal: step.isFinal)
                // A streaming piece of a compressed message, or a reply being compressed in
                // slices: the rest of the events next turn.
                if c.engine.hasPendingWork { break events }
            case .event:
                guard case .event(let event)? = c.engine.nextEventSharingData() else { preconditionFailure("an event is next") }
                switch event {
                case .upgradeRequested(let request):
                    decide(c, request)
                case .opened(let result):
                    c.opened(result, keep: context.keepsHandshake || c.engine.role == .client)
                    c.handler?.opened(c, result)
                default:
                    c.handler?.event(c, event)
                }
            }
        }
        c.serviceHooks?.drained(c)
    }

    /// Charges `c`'s change in held bytes (the engine's buffers, the service layer's queue) to
    /// the server's memory budget; a connection that grew while the total is over the budget
    /// is failed with 1013 and its buffers freed.
    private func account(_ c: WSEpollConnection) {
        // The change first: usually none (the lent buffers are back), and then the budget
        // object is not even loaded (a retain and a release per read).
        let held = c.engine.bufferCapacity + (c.serviceHooks?.heldBytes ?? 0)
        let delta = held - c.charged
        guard delta != 0, let budget = context.memoryBudget else { return }
        c.charged = held
        guard !budget.charge(delta) else { return }
        let detail = "the server's memory budget of \(budget.limit) bytes is used up (\(budget.inUse) held)"
        guard (try? c.engine.fail(.memoryBudgetExceeded, detail: detail)) != nil else { return }
        drain(c)
        c.engine.releaseIdleMemory()
        account(c)
    }

    /// The next slice of each paused decode or encode (one per connection per turn: a message
    /// that inflates or deflates to megabytes, or a bomb, costs its own connection turns, not
    /// its neighbours').
    private func runPendingWork() {
        guard !pendingWork.isEmpty else { return }
        let list = pendingWork
        pendingWork.removeAll(keepingCapacity: true)
        for c in list {
            c.workPending = false
            guard owns(c) else { continue }
            c.engine.continueEncoding()
            drain(c)
            account(c)
            flush(c)
            if c.readable && !c.readPaused && !c.applicationPaused && !c.workPending { service(c) } else { settle(c) }
        }
    }

    private func decide(_ c: WSEpollConnection, _ request: WSUpgradeRequest) {
        if case .no = stopping {} else {
            try? c.engine.reject(status: .serviceUnavailable)
            return
        }
        guard let server = context.server else { return }
        let decision: WSUpgradeDecision
        switch server.upgrade {
        case .immediate(let upgrade):
            decision = upgrade(request)
        case .deferred(let upgrade):
            // The application answers through `WSEpollConnection.decide` (perhaps at once,
            // perhaps later from another task); the wait is bounded by the handshake deadline.
            return upgrade(request, c)
        }
        switch decision {
        case .accept(let handler, let subprotocol, let headers):
            do {
                try c.engine.accept(subprotocol: subprotocol, headers: headers)
                c.handler = handler
            } catch {
                try? c.engine.reject(status: .internalServerError)
            }
        case .reject(let status, let headers, let body):
            if (try? c.engine.reject(status: status, headers: headers, body: body)) == nil {
                try? c.engine.reject(status: .internalServerError)
            }
        }
    }

    /// Applies an upgrade decision made later (``WSEpollConnection/decide(_:)``), on this
    /// loop: ignored if the upgrade no longer waits (the decision came too late, or the peer
    /// left); otherwise the engine answers, and its events (`.opened`, frames that came with
    /// the request) are handed out.
    func apply(_ decision: WSDeferredDecision, to c: WSEpollConnection) {
        guard owns(c), c.engine.pendingUpgrade != nil else { return }
        switch decision {
        case .accept(let handler, let subprotocol, let extensions, let headers, let configuration):
            do {
                try c.engine.accept(subprotocol: subprotocol, extensions: extensions, headers: headers,
                                    configuration: configuration.map(LoopContext.sliced))
                c.handler = handler
                c.serviceHooks = handler
            } catch {
                try? c.engine.reject(status: .internalServerError)
            }
        case .reject(let status, let headers, let body):
            if (try? c.engine.reject(status: status, headers: headers, body: body)) == nil {
                try? c.engine.reject(status: .internalServerError)
            }
        }
        // Inside this connection's own drain (a decision made at once), that drain hands out
        // the events; otherwise hand them out here, then read on.
        guard !c.isBeingDrained else { return }
        drain(c)
        service(c)
    }

    /// Writes what the engine has queued, as far as the kernel takes it.
    @inline(__always)
    private func flush(_ c: WSEpollConnection) {
        while !c.kernelFull && !c.transportDead {
            if c.stream.hasPendingOutput {
                // TLS ciphertext the kernel did not take last time (or a handshake message).
                do throws(WSTransportError) {
                    if !(try c.stream.flush()) { c.kernelFull = true }
                } catch {
                    failed(c, error)
                }
                continue
            }
            guard c.engine.bufferedAmount > 0 else { break }
            let written: Result<Int?, WSTransportError> = c.engine.withOutboundBytes { raw in
                do throws(WSTransportError) { return .success(try c.stream.write(raw)) } catch { return .failure(error) }
            }
            switch written {
            case .success(0):
                // TLS: the handshake waits for the peer; the bytes go once it is done.
                if !c.stream.hasPendingOutput { return }
            case .success(let n?):
                c.engine.consumeOutbound(n)
            case .success(nil):
                c.kernelFull = true
            case .failure(let error):
                failed(c, error)
            }
        }
        shutdownWriteIfFinished(c)
        // A decode or encode paused after a slice (after a read, a handler's send, a command):
        // its next slice comes next turn.
        if c.engine.hasPendingWork && !c.workPending && !c.transportDead {
            c.workPending = true
            pendingWork.append(c)
        }
        if c.readPaused && c.engine.isWritable { c.readPaused = false }
        if c.writabilityWanted && c.engine.isWritable {
            c.writabilityWanted = false
            c.serviceHooks?.writable(c)
        }
    }

    /// Once the engine's output has ended and every byte is out: TLS close_notify, then FIN.
    private func shutdownWriteIfFinished(_ c: WSEpollConnection) {
        guard !c.writeShut && !c.transportDead && !c.kernelFull && (c.engine.isOutboundFinished || c.engine.isClosed),
              c.engine.bufferedAmount == 0 else { return }
        if c.stream.shutdownWrite() { c.writeShut = true } else { c.kernelFull = true }
    }

    /// ``transportFailed(_:)``, keeping why (a reset, a certificate refused) for the layer
    /// above. Separate, so that the hot paths that inline `transportFailed` stay as small.
    @inline(never)
    private func failed(_ c: WSEpollConnection, _ error: WSTransportError) {
        if !c.transportDead { c.transportError = error }
        transportFailed(c)
    }

    /// The socket failed (reset, broken pipe): the engine learns the input ended and reports
    /// `.closed`; nothing more is written.
    private func transportFailed(_ c: WSEpollConnection) {
        guard !c.transportDead else { return }
        c.transportDead = true
        c.readable = false
        if !c.inputEnded {
            c.inputEnded = true
            c.engine.receiveEOF()
        }
        drain(c)
    }

    /// Closes the socket once the engine is closed and its bytes are out (or the peer is gone,
    /// or the linger time is up); otherwise re-arms the connection's timer.
    private func settle(_ c: WSEpollConnection) {
        guard owns(c) else { return }
        if c.engine.isClosed {
            shutdownWriteIfFinished(c)
            let flushed = c.engine.bufferedAmount == 0 && !c.stream.hasPendingOutput
            if c.lingerDeadline == nil { c.lingerDeadline = now + context.lingerTimeout }
            // A TLS handshake that never finished (a silent or failed client at the handshake
            // timeout) has no channel for an HTTP answer: drop it.
            let tlsUnfinished = c.stream.tls.map { !$0.isHandshakeComplete } ?? false
            if c.transportDead || (flushed && c.inputEnded) || tlsUnfinished || now >= c.lingerDeadline! {
                release(c)
                return
            }
            if flushed && c.readable && !c.inputEnded {
                // Discard what the peer still sends until its FIN. A peer that sends more than
                // 16 reads' worth after the end is dropped at once rather than hold the loop.
                var drained = false
                for _ in 0..<16 {
                    guard let n = (try? c.socket.read(into: readBuffer)) ?? nil else { drained = true; break }
                    if n == 0 { c.inputEnded = true; break }
                }
                if c.inputEnded || !drained { release(c); return }
                c.readable = false
            }
        }
        armTimer(c)
    }

    @inline(__always)
    private func armTimer(_ c: WSEpollConnection) {
        var deadline = c.engine.nextDeadline ?? c.engine.upgradeDecisionDeadline
        if let l = c.lingerDeadline, deadline == nil || l < deadline! { deadline = l }
        if let a = c.applicationDeadline, deadline == nil || a < deadline! { deadline = a }
        guard deadline != c.armedDeadline else { return }
        // A later deadline (or none) waits for the armed one to fire, which re-arms it: an entry
        // pushed at every change would stay in the heap, stale, until popped or compacted (the
        // handshake's deadline, then the keepalive's: twice the heap for idle connections).
        if let armed = c.armedDeadline, deadline.map({ armed < $0 }) ?? true { return }
        c.armedDeadline = deadline
        if let deadline {
            timers.push(deadline, token: token(c))
            if timers.count > 2 * liveCount + 1024 { compactTimers() }
        }
    }

    private func compactTimers() {
        var live: [TimerHeap.Entry] = []
        for case let c? in slots {
            if let d = c.armedDeadline { live.append(.init(deadline: d, token: token(c))) }
        }
        timers.rebuild(live)
    }

    private func runTimers() {
        while let entry = timers.popDue(now) {
            guard let c = connection(entry.token), c.armedDeadline == entry.deadline else { continue }
            c.armedDeadline = nil
            if let a = c.applicationDeadline, now >= a {
                c.applicationDeadline = nil
                c.serviceHooks?.deadlinePassed(c)
            }
            c.engine.tick(now: now)
            if let d = c.engine.upgradeDecisionDeadline, now >= d {
                // The application did not decide within the handshake's time.
                try? c.engine.reject(status: .serviceUnavailable)
            }
            drain(c)
            flush(c)
            settle(c)
        }
    }

    private func flushDirty() {
        while !dirty.isEmpty {
            let list = dirty
            dirty.removeAll(keepingCapacity: true)
            for c in list {
                c.isDirty = false
                guard owns(c) else { continue }
                flush(c)
                if c.readable && !c.readPaused && !c.applicationPaused { service(c) } else { settle(c) }
            }
        }
    }

    /// Lets idle connections give back their buffers (the engine's receive and send buffers,
    /// the decompressor under no-context-takeover, TLS ciphertext).
    private func sweep() {
        nextSweep = now + .seconds(1)
        // Many connections ended, or went idle and gave back what they held (a decompressor
        // each, about 40 KiB), since the last look: give the allocator's free pages back (glibc
        // keeps them at their peak otherwise, so a burst of 10,000 connections would hold its
        // memory for good). At most once a second per loop, only after such a burst.
        if releasedSinceTrim >= Self.trimAfterReleases {
            releasedSinceTrim = 0
            _ = cws_trim_heap()
            context.heapTrims.add(1, ordering: .relaxed)
        }
        for case let c? in slots {
            if !c.wasActive && c.engine.bufferedAmount == 0 {
                c.engine.releaseIdleMemory()
                c.stream.tls?.releaseIdleMemory()
                c.serviceHooks?.idle(c)
                account(c)
                if c.activeSinceRelease {
                    c.activeSinceRelease = false
                    releasedSinceTrim += 1
                }
            }
            if c.wasActive { c.activeSinceRelease = true }
            c.wasActive = false
        }
    }

    /// Ends a connection that never opened (graceful stop): no handler to tell.
    private func drop(_ c: WSEpollConnection) {
        release(c)
    }

    private func closeAll() {
        for case let c? in slots {
            if !c.engine.isClosed {
                c.transportDead = true
                if !c.inputEnded { c.engine.receiveEOF() }
                c.inputEnded = true
                drain(c)
            }
            release(c)
        }
    }

    private func release(_ c: WSEpollConnection) {
        guard owns(c) else { return }
        c.socket.close()
        c.transportDead = true
        c.handler = nil
        c.serviceHooks = nil
        slots[c.slot] = nil
        generations[c.slot] &+= 1
        freeSlots.append(c.slot)
        liveCount -= 1
        releasedSinceTrim += 1
        context.releaseConnection()
        if c.charged != 0 {
            _ = context.memoryBudget?.charge(-c.charged)
            c.charged = 0
        }
        if let address = c.countedAddress {
            c.countedAddress = nil
            context.releaseAddress(address)
        }
    }
}
