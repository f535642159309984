// The `ai.onnx.ml` operators that scikit-learn pipelines exported by skl2onnx use around their models:
// scalers, normalizers, linear classifiers and regressors, feature extraction and vectorization. Each becomes
// the same row-wise operations as the default domain's, so the fused engine folds what is affine.

internal import SwitchyardCore
import SwitchyardProto

extension NodeImporter {
    mutating func importMLNode() throws(SwitchyardError) -> [Operation] {
        switch bareOp {
        case "Scaler": return try scaler()
        case "Normalizer": return [try normalizer()]
        case "LinearClassifier": return try linearClassifier()
        case "LinearRegressor": return try linearRegressor()
        case "ArrayFeatureExtractor": return [try arrayFeatureExtractor()]
        case "Binarizer": return [try unary(.binarize(threshold: floatAttribute("threshold", default: 0)))]
        case "FeatureVectorizer": return [try featureVectorizer()]
        default: throw fail("internal: no importer for a supported op")
        }
    }

    /// A 2-D `[batch, C]` input to an ml operator, and C.
    private func matrixInput(_ position: Int, role: String) throws(SwitchyardError) -> (id: Int, columns: Int) {
        let x = try activation(position, role: role)
        guard values[x].rowShape.count <= 1 else {
            throw fail("\(role) has shape \(Shape.format([-1] + values[x].rowShape)); expected [batch, C]")
        }
        return (x, values[x].width)
    }

    /// A per-column parameter list of length 1 (broadcast) or `columns`.
    private func perColumn(_ name: String, _ list: [Float]?, columns: Int, default value: Float) throws(SwitchyardError)
        -> [Float]
    {
        guard let list else { return Array(repeating: value, count: columns) }
        if list.count == 1 { return Array(repeating: list[0], count: columns) }
        guard list.count == columns else {
            throw fail("\(name) has \(list.count) values; expected 1 or \(columns), one per column")
        }
        return list
    }

    /// `(x - offset) · scale`, per column.
    mutating func scaler() throws(SwitchyardError) -> [Operation] {
        let (x, columns) = try matrixInput(0, role: "X")
        let offset = try perColumn("offset", floatsAttribute("offset"), columns: columns, default: 0)
        let scale = try perColumn("scale", floatsAttribute("scale"), columns: columns, default: 1)
        let shape = values[x].rowShape
        let shifted = try fresh(shape, .fp32, name: "\(try outputName(0))/shifted")
        let output = try define(shape, .fp32)
        return [
            .binary(.sub, lhs: .value(x), rhs: .constant(offset), output: shifted),
            .binary(.mul, lhs: .value(shifted), rhs: .constant(scale), output: output),
        ]
    }

    mutating func normalizer() throws(SwitchyardError) -> Operation {
        let (x, _) = try matrixInput(0, role: "X")
        let normName = stringAttribute("norm", default: "MAX")
        guard let norm = NormKind(rawValue: normName) else {
            throw fail("norm '\(normName)' is not supported; expected MAX, L1 or L2")
        }
        let output = try define(values[x].rowShape, .fp32)
        return .normalize(norm, input: x, output: output)
    }

    /// The dense part shared by LinearClassifier and LinearRegressor: `x · coefficientsᵀ + intercepts`.
    private mutating func linearScores(targets: Int?, scoresOutput: Int) throws(SwitchyardError) -> (
        gemm: Operation, id: Int, n: Int
    ) {
        let (x, features) = try matrixInput(0, role: "X")
        guard let coefficients = floatsAttribute("coefficients"), features > 0,
            coefficients.count % features == 0
        else {
            throw fail("coefficients must hold one row of \(features) values per class or target")
        }
        let n = coefficients.count / features
        if let targets, targets != n {
            throw fail("coefficients hold \(n) rows; expected \(targets), one per target")
        }
        let intercepts = try perColumn("intercepts", floatsAttribute("intercepts"), columns: n, default: 0)
        let name = try outputName(scoresOutput)
        let id: Int
        if name.isEmpty {
            id = try fresh([n], .fp32, name: "\(label)/scores")
        } else {
            id = try fresh([n], .fp32, name: "\(name)/raw")
        }
        let gemm = Operation.gemm(
            GemmOperation(
                input: x,
                output: id,
                k: features,
                n: n,
                b: coefficients,
                transB: true,
                alpha: 1,
                beta: 1,
                c: intercepts
            )
        )
        return (gemm, id, n)
    }

    mutating func linearRegressor() throws(SwitchyardError) -> [Operation] {
        let transform = stringAttribute("post_transform", default: "NONE")
        guard transform == "NONE" else {
            throw fail("post_transform '\(transform)' is not supported; expected NONE")
        }
        let (gemm, raw, n) = try linearScores(targets: intAttribute("targets", default: 1), scoresOutput: 0)
        let output = try define([n], .fp32)
        return [gemm, .unary(.identity, input: raw, output: output)]
    }

    mutating func linearClassifier() throws(SwitchyardError) -> [Operation] {
        if hasStringsAttribute("classlabels_strings") {
            throw fail(
                "classlabels_strings: string class labels are not an Open Inference Protocol numeric tensor; train "
                    + "the classifier with integer class labels"
            )
        }
        guard let labels = intsAttribute("classlabels_ints") else {
            throw fail("expected classlabels_ints")
        }
        let (gemm, raw, n) = try linearScores(targets: nil, scoresOutput: 1)
        guard n == labels.count else {
            throw fail(
                "coefficients hold \(n) rows for \(labels.count) class labels; expected one row per class (skl2onnx "
                    + "writes one per class)"
            )
        }
        var operations = [gemm]
        let transform = stringAttribute("post_transform", default: "NONE")
        if node.n_output > 1, !(try outputName(1)).isEmpty {
            let scores = try define([n], .fp32, output: 1)
            switch transform {
            case "NONE": operations.append(.unary(.identity, input: raw, output: scores))
            case "SOFTMAX": operations.append(.softmax(input: raw, output: scores, group: n, log: false))
            case "LOGISTIC": operations.append(.unary(.sigmoid, input: raw, output: scores))
            default:
                throw fail("post_transform '\(transform)' is not supported; expected NONE, SOFTMAX or LOGISTIC")
            }
        }
        if !(try outputName(0)).isEmpty {
            let index = try fresh([], .int64, name: "\(try outputName(0))/index")
            operations.append(.argExtreme(largest: true, selectLast: false, input: raw, output: index, group: n))
            let table = Constant(
                name: "classlabels_ints",
                dims: [labels.count],
                elementType: ElementType.int64,
                payload: .integers(labels)
            )
            operations.append(try lookup(table: table, indices: index))
        }
        return operations
    }

    mutating func arrayFeatureExtractor() throws(SwitchyardError) -> Operation {
        switch (try requiredInput(0), try requiredInput(1)) {
        case (.constant(let table), .activation(let indices)):
            return try lookup(table: table, indices: indices)
        case (.activation(let x), .constant(let indicesConstant)):
            let rowShape = values[x].rowShape
            guard let size = rowShape.last else { throw fail("X has no feature axis") }
            let picked = try integers(indicesConstant, role: "Y").map { (raw) throws(SwitchyardError) -> Int in
                guard raw >= 0 && raw < Int64(size) else {
                    throw fail("index \(raw) is out of range for \(size) features")
                }
                return Int(raw)
            }
            let outer = rowShape.dropLast().reduce(1, *)
            var map: [SourceElement] = []
            for o in 0..<outer {
                for index in picked { map.append(SourceElement(part: 0, index: Int32(o * size + index))) }
            }
            return try assemble(
                [.value(x)],
                map,
                rowShape: Array(rowShape.dropLast()) + [picked.count],
                dataType: values[x].dataType
            )
        default:
            throw fail("expected a constant table with computed indices, or computed features with constant indices")
        }
    }

    mutating func featureVectorizer() throws(SwitchyardError) -> Operation {
        guard let dimensions = intsAttribute("inputdimensions"), dimensions.count == inputNames.count else {
            throw fail("inputdimensions must give one width per input")
        }
        var parts: [Operand] = [.constant([0])]
        var map: [SourceElement] = []
        for position in 0..<inputNames.count {
            let (x, columns) = try matrixInput(position, role: "X\(position)")
            parts.append(.value(x))
            for column in 0..<Int(dimensions[position]) {
                map.append(
                    column < columns
                        ? SourceElement(part: Int32(parts.count - 1), index: Int32(column))
                        : SourceElement(part: 0, index: 0)
                )
            }
        }
        return try assemble(parts, map, rowShape: [map.count], dataType: .fp32)
    }
}
