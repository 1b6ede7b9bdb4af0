// service-tour: every feature of the service layer on one listener (README, "Services").
//
//   swift run -c release service-tour --port 9090 [--host 127.0.0.1]
//
// Prints `service-tour listening on ws://HOST:PORT/` once it accepts connections; SIGTERM or
// SIGINT stops it gracefully (every client gets Close 1001), exit status 0.

import ArgumentParser
import Dispatch
import Glibc
import ServiceLifecycle
import ServiceTour
import Synchronization
import WSService

@main
struct ServiceTour: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "service-tour", abstract: "The swift-ws service tour.")

    @Option(help: "Port to listen on (0: any free port).") var port = 9090
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Event loops (default: one per CPU).") var loops: Int?

    /// Synchronous, the async part on a task: an async `main` ends the main thread with
    /// `pthread_exit` (in `dispatch_main`), whose forced unwind makes a static binary's unwinder
    /// sort every frame description at once, 2.3 MB of `.eh_frame` resident for the process's
    /// life (BENCHMARKS.md, "RSS at rest").
    func run() throws {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<Void, any Error>>(.success(()))
        let command = self
        Task {
            do { try await command.serve() } catch { outcome.withLock { $0 = .failure(error) } }
            done.signal()
        }
        done.wait()
        try outcome.withLock { $0 }.get()
    }

    private func serve() async throws {
        var configuration = WSListener.Configuration(host: host, port: port)
        if let loops { configuration.loops = loops }
        let listener = WSListener(configuration: configuration)
        try attachTour(to: listener)
        try listener.start()
        let shown = host.contains(":") ? "[\(host)]" : host
        print("service-tour listening on ws://\(shown):\(listener.port)/")
        fflush(nil)   // also when stdout is a pipe
        let group = ServiceGroup(services: [listener], gracefulShutdownSignals: [.sigterm, .sigint], logger: .init(label: "service-tour"))
        try await group.run()
    }
}
