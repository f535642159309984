// Constant folding at import: nodes whose inputs are all constants (shape arithmetic, transposed or cast
// initializers, torch.onnx's Shape→Gather→Unsqueeze→Concat chains) are evaluated once, here, with numpy
// broadcasting, so that the graph that runs holds only work on the inputs.

internal import SwitchyardCore
import SwitchyardProto

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
        case .floats(let values): values.map { truncatingToInteger(Double($0)) }
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

/// The flat indices visited when walking a tensor of shape `shape` in row-major order, where a step along axis
/// `a` moves `steps[a]` elements of the source and the walk starts at `base`. Broadcasts, transposes and
/// slices are all such walks.
func stridedIndices(shape: [Int], steps: [Int], base: Int = 0) -> [Int] {
    let count = shape.reduce(1, *)
    var result = [Int](repeating: 0, count: count)
    var coordinate = [Int](repeating: 0, count: shape.count)
    var index = base
    for position in 0..<count {
        result[position] = index
        var axis = shape.count - 1
        while axis >= 0 {
            coordinate[axis] += 1
            index += steps[axis]
            if coordinate[axis] < shape[axis] { break }
            index -= coordinate[axis] * steps[axis]
            coordinate[axis] = 0
            axis -= 1
        }
    }
    return result
}

/// For each element of a tensor of shape `target`, the flat index of the element of a tensor of shape `source`
/// that numpy broadcasting reads. `source` must broadcast to `target`.
func broadcastIndices(from source: [Int], to target: [Int]) -> [Int] {
    let aligned = Array(repeating: 1, count: target.count - source.count) + source
    let sourceStrides = strides(of: aligned)
    let steps = aligned.indices.map { aligned[$0] == 1 ? 0 : sourceStrides[$0] }
    return stridedIndices(shape: target, steps: steps)
}

/// Flat indices of a Transpose with permutation `perm` of a tensor of shape `dims`: element `i` of the result
/// reads element `result[i]` of the input.
func transposeIndices(dims: [Int], perm: [Int]) -> (indices: [Int], dims: [Int]) {
    let inStrides = strides(of: dims)
    let outDims = perm.map { dims[$0] }
    return (stridedIndices(shape: outDims, steps: perm.map { inStrides[$0] }), outDims)
}

/// Flat indices of a Slice: for each axis a start and a step and the number of elements taken.
func sliceIndices(dims: [Int], starts: [Int], steps: [Int], counts: [Int]) -> [Int] {
    let inStrides = strides(of: dims)
    let base = dims.indices.reduce(0) { $0 + starts[$1] * inStrides[$1] }
    return stridedIndices(shape: counts, steps: dims.indices.map { steps[$0] * inStrides[$0] }, base: base)
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

/// A floating-point value as an integer the way Cast converts it: truncated toward zero, saturated at Int64's range,
/// NaN as 0 (ONNX leaves out-of-range conversions undefined; this keeps them from trapping).
func truncatingToInteger(_ value: Double) -> Int64 {
    value.isNaN ? 0 : Int64(max(min(value, 9.2e18), -9.2e18).rounded(.towardZero))
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
            case .div: y[j] == 0 ? 0 : x[i].dividedReportingOverflow(by: y[j]).partialValue
            case .pow: truncatingToInteger(power(Double(x[i]), Double(y[j])))
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

// MARK: - Evaluating constant nodes

extension NodeImporter {
    /// Evaluates the node at load when every input it reads is a constant; nil when it must run on the inputs.
    func foldIfConstant() throws(SwitchyardError) -> Constant? {
        let positions = (0..<inputNames.count).filter { !inputNames[$0].isEmpty }
        guard !positions.isEmpty, bareOp != "Constant" else { return nil }
        var slots = [Constant?](repeating: nil, count: inputNames.count)
        for position in positions {
            guard case .constant(let constant) = try requiredInput(position) else { return nil }
            slots[position] = constant
        }
        let inputs = slots.compactMap { $0 }
        /// The constant at an input position, or a refusal naming the position when the node leaves it out.
        func operand(_ position: Int) throws(SwitchyardError) -> Constant {
            guard position < slots.count, let constant = slots[position] else {
                throw fail("expected input \(position + 1), got \(inputs.count) inputs")
            }
            return constant
        }
        let out = (try? outputName(0)) ?? ""
        let a = try operand(0)
        switch bareOp {
        case "Identity", "Dropout":
            return a
        case "Cast", "CastLike":
            let target =
                bareOp == "CastLike"
                ? try operand(1).elementType : Int32(truncatingIfNeeded: intAttribute("to", default: 1))
            guard ElementType.dataType(target) != nil else {
                throw fail("Cast to \(ElementType.name(target)) is not supported; expected a numeric type")
            }
            var result = a
            result.elementType = target
            if ElementType.isFloatingPoint(target) {
                guard let values = a.floats else { throw fail("cannot cast '\(a.name)'") }
                result.payload = .floats(values)
            } else if target == ElementType.bool {
                guard let values = a.floats else { throw fail("cannot cast '\(a.name)'") }
                result.payload = .integers(values.map { $0 != 0 ? 1 : 0 })
            } else {
                guard let values = a.integers else { throw fail("cannot cast '\(a.name)'") }
                result.payload = .integers(values)
            }
            if !(ElementType.isFloatingPoint(target) || target == ElementType.bool) {
                result.batchIndex = a.batchIndex
            } else {
                result.batchIndex = nil
                if a.batchIndex != nil { throw fail("casts the batch size, which is not known at load") }
            }
            return result
        case "Add", "Sub", "Mul", "Div", "Pow":
            guard inputs.allSatisfy({ $0.batchIndex == nil }) else {
                throw fail(
                    "computes with the batch size, which is not known at load; expected shape arithmetic that keeps it"
                )
            }
            let b = try operand(1)
            guard let result = foldBinary(BinaryOperator(rawValue: bareOp)!, a, b, name: out) else {
                throw fail("constants of shapes \(Shape.format(a.dims)) and \(Shape.format(b.dims)) do not broadcast")
            }
            return result
        case "Neg", "Abs", "Sqrt", "Reciprocal", "Exp", "Log", "Relu", "Sigmoid", "Tanh", "Floor", "Ceil":
            guard a.batchIndex == nil, let values = a.floats else { return nil }
            let op: UnaryOperator =
                switch bareOp {
                case "Neg": .neg
                case "Abs": .abs
                case "Sqrt": .sqrt
                case "Reciprocal": .reciprocal
                case "Exp": .exp
                case "Log": .log
                case "Relu": .relu
                case "Sigmoid": .sigmoid
                case "Tanh": .tanh
                case "Floor": .floor
                default: .ceil
                }
            let results = values.map { ReferenceExecutor.apply(op, $0) }
            if case .integers = a.payload {
                return a.with(dims: a.dims, integers: results.map { truncatingToInteger(Double($0)) })
            }
            return a.with(dims: a.dims, floats: results)
        case "Transpose":
            let rank = a.dims.count
            let perm = (intsAttribute("perm") ?? (0..<Int64(rank)).reversed().map { $0 }).map { Int($0) }
            guard perm.count == rank, Set(perm) == Set(0..<rank) else {
                throw fail("perm \(perm) is not a permutation")
            }
            let (indices, dims) = transposeIndices(dims: a.dims, perm: perm)
            return a.gathering(indices, dims: dims)
        case "Reshape":
            let requested = try integers(try operand(1), role: "shape")
            var dims: [Int] = []
            var inferred: Int?
            for (position, raw) in requested.enumerated() {
                if raw == 0 && intAttribute("allowzero", default: 0) == 0 {
                    dims.append(position < a.dims.count ? a.dims[position] : 1)
                } else if raw == -1 && inferred == nil {
                    inferred = position
                    dims.append(1)
                } else {
                    guard raw >= 0 else { throw fail("shape \(requested) has a negative dimension other than one -1") }
                    dims.append(Int(raw))
                }
            }
            let known = try checkedCount(dims) { label }
            if let inferred { dims[inferred] = a.count / max(known, 1) }
            guard (try checkedCount(dims) { label }) == a.count else {
                throw fail("cannot reshape \(Shape.format(a.dims)) to \(requested)")
            }
            var result = a
            result.dims = dims
            return result
        case "Flatten":
            var axis = intAttribute("axis", default: 1)
            if axis < 0 { axis += a.dims.count }
            guard axis >= 0 && axis <= a.dims.count else {
                throw fail("axis \(axis) is out of range for rank \(a.dims.count)")
            }
            var result = a
            result.dims = [a.dims[..<axis].reduce(1, *), a.dims[axis...].reduce(1, *)]
            return result
        case "Squeeze", "Unsqueeze":
            let axes =
                opset >= 13
                ? (slots.count > 1 && slots[1] != nil ? try integers(try operand(1), role: "axes") : nil)
                : intsAttribute("axes")
            var dims = a.dims
            if bareOp == "Squeeze" {
                let positions = (axes ?? dims.indices.filter { dims[$0] == 1 }.map { Int64($0) })
                    .map { Int($0) < 0 ? Int($0) + dims.count : Int($0) }
                dims = dims.enumerated().filter { !positions.contains($0.offset) }.map(\.element)
            } else {
                let rank = dims.count + (axes?.count ?? 0)
                for position in (axes ?? []).map({ Int($0) < 0 ? Int($0) + rank : Int($0) }).sorted() {
                    guard position >= 0 && position <= dims.count else { throw fail("axis \(position) out of range") }
                    dims.insert(1, at: position)
                }
            }
            var result = a
            result.dims = dims
            return result
        case "Shape":
            let dims = shapeRange(a.dims.map { Int64($0) }).dims
            return Constant(name: out, dims: [dims.count], elementType: ElementType.int64, payload: .integers(dims))
        case "Gather":
            let rank = a.dims.count
            var axis = intAttribute("axis", default: 0)
            if axis < 0 { axis += rank }
            guard axis >= 0 && axis < rank else { throw fail("axis \(axis) is out of range for rank \(rank)") }
            let picked = try operand(1)
            let indices = try gatherIndices(dims: a.dims, axis: axis, picked: try integers(picked, role: "indices"))
            return a.gathering(indices, dims: Array(a.dims[..<axis]) + picked.dims + Array(a.dims[(axis + 1)...]))
        case "Concat":
            let rank = a.dims.count
            var axis = intAttribute("axis", default: 0)
            if axis < 0 { axis += rank }
            guard axis >= 0 && axis < rank else { throw fail("axis \(axis) is out of range for rank \(rank)") }
            for input in inputs {
                let matches =
                    input.dims.count == rank
                    && input.dims.indices.allSatisfy { $0 == axis || input.dims[$0] == a.dims[$0] }
                guard matches else {
                    throw fail(
                        "cannot concatenate \(Shape.format(input.dims)) with \(Shape.format(a.dims)) on axis \(axis)"
                    )
                }
            }
            let outer = a.dims[..<axis].reduce(1, *)
            var floatsOut: [Float] = []
            var integersOut: [Int64] = []
            var batchIndex: Int?
            let allIntegers = inputs.allSatisfy { if case .integers = $0.payload { true } else { false } }
            for o in 0..<outer {
                for input in inputs {
                    let block = input.dims[axis...].reduce(1, *)
                    if let batch = input.batchIndex, batch / max(block, 1) == o {
                        batchIndex = (allIntegers ? integersOut.count : floatsOut.count) + batch % max(block, 1)
                    }
                    if allIntegers {
                        integersOut += input.integers![(o * block)..<((o + 1) * block)]
                    } else {
                        guard let values = input.floats else { throw fail("cannot concatenate '\(input.name)'") }
                        floatsOut += values[(o * block)..<((o + 1) * block)]
                    }
                }
            }
            var dims = a.dims
            dims[axis] = inputs.reduce(0) { $0 + $1.dims[axis] }
            return allIntegers
                ? Constant(
                    name: out,
                    dims: dims,
                    elementType: a.elementType,
                    payload: .integers(integersOut),
                    batchIndex: batchIndex
                )
                : Constant(name: out, dims: dims, elementType: a.elementType, payload: .floats(floatsOut))
        case "Slice":
            let (starts, ends, axes, steps) = try sliceParameters(rank: a.dims.count)
            var first = [Int](repeating: 0, count: a.dims.count)
            var stepList = [Int](repeating: 1, count: a.dims.count)
            var counts = a.dims
            for (position, axis) in axes.enumerated() {
                let range = sliceRange(
                    start: starts[position],
                    end: ends[position],
                    step: steps[position],
                    size: a.dims[axis]
                )
                (first[axis], stepList[axis], counts[axis]) = (range.start, range.step, range.count)
            }
            return a.gathering(sliceIndices(dims: a.dims, starts: first, steps: stepList, counts: counts), dims: counts)
        case "Expand":
            let requested = try integers(try operand(1), role: "shape").map { Int($0) }
            guard let dims = broadcastShapes(a.dims, requested) else {
                throw fail("cannot expand \(Shape.format(a.dims)) to \(requested)")
            }
            _ = try checkedCount(dims) { label }
            return a.gathering(broadcastIndices(from: a.dims, to: dims), dims: dims)
        case "ConstantOfShape":
            let dims = try integers(a, role: "shape").map { Int($0) }
            let count = try checkedCount(dims) { label }
            if let value = attribute("value")?.t {
                let fill = try importer.constant(from: value.pointee, fallbackName: out)
                if case .integers(let v) = fill.payload {
                    return Constant(
                        name: out,
                        dims: dims,
                        elementType: fill.elementType,
                        payload: .integers(Array(repeating: v.first ?? 0, count: count))
                    )
                }
                return Constant(
                    name: out,
                    dims: dims,
                    elementType: fill.elementType,
                    payload: .floats(Array(repeating: fill.floats?.first ?? 0, count: count))
                )
            }
            return Constant(
                name: out,
                dims: dims,
                elementType: ElementType.float,
                payload: .floats(Array(repeating: 0, count: count))
            )
        case "Range":
            guard let start = a.floats?.first, let limit = try operand(1).floats?.first,
                let delta = try operand(2).floats?.first, delta != 0
            else { throw fail("expected scalar start, limit and non-zero delta") }
            let steps = ((limit - start) / delta).rounded(.up)
            guard steps.isFinite else {
                throw fail("expected a finite range, got start \(start), limit \(limit), delta \(delta)")
            }
            let count = Int(max(min(steps, Float(ONNXModel.maxElements + 1)), 0))
            guard count <= ONNXModel.maxElements else { throw fail("range of \(count) elements is too large") }
            let values = (0..<count).map { start + Float($0) * delta }
            if case .integers = a.payload {
                return Constant(
                    name: out,
                    dims: [count],
                    elementType: a.elementType,
                    payload: .integers(values.map { truncatingToInteger(Double($0)) })
                )
            }
            return Constant(name: out, dims: [count], elementType: a.elementType, payload: .floats(values))
        case "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual":
            let b = try operand(1)
            guard let x = a.floats, let y = b.floats, let dims = broadcastShapes(a.dims, b.dims) else {
                throw fail("constants do not broadcast")
            }
            let op = BinaryOperator(rawValue: bareOp)!
            let left = broadcastIndices(from: a.dims, to: dims)
            let right = broadcastIndices(from: b.dims, to: dims)
            let flags = zip(left, right).map { Int64(compare(op, x[$0.0], y[$0.1]) ? 1 : 0) }
            return Constant(name: out, dims: dims, elementType: ElementType.bool, payload: .integers(flags))
        case "Where":
            let (whenTrue, whenFalse) = (try operand(1), try operand(2))
            guard let c = a.floats, let x = whenTrue.floats, let y = whenFalse.floats,
                let d1 = broadcastShapes(a.dims, whenTrue.dims), let dims = broadcastShapes(d1, whenFalse.dims)
            else { throw fail("constants do not broadcast") }
            let ci = broadcastIndices(from: a.dims, to: dims)
            let xi = broadcastIndices(from: whenTrue.dims, to: dims)
            let yi = broadcastIndices(from: whenFalse.dims, to: dims)
            let picked = (0..<ci.count).map { c[ci[$0]] != 0 ? x[xi[$0]] : y[yi[$0]] }
            if case .integers = whenTrue.payload {
                return Constant(
                    name: out,
                    dims: dims,
                    elementType: whenTrue.elementType,
                    payload: .integers(picked.map { truncatingToInteger(Double($0)) })
                )
            }
            return Constant(name: out, dims: dims, elementType: whenTrue.elementType, payload: .floats(picked))
        default:
            throw fail("every input is a constant; expected at least one value computed from the graph inputs")
        }
    }
}
