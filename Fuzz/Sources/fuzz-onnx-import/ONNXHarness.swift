// libFuzzer harness for the ONNX importer (Sources/SwitchyardEngine/ONNXModel.swift).
//
// Input: the bytes of a model file. Every input must either be refused with a `SwitchyardError` or import into
// a graph whose signature has numeric datatypes and a -1 batch dimension. An imported graph is also handed to the engines
// the server would build from it (the fused engine packs its weights, or refuses with `unimplemented`; the
// reference engine always accepts), and, when its rows are small, both run a two-row batch: importing
// promises that executors never meet a shape, type or operator they cannot run.

import CFuzzerDriver
import SwitchyardCore

@testable import SwitchyardEngine

#if canImport(Glibc)
    import Glibc
#endif

/// Rows wider than this are not run (the importer allows up to `ONNXModel.maxElements` per row, which is a
/// memory limit for servers, not a size worth running on every fuzz input).
private let largestRunWidth = 1 << 14

private func run(_ engine: any InferenceEngine, rows: Int) {
    let signature = engine.signature
    let inputs = signature.inputs.map { spec in
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * spec.elementsPerRow)
        for index in buffer.indices { buffer[index] = Float(index % 7) - 3 }
        return buffer
    }
    let outputs = signature.outputs.map { spec in
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * spec.elementsPerRow)
        buffer.initialize(repeating: .nan)
        return buffer
    }
    defer { (inputs + outputs).forEach { $0.deallocate() } }
    do {
        try engine.makeExecutor().run(inputs: inputs.map { UnsafeBufferPointer($0) }, rows: rows, outputs: outputs)
    } catch {
        _ = error.message
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    let model: ONNXModel
    do {
        model = try ONNXModel(bytes: bytes)
    } catch {
        precondition(error.code == .invalidArgument, "refused with \(error.code), expected invalidArgument")
        return 0
    }
    let signature = model.signature
    precondition(!signature.inputs.isEmpty && !signature.outputs.isEmpty)
    for spec in signature.inputs + signature.outputs {
        precondition(spec.dataType != .bytes && spec.shape.first == -1, "signature \(spec) is not numeric [-1, …]")
        precondition(spec.shape.dropFirst().allSatisfy { $0 > 0 }, "signature \(spec) has a non-positive row dim")
    }
    let reference = ReferenceEngine(model: model)
    var fused: FusedEngine?
    do {
        fused = try FusedEngine(model: model, kernel: KernelPath.best)
    } catch {
        precondition(error.code == .unimplemented || error.code == .invalidArgument, "fused engine: \(error)")
    }
    guard model.graph.values.allSatisfy({ $0.width <= largestRunWidth }) else { return 0 }
    run(reference, rows: 2)
    if let fused { run(fused, rows: 2) }
    return 0
}

/// libFuzzer's driver, started from this executable's entry point (SwiftPM names every executable's `main`).
@main
enum Harness {
    static func main() { exit(switchyard_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, fuzzOneInput)) }
}
