// The Sec-WebSocket-Extensions parser (RFC 6455 §9.1) and permessage-deflate's negotiation
// (RFC 7692 §7.1). Input: byte 0 chooses the server's configuration, the rest is a header value.
// Oracle: parse ∘ serialize ∘ parse is the identity; a server answer is valid, answers one of
// the offers, is accepted by a client that made them, and never makes the server compress with
// 8 bits or beyond the client's limit.
import WSCore
import WSDeflate

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzExtensionHeader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let value = String(decoding: UnsafeBufferPointer(start: data + 1, count: size - 1), as: UTF8.self)
    guard let elements = WSExtensionElement.parse([value]) else { return 0 }
    precondition(elements.allSatisfy(\.isValid), "a parsed element is not valid")
    let again = WSExtensionElement.parse([WSExtensionElement.serialize(elements)])
    precondition(again == elements, "serialize then parse changes the elements")

    let c = data[0]
    var config = WSPerMessageDeflate.Configuration()
    config.serverNoContextTakeover = c & 1 != 0
    config.clientNoContextTakeover = c & 2 != 0
    config.serverMaxWindowBits = [nil, 8, 9, 12][Int(c >> 2) & 3]
    config.clientMaxWindowBits = [nil, 8, 10, 15][Int(c >> 4) & 3]
    let server = try! WSPerMessageDeflate(config)
    let offers = elements.filter { $0.name.lowercased() == WSPerMessageDeflate.name }
    guard let answer = server.accept(offers: offers) else { return 0 }
    precondition(answer.isValid)
    precondition(WSPerMessageDeflate().validate(response: answer, offered: offers) == nil, "a client rejects our answer to its own offers")
    let ours = server.parameters(agreed: answer, role: .server)!
    precondition((9...15).contains(ours.send.maxWindowBits), "the server would compress with \(ours.send.maxWindowBits) bits")
    precondition(ours.send.maxWindowBits <= (config.serverMaxWindowBits.map { max($0, 9) } ?? 15))
    return 0
}
