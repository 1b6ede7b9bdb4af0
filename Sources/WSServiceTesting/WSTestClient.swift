public import WSCore
import WSEpoll
public import WSTransport
import Synchronization

/// Why a test client's call failed.
public enum WSTestError: Error, Sendable, CustomStringConvertible {
    /// The upgrade was refused: the answer's status, headers and body.
    case rejected(WSHandshakeRejection)
    /// The opening handshake failed or timed out.
    case handshakeFailed(WSHandshakeError)
    /// Nothing arrived within the timeout.
    case timeout(Duration)
    /// The connection is closed (how, in the info) and nothing more will arrive.
    case closed(WSProtocol.CloseInfo)
    /// Something other than what was asked for arrived (a binary message for
    /// ``WSTestClient/receiveText(timeout:)``, say).
    case unexpected(WSTestClient.Event)
    /// The socket or pair could not be made.
    case transport(WSTransportError)
    /// A command was not valid now (sending after close, a bad URL).
    case usage(WSUsageError)

    public var description: String {
        switch self {
        case .rejected(let r): "upgrade rejected: \(r.response.status.code) \(r.response.status.reasonPhrase)"
        case .handshakeFailed(let e): "handshake failed: \(e)"
        case .timeout(let d): "nothing arrived within \(d)"
        case .closed(let info): "closed: \(info)"
        case .unexpected(let event): "unexpected \(event)"
        case .transport(let e): "transport: \(e)"
        case .usage(let e): "usage: \(e)"
        }
    }
}

/// The client end of a test connection: send, and read what the service sent back, in order.
///
/// Every event is kept until read (messages, Pings, Pongs, the close); reads wait up to their
/// timeout. Pings are answered automatically; they and Pongs are reported too.
public final class WSTestClient: Sendable {
    /// What the service side sent, in arrival order.
    public enum Event: Hashable, Sendable {
        case text(String)
        case binary([UInt8])
        case ping([UInt8])
        case pong([UInt8])
        /// The connection ended (the last event).
        case closed(WSProtocol.CloseInfo)
    }

    fileprivate struct State {
        var events: [Event] = []
        var waiter: CheckedContinuation<Void, Never>?
        var opened: WSHandshakeResult?
        var failure: WSTestError?
    }

    /// Records what the loop delivers; the client reads it.
    let recorder: Recorder
    let connection: WSEpollConnection

    init(connection: WSEpollConnection, recorder: Recorder) {
        self.connection = connection
        self.recorder = recorder
    }

    /// The opening handshake's result: the request, the server's answer, the subprotocol and
    /// extensions agreed.
    public var handshake: WSHandshakeResult { recorder.state.withLock { $0.opened! } }
    /// The subprotocol the service chose, if any.
    public var subprotocol: String? { handshake.subprotocol }

    // MARK: Sending

    /// Sends a text message.
    public func send(text: String) async throws(WSTestError) {
        try command { (c) throws(WSUsageError) in try c.send(text: text) }
    }

    /// Sends a binary message.
    public func send(binary: [UInt8]) async throws(WSTestError) {
        try command { (c) throws(WSUsageError) in try c.send(binary: binary) }
    }

    /// Sends one frame of a fragmented message.
    public func sendFragment(_ bytes: [UInt8], kind: WSMessageKind, isFinal: Bool) async throws(WSTestError) {
        try command { (c) throws(WSUsageError) in try c.sendFragment(bytes, kind: kind, isFinal: isFinal) }
    }

    /// Sends a Ping.
    public func ping(_ payload: [UInt8] = []) async throws(WSTestError) {
        try command { (c) throws(WSUsageError) in try c.ping(payload) }
    }

    /// Sends a Pong (unsolicited).
    public func pong(_ payload: [UInt8] = []) async throws(WSTestError) {
        try command { (c) throws(WSUsageError) in try c.pong(payload) }
    }

    /// Stops reading from the connection, as a peer that does not read: what the service
    /// sends stays in the socket's buffers and then in the service's outbound queue, whose
    /// high-water mark makes the service's writes wait.
    public func stopReading() {
        let c = connection
        c.execute { c.applicationPaused = true }
    }

    /// Reads again after ``stopReading()``.
    public func resumeReading() {
        let c = connection
        c.execute { c.resumeReading() }
    }

    /// Starts the closing handshake and waits for the end; returns how the connection ended.
    @discardableResult
    public func close(code: WSCloseCode = .normalClosure, reason: String = "", timeout: Duration = .seconds(5)) async throws(WSTestError) -> WSProtocol.CloseInfo {
        try? command { (c) throws(WSUsageError) in try c.close(code: code, reason: reason) }
        while true {
            if case .closed(let info) = try await next(timeout: timeout) { return info }
        }
    }

    private func command(_ body: (WSEpollConnection) throws(WSUsageError) -> Void) throws(WSTestError) {
        do { try body(connection) } catch { throw .usage(error) }
    }

    // MARK: Receiving

    /// The next event, waiting up to `timeout`.
    /// - Throws: ``WSTestError/timeout(_:)``; ``WSTestError/closed(_:)`` once the close has
    ///   been read and nothing else remains.
    public func next(timeout: Duration = .seconds(5)) async throws(WSTestError) -> Event {
        let deadline = ContinuousClock.now + timeout
        while true {
            let taken = recorder.state.withLock { s -> Event? in
                guard !s.events.isEmpty else { return nil }
                let e = s.events.removeFirst()
                // The close stays readable: every later read reports it again.
                if case .closed = e { s.events.insert(e, at: 0) }
                return e
            }
            if let taken {
                return taken
            }
            if ContinuousClock.now >= deadline { throw .timeout(timeout) }
            await waitForEvent(until: deadline) { !$0.events.isEmpty }
        }
    }

    /// The next data message, skipping Pings and Pongs.
    /// - Throws: ``WSTestError/closed(_:)`` if the connection ends first.
    public func receive(timeout: Duration = .seconds(5)) async throws(WSTestError) -> Event {
        while true {
            let event = try await next(timeout: timeout)
            switch event {
            case .text, .binary: return event
            case .closed(let info): throw .closed(info)
            case .ping, .pong: continue
            }
        }
    }

    /// The next data message, which must be text.
    public func receiveText(timeout: Duration = .seconds(5)) async throws(WSTestError) -> String {
        let event = try await receive(timeout: timeout)
        guard case .text(let s) = event else { throw .unexpected(event) }
        return s
    }

    /// The next data message, which must be binary.
    public func receiveBinary(timeout: Duration = .seconds(5)) async throws(WSTestError) -> [UInt8] {
        let event = try await receive(timeout: timeout)
        guard case .binary(let b) = event else { throw .unexpected(event) }
        return b
    }

    /// Waits for the end of the connection (reading past any other event); how it ended.
    public func closeInfo(timeout: Duration = .seconds(5)) async throws(WSTestError) -> WSProtocol.CloseInfo {
        while true {
            if case .closed(let info) = try await next(timeout: timeout) { return info }
        }
    }

    // MARK: Plumbing

    func waitUntilOpen() async throws(WSTestError) {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let (open, failure) = recorder.state.withLock { ($0.opened != nil, $0.failure) }
            if open { return }
            if let failure { throw failure }
            if ContinuousClock.now >= deadline { throw .timeout(.seconds(10)) }
            await waitForEvent(until: deadline) { $0.opened != nil || $0.failure != nil }
        }
    }

    /// Returns once `ready` holds (checked under the lock, so nothing recorded in between is
    /// missed), after something new is recorded, or at `deadline`.
    private func waitForEvent(until deadline: ContinuousClock.Instant, ready: @escaping (State) -> Bool) async {
        let timer = Task {
            try? await Task.sleep(until: deadline)
            self.wake()
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow = recorder.state.withLock { s -> Bool in
                if ready(s) { return true }
                s.waiter = c
                return false
            }
            if resumeNow { c.resume() }
        }
        timer.cancel()
    }

    private func wake() { recorder.wake() }

    /// The loop-side handler: records what arrives, for the client to read.
    final class Recorder: WSEpollHandler, Sendable {
        fileprivate let state = Mutex(State())

        func wake() {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                let w = s.waiter
                s.waiter = nil
                return w
            }
            waiter?.resume()
        }

        fileprivate func record(_ change: (inout State) -> Void) {
            state.withLock { change(&$0) }
            wake()
        }

        func opened(_ connection: WSEpollConnection, _ result: WSHandshakeResult) {
            record { $0.opened = result }
        }

        func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(data.count)
            for i in data.indices { bytes.append(data[i]) }
            let event: Event = kind == .text ? .text(String(decoding: bytes, as: UTF8.self)) : .binary(bytes)
            record { $0.events.append(event) }
        }

        func event(_ connection: WSEpollConnection, _ event: WSProtocol.Event) {
            switch event {
            case .ping(let p): record { $0.events.append(.ping(Array(p))) }
            case .pong(let p): record { $0.events.append(.pong(Array(p))) }
            case .rejected(let r): record { $0.failure = $0.failure ?? .rejected(r) }
            case .handshakeFailed(let e): record { $0.failure = $0.failure ?? .handshakeFailed(e) }
            case .closed(let info):
                record {
                    if $0.opened == nil && $0.failure == nil { $0.failure = .closed(info) }
                    $0.events.append(.closed(info))
                }
            default: break
            }
        }
    }
}
