import Foundation
import Testing
import WSCore
import WSTesting

/// The repository's `Fixtures/` folder, found from this file's path (no bundle resources needed).
let fixturesRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures").path

enum Fixtures {
    /// Every fixture, loaded once; a fixture that does not parse fails the run loudly.
    static let all: [String: WSFixture] = {
        do {
            return Dictionary(uniqueKeysWithValues: try WSFixture.loadAll(under: fixturesRoot).map { ($0.name, $0) })
        } catch {
            fatalError("cannot load fixtures under \(fixturesRoot): \(error)")
        }
    }()

    static var names: [String] { all.keys.sorted() }
}

@Suite("Fixture transcripts (RFC 6455 §5–§8), replayed whole, byte by byte and in random splits")
struct FixtureTranscriptTests {
    @Test("the fixture set is large enough to cover every rule in both roles")
    func coverage() {
        #expect(Fixtures.all.count >= 80)
        #expect(Fixtures.all.values.contains { $0.role == .client })
        #expect(Fixtures.all.values.contains { $0.role == .server })
    }

    @Test("transcript holds", arguments: Fixtures.names)
    func replay(_ name: String) throws {
        let fixture = try #require(Fixtures.all[name])
        for mode in WSReplayMode.standard {
            let failures = WSFixtureRunner.run(fixture, mode: mode)
            #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        }
    }
}
