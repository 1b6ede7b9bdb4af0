public import WSCore

/// The input format of the `WSProtocol` fuzz harnesses (Fuzz/Sources/FuzzSupport), decoded in
/// one place so that a crash input replays identically in the fuzzer and in the tests.
///
/// Byte 0 chooses the configuration, byte 1 how the rest is split into reads, and the rest is
/// what the peer sends.
public struct WSProtocolFuzzInput: Sendable {
    /// The engine configuration chosen by byte 0.
    public var configuration: WSProtocol.Configuration
    /// The bytes the peer sends.
    public var input: [UInt8]
    /// `input` cut into the reads the harness feeds one by one.
    public var pieces: [ArraySlice<UInt8>]
    /// Every how many reads the harness's third run advances the clock.
    public var tickEvery: Int

    /// Decodes a harness input; nil when it is shorter than the two control bytes.
    public init?(_ data: some Collection<UInt8>) {
        let bytes = Array(data)
        guard bytes.count >= 2 else { return nil }
        let c = bytes[0], s = bytes[1]
        var config = WSProtocol.Configuration()
        config.delivery = c & 1 == 0 ? .wholeMessages : .streaming
        config.autoPong = c & 2 == 0
        config.autoCloseReply = c & 4 == 0
        config.acceptUnmaskedFrames = c & 8 != 0
        if c & 16 != 0 {
            config.maxFrameSize = 64
            config.maxMessageSize = 100
            config.maxFragmentsPerMessage = 4
        }
        config.pingInterval = c & 32 != 0 ? .seconds(1) : nil
        config.pingTimeout = .seconds(1)
        config.idleTimeout = c & 64 != 0 ? .seconds(2) : nil
        config.closeTimeout = .seconds(3)
        configuration = config
        input = Array(bytes[2...])
        var pieces: [ArraySlice<UInt8>] = []
        var i = 0, step = 0
        while i < input.count {
            let n = s == 0 ? input.count : 1 + (Int(s) &* (step + 1)) % max(1, Int(s) % 17 + 1)
            pieces.append(input[i..<min(input.count, i + n)])
            i += n
            step += 1
        }
        self.pieces = pieces
        tickEvery = Int(s >> 4) + 1
    }
}
