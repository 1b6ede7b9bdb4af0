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
        let fuzz = try #require(WSProtocolFuzzInput(data))
        let whole = try replay(fuzz.input, role: role, config: fuzz.configuration, pieces: [fuzz.input[...]])
        let split = try replay(fuzz.input, role: role, config: fuzz.configuration, pieces: fuzz.pieces)
        #expect(whole.events.map(WSFixtureRunner.render) == split.events.map(WSFixtureRunner.render))
        #expect(whole == split)
    }
}
