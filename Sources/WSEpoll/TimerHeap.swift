// A binary min-heap of (deadline, connection slot, generation) with lazy deletion: an entry is
// live only while its connection still has that deadline armed, so re-arming never searches.

import WSCore

struct TimerHeap {
    struct Entry {
        var deadline: WSInstant
        var token: UInt64
    }

    private(set) var entries: [Entry] = []

    var count: Int { entries.count }
    var earliest: WSInstant? { entries.first?.deadline }

    mutating func push(_ deadline: WSInstant, token: UInt64) {
        entries.append(Entry(deadline: deadline, token: token))
        var i = entries.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard entries[i].deadline < entries[parent].deadline else { break }
            entries.swapAt(i, parent)
            i = parent
        }
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    mutating func popDue(_ now: WSInstant) -> Entry? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < entries.count, entries[l].deadline < entries[m].deadline { m = l }
                if r < entries.count, entries[r].deadline < entries[m].deadline { m = r }
                if m == i { break }
                entries.swapAt(i, m)
                i = m
            }
        }
        return first
    }

    /// Rebuilds the heap from the live entries only (called when stale entries pile up).
    mutating func rebuild(_ live: [Entry]) {
        entries = []
        entries.reserveCapacity(live.count)
        for e in live { push(e.deadline, token: e.token) }
    }
}
