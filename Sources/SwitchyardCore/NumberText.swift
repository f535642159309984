// How numbers read in messages, logs and answers: whole numbers without a fraction.

extension Double {
    /// `10` for 10.0, `2.5` for 2.5; beyond ±1e15, or not finite, as Swift prints it.
    public var compactDescription: String {
        self == rounded() && abs(self) < 1e15 ? String(Int64(self)) : String(self)
    }
}
