// A joinable POSIX thread for the adapters' event loops and per-connection threads.

internal import Glibc
internal import CWSSystem

/// A POSIX thread running a closure.
public final class WSThread: Sendable {
    private let handle: pthread_t

    /// Starts `body` on a new thread.
    public init(_ body: @escaping @Sendable () -> Void) throws(WSTransportError) {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw WSTransportError("pthread_create", errno: rc)
        }
        handle = t
    }

    /// Lets the thread's resources go when it finishes, without a ``join()``.
    public func detach() {
        pthread_detach(handle)
    }

    /// Waits for the thread to finish.
    public func join() {
        pthread_join(handle, nil)
    }

    /// Whether the caller runs on this thread.
    public var isCurrent: Bool { pthread_equal(handle, pthread_self()) != 0 }

    /// The number of CPUs this process may run on (at least 1).
    public static var processorCount: Int {
        let n = Int(cws_affinity_cpu_count())
        return n > 0 ? n : max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}
