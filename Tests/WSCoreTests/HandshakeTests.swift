import HTTPTypes
import Testing
@testable import WSCore
import WSTesting

@Suite("RFC 6455 §4.2.2 Sec-WebSocket-Accept: SHA-1 (FIPS 180 / RFC 3174) and base64 (RFC 4648)")
struct AcceptKeyTests {
    static let sha1Vectors: [(String, String)] = [
        ("", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ("abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
        (String(repeating: "01234567", count: 80), "dea356a2cddd90c7a7ecedc5ebb563934f460452"),
        (String(repeating: "a", count: 55), "c1c8bbdc22796e28c0e15163d20899b65621d65a"),
        (String(repeating: "a", count: 56), "c2db330f6083854c99d4b5bfb6e8f29f201be699"),
        (String(repeating: "a", count: 64), "0098ba824b5c16427bd7a1122a5a442a25ec644d"),
    ]

    @Test("SHA-1 of the FIPS 180 and RFC 3174 vectors and the padding boundaries", arguments: sha1Vectors)
    func sha1(input: String, digest: String) {
        #expect(hexString(wsSHA1(Array(input.utf8))) == digest)
    }

    @Test("SHA-1 of one million 'a' (FIPS 180 long vector)")
    func sha1Million() {
        #expect(hexString(wsSHA1([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test("base64 of the RFC 4648 §10 vectors, both ways",
          arguments: [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")])
    func base64(plain: String, encoded: String) {
        #expect(wsBase64Encode(Array(plain.utf8)) == encoded)
        #expect(wsBase64Decode(encoded) == Array(plain.utf8))
    }

    @Test("base64 decoding refuses non-canonical and malformed text",
          arguments: ["Zh==", "Zm9=", "Zg=", "Zg", "Z===", "Zm9v\n", "Zm 9v", "Zg==Zg==", "=Zg=", "Zm9v!A=="])
    func base64Rejects(text: String) {
        #expect(wsBase64Decode(text) == nil)
    }

    @Test("base64 round-trips every length 0–40")
    func base64RoundTrip() {
        var rng = WSSeededRandom(seed: 7)
        for n in 0...40 {
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            #expect(wsBase64Decode(wsBase64Encode(bytes)) == bytes)
        }
    }

    @Test("§1.3 example: dGhlIHNhbXBsZSBub25jZQ== → s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    func rfcExample() {
        #expect(WSHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }
}

@Suite("RFC 6455 §3 WebSocket URIs")
struct WSURLTests {
    @Test("valid URIs: defaults, ports, IPv6, query, user info, percent-encoding",
          arguments: [
              ("ws://example.com", false, "example.com", 80, "/", "example.com"),
              ("WSS://Example.COM/chat", true, "example.com", 443, "/chat", "example.com"),
              ("ws://example.com:80/", false, "example.com", 80, "/", "example.com"),
              ("ws://example.com:8080/a/b?x=1&y=2", false, "example.com", 8080, "/a/b?x=1&y=2", "example.com:8080"),
              ("wss://example.com:443", true, "example.com", 443, "/", "example.com"),
              ("ws://127.0.0.1:9001?q", false, "127.0.0.1", 9001, "/?q", "127.0.0.1:9001"),
              ("ws://[::1]:9001/x", false, "::1", 9001, "/x", "[::1]:9001"),
              ("wss://[2001:DB8::1]/", true, "2001:db8::1", 443, "/", "[2001:db8::1]"),
              ("ws://u:p%40ss@host/p", false, "host", 80, "/p", "host"),
              ("ws://host/a b/é", false, "host", 80, "/a%20b/%C3%A9", "host"),
          ])
    func valid(text: String, secure: Bool, host: String, port: Int, target: String, hostField: String) throws {
        let url = try WSURL(text)
        #expect(url.isSecure == secure)
        #expect(url.host == host)
        #expect(url.port == port)
        #expect(url.target == target)
        #expect(url.hostField == hostField)
    }

    @Test("user info becomes Basic authorization")
    func userInfo() throws {
        let h = WSClientHandshake(url: try WSURL("ws://u:p%40ss@host/p"))
        #expect(h.authorization == .basic(user: "u", password: "p@ss"))
        #expect(h.authorization?.fieldValue == "Basic dTpwQHNz")
    }

    @Test("invalid URIs are a usage error",
          arguments: ["http://example.com", "example.com", "ws://", "ws://host#frag", "ws://u:%+1@host/", "ws://host:0", "ws://host:65536",
                      "ws://host:8x", "ws://[::1", "ws://[zz::1]/", "ws://bad host/", "ws://hé.com/"])
    func invalid(text: String) {
        #expect(throws: WSUsageError.self) { try WSURL(text) }
    }
}

@Suite("RFC 6455 §9.1 Sec-WebSocket-Extensions grammar")
struct ExtensionGrammarTests {
    @Test("parses tokens, parameters, quoted values, several offers and fields")
    func parses() {
        let parsed = WSExtensionElement.parse([
            "permessage-deflate; client_max_window_bits, permessage-deflate ; server_max_window_bits=\"10\"",
            " , x-foo;a=1;b",
        ])
        #expect(parsed == [
            WSExtensionElement(name: "permessage-deflate", parameters: [.init("client_max_window_bits")]),
            WSExtensionElement(name: "permessage-deflate", parameters: [.init("server_max_window_bits", "10")]),
            WSExtensionElement(name: "x-foo", parameters: [.init("a", "1"), .init("b")]),
        ])
    }

    @Test("refuses what §9.1 does not allow",
          arguments: ["x;", "x;=1", "x;a=", "x;a=\"\"", "x;a=\"b c\"", "x;a=\"unterminated", "x y", "x;a=1 2", "\"x\"", "x;a=b=c", "x,,;"])
    func refuses(value: String) {
        #expect(WSExtensionElement.parse([value]) == nil)
    }

    @Test("serialization parses back to the same elements")
    func roundTrip() {
        let elements = [
            WSExtensionElement(name: "permessage-deflate", parameters: [.init("client_max_window_bits", "12"), .init("server_no_context_takeover")]),
            WSExtensionElement(name: "x-bar"),
        ]
        let text = WSExtensionElement.serialize(elements)
        #expect(text == "permessage-deflate; client_max_window_bits=12; server_no_context_takeover, x-bar")
        #expect(WSExtensionElement.parse([text]) == elements)
    }
}

@Suite("RFC 6455 §10.2 Origin allow-list")
struct OriginPolicyTests {
    @Test("exact origins, host patterns, missing and null origins")
    func policy() {
        let p = WSOriginPolicy(allowing: ["https://example.com", "http://localhost:8080", "*.example.org"])
        #expect(p.allows("https://example.com"))
        #expect(p.allows("HTTPS://EXAMPLE.COM:443"))
        #expect(!p.allows("http://example.com"))
        #expect(!p.allows("https://example.com:8443"))
        #expect(p.allows("http://localhost:8080"))
        #expect(!p.allows("http://localhost"))
        #expect(p.allows("https://chat.example.org"))
        #expect(p.allows("http://a.b.example.org:81"))
        #expect(!p.allows("https://example.org"))
        #expect(!p.allows("https://evilexample.org"))
        #expect(!p.allows("null"))
        #expect(p.allows(nil))
        #expect(!WSOriginPolicy(allowing: [], allowsMissingOrigin: false).allows(nil))
        #expect(WSOriginPolicy(allowing: ["*"]).allows("https://anything.test"))
    }
}

private func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}
