// swift-otel's tasks (its batch span processor and OTLP/HTTP exporter) run on the tracing thread, between its
// passes, rather than on the global concurrent executor: a pass hands the processor its spans through an async
// stream, and each span resumed the processor's task on another thread (a wake-up and a context switch per span,
// most of what tracing cost). Queued here instead, the processor takes the whole pass's spans right after it, on the
// same thread. Work resumed from elsewhere (an export's HTTP response, the processor's timer) waits for the next
// pass, at most the tracer's gathering interval. Once the tracing thread has stopped, jobs go to the global executor.

import Synchronization

/// A task executor drained by the tracing thread.
final class TracingThreadExecutor: TaskExecutor, Sendable {
    private struct State {
        var jobs: [UnownedJob] = []
        var forwarding = false
    }

    private let state = Mutex(State())

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let queued = state.withLock { state in
            guard !state.forwarding else { return false }
            state.jobs.append(job)
            return true
        }
        if !queued { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }

    /// Runs the queued jobs, and those they queue, on the calling thread (the tracing thread), for a bounded number
    /// of rounds (what is left waits for the next call).
    func runQueued() {
        for _ in 0..<64 {
            let jobs = state.withLock { state in
                defer { state.jobs.removeAll(keepingCapacity: true) }
                return state.jobs
            }
            guard !jobs.isEmpty else { return }
            for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }

    /// Hands the queued jobs and every later one to the global executor (the tracing thread has stopped).
    func forwardToGlobal() {
        let jobs = state.withLock { state in
            state.forwarding = true
            defer { state.jobs = [] }
            return state.jobs
        }
        for job in jobs { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }
}
