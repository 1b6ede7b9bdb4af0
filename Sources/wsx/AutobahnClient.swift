import ArgumentParser
import WSBlocking
import WSCore
import WSDeflate

struct AutobahnClient: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autobahn-client",
        abstract: "Run the Autobahn TestSuite client testee loop against a fuzzing server.",
        discussion: """
            Asks the fuzzing server for its case count (/getCaseCount), runs every case
            (/runCase?case=N&agent=AGENT) echoing each text and binary message, then asks it to
            write its reports (/updateReports?agent=AGENT). Compression is offered unless
            --no-compression.

            Example (see ../shared/tools/autobahn/README.md):
              wsx autobahn-client --url ws://127.0.0.1:9002 --agent swift-ws
            """)

    @Option(help: "The fuzzing server's base URL.")
    var url = "ws://127.0.0.1:9001"

    @Option(help: "The agent name the reports are filed under.")
    var agent = "swift-ws"

    @Flag(help: "Do not offer permessage-deflate.")
    var noCompression = false

    @Option(help: "Messages shorter than this are sent uncompressed (RFC 7692 lets each message choose; default 0: every message compressed).")
    var compressionThreshold = 0

    @Option(help: "Run only these case numbers (1-based, repeatable).")
    var only: [Int] = []

    func run() throws {
        var config = WSBlockingConnection.Configuration()
        config.connection = .echoTestee
        config.compression = try WSPerMessageDeflate.commandLine(off: noCompression, threshold: compressionThreshold)
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url

        let counter = try WSBlockingConnection.connect(to: base + "/getCaseCount", configuration: config)
        guard case .text(let text)? = try counter.receive(), let count = Int(text) else {
            throw fail("the server did not send a case count")
        }
        _ = try? counter.close()
        printFlushed("autobahn-client: \(count) cases")

        for n in only.isEmpty ? Array(1...max(1, count)) : only {
            do {
                let ws = try WSBlockingConnection.connect(to: "\(base)/runCase?case=\(n)&agent=\(agent)", configuration: config)
                while let message = try ws.receive() {
                    switch message {
                    case .text(let s): try ws.send(text: s)
                    case .binary(let b): try ws.send(binary: b)
                    }
                }
            } catch {
                // The case decides what a failure means (many cases end this way on purpose).
            }
            if n % 50 == 0 { printFlushed("autobahn-client: case \(n) of \(count)") }
        }

        let reports = try WSBlockingConnection.connect(to: "\(base)/updateReports?agent=\(agent)", configuration: config)
        _ = try? reports.close()
        printFlushed("autobahn-client: reports updated for agent \(agent)")
    }
}
