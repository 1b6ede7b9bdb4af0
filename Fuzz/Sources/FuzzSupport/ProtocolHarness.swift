// The WSProtocol harness shared by the server and client targets.
//
// Input layout: see WSTesting's WSProtocolFuzzInput (configuration byte, split byte, peer bytes). The engine is run twice, once on the whole input and once on
// pieces (with ticks between them), and the oracle checks: no trap; the same events (streaming
// fragments merged) and the same outbound bytes either way; at most one failure, with a legal
// close code that our Close frame carries; a closed event at the end; bounded output.
public import WSCore
import WSTesting

public func fuzzProtocol(role: WSProtocol.Role, _ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let fuzz = WSProtocolFuzzInput(UnsafeBufferPointer(start: data, count: size)) else { return 0 }
    let whole = run(role, fuzz.configuration, [fuzz.input[...]], tickEvery: 0)
    let split = run(role, fuzz.configuration, fuzz.pieces, tickEvery: 0)
    precondition(whole.events == split.events, "events depend on how the input was split")
    precondition(whole.written == split.written, "outbound bytes depend on how the input was split")
    let lent = run(role, fuzz.configuration, fuzz.pieces, tickEvery: 0, lending: true)
    precondition(lent.events == whole.events, "nextEvent(lendingData:) delivers other data than nextEvent()")
    precondition(lent.written == whole.written, "nextEvent(lendingData:) writes other bytes than nextEvent()")
    // With time passing between reads the transcript may differ (timers fire), but the oracle
    // on failures, closing and memory still holds.
    _ = run(role, fuzz.configuration, fuzz.pieces, tickEvery: fuzz.tickEvery)
    return 0
}

struct Run {
    var events: [WSProtocol.Event] = []
    var written: [UInt8] = []
}

func run(_ role: WSProtocol.Role, _ config: WSProtocol.Configuration, _ pieces: [ArraySlice<UInt8>], tickEvery: Int,
         lending: Bool = false) -> Run {
    var p: WSProtocol
    do {
        p = try WSProtocol(role: role, configuration: config, now: .zero, randomNumberGenerator: WSSeededRandom(seed: 7))
    } catch {
        preconditionFailure("configuration rejected: \(error)")
    }
    var r = Run()
    var seconds = 0.0
    func drain(_ p: inout WSProtocol) {
        if lending {
            r.events += WSFixtureRunner.drainLending(&p)
        } else {
            while let e = p.nextEvent() { r.events.append(e) }
        }
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
