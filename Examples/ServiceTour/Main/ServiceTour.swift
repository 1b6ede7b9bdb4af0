// service-tour: every feature of the service layer on one listener (README, "Services").
//
//   swift run -c release service-tour --port 9090 [--host 127.0.0.1]
//
// Prints `service-tour listening on ws://HOST:PORT/` once it accepts connections; SIGTERM or
// SIGINT stops it gracefully (every client gets Close 1001), exit status 0.

import ArgumentParser
import Glibc
import ServiceLifecycle
import ServiceTour
import WSService

@main
struct ServiceTour: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "service-tour", abstract: "The swift-ws service tour.")

    @Option(help: "Port to listen on (0: any free port).") var port = 9090
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Event loops (default: one per CPU).") var loops: Int?

    func run() async throws {
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
