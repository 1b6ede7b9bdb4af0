public import WSCore
public import WSDeflate

/// The input format of the `WSProtocol` fuzz harnesses (Fuzz/Sources/FuzzSupport), decoded in
/// one place so that a crash input replays identically in the fuzzer and in the tests.
///
/// Byte 0 chooses the configuration, byte 1 how the rest is split into reads (and, by its bit 3,
/// a decode slice size), and the rest is what the peer sends.
public struct WSProtocolFuzzInput: Sendable {
    /// The engine configuration chosen by byte 0.
    public var configuration: WSProtocol.Configuration
    /// The bytes the peer sends.
    public var input: [UInt8]
    /// `input` cut into the reads the harness feeds one by one.
    public var pieces: [ArraySlice<UInt8>]
    /// Every how many reads the harness's third run advances the clock.
    public var tickEvery: Int
    /// Byte 0's bit 7, which means one thing per harness kind (``deflate``, ``rejectsUpgrade``).
    private var bit7: Bool

    /// Engines that start open: permessage-deflate is in use.
    public var deflate: Bool { bit7 }
    /// Engines that start with the handshake (which always offer permessage-deflate): the
    /// server rejects the upgrade instead of accepting it.
    public var rejectsUpgrade: Bool { bit7 }

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
        // A few compressed bytes can inflate to the whole limit; 64 KiB keeps each run fast
        // (the limit's logic is the same at any size).
        config.maxDecompressedSize = c & 16 != 0 ? 300 : 64 << 10
        config.pingInterval = c & 32 != 0 ? .seconds(1) : nil
        config.pingTimeout = .seconds(1)
        config.idleTimeout = c & 64 != 0 ? .seconds(2) : nil
        config.closeTimeout = .seconds(3)
        // Bit 3 of the split byte: decode compressed messages in slices (1–3316 bytes).
        config.decodeSliceSize = s & 8 != 0 ? 1 + Int(s) * 13 : nil
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
        bit7 = c & 128 != 0
    }

    /// permessage-deflate as the harnesses negotiate it: every message compressed, whatever its size.
    public static let deflateNegotiator: WSPerMessageDeflate = {
        var c = WSPerMessageDeflate.Configuration()
        c.minimumSize = 0
        return try! WSPerMessageDeflate(c)
    }()

    /// The URL of the client handshake; its nonce comes from `WSSeededRandom(seed: 7)`
    /// (Fuzz/seed.py computes the matching accept key for the seed corpus).
    public static let handshakeURL = try! WSURL("ws://fuzz.test/chat")

    /// The engine the harnesses run: one that starts open (with permessage-deflate when
    /// ``deflate`` is set), or with `handshake`, a client or server that starts with the
    /// opening handshake, small limits, and permessage-deflate and a test extension on offer.
    public func makeEngine(role: WSProtocol.Role, handshake: Bool) throws(WSUsageError) -> WSProtocol {
        let keys = WSSeededRandom(seed: 7)
        guard handshake else {
            let transform = deflate ? Self.deflateNegotiator.makeTransform(agreed: WSExtensionElement(name: WSPerMessageDeflate.name), role: role) : nil
            return try WSProtocol(role: role, configuration: configuration, now: .zero, randomNumberGenerator: keys, transform: transform)
        }
        switch role {
        case .client:
            var h = WSClientHandshake(url: Self.handshakeURL)
            h.subprotocols = ["chat", "superchat"]
            h.extensions = [WSTestExtension(name: "x-test", offers: [WSExtensionElement(name: "x-test", parameters: [.init("a", "1")])]),
                            Self.deflateNegotiator]
            h.maxResponseHeaderSize = 1024
            h.maxRejectionBodySize = 256
            return try WSProtocol(client: h, configuration: configuration, now: .zero, randomNumberGenerator: keys)
        case .server:
            var h = WSServerHandshake()
            h.maxURILength = 256
            h.maxHeaderSize = 1024
            h.extensions = [WSTestExtension(name: "x-test"), Self.deflateNegotiator]
            return try WSProtocol(server: h, configuration: configuration, now: .zero)
        }
    }

    /// Whether a run ended because more than `maxHeaderSize` bytes arrived while the upgrade
    /// awaited the application's decision: the one outcome that depends on when the
    /// application decides (read whole, it decides after every byte arrived), so harnesses
    /// do not compare such a run with a split one.
    public static func decidedTooLate(_ events: [WSProtocol.Event]) -> Bool {
        events.contains { if case .handshakeFailed(let e) = $0 { e.code == .dataBeforeHandshake } else { false } }
    }

    /// What the server harness decides on each upgrade request: accept (choosing a subprotocol),
    /// or reject (``rejectsUpgrade``).
    public func decide(_ engine: inout WSProtocol) throws(WSUsageError) {
        guard let request = engine.pendingUpgrade else { return }
        if rejectsUpgrade {
            try engine.reject(status: .forbidden, body: Array("no".utf8))
        } else {
            try engine.accept(subprotocol: request.selectSubprotocol(preferring: ["superchat", "chat"]))
        }
    }
}
