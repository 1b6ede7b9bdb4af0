// UTF-8 validation: the dispatching validator (AVX2 where available), the portable kernel and
// the reference DFA must report the same first invalid byte and completeness for the input fed
// in input-chosen pieces; the reference must agree with the standard library on validity.
@_spi(Reference) import WSCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUTF8(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let text = UnsafeRawBufferPointer(start: data + 2, count: size - 2)
    let cuts = [Int(data[0]) * 3, Int(data[0]) * 3 + Int(data[1])].map { min($0, text.count) }.sorted()

    func run(_ validate: (inout WSUTF8Validator, UnsafeRawBufferPointer) -> Int?) -> (Int?, Bool) {
        var v = WSUTF8Validator()
        var start = 0
        for end in cuts + [text.count] {
            if let bad = validate(&v, UnsafeRawBufferPointer(rebasing: text[start..<end])) { return (start + bad, false) }
            start = end
        }
        return (nil, v.isComplete)
    }
    let reference = run { $0.validateReference($1) }
    let dispatched = run { $0.validate($1) }
    let portable = run { $0.validatePortable($1) }
    precondition(dispatched == reference, "dispatching validator != reference")
    precondition(portable == reference, "portable validator != reference")
    let stdlib = String(validating: UnsafeBufferPointer(start: data + 2, count: size - 2), as: UTF8.self) != nil
    precondition(reference.1 == stdlib, "reference != standard library")
    return 0
}
