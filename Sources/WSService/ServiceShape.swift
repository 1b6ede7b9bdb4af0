// What a service type can do, learnt once when it is attached: an object per capability that
// calls the method on the service's own type (no casts, closures or existentials per message),
// and how each reply type is sent.

import FoundationEssentials
import WSBinding
import WSCore

/// A message to send back.
typealias Outgoing = WSPayload

/// A received data message, as the service layer holds it.
typealias Payload = WSPayload

/// A message that did not bind (or did not validate).
struct BindingFailure: Error {
    var error: WSServiceError
}

/// The capabilities of the service type `S`: one object per capability it has, each a
/// subclass made for `S`'s conformance (a virtual call per message, nothing more).
final class ServiceShape<S: WSService>: Sendable {
    let typeName: String
    let onText: TextCall<S>?
    let onBinary: BinaryCall<S>?
    let onMessage: MessageCall<S>?
    let onPing: PingCall<S>?
    let onPong: PongCall<S>?
    let dispatch: WSDispatchTable<S>?

    /// Learns `S`'s capabilities. Throws for a service that cannot work: `onMessage` beside
    /// `onTextMessage`/`onBinaryMessage`, a reply type that cannot be sent, a dispatch table
    /// with a bad handler name.
    init() throws(WSServiceConfigurationError) {
        typeName = String(reflecting: S.self)
        // Each capability object is made for the opened conformance and is, at run time, the
        // same type as the `…Call<S>` it is stored as.
        var made: Any?
        if let t = S.self as? any WSTextService.Type { made = try makeTextCall(t) }
        onText = made as! TextCall<S>?
        made = nil
        if let t = S.self as? any WSBinaryService.Type { made = try makeBinaryCall(t) }
        onBinary = made as! BinaryCall<S>?
        made = nil
        if let t = S.self as? any WSMessageService.Type { made = try makeMessageCall(t) }
        onMessage = made as! MessageCall<S>?
        made = nil
        if let t = S.self as? any WSPingService.Type { made = try makePingCall(t) }
        onPing = made as! PingCall<S>?
        made = nil
        if let t = S.self as? any WSPongService.Type { made = makePongCall(t) }
        onPong = made as! PongCall<S>?
        made = nil
        if let t = S.self as? any WSDispatchingService.Type { made = dispatchTable(of: t) }
        dispatch = made as! WSDispatchTable<S>?
        if let problem = dispatch?.problem { throw WSServiceConfigurationError("\(typeName).dispatchTable: \(problem)") }
        if onMessage != nil && (onText != nil || onBinary != nil) {
            throw WSServiceConfigurationError(
                "\(typeName) has onMessage together with onTextMessage or onBinaryMessage: a data-bound onMessage receives every message, so it cannot be combined with them")
        }
    }
}

// Each makes the capability object for a conformance opened from `S.self` (returned as `Any`:
// a result typed by the opened type could not leave the opening).
private func makeTextCall<T: WSTextService>(_: T.Type) throws(WSServiceConfigurationError) -> Any {
    TextCallOf<T>(reply: try ReplyEncoder(of: "onTextMessage"))
}
private func makeBinaryCall<T: WSBinaryService>(_: T.Type) throws(WSServiceConfigurationError) -> Any {
    BinaryCallOf<T>(reply: try ReplyEncoder(of: "onBinaryMessage"))
}
private func makeMessageCall<T: WSMessageService>(_: T.Type) throws(WSServiceConfigurationError) -> Any {
    MessageCallOf<T>(reply: try ReplyEncoder(of: "onMessage"))
}
private func makePingCall<T: WSPingService>(_: T.Type) throws(WSServiceConfigurationError) -> Any {
    PingCallOf<T>(reply: try ReplyEncoder(of: "onPing"))
}
private func makePongCall<T: WSPongService>(_: T.Type) -> Any { PongCallOf<T>() }
private func dispatchTable<T: WSDispatchingService>(of _: T.Type) -> Any { T.dispatchTable }

// MARK: Capabilities

// The base classes are what a connection of `S` holds; the `…Of` subclasses know the
// conformance. Their methods run on the caller's executor (the connection's loop).

class TextCall<S: WSService>: @unchecked Sendable {
    init() {}
    func call(_ service: S, _ caller: WSCaller, _ text: String) async throws -> Outgoing? { fatalError("abstract") }
    /// Serves `first` and the text messages right behind it in `connection`'s queue, each a
    /// direct call of the service's method and a send (the runner's hot path: one call into
    /// this object per run of messages, not per message), parking between bursts. Returns the
    /// item that ended the run, or nil when the runner was told to end.
    func serve(_ connection: ServiceConnection<S>, _ first: String) async -> ServiceConnectionBase.Item? { fatalError("abstract") }
}

final class TextCallOf<S: WSTextService>: TextCall<S>, @unchecked Sendable {
    let reply: ReplyEncoder<S.TextReply>
    init(reply: ReplyEncoder<S.TextReply>) { self.reply = reply }
    override func call(_ service: S, _ caller: WSCaller, _ text: String) async throws -> Outgoing? {
        try reply.encode(try await service.onTextMessage(caller, text: text))
    }
    override func serve(_ c: ServiceConnection<S>, _ first: String) async -> ServiceConnectionBase.Item? {
        let caller = c.caller
        var text = first
        while true {
            do {
                if let out = try reply.encode(try await c.service.onTextMessage(caller, text: text)) {
                    if !c.canWrite { await c.waitUntilWritable() }
                    try c.sendNow(out)
                }
            } catch {
                await c.fail(error, in: "onTextMessage")
            }
            var item = c.next()
            if item == nil {
                // Parks here, not in the runner: one `async` return less per burst. (The
                // reference is `withUnsafeContinuation`, whose isolation parameter costs a
                // hop to the generic executor and back per burst; we are on the loop already,
                // and the continuation is resumed there.)
                guard await _unsafeInheritExecutor_withUnsafeContinuation({ c.park($0) }) else { return nil }
                item = c.next()
            }
            switch item {
            case nil: return nil
            case .smallText(let range) where !c.failing: text = c.arenaText(range)
            case .text(let t) where !c.failing: text = t
            default: return item
            }
        }
    }
}

class BinaryCall<S: WSService>: @unchecked Sendable {
    init() {}
    func call(_ service: S, _ caller: WSCaller, _ data: [UInt8]) async throws -> Outgoing? { fatalError("abstract") }
    /// As ``TextCall/serve(_:_:)``, for binary messages.
    func serve(_ connection: ServiceConnection<S>, _ first: [UInt8]) async -> ServiceConnectionBase.Item? { fatalError("abstract") }
}

final class BinaryCallOf<S: WSBinaryService>: BinaryCall<S>, @unchecked Sendable {
    let reply: ReplyEncoder<S.BinaryReply>
    init(reply: ReplyEncoder<S.BinaryReply>) { self.reply = reply }
    override func call(_ service: S, _ caller: WSCaller, _ data: [UInt8]) async throws -> Outgoing? {
        try reply.encode(try await service.onBinaryMessage(caller, data: data))
    }
    override func serve(_ c: ServiceConnection<S>, _ first: [UInt8]) async -> ServiceConnectionBase.Item? {
        let caller = c.caller
        var data = first
        while true {
            do {
                if let out = try reply.encode(try await c.service.onBinaryMessage(caller, data: data)) {
                    if !c.canWrite { await c.waitUntilWritable() }
                    try c.sendNow(out)
                }
            } catch {
                await c.fail(error, in: "onBinaryMessage")
            }
            var item = c.next()
            if item == nil {
                // Parks here, not in the runner: one `async` return less per burst. (The
                // reference is `withUnsafeContinuation`, whose isolation parameter costs a
                // hop to the generic executor and back per burst; we are on the loop already,
                // and the continuation is resumed there.)
                guard await _unsafeInheritExecutor_withUnsafeContinuation({ c.park($0) }) else { return nil }
                item = c.next()
            }
            switch item {
            case nil: return nil
            case .smallBinary(let range) where !c.failing: data = c.arenaBytes(range)
            case .binary(let b) where !c.failing: data = b
            default: return item
            }
        }
    }
}

class MessageCall<S: WSService>: @unchecked Sendable {
    init() {}
    /// Binds (throwing ``BindingFailure``), then calls.
    func call(_ service: S, _ caller: WSCaller, _ payload: Payload, validate: Bool) async throws -> Outgoing? { fatalError("abstract") }
}

final class MessageCallOf<S: WSMessageService>: MessageCall<S>, @unchecked Sendable {
    let reply: ReplyEncoder<S.MessageReply>
    init(reply: ReplyEncoder<S.MessageReply>) { self.reply = reply }
    override func call(_ service: S, _ caller: WSCaller, _ payload: Payload, validate: Bool) async throws -> Outgoing? {
        let message = try bind(payload, to: S.Message.self, validate: validate)
        return try reply.encode(try await service.onMessage(caller, message: message))
    }
}

class PingCall<S: WSService>: @unchecked Sendable {
    init() {}
    /// The Pong's payload, if one is to be sent.
    func call(_ service: S, _ caller: WSCaller, _ data: [UInt8]) async throws -> [UInt8]? { fatalError("abstract") }
}

final class PingCallOf<S: WSPingService>: PingCall<S>, @unchecked Sendable {
    let reply: ReplyEncoder<S.PingReply>
    init(reply: ReplyEncoder<S.PingReply>) { self.reply = reply }
    override func call(_ service: S, _ caller: WSCaller, _ data: [UInt8]) async throws -> [UInt8]? {
        try reply.encode(try await service.onPing(caller, data: data))?.bytes
    }
}

class PongCall<S: WSService>: @unchecked Sendable {
    init() {}
    func call(_ service: S, _ caller: WSCaller, _ data: [UInt8]) async throws { fatalError("abstract") }
}

final class PongCallOf<S: WSPongService>: PongCall<S>, @unchecked Sendable {
    override func call(_ service: S, _ caller: WSCaller, _ data: [UInt8]) async throws {
        try await service.onPong(caller, data: data)
    }
}

// MARK: Replies

/// How a callback's return value of type `R` is sent, decided once per type: `String` as
/// text, `[UInt8]` as binary, `Void` as nothing, an `Optional` as its value or nothing, any
/// other `Encodable` as JSON text.
struct ReplyEncoder<R>: Sendable {
    enum Kind { case none, text, binary, dynamic }
    let kind: Kind

    init(of method: String) throws(WSServiceConfigurationError) {
        if R.self == Void.self {
            kind = .none
        } else if R.self == String.self {
            kind = .text
        } else if R.self == [UInt8].self {
            kind = .binary
        } else if R.self is any OptionalReply.Type || R.self is any Encodable.Type {
            kind = .dynamic
        } else {
            throw WSServiceConfigurationError(
                "\(method) returns \(R.self), which cannot be sent: return String (text), [UInt8] (binary), an Encodable (JSON text), an Optional of these, or nothing")
        }
    }

    @inline(__always)
    func encode(_ value: R) throws -> Outgoing? {
        switch kind {
        case .none: nil
        case .text: .text(reinterpret(value, as: String.self))
        case .binary: .binary(reinterpret(value, as: [UInt8].self))
        case .dynamic: try encodeReply(value)
        }
    }
}

/// The reply for a value known only at run time (an Optional's content, an `Encodable`).
func encodeReply(_ value: Any) throws -> Outgoing? {
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

// MARK: Binding

/// Binds a message to `M` (``wsBind(_:to:validate:)``); a failure closes with 1003.
func bind<M: Decodable>(_ payload: Payload, to type: M.Type, validate: Bool) throws(BindingFailure) -> M {
    do {
        return try wsBind(payload, to: type, validate: validate)
    } catch {
        throw BindingFailure(error: WSServiceError(error.isValidation ? .payloadValidation : .payloadBinding, error.message,
                                                   closeCode: .unsupportedData, underlying: error.underlying))
    }
}

/// An error kept by its description.
typealias SendableDescription = WSErrorDescription

/// JSON text for a reply (``wsJSONText(_:)``).
func jsonText(_ value: some Encodable) throws -> String { try wsJSONText(value) }
