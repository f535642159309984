// Decompression off the event loops. A compressed request message (gzip, deflate) is copied and handed to one
// helper thread, which inflates it (stopping at `max_request_bytes`) and posts the result back to the call's
// loop; a loop never spends more than a copy on it. Inflated bytes are budgeted per process here and per
// connection on the loop, so a stream of gzip bombs costs the helper at most its budget per second.

internal import CEpoll
import SwitchyardCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What a compressed message became.
enum InflateOutcome: Sendable {
    /// The inflated message.
    case message([UInt8])
    /// Refused or undecodable: the status to end the call with.
    case failed(GRPCStatus)
}

/// One connection's inflated-bytes budget, checked by the loop before a message is queued and by the helper
/// before and after it inflates one (the helper sees every earlier message's cost, however many were queued).
final class InflateBudget: Sendable {
    private let budget: Mutex<ByteBudget>
    /// Bytes per second.
    let perSecond: Int

    init(perSecond: Int, now: UInt64) {
        self.perSecond = perSecond
        budget = Mutex(ByteBudget(perSecond: perSecond, now: now))
    }

    /// Whether a message may be inflated now.
    func admits(now: UInt64) -> Bool { budget.withLock { $0.admits(now: now) } }

    /// Charges the bytes one message inflated to.
    func charge(_ bytes: Int, now: UInt64) { budget.withLock { $0.charge(bytes, now: now) } }
}

/// One compressed message waiting to be inflated.
struct InflateJob: Sendable {
    let call: GRPCCall
    let encoding: GRPCCompression
    let compressed: [UInt8]
    /// The connection's budget.
    let budget: InflateBudget
}

/// The helper thread and its bounded queue, shared by the loops of one server.
final class Inflater: Sendable {
    /// Jobs queued at most; more are refused with RESOURCE_EXHAUSTED.
    static let maxQueued = 256

    private struct State {
        var queue: [InflateJob] = []
        var head = 0
        var stopping = false
        var budget: ByteBudget
    }

    private let state: Mutex<State>
    private let wakeup = WakeUpFlag()
    private let limit: Int
    private let perSecond: Int
    private let started = Atomic<Bool>(false)

    /// An inflater producing at most `limit` bytes per message and `perSecond` inflated bytes per second in all.
    init(limit: Int, perSecond: Int) {
        self.limit = limit
        self.perSecond = perSecond
        state = Mutex(State(budget: ByteBudget(perSecond: perSecond, now: MonotonicInstant.now().nanoseconds)))
    }

    /// Starts the helper thread (once).
    func start() throws(SwitchyardError) {
        guard !started.exchange(true, ordering: .relaxed) else { return }
        _ = try startThread(name: "sy-inflate") { [self] in run() }
    }

    /// Stops the helper thread after the job it is running; queued jobs are dropped.
    func stop() {
        state.withLock { $0.stopping = true }
        wakeup.signal()
    }

    /// Queues a job; false when the queue is full (the caller refuses the call).
    func submit(_ job: InflateJob) -> Bool {
        let accepted = state.withLock { state in
            guard !state.stopping, state.queue.count - state.head < Self.maxQueued else { return false }
            state.queue.append(job)
            return true
        }
        if accepted { wakeup.signal() }
        return accepted
    }

    private func run() {
        // Well below the loops and the workers (about a tenth of their weight when the CPU is contended): inflation
        // is admitted work, never in front of answers. At nice 5 a stream of gzip bombs still took a quarter of a
        // busy core from the calls beside it.
        _ = cswitchyard_set_thread_nice(10)
        while true {
            wakeup.wait()
            while true {
                enum Next {
                    case job(InflateJob, admitted: Bool)
                    case idle
                    case stop
                }
                let next: Next = state.withLock { state in
                    if state.stopping { return .stop }
                    guard state.head < state.queue.count else {
                        state.queue.removeAll(keepingCapacity: true)
                        state.head = 0
                        return .idle
                    }
                    let job = state.queue[state.head]
                    state.queue[state.head] = InflateJob(
                        call: job.call,
                        encoding: .identity,
                        compressed: [],
                        budget: job.budget
                    )
                    state.head += 1
                    return .job(job, admitted: state.budget.admits(now: MonotonicInstant.now().nanoseconds))
                }
                switch next {
                case .stop: return
                case .idle: break
                case .job(let job, let admitted):
                    let (outcome, produced) = inflate(job, admitted: admitted)
                    job.call.loop.enqueue(.inflated(job.call, outcome, produced))
                    continue
                }
                break
            }
        }
    }

    /// The outcome and the inflated bytes it cost (charged to the process budget here, to the connection's on
    /// the loop).
    private func inflate(_ job: InflateJob, admitted: Bool) -> (InflateOutcome, Int) {
        guard admitted else {
            let refusal = InflateOutcome.failed(
                GRPCStatus(
                    .resourceExhausted,
                    "decompression over budget: \(perSecond) inflated bytes per second for the whole server (limits.max_inflated_bytes_per_second)"
                )
            )
            return (refusal, 0)
        }
        if !job.budget.admits(now: MonotonicInstant.now().nanoseconds) {
            let refusal = InflateOutcome.failed(
                GRPCStatus(
                    .resourceExhausted,
                    "decompression over budget: \(job.budget.perSecond) inflated bytes per second for this connection (limits.max_inflated_bytes_per_second_per_connection)"
                )
            )
            return (refusal, 0)
        }
        if job.call.isCancelled {
            return (.failed(GRPCStatus(.cancelled, "call ended before its message was inflated")), 0)
        }
        let result: InflateOutcome
        var produced = 0
        let decoded = job.compressed.withUnsafeBytes { raw in
            Result { () throws(GRPCCompression.DecodeError) in try job.encoding.decompress(raw, limit: limit) }
        }
        switch decoded {
        case .success(let inflated):
            produced = inflated.count
            result = .message(inflated)
        case .failure(.tooLarge(let limit)):
            produced = limit
            result = .failed(
                GRPCStatus(
                    .resourceExhausted,
                    "decompressed request message exceeds the limit of \(limit) bytes (max_request_bytes)"
                )
            )
        case .failure(.corrupt(let reason)):
            result = .failed(GRPCStatus(.internal, "cannot decompress request message: \(reason)"))
        }
        let charged = produced
        let now = MonotonicInstant.now().nanoseconds
        state.withLock { $0.budget.charge(charged, now: now) }
        job.budget.charge(charged, now: now)
        return (result, produced)
    }
}

/// A wake-up flag the inflate thread sleeps on (no Dispatch in the data plane): `signal` sets it, `wait` returns
/// once it is set and clears it, so any number of signals while the thread works make one wake-up.
final class WakeUpFlag: Sendable {
    private let pending = ConditionLock(false)
    private let condition = MonotonicCondition()

    func signal() {
        pending.withLock { pending in
            pending = true
            condition.signal()
        }
    }

    func wait() {
        pending.withLock(waitingOn: condition, while: { !$0 }) { $0 = false }
    }
}
