public import WSCore

/// A generator that yields the given masking keys in order, for replaying transcripts.
///
/// ``WSProtocol`` draws two keys per 64-bit value (low half first), so each `next()` packs the
/// next two keys of the list. After the list runs out it starts over.
public struct WSMaskKeySequence: RandomNumberGenerator, Sendable {
    private let keys: [WSMaskKey]
    private var index = 0

    /// - Parameter keys: the keys, in the order the engine's frames will use them; must not be empty.
    public init(_ keys: [WSMaskKey]) {
        precondition(!keys.isEmpty, "WSMaskKeySequence needs at least one key")
        self.keys = keys
    }

    public mutating func next() -> UInt64 {
        let low = keys[index % keys.count].rawValue
        let high = keys[(index + 1) % keys.count].rawValue
        index += 2
        return UInt64(low) | UInt64(high) << 32
    }
}

/// A small, fast, seeded generator (SplitMix64) for property tests and deterministic runs.
///
/// Not cryptographically secure: never use it for masking keys on a real network.
public struct WSSeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
