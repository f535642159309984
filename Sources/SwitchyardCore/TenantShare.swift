// A tenant as the worker pools see it: a stable index (the key of its lane in a pool's queue) and its weight (its
// share of a pool's capacity under contention, relative to the other tenants with queued work). Made once per tenant
// when the `tenants:` section loads; a call of no tenant carries none and queues as if tenants did not exist.

/// A tenant's identity and weight in the pools' fair sharing.
public final class TenantShare: Sendable {
    /// The tenant's name, for messages.
    public let name: String
    /// Its place among the tenants of one configuration (0, 1, …): the key of its lane in a pool's queue.
    public let index: Int
    /// Its weight: under contention it gets `weight / Σ weights of tenants with queued work` of a pool's rows.
    /// Always > 0 (the configuration refuses anything else).
    public let weight: Double

    /// Creates a tenant's share; a weight that is not a positive finite number is taken as 1.
    public init(name: String, index: Int, weight: Double) {
        self.name = name
        self.index = index
        self.weight = weight > 0 && weight.isFinite ? weight : 1
    }
}
