/// A Close frame status code ([RFC 6455 §7.4](https://www.rfc-editor.org/rfc/rfc6455#section-7.4)).
///
/// An open set over `UInt16`: any value can be represented, so a received code can be reported
/// before it is judged. Two predicates encode the RFC's rules and the IANA registry:
///
/// | range | meaning | on the wire | ``isSendable`` |
/// |---|---|---|---|
/// | 0–999 | not used | no | no |
/// | 1000–1003, 1007–1011 | RFC 6455 §7.4.1 | yes | yes |
/// | 1004 | reserved | no | no |
/// | 1005, 1006, 1015 | reported locally only, "MUST NOT be set as a status code in a Close control frame" | no | no |
/// | 1012–1014 | IANA-registered (service restart, try again later, bad gateway) | yes | yes |
/// | 1016–2999 | reserved for future RFCs / IANA | no | no |
/// | 3000–4999 | libraries, frameworks and applications | yes | yes |
/// | 5000+ | undefined | no | no |
public struct WSCloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The numeric code as it appears on the wire (big-endian, first two bytes of the body).
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// Creates a close code from its numeric value.
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// 1000: the purpose for which the connection was established has been fulfilled.
    public static let normalClosure = WSCloseCode(1000)
    /// 1001: an endpoint is going away (server shutting down, browser leaving the page).
    public static let goingAway = WSCloseCode(1001)
    /// 1002: the peer violated the protocol.
    public static let protocolError = WSCloseCode(1002)
    /// 1003: a message of a type the endpoint cannot accept (for example binary to a text-only endpoint).
    public static let unsupportedData = WSCloseCode(1003)
    /// 1005: reported locally when a Close frame carried no status code. Never sent.
    public static let noStatusReceived = WSCloseCode(1005)
    /// 1006: reported locally when the connection ended without a Close frame. Never sent.
    public static let abnormalClosure = WSCloseCode(1006)
    /// 1007: message data inconsistent with its type (for example invalid UTF-8 in a text message).
    public static let invalidFramePayloadData = WSCloseCode(1007)
    /// 1008: a message violates the endpoint's policy.
    public static let policyViolation = WSCloseCode(1008)
    /// 1009: a message (or frame) too big to process.
    public static let messageTooBig = WSCloseCode(1009)
    /// 1010: sent by a client whose required extension the server did not negotiate.
    public static let mandatoryExtension = WSCloseCode(1010)
    /// 1011: the server met an unexpected condition.
    public static let internalError = WSCloseCode(1011)
    /// 1012: the service is restarting (IANA registry).
    public static let serviceRestart = WSCloseCode(1012)
    /// 1013: try again later (IANA registry).
    public static let tryAgainLater = WSCloseCode(1013)
    /// 1014: a gateway or proxy received an invalid response from upstream (IANA registry).
    public static let badGateway = WSCloseCode(1014)
    /// 1015: reported locally when the TLS handshake failed. Never sent.
    public static let tlsHandshakeFailure = WSCloseCode(1015)

    /// Whether a received Close frame may carry this code without failing the connection.
    ///
    /// RFC 6455 §7.4.1 lists 1004–1006 and 1015 as codes that "MUST NOT be set as a status code
    /// in a Close control frame by an endpoint"; 1016–2999 are unassigned and 5000+ undefined.
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    /// Whether ``WSProtocol/close(code:reason:)`` accepts this code.
    ///
    /// The same set as ``isValidOnWire``: a code we may not receive is a code we must not send.
    public var isSendable: Bool { isValidOnWire }

    public var description: String { String(rawValue) }
}

/// The contents of a Close frame: an optional status code and a UTF-8 reason.
public struct WSCloseFrame: Hashable, Sendable, CustomStringConvertible {
    /// The status code, or `nil` for a Close frame with an empty payload (reported as 1005).
    public var code: WSCloseCode?
    /// The reason, at most 123 bytes of UTF-8; empty when absent.
    public var reason: String

    /// Creates a Close frame body; `code` nil means an empty body (the reason must then be empty).
    public init(code: WSCloseCode?, reason: String = "") {
        self.code = code
        self.reason = reason
    }

    /// The code the application sees for this frame: its code, or 1005 when it had none
    /// ([RFC 6455 §7.1.5](https://www.rfc-editor.org/rfc/rfc6455#section-7.1.5)).
    public var effectiveCode: WSCloseCode { code ?? .noStatusReceived }

    public var description: String {
        code.map { reason.isEmpty ? "\($0)" : "\($0) \(reason)" } ?? "(no status)"
    }
}
