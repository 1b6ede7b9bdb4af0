// Copies of a loop-lent Span (the bytes are only valid during the handler call).

extension ServiceConnection {
    /// A `String` of the bytes (already validated UTF-8 by the engine).
    func makeString(_ data: Span<UInt8>) -> String {
        data.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
    }

    /// An array of the bytes.
    func makeArray(_ data: Span<UInt8>) -> [UInt8] {
        data.withUnsafeBufferPointer { Array($0) }
    }
}
