import Foundation
import Testing
import WSCore
import WSDeflate
import WSTesting

/// The FuzzDeflateInflate inputs kept under Fixtures/fuzz-regressions/deflate-inflate-*.bin,
/// replayed with the harness's own layout (`WSDeflateFuzzInput`) and oracle: the same outcome whole and split into
/// frames with pauses, never more output than the limit.
@Suite("Fuzz regressions: the inflate path")
struct DeflateFuzzRegressionTests {
    static let folder = fixturesRoot + "/fuzz-regressions"
    static var inputs: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasPrefix("deflate-inflate-") }.sorted()
    }

    @Test("whole and split agree", arguments: inputs)
    func regression(_ name: String) throws {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.folder + "/" + name)))
        let fuzz = try #require(WSDeflateFuzzInput(data))
        let (bits, limit, payload, pieces, pause) = (fuzz.windowBits, fuzz.limit, fuzz.payload, fuzz.pieces, fuzz.pauseAfter)
        let codec = { deflateCodec(.init(), .init(maxWindowBits: bits)) }
        let whole = codec().decodeMessage([payload], limit: limit)
        let split = codec().decodeMessage(pieces, limit: limit, pauseAfter: pause)
        switch (whole, split) {
        case (.success(let a), .success(let b)): #expect(a == b)
        case (.failure(.outputLimitExceeded), .failure(.outputLimitExceeded)), (.failure(.invalidData), .failure(.invalidData)): break
        default: Issue.record("whole \(whole) vs split \(split)")
        }
    }
}
