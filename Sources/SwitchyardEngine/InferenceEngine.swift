// The contract between worker pools and engines: a model loaded once and shared read-only, and one
// executor per worker thread holding that worker's scratch memory.
//
// Datatypes: a signature declares each tensor with the model's own datatype (an INT64 label, FP16 features,
// BOOL flags), but executors always compute in FP32. Converting a tensor between its declared datatype and
// FP32 is the edge's job (the RPC layer's decode and encode), exactly once per call.

public import SwitchyardCore

/// A loaded model, shared read-only by every worker of a pool.
public protocol InferenceEngine: Sendable {
    /// The model's inputs and outputs, each with its declared datatype and a leading batch dimension of -1.
    /// Whatever the declared datatype, the executor reads and writes FP32 values (see the file header).
    var signature: ModelSignature { get }

    /// Creates an executor for one worker thread. Executors are not thread-safe; each worker owns one.
    func makeExecutor() -> any EngineExecutor
}

/// Runs batches for one worker thread, reusing its scratch memory across batches.
public protocol EngineExecutor: AnyObject {
    /// Runs `rows` rows through the model.
    /// - Parameters:
    ///   - inputs: one buffer per signature input, in signature order, each `rows × elementsPerRow`
    ///     FP32 values, row-major.
    ///   - rows: batch rows, at least 1.
    ///   - outputs: one buffer per signature output, in signature order, each `rows × elementsPerRow`
    ///     FP32 values, written by the call.
    /// - Throws: `SwitchyardError` if the batch cannot be run.
    func run(
        inputs: [UnsafeBufferPointer<Float>],
        rows: Int,
        outputs: [UnsafeMutableBufferPointer<Float>]
    ) throws(SwitchyardError)
}
