// The pure pieces behind the second hardening round: bounded status messages, header fields we may send, the
// inflated-bytes budget and the new limits' validation.

import Testing

@testable import SwitchyardCore
@testable import SwitchyardHTTP2

@Suite struct HardeningRoundTwoTests {
    @Test(arguments: [0, 10, 1024, 5000, 100_000])
    func statusMessagesAreBoundedAtScalarBoundaries(length: Int) {
        for unit in ["m", "é", "€", "😀"] {
            let message = String(repeating: unit, count: length)
            let bounded = GRPCPercentEncoding.bounded(message)
            let encoded = GRPCPercentEncoding.encode(bounded)
            #expect(bounded.utf8.count <= GRPCPercentEncoding.maxMessageBytes + 40)
            #expect(encoded.utf8.count <= 3 * (GRPCPercentEncoding.maxMessageBytes + 40))
            if message.utf8.count <= GRPCPercentEncoding.maxMessageBytes {
                #expect(bounded == message)
            } else {
                #expect(bounded.hasSuffix("more bytes)"))
                // Cut between scalars: what is kept is a prefix of the original, character for character.
                let kept = bounded.prefix(while: { $0 != "…" })
                #expect(message.hasPrefix(kept))
            }
        }
    }

    @Test func echoSaysHowMuchWasCut() {
        #expect(SwitchyardError.echo("digits") == "digits")
        #expect(
            SwitchyardError.echo(String(repeating: "a", count: 300)) == String(repeating: "a", count: 256)
                + "… (44 more bytes)"
        )
    }

    @Test(arguments: [
        ("model /srv/models/digits/1/model.onnx is not valid", "model …/model.onnx is not valid"),
        ("'/tmp/x/config.yaml': bad", "'…/config.yaml': bad"),
        ("no paths here / at all", "no paths here / at all"),
        ("relative models/digits stays", "relative models/digits stays"),
    ])
    func absolutePathsAreRedacted(input: String, expected: String) {
        #expect(SwitchyardError.redactingPaths(input) == expected)
    }

    @Test(arguments: [
        ("switchyard-route", true), ("x-a_b.c", true), ("", false), ("Upper", false), (":status", false),
        ("a b", false), ("é", false),
    ])
    func headerNames(name: String, valid: Bool) {
        #expect(HeaderField.isValidName(name) == valid)
    }

    @Test(arguments: [
        ("generation=3; version=2", true), ("", true), ("a\tb", true), (" lead", false), ("trail ", false),
        ("nul\u{0}", false), ("cr\r\nlf", false), ("é", false),
    ])
    func headerValues(value: String, valid: Bool) {
        #expect(HeaderField.isValidValue(value) == valid)
    }

    @Test func theByteBudgetAdmitsWhilePositiveAndChargesAfterwards() {
        let second: UInt64 = 1_000_000_000
        var budget = ByteBudget(perSecond: 1000, now: 0)
        let first = budget.admits(now: 0)
        #expect(first)
        budget.charge(5000, now: 0)  // one large piece goes through, and puts the budget 4000 in debt
        let inDebt = budget.admits(now: 0)
        #expect(!inDebt)
        let atZero = budget.admits(now: 4 * second)  // -4000 + 4000 = 0: still not positive
        #expect(!atZero)
        let later = budget.admits(now: 4 * second + second / 100)
        #expect(later)
        #expect(budget.balance <= 1000)
        _ = budget.admits(now: 3600 * second)
        #expect(budget.balance == 1000)  // never more than one second's worth
    }

    @Test func theNewLimitsAreValidatedWithTheirKeyPaths() {
        var limits = ServerConfiguration.Limits()
        limits.headerTimeoutSeconds = 0
        limits.maxConnectionsPerAddress = -1
        limits.maxInflatedBytesPerSecond = 10
        limits.maxInflatedBytesPerSecondPerConnection = Int(Int32.max) + 1
        let problems = limits.validate().joined(separator: "\n")
        #expect(problems.contains("limits.header_timeout_seconds"))
        #expect(problems.contains("limits.max_connections_per_address"))
        #expect(problems.contains("limits.max_inflated_bytes_per_second:"))
        #expect(problems.contains("limits.max_inflated_bytes_per_second_per_connection"))
        limits = ServerConfiguration.Limits()
        limits.maxConnections = 10
        limits.maxConnectionsPerAddress = 11
        #expect(limits.validate().count == 1)
        limits.maxConnectionsPerAddress = 10
        #expect(limits.validate().isEmpty)
        #expect(ServerConfiguration.Limits().validate().isEmpty)
    }

    @Test func addressCountsRefuseOverTheLimitAndForgetClosedAddresses() {
        let counts = AddressCounts()
        let a = PeerAddress(high: 0, low: 1)
        let b = PeerAddress(high: 0, low: 2)
        #expect(counts.open(a, limit: 2))
        #expect(counts.open(a, limit: 2))
        #expect(!counts.open(a, limit: 2))
        #expect(counts.open(b, limit: 2))
        counts.close(a)
        #expect(counts.count(a) == 1)
        #expect(counts.open(a, limit: 2))
        counts.close(a)
        counts.close(a)
        #expect(counts.count(a) == 0)
    }
}
