public import WSCore
public import WSDeflate

/// The input format of the `FuzzDeflateInflate` harness, decoded in one place so that a crash
/// input replays identically in the fuzzer and in the tests.
///
/// Byte 0: the receive window (8 + its low 3 bits) and the decompressed limit (bits 3–4: 16,
/// 1000, 65536 or 1 MiB); byte 1: the pause size and where the payload is cut into frames; the
/// rest: one compressed message payload.
public struct WSDeflateFuzzInput: Sendable {
    public var windowBits: Int
    public var limit: Int
    /// Streaming pause size for the split run.
    public var pauseAfter: Int
    public var payload: [UInt8]
    /// `payload` cut into frames for the split run.
    public var pieces: [[UInt8]]

    /// Decodes a harness input; nil when it is shorter than the two control bytes.
    public init?(_ data: some Collection<UInt8>) {
        let bytes = Array(data)
        guard bytes.count >= 2 else { return nil }
        windowBits = 8 + Int(bytes[0] & 7)
        limit = [16, 1000, 65536, 1 << 20][Int(bytes[0] >> 3) & 3]
        pauseAfter = 1 + Int(bytes[1]) * 37
        payload = Array(bytes[2...])
        var cuts: [Int] = []
        var at = 0
        while !payload.isEmpty, cuts.count < 8 {
            at += 1 + (Int(bytes[1]) &* (cuts.count + 3)) % max(1, payload.count / 2 + 1)
            if at >= payload.count { break }
            cuts.append(at)
        }
        var pieces: [[UInt8]] = []
        var start = 0
        for end in cuts + [payload.count] {
            pieces.append(Array(payload[start..<end]))
            start = end
        }
        self.pieces = pieces
    }
}

extension WSDeflateTransform {
    /// Decodes one whole message given as frame payloads, calling `decode` as the engine does:
    /// each frame's bytes until they are used, again after every pause, the last frame marked
    /// final. Returns the message or the decoding error. Breaking the transform contract (output
    /// past the limit, a frame left unused, a final frame that does not finish) is a
    /// precondition failure.
    public func decodeMessage(_ pieces: [[UInt8]], limit: Int = .max, pauseAfter: Int = .max) -> Result<[UInt8], WSTransformError> {
        var out: [UInt8] = []
        do {
            for (i, piece) in pieces.enumerated() {
                let last = i == pieces.count - 1
                var rest = piece[...]
                while true {
                    let p = try decode(Array(rest).span, isFinal: last, into: &out, pauseAfter: pauseAfter, limit: limit - out.count)
                    precondition(out.count <= limit, "output over the limit")
                    rest = rest.dropFirst(p.consumed)
                    if p.status == .finished { return .success(out) }
                    if p.status == .needsInput {
                        precondition(rest.isEmpty && !last, "needsInput with input left, or on the final frame")
                        break
                    }
                }
            }
        } catch {
            precondition(out.count <= limit, "output over the limit")
            return .failure(error)
        }
        preconditionFailure("the final frame did not finish the message")
    }
}
