// swift-tools-version:6.2
// libFuzzer harnesses for swift-ws. A separate package, so the root package's `swift build` and
// `swift test` never see them. Build and run with ./run.sh (see README in this folder).
import PackageDescription

let core: [Target.Dependency] = [.product(name: "WSCore", package: "swift-ws")]
let deflate: [Target.Dependency] = core + [.product(name: "WSDeflate", package: "swift-ws")]

let package = Package(
    name: "Fuzz",
    dependencies: [.package(name: "swift-ws", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: core + [.product(name: "WSTesting", package: "swift-ws"), .product(name: "WSDeflate", package: "swift-ws")]),
        .executableTarget(name: "FuzzFrameHeader", dependencies: core),
        .executableTarget(name: "FuzzUnmask", dependencies: core),
        .executableTarget(name: "FuzzUTF8", dependencies: core),
        .executableTarget(name: "FuzzProtocolServer", dependencies: ["FuzzSupport"]),
        .executableTarget(name: "FuzzProtocolClient", dependencies: ["FuzzSupport"]),
        .executableTarget(name: "FuzzHandshakeServer", dependencies: ["FuzzSupport"]),
        .executableTarget(name: "FuzzHandshakeClient", dependencies: ["FuzzSupport"]),
        .executableTarget(name: "FuzzDeflateInflate", dependencies: deflate + [
            .product(name: "CWSZlib", package: "swift-ws"), .product(name: "WSTesting", package: "swift-ws"),
        ]),
        .executableTarget(name: "FuzzExtensionHeader", dependencies: deflate),
        .executableTarget(name: "FuzzProxySettings", dependencies: [.product(name: "WSTransport", package: "swift-ws")]),
    ]
)
