// The permessage-deflate codec over zlib's raw DEFLATE streams (RFC 7692 §7.2). Every pointer
// WSDeflate touches is touched here.
//
// - Compress: deflate each message (or each fragment sent) with Z_SYNC_FLUSH; the output then
//   ends with the empty stored block 00 00 ff ff, which §7.2.1 removes from a message's end.
// - Decompress: inflate the payload, then the 00 00 ff ff that §7.2.2 appends, with the output
//   bounded inside the loop. A final (BFINAL) block ends zlib's stream; the rest of the message,
//   if any, is a new stream (§7.2.3.4).
// - z_stream records its own address (zlib checks it), so each lives in its own allocation.
// - Memory: a connection owns its decompressor, and its compressor only where the context
//   carries over between messages or a message spans calls (fragments, slices). A whole message
//   under no-context-takeover is compressed with its thread's shared compressor, reset after
//   use, and every call's scratch output buffer is the thread's: an idle connection owns no
//   zlib memory (an event loop's thousands of connections share one compressor).

internal import CWSZlib
internal import Glibc
public import WSCore

/// What one agreement means for the connections that share it (the negotiated parameters by
/// direction, and the compression level, memory level and minimum size), and the transform a
/// connection holds while idle. It keeps no connection's state, so the connections that agreed
/// on the same parameters with one ``WSPerMessageDeflate`` share one. It compresses a whole
/// message under no context takeover itself, with the thread's compressor; anything else is
/// done by a ``WSDeflateTransform`` of the connection's own, made when a message needs it
/// (``connectionTransform(encoding:wholeMessage:)``) and given up once the connection is idle
/// (``WSDeflateTransform/idleForm()``).
@safe final class DeflateProfile: WSMessageTransform, Sendable {
    let minimumSize: Int
    // Window bits 8–15 and the no-context-takeover flags, by direction.
    let sendWindowBits: UInt8
    let receiveWindowBits: UInt8
    let sendNoContextTakeover: Bool
    let receiveNoContextTakeover: Bool
    /// zlib's compression level (0–9) and memory level (1–9).
    let level: Int8
    let memoryLevel: Int8

    init(parameters: WSDeflateParameters, configuration: WSPerMessageDeflate.Configuration) {
        sendWindowBits = UInt8(clamping: parameters.send.maxWindowBits)
        receiveWindowBits = UInt8(clamping: parameters.receive.maxWindowBits)
        sendNoContextTakeover = parameters.send.noContextTakeover
        receiveNoContextTakeover = parameters.receive.noContextTakeover
        level = Int8(clamping: configuration.compressionLevel)
        memoryLevel = Int8(clamping: configuration.memoryLevel)
        minimumSize = configuration.minimumSize
    }

    var parameters: WSDeflateParameters {
        WSDeflateParameters(send: .init(maxWindowBits: Int(sendWindowBits), noContextTakeover: sendNoContextTakeover),
                            receive: .init(maxWindowBits: Int(receiveWindowBits), noContextTakeover: receiveNoContextTakeover))
    }

    // zlib refuses a raw 8-bit window for compression. When the peer holds us to 8, use 9 with
    // the run-length strategy: its matches all have distance 1, which an 8-bit window
    // decompresses.
    /// The raw (negative) window bits we compress with.
    var deflateWindowBits: Int32 { -Int32(Swift.max(Int(sendWindowBits), 9)) }
    var deflateStrategy: Int32 { Int(sendWindowBits) == 8 ? Z_RLE : Z_DEFAULT_STRATEGY }

    /// The RSV1 bit: "Per-Message Compressed" (RFC 7692 §6).
    var reservedBits: UInt8 { WSFrameHeader.rsv1 }

    func shouldEncode(kind: WSMessageKind, size: Int?) -> Bool {
        size.map { $0 >= minimumSize } ?? true
    }

    /// Deflate's worst case from any encoder: zlib's `deflateBound` for arbitrary settings
    /// (fixed-Huffman blocks can grow data by an eighth; small stored blocks, as with
    /// python-websockets' `memLevel=5`, by 5 bytes each) plus the empty block of a sync flush.
    /// python-websockets compresses every message, random bytes too. Only the wire limit
    /// grows: compressed frames stream through inflate, and what they inflate to is bounded
    /// exactly by the decompressed-size limit.
    func maxEncodedSize(forDecodedSize n: Int) -> Int {
        n + ((n + 7) >> 3) + ((n + 63) >> 6) + 5 + 5
    }

    /// Only a whole message to compress under no context takeover needs no connection state.
    func connectionTransform(encoding: Bool, wholeMessage: Bool) -> (any WSMessageTransform)? {
        encoding && wholeMessage && sendNoContextTakeover ? nil : WSDeflateTransform(profile: self)
    }

    func encode(_ input: Span<UInt8>, isFinal: Bool, into output: inout [UInt8]) {
        precondition(isFinal && sendNoContextTakeover, "a shared permessage-deflate profile compresses only whole messages under no context takeover: ask connectionTransform(encoding:wholeMessage:) first")
        encodeWhole(input, into: &output)
    }

    func decode(_ input: Span<UInt8>, isFinal: Bool, into output: inout [UInt8], pauseAfter: Int, limit: Int) throws(WSTransformError) -> WSDecodeProgress {
        preconditionFailure("a shared permessage-deflate profile does not decompress: ask connectionTransform(encoding:wholeMessage:) first")
    }

    func releaseIdleMemory() {}

    /// A whole message under no context takeover: the thread's compressor, reset after it.
    func encodeWhole(_ input: Span<UInt8>, into output: inout [UInt8]) {
        let start = output.count
        let memory = Int32(WSDeflateTransform.memoryLevel(forWholeMessage: input.count, configured: Int(memoryLevel)))
        let s = unsafe ThreadZlib.current.deflater(windowBits: deflateWindowBits, level: Int32(level), memoryLevel: memory, strategy: deflateStrategy)
        unsafe Self.compress(input, flushing: true, with: s, into: &output)
        Self.endMessage(&output, from: start)
        _ = unsafe deflateReset(s)
    }

    /// Feeds `input` to compressor `s`, with a sync flush after it when `flushing`.
    static func compress(_ input: Span<UInt8>, flushing: Bool, with s: UnsafeMutablePointer<z_stream>, into output: inout [UInt8]) {
        let out = unsafe ThreadZlib.current.scratch
        unsafe input.withUnsafeBufferPointer { buffer in
            var offset = 0
            repeat {
                // avail_in is 32 bits: feed at most 1 GiB at a time.
                let n = Swift.min(buffer.count - offset, 1 << 30)
                unsafe s.pointee.next_in = UnsafeMutablePointer(mutating: buffer.baseAddress.map { unsafe $0 + offset })
                unsafe s.pointee.avail_in = UInt32(n)
                offset += n
                let flush = offset == buffer.count && flushing ? Z_SYNC_FLUSH : Z_NO_FLUSH
                repeat {
                    unsafe s.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    unsafe s.pointee.avail_out = UInt32(out.count)
                    let rc = unsafe deflate(s, flush)
                    // Z_BUF_ERROR: nothing to do (no input since the last flush).
                    precondition(rc == Z_OK || rc == Z_BUF_ERROR, "deflate failed: \(rc)")
                    let produced = out.count - Int(unsafe s.pointee.avail_out)
                    unsafe output.append(contentsOf: UnsafeRawBufferPointer(rebasing: out[0..<produced]))
                } while unsafe s.pointee.avail_out == 0
            } while offset < buffer.count
        }
    }

    /// Ends a compressed message that starts at `start` in `output`, after its sync flush.
    /// §7.2.1: "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the tail end." When zlib
    /// had nothing to flush (an empty message right after another), the message is the one
    /// octet 0x00: with the receiver's 00 00 ff ff it is an empty stored block (§7.2.3.6).
    static func endMessage(_ output: inout [UInt8], from start: Int) {
        if output.count - start >= 4, output[(output.count - 4)...].elementsEqual([0, 0, 0xFF, 0xFF]) {
            output.removeLast(4)
        } else {
            precondition(output.count == start, "a sync flush ends with 00 00 ff ff")
            output.append(0)
        }
    }
}

/// permessage-deflate's compressor and decompressor for one connection, made by
/// ``WSPerMessageDeflate/makeTransform(agreed:role:)``.
///
/// Owned by one ``WSProtocol``; it is not safe to use from two threads at once, and the engine
/// never does. While its connection is idle and it holds no zlib state, the engine keeps the
/// parameters' shared profile in its place (``idleForm()``) and makes a new codec when a
/// message needs one, so an idle connection owns no deflate object.
@safe public final class WSDeflateTransform: WSMessageTransform, @unchecked Sendable {
    // 44 bytes with the object header (an allocator chunk of 48): the parameters are the
    // shared profile's.

    private let profile: DeflateProfile
    private var deflater: UnsafeMutablePointer<z_stream>?
    private var inflater: UnsafeMutablePointer<z_stream>?
    /// A message is being compressed across calls (fragments, slices): it keeps to `deflater`.
    private var encodingAcrossCalls = false
    /// zlib's stream ended (a BFINAL block) and no input has followed yet in this message.
    private var streamEnded = false
    /// The last inflate call that used input or produced output left zlib between blocks
    /// (`data_type` bit 128). Kept from that call: a later call without progress reads as
    /// mid-stream (zlib moves its state off "between blocks" on entry).
    private var atBoundary = false
    /// How many bytes of the 00 00 ff ff tail the current inbound message has had (0...4).
    private var tailFed = 0 as UInt8

    /// What was agreed, by direction.
    public var parameters: WSDeflateParameters { profile.parameters }
    private static let scratchSize = ThreadZlib.scratchSize

    /// Whether this connection holds a compressor of its own now (with context takeover, or
    /// while a message is compressed across calls); otherwise whole messages use the thread's.
    package var ownsCompressor: Bool { unsafe deflater != nil }
    /// Whether this connection holds a decompressor now (from its first compressed message
    /// received; without context takeover, until it goes idle).
    package var ownsDecompressor: Bool { unsafe inflater != nil }

    /// The memory level a whole message of `count` bytes is compressed with under no context
    /// takeover: the configured one, or at most 4 for a message under 1 KiB. Resetting a
    /// compressor after each message clears its hash table, 2^(level + 8) bytes: 64 KiB at the
    /// default 8, most of the work of compressing a small message (a 30-byte echo: 65,500 of
    /// 95,400 instructions). At level 4 the table is 4 KiB, and zlib ends a block at 1,023
    /// symbols, so a message under 1 KiB is still one block: the bytes are zlib's at level 8
    /// (20,000 random messages of 0–1,023 bytes in Python's zlib, and a test here). At 1,024
    /// bytes of literals the block would split, one byte longer.
    package static func memoryLevel(forWholeMessage count: Int, configured: Int) -> Int {
        count < 1 << 10 ? Swift.min(configured, 4) : configured
    }

    /// The RSV1 bit: "Per-Message Compressed" (RFC 7692 §6).
    public var reservedBits: UInt8 { WSFrameHeader.rsv1 }

    /// A codec for `parameters`, compressing with `configuration`'s level, memory level and
    /// minimum size.
    public convenience init(parameters: WSDeflateParameters, configuration: WSPerMessageDeflate.Configuration = .init()) {
        self.init(profile: DeflateProfile(parameters: parameters, configuration: configuration))
    }

    init(profile: DeflateProfile) {
        self.profile = profile
    }

    deinit {
        endDeflater()
        endInflater()
    }

    public func shouldEncode(kind: WSMessageKind, size: Int?) -> Bool {
        profile.shouldEncode(kind: kind, size: size)
    }

    /// The shared profile of these parameters when this codec holds no zlib state and no
    /// message is under way; nil otherwise.
    public func idleForm() -> (any WSMessageTransform)? {
        unsafe deflater == nil && inflater == nil && !encodingAcrossCalls && tailFed == 0 && !streamEnded ? profile : nil
    }

    // MARK: Compression

    public func encode(_ input: Span<UInt8>, isFinal: Bool, into output: inout [UInt8]) {
        // A whole message without context takeover: the thread's compressor, reset after it.
        if isFinal && !encodingAcrossCalls && profile.sendNoContextTakeover {
            return profile.encodeWhole(input, into: &output)
        }
        let start = output.count
        let s = unsafe deflateStream()
        unsafe DeflateProfile.compress(input, flushing: true, with: s, into: &output)
        encodingAcrossCalls = !isFinal
        guard isFinal else { return }
        DeflateProfile.endMessage(&output, from: start)
        if profile.sendNoContextTakeover { _ = unsafe deflateReset(s) }
    }

    /// Compresses a slice of a message without a flush (zlib keeps what it has not emitted
    /// yet); the message's last ``encode(_:isFinal:into:)`` flushes. The output is the one
    /// call's: zlib's deflate does not depend on how its input arrives.
    public func encodeContinuing(_ input: Span<UInt8>, into output: inout [UInt8]) {
        encodingAcrossCalls = true
        unsafe DeflateProfile.compress(input, flushing: false, with: deflateStream(), into: &output)
    }

    private func deflateStream() -> UnsafeMutablePointer<z_stream> {
        if let s = unsafe deflater { return unsafe s }
        let s = unsafe Self.allocateStream { unsafe cws_deflateInit2($0, Int32(profile.level), profile.deflateWindowBits, Int32(profile.memoryLevel), profile.deflateStrategy) }
        unsafe deflater = s
        return unsafe s
    }

    private func endDeflater() {
        unsafe Self.free(deflater) { unsafe deflateEnd($0) }
        unsafe deflater = nil
    }

    /// A z_stream in its own allocation (zlib records the stream's address and checks it),
    /// set up by `initialize` (deflateInit2 or inflateInit2).
    private static func allocateStream(_ initialize: (UnsafeMutablePointer<z_stream>) -> Int32) -> UnsafeMutablePointer<z_stream> {
        let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        unsafe s.initialize(to: z_stream())
        let rc = unsafe initialize(s)
        precondition(rc == Z_OK, "zlib stream initialization failed: \(rc)")
        return unsafe s
    }

    private static func free(_ stream: UnsafeMutablePointer<z_stream>?, end: (UnsafeMutablePointer<z_stream>) -> Int32) {
        guard let s = unsafe stream else { return }
        _ = unsafe end(s)
        unsafe s.deallocate()
    }

    // MARK: Decompression

    /// The most a decoded message's buffer grows by at once: 16 MiB (doubling below that).
    static let maxGrowthStep = 16 << 20

    public func decode(_ input: Span<UInt8>, isFinal: Bool, into output: inout [UInt8], pauseAfter: Int, limit: Int) throws(WSTransformError) -> WSDecodeProgress {
        let s = unsafe inflateStream()
        let out = unsafe scratchBuffer()
        let cap = output.count + Swift.max(limit, 0)
        var produced = 0
        var consumed = 0
        return try unsafe input.withUnsafeBufferPointer { (buffer) throws(WSTransformError) -> WSDecodeProgress in
            while true {
                // Input: the payload, then (once it is all in and the message ends) the tail.
                var feedingTail = false
                if consumed < buffer.count {
                    unsafe s.pointee.next_in = UnsafeMutablePointer(mutating: buffer.baseAddress! + consumed)
                    unsafe s.pointee.avail_in = UInt32(Swift.min(buffer.count - consumed, 1 << 30))
                } else if isFinal && !streamEnded && tailFed < 4 {
                    feedingTail = true
                    // §7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of the payload".
                    unsafe s.pointee.next_in = (out.baseAddress! + Self.scratchSize + Int(tailFed)).assumingMemoryBound(to: UInt8.self)
                    unsafe s.pointee.avail_in = UInt32(4 - tailFed)
                } else {
                    unsafe s.pointee.next_in = nil
                    unsafe s.pointee.avail_in = 0
                }
                // Output: up to the pause point; past the limit, one byte to see if more comes.
                if produced >= pauseAfter { return WSDecodeProgress(consumed: consumed, status: .paused) }
                let room = Swift.min(Self.scratchSize, pauseAfter - produced, limit - produced)
                let probing = room <= 0
                let space = probing ? 1 : room
                unsafe s.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
                unsafe s.pointee.avail_out = UInt32(space)

                let fed = Int(unsafe s.pointee.avail_in)
                let rc = unsafe inflate(s, Z_SYNC_FLUSH)
                let used = fed - Int(unsafe s.pointee.avail_in)
                if feedingTail { tailFed += UInt8(used) } else { consumed += used }
                if used > 0 && !feedingTail { streamEnded = false }
                let n = space - Int(unsafe s.pointee.avail_out)
                if used > 0 || n > 0 { atBoundary = unsafe s.pointee.data_type & 128 != 0 }
                if n > 0 {
                    if probing { throw .outputLimitExceeded }
                    if output.capacity < output.count + n {
                        // Grow geometrically, by at most `maxGrowthStep` at a time (a memory
                        // budget shared by connections is checked between calls: one step is
                        // what a connection can overshoot it by), and never past the limit.
                        let grown = Swift.min(output.capacity * 2, output.capacity + Self.maxGrowthStep, cap)
                        output.reserveCapacity(Swift.max(output.count + n, grown))
                    }
                    unsafe output.append(contentsOf: UnsafeRawBufferPointer(rebasing: out[0..<n]))
                    produced += n
                }
                switch rc {
                case Z_OK, Z_BUF_ERROR:
                    break
                case Z_STREAM_END:
                    // A BFINAL block ended the DEFLATE stream: whatever follows is a new one.
                    _ = unsafe inflateReset(s)
                    streamEnded = true
                    continue
                case Z_DATA_ERROR:
                    let why = unsafe s.pointee.msg.map { unsafe String(cString: $0) } ?? "invalid data"
                    throw .invalidData("invalid DEFLATE data: \(why)")
                default:
                    throw .invalidData("inflate failed with zlib code \(rc)")
                }
                if unsafe s.pointee.avail_out == 0 { continue }  // the output was full: more may come
                if consumed < buffer.count {
                    // Output room and input left, yet no progress: zlib would not go on.
                    if used == 0 && n == 0 { throw .invalidData("inflate made no progress") }
                    continue
                }
                if !isFinal { return WSDecodeProgress(consumed: consumed, status: .needsInput) }
                if !streamEnded && tailFed < 4 { continue }
                // The message is complete. It must end on a block boundary, or exactly at the end
                // of a final block.
                guard streamEnded || atBoundary else {
                    throw .invalidData("compressed message does not end on a DEFLATE block boundary")
                }
                tailFed = 0
                streamEnded = false
                if profile.receiveNoContextTakeover { _ = unsafe inflateReset(s) }
                return WSDecodeProgress(consumed: consumed, status: .finished)
            }
        }
    }


    private func inflateStream() -> UnsafeMutablePointer<z_stream> {
        if let s = unsafe inflater { return unsafe s }
        // Always the largest window, whatever the peer agreed to use. A larger window than the
        // peer's always works (zlib before 1.2.9 compressed with 9 bits when asked for 8), and a
        // smaller one would make the outcome depend on how the input was split: zlib also
        // accepts a distance beyond the window when the bytes are in the current call's output,
        // so a peer that overstepped its window would fail or not depending on read sizes.
        let s = unsafe Self.allocateStream { unsafe cws_inflateInit2($0, -15) }
        unsafe inflater = s
        return unsafe s
    }

    private func endInflater() {
        unsafe Self.free(inflater) { unsafe inflateEnd($0) }
        unsafe inflater = nil
    }

    /// Where zlib writes before the bytes are appended to an array (which has no way to expose
    /// uninitialized capacity), followed by the 4-byte tail 00 00 ff ff: the thread's, used
    /// within one call.
    private func scratchBuffer() -> UnsafeMutableRawBufferPointer {
        unsafe ThreadZlib.current.scratch
    }

    // MARK: Memory

    public func maxEncodedSize(forDecodedSize n: Int) -> Int {
        profile.maxEncodedSize(forDecodedSize: n)
    }

    /// Frees each context that is reset after every message anyway.
    public func releaseIdleMemory() {
        if profile.sendNoContextTakeover && !encodingAcrossCalls { endDeflater() }
        if profile.receiveNoContextTakeover { endInflater() }
    }
}

/// What a thread's (an event loop's) connections share: a compressor per set of parameters, for
/// whole messages under no-context-takeover (reset after each), and the scratch buffer every
/// zlib call writes into. Freed when the thread ends.
@safe final class ThreadZlib {
    static let scratchSize = 16 << 10

    /// The scratch buffer and, after it, the tail 00 00 ff ff.
    let scratch: UnsafeMutableRawBufferPointer
    private var deflaters: [Int64: UnsafeMutablePointer<z_stream>] = unsafe [:]

    private init() {
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.scratchSize + 4, alignment: 16)
        unsafe b.storeBytes(of: UInt32(bigEndian: 0x0000_FFFF), toByteOffset: Self.scratchSize, as: UInt32.self)
        unsafe scratch = UnsafeMutableRawBufferPointer(rebasing: b[0..<Self.scratchSize])
    }

    deinit {
        for unsafe s in unsafe deflaters.values {
            _ = unsafe deflateEnd(s)
            unsafe s.deinitialize(count: 1)
            unsafe s.deallocate()
        }
        unsafe scratch.deallocate()
    }

    /// The shared compressor for these parameters, in its reset state (callers reset it after
    /// each message).
    func deflater(windowBits: Int32, level: Int32, memoryLevel: Int32, strategy: Int32) -> UnsafeMutablePointer<z_stream> {
        let key = Int64(windowBits) & 0xFF | Int64(level) << 8 | Int64(memoryLevel) << 16 | Int64(strategy) << 24
        if let s = unsafe deflaters[key] { return unsafe s }
        let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        unsafe s.initialize(to: z_stream())
        let rc = unsafe cws_deflateInit2(s, level, windowBits, memoryLevel, strategy)
        precondition(rc == Z_OK, "zlib deflateInit2 failed: \(rc)")
        unsafe deflaters[key] = s
        return unsafe s
    }

    /// This thread's.
    static var current: ThreadZlib {
        if let p = unsafe pthread_getspecific(key) { return unsafe Unmanaged<ThreadZlib>.fromOpaque(p).takeUnretainedValue() }
        let z = ThreadZlib()
        _ = unsafe pthread_setspecific(key, Unmanaged.passRetained(z).toOpaque())
        return z
    }

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        let rc = unsafe pthread_key_create(&k) { p in
            if let p = unsafe p { unsafe Unmanaged<ThreadZlib>.fromOpaque(p).release() }
        }
        precondition(rc == 0, "pthread_key_create failed")
        return k
    }()
}
