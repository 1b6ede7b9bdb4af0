import Foundation
import Testing
import WSCore
import WSTesting

/// One row of the transition table in WSProtocol.swift's header comment.
struct Transition: Sendable, CustomTestStringConvertible {
    enum Action: Sendable {
        case peerData, peerPing, peerPong, peerClose, violation, eof, localClose
        case tick(Double)
    }

    var from: WSProtocol.Lifecycle
    var input: String
    var to: WSProtocol.Lifecycle
    var configure: @Sendable (inout WSProtocol.Configuration) -> Void = { _ in }
    var setup: [Action]
    var action: Action
    /// The first byte of what must be written as a result (an opcode byte), if anything.
    var writes: UInt8?

    var testDescription: String { "\(from) + \(input) → \(to)" }
}

extension WSProtocol.Configuration {
    static func timed(_ c: inout WSProtocol.Configuration) {
        c.pingInterval = .seconds(10)
        c.pingTimeout = .seconds(5)
        c.idleTimeout = .seconds(7)
        c.closeTimeout = .seconds(3)
    }
}

let transitions: [Transition] = [
    Transition(from: .open, input: "data frame", to: .open, setup: [], action: .peerData),
    Transition(from: .open, input: "Ping", to: .open, setup: [], action: .peerPing, writes: 0x8A),
    Transition(from: .open, input: "Close, autoCloseReply on", to: .closing, setup: [], action: .peerClose, writes: 0x88),
    Transition(from: .open, input: "Close, autoCloseReply off", to: .closeReceived, configure: { $0.autoCloseReply = false },
               setup: [], action: .peerClose),
    Transition(from: .open, input: "close()", to: .closeSent, setup: [], action: .localClose, writes: 0x88),
    Transition(from: .open, input: "violation", to: .closing, setup: [], action: .violation, writes: 0x88),
    Transition(from: .open, input: "end of input", to: .closed, setup: [], action: .eof),
    Transition(from: .open, input: "keepalive Ping due", to: .open, configure: WSProtocol.Configuration.timed,
               setup: [], action: .tick(10), writes: 0x89),
    Transition(from: .open, input: "no Pong by pingTimeout", to: .closed, configure: WSProtocol.Configuration.timed,
               setup: [.tick(6.9), .peerData, .tick(10)], action: .tick(15), writes: 0x88),
    Transition(from: .open, input: "idleTimeout elapsed", to: .open, configure: WSProtocol.Configuration.timed,
               setup: [], action: .tick(7)),
    Transition(from: .closeSent, input: "data frame", to: .closeSent, setup: [.localClose], action: .peerData),
    Transition(from: .closeSent, input: "Close", to: .closing, setup: [.localClose], action: .peerClose),
    Transition(from: .closeSent, input: "violation", to: .closing, setup: [.localClose], action: .violation),
    Transition(from: .closeSent, input: "end of input", to: .closed, setup: [.localClose], action: .eof),
    Transition(from: .closeSent, input: "closeTimeout elapsed", to: .closed, configure: WSProtocol.Configuration.timed,
               setup: [.localClose], action: .tick(3)),
    Transition(from: .closeReceived, input: "close()", to: .closing, configure: { $0.autoCloseReply = false },
               setup: [.peerClose], action: .localClose, writes: 0x88),
    Transition(from: .closeReceived, input: "end of input", to: .closed, configure: { $0.autoCloseReply = false },
               setup: [.peerClose], action: .eof),
    Transition(from: .closing, input: "end of input", to: .closed, setup: [.peerClose], action: .eof),
    Transition(from: .closing, input: "closeTimeout elapsed", to: .closed, configure: WSProtocol.Configuration.timed,
               setup: [.peerClose], action: .tick(3)),
    Transition(from: .closed, input: "any input", to: .closed, setup: [.eof], action: .peerData),
]

@Suite("WSProtocol transition table (the header comment of WSProtocol.swift), both roles")
struct TransitionTableTests {
    func perform(_ action: Transition.Action, on p: inout WSProtocol, key: WSMaskKey?) {
        switch action {
        case .peerData: p.receive(frame(.text, Array("data".utf8), key: key))
        case .peerPing: p.receive(frame(.ping, [1], key: key))
        case .peerPong: p.receive(frame(.pong, [1], key: key))
        case .peerClose: p.receive(frame(.close, [0x03, 0xE8], key: key))
        case .violation: p.receive(frame(WSOpcode(rawValue: 0x3)!, [], key: key))
        case .eof: p.receiveEOF()
        case .localClose: try? p.close()
        case .tick(let s): p.tick(now: .seconds(s))
        }
        _ = drain(&p)
    }

    @Test("row", arguments: transitions)
    func row(_ t: Transition) throws {
        for role in [WSProtocol.Role.client, .server] {
            var config = WSProtocol.Configuration()
            t.configure(&config)
            var p = try WSProtocol(role: role, configuration: config, now: .zero)
            let key: WSMaskKey? = role == .server ? WSMaskKey(9, 8, 7, 6) : nil
            for a in t.setup { perform(a, on: &p, key: key) }
            #expect(p.lifecycle == t.from, "\(role): setup reached \(p.lifecycle)")
            _ = outbound(&p)
            perform(t.action, on: &p, key: key)
            #expect(p.lifecycle == t.to, "\(role)")
            let written = outbound(&p).bytes
            if let first = t.writes { #expect(written.first == first, "\(role) wrote \(written.prefix(2))") }
        }
    }

    @Test("every row of the header table is walked by a test case")
    func tableMatchesTests() throws {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/WSCore/WSProtocol.swift")
        let rows = try String(contentsOf: source, encoding: .utf8).split(separator: "\n")
            .filter { $0.hasPrefix("// | ") && !$0.hasPrefix("// | state") }
        #expect(rows.count == transitions.count + handshakeTransitions.count)
        for row in rows {
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            let walked = transitions.contains { "\($0.from)" == cells[1] && "\($0.to)" == cells[3] }
                || handshakeTransitions.contains { $0.input == cells[2] && "\($0.to)" == cells[3] }
            #expect(walked, "\(row)")
        }
    }
}

/// One handshake row: an engine in `role` fed `steps`, which must end in `to` having written
/// bytes that start with `writes`.
struct HandshakeTransition: Sendable, CustomTestStringConvertible {
    var input: String
    var roles: [WSProtocol.Role]
    var to: WSProtocol.Lifecycle
    var steps: @Sendable (inout WSProtocol) throws -> Void
    var writes: String?
    var testDescription: String { "connecting + \(input) → \(to)" }
}

private let goodRequest = Array("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".utf8)

let handshakeTransitions: [HandshakeTransition] = [
    HandshakeTransition(input: "server: a complete, valid request", roles: [.server], to: .connecting, steps: { p in
        p.receive(goodRequest)
    }),
    HandshakeTransition(input: "server: accept(...)", roles: [.server], to: .open, steps: { p in
        p.receive(goodRequest)
        _ = drain(&p)
        try p.accept()
    }, writes: "HTTP/1.1 101"),
    HandshakeTransition(input: "server: reject(status:...)", roles: [.server], to: .closed, steps: { p in
        p.receive(goodRequest)
        _ = drain(&p)
        try p.reject(status: .notFound)
    }, writes: "HTTP/1.1 404"),
    HandshakeTransition(input: "server: an invalid request", roles: [.server], to: .closed, steps: { p in
        p.receive(Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
    }, writes: "HTTP/1.1 426"),
    HandshakeTransition(input: "client: a valid 101", roles: [.client], to: .open, steps: { p in
        p.receive(Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(clientAccept)\r\n\r\n".utf8))
    }),
    HandshakeTransition(input: "client: a non-101 answer and its body", roles: [.client], to: .closed, steps: { p in
        p.receive(Array("HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno".utf8))
    }),
    HandshakeTransition(input: "client: an invalid answer", roles: [.client], to: .closed, steps: { p in
        p.receive(Array("HTTP/1.1 101 Switching Protocols\r\n\r\n".utf8))
    }),
    HandshakeTransition(input: "end of input", roles: [.client, .server], to: .closed, steps: { p in
        p.receiveEOF()
    }),
    HandshakeTransition(input: "handshake timeout elapsed", roles: [.client, .server], to: .closed, steps: { p in
        p.tick(now: .seconds(300))
    }),
]

/// The client engines' nonce comes from `WSSeededRandom(seed: 1)`; this is its accept value.
private let clientAccept: String = {
    var p = try! WSProtocol(client: WSClientHandshake(url: try! WSURL("ws://h/")), now: .zero, randomNumberGenerator: WSSeededRandom(seed: 1))
    guard case .bytes(let b)? = p.nextOutbound() else { return "" }
    let text = String(decoding: b, as: UTF8.self)
    let line = text.split(separator: "\r\n").first { $0.hasPrefix("Sec-WebSocket-Key: ") }!
    return WSHandshake.acceptValue(forKey: String(line.dropFirst("Sec-WebSocket-Key: ".count)))
}()

@Suite("WSProtocol transition table: the opening handshake rows")
struct HandshakeTransitionTests {
    @Test("row", arguments: handshakeTransitions)
    func row(_ t: HandshakeTransition) throws {
        for role in t.roles {
            var p = role == .server
                ? try WSProtocol(server: WSServerHandshake(), now: .zero)
                : try WSProtocol(client: WSClientHandshake(url: try WSURL("ws://h/")), now: .zero, randomNumberGenerator: WSSeededRandom(seed: 1))
            _ = outbound(&p)
            #expect(p.lifecycle == .connecting)
            try t.steps(&p)
            _ = drain(&p)
            #expect(p.lifecycle == t.to, "\(role)")
            let written = String(decoding: outbound(&p).bytes, as: UTF8.self)
            if let prefix = t.writes { #expect(written.hasPrefix(prefix), "\(role) wrote \(written.prefix(20))") }
        }
    }
}
