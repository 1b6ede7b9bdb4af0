import Testing
@_spi(Reference) import WSCore
import WSTesting

/// The dispatching kernel's answer: the first invalid index over the whole input (nil if none)
/// and the final completeness, feeding `bytes` in the given pieces. Checks that the portable
/// kernel gives the same answer.
func kernel(_ bytes: [UInt8], cuts: [Int] = []) -> (bad: Int?, complete: Bool) {
    let dispatched = run(bytes, cuts: cuts) { v, b in v.validate(b) }
    let portable = run(bytes, cuts: cuts) { v, b in v.validatePortable(b) }
    #expect(dispatched == portable, "AVX2 dispatch and portable kernel disagree")
    return dispatched
}

func run(_ bytes: [UInt8], cuts: [Int], _ validate: (inout WSUTF8Validator, UnsafeRawBufferPointer) -> Int?) -> (bad: Int?, complete: Bool) {
    var v = WSUTF8Validator()
    var start = 0
    for end in cuts + [bytes.count] where end >= start {
        let r = bytes.withUnsafeBytes { validate(&v, UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
        if let r { return (start + r, false) }
        start = end
    }
    return (nil, v.isComplete)
}

func reference(_ bytes: [UInt8]) -> (bad: Int?, complete: Bool) {
    var v = WSUTF8Validator()
    let r = bytes.withUnsafeBytes { v.validateReference($0) }
    return (r, r == nil && v.isComplete)
}

func stdlibValid(_ bytes: [UInt8]) -> Bool { String(validating: bytes, as: UTF8.self) != nil }

/// Random text mixing ASCII runs, every UTF-8 length, and (rarely) one corrupted byte.
func randomText(_ rng: inout WSSeededRandom, length: Int, corrupt: Bool) -> [UInt8] {
    var out: [UInt8] = []
    let samples = ["a", "Hello, world ", "é", "ß", "€", "中文", "😀", "\u{10FFFF}", "\u{FFFF}", "\u{800}", "\u{7FF}"]
    while out.count < length {
        let s = samples[Int(rng.next() % UInt64(samples.count))]
        let n = rng.next() % 4 == 0 ? 1 + Int(rng.next() % 40) : 1
        for _ in 0..<n { out += Array(s.utf8) }
    }
    out.removeLast(out.count - length)  // may cut a character: then the text ends incomplete
    if corrupt, !out.isEmpty {
        let garbage: [UInt8] = [0x80, 0xBF, 0xC0, 0xC1, 0xF5, 0xFF, 0xED, 0xE0, 0xF0, 0xF4]
        out[Int(rng.next() % UInt64(out.count))] = garbage[Int(rng.next() % UInt64(garbage.count))]
    }
    return out
}

@Suite("RFC 6455 §8.1 / RFC 3629 UTF-8 validation: kernel vs reference vs standard library")
struct UTF8ValidationTests {
    @Test("reference agrees with the standard library on every 1- and 2-byte input")
    func exhaustiveShort() {
        var mismatches: [[UInt8]] = []
        for a in 0...255 {
            if reference([UInt8(a)]).complete != stdlibValid([UInt8(a)]) { mismatches.append([UInt8(a)]) }
            for b in 0...255 {
                let s = [UInt8(a), UInt8(b)]
                if reference(s).complete != stdlibValid(s) { mismatches.append(s) }
            }
        }
        #expect(mismatches.isEmpty)
    }

    @Test("reference agrees with the standard library on 3-byte inputs starting E0–F4, and on 4-byte inputs")
    func exhaustiveLong() {
        var rng = WSSeededRandom(seed: 3)
        var mismatches: [[UInt8]] = []
        var checked = 0
        for a in 0xE0...0xF4 {
            for b in 0...255 {
                for c in stride(from: 0, through: 255, by: 3) {
                    let s = [UInt8(a), UInt8(b), UInt8(c)]
                    if reference(s).complete != stdlibValid(s) { mismatches.append(s) }
                    checked += 1
                }
                for _ in 0..<16 {
                    let s = [UInt8(a), UInt8(b), UInt8(0x80 | (rng.next() & 0x7F)), UInt8(0x80 | (rng.next() & 0x3F))]
                    if reference(s).complete != stdlibValid(s) { mismatches.append(s) }
                    checked += 1
                }
            }
        }
        #expect(mismatches.isEmpty)
        #expect(checked > 500_000 / 5)
    }

    @Test("fail fast: the reported index is the first byte no valid text could continue with")
    func failFast() {
        for (bytes, bad) in [([0xC0, 0x80], 0), ([0x61, 0xED, 0xA0, 0x80], 2), ([0xF4, 0x90], 1), ([0xE2, 0x82, 0x41], 2),
                             ([0xF0, 0x80], 1), ([0x80], 0), ([0x61, 0x62, 0xFF], 2)] as [([UInt8], Int)] {
            #expect(kernel(bytes).bad == bad)
            #expect(reference(bytes).bad == bad)
        }
    }

    @Test("kernel == reference for every length 0–130, random text, valid and corrupted", arguments: 0...130)
    func differentialLengths(length: Int) {
        var rng = WSSeededRandom(seed: UInt64(length) &* 7919)
        for trial in 0..<40 {
            let s = randomText(&rng, length: length, corrupt: trial % 2 == 1)
            let r = reference(s)
            #expect(kernel(s) == r)
            #expect(r.complete == stdlibValid(s))
            let cut = length == 0 ? 0 : Int(rng.next() % UInt64(length + 1))
            #expect(kernel(s, cuts: [cut]) == r, "split at \(cut)")
        }
    }

    @Test("kernel == reference on long inputs split at random points (state carried across calls)")
    func differentialLong() {
        var rng = WSSeededRandom(seed: 12345)
        for trial in 0..<300 {
            let s = randomText(&rng, length: Int(rng.next() % 5000), corrupt: trial % 3 == 0)
            var cuts = (0..<Int(rng.next() % 6)).map { _ in Int(rng.next() % UInt64(s.count + 1)) }.sorted()
            if trial % 5 == 0 { cuts = Array(stride(from: 1, to: s.count, by: 1 + Int(rng.next() % 7))) }
            let r = reference(s)
            #expect(kernel(s, cuts: cuts) == r)
            #expect(r.complete == stdlibValid(s))
        }
    }

    @Test("kernels == reference on byte soup drawn from every byte class (boundary bytes of each range)")
    func byteClassSoup() {
        // The edges of every range RFC 3629's grammar distinguishes.
        let classes: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
        var rng = WSSeededRandom(seed: 4242)
        var mismatches = 0, invalid = 0
        for _ in 0..<20_000 {
            let n = 30 + Int(rng.next() % 150)
            var s = (0..<n).map { _ in UInt8(0x41 + rng.next() % 26) }
            // Sprinkle valid boundary characters, and now and then one class byte.
            let valid = ["\u{80}", "\u{7FF}", "\u{800}", "\u{D7FF}", "\u{E000}", "\u{FFFF}", "\u{10000}", "\u{10FFFF}", "é", "😀"]
            for _ in 0..<Int(1 + rng.next() % 6) {
                let c = Array(valid[Int(rng.next() % UInt64(valid.count))].utf8)
                let at = Int(rng.next() % UInt64(n - 4))
                s.replaceSubrange(at..<(at + c.count), with: c)
            }
            if rng.next() % 3 != 0 {
                let at = Int(rng.next() % UInt64(n))
                s[at] = classes[Int(rng.next() % UInt64(classes.count))]
                if at + 1 < n, rng.next() & 1 == 0 { s[at + 1] = 0x80 | UInt8(rng.next() & 0x3F) }
            }
            let r = reference(s)
            if r.bad != nil { invalid += 1 }
            if kernel(s) != r || kernel(s, cuts: [Int(rng.next() % UInt64(n))]) != r { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(invalid > 5_000 && invalid < 19_000, "soup should be a mix of valid and invalid: \(invalid)")
    }

    @Test("pure ASCII blocks and an error right after a long ASCII run")
    func asciiFastPath() {
        var s = [UInt8](repeating: 0x41, count: 4096)
        #expect(kernel(s) == (nil, true))
        s[4000] = 0x80
        #expect(kernel(s).bad == 4000)
        s[4000] = 0xE2  // truncated at the very end of a block
        s[4001] = 0x82
        #expect(kernel(s).bad == 4002)
        #expect(kernel(Array(s[..<4002])) == (nil, false), "valid so far, but incomplete")
    }

    @Test("an invalid validator stays invalid")
    func sticky() {
        var v = WSUTF8Validator()
        #expect(v.validate([0xFF] as [UInt8]) == 0)
        #expect(v.validate(Array("fine".utf8)) == 0)
        #expect(!v.isValid && !v.isComplete)
    }
}
