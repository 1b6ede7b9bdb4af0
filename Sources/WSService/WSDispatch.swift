// Custom dispatch (Ballerina spec §3.2.2): a JSON message's `dispatcherKey` field picks the
// handler. The table is built from method references, so every handler's message type and
// reply type are checked by the compiler; names follow Ballerina's rule ("un subscribe" →
// `onUnSubscribe`).

import FoundationEssentials

/// A service whose JSON messages are dispatched by the value of a field (Ballerina's custom
/// remote functions), with ``WSServiceConfiguration/dispatcherKey`` set when attached.
///
/// ```swift
/// struct Events: WSDispatchingService {
///     static let dispatchTable = WSDispatchTable<Events>()
///         .on("onHeartbeat", Events.onHeartbeat)
///         .on("onSubscribe", Events.onSubscribe, onError: Events.onSubscribeError)
///     func onHeartbeat(_ caller: WSCaller, _ beat: Heartbeat) async -> Alive { Alive() }
///     …
/// }
/// ```
///
/// A message whose key names a handler is bound to that handler's message type (as JSON) and
/// the handler's return value is sent back (as ``WSTextService`` replies; with
/// ``WSServiceConfiguration/dispatcherStreamId`` the request's id is added to a JSON object
/// reply). If it does not bind, the handler's error handler gets the error and the connection
/// stays open; without one, ``WSService/onError(_:error:)`` gets it and the connection closes
/// with 1003. A message without the key, or whose key names no handler, goes to
/// `onMessage` (``WSMessageService``), else to `onTextMessage`/`onBinaryMessage`, else is
/// ignored.
public protocol WSDispatchingService: WSService {
    /// The handlers, by Ballerina's remote function name.
    static var dispatchTable: WSDispatchTable<Self> { get }
}

/// The handlers of a ``WSDispatchingService``, each registered under its Ballerina name
/// (`onHeartbeat` for messages whose key is `"heartbeat"`).
public struct WSDispatchTable<Service: WSService>: Sendable {
    struct Entry: Sendable {
        var handle: @Sendable (Service, WSCaller, Payload, _ validate: Bool) async throws -> Outgoing?
        var onError: (@Sendable (Service, WSCaller, WSServiceError) async throws -> Outgoing?)?
    }

    var entries: [String: Entry] = [:]
    /// The first registration problem (reported by `attach`).
    var problem: String?

    /// An empty table.
    public init() {}

    /// Registers `handler` as the remote function `name` (`"onHeartbeat"`): messages whose
    /// dispatcher key maps to that name (``handlerName(forKey:)``) are bound to `Message` and
    /// passed to it; its return value is sent back.
    public func on<Message: Decodable & Sendable, Reply: Sendable>(
        _ name: String,
        _ handler: @escaping @Sendable (Service) -> (WSCaller, Message) async throws -> Reply
    ) -> Self {
        register(name, handler, onError: nil)
    }

    /// Registers `handler` as above, with the error handler Ballerina would call `name + "Error"`
    /// (`onHeartbeatError`): it receives the binding failure instead of `onError`, the
    /// connection stays open, and its return value is sent back.
    public func on<Message: Decodable & Sendable, Reply: Sendable, ErrorReply: Sendable>(
        _ name: String,
        _ handler: @escaping @Sendable (Service) -> (WSCaller, Message) async throws -> Reply,
        onError: @escaping @Sendable (Service) -> (WSCaller, WSServiceError) async throws -> ErrorReply
    ) -> Self {
        var errorEntry: (@Sendable (Service, WSCaller, WSServiceError) async throws -> Outgoing?)?
        var copy = self
        do throws(WSServiceConfigurationError) {
            let reply = try ReplyEncoder<ErrorReply>(of: name + "Error")
            errorEntry = { service, caller, error in try reply.encode(try await onError(service)(caller, error)) }
        } catch {
            copy.problem = copy.problem ?? error.message
        }
        return copy.register(name, handler, onError: errorEntry)
    }

    private func register<Message: Decodable & Sendable, Reply: Sendable>(
        _ name: String,
        _ handler: @escaping @Sendable (Service) -> (WSCaller, Message) async throws -> Reply,
        onError: (@Sendable (Service, WSCaller, WSServiceError) async throws -> Outgoing?)?
    ) -> Self {
        var copy = self
        guard Self.isHandlerName(name) else {
            copy.problem = copy.problem ?? "\"\(name)\" is not a handler name: it must be \"on\" followed by a capitalised name, such as onHeartbeat"
            return copy
        }
        do throws(WSServiceConfigurationError) {
            let reply = try ReplyEncoder<Reply>(of: name)
            copy.entries[name] = Entry(handle: { service, caller, payload, validate in
                let message = try bind(payload, to: Message.self, validate: validate)
                return try reply.encode(try await handler(service)(caller, message))
            }, onError: onError)
        } catch {
            copy.problem = copy.problem ?? error.message
        }
        return copy
    }

    /// The remote function a dispatcher key's value goes to (Ballerina's rule): spaces and
    /// underscores removed with the letter after each capitalised, the first letter
    /// capitalised, `on` in front. `"heartbeat"` → `onHeartbeat`, `"un subscribe"` →
    /// `onUnSubscribe`.
    public static func handlerName(forKey key: String) -> String { dispatchHandlerName(forKey: key) }

    /// The handler for a message parsed as a JSON object, if its `key` names one.
    func entry(for object: [String: WSJSON], key: String) -> Entry? {
        guard case .string(let value)? = object[key] else { return nil }
        return entries[dispatchHandlerName(forKey: value)]
    }

    static func isHandlerName(_ name: String) -> Bool {
        name.hasPrefix("on") && name.count > 2 && name.dropFirst(2).first!.isUppercase
    }
}

/// Ballerina's rule from a dispatcher key's value to a remote function name.
func dispatchHandlerName(forKey key: String) -> String {
    var name = "on"
    var capitalizeNext = true
    for ch in key {
        if ch == " " || ch == "_" {
            capitalizeNext = true
        } else if capitalizeNext {
            name += ch.uppercased()
            capitalizeNext = false
        } else {
            name.append(ch)
        }
    }
    return name
}

/// Any JSON value (Ballerina's `json`): a message type for handlers that take whatever
/// arrives, and how the dispatcher reads a message's key and id.
public enum WSJSON: Hashable, Sendable, Codable {
    case null
    case bool(Bool)
    /// A number written without fraction or exponent that fits an `Int`.
    case integer(Int)
    case number(Double)
    case string(String)
    case array([WSJSON])
    case object([String: WSJSON])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .integer(i) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([WSJSON].self) { self = .array(a) }
        else { self = .object(try c.decode([String: WSJSON].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .integer(let i): try c.encode(i)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

/// Adds `"key": value` to a reply that is a JSON object without that key (the stream id of
/// the request it answers); other replies are returned as they are.
func addingStreamID(_ reply: Outgoing, key: String, value: WSJSON) -> Outgoing {
    guard case .text(let text) = reply,
          let object = try? JSONDecoder().decode([String: WSJSON].self, from: Data(text.utf8)),
          object[key] == nil,
          let close = text.lastIndex(of: "}"),
          let pair = try? jsonText(key) + ":" + jsonText(value)
    else { return reply }
    let separator = object.isEmpty ? "" : ","
    return .text(String(text[..<close]) + separator + pair + String(text[close...]))
}
