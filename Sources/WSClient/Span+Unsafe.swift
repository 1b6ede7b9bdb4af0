// The client's unsafe operations: copies of a loop-lent Span (valid only during the handler
// call).

/// A message's text, copied out of the loop's buffer (already validated UTF-8 by the engine).
func makeString(_ data: Span<UInt8>) -> String {
    data.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
}

/// A message's bytes, copied out of the loop's buffer.
func makeArray(_ data: Span<UInt8>) -> [UInt8] {
    data.withUnsafeBufferPointer { Array($0) }
}
