// Triton's HTTP shared-memory extensions, the REST twin of SharedMemoryRPCs and the CUDA answers in SettingsRPCs:
// `/v2/systemsharedmemory[/region/{name}]/status|register|unregister` over the same registered regions (inputs and
// outputs then name them in their `shared_memory_*` parameters), and `/v2/cudasharedmemory/...` answered honestly:
// nothing registered, registration refused because this server has no CUDA.

import Foundation
import SwitchyardCore
import SwitchyardHTTP2

/// Answers the shared-memory endpoints for one service.
struct RESTSharedMemory {
    let service: InferenceService

    /// `{"key": "/name", "offset": 0, "byte_size": N}`, as tritonclient.http sends it.
    private struct RegisterRequest: Decodable {
        var key: String
        var offset: UInt64?
        var byteSize: UInt64

        enum CodingKeys: String, CodingKey {
            case key, offset
            case byteSize = "byte_size"
        }
    }

    /// Handles `rest` (the path after `/v2/systemsharedmemory` or `/v2/cudasharedmemory`).
    func handle(
        cuda: Bool,
        _ rest: ArraySlice<Substring>,
        head: HTTPRequestHead,
        body: UnsafeRawBufferPointer,
        responder: any HTTPResponder
    ) {
        let prefix = cuda ? "/v2/cudasharedmemory" : "/v2/systemsharedmemory"
        // [region/{name}/]status|register|unregister
        var name = ""
        var action = rest
        if action.first == "region" {
            guard action.count == 3, !action[action.startIndex + 1].isEmpty else {
                return responder.respond(notFound(head.path, prefix: prefix))
            }
            name = String(action[action.startIndex + 1])
            action = action.dropFirst(2)
        }
        guard action.count == 1, let verb = action.first,
            verb == "status" || verb == "unregister" || (verb == "register" && !name.isEmpty)
        else {
            return responder.respond(notFound(head.path, prefix: prefix))
        }
        let method = verb == "status" ? "GET" : "POST"
        guard head.method == method || (verb == "status" && head.method == "HEAD") else {
            return responder.respond(
                RESTService.errorResponse(
                    status: 405,
                    message: "method \(head.method) is not allowed on \(head.path); expected \(method)",
                    metadata: []
                )
            )
        }
        // As on gRPC: only a process on this machine can share memory with this one.
        guard cuda || verb == "status" || head.peerIsLoopback else {
            return responder.respond(
                RESTService.errorResponse(
                    status: 403,
                    message: "system shared memory is for clients on this machine; this call came from beyond loopback",
                    metadata: []
                )
            )
        }
        do throws(SwitchyardError) {
            responder.respond(
                try cuda ? answerCUDA(verb, name: name) : answerSystem(verb, name: name, body: body)
            )
        } catch {
            responder.respond(RESTService.errorResponse(GRPCStatus(error), metadata: []))
        }
    }

    private func answerSystem(
        _ verb: Substring,
        name: String,
        body: UnsafeRawBufferPointer
    ) throws(SwitchyardError) -> HTTPResponse {
        let regions = service.sharedMemory
        switch verb {
        case "status":
            let listed = try regions.status(name).map { region -> JSONValue in
                .object([
                    "name": .string(region.name), "key": .string(region.key),
                    "offset": .integer(Int64(region.offset)), "byte_size": .integer(Int64(region.byteSize)),
                ])
            }
            return Self.json(.array(listed))
        case "register":
            let request: RegisterRequest
            do {
                request = try JSONDecoder().decode(RegisterRequest.self, from: Data(body))
            } catch {
                throw .invalidArgument(RESTJSON.describe(error, what: "shared-memory register request"))
            }
            try regions.register(
                try SharedMemoryRegion(
                    name: name,
                    key: request.key,
                    offset: request.offset ?? 0,
                    byteSize: request.byteSize
                )
            )
            return HTTPResponse(status: 200)
        default:
            regions.unregister(name)
            return HTTPResponse(status: 200)
        }
    }

    private func answerCUDA(_ verb: Substring, name: String) throws(SwitchyardError) -> HTTPResponse {
        switch verb {
        case "status":
            guard name.isEmpty else {
                throw .notFound("no CUDA shared-memory region '\(SwitchyardError.echo(name))'; registered: none")
            }
            return Self.json(.array([]))
        case "register":
            throw SwitchyardError(
                .failedPrecondition,
                "cannot register CUDA shared-memory region '\(SwitchyardError.echo(name))': this server has no CUDA; "
                    + "use system shared memory (/v2/systemsharedmemory) or send tensors in the request"
            )
        default:
            // Nothing is ever registered, so any name is unregistered already.
            return HTTPResponse(status: 200)
        }
    }

    private func notFound(_ path: String, prefix: String) -> HTTPResponse {
        RESTService.errorResponse(
            status: 404,
            message: "no such endpoint \(path); expected \(prefix)[/region/{name}]/status|unregister or "
                + "\(prefix)/region/{name}/register",
            metadata: []
        )
    }

    private static func json(_ value: JSONValue) -> HTTPResponse {
        HTTPResponse(status: 200, headers: [("content-type", "application/json")], body: RESTJSON.encode(value))
    }
}
