import ArgumentParser
import Glibc
import HTTPTypes
import Logging
import Synchronization
import WSClient
import WSCore
import WSTransport

struct Client: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect to a WebSocket server, send each line of standard input as a text message, print what comes back.",
        discussion: """
            Each received message is printed on its own line at once (binary messages in hex).
            At the end of standard input it keeps printing replies until the server has been
            quiet for --linger seconds, then closes with 1000 and exits 0 once the closing
            handshake is done. When the server closes first with 1000 (or no code), it also
            exits 0. Any other end exits non-zero with a one-line reason.

            HTTP proxies come from http_proxy (ws://) and https_proxy (wss://) unless no_proxy
            lists the host, or from --proxy. With -v, standard error gets a line per
            connection (what was negotiated) and per retry.

            Examples:
              echo hello | wsx client ws://127.0.0.1:9001/
              wsx client --subprotocol chat --header 'Origin: http://localhost' ws://localhost:9001/room < lines.txt
              wsx client --retry-count 5 --retry-interval 0.5 --backoff-factor 2 -v ws://127.0.0.1:9001/
              echo hi | wsx client --ca Fixtures/tls/ca.pem wss://localhost:9001/
            """)

    @Flag(help: "Do not offer permessage-deflate.")
    var noCompression = false

    @Option(help: "A subprotocol to offer (repeatable, in order of preference).")
    var subprotocol: [String] = []

    @Option(help: "A header field for the upgrade request, 'Name: value' (repeatable).")
    var header: [String] = []

    @Option(help: "A cookie, 'name=value' (repeatable).")
    var cookie: [String] = []

    @Option(help: "HTTP Basic credentials, USER:PASS.")
    var basic: String?

    @Option(help: "A bearer token for the Authorization field.")
    var bearer: String?

    @Option(help: "Seconds to wait for the connection and the handshake.")
    var connectTimeout: Double = 10

    @Option(help: "Seconds a read may wait for a message before the client gives up (default: no limit).")
    var readTimeout: Double?

    @Option(help: "Seconds to keep printing replies after the end of input, until the server has been quiet that long, before closing.")
    var linger: Double = 0.5

    @Option(help: "Reconnect this many times after a dropped connection (0: indefinitely). Without it, no retry.")
    var retryCount: Int?

    @Option(help: "Seconds before the first reconnection.")
    var retryInterval: Double = 1

    @Option(help: "How much each wait before a reconnection grows.")
    var backoffFactor: Double = 1

    @Option(help: "The longest wait before a reconnection, in seconds.")
    var maxWaitInterval: Double = 30

    @Option(help: "Redirects to follow (0 refuses them).")
    var maxRedirects: Int = 10

    @Option(help: "An HTTP proxy, http://[user:pass@]host:port (default: from http_proxy / https_proxy / no_proxy).")
    var proxy: String?

    @Option(name: [.customLong("ca"), .customLong("ca-file")], help: "PEM CA certificates to trust for wss:// (default: the system's store).")
    var ca: String?

    @Option(help: "PEM client certificate chain, for servers that require one (mutual TLS); needs --key.")
    var certificate: String?

    @Option(help: "PEM private key of --certificate.")
    var key: String?

    @Flag(help: "Accept any server certificate (tests only: no protection against impostors).")
    var insecure = false

    @Flag(name: .shortAndLong, help: "Log each connection and retry on standard error.")
    var verbose = false

    @Argument(help: "The server's ws:// or wss:// URL.")
    var url: String

    func run() throws {
        let command = self
        try blockOn { try await command.runBody() }
    }

    private func runBody() async throws {
        let configuration = try makeConfiguration()
        let client: WSClient
        do { client = try await WSClient(url, configuration: configuration) } catch {
            throw fail("cannot connect to \(url): \(error)")
        }
        let lastMessage = LastMessage()
        let ended: Result<WSProtocol.CloseInfo?, WSClientError> = await withTaskGroup(of: Result<WSProtocol.CloseInfo?, WSClientError>.self) { group in
            // Replies, printed as they come, until the connection ends.
            group.addTask {
                do throws(WSClientError) {
                    var messages = client.messages.makeAsyncIterator()
                    while let message = try await messages.next() {
                        show(message)
                        lastMessage.touch()
                    }
                    return .success(client.closeInfo)
                } catch {
                    return .failure(error)
                }
            }
            // Standard input, line by line; then the quiet wait and the Close.
            group.addTask {
                for await line in standardInputLines() {
                    do throws(WSClientError) { try await client.writeTextMessage(line) } catch { return .failure(error) }
                }
                lastMessage.touch()
                await lastMessage.waitForQuiet(Duration.milliseconds(Int64(linger * 1000)))
                do throws(WSClientError) { try await client.close(timeout: .seconds(10)) } catch { return .failure(error) }
                return .success(nil)
            }
            // Whichever ends first decides; the other is not needed any more (reading ends
            // with the Close; a writer blocked on standard input is abandoned).
            let first = await group.next()!
            if case .success(nil) = first {
                let reader = await group.next()!
                group.cancelAll()
                return reader.map { _ in client.closeInfo }
            }
            group.cancelAll()
            return first
        }
        switch ended {
        case .success(let info?) where info.wasClean && [1000, 1005].contains(info.code.rawValue):
            return
        case .success(let info?):
            throw fail("the connection ended: \(info)")
        case .success(nil):
            throw fail("the connection ended without a Close")
        case .failure(let error) where error.closeInfo.map({ $0.wasClean && [1000, 1005].contains($0.code.rawValue) }) == true:
            return
        case .failure(let error):
            throw fail("\(error)")
        }
    }

    private func makeConfiguration() throws -> WSClientConfiguration {
        var c = WSClientConfiguration()
        c.compression = !noCompression
        c.subProtocols = subprotocol
        for field in header {
            guard let colon = field.firstIndex(of: ":"), let name = HTTPField.Name(String(field[..<colon]).trimmingSpaces) else {
                throw fail("--header wants 'Name: value', got '\(field)'")
            }
            c.customHeaders.append(HTTPField(name: name, value: String(field[field.index(after: colon)...]).trimmingSpaces))
        }
        for pair in cookie {
            guard let eq = pair.firstIndex(of: "=") else { throw fail("--cookie wants 'name=value', got '\(pair)'") }
            c.cookies.append(WSCookie(name: String(pair[..<eq]), value: String(pair[pair.index(after: eq)...])))
        }
        if let basic {
            guard let colon = basic.firstIndex(of: ":") else { throw fail("--basic wants USER:PASS") }
            c.auth = .basic(user: String(basic[..<colon]), password: String(basic[basic.index(after: colon)...]))
        }
        if let bearer { c.auth = .bearer(bearer) }
        c.handshakeTimeout = seconds(connectTimeout)
        c.readTimeout = readTimeout.map(seconds)
        if let retryCount {
            c.retry = WSRetryConfig(maxCount: retryCount, interval: seconds(retryInterval), backOffFactor: backoffFactor,
                                    maxWaitInterval: seconds(maxWaitInterval))
        }
        c.maxRedirects = maxRedirects
        if let proxy {
            do { c.proxy = .proxy(try WSProxy(proxy)) } catch { throw fail("--proxy: \(error)") }
        }
        if ca != nil || certificate != nil || insecure {
            c.tls = try WSTLSContext.client(trustRoots: ca.map { .file($0) } ?? .system, verifyPeer: !insecure,
                                            certificateChainFile: certificate, privateKeyFile: key)
        }
        if verbose {
            c.logger = Logger(label: "wsx.client") { _ in StandardErrorLines() }
        }
        return c
    }

    private func seconds(_ s: Double) -> Duration { .milliseconds(Int64((s * 1000).rounded())) }
}

/// Prints a message on its own line at once (binary in hex).
private func show(_ message: WSMessage) {
    switch message {
    case .text(let s): printFlushed(s)
    case .binary(let b): printFlushed(b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined())
    }
}

/// When the last message came, to wait for a quiet moment before closing.
private final class LastMessage: Sendable {
    private let at = Atomic<Int64>(0)
    func touch() { at.store(Int64(WSClock.now().nanoseconds), ordering: .relaxed) }
    func waitForQuiet(_ quiet: Duration) async {
        let quietNs = Int64(quiet.components.seconds) * 1_000_000_000 + quiet.components.attoseconds / 1_000_000_000
        while true {
            let since = Int64(WSClock.now().nanoseconds) - at.load(ordering: .relaxed)
            if since >= quietNs { return }
            try? await Task.sleep(for: .nanoseconds(quietNs - since))
        }
    }
}

/// Standard input's lines (a trailing CR removed), read on a thread of their own.
private func standardInputLines() -> AsyncStream<String> {
    AsyncStream { continuation in
        do {
            try WSThread {
                var pending: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 16 << 10)
                while true {
                    let n = buffer.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    pending += buffer[..<n]
                    while let newline = pending.firstIndex(of: 0x0A) {
                        var line = Array(pending[..<newline])
                        if line.last == 0x0D { line.removeLast() }
                        pending.removeSubrange(...newline)
                        continuation.yield(String(decoding: line, as: UTF8.self))
                    }
                }
                if !pending.isEmpty { continuation.yield(String(decoding: pending, as: UTF8.self)) }
                continuation.finish()
            }.detach()
        } catch {
            continuation.finish()
        }
    }
}

/// `-v`: each log line's message alone, on standard error (info and above).
private struct StandardErrorLines: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        printFlushed("\(event.message)", to: 2)
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
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
