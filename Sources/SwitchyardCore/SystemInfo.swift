// Facts about the host that defaults are derived from, and naming, prioritising and pinning the calling thread.
import CEpoll
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Host facts used for defaults.
public enum SystemInfo {
    /// Online processor count, at least 1.
    /// This machine's host name (`gethostname`), or `localhost` when it has none.
    public static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }

    public static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Names the calling thread (Linux keeps the first 15 bytes), so that `top -H`, `perf` and
    /// `/proc/PID/task/*/comm` tell the gateway's threads apart.
    public static func nameCurrentThread(_ name: String) {
        cswitchyard_set_thread_name(name)
    }

    /// Gives the calling thread the lowest normal priority (nice 19): it still runs on a busy machine,
    /// but with about 1/70 of a default thread's share. For background threads whose work may fall
    /// behind, such as the comparison sink's writer. Returns whether the kernel accepted it.
    @discardableResult
    public static func lowerCurrentThreadPriority() -> Bool {
        cswitchyard_set_thread_nice(19) == 0
    }

    /// The CPUs this process may run on (its main thread's affinity mask, which a container's cpuset or
    /// `taskset` narrows; not the calling thread's, which may be pinned), ascending.
    public static var allowedCPUs: [Int] {
        var cpus = [Int32](repeating: 0, count: 1024)
        let count = cswitchyard_allowed_cpus(&cpus, Int32(cpus.count))
        guard count > 0 else { return Array(0..<coreCount) }
        return cpus.prefix(Int(count)).map(Int.init)
    }

    /// Parses a CPU list in the notation of `taskset -c` and cpusets: CPUs and ranges separated by commas,
    /// as in `1`, `2-3` or `0,4-7`. Returns the CPUs ascending without repeats, or `nil` when `text` is not
    /// such a list.
    public static func parseCPUList(_ text: String) -> [Int]? {
        var cpus = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.trimmingSpaces.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 1 || bounds.count == 2,
                let low = Int(bounds[0]), let high = Int(bounds[bounds.count - 1]),
                low >= 0, low <= high, high < 4096
            else { return nil }
            cpus.formUnion(low...high)
        }
        return cpus.sorted()
    }

    /// A CPU list in the same notation, ranges joined: `[0, 1, 2, 5]` → `0-2,5`.
    public static func describeCPUList(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var index = 0
        let sorted = Array(Set(cpus)).sorted()
        while index < sorted.count {
            var end = index
            while end + 1 < sorted.count && sorted[end + 1] == sorted[end] + 1 { end += 1 }
            parts.append(end == index ? "\(sorted[index])" : "\(sorted[index])-\(sorted[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }

    /// What is wrong with `text` as the CPU list of the setting `key`, naming what was expected: not a list,
    /// or CPUs this process may not run on. `nil` when it is a usable list.
    public static func cpuListProblem(_ text: String, key: String) -> String? {
        guard let cpus = parseCPUList(text) else {
            return "\(key): expected a CPU list such as \"1\", \"2-3\" or \"0,2-3\", got \"\(text)\""
        }
        let allowed = Set(allowedCPUs)
        let missing = cpus.filter { !allowed.contains($0) }
        guard missing.isEmpty else {
            let subject = missing.count == 1 ? "CPU \(missing[0]) is" : "CPUs \(describeCPUList(missing)) are"
            return
                "\(key): \(subject) not available to this process, which may run on \(describeCPUList(Array(allowed)))"
        }
        return nil
    }

    /// The CPUs each of this process's threads named `name` may run on, read from `/proc/self/task` (empty
    /// when no thread has that name). For the tests of the pinning settings.
    static func cpus(ofThreadsNamed name: String) -> [[Int]] {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return [] }
        return tasks.compactMap { task in
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
                comm.trimmingCharacters(in: .whitespacesAndNewlines) == name,
                let status = try? String(contentsOfFile: "/proc/self/task/\(task)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
            else { return nil }
            return parseCPUList(line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces))
        }
    }

    /// Restricts the calling thread to `cpus`; returns 0 or the errno value the kernel gave.
    @discardableResult
    public static func pinCurrentThread(to cpus: [Int]) -> Int32 {
        let list = cpus.map { Int32($0) }
        return cswitchyard_pin_thread(list, Int32(list.count))
    }
}

extension KeyedDecodingContainer {
    /// A CPU list setting (`worker_cpus`, `io_cpus`) as written: YAML reads `1` as a number, which is the one-CPU
    /// list "1". Checked by `SystemInfo.cpuListProblem` when the configuration is validated.
    func decodeCPUListIfPresent(forKey key: Key) throws -> String? {
        if let number = try? decodeIfPresent(Int.self, forKey: key) { return String(number) }
        return try decodeIfPresent(String.self, forKey: key)
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var text = self
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return text
    }
}
