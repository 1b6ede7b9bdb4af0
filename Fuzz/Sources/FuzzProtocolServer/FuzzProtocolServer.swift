// WSProtocol as a server fed arbitrary client bytes (see FuzzSupport/ProtocolHarness.swift).
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProtocolServer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzProtocol(role: .server, data, size)
}
