/// A WebSocket frame header ([RFC 6455 §5.2](https://www.rfc-editor.org/rfc/rfc6455#section-5.2)).
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-------+-+-------------+-------------------------------+
/// |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
/// |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
/// |N|V|V|V|       |S|             |   (if payload len==126/127)   |
/// | |1|2|3|       |K|             |                               |
/// +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
/// |     Extended payload length continued, if payload len == 127  |
/// + - - - - - - - - - - - - - - - +-------------------------------+
/// |                               |Masking-key, if MASK set to 1  |
/// +-------------------------------+-------------------------------+
/// ```
///
/// Decoding checks only the length encoding (minimal form, 63-bit limit); every other rule needs
/// the connection's context and is checked by ``WSProtocol``.
public struct WSFrameHeader: Hashable, Sendable {
    /// FIN: this is the final fragment of a message.
    public var fin: Bool
    /// RSV1–RSV3 as the low three bits (RSV1 = `0b100`).
    public var rsv: UInt8
    /// The frame type (may be a reserved value; ``WSProtocol`` judges it).
    public var opcode: WSOpcode
    /// The masking key, present exactly when the MASK bit is set.
    public var maskKey: WSMaskKey?
    /// The payload length (at most 2^63 − 1 on the wire).
    public var payloadLength: UInt64

    /// Creates a header; `rsv` keeps its low three bits.
    public init(fin: Bool = true, rsv: UInt8 = 0, opcode: WSOpcode, maskKey: WSMaskKey? = nil, payloadLength: UInt64) {
        self.fin = fin
        self.rsv = rsv & 0b111
        self.opcode = opcode
        self.maskKey = maskKey
        self.payloadLength = payloadLength
    }

    /// RSV1, used by permessage-deflate (RFC 7692).
    public static let rsv1: UInt8 = 0b100
    /// The longest possible header: 2 + 8 (64-bit length) + 4 (mask).
    public static let maxLength = 14

    /// The encoded size of this header in bytes (2 to 14).
    public var encodedLength: Int {
        let ext = payloadLength < 126 ? 0 : (payloadLength <= 0xFFFF ? 2 : 8)
        return 2 + ext + (maskKey == nil ? 0 : 4)
    }

    /// The result of decoding a header from the front of a buffer.
    public enum Decoded: Hashable, Sendable {
        /// At least this many bytes are needed in total before the header can be decoded.
        case incomplete(needed: Int)
        /// A header occupying the first `length` bytes.
        case header(WSFrameHeader, length: Int)
        /// The length encoding broke RFC 6455 §5.2 (``WSProtocolError/Code/nonMinimalLength`` or
        /// ``WSProtocolError/Code/lengthMSBSet``).
        case invalid(WSProtocolError.Code)
    }

    /// Encodes the header, appending 2 to 14 bytes.
    public func encode(into bytes: inout [UInt8]) {
        let b0 = (fin ? 0x80 : 0) | (rsv & 0b111) << 4 | opcode.rawValue
        let m: UInt8 = maskKey == nil ? 0 : 0x80
        bytes.append(b0)
        if payloadLength < 126 {
            bytes.append(m | UInt8(payloadLength))
        } else if payloadLength <= 0xFFFF {
            bytes.append(m | 126)
            bytes.append(UInt8(payloadLength >> 8))
            bytes.append(UInt8(truncatingIfNeeded: payloadLength))
        } else {
            bytes.append(m | 127)
            for shift in stride(from: 56, through: 0, by: -8) {
                bytes.append(UInt8(truncatingIfNeeded: payloadLength >> UInt64(shift)))
            }
        }
        if let maskKey {
            for i in 0..<4 { bytes.append(maskKey[i]) }
        }
    }

    /// The reference decoder: reads the fields one at a time from the front of `bytes`, exactly
    /// as §5.2 lays them out. ``decode(_:)`` must agree with it on every input.
    public static func decodeReference(_ bytes: some Collection<UInt8>) -> Decoded {
        let b = Array(bytes.prefix(maxLength))
        guard b.count >= 2 else { return .incomplete(needed: 2) }
        let len7 = b[1] & 0x7F
        let masked = b[1] & 0x80 != 0
        let extCount = len7 == 126 ? 2 : (len7 == 127 ? 8 : 0)
        let total = 2 + extCount + (masked ? 4 : 0)
        guard b.count >= total else { return .incomplete(needed: total) }
        var length = UInt64(len7)
        if extCount > 0 {
            length = 0
            for i in 0..<extCount { length = length << 8 | UInt64(b[2 + i]) }
            if extCount == 8, length >> 63 != 0 { return .invalid(.lengthMSBSet) }
            if (extCount == 2 && length < 126) || (extCount == 8 && length <= 0xFFFF) {
                return .invalid(.nonMinimalLength)
            }
        }
        let key = masked ? WSMaskKey(b[2 + extCount], b[3 + extCount], b[4 + extCount], b[5 + extCount]) : nil
        let header = WSFrameHeader(
            fin: b[0] & 0x80 != 0, rsv: (b[0] >> 4) & 0b111, opcode: WSOpcode(unchecked: b[0] & 0x0F),
            maskKey: key, payloadLength: length)
        return .header(header, length: total)
    }
}
