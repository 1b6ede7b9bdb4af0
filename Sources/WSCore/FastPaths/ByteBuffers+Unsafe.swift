// The engine's byte storage: where received bytes wait to be parsed and where encoded frames wait
// to be written. Every pointer the engine touches is touched here, so WSProtocol itself is safe
// Swift; the kernels it calls are in Masking+Unsafe.swift and UTF8Validation+Unsafe.swift.

/// Received bytes not yet consumed by the parser.
///
/// Payload is handed to the application as `ArraySlice`s of `storage`, so a delivered fragment
/// costs no copy and no allocation. The parser unmasks each payload in place just before reading
/// it (`unmask`), which is free while the storage is uniquely referenced. If the application
/// still holds a slice, that write makes copy-on-write duplicate the storage; when that happens
/// the buffer unmasks every payload byte already buffered at once (`scan`), so nothing is
/// written again, and nothing copied again, before the next `append`. Holding events thus
/// costs at most one copy per read, never one per frame.
@usableFromInline
struct InboundBuffer: Sendable {
    /// The received bytes are `storage[..<end]`; the bytes past `end` are left over from
    /// earlier reads (an emptied buffer only moves its indices back to 0, and reads are copied
    /// in with one `memcpy`: `Array`'s `append(contentsOf:)` and `removeAll(keepingCapacity:)`
    /// cost about 140 instructions per echoed message, callgrind). `storage.count` only grows,
    /// up to the capacity the array has.
    @usableFromInline private(set) var storage: [UInt8] = []
    @usableFromInline private(set) var readIndex = 0
    @usableFromInline private(set) var end = 0
    /// Payload bytes in `readIndex..<unmaskedEnd` are already unmasked (by `scan`).
    private var unmaskedEnd = 0

    /// Where `scan` starts: a frame header, or inside a payload.
    enum ScanStart {
        case header
        case payload(remaining: UInt64, key: WSMaskKey, phase: Int)
    }

    /// Bytes buffered and not yet consumed.
    @inlinable var readable: Int { end &- readIndex }

    /// Appends received bytes, first reclaiming consumed space.
    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        reclaim()
        unsafe write(bytes)
    }

    /// Copies `bytes` in at `end` (growing `storage` first if it is too short).
    @inline(__always)
    private mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        storage.lengthen(to: end &+ bytes.count)
        unsafe storage.copyIn(bytes, at: end)
        end &+= bytes.count
    }

    /// Drops consumed bytes: all of them when nothing is left, or moves the rest to the front
    /// once the consumed part is large and at least half the buffer.
    private mutating func reclaim() {
        if readIndex == end {
            readIndex = 0
            end = 0
            unmaskedEnd = 0
        } else if readIndex >= 4096, readIndex &* 2 >= end {
            let n = end &- readIndex
            storage.moveToFront(from: readIndex, count: n)
            unmaskedEnd = Swift.max(0, unmaskedEnd &- readIndex)
            readIndex = 0
            end = n
        }
    }

    /// Appends a large read that starts where the parser stands (nothing else is buffered),
    /// unmasking payloads on the way in: the read is copied 16 KiB at a time and each piece's
    /// payload bytes are unmasked while the piece is still in L1 cache, instead of in a second
    /// pass over the whole read later. Walking stops at the first frame with a payload under
    /// 4 KiB, where per-frame parsing costs more than the pass saved; the parser unmasks the rest.
    mutating func append(_ bytes: UnsafeRawBufferPointer, parserAt start: ScanStart) {
        reclaim()
        var state: ScanStart? = start
        unmaskedEnd = end
        var done = 0
        while done < bytes.count {
            let n = Swift.min(16 << 10, bytes.count &- done)
            unsafe write(UnsafeRawBufferPointer(rebasing: bytes[done..<(done &+ n)]))
            done &+= n
            guard let s = state else { continue }
            state = scan(from: s, minimumPayload: 4096)
        }
    }

    /// Unmasks the next `count` bytes, which are payload starting at key phase `phase`, with
    /// `after` more bytes of the same payload still to come.
    @inline(__always)
    mutating func unmask(_ count: Int, key: WSMaskKey, phase: Int, after: UInt64) {
        let start = readIndex, end = readIndex &+ count
        guard end > unmaskedEnd else { return }
        let from = Swift.max(start, unmaskedEnd)
        let fromPhase = (phase &+ (from &- start)) & 3
        let before = unsafe storage.withUnsafeBytes { $0.baseAddress }
        unsafe storage.withUnsafeMutableBytes { all in
            let n = end &- from
            if n <= 32, let base = all.baseAddress {
                // Small payloads (the common case for chat-like traffic): XOR inline, no call.
                unsafe key.applySmall(to: base.advanced(by: from), count: n, phase: fromPhase)
            } else {
                _ = unsafe key.apply(to: UnsafeMutableRawBufferPointer(rebasing: all[from..<end]), phase: fromPhase)
            }
        }
        unmaskedEnd = end
        if unsafe storage.withUnsafeBytes({ $0.baseAddress }) != before {
            // A held slice made that write copy the storage: unmask everything buffered now.
            scan(from: after == 0 ? .header : .payload(remaining: after, key: key, phase: (phase &+ count) & 3))
        }
    }

    /// Unmasks every payload byte from `unmaskedEnd` to the end of the buffer, walking frame
    /// headers; stops at an incomplete or invalid header (the parser will stop there too), at an
    /// unmasked frame, or at a frame whose payload is under `minimumPayload` bytes. Returns where
    /// it stands at the end of the buffer, or nil if it stopped.
    @discardableResult
    private mutating func scan(from start: ScanStart, minimumPayload: UInt64 = 0) -> ScanStart? {
        let end = self.end
        var index = unmaskedEnd
        var state = start
        let finished: Bool = unsafe storage.withUnsafeMutableBytes { all in
            while index < end {
                switch state {
                case .header:
                    switch unsafe WSFrameHeader.decode(UnsafeRawBufferPointer(rebasing: all[index...])) {
                    case .incomplete:
                        return true  // resume here when more bytes arrive
                    case .invalid:
                        return false
                    case .header(let h, let length):
                        guard let key = h.maskKey, h.payloadLength >= minimumPayload else { return false }
                        index &+= length
                        state = .payload(remaining: h.payloadLength, key: key, phase: 0)
                    }
                case .payload(let remaining, let key, let phase):
                    let n = Int(Swift.min(remaining, UInt64(end &- index)))
                    let next = unsafe key.apply(to: UnsafeMutableRawBufferPointer(rebasing: all[index..<(index &+ n)]), phase: phase)
                    index &+= n
                    state = remaining == UInt64(n) ? .header : .payload(remaining: remaining &- UInt64(n), key: key, phase: next)
                }
            }
            return true
        }
        unmaskedEnd = index
        return finished ? state : nil
    }

    /// The byte `offset` bytes past the read position (the caller checked `readable`).
    @inline(__always)
    func peek(_ offset: Int) -> UInt8 { storage[readIndex &+ offset] }

    /// The masking key stored `offset` bytes past the read position.
    @inline(__always)
    func peekKey(_ offset: Int) -> WSMaskKey {
        unsafe storage.withUnsafeBytes { all in
            WSMaskKey(rawValue: UInt32(littleEndian: unsafe all.loadUnaligned(fromByteOffset: readIndex &+ offset, as: UInt32.self)))
        }
    }

    /// Decodes the frame header at the read position.
    func decodeHeader() -> WSFrameHeader.Decoded {
        unsafe storage.withUnsafeBytes { all in
            unsafe WSFrameHeader.decode(UnsafeRawBufferPointer(rebasing: all[readIndex..<end]))
        }
    }

    /// Validates the next `count` bytes as UTF-8; returns the index of the first invalid byte.
    func validateUTF8(_ count: Int, with validator: inout WSUTF8Validator) -> Int? {
        unsafe storage.withUnsafeBytes { all in
            unsafe validator.validate(UnsafeRawBufferPointer(rebasing: all[readIndex..<(readIndex &+ count)]))
        }
    }

    /// Consumes the next `count` bytes; returns their place in `storage`, where they stay
    /// unchanged until the next `append` (slices of them are handed out without copying).
    mutating func take(_ count: Int) -> Range<Int> {
        defer { readIndex &+= count }
        return readIndex..<(readIndex &+ count)
    }

    mutating func skip(_ count: Int) { readIndex &+= count }

    /// Marks every buffered byte consumed (after the connection failed or closed). The storage
    /// is kept, so places already handed out by `take` stay valid; no more bytes are appended
    /// once the engine stops reading, and `releaseIfEmpty` frees it.
    mutating func consumeAll() {
        readIndex = end
    }

    /// Releases the storage if nothing is buffered (see ``WSProtocol/releaseIdleMemory()``).
    mutating func releaseIfEmpty() {
        if readIndex == end {
            storage = []
            readIndex = 0
            end = 0
            unmaskedEnd = 0
        }
    }
}

/// Encoded frames waiting for the adapter to write them: `storage[start..<end]`.
///
/// The bytes past `end` are left over from earlier frames: an emptied buffer only moves its
/// indices back to 0, and frames are copied in with one `memcpy` each, where `Array`'s
/// `append(contentsOf:)` and `removeAll(keepingCapacity:)` cost about 180 instructions per
/// echoed message (callgrind). `storage.count` only grows, up to the capacity the array has.
@usableFromInline
struct OutboundBuffer: Sendable {
    @usableFromInline private(set) var storage: [UInt8] = []
    @usableFromInline private(set) var start = 0
    @usableFromInline private(set) var end = 0

    @inlinable var count: Int { end &- start }

    /// Appends one frame: header, then payload, masked in place when `header.maskKey` is set.
    @inline(__always)
    mutating func appendFrame(_ header: WSFrameHeader, payload: UnsafeRawBufferPointer) {
        compact()
        storage.lengthen(to: end &+ WSFrameHeader.maxLength &+ payload.count)
        let at = end
        end = unsafe storage.withUnsafeMutableBytes { all in
            let headerLength = unsafe header.encode(to: all.baseAddress! + at)
            let payloadStart = at &+ headerLength
            if payload.count > 0 {
                unsafe (all.baseAddress! + payloadStart).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
                if let key = header.maskKey {
                    _ = unsafe key.apply(to: UnsafeMutableRawBufferPointer(rebasing: all[payloadStart..<(payloadStart &+ payload.count)]), phase: 0)
                }
            }
            return payloadStart &+ payload.count
        }
    }

    /// Calls `body` with the pending bytes; the bytes stay queued until ``consume(_:)``.
    @inlinable
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        let s = start, e = end
        return unsafe storage.withUnsafeBytes { all in unsafe body(UnsafeRawBufferPointer(rebasing: all[s..<e])) }
    }

    /// Appends a message (or one fragment of it) as frames of at most `fragmentSize` payload
    /// bytes: the first with `opcode`, the rest as continuations, FIN on the last iff `fin`.
    /// Clients pass their key source; each frame gets a fresh key.
    mutating func appendMessage(
        _ payload: some Collection<UInt8>, opcode: WSOpcode, fin: Bool, fragmentSize: Int,
        keys: inout MaskKeySource?, rsv: UInt8 = 0
    ) {
        unsafe withContiguousBytes(payload) { raw in
            if raw.count <= fragmentSize {
                // One frame (nearly every message): no loop.
                let header = WSFrameHeader(fin: fin, rsv: rsv, opcode: opcode, maskKey: keys?.next(), payloadLength: UInt64(raw.count))
                return unsafe appendFrame(header, payload: raw)
            }
            var offset = 0
            var op = opcode
            var bits = rsv
            repeat {
                let n = Swift.min(fragmentSize, raw.count &- offset)
                let last = offset &+ n == raw.count
                let header = WSFrameHeader(fin: last && fin, rsv: bits, opcode: op, maskKey: keys?.next(), payloadLength: UInt64(n))
                bits = 0
                unsafe appendFrame(header, payload: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset &+ n)]))
                offset &+= n
                op = .continuation
            } while offset < raw.count
        }
    }

    /// Removes the first `n` pending bytes (they were written).
    @inline(__always)
    mutating func consume(_ n: Int) {
        precondition(n >= 0 && n <= count, "consumed more outbound bytes than were pending")
        start &+= n
        if start == end {
            if !keepsCapacity(used: end, capacity: storage.capacity) { storage = [] }
            start = 0
            end = 0
        }
    }

    /// Before an append: moves the pending bytes to the front once the written part is large and
    /// at least half the buffer, so written bytes never make the buffer grow. Done here and not
    /// in `consume`, which would move a large message again after each partial write.
    private mutating func compact() {
        if start >= 4096, start &* 2 >= end {
            let n = end &- start
            storage.moveToFront(from: start, count: n)
            start = 0
            end = n
        }
    }

    /// Appends bytes as they are (the opening handshake's HTTP heads).
    mutating func appendRaw(_ bytes: [UInt8]) {
        compact()
        storage.lengthen(to: end &+ bytes.count)
        unsafe bytes.withUnsafeBytes { unsafe storage.copyIn($0, at: end) }
        end &+= bytes.count
    }

    /// Takes every pending byte as an array (the simple, allocating way to drain).
    mutating func takeAll() -> [UInt8] {
        if start == 0 {
            defer { storage = []; end = 0 }
            storage.removeSubrange(end...)
            return storage
        }
        defer { start = 0; end = 0 }
        return Array(storage[start..<end])
    }

    /// Releases the storage if nothing is pending (see ``WSProtocol/releaseIdleMemory()``).
    mutating func releaseIfEmpty() {
        if count == 0 { storage = []; start = 0; end = 0 }
    }
}

/// What both byte buffers do to their storage, whose length only grows (the bytes past a
/// buffer's `end` are left over from earlier use).
extension [UInt8] {
    /// Makes the array at least `length` bytes long: zeros past the old length, into the
    /// capacity the array already has first, else at least doubling it.
    @inline(__always)
    mutating func lengthen(to length: Int) {
        guard length > count else { return }
        let target = Swift.max(length, capacity, count &* 2)
        append(contentsOf: repeatElement(0, count: target &- count))
    }

    /// Copies `bytes` over the array's bytes from `offset` (which must be within its length).
    @inline(__always)
    mutating func copyIn(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        guard bytes.count > 0 else { return }
        unsafe withUnsafeMutableBytes { all in
            unsafe (all.baseAddress! + offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
    }

    /// Moves the `count` bytes at `from` to the front.
    @inline(__always)
    mutating func moveToFront(from: Int, count: Int) {
        unsafe withUnsafeMutableBytes { all in
            unsafe all.baseAddress!.copyMemory(from: all.baseAddress! + from, byteCount: count)
        }
    }
}

/// Whether a buffer being emptied keeps its memory for its next use: always when it is small;
/// when large, only while it is well used (what it just held filled at least a quarter of it).
/// Steady large messages then reuse one allocation instead of freeing and faulting in megabytes
/// per message, and a buffer grown by a one-off large message is given back at the next smaller
/// one. Idle connections give everything back (``WSProtocol/releaseIdleMemory()``).
@inline(__always)
func keepsCapacity(used: Int, capacity: Int) -> Bool {
    capacity <= 64 << 10 || used >= capacity / 4
}

/// Calls `body` with a contiguous view of `bytes`, copying only if the collection has none.
@inline(__always)
func withContiguousBytes<C: Collection<UInt8>, R>(_ bytes: C, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    if let r = bytes.withContiguousStorageIfAvailable({ unsafe body(UnsafeRawBufferPointer($0)) }) { return r }
    return unsafe Array(bytes).withUnsafeBytes { unsafe body($0) }
}

/// Calls `body` with a span over `bytes`, copying only if the collection is not contiguous.
@inline(__always)
func withContiguousSpan<C: Collection<UInt8>, R>(_ bytes: C, _ body: (Span<UInt8>) -> R) -> R {
    if let r = bytes.withContiguousStorageIfAvailable({ unsafe body(Span(_unsafeElements: $0)) }) { return r }
    return body(Array(bytes).span)
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
