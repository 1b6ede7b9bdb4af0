import Glibc
import Synchronization
import Testing
import WSBlocking
import WSCore
import WSEpoll
import WSTransport

/// Collects what a client connection receives; sends `greeting` once open.
final class Collector: WSEpollHandler, Sendable {
    let greeting: [WSMessage]
    let messages = Mutex<[WSMessage]>([])
    let events = Mutex<[WSProtocol.Event]>([])
    private let openedFlag = Atomic<Bool>(false)
    var isOpened: Bool { openedFlag.load(ordering: .relaxed) }

    init(greeting: [WSMessage] = []) { self.greeting = greeting }

    func opened(_ connection: WSEpollConnection, _ result: WSHandshakeResult) {
        openedFlag.store(true, ordering: .relaxed)
        for message in greeting {
            switch message {
            case .text(let s): try? connection.send(text: s)
            case .binary(let b): try? connection.send(binary: b)
            }
        }
    }

    func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
        let bytes = data.withUnsafeBufferPointer { Array($0) }
        messages.withLock { $0.append(kind == .text ? .text(String(decoding: bytes, as: UTF8.self)) : .binary(bytes)) }
    }

    func event(_ connection: WSEpollConnection, _ event: WSProtocol.Event) { events.withLock { $0.append(event) } }

    var closeInfo: WSProtocol.CloseInfo? {
        events.withLock { $0.lazy.compactMap { if case .closed(let info) = $0 { info } else { nil } }.first }
    }
}

@Suite("Epoll client over loopback", .timeLimit(.minutes(1)))
struct EpollClientTests {
    @Test("client connections on one loop send once open, get their echoes from the epoll server, and close cleanly")
    func echoThroughBothReactors() throws {
        let server = try startServer(loops: 1) { _ in .accept(RecordingEcho()) }
        defer { server.immediateStop() }
        let client = WSEpollClient()
        try client.start()
        defer { client.immediateStop() }
        let greeting: [WSMessage] = [.text("first"), .binary(Array(repeating: 7, count: 100_000))]
        let collectors = (0..<20).map { _ in Collector(greeting: greeting) }
        var connections: [WSEpollConnection] = []
        for c in collectors {
            connections.append(try client.connect(to: "ws://127.0.0.1:\(server.port)/", handler: c))
        }
        #expect(eventually { collectors.allSatisfy { $0.messages.withLock { $0.count } == 2 } })
        let allEchoed = collectors.allSatisfy { $0.messages.withLock { $0 } == greeting }
        #expect(allEchoed)
        #expect(client.connectionCount == 20)
        for connection in connections { try connection.close(code: .normalClosure, reason: "done") }
        #expect(eventually { collectors.allSatisfy { $0.closeInfo != nil } })
        #expect(collectors.allSatisfy { $0.closeInfo?.wasClean == true && $0.closeInfo?.code == .normalClosure })
        #expect(eventually { client.connectionCount == 0 && server.connectionCount == 0 })
    }

    @Test("a rejected upgrade is reported as .rejected, then .closed")
    func rejection() throws {
        let server = try startServer { _ in .reject(status: .forbidden) }
        defer { server.immediateStop() }
        let client = WSEpollClient()
        try client.start()
        defer { client.immediateStop() }
        let c = Collector()
        _ = try client.connect(to: "ws://127.0.0.1:\(server.port)/", handler: c)
        #expect(eventually { c.closeInfo != nil })
        #expect(c.events.withLock { $0.contains { if case .rejected(let r) = $0 { r.response.status.code == 403 } else { false } } })
        #expect(!c.isOpened)
    }

    @Test("connecting to a closed port throws the transport error")
    func refused() throws {
        let listener = try WSSocket.listen(host: "127.0.0.1", port: 0)
        let port = listener.localAddress!.port
        listener.close()
        let client = WSEpollClient()
        try client.start()
        defer { client.immediateStop() }
        #expect(throws: WSTransportError.self) { _ = try client.connect(to: "ws://127.0.0.1:\(port)/", handler: Collector()) }
        #expect(client.connectionCount == 0)
    }

    @Test("the server's graceful stop reaches epoll clients as 1001")
    func serverGoingAway() throws {
        let server = try startServer { _ in .accept(RecordingEcho()) }
        let client = WSEpollClient()
        try client.start()
        defer { client.immediateStop() }
        let c = Collector()
        _ = try client.connect(to: "ws://127.0.0.1:\(server.port)/", handler: c)
        #expect(eventually { c.isOpened })
        server.gracefulStop(timeout: .seconds(5))
        #expect(eventually { c.closeInfo != nil })
        #expect(c.closeInfo?.code == .goingAway)
        #expect(c.closeInfo?.wasClean == true)
    }
}
