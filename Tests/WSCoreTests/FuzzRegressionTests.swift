import Foundation
import Testing
import WSCore
import WSTesting

/// Inputs the fuzzers once crashed on, kept under Fixtures/fuzz-regressions/ and replayed with
/// the harness's own oracle: the same transcript whole and in the harness's pieces.
@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    static let folder = fixturesRoot + "/fuzz-regressions"
    static var inputs: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".bin") }.sorted()
    }

    @Test("the transcript does not depend on how the input is split", arguments: inputs)
    func regression(_ name: String) throws {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.folder + "/" + name)))
        let role: WSProtocol.Role = name.hasPrefix("server") ? .server : .client
        let (config, pieces, input) = harnessSetup(data)
        let whole = try replay(input, role: role, config: config, pieces: [input[...]])
        let split = try replay(input, role: role, config: config, pieces: pieces)
        #expect(whole.events.map(WSFixtureRunner.render) == split.events.map(WSFixtureRunner.render))
        #expect(whole == split)
    }
}

/// The configuration and split pattern the protocol fuzz harness derives from its first two bytes
/// (Fuzz/Sources/FuzzSupport/ProtocolHarness.swift).
func harnessSetup(_ data: [UInt8]) -> (WSProtocol.Configuration, [ArraySlice<UInt8>], [UInt8]) {
    let c = data[0], s = data[1]
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
    let input = Array(data[2...])
    var pieces: [ArraySlice<UInt8>] = []
    var i = 0, step = 0
    while i < input.count {
        let n = s == 0 ? input.count : 1 + (Int(s) &* (step + 1)) % max(1, Int(s) % 17 + 1)
        pieces.append(input[i..<min(input.count, i + n)])
        i += n
        step += 1
    }
    return (config, pieces, input)
}
