// Frame header decoding on a raw buffer: the fast path beside `WSFrameHeader.decodeReference`;
// and encoding into one: the fast path beside `WSFrameHeader.encode(into:)`.
//
// With 14 or more bytes buffered (the longest header) every field is read in one step with
// unaligned loads and no further length checks; with fewer, the same loads run after the total
// header length has been checked. Tests and the fuzz target compare it with the reference.

extension WSFrameHeader {
    /// Decodes a header from the front of `bytes`.
    @inline(__always)
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> Decoded {
        let n = bytes.count
        guard n >= 2, let p = bytes.baseAddress else { return .incomplete(needed: 2) }
        let b0 = unsafe p.load(as: UInt8.self)
        let b1 = unsafe p.load(fromByteOffset: 1, as: UInt8.self)
        let len7 = b1 & 0x7F
        let masked = b1 & 0x80 != 0
        let ext = len7 < 126 ? 0 : (len7 == 126 ? 2 : 8)
        let total = 2 &+ ext &+ (masked ? 4 : 0)
        if n < maxLength, n < total { return .incomplete(needed: total) }
        var length = UInt64(len7)
        if ext == 2 {
            length = UInt64(UInt16(bigEndian: unsafe p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            if length < 126 { return .invalid(.nonMinimalLength) }
        } else if ext == 8 {
            length = UInt64(bigEndian: unsafe p.loadUnaligned(fromByteOffset: 2, as: UInt64.self))
            if length >> 63 != 0 { return .invalid(.lengthMSBSet) }
            if length <= 0xFFFF { return .invalid(.nonMinimalLength) }
        }
        let key: WSMaskKey? = masked
            ? WSMaskKey(rawValue: UInt32(littleEndian: unsafe p.loadUnaligned(fromByteOffset: 2 &+ ext, as: UInt32.self)))
            : nil
        return .header(
            WSFrameHeader(fin: b0 & 0x80 != 0, rsv: (b0 >> 4) & 0b111, opcode: WSOpcode(unchecked: b0 & 0x0F),
                          maskKey: key, payloadLength: length),
            length: total)
    }

    /// Decodes a header from the front of `bytes`.
    public static func decode(_ bytes: some Collection<UInt8>) -> Decoded {
        if let r = bytes.withContiguousStorageIfAvailable({ unsafe decode(UnsafeRawBufferPointer($0)) }) { return r }
        return unsafe Array(bytes).withUnsafeBytes { unsafe decode($0) }
    }

    /// Writes the header at `p` (which must have room for ``maxLength`` bytes) and returns its
    /// length: the same bytes as ``encode(into:)``, with stores instead of array appends (the
    /// send path frames every message into the outbound buffer with it).
    @unsafe @inline(__always)
    public func encode(to p: UnsafeMutableRawPointer) -> Int {
        let b0 = (fin ? 0x80 : 0) | (rsv & 0b111) << 4 | opcode.rawValue
        let m: UInt8 = maskKey == nil ? 0 : 0x80
        unsafe p.storeBytes(of: b0, as: UInt8.self)
        var n: Int
        if payloadLength < 126 {
            unsafe p.storeBytes(of: m | UInt8(payloadLength), toByteOffset: 1, as: UInt8.self)
            n = 2
        } else if payloadLength <= 0xFFFF {
            unsafe p.storeBytes(of: m | 126, toByteOffset: 1, as: UInt8.self)
            unsafe p.storeBytes(of: UInt16(payloadLength).bigEndian, toByteOffset: 2, as: UInt16.self)
            n = 4
        } else {
            unsafe p.storeBytes(of: m | 127, toByteOffset: 1, as: UInt8.self)
            unsafe p.storeBytes(of: payloadLength.bigEndian, toByteOffset: 2, as: UInt64.self)
            n = 10
        }
        if let maskKey {
            unsafe p.storeBytes(of: maskKey.rawValue.littleEndian, toByteOffset: n, as: UInt32.self)
            n &+= 4
        }
        return n
    }
}
