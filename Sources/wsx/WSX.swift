import ArgumentParser

@main
struct WSX: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsx",
        abstract: "swift-ws command-line tool: an in-memory demo and the engine benchmarks.",
        discussion: """
            Servers and clients over real sockets arrive with the socket adapters.

            Examples:
              swift run wsx demo
              swift run -c release wsx bench
              swift run -c release wsx bench --only decode --seconds 2
            """,
        subcommands: [Demo.self, Bench.self]
    )
}
