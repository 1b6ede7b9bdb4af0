// Masking and unmasking (RFC 6455 §5.3): the kernels and their scalar reference.
//
// "Octet i of the transformed data is the XOR of octet i of the original data with octet at
// index i modulo 4 of the masking key." The `phase` argument is the index modulo 4 of the first
// byte of the buffer, so a payload can be unmasked slice by slice as it arrives.
//
// - `apply`: on CPUs with AVX2, buffers of 256 bytes or more go to the C kernel in CWSFastPaths
//   (32-byte vectors; Swift cannot target AVX2 per function), the rest to the portable kernel.
// - `applyPortable`: XORs 64 bytes per step with a `SIMD16<UInt32>` holding the key rotated to the
//   phase, then 8-byte words, then bytes. Wider byte vectors (`SIMD32/64<UInt8>`) are scalarized by
//   Swift 6.3 and run ~500× slower; see ../shared/TOOLCHAIN.md §3.
// - `applyReference`: the RFC's definition, byte by byte.
// Tests and the fuzz target compare all three.

internal import CWSFastPaths

/// Whether the AVX2 kernels of CWSFastPaths may run (checked once; a CPU fact, not state).
let cpuHasAVX2 = cws_has_avx2() != 0

/// A 4-byte masking key ([RFC 6455 §5.3](https://www.rfc-editor.org/rfc/rfc6455#section-5.3)).
///
/// Stored as a `UInt32` whose little-endian bytes are the key bytes in wire order, so
/// `WSMaskKey(0x37, 0xfa, 0x21, 0x3d)` is the key that appears on the wire as `37 fa 21 3d`.
public struct WSMaskKey: Hashable, Sendable, CustomStringConvertible {
    /// The key bytes as a little-endian word: byte 0 on the wire is the low byte.
    public var rawValue: UInt32

    /// Creates a key from its little-endian word (byte 0 on the wire is the low byte).
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Creates a key from its four bytes in wire order.
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) {
        rawValue = UInt32(b0) | UInt32(b1) << 8 | UInt32(b2) << 16 | UInt32(b3) << 24
    }

    /// Key byte `i % 4` in wire order.
    public subscript(i: Int) -> UInt8 { UInt8(truncatingIfNeeded: rawValue >> UInt32((i & 3) * 8)) }

    public var description: String {
        (0..<4).map { i in let h = String(self[i], radix: 16); return h.count == 1 ? "0" + h : h }.joined()
    }

    /// The key word rotated so that its low byte applies to a buffer starting at `phase`.
    @inline(__always)
    func word(phase: Int) -> UInt32 {
        let s = UInt32((phase & 3) * 8)
        return s == 0 ? rawValue : (rawValue &>> s) | (rawValue &<< (32 &- s))
    }

    /// XORs `buffer` with the key in place, treating its first byte as payload index `phase`.
    ///
    /// Masking and unmasking are the same operation. Pass the returned value as the next
    /// slice's `phase` to continue a payload that arrives in pieces.
    /// - Returns: `(phase + buffer.count) % 4`.
    @discardableResult
    public func apply(to buffer: UnsafeMutableRawBufferPointer, phase: Int) -> Int {
        if buffer.count >= 256, cpuHasAVX2, let base = buffer.baseAddress {
            // Peel up to 31 bytes so the vector loop runs on 32-byte-aligned addresses: payloads
            // start 2 to 14 bytes into a frame, and unaligned 32-byte accesses straddle cache lines.
            let head = (32 &- Int(bitPattern: base) & 31) & 31
            let vectorPhase = unsafe applyPortable(to: UnsafeMutableRawBufferPointer(rebasing: buffer[..<head]), phase: phase)
            let done = unsafe cws_mask_avx2(base.advanced(by: head).assumingMemoryBound(to: UInt8.self), buffer.count &- head,
                                            word(phase: vectorPhase))
            // `done` is a multiple of 32, so the phase of the remainder is unchanged.
            unsafe applyPortable(to: UnsafeMutableRawBufferPointer(rebasing: buffer[(head &+ done)...]), phase: vectorPhase)
            return (phase &+ buffer.count) & 3
        }
        return unsafe applyPortable(to: buffer, phase: phase)
    }

    /// Whether ``apply(to:phase:)`` and ``WSUTF8Validator/validate(_:)`` use the AVX2 kernels on
    /// this CPU (for benchmarks and diagnostics).
    @_spi(Reference)
    public static var usesAVX2: Bool { cpuHasAVX2 }

    /// The portable Swift kernel (any CPU): the fallback of ``apply(to:phase:)``.
    @_spi(Reference)
    @discardableResult
    public func applyPortable(to buffer: UnsafeMutableRawBufferPointer, phase: Int) -> Int {
        guard let base = buffer.baseAddress else { return phase & 3 }
        let n = buffer.count
        let w32 = word(phase: phase)
        var i = 0
        if n >= 64 {
            let v = SIMD16<UInt32>(repeating: w32)
            while n &- i >= 64 {
                let x = unsafe base.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt32>.self)
                unsafe base.storeBytes(of: x ^ v, toByteOffset: i, as: SIMD16<UInt32>.self)
                i &+= 64
            }
        }
        let w64 = UInt64(w32) | UInt64(w32) &<< 32
        while n &- i >= 8 {
            let x = unsafe base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            unsafe base.storeBytes(of: x ^ w64, toByteOffset: i, as: UInt64.self)
            i &+= 8
        }
        // i is a multiple of 8 here, so byte i still lines up with the low byte of w32.
        var w = w32
        while i < n {
            let x = unsafe base.load(fromByteOffset: i, as: UInt8.self)
            unsafe base.storeBytes(of: x ^ UInt8(truncatingIfNeeded: w), toByteOffset: i, as: UInt8.self)
            w = (w &>> 8) | (w &<< 24)
            i &+= 1
        }
        return (phase &+ n) & 3
    }

    /// XORs `count` (at most 32) bytes at `base`: the inlined path for small payloads, same
    /// result as ``apply(to:phase:)``.
    @inline(__always)
    func applySmall(to base: UnsafeMutableRawPointer, count: Int, phase: Int) {
        let w32 = word(phase: phase)
        let w64 = UInt64(w32) | UInt64(w32) &<< 32
        var i = 0
        while count &- i >= 8 {
            unsafe base.storeBytes(of: base.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ w64, toByteOffset: i, as: UInt64.self)
            i &+= 8
        }
        var w = w32
        while i < count {
            unsafe base.storeBytes(of: base.load(fromByteOffset: i, as: UInt8.self) ^ UInt8(truncatingIfNeeded: w), toByteOffset: i, as: UInt8.self)
            w = (w &>> 8) | (w &<< 24)
            i &+= 1
        }
    }

    /// The RFC's definition, one byte at a time: the reference for ``apply(to:phase:)``.
    @_spi(Reference)
    @discardableResult
    public func applyReference(to buffer: UnsafeMutableRawBufferPointer, phase: Int) -> Int {
        for i in 0..<buffer.count {
            unsafe buffer[i] ^= self[phase &+ i]
        }
        return (phase &+ buffer.count) & 3
    }

    /// Masks or unmasks `bytes` in place; the safe entry point for arrays.
    @discardableResult
    public func apply(to bytes: inout [UInt8], phase: Int = 0) -> Int {
        unsafe bytes.withUnsafeMutableBytes { unsafe apply(to: $0, phase: phase) }
    }
}
