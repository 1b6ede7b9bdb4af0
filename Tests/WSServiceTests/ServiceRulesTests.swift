// The service layer's rules: what attach accepts, callback order and isolation, errors and the
// Close before onError, binding and dispatch edge cases, replies, backpressure, lifecycle.

import Synchronization
import Testing
import WSCore
import WSService
import WSServiceTesting

/// A counter shared by a service's connections.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
    let peak = Atomic<Int>(0)
    @discardableResult func add(_ n: Int) -> Int {
        let now = value.add(n, ordering: .relaxed).newValue
        if now > peak.load(ordering: .relaxed) { peak.store(now, ordering: .relaxed) }
        return now
    }
    var current: Int { value.load(ordering: .relaxed) }
}

/// Records what a service saw, in order, from any connection.
final class Journal: Sendable {
    private let lines = Mutex<[String]>([])
    func add(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
    func waitFor(_ line: String, seconds: Double = 5) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if all.contains(line) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return all.contains(line)
    }
}

private func eventually(_ condition: () -> Bool) async -> Bool {
    for _ in 0..<400 {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}

private func withTester(_ body: (WSServiceTester) async throws -> Void) async throws {
    let tester = try WSServiceTester()
    try await body(tester)
    await tester.shutdown()
}

@Suite("Services: attach, callbacks, errors, binding, replies, backpressure, lifecycle")
struct ServiceRulesTests {
    // MARK: attach

    struct Both: WSMessageService, WSTextService {
        func onMessage(_ caller: WSCaller, message: String) async {}
        func onTextMessage(_ caller: WSCaller, text: String) async {}
    }

    struct NotSendable: Sendable { var x = 1 }
    struct BadReply: WSTextService {
        func onTextMessage(_ caller: WSCaller, text: String) async -> NotSendable { NotSendable() }
    }

    struct Plain: WSTextService {
        func onTextMessage(_ caller: WSCaller, text: String) async -> String { text }
    }

    struct BadName: WSDispatchingService {
        static let dispatchTable = WSDispatchTable<BadName>().on("heartbeat", BadName.beat)
        func beat(_ caller: WSCaller, _ m: WSJSON) async {}
    }

    @Test("attach refuses onMessage beside onTextMessage, unsendable reply types, dispatcherKey without dispatch, bad handler names")
    func attachRefusals() throws {
        let listener = WSListener()
        #expect { try listener.attach(service: Both(), at: "/") } throws: { "\($0)".contains("onMessage together with onTextMessage") }
        #expect { try listener.attach(service: BadReply(), at: "/") } throws: { "\($0)".contains("cannot be sent") }
        #expect { try listener.attach(service: Plain(), at: "/", configuration: .init(dispatcherKey: "event")) } throws: { "\($0)".contains("not a WSDispatchingService") }
        #expect { try listener.attach(service: BadName(), at: "/", configuration: .init(dispatcherKey: "event")) } throws: { "\($0)".contains("not a handler name") }
        #expect { try listener.attach(service: Plain(), at: "/", configuration: .init(maxMessageSize: 0)) } throws: { "\($0)".contains("maxMessageSize") }
        #expect(listener.paths.isEmpty)
        try listener.attach(service: Plain(), at: "/ok")
        #expect(listener.paths == ["/ok"])
    }

    @Test("Ballerina's name rule for dispatcher keys")
    func handlerNames() {
        #expect(WSDispatchTable<Plain>.handlerName(forKey: "heartbeat") == "onHeartbeat")
        #expect(WSDispatchTable<Plain>.handlerName(forKey: "un subscribe") == "onUnSubscribe")
        #expect(WSDispatchTable<Plain>.handlerName(forKey: "un_subscribe") == "onUnSubscribe")
        #expect(WSDispatchTable<Plain>.handlerName(forKey: "ping pong_game") == "onPingPongGame")
    }

    // MARK: callbacks

    struct Lifecycle: WSTextService, WSBinaryService {
        let journal: Journal
        let active = Counter()
        func onOpen(_ caller: WSCaller) async throws { journal.add("open \(caller.isOpen)") }
        func onTextMessage(_ caller: WSCaller, text: String) async throws -> String? {
            active.add(1)
            defer { active.add(-1) }
            if text == "throw" { struct Oops: Error {}; throw Oops() }
            try await Task.sleep(for: .milliseconds(2))
            journal.add("text \(text)")
            return nil
        }
        func onBinaryMessage(_ caller: WSCaller, data: [UInt8]) async -> [UInt8] { data.reversed() }
        func onError(_ caller: WSCaller, error: WSServiceError) async {
            journal.add("error \(error.code) \(error.closeCode.map { "\($0.rawValue)" } ?? "-") open=\(caller.isOpen)")
        }
        func onClose(_ caller: WSCaller, statusCode: Int, reason: String) async { journal.add("close \(statusCode) \(reason)") }
    }

    @Test("callbacks run in arrival order and never overlap; onOpen first, onClose last with the peer's code")
    func orderAndNoOverlap() async throws {
        let journal = Journal()
        let service = Lifecycle(journal: journal)
        try await withTester { tester in
            try tester.listener.attach(service: service, at: "/")
            let c = try await tester.connect()
            for i in 0..<30 { try await c.send(text: "\(i)") }
            try await c.send(binary: [1, 2, 3])
            #expect(try await c.receiveBinary() == [3, 2, 1])
            try await c.close(code: WSCloseCode(rawValue: 4001), reason: "bye")
            #expect(await journal.waitFor("close 4001 bye"))
        }
        #expect(journal.all == ["open true"] + (0..<30).map { "text \($0)" } + ["close 4001 bye"])
        #expect(service.active.peak.load(ordering: .relaxed) == 1)
    }

    struct PausingEcho: WSTextService, WSBinaryService {
        func onTextMessage(_ caller: WSCaller, text: String) async -> String {
            if text == "pause" { try? await Task.sleep(for: .milliseconds(100)) }
            return text
        }
        func onBinaryMessage(_ caller: WSCaller, data: [UInt8]) async -> [UInt8] { data }
    }

    struct RunnerCount: WSTextService {
        func onTextMessage(_ caller: WSCaller, text: String) async -> String { "\(caller.runnerStarts)" }
    }

    @Test("a runner task is kept between bursts only for a busy connection: not for the open and the first message, again after idle")
    func runnerParksWhenBusy() async throws {
        try await withTester { tester in
            try tester.listener.attach(service: RunnerCount(), at: "/")
            let c = try await tester.connect()
            var seen: [String] = []
            // Bursts 1 (the open) and 2 end their runners; from burst 3 one runner stays.
            for _ in 0..<3 {
                try await c.send(text: "n")
                seen.append(try await c.receiveText())
            }
            #expect(seen == ["2", "3", "3"])
            // The idle sweep (a second without traffic) ends it and starts the count again.
            try await Task.sleep(for: .milliseconds(2200))
            try await c.send(text: "n")
            #expect(try await c.receiveText() == "4")
        }
    }

    @Test("the mailbox across bursts: 300 queued behind a suspended callback, small and large, text and binary, each echoed whole and in order, three times")
    func mailboxAcrossBursts() async throws {
        try await withTester { tester in
            try tester.listener.attach(service: PausingEcho(), at: "/")
            let c = try await tester.connect()
            for round in 0..<3 {
                // Sizes shrink round by round, so the arena's old bytes lie behind new ones.
                let messages: [WSTestClient.Event] = (0..<300).map { i in
                    let size = (i % 7 == 0 ? 5000 : 1 + (i * 37) % 4096) / (round + 1)
                    let byte = UInt8(truncatingIfNeeded: i + round)
                    return i % 2 == 0
                        ? .binary([UInt8](repeating: byte, count: size) + [UInt8(round)])
                        : .text(String(repeating: Character(UnicodeScalar(65 + Int(byte) % 26)!), count: size) + "\(round)")
                }
                try await c.send(text: "pause")
                for m in messages {
                    switch m {
                    case .text(let t): try await c.send(text: t)
                    case .binary(let b): try await c.send(binary: b)
                    default: break
                    }
                }
                #expect(try await c.receiveText() == "pause")
                for (i, m) in messages.enumerated() {
                    let echoed = try await c.receive()
                    #expect(echoed == m, "round \(round), message \(i)")
                }
            }
        }
    }

    @Test("a callback that throws: Close 1011 is queued, then onError, then onClose")
    func callbackThrows() async throws {
        let journal = Journal()
        try await withTester { tester in
            try tester.listener.attach(service: Lifecycle(journal: journal), at: "/")
            let c = try await tester.connect()
            try await c.send(text: "throw")
            #expect(try await c.closeInfo().code == .internalError)
            #expect(await journal.waitFor("close 1011 "))
        }
        let lines = journal.all
        #expect(lines.count == 3)
        #expect(lines.dropFirst().first == "error CallbackError 1011 open=false")
        #expect(lines.last == "close 1011 ")
    }

    struct Bound: WSMessageService {
        struct Point: Decodable, Sendable, WSValidatable {
            var x: Int
            var y: Int
            func validate() throws { if x < 0 { throw Negative() } }
            struct Negative: Error, CustomStringConvertible { var description: String { "x is negative" } }
        }
        let journal: Journal
        func onMessage(_ caller: WSCaller, message p: Point) async -> [String: Int] { ["sum": p.x + p.y] }
        func onError(_ caller: WSCaller, error: WSServiceError) async { journal.add("\(error.code): \(error.message)") }
    }

    @Test("data binding: JSON text or binary to Decodable; failures and invalid values close 1003 and say why", arguments: [
        (#"{"x":1}"#, "PayloadBindingError: the message does not bind to Point: missing key \"y\""),
        (#"{"x":"a","y":2}"#, "PayloadBindingError: the message does not bind to Point: expected Int at .x"),
        ("[1,2]", "PayloadBindingError: the message does not bind to Point: expected Dictionary<String, Any>"),
        (#"{"x":-1,"y":2}"#, "PayloadValidationError: the Point is not valid: x is negative"),
    ])
    func binding(_ input: String, _ why: String) async throws {
        let journal = Journal()
        try await withTester { tester in
            try tester.listener.attach(service: Bound(journal: journal), at: "/")
            let c = try await tester.connect()
            try await c.send(binary: Array(#"{"x":2,"y":3}"#.utf8))
            #expect(try await c.receiveText() == #"{"sum":5}"#)
            try await c.send(text: input)
            #expect(try await c.closeInfo().code == .unsupportedData)
        }
        #expect(journal.all.count == 1)
        #expect(journal.all.first?.hasPrefix(why) == true, "\(journal.all)")
    }

    struct Replies: WSTextService {
        struct Reply: Encodable, Sendable { var echoed: String; var n = 1 }
        func onTextMessage(_ caller: WSCaller, text: String) async throws -> Reply? {
            if text == "none" { return nil }
            if text == "write" {
                try await caller.writeMessage([UInt8]([9, 9]))
                try await caller.writeMessage("plain")
                try await caller.writeMessage(Reply(echoed: "w", n: 2))
                return nil
            }
            return Reply(echoed: text)
        }
    }

    @Test("replies: an Encodable is JSON text, nil is nothing; writeMessage sends bytes as binary, String as text")
    func replies() async throws {
        try await withTester { tester in
            try tester.listener.attach(service: Replies(), at: "/")
            let c = try await tester.connect()
            try await c.send(text: "none")
            try await c.send(text: "hi")
            #expect(try await c.receiveText() == #"{"echoed":"hi","n":1}"#)
            try await c.send(text: "write")
            #expect(try await c.receiveBinary() == [9, 9])
            #expect(try await c.receiveText() == "plain")
            #expect(try await c.receiveText() == #"{"echoed":"w","n":2}"#)
            try await c.close()
        }
    }

    struct Flood: WSService {
        let written: Counter
        func onOpen(_ caller: WSCaller) async throws {
            let chunk = [UInt8](repeating: 1, count: 64 << 10)
            Task {
                for _ in 0..<64 {
                    try await caller.writeBinaryMessage(chunk)
                    written.add(1)
                }
            }
        }
    }

    @Test("Caller writes suspend while the peer does not read (outbound above the high-water mark), then all arrive")
    func writeBackpressure() async throws {
        let written = Counter()
        var config = WSServiceTester.defaultConfiguration
        config.connection.outboundHighWaterMark = 256 << 10
        config.connection.outboundLowWaterMark = 64 << 10
        config.compression = nil
        let tester = try WSServiceTester(configuration: config)
        try tester.listener.attach(service: Flood(written: written), at: "/")
        let c = try await tester.connect(compression: false)
        c.stopReading()
        try await Task.sleep(for: .milliseconds(300))
        // 4 MiB to send; with a 256 KiB high-water mark and the socket pair's buffers, the
        // writer must be waiting well short of the end while nothing is read.
        let early = written.current
        #expect(early < 64)
        c.resumeReading()
        for _ in 0..<64 { #expect(try await c.receiveBinary().count == 64 << 10) }
        #expect(await eventually { written.current == 64 })
        try await c.close()
        await tester.shutdown()
    }

    struct Closer: WSTextService {
        func onTextMessage(_ caller: WSCaller, text: String) async throws {
            try await caller.close(statusCode: 4000, reason: "done", timeout: .seconds(5))
            #expect(!caller.isOpen)
        }
    }

    @Test("Caller.close returns once the closing handshake is over")
    func callerClose() async throws {
        try await withTester { tester in
            try tester.listener.attach(service: Closer(), at: "/")
            let c = try await tester.connect()
            try await c.send(text: "x")
            let info = try await c.closeInfo()
            #expect(info.code.rawValue == 4000 && info.reason == "done" && info.wasClean)
        }
    }

    // MARK: lifecycle

    struct SlowUpgrade: WSUpgradeService {
        func onUpgrade(_ request: WSUpgradeRequest) async throws -> Plain {
            try await Task.sleep(for: .seconds(3))
            return Plain()
        }
    }

    @Test("an upgrade decision that outlives the handshake timeout is answered 503")
    func upgradeTimeout() async throws {
        var config = WSServiceTester.defaultConfiguration
        config.handshakeTimeout = .milliseconds(300)
        let tester = try WSServiceTester(configuration: config)
        try tester.listener.attach(SlowUpgrade(), at: "/")
        await #expect { _ = try await tester.connect() } throws: { error in
            guard case WSTestError.rejected(let r) = error else { return false }
            return r.response.status.code == 503
        }
        await tester.shutdown()
    }

    @Test("authenticate runs before the upgrade service; its WSUpgradeError is the answer")
    func authenticate() async throws {
        var service = WSServiceConfiguration()
        service.authenticate = { request in
            guard request.head.headerFields[.authorization] == "Bearer ok" else {
                throw WSUpgradeError(status: .unauthorized, headers: [.wwwAuthenticate: "Bearer"])
            }
        }
        try await withTester { tester in
            try tester.listener.attach(service: Plain(), at: "/", configuration: service)
            await #expect { _ = try await tester.connect() } throws: { error in
                guard case WSTestError.rejected(let r) = error else { return false }
                return r.response.status.code == 401 && r.response.headerFields[.wwwAuthenticate] == "Bearer"
            }
            let c = try await tester.connect(headers: [.authorization: "Bearer ok"])
            try await c.send(text: "in")
            #expect(try await c.receiveText() == "in")
            try await c.close()
        }
    }

    @Test("detach: new requests get 404, open connections stay; attach again serves again")
    func detach() async throws {
        try await withTester { tester in
            try tester.listener.attach(service: Plain(), at: "/p")
            let c = try await tester.connect("/p")
            tester.listener.detach("/p")
            await #expect { _ = try await tester.connect("/p") } throws: { error in
                guard case WSTestError.rejected(let r) = error else { return false }
                return r.response.status.code == 404
            }
            try await c.send(text: "still")
            #expect(try await c.receiveText() == "still")
            try tester.listener.attach(service: Plain(), at: "/p")
            let d = try await tester.connect("/p")
            try await d.close()
            try await c.close()
        }
    }

    final class KeptCaller: Sendable {
        let caller = Mutex<WSCaller?>(nil)
    }

    struct Keeper: WSService {
        let kept: KeptCaller
        func onOpen(_ caller: WSCaller) async throws { kept.caller.withLock { $0 = caller } }
    }

    @Test("a Caller kept past the listener's stop fails at once with ConnectionClosureError, never hangs")
    func callerAfterStop() async throws {
        let kept = KeptCaller()
        let tester = try WSServiceTester()
        try tester.listener.attach(service: Keeper(kept: kept), at: "/")
        let c = try await tester.connect()
        #expect(await eventually { kept.caller.withLock { $0 != nil } })
        await tester.shutdown()
        #expect(try await c.closeInfo().code == .goingAway)
        let caller = try #require(kept.caller.withLock { $0 })
        #expect(!caller.isOpen)
        await #expect { try await caller.writeTextMessage("late") } throws: { error in
            (error as? WSServiceError)?.code == .connectionClosure
        }
        await #expect { try await caller.ping() } throws: { error in
            (error as? WSServiceError)?.code == .connectionClosure
        }
    }

    @Test("gracefulStop sends every open connection Close 1001 and the services see onClose")
    func gracefulStop() async throws {
        let journal = Journal()
        let tester = try WSServiceTester()
        try tester.listener.attach(service: Lifecycle(journal: journal), at: "/")
        let a = try await tester.connect()
        let b = try await tester.connect()
        let stop = Task { await tester.shutdown() }
        #expect(try await a.closeInfo().code == .goingAway)
        #expect(try await b.closeInfo().code == .goingAway)
        await stop.value
        #expect(journal.all.filter { $0.hasPrefix("close 1001") }.count == 2)
    }
}
