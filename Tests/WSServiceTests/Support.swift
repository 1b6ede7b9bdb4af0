// The tour's listener, reachable in memory (WSServiceTester) and over loopback (a real
// listener on 127.0.0.1, port 0), so each test runs the same steps both ways.

import ServiceTour
import Testing
import WSCore
import WSService
import WSServiceTesting

enum Transport: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory
    case loopback

    var testDescription: String { rawValue }
}

/// The tour attached to an in-memory tester and, for loopback runs, to a listener on a free
/// loopback port as well.
struct Tour: Sendable {
    let tester: WSServiceTester
    let listener: WSListener?
    let transport: Transport

    init(_ transport: Transport, configure: (WSListener) throws -> Void = { try attachTour(to: $0) }) throws {
        self.transport = transport
        tester = try WSServiceTester()
        if transport == .loopback {
            var c = WSListener.Configuration(host: "127.0.0.1", port: 0)
            c.loops = 1
            c.handshakeTimeout = .seconds(5)
            c.gracefulStopTimeout = .seconds(5)
            let listener = WSListener(configuration: c)
            try configure(listener)
            try listener.start()
            self.listener = listener
        } else {
            try configure(tester.listener)
            listener = nil
        }
    }

    func connect(_ path: String, subprotocols: [String] = [], compression: Bool = true) async throws(WSTestError) -> WSTestClient {
        if let listener {
            return try await tester.connect(url: "ws://127.0.0.1:\(listener.port)\(path)", subprotocols: subprotocols, compression: compression)
        }
        return try await tester.connect(path, subprotocols: subprotocols, compression: compression)
    }

    func shutdown() async {
        await listener?.gracefulStop()
        await tester.shutdown()
    }
}

/// The status of a refused upgrade, or nil if it was accepted.
func upgradeStatus(_ tour: Tour, _ path: String) async throws -> (Int, WSHandshakeRejection?)? {
    do {
        let client = try await tour.connect(path)
        try await client.close()
        return nil
    } catch .rejected(let rejection) {
        return (rejection.response.status.code, rejection)
    }
}
