// The engine's byte storage: where received bytes wait to be parsed and where encoded frames wait
// to be written. Every pointer the engine touches is touched here, so WSProtocol itself is safe
// Swift; the kernels it calls are in Masking+Unsafe.swift and UTF8Validation+Unsafe.swift.

/// Received bytes not yet consumed by the parser.
///
/// Payload is handed to the application as `ArraySlice`s of `storage`, so a delivered fragment
/// costs no copy and no allocation. To keep that true when the application holds on to slices,
/// bytes are never modified after they could have been handed out: payloads are unmasked as they
/// are appended, by a scanner that walks frame boundaries ahead of the parser (`scan`), while
/// the storage is uniquely referenced. The parser then reads plain bytes.
struct InboundBuffer {
    private(set) var storage: [UInt8] = []
    private(set) var readIndex = 0
    /// Bytes before this index have been scanned (payloads unmasked).
    private var scanIndex = 0
    private var scanState = Scan.header

    private enum Scan {
        case header
        case payload(remaining: UInt64, key: WSMaskKey?, phase: Int)
        /// An invalid length encoding: the parser fails there, so scanning stops.
        case stopped
    }

    /// Bytes buffered and not yet consumed.
    var readable: Int { storage.count &- readIndex }

    /// Appends received bytes, first reclaiming consumed space, and unmasks the new payload bytes.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if readIndex == storage.count {
            storage.removeAll(keepingCapacity: true)
            scanIndex = 0
            readIndex = 0
        } else if readIndex >= 4096, readIndex &* 2 >= storage.count {
            storage.removeSubrange(0..<readIndex)
            scanIndex &-= readIndex
            readIndex = 0
        }
        unsafe storage.append(contentsOf: bytes)
        scan()
    }

    mutating func append(_ bytes: some Collection<UInt8>) {
        if let () = bytes.withContiguousStorageIfAvailable({ unsafe append(UnsafeRawBufferPointer($0)) }) { return }
        unsafe Array(bytes).withUnsafeBytes { unsafe append($0) }
    }

    /// Walks frames from `scanIndex` to the end of the buffer, unmasking payload bytes in place.
    private mutating func scan() {
        let end = storage.count
        var index = scanIndex
        var state = scanState
        unsafe storage.withUnsafeMutableBytes { all in
            scanning: while index < end {
                switch state {
                case .header:
                    switch unsafe WSFrameHeader.decode(UnsafeRawBufferPointer(rebasing: all[index...])) {
                    case .incomplete:
                        break scanning
                    case .invalid:
                        state = .stopped
                        break scanning
                    case .header(let h, let length):
                        index &+= length
                        state = .payload(remaining: h.payloadLength, key: h.maskKey, phase: 0)
                    }
                case .payload(let remaining, let key, let phase):
                    let n = Int(Swift.min(remaining, UInt64(end &- index)))
                    var next = phase
                    if let key {
                        next = unsafe key.apply(to: UnsafeMutableRawBufferPointer(rebasing: all[index..<(index &+ n)]), phase: phase)
                    }
                    index &+= n
                    state = remaining == UInt64(n) ? .header : .payload(remaining: remaining &- UInt64(n), key: key, phase: next)
                case .stopped:
                    break scanning
                }
            }
        }
        scanIndex = index
        scanState = state
    }

    /// Decodes the frame header at the read position.
    func decodeHeader() -> WSFrameHeader.Decoded {
        unsafe storage.withUnsafeBytes { all in
            unsafe WSFrameHeader.decode(UnsafeRawBufferPointer(rebasing: all[readIndex...]))
        }
    }

    /// Validates the next `count` bytes as UTF-8; returns the index of the first invalid byte.
    func validateUTF8(_ count: Int, with validator: inout WSUTF8Validator) -> Int? {
        unsafe storage.withUnsafeBytes { all in
            unsafe validator.validate(UnsafeRawBufferPointer(rebasing: all[readIndex..<(readIndex &+ count)]))
        }
    }

    /// The next `count` bytes (shared, no copy), consumed.
    mutating func read(_ count: Int) -> ArraySlice<UInt8> {
        defer { readIndex &+= count }
        return storage[readIndex..<(readIndex &+ count)]
    }

    mutating func skip(_ count: Int) { readIndex &+= count }

    /// Drops every buffered byte (after the connection failed or closed).
    mutating func discardAll() {
        self = InboundBuffer()
    }

    /// Releases the storage if nothing is buffered (see ``WSProtocol/releaseIdleMemory()``);
    /// the scanner's position within a frame survives.
    mutating func releaseIfEmpty() {
        if readIndex == storage.count {
            storage = []
            readIndex = 0
            scanIndex = 0
        }
    }
}

/// Encoded frames waiting for the adapter to write them.
struct OutboundBuffer {
    private(set) var storage: [UInt8] = []
    private(set) var start = 0

    var count: Int { storage.count &- start }

    /// Appends one frame: header, then payload, masked in place when `header.maskKey` is set.
    mutating func appendFrame(_ header: WSFrameHeader, payload: UnsafeRawBufferPointer) {
        header.encode(into: &storage)
        let payloadStart = storage.count
        unsafe storage.append(contentsOf: payload)
        if let key = header.maskKey, payload.count > 0 {
            unsafe storage.withUnsafeMutableBytes { all in
                _ = unsafe key.apply(to: UnsafeMutableRawBufferPointer(rebasing: all[payloadStart...]), phase: 0)
            }
        }
    }

    /// Calls `body` with the pending bytes; the bytes stay queued until ``consume(_:)``.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        let s = start
        return unsafe storage.withUnsafeBytes { all in unsafe body(UnsafeRawBufferPointer(rebasing: all[s...])) }
    }

    /// Appends a message (or one fragment of it) as frames of at most `fragmentSize` payload
    /// bytes: the first with `opcode`, the rest as continuations, FIN on the last iff `fin`.
    /// Clients pass their key source; each frame gets a fresh key.
    mutating func appendMessage(
        _ payload: some Collection<UInt8>, opcode: WSOpcode, fin: Bool, fragmentSize: Int,
        keys: inout MaskKeySource?
    ) {
        unsafe withContiguousBytes(payload) { raw in
            var offset = 0
            var op = opcode
            repeat {
                let n = Swift.min(fragmentSize, raw.count &- offset)
                let last = offset &+ n == raw.count
                let header = WSFrameHeader(fin: last && fin, opcode: op, maskKey: keys?.next(), payloadLength: UInt64(n))
                unsafe appendFrame(header, payload: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset &+ n)]))
                offset &+= n
                op = .continuation
            } while offset < raw.count
        }
    }

    /// Removes the first `n` pending bytes (they were written).
    mutating func consume(_ n: Int) {
        precondition(n >= 0 && n <= count, "consumed more outbound bytes than were pending")
        start &+= n
        if start == storage.count {
            storage.removeAll(keepingCapacity: storage.capacity <= 1 << 20)
            start = 0
        } else if start >= 4096, start &* 2 >= storage.count {
            storage.removeSubrange(0..<start)
            start = 0
        }
    }

    /// Takes every pending byte as an array (the simple, allocating way to drain).
    mutating func takeAll() -> [UInt8] {
        if start == 0 {
            defer { storage = [] }
            return storage
        }
        defer { storage.removeAll(keepingCapacity: true); start = 0 }
        return Array(storage[start...])
    }

    mutating func releaseIfEmpty() {
        if count == 0 { storage = []; start = 0 }
    }
}

/// Calls `body` with a contiguous view of `bytes`, copying only if the collection has none.
@inline(__always)
func withContiguousBytes<C: Collection<UInt8>, R>(_ bytes: C, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    if let r = bytes.withContiguousStorageIfAvailable({ unsafe body(UnsafeRawBufferPointer($0)) }) { return r }
    return unsafe Array(bytes).withUnsafeBytes { unsafe body($0) }
}

/// Client masking keys, drawn from the injected generator: two keys per 64-bit draw, low half first.
struct MaskKeySource: Sendable {
    var random: any RandomNumberGenerator & Sendable
    var spare: UInt32?

    mutating func next() -> WSMaskKey {
        if let s = spare {
            spare = nil
            return WSMaskKey(rawValue: s)
        }
        let r = random.next()
        spare = UInt32(truncatingIfNeeded: r >> 32)
        return WSMaskKey(rawValue: UInt32(truncatingIfNeeded: r))
    }
}
