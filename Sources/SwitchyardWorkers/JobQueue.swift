// The queues of one pool: primary jobs ordered by priority (higher first), then deadline (earliest
// first, jobs without one last), then arrival; a bounded FIFO of shadow jobs; and an index of deadlines
// so that expired jobs are found without scanning. Confined to the pool's lock.
//
// Jobs of tenants (`tenants:`) queue in one lane per tenant, each lane in that same order, and batches
// take from the lanes by start-time fair queuing: every lane carries a virtual finish time that grows
// by rows / weight as it is served, the lane whose next job would start earliest in virtual time goes
// next (highest priority level first), and an idle lane rejoins at the current virtual time, with no
// credit saved up. Under contention each tenant gets its weight's share of the rows; a tenant alone
// gets them all (work-conserving). Jobs of no tenant queue as they always did.

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

/// One tenant's queued primary jobs, in queue order, and its place in the fair sharing.
final class TenantLane {
    /// The tenant's weight, from the latest job queued.
    var weight: Double
    var heap = Heap<QueueEntry>(by: QueueEntry.runsBefore)
    /// Live jobs and rows in `heap`.
    var jobs = 0
    var rows = 0
    /// Virtual time up to which the lane has been served: each job taken adds its rows / weight.
    var finish = 0.0

    init(weight: Double) { self.weight = weight }

    /// The next live job, dropping removed entries from the top.
    func head() -> QueueEntry? {
        while let top = heap.top, top.removed { heap.popTop() }
        return heap.top
    }
}

/// The primary and shadow queues of one pool.
struct JobQueue {
    /// Primary jobs of no tenant.
    private var primary = Heap<QueueEntry>(by: QueueEntry.runsBefore)
    /// Lanes by tenant index; a lane stays once made (tenants are few), empty or not.
    private var lanes: [TenantLane?] = []
    /// Primary jobs queued in lanes.
    private var laneJobs = 0
    /// Fair queuing's virtual time: the start of the job served last.
    private var virtualTime = 0.0
    /// The virtual finish of the jobs of no tenant, which share as one lane of weight 1 while tenants queue.
    private var untenantedFinish = 0.0
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
            if let tenant = job.tenant {
                let lane = lane(tenant)
                lane.heap.insert(entry)
                lane.jobs += 1
                lane.rows += job.rows
                laneJobs += 1
                if lane.heap.count > 2 * lane.jobs + 1024 { lane.heap.filter { !$0.removed } }
            } else {
                primary.insert(entry)
            }
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

    /// The lane of `tenant`, made on its first job.
    private mutating func lane(_ tenant: TenantShare) -> TenantLane {
        if tenant.index >= lanes.count {
            lanes.append(contentsOf: repeatElement(nil, count: tenant.index + 1 - lanes.count))
        }
        if let lane = lanes[tenant.index] {
            lane.weight = tenant.weight
            return lane
        }
        let lane = TenantLane(weight: tenant.weight)
        lanes[tenant.index] = lane
        return lane
    }

    /// Rows queued by `tenant`'s lane (0 for a tenant with none).
    func rows(of tenant: TenantShare) -> Int {
        tenant.index < lanes.count ? lanes[tenant.index]?.rows ?? 0 : 0
    }

    /// Rows expected to run before a new job of `rows` rows of `tenant` is done under fair sharing: its own lane's
    /// queued rows, and from every other lane (the jobs of no tenant as one of weight 1) as many rows as that lane's
    /// weight earns while the tenant's own rows are served, at most what it has queued. A tenant within its share
    /// sees a short queue even behind a flood; the flooding tenant sees its own backlog, and is the one shed.
    /// Runs under the pool's lock on every admission of a tenant's call: one pass over the lanes, nothing allocated.
    func fairRowsAhead(of tenant: TenantShare, rows: Int) -> Int {
        let own = self.rows(of: tenant)
        let served = Double(own + rows) / tenant.weight
        var ahead = own
        var laneRows = 0
        for (index, lane) in lanes.enumerated() {
            guard let lane, lane.rows > 0 else { continue }
            laneRows += lane.rows
            if index != tenant.index {
                ahead += Self.rowsServed(queued: lane.rows, weight: lane.weight, during: served)
            }
        }
        // The jobs of no tenant share as one lane of weight 1.
        return ahead + Self.rowsServed(queued: primaryRows - laneRows, weight: 1, during: served)
    }

    /// Rows a lane of `weight` with `queued` rows runs while `during` virtual time passes (rows / weight of the lane
    /// being served): `weight × during`, rounded up, at most what it has queued.
    static func rowsServed(queued: Int, weight: Double, during: Double) -> Int {
        queued > 0 ? min(queued, Int((weight * during).rounded(.up))) : 0
    }

    /// Makes room in a full queue for a job of `rows` rows of `tenant`: removes and returns the job that runs last in
    /// the lane furthest over its share (queued rows / weight), if that lane is another tenant's and stays further
    /// over its share than `tenant`'s would be with the new job. `nil`: the new job's own tenant is the one to shed.
    mutating func evictForFairShare(_ tenant: TenantShare, rows: Int) -> InferenceJob? {
        let ownLoad = Double(self.rows(of: tenant) + rows) / tenant.weight
        var victim: TenantLane?
        var victimLoad = ownLoad
        for (index, lane) in lanes.enumerated() where index != tenant.index {
            guard let lane, lane.jobs > 0 else { continue }
            let load = Double(lane.rows) / lane.weight
            if load > victimLoad {
                victim = lane
                victimLoad = load
            }
        }
        guard let victim else { return nil }
        var last: QueueEntry?
        for entry in victim.heap.elements where !entry.removed {
            if let current = last, !QueueEntry.runsBefore(current, entry) { continue }
            last = entry
        }
        guard let last else { return nil }
        remove(last)
        return last.job
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
    /// priority level queued. With tenants queued, the earliest among every lane's next job, since a
    /// batch may take from each.
    mutating func nextPrimaryDeadline() -> MonotonicInstant? {
        while let top = primary.top, top.removed { primary.popTop() }
        guard laneJobs > 0 else { return primary.top?.job.deadline }
        var earliest = primary.top?.job.deadline
        for case let lane? in lanes {
            guard lane.jobs > 0, let deadline = lane.head()?.job.deadline else { continue }
            earliest = min(earliest ?? deadline, deadline)
        }
        return earliest
    }

    /// Removes and returns primary jobs in queue order up to `rows` rows (at least one job). Jobs for
    /// which `isDropped` is true are removed too and returned separately.
    mutating func takePrimary(rows limit: Int, isDropped: (InferenceJob) -> Bool) -> (
        batch: [InferenceJob], dropped: [InferenceJob]
    ) {
        if laneJobs > 0 { return takeFairly(rows: limit, isDropped: isDropped) }
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

    /// `takePrimary` while tenants' lanes hold jobs: job by job, the next job of the lane that start-time fair
    /// queuing serves next (highest priority level first, then the earliest virtual start).
    private mutating func takeFairly(rows limit: Int, isDropped: (InferenceJob) -> Bool) -> (
        batch: [InferenceJob], dropped: [InferenceJob]
    ) {
        var batch: [InferenceJob] = []
        var dropped: [InferenceJob] = []
        var rows = 0
        while let (entry, lane) = nextFair() {
            if isDropped(entry.job) {
                remove(entry)
                dropped.append(entry.job)
                continue
            }
            if !batch.isEmpty && rows + entry.job.rows > limit { break }
            let start = max(lane?.finish ?? untenantedFinish, virtualTime)
            let finish = start + Double(entry.job.rows) / (lane?.weight ?? 1)
            if let lane { lane.finish = finish } else { untenantedFinish = finish }
            virtualTime = start
            remove(entry)
            batch.append(entry.job)
            rows += entry.job.rows
            if rows >= limit { break }
        }
        return (batch, dropped)
    }

    /// The job fair queuing serves next and its lane (`nil`: the jobs of no tenant), without removing it.
    private mutating func nextFair() -> (QueueEntry, TenantLane?)? {
        while let top = primary.top, top.removed { primary.popTop() }
        var best: (entry: QueueEntry, lane: TenantLane?, start: Double)?
        if let top = primary.top { best = (top, nil, max(untenantedFinish, virtualTime)) }
        for case let lane? in lanes {
            guard lane.jobs > 0, let head = lane.head() else { continue }
            let start = max(lane.finish, virtualTime)
            if let current = best {
                let (p, q) = (head.job.priority, current.entry.job.priority)
                let earlier =
                    p != q
                    ? p > q
                    : start != current.start ? start < current.start : QueueEntry.runsBefore(head, current.entry)
                guard earlier else { continue }
            }
            best = (head, lane, start)
        }
        return best.map { ($0.entry, $0.lane) }
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
        for case let lane? in lanes where lane.jobs > 0 {
            for entry in lane.heap.elements where !entry.removed && predicate(entry.job) {
                remove(entry)
                removed.append(entry.job)
            }
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
            if let tenant = entry.job.tenant, tenant.index < lanes.count, let lane = lanes[tenant.index] {
                lane.jobs -= 1
                lane.rows -= entry.job.rows
                laneJobs -= 1
            }
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
        for case let lane? in lanes { lane.heap.filter { !$0.removed } }
        deadlines.filter { !$0.removed }
        arrivalOrder = arrivalOrder[arrivalHead...].filter { !$0.removed }
        arrivalHead = 0
        shadow = shadow[shadowHead...].filter { !$0.removed }
        shadowHead = 0
    }
}
