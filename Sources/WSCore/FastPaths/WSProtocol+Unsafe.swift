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

    /// A whole message parsed in place, in the adapter's own read buffer: the zero-copy receive
    /// for an adapter that reads into a buffer of its own and hands each message out before it
    /// reads again (the epoll loop). The general way copies the bytes into the engine first.
    ///
    /// Takes the frame at `offset` in `buffer` when it is a whole message the engine would
    /// deliver as it is (FIN, text or binary, not compressed, 7- or 16-bit length within the
    /// limits, masked as the role requires, text valid UTF-8), while the engine is open with
    /// nothing buffered, pending or in progress: unmasks the payload in place, moves `offset`
    /// past the frame and returns the message's kind and where its bytes are in `buffer`.
    /// Otherwise it returns nil, changes nothing, and the rest goes the general way: pass
    /// `buffer[offset...]` to ``receive(_:)`` and drain the events as usual.
    ///
    /// The result is the same as ``receive(_:)`` of the whole buffer followed by
    /// ``nextEvent()``: the same messages in the same order, with the same effects (the idle
    /// timer, the stream offsets in later errors); an invalid frame, and what follows it, is
    /// left to the general parser, which fails the connection exactly as it would have. The
    /// engine may be used between calls (a reply sent from the message's bytes); a command that
    /// changes its state (a close) makes the next call return nil.
    public mutating func nextDirectMessage(in buffer: UnsafeMutableRawBufferPointer, at offset: inout Int) -> (kind: WSMessageKind, range: Range<Int>)? {
        guard offset < buffer.count, acceptsDirectMessage, let base = buffer.baseAddress else { return nil }
        let frame = unsafe base + offset
        guard let layout = singleFrameLayout(readable: buffer.count &- offset, peek: { unsafe frame.load(fromByteOffset: $0, as: UInt8.self) })
        else { return nil }
        var start = offset &+ layout.headerLength
        var key: WSMaskKey?
        if layout.masked {
            key = WSMaskKey(rawValue: UInt32(littleEndian: unsafe frame.loadUnaligned(fromByteOffset: layout.headerLength, as: UInt32.self)))
            start &+= 4
        }
        let range = start..<(start &+ layout.length)
        if let key { unsafe Self.unmask(UnsafeMutableRawBufferPointer(rebasing: buffer[range]), key) }
        if layout.kind == .text {
            var utf8 = WSUTF8Validator()
            guard unsafe utf8.validate(UnsafeRawBufferPointer(rebasing: buffer[range])) == nil, utf8.isComplete else {
                // The general parser fails the connection at the same byte: it gets the frame
                // as it came (masking twice restores it).
                if let key { unsafe Self.unmask(UnsafeMutableRawBufferPointer(rebasing: buffer[range]), key) }
                return nil
            }
        }
        noteDirectMessage(frameLength: range.upperBound &- offset)
        offset = range.upperBound
        return (layout.kind, range)
    }

    /// Unmasks a whole payload in place, as `InboundBuffer.unmask` does.
    @inline(__always)
    private static func unmask(_ payload: UnsafeMutableRawBufferPointer, _ key: WSMaskKey) {
        if payload.count <= 32, let p = payload.baseAddress {
            unsafe key.applySmall(to: p, count: payload.count, phase: 0)
        } else {
            _ = unsafe key.apply(to: payload, phase: 0)
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
        // The commonest reply, one plain frame, without the general path's layers (its
        // reference, which gives the same bytes: `sendMessage`).
        guard sendsAsOnePlainFrame(bytes.count, compress: compress) else {
            return try unsafe sendMessage(bytes, kind: kind, compress: compress)
        }
        try requireRoom(for: bytes.count)
        unsafe outbound.appendFrame(WSFrameHeader(fin: true, rsv: 0, opcode: kind.opcode, maskKey: nil, payloadLength: UInt64(bytes.count)),
                                    payload: bytes)
        noteDataQueued()
    }

    /// Calls `body` with the queued outbound bytes without taking them; report what was written
    /// with ``consumeOutbound(_:)``. When ``isOutboundFinished`` turns true, half-close.
    /// Inlinable: the adapter's write then needs no closure context.
    @inlinable
    public func withOutboundBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        unsafe outbound.withBytes(body)
    }
}
