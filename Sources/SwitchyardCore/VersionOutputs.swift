// What a model version's worker pool answers for one call: named here so that the pools (SwitchyardWorkers) and
// the versions that own them (SwitchyardModels) share one type without one module re-exporting the other.

/// What a version's pool answered for one call: one buffer per signature output, `rows × elementsPerRow` FP32
/// values each, with the call's share of its batch's timings.
public struct VersionOutputs: Sendable {
    /// Output tensors in signature order: the call's rows of its batch's outputs, shared with the other calls of
    /// the batch rather than copied.
    public var tensors: [ArraySlice<Float>]
    /// Rows in each output (the call's rows).
    public var rows: Int
    /// Nanoseconds the call waited queued before its batch started.
    public var queueNanoseconds: UInt64
    /// Nanoseconds its batch took to compute.
    public var computeNanoseconds: UInt64
    /// Rows in the batch the call ran in.
    public var batchRows: Int

    /// Creates outputs.
    public init(
        tensors: [ArraySlice<Float>],
        rows: Int,
        queueNanoseconds: UInt64,
        computeNanoseconds: UInt64,
        batchRows: Int
    ) {
        assert(rows <= batchRows, "a call's \(rows) rows are part of its batch's \(batchRows)")
        self.tensors = tensors
        self.rows = rows
        self.queueNanoseconds = queueNanoseconds
        self.computeNanoseconds = computeNanoseconds
        self.batchRows = batchRows
    }
}
