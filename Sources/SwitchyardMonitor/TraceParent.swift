// The trace id of a W3C `traceparent` header, for captured records of calls that are not traced themselves,
// read by swift-w3c-trace-context (the parser swift-otel's propagator uses too). A malformed header yields no
// trace id rather than a wrong one.

import W3CTraceContext

/// Reads W3C trace context.
public enum TraceParent {
    /// The 32-hex-digit trace id of `header`, or empty when it is absent or malformed (not version 00 in 55
    /// characters, wrong separators, non-hex digits, an all-zero trace or parent id).
    public static func traceID(_ header: String?) -> String {
        guard let header, let context = try? TraceContext(traceParentHeaderValue: header) else { return "" }
        return context.traceID.description
    }
}
