import Testing
import WSCore
import WSTesting

/// The runner must catch every kind of mismatch, or a passing transcript proves nothing.
@Suite("Fixture runner detects mismatches")
struct FixtureRunnerTests {
    func run(_ json: String) throws -> [String] {
        let fixture = try WSFixture(json: Array(json.utf8), name: "inline")
        return WSReplayMode.standard.flatMap { WSFixtureRunner.run(fixture, mode: $0) }
    }

    // The RFC 6455 §5.7 unmasked "Hello" received by a client.
    let hello = #"{"receive": "81 05 48 65 6c 6c 6f"}"#

    @Test("a correct transcript passes in every mode")
    func correct() throws {
        #expect(try run(#"{"role": "client", "steps": [\#(hello), {"expectEvents": [{"text": "Hello"}]}]}"#).isEmpty)
    }

    @Test("a wrong event fails in every mode")
    func wrongEvent() throws {
        let failures = try run(#"{"role": "client", "steps": [\#(hello), {"expectEvents": [{"text": "Hellp"}]}]}"#)
        #expect(failures.count == WSReplayMode.standard.count)
        #expect(failures.allSatisfy { $0.contains("events") })
    }

    @Test("events nobody checked fail the transcript")
    func uncheckedEvents() throws {
        let failures = try run(#"{"role": "client", "steps": [\#(hello)]}"#)
        #expect(failures.count == WSReplayMode.standard.count)
        #expect(failures.allSatisfy { $0.contains("unchecked events") })
    }

    @Test("wrong or unchecked outbound bytes fail")
    func outbound() throws {
        let ping = #"{"receive": "89 00"}, {"expectEvents": [{"ping": ""}]}"#
        let wrong = try run(#"{"role": "server", "configuration": {"acceptUnmaskedFrames": true}, "steps": [\#(ping), {"expectOutbound": "8a 01 00"}]}"#)
        #expect(wrong.count == WSReplayMode.standard.count)
        let unchecked = try run(#"{"role": "server", "configuration": {"acceptUnmaskedFrames": true}, "steps": [\#(ping)]}"#)
        #expect(unchecked.allSatisfy { $0.contains("unchecked outbound") })
        let right = try run(#"{"role": "server", "configuration": {"acceptUnmaskedFrames": true}, "steps": [\#(ping), {"expectOutbound": "8a 00"}]}"#)
        #expect(right.isEmpty)
    }

    @Test("a wrong state or deadline fails")
    func state() throws {
        #expect(try run(#"{"role": "client", "steps": [{"expectState": "closed"}]}"#).count == WSReplayMode.standard.count)
        #expect(try run(#"{"role": "client", "steps": [{"expectState": "open", "nextDeadline": 21}]}"#).count == WSReplayMode.standard.count)
        #expect(try run(#"{"role": "client", "steps": [{"expectState": "open", "nextDeadline": 20}]}"#).isEmpty)
    }

    @Test("a command that should throw but succeeds fails, and the error name is checked")
    func commandErrors() throws {
        #expect(try run(#"{"role": "server", "steps": [{"ping": "", "expectError": "notOpen"}, {"expectOutbound": "89 00"}]}"#).count == WSReplayMode.standard.count)
        #expect(try run(#"{"role": "server", "steps": [{"close": {"code": 1005}, "expectError": "invalidCloseCode"}]}"#).isEmpty)
        #expect(try run(#"{"role": "server", "steps": [{"close": {"code": 1005}, "expectError": "notOpen"}]}"#).count == WSReplayMode.standard.count)
    }

    @Test("malformed fixtures are rejected with the file and step named")
    func malformed() {
        #expect(throws: WSFixtureFormatError.self) { try WSFixture(json: Array(#"{"role": "peer", "steps": []}"#.utf8), name: "x") }
        #expect(throws: WSFixtureFormatError.self) { try WSFixture(json: Array(#"{"role": "client", "steps": [{"receive": "8"}]}"#.utf8), name: "x") }
        #expect(throws: WSFixtureFormatError.self) { try WSFixture(json: Array(#"{"role": "client", "configuration": {"maxFrameSise": 1}, "steps": []}"#.utf8), name: "x") }
        #expect(throws: WSFixtureFormatError.self) { try WSFixture(json: Array(#"{"role": "client", "steps": [{"receive": "00", "tick": 1}]}"#.utf8), name: "x") }
    }

    @Test("streaming fragments are merged before comparison, so splits do not matter")
    func mergesFragments() {
        let pieces: [WSProtocol.Event] = [
            .fragment(WSFragment(kind: .text, data: [0x61], isFinal: false)),
            .fragment(WSFragment(kind: .text, data: [0x62], isFinal: true)),
            .fragment(WSFragment(kind: .text, data: [0x63], isFinal: true)),
        ]
        #expect(WSFixtureRunner.mergeFragments(pieces) == [
            .fragment(WSFragment(kind: .text, data: [0x61, 0x62], isFinal: true)),
            .fragment(WSFragment(kind: .text, data: [0x63], isFinal: true)),
        ])
    }
}
