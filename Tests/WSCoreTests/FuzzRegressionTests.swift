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
        // The protocol harnesses' inputs; deflate-inflate-*.bin are the codec's, replayed by the
        // deflate codec tests (finalBlockEndsInTail, limitBeforeDataError) and Fuzz/run.sh.
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
            .filter { $0.hasSuffix(".bin") && !$0.hasPrefix("deflate-inflate-") }.sorted()
    }

    @Test("the transcript does not depend on how the input is split", arguments: inputs)
    func regression(_ name: String) throws {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.folder + "/" + name)))
        // server-*, client-*: engines that start open; handshake-server-*, handshake-client-*:
        // engines that start with the opening handshake, as the handshake harnesses run them.
        let handshake = name.hasPrefix("handshake-")
        let role: WSProtocol.Role = name.dropFirst(handshake ? 10 : 0).hasPrefix("server") ? .server : .client
        let fuzz = try #require(WSProtocolFuzzInput(data))
        let whole = try Self.replay(fuzz, role: role, handshake: handshake, pieces: [fuzz.input[...]])
        let split = try Self.replay(fuzz, role: role, handshake: handshake, pieces: fuzz.pieces)
        if WSProtocolFuzzInput.decidedTooLate(whole.events) { return }  // timing-dependent by design
        #expect(whole.events.map(WSFixtureRunner.render) == split.events.map(WSFixtureRunner.render))
        #expect(whole == split)
    }

    /// Feeds `pieces` to the harness's engine, draining (and deciding upgrades) after each.
    static func replay(_ fuzz: WSProtocolFuzzInput, role: WSProtocol.Role, handshake: Bool, pieces: [ArraySlice<UInt8>]) throws -> Run {
        var p = try fuzz.makeEngine(role: role, handshake: handshake)
        var run = Run(events: [], written: [], endOfStream: false)
        func step(_ p: inout WSProtocol) throws {
            run.events += drain(&p)
            if p.pendingUpgrade != nil {
                try fuzz.decide(&p)
                run.events += drain(&p)
            }
            let o = outbound(&p)
            run.written += o.bytes
            run.endOfStream = run.endOfStream || o.endOfStream
        }
        try step(&p)
        for piece in pieces {
            p.receive(piece)
            try step(&p)
        }
        p.receiveEOF()
        try step(&p)
        #expect(p.isClosed == true)
        run.events = WSFixtureRunner.mergeFragments(run.events)
        return run
    }
}
