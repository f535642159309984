// How busy the host's CPUs are, sampled from /proc/stat by a small thread, so that mirroring can stop
// while the machine has no spare capacity.

import SwitchyardCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Cumulative CPU time of the whole host, in clock ticks, from the first line of `/proc/stat`.
struct HostCPUTimes: Sendable, Hashable {
    /// Ticks spent running anything (user, nice, system, irq, softirq, steal).
    var busy: UInt64
    /// Ticks idle or waiting for I/O.
    var idle: UInt64

    /// The busy share of the CPU time between `earlier` and these times, in [0, 1]; 0 when none passed.
    func busyShare(since earlier: HostCPUTimes) -> Double {
        let busyTicks = busy &- earlier.busy
        let total = busyTicks &+ (idle &- earlier.idle)
        guard total > 0, busy >= earlier.busy, idle >= earlier.idle else { return 0 }
        return Double(busyTicks) / Double(total)
    }
}

extension HostCPUTimes {
    /// Parses the `cpu` line of `/proc/stat`; `nil` when it is not one.
    init?(procStatLine line: Substring) {
        let fields = line.split(separator: " ")
        guard fields.first == "cpu", fields.count >= 8 else { return nil }
        let values = fields.dropFirst().prefix(8).compactMap { UInt64($0) }
        guard values.count >= 7 else { return nil }
        // user nice system idle iowait irq softirq [steal]; guest time is already inside user.
        idle = values[3] + values[4]
        busy = values[0] + values[1] + values[2] + values[5] + values[6] + (values.count > 7 ? values[7] : 0)
    }

    /// The host's times now, or `nil` where `/proc/stat` cannot be read.
    static func read() -> HostCPUTimes? {
        guard let file = fopen("/proc/stat", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        let line = String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return HostCPUTimes(procStatLine: line[...])
    }
}

/// Samples the host's busy share every `intervalMilliseconds` on its own thread.
final class HostCPUMonitor: @unchecked Sendable {
    private let busyPermille = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let intervalMicroseconds: UInt32
    private var thread: pthread_t?

    init(intervalMilliseconds: Int = 100) throws(SwitchyardError) {
        intervalMicroseconds = UInt32(max(1, intervalMilliseconds) * 1_000)
        thread = try startThread(name: "sy-host-cpu") { [self] in run() }
    }

    /// The busy share of the last interval, in [0, 1].
    var busyShare: Double { Double(busyPermille.load(ordering: .relaxed)) / 1_000 }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private func run() {
        var previous = HostCPUTimes.read()
        while !stopping.load(ordering: .relaxed) {
            usleep(intervalMicroseconds)
            guard let now = HostCPUTimes.read() else { continue }
            if let previous { busyPermille.store(Int(now.busyShare(since: previous) * 1_000), ordering: .relaxed) }
            previous = now
        }
    }
}
