// Triton's HTTP model-repository extension, the REST twin of RepositoryRPCs: `POST /v2/repository/index` lists
// every model version on disk with its state; `POST /v2/repository/models/{m}/load` and `/unload` load and unload a
// model's versions through the same audited path, token policy and in-flight bound as the gRPC calls.

import Foundation
import SwitchyardCore
import SwitchyardHTTP2
import SwitchyardModels
import Synchronization

/// Answers the repository endpoints for one service.
struct RESTRepository {
    let service: InferenceService

    /// `{"ready": bool}`, every field optional (tritonclient sends `{}` or nothing).
    private struct IndexRequest: Decodable {
        var ready: Bool?
        var repository_name: String?
    }

    /// `{"parameters": {...}}`, optional.
    private struct ChangeRequest: Decodable {
        var parameters: [String: JSONValue]?
    }

    /// Handles `rest` (the path after `/v2/repository`).
    func handle(
        _ rest: ArraySlice<Substring>,
        head: HTTPRequestHead,
        body: UnsafeRawBufferPointer,
        responder: any HTTPResponder
    ) {
        let rpcs = RepositoryRPCs(service: service)
        do throws(SwitchyardError) {
            if rest.count == 1, rest.first == "index" {
                let request = try decode(IndexRequest.self, body, what: "repository index request")
                try Self.checkRepositoryName(request?.repository_name)
                try rpcs.index(readyOnly: request?.ready ?? false) { result in
                    switch result {
                    case .success(let entries): responder.respond(Self.json(.array(entries.map(Self.indexEntry))))
                    case .failure(let error):
                        responder.respond(RESTService.errorResponse(GRPCStatus(error), metadata: []))
                    }
                }
                return
            }
            guard rest.count == 3, rest.first == "models", !rest[rest.startIndex + 1].isEmpty,
                rest.last == "load" || rest.last == "unload"
            else {
                throw .notFound(
                    "no such endpoint \(head.path); expected /v2/repository/index or "
                        + "/v2/repository/models/{model}/load|unload"
                )
            }
            let load = rest.last == "load"
            let request = try decode(
                ChangeRequest.self,
                body,
                what: load ? "model load request" : "model unload request"
            )
            try rpcs.change(
                String(rest[rest.startIndex + 1]),
                load: load,
                parameters: (request?.parameters ?? [:]).mapValues(Self.parameter),
                authorization: head.header("authorization"),
                peerIsLoopback: head.peerIsLoopback,
                reason: load ? "repository load over REST" : "repository unload over REST"
            ) { refusal in
                // 401 and 403 for the token policy's refusals, as Triton's HTTP endpoint answers them.
                responder.respond(
                    refusal.map { RESTService.errorResponse($0, metadata: []) } ?? HTTPResponse(status: 200)
                )
            }
        } catch {
            responder.respond(RESTService.errorResponse(GRPCStatus(error), metadata: []))
        }
    }

    /// The body decoded as `type`, or `nil` for an empty body.
    private func decode<T: Decodable>(
        _ type: T.Type,
        _ body: UnsafeRawBufferPointer,
        what: String
    ) throws(SwitchyardError) -> T? {
        guard !body.isEmpty else { return nil }
        do {
            return try JSONDecoder().decode(T.self, from: Data(body))
        } catch {
            throw .invalidArgument(RESTJSON.describe(error, what: what))
        }
    }

    /// Switchyard serves one repository, so a request may name none.
    private static func checkRepositoryName(_ name: String?) throws(SwitchyardError) {
        guard let name, !name.isEmpty else { return }
        throw .invalidArgument(
            "repository_name: this server serves one model repository; expected '', got '\(SwitchyardError.echo(name))'"
        )
    }

    /// A JSON parameter value as the gRPC request's parameter kinds.
    private static func parameter(_ value: JSONValue) -> RepositoryRPCs.Parameter {
        switch value {
        case .bool(let flag): .bool(flag)
        case .string(let text): .string(text)
        case .integer(let number): .int64(number)
        case .number(let number) where number.rounded() == number && abs(number) < 9.0e18: .int64(Int64(number))
        default: .unset
        }
    }

    /// One index entry as Triton's HTTP endpoint writes it (`reason` only when there is one).
    private static func indexEntry(_ entry: RepositoryIndexEntry) -> JSONValue {
        var fields: [String: JSONValue] = [
            "name": .string(entry.model), "version": .string(entry.version), "state": .string(entry.state.rawValue),
        ]
        if !entry.reason.isEmpty { fields["reason"] = .string(entry.reason) }
        return .object(fields)
    }

    private static func json(_ value: JSONValue) -> HTTPResponse {
        HTTPResponse(status: 200, headers: [("content-type", "application/json")], body: RESTJSON.encode(value))
    }
}
