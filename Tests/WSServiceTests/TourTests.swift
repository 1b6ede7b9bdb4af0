// Every row of the service tour (README, "Services"), in memory and over loopback.

import Foundation
import Testing
import WSCore
import WSService
import WSServiceTesting

@Suite("Service tour: every row, in memory and over loopback")
struct TourTests {
    @Test("/echo: text as text, binary as binary, up to 1 MiB, fragmented or whole", arguments: Transport.allCases)
    func echo(_ transport: Transport) async throws {
        let tour = try Tour(transport)
        let c = try await tour.connect("/echo")
        try await c.send(text: "hello")
        #expect(try await c.receiveText() == "hello")
        try await c.send(binary: [0, 1, 2, 255])
        #expect(try await c.receiveBinary() == [0, 1, 2, 255])
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try await c.send(binary: big)
        #expect(try await c.receiveBinary() == big)
        try await c.sendFragment(Array("frag".utf8), kind: .text, isFinal: false)
        try await c.sendFragment(Array("mented".utf8), kind: .text, isFinal: true)
        #expect(try await c.receiveText() == "fragmented")
        let info = try await c.close()
        #expect(info.wasClean && info.code == .normalClosure)
        await tour.shutdown()
    }

    @Test("/orders: JSON as text or binary binds to Order; what does not bind closes with 1003", arguments: Transport.allCases)
    func orders(_ transport: Transport) async throws {
        let tour = try Tour(transport)
        let c = try await tour.connect("/orders")
        try await c.send(text: #"{"id": 7, "item": "tea", "quantity": 2}"#)
        let reply = try JSONSerialization.jsonObject(with: Data(try await c.receiveText().utf8)) as? [String: Any]
        #expect(reply?["id"] as? Int == 7 && reply?["item"] as? String == "tea" && reply?["quantity"] as? Int == 2)
        #expect(reply?["status"] as? String == "accepted")
        try await c.send(binary: Array(#"{"id": 8, "item": "cup", "quantity": 1}"#.utf8))
        #expect(try await c.receiveText().contains(#""status":"accepted""#))
        try await c.send(text: #"{"id": "x"}"#)
        let info = try await c.closeInfo()
        #expect(info.code == .unsupportedData)
        let d = try await tour.connect("/orders")
        try await d.send(text: "not json")
        #expect(try await d.closeInfo().code == .unsupportedData)
        await tour.shutdown()
    }

    @Test("/events: custom dispatch by \"event\", ids copied, error handler keeps the connection", arguments: Transport.allCases)
    func events(_ transport: Transport) async throws {
        let tour = try Tour(transport)
        let c = try await tour.connect("/events")
        func ask(_ json: String) async throws -> [String: WSJSON] {
            try await c.send(text: json)
            return try JSONDecoder().decode([String: WSJSON].self, from: Data(try await c.receiveText().utf8))
        }
        #expect(try await ask(#"{"event":"heartbeat"}"#) == ["event": .string("heartbeat"), "status": .string("alive")])
        #expect(try await ask(#"{"event":"heartbeat","id":"a1"}"#) == ["event": .string("heartbeat"), "status": .string("alive"), "id": .string("a1")])
        #expect(try await ask(#"{"event":"subscribe","topic":"news","id":5}"#) == ["event": .string("subscribed"), "topic": .string("news"), "id": .integer(5)])
        #expect(try await ask(#"{"event":"subscribe","topic":5}"#) == ["event": .string("error"), "on": .string("subscribe")])
        #expect(try await ask(#"{"event":"un subscribe","topic":"news"}"#) == ["event": .string("unsubscribed"), "topic": .string("news")])
        #expect(try await ask(#"{"event":"nothing","id":9}"#) == ["event": .string("unhandled"), "id": .integer(9)])
        #expect(try await ask(#"{"topic":"news"}"#) == ["event": .string("unhandled")])
        try await c.close()
        await tour.shutdown()
    }

    @Test("/ping has onPing (its reply is the Pong) and onPong; /auto answers Pings itself", arguments: Transport.allCases)
    func pingPong(_ transport: Transport) async throws {
        let tour = try Tour(transport)
        let c = try await tour.connect("/ping")
        try await c.ping(Array("abc".utf8))
        #expect(try await c.next() == .pong(Array("re:abc".utf8)))
        try await c.pong([1])
        try await c.pong([2])
        try await c.send(text: "pongs")
        #expect(try await c.receiveText() == "2")
        try await c.close()
        let a = try await tour.connect("/auto")
        try await a.ping(Array("abc".utf8))
        #expect(try await a.next() == .pong(Array("abc".utf8)))
        try await a.close()
        await tour.shutdown()
    }

    @Test("/idle: silence for the idle timeout closes with 1000 idle; talking keeps it open", arguments: Transport.allCases)
    func idle(_ transport: Transport) async throws {
        let tour = try Tour(transport)
        let talker = try await tour.connect("/idle")
        let silent = try await tour.connect("/idle")
        let start = ContinuousClock.now
        // Talking every 200 ms against the 1 s idle timeout (a wide margin on a loaded machine).
        for i in 0..<7 {
            try await Task.sleep(for: .milliseconds(200))
            try await talker.send(text: "t\(i)")
            #expect(try await talker.receiveText() == "t\(i)")
        }
        let info = try await silent.closeInfo()
        #expect(info.code == .normalClosure && info.reason == "idle")
        #expect(ContinuousClock.now - start >= .milliseconds(900))
        try await talker.send(text: "still here")
        #expect(try await talker.receiveText() == "still here")
        try await talker.close()
        await tour.shutdown()
    }

    @Test("/guarded: an async upgrade decision: 101, 403, or 401 with WWW-Authenticate", arguments: Transport.allCases)
    func guarded(_ transport: Transport) async throws {
        let tour = try Tour(transport)
        #expect(try await upgradeStatus(tour, "/guarded?token=letmein") == nil)
        #expect(try await upgradeStatus(tour, "/guarded?token=forbidden")?.0 == 403)
        let refused = try await upgradeStatus(tour, "/guarded?token=nope")
        #expect(refused?.0 == 401)
        #expect(refused?.1?.response.headerFields[.wwwAuthenticate] == #"Bearer realm="tour""#)
        #expect(try await upgradeStatus(tour, "/guarded")?.0 == 401)
        await tour.shutdown()
    }

    @Test("/chat: the service's preference picks the subprotocol", arguments: Transport.allCases)
    func chat(_ transport: Transport) async throws {
        let tour = try Tour(transport)
        for (offer, chosen) in [(["v1.chat", "v2.chat"], "v2.chat"), (["v1.chat"], "v1.chat"), (["other"], nil)] as [([String], String?)] {
            let c = try await tour.connect("/chat", subprotocols: offer)
            #expect(c.subprotocol == chosen)
            try await c.close()
        }
        await tour.shutdown()
    }

    @Test("/small: a 1024-byte frame is echoed, a 1025-byte frame closes with 1009", arguments: Transport.allCases)
    func small(_ transport: Transport) async throws {
        let tour = try Tour(transport)
        let c = try await tour.connect("/small")
        try await c.send(binary: [UInt8](repeating: 7, count: 1024))
        #expect(try await c.receiveBinary().count == 1024)
        try await c.send(binary: [UInt8](repeating: 7, count: 1025))
        #expect(try await c.closeInfo().code == .messageTooBig)
        await tour.shutdown()
    }

    @Test("/attrs: attributes per connection; connection ids differ", arguments: Transport.allCases)
    func attributes(_ transport: Transport) async throws {
        let tour = try Tour(transport)
        let a = try await tour.connect("/attrs")
        let b = try await tour.connect("/attrs")
        for n in 1...3 {
            try await a.send(text: "x")
            #expect(try await a.receiveText() == "count=\(n)")
        }
        try await b.send(text: "x")
        #expect(try await b.receiveText() == "count=1")
        try await a.send(text: "id")
        try await b.send(text: "id")
        let ia = try await a.receiveText(), ib = try await b.receiveText()
        #expect(!ia.isEmpty && ia != ib)
        try await a.close()
        try await b.close()
        await tour.shutdown()
    }

    @Test("/slow: 200 messages sent at once come back in order past suspending callbacks", arguments: Transport.allCases)
    func slow(_ transport: Transport) async throws {
        let tour = try Tour(transport)
        let c = try await tour.connect("/slow")
        for i in 0..<200 { try await c.send(text: "m\(i)") }
        for i in 0..<200 { #expect(try await c.receiveText() == "m\(i)") }
        try await c.close()
        await tour.shutdown()
    }

    @Test("/ticker: a task writes through the kept Caller, then closes 1000 done", arguments: Transport.allCases)
    func ticker(_ transport: Transport) async throws {
        let tour = try Tour(transport)
        let c = try await tour.connect("/ticker")
        for i in 1...5 { #expect(try await c.receiveText() == "tick \(i)") }
        let info = try await c.closeInfo()
        #expect(info.code == .normalClosure && info.reason == "done")
        await tour.shutdown()
    }

    @Test("an unknown path is answered 404", arguments: Transport.allCases)
    func unknownPath(_ transport: Transport) async throws {
        let tour = try Tour(transport)
        #expect(try await upgradeStatus(tour, "/nowhere")?.0 == 404)
        await tour.shutdown()
    }
}
