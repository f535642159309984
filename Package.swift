// swift-tools-version:6.1
// Switchyard: a model-serving gateway. The target list reads in the order of a request's path:
// C shims → HTTP/2 front end → inference service → routing → worker pools → engine.
import CompilerPluginSupport
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "switchyard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchyard", targets: ["switchyard"]),
        .executable(name: "switchyard-echo-server", targets: ["switchyard-echo-server"]),
        .executable(name: "switchyard-load", targets: ["switchyard-load"]),
        // The request path's modules, for the fuzz harnesses: they live in their own package (Fuzz/), so that
        // nothing here is ever compiled with libFuzzer.
        .library(
            name: "SwitchyardLibraries",
            targets: [
                "SwitchyardCore", "SwitchyardProto", "SwitchyardHTTP2", "SwitchyardEngine", "SwitchyardWorkers",
                "SwitchyardModels", "SwitchyardInference",
            ]
        ),
        // HTTP/2 server connections driven from memory (no sockets), for the front end's tests and the fuzz
        // harness. Test support only: no executable links it.
        .library(name: "SwitchyardHTTP2TestSupport", targets: ["SwitchyardHTTP2TestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.29.0"),
        // OpenTelemetry: spans exported over OTLP/HTTP (protobuf) only, so no gRPC client stack is built.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.4.1"),
        // `@MemberwiseInit`'s implementation (SwitchyardMacros): public initialisers without hand-kept copies.
        .package(url: "https://github.com/swiftlang/swift-syntax", "600.0.0"..<"604.0.0"),
    ],
    targets: [
        // MARK: C libraries (module maps and tiny shims only)
        .systemLibrary(
            name: "CNghttp2",
            pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // nodejs http-parser (Debian's libhttp-parser-dev, no pkg-config file): the REST listener's HTTP/1.1 parser.
        .systemLibrary(name: "CHTTPParser", providers: [.apt(["libhttp-parser-dev"])]),
        // jansson (Debian's libjansson-dev): the REST binding's JSON parser for inference requests.
        .systemLibrary(name: "CJansson", pkgConfig: "jansson", providers: [.apt(["libjansson-dev"])]),
        // simdjson (Debian's libsimdjson-dev, C++) behind a C API: the REST binding's parser for inference requests.
        .target(name: "CSwitchyardJSON", linkerSettings: [.linkedLibrary("simdjson")]),
        .target(name: "CEpoll"),
        .target(
            name: "SwitchyardProto",
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),

        // MARK: The request path
        // `@MemberwiseInit`, a compiler plugin: the memberwise initialiser at the access level a type needs.
        .macro(
            name: "SwitchyardMacros",
            dependencies: [
                .product(name: "SwiftCompilerPlugin", package: "swift-syntax"),
                .product(name: "SwiftSyntax", package: "swift-syntax"),
                .product(name: "SwiftSyntaxBuilder", package: "swift-syntax"),
                .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
            ],
            swiftSettings: strict
        ),
        .target(name: "SwitchyardCore", dependencies: ["CEpoll", "SwitchyardMacros"], swiftSettings: strict),
        // TLS sessions over memory BIOs, shared by the server and the load generator.
        .target(name: "SwitchyardTLS", dependencies: ["COpenSSL"], swiftSettings: strict),
        .target(
            name: "SwitchyardHTTP2",
            dependencies: [
                "SwitchyardCore", "SwitchyardTLS", "CNghttp2", "CHTTPParser", "COpenSSL", "CZlib", "CEpoll",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Dense-layer micro-kernels (AVX-512, AVX2+FMA, portable), chosen at run time.
        .target(name: "CSwitchyardKernels"),
        .target(
            name: "SwitchyardEngine",
            dependencies: ["SwitchyardCore", "SwitchyardProto", "CSwitchyardKernels"],
            swiftSettings: strict
        ),
        // Engine benchmark: reference vs fused engine, GFLOP/s and allocations per batch (Benchmarks/Engine).
        .target(name: "CAllocationCounter", path: "Benchmarks/Engine/CAllocationCounter"),
        .executableTarget(
            name: "switchyard-engine-bench",
            dependencies: ["SwitchyardEngine", "SwitchyardCore", "CAllocationCounter"],
            path: "Benchmarks/Engine/Sources",
            swiftSettings: strict
        ),
        .target(
            name: "SwitchyardWorkers",
            dependencies: [
                "SwitchyardCore", "SwitchyardEngine",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SwitchyardModels",
            dependencies: [
                "SwitchyardCore", "SwitchyardEngine", "SwitchyardWorkers", "Yams",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Traffic policies (fixed, sticky canary, bandits, shadow) as pure state machines over snapshots.
        .target(name: "SwitchyardRouting", dependencies: ["SwitchyardCore"], swiftSettings: strict),
        // Shadow-vs-primary comparisons: online aggregates and rotated JSON Lines records.
        .target(
            name: "SwitchyardSink",
            dependencies: ["SwitchyardCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // Fleet mode: a small etcd v3 client (JSON gateway over AsyncHTTPClient) and the fleet's route store.
        .target(
            name: "SwitchyardCluster",
            dependencies: [
                "SwitchyardCore", "SwitchyardAdminAPI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Payload capture and online input/prediction drift, on the monitor's own thread.
        .target(
            name: "SwitchyardMonitor",
            dependencies: [
                "SwitchyardCore", "SwitchyardModels", "CSwitchyardDrift", "CSwitchyardJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
            ],
            swiftSettings: strict
        ),
        // W3C trace context in, OpenTelemetry spans out: the head-sampling decision per call, and the `sy-trace`
        // thread that turns finished calls' timings into spans for swift-otel's batch processor and OTLP exporter.
        .target(
            name: "SwitchyardTracing",
            dependencies: [
                "SwitchyardCore",
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The admin API's wire contract: Codable request and answer bodies shared by server, client and CLI.
        .target(name: "SwitchyardAdminAPI", dependencies: ["SwitchyardCore"], swiftSettings: strict),
        // Operator API on its own port: routes, models, shadow report, bandits, metrics; auth, audit, persistence.
        .target(
            name: "SwitchyardAdmin",
            dependencies: [
                "SwitchyardCore", "SwitchyardModels", "SwitchyardRouting", "SwitchyardSink", "SwitchyardWorkers",
                "SwitchyardCluster", "SwitchyardMonitor", "SwitchyardAdminAPI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Datatype ↔ FP32 conversion loops for the RPC edges (AVX2 + F16C, portable), chosen at run time.
        .target(name: "CSwitchyardConvert"),
        // The drift detector's binning kernel (AVX2 or portable, chosen at run time).
        .target(name: "CSwitchyardDrift"),
        .target(
            name: "SwitchyardInference",
            dependencies: [
                "SwitchyardCore", "SwitchyardProto", "SwitchyardHTTP2", "SwitchyardModels", "SwitchyardRouting",
                "SwitchyardSink", "SwitchyardMonitor", "CSwitchyardConvert", "CJansson", "CSwitchyardJSON",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The admin API's client, for the CLI and the load generator's scenario actions.
        .target(
            name: "SwitchyardAdminClient",
            dependencies: ["SwitchyardCore", "SwitchyardAdminAPI"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "switchyard",
            dependencies: [
                "SwitchyardCore", "SwitchyardEngine", "SwitchyardHTTP2", "SwitchyardInference", "SwitchyardModels",
                "SwitchyardRouting", "SwitchyardSink", "SwitchyardAdmin", "SwitchyardCluster", "SwitchyardMonitor",
                "SwitchyardAdminClient", "SwitchyardAdminAPI", "SwitchyardTracing", "Yams",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // MARK: Load generation (loadtest/): an open-loop HTTP/2 gRPC client with HDR histograms
        .target(
            name: "SwitchyardLoad",
            dependencies: [
                "SwitchyardCore", "SwitchyardTLS", "CNghttp2", "COpenSSL", "CEpoll", "CSwitchyardConvert", "Yams",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "switchyard-load",
            dependencies: [
                "SwitchyardLoad", "SwitchyardCore", "SwitchyardAdminClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        // MARK: Benchmarks
        .executableTarget(
            name: "switchyard-echo-server",
            dependencies: [
                "SwitchyardCore", "SwitchyardHTTP2",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/EchoServer",
            exclude: ["measure.sh", "README.md"],
            swiftSettings: strict
        ),

        .executableTarget(
            name: "switchyard-batcher-bench",
            dependencies: [
                "SwitchyardCore", "SwitchyardEngine", "SwitchyardWorkers",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Batcher",
            exclude: ["README.md"],
            swiftSettings: strict
        ),

        // Datatype ↔ FP32 conversion CPU per 784-value row on every path this CPU runs (Benchmarks/Convert).
        .executableTarget(
            name: "switchyard-convert-bench",
            dependencies: ["CSwitchyardConvert", "SwitchyardCore"],
            path: "Benchmarks/Convert",
            exclude: ["README.md"],
            swiftSettings: strict
        ),

        // Routing decision + sink bookkeeping CPU per call, and bandit regret (Benchmarks/Routing).
        .executableTarget(
            name: "switchyard-routing-bench",
            dependencies: [
                "SwitchyardCore", "SwitchyardModels", "SwitchyardRouting", "SwitchyardSink",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Routing",
            exclude: ["README.md"],
            swiftSettings: strict
        ),

        // Drift detection goals offline: detection delay and false alarms through the detector (Benchmarks/Drift).
        .executableTarget(
            name: "switchyard-drift-bench",
            dependencies: ["SwitchyardMonitor", "SwitchyardCore"],
            path: "Benchmarks/Drift",
            exclude: ["README.md"],
            swiftSettings: strict
        ),

        // MARK: Tests
        .testTarget(
            name: "SwitchyardMonitorTests",
            dependencies: ["SwitchyardMonitor", "SwitchyardCore", "SwitchyardModels"],
            exclude: ["Scripts"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchyardTracingTests",
            dependencies: [
                "SwitchyardTracing", "SwitchyardCore",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchyardRoutingTests",
            dependencies: ["SwitchyardRouting", "SwitchyardCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchyardSinkTests",
            dependencies: ["SwitchyardSink", "SwitchyardCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchyardAdminTests",
            dependencies: [
                "SwitchyardAdmin", "SwitchyardAdminAPI", "SwitchyardRouting", "SwitchyardCore", "SwitchyardModels",
                "SwitchyardSink", "SwitchyardEngine", "SwitchyardWorkers", "SwitchyardCluster",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchyardClusterTests",
            dependencies: ["SwitchyardCluster", "SwitchyardCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(name: "SwitchyardCoreTests", dependencies: ["SwitchyardCore"], swiftSettings: strict),
        .testTarget(
            name: "SwitchyardMacrosTests",
            dependencies: [
                "SwitchyardMacros",
                .product(name: "SwiftSyntaxMacrosGenericTestSupport", package: "swift-syntax"),
                .product(name: "SwiftSyntaxMacroExpansion", package: "swift-syntax"),
                .product(name: "SwiftSyntax", package: "swift-syntax"),
                .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SwitchyardHTTP2TestSupport",
            dependencies: [
                "SwitchyardHTTP2", "SwitchyardCore", "CNghttp2", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/SwitchyardHTTP2TestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchyardHTTP2Tests",
            dependencies: [
                "SwitchyardHTTP2", "SwitchyardHTTP2TestSupport", "SwitchyardCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Clients"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchyardEngineTests",
            dependencies: ["SwitchyardEngine", "SwitchyardCore"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchyardWorkersTests",
            dependencies: [
                "SwitchyardWorkers", "SwitchyardEngine", "SwitchyardCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchyardModelsTests",
            dependencies: [
                "SwitchyardModels", "SwitchyardWorkers", "SwitchyardEngine", "SwitchyardCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchyardInferenceTests",
            dependencies: [
                "SwitchyardInference", "SwitchyardModels", "SwitchyardWorkers", "SwitchyardCore", "CSwitchyardConvert",
                "SwitchyardEngine", "SwitchyardHTTP2", "SwitchyardProto", "SwitchyardRouting", "SwitchyardSink",
                "CJansson",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SwitchyardLoadTests",
            dependencies: [
                "SwitchyardLoad", "SwitchyardHTTP2", "SwitchyardCore", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
    ],
    cxxLanguageStandard: .cxx17
)
