// Queue order (priority, deadline, arrival), deadline expiry and removal bookkeeping.

import SwitchyardCore
import Testing

@testable import SwitchyardWorkers

private func job(
    _ tag: Float,
    rows: Int = 1,
    deadline: UInt64? = nil,
    priority: Int = 0,
    workClass: WorkClass = .primary
) -> InferenceJob {
    InferenceJob(
        inputs: [[Float](repeating: tag, count: rows)],
        rows: rows,
        deadline: deadline.map { MonotonicInstant(nanoseconds: $0) },
        priority: priority,
        workClass: workClass,
        enqueuedAt: MonotonicInstant(nanoseconds: 1),
        completion: { _ in }
    )
}

private func tags(_ jobs: [InferenceJob]) -> [Float] { jobs.map { $0.inputs[0][0] } }

@Suite struct JobQueueTests {
    @Test func ordersByPriorityThenDeadlineThenArrival() {
        var queue = JobQueue()
        queue.append(job(1))
        queue.append(job(2, deadline: 500))
        queue.append(job(3, deadline: 100))
        queue.append(job(4, priority: 1))
        queue.append(job(5, deadline: 900, priority: 1))
        queue.append(job(6))
        queue.append(job(7, deadline: 100))
        let taken = queue.takePrimary(rows: 100, isDropped: { _ in false }).batch
        #expect(tags(taken) == [5, 4, 3, 7, 2, 1, 6])
        #expect(queue.primaryJobs == 0)
        #expect(queue.primaryRows == 0)
    }

    @Test(arguments: [(1, 1), (3, 2), (4, 3), (5, 3), (100, 4)])
    func takesUpToTheRowLimitWithAtLeastOneJob(limit: Int, jobs: Int) {
        var queue = JobQueue()
        for (tag, rows) in [(1, 1), (2, 2), (3, 1), (4, 8)] { queue.append(job(Float(tag), rows: rows)) }
        let taken = queue.takePrimary(rows: limit, isDropped: { _ in false }).batch
        #expect(taken.count == jobs)
        #expect(queue.primaryJobs == 4 - jobs)
    }

    @Test func aJobLargerThanTheLimitRunsAlone() {
        var queue = JobQueue()
        queue.append(job(1, rows: 10))
        queue.append(job(2, rows: 1))
        #expect(tags(queue.takePrimary(rows: 4, isDropped: { _ in false }).batch) == [1])
        #expect(queue.primaryRows == 1)
    }

    @Test func dropsJobsWhileTaking() {
        var queue = JobQueue()
        for tag in 1...5 { queue.append(job(Float(tag))) }
        let (batch, dropped) = queue.takePrimary(
            rows: 3,
            isDropped: { $0.inputs[0][0].truncatingRemainder(dividingBy: 2) == 0 }
        )
        #expect(tags(batch) == [1, 3, 5])
        #expect(tags(dropped) == [2, 4])
        #expect(queue.primaryJobs == 0)
    }

    @Test func expiresByDeadlineAcrossClasses() {
        var queue = JobQueue()
        queue.append(job(1, deadline: 300))
        queue.append(job(2, deadline: 100, workClass: .shadow))
        queue.append(job(3))
        queue.append(job(4, deadline: 200))
        #expect(queue.earliestDeadline() == MonotonicInstant(nanoseconds: 100))
        #expect(tags(queue.takeExpired(now: MonotonicInstant(nanoseconds: 250))) == [2, 4])
        #expect(queue.primaryJobs == 2)
        #expect(queue.shadowJobs == 0)
        #expect(queue.earliestDeadline() == MonotonicInstant(nanoseconds: 300))
        // A job taken for a batch no longer expires.
        _ = queue.takePrimary(rows: 1, isDropped: { _ in false })
        #expect(queue.takeExpired(now: MonotonicInstant(nanoseconds: 1_000)).isEmpty)
        #expect(queue.earliestDeadline() == nil)
    }

    @Test func countsRowsAheadByPriority() {
        var queue = JobQueue()
        queue.append(job(1, rows: 2, priority: 0))
        queue.append(job(2, rows: 3, priority: 1))
        queue.append(job(3, rows: 4, priority: 2))
        #expect(queue.primaryRows(atOrAbove: 0) == 9)
        #expect(queue.primaryRows(atOrAbove: 1) == 7)
        #expect(queue.primaryRows(atOrAbove: 3) == 0)
    }

    @Test func removesFromTheMiddleAndKeepsOrder() {
        var queue = JobQueue()
        let victim = job(2)
        queue.append(job(1))
        queue.append(victim)
        queue.append(job(3, workClass: .shadow))
        queue.append(job(4))
        #expect(tags(queue.removeAll(where: { $0 === victim })) == [2])
        #expect(queue.oldestPrimaryEnqueuedAt() != nil)
        #expect(tags(queue.takePrimary(rows: 10, isDropped: { _ in false }).batch) == [1, 4])
        #expect(tags(queue.takeShadow(rows: 10, isDropped: { _ in false }).batch) == [3])
    }

    @Test func staleEntriesDoNotAccumulate() {
        var queue = JobQueue()
        for round in 0..<20_000 {
            queue.append(job(Float(round), deadline: UInt64(1_000_000 + round)))
            _ = queue.takePrimary(rows: 1, isDropped: { _ in false })
        }
        #expect(queue.primaryJobs == 0)
        #expect(queue.indexSizes.deadlines <= 1_030)
        #expect(queue.indexSizes.primary <= 1_030)
        #expect(queue.takeExpired(now: MonotonicInstant(nanoseconds: .max)).isEmpty)
    }
}
