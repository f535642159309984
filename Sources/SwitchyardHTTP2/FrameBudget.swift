// Per-connection token buckets for frames that cost the server work without carrying a request: stream
// resets (rapid reset) and PING/SETTINGS/PRIORITY/empty DATA (control-frame floods). Pure, clock injected.

/// A token bucket: `burst` tokens at most, refilled at `perSecond` tokens per second; each frame takes one.
struct FrameBudget {
    /// Tokens when full.
    let burst: Int
    /// Tokens regained per second.
    let perSecond: Int
    /// Tokens available, in millitokens so that slow refills accumulate without floating point.
    private var milliTokens: Int
    /// When the bucket was last refilled, in nanoseconds.
    private var refilledAt: UInt64

    /// A full bucket at `now`.
    init(burst: Int, perSecond: Int, now: UInt64) {
        self.burst = max(1, burst)
        self.perSecond = max(1, perSecond)
        milliTokens = self.burst * 1000
        refilledAt = now
    }

    /// Tokens left (rounded down), for tests and logs.
    var available: Int { milliTokens / 1000 }

    /// Takes one token at `now`; false when the bucket is empty (the peer is over budget).
    mutating func take(now: UInt64) -> Bool {
        if now > refilledAt {
            // ns × tokens/s ÷ 10⁶ = millitokens; capped before multiplying so that a long gap cannot overflow.
            let elapsed = min(now - refilledAt, 3_600_000_000_000)
            let gained = Int(elapsed / 1000) * perSecond / 1000
            if gained > 0 {
                milliTokens = min(burst * 1000, milliTokens + gained)
                refilledAt = now
            }
        }
        guard milliTokens >= 1000 else { return false }
        milliTokens -= 1000
        return true
    }
}

/// A budget of bytes per second that may go into debt: work is admitted while the balance is positive and its
/// real size (known only once done, as with inflated bytes) is charged afterwards, so one large piece of work
/// is never refused outright but delays the next ones by its own cost. Pure, clock injected.
struct ByteBudget {
    /// Bytes when full (one second's worth).
    let burst: Int
    /// Bytes regained per second.
    let perSecond: Int
    /// Bytes available; negative while in debt.
    private(set) var balance: Int
    /// When the budget was last refilled, in nanoseconds.
    private var refilledAt: UInt64

    /// A full budget at `now`.
    init(perSecond: Int, now: UInt64) {
        self.perSecond = max(1, perSecond)
        burst = self.perSecond
        balance = burst
        refilledAt = now
    }

    /// Whether work may start at `now` (the balance, refilled, is positive).
    mutating func admits(now: UInt64) -> Bool {
        refill(now: now)
        return balance > 0
    }

    /// Charges `bytes` of finished work.
    mutating func charge(_ bytes: Int, now: UInt64) {
        refill(now: now)
        balance -= bytes
    }

    private mutating func refill(now: UInt64) {
        guard now > refilledAt else { return }
        let elapsed = min(now - refilledAt, 3_600_000_000_000)
        // ns × bytes/s ÷ 10⁹, in two steps so that neither overflows.
        let gained = Int((elapsed / 1000) * UInt64(perSecond) / 1_000_000)
        if gained > 0 {
            balance = min(burst, balance + gained)
            refilledAt = now
        }
    }
}
