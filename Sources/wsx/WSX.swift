import ArgumentParser
import Dispatch
import Synchronization

@main
struct WSX: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsx",
        abstract: "swift-ws command-line tool: echo server, client, Autobahn testee, demo and benchmarks.",
        discussion: """
            Examples:
              swift run -c release wsx echo-server --port 9001
              echo hello | swift run wsx client ws://127.0.0.1:9001/
              swift run -c release wsx autobahn-client --url ws://127.0.0.1:9002 --agent swift-ws
              swift run wsx demo
              swift run -c release wsx bench
              swift run -c release wsx bench --only decode --seconds 2
            """,
        subcommands: [EchoServer.self, Client.self, ClientLoad.self, AutobahnClient.self, Demo.self, Bench.self]
    )
}

/// Runs an async command body from a synchronous `run()`. The root command stays synchronous:
/// an async `main` parks the main thread in libdispatch's `sigsuspend`, which valgrind cannot
/// follow (Benchmarks/callgrind_echo.sh runs `wsx echo-server` under callgrind).
func blockOn<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let outcome = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        outcome.withLock { $0 = result }
        done.signal()
    }
    done.wait()
    return try outcome.withLock { $0! }.get()
}
