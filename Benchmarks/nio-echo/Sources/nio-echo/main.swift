// SwiftNIO NIOWebSocket echo server (ChannelHandler), the in-run baseline for swift-ws benchmarks.
import NIOCore
import NIOPosix
import NIOHTTP1
import NIOWebSocket

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    private var buffer: ByteBuffer? = nil
    private var opcode: WebSocketOpcode = .binary

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            var d = frame.unmaskedData
            if frame.fin && buffer == nil {
                context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: frame.opcode, data: d)), promise: nil)
            } else {
                if buffer == nil { buffer = context.channel.allocator.buffer(capacity: d.readableBytes); opcode = frame.opcode }
                buffer!.writeBuffer(&d)
                if frame.fin { let b = buffer!; buffer = nil
                    context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: opcode, data: b)), promise: nil) }
            }
        case .continuation:
            var d = frame.unmaskedData
            buffer?.writeBuffer(&d)
            if frame.fin, let b = buffer { buffer = nil
                context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: opcode, data: b)), promise: nil) }
        case .ping:
            context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: frame.unmaskedData))).whenComplete { _ in context.close(promise: nil) }
        default: break
        }
    }
    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
}

let port = Int(CommandLine.arguments.dropFirst().first ?? "9101") ?? 9101
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let upgrader = NIOWebSocketServerUpgrader(maxFrameSize: 16 << 20, shouldUpgrade: { ch, _ in ch.eventLoop.makeSucceededFuture([:]) },
    upgradePipelineHandler: { ch, _ in ch.pipeline.addHandler(EchoHandler()) })
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(ChannelOptions.backlog, value: 1024)
    .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { ch in
        ch.pipeline.configureHTTPServerPipeline(withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
    }
let ch = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
print("nio-echo listening on \(ch.localAddress!)")
try ch.closeFuture.wait()
