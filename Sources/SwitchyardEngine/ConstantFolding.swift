// Constant folding at import: nodes whose inputs are all constants (shape arithmetic, transposed or cast
// initializers, torch.onnx's Shape→Gather→Unsqueeze→Concat chains) are evaluated once, here, with numpy
// broadcasting, so that the graph that runs holds only work on the inputs.

internal import SwitchyardCore

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

extension Constant {
    /// The elements as FP32 (integers converted).
    var floats: [Float]? {
        switch payload {
        case .floats(let values): values
        case .integers(let values): values.map { Float($0) }
        case .unsupported: nil
        }
    }

    /// The elements as integers (floating-point values truncated toward zero, as Cast does).
    var integers: [Int64]? {
        switch payload {
        case .integers(let values): values
        case .floats(let values):
            values.map { $0.isFinite ? Int64(max(min($0, 9.2e18), -9.2e18).rounded(.towardZero)) : 0 }
        case .unsupported: nil
        }
    }

    /// A constant of the same type holding `elements` (as FP32 or integers, following the type).
    func with(dims: [Int], floats: [Float]? = nil, integers: [Int64]? = nil, batchIndex: Int? = nil) -> Constant {
        let payload: Payload =
            if let integers { .integers(integers) } else if let floats { .floats(floats) } else { self.payload }
        return Constant(name: name, dims: dims, elementType: elementType, payload: payload, batchIndex: batchIndex)
    }

    /// The elements selected by `indices` (flat positions), keeping the type; `batchIndex` follows its element.
    func gathering(_ indices: [Int], dims: [Int]) -> Constant {
        var result = self
        result.dims = dims
        switch payload {
        case .floats(let values): result.payload = .floats(indices.map { values[$0] })
        case .integers(let values): result.payload = .integers(indices.map { values[$0] })
        case .unsupported: break
        }
        result.batchIndex = batchIndex.flatMap { batch in indices.firstIndex(of: batch) }
        return result
    }
}

/// Row-major strides of a shape.
func strides(of dims: [Int]) -> [Int] {
    var result = [Int](repeating: 1, count: dims.count)
    var running = 1
    for axis in stride(from: dims.count - 1, through: 0, by: -1) {
        result[axis] = running
        running *= dims[axis]
    }
    return result
}

/// The numpy broadcast of two shapes, or nil when they do not broadcast.
func broadcastShapes(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = max(a.count, b.count)
    let left = Array(repeating: 1, count: rank - a.count) + a
    let right = Array(repeating: 1, count: rank - b.count) + b
    var result: [Int] = []
    for (x, y) in zip(left, right) {
        if x == y || y == 1 {
            result.append(x)
        } else if x == 1 {
            result.append(y)
        } else {
            return nil
        }
    }
    return result
}

/// For each element of a tensor of shape `target`, the flat index of the element of a tensor of shape `source`
/// that numpy broadcasting reads. `source` must broadcast to `target`.
func broadcastIndices(from source: [Int], to target: [Int]) -> [Int] {
    let aligned = Array(repeating: 1, count: target.count - source.count) + source
    let sourceStrides = strides(of: aligned)
    let count = target.reduce(1, *)
    var result = [Int](repeating: 0, count: count)
    var coordinate = [Int](repeating: 0, count: target.count)
    for position in 0..<count {
        var index = 0
        for axis in 0..<target.count where aligned[axis] != 1 { index += coordinate[axis] * sourceStrides[axis] }
        result[position] = index
        var axis = target.count - 1
        while axis >= 0 {
            coordinate[axis] += 1
            if coordinate[axis] < target[axis] { break }
            coordinate[axis] = 0
            axis -= 1
        }
    }
    return result
}

/// Flat indices of a Transpose with permutation `perm` of a tensor of shape `dims`: element `i` of the result
/// reads element `result[i]` of the input.
func transposeIndices(dims: [Int], perm: [Int]) -> (indices: [Int], dims: [Int]) {
    let outDims = perm.map { dims[$0] }
    let inStrides = strides(of: dims)
    let count = dims.reduce(1, *)
    var indices = [Int](repeating: 0, count: count)
    var coordinate = [Int](repeating: 0, count: outDims.count)
    for position in 0..<count {
        var index = 0
        for axis in 0..<outDims.count { index += coordinate[axis] * inStrides[perm[axis]] }
        indices[position] = index
        var axis = outDims.count - 1
        while axis >= 0 {
            coordinate[axis] += 1
            if coordinate[axis] < outDims[axis] { break }
            coordinate[axis] = 0
            axis -= 1
        }
    }
    return (indices, outDims)
}

/// Flat indices of a Slice: for each axis a start and a step and the number of elements taken.
func sliceIndices(dims: [Int], starts: [Int], steps: [Int], counts: [Int]) -> [Int] {
    let inStrides = strides(of: dims)
    let total = counts.reduce(1, *)
    var indices = [Int](repeating: 0, count: total)
    var coordinate = [Int](repeating: 0, count: dims.count)
    for position in 0..<total {
        var index = 0
        for axis in 0..<dims.count { index += (starts[axis] + coordinate[axis] * steps[axis]) * inStrides[axis] }
        indices[position] = index
        var axis = dims.count - 1
        while axis >= 0 {
            coordinate[axis] += 1
            if coordinate[axis] < counts[axis] { break }
            coordinate[axis] = 0
            axis -= 1
        }
    }
    return indices
}

/// ONNX Slice's clamping of one axis: the first index, the step and how many elements it takes.
func sliceRange(start: Int64, end: Int64, step: Int64, size: Int) -> (start: Int, step: Int, count: Int) {
    let dim = Int64(size)
    func clamp(_ value: Int64, low: Int64, high: Int64) -> Int64 { Swift.max(low, Swift.min(high, value)) }
    var first = start < 0 ? start + dim : start
    var last = end < 0 ? end + dim : end
    if step > 0 {
        first = clamp(first, low: 0, high: dim)
        last = clamp(last, low: 0, high: dim)
        let count = last > first ? (last - first + step - 1) / step : 0
        return (Int(first), Int(step), Int(count))
    }
    first = clamp(first, low: 0, high: dim - 1)
    last = clamp(last, low: -1, high: dim - 1)
    let count = first > last ? (first - last + (-step) - 1) / (-step) : 0
    return (Int(first), Int(step), Int(count))
}

/// An elementwise binary operation on two constants with numpy broadcasting.
func foldBinary(_ op: BinaryOperator, _ a: Constant, _ b: Constant, name: String) -> Constant? {
    guard let dims = broadcastShapes(a.dims, b.dims) else { return nil }
    let left = broadcastIndices(from: a.dims, to: dims)
    let right = broadcastIndices(from: b.dims, to: dims)
    if case .integers(let x) = a.payload, case .integers(let y) = b.payload {
        let values = zip(left, right).map { (i, j) -> Int64 in
            switch op {
            case .add: x[i] &+ y[j]
            case .sub: x[i] &- y[j]
            case .mul: x[i] &* y[j]
            case .div: y[j] == 0 ? 0 : x[i] / y[j]
            case .pow: Int64(power(Double(x[i]), Double(y[j])))
            default: compare(op, Float(x[i]), Float(y[j])) ? 1 : 0
            }
        }
        return Constant(name: name, dims: dims, elementType: a.elementType, payload: .integers(values))
    }
    guard let x = a.floats, let y = b.floats else { return nil }
    let values = zip(left, right).map { (i, j) -> Float in
        switch op {
        case .add: x[i] + y[j]
        case .sub: x[i] - y[j]
        case .mul: x[i] * y[j]
        case .div: x[i] / y[j]
        case .pow: Float(power(Double(x[i]), Double(y[j])))
        default: compare(op, x[i], y[j]) ? 1 : 0
        }
    }
    let type = a.isFloatingPoint ? a.elementType : b.elementType
    return Constant(name: name, dims: dims, elementType: type, payload: .floats(values))
}

/// `pow` from the C library, under a name that the `.pow` cases do not shadow.
func power(_ x: Double, _ y: Double) -> Double { pow(x, y) }
