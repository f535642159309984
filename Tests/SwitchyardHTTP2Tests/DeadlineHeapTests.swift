// Unit tests of the loop's deadline heap: order, removal from the middle, re-insertion.

import SwitchyardCore
import Testing

@testable import SwitchyardHTTP2

final class TestTimer: DeadlineHeapElement {
    var heapIndex = -1
    var deadline: MonotonicInstant?
    let name: Int
    init(_ name: Int) { self.name = name }
}

@Suite struct DeadlineHeapTests {
    static func at(_ n: UInt64) -> MonotonicInstant { MonotonicInstant(nanoseconds: n) }

    @Test(arguments: [1, 2, 7, 100, 1000])
    func popsInDeadlineOrder(count: Int) {
        var heap = DeadlineHeap<TestTimer>()
        var generator = SystemRandomNumberGenerator()
        var expected: [UInt64] = []
        for i in 0..<count {
            let deadline = UInt64.random(in: 1...1_000_000, using: &generator)
            expected.append(deadline)
            heap.insert(TestTimer(i), deadline: Self.at(deadline))
        }
        var popped: [TestTimer] = []
        heap.popExpired(now: Self.at(.max - 1), into: &popped)
        #expect(popped.map { $0.deadline!.nanoseconds } == expected.sorted())
        #expect(popped.allSatisfy { $0.heapIndex == -1 })
        #expect(heap.count == 0)
    }

    @Test func popsOnlyExpired() {
        var heap = DeadlineHeap<TestTimer>()
        for (i, d) in [50, 10, 30, 20, 40].enumerated() { heap.insert(TestTimer(i), deadline: Self.at(UInt64(d))) }
        var popped: [TestTimer] = []
        heap.popExpired(now: Self.at(30), into: &popped)
        #expect(popped.map(\.name) == [1, 3, 2])
        #expect(heap.earliest == Self.at(40))
        #expect(heap.count == 2)
    }

    @Test func removeFromAnywhereKeepsOrder() {
        var heap = DeadlineHeap<TestTimer>()
        let timers = (0..<64).map { TestTimer($0) }
        for t in timers { heap.insert(t, deadline: Self.at(UInt64((t.name * 37) % 64 + 1))) }
        for t in timers where t.name % 3 == 0 { heap.remove(t) }
        heap.remove(timers[0])  // removing twice is harmless
        var popped: [TestTimer] = []
        heap.popExpired(now: Self.at(1000), into: &popped)
        let remaining = timers.filter { $0.name % 3 != 0 }.map { UInt64(($0.name * 37) % 64 + 1) }.sorted()
        #expect(popped.map { $0.deadline!.nanoseconds } == remaining)
    }

    @Test func reinsertMovesTheDeadline() {
        var heap = DeadlineHeap<TestTimer>()
        let a = TestTimer(1)
        let b = TestTimer(2)
        heap.insert(a, deadline: Self.at(10))
        heap.insert(b, deadline: Self.at(20))
        heap.insert(a, deadline: Self.at(30))
        #expect(heap.count == 2)
        #expect(heap.earliest == Self.at(20))
    }
}
