import Logging
import SwitchyardCore
import Testing

@testable import SwitchyardSink

@Suite struct HostCPUTests {
    @Test func parsesTheCPULineOfProcStat() throws {
        let times = try #require(HostCPUTimes(procStatLine: "cpu  100 5 50 800 20 3 2 10 0 0"))
        #expect(times.busy == 100 + 5 + 50 + 3 + 2 + 10)
        #expect(times.idle == 800 + 20)
        #expect(HostCPUTimes(procStatLine: "cpu0 1 2 3 4 5 6 7 8") == nil)
        #expect(HostCPUTimes(procStatLine: "intr 1 2 3") == nil)
    }

    @Test func busyShareIsTheBusyPartOfTheTimeBetweenTwoSamples() {
        let earlier = HostCPUTimes(busy: 1_000, idle: 9_000)
        #expect(HostCPUTimes(busy: 1_080, idle: 9_020).busyShare(since: earlier) == 0.8)
        #expect(HostCPUTimes(busy: 1_000, idle: 9_000).busyShare(since: earlier) == 0)
        // A counter that went backwards (a new boot's sample) says nothing.
        #expect(HostCPUTimes(busy: 10, idle: 9_500).busyShare(since: earlier) == 0)
    }

    @Test func readsThisHost() throws {
        let first = try #require(HostCPUTimes.read())
        #expect(first.busy + first.idle > 0)
    }

    @Test func withoutALimitEveryCallIsMirroredAndNoneIsCounted() throws {
        let sink = try ComparisonSink(configuration: SinkConfiguration(), logger: Logger(label: "test"))
        defer { sink.close() }
        for _ in 0..<100 { #expect(sink.admitsMirror()) }
        #expect(sink.statistics.mirrorsSkippedHostBusy == 0)
    }

    /// With the smallest limit a busy host (this test spins a core) skips mirrors and counts each one.
    @Test func aBusyHostSkipsMirrorsAndCountsThem() throws {
        let sink = try ComparisonSink(
            configuration: SinkConfiguration(shadowMaxHostCPU: 0.001),
            logger: Logger(label: "test")
        )
        defer { sink.close() }
        var skipped = 0
        let end = MonotonicInstant.now().advanced(byNanoseconds: 2_000_000_000)
        while MonotonicInstant.now() < end && skipped == 0 {
            if !sink.admitsMirror() { skipped += 1 }
        }
        #expect(skipped > 0)
        #expect(sink.statistics.mirrorsSkippedHostBusy == UInt64(skipped))
    }
}
