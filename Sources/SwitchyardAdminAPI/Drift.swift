// Drift: `GET /v1/drift/{model}[?top=N]`, each version's drift status and its most drifting features with their
// reference and current histograms.

import SwitchyardCore

/// `GET /v1/drift/{model}`.
@MemberwiseInit
public struct DriftReport: Sendable, Hashable, Codable {
    public var model: String
    /// Each monitored version; empty when the model has no `drift:` settings or no call yet.
    public var versions: [DriftVersion]
}

/// One version's drift.
@MemberwiseInit
public struct DriftVersion: Sendable, Hashable, Codable {
    public var version: String
    /// `warming_up`, `stable`, `drifting` (the detector's status names).
    public var status: String
    /// Where the reference came from.
    public var reference: String
    public var rowsObserved: UInt64
    public var windowRows: Int
    public var referenceRows: Int
    public var maxInputPSI: Double
    public var maxOutputPSI: Double
    public var inputsFlagged: Int
    public var outputsFlagged: Int
    /// Why the version is not monitored as configured, if it is not.
    public var error: String?
    /// The share of calls the detector observes now: `drift.fraction`, or less while observing that many would
    /// cost the monitor more than `drift.max_cpu_share` of the gateway's CPU serving the version (absent from older
    /// servers).
    public var observedFraction: Double?
    /// The features, most drifting first.
    public var features: [DriftFeature]

    enum CodingKeys: String, CodingKey {
        case version, status, reference, error, features
        case rowsObserved = "rows_observed"
        case windowRows = "window_rows"
        case referenceRows = "reference_rows"
        case maxInputPSI = "max_input_psi"
        case maxOutputPSI = "max_output_psi"
        case inputsFlagged = "inputs_flagged"
        case outputsFlagged = "outputs_flagged"
        case observedFraction = "observed_fraction"
    }
}

/// One feature's drift.
@MemberwiseInit
public struct DriftFeature: Sendable, Hashable, Codable {
    public var name: String
    /// `input` or `output`.
    public var kind: String
    /// The test besides PSI: `ks` or `chi2`.
    public var test: String
    public var psi: Double
    /// The test's statistic.
    public var statistic: Double
    public var pValue: Double
    public var flagged: Bool
    /// The histogram's bins, as labels.
    public var bins: [String]
    /// The reference's share per bin.
    public var reference: [Double]
    /// The current window's share per bin.
    public var current: [Double]

    enum CodingKeys: String, CodingKey {
        case name, kind, test, psi, statistic, flagged, bins, reference, current
        case pValue = "p_value"
    }
}
