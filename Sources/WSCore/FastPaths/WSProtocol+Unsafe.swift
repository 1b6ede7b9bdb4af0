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

    /// Sends a whole message of either kind from bytes in memory: ``send(_:kind:compress:)``
    /// without generics, so adapters in other modules reach the specialized copy (an echo or
    /// relay from lent bytes). Text is checked to be valid UTF-8 first.
    /// - Throws: as ``send(_:kind:compress:)``.
    public mutating func send(_ bytes: UnsafeRawBufferPointer, kind: WSMessageKind, compress: Bool = true) throws(WSUsageError) {
        if kind == .text {
            var utf8 = WSUTF8Validator()
            guard unsafe utf8.validate(bytes) == nil, utf8.isComplete else { throw .invalidUTF8 }
        }
        try unsafe sendMessage(bytes, kind: kind, compress: compress)
    }

    /// Calls `body` with the queued outbound bytes without taking them; report what was written
    /// with ``consumeOutbound(_:)``. When ``isOutboundFinished`` turns true, half-close.
    /// Inlinable: the adapter's write then needs no closure context.
    @inlinable
    public func withOutboundBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        unsafe outbound.withBytes(body)
    }
}
