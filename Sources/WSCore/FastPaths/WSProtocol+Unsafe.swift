// The zero-copy entry points of WSProtocol for adapters that read into and write from raw
// buffers (sockets): no intermediate arrays on either side.

extension WSProtocol {
    /// Buffers bytes received from the transport. Drain ``nextEvent()`` afterwards.
    ///
    /// Bytes arriving after the peer's Close, after a failure or after close are discarded.
    public mutating func receive(_ bytes: some Collection<UInt8>) {
        if let () = bytes.withContiguousStorageIfAvailable({ unsafe receive(UnsafeRawBufferPointer($0)) }) { return }
        unsafe Array(bytes).withUnsafeBytes { unsafe receive($0) }
    }

    /// Buffers bytes received from the transport (the adapters' entry point: the bytes are
    /// copied once, into the engine's receive buffer). Drain ``nextEvent()`` afterwards.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer) {
        guard acceptsInput else { return }
        if bytes.count >= 16 << 10, role == .server, inbound.readable == 0, let start = parserPosition {
            unsafe inbound.append(bytes, parserAt: start)
        } else {
            unsafe inbound.append(bytes)
        }
    }

    /// Calls `body` with the queued outbound bytes without taking them; report what was written
    /// with ``consumeOutbound(_:)``. When ``isOutboundFinished`` turns true, half-close.
    public func withOutboundBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        unsafe outbound.withBytes(body)
    }
}
