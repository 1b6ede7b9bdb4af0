// Incremental UTF-8 validation (RFC 6455 §8.1, RFC 3629 §4): a fast kernel and its reference.
//
// The validator is a 9-state DFA over bytes whose state survives across calls, so a text message
// can be validated fragment by fragment and read by read, and it fails at the first byte that no
// valid continuation could follow ("fail fast"): `ED A0` (a surrogate) fails at `A0`, `C0` at once.
//
// `validate` dispatches: on CPUs with AVX2, inputs of 64 bytes or more are validated in bulk by the
// C kernel in CWSFastPaths (Keiser & Lemire's lookup algorithm, 32 bytes per step), with the DFA
// below handling the edges: finishing a character carried in from the previous call, and a
// character cut by the end of this one. Elsewhere, or for short inputs, the portable kernel runs.
//
// Portable kernel (`validatePortable`), in three layers:
// 1. ASCII fast path: while at a character boundary, skip 64-byte blocks whose bytes are all
//    below 0x80 (two `SIMD4<UInt64>` loads, one OR, one test).
// 2. Shift DFA: each byte's row packs every state's successor in one `UInt64`, 6 bits per state,
//    with states encoded as their bit offset. A step is `s = row[byte] &>> s`: one shift on the
//    loop-carried path, because x86 (and Swift's `&>>`) use only the low 6 bits of the count.
// 3. Two streams: a non-ASCII block is split at a character boundary near its middle and both
//    halves run in lockstep, which doubles the work per cycle on a latency-bound chain. The first
//    half must end at a boundary (else the text is invalid, because the second half starts at a
//    lead byte).
// Any failure is re-run through the scalar reference from the start of its block to find the
// exact byte, so results never depend on block boundaries or on which kernel ran.
//
// The reference (`stepReference`) is RFC 3629's table of well-formed sequences written as a
// switch. Tests and the fuzz target check both kernels == reference and reference == the standard
// library's `String(validating:)`.

internal import CWSFastPaths

/// An incremental, fail-fast UTF-8 validator.
///
/// Feed the bytes of a text message in any number of pieces with ``validate(_:)``; call
/// ``isComplete`` at the end of the message. State is a single word, so copying is free.
public struct WSUTF8Validator: Hashable, Sendable {
    /// The DFA state as its bit offset in a transition row (a multiple of 6 below 54).
    @usableFromInline var state: UInt64 = State.accept

    /// A validator at the start of a text (a character boundary).
    public init() {}

    /// Whether no invalid byte has been seen.
    public var isValid: Bool { state != State.reject }

    /// Whether the bytes so far are valid and end on a character boundary: at the end of a
    /// message, this is the message's validity.
    public var isComplete: Bool { state == State.accept }

    /// Validates the next bytes of the text.
    ///
    /// - Returns: `nil` if every byte so far is valid (the text may still end mid-character), or
    ///   the index in `bytes` of the first byte that makes the text invalid. Once invalid, the
    ///   validator stays invalid and returns 0 for further input.
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= 64, cpuHasAVX2, state != State.reject, let base = bytes.baseAddress else {
            return unsafe validatePortable(bytes)
        }
        let n = bytes.count
        // Finish a character begun in an earlier call (at most 3 bytes).
        var i = 0
        while state != State.accept, i < n {
            state = Self.stepReference(state, unsafe base.load(fromByteOffset: i, as: UInt8.self))
            if state == State.reject { return i }
            i &+= 1
        }
        let cut = unsafe Self.endOfLastCompleteCharacter(base, from: i, to: n)
        if cut &- i >= 32,
           unsafe cws_utf8_valid_avx2(base.advanced(by: i).assumingMemoryBound(to: UInt8.self), cut &- i) == 0 {
            if let bad = unsafe Self.locate(base, from: i, to: n, state: State.accept) {
                state = State.reject
                return bad
            }
            assertionFailure("AVX2 UTF-8 kernel reported an error the reference does not see")
        } else if cut &- i < 32 {
            return unsafe validatePortable(UnsafeRawBufferPointer(rebasing: bytes[i...])).map { i &+ $0 }
        }
        return unsafe validatePortable(UnsafeRawBufferPointer(rebasing: bytes[cut...])).map { cut &+ $0 }
    }

    /// Where the last character that fits entirely in `base[from..<to]` ends: `to`, unless the
    /// buffer ends inside a multi-byte character, in which case that character's lead byte.
    private static func endOfLastCompleteCharacter(_ base: UnsafeRawPointer, from: Int, to: Int) -> Int {
        var k = 1
        while k <= 3, to &- k >= from {
            let b = unsafe base.load(fromByteOffset: to &- k, as: UInt8.self)
            if b < 0x80 { return to }
            if b >= 0xC0 {
                let length = b >= 0xF0 ? 4 : (b >= 0xE0 ? 3 : 2)
                return length > k ? to &- k : to
            }
            k &+= 1
        }
        return to
    }

    /// The portable Swift kernel (any CPU): the fallback of ``validate(_:)``, same contract.
    @_spi(Reference)
    public mutating func validatePortable(_ bytes: UnsafeRawBufferPointer) -> Int? {
        if state == State.reject { return 0 }
        guard let base = bytes.baseAddress else { return nil }
        let n = bytes.count
        var s = state
        var i = 0
        let entry = state
        // .some(nil): valid so far; .some(i): invalid at i; nil: the kernel saw an error the
        // reference cannot find (a kernel bug; the reference decides).
        let verdict: Int?? = unsafe Self.rows.withUnsafeBufferPointer { rows -> Int?? in
            let t = unsafe rows.baseAddress.unsafelyUnwrapped
            while i &+ 64 <= n {
                if s == State.accept {
                    let a = unsafe base.loadUnaligned(fromByteOffset: i, as: SIMD4<UInt64>.self)
                    let b = unsafe base.loadUnaligned(fromByteOffset: i &+ 32, as: SIMD4<UInt64>.self)
                    if (a | b) & SIMD4(repeating: 0x8080_8080_8080_8080) == SIMD4.zero {
                        i &+= 64
                        continue
                    }
                }
                // Split the block at a lead or ASCII byte within 4 bytes of its middle.
                var j = i &+ 32
                while j < i &+ 36, unsafe base.load(fromByteOffset: j, as: UInt8.self) & 0xC0 == 0x80 { j &+= 1 }
                if j == i &+ 36 { return unsafe Self.locate(base, from: i, to: n, state: s).map { .some($0) } }  // 4 continuation bytes
                var a = s, b = State.accept
                let lenB = i &+ 64 &- j
                var k = 0
                while k < lenB {
                    a = unsafe t[Int(base.load(fromByteOffset: i &+ k, as: UInt8.self))] &>> a
                    b = unsafe t[Int(base.load(fromByteOffset: j &+ k, as: UInt8.self))] &>> b
                    k &+= 1
                }
                while i &+ k < j {
                    a = unsafe t[Int(base.load(fromByteOffset: i &+ k, as: UInt8.self))] &>> a
                    k &+= 1
                }
                b &= 63
                if a & 63 != State.accept || b == State.reject {
                    return unsafe Self.locate(base, from: i, to: n, state: s).map { .some($0) }
                }
                s = b
                i &+= 64
            }
            let start = i, s0 = s
            while i < n {
                s = unsafe t[Int(base.load(fromByteOffset: i, as: UInt8.self))] &>> s
                i &+= 1
            }
            s &= 63
            if s == State.reject { return unsafe Self.locate(base, from: start, to: n, state: s0).map { .some($0) } }
            return .some(nil)
        }
        switch verdict {
        case .some(nil):
            state = s
            return nil
        case .some(let bad?):
            state = State.reject
            return bad
        case nil:
            assertionFailure("UTF-8 kernel reported an error the reference does not see")
            state = entry
            return unsafe validateReference(bytes)
        }
    }

    /// Validates `bytes` (for example a whole message held in an array).
    public mutating func validate(_ bytes: some Collection<UInt8>) -> Int? {
        if let r = bytes.withContiguousStorageIfAvailable({ unsafe validate(UnsafeRawBufferPointer($0)) }) { return r }
        return unsafe Array(bytes).withUnsafeBytes { unsafe validate($0) }
    }

    /// Finds the first invalid byte at or after `from`, given the state at `from`, with the
    /// reference step (a kernel found one in this range).
    private static func locate(_ base: UnsafeRawPointer, from: Int, to: Int, state: UInt64) -> Int? {
        var s = state
        for i in from..<to {
            s = stepReference(s, unsafe base.load(fromByteOffset: i, as: UInt8.self))
            if s == State.reject { return i }
        }
        return nil
    }

    // MARK: - Reference

    /// The reference validator: the same contract as ``validate(_:)``, one byte at a time with
    /// ``stepReference(_:_:)``.
    @_spi(Reference)
    public mutating func validateReference(_ bytes: UnsafeRawBufferPointer) -> Int? {
        if state == State.reject { return 0 }
        for i in 0..<bytes.count {
            state = Self.stepReference(state, unsafe bytes[i])
            if state == State.reject { return i }
        }
        return nil
    }

    /// One DFA step, written from RFC 3629 §4's syntax of well-formed sequences:
    ///
    ///     UTF8-2 = %xC2-DF UTF8-tail
    ///     UTF8-3 = %xE0 %xA0-BF UTF8-tail / %xE1-EC 2( UTF8-tail ) /
    ///              %xED %x80-9F UTF8-tail / %xEE-EF 2( UTF8-tail )
    ///     UTF8-4 = %xF0 %x90-BF 2( UTF8-tail ) / %xF1-F3 3( UTF8-tail ) /
    ///              %xF4 %x80-8F 2( UTF8-tail )
    @_spi(Reference)
    public static func stepReference(_ s: UInt64, _ byte: UInt8) -> UInt64 {
        let tail = (0x80...0xBF).contains(byte)
        switch s {
        case State.accept:
            switch byte {
            case 0x00...0x7F: return State.accept
            case 0xC2...0xDF: return State.need1
            case 0xE0: return State.e0
            case 0xE1...0xEC, 0xEE...0xEF: return State.need2
            case 0xED: return State.ed
            case 0xF0: return State.f0
            case 0xF1...0xF3: return State.need3
            case 0xF4: return State.f4
            default: return State.reject
            }
        case State.need1: return tail ? State.accept : State.reject
        case State.need2: return tail ? State.need1 : State.reject
        case State.need3: return tail ? State.need2 : State.reject
        case State.e0: return (0xA0...0xBF).contains(byte) ? State.need1 : State.reject
        case State.ed: return (0x80...0x9F).contains(byte) ? State.need1 : State.reject
        case State.f0: return (0x90...0xBF).contains(byte) ? State.need2 : State.reject
        case State.f4: return (0x80...0x8F).contains(byte) ? State.need2 : State.reject
        default: return State.reject
        }
    }

    // MARK: - Tables

    /// States as bit offsets into a transition row. `accept` is 0 so a fresh row shifted by it
    /// yields the successor of the start state.
    @usableFromInline enum State {
        @usableFromInline static let accept: UInt64 = 0
        static let reject: UInt64 = 6
        static let need1: UInt64 = 12
        static let need2: UInt64 = 18
        static let e0: UInt64 = 24
        static let ed: UInt64 = 30
        static let need3: UInt64 = 36
        static let f0: UInt64 = 42
        static let f4: UInt64 = 48
        static let all: [UInt64] = [accept, reject, need1, need2, e0, ed, need3, f0, f4]
    }

    /// `rows[b]` holds, at bit offset `s`, the successor of state `s` on byte `b`; built from the
    /// reference step so the two cannot disagree on the transition function itself.
    private static let rows: [UInt64] = (0..<256).map { b in
        State.all.reduce(UInt64(0)) { row, s in row | stepReference(s, UInt8(b)) << s }
    }
}
