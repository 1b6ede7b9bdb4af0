import ArgumentParser
import WSCore
import WSTesting

/// A conversation between two engines wired in memory, printed frame by frame.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a client and a server engine against each other in memory and print what crosses the wire.",
        discussion: """
            Shows the sans-I/O engine at work without sockets: messages, a fragmented message,
            a ping, a protocol violation caught by the server, and the closing handshake.

            Example:
              swift run wsx demo
            """)

    func run() throws {
        var pair = try WSConnectionPair()
        func step(_ title: String, _ body: (inout WSConnectionPair) throws -> Void) throws {
            print("== \(title)")
            try body(&pair)
            let (client, server) = pair.exchange()
            for e in server { print("   server ← \(WSFixtureRunner.render(e))") }
            for e in client { print("   client ← \(WSFixtureRunner.render(e))") }
        }
        try step("client sends a text message") { try $0.client.sendText("Hello, swift-ws 👋") }
        try step("server answers with binary") { try $0.server.sendBinary([0xCA, 0xFE, 0xBA, 0xBE]) }
        try step("client sends a message in three fragments with a ping in between") {
            try $0.client.sendFragment(Array("frag".utf8), kind: .text, isFinal: false)
            try $0.client.ping(Array("are you there?".utf8))
            try $0.client.sendFragment(Array("men".utf8), kind: .text, isFinal: false)
            try $0.client.sendFragment(Array("ted".utf8), kind: .text, isFinal: true)
        }
        try step("server closes with 1001 Going Away") { try $0.server.close(code: .goingAway, reason: "demo over") }

        print("== a peer that breaks the rules: an unmasked client frame")
        var server = try WSProtocol(role: .server, now: .zero)
        server.receive(Array([0x81, 0x02, 0x68, 0x69]))
        while let e = server.nextEvent() { print("   server ← \(WSFixtureRunner.render(e))") }
        while let out = server.nextOutbound() {
            switch out {
            case .bytes(let b): print("   server → \(WSFixtureRunner.hex(b))")
            case .endOfStream: print("   server → end of stream")
            }
        }
        server.receiveEOF()
        while let e = server.nextEvent() { print("   server ← \(WSFixtureRunner.render(e))") }
    }
}
