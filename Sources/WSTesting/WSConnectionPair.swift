public import WSCore

/// Two ``WSProtocol`` engines, a client and a server, wired back to back in memory.
///
/// Use it to test an application's WebSocket logic without sockets: send on one side, call
/// ``exchange()``, and look at what the other side received. End of stream and closing the
/// transport are modelled too: when one side half-closes (``WSOutbound/endOfStream``) or closes,
/// the other receives end of input.
///
/// ```swift
/// var pair = try WSConnectionPair()
/// try pair.client.sendText("hi")
/// let events = pair.exchange()
/// #expect(events.server == [.text("hi")])
/// ```
public struct WSConnectionPair: ~Copyable {
    /// The client end.
    public var client: WSProtocol
    /// The server end.
    public var server: WSProtocol

    private var clientEOFSent = false
    private var serverEOFSent = false

    /// Creates a pair, both sides open at `now`.
    ///
    /// - Parameters:
    ///   - client: the client's configuration.
    ///   - server: the server's configuration.
    ///   - now: the starting time of both engines.
    ///   - seed: seeds the client's masking keys (deterministic runs).
    public init(
        client: WSProtocol.Configuration = .default,
        server: WSProtocol.Configuration = .default,
        now: WSInstant = .zero,
        seed: UInt64 = 0x5EED
    ) throws(WSUsageError) {
        self.init(client: try WSProtocol(role: .client, configuration: client, now: now, randomNumberGenerator: WSSeededRandom(seed: seed)),
                  server: try WSProtocol(role: .server, configuration: server, now: now))
    }

    /// Wires two engines built by the caller, for example ones that start with the opening
    /// handshake (`WSProtocol(client:)` and `WSProtocol(server:)`): ``exchange()`` then carries
    /// the request and the answer like any other bytes.
    public init(client: consuming WSProtocol, server: consuming WSProtocol) {
        self.client = client
        self.server = server
    }

    /// Advances both engines' clocks.
    public mutating func tick(now: WSInstant) {
        client.tick(now: now)
        server.tick(now: now)
    }

    /// Moves bytes in both directions until neither side has anything more to say, and returns
    /// every event each side produced, in order.
    public mutating func exchange() -> (client: [WSProtocol.Event], server: [WSProtocol.Event]) {
        var clientEvents: [WSProtocol.Event] = []
        var serverEvents: [WSProtocol.Event] = []
        var progress = true
        while progress {
            progress = false
            // A decode paused after a slice goes on (as an adapter's next turn would).
            repeat {
                while let e = client.nextEvent() { clientEvents.append(e) }
                client.continueEncoding()
            } while client.hasPendingWork
            repeat {
                while let e = server.nextEvent() { serverEvents.append(e) }
                server.continueEncoding()
            } while server.hasPendingWork
            progress = Self.transfer(from: &client, to: &server, eofSent: &clientEOFSent) || progress
            progress = Self.transfer(from: &server, to: &client, eofSent: &serverEOFSent) || progress
        }
        return (clientEvents, serverEvents)
    }

    /// Moves `from`'s output into `to`; a half-close or a closed engine ends `to`'s input once.
    private static func transfer(from: inout WSProtocol, to: inout WSProtocol, eofSent: inout Bool) -> Bool {
        var moved = false
        while let out = from.nextOutbound() {
            switch out {
            case .bytes(let b):
                to.receive(b)
            case .endOfStream:
                if !eofSent { to.receiveEOF(); eofSent = true }
            }
            moved = true
        }
        if from.isClosed, !eofSent {
            to.receiveEOF()
            eofSent = true
            moved = true
        }
        return moved
    }
}
