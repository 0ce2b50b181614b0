package guard

// expiryQueue orders keys by when they expire (a binary min-heap), so
// that a full table evicts the soonest to expire, and expired entries
// leave, in O(log n) a key: a scan of the whole table under its lock, for
// every new key once it was full, took 43 ms at a million entries (found
// by a review). It is lazy: an item whose key has since expired at
// another time, or left, is stale and skipped when it surfaces (see
// valid); compact drops stale items once they outnumber the live ones.
type expiryQueue struct {
	items []expiryItem
}

type expiryItem struct {
	key string
	at  int64 // Unix nanoseconds
}

func (q *expiryQueue) len() int { return len(q.items) }

func (q *expiryQueue) push(key string, at int64) {
	q.items = append(q.items, expiryItem{key, at})
	i := len(q.items) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if q.items[parent].at <= q.items[i].at {
			break
		}
		q.items[parent], q.items[i] = q.items[i], q.items[parent]
		i = parent
	}
}

// expire pops the items that are stale or expired at now, each given to
// drop (which deletes its key's entry unless the item is stale).
func (q *expiryQueue) expire(now int64, stale func(expiryItem) bool, drop func(expiryItem)) {
	for len(q.items) > 0 && (stale(q.items[0]) || q.items[0].at <= now) {
		drop(q.pop())
	}
}

// pop removes and returns the item that expires first.
func (q *expiryQueue) pop() expiryItem {
	top := q.items[0]
	last := len(q.items) - 1
	q.items[0] = q.items[last]
	q.items[last] = expiryItem{}
	q.items = q.items[:last]
	q.down(0)
	return top
}

func (q *expiryQueue) down(i int) {
	n := len(q.items)
	for {
		least := i
		if l := 2*i + 1; l < n && q.items[l].at < q.items[least].at {
			least = l
		}
		if r := 2*i + 2; r < n && q.items[r].at < q.items[least].at {
			least = r
		}
		if least == i {
			return
		}
		q.items[i], q.items[least] = q.items[least], q.items[i]
		i = least
	}
}

// compact keeps the items valid reports true for, once at least half are
// stale: amortised O(1) a push.
func (q *expiryQueue) compact(live int, valid func(expiryItem) bool) {
	if len(q.items) < 2*live+64 {
		return
	}
	kept := q.items[:0]
	for _, it := range q.items {
		if valid(it) {
			kept = append(kept, it)
		}
	}
	clear(q.items[len(kept):])
	q.items = kept
	for i := len(q.items)/2 - 1; i >= 0; i-- {
		q.down(i)
	}
}
