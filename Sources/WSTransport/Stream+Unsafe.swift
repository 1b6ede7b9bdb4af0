// A socket with an optional TLS session on it: the byte stream the adapters read and write.
// Without TLS every call is the socket's own; with TLS, reads pull ciphertext from the socket
// into the session and return plaintext, writes encrypt and send, and ciphertext the kernel does
// not take waits in the session until the next flush.

internal import Glibc
import WSCore

/// A connection's byte stream: a socket, or TLS over a socket. Plaintext in, plaintext out.
/// Reads and writes never wait, on blocking sockets too; the blocking helpers wait with `poll`.
/// Not thread-safe (its TLS session is not): one owner at a time.
public struct WSStream {
    // The session first: the 4-byte socket then ends the value (12 bytes, not 16), and a
    // record holding a stream can put a 4-byte field right after it.
    /// The TLS session, for `wss://`.
    public let tls: WSTLSSession?
    /// The socket underneath.
    public let socket: WSSocket

    /// A stream over `socket`, encrypted by `tls` when given.
    public init(socket: WSSocket, tls: WSTLSSession? = nil) {
        self.socket = socket
        self.tls = tls
    }

    /// The most plaintext handed to the TLS session at once: what the network has not taken
    /// stays with the caller, so ciphertext queued in the session stays bounded.
    static let tlsWriteChunk = 64 << 10

    // MARK: Non-blocking use (the epoll adapter)

    /// Reads plaintext into `buffer`. Returns the count (0: the peer ended the stream, by TCP
    /// FIN or TLS close_notify), or nil when nothing is available now. With TLS, `buffer` also
    /// holds the ciphertext read, and handshake replies are sent as they arise.
    /// - Throws: ``WSTransportError`` for a socket or TLS failure.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(WSTransportError) -> Int? {
        guard let tls else { return try socket.read(into: buffer, nonBlocking: true) }
        while true {
            let result: WSTLSSession.ReadResult
            do throws(WSTransportError) {
                result = try tls.readPlaintext(into: buffer)
            } catch {
                _ = try? flush()   // the alert, best effort
                throw error
            }
            switch result {
            case .bytes(let n): return n
            case .closed: return 0
            case .needsInput: break
            }
            _ = try flush()
            guard let n = try socket.read(into: buffer, nonBlocking: true) else { return nil }
            if n == 0 { return 0 }
            tls.receiveCiphertext(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        }
    }

    /// Writes plaintext. Returns the count taken; 0 while a TLS handshake waits for the peer;
    /// nil when the kernel takes nothing now (or earlier ciphertext is still waiting for it).
    public func write(_ bytes: UnsafeRawBufferPointer) throws(WSTransportError) -> Int? {
        guard let tls else { return try socket.write(bytes, nonBlocking: true) }
        guard try flush() else { return nil }
        let n = try tls.writePlaintext(UnsafeRawBufferPointer(rebasing: bytes.prefix(Self.tlsWriteChunk)))
        _ = try flush()
        return n
    }

    /// Sends the ciphertext the TLS session has queued. Returns whether all of it went (always
    /// true without TLS).
    @discardableResult
    public func flush() throws(WSTransportError) -> Bool {
        guard let tls else { return true }
        while tls.pendingCiphertextCount > 0 {
            guard let n = try tls.withPendingCiphertext({ (raw) throws(WSTransportError) in try socket.write(raw, nonBlocking: true) }) else { return false }
            tls.consumeCiphertext(n)
        }
        return true
    }

    /// Ciphertext waiting for the kernel.
    @inlinable public var hasPendingOutput: Bool {
        // Inlined: the epoll loop asks several times per message, almost always without TLS.
        guard let tls else { return false }
        return tls.pendingCiphertextCount > 0
    }

    /// Whether a read can produce bytes without anything new from the network.
    public var hasBufferedInput: Bool { tls?.hasBufferedInput ?? false }

    /// Ends our sending side: TLS close_notify, then the TCP FIN once every byte has gone.
    /// Returns false while ciphertext still waits for the kernel (call again after it drains).
    @discardableResult
    public func shutdownWrite() -> Bool {
        if let tls {
            tls.closeNotify()
            guard (try? flush()) == true else { return false }
        }
        socket.shutdownWrite()
        return true
    }

    // MARK: Blocking use (the blocking adapter)

    /// Runs the TLS handshake to its end on a blocking socket (nothing without TLS).
    /// - Throws: ``WSTransportError``: a TLS failure, the peer closing, or `ETIMEDOUT`.
    public func handshake(timeout: Duration?) throws(WSTransportError) {
        guard let tls else { return }
        let deadline = timeout.map { WSClock.now() + $0 }
        func left() -> Duration? { deadline.map { $0 - WSClock.now() } }
        try withUnsafeTemporaryAllocation(byteCount: 16 << 10, alignment: 16) { (buffer) throws(WSTransportError) in
            while true {
                let done: Bool
                do throws(WSTransportError) { done = try tls.advanceHandshake() } catch {
                    _ = try? flushAll(timeout: .seconds(1))
                    throw error
                }
                try flushAll(timeout: left())
                if done { return }
                guard try socket.wait(timeout: left()) else { throw WSTransportError("TLS handshake", errno: ETIMEDOUT) }
                guard let n = try socket.read(into: buffer, nonBlocking: true) else { continue }
                if n == 0 { throw WSTransportError("TLS handshake", message: "the peer closed the connection") }
                tls.receiveCiphertext(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            }
        }
    }

    /// Writes all of `bytes` on a blocking socket, waiting up to `timeout` for the kernel to
    /// take each part (nil: no limit).
    /// - Throws: `ETIMEDOUT`, `EPIPE`/`ECONNRESET`, a TLS failure.
    public func writeAll(_ bytes: UnsafeRawBufferPointer, timeout: Duration?) throws(WSTransportError) {
        guard tls != nil else { return try socket.writeAll(bytes, timeout: timeout) }
        var offset = 0
        while offset < bytes.count {
            let n = try write(UnsafeRawBufferPointer(rebasing: bytes[offset...])) ?? 0
            offset += n
            if n == 0 {
                // A handshake still waiting for the peer (not after `handshake(timeout:)`),
                // or ciphertext waiting for the kernel.
                if tls?.isHandshakeComplete == false { try handshake(timeout: timeout) } else { try flushAll(timeout: timeout) }
            }
        }
        try flushAll(timeout: timeout)
    }

    /// Sends all queued ciphertext on a blocking socket, waiting up to `timeout` for each part.
    public func flushAll(timeout: Duration?) throws(WSTransportError) {
        while try !flush() {
            if !(try socket.wait(forWriting: true, timeout: timeout)) { throw WSTransportError("write", errno: ETIMEDOUT) }
        }
    }

    /// Ends our sending side on a blocking socket (TLS close_notify, then FIN), waiting up to
    /// `timeout` for the kernel to take the alert. Best effort: a peer that stopped reading only
    /// costs the wait.
    public func shutdownWrite(timeout: Duration?) {
        while !shutdownWrite() {
            guard (try? socket.wait(forWriting: true, timeout: timeout)) == true else { return }
        }
    }

    /// Waits until a read can make progress (bytes buffered in the session, or the socket
    /// readable) for at most `timeout`. Returns false on timeout.
    public func waitReadable(timeout: Duration?) throws(WSTransportError) -> Bool {
        if hasBufferedInput { return true }
        return try socket.wait(timeout: timeout)
    }
}
