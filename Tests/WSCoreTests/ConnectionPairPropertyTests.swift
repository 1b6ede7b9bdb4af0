import Testing
import WSCore
import WSTesting

/// A message as the receiving side should see it.
enum Sent: Equatable {
    case text(String)
    case binary([UInt8])
}

/// Gathers whole messages from events, whichever delivery mode produced them.
struct Reassembler {
    var messages: [Sent] = []
    var others: [WSProtocol.Event] = []
    private var partial: [UInt8] = []

    mutating func take(_ events: [WSProtocol.Event]) {
        for e in events {
            switch e {
            case .text(let s): messages.append(.text(s))
            case .binary(let b): messages.append(.binary(Array(b)))
            case .fragment(let f):
                partial += f.data
                if f.isFinal {
                    messages.append(f.kind == .text ? .text(String(decoding: partial, as: UTF8.self)) : .binary(partial))
                    partial = []
                }
            default: others.append(e)
            }
        }
    }
}

func randomPayload(_ rng: inout WSSeededRandom) -> [UInt8] {
    let sizes = [0, 1, 5, 125, 126, 127, 1000, 65535, 65536, 70000]
    let n = rng.next() % 3 == 0 ? sizes[Int(rng.next() % UInt64(sizes.count))] : Int(rng.next() % 300)
    return (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
}

func randomString(_ rng: inout WSSeededRandom) -> String {
    let parts = ["a", "hello ", "é", "€", "😀", "中", "\u{10FFFF}", ""]
    return (0..<Int(rng.next() % 200)).map { _ in parts[Int(rng.next() % UInt64(parts.count))] }.joined()
}

@Suite("WSConnectionPair: any sequence of sends is delivered unchanged in both directions")
struct ConnectionPairPropertyTests {
    @Test("random messages, fragments and pings, both directions, every delivery mode", arguments: 0..<24)
    func deliversUnchanged(seed: Int) throws {
        var rng = WSSeededRandom(seed: UInt64(seed))
        var cc = WSProtocol.Configuration(), sc = WSProtocol.Configuration()
        cc.delivery = seed % 2 == 0 ? .streaming : .wholeMessages
        sc.delivery = seed % 3 == 0 ? .streaming : .wholeMessages
        cc.outboundFragmentSize = [1, 7, 1000, 65536][seed % 4]
        sc.outboundFragmentSize = [65536, 3, 125, 4096][seed % 4]
        cc.maxFragmentsPerMessage = 1 << 20
        sc.maxFragmentsPerMessage = 1 << 20
        var pair = try WSConnectionPair(client: cc, server: sc, seed: UInt64(seed))
        var expectedAtServer: [Sent] = [], expectedAtClient: [Sent] = []
        var atServer = Reassembler(), atClient = Reassembler()
        for _ in 0..<60 {
            let fromClient = rng.next() & 1 == 0
            let kind = rng.next() % 5
            var sent: Sent?
            func send(_ p: inout WSProtocol) throws {
                switch kind {
                case 0:
                    let s = randomString(&rng)
                    try p.sendText(s)
                    sent = .text(s)
                case 1:
                    let b = randomPayload(&rng)
                    try p.sendBinary(b)
                    sent = .binary(b)
                case 2:
                    // A fragmented text message cut at random byte positions (inside characters too).
                    let s = randomString(&rng)
                    let bytes = Array(s.utf8)
                    var start = 0
                    repeat {
                        let end = min(bytes.count, start + Int(rng.next() % 40))
                        try p.sendFragment(bytes[start..<end], kind: .text, isFinal: end == bytes.count)
                        if rng.next() % 4 == 0 { try p.ping([1, 2, 3]) }
                        start = end
                    } while start < bytes.count
                    sent = .text(s)
                case 3:
                    let b = randomPayload(&rng)
                    try p.sendFragment(b[..<(b.count / 2)], kind: .binary, isFinal: false)
                    try p.sendFragment(b[(b.count / 2)...], kind: .binary, isFinal: true)
                    sent = .binary(b)
                default:
                    try p.ping(Array(randomPayload(&rng).prefix(125)))
                }
            }
            if fromClient { try send(&pair.client) } else { try send(&pair.server) }
            if let sent { if fromClient { expectedAtServer.append(sent) } else { expectedAtClient.append(sent) } }
            if rng.next() % 3 == 0 {
                let (c, s) = pair.exchange()
                atClient.take(c)
                atServer.take(s)
            }
        }
        let (c, s) = pair.exchange()
        atClient.take(c)
        atServer.take(s)
        #expect(atServer.messages == expectedAtServer)
        #expect(atClient.messages == expectedAtClient)
        #expect(!atServer.others.contains { if case .failed = $0 { true } else { false } })
        #expect(!atClient.others.contains { if case .failed = $0 { true } else { false } })

        // Then a clean close from a random side.
        if seed % 2 == 0 { try pair.client.close(code: .normalClosure) } else { try pair.server.close(code: .goingAway) }
        let (cEnd, sEnd) = pair.exchange()
        guard case .closed(let ci)? = cEnd.last, case .closed(let si)? = sEnd.last else {
            Issue.record("no closed event: \(cEnd) \(sEnd)"); return
        }
        #expect(ci.wasClean && si.wasClean)
        #expect(ci.code == (seed % 2 == 0 ? .normalClosure : .goingAway))
        #expect(pair.client.isClosed && pair.server.isClosed)
    }
}
