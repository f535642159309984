// Fair sharing between tenants in a pool's queue: each tenant's share of the rows under contention, no starvation of a
// tenant that arrives behind a flood, all the rows to a tenant alone, deadline order inside each tenant, and shedding
// (rows ahead for the shed decision, eviction from a full queue) falling on the tenant over its share.

import SwitchyardCore
import Testing

@testable import SwitchyardWorkers

private let us: UInt64 = 1_000
private let ms: UInt64 = 1_000_000

private func job(_ tenant: TenantShare?, tag: Float = 0, rows: Int = 1, deadline: UInt64? = nil, priority: Int = 0)
    -> InferenceJob
{
    InferenceJob(
        inputs: [[Float](repeating: tag, count: rows)],
        rows: rows,
        deadline: deadline.map { MonotonicInstant(nanoseconds: $0) },
        priority: priority,
        enqueuedAt: MonotonicInstant(nanoseconds: 1),
        tenant: tenant,
        completion: { _ in }
    )
}

/// Rows per tenant name in `jobs` (the jobs of no tenant under "").
private func rowsByTenant(_ jobs: [InferenceJob]) -> [String: Int] {
    jobs.reduce(into: [:]) { $0[$1.tenant?.name ?? "", default: 0] += $1.rows }
}

/// Takes batches of `batchRows` until `total` rows are taken (or the queue is empty) and sums them per tenant.
private func serve(_ queue: inout JobQueue, batchRows: Int, total: Int) -> [String: Int] {
    var taken: [String: Int] = [:]
    var rows = 0
    while rows < total, queue.primaryJobs > 0 {
        let batch = queue.takePrimary(rows: batchRows, isDropped: { _ in false }).batch
        rows += batch.reduce(0) { $0 + $1.rows }
        taken.merge(rowsByTenant(batch), uniquingKeysWith: +)
    }
    return taken
}

@Suite struct FairShareTests {
    @Test(arguments: [(1.0, 1.0), (3.0, 1.0), (1.0, 4.0), (2.5, 0.5)])
    func eachTenantGetsItsWeightedShareUnderContention(weightA: Double, weightB: Double) {
        let a = TenantShare(name: "a", index: 0, weight: weightA)
        let b = TenantShare(name: "b", index: 1, weight: weightB)
        var queue = JobQueue()
        for _ in 0..<2_000 {
            queue.append(job(a))
            queue.append(job(b))
        }
        let taken = serve(&queue, batchRows: 16, total: 1_600)
        let shareA = Double(taken["a", default: 0]) / Double(taken["a", default: 0] + taken["b", default: 0])
        #expect(abs(shareA - weightA / (weightA + weightB)) < 0.01, "a got \(taken), expected \(weightA):\(weightB)")
    }

    @Test func sharesAreCountedInRowsNotCalls() {
        let a = TenantShare(name: "a", index: 0, weight: 1)
        let b = TenantShare(name: "b", index: 1, weight: 1)
        var queue = JobQueue()
        for _ in 0..<500 {
            queue.append(job(a, rows: 8))
            for _ in 0..<8 { queue.append(job(b, rows: 1)) }
        }
        let taken = serve(&queue, batchRows: 32, total: 1_600)
        #expect(abs(taken["a", default: 0] - taken["b", default: 0]) <= 16, "\(taken)")
    }

    @Test func aTenantArrivingBehindAFloodIsServedInTheNextBatch() {
        let noisy = TenantShare(name: "noisy", index: 0, weight: 1)
        let polite = TenantShare(name: "polite", index: 1, weight: 1)
        var queue = JobQueue()
        for _ in 0..<10_000 { queue.append(job(noisy)) }
        // The flood has been served alone for a while: that earns it no priority over a newcomer, nor the newcomer
        // any saved-up credit.
        _ = serve(&queue, batchRows: 8, total: 800)
        queue.append(job(polite, tag: 7))
        let next = queue.takePrimary(rows: 8, isDropped: { _ in false }).batch
        #expect(next.contains { $0.tenant === polite })
        let after = queue.takePrimary(rows: 8, isDropped: { _ in false }).batch
        #expect(rowsByTenant(after) == ["noisy": 8])
    }

    @Test func aTenantAloneGetsEveryRow() {
        let only = TenantShare(name: "only", index: 3, weight: 0.25)
        var queue = JobQueue()
        for _ in 0..<40 { queue.append(job(only)) }
        #expect(queue.takePrimary(rows: 16, isDropped: { _ in false }).batch.count == 16)
        #expect(queue.takePrimary(rows: 64, isDropped: { _ in false }).batch.count == 24)
        #expect(queue.primaryJobs == 0)
        #expect(queue.primaryRows == 0)
    }

    @Test func eachTenantKeepsPriorityAndDeadlineOrder() {
        let a = TenantShare(name: "a", index: 0, weight: 1)
        let b = TenantShare(name: "b", index: 1, weight: 1)
        var queue = JobQueue()
        queue.append(job(a, tag: 1, deadline: 900))
        queue.append(job(a, tag: 2, deadline: 100))
        queue.append(job(a, tag: 3))
        queue.append(job(b, tag: 4, deadline: 500))
        queue.append(job(b, tag: 5, deadline: 50))
        queue.append(job(a, tag: 6, deadline: 300, priority: 1))
        let taken = queue.takePrimary(rows: 100, isDropped: { _ in false }).batch
        let order = taken.map { $0.inputs[0][0] }
        #expect(order.filter { [1, 2, 3, 6].contains($0) } == [6, 2, 1, 3])
        #expect(order.filter { [4, 5].contains($0) } == [5, 4])
        // The higher priority level goes first across tenants too.
        #expect(order.first == 6)
    }

    @Test func theEarliestDeadlineOfAnyTenantGuidesWaiting() {
        let a = TenantShare(name: "a", index: 0, weight: 1)
        let b = TenantShare(name: "b", index: 1, weight: 1)
        var queue = JobQueue()
        queue.append(job(a, deadline: 900 * ms))
        queue.append(job(b, deadline: 5 * ms))
        #expect(queue.nextPrimaryDeadline() == MonotonicInstant(nanoseconds: 5 * ms))
    }

    @Test func cancelledAndExpiredJobsLeaveTheirLane() {
        let a = TenantShare(name: "a", index: 0, weight: 1)
        let b = TenantShare(name: "b", index: 1, weight: 1)
        var queue = JobQueue()
        let gone = job(a, tag: 1)
        queue.append(gone)
        queue.append(job(a, tag: 2, deadline: 10))
        queue.append(job(b, tag: 3))
        #expect(queue.removeAll(where: { $0 === gone }).count == 1)
        #expect(queue.takeExpired(now: MonotonicInstant(nanoseconds: 20)).count == 1)
        #expect(queue.rows(of: a) == 0)
        #expect(queue.rows(of: b) == 1)
        #expect(queue.takePrimary(rows: 8, isDropped: { _ in false }).batch.map { $0.inputs[0][0] } == [3])
        #expect(queue.primaryJobs == 0)
    }

    @Test func jobsOfNoTenantShareAsOneLaneWhileTenantsQueue() {
        let a = TenantShare(name: "a", index: 0, weight: 1)
        var queue = JobQueue()
        for _ in 0..<1_000 {
            queue.append(job(a))
            queue.append(job(nil))
        }
        let taken = serve(&queue, batchRows: 10, total: 1_000)
        #expect(taken == ["a": 500, "": 500])
    }

    // MARK: Shedding

    @Test func rowsAheadAreTheTenantsOwnBacklogPlusTheOthersShares() {
        let noisy = TenantShare(name: "noisy", index: 0, weight: 1)
        let polite = TenantShare(name: "polite", index: 1, weight: 1)
        var queue = JobQueue()
        for _ in 0..<500 { queue.append(job(noisy)) }
        for _ in 0..<5 { queue.append(job(polite)) }
        // The polite tenant waits for its 5 rows and as many of the flood's: not for the 500.
        #expect(queue.fairRowsAhead(of: polite, rows: 1) == 5 + 6)
        // The flood waits for all of its own and the polite tenant's few.
        #expect(queue.fairRowsAhead(of: noisy, rows: 1) == 500 + 5)
        // Weights scale the others' share: a tenant of weight 3 gets 3 rows for each of the polite tenant's.
        #expect(JobQueue.rowsServed(queued: 500, weight: 3, during: 6) == 18)
        #expect(JobQueue.rowsServed(queued: 10, weight: 3, during: 6) == 10)
        #expect(JobQueue.rowsServed(queued: 0, weight: 1, during: 6) == 0)
    }

    @Test func theSchedulerShedsTheTenantOverItsShareAndAdmitsTheOther() throws {
        var scheduler = BatchScheduler(settings: .init(maxBatchRows: 64, sloNanoseconds: 10 * ms, workers: 1))
        for rows in [1, 2, 4, 8, 16, 3, 6, 12, 1, 2, 4, 8] {
            scheduler.recordBatch(rows: rows, nanoseconds: UInt64(rows) * 50 * us + 500 * us)
        }
        let noisy = TenantShare(name: "noisy", index: 0, weight: 1)
        let polite = TenantShare(name: "polite", index: 1, weight: 1)
        var queue = JobQueue()
        for _ in 0..<400 { queue.append(job(noisy)) }
        for _ in 0..<4 { queue.append(job(polite)) }
        let now = MonotonicInstant(nanoseconds: 0)
        let workers = BatchScheduler.WorkerState(idle: 1)
        // Without tenants, the whole queue would be ahead of either: both shed.
        #expect(scheduler.overload(now: now, rows: 1, rowsAhead: queue.primaryRows, workers: workers) != nil)
        let politeAhead = queue.fairRowsAhead(of: polite, rows: 1)
        let noisyAhead = queue.fairRowsAhead(of: noisy, rows: 1)
        #expect(scheduler.overload(now: now, rows: 1, rowsAhead: politeAhead, workers: workers) == nil)
        #expect(scheduler.overload(now: now, rows: 1, rowsAhead: noisyAhead, workers: workers) != nil)
    }

    @Test func aFullQueueEvictsTheLastJobOfTheTenantFurthestOverItsShare() throws {
        let noisy = TenantShare(name: "noisy", index: 0, weight: 1)
        let heavy = TenantShare(name: "heavy", index: 1, weight: 4)
        let polite = TenantShare(name: "polite", index: 2, weight: 1)
        var queue = JobQueue()
        for tag in 0..<60 { queue.append(job(noisy, tag: Float(tag), deadline: UInt64(1_000 + tag))) }
        // 100 rows at weight 4 is 25 per unit of weight: less over its share than the noisy tenant's 60.
        for _ in 0..<100 { queue.append(job(heavy)) }
        queue.append(job(polite))
        let victim = queue.evictForFairShare(polite, rows: 1)
        let evicted = try #require(victim)
        #expect(evicted.tenant === noisy)
        // The job that would run last: the noisy tenant's latest deadline.
        #expect(evicted.inputs[0][0] == 59)
        #expect(queue.rows(of: noisy) == 59)
        #expect(queue.primaryJobs == 160)
        // The tenant furthest over its share is shed itself, not someone else.
        let none = queue.evictForFairShare(noisy, rows: 1)
        #expect(none == nil)
    }
}
