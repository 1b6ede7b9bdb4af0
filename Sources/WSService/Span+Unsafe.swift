// The service layer's few unsafe operations: copies of a loop-lent Span (valid only during the
// handler call), and a value reinterpreted as the type it was just checked to be.

import WSCore

extension ServiceConnectionBase {
    /// A `String` of the bytes (already validated UTF-8 by the engine).
    func makeString(_ data: Span<UInt8>) -> String {
        data.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
    }

    /// An array of the bytes.
    func makeArray(_ data: Span<UInt8>) -> [UInt8] {
        data.withUnsafeBufferPointer { Array($0) }
    }

    /// The `String` of a small text message in the arena (copied through the buffer's
    /// pointer: a slice would retain and release the arena per message). The reference is
    /// `String(decoding: arena[range], as: UTF8.self)`.
    final func arenaText(_ range: Range<Int>) -> String {
        arena.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[range]), as: UTF8.self) }
    }

    /// The bytes of a small binary message in the arena (as ``arenaText(_:)``; the reference
    /// is `Array(arena[range])`).
    final func arenaBytes(_ range: Range<Int>) -> [UInt8] {
        arena.withUnsafeBufferPointer { Array(UnsafeBufferPointer(rebasing: $0[range])) }
    }

    /// Appends the bytes to the arena's used part; where they are. The arena grows (by
    /// appending zeros) only past its largest size yet; below that the bytes are copied over
    /// old ones. The reference is `arena[arenaUsed...].append(contentsOf:)` on an arena
    /// emptied with `removeAll(keepingCapacity: true)`, which costs two generic array
    /// operations per message.
    final func appendToArena(_ data: Span<UInt8>) -> Range<Int> {
        let range = arenaUsed..<arenaUsed + data.count
        if range.upperBound > arena.count {
            arena.append(contentsOf: repeatElement(0, count: range.upperBound - arena.count))
        }
        arena.withUnsafeMutableBufferPointer { arena in
            data.withUnsafeBufferPointer { bytes in
                guard let source = bytes.baseAddress else { return }
                (arena.baseAddress.unsafelyUnwrapped + range.lowerBound).update(from: source, count: bytes.count)
            }
        }
        arenaUsed = range.upperBound
        return range
    }
}

/// `value` as `T`, for a generic `value` whose type `ReplyEncoder` found to be exactly `T`
/// (`R.self == T.self`) when the service was attached: the bit pattern is already a `T`, so
/// no dynamic cast is needed per message. The reference implementation is `value as! T`.
@inline(__always)
func reinterpret<R, T>(_ value: R, as _: T.Type) -> T {
    assert(R.self == T.self)
    return unsafeBitCast(value, to: T.self)
}
