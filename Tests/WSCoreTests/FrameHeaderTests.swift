import Testing
import WSCore
import WSTesting

@Suite("RFC 6455 §5.2 frame header: encode, fast decode, reference decode")
struct FrameHeaderTests {
    static let vectors: [(String, [UInt8], WSFrameHeader)] = [
        ("§5.7 unmasked Hello", [0x81, 0x05], WSFrameHeader(opcode: .text, payloadLength: 5)),
        ("§5.7 masked Hello", [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d], WSFrameHeader(opcode: .text, maskKey: WSMaskKey(0x37, 0xfa, 0x21, 0x3d), payloadLength: 5)),
        ("§5.7 first fragment", [0x01, 0x03], WSFrameHeader(fin: false, opcode: .text, payloadLength: 3)),
        ("§5.7 last fragment", [0x80, 0x02], WSFrameHeader(opcode: .continuation, payloadLength: 2)),
        ("§5.7 256 bytes", [0x82, 0x7E, 0x01, 0x00], WSFrameHeader(opcode: .binary, payloadLength: 256)),
        ("§5.7 64 KiB", [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0], WSFrameHeader(opcode: .binary, payloadLength: 65536)),
        ("RFC 7692 RSV1", [0xC1, 0x07], WSFrameHeader(rsv: WSFrameHeader.rsv1, opcode: .text, payloadLength: 7)),
        ("close", [0x88, 0x02], WSFrameHeader(opcode: .close, payloadLength: 2)),
        ("2^32", [0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0], WSFrameHeader(opcode: .binary, payloadLength: 1 << 32)),
        ("2^63 - 1", [0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], WSFrameHeader(opcode: .binary, payloadLength: (1 << 63) - 1)),
    ]

    @Test("vectors: encode(header) == bytes and decode(bytes) == header", arguments: vectors.indices)
    func vector(_ i: Int) {
        let (_, bytes, header) = Self.vectors[i]
        var encoded: [UInt8] = []
        header.encode(into: &encoded)
        #expect(encoded == bytes)
        #expect(header.encodedLength == bytes.count)
        #expect(WSFrameHeader.decode(bytes) == .header(header, length: bytes.count))
        #expect(WSFrameHeader.decodeReference(bytes) == .header(header, length: bytes.count))
    }

    @Test("every length boundary round-trips in both masking modes",
          arguments: [0, 1, 125, 126, 127, 128, 65535, 65536, 65537, 1 << 32, (1 << 32) + 1, (1 << 63) - 1] as [UInt64])
    func boundaries(_ length: UInt64) {
        for key in [nil, WSMaskKey(1, 2, 3, 4)] {
            let header = WSFrameHeader(opcode: .binary, maskKey: key, payloadLength: length)
            var bytes: [UInt8] = []
            header.encode(into: &bytes)
            #expect(bytes.count == (length < 126 ? 2 : length <= 65535 ? 4 : 10) + (key == nil ? 0 : 4))
            #expect(WSFrameHeader.decode(bytes) == .header(header, length: bytes.count))
            // Every proper prefix is incomplete and says how much it needs.
            for n in 0..<bytes.count {
                guard case .incomplete(let needed) = WSFrameHeader.decode(bytes[..<n]) else {
                    Issue.record("prefix of \(n) bytes decoded"); continue
                }
                #expect(needed > n && needed <= bytes.count)
            }
        }
    }

    @Test("decoding rejects non-minimal lengths and a set MSB")
    func invalidLengths() {
        #expect(WSFrameHeader.decode([0x82, 0x7E, 0x00, 0x7D] as [UInt8]) == .invalid(.nonMinimalLength))
        #expect(WSFrameHeader.decode([0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] as [UInt8]) == .invalid(.nonMinimalLength))
        #expect(WSFrameHeader.decode([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0] as [UInt8]) == .invalid(.lengthMSBSet))
    }

    @Test("property: encode∘decode is the identity for random headers; the fast encoder writes the reference's bytes")
    func roundTrip() {
        var rng = WSSeededRandom(seed: 52)
        for _ in 0..<5000 {
            let lengths: [UInt64] = [rng.next() % 126, 126 + rng.next() % 65410, 65536 + rng.next() % (1 << 40), rng.next() >> 1]
            let header = WSFrameHeader(
                fin: rng.next() & 1 == 0, rsv: UInt8(rng.next() & 7), opcode: WSOpcode(rawValue: UInt8(rng.next() & 0xF))!,
                maskKey: rng.next() & 1 == 0 ? nil : WSMaskKey(rawValue: UInt32(truncatingIfNeeded: rng.next())),
                payloadLength: lengths[Int(rng.next() % 4)])
            var bytes: [UInt8] = []
            header.encode(into: &bytes)
            // The fast encoder (stores into a raw buffer) writes the same bytes.
            var fast = [UInt8](repeating: 0xEE, count: WSFrameHeader.maxLength)
            let written = unsafe fast.withUnsafeMutableBytes { unsafe header.encode(to: $0.baseAddress!) }
            #expect(Array(fast[..<written]) == bytes)
            bytes += (0..<Int(rng.next() % 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }  // trailing payload
            #expect(WSFrameHeader.decode(bytes) == .header(header, length: header.encodedLength))
        }
    }

    @Test("property: fast decode == reference decode on random bytes and every prefix")
    func differential() {
        var rng = WSSeededRandom(seed: 77)
        var mismatches = 0
        for _ in 0..<20000 {
            var bytes = (0..<16).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if rng.next() & 1 == 0 { bytes[1] = (bytes[1] & 0x80) | (rng.next() & 1 == 0 ? 126 : 127) }
            if rng.next() & 3 == 0 { bytes[2] = 0 }
            for n in 0...bytes.count where WSFrameHeader.decode(bytes[..<n]) != WSFrameHeader.decodeReference(bytes[..<n]) {
                mismatches += 1
            }
        }
        #expect(mismatches == 0)
    }
}
