// The WSProtocol harness shared by the server and client targets.
//
// Input layout: byte 0 picks the configuration, byte 1 the split pattern and tick schedule, the
// rest is what the peer sends. The engine is run twice, once on the whole input and once on
// pieces (with ticks between them), and the oracle checks: no trap; the same events (streaming
// fragments merged) and the same outbound bytes either way; at most one failure, with a legal
// close code that our Close frame carries; a closed event at the end; bounded output.
public import WSCore
import WSTesting

public func fuzzProtocol(role: WSProtocol.Role, _ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let c = data[0], s = data[1]
    var config = WSProtocol.Configuration()
    config.delivery = c & 1 == 0 ? .wholeMessages : .streaming
    config.autoPong = c & 2 == 0
    config.autoCloseReply = c & 4 == 0
    config.acceptUnmaskedFrames = c & 8 != 0
    if c & 16 != 0 {
        config.maxFrameSize = 64
        config.maxMessageSize = 100
        config.maxFragmentsPerMessage = 4
    }
    config.pingInterval = c & 32 != 0 ? .seconds(1) : nil
    config.pingTimeout = .seconds(1)
    config.idleTimeout = c & 64 != 0 ? .seconds(2) : nil
    config.closeTimeout = .seconds(3)
    let input = Array(UnsafeBufferPointer(start: data + 2, count: size - 2))

    var pieces: [ArraySlice<UInt8>] = []
    var i = 0, step = 0
    while i < input.count {
        let n = s == 0 ? input.count : 1 + (Int(s) &* (step + 1)) % max(1, Int(s) % 17 + 1)
        pieces.append(input[i..<min(input.count, i + n)])
        i += n
        step += 1
    }
    let whole = run(role, config, [input[...]], tickEvery: 0)
    let split = run(role, config, pieces, tickEvery: 0)
    precondition(whole.events == split.events, "events depend on how the input was split")
    precondition(whole.written == split.written, "outbound bytes depend on how the input was split")
    // With time passing between reads the transcript may differ (timers fire), but the oracle
    // on failures, closing and memory still holds.
    _ = run(role, config, pieces, tickEvery: Int(s >> 4) + 1)
    return 0
}

struct Run {
    var events: [WSProtocol.Event] = []
    var written: [UInt8] = []
}

func run(_ role: WSProtocol.Role, _ config: WSProtocol.Configuration, _ pieces: [ArraySlice<UInt8>], tickEvery: Int) -> Run {
    var p: WSProtocol
    do {
        p = try WSProtocol(role: role, configuration: config, now: .zero, randomNumberGenerator: WSSeededRandom(seed: 7))
    } catch {
        preconditionFailure("configuration rejected: \(error)")
    }
    var r = Run()
    var seconds = 0.0
    func drain(_ p: inout WSProtocol) {
        while let e = p.nextEvent() { r.events.append(e) }
        while let o = p.nextOutbound() {
            if case .bytes(let b) = o { r.written += b }
        }
        precondition(p.bufferedAmount == 0)
    }
    for (n, piece) in pieces.enumerated() {
        p.receive(piece)
        drain(&p)
        if tickEvery > 0, n % tickEvery == 0 {
            seconds += 0.75
            p.tick(now: .seconds(seconds))
            drain(&p)
        }
    }
    p.receiveEOF()
    drain(&p)
    precondition(p.isClosed, "not closed after end of input")
    guard case .closed(let info)? = r.events.last else { preconditionFailure("last event is not closed") }
    let failures = r.events.compactMap { e -> WSProtocolError? in if case .failed(let f) = e { f } else { nil } }
    precondition(failures.count <= 1, "more than one failure")
    if let f = failures.first {
        precondition([1002, 1007, 1008, 1009].contains(f.closeCode.rawValue), "illegal close code \(f.closeCode)")
        precondition(info.cause == .protocolError(f))
        precondition(info.sent != nil)
    }
    precondition(r.written.count <= 64 + pieces.reduce(0) { $0 + $1.count } * 2 + 4096, "output grew without bound")
    r.events = WSFixtureRunner.mergeFragments(r.events)
    return r
}
