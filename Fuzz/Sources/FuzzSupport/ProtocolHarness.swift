// The WSProtocol harness shared by the server and client targets.
//
// Input layout: see WSTesting's WSProtocolFuzzInput (configuration byte, split byte, peer bytes).
// The engine runs on the whole input, on pieces, on pieces taking data each of the other three
// ways (lent spans, shared slices, shared steps; the first also releases idle memory after each
// read, as the epoll adapter's sweep does), on pieces read in place as the epoll adapter reads
// (whole messages taken from the read's own buffer with nextDirectMessage, the rest received),
// and on pieces with ticks between them. Two more runs echo every whole message as it comes:
// the reference with the generic send, the other reading in place and echoing through the
// adapters' raw-buffer send (its one-frame fast path). The oracle checks: no trap; the same
// events (streaming fragments merged) and the same outbound bytes whether whole or split and
// whichever way data is taken or echoed; at most one failure, with a legal close code that our
// Close frame carries; a closed event at the end; bounded output.
public import WSCore
import WSTesting

/// - Parameter handshake: start with the opening handshake (`init(client:)`/`init(server:)`);
///   a server accepts each upgrade request, or rejects it when bit 7 of the configuration byte is set.
public func fuzzProtocol(role: WSProtocol.Role, _ data: UnsafePointer<UInt8>, _ size: Int, handshake: Bool = false) -> CInt {
    guard let fuzz = WSProtocolFuzzInput(UnsafeBufferPointer(start: data, count: size)) else { return 0 }
    let run = { (pieces: [ArraySlice<UInt8>], tickEvery: Int, take: Take) in
        FuzzSupport.run(role, fuzz, pieces, tickEvery: tickEvery, take: take, handshake: handshake, echo: false)
    }
    let whole = run([fuzz.input[...]], 0, .events)
    let split = run(fuzz.pieces, 0, .events)
    // One outcome depends on timing by design: more than maxHeaderSize bytes arriving before
    // the application decides on the upgrade. Read whole, the decision comes too late.
    if !WSProtocolFuzzInput.decidedTooLate(whole.events) {
        precondition(whole.events == split.events, "events depend on how the input was split")
        precondition(whole.written == split.written, "outbound bytes depend on how the input was split")
    }
    let lent = run(fuzz.pieces, 0, .lending)
    precondition(lent.events == split.events, "nextEvent(lendingData:) delivers other data than nextEvent()")
    precondition(lent.written == split.written, "nextEvent(lendingData:) writes other bytes than nextEvent()")
    let shared = run(fuzz.pieces, 0, .sharing)
    precondition(shared.events == split.events, "nextEventSharingData() delivers other data than nextEvent()")
    precondition(shared.written == split.written, "nextEventSharingData() writes other bytes than nextEvent()")
    let stepped = run(fuzz.pieces, 0, .stepping)
    precondition(stepped.events == split.events, "nextSharedData() delivers other data than nextEvent()")
    precondition(stepped.written == split.written, "nextSharedData() writes other bytes than nextEvent()")
    let direct = run(fuzz.pieces, 0, .direct)
    precondition(direct.events == split.events, "nextDirectMessage(in:at:) delivers other data than nextEvent()")
    precondition(direct.written == split.written, "reading in place writes other bytes than receive()")
    let echoed = FuzzSupport.run(role, fuzz, fuzz.pieces, tickEvery: 0, take: .events, handshake: handshake, echo: true)
    let echoedFast = FuzzSupport.run(role, fuzz, fuzz.pieces, tickEvery: 0, take: .direct, handshake: handshake, echo: true)
    precondition(echoedFast.events == echoed.events, "an echo read in place sees other events")
    precondition(echoedFast.written == echoed.written, "the raw-buffer send writes other bytes than the generic send")
    // With time passing between reads the transcript may differ (timers fire), but the oracle
    // on failures, closing and memory still holds.
    _ = run(fuzz.pieces, fuzz.tickEvery, .events)
    return 0
}

struct Run {
    var events: [WSProtocol.Event] = []
    var written: [UInt8] = []
}

/// How a run takes events: `nextEvent()`, `nextEvent(lendingData:)`, `nextEventSharingData()`
/// (whose slices stay in the events while more input is fed), `nextSharedData()`, or whole
/// messages read in place with `nextDirectMessage(in:at:)` and the rest with `nextSharedData()`
/// (the epoll adapter's way).
enum Take { case events, lending, sharing, stepping, direct }

/// - Parameter echo: send every whole message back as it is taken (`.events`: the generic
///   `send`; `.direct`: the raw-buffer `send`, as the epoll adapter's handlers do).
func run(_ role: WSProtocol.Role, _ fuzz: WSProtocolFuzzInput, _ pieces: [ArraySlice<UInt8>], tickEvery: Int,
         take: Take, handshake: Bool, echo: Bool) -> Run {
    var p: WSProtocol
    do {
        p = try fuzz.makeEngine(role: role, handshake: handshake)
    } catch {
        preconditionFailure("configuration rejected: \(error)")
    }
    var r = Run()
    var seconds = 0.0
    let streaming = fuzz.configuration.delivery == .streaming
    /// Keeps an event; echoes a whole message (a usage error, such as a closed connection, is
    /// part of the transcript through what is, or is not, written).
    func keep(_ e: WSProtocol.Event, _ p: inout WSProtocol) {
        r.events.append(e)
        guard echo else { return }
        let message: (WSMessageKind, [UInt8])? = switch e {
        case .text(let s): (.text, Array(s.utf8))
        case .binary(let b): (.binary, Array(b))
        default: nil
        }
        guard let (kind, bytes) = message else { return }
        if take == .direct {
            _ = try? bytes.span.withUnsafeBytes { (raw) throws(WSUsageError) in try p.send(raw, kind: kind) }
        } else {
            _ = try? p.send(bytes, kind: kind)
        }
    }
    func drain(_ p: inout WSProtocol) {
        switch take {
        case .events, .direct:
            repeat {
                while let e = p.nextEvent() { keep(e, &p) }
                p.continueEncoding()
            } while p.hasPendingWork
        case .lending: r.events += WSFixtureRunner.drainLending(&p)
        case .sharing: r.events += WSFixtureRunner.drainSharing(&p)
        case .stepping: r.events += WSFixtureRunner.drainStepping(&p)
        }
        if p.pendingUpgrade != nil {
            do {
                try fuzz.decide(&p)
            } catch {
                preconditionFailure("accept/reject of a reported request failed: \(error)")
            }
            drain(&p)
            return
        }
        while let o = p.nextOutbound() {
            if case .bytes(let b) = o { r.written += b }
        }
        precondition(p.bufferedAmount == 0)
    }
    for (n, piece) in pieces.enumerated() {
        if take == .direct {
            let quiet = WSFixtureRunner.receiveDirect(piece, into: &p) { p, kind, bytes in
                keep(WSFixtureRunner.dataEvent(kind, bytes, streaming: streaming), &p)
            }
            let taken = r.events.count
            drain(&p)
            precondition(!quiet || r.events.count == taken, "hasNoEvents, yet nextEvent() returned an event")
        } else {
            p.receive(piece)
            drain(&p)
        }
        if take == .lending { p.releaseIdleMemory() }
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
    let handshakeFailures = r.events.filter { if case .handshakeFailed = $0 { true } else { false } }
    precondition(handshakeFailures.count <= 1, "more than one handshake failure")
    if case .handshakeFailed(let e)? = handshakeFailures.first {
        precondition(info.cause == .handshakeFailed(e), "closed for another reason than the handshake failure")
        precondition(role == .client || e.status != nil, "a server handshake failure without a status")
    }
    // An echo's output follows the input's decoded size, bounded by the run without it.
    precondition(echo || r.written.count <= 64 + pieces.reduce(0) { $0 + $1.count } * 2 + 4096, "output grew without bound")
    r.events = WSFixtureRunner.mergeFragments(r.events)
    return r
}
