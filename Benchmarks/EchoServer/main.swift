// switchyard-echo-server: the gRPC front end serving a trivial echo service, the floor that the gateway's
// per-request overhead is measured against. Any path echoes its request (unary); paths ending in
// "/Stream" echo each message of a bidirectional stream.
//
//     switchyard-echo-server [--listen 127.0.0.1:50051] [--loops 1] [--tls CERT KEY]

import Logging
import SwitchyardCore
import SwitchyardHTTP2

#if canImport(Glibc)
    import Glibc
#endif

/// Echoes every request message back on the calling loop.
struct EchoService: GRPCService {
    func method(for path: String) -> GRPCMethod? {
        path.hasSuffix("/Stream") ? GRPCMethod(id: 1, kind: .bidirectionalStreaming) : GRPCMethod(id: 0, kind: .unary)
    }

    func handle(
        message: UnsafeRawBufferPointer,
        method: GRPCMethod,
        head: GRPCRequestHead,
        responder: any GRPCResponder
    ) {
        responder.send(message: Array(message))
    }
}

var listen = "127.0.0.1:50051"
var loops = 1
var tls: ServerConfiguration.TLSSettings?
var limits = ServerConfiguration.Limits()
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--listen": listen = arguments.popFirst() ?? listen
    case "--loops": loops = Int(arguments.popFirst() ?? "") ?? loops
    case "--max-output-buffer":
        limits.maxOutputBufferBytes = Int(arguments.popFirst() ?? "") ?? limits.maxOutputBufferBytes
    case "--tls":
        guard let cert = arguments.popFirst(), let key = arguments.popFirst() else {
            fatalError("--tls expects CERT KEY")
        }
        tls = ServerConfiguration.TLSSettings(certificate: cert, key: key)
    default:
        print(
            "usage: switchyard-echo-server [--listen HOST:PORT] [--loops N] [--tls CERT KEY] [--max-output-buffer BYTES]"
        )
        exit(2)
    }
}

var logger = Logger(label: "switchyard-echo-server")
logger.logLevel = getenv("ECHO_DEBUG") != nil ? .debug : .info
do {
    let server = try GRPCServer(
        configuration: .init(listen: try HostAndPort(parsing: listen), eventLoops: loops, tls: tls, limits: limits),
        service: EchoService(),
        logger: logger
    )
    let port = try server.start()
    print("listening on \(try HostAndPort(parsing: listen).host):\(port)")
    fflush(nil)
    // Block until SIGTERM/SIGINT, then drain.
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGTERM)
    sigaddset(&signals, SIGINT)
    pthread_sigmask(SIG_BLOCK, &signals, nil)
    var received: Int32 = 0
    sigwait(&signals, &received)
    server.shutdown(gracePeriodSeconds: 5)
    print(server.statistics)
} catch {
    print("error: \(error)")
    exit(1)
}
