// TLS for `wss://`, on system OpenSSL with memory BIOs: a session is itself bytes in, bytes out
// (ciphertext in, plaintext out, and the reverse), with no socket of its own, so the adapters
// keep their own I/O loops and the engine never knows TLS is there. `WSStream` joins a session
// to a socket for the adapters.

internal import CWSOpenSSL
internal import Glibc

/// TLS settings shared by many connections: certificates, trust, protocol versions. Build one
/// per server or client and share it; it is immutable once made and safe to use from any thread.
///
/// ```swift
/// let serverTLS = try WSTLSContext.server(certificateChainFile: "cert.pem", privateKeyFile: "key.pem")
/// let clientTLS = try WSTLSContext.client(trustRoots: .file("ca.pem"))
/// ```
public final class WSTLSContext: @unchecked Sendable {
    /// Where a client (or a server checking client certificates) finds the certificates it trusts.
    public enum TrustRoots: Sendable, Hashable {
        /// The system's store (`/etc/ssl/certs`, package `ca-certificates`).
        case system
        /// A PEM file of CA certificates.
        case file(String)
    }

    /// How a server treats client certificates (mutual TLS).
    public enum ClientAuthentication: Sendable, Hashable {
        /// None asked for (the default).
        case none
        /// Asked for; a client without one is still accepted, one with an untrusted one is not.
        case optional(TrustRoots)
        /// Required: the handshake fails without a certificate the roots vouch for.
        case required(TrustRoots)
    }

    /// The oldest protocol version accepted.
    public enum MinimumVersion: Sendable, Hashable {
        /// TLS 1.2 and 1.3 (the default).
        case tls12
        /// TLS 1.3 only.
        case tls13
    }

    let context: OpaquePointer
    /// Whether sessions made from this context take the server's side.
    public let isServer: Bool
    /// Whether the peer's certificate (and, for clients, its name) is verified.
    public let verifiesPeer: Bool

    private init(server: Bool, verifiesPeer: Bool, minimumVersion: MinimumVersion) throws(WSTransportError) {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()) else {
            throw tlsError("TLS context")
        }
        context = ctx
        isServer = server
        self.verifiesPeer = verifiesPeer
        _ = cws_ctx_set_min_proto_version(ctx, minimumVersion == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION)
        // Memory BIOs never block, so no partial-write mode is needed; idle sessions give their
        // record buffers back; renegotiation (TLS 1.2) is refused.
        _ = cws_ctx_set_mode(ctx, Int(SSL_MODE_RELEASE_BUFFERS))
        cws_ctx_refuse_renegotiation(ctx)
    }

    deinit { SSL_CTX_free(context) }

    /// A server context: the certificate chain (leaf first) and its private key, PEM files.
    ///
    /// - Parameters:
    ///   - clientAuthentication: whether to ask for client certificates (mutual TLS).
    ///   - minimumVersion: TLS 1.2 (default) or 1.3.
    /// - Throws: ``WSTransportError`` naming the file and OpenSSL's reason (missing file, key
    ///   that does not match the certificate, …).
    public static func server(
        certificateChainFile: String,
        privateKeyFile: String,
        clientAuthentication: ClientAuthentication = .none,
        minimumVersion: MinimumVersion = .tls12
    ) throws(WSTransportError) -> WSTLSContext {
        let verifies: Bool
        switch clientAuthentication {
        case .none: verifies = false
        case .optional, .required: verifies = true
        }
        let tls = try WSTLSContext(server: true, verifiesPeer: verifies, minimumVersion: minimumVersion)
        try tls.useIdentity(certificateChainFile: certificateChainFile, privateKeyFile: privateKeyFile)
        cws_ctx_select_alpn_http11(tls.context)
        switch clientAuthentication {
        case .none:
            SSL_CTX_set_verify(tls.context, SSL_VERIFY_NONE, nil)
        case .optional(let roots), .required(let roots):
            try tls.trust(roots)
            if case .file(let path) = roots, let names = SSL_load_client_CA_file(path) {
                SSL_CTX_set_client_CA_list(tls.context, names)
            }
            let failWithout = clientAuthentication == .required(roots) ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0
            SSL_CTX_set_verify(tls.context, SSL_VERIFY_PEER | failWithout, nil)
        }
        return tls
    }

    /// A client context.
    ///
    /// - Parameters:
    ///   - trustRoots: the CAs that vouch for servers; the system's store by default.
    ///   - verifyPeer: check the server's certificate and that it names the host of the URL
    ///     (the default). `false` accepts any certificate: for tests only, it gives no protection
    ///     against an attacker in the middle.
    ///   - certificateChainFile, privateKeyFile: the client's own identity, for servers that
    ///     require one (mutual TLS).
    ///   - minimumVersion: TLS 1.2 (default) or 1.3.
    /// - Throws: ``WSTransportError``.
    public static func client(
        trustRoots: TrustRoots = .system,
        verifyPeer: Bool = true,
        certificateChainFile: String? = nil,
        privateKeyFile: String? = nil,
        minimumVersion: MinimumVersion = .tls12
    ) throws(WSTransportError) -> WSTLSContext {
        let tls = try WSTLSContext(server: false, verifiesPeer: verifyPeer, minimumVersion: minimumVersion)
        if let certificateChainFile {
            try tls.useIdentity(certificateChainFile: certificateChainFile, privateKeyFile: privateKeyFile ?? certificateChainFile)
        }
        if verifyPeer {
            try tls.trust(trustRoots)
            SSL_CTX_set_verify(tls.context, SSL_VERIFY_PEER, nil)
        } else {
            SSL_CTX_set_verify(tls.context, SSL_VERIFY_NONE, nil)
        }
        return tls
    }

    private func useIdentity(certificateChainFile: String, privateKeyFile: String) throws(WSTransportError) {
        ERR_clear_error()
        guard SSL_CTX_use_certificate_chain_file(context, certificateChainFile) == 1 else {
            throw tlsError("TLS certificate chain \(certificateChainFile)")
        }
        guard SSL_CTX_use_PrivateKey_file(context, privateKeyFile, SSL_FILETYPE_PEM) == 1 else {
            throw tlsError("TLS private key \(privateKeyFile)")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            throw tlsError("TLS private key \(privateKeyFile)")
        }
    }

    private func trust(_ roots: TrustRoots) throws(WSTransportError) {
        ERR_clear_error()
        switch roots {
        case .system:
            guard SSL_CTX_set_default_verify_paths(context) == 1 else { throw tlsError("TLS system trust store") }
        case .file(let path):
            guard SSL_CTX_load_verify_locations(context, path, nil) == 1 else { throw tlsError("TLS trust roots \(path)") }
        }
    }

    private static let systemClientContext = Result { () throws(WSTransportError) in try WSTLSContext.client() }

    /// The default client context, made once: servers verified against the system's trust
    /// store, TLS 1.2 or later.
    public static func systemClient() throws(WSTransportError) -> WSTLSContext {
        try systemClientContext.get()
    }

    /// A new session (one connection's TLS state).
    ///
    /// - Parameter serverName: for clients, the host of the URL: sent as SNI (names only, not
    ///   addresses) and, when ``verifiesPeer``, checked against the server's certificate (a
    ///   DNS name, or an IP address SAN for an address).
    public func makeSession(serverName: String? = nil) throws(WSTransportError) -> WSTLSSession {
        try WSTLSSession(context: self, serverName: serverName)
    }
}

/// One connection's TLS state, with no I/O of its own: feed it the ciphertext that arrives
/// (``receiveCiphertext(_:)``), take plaintext from it (``readPlaintext(into:)``), give it
/// plaintext to send (``writePlaintext(_:)``), and send what it has queued
/// (``withPendingCiphertext(_:)`` and ``consumeCiphertext(_:)``). The handshake runs inside
/// the first reads and writes, or explicitly with ``advanceHandshake()``.
///
/// Not thread-safe: one owner at a time.
public final class WSTLSSession {
    /// What ``WSTLSSession/readPlaintext(into:)`` produced.
    public enum ReadResult: Equatable, Sendable {
        /// Plaintext bytes, at the start of the buffer.
        case bytes(Int)
        /// Nothing until more ciphertext arrives.
        case needsInput
        /// The peer ended the session (TLS close_notify).
        case closed
    }

    private let ssl: OpaquePointer
    private let rbio: OpaquePointer
    private let wbio: OpaquePointer
    private var outbox: [UInt8] = []
    private var outboxStart = 0
    private var sentCloseNotify = false
    /// Whether the TLS handshake has finished.
    public private(set) var isHandshakeComplete = false

    fileprivate init(context: WSTLSContext, serverName: String?) throws(WSTransportError) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.context) else { throw tlsError("TLS session") }
        guard let rbio = BIO_new(BIO_s_mem()), let wbio = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw tlsError("TLS session")
        }
        SSL_set_bio(ssl, rbio, wbio)   // the session owns both BIOs from here
        self.ssl = ssl
        self.rbio = rbio
        self.wbio = wbio
        if context.isServer {
            SSL_set_accept_state(ssl)
        } else {
            SSL_set_connect_state(ssl)
            // WebSocket is an HTTP/1.1 upgrade: say so, for servers that multiplex on ALPN.
            let alpn: [UInt8] = [8] + Array("http/1.1".utf8)
            _ = SSL_set_alpn_protos(ssl, alpn, UInt32(alpn.count))
            if let name = serverName, !name.isEmpty {
                let isAddress = Self.isIPAddress(name)
                if !isAddress { _ = cws_set_tlsext_host_name(ssl, name) }
                if context.verifiesPeer {
                    let ok = isAddress ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) : SSL_set1_host(ssl, name)
                    guard ok == 1 else {
                        SSL_free(ssl)
                        throw tlsError("TLS server name \(name)")
                    }
                }
            }
        }
    }

    deinit { SSL_free(ssl) }

    private static func isIPAddress(_ name: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, name, &v4) == 1 || inet_pton(AF_INET6, name, &v6) == 1
    }

    // MARK: Input

    /// Hands ciphertext from the network to the session (it keeps a copy).
    public func receiveCiphertext(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        _ = BIO_write(rbio, base, Int32(clamping: bytes.count))
    }

    /// Decrypts into `buffer` what has arrived, running the handshake first if it has not
    /// finished. Handshake messages and alerts it produces are queued as pending ciphertext.
    /// - Throws: ``WSTransportError`` for a TLS failure (a bad record, a certificate that does
    ///   not verify, an alert from the peer); an alert for the peer is queued first.
    public func readPlaintext(into buffer: UnsafeMutableRawBufferPointer) throws(WSTransportError) -> ReadResult {
        ERR_clear_error()
        let n = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
        collect()
        if n > 0 {
            isHandshakeComplete = true
            return .bytes(Int(n))
        }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            if SSL_is_init_finished(ssl) == 1 { isHandshakeComplete = true }
            return .needsInput
        case SSL_ERROR_ZERO_RETURN:
            return .closed
        default:
            throw failure(isHandshakeComplete ? "TLS read" : "TLS handshake")
        }
    }

    /// Runs the handshake as far as the input allows. Returns whether it has finished.
    /// - Throws: ``WSTransportError`` when it failed (the alert for the peer is queued).
    @discardableResult
    public func advanceHandshake() throws(WSTransportError) -> Bool {
        if isHandshakeComplete { return true }
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        collect()
        if rc == 1 {
            isHandshakeComplete = true
            return true
        }
        switch SSL_get_error(ssl, rc) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return false
        default: throw failure("TLS handshake")
        }
    }

    /// Whether plaintext or ciphertext is buffered inside the session, so a read may produce
    /// bytes without anything new from the network.
    public var hasBufferedInput: Bool { SSL_pending(ssl) > 0 || BIO_ctrl_pending(rbio) > 0 }

    // MARK: Output

    /// Encrypts `bytes`. Returns the count taken: all of them once the handshake has finished,
    /// 0 while it waits for the peer (the handshake's own messages are queued meanwhile).
    public func writePlaintext(_ bytes: UnsafeRawBufferPointer) throws(WSTransportError) -> Int {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        ERR_clear_error()
        let n = SSL_write(ssl, base, Int32(clamping: bytes.count))
        collect()
        if n > 0 {
            isHandshakeComplete = true
            return Int(n)
        }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return 0
        default: throw failure(isHandshakeComplete ? "TLS write" : "TLS handshake")
        }
    }

    /// Queues the TLS close_notify alert (once): the end of our side of the session.
    public func closeNotify() {
        guard !sentCloseNotify else { return }
        sentCloseNotify = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        collect()
    }

    /// Ciphertext queued for the network.
    public var pendingCiphertextCount: Int { outbox.count - outboxStart }

    /// Lends the queued ciphertext (maybe empty) to `body`, which writes what it can.
    public func withPendingCiphertext<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result = outbox.withUnsafeBytes { raw in
            Result { () throws(E) -> R in try body(UnsafeRawBufferPointer(rebasing: raw[outboxStart...])) }
        }
        return try result.get()
    }

    /// Drops the first `count` bytes of the queued ciphertext (the network took them).
    public func consumeCiphertext(_ count: Int) {
        outboxStart += min(count, pendingCiphertextCount)
        if outboxStart == outbox.count {
            outboxStart = 0
            if outbox.capacity > 256 << 10 { outbox = [] } else { outbox.removeAll(keepingCapacity: true) }
        }
    }

    /// Gives back the ciphertext buffer of an idle session.
    public func releaseIdleMemory() {
        if pendingCiphertextCount == 0 { outbox = [] }
    }

    /// Moves what OpenSSL wrote into its output BIO to the outbox.
    private func collect() {
        let pending = Int(BIO_ctrl_pending(wbio))
        guard pending > 0 else { return }
        if outboxStart > 0 && outboxStart >= outbox.count / 2 {
            outbox.removeFirst(outboxStart)
            outboxStart = 0
        }
        let old = outbox.count
        outbox.append(contentsOf: repeatElement(0, count: pending))
        let got = outbox.withUnsafeMutableBytes { BIO_read(wbio, $0.baseAddress! + old, Int32(pending)) }
        outbox.removeLast(pending - max(0, Int(got)))
    }

    // MARK: Facts

    /// The negotiated protocol version, such as `"TLSv1.3"`.
    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    /// The negotiated cipher suite, such as `"TLS_AES_256_GCM_SHA384"`, once the handshake has finished.
    public var cipherSuite: String? {
        guard let cipher = SSL_get_current_cipher(ssl), let name = SSL_CIPHER_get_name(cipher) else { return nil }
        return String(cString: name)
    }

    /// The ALPN protocol agreed on (`"http/1.1"`), if any.
    public var alpnProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// The subject of the certificate the peer presented (for example `"CN=localhost"`), if any.
    public var peerCertificateSubject: String? {
        guard let certificate = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(certificate) }
        guard let name = X509_get_subject_name(certificate),
              let line = X509_NAME_oneline(name, nil, 0) else { return nil }
        defer { CRYPTO_free(line, #fileID, #line) }
        return String(cString: line).split(separator: "/").joined(separator: ", ")
    }

    private func failure(_ operation: String) -> WSTransportError {
        let verify = SSL_get_verify_result(ssl)
        var error = tlsError(operation)
        if verify != X509_V_OK {
            error.message = "certificate verify failed: \(String(cString: X509_verify_cert_error_string(verify)))"
        }
        return error
    }
}

/// OpenSSL's error queue as a transport error (errno 0; the reasons in the message).
private func tlsError(_ operation: String) -> WSTransportError {
    var reasons: [String] = []
    while case let code = ERR_get_error(), code != 0 {
        if let reason = ERR_reason_error_string(code) {
            reasons.append(String(cString: reason))
        } else {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
    }
    return WSTransportError(operation, message: reasons.isEmpty ? "the peer ended the TLS session" : reasons.joined(separator: "; "))
}
