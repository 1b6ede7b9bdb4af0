import Testing
import WSCore
import WSTesting

@Suite("Deterministic generators")
struct GeneratorTests {
    @Test("WSMaskKeySequence packs two keys per draw, low half first")
    func maskKeySequence() {
        var g = WSMaskKeySequence([WSMaskKey(0x37, 0xfa, 0x21, 0x3d), WSMaskKey(1, 2, 3, 4)])
        #expect(g.next() == 0x0403_0201_3d21_fa37)
    }

    @Test("WSSeededRandom is deterministic per seed")
    func seeded() {
        var a = WSSeededRandom(seed: 7), b = WSSeededRandom(seed: 7), c = WSSeededRandom(seed: 8)
        let x = (0..<4).map { _ in a.next() }
        #expect(x == (0..<4).map { _ in b.next() })
        #expect(x != (0..<4).map { _ in c.next() })
    }
}
