// POSIX socket helpers for the adapters: name resolution, connect with a timeout, listen,
// accept, non-blocking reads and writes that never raise SIGPIPE, vectored writes, timeouts.
// Unsafe pointer work is confined to this file. No protocol decisions here.

internal import Glibc
internal import CWSSystem
public import WSCore

/// A resolved socket address (IPv4 or IPv6).
public struct WSSocketAddress: Sendable, CustomStringConvertible {
    var storage = sockaddr_storage()
    var length: socklen_t = 0

    /// `AF_INET` or `AF_INET6`.
    public var family: Int32 { Int32(storage.ss_family) }

    /// The port number.
    public var port: Int {
        // sin_port and sin6_port are both at offset 2, in network order.
        withUnsafeBytes(of: storage) { Int(UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self))) }
    }

    /// The numeric host, for example `127.0.0.1` or `::1`.
    public var host: String {
        var s = storage
        var buf = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let rc = withUnsafePointer(to: &s) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &buf, socklen_t(buf.count), nil, 0, NI_NUMERICHOST)
            }
        }
        return rc == 0 ? String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }

    /// `host:port`, with IPv6 hosts in brackets.
    public var description: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// An IPv4 address and its port in one word (`address << 16 | port`), for records kept per
    /// connection; nil for any other family. ``describe(packedIPv4:)`` gives ``description``'s
    /// text back.
    public var packedIPv4: UInt64? {
        guard family == AF_INET else { return nil }
        return withUnsafeBytes(of: storage) { raw in
            // sin_port at offset 2, sin_addr at 4, both in network order.
            let port = UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            let address = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            return UInt64(address) << 16 | UInt64(port)
        }
    }

    /// `a.b.c.d:port` for a ``packedIPv4`` value.
    public static func describe(packedIPv4 packed: UInt64) -> String {
        let a = packed >> 16
        return "\(a >> 24 & 0xFF).\(a >> 16 & 0xFF).\(a >> 8 & 0xFF).\(a & 0xFF):\(packed & 0xFFFF)"
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }
}

/// A socket file descriptor with the operations the adapters need.
///
/// A plain value: it does not close itself; the adapter that owns it calls ``close()`` once.
/// Every write uses `MSG_NOSIGNAL`, so a peer that disappears mid-write yields `EPIPE`, never a
/// signal (``ignoreSIGPIPE()`` covers the calls that cannot take the flag).
public struct WSSocket: Hashable, Sendable {
    /// The file descriptor.
    public let fd: Int32

    /// Wraps an open descriptor.
    public init(fd: Int32) { self.fd = fd }

    // MARK: Process-wide

    /// Sets `SIGPIPE` to ignored for the process (idempotent). The adapters call it before
    /// their first socket: a peer closing mid-write must never kill the process.
    public static func ignoreSIGPIPE() {
        _ = signal(SIGPIPE, SIG_IGN)
    }

    // MARK: Resolution

    /// Resolves `host` (a name, an IPv4 or IPv6 literal; nil for the wildcard with `passive`) to
    /// stream socket addresses with `getaddrinfo`, in the resolver's order.
    public static func resolve(host: String?, port: Int, passive: Bool = false) throws(WSTransportError) -> [WSSocketAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_ADDRCONFIG | (passive ? AI_PASSIVE : 0)
        var list: UnsafeMutablePointer<addrinfo>?
        let h = host.map { $0.hasPrefix("[") && $0.hasSuffix("]") ? String($0.dropFirst().dropLast()) : $0 }
        let rc = getaddrinfo(h, String(port), &hints, &list)
        guard rc == 0 else {
            throw WSTransportError("resolve \(host ?? "*"):\(port)", message: String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(list) }
        var out: [WSSocketAddress] = []
        var node = list
        while let n = node {
            if let a = n.pointee.ai_addr, n.pointee.ai_family == AF_INET || n.pointee.ai_family == AF_INET6 {
                var address = WSSocketAddress()
                address.length = n.pointee.ai_addrlen
                withUnsafeMutableBytes(of: &address.storage) { dst in
                    dst.copyMemory(from: UnsafeRawBufferPointer(start: a, count: Int(n.pointee.ai_addrlen)))
                }
                out.append(address)
            }
            node = n.pointee.ai_next
        }
        if out.isEmpty { throw WSTransportError("resolve \(host ?? "*"):\(port)", message: "no IPv4 or IPv6 address") }
        return out
    }

    // MARK: Creation

    private static func make(family: Int32, nonBlocking: Bool) throws(WSTransportError) -> WSSocket {
        let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        let fd = socket(family, flags, 0)
        guard fd >= 0 else { throw .last("socket") }
        return WSSocket(fd: fd)
    }

    /// A connected pair of local stream sockets (`socketpair(AF_UNIX)`), non-blocking: an
    /// in-memory connection for tests, with no address, port or network.
    public static func pair() throws(WSTransportError) -> (WSSocket, WSSocket) {
        ignoreSIGPIPE()
        var fds: (Int32, Int32) = (-1, -1)
        let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let rc = withUnsafeMutableBytes(of: &fds) { socketpair(AF_UNIX, flags, 0, $0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        guard rc == 0 else { throw .last("socketpair") }
        return (WSSocket(fd: fds.0), WSSocket(fd: fds.1))
    }

    /// Connects to `host:port`, trying each resolved address in turn until one answers, within
    /// `timeout` in all. The socket comes back with `TCP_NODELAY` set, blocking unless
    /// `nonBlocking`.
    /// - Throws: the last address's error; a ``WSTransportError`` with `ETIMEDOUT` on timeout.
    public static func connect(host: String, port: Int, timeout: Duration, nonBlocking: Bool = false) throws(WSTransportError) -> WSSocket {
        ignoreSIGPIPE()
        let deadline = WSClock.now() + timeout
        var lastError = WSTransportError("connect to \(host):\(port)", message: "no address")
        for address in try resolve(host: host, port: port) {
            let s = try make(family: address.family, nonBlocking: true)
            do throws(WSTransportError) {
                try s.connectAttempt(to: address, deadline: deadline)
                try s.setNoDelay()
                if !nonBlocking { try s.setNonBlocking(false) }
                return s
            } catch {
                s.close()
                lastError = error
                if error.errno == ETIMEDOUT { break }
            }
        }
        throw lastError
    }

    private func connectAttempt(to address: WSSocketAddress, deadline: WSInstant) throws(WSTransportError) {
        let rc = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if rc == 0 { return }
        guard Glibc.errno == EINPROGRESS else { throw .last("connect to \(address)") }
        let remaining = deadline - WSClock.now()
        guard try wait(forWriting: true, timeout: remaining) else {
            throw WSTransportError("connect to \(address)", errno: ETIMEDOUT)
        }
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 else { throw .last("connect to \(address)") }
        if err != 0 { throw WSTransportError("connect to \(address)", errno: err) }
    }

    /// Creates a listening socket on `host:port` (`nil` host: every address; port 0: any free
    /// port, see ``localAddress``) with `SO_REUSEADDR`, and `SO_REUSEPORT` when `reusePort`
    /// (several sockets on one port, the kernel spreading connections between them).
    public static func listen(host: String?, port: Int, backlog: Int32 = 1024, reusePort: Bool = false, nonBlocking: Bool = true) throws(WSTransportError) -> WSSocket {
        ignoreSIGPIPE()
        var lastError = WSTransportError("listen on \(host ?? "*"):\(port)", message: "no address")
        for address in try resolve(host: host, port: port, passive: true) {
            let s = try make(family: address.family, nonBlocking: nonBlocking)
            do throws(WSTransportError) {
                try s.setOption(SO_REUSEADDR, 1, "SO_REUSEADDR")
                if reusePort { try s.setOption(SO_REUSEPORT, 1, "SO_REUSEPORT") }
                guard address.withSockaddr({ bind(s.fd, $0, $1) }) == 0 else { throw .last("bind \(address)") }
                guard Glibc.listen(s.fd, backlog) == 0 else { throw .last("listen on \(address)") }
                return s
            } catch {
                s.close()
                lastError = error
            }
        }
        throw lastError
    }

    /// Accepts one pending connection, non-blocking and close-on-exec, with `TCP_NODELAY`.
    /// Returns nil when none is pending (`EAGAIN`) or the attempt was aborted by the peer.
    /// - Throws: other errors, notably `EMFILE`/`ENFILE` (out of descriptors: retry later).
    public func accept() throws(WSTransportError) -> WSSocket? {
        while true {
            let c = cws_accept_nonblocking(fd)
            if c >= 0 {
                let s = WSSocket(fd: c)
                try? s.setNoDelay()
                return s
            }
            switch Glibc.errno {
            case EINTR: continue
            case EAGAIN, ECONNABORTED, EPROTO: return nil
            default: throw .last("accept")
            }
        }
    }

    // MARK: Options

    private func setOption(_ name: Int32, _ value: Int32, level: Int32 = SOL_SOCKET, _ label: String) throws(WSTransportError) {
        var v = value
        guard setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else { throw .last("setsockopt \(label)") }
    }

    /// Turns Nagle's algorithm off: frames go out as soon as they are written.
    public func setNoDelay() throws(WSTransportError) {
        try setOption(Int32(TCP_NODELAY), 1, level: Int32(IPPROTO_TCP), "TCP_NODELAY")
    }

    /// Switches `O_NONBLOCK` on or off.
    public func setNonBlocking(_ on: Bool = true) throws(WSTransportError) {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) == 0 else { throw .last("fcntl O_NONBLOCK") }
    }

    /// The local address (for example the port chosen for port 0).
    public var localAddress: WSSocketAddress? { address(getsockname) }

    /// The peer's address.
    public var peerAddress: WSSocketAddress? { address(getpeername) }

    private func address(_ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> WSSocketAddress? {
        var a = WSSocketAddress()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &a.storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) }
        }
        a.length = length
        return rc == 0 ? a : nil
    }

    // MARK: I/O

    /// Reads into `buffer`. Returns the count read (0: the peer ended its side), or nil when
    /// nothing is available on a non-blocking socket (or a blocking read timed out, see
    /// ``wait(forWriting:timeout:)``).
    /// - Parameter nonBlocking: never wait, even on a blocking socket (`MSG_DONTWAIT`).
    public func read(into buffer: UnsafeMutableRawBufferPointer, nonBlocking: Bool = false) throws(WSTransportError) -> Int? {
        while true {
            let n = cws_recv(fd, buffer.baseAddress, buffer.count, nonBlocking ? Int32(MSG_DONTWAIT) : 0)
            if n >= 0 { return n }
            switch Glibc.errno {
            case EINTR: continue
            case EAGAIN: return nil
            default: throw .last("read")
            }
        }
    }

    /// Writes from `buffer` without raising SIGPIPE. Returns the count the kernel took (maybe
    /// fewer than asked), or nil when it took none on a non-blocking socket.
    /// - Parameter nonBlocking: never wait, even on a blocking socket (`MSG_DONTWAIT`).
    public func write(_ buffer: UnsafeRawBufferPointer, nonBlocking: Bool = false) throws(WSTransportError) -> Int? {
        while true {
            let n = cws_send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL) | (nonBlocking ? Int32(MSG_DONTWAIT) : 0))
            if n >= 0 { return n }
            switch Glibc.errno {
            case EINTR: continue
            case EAGAIN: return nil
            default: throw .last("write")
            }
        }
    }

    /// Writes several buffers in one system call (`sendmsg`, the vectored write that also takes
    /// `MSG_NOSIGNAL`). Returns the total count the kernel took, or nil when it took none.
    public func write(vectored buffers: [UnsafeRawBufferPointer]) throws(WSTransportError) -> Int? {
        var iovecs = buffers.prefix(Int(UIO_MAXIOV)).map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        return try iovecs.withUnsafeMutableBufferPointer { (iov) throws(WSTransportError) -> Int? in
            var message = msghdr()
            message.msg_iov = iov.baseAddress
            message.msg_iovlen = iov.count
            while true {
                let n = sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
                if n >= 0 { return n }
                switch Glibc.errno {
                case EINTR: continue
                case EAGAIN: return nil
                default: throw .last("sendmsg")
                }
            }
        }
    }

    /// Writes all of `buffer`, waiting up to `timeout` for the kernel to take each part (nil: no
    /// limit). Each write takes only what fits at once, so a peer that stops reading cannot hold
    /// the call past the timeout.
    /// - Throws: `ETIMEDOUT` when the kernel did not take a part in time; `EPIPE`/`ECONNRESET`
    ///   when the peer went away.
    public func writeAll(_ buffer: UnsafeRawBufferPointer, timeout: Duration?) throws(WSTransportError) {
        var offset = 0
        while offset < buffer.count {
            if let n = try write(UnsafeRawBufferPointer(rebasing: buffer[offset...]), nonBlocking: true) {
                offset += n
            } else if !(try wait(forWriting: true, timeout: timeout)) {
                throw WSTransportError("write", errno: ETIMEDOUT)
            }
        }
    }

    /// Waits until the socket is readable (or writable) for at most `timeout` (nil: forever).
    /// Returns false on timeout. Errors and hang-ups count as ready: the next call reports them.
    public func wait(forWriting: Bool = false, timeout: Duration?) throws(WSTransportError) -> Bool {
        let start = WSClock.now()
        while true {
            var p = pollfd(fd: fd, events: Int16(forWriting ? POLLOUT : POLLIN), revents: 0)
            var ms: Int32 = -1
            if let timeout {
                let left = timeout - (WSClock.now() - start)
                ms = left <= .zero ? 0 : Int32(clamping: (left.nanoseconds + 999_999) / 1_000_000)
            }
            let rc = poll(&p, 1, ms)
            if rc > 0 { return true }
            if rc == 0 { return false }
            if Glibc.errno != EINTR { throw .last("poll") }
        }
    }

    /// Ends our sending side (TCP FIN); reads still work.
    public func shutdownWrite() {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Ends both directions (on a listening socket: wakes a thread blocked in `accept`).
    public func shutdown() {
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Reads and discards until the peer's FIN, an error, or `timeout`: used after our last
    /// bytes and FIN, so closing does not turn unread input into a reset that destroys them.
    public func drainUntilEOF(timeout: Duration) {
        let deadline = WSClock.now() + timeout
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            let left = deadline - WSClock.now()
            guard left > .zero, (try? wait(timeout: left)) == true else { return }
            let n = scratch.withUnsafeMutableBytes { try? read(into: $0) }
            if n == nil || n! == 0 { return }
        }
    }

    /// Closes the descriptor.
    public func close() {
        _ = Glibc.close(fd)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, a) = components
        return s &* 1_000_000_000 &+ a / 1_000_000_000
    }
}

/// The monotonic clock the adapters pass to the engine's `tick(now:)`.
public enum WSClock {
    /// Now, on `CLOCK_MONOTONIC`.
    public static func now() -> WSInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return WSInstant(nanoseconds: Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
    }
}
