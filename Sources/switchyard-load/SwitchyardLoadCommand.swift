// switchyard-load: an open- or closed-loop gRPC load generator for KServe v2 servers. Builds request bodies
// from the model's metadata or a data file, runs the load with a live progress line on stderr, prints a
// summary, and writes the full results as JSON for loadtest/report.py.

import ArgumentParser
import Foundation
import SwitchyardCore
import SwitchyardLoad

@main
struct SwitchyardLoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard-load",
        abstract: "Drive a KServe v2 gRPC server with open-loop (or closed-loop) load and record what happened.",
        discussion: """
            Open loop (--rate or --stages): requests go out at their scheduled times whatever the server does, and
            latency counts from each request's intended send time, so a stalled server cannot hide its queue.
            Closed loop (--concurrency): a fixed number of requests in flight.

              switchyard-load --model digits --rate 2000 --duration 20 --warmup 2 --output steady.json
              switchyard-load --model digits --stages 10@500,30@500-20000 --arrival poisson
              switchyard-load --scenario loadtest/scenarios/spike.yaml --output spike.json
            """
    )

    @Option(help: "Server address HOST:PORT.") var target = "127.0.0.1:8001"
    @Option(help: "A scenario YAML file (loadtest/scenarios); flags given here override it.") var scenario: String?
    @Option(help: "Model name.") var model: String?
    @Option(name: .customLong("model-version"), help: "Model version to request (default: the server's choice).")
    var modelVersion: String?
    @Option(help: "Open loop: requests per second.") var rate: Double?
    @Option(help: "Open loop: stages SECONDS@RATE or SECONDS@FROM-TO, comma-separated.") var stages: String?
    @Option(help: "Arrival process: constant or poisson.") var arrival: String?
    @Option(help: "Closed loop: requests kept in flight.") var concurrency: Int?
    @Option(help: "Seconds to run (open loop with --rate, or closed loop).") var duration: Double?
    @Option(help: "Seconds of warm-up before measuring.") var warmup: Double?
    @Option(help: "Stop after this many measured requests.") var requests: Int?
    @Option(help: "TCP connections.") var connections: Int?
    @Option(help: "Most concurrent streams per connection.") var streams: Int?
    @Option(help: "Generator threads.") var threads: Int?
    @Option(help: "Rows per request.") var batch: Int?
    @Option(help: "Inputs: 'random' (from ModelMetadata) or a data file (samples .json or .npy).") var input: String?
    @Option(name: .customLong("input-name"), help: "The model input a .npy file feeds.") var inputName: String?
    @Option(name: .customLong("timeout-ms"), help: "Per-request deadline (grpc-timeout), ms.") var timeoutMs: Double?
    @Option(help: "Reporting interval, seconds.") var interval: Double?
    @Option(help: "Seconds to wait for outstanding requests at the end.") var drain: Double = 5
    @Option(help: "Label for reports.") var label: String?
    @Option(name: .customLong("server-pid"), help: "The server's pid, to report its CPU per request.")
    var serverPID: Int?
    @Option(help: "RPC path (default ModelInfer); with --body-bytes, any unary method.") var path: String?
    @Option(
        name: .customLong("body-bytes"),
        help: "Send an opaque message of this many bytes instead of a ModelInferRequest (e.g. to an echo server)."
    )
    var bodyBytes: Int?
    @Flag(help: "Use TLS (ALPN h2); without --tls-ca the server certificate is not verified.") var tls = false
    @Option(name: .customLong("tls-ca"), help: "PEM CA bundle to verify the server certificate (implies --tls).")
    var tlsCA: String?
    @Option(name: .customLong("tls-cert"), help: "PEM client certificate (mutual TLS; implies --tls).")
    var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM key of the client certificate.") var tlsKey: String?
    @Option(name: .customLong("tls-server-name"), help: "Name for SNI and certificate checks (default: the host).")
    var tlsServerName: String?
    @Option(
        name: .customLong("timer-resolution-us"),
        help: "Open loop: shortest sleep between sends; arrivals due within it go out together (≤ this late)."
    )
    var timerResolutionUs: Double = 50
    @Option(
        name: .customLong("header"),
        help: "Request metadata NAME:VALUE sent with every call (repeatable), e.g. x-tenant-id:acme."
    )
    var headers: [String] = []
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(help: "Admin API base URL for a scenario's actions.") var admin = "http://127.0.0.1:8002"
    @Option(help: "Write the results as JSON here.") var output: String?
    @Flag(help: "No live progress line.") var quiet = false

    func run() throws {
        do {
            try execute()
        } catch let error as SwitchyardError {
            FileHandle.standardError.write(Data("switchyard-load: \(error.message)\n".utf8))
            throw ExitCode(2)
        }
    }

    private func execute() throws {
        var file = Scenario()
        if let scenario {
            guard let text = try? String(contentsOfFile: scenario, encoding: .utf8) else {
                throw SwitchyardError.invalidArgument("\(scenario): cannot read the scenario file")
            }
            file = try Scenario.parse(yaml: text, source: scenario)
        }
        let modelName = model ?? file.model ?? "digits"
        let version = modelVersion ?? file.version ?? ""
        let arrivalName = arrival ?? file.arrival ?? "constant"
        guard let process = ArrivalProcess(rawValue: arrivalName) else {
            throw SwitchyardError.invalidArgument("--arrival: expected constant or poisson, got '\(arrivalName)'")
        }
        let closed = concurrency != nil || (rate == nil && stages == nil && file.mode == "closed")
        let mode: LoadConfiguration.Mode
        if closed {
            guard let n = concurrency ?? file.concurrency else {
                throw SwitchyardError.invalidArgument("closed loop needs --concurrency")
            }
            mode = .closed(
                concurrency: n,
                duration: duration ?? file.duration ?? (requests ?? file.requests == nil ? 10 : nil)
            )
        } else if let stages {
            mode = .open(stages: try Scenario.parseStages(stages), arrival: process)
        } else if let rate {
            let seconds = duration ?? ((requests ?? file.requests).map { Double($0) / rate * 1.5 + 10 } ?? 10)
            mode = .open(stages: [.steady(rate, for: seconds)], arrival: process)
        } else if let fileStages = file.loadStages {
            mode = .open(stages: fileStages, arrival: process)
        } else {
            throw SwitchyardError.invalidArgument(
                "no load given: use --rate R [--duration S], --stages SPEC, --concurrency N, or --scenario FILE"
            )
        }

        let tlsOptions: ClientTLSOptions? =
            tls || tlsCA != nil || tlsCert != nil
            ? ClientTLSOptions(caFile: tlsCA, certificateFile: tlsCert, keyFile: tlsKey, serverName: tlsServerName)
            : nil
        let inputSpec = input ?? file.input ?? "random"
        let rows = batch ?? file.batch ?? 1
        let bodies: RequestBodies
        if let bodyBytes {
            guard bodyBytes >= 0 else { throw SwitchyardError.invalidArgument("--body-bytes: must not be negative") }
            bodies = RequestBodies(framed: [RequestBodies.frame([UInt8](repeating: 0x78, count: bodyBytes))])
        } else {
            let metadata = try UnaryCall.modelMetadata(
                target: target,
                model: modelName,
                version: version,
                tls: tlsOptions
            )
            let source: InputSource = inputSpec == "random" ? .random : .file(inputSpec, input: inputName)
            bodies = try RequestBodies.build(model: metadata, version: version, batch: rows, source: source, seed: seed)
        }

        var configuration = LoadConfiguration(target: target, mode: mode)
        if let path { configuration.path = path }
        configuration.metadata = try headers.map { header throws(SwitchyardError) -> (String, String) in
            guard let colon = header.firstIndex(of: ":"), colon != header.startIndex else {
                throw SwitchyardError.invalidArgument("--header: expected NAME:VALUE, got '\(header)'")
            }
            let value = header[header.index(after: colon)...].drop { $0 == " " }
            return (header[..<colon].lowercased(), String(value))
        }
        configuration.tls = tlsOptions
        configuration.warmup = warmup ?? file.warmup ?? 0
        configuration.requests = requests ?? file.requests
        configuration.connections = connections ?? file.connections ?? 4
        configuration.streamsPerConnection = streams ?? file.streams ?? 64
        configuration.threads = threads ?? file.threads ?? 1
        configuration.timeoutMs = timeoutMs ?? file.timeout_ms ?? 0
        configuration.interval = interval ?? file.interval ?? 1
        configuration.drainSeconds = drain
        configuration.seed = seed
        configuration.timerResolutionMicroseconds = timerResolutionUs
        configuration.serverPID = serverPID
        configuration.label = label ?? file.name ?? ""
        configuration.model = modelName
        configuration.version = version
        configuration.batch = rows
        configuration.inputDescription = bodyBytes.map { "\($0) opaque bytes" } ?? inputSpec
        if bodyBytes != nil { configuration.model = "" }

        let runner = try LoadRunner(configuration: configuration, bodies: bodies)
        let interrupted = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        signal(SIGINT, SIG_IGN)
        interrupted.setEventHandler { runner.stop() }
        interrupted.resume()
        let live = !quiet && isatty(2) != 0
        let actions = try file.actions.flatMap { $0.isEmpty ? nil : try AdminActions(base: admin, actions: $0) }
        let warmupNanoseconds = UInt64(configuration.warmup * 1e9)
        var result = try runner.run(
            progress: { progress in
                guard !quiet else { return }
                let text = live ? "\r\u{1B}[2K" + progress.line : progress.line + "\n"
                FileHandle.standardError.write(Data(text.utf8))
            },
            started: { start in actions?.start(measureStart: start.advanced(byNanoseconds: warmupNanoseconds)) }
        )
        if live { FileHandle.standardError.write(Data("\n".utf8)) }
        if let actions { result.events = actions.finish(timeout: 15) }
        print(Self.summary(result))
        if let output {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: output))
            print("results: \(output)")
        }
    }

    static func summary(_ r: LoadResult) -> String {
        let s = r.summary
        let l = s.latencyMs
        var lines = [
            "\(r.settings.label): \(r.settings.mode) loop, \(r.settings.connections) connections × "
                + "\(r.settings.streamsPerConnection) streams, \(r.settings.threads) thread(s), "
                + String(format: "%.1f s measured", r.measuredSeconds),
            String(
                format:
                    "  offered %.0f req/s   completed %.0f req/s   ok %.0f req/s   (%d ok, %d errors, %d unfinished)",
                s.offeredRate,
                s.throughput,
                s.okThroughput,
                s.ok,
                s.errors,
                s.unfinished
            ),
            String(
                format: "  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (from %@ send time)",
                l.p50,
                l.p90,
                l.p99,
                l.p999,
                l.max,
                r.settings.mode == "open" ? "intended" : "actual"
            ),
            String(
                format: "  service latency ms (from actual send): p50 %.3f  p99 %.3f",
                s.serviceLatencyMs.p50,
                s.serviceLatencyMs.p99
            ),
            "  by status: "
                + s.byStatus.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "),
            "  by version: "
                + s.byVersion.sorted { $0.key < $1.key }.map { "\($0.key.isEmpty ? "?" : $0.key) \($0.value)" }
                .joined(separator: ", "),
        ]
        for (status, message) in s.errorMessages.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(status): \(message)")
        }
        for event in r.events {
            lines.append(
                String(format: "  at %6.1f s: ", event.t) + "\(event.label) (\(event.request) → \(event.status))"
            )
        }
        lines.append(
            String(
                format: "  generator: %.2f µs CPU/request, scheduling lag p99 %.3f ms, max backlog %d",
                r.harness.cpuPerRequestUs,
                r.harness.schedulingLagMs.p99,
                r.harness.maxBacklog
            )
        )
        if let server = r.serverCPU {
            lines.append(String(format: "  server: %.2f µs CPU/request (pid %d)", server.cpuPerRequestUs, server.pid))
        }
        if r.harness.bottleneck { lines.append("  WARNING: the generator may be the bottleneck: \(r.harness.note)") }
        return lines.joined(separator: "\n")
    }
}
