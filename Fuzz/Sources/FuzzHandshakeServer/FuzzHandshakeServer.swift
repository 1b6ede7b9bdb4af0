// WSProtocol as a server from the opening handshake on, fed arbitrary client bytes
// (see FuzzSupport/ProtocolHarness.swift): request parsing, limits, answers, then frames.
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHandshakeServer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzProtocol(role: .server, data, size, handshake: true)
}
