// Why a blocking connection's call failed.

public import WSCore
public import WSTransport

/// The failure of a ``WSBlockingConnection`` call.
public enum WSConnectionError: Error, Sendable, CustomStringConvertible {
    /// The socket failed (connect refused, reset, name not found, …).
    case transport(WSTransportError)
    /// The server answered the upgrade with another status (its answer and body are here).
    case rejected(WSHandshakeRejection)
    /// The opening handshake was invalid or timed out.
    case handshakeFailed(WSHandshakeError)
    /// The peer broke the protocol; the connection was failed with the error's close code.
    case protocolViolation(WSProtocolError)
    /// The connection is closed (how, in the info); nothing more can be read or sent.
    case closed(WSProtocol.CloseInfo)
    /// A read or write did not complete within its timeout. The connection is still usable
    /// after a read timeout.
    case timeout(String)
    /// The call was not valid now (for example sending after close).
    case usage(WSUsageError)

    public var description: String {
        switch self {
        case .transport(let e): "transport: \(e)"
        case .rejected(let r): "upgrade rejected: HTTP \(r.response.status.code) \(r.response.status.reasonPhrase)"
        case .handshakeFailed(let e): "handshake failed: \(e)"
        case .protocolViolation(let e): "protocol violation: \(e)"
        case .closed(let info): "closed: \(info)"
        case .timeout(let what): "\(what) timed out"
        case .usage(let e): "usage: \(e)"
        }
    }
}
