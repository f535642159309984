// The queues of one pool: primary jobs ordered by priority (higher first), then deadline (earliest
// first, jobs without one last), then arrival; a bounded FIFO of shadow jobs; and an index of deadlines
// so that expired jobs are found without scanning. Confined to the pool's lock.

import SwitchyardCore

/// A queued job with its place in the queue's indexes. Removal is lazy: a removed entry is marked and
/// skipped by every index when it reaches the top.
final class QueueEntry {
    let job: InferenceJob
    let sequence: UInt64
    var removed = false

    init(job: InferenceJob, sequence: UInt64) {
        self.job = job
        self.sequence = sequence
    }

    /// Queue order: priority (higher first), deadline (earlier first, none last), arrival.
    static func runsBefore(_ lhs: QueueEntry, _ rhs: QueueEntry) -> Bool {
        if lhs.job.priority != rhs.job.priority { return lhs.job.priority > rhs.job.priority }
        switch (lhs.job.deadline, rhs.job.deadline) {
        case (let l?, let r?) where l != r: return l < r
        case (.some, nil): return true
        case (nil, .some): return false
        default: return lhs.sequence < rhs.sequence
        }
    }

    static func expiresBefore(_ lhs: QueueEntry, _ rhs: QueueEntry) -> Bool {
        let l = lhs.job.deadline ?? MonotonicInstant(nanoseconds: .max)
        let r = rhs.job.deadline ?? MonotonicInstant(nanoseconds: .max)
        return l != r ? l < r : lhs.sequence < rhs.sequence
    }
}

/// A binary min-heap under a given order.
struct Heap<Element> {
    private(set) var elements: [Element] = []
    let areInIncreasingOrder: (Element, Element) -> Bool

    init(by areInIncreasingOrder: @escaping (Element, Element) -> Bool) {
        self.areInIncreasingOrder = areInIncreasingOrder
    }

    var count: Int { elements.count }
    var top: Element? { elements.first }

    mutating func insert(_ element: Element) {
        elements.append(element)
        var child = elements.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard areInIncreasingOrder(elements[child], elements[parent]) else { break }
            elements.swapAt(child, parent)
            child = parent
        }
    }

    @discardableResult
    mutating func popTop() -> Element? {
        guard !elements.isEmpty else { return nil }
        elements.swapAt(0, elements.count - 1)
        let top = elements.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < elements.count else { break }
            var best = left
            if left + 1 < elements.count && areInIncreasingOrder(elements[left + 1], elements[left]) { best = left + 1 }
            guard areInIncreasingOrder(elements[best], elements[parent]) else { break }
            elements.swapAt(best, parent)
            parent = best
        }
        return top
    }

    /// Keeps only the elements satisfying `isIncluded` and restores the heap order.
    mutating func filter(_ isIncluded: (Element) -> Bool) {
        let kept = elements.filter(isIncluded)
        elements = []
        elements.reserveCapacity(kept.count)
        for element in kept { insert(element) }
    }
}

/// The primary and shadow queues of one pool.
struct JobQueue {
    private var primary = Heap<QueueEntry>(by: QueueEntry.runsBefore)
    private var arrivalOrder: [QueueEntry] = []
    private var arrivalHead = 0
    private var deadlines = Heap<QueueEntry>(by: QueueEntry.expiresBefore)
    private var shadow: [QueueEntry] = []
    private var shadowHead = 0
    private var sequence: UInt64 = 0
    private var rowsByPriority: [Int: Int] = [:]
    private var liveDeadlines = 0

    /// Primary jobs queued.
    private(set) var primaryJobs = 0
    /// Rows in the primary jobs queued.
    private(set) var primaryRows = 0
    /// Shadow jobs queued.
    private(set) var shadowJobs = 0

    /// Entries held by the primary and deadline indexes, live or stale.
    var indexSizes: (primary: Int, deadlines: Int) { (primary.count, deadlines.count) }

    /// Queues a job in its class.
    mutating func append(_ job: InferenceJob) {
        sequence += 1
        let entry = QueueEntry(job: job, sequence: sequence)
        switch job.workClass {
        case .primary:
            primary.insert(entry)
            arrivalOrder.append(entry)
            primaryJobs += 1
            primaryRows += job.rows
            rowsByPriority[job.priority, default: 0] += job.rows
        case .shadow:
            shadow.append(entry)
            shadowJobs += 1
        }
        if job.deadline != nil {
            deadlines.insert(entry)
            liveDeadlines += 1
        }
        // Entries taken for a batch stay in the deadline index until they reach its top; rebuild the
        // indexes when stale entries outnumber live ones so that memory follows the queue, not traffic.
        if deadlines.count > 2 * liveDeadlines + 1024 || primary.count > 2 * primaryJobs + 1024 {
            primary.filter { !$0.removed }
            deadlines.filter { !$0.removed }
        }
    }

    /// Rows of queued primary jobs that run before a new job of `priority`.
    func primaryRows(atOrAbove priority: Int) -> Int {
        if rowsByPriority.count <= 1, let only = rowsByPriority.first {
            return only.key >= priority ? only.value : 0
        }
        return rowsByPriority.reduce(0) { $0 + ($1.key >= priority ? $1.value : 0) }
    }

    /// When the longest-waiting primary job was queued.
    mutating func oldestPrimaryEnqueuedAt() -> MonotonicInstant? {
        while arrivalHead < arrivalOrder.count && arrivalOrder[arrivalHead].removed { arrivalHead += 1 }
        compactArrivals()
        return arrivalHead < arrivalOrder.count ? arrivalOrder[arrivalHead].job.enqueuedAt : nil
    }

    /// The earliest deadline of any queued job.
    mutating func earliestDeadline() -> MonotonicInstant? {
        while let top = deadlines.top, top.removed { deadlines.popTop() }
        return deadlines.top?.job.deadline
    }

    /// The deadline of the job the next primary batch starts with: the earliest of the highest
    /// priority level queued.
    mutating func nextPrimaryDeadline() -> MonotonicInstant? {
        while let top = primary.top, top.removed { primary.popTop() }
        return primary.top?.job.deadline
    }

    /// Removes and returns primary jobs in queue order up to `rows` rows (at least one job). Jobs for
    /// which `isDropped` is true are removed too and returned separately.
    mutating func takePrimary(rows limit: Int, isDropped: (InferenceJob) -> Bool) -> (
        batch: [InferenceJob], dropped: [InferenceJob]
    ) {
        var batch: [InferenceJob] = []
        var dropped: [InferenceJob] = []
        var rows = 0
        while let top = primary.top {
            if top.removed {
                primary.popTop()
                continue
            }
            if isDropped(top.job) {
                primary.popTop()
                remove(top)
                dropped.append(top.job)
                continue
            }
            if !batch.isEmpty && rows + top.job.rows > limit { break }
            primary.popTop()
            remove(top)
            batch.append(top.job)
            rows += top.job.rows
            if rows >= limit { break }
        }
        return (batch, dropped)
    }

    /// Removes and returns shadow jobs in arrival order up to `rows` rows (at least one job).
    mutating func takeShadow(rows limit: Int, isDropped: (InferenceJob) -> Bool) -> (
        batch: [InferenceJob], dropped: [InferenceJob]
    ) {
        var batch: [InferenceJob] = []
        var dropped: [InferenceJob] = []
        var rows = 0
        while shadowHead < shadow.count {
            let entry = shadow[shadowHead]
            if entry.removed {
                shadowHead += 1
                continue
            }
            if isDropped(entry.job) {
                shadowHead += 1
                remove(entry)
                dropped.append(entry.job)
                continue
            }
            if !batch.isEmpty && rows + entry.job.rows > limit { break }
            shadowHead += 1
            remove(entry)
            batch.append(entry.job)
            rows += entry.job.rows
            if rows >= limit { break }
        }
        compactShadow()
        return (batch, dropped)
    }

    /// Removes and returns every queued job whose deadline is at or before `now`.
    mutating func takeExpired(now: MonotonicInstant) -> [InferenceJob] {
        var expired: [InferenceJob] = []
        while let top = deadlines.top {
            if top.removed {
                deadlines.popTop()
                continue
            }
            guard let deadline = top.job.deadline, deadline <= now else { break }
            deadlines.popTop()
            remove(top)
            expired.append(top.job)
        }
        return expired
    }

    /// Removes and returns every queued job (of either class) for which `predicate` is true.
    mutating func removeAll(where predicate: (InferenceJob) -> Bool) -> [InferenceJob] {
        var removed: [InferenceJob] = []
        for entry in primary.elements where !entry.removed && predicate(entry.job) {
            remove(entry)
            removed.append(entry.job)
        }
        for entry in shadow[shadowHead...] where !entry.removed && predicate(entry.job) {
            remove(entry)
            removed.append(entry.job)
        }
        if !removed.isEmpty { compactIndexes() }
        return removed
    }

    /// Removes and returns the oldest queued shadow job.
    mutating func dropOldestShadow() -> InferenceJob? {
        while shadowHead < shadow.count {
            let entry = shadow[shadowHead]
            shadowHead += 1
            if entry.removed { continue }
            remove(entry)
            compactShadow()
            return entry.job
        }
        return nil
    }

    private mutating func remove(_ entry: QueueEntry) {
        guard !entry.removed else { return }
        entry.removed = true
        if entry.job.deadline != nil { liveDeadlines -= 1 }
        switch entry.job.workClass {
        case .primary:
            primaryJobs -= 1
            primaryRows -= entry.job.rows
            let left = (rowsByPriority[entry.job.priority] ?? 0) - entry.job.rows
            rowsByPriority[entry.job.priority] = left > 0 ? left : nil
        case .shadow:
            shadowJobs -= 1
        }
    }

    private mutating func compactArrivals() {
        if arrivalHead > 256 && arrivalHead * 2 > arrivalOrder.count {
            arrivalOrder.removeFirst(arrivalHead)
            arrivalHead = 0
        }
    }

    private mutating func compactShadow() {
        if shadowHead > 256 && shadowHead * 2 > shadow.count {
            shadow.removeFirst(shadowHead)
            shadowHead = 0
        }
    }

    /// Drops removed entries from every index, after removals from the middle of the queue.
    private mutating func compactIndexes() {
        primary.filter { !$0.removed }
        deadlines.filter { !$0.removed }
        arrivalOrder = arrivalOrder[arrivalHead...].filter { !$0.removed }
        arrivalHead = 0
        shadow = shadow[shadowHead...].filter { !$0.removed }
        shadowHead = 0
    }
}
