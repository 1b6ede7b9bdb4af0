// permessage-deflate's inflate path: WSDeflateTransform.decode against zlib called directly.
//
// Input: WSTesting's WSDeflateFuzzInput (receive window and limit, pause size and frame cuts,
// one compressed message payload). Oracle: the
// same outcome whole and split into frames with pauses; never more output than the limit; a
// success is exactly what zlib inflates; "too large" only when zlib produces more than the limit.
import CWSZlib
import WSCore
import WSDeflate
import WSTesting

/// zlib directly: inflate payload + 00 00 ff ff with window `bits` (a new stream after each final
/// block), at most `cap` bytes: what it produced, and whether it met no data error (zlib writes
/// the output that precedes an error, possibly up to `cap`, in the call that reports it).
func reference(_ payload: [UInt8], bits: Int32, cap: Int) -> (output: [UInt8], ok: Bool) {
    var s = z_stream()
    precondition(cws_inflateInit2(&s, -bits) == Z_OK)
    defer { inflateEnd(&s) }
    var input = payload + [0, 0, 0xFF, 0xFF]
    var out = [UInt8](repeating: 0, count: cap)
    var produced = 0
    let ok: Bool = input.withUnsafeMutableBufferPointer { inp in
        out.withUnsafeMutableBufferPointer { o in
            s.next_in = inp.baseAddress
            s.avail_in = UInt32(inp.count)
            while true {
                s.next_out = o.baseAddress! + produced
                s.avail_out = UInt32(cap - produced)
                let rc = inflate(&s, Z_SYNC_FLUSH)
                produced = cap - Int(s.avail_out)
                if rc == Z_STREAM_END {
                    // A final block that ends in (or right before) the appended tail ends the
                    // message: the rest of the tail is not the peer's data (python-websockets
                    // ignores it too).
                    if s.avail_in <= 4 || produced == cap { return true }
                    inflateReset(&s)
                    continue
                }
                if rc != Z_OK && rc != Z_BUF_ERROR { return false }
                if s.avail_in == 0 || s.avail_out == 0 { return true }
            }
        }
    }
    return (Array(out[0..<produced]), ok)
}

/// The message decoded by a fresh codec (WSTesting's decodeMessage checks the transform contract).
func decode(_ pieces: [[UInt8]], bits: Int, limit: Int, pause: Int) -> Result<[UInt8], WSTransformError> {
    WSDeflateTransform(parameters: WSDeflateParameters(receive: .init(maxWindowBits: bits)))
        .decodeMessage(pieces, limit: limit, pauseAfter: pause)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeflateInflate(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let fuzz = WSDeflateFuzzInput(UnsafeBufferPointer(start: data, count: size)) else { return 0 }
    let (bits, limit, payload) = (fuzz.windowBits, fuzz.limit, fuzz.payload)
    let whole = decode([payload], bits: bits, limit: limit, pause: .max)
    let split = decode(fuzz.pieces, bits: bits, limit: limit, pause: fuzz.pauseAfter)
    switch (whole, split) {
    case (.success(let a), .success(let b)): precondition(a == b, "whole and split decode differently")
    case (.failure(.outputLimitExceeded), .failure(.outputLimitExceeded)), (.failure(.invalidData), .failure(.invalidData)): break
    default: preconditionFailure("whole and split disagree: \(whole) vs \(split)")
    }
    let ref = reference(payload, bits: Int32(max(bits, 9)), cap: limit + 1)
    switch whole {
    case .success(let out):
        precondition(ref.ok && ref.output == out, "decoded differently from zlib")
    case .failure(.outputLimitExceeded):
        precondition(ref.output.count > limit, "too large, yet zlib stays within the limit")
    case .failure(.invalidData):
        break  // zlib may read further into broken data; we also demand a block boundary at the end
    }
    return 0
}
