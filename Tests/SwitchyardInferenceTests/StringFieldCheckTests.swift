// Names that C strings cannot carry are refused before protobuf-c truncates them at the NUL.

import SwitchyardCore
import Testing

@testable import SwitchyardInference

@Suite struct StringFieldCheckTests {
    /// A length-delimited field.
    static func field(_ number: UInt8, _ bytes: [UInt8]) -> [UInt8] {
        precondition(bytes.count < 128)
        return [number << 3 | 2, UInt8(bytes.count)] + bytes
    }

    static func check(_ message: [UInt8]) -> String? {
        message.withUnsafeBytes { raw in
            do throws(SwitchyardError) {
                try StringFieldCheck.check(raw, schema: .inferRequest)
                return nil
            } catch {
                #expect(error.code == .invalidArgument)
                return error.message
            }
        }
    }

    @Test func cleanRequestsPass() {
        let input = Self.field(1, Array("pixels".utf8)) + Self.field(2, Array("FP32".utf8)) + [0x1A, 2, 1, 64]
        let message =
            Self.field(1, Array("digits".utf8)) + Self.field(5, input) + Self.field(7, [0, 0, 0, 0])
            + [0x08 | 0, 0x96, 0x01]  // an unknown varint field
        #expect(Self.check(message) == nil)
        #expect(Self.check([]) == nil)
    }

    @Test func aNulInTheModelNameIsNamed() {
        let problem = Self.check(Self.field(1, Array("digits".utf8) + [0] + Array("x".utf8)))
        #expect(problem?.hasPrefix("model_name: contains a NUL byte at offset 6") == true)
    }

    @Test func nestedNamesAreNamedWithTheirPosition() {
        let first = Self.field(1, Array("a".utf8))
        let second = Self.field(1, Array("b".utf8) + [0])
        let message = Self.field(1, Array("digits".utf8)) + Self.field(5, first) + Self.field(5, second)
        #expect(Self.check(message)?.hasPrefix("inputs[1].name: contains a NUL") == true)
        let output = Self.field(6, Self.field(1, [0x41, 0]))
        #expect(Self.check(output)?.hasPrefix("outputs[0].name") == true)
        let parameter = Self.field(4, Self.field(1, Array("k".utf8) + [0]))
        #expect(Self.check(parameter)?.hasPrefix("parameters[0].key") == true)
    }

    @Test func invalidUTF8IsRefused() {
        #expect(Self.check(Self.field(2, [0x31, 0xFF])) == "model_version: is not valid UTF-8")
        #expect(Self.check(Self.field(1, Array("é".utf8))) == nil)
    }

    @Test func namesLongerThanTheLimitAreRefusedByLength() {
        /// A length-delimited field with a two-byte length (128 ..< 16384 bytes).
        func longField(_ number: UInt8, _ bytes: [UInt8]) -> [UInt8] {
            [number << 3 | 2, UInt8(bytes.count & 0x7F) | 0x80, UInt8(bytes.count >> 7)] + bytes
        }
        let limit = StringFieldCheck.maxNameBytes
        #expect(Self.check(longField(1, Array(repeating: 0x6D, count: limit))) == nil)
        #expect(
            Self.check(longField(1, Array(repeating: 0x6D, count: limit + 1)))
                == "model_name: is 1025 bytes long; expected a name of at most 1024 bytes"
        )
        let input = longField(1, Array(repeating: 0x69, count: 5000))
        #expect(Self.check(longField(5, input))?.hasPrefix("inputs[0].name: is 5000 bytes long") == true)
        // The request id is not a name: it may be longer.
        #expect(Self.check(longField(3, Array(repeating: 0x61, count: 5000))) == nil)
    }

    @Test func bytesFieldsMayHoldNul() {
        #expect(Self.check(Self.field(7, [0, 0, 0])) == nil)
    }

    @Test func malformedWireBytesAreLeftToTheDecoder() {
        #expect(Self.check([0x0A, 0x7F, 0x41]) == nil)  // a length past the end
        #expect(Self.check([0x0B]) == nil)  // a group
    }
}
