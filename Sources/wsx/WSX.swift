import ArgumentParser

@main
struct WSX: AsyncParsableCommand {
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
