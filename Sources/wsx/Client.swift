import ArgumentParser
import Glibc
import WSBlocking
import WSCore
import WSTransport

struct Client: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect to a WebSocket server, send each line of standard input as a text message, print what comes back.",
        discussion: """
            Each received message is printed on its own line (binary messages in hex). At the
            end of standard input it keeps printing replies until the server has been quiet for
            --linger seconds (some servers answer a Close before the replies they still owe),
            then closes with 1000, prints what the server sent before its Close, and exits 0; it
            exits non-zero with a message on any failure.

            Examples:
              echo hello | wsx client ws://127.0.0.1:9001/
              wsx client --subprotocol chat ws://localhost:9001/room < lines.txt
              printf 'a\\nb\\n' | wsx client --no-compression ws://[::1]:9001/
              echo hi | wsx client --ca-file Fixtures/tls/ca.pem wss://localhost:9001/
            """)

    @Flag(help: "Do not offer permessage-deflate.")
    var noCompression = false

    @Option(help: "A subprotocol to offer (repeatable, in order of preference).")
    var subprotocol: [String] = []

    @Option(help: "Seconds to wait for the connection and handshake.")
    var connectTimeout: Double = 10

    @Option(help: "Seconds to keep printing replies after the end of input, until the server has been quiet that long, before closing.")
    var linger: Double = 0.5

    @Option(help: "PEM CA certificates to trust for wss:// (default: the system's store).")
    var caFile: String?

    @Option(help: "PEM client certificate chain, for servers that require one (mutual TLS); needs --key.")
    var certificate: String?

    @Option(help: "PEM private key of --certificate.")
    var key: String?

    @Flag(help: "Accept any server certificate (tests only: no protection against impostors).")
    var insecure = false

    @Argument(help: "The server's ws:// or wss:// URL.")
    var url: String

    func run() throws {
        var config = WSBlockingConnection.Configuration()
        if noCompression { config.compression = nil }
        if caFile != nil || certificate != nil || insecure {
            config.tls = try WSTLSContext.client(trustRoots: caFile.map { .file($0) } ?? .system, verifyPeer: !insecure,
                                                 certificateChainFile: certificate, privateKeyFile: key)
        }
        let timeout = Duration.milliseconds(Int64(connectTimeout * 1000))
        let connected = Result(catching: { () throws(WSConnectionError) in
            try WSBlockingConnection.connect(to: url, subprotocols: subprotocol, configuration: config) { $0.timeout = timeout }
        })
        guard case .success(let ws) = connected else {
            if case .failure(let error) = connected { throw fail("cannot connect to \(url): \(error)") }
            return
        }
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        var stdinOpen = true
        while stdinOpen {
            var fds = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0), pollfd(fd: ws.fileDescriptor, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 2, -1) >= 0 || errno == EINTR else { throw fail("poll: \(String(cString: strerror(errno)))") }
            if fds[1].revents != 0 { try showReplies(ws, quietFor: .zero) }
            if fds[0].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) }
                if n <= 0 {
                    stdinOpen = false
                    if !pending.isEmpty { try send(pending, ws) }
                } else {
                    pending += buffer[..<n]
                    while let newline = pending.firstIndex(of: 0x0A) {
                        var line = Array(pending[..<newline])
                        if line.last == 0x0D { line.removeLast() }
                        pending.removeSubrange(...newline)
                        try send(line, ws)
                    }
                }
            }
        }
        try showReplies(ws, quietFor: .milliseconds(Int64(linger * 1000)))
        switch Result(catching: { () throws(WSConnectionError) in try ws.close(code: .normalClosure, timeout: .seconds(10)) { show($0) } }) {
        case .success(let info) where info.wasClean: return
        case .success(let info): throw fail("the connection did not close cleanly: \(info)")
        case .failure(let error): throw fail("close: \(error)")
        }
    }

    /// Prints messages as they arrive until none has arrived for `quiet` (`.zero`: only those
    /// already there).
    private func showReplies(_ ws: WSBlockingConnection, quietFor quiet: Duration) throws {
        while true {
            switch Result(catching: { () throws(WSConnectionError) in try ws.receive(timeout: quiet) }) {
            case .success(let message?): show(message)
            case .success(nil): throw fail("the server closed the connection: \(ws.closeInfo.map { "\($0)" } ?? "")")
            case .failure(.timeout): return
            case .failure(let error): throw fail("receive: \(error)")
            }
        }
    }

    private func send(_ line: [UInt8], _ ws: WSBlockingConnection) throws {
        do { try ws.send(text: String(decoding: line, as: UTF8.self)) } catch { throw fail("send: \(error)") }
    }

    private func show(_ message: WSMessage) {
        switch message {
        case .text(let s): print(s)
        case .binary(let b): print(b.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined())
        }
    }
}

/// An error that ends the command with exit code 1 and the message on standard error.
func fail(_ message: String) -> ValidationFailure {
    ValidationFailure(message: message)
}

struct ValidationFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { "wsx: \(message)" }
}
