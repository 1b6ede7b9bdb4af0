// The lent-bytes send of WSEpollConnection: a Span handed to the engine through its buffer pointer.

public import WSCore

extension WSEpollConnection {
    /// Sends a message of `kind` from bytes (text must be valid UTF-8). On the owning loop the
    /// bytes are copied into the outbound buffer at once: the echo and relay fast path, from a
    /// ``WSEpollHandler/received(_:kind:data:isFinal:)`` span. From another thread they are
    /// copied first.
    public func send(_ data: Span<UInt8>, kind: WSMessageKind, compress: Bool = true) throws(WSUsageError) {
        if loop.isCurrent {
            try data.withUnsafeBytes { (b) throws(WSUsageError) in try engine.send(b, kind: kind, compress: compress) }
            scheduleFlush()
        } else {
            let copy = data.withUnsafeBufferPointer { Array($0) }
            try perform { (c) throws(WSUsageError) in try c.engine.send(copy, kind: kind, compress: compress) }
        }
    }

    /// Sends a whole message from bytes through the engine's non-generic entry point and
    /// queues a flush: the service layer's reply path (owning loop only; no generic
    /// specialization is needed across modules).
    package func sendOnLoop(_ bytes: [UInt8], kind: WSMessageKind) throws(WSUsageError) {
        defer { scheduleFlush() }
        let failure: WSUsageError? = bytes.withUnsafeBytes { raw in
            do throws(WSUsageError) { try engine.send(raw, kind: kind) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }
}
