internal import HTTPTypes

// The HTTP/1.1 message head (RFC 9112 §2.1: start-line, field lines, an empty line), read
// incrementally from received bytes. Strict where leniency would let two parsers disagree about
// where a message ends: every line ends in CRLF (a bare LF is an error), no obsolete line folding,
// no whitespace between a field name and its colon (RFC 9112 §5.1), field values checked
// against RFC 9110 §5.5.

private let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n"), sp = UInt8(ascii: " "), htab = UInt8(ascii: "\t")

/// Finds the end of a head as bytes arrive, enforcing both size limits before the head is
/// complete, so a peer cannot make us buffer more than the limits allow.
struct HTTPHeadScanner: Sendable {
    /// Longest start line accepted, without its CRLF.
    let maxStartLine: Int
    /// Largest field section accepted: the field lines with their CRLFs, not the empty line.
    let maxFieldSection: Int
    /// Bytes already examined, relative to the start of the head.
    private var scanned = 0
    /// Where the current line starts.
    private var lineStart = 0
    /// Where the field section starts (after the start line's CRLF), once known.
    private(set) var fieldsStart: Int?

    init(maxStartLine: Int, maxFieldSection: Int) {
        self.maxStartLine = maxStartLine
        self.maxFieldSection = maxFieldSection
    }

    enum Outcome: Equatable {
        case incomplete
        /// The head is the first `length` bytes (the final empty line included).
        case complete(length: Int)
        case startLineTooLong
        case fieldsTooLarge
        /// A line ended with LF alone, at this offset.
        case bareLF(at: Int)
    }

    /// Scans `bytes` (the head so far, from its first byte) from where the last call stopped.
    mutating func scan(_ bytes: ArraySlice<UInt8>) -> Outcome {
        let base = bytes.startIndex
        while let found = bytes[(base + scanned)...].firstIndex(of: lf) {
            let at = found - base
            scanned = at + 1
            let endsInCRLF = at > lineStart && bytes[found - 1] == cr
            let lineLength = at - lineStart - (endsInCRLF ? 1 : 0)
            // Limits before line endings, as when the line arrives without its LF: the outcome
            // must not depend on how the input was split (a fuzzer finding).
            if let fieldsStart {
                // Each field line counts with its CRLF; the empty line that ends the head does not.
                let size = lineStart - fieldsStart + lineLength + (endsInCRLF && lineLength > 0 ? 2 : 0)
                if size > maxFieldSection { return .fieldsTooLarge }
            } else if lineLength > maxStartLine {
                return .startLineTooLong
            }
            guard endsInCRLF else { return .bareLF(at: at) }
            if fieldsStart == nil {
                fieldsStart = at + 1
            } else if lineLength == 0 {
                return .complete(length: at + 1)
            }
            lineStart = at + 1
        }
        scanned = bytes.count
        // Without its end yet, the current line already breaks a limit if it is too long even
        // before its CR (a CR may be the last byte received).
        let partial = bytes.count - lineStart - (bytes.last == cr ? 1 : 0)
        if let fieldsStart {
            if lineStart - fieldsStart + partial > maxFieldSection { return .fieldsTooLarge }
        } else if partial > maxStartLine {
            return .startLineTooLong
        }
        return .incomplete
    }
}

/// A complete head split into its start line and parsed fields.
struct HTTPHead {
    var startLine: ArraySlice<UInt8>
    var fields: HTTPFields

    struct Malformed: Error { var detail: String }

    /// Parses a head the scanner found complete (every line ends in CRLF, the last is empty).
    init(_ head: ArraySlice<UInt8>) throws(Malformed) {
        var lines: [ArraySlice<UInt8>] = []
        var start = head.startIndex
        while let lfIndex = head[start...].firstIndex(of: lf) {
            lines.append(head[start..<(lfIndex - 1)])
            start = lfIndex + 1
        }
        guard lines.count >= 2, lines.last!.isEmpty else { throw Malformed(detail: "incomplete head") }
        startLine = lines[0]
        fields = HTTPFields()
        for line in lines[1..<(lines.count - 1)] {
            // RFC 9112 §5.2: obsolete line folding; a server "MUST either reject the message ...".
            if line.first == sp || line.first == htab { throw Malformed(detail: "obsolete line folding") }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                throw Malformed(detail: "field line without a colon: \(excerpt(line))")
            }
            // §5.1: "No whitespace is allowed between the field name and colon."; the name is a token.
            let nameBytes = line[..<colon]
            guard !nameBytes.isEmpty, nameBytes.allSatisfy(isTokenByte),
                  let name = HTTPField.Name(String(decoding: nameBytes, as: UTF8.self)) else {
                throw Malformed(detail: "invalid field name: \(excerpt(nameBytes))")
            }
            var value = line[(colon + 1)...]
            while let first = value.first, first == sp || first == htab { value = value.dropFirst() }
            while let last = value.last, last == sp || last == htab { value = value.dropLast() }
            guard HTTPField.isValidValue(value) else {
                throw Malformed(detail: "invalid value for \(name.rawName)")
            }
            fields.append(HTTPField(name: name, value: value))
        }
    }
}

/// `tchar` (RFC 9110 §5.6.2).
func isTokenByte(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return "!#$%&'*+-.^_`|~".utf8.contains(b)
    }
}

func isToken(_ s: some StringProtocol) -> Bool { !s.isEmpty && s.utf8.allSatisfy(isTokenByte) }

/// "HTTP/1.1" → (1, 1).
func parseHTTPVersion(_ bytes: ArraySlice<UInt8>) -> (major: Int, minor: Int)? {
    let b = Array(bytes)
    guard b.count == 8, b[0..<5].elementsEqual("HTTP/".utf8), b[6] == UInt8(ascii: "."),
          (0x30...0x39).contains(b[5]), (0x30...0x39).contains(b[7]) else { return nil }
    return (Int(b[5] - 0x30), Int(b[7] - 0x30))
}

extension HTTPFields {
    /// The comma-separated elements of every field named `name` (RFC 9110 §5.6.1), trimmed,
    /// empty elements dropped.
    func listElements(_ name: HTTPField.Name) -> [Substring] {
        self[values: name].flatMap { $0.split(separator: ",").map(trimmedOWS).filter { !$0.isEmpty } }
    }

    /// Whether a token list field holds `token`, compared case-insensitively.
    func listContainsToken(_ name: HTTPField.Name, _ token: String) -> Bool {
        listElements(name).contains { asciiLowercased($0) == token }
    }

    /// The field's single value; nil when absent, `.some(nil)` when it appears more than once.
    func single(_ name: HTTPField.Name) -> String?? {
        let values = self[values: name]
        switch values.count {
        case 0: return nil
        case 1: return .some(values[0])
        default: return .some(nil)
        }
    }
}

func trimmedOWS(_ s: Substring) -> Substring {
    var s = s
    while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
    while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
    return s
}

func asciiLowercased(_ s: some StringProtocol) -> String {
    String(decoding: s.utf8.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
}

/// Serializes a head: start line, fields, empty line, each ending in CRLF.
func appendHead(startLine: String, fields: HTTPFields, to out: inout [UInt8]) {
    out.append(contentsOf: startLine.utf8)
    out.append(contentsOf: [cr, lf])
    for field in fields {
        out.append(contentsOf: field.name.rawName.utf8)
        out.append(contentsOf: ": ".utf8)
        out.append(contentsOf: field.value.utf8)
        out.append(contentsOf: [cr, lf])
    }
    out.append(contentsOf: [cr, lf])
}

extension HTTPField.Name {
    /// `Host`, which swift-http-types keeps in `HTTPRequest.authority`; HTTP/1.1 sends it as a field.
    static var hostField: Self { Self("Host")! }
}
