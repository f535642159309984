// The REST infer request's reading: simdjson's documents read as jansson reads the same text (a differential fuzz
// over mutated requests, every verdict and every value compared), syntax errors named with jansson's byte offset,
// and the translation into the request structure the gRPC path validates, with each refusal's message.

import CJansson
import SwitchyardCore
import SwitchyardProto
import Testing

@testable import SwitchyardInference

@Suite struct RESTInferTests {
    /// The document's root read whole, or the error's message.
    static func parse(_ text: [UInt8]) -> Result<JSONValue, SwitchyardError> {
        text.withUnsafeBytes { bytes in
            Result { () throws(SwitchyardError) -> JSONValue in
                try JSONDocument.parse(bytes, what: "inference request") { root in root.value }
            }
        }
    }

    /// jansson's reading of the same bytes with the flags the error path uses, as a `JSONValue`.
    static func jansson(_ text: [UInt8]) -> JSONValue? {
        var error = json_error_t()
        let root = text.withUnsafeBytes { bytes -> UnsafeMutablePointer<json_t>? in
            var empty: CChar = 0
            guard let base = bytes.baseAddress, bytes.count > 0 else {
                return json_loadb(&empty, 0, cswitchyard_json_request_flags(), &error)
            }
            return json_loadb(
                base.assumingMemoryBound(to: CChar.self),
                bytes.count,
                cswitchyard_json_request_flags(),
                &error
            )
        }
        guard let root else { return nil }
        defer { cswitchyard_json_release(root) }
        func convert(_ node: UnsafeMutablePointer<json_t>) -> JSONValue {
            switch cswitchyard_json_type(node) {
            case JSON_OBJECT:
                var members: [String: JSONValue] = [:]
                var iterator = json_object_iter(node)
                while let current = iterator {
                    let key = String(
                        decoding: UnsafeRawBufferPointer(
                            start: json_object_iter_key(current),
                            count: json_object_iter_key_len(current)
                        ),
                        as: UTF8.self
                    )
                    members[key] = convert(json_object_iter_value(current)!)
                    iterator = json_object_iter_next(node, current)
                }
                return .object(members)
            case JSON_ARRAY: return .array((0..<json_array_size(node)).map { convert(json_array_get(node, $0)!) })
            case JSON_STRING:
                return .string(
                    String(
                        decoding: UnsafeRawBufferPointer(
                            start: json_string_value(node),
                            count: json_string_length(node)
                        ),
                        as: UTF8.self
                    )
                )
            case JSON_INTEGER, JSON_REAL: return .number(json_number_value(node))
            case JSON_TRUE: return .bool(true)
            case JSON_FALSE: return .bool(false)
            default: return .null
            }
        }
        return convert(root)
    }

    static let request = Array(
        #"""
        {"id": "r\u00e9q-1", "parameters": {"binary_data_output": false, "priority": 2, "tag": "a\"b"},
         "inputs": [{"name": "pixels", "shape": [1, 4], "datatype": "FP32", "data": [0.5, -1e-3, 12345678901, 3.4028234e38]},
                    {"name": "mask", "shape": [2, 2], "datatype": "BOOL", "data": [[true, false], [false, true]]}],
         "outputs": [{"name": "logits", "parameters": {"binary_data": true}}, {"name": "label"}]}
        """#.utf8
    )

    @Test func valuesReadAsJanssonReadsThem() throws {
        let texts = [
            Self.request,
            Array(#"[1, -2, 3.25, 1e-310, -0, 18446744073709551615, -9223372036854775808, 2.5E+3]"#.utf8),
            Array(#"{"a": 1, "a": [2], "b": {"c": null, "d": "x\u0000y\ud83d\ude00\n"}}"#.utf8),
            Array(#""top-level string""#.utf8),
            Array("  true ".utf8),
        ]
        for text in texts {
            let parsed = try Self.parse(text).get()
            #expect(parsed == Self.jansson(text), "\(String(decoding: text, as: UTF8.self))")
        }
    }

    @Test func flatNumberArraysAreReadInOneCall() throws {
        let text = Array(#"{"a": [1, 2.5, -3e2], "b": [1, "x"], "c": [], "d": 7}"#.utf8)
        try text.withUnsafeBytes { bytes in
            try JSONDocument.parse(bytes, what: "test") { root throws(SwitchyardError) in
                #expect(root["a"]?.numbers == [1, 2.5, -300])
                #expect(root["b"]?.numbers == nil)
                #expect(root["c"]?.numbers == [])
                #expect(root["d"]?.numbers == nil)
                #expect(root["e"] == nil)
            }
        }
    }

    @Test(arguments: [
        (#"{"inputs": ["#, "at byte 12"),
        (#"{"inputs": []} x"#, "at byte 16"),
        ("", "at byte 0"),
        (#"{"a": tru}"#, "at byte"),
        (#"[1,]"#, "at byte"),
        ("[\"\u{1}\"]", "at byte"),
    ])
    func syntaxErrorsNameTheByte(text: String, fragment: String) {
        guard case .failure(let error) = Self.parse(Array(text.utf8)) else {
            Issue.record("'\(text)' was accepted")
            return
        }
        #expect(error.code == .invalidArgument)
        #expect(error.message.hasPrefix("malformed JSON in inference request: "), "\(error.message)")
        #expect(error.message.contains(fragment), "\(error.message)")
    }

    /// Mutated requests (truncated, bytes flipped, inserted, deleted; a fixed seed) read the same by both parsers:
    /// accepted by both with equal values, or refused by both. Each one also goes through the whole translation,
    /// which must answer or refuse by name, never crash.
    @Test func mutatedRequestsReadAsJanssonReadsThem() {
        var generator = SplitMix64(seed: 0x5157_4A53_4F4E)
        let alphabet = Array(#"{}[]",:0123456789.eE+-truefalsnl \"#.utf8) + [0x00, 0x7F, 0xC3, 0xA9, 0xFF, 0x0A]
        var accepted = 0
        for round in 0..<3000 {
            var text = Self.request
            for _ in 0..<(1 + Int(generator.next() % 3)) {
                let position = Int(generator.next() % UInt64(text.count + 1))
                switch generator.next() % 4 {
                case 0: text = Array(text.prefix(position))
                case 1 where position < text.count:
                    text[position] = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                case 2: text.insert(alphabet[Int(generator.next() % UInt64(alphabet.count))], at: position)
                default: if position < text.count { text.remove(at: position) }
                }
            }
            let reference = Self.jansson(text)
            switch Self.parse(text) {
            case .success(let value):
                accepted += 1
                #expect(value == reference, "round \(round): \(String(decoding: text, as: UTF8.self))")
            case .failure(let error):
                #expect(error.code == .invalidArgument)
                // Only an integer beyond 64 bits is refused by simdjson alone (jansson reads it as a double).
                if reference != nil {
                    #expect(error.message.contains("number"), "round \(round): \(error.message)")
                }
            }
            text.withUnsafeBytes { body in
                do throws(SwitchyardError) {
                    _ = try RESTInfer.translate(model: "m", version: "", body: body, headerLength: nil)
                } catch {
                    #expect(error.code == .invalidArgument, "round \(round): \(error)")
                    #expect(!error.message.isEmpty)
                }
            }
        }
        // The mutations leave a share of valid documents, so the comparison of values ran too.
        #expect(accepted > 100)
    }

    static func translate(_ text: String, headerLength: String? = nil) -> Result<RESTInferTranslation, SwitchyardError>
    {
        Array(text.utf8).withUnsafeBytes { body in
            Result { () throws(SwitchyardError) -> RESTInferTranslation in
                try RESTInfer.translate(model: "digits", version: "", body: body, headerLength: headerLength)
            }
        }
    }

    static func refusal(_ text: String) -> String {
        guard case .failure(let error) = translate(text) else { return "accepted" }
        return error.message
    }

    @Test func theRequestIsBuiltIntoTheStructureTheGRPCPathValidates() throws {
        let translation = try Self.request.withUnsafeBytes { body in
            try RESTInfer.translate(model: "digits", version: "2", body: body, headerLength: nil)
        }
        #expect(translation.call.binaryOutputs == ["logits"])
        #expect(translation.call.explicitOutputs == ["logits", "label"])
        guard case .converted(let pixels)? = translation.rawInputs[0],
            case .converted(let mask)? = translation.rawInputs[1]
        else {
            Issue.record("inputs not converted")
            return
        }
        // As the JSON numbers read (doubles), then rounded to FP32.
        let doubles: [Double] = [0.5, -1e-3, 12_345_678_901, 3.4028234e38]
        let floats = doubles.map { Float($0) }
        #expect(pixels == floats.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } })
        #expect(mask == [1, 0, 0, 1])
        Self.request.withUnsafeBytes { body in
            withBumpAllocator { arena in
                let message = RESTInfer.build(translation, model: "digits", version: "2", body: body, arena: &arena)
                #expect(swiftString(message.model_name) == "digits")
                #expect(swiftString(message.model_version) == "2")
                #expect(swiftString(message.id) == "réq-1")
                #expect(message.n_inputs == 2 && message.n_raw_input_contents == 2 && message.n_outputs == 2)
                #expect(message.raw_input_contents[0].len == 16 && message.raw_input_contents[1].len == 4)
                #expect(swiftString(message.inputs[1]!.pointee.datatype) == "BOOL")
                #expect(
                    (0..<message.inputs[1]!.pointee.n_shape).map { message.inputs[1]!.pointee.shape[$0] } == [2, 2]
                )
                // binary_data_output is REST's own; the others pass on as typed parameters, sorted by key.
                let keys = (0..<message.n_parameters).map { swiftString(message.parameters[$0]!.pointee.key) }
                #expect(keys == ["priority", "tag"])
                #expect(message.parameters[0]!.pointee.value!.pointee.int64_param == 2)
            }
        }
    }

    @Test func binaryTensorDataIsReadInPlace() throws {
        let header = Array(
            #"{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "INT16", "parameters": {"binary_data_size": 4}}]}"#
                .utf8
        )
        let body = header + [1, 0, 0xFF, 0xFF]
        let translation = try body.withUnsafeBytes { raw in
            try RESTInfer.translate(model: "m", version: "", body: raw, headerLength: String(header.count))
        }
        guard case .body(let range)? = translation.rawInputs[0] else {
            Issue.record("binary data not read in place")
            return
        }
        #expect(range == header.count..<header.count + 4)
        body.withUnsafeBytes { raw in
            withBumpAllocator { arena in
                let message = RESTInfer.build(translation, model: "m", version: "", body: raw, arena: &arena)
                #expect(UnsafeRawPointer(message.raw_input_contents[0].data) == raw.baseAddress! + header.count)
                #expect(message.raw_input_contents[0].len == 4)
            }
        }
    }

    @Test func refusalsNameTheFieldAndWhatWasExpected() {
        let input = #""shape": [1, 2], "datatype": "FP32", "data": [1, 2]"#
        #expect(
            Self.refusal(#"{"inputs": [{"name": "a\u0000b", \#(input)}]}"#).hasPrefix(
                "inputs[0].name: contains a NUL byte at offset 1"
            )
        )
        let long = String(repeating: "n", count: 1025)
        #expect(
            Self.refusal(#"{"inputs": [{"name": "\#(long)", \#(input)}]}"#).hasPrefix(
                "inputs[0].name: is 1025 bytes long; expected a name of at most 1024 bytes"
            )
        )
        #expect(
            Self.refusal(#"{"inputs": [{"name": "a", \#(input)}], "outputs": [{"name": "\u0000"}]}"#).hasPrefix(
                "outputs[0].name: contains a NUL byte"
            )
        )
        #expect(
            Self.refusal(#"{"inputs": [{"name": "a", \#(input)}], "parameters": {"k": [1]}}"#)
                == "parameters.k: expected a boolean, number or string, got an array"
        )
        #expect(
            Self.refusal(#"{"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}]}"#)
                == "input 'a': expected 3 values in data for shape [1, 3], got 2"
        )
        #expect(
            Self.refusal(#"{"inputs": [{"name": "a", "shape": [1, 2], "datatype": "INT8", "data": [1, 200]}]}"#)
                .hasPrefix("input 'a': data[1] = 200.0 is not a INT8 value")
        )
        #expect(
            Self.refusal(#"{"inputs": [{"name": "a", "shape": [2], "datatype": "FP32", "data": [1, "x"]}]}"#)
                == "input 'a': data[1] is a string; expected a FP32 value"
        )
        #expect(
            Self.refusal(#"{"inputs": [{"name": "a", "shape": [1], "datatype": "FP8", "data": [1]}]}"#)
                .hasPrefix("input 'a': unknown datatype 'FP8'")
        )
        #expect(
            Self.refusal(#"{"inputs": {}}"#)
                == "inference request: field 'inputs' has the wrong type; expected an array"
        )
    }
}
