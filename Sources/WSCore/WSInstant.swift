/// A point in time, as the adapter's monotonic clock reports it.
///
/// ``WSProtocol`` never reads a clock: adapters pass `now` to ``WSProtocol/init(role:configuration:now:randomNumberGenerator:)``
/// and ``WSProtocol/tick(now:)``, and read deadlines back from ``WSProtocol/nextDeadline``. The
/// origin is arbitrary (an adapter typically uses the time it started); only differences matter.
public struct WSInstant: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Time since the adapter's chosen origin.
    public var sinceOrigin: Duration

    public init(_ sinceOrigin: Duration) { self.sinceOrigin = sinceOrigin }

    /// The origin itself.
    public static let zero = WSInstant(.zero)

    /// An instant `seconds` after the origin (fixtures and tests use this).
    public static func seconds(_ seconds: Double) -> WSInstant { WSInstant(.nanoseconds(Int64(seconds * 1e9))) }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.sinceOrigin < rhs.sinceOrigin }
    public static func + (lhs: Self, rhs: Duration) -> Self { WSInstant(lhs.sinceOrigin + rhs) }
    public static func - (lhs: Self, rhs: Self) -> Duration { lhs.sinceOrigin - rhs.sinceOrigin }

    public var description: String { "\(sinceOrigin)" }
}
