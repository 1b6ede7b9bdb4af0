// Loopback peers for the client's tests: a scripted WebSocket server (epoll), a server that
// answers every request with a redirect, and a CONNECT proxy. All on 127.0.0.1, port 0.

import Glibc
import HTTPTypes
import Synchronization
import WSCore
import WSEpoll
import WSTransport

/// A server that echoes, and obeys a few commands sent as text:
/// `close:CODE` closes with CODE, `ping:X`
/// sends a Ping with X, `binary:X` answers X as binary, `json` answers `{"name":"ann","age":7}`.
final class ScriptedServer: WSEpollHandler, @unchecked Sendable {  // `server` is set once, before any connection.
    let requests = Mutex<[WSUpgradeRequest]>([])
    let pongs = Mutex<[[UInt8]]>([])
    /// The close code of each connection that ended (as the server saw it).
    let closes = Mutex<[UInt16]>([])
    let opened = Atomic<Int>(0)
    private(set) var server: WSEpollServer!

    static func start(port: Int = 0, subprotocols: [String] = [], _ adjust: (inout WSEpollServer.Configuration) -> Void = { _ in }) throws -> ScriptedServer {
        let s = ScriptedServer()
        var config = WSEpollServer.Configuration(host: "127.0.0.1", port: port)
        config.loops = 1
        adjust(&config)
        s.server = WSEpollServer(configuration: config) { [s] request in
            s.requests.withLock { $0.append(request) }
            return .accept(s, subprotocol: request.selectSubprotocol(preferring: subprotocols))
        }
        try s.server.start()
        return s
    }

    var url: String { "ws://127.0.0.1:\(server.port)/" }

    func opened(_ connection: WSEpollConnection, _ result: WSHandshakeResult) {
        opened.add(1, ordering: .relaxed)
    }

    func received(_ connection: WSEpollConnection, kind: WSMessageKind, data: Span<UInt8>, isFinal: Bool) {
        let text = kind == .text ? data.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) } : ""
        if text.hasPrefix("close:"), let code = UInt16(text.dropFirst(6)) {
            try? connection.close(code: WSCloseCode(rawValue: code), reason: "asked")
        } else if text.hasPrefix("ping:") {
            try? connection.ping(Array(text.dropFirst(5).utf8))
        } else if text.hasPrefix("binary:") {
            try? connection.send(binary: Array(text.dropFirst(7).utf8))
        } else if text == "json" {
            try? connection.send(text: #"{"age":7,"name":"ann"}"#)
        } else {
            try? connection.send(data, kind: kind)
        }
    }

    func event(_ connection: WSEpollConnection, _ event: WSProtocol.Event) {
        if case .pong(let payload) = event { pongs.withLock { $0.append(Array(payload)) } }
        if case .closed(let info) = event { closes.withLock { $0.append(info.code.rawValue) } }
    }

    func stop() { server.immediateStop() }
}

/// Answers each HTTP request with `status` and `Location: location(path)`, one connection at a
/// time, until stopped.
final class Redirector: Sendable {
    let listener: WSSocket
    let port: Int
    private let stopped = Atomic<Bool>(false)

    init(status: Int = 302, location: @escaping @Sendable (String) -> String?) throws {
        listener = try WSSocket.listen(host: "127.0.0.1", port: 0, nonBlocking: false)
        port = listener.localAddress!.port
        try WSThread { [self] in
            while !stopped.load(ordering: .relaxed) {
                guard let s = try? listener.accept() else { continue }
                let head = readHead(s)
                let path = head.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
                var answer = "HTTP/1.1 \(status) Moved\r\nContent-Length: 0\r\n"
                if let l = location(path) { answer += "Location: \(l)\r\n" }
                answer += "\r\n"
                _ = Array(answer.utf8).withUnsafeBytes { try? s.writeAll($0, timeout: .seconds(2)) }
                s.drainUntilEOF(timeout: .seconds(1))
                s.close()
            }
        }.detach()
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        // Wake the accept.
        (try? WSSocket.connect(host: "127.0.0.1", port: port, timeout: .seconds(1)))?.close()
        listener.close()
    }
}

/// A CONNECT proxy: one tunnel at a time, relayed until either side ends. With `credentials`,
/// a request without the matching `Proxy-Authorization` gets 407.
final class ConnectProxy: Sendable {
    let listener: WSSocket
    let port: Int
    let tunnels = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    init(credentials: String? = nil) throws {
        listener = try WSSocket.listen(host: "127.0.0.1", port: 0, nonBlocking: false)
        port = listener.localAddress!.port
        try WSThread { [self] in
            while !stopped.load(ordering: .relaxed) {
                guard let client = try? listener.accept() else { continue }
                let head = readHead(client)
                let target = head.split(separator: " ").dropFirst().first.map(String.init) ?? ""
                let authorized = credentials.map { head.contains("Proxy-Authorization: \(WSAuthorization.basic(user: String($0.split(separator: ":")[0]), password: String($0.split(separator: ":")[1])).fieldValue)") } ?? true
                guard head.hasPrefix("CONNECT "), authorized, let colon = target.lastIndex(of: ":"),
                      let upstream = try? WSSocket.connect(host: String(target[..<colon]), port: Int(target[target.index(after: colon)...]) ?? 0,
                                                           timeout: .seconds(2)) else {
                    let answer = authorized ? "HTTP/1.1 502 Bad Gateway\r\n\r\n" : "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"
                    _ = Array(answer.utf8).withUnsafeBytes { try? client.writeAll($0, timeout: .seconds(2)) }
                    client.close()
                    continue
                }
                tunnels.add(1, ordering: .relaxed)
                _ = Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8).withUnsafeBytes { try? client.writeAll($0, timeout: .seconds(2)) }
                relay(client, upstream)
                client.close()
                upstream.close()
            }
        }.detach()
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        (try? WSSocket.connect(host: "127.0.0.1", port: port, timeout: .seconds(1)))?.close()
        listener.close()
    }
}

/// Copies bytes both ways until one side ends.
private func relay(_ a: WSSocket, _ b: WSSocket) {
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        var fds = [pollfd(fd: a.fd, events: Int16(POLLIN), revents: 0), pollfd(fd: b.fd, events: Int16(POLLIN), revents: 0)]
        guard poll(&fds, 2, 10_000) > 0 else { return }
        for (from, to, i) in [(a, b, 0), (b, a, 1)] where fds[i].revents != 0 {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(from.fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            _ = buffer.withUnsafeBytes { try? to.writeAll(UnsafeRawBufferPointer(rebasing: $0[..<n]), timeout: .seconds(5)) }
        }
    }
}

/// An HTTP request or answer head, read a byte at a time (nothing past it is taken).
private func readHead(_ s: WSSocket) -> String {
    var head: [UInt8] = []
    var byte: UInt8 = 0
    while !head.suffix(4).elementsEqual([13, 10, 13, 10]) && head.count < 16384 {
        guard (try? s.wait(timeout: .seconds(5))) == true else { break }
        let n = withUnsafeMutableBytes(of: &byte) { Glibc.read(s.fd, $0.baseAddress, 1) }
        if n <= 0 { break }
        head.append(byte)
    }
    return String(decoding: head, as: UTF8.self)
}
