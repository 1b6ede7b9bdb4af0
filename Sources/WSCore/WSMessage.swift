// A whole data message, as clients and tests hold it.

/// A whole message received.
public enum WSMessage: Hashable, Sendable {
    case text(String)
    case binary([UInt8])
}
