// Helpers for loopback tests: servers on port 0 (127.0.0.1 only), a raw client socket for
// sending bytes no well-behaved client would, and bounded waits.

import Glibc
import Synchronization
import WSCore
import WSEpoll
import WSTransport

/// Echoes messages; remembers each connection it opened and the events it saw.
final class RecordingEcho: WSEpollHandler, Sendable {
    let connections = Mutex<[WSEpollConnection]>([])
    let events = Mutex<[WSProtocol.Event]>([])
    let maxBuffered = Atomic<Int>(0)
    let echo: Bool

    init(echo: Bool = true) { self.echo = echo }

    func opened(_ connection: WSEpollConnection, _ result: WSHandshakeResult) {
        connections.withLock { $0.append(connection) }
    }

    func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
        if echo { try? connection.send(data, kind: kind) }
        let buffered = connection.bufferedAmount
        if buffered > maxBuffered.load(ordering: .relaxed) { maxBuffered.store(buffered, ordering: .relaxed) }
    }

    func event(_ connection: WSEpollConnection, _ event: WSProtocol.Event) {
        events.withLock { $0.append(event) }
    }
}

/// Starts an epoll server on a free loopback port.
func startServer(
    loops: Int = 1,
    _ adjust: (inout WSEpollServer.Configuration) -> Void = { _ in },
    upgrade: @escaping @Sendable (WSUpgradeRequest) -> WSUpgradeDecision
) throws -> WSEpollServer {
    var config = WSEpollServer.Configuration(host: "127.0.0.1", port: 0)
    config.loops = loops
    adjust(&config)
    let server = WSEpollServer(configuration: config, upgrade: upgrade)
    try server.start()
    return server
}

/// Starts an epoll server on the IPv6 loopback (`::1`); nil when this machine has no IPv6.
func startServerOnIPv6(upgrade: @escaping @Sendable (WSUpgradeRequest) -> WSUpgradeDecision) throws -> WSEpollServer? {
    do {
        return try startServer({ $0.host = "::1" }, upgrade: upgrade)
    } catch let error as WSTransportError where error.errno == EADDRNOTAVAIL || error.errno == EAFNOSUPPORT {
        return nil
    }
}

/// Small water marks (256 KiB high, 64 KiB low), a 64 KiB read buffer and no compression: a
/// server whose backpressure shows after a few MiB.
func smallBuffers(_ config: inout WSEpollServer.Configuration) {
    config.connection.outboundHighWaterMark = 256 << 10
    config.connection.outboundLowWaterMark = 64 << 10
    config.readBufferSize = 64 << 10
    config.compression = nil
}

/// Polls `condition` every 5 ms for up to `seconds`.
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = WSClock.now() + .milliseconds(Int64(seconds * 1000))
    while WSClock.now() < deadline {
        if condition() { return true }
        usleep(5000)
    }
    return condition()
}

/// Raises this process's soft limit on open descriptors to `count` if it is lower and the hard
/// limit allows; whether `count` descriptors may now be open.
func raiseDescriptorLimit(to count: Int) -> Bool {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return false }
    if limit.rlim_cur >= rlim_t(count) { return true }
    guard limit.rlim_max >= rlim_t(count) else { return false }
    limit.rlim_cur = rlim_t(count)
    return setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0
}

/// Runs `body` with a one-loop echo server's handler and a raw client that has completed the
/// opening handshake with it; stops both after.
func withUpgradedRawClient(_ body: (RecordingEcho, RawClient) throws -> Void) throws {
    let echo = RecordingEcho()
    let server = try startServer { _ in .accept(echo) }
    defer { server.immediateStop() }
    let raw = try RawClient(port: server.port)
    defer { raw.close() }
    _ = try raw.upgrade()
    try body(echo, raw)
}

/// A plain TCP client for raw bytes.
struct RawClient {
    let socket: WSSocket

    init(port: Int) throws {
        socket = try WSSocket.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
    }

    func send(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try socket.writeAll($0, timeout: .seconds(5)) }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Reads until the peer's FIN (or `seconds`), returning everything and whether FIN came.
    func readToEnd(seconds: Double = 5) throws -> (bytes: [UInt8], eof: Bool) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = WSClock.now() + .milliseconds(Int64(seconds * 1000))
        while true {
            let left = deadline - WSClock.now()
            guard left > .zero, try socket.wait(timeout: left) else { return (out, false) }
            let n = try buffer.withUnsafeMutableBytes { try socket.read(into: $0) } ?? 0
            if n == 0 { return (out, true) }
            out += buffer[..<n]
        }
    }

    /// Sends a valid upgrade request and reads the 101 answer (returns what followed it).
    func upgrade(path: String = "/", extra: String = "") throws -> [UInt8] {
        try send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(extra)\r\n")
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            guard try socket.wait(timeout: .seconds(5)) else { throw WSTransportError("upgrade", message: "no answer") }
            let n = try buffer.withUnsafeMutableBytes { try socket.read(into: $0) } ?? 0
            if n == 0 { throw WSTransportError("upgrade", message: "closed") }
            got += buffer[..<n]
            if let end = got.firstRange(of: Array("\r\n\r\n".utf8)) {
                precondition(got.starts(with: Array("HTTP/1.1 101".utf8)), String(decoding: got, as: UTF8.self))
                return Array(got[end.upperBound...])
            }
        }
    }

    func close() { socket.close() }
}

/// A masked client frame.
func maskedFrame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true, key: [UInt8] = [1, 2, 3, 4]) -> [UInt8] {
    var f: [UInt8] = [(fin ? 0x80 : 0) | opcode]
    if payload.count < 126 {
        f.append(0x80 | UInt8(payload.count))
    } else if payload.count < 65536 {
        f += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
    } else {
        f.append(0x80 | 127)
        for shift in stride(from: 56, through: 0, by: -8) { f.append(UInt8((payload.count >> shift) & 0xFF)) }
    }
    f += key
    for (i, b) in payload.enumerated() { f.append(b ^ key[i & 3]) }
    return f
}
