// Frame header decoding: the fast decoder must agree with the reference on every prefix of the
// input, and a decoded header must re-encode to exactly the bytes it came from, by the reference
// encoder and by the fast one.
import WSCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameHeader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    for n in 0...min(size, WSFrameHeader.maxLength + 2) {
        let prefix = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[0..<n]))
        let fast = WSFrameHeader.decode(prefix)
        precondition(fast == WSFrameHeader.decodeReference(prefix), "fast and reference decoders disagree")
        switch fast {
        case .header(let header, let length):
            precondition(length <= n && length == header.encodedLength)
            var encoded: [UInt8] = []
            header.encode(into: &encoded)
            precondition(encoded.elementsEqual(bytes[0..<length]), "decode∘encode is not the identity")
            var fast = [UInt8](repeating: 0, count: WSFrameHeader.maxLength)
            let written = unsafe fast.withUnsafeMutableBytes { unsafe header.encode(to: $0.baseAddress!) }
            precondition(fast[..<written].elementsEqual(encoded), "fast and reference encoders disagree")
        case .incomplete(let needed):
            precondition(needed > n && needed <= WSFrameHeader.maxLength)
        case .invalid:
            break
        }
    }
    return 0
}
