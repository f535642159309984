// One call's work as the worker pools see it: inputs copied out of the request, a deadline, a
// priority, and a completion that hands outputs back.

public import SwitchyardCore

/// The work class of a job. Shadow work runs only on otherwise idle capacity and is dropped first.
public enum WorkClass: Sendable, Hashable {
    /// A caller is waiting for this result.
    case primary
    /// Mirrored traffic whose result only feeds comparisons.
    case shadow
}

/// One call's work for a pool. Created on an event-loop thread and completed exactly once: on a worker
/// thread with its batch's results, on the pool's deadline timer thread when its deadline passes while
/// queued, or on the thread that called `submit` or `cancel` when it is rejected or cancelled there.
///
/// A job either carries a completion closure, or is a subclass that answers in `complete(_:)` (the model
/// registry's jobs, which also release their version's hold there). Every property is an immutable `let` of a
/// `Sendable` type; the class is open for those subclasses, which is why its sendability is declared unchecked.
open class InferenceJob: @unchecked Sendable {
    /// Input tensors in signature order, `rows × elementsPerRow` FP32 values each.
    public let inputs: [[Float]]
    /// Batch rows in this job.
    public let rows: Int
    /// When the result stops being useful; `nil` for none.
    public let deadline: MonotonicInstant?
    /// Priority level: higher levels run first; within a level, earlier deadlines run first and jobs
    /// without a deadline last. 0 is the default level.
    public let priority: Int
    /// Primary or shadow.
    public let workClass: WorkClass
    /// When the job was created.
    public let enqueuedAt: MonotonicInstant
    /// The tenant whose share of the pool the job queues in; `nil` (no tenants configured) queues it as before.
    public let tenant: TenantShare?
    /// Whether the caller has gone away; checked when a batch is formed and when the queue is full, with
    /// the pool's lock held, so it must be cheap and must not block (an atomic load).
    public let isCancelled: @Sendable () -> Bool
    /// Called exactly once with the outputs or the reason the job did not run; `nil` for a subclass that
    /// overrides `complete(_:)`.
    private let completion: (@Sendable (Result<VersionOutputs, SwitchyardError>) -> Void)?

    /// Creates a job answered through `completion`.
    public init(
        inputs: [[Float]],
        rows: Int,
        deadline: MonotonicInstant?,
        priority: Int = 0,
        workClass: WorkClass = .primary,
        enqueuedAt: MonotonicInstant = .now(),
        tenant: TenantShare? = nil,
        isCancelled: @escaping @Sendable () -> Bool = { false },
        completion: @escaping @Sendable (Result<VersionOutputs, SwitchyardError>) -> Void
    ) {
        self.inputs = inputs
        self.rows = rows
        self.deadline = deadline
        self.priority = priority
        self.workClass = workClass
        self.enqueuedAt = enqueuedAt
        self.tenant = tenant
        self.isCancelled = isCancelled
        self.completion = completion
    }

    /// Creates a job for a subclass that answers in `complete(_:)`.
    public init(
        inputs: [[Float]],
        rows: Int,
        deadline: MonotonicInstant?,
        priority: Int,
        workClass: WorkClass,
        enqueuedAt: MonotonicInstant,
        tenant: TenantShare? = nil,
        isCancelled: @escaping @Sendable () -> Bool
    ) {
        self.inputs = inputs
        self.rows = rows
        self.deadline = deadline
        self.priority = priority
        self.workClass = workClass
        self.enqueuedAt = enqueuedAt
        self.tenant = tenant
        self.isCancelled = isCancelled
        self.completion = nil
    }

    /// Answers the job with its outputs or the reason it did not run. The pool calls it exactly once per job.
    open func complete(_ result: Result<VersionOutputs, SwitchyardError>) { completion?(result) }
}
