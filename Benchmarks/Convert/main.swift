// Datatype conversion benchmark: CPU time per 784-value row (an MNIST-sized input) to widen each datatype to
// FP32, as a request's decode does, and to narrow FP32 to it, as a response's encode does, on every conversion
// path this CPU runs. Thread CPU time, best of several runs, so that a shared machine's other work counts less.

import CSwitchyardConvert
import Foundation
import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#endif

let quick = CommandLine.arguments.contains("--quick")
let width = 784
let rowsPerBatch = [1, 64]
let dataTypes: [DataType] = [.fp32, .fp16, .bf16, .int64, .int32, .int8, .uint8, .fp64, .bool]

func threadNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// The host CPU's model name and the conversion-relevant flags, from /proc/cpuinfo.
func hostDescription() -> String {
    guard let file = fopen("/proc/cpuinfo", "r") else { return "unknown CPU" }
    defer { fclose(file) }
    var model = "unknown CPU"
    var flags: Set<Substring> = []
    var line: UnsafeMutablePointer<CChar>?
    var capacity = 0
    while getline(&line, &capacity, file) > 0 {
        let text = String(cString: line!)
        if text.hasPrefix("model name"), let colon = text.firstIndex(of: ":") {
            model = String(text[text.index(after: colon)...]).trimmingCharacters(in: .whitespacesAndNewlines)
        } else if text.hasPrefix("flags"), flags.isEmpty, let colon = text.firstIndex(of: ":") {
            flags = Set(text[text.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\n" }))
        }
        if model != "unknown CPU" && !flags.isEmpty { break }
    }
    free(line)
    let wanted = ["avx2", "f16c", "fma", "avx512f", "avx512dq", "avx512_bf16", "avx512_fp16", "amx_bf16"]
    let present = wanted.map { flags.contains(Substring($0)) ? $0 : "no \($0)" }
    return "\(model); \(present.joined(separator: ", ")); \(SystemInfo.coreCount) CPUs online"
}

/// Best-of-`runs` nanoseconds of thread CPU per row for `body`, which converts `rows` rows once per call.
func measure(rows: Int, _ body: () -> Void) -> Double {
    let calls = max(1, (quick ? 20_000 : 200_000) / rows)
    for _ in 0..<min(calls, 1000) { body() }  // warm caches and the branch predictor
    var best = Double.infinity
    for _ in 0..<(quick ? 3 : 7) {
        let start = threadNanoseconds()
        for _ in 0..<calls { body() }
        best = min(best, Double(threadNanoseconds() - start) / Double(calls * rows))
    }
    return best
}

let paths: [(Int32, String)] = [
    (Int32(SY_CONVERT_PORTABLE), "portable"), (Int32(SY_CONVERT_AVX2), "avx2+f16c"),
].filter { sy_convert_available($0.0) != 0 }

print("host: \(hostDescription())")
print("chosen path: \(paths.first { $0.0 == sy_convert_best_path() }?.1 ?? "?")")
print("ns of thread CPU per \(width)-value row (best of runs); FP32 is the memcpy baseline")
print()
print(
    "direction  datatype  rows  "
        + paths.map { $0.1.padding(toLength: 10, withPad: " ", startingAt: 0) }.joined(separator: "  ")
)

for direction in ["decode", "encode"] {
    for dataType in dataTypes {
        let size = dataType.elementSize!
        for rows in rowsPerBatch {
            let count = rows * width
            let raw = UnsafeMutableRawPointer.allocate(byteCount: count * size, alignment: 64)
            let floats = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer {
                raw.deallocate()
                floats.deallocate()
            }
            // Values every datatype holds: small integers, as labels, ids and pixel intensities are.
            for index in 0..<count { floats[index] = Float(index % 200) }
            _ = sy_convert_from_float(Int32(SY_CONVERT_PORTABLE), Int32(dataType.modelConfigNumber), floats, raw, count)
            var cells: [String] = []
            for (path, _) in paths {
                let code = Int32(dataType.modelConfigNumber)
                let nanoseconds =
                    direction == "decode"
                    ? measure(rows: rows) { _ = sy_convert_to_float(path, code, raw, floats, count) }
                    : measure(rows: rows) { _ = sy_convert_from_float(path, code, floats, raw, count) }
                cells.append(String(format: "%.1f", nanoseconds).padding(toLength: 10, withPad: " ", startingAt: 0))
            }
            print(
                direction.padding(toLength: 9, withPad: " ", startingAt: 0) + "  "
                    + dataType.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0) + "  "
                    + String(rows).padding(toLength: 4, withPad: " ", startingAt: 0) + "  "
                    + cells.joined(separator: "  ")
            )
        }
    }
}
