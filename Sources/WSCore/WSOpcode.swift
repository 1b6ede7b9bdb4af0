/// A WebSocket frame opcode ([RFC 6455 §5.2](https://www.rfc-editor.org/rfc/rfc6455#section-5.2)).
///
/// An open set: every 4-bit value can be represented, so a frame header can be decoded before
/// its opcode is judged. Values `0x3`–`0x7` are reserved for further non-control frames and
/// `0xB`–`0xF` for further control frames; receiving one fails the connection with 1002.
public struct WSOpcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The 4-bit opcode value (`0x0`–`0xF`).
    public let rawValue: UInt8

    /// Creates an opcode from its low 4 bits; returns `nil` for values above `0xF`.
    public init?(rawValue: UInt8) {
        guard rawValue <= 0xF else { return nil }
        self.rawValue = rawValue
    }

    init(unchecked rawValue: UInt8) { self.rawValue = rawValue }

    /// `0x0`: continues a fragmented message.
    public static let continuation = WSOpcode(unchecked: 0x0)
    /// `0x1`: the first frame of a text message.
    public static let text = WSOpcode(unchecked: 0x1)
    /// `0x2`: the first frame of a binary message.
    public static let binary = WSOpcode(unchecked: 0x2)
    /// `0x8`: a Close control frame.
    public static let close = WSOpcode(unchecked: 0x8)
    /// `0x9`: a Ping control frame.
    public static let ping = WSOpcode(unchecked: 0x9)
    /// `0xA`: a Pong control frame.
    public static let pong = WSOpcode(unchecked: 0xA)

    /// Whether this is a control opcode (the high bit of the nibble is set, RFC 6455 §5.5).
    public var isControl: Bool { rawValue & 0x8 != 0 }

    /// Whether RFC 6455 defines this opcode (`0x0`–`0x2`, `0x8`–`0xA`).
    public var isDefined: Bool { rawValue <= 0x2 || (rawValue >= 0x8 && rawValue <= 0xA) }

    public var description: String {
        switch rawValue {
        case 0x0: "continuation"
        case 0x1: "text"
        case 0x2: "binary"
        case 0x8: "close"
        case 0x9: "ping"
        case 0xA: "pong"
        default: "reserved(0x\(String(rawValue, radix: 16)))"
        }
    }
}

/// The kind of a data message: text (valid UTF-8) or binary.
public enum WSMessageKind: Hashable, Sendable {
    case text
    case binary

    /// The opcode of the first frame of a message of this kind.
    public var opcode: WSOpcode { self == .text ? .text : .binary }
}
