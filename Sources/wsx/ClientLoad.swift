import ArgumentParser
import Glibc
import Synchronization
import WSClient
import WSCore
import WSEpoll
import WSTransport

/// Echo load from the client side: the async `WSClient` against the raw `WSEpollClient`
/// handler (the baseline), one connection, N messages in flight (Benchmarks/client_vs_raw.sh).
struct ClientLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client-load",
        abstract: "Echo load through one client connection: the async WSClient or the raw WSEpollClient handler.",
        discussion: """
            Sends --size-byte binary messages to an echo server, keeping --in-flight of them
            outstanding, for --seconds, and prints `RESULT api=… msgs_per_s=…`. Without
            compression (the server's echo is measured elsewhere).

            Examples:
              wsx client-load --api async ws://127.0.0.1:9001/
              wsx client-load --api raw --in-flight 16 ws://127.0.0.1:9001/
            """)

    enum API: String, ExpressibleByArgument { case async, raw }

    @Option(help: "async (WSClient, its scoped form) or raw (a WSEpollClient handler).")
    var api: API = .async

    @Option(help: "Messages outstanding at once.")
    var inFlight: Int = 1

    @Option(help: "Payload size in bytes.")
    var size: Int = 16

    @Option(help: "Seconds to measure (after a 0.5 s warm-up).")
    var seconds: Double = 3

    @Argument(help: "An echo server's ws:// URL.")
    var url: String

    func run() throws {
        let command = self
        try blockOn { try await command.runBody() }
    }

    private func runBody() async throws {
        let payload = [UInt8](repeating: 0x61, count: size)
        let rate: Double
        switch api {
        case .async: rate = try await runAsync(payload)
        case .raw: rate = try runRaw(payload)
        }
        printFlushed("RESULT api=\(api.rawValue) in_flight=\(inFlight) size=\(size) msgs_per_s=\(Int(rate))")
    }

    private func runAsync(_ payload: [UInt8]) async throws -> Double {
        var configuration = WSClientConfiguration()
        configuration.compression = false
        configuration.keepalive = nil
        let (inFlight, seconds) = (self.inFlight, self.seconds)
        return try await WSClient.withConnection(to: url, configuration: configuration) { client in
            for _ in 0..<inFlight { try await client.writeBinaryMessage(payload) }
            let warm = WSClock.now() + .milliseconds(500)
            while WSClock.now() < warm {
                _ = try await client.readBinaryMessage()
                try await client.writeBinaryMessage(payload)
            }
            var count = 0
            let start = WSClock.now()
            let end = start + .milliseconds(Int64(seconds * 1000))
            while true {
                _ = try await client.readBinaryMessage()
                count += 1
                if count & 255 == 0, WSClock.now() >= end { break }
                try await client.writeBinaryMessage(payload)
            }
            return Double(count) / (WSClock.now() - start).seconds
        }
    }

    private func runRaw(_ payload: [UInt8]) throws -> Double {
        var configuration = WSEpollClient.Configuration()
        configuration.compression = nil
        configuration.connection.pingInterval = nil
        let client = WSEpollClient(configuration: configuration)
        try client.start()
        defer { client.immediateStop() }
        let counter = Counter(payload: payload, inFlight: inFlight)
        _ = try client.connect(to: url, handler: counter)
        let warm = WSClock.now() + .milliseconds(500)
        while WSClock.now() < warm { sleepBriefly() }
        let before = counter.count.load(ordering: .relaxed)
        let start = WSClock.now()
        let end = start + .milliseconds(Int64(seconds * 1000))
        while WSClock.now() < end { sleepBriefly() }
        let after = counter.count.load(ordering: .relaxed)
        return Double(after - before) / (WSClock.now() - start).seconds
    }
}

/// The raw baseline: answers each echo with the next message, on the loop.
private final class Counter: WSEpollHandler, Sendable {
    let payload: [UInt8]
    let inFlight: Int
    let count = Atomic<Int>(0)

    init(payload: [UInt8], inFlight: Int) {
        self.payload = payload
        self.inFlight = inFlight
    }

    func opened(_ connection: WSEpollConnection, _ result: WSHandshakeResult) {
        for _ in 0..<inFlight { try? connection.send(binary: payload) }
    }

    func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
        count.add(1, ordering: .relaxed)
        try? connection.send(binary: payload)
    }
}

private func sleepBriefly() {
    var t = timespec(tv_sec: 0, tv_nsec: 50_000_000)
    nanosleep(&t, nil)
}
