// A real gRPC server for the load generator's tests: SwitchyardHTTP2's front end on an ephemeral port with a
// service whose every answer is scripted per request number — how long to take, which model version to name,
// which status to end with. Work is delayed on background threads, never on the event loop, either all
// concurrently or one at a time (a server with capacity 1/delay, to build queues on purpose).

import Dispatch
import Foundation
import Logging
import SwitchyardCore
import SwitchyardHTTP2
import Synchronization

@testable import SwitchyardLoad

/// What the server does with request number `n` (0-based, in arrival order).
struct ScriptedAnswer: Sendable {
    var delayMs: Double
    var version: String = "1"
    var status: GRPCStatusCode = .ok
}

final class ScriptedService: GRPCService {
    let script: @Sendable (Int) -> ScriptedAnswer
    let serial: Bool
    let counter = Atomic<Int>(0)
    /// Arrival times (ns, monotonic) of every ModelInfer, in order.
    let arrivals = Mutex<[UInt64]>([])
    private let serialQueue = DispatchQueue(label: "scripted.serial")

    init(serial: Bool, script: @escaping @Sendable (Int) -> ScriptedAnswer) {
        self.serial = serial
        self.script = script
    }

    func method(for path: String) -> GRPCMethod? {
        switch path {
        case "/inference.GRPCInferenceService/ModelMetadata": GRPCMethod(id: 1, kind: .unary)
        case "/inference.GRPCInferenceService/ModelInfer": GRPCMethod(id: 2, kind: .unary)
        default: nil
        }
    }

    func handle(
        message: UnsafeRawBufferPointer,
        method: GRPCMethod,
        head: GRPCRequestHead,
        responder: any GRPCResponder
    ) {
        if method.id == 1 {
            var tensor = ProtobufWriter()
            tensor.string(1, "x")
            tensor.string(2, "FP32")
            tensor.packedInt64(3, [-1, 4])
            var out = ProtobufWriter()
            out.string(1, "y")
            out.string(2, "FP32")
            out.packedInt64(3, [-1, 1])
            var w = ProtobufWriter()
            w.string(1, "scripted")
            w.string(2, "1")
            w.string(3, "test")
            w.bytes(4, tensor.bytes)
            w.bytes(5, out.bytes)
            responder.send(message: w.bytes)
            return
        }
        let n = counter.add(1, ordering: .relaxed).oldValue
        let now = MonotonicInstant.now().nanoseconds
        arrivals.withLock { $0.append(now) }
        let answer = script(n)
        let reply: @Sendable () -> Void = {
            if answer.status != .ok {
                responder.fail(GRPCStatus(answer.status, "scripted failure for request \(n)"))
                return
            }
            var w = ProtobufWriter()
            w.string(1, "scripted")
            w.string(2, answer.version)
            w.string(3, "")
            responder.send(message: w.bytes)
        }
        if serial {
            serialQueue.async {
                usleep(UInt32(answer.delayMs * 1000))
                reply()
            }
        } else if answer.delayMs <= 0 {
            reply()
        } else {
            DispatchQueue.global().asyncAfter(deadline: .now() + answer.delayMs / 1000, execute: reply)
        }
    }
}

/// A running scripted server on an ephemeral port.
struct ScriptedServer {
    let server: GRPCServer
    let service: ScriptedService
    let port: Int
    var target: String { "127.0.0.1:\(port)" }

    let tls: ClientTLSOptions?

    init(
        serial: Bool = false,
        tls serverTLS: ServerConfiguration.TLSSettings? = nil,
        clientTLS: ClientTLSOptions? = nil,
        script: @escaping @Sendable (Int) -> ScriptedAnswer
    ) throws {
        service = ScriptedService(serial: serial, script: script)
        tls = clientTLS
        var logger = Logger(label: "scripted")
        logger.logLevel = .critical
        server = try GRPCServer(
            configuration: .init(listen: HostAndPort(host: "127.0.0.1", port: 0), eventLoops: 1, tls: serverTLS),
            service: service,
            logger: logger
        )
        port = try server.start()
    }

    func stop() { server.shutdown(gracePeriodSeconds: 1) }

    /// Runs a load against this server with bodies from its metadata.
    func run(_ configure: (inout LoadConfiguration) -> Void, mode: LoadConfiguration.Mode) throws -> LoadResult {
        let model = try UnaryCall.modelMetadata(target: target, model: "scripted", tls: tls)
        let bodies = try RequestBodies.build(model: model, version: "", batch: 1, source: .random, variants: 4)
        var configuration = LoadConfiguration(target: target, mode: mode)
        configuration.drainSeconds = 10
        configuration.tls = tls
        configure(&configuration)
        return try LoadRunner(configuration: configuration, bodies: bodies).run()
    }
}

/// A throw-away CA with a server certificate for 127.0.0.1 and localhost, made with the openssl CLI.
struct TestCertificates {
    let directory: String
    var ca: String { directory + "/ca.pem" }
    var cert: String { directory + "/server.pem" }
    var key: String { directory + "/server.key" }

    init() throws {
        directory = NSTemporaryDirectory() + "switchyard-load-pki-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            cd '\(directory)'
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \\
                -days 2 -subj /CN=switchyard-load-test-ca 2>/dev/null
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr \\
                -subj /CN=server 2>/dev/null
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \\
                -extfile server.ext 2>/dev/null
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw SwitchyardError.internal("openssl could not create test certificates in \(directory)")
        }
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}
