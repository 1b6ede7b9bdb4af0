// Proxy settings as users and environments write them: `WSProxy(_:)` (http://user:pw@host:port)
// and `no_proxy` lists (`WSProxy.bypasses`). Input: byte 0 chooses the check, the rest is text.
// Oracle: no crash; a parsed proxy's description parses back to the same host and port; a list
// that matches still matches with more entries after it, and `*` anywhere matches everything.
import WSTransport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProxySettings(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data + 1, count: size - 1), as: UTF8.self)
    if data[0] & 1 == 0 {
        guard let proxy = try? WSProxy(text) else { return 0 }
        precondition((0...65535).contains(proxy.port), "port \(proxy.port) out of range")
        let again = try? WSProxy(proxy.description)
        precondition(again?.host == proxy.host && again?.port == proxy.port, "\(proxy) does not parse back")
    } else {
        for (host, port) in [("example.com", 443), ("api.example.com", 8080), ("127.0.0.1", 80), ("::1", 9001), ("10.1.2.3", 1)] {
            let matched = WSProxy.bypasses(text, host: host, port: port)
            precondition(!matched || WSProxy.bypasses(text + ",unrelated.invalid", host: host, port: port), "an extra entry undid a match")
            precondition(WSProxy.bypasses(text + ",*", host: host, port: port), "* did not match")
        }
    }
    return 0
}
