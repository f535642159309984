// swift-tools-version:6.1
// libFuzzer harnesses for Switchyard's untrusted-input paths, one executable per target. A package of its own
// so that the gateway's own build never links libFuzzer; build and run them with scripts/fuzz.sh
// (docs/fuzzing.md). Each harness is built with `-sanitize=fuzzer,address` and `-enable-testing` (the harnesses
// reach internal types through `@testable import`).
import PackageDescription

let harness: [SwiftSetting] = [
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
    // libFuzzer supplies `main`; the harness only exports `LLVMFuzzerTestOneInput`.
    .unsafeFlags(["-parse-as-library"]),
]

let switchyard: Target.Dependency = .product(name: "SwitchyardLibraries", package: "switchyard")
let driver: Target.Dependency = "CFuzzerDriver"

let package = Package(
    name: "switchyard-fuzz",
    dependencies: [
        .package(name: "switchyard", path: ".."),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // Declares libFuzzer's driver entry for the harnesses' `main`.
        .target(name: "CFuzzerDriver"),
        // gRPC length-prefixed deframing across chunk splits, gzip/deflate inflation with its size limit.
        .executableTarget(name: "fuzz-grpc-deframer", dependencies: [driver, switchyard], swiftSettings: harness),
        // ModelInferRequest bytes → protobuf-c decode → validation against the digits model → engine → response.
        .executableTarget(
            name: "fuzz-infer-request",
            dependencies: [driver, switchyard, .product(name: "Logging", package: "swift-log")],
            swiftSettings: harness
        ),
        // Bytes after the client preface into an in-memory nghttp2 server connection (the main package's
        // SwitchyardHTTP2TestSupport driver, shared with the front end's tests).
        .executableTarget(
            name: "fuzz-h2-connection",
            dependencies: [
                driver, switchyard, .product(name: "SwitchyardHTTP2TestSupport", package: "switchyard"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: harness
        ),
        // The ONNX importer on arbitrary bytes; imported graphs are packed and run on a small batch.
        .executableTarget(name: "fuzz-onnx-import", dependencies: [driver, switchyard], swiftSettings: harness),
    ]
)
