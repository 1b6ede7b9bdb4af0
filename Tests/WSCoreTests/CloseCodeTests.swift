import Testing
@testable import WSCore

@Suite("RFC 6455 §7.4 close codes")
struct CloseCodeTests {
    @Test("valid on the wire: 1000–1003, 1007–1014, 3000–4999", arguments: [
        (0, false), (999, false), (1000, true), (1001, true), (1002, true), (1003, true),
        (1004, false), (1005, false), (1006, false), (1007, true), (1008, true), (1009, true),
        (1010, true), (1011, true), (1012, true), (1013, true), (1014, true), (1015, false),
        (1016, false), (2000, false), (2999, false), (3000, true), (3999, true), (4000, true),
        (4999, true), (5000, false), (65535, false),
    ] as [(UInt16, Bool)])
    func validity(code: UInt16, valid: Bool) {
        #expect(WSCloseCode(code).isValidOnWire == valid)
        #expect(WSCloseCode(code).isSendable == valid)
    }
}
