public import WSCore

/// One service's settings (Ballerina's `websocket:ServiceConfig`), given to
/// ``WSListener/attach(_:at:configuration:)``.
public struct WSServiceConfiguration: Sendable {
    /// The subprotocols this service speaks, most preferred first: the first of these that the
    /// client offered is chosen; none (or no match) opens without a subprotocol. Default none.
    public var subprotocols: [String] = []
    /// After this long without a data frame either way, ``WSService/onIdleTimeout(_:)`` runs
    /// (then again after each further period). nil (the default, Ballerina's 0) never.
    public var idleTimeout: Duration? = nil
    /// The largest frame accepted, in bytes; a larger one closes with 1009. nil (the default)
    /// follows ``maxMessageSize``: browsers, python-websockets, node `ws` and aiohttp send a
    /// message as one frame, and Ballerina's 65536-byte frame default refuses their 100 KB
    /// messages.
    public var maxFrameSize: Int? = nil
    /// The largest message accepted (also after decompression), in bytes; a larger one closes
    /// with 1009. Default 1 MiB (python-websockets' default): the inbound memory one
    /// connection can pin.
    public var maxMessageSize: Int = 1 << 20
    /// Use permessage-deflate on this service's connections when the listener offers it and
    /// the client asks. Default on. Turn it off for payloads that do not compress, for secrets
    /// sent beside attacker-chosen data (the CRIME/BREACH side channel), or to make
    /// ``maxFrameSize`` count uncompressed bytes: a frame limit applies to the payload on the
    /// wire (as in Netty, behind Ballerina), which compression shrinks.
    public var compression: Bool = true
    /// Validate bound messages that adopt ``WSValidatable`` (Ballerina's `validation`).
    /// Default on.
    public var validation: Bool = true
    /// Custom dispatch (Ballerina's `dispatcherKey`): the JSON field whose value picks the
    /// handler of a ``WSDispatchingService`` (`"heartbeat"` → `onHeartbeat`). nil: none.
    public var dispatcherKey: String? = nil
    /// The JSON field carrying a request id (Ballerina's `dispatcherStreamId`): copied from a
    /// dispatched request into the JSON object its handler returns. nil: none.
    public var dispatcherStreamId: String? = nil
    /// Where authentication plugs in: runs before the upgrade service for every request at
    /// this path; throwing ``WSUpgradeError`` refuses the upgrade with its answer (any other
    /// error: 500). nil (the default): no check.
    public var authenticate: (@Sendable (WSUpgradeRequest) async throws -> Void)? = nil
    /// Inbound bytes queued for a busy callback beyond which the connection stops reading
    /// (the peer is slowed down by TCP). Default 1 MiB.
    public var inboundHighWaterMark: Int = 1 << 20
    /// Reading resumes when the queue falls to this many bytes. Default 256 KiB.
    public var inboundLowWaterMark: Int = 256 << 10

    /// The defaults described on each field.
    public init(subprotocols: [String] = [], idleTimeout: Duration? = nil, maxFrameSize: Int? = nil,
                maxMessageSize: Int = 1 << 20, compression: Bool = true, dispatcherKey: String? = nil, dispatcherStreamId: String? = nil) {
        self.compression = compression
        self.subprotocols = subprotocols
        self.idleTimeout = idleTimeout
        self.maxFrameSize = maxFrameSize
        self.maxMessageSize = maxMessageSize
        self.dispatcherKey = dispatcherKey
        self.dispatcherStreamId = dispatcherStreamId
    }

    /// Checks the fields.
    public func validate() throws(WSServiceConfigurationError) {
        func require(_ ok: Bool, _ why: String) throws(WSServiceConfigurationError) {
            if !ok { throw WSServiceConfigurationError(why) }
        }
        try require(maxMessageSize > 0, "maxMessageSize must be positive")
        try require(maxFrameSize.map { $0 > 0 } ?? true, "maxFrameSize must be positive")
        try require(idleTimeout.map { $0 > .zero } ?? true, "idleTimeout must be positive")
        try require(inboundLowWaterMark >= 0 && inboundLowWaterMark < inboundHighWaterMark,
                    "inboundLowWaterMark must be at least 0 and below inboundHighWaterMark")
        try require(dispatcherKey.map { !$0.isEmpty } ?? true, "dispatcherKey must not be empty")
        try require(dispatcherStreamId.map { !$0.isEmpty } ?? true, "dispatcherStreamId must not be empty")
    }

    /// The engine configuration of a connection of this service: the listener's, with this
    /// service's limits and idle timeout, and no automatic Pong when the service has `onPing`.
    func engineConfiguration(base: WSProtocol.Configuration, autoPong: Bool) -> WSProtocol.Configuration {
        var c = base
        c.maxMessageSize = maxMessageSize
        c.maxFrameSize = maxFrameSize ?? maxMessageSize
        c.maxDecompressedSize = nil
        c.idleTimeout = idleTimeout
        c.autoPong = autoPong
        c.delivery = .wholeMessages
        return c
    }
}
