import Testing
@_spi(Reference) import WSCore
import WSTesting

@Suite("RFC 6455 §5.3 masking: SIMD kernel vs reference")
struct MaskingTests {
    @Test("§5.7: \"Hello\" masked with 37 fa 21 3d is 7f 9f 4d 51 58")
    func rfcExample() {
        var bytes = Array("Hello".utf8)
        WSMaskKey(0x37, 0xfa, 0x21, 0x3d).apply(to: &bytes)
        #expect(bytes == [0x7f, 0x9f, 0x4d, 0x51, 0x58])
    }

    @Test("dispatching kernel == portable kernel == reference for lengths 0–130 and around the AVX2 threshold, × 4 phases × 8 buffer offsets",
          arguments: Array(0...130) + [255, 256, 257, 288, 300, 511, 512, 1000, 4097])
    func differential(length: Int) {
        var rng = WSSeededRandom(seed: UInt64(length))
        let key = WSMaskKey(rawValue: UInt32(truncatingIfNeeded: rng.next()))
        let data = (0..<(length + 8)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for phase in 0..<4 {
            for offset in 0..<8 {
                var fast = data, portable = data, slow = data
                let p1 = fast.withUnsafeMutableBytes { key.apply(to: UnsafeMutableRawBufferPointer(rebasing: $0[offset..<(offset + length)]), phase: phase) }
                let p2 = portable.withUnsafeMutableBytes { key.applyPortable(to: UnsafeMutableRawBufferPointer(rebasing: $0[offset..<(offset + length)]), phase: phase) }
                let p3 = slow.withUnsafeMutableBytes { key.applyReference(to: UnsafeMutableRawBufferPointer(rebasing: $0[offset..<(offset + length)]), phase: phase) }
                #expect(fast == slow, "length \(length) phase \(phase) offset \(offset)")
                #expect(portable == slow, "length \(length) phase \(phase) offset \(offset)")
                #expect(p1 == p3 && p2 == p3 && p1 == (phase + length) % 4)
            }
        }
    }

    @Test("unmasking slice by slice with the returned phase equals unmasking at once")
    func slices() {
        var rng = WSSeededRandom(seed: 99)
        for _ in 0..<200 {
            let key = WSMaskKey(rawValue: UInt32(truncatingIfNeeded: rng.next()))
            let data = (0..<Int(rng.next() % 3000)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var whole = data
            key.apply(to: &whole)
            var pieces = data
            var phase = 0, start = 0
            while start < pieces.count {
                let end = min(pieces.count, start + 1 + Int(rng.next() % 200))
                phase = pieces.withUnsafeMutableBytes { key.apply(to: UnsafeMutableRawBufferPointer(rebasing: $0[start..<end]), phase: phase) }
                start = end
            }
            #expect(pieces == whole)
            key.apply(to: &whole)
            #expect(whole == data, "masking twice is the identity")
        }
    }
}
