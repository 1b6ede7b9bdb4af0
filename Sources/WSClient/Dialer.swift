// What both clients do the same way before a connection exists: the upgrade request for a
// URL, the proxy for it, where a redirect leads, how a wait before a retry is written.

import HTTPTypes
import Logging
import WSCore
import WSDeflate
import WSTransport

/// Plans connection attempts for one client: the first URL, and the configuration.
struct Dialer: Sendable {
    let url: WSURL
    let configuration: WSClientConfiguration

    init(url: String, configuration: WSClientConfiguration) throws(WSClientError) {
        do { self.url = try WSURL(url) } catch { throw .from(error) }
        self.configuration = configuration
        // Refuse what cannot work before the first attempt.
        _ = try handshake(for: self.url)
        do { _ = try WSProtocol(role: .client, configuration: configuration.connection, now: .zero) } catch { throw .from(error) }
    }

    /// The upgrade request for `target` (the first URL, or one a redirect led to).
    /// Credentials go only to the first URL's host (as curl: a redirect elsewhere does not
    /// carry them), unless the target's URL has its own.
    func handshake(for target: WSURL) throws(WSClientError) -> WSClientHandshake {
        var h = WSClientHandshake(url: target)
        h.subprotocols = configuration.subProtocols
        if configuration.compression { h.extensions = [WSPerMessageDeflate()] }
        h.headers = configuration.customHeaders
        h.cookies = configuration.cookies
        if target.host == url.host, let auth = configuration.auth ?? h.authorization { h.authorization = auth }
        h.timeout = configuration.handshakeTimeout
        do { try h.validate() } catch { throw .from(error) }
        return h
    }

    /// The proxy for `target`.
    func proxy(for target: WSURL) throws(WSClientError) -> WSProxy? {
        do { return try configuration.proxy.resolve(for: target) } catch { throw .from(error) }
    }

    /// Where a refused upgrade leads: the `Location` of a 301, 302, 303, 307 or 308, resolved
    /// against `current` (`http` read as `ws`, `https` as `wss`), appended to `chain`.
    /// - Throws: the refusal itself for any other status; ``WSClientError/Code/invalidHandshake``
    ///   for a redirect that may not be followed (too many, a loop, `wss` to `ws`, no
    ///   `Location`).
    func redirect(_ rejection: WSHandshakeRejection, from current: WSURL, chain: inout [WSURL]) throws(WSClientError) -> WSURL {
        let status = rejection.response.status.code
        guard [301, 302, 303, 307, 308].contains(status) else { throw .rejected(rejection, url: current) }
        func fail(_ why: String) -> WSClientError {
            WSClientError(.invalidHandshake, why, response: rejection.response, responseBody: rejection.body)
        }
        guard let location = rejection.response.headerFields[.location] else {
            throw fail("\(current) answered \(status) without a Location")
        }
        let next: WSURL
        do { next = try resolve(location, against: current) } catch {
            throw fail("\(current) redirects to \(location), which is not a WebSocket URL: \(error)")
        }
        let path = (chain + [next]).map(\.description).joined(separator: " -> ")
        guard configuration.maxRedirects > 0 else { throw fail("redirect not followed (maxRedirects is 0): \(path)") }
        guard !(current.isSecure && !next.isSecure) else { throw fail("a redirect from wss to ws is refused: \(path)") }
        guard !chain.contains(next) else { throw fail("redirect loop: \(path)") }
        guard chain.count <= configuration.maxRedirects else {
            throw fail("more than \(configuration.maxRedirects) redirects: \(path)")
        }
        chain.append(next)
        configuration.logger.debug("redirected", metadata: ["status": "\(status)", "to": "\(next)"])
        return next
    }

    /// Resolves a `Location` (RFC 9110 §10.2.2, a URI reference) against the current URL.
    private func resolve(_ location: String, against base: WSURL) throws(WSUsageError) -> WSURL {
        let lower = location.lowercased()
        for (scheme, replacement) in [("http://", "ws://"), ("https://", "wss://"), ("ws://", "ws://"), ("wss://", "wss://")]
        where lower.hasPrefix(scheme) {
            return try WSURL(replacement + location.dropFirst(scheme.count))
        }
        let scheme = base.isSecure ? "wss:" : "ws:"
        if location.hasPrefix("//") { return try WSURL(scheme + location) }
        let origin = "\(scheme)//\(base.hostField)"
        if location.hasPrefix("/") { return try WSURL(origin + location) }
        // A relative path: beside the current path's last segment.
        let path = base.target.prefix { $0 != "?" }
        let directory = path[..<(path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.endIndex)]
        return try WSURL(origin + directory + location)
    }
}

/// The attempts of one reconnection: which comes next, how long to wait before it, and the
/// log line for each (both clients sleep their own way between them).
struct RetrySchedule {
    let policy: WSRetryConfig
    let logger: Logger
    private var attempt = 0
    /// The error of the last failed attempt (or of the drop that started the reconnection).
    private(set) var last: WSClientError

    init(_ configuration: WSClientConfiguration, after error: WSClientError) {
        policy = configuration.retry!
        logger = configuration.logger
        last = error
    }

    /// The wait before the next attempt (jitter applied), logged; nil when the policy allows
    /// no more (logged too).
    mutating func next(after error: WSClientError? = nil) -> Duration? {
        if let error { last = error }
        attempt += 1
        guard policy.allows(attempt: attempt) else {
            logger.error("giving up after \(attempt - 1) attempts", metadata: ["error": "\(last)"])
            return nil
        }
        let delay = policy.delay(beforeAttempt: attempt)
        logger.reconnecting(in: delay, attempt: attempt, after: last)
        return policy.jittered(delay)
    }
}

/// A wait written for people: `0.5`, `1`, `2.25`.
func secondsText(_ d: Duration) -> String {
    let ms = Int((d.seconds * 1000).rounded())
    if ms % 1000 == 0 { return "\(ms / 1000)" }
    var fraction = String(ms % 1000)
    while fraction.count < 3 { fraction = "0" + fraction }
    while fraction.hasSuffix("0") { fraction.removeLast() }
    return "\(ms / 1000).\(fraction)"
}

extension Logger {
    /// The line each connection logs: what was negotiated.
    func connected(_ url: WSURL, _ result: WSHandshakeResult) {
        let compression = result.extensions.contains { $0.name == "permessage-deflate" }
        info("connected \(url) subprotocol=\(result.subprotocol ?? "-") compression=\(compression ? "on" : "off")")
    }

    /// The line each retry logs: the wait before jitter and the attempt's number.
    func reconnecting(in delay: Duration, attempt: Int, after error: WSClientError) {
        info("reconnecting in \(secondsText(delay)) s (attempt \(attempt))", metadata: ["after": "\(error)"])
    }
}
