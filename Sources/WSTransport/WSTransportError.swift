// The transport error type: a failed system call, with its errno and what we were doing.
// Protocol failures are never reported here (those are WSProtocolError, from WSCore).

internal import Glibc

/// A socket or system call failed.
public struct WSTransportError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was attempted, for example `"connect to 127.0.0.1:9001"`.
    public var operation: String
    /// The `errno` value (0 when the failure is not a system call's, such as a timeout or a
    /// name that does not resolve; ``message`` says which).
    public var errno: Int32
    /// A human-readable cause: `strerror(errno)`, or `gai_strerror` for name resolution.
    public var message: String

    /// Creates an error for `operation` from an errno value.
    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
        self.message = String(cString: strerror(errno))
    }

    /// Creates an error for `operation` that is not a system call's (a timeout, a resolution
    /// failure, an address family mismatch).
    public init(_ operation: String, message: String) {
        self.operation = operation
        self.errno = 0
        self.message = message
    }

    /// Whether this is a timeout (``WSSocket/connect(host:port:timeout:nonBlocking:)``,
    /// ``WSSocket/writeAll(_:timeout:)``).
    public var isTimeout: Bool { errno == ETIMEDOUT }

    public var description: String { "\(operation): \(message)" }

    /// The error for the current `errno`.
    static func last(_ operation: @autoclosure () -> String) -> WSTransportError {
        WSTransportError(operation(), errno: Glibc.errno)
    }
}
