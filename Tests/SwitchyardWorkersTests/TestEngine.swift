// An engine for pool tests: y = 2·x, taking a configurable a·rows + b of wall time per batch, and
// logging every batch it runs so tests can check order and overlap.

import SwitchyardCore
import SwitchyardEngine
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One batch as the test engine saw it.
struct RunRecord: Sendable {
    var rows: Int
    var firstValue: Float
    var start: MonotonicInstant
    var end: MonotonicInstant
    /// The running thread's scheduling policy (0 normal, 5 idle).
    var policy: Int32
}

/// y = 2·x over rows of `width` values, spinning for `perBatchNanoseconds + rows · perRowNanoseconds`.
/// An input row starting with NaN makes the batch fail with `invalidArgument`; one starting with -infinity
/// makes it fail with `internal`, as a kernel fault would.
final class DoublingEngine: InferenceEngine {
    let signature: ModelSignature
    let width: Int
    let perRowNanoseconds: UInt64
    let perBatchNanoseconds: Mutex<UInt64>
    let log = Mutex<[RunRecord]>([])

    init(width: Int = 4, perRowNanoseconds: UInt64 = 0, perBatchNanoseconds: UInt64 = 0) {
        self.width = width
        self.perRowNanoseconds = perRowNanoseconds
        self.perBatchNanoseconds = Mutex(perBatchNanoseconds)
        signature = ModelSignature(
            inputs: [TensorSpec(name: "x", dataType: .fp32, shape: [-1, width])],
            outputs: [TensorSpec(name: "y", dataType: .fp32, shape: [-1, width])]
        )
    }

    func makeExecutor() -> any EngineExecutor { Executor(engine: self) }

    var records: [RunRecord] { log.withLock { $0 } }

    final class Executor: EngineExecutor {
        let engine: DoublingEngine
        init(engine: DoublingEngine) { self.engine = engine }

        func run(
            inputs: [UnsafeBufferPointer<Float>],
            rows: Int,
            outputs: [UnsafeMutableBufferPointer<Float>]
        ) throws(SwitchyardError) {
            let start = MonotonicInstant.now()
            let cost = engine.perBatchNanoseconds.withLock { $0 } + UInt64(rows) * engine.perRowNanoseconds
            for index in 0..<(rows * engine.width) { outputs[0][index] = 2 * inputs[0][index] }
            while MonotonicInstant.now().nanoseconds(since: start) < cost {}
            let end = MonotonicInstant.now()
            engine.log.withLock {
                $0.append(
                    RunRecord(
                        rows: rows,
                        firstValue: inputs[0][0],
                        start: start,
                        end: end,
                        policy: sched_getscheduler(0)
                    )
                )
            }
            if (0..<rows).contains(where: { inputs[0][$0 * engine.width].isNaN }) {
                throw SwitchyardError.invalidArgument("input 'x': expected numbers, got NaN")
            }
            if (0..<rows).contains(where: { inputs[0][$0 * engine.width] == -.infinity }) {
                throw SwitchyardError.internal("kernel fault: row starts with -inf")
            }
        }
    }
}
