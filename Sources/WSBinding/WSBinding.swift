// Data binding shared by the service layer and the client (Ballerina's rules): how a received
// message becomes a Swift value, and how a value becomes a message.

package import FoundationEssentials

/// Something whose value can be checked after binding (Ballerina's `validation`, which its
/// `constraint` package provides): throw to refuse the value.
public protocol WSValidatable {
    /// Throws when the value is not acceptable; the error's description is reported.
    func validate() throws
}

/// A data message's content, received or to send.
package enum WSPayload: Sendable {
    case text(String)
    case binary([UInt8])

    /// The bytes (a text's UTF-8).
    package var bytes: [UInt8] {
        switch self {
        case .text(let s): Array(s.utf8)
        case .binary(let b): b
        }
    }

    /// The bytes, as Foundation's decoders take them.
    package var utf8: Data {
        switch self {
        case .text(let s): Data(s.utf8)
        case .binary(let b): Data(b)
        }
    }

    /// A value as a message (Ballerina's `writeMessage`): a `String` as text, `[UInt8]` as
    /// binary, any other `Encodable` as JSON text.
    /// - Throws: the encoder's error.
    package init(encoding value: some Encodable) throws {
        switch value {
        case let s as String: self = .text(s)
        case let b as [UInt8]: self = .binary(b)
        default: self = .text(try wsJSONText(value))
        }
    }
}

/// A message that did not bind to the type asked for, or whose value did not validate.
package struct WSBindingFailure: Error, Sendable {
    /// Decoding failed (`false`), or validation did (`true`).
    package var isValidation: Bool
    /// What was wrong and where (never the payload).
    package var message: String
    /// The decoder's or the validation's error.
    package var underlying: any Error & Sendable
}

/// Binds a message to `M` by Ballerina's rules: text binds raw to `String`, binary raw to
/// `[UInt8]`; everything else is JSON (a binary message's bytes read as UTF-8 JSON). With
/// `validate`, a value that adopts ``WSValidatable`` is validated too.
package func wsBind<M: Decodable>(_ payload: WSPayload, to _: M.Type, validate: Bool) throws(WSBindingFailure) -> M {
    let value: M
    switch payload {
    case .text(let s) where M.self == String.self:
        value = s as! M
    case .binary(let b) where M.self == [UInt8].self:
        value = b as! M
    default:
        do {
            value = try JSONDecoder().decode(M.self, from: payload.utf8)
        } catch {
            throw WSBindingFailure(isValidation: false, message: "the message does not bind to \(M.self): \(wsDescribe(error))",
                                   underlying: error)
        }
    }
    if validate, let v = value as? any WSValidatable {
        do {
            try v.validate()
        } catch {
            throw WSBindingFailure(isValidation: true, message: "the \(M.self) is not valid: \(error)",
                                   underlying: WSErrorDescription(error))
        }
    }
    return value
}

/// JSON text for a value: keys sorted (Foundation's encoder otherwise emits them in hash
/// order, which changes from run to run), `/` not escaped.
package func wsJSONText(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// A short account of a decoding error: what was wrong and where (not the payload).
package func wsDescribe(_ error: any Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    func path(_ context: DecodingError.Context) -> String {
        let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return p.isEmpty ? "" : " at \(p)"
    }
    switch error {
    case .typeMismatch(let type, let c): return "expected \(type)\(path(c))"
    case .valueNotFound(let type, let c): return "missing \(type) value\(path(c))"
    case .keyNotFound(let key, let c): return "missing key \"\(key.stringValue)\"\(path(c))"
    case .dataCorrupted(let c): return "not valid JSON\(path(c))"
    @unknown default: return "\(error)"
    }
}

/// An error kept by its description (a validation error need not be `Sendable`).
package struct WSErrorDescription: Error, Sendable, CustomStringConvertible {
    package var description: String
    package init(_ error: any Error) { description = "\(error)" }
}
