extension WSProtocol {
    /// Something the application should know about, returned by ``WSProtocol/nextEvent()``.
    ///
    /// The large, once-per-connection cases are `indirect`, so an event costs no more to move
    /// than a fragment does.
    ///
    /// Payloads are `ArraySlice`s that share the engine's receive buffer: no copy is made to
    /// deliver them. Keep one past the next ``WSProtocol/receive(_:)`` and copy-on-write keeps it
    /// intact (at the cost of one copy of the buffer); wrap it in `Array(...)` to store it long.
    public enum Event: Hashable, Sendable {
        /// Server: a valid upgrade request arrived; answer with ``WSProtocol/accept(subprotocol:extensions:headers:)``
        /// or ``WSProtocol/reject(status:headers:body:)`` (RFC 6455 §4.2.2).
        indirect case upgradeRequested(WSUpgradeRequest)
        /// The opening handshake completed: the connection is open (both roles).
        indirect case opened(WSHandshakeResult)
        /// Client: the server answered with a status other than 101; ``closed(_:)`` follows.
        indirect case rejected(WSHandshakeRejection)
        /// The opening handshake failed: as a server, the error answer (400, 405, 408, 414, 426,
        /// 431) is already queued; as a client, the server's answer was invalid or late.
        /// ``closed(_:)`` follows.
        indirect case handshakeFailed(WSHandshakeError)
        /// A whole text message (``Delivery/wholeMessages``), validated as UTF-8.
        case text(String)
        /// A whole binary message (``Delivery/wholeMessages``).
        case binary(ArraySlice<UInt8>)
        /// A piece of a data message as it arrived (``Delivery/streaming``). The last piece of
        /// each message has ``WSFragment/isFinal`` set. Text pieces are validated UTF-8 so far,
        /// but a piece may end in the middle of a character.
        case fragment(WSFragment)
        /// A Ping was received; when ``Configuration/autoPong`` is on, the Pong is already queued.
        case ping(ArraySlice<UInt8>)
        /// A Pong was received.
        case pong(ArraySlice<UInt8>)
        /// The peer's Close frame. When ``Configuration/autoCloseReply`` is on, our reply is
        /// already queued; otherwise the application should finish and call ``WSProtocol/close(code:reason:)``.
        case closeReceived(WSCloseFrame)
        /// No data frame was sent or received for ``Configuration/idleTimeout``.
        case idleTimeout
        /// The peer broke the protocol. A Close frame with ``WSProtocolError/closeCode`` is
        /// queued and nothing more is read; ``closed(_:)`` follows.
        indirect case failed(WSProtocolError)
        /// The connection is over: the last event. Write any remaining outbound bytes, then
        /// close the transport.
        indirect case closed(CloseInfo)
    }

    /// How and why a connection ended (RFC 6455 §7.1.4–7.1.6).
    public struct CloseInfo: Hashable, Sendable, CustomStringConvertible {
        /// The WebSocket Connection Close Code (§7.1.5): the code of the first Close frame
        /// received, 1005 if that frame had none, 1006 if none was received.
        public var code: WSCloseCode
        /// The WebSocket Connection Close Reason (§7.1.6): the reason of the Close received, or empty.
        public var reason: String
        /// The Close frame we sent, if any.
        public var sent: WSCloseFrame?
        /// The Close frame we received, if any.
        public var received: WSCloseFrame?
        /// Who sent the first Close frame: `nil` if neither did (the transport just ended).
        public var initiator: Initiator?
        /// Whether both Close frames were exchanged (the closing handshake completed).
        public var wasClean: Bool
        /// Why the connection ended without (or after) the closing handshake, if it did not
        /// end normally.
        public var cause: Cause?

        /// Derives the close code, reason and cleanliness from the frames exchanged (RFC 6455 §7.1.5–7.1.6).
        public init(sent: WSCloseFrame?, received: WSCloseFrame?, initiator: Initiator?, cause: Cause?) {
            self.code = received?.effectiveCode ?? .abnormalClosure
            self.reason = received?.reason ?? ""
            self.sent = sent
            self.received = received
            self.initiator = initiator
            self.wasClean = sent != nil && received != nil
            self.cause = cause
        }

        public var description: String {
            var s = "\(code)\(reason.isEmpty ? "" : " \(reason)") \(wasClean ? "clean" : "unclean")"
            if let initiator { s += ", started by \(initiator)" }
            if let cause { s += ", \(cause)" }
            return s
        }
    }

    /// Which side started the closing handshake.
    public enum Initiator: Hashable, Sendable {
        case local
        case remote
    }

    /// Why a connection ended other than by a completed closing handshake followed by the
    /// transport closing.
    public enum Cause: Hashable, Sendable {
        /// The peer broke the protocol (reported first as ``Event/failed(_:)``).
        case protocolError(WSProtocolError)
        /// The transport ended (``WSProtocol/receiveEOF()``) before the closing handshake completed.
        case transportClosed
        /// No Pong arrived within ``Configuration/pingTimeout`` of a keepalive Ping.
        case keepaliveTimeout
        /// The peer's Close did not come within the timeout given to
        /// ``WSProtocol/close(code:reason:timeout:)`` (by default ``Configuration/closeTimeout``),
        /// or the end of the transport after the closing handshake not within
        /// ``Configuration/closeTimeout``.
        case closeTimeout
        /// The opening handshake failed (reported first as ``Event/handshakeFailed(_:)``).
        case handshakeFailed(WSHandshakeError)
        /// The opening handshake was refused with this HTTP status: by the server application
        /// (``WSProtocol/reject(status:headers:body:)``), or by the server we connected to
        /// (reported first as ``Event/rejected(_:)``).
        case handshakeRejected(status: Int)
    }

    /// Where the connection is in its lifecycle (see the table in WSProtocol.swift).
    public enum Lifecycle: Hashable, Sendable {
        /// The opening handshake is in progress (engines created with `init(client:)` or `init(server:)`).
        case connecting
        /// Both directions open.
        case open
        /// Our Close is sent; still receiving until the peer's Close arrives.
        case closeSent
        /// The peer's Close arrived and ours is not yet sent (``Configuration/autoCloseReply`` off).
        case closeReceived
        /// Close frames exchanged, or the connection failed: waiting for the transport to end.
        case closing
        /// Over.
        case closed
    }
}

/// A piece of a data message delivered in ``WSProtocol/Delivery/streaming`` mode.
public struct WSFragment: Hashable, Sendable {
    /// The kind of the message this piece belongs to.
    public var kind: WSMessageKind
    /// The bytes (shared with the receive buffer; see ``WSProtocol/Event``).
    public var data: ArraySlice<UInt8>
    /// Whether this piece ends the message.
    public var isFinal: Bool

    /// Creates a fragment (tests and transcripts build expected events this way).
    public init(kind: WSMessageKind, data: ArraySlice<UInt8>, isFinal: Bool) {
        self.kind = kind
        self.data = data
        self.isFinal = isFinal
    }
}

/// What an adapter must do next with the transport, returned by ``WSProtocol/nextOutbound()``.
public enum WSOutbound: Hashable, Sendable {
    /// Write these bytes, in order.
    case bytes([UInt8])
    /// All bytes are written: shut down the sending side of the transport (a TCP half-close)
    /// and keep feeding what still arrives until the peer closes or the engine is closed.
    case endOfStream
}
