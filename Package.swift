// swift-tools-version:6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "swift-ws",
    products: [
        .library(name: "WSCore", targets: ["WSCore"]),
        .library(name: "WSDeflate", targets: ["WSDeflate"]),
        // zlib's module, for the fuzz package's reference inflater and benchmarks' baselines.
        .library(name: "CWSZlib", targets: ["CWSZlib"]),
        .library(name: "WSTesting", targets: ["WSTesting"]),
        .library(name: "WSTransport", targets: ["WSTransport"]),
        .library(name: "WSBlocking", targets: ["WSBlocking"]),
        .library(name: "WSEpoll", targets: ["WSEpoll"]),
        .library(name: "WSService", targets: ["WSService"]),
        .library(name: "WSServiceTesting", targets: ["WSServiceTesting"]),
        .library(name: "WSClient", targets: ["WSClient"]),
        .executable(name: "wsx", targets: ["wsx"]),
        .executable(name: "service-tour", targets: ["service-tour"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // Runtime-dispatched AVX2 kernels for WSCore's fast paths (Swift has no per-function
        // target features); WSCore falls back to its portable Swift kernels without AVX2.
        .target(name: "CWSFastPaths"),
        // The sans-I/O engine: no I/O, no clock, no randomness, no threads. HTTPTypes is the
        // currency type for handshake heads.
        .target(
            name: "WSCore",
            dependencies: ["CWSFastPaths", .product(name: "HTTPTypes", package: "swift-http-types")],
            swiftSettings: strict + [.strictMemorySafety()]
        ),
        // System zlib (apt: zlib1g-dev), for permessage-deflate.
        .systemLibrary(name: "CWSZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // permessage-deflate (RFC 7692): negotiation and the per-connection transform, plugged
        // into WSCore's extension interface. WSCore itself stays free of zlib.
        .target(
            name: "WSDeflate",
            dependencies: ["WSCore", "CWSZlib"],
            swiftSettings: strict + [.strictMemorySafety()]
        ),
        // System OpenSSL (apt: libssl-dev), for TLS (wss://).
        .systemLibrary(name: "CWSOpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // POSIX socket helpers, the TLS session (memory BIOs: bytes in, bytes out) and the
        // transport error type, shared by the adapters.
        .target(name: "CWSSystem"),
        .target(name: "WSTransport", dependencies: ["WSCore", "CWSSystem", "CWSOpenSSL"], swiftSettings: strict),
        // Adapter: one blocking socket drives one engine (clients, simple servers, tests).
        .target(name: "WSBlocking", dependencies: ["WSCore", "WSDeflate", "WSTransport"], swiftSettings: strict),
        // Adapter: the epoll reactor (one loop per core) for servers.
        .target(name: "WSEpoll", dependencies: ["WSCore", "WSDeflate", "WSTransport", "CWSSystem", .product(name: "HTTPTypes", package: "swift-http-types")], swiftSettings: strict),
        // Data binding shared by the service layer and the client (Ballerina's rules).
        .target(name: "WSBinding", swiftSettings: strict),
        // The listener/service layer (Ballerina's Listener, UpgradeService, Service, Caller),
        // async callbacks run on the epoll loops.
        .target(
            name: "WSService",
            dependencies: [
                "WSCore", "WSDeflate", "WSTransport", "WSEpoll", "WSBinding",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict + [.enableUpcomingFeature("NonisolatedNonsendingByDefault")]
        ),
        // The client (Ballerina's websocket:Client): async on the epoll client loops, and a
        // blocking twin with the same methods; retry, redirects, proxies, data binding.
        .target(
            name: "WSClient",
            dependencies: [
                "WSCore", "WSDeflate", "WSTransport", "WSEpoll", "WSBlocking", "WSBinding",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict + [.enableUpcomingFeature("NonisolatedNonsendingByDefault")]
        ),
        // Testing services without a network: in-memory connection pairs through the same
        // loops and runtime (separate from WSTesting so that the fuzz harnesses, which use
        // WSTesting, do not build the service layer's dependencies).
        .target(
            name: "WSServiceTesting",
            dependencies: [
                "WSCore", "WSDeflate", "WSTransport", "WSEpoll", "WSService",
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strict
        ),
        // The in-memory test adapter: connection pairs and the fixture transcript runner.
        .target(
            name: "WSTesting",
            dependencies: ["WSCore", "WSDeflate", .product(name: "HTTPTypes", package: "swift-http-types")],
            swiftSettings: strict
        ),
        // Command-line tool: demo and benchmarks (servers and clients join with the adapters).
        .executableTarget(
            name: "wsx",
            dependencies: [
                "WSCore", "WSDeflate", "WSTesting", "CWSZlib", "CWSSystem", "WSEpoll", "WSBlocking", "WSTransport", "WSService", "WSClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The service tour: every service-layer feature on one listener (README, "Services"):
        // the services (also tested by WSServiceTests) and the executable that serves them.
        .target(name: "ServiceTour", dependencies: ["WSCore", "WSService"], path: "Examples/ServiceTour/Services", swiftSettings: strict),
        .executableTarget(
            name: "service-tour",
            dependencies: [
                "ServiceTour", "WSService",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Examples/ServiceTour/Main",
            swiftSettings: strict
        ),
        .testTarget(
            name: "WSCoreTests",
            dependencies: ["WSCore", "WSDeflate", "WSTesting", "CWSZlib", .product(name: "HTTPTypes", package: "swift-http-types")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WSAdapterTests",
            dependencies: ["WSCore", "WSTransport", "WSBlocking", "WSEpoll", "WSDeflate"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WSServiceTests",
            dependencies: [
                "WSCore", "WSService", "WSServiceTesting", "ServiceTour",
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WSClientTests",
            dependencies: [
                "WSCore", "WSClient", "WSTransport", "WSEpoll",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WSTestingTests",
            dependencies: ["WSCore", "WSTesting", .product(name: "HTTPTypes", package: "swift-http-types")],
            swiftSettings: strict
        ),
    ]
)
