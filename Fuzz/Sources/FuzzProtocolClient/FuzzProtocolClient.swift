// WSProtocol as a client fed arbitrary server bytes (see FuzzSupport/ProtocolHarness.swift).
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProtocolClient(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzProtocol(role: .client, data, size)
}
