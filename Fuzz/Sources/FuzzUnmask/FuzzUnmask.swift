// Unmasking: the dispatching kernel (AVX2 where available), the portable kernel and the
// byte-by-byte reference must produce the same bytes and phase, at any alignment and phase, and
// unmasking in input-chosen slices must equal unmasking at once.
@_spi(Reference) import WSCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUnmask(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 6 else { return 0 }
    let key = WSMaskKey(data[0], data[1], data[2], data[3])
    let phase = Int(data[4] & 3), offset = Int(data[4] >> 2 & 31), cut = Int(data[5])
    let payload = Array(UnsafeBufferPointer(start: data + 6, count: size - 6))
    let padded = [UInt8](repeating: 0xAA, count: offset) + payload
    func run(_ f: (UnsafeMutableRawBufferPointer) -> Int) -> ([UInt8], Int) {
        var b = padded
        let p = b.withUnsafeMutableBytes { f(UnsafeMutableRawBufferPointer(rebasing: $0[offset...])) }
        return (b, p)
    }
    let reference = run { key.applyReference(to: $0, phase: phase) }
    precondition(run { key.apply(to: $0, phase: phase) } == reference, "dispatching kernel != reference")
    precondition(run { key.applyPortable(to: $0, phase: phase) } == reference, "portable kernel != reference")
    let sliced = run { all in
        let c = min(cut * 7, all.count)
        let p = key.apply(to: UnsafeMutableRawBufferPointer(rebasing: all[..<c]), phase: phase)
        return key.apply(to: UnsafeMutableRawBufferPointer(rebasing: all[c...]), phase: p)
    }
    precondition(sliced == reference, "slice-by-slice unmasking != reference")
    return 0
}
