import WSCore
import WSTesting
func hex(_ b: some Collection<UInt8>) -> String { b.map { String($0, radix: 16) }.joined(separator: " ") }
func smoke() throws {
    var c = try WSProtocol(role: .client, now: .zero, randomNumberGenerator: WSMaskKeySequence([WSMaskKey(0x37, 0xfa, 0x21, 0x3d)]))
    try c.sendText("Hello")
    if case .bytes(let b)? = c.nextOutbound() { print("client Hello:", hex(b)) }
    var s = try WSProtocol(role: .server, now: .zero)
    s.receive([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58, 0x01, 0x83, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x80, 0x82, 0x37, 0xfa, 0x21, 0x3d, 0x5b, 0x96] as [UInt8])
    while let e = s.nextEvent() { print("server event:", e) }
    c.receive([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x88, 0x02, 0x03, 0xe8] as [UInt8])
    while let e = c.nextEvent() { print("client event:", e) }
    while let o = c.nextOutbound() { print("client out:", o) }
    c.receiveEOF()
    while let e = c.nextEvent() { print("client event:", e) }
}
try smoke()
