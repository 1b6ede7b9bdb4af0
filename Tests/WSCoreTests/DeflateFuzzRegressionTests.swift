import Foundation
import Testing
import WSCore
import WSDeflate

/// The FuzzDeflateInflate inputs kept under Fixtures/fuzz-regressions/deflate-inflate-*.bin,
/// replayed with the harness's own layout and oracle: the same outcome whole and split into
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
        try #require(data.count >= 2)
        // Fuzz/Sources/FuzzDeflateInflate/main.swift's layout.
        let bits = 8 + Int(data[0] & 7)
        let limit = [16, 1000, 65536, 1 << 20][Int(data[0] >> 3) & 3]
        let payload = Array(data[2...])
        let pause = 1 + Int(data[1]) * 37
        var cuts: [Int] = []
        var at = 0
        while payload.count > 0, cuts.count < 8 {
            at += 1 + (Int(data[1]) &* (cuts.count + 3)) % max(1, payload.count / 2 + 1)
            if at >= payload.count { break }
            cuts.append(at)
        }
        var pieces: [[UInt8]] = []
        var start = 0
        for end in cuts + [payload.count] {
            pieces.append(Array(payload[start..<end]))
            start = end
        }
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
