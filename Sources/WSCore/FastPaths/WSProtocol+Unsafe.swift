// The zero-copy entry points of WSProtocol for adapters that read into and write from raw
// buffers (sockets): no intermediate arrays on either side.

extension WSProtocol {
    /// Buffers bytes received from the transport (the adapters' entry point: the bytes are
    /// copied once, into the engine's receive buffer). Drain ``nextEvent()`` afterwards.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer) {
        guard acceptsInput else { return }
        unsafe inbound.append(bytes)
    }

    /// Calls `body` with the queued outbound bytes without taking them; report what was written
    /// with ``consumeOutbound(_:)``. When ``isOutboundFinished`` turns true, half-close.
    public func withOutboundBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        unsafe outbound.withBytes(body)
    }
}
