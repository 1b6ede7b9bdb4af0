/// A point in time, as the adapter's monotonic clock reports it.
///
/// ``WSProtocol`` never reads a clock: adapters pass `now` to ``WSProtocol/init(role:configuration:now:randomNumberGenerator:)``
/// and ``WSProtocol/tick(now:)``, and read deadlines back from ``WSProtocol/nextDeadline``. The
/// origin is arbitrary (an adapter typically uses the time it started); only differences matter.
/// Nanosecond resolution, ±292 years around the origin.
public struct WSInstant: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Nanoseconds since the adapter's chosen origin.
    public var nanoseconds: Int64

    /// The instant `nanoseconds` after the origin.
    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// The instant `sinceOrigin` after the origin.
    public init(_ sinceOrigin: Duration) { nanoseconds = sinceOrigin.nanoseconds }

    /// Time since the adapter's chosen origin.
    public var sinceOrigin: Duration { .nanoseconds(nanoseconds) }

    /// The origin itself.
    public static let zero = WSInstant(nanoseconds: 0)

    /// An instant `seconds` after the origin (fixtures and tests use this).
    public static func seconds(_ seconds: Double) -> WSInstant { WSInstant(nanoseconds: Int64((seconds * 1e9).rounded())) }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// The instant `rhs` later, saturating at the ends of the range.
    public static func + (lhs: Self, rhs: Duration) -> Self {
        let (sum, overflow) = lhs.nanoseconds.addingReportingOverflow(rhs.nanoseconds)
        return WSInstant(nanoseconds: overflow ? (rhs > .zero ? .max : .min) : sum)
    }

    public static func - (lhs: Self, rhs: Self) -> Duration { .nanoseconds(lhs.nanoseconds &- rhs.nanoseconds) }

    public var description: String { "\(sinceOrigin)" }
}

/// An optional ``WSInstant`` in 8 bytes, for records kept per connection (a `WSInstant?`
/// takes 16 with its padding): `Int64.min` stands for none, an instant no deadline reaches
/// (deadlines are a time plus a positive interval).
public struct WSOptionalInstant: Equatable, Sendable {
    /// The instant's nanoseconds, `Int64.min` for none.
    public var nanoseconds = Int64.min

    /// `instant`, or none.
    @inlinable public init(_ instant: WSInstant? = nil) { self.value = instant }

    /// The instant, or nil for none.
    @inlinable public var value: WSInstant? {
        @inline(__always) get { nanoseconds == .min ? nil : WSInstant(nanoseconds: nanoseconds) }
        @inline(__always) set { nanoseconds = newValue?.nanoseconds ?? .min }
    }
}

extension Duration {
    /// Whole nanoseconds, saturating at the ends of `Int64`.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (total, overflow2) = ns.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? (seconds < 0 ? .min : .max) : total
    }
}
