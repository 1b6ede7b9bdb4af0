// WSProtocol as a client from the opening handshake on, fed arbitrary server bytes
// (see FuzzSupport/ProtocolHarness.swift): response checks, rejections and their bodies, then frames.
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHandshakeClient(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzProtocol(role: .client, data, size, handshake: true)
}
