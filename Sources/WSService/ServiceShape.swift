// What a service type can do, learnt once when it is attached: a closure per capability that
// casts the service back to its type and calls the method, and how each reply type is sent.

import FoundationEssentials
import WSCore

/// A message to send back.
enum Outgoing: Sendable {
    case text(String)
    case binary([UInt8])

    var bytes: [UInt8] {
        switch self {
        case .text(let s): Array(s.utf8)
        case .binary(let b): b
        }
    }
}

/// A received data message, as the service layer holds it.
enum Payload: Sendable {
    case text(String)
    case binary([UInt8])

    var utf8: Data {
        switch self {
        case .text(let s): Data(s.utf8)
        case .binary(let b): Data(b)
        }
    }
}

/// A message that did not bind (or did not validate).
struct BindingFailure: Error {
    var error: WSServiceError
}

typealias DataHandler = @Sendable (any WSService, WSCaller, Payload) async throws -> Outgoing?
typealias ControlHandler = @Sendable (any WSService, WSCaller, [UInt8]) async throws -> [UInt8]?

/// The capabilities of one service type.
struct ServiceShape: Sendable {
    var typeName: String
    var onText: (@Sendable (any WSService, WSCaller, String) async throws -> Outgoing?)?
    var onBinary: (@Sendable (any WSService, WSCaller, [UInt8]) async throws -> Outgoing?)?
    /// Data-bound `onMessage`: binds (throwing ``BindingFailure``), then calls.
    var onMessage: (@Sendable (any WSService, WSCaller, Payload, _ validate: Bool) async throws -> Outgoing?)?
    var onPing: ControlHandler?
    var onPong: (@Sendable (any WSService, WSCaller, [UInt8]) async throws -> Void)?
    var dispatch: AnyDispatchTable?

    /// Learns `S`'s capabilities. Throws for a service that cannot work: `onMessage` beside
    /// `onTextMessage`/`onBinaryMessage`, a reply type that cannot be sent, a dispatch table
    /// with a bad handler name.
    init<S: WSService>(_: S.Type) throws(WSServiceConfigurationError) {
        typeName = String(reflecting: S.self)
        do {
            if let t = S.self as? any WSTextService.Type { onText = try Self.text(t) }
            if let t = S.self as? any WSBinaryService.Type { onBinary = try Self.binary(t) }
            if let t = S.self as? any WSMessageService.Type { onMessage = try Self.message(t) }
            if let t = S.self as? any WSPingService.Type { onPing = try Self.ping(t) }
            if let t = S.self as? any WSPongService.Type { onPong = Self.pong(t) }
            if let t = S.self as? any WSDispatchingService.Type { dispatch = try Self.dispatchTable(t) }
        } catch let error as WSServiceConfigurationError {
            throw error
        } catch {
            throw WSServiceConfigurationError("\(error)")
        }
        if onMessage != nil && (onText != nil || onBinary != nil) {
            throw WSServiceConfigurationError(
                "\(typeName) has onMessage together with onTextMessage or onBinaryMessage: a data-bound onMessage receives every message, so it cannot be combined with them")
        }
    }

    private static func text<T: WSTextService>(_: T.Type) throws -> @Sendable (any WSService, WSCaller, String) async throws -> Outgoing? {
        let encode = try replyEncoder(T.TextReply.self, of: "onTextMessage")
        return { service, caller, text in try encode(try await (service as! T).onTextMessage(caller, text: text)) }
    }

    private static func binary<T: WSBinaryService>(_: T.Type) throws -> @Sendable (any WSService, WSCaller, [UInt8]) async throws -> Outgoing? {
        let encode = try replyEncoder(T.BinaryReply.self, of: "onBinaryMessage")
        return { service, caller, data in try encode(try await (service as! T).onBinaryMessage(caller, data: data)) }
    }

    private static func message<T: WSMessageService>(_: T.Type) throws -> @Sendable (any WSService, WSCaller, Payload, Bool) async throws -> Outgoing? {
        let encode = try replyEncoder(T.MessageReply.self, of: "onMessage")
        return { service, caller, payload, validate in
            let message = try bind(payload, to: T.Message.self, validate: validate)
            return try encode(try await (service as! T).onMessage(caller, message: message))
        }
    }

    private static func ping<T: WSPingService>(_: T.Type) throws -> ControlHandler {
        let encode = try replyEncoder(T.PingReply.self, of: "onPing")
        return { service, caller, data in try encode(try await (service as! T).onPing(caller, data: data))?.bytes }
    }

    private static func pong<T: WSPongService>(_: T.Type) -> @Sendable (any WSService, WSCaller, [UInt8]) async throws -> Void {
        { service, caller, data in try await (service as! T).onPong(caller, data: data) }
    }

    private static func dispatchTable<T: WSDispatchingService>(_: T.Type) throws -> AnyDispatchTable {
        try AnyDispatchTable(T.dispatchTable)
    }
}

// MARK: Replies

/// How a callback's return value of type `R` is sent, decided once per type: `String` as
/// text, `[UInt8]` as binary, `Void` as nothing, an `Optional` as its value or nothing, any
/// other `Encodable` as JSON text.
func replyEncoder<R>(_: R.Type, of method: String) throws(WSServiceConfigurationError) -> @Sendable (R) throws -> Outgoing? {
    if R.self == Void.self { return { _ in nil } }
    if R.self == String.self { return { .text($0 as! String) } }
    if R.self == [UInt8].self { return { .binary($0 as! [UInt8]) } }
    if R.self is any OptionalReply.Type || R.self is any Encodable.Type {
        return { value in try encodeReply(value) }
    }
    throw WSServiceConfigurationError(
        "\(method) returns \(R.self), which cannot be sent: return String (text), [UInt8] (binary), an Encodable (JSON text), an Optional of these, or nothing")
}

/// The reply for a value known only at run time (an Optional's content).
private func encodeReply(_ value: Any) throws -> Outgoing? {
    switch value {
    case let optional as any OptionalReply:
        guard let wrapped = optional.wrappedReply else { return nil }
        return try encodeReply(wrapped)
    case let s as String: return .text(s)
    case let b as [UInt8]: return .binary(b)
    case let e as any Encodable: return .text(try jsonText(e))
    default: return nil
    }
}

/// `Optional`, seen through its content.
protocol OptionalReply {
    var wrappedReply: Any? { get }
}

extension Optional: OptionalReply {
    var wrappedReply: Any? { self.map { $0 as Any } }
}

/// JSON text for a reply (keys in the order the type encodes them, `/` not escaped).
func jsonText(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

// MARK: Binding

/// Binds a message to `M` by Ballerina's rules: text binds raw to `String`, binary raw to
/// `[UInt8]`; everything else is JSON (a binary message's bytes read as UTF-8 JSON).
func bind<M: Decodable>(_ payload: Payload, to _: M.Type, validate: Bool) throws(BindingFailure) -> M {
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
            throw BindingFailure(error: WSServiceError(.payloadBinding, "the message does not bind to \(M.self): \(describe(error))",
                                                       closeCode: .unsupportedData, underlying: error))
        }
    }
    if validate, let v = value as? any WSValidatable {
        do {
            try v.validate()
        } catch {
            throw BindingFailure(error: WSServiceError(.payloadValidation, "the \(M.self) is not valid: \(error)",
                                                       closeCode: .unsupportedData, underlying: SendableDescription(error)))
        }
    }
    return value
}

/// A short account of a decoding error: what was wrong and where (not the payload).
func describe(_ error: any Error) -> String {
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
struct SendableDescription: Error, Sendable, CustomStringConvertible {
    var description: String
    init(_ error: any Error) { description = "\(error)" }
}
